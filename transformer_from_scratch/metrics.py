"""Evaluation metrics, written out in plain Python/torch/NumPy.

Four families, each function a few lines a reader can check against its formula:

- **Sequences** — :func:`exact_match` of whole sequences and :func:`token_accuracy` of arg-max predictions.
- **Classification** — :func:`accuracy`, :func:`confusion_matrix` and :func:`precision_recall_f1` (with the
  shortcuts :func:`precision`, :func:`recall`, :func:`f1_score`). The numbers are scikit-learn's
  (``accuracy_score``, ``confusion_matrix``, ``precision_recall_fscore_support``), and the tests hold them equal
  on random cases: same label order, same averages, same ``zero_division`` rule.
- **Extractive QA** — SQuAD v1.1's answer normalisation, exact match and token-level F1
  (:func:`normalize_answer`, :func:`squad_exact_match`, :func:`squad_f1`, :func:`squad_scores`).
- **Generated text** — corpus and sentence BLEU with sacreBLEU's 13a tokenisation and smoothing options
  (:func:`corpus_bleu`, :func:`sentence_bleu`, :func:`tokenize_13a`), and ROUGE-1/2/L F-measure with the
  rouge-score package's tokenisation and optional Porter stemming (:func:`rouge_n`, :func:`rouge_l`,
  :func:`rouge_scores`, :func:`porter_stem`). The tests hold them equal to ``sacrebleu`` and ``rouge_score``
  (test-only dependencies) on a few hundred seeded random cases.

Class labels are ints or strings, given as a list/tuple, a 1-D NumPy array or a 1-D torch tensor (bools count as
0/1). Float labels are refused (they are usually logits or probabilities: take the arg-max first). Per-class
results come back as NumPy arrays; averages and scores as Python floats.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from torch import Tensor

__all__ = [
    "BleuScore",
    "PrecisionRecallF1",
    "RougeScore",
    "accuracy",
    "confusion_matrix",
    "corpus_bleu",
    "exact_match",
    "f1_score",
    "normalize_answer",
    "precision",
    "porter_stem",
    "precision_recall_f1",
    "recall",
    "rouge_l",
    "rouge_n",
    "rouge_scores",
    "rouge_tokenize",
    "sentence_bleu",
    "squad_exact_match",
    "squad_f1",
    "squad_scores",
    "token_accuracy",
    "tokenize_13a",
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


# ------------------------------------------------------------------------------------------ SQuAD v1.1 (QA)

_ARTICLE = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)  # the 32 ASCII punctuation characters only


def normalize_answer(s: str) -> str:
    """SQuAD v1.1's answer normalisation, in its order: lower-case; delete ASCII punctuation; replace the articles
    "a", "an", "the" (whole words) by a space; collapse runs of white space into one space and strip the ends.

    >>> normalize_answer("The  Eiffel Tower!")
    'eiffel tower'

    The order matters: punctuation goes before articles, so "A.B.C." becomes "abc" (no article left in it).
    Non-ASCII punctuation (“curly quotes”, the dash —) is kept, as in the official script.
    """
    if not isinstance(s, str):
        raise TypeError(f"an answer must be a str, got {type(s).__name__} {s!r}")
    text = s.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLE.sub(" ", text)
    return " ".join(text.split())


def _ground_truth_list(ground_truths: str | Sequence[str]) -> list[str]:
    answers = [ground_truths] if isinstance(ground_truths, str) else list(ground_truths)
    if not answers:
        raise ValueError("ground_truths must hold at least one answer")
    return answers


def _f1_one(prediction: str, ground_truth: str) -> float:
    """Token F1 of one prediction against one answer: common = the multiset intersection of their tokens, and
    F1 = 2 P R / (P + R) with P = |common| / |prediction tokens|, R = |common| / |answer tokens|; 0 if none common.
    """
    predicted, answer = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = sum((Counter(predicted) & Counter(answer)).values())  # a token counts min(times in each) times
    if common == 0:
        return 0.0  # also when both are empty: SQuAD v1.1 (v2.0 scores empty vs empty as 1)
    p, r = common / len(predicted), common / len(answer)
    return 2 * p * r / (p + r)


def squad_exact_match(prediction: str, ground_truths: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised ground-truth answer, else 0.0 (SQuAD v1.1 EM).

    ground_truths: one answer (a str) or several; the question scores its best answer.
    """
    answers = _ground_truth_list(ground_truths)
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(a) for a in answers))


