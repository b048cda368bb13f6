"""Sequence and classification metrics: exact match and token accuracy of sequences; accuracy, the confusion
matrix, precision, recall and F1 with scikit-learn's label order, averages and ``zero_division`` rule (see
:mod:`transformer_from_scratch.metrics`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from torch import Tensor

__all__ = [
    "AVERAGES",
    "PrecisionRecallF1",
    "accuracy",
    "confusion_matrix",
    "exact_match",
    "f1_score",
    "precision",
    "precision_recall_f1",
    "recall",
    "token_accuracy",
]

Label = int | str  # a class label: an int or a string, never both kinds in one call


# ---------------------------------------------------------------------------------------------- sequences


def exact_match(predictions: Sequence[Sequence[int]], references: Sequence[Sequence[int]]) -> float:
    """Fraction of predictions equal to their reference, token for token (lengths included)."""
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("exact_match needs at least one reference")
    return sum(list(p) == list(r) for p, r in zip(predictions, references)) / len(references)


def token_accuracy(logits: Tensor, targets: Tensor, *, ignore_index: int = -100) -> float:
    """Fraction of non-ignored target positions whose arg-max prediction is right. logits (…, V), targets (…)."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)} (…, V) vs (…)")
    counted = targets != ignore_index
    n = int(counted.sum())
    if n == 0:
        raise ValueError("every target is ignore_index: there is nothing to score")
    correct = (logits.argmax(dim=-1) == targets) & counted
    return float(correct.sum()) / n


# ------------------------------------------------------------------------------------ classification: inputs


def _as_labels(name: str, y) -> list[Label]:
    """``y`` (a list/tuple, a 1-D NumPy array or a 1-D tensor of class labels) as a list of Python ints or strs."""
    if isinstance(y, Tensor):
        if y.dtype.is_floating_point or y.dtype.is_complex:
            raise TypeError(
                f"{name} must hold class labels (ints or strings), got a tensor of dtype {y.dtype}: "
                "take the arg-max of logits or probabilities first"
            )
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one label per example), got shape {tuple(y.shape)}")
        values = y.tolist()
    elif isinstance(y, np.ndarray):
        if y.dtype.kind not in "biuUO":
            raise TypeError(
                f"{name} must hold class labels (ints or strings), got an array of dtype {y.dtype}: "
                "take the arg-max of logits or probabilities first"
            )
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one label per example), got shape {y.shape}")
        values = y.tolist()
    elif isinstance(y, Sequence) and not isinstance(y, str):
        values = list(y)
    else:
        raise TypeError(f"{name} must be a list, a 1-D NumPy array or a 1-D tensor of labels, got {type(y).__name__}")
    labels: list[Label] = []
    for i, v in enumerate(values):
        if isinstance(v, bool | np.bool_ | int | np.integer):
            labels.append(int(v))  # True/False count as 1/0
        elif isinstance(v, str):
            labels.append(str(v))  # np.str_ -> str
        else:
            raise TypeError(f"{name}[{i}] = {v!r} ({type(v).__name__}) is not a class label: use ints or strings")
    return labels


def _one_kind(named_labels: dict[str, Sequence[Label]]) -> None:
    """All the labels given are ints, or all are strings (they are compared and sorted together)."""
    kinds = {name: {type(v) for v in values} for name, values in named_labels.items()}
    seen = set().union(*kinds.values())
    if len(seen) > 1:
        detail = ", ".join(f"{name}: {sorted(k.__name__ for k in ks)}" for name, ks in kinds.items() if ks)
        raise TypeError(f"labels must be all ints or all strings, not a mix ({detail})")


def _pair(y_true, y_pred) -> tuple[list[Label], list[Label]]:
    """Both label sequences as lists, checked: the same length, not empty, one kind of label."""
    y_true, y_pred = _as_labels("y_true", y_true), _as_labels("y_pred", y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} true labels, {len(y_pred)} predicted")
    if not y_true:
        raise ValueError("y_true and y_pred are empty: there is nothing to score")
    _one_kind({"y_true": y_true, "y_pred": y_pred})
    return y_true, y_pred


def _chosen_labels(labels, y_true: list[Label]) -> list[Label]:
    """An explicit ``labels=`` argument, checked: not empty, no repeats, the same kind as the data."""
    chosen = _as_labels("labels", labels)
    if not chosen:
        raise ValueError("labels must name at least one class")
    repeated = sorted(c for c, n in Counter(chosen).items() if n > 1)
    if repeated:
        raise ValueError(f"labels must not repeat a class, got {repeated} more than once in {chosen}")
    _one_kind({"y_true/y_pred": y_true, "labels": chosen})
    return chosen


# ---------------------------------------------------------------------------- classification: the metrics


def accuracy(y_true, y_pred) -> float:
    """accuracy = (1/N) Σᵢ [ŷᵢ = yᵢ] — the fraction of examples whose predicted label is the true one."""
    y_true, y_pred = _pair(y_true, y_pred)
    return sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true)


def confusion_matrix(y_true, y_pred, *, labels=None) -> np.ndarray:
    """M[i, j] = #{examples whose true label is labels[i] and whose predicted label is labels[j]} -> (C, C) int64.

    Rows are true classes, columns predicted ones (scikit-learn's convention): the diagonal holds the hits, row i
    sums to the support of class i, column j to the number of predictions of class j.

    labels: the classes and their order; default: every label in y_true or y_pred, sorted. Examples whose true or
    predicted label is not among ``labels`` are left out of the matrix; at least one of ``labels`` must occur in
    y_true (as in scikit-learn).
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred))
    else:
        labels = _chosen_labels(labels, y_true)
        if not set(labels) & set(y_true):
            raise ValueError(f"none of labels={labels} occurs in y_true: at least one must")
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)  # (C, C)
    for t, p in zip(y_true, y_pred):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    return matrix


class PrecisionRecallF1(NamedTuple):
    """What :func:`precision_recall_f1` returns: floats when averaged, per-class arrays (C,) when ``average=None``.

    ``support`` (the number of true examples of each class, int64) is given with ``average=None`` only; it is
    ``None`` otherwise, as in scikit-learn's ``precision_recall_fscore_support``.
    """

    precision: float | np.ndarray
    recall: float | np.ndarray
    f1: float | np.ndarray
    support: np.ndarray | None


AVERAGES = ("binary", "macro", "micro", "weighted", None)


def _divide(numerator: int, denominator: int, zero_division: float) -> float:
    """numerator / denominator, or ``zero_division`` when the denominator is 0 (the ratio is undefined)."""
    return numerator / denominator if denominator else zero_division


def _mean(values: list[float], weights: list[int] | None = None) -> float:
    """Σ wᶜ vᶜ / Σ wᶜ over the values that are not NaN (wᶜ = 1 without weights).

    NaN only comes from ``zero_division=nan``: those classes are left out of the average, and the average of
    nothing is NaN. Weights that sum to 0 (no kept class has a true example) fall back to the plain mean.
    """
    weights = [1] * len(values) if weights is None else weights
    kept = [(v, w) for v, w in zip(values, weights) if not math.isnan(v)]
    if not kept:
        return math.nan
    total = sum(w for _, w in kept)
    if total == 0:
        return sum(v for v, _ in kept) / len(kept)
    return sum(v * w for v, w in kept) / total


def precision_recall_f1(
    y_true,
    y_pred,
    *,
    average: str | None = "binary",
    labels=None,
    pos_label: Label = 1,
    zero_division: float = 0.0,
) -> PrecisionRecallF1:
    r"""Precision, recall and F1 per class, or averaged over classes — scikit-learn's definitions.

    For one class c, counting over the examples: TPᶜ = #{ŷ = c and y = c}, FPᶜ = #{ŷ = c, y ≠ c},
    FNᶜ = #{ŷ ≠ c, y = c}, and

        precisionᶜ = TPᶜ / (TPᶜ + FPᶜ)      recallᶜ = TPᶜ / (TPᶜ + FNᶜ)
        F1ᶜ = 2 precisionᶜ recallᶜ / (precisionᶜ + recallᶜ) = 2 TPᶜ / (2 TPᶜ + FPᶜ + FNᶜ)

    ``average`` picks what comes back:

    - ``"binary"`` (default): the scores of ``pos_label`` alone. y_true and y_pred together may hold at most two
      classes, and ``pos_label`` must be one of them when there are two.
    - ``None``: arrays (C,), one entry per class of ``labels``, and the support (TPᶜ + FNᶜ) of each.
    - ``"macro"``: the plain mean of the per-class scores — every class counts the same.
    - ``"weighted"``: their mean weighted by the support, Σᶜ supportᶜ scoreᶜ / Σᶜ supportᶜ (the plain mean if no
      chosen class has a true example).
    - ``"micro"``: sum the counts over the classes first, then divide: precision = ΣTP / Σ(TP + FP), and so on.
      Over all the classes (no ``labels=``) every example is counted once, and all three equal the accuracy.

    labels: the classes scored (not for ``"binary"``); default: every label in y_true or y_pred, sorted. They may
    name classes that never occur, and leave out classes that do (their examples then only count as FP/FN of the
    chosen classes).

    zero_division: the value of a ratio whose denominator is 0 — 0.0 (default), 1.0 or ``float("nan")``:

    - a class that is never predicted (TP + FP = 0) has precision = zero_division;
    - a class with no true example (TP + FN = 0) has recall = zero_division;
    - F1 uses zero_division only when the class is in neither y_true nor y_pred (2TP + FP + FN = 0). A class that
      is never predicted but does occur gets F1 = 0 even with zero_division=1.0 (TP = 0, FN > 0).

    These per-class values, zero_division included, enter the macro and weighted means; with ``nan`` those
    classes are left out of the means instead.
    """
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    if isinstance(zero_division, bool) or not isinstance(zero_division, int | float):
        raise TypeError(f"zero_division must be 0.0, 1.0 or float('nan'), got {type(zero_division).__name__}")
    if not (zero_division in (0, 1) or math.isnan(zero_division)):
        raise ValueError(f"zero_division must be 0.0, 1.0 or float('nan'), got {zero_division!r}")
    zero_division = float(zero_division)
    y_true, y_pred = _pair(y_true, y_pred)
    chosen = _scored_labels(y_true, y_pred, average=average, labels=labels, pos_label=pos_label)

    hits = Counter(t for t, p in zip(y_true, y_pred) if t == p)
    true_count, pred_count = Counter(y_true), Counter(y_pred)
    tp = [hits[c] for c in chosen]  # TPᶜ
    predicted = [pred_count[c] for c in chosen]  # TPᶜ + FPᶜ
    support = [true_count[c] for c in chosen]  # TPᶜ + FNᶜ
    if average == "micro":
        tp, predicted, support = [sum(tp)], [sum(predicted)], [sum(support)]

    precisions = [_divide(n, d, zero_division) for n, d in zip(tp, predicted)]
    recalls = [_divide(n, d, zero_division) for n, d in zip(tp, support)]
    f1s = [_divide(2 * n, s + d, zero_division) for n, s, d in zip(tp, support, predicted)]  # 2TP / (2TP+FP+FN)

    if average is None:
        return PrecisionRecallF1(
            np.array(precisions), np.array(recalls), np.array(f1s), np.array(support, dtype=np.int64)
        )
    weights = support if average == "weighted" else None
    return PrecisionRecallF1(_mean(precisions, weights), _mean(recalls, weights), _mean(f1s, weights), None)


def _scored_labels(y_true, y_pred, *, average, labels, pos_label) -> list[Label]:
    """The classes :func:`precision_recall_f1` scores, in order; checks ``average``, ``labels`` and ``pos_label``."""
    present = sorted(set(y_true) | set(y_pred))
    if average != "binary":
        if pos_label != 1:
            raise ValueError(
                f"pos_label={pos_label!r} is only used with average='binary', not average={average!r}: "
                f"pass labels=[{pos_label!r}] to score that class alone"
            )
        return present if labels is None else _chosen_labels(labels, y_true)
    if labels is not None:
        raise ValueError(
            "labels= is not used with average='binary' (it scores pos_label only): pass average=None, 'macro', "
            "'micro' or 'weighted' to choose the classes"
        )
    if len(present) > 2:
        raise ValueError(
            f"average='binary' needs at most two classes, but y_true and y_pred hold {len(present)}: {present}; "
            "pass average='macro', 'micro', 'weighted' or None"
        )
    (pos_label,) = _as_labels("pos_label", [pos_label])
    if len(present) == 2 and pos_label not in present:
        raise ValueError(f"pos_label={pos_label!r} is not one of the two classes {present}")
    _one_kind({"y_true/y_pred": present, "pos_label": [pos_label]})
    return [pos_label]


def precision(
    y_true,
    y_pred,
    *,
    average: str | None = "binary",
    labels=None,
    pos_label: Label = 1,
    zero_division: float = 0.0,
) -> float | np.ndarray:
    """precision = TP / (TP + FP): the precision of :func:`precision_recall_f1`, which documents the arguments."""
    scores = precision_recall_f1(
        y_true, y_pred, average=average, labels=labels, pos_label=pos_label, zero_division=zero_division
    )
    return scores.precision


def recall(
    y_true,
    y_pred,
    *,
    average: str | None = "binary",
    labels=None,
    pos_label: Label = 1,
    zero_division: float = 0.0,
) -> float | np.ndarray:
    """recall = TP / (TP + FN): the recall of :func:`precision_recall_f1`, which documents the arguments."""
    scores = precision_recall_f1(
        y_true, y_pred, average=average, labels=labels, pos_label=pos_label, zero_division=zero_division
    )
    return scores.recall


def f1_score(
    y_true,
    y_pred,
    *,
    average: str | None = "binary",
    labels=None,
    pos_label: Label = 1,
    zero_division: float = 0.0,
) -> float | np.ndarray:
    """F1 = 2TP / (2TP + FP + FN): the f1 of :func:`precision_recall_f1`, which documents the arguments."""
    scores = precision_recall_f1(
        y_true, y_pred, average=average, labels=labels, pos_label=pos_label, zero_division=zero_division
    )
    return scores.f1