def squad_f1(prediction: str, ground_truths: str | Sequence[str]) -> float:
    """max over the ground-truth answers of the token F1 of the normalised prediction (SQuAD v1.1 F1), in [0, 1].

    Tokens are the white-space-separated words of :func:`normalize_answer`. With common = the multiset
    intersection of prediction and answer tokens, P = |common| / |prediction|, R = |common| / |answer| and
    F1 = 2 P R / (P + R) — 0 when nothing is common (an empty prediction scores 0, even against an answer that
    normalises to empty, such as "the").
    """
    answers = _ground_truth_list(ground_truths)
    return max(_f1_one(prediction, a) for a in answers)


def squad_scores(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """Corpus SQuAD v1.1 scores in PERCENT, as the official evaluation prints them:
    ``{"exact_match": 100 · mean squad_exact_match, "f1": 100 · mean squad_f1}``.

    predictions[i] is the answer to question i and references[i] its ground-truth answer(s): one str or a list.
    """
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError("predictions and references must be lists, one entry per question (got a str)")
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("squad_scores needs at least one question")
    em = sum(squad_exact_match(p, r) for p, r in zip(predictions, references))
    f1 = sum(squad_f1(p, r) for p, r in zip(predictions, references))
    return {"exact_match": 100.0 * em / len(references), "f1": 100.0 * f1 / len(references)}


# ----------------------------------------------------------------------------------- BLEU (machine translation)

# mteval-v13a's tokenisation, written out as four regular-expression passes over " line " (sacreBLEU's "13a"):
_13A_RULES = (
    # every ASCII symbol except . , - and ' becomes its own token:  { | } ~  [ \ ] ^ _ `  space ! " # $ % &  ( ) * +
    # : ; < = > ? @  and /
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # a period or comma not after a digit is split off ...
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... and so is one not before a digit (so 3.14 and 1,000 stay)
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # a dash after a digit is split off (2-3 -> 2 - 3)
)
_BLEU_SMOOTHING = {"none": None, "floor": 0.1, "add-k": 1, "exp": None}  # method -> default smooth_value
_BLEU_ORDER = 4


class BleuScore(NamedTuple):
    """A BLEU score and what it is made of (all in sacreBLEU's units).

    score: BLEU in [0, 100]. precisions: the four (smoothed) modified n-gram precisions in percent, 0.0 for
    orders that were not reached. bp: the brevity penalty in [0, 1]. sys_len, ref_len: the hypothesis tokens
    and the effective reference tokens (the closest reference length per sentence), summed over the corpus.
    """

    score: float
    precisions: list[float]
    bp: float
    sys_len: int
    ref_len: int


def tokenize_13a(line: str) -> str:
    """mteval-v13a's tokenisation (sacreBLEU's default "13a"), returned as tokens joined by single spaces.

    Drops ``<skipped>`` and end-of-line hyphens, unescapes ``&quot; &amp; &lt; &gt;``, then splits off every ASCII
    symbol except ``. , - '``; a period or comma is split off unless a digit sits on both sides ("3.14", "1,000"
    stay whole), a dash only after a digit ("2-3" -> "2 - 3"). Letters of any script are left alone.

    >>> tokenize_13a("Hello, world! It costs $3.50 (approx.)")
    'Hello , world ! It costs $ 3.50 ( approx . )'
    """
    if not isinstance(line, str):
        raise TypeError(f"a sentence must be a str, got {type(line).__name__} {line!r}")
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def _bleu_tokens(sentence: str, tokenize: str, lowercase: bool) -> list[str]:
    if not isinstance(sentence, str):
        raise TypeError(f"a sentence must be a str, got {type(sentence).__name__} {sentence!r}")
    if lowercase:
        sentence = sentence.lower()
    sentence = sentence.rstrip()
    return (tokenize_13a(sentence) if tokenize == "13a" else sentence).split()


def _ngram_counts(tokens: list[str], max_order: int = _BLEU_ORDER) -> Counter:
    """Every n-gram (as a tuple of tokens) of orders 1..max_order, with how often it occurs."""
    return Counter(tuple(tokens[i : i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1))


def _bleu_statistics(
    hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], tokenize: str, lowercase: bool
) -> tuple[int, int, list[int], list[int]]:
    """Corpus sums: (sys_len, ref_len, matches[n-1], totals[n-1]) for n = 1..4.

    A hypothesis n-gram matches at most as often as it occurs in one reference (the maximum over references:
    the "clipped" count of Papineni et al.); ref_len takes, per sentence, the reference length closest to the
    hypothesis length, the shorter one on a tie.
    """
    if tokenize not in ("13a", "none"):
        raise ValueError(f"tokenize must be '13a' or 'none', got {tokenize!r}")
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("hypotheses and references must be lists, one entry per sentence (got a str)")
    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses for {len(references)} references")
    sys_len = ref_len = 0
    matches, totals = [0] * _BLEU_ORDER, [0] * _BLEU_ORDER
    for hypothesis, refs in zip(hypotheses, references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError("every hypothesis needs at least one reference, got an empty list")
        hyp = _bleu_tokens(hypothesis, tokenize, lowercase)
        ref_tokens = [_bleu_tokens(r, tokenize, lowercase) for r in refs]
        clip: Counter = Counter()
        for tokens in ref_tokens:
            clip |= _ngram_counts(tokens)  # | keeps the larger count of each n-gram
        sys_len += len(hyp)
        ref_len += min((abs(len(t) - len(hyp)), len(t)) for t in ref_tokens)[1]  # closest, then shorter
        for ngram, count in _ngram_counts(hyp).items():
            totals[len(ngram) - 1] += count
            matches[len(ngram) - 1] += min(count, clip[ngram])
    return sys_len, ref_len, matches, totals


def _bleu_from_statistics(
    sys_len: int,
    ref_len: int,
    matches: list[int],
    totals: list[int],
    smooth: str,
    smooth_value: float | None,
    effective_order: bool,
) -> BleuScore:
    """BLEU = BP · exp( (1/N) Σ_{n=1..N} log p_n ), BP = 1 if c ≥ r else exp(1 − r/c) (0 if c = 0), p_n = m_n / t_n.

    N is 4, or with effective_order the highest order with at least one hypothesis n-gram. Smoothing of an order
    with no match (Chen & Cherry 2014): "none" leaves p_n = 0, hence BLEU = 0; "floor" uses p_n = ε / t_n
    (ε = 0.1); "exp" uses p_n = 1 / (2^k t_n) for the k-th such order (mteval's NIST smoothing); "add-k" uses
    p_n = (m_n + k) / (t_n + k) for every n ≥ 2 (k = 1). If no n-gram of any order matches, BLEU is 0.
    """
    if smooth not in _BLEU_SMOOTHING:
        raise ValueError(f"smooth must be one of {sorted(_BLEU_SMOOTHING)}, got {smooth!r}")
    value = _BLEU_SMOOTHING[smooth] if smooth_value is None else smooth_value
    bp = 1.0 if sys_len >= ref_len else (math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0)
    precisions = [0.0] * _BLEU_ORDER
    if not any(matches):
        return BleuScore(0.0, precisions, bp, sys_len, ref_len)
    order, halvings = _BLEU_ORDER, 0
    for n in range(1, _BLEU_ORDER + 1):
        m, t = matches[n - 1], totals[n - 1]
        if smooth == "add-k" and n > 1:
            m, t = m + value, t + value
        if t == 0:
            break  # the hypotheses are shorter than n tokens: no n-grams of this or a higher order
        if effective_order:
            order = n
        if m > 0:
            precisions[n - 1] = 100.0 * m / t
        elif smooth == "exp":
            halvings += 1
            precisions[n - 1] = 100.0 / (2**halvings * t)
        elif smooth == "floor":
            precisions[n - 1] = 100.0 * value / t
    used = precisions[:order]
    if any(p == 0.0 for p in used):
        return BleuScore(0.0, precisions, bp, sys_len, ref_len)  # a zero precision in the geometric mean
    score = bp * math.exp(sum(math.log(p) for p in used) / order)
    return BleuScore(score, precisions, bp, sys_len, ref_len)


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    smooth: str = "exp",
    smooth_value: float | None = None,
    tokenize: str = "13a",
    lowercase: bool = False,
    effective_order: bool = False,
) -> BleuScore:
    """Corpus BLEU (Papineni et al., 2002, "BLEU: a method for automatic evaluation of machine translation"):

        BLEU = BP · exp( (1/4) Σ_{n=1..4} log p_n ),   BP = min(1, exp(1 − r / c)),

    with p_n the corpus-level modified n-gram precision (matches clipped by the reference counts, summed over
    all sentences, divided by all hypothesis n-grams), c the hypothesis length and r the effective reference
    length (per sentence the closest reference length, shorter on ties), both summed over the corpus.

    Reported like sacreBLEU (Post, 2018), whose defaults these are and whose numbers it reproduces: score in
    [0, 100], 13a tokenisation (:func:`tokenize_13a`; ``"none"`` splits on white space), ``smooth`` one of
    "exp" | "floor" | "add-k" | "none" with ``smooth_value`` ε = 0.1 for floor and k = 1 for add-k by default
    (see :func:`_bleu_from_statistics` for the formulas).

    hypotheses[i]: the system output for sentence i; references[i]: its reference, a str or a list of strs.
    """
    stats = _bleu_statistics(hypotheses, references, tokenize, lowercase)
    return _bleu_from_statistics(*stats, smooth, smooth_value, effective_order)


def sentence_bleu(
    hypothesis: str,
    references: str | Sequence[str],
    *,
    smooth: str = "exp",
    smooth_value: float | None = None,
    tokenize: str = "13a",
    lowercase: bool = False,
    effective_order: bool = True,
) -> BleuScore:
    """BLEU of one sentence: :func:`corpus_bleu` of a one-sentence corpus, with effective order on by default
    (orders longer than the hypothesis are left out of the mean instead of zeroing it), as sacreBLEU does.
    """
    if not isinstance(hypothesis, str):
        raise TypeError(f"hypothesis must be a str, got {type(hypothesis).__name__}")
    stats = _bleu_statistics([hypothesis], [references], tokenize, lowercase)
    return _bleu_from_statistics(*stats, smooth, smooth_value, effective_order)


# ---------------------------------------------------------------------------------------- ROUGE (summaries)

_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


class RougeScore(NamedTuple):
    """Precision, recall and their harmonic mean (F-measure) of one ROUGE variant, each in [0, 1]."""

    precision: float
    recall: float
    fmeasure: float


def rouge_tokenize(text: str, *, use_stemmer: bool = False) -> list[str]:
    """The tokens ROUGE compares (the rouge-score package's default): lower-case, then every run of characters
    other than ASCII a-z and 0-9 becomes a separator. So "Café au lait!" -> ["caf", "au", "lait"], and words in
    other scripts ("北京") vanish. With use_stemmer, tokens longer than 3 characters go through
    :func:`porter_stem` ("cats" -> "cat", but "was" stays "was").
    """
    if not isinstance(text, str):
        raise TypeError(f"a text must be a str, got {type(text).__name__} {text!r}")
    tokens = _NOT_ALPHANUMERIC.sub(" ", text.lower()).split()
    return [porter_stem(t) if use_stemmer and len(t) > 3 else t for t in tokens]


def _prf(overlap: int, n_prediction: int, n_reference: int) -> RougeScore:
    p = overlap / max(n_prediction, 1)
    r = overlap / max(n_reference, 1)
    return RougeScore(p, r, 2 * p * r / (p + r) if p + r > 0 else 0.0)


def rouge_n(prediction: str, reference: str, n: int, *, use_stemmer: bool = False) -> RougeScore:
    """ROUGE-N (Lin, 2004, "ROUGE: A Package for Automatic Evaluation of Summaries"), one reference:

        overlap = Σ_g min(count_pred(g), count_ref(g)) over n-grams g,
        P = overlap / #pred n-grams,  R = overlap / #ref n-grams,  F = 2PR / (P + R)

    (0 where a denominator or P + R is 0). Tokens are :func:`rouge_tokenize`'s (Porter-stemmed with use_stemmer).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    pred, ref = rouge_tokenize(prediction, use_stemmer=use_stemmer), rouge_tokenize(reference, use_stemmer=use_stemmer)
    pred_grams = Counter(tuple(pred[i : i + n]) for i in range(len(pred) - n + 1))
    ref_grams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
    overlap = sum((pred_grams & ref_grams).values())
    return _prf(overlap, sum(pred_grams.values()), sum(ref_grams.values()))


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, by the textbook dynamic programme, one row at a time."""
    row = [0] * (len(b) + 1)  # row[j] = LCS(a[:i], b[:j]) for the current i
    for x in a:
        diagonal = 0  # LCS(a[:i-1], b[:j-1])
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(prediction: str, reference: str, *, use_stemmer: bool = False) -> RougeScore:
    """ROUGE-L (Lin, 2004), sentence level: with LCS the longest common subsequence of the two token lists,

    P = |LCS| / |pred|,  R = |LCS| / |ref|,  F = 2PR / (P + R)   (β = 1; all 0 if either side is empty).
    """
    pred, ref = rouge_tokenize(prediction, use_stemmer=use_stemmer), rouge_tokenize(reference, use_stemmer=use_stemmer)
    if not pred or not ref:
        return RougeScore(0.0, 0.0, 0.0)
    return _prf(_lcs_length(pred, ref), len(pred), len(ref))


def rouge_scores(
    predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = False
) -> dict[str, RougeScore]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L over pairs: ``{"rouge1": RougeScore, "rouge2": ..., "rougeL": ...}``,
    each field the plain average of the per-pair values (in [0, 1]); use_stemmer as in :func:`rouge_tokenize`.
    """
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError("predictions and references must be lists, one entry per pair (got a str)")
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("rouge_scores needs at least one pair")
    per_pair = {
        "rouge1": [rouge_n(p, r, 1, use_stemmer=use_stemmer) for p, r in zip(predictions, references)],
        "rouge2": [rouge_n(p, r, 2, use_stemmer=use_stemmer) for p, r in zip(predictions, references)],
        "rougeL": [rouge_l(p, r, use_stemmer=use_stemmer) for p, r in zip(predictions, references)],
    }
    return {
        name: RougeScore(*(sum(column) / len(scores) for column in zip(*scores))) for name, scores in per_pair.items()
    }


# -------------------------------------------------------------------------------- Porter stemmer (for ROUGE)

_PORTER_VOWELS = frozenset("aeiou")
# NLTK's extension: whole words with a fixed stem (irregular forms the suffix rules would get wrong)
_PORTER_EXCEPTIONS = {
    "sky": "sky",
    "skies": "sky",
    "dying": "die",
    "lying": "lie",
    "tying": "tie",
    "news": "news",
    "innings": "inning",
    "inning": "inning",
    "outings": "outing",
    "outing": "outing",
    "cannings": "canning",
    "canning": "canning",
    "howe": "howe",
    "proceed": "proceed",
    "exceed": "exceed",
    "succeed": "succeed",
}
# (suffix, replacement) pairs; the first suffix the word ends with decides, and if its condition fails the word is
# left as it is (Porter's "longest matching suffix" rule, the tables being ordered so that this is the first match).
_PORTER_STEP2 = (
    ("ational", "ate"),
    ("tional", "tion"),
    ("enci", "ence"),
    ("anci", "ance"),
    ("izer", "ize"),
    ("bli", "ble"),  # the paper's "abli -> able", widened as in NLTK
    ("alli", "al"),
    ("entli", "ent"),
    ("eli", "e"),
    ("ousli", "ous"),
    ("ization", "ize"),
    ("ation", "ate"),
    ("ator", "ate"),
    ("alism", "al"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("ousness", "ous"),
    ("aliti", "al"),
    ("iviti", "ive"),
    ("biliti", "ble"),
    ("fulli", "ful"),  # NLTK extension
)
_PORTER_STEP3 = (
    ("icate", "ic"),
    ("ative", ""),
    ("alize", "al"),
    ("iciti", "ic"),
    ("ical", "ic"),
    ("ful", ""),
    ("ness", ""),
)
_PORTER_STEP4 = (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism", "ate", "iti",
    "ous", "ive", "ize",
)  # fmt: skip


def _consonants(word: str) -> list[bool]:
    """Porter's consonant test, letter by letter: a, e, i, o, u are vowels; y is a vowel after a consonant and a
    consonant otherwise (at the start of the word or after a vowel); every other letter is a consonant."""
    flags: list[bool] = []
    for i, ch in enumerate(word):
        flags.append(ch not in _PORTER_VOWELS and (ch != "y" or i == 0 or not flags[i - 1]))
    return flags


def _measure(stem: str) -> int:
    """Porter's m: the word is [C](VC)^m[V]; m counts the vowel-run-then-consonant-run pairs."""
    flags = _consonants(stem)
    return sum(1 for a, b in zip(flags, flags[1:]) if not a and b)


def _has_vowel(stem: str) -> bool:
    return not all(_consonants(stem))


def _ends_double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _consonants(word)[-1]


def _ends_cvc(word: str) -> bool:
    """Porter's *o: the word ends consonant-vowel-consonant, the last not w, x or y (NLTK also counts a two-letter
    word vowel-consonant, so "at" -> "ate" style repairs reach e.g. "owing" -> "ow")."""
    flags = _consonants(word)
    if len(word) >= 3:
        return flags[-3] and not flags[-2] and flags[-1] and word[-1] not in "wxy"
    return len(word) == 2 and not flags[0] and flags[1]


def _first_rule(word: str, rules, condition) -> str:
    """Apply the first rule (suffix, replacement) whose suffix ends the word, if condition(stem) holds."""
    for suffix, replacement in rules:
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            return stem + replacement if condition(stem) else word
    return word


def _porter_step1(word: str) -> str:
    """Plurals and -ed / -ing (steps 1a, 1b), then a final y after a consonant becomes i (1c)."""
    # 1a: sses -> ss, ies -> i (NLTK: a four-letter "ies" word -> "ie"), ss stays, s -> (nothing)
    if word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("ies"):
        word = word[:-3] + ("ie" if len(word) == 4 else "i")
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    # 1b
    if word.endswith("ied"):  # NLTK extension, like "ies"
        word = word[:-3] + ("ie" if len(word) == 4 else "i")
    elif word.endswith("eed"):
        if _measure(word[:-3]) > 0:
            word = word[:-1]
    else:
        for suffix in ("ed", "ing"):
            stem = word[: len(word) - len(suffix)]
            if word.endswith(suffix) and _has_vowel(stem):
                if stem.endswith(("at", "bl", "iz")):
                    word = stem + "e"
                elif _ends_double_consonant(stem):
                    word = stem if stem[-1] in "lsz" else stem[:-1]
                elif _measure(stem) == 1 and _ends_cvc(stem):
                    word = stem + "e"
                else:
                    word = stem
                break
    # 1c (NLTK's form): y -> i when a consonant precedes it and it is not the second letter
    if word.endswith("y") and len(word) > 2 and _consonants(word)[-2]:
        word = word[:-1] + "i"
    return word


def porter_stem(word: str) -> str:
    """The Porter stemmer (Porter, 1980, "An algorithm for suffix stripping") with NLTK's extensions, i.e. the
    stemmer rouge-score applies when ``use_stemmer=True``: "running" -> "run", "happiness" -> "happi",
    "relational" -> "relat". Steps: 1 plurals, -ed/-ing, y->i; 2 and 3 map double suffixes to single ones when the
    stem's measure m > 0; 4 drops a suffix when m > 1; 5 drops a final e and undoubles a final ll.
    Lower-case input expected; words of one or two letters are returned as they are.
    """
    if word in _PORTER_EXCEPTIONS:
        return _PORTER_EXCEPTIONS[word]
    if len(word) <= 2:
        return word
    word = _porter_step1(word)
    # 2 (NLTK first rewrites "alli" -> "al" and runs step 2 again; "logi" -> "log" judges m on the stem + "l")
    if word.endswith("alli") and _measure(word[:-4]) > 0:
        word = word[:-2]
    if word.endswith("logi"):
        word = word[:-1] if _measure(word[:-3]) > 0 else word
    else:
        word = _first_rule(word, _PORTER_STEP2, lambda stem: _measure(stem) > 0)
    word = _first_rule(word, _PORTER_STEP3, lambda stem: _measure(stem) > 0)
    # 4: drop a suffix when m > 1 (and -ion only after s or t)
    for suffix in _PORTER_STEP4:
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            if _measure(stem) > 1 and (suffix != "ion" or stem.endswith(("s", "t"))):
                word = stem
            break
    # 5a: drop a final e if m > 1, or if m = 1 and the stem does not end cvc
    if word.endswith("e"):
        m = _measure(word[:-1])
        if m > 1 or (m == 1 and not _ends_cvc(word[:-1])):
            word = word[:-1]
    # 5b: ll -> l when m > 1
    if word.endswith("ll") and _measure(word[:-1]) > 1:
        word = word[:-1]
    return word
