"""Metrics on hand-made cases, against plain loops and against an oracle nobody here wrote.

Exact match and token accuracy against loops; accuracy, the confusion matrix and precision/recall/F1 against
scikit-learn (a test-only dependency, in the dev extra) on a few hundred seeded random cases; the SQuAD v1.1
scores on cases worked out by hand from the official definition.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.metrics as sk
import torch
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.metrics import (
    accuracy,
    confusion_matrix,
    exact_match,
    f1_score,
    normalize_answer,
    precision,
    precision_recall_f1,
    recall,
    squad_exact_match,
    squad_f1,
    squad_scores,
    token_accuracy,
)

# ------------------------------------------------------------------------------------------ exact match


def test_exact_match_counts_sequences_that_are_equal_token_for_token():
    predictions = [[5, 4, 3], [3, 4], [7], [1, 2, 3], []]
    references = [[5, 4, 3], [3, 4, 5], [7], [3, 2, 1], []]
    # equal · a prefix is not a match · equal · the same tokens in another order are not a match · empty == empty
    assert exact_match(predictions, references) == 3 / 5


def test_exact_match_compares_lengths_and_ignores_the_container_type():
    assert exact_match([(1, 2)], [[1, 2]]) == 1.0  # a tuple against a list
    assert exact_match([[1, 2, 0]], [[1, 2]]) == 0.0  # trailing padding is a difference: strip it first
    assert exact_match([[1, 2]], [[1, 2, 0]]) == 0.0
    assert exact_match(["abc", "abd"], ["abc", "abc"]) == 0.5  # any sequences: strings too


@given(
    pairs=st.lists(
        st.tuples(st.lists(st.integers(0, 3), max_size=4), st.lists(st.integers(0, 3), max_size=4)),
        min_size=1,
        max_size=12,
    )
)
def test_exact_match_is_the_fraction_of_equal_pairs(pairs):
    predictions, references = [p for p, _ in pairs], [r for _, r in pairs]
    equal = 0
    for p, r in pairs:
        same = len(p) == len(r)
        for a, b in zip(p, r):
            same = same and a == b
        equal += same
    assert exact_match(predictions, references) == equal / len(pairs)


def test_exact_match_errors():
    with pytest.raises(ValueError, match="2 predictions for 3 references"):
        exact_match([[1], [2]], [[1], [2], [3]])
    with pytest.raises(ValueError, match="at least one reference"):
        exact_match([], [])


# --------------------------------------------------------------------------------------- token accuracy


def _logits_predicting(ids: list[list[int]], vocab: int) -> torch.Tensor:
    """(B, T, V) logits whose arg-max at [b, t] is ids[b][t] (the other classes get random smaller scores)."""
    g = torch.Generator().manual_seed(0)
    predicted = torch.tensor(ids)  # (B, T)
    logits = torch.rand(*predicted.shape, vocab, generator=g)  # (B, T, V) in [0, 1)
    return logits.scatter(-1, predicted[..., None], 2.0)  # the predicted class gets the largest score


def test_token_accuracy_on_a_hand_made_case():
    logits = _logits_predicting([[1, 2, 3], [0, 4, 4]], vocab=5)  # predictions per position
    targets = torch.tensor([[1, 0, 3], [0, 4, -100]])  # right, wrong, right / right, right, ignored
    assert token_accuracy(logits, targets) == 4 / 5
    # The ignored position would have been wrong as a <pad>=0 target; a custom ignore_index changes the count.
    targets_pad0 = torch.tensor([[1, 0, 3], [0, 4, 0]])
    assert token_accuracy(logits, targets_pad0) == 4 / 6
    assert token_accuracy(logits, targets_pad0, ignore_index=0) == 3 / 3  # only the targets 1, 3 and 4 count


@given(
    batch=st.integers(1, 3),
    length=st.integers(1, 5),
    vocab=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_token_accuracy_matches_a_loop(batch, length, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab, generator=g, dtype=torch.float64)
    targets = torch.randint(0, vocab, (batch, length), generator=g)
    targets[torch.rand(batch, length, generator=g) < 0.3] = -100
    targets[0, 0] = int(logits[0, 0].argmax())  # at least one real target
    right = counted = 0
    for b in range(batch):
        for t in range(length):
            if targets[b, t] == -100:
                continue
            counted += 1
            best = max(range(vocab), key=lambda v: float(logits[b, t, v]))
            right += best == int(targets[b, t])
    assert token_accuracy(logits, targets) == pytest.approx(right / counted, abs=1e-15)


def test_token_accuracy_accepts_any_leading_shape():
    logits = _logits_predicting([[2, 1, 0, 1]], vocab=3)[0]  # (T, V)
    assert token_accuracy(logits, torch.tensor([2, 1, 1, -100])) == 2 / 3


def test_token_accuracy_errors():
    logits = torch.zeros(2, 3, 5)
    with pytest.raises(ValueError, match=r"logits \(2, 3, 5\) do not match targets \(2, 4\)"):
        token_accuracy(logits, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="nothing to score"):
        token_accuracy(logits, torch.full((2, 3), -100))


# ------------------------------------------------------------------ classification: a case worked by hand

# y_true: cat cat dog dog dog emu · y_pred: cat dog dog dog cat cat — classes sorted: cat, dog, emu.
# Confusion matrix (rows true, columns predicted):  cat [1 1 0] · dog [1 2 0] · emu [1 0 0].
# TP = diagonal = (1, 2, 0); predicted = column sums = (3, 3, 0); support = row sums = (2, 3, 1).
Y_TRUE = ["cat", "cat", "dog", "dog", "dog", "emu"]
Y_PRED = ["cat", "dog", "dog", "dog", "cat", "cat"]


def test_confusion_matrix_by_hand_rows_are_true_classes():
    assert confusion_matrix(Y_TRUE, Y_PRED).tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 0]]
    # labels= picks and orders the classes; examples outside them (both "cat" rows and columns) drop out
    assert confusion_matrix(Y_TRUE, Y_PRED, labels=["emu", "dog"]).tolist() == [[0, 0], [0, 2]]
    assert confusion_matrix(Y_TRUE, Y_PRED, labels=["dog", "cat", "yak"]).tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert accuracy(Y_TRUE, Y_PRED) == 3 / 6


def test_precision_recall_f1_by_hand():
    per_class = precision_recall_f1(Y_TRUE, Y_PRED, average=None)
    # precision = TP / predicted: 1/3, 2/3, and 0/0 -> zero_division = 0 for "emu", never predicted
    # recall = TP / support: 1/2, 2/3, 0/1;  F1 = 2TP / (support + predicted): 2/5, 4/6, 0/1
    assert per_class.precision.tolist() == [1 / 3, 2 / 3, 0.0]
    assert per_class.recall.tolist() == [1 / 2, 2 / 3, 0.0]
    assert per_class.f1.tolist() == [2 / 5, 2 / 3, 0.0]
    assert per_class.support.tolist() == [2, 3, 1]

    macro = precision_recall_f1(Y_TRUE, Y_PRED, average="macro")
    # (1/3 + 2/3 + 0)/3 = 1/3 · (1/2 + 2/3 + 0)/3 = 7/18 · (2/5 + 2/3 + 0)/3 = 16/45
    assert macro == pytest.approx((1 / 3, 7 / 18, 16 / 45, None), abs=1e-15)
    weighted = precision_recall_f1(Y_TRUE, Y_PRED, average="weighted")
    # (2·1/3 + 3·2/3 + 1·0)/6 = 4/9 · (2·1/2 + 3·2/3 + 0)/6 = 1/2 · (2·2/5 + 3·2/3 + 0)/6 = 7/15
    assert weighted == pytest.approx((4 / 9, 1 / 2, 7 / 15, None), abs=1e-15)
    micro = precision_recall_f1(Y_TRUE, Y_PRED, average="micro")
    assert micro == pytest.approx((1 / 2, 1 / 2, 1 / 2, None), abs=1e-15)  # ΣTP = 3 of 6 predictions, 6 true

    # zero_division=1: emu's precision (0/0) becomes 1, but its F1 stays 0 = 2·0 / (1 + 0) — it has a true example
    ones = precision_recall_f1(Y_TRUE, Y_PRED, average=None, zero_division=1.0)
    assert ones.precision.tolist() == [1 / 3, 2 / 3, 1.0]
    assert ones.f1.tolist() == [2 / 5, 2 / 3, 0.0]
    # zero_division=nan: emu is left out of the precision mean: (1/3 + 2/3)/2 = 1/2; the F1 mean keeps it
    nans = precision_recall_f1(Y_TRUE, Y_PRED, average="macro", zero_division=float("nan"))
    assert nans.precision == pytest.approx(1 / 2, abs=1e-15)
    assert nans.f1 == pytest.approx(16 / 45, abs=1e-15)


def test_binary_scores_pos_label_by_hand():
    y_true = [1, 1, 1, 0, 0]
    y_pred = [1, 0, 0, 1, 0]
    # pos_label=1: TP = 1, FP = 1, FN = 2 -> P = 1/2, R = 1/3, F1 = 2·1/(2·1 + 1 + 2) = 2/5
    assert precision(y_true, y_pred) == 1 / 2
    assert recall(y_true, y_pred) == 1 / 3
    assert f1_score(y_true, y_pred) == 2 / 5
    # pos_label=0: TP = 1, FP = 2, FN = 1 -> P = 1/3, R = 1/2, F1 = 2/5
    assert precision_recall_f1(y_true, y_pred, pos_label=0) == (1 / 3, 1 / 2, 2 / 5, None)
    # Every prediction 0 and no true 1: class 1 is in neither, so all three are zero_division
    assert precision_recall_f1([0, 0], [0, 0]) == (0.0, 0.0, 0.0, None)
    assert precision_recall_f1([0, 0], [0, 0], zero_division=1.0) == (1.0, 1.0, 1.0, None)
    # Every prediction 0, a true 1: precision 0/0 -> zero_division; recall 0/1; F1 0 whatever zero_division is
    assert precision_recall_f1([1, 0], [0, 0], zero_division=1.0) == (1.0, 0.0, 0.0, None)


def test_labels_may_be_lists_numpy_arrays_or_tensors_of_ints_bools_or_strings():
    y_true, y_pred = [0, 1, 1, 0, 1], [0, 1, 1, 0, 0]  # class 1: TP = 2, FP = 0, FN = 1 -> P = 1, R = 2/3
    expected = (1.0, 2 / 3, 4 / 5, None)  # F1 = 2·2 / (2·2 + 0 + 1)
    as_bools = ([bool(v) for v in y_true], [bool(v) for v in y_pred])
    for t, p in [
        (y_true, y_pred),
        (tuple(y_true), tuple(y_pred)),
        (np.array(y_true), np.array(y_pred, dtype=np.int8)),
        (torch.tensor(y_true), torch.tensor(y_pred, dtype=torch.int32)),
        as_bools,
        (np.array(as_bools[0]), torch.tensor(as_bools[1])),
    ]:
        assert precision_recall_f1(t, p) == expected
        assert accuracy(t, p) == 4 / 5
    words = np.array(["no", "yes", "yes", "no", "yes"])
    assert precision_recall_f1(words, ["no", "yes", "yes", "no", "no"], pos_label="yes") == expected


@given(
    pairs=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=20),
)
def test_micro_scores_and_weighted_recall_equal_the_accuracy(pairs):
    # Over all classes every example is counted once: ΣTP = #right, Σpredicted = Σsupport = N.
    # Weighted recall: Σᶜ supportᶜ · TPᶜ/supportᶜ / N = ΣTP / N.
    y_true, y_pred = [t for t, _ in pairs], [p for _, p in pairs]
    right = sum(t == p for t, p in pairs) / len(pairs)
    assert accuracy(y_true, y_pred) == right
    assert precision_recall_f1(y_true, y_pred, average="micro") == (right, right, right, None)
    assert precision_recall_f1(y_true, y_pred, average="weighted").recall == pytest.approx(right, abs=1e-15)
    assert int(np.trace(confusion_matrix(y_true, y_pred))) == sum(t == p for t, p in pairs)


# -------------------------------------------------------------- classification: scikit-learn as the oracle

N_CASES = 240  # random classification problems per oracle test
INT_POOL = [-3, 0, 1, 2, 5, 7, 42]
STR_POOL = ["ant", "bee", "cat", "dog", "emu", "yak"]
SCENARIOS = ("uniform", "a class never predicted", "a class never true", "one class predicted", "mostly right")
ZERO_DIVISIONS = (0.0, 1.0, math.nan)
TOL = 1e-12


def _container(values: list, rng: np.random.Generator):
    """The labels as a list, a NumPy array or (ints only) a torch tensor — all must give the same scores."""
    kind = ("list", "numpy", "torch")[int(rng.integers(0, 2 if isinstance(values[0], str) else 3))]
    return {"list": list, "numpy": np.array, "torch": torch.tensor}[kind](values)


def random_case(rng: np.random.Generator, scenario: str, pool: list) -> tuple[list, list, list]:
    """(y_true, y_pred, labels): a random problem of the scenario's kind and an explicit labels= list for it."""
    k = int(rng.integers(2 if scenario.startswith("a class") else 1, 6))  # number of classes in play
    classes = [pool[i] for i in rng.permutation(len(pool))[:k]]
    k = len(classes)  # a pool of two gives at most two
    n = int(rng.integers(1, 25))
    draw = lambda choices, size: [choices[i] for i in rng.integers(0, len(choices), size)]  # noqa: E731
    y_true, y_pred = draw(classes, n), draw(classes, n)
    if scenario == "a class never predicted":  # the last class is true at least once and never predicted
        y_true, y_pred = classes + y_true, draw(classes[:-1], n + k)
    elif scenario == "a class never true":
        y_pred, y_true = classes + y_pred, draw(classes[:-1], n + k)
    elif scenario == "one class predicted":  # sometimes a class that is never true
        y_pred = [pool[int(rng.integers(0, len(pool)))]] * n
    elif scenario == "mostly right":
        y_pred = [p if rng.random() < 0.2 else t for t, p in zip(y_true, y_pred)]
    present = sorted(set(y_true) | set(y_pred))
    absent = [c for c in pool if c not in present]
    labels = [present[i] for i in rng.permutation(len(present))[: int(rng.integers(1, len(present) + 1))]]
    labels += absent[: int(rng.integers(0, 3))]  # classes that never occur
    return y_true, y_pred, [labels[i] for i in rng.permutation(len(labels))]


def classification_cases(seed: int):
    rng = np.random.default_rng(seed)
    for i in range(N_CASES):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        pool = STR_POOL if i % 4 == 3 else INT_POOL  # a quarter of the cases use string labels
        y_true, y_pred, labels = random_case(rng, scenario, pool)
        yield f"case {i} ({scenario}): y_true={y_true} y_pred={y_pred}", y_true, y_pred, labels, rng


def assert_same_numbers(ours, theirs, what: str) -> None:
    """Equal to TOL, NaN where scikit-learn has NaN, the same shape (a float vs a float, an array vs an array)."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs scikit-learn's {theirs.shape}"
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), f"{what}: {ours} vs scikit-learn's {theirs}"
    difference = float(np.max(np.abs(np.nan_to_num(ours) - np.nan_to_num(theirs)), initial=0.0))
    assert difference <= TOL, f"{what}: {ours} vs scikit-learn's {theirs} (differ by {difference:.3g})"


@pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")
def test_accuracy_and_confusion_matrix_equal_scikit_learn():
    for what, y_true, y_pred, labels, rng in classification_cases(seed=0):
        t, p = _container(y_true, rng), _container(y_pred, rng)
        assert accuracy(t, p) == sk.accuracy_score(y_true, y_pred), what
        ours = confusion_matrix(t, p)
        assert ours.dtype == np.int64 and np.array_equal(ours, sk.confusion_matrix(y_true, y_pred)), what
        if set(labels) & set(y_true):
            ours = confusion_matrix(t, p, labels=labels)
            assert np.array_equal(ours, sk.confusion_matrix(y_true, y_pred, labels=labels)), f"{what} {labels=}"
        else:  # scikit-learn refuses labels of which none is true; so do we
            with pytest.raises(ValueError, match="at least one must"):
                confusion_matrix(t, p, labels=labels)
            with pytest.raises(ValueError):
                sk.confusion_matrix(y_true, y_pred, labels=labels)


def test_precision_recall_f1_equal_scikit_learn_for_every_average():
    for i, (what, y_true, y_pred, explicit, rng) in enumerate(classification_cases(seed=1)):
        t, p = _container(y_true, rng), _container(y_pred, rng)
        zero_division = ZERO_DIVISIONS[i % 3]  # each value on a third of the cases (scikit-learn takes ~2 ms a call)
        for average in (None, "macro", "micro", "weighted"):
            for labels in (None, explicit):
                args = {"average": average, "labels": labels, "zero_division": zero_division}
                ours = precision_recall_f1(t, p, **args)
                theirs = sk.precision_recall_fscore_support(y_true, y_pred, **args)
                for name, a, b in zip(("precision", "recall", "f1"), ours, theirs):
                    assert_same_numbers(a, b, f"{what} {args} {name}")
                if average is None:
                    assert np.array_equal(ours.support, theirs[3]), f"{what} {args} support"
                else:
                    assert ours.support is None and isinstance(ours.f1, float), what
        # the shortcuts, on one average per case
        args = {"average": (None, "macro", "micro", "weighted")[i // 4 % 4], "labels": explicit, "zero_division": 0.0}
        assert_same_numbers(precision(t, p, **args), sk.precision_score(y_true, y_pred, **args), f"{what} {args}")
        assert_same_numbers(recall(t, p, **args), sk.recall_score(y_true, y_pred, **args), f"{what} {args}")
        assert_same_numbers(f1_score(t, p, **args), sk.f1_score(y_true, y_pred, **args), f"{what} {args}")


def test_binary_scores_equal_scikit_learn_for_either_pos_label():
    rng = np.random.default_rng(2)
    for i in range(N_CASES):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        pool = [["neg", "pos"], [0, 1], [-1, 1], [3, 7]][i % 4]
        y_true, y_pred, _ = random_case(rng, scenario, pool)
        what = f"case {i} ({scenario}): y_true={y_true} y_pred={y_pred}"
        t, p = _container(y_true, rng), _container(y_pred, rng)
        for pos_label in pool:  # one class may be absent from both y_true and y_pred: still a valid pos_label
            args = {"pos_label": pos_label, "zero_division": ZERO_DIVISIONS[i % 3]}  # 5, 4, 3 coprime: all combos
            ours = precision_recall_f1(t, p, **args)
            theirs = sk.precision_recall_fscore_support(y_true, y_pred, average="binary", **args)
            assert ours.support is None and theirs[3] is None, what
            for name, a, b in zip(("precision", "recall", "f1"), ours, theirs):
                assert_same_numbers(a, b, f"{what} {args} {name}")
        if pool == [0, 1]:  # the defaults: average="binary", pos_label=1, zero_division=0
            assert_same_numbers(precision(t, p), sk.precision_score(y_true, y_pred, zero_division=0), what)
            assert_same_numbers(recall(t, p), sk.recall_score(y_true, y_pred, zero_division=0), what)
            assert_same_numbers(f1_score(t, p), sk.f1_score(y_true, y_pred, zero_division=0), what)


# ---------------------------------------------------------------------------- classification: bad inputs


@pytest.mark.parametrize("metric", [accuracy, confusion_matrix, precision_recall_f1, precision, recall, f1_score])
def test_every_classification_metric_refuses_mismatched_empty_or_float_inputs(metric):
    with pytest.raises(ValueError, match="y_true and y_pred differ in length: 3 true labels, 2 predicted"):
        metric([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="y_true and y_pred are empty: there is nothing to score"):
        metric([], np.array([], dtype=np.int64))
    with pytest.raises(TypeError, match=r"y_pred must hold class labels .* dtype torch.float32: take the arg-max"):
        metric(torch.tensor([0, 1]), torch.tensor([0.2, 0.9]))
    with pytest.raises(TypeError, match=r"y_true must hold class labels .* dtype float64"):
        metric(np.array([0.0, 1.0]), [0, 1])
    with pytest.raises(TypeError, match=r"y_pred\[1\] = 0.5 \(float\) is not a class label"):
        metric([0, 1], [1, 0.5])
    with pytest.raises(ValueError, match=r"y_true must be 1-D \(one label per example\), got shape \(2, 2\)"):
        metric(torch.tensor([[0, 1], [1, 0]]), [0, 1])
    with pytest.raises(TypeError, match="labels must be all ints or all strings, not a mix"):
        metric([0, 1], ["0", "1"])
    with pytest.raises(TypeError, match="y_true must be a list, a 1-D NumPy array or a 1-D tensor"):
        metric("0110", [0, 1, 1, 0])  # a str is a sequence of characters, not of labels


def test_precision_recall_f1_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"average must be one of \('binary', .*None\), got 'samples'"):
        precision_recall_f1([0, 1], [0, 1], average="samples")
    with pytest.raises(ValueError, match=r"average='binary' needs at most two classes, .* hold 3: \[0, 1, 2\]"):
        f1_score([0, 1, 2], [0, 1, 1])  # the default average is "binary"
    with pytest.raises(ValueError, match=r"pos_label=2 is not one of the two classes \[0, 1\]"):
        precision([0, 1], [1, 1], pos_label=2)
    with pytest.raises(ValueError, match=r"pos_label=1 is not one of the two classes \['neg', 'pos'\]"):
        recall(["neg", "pos"], ["pos", "pos"])  # string labels need pos_label="pos"
    with pytest.raises(TypeError, match="labels must be all ints or all strings"):
        recall(["pos", "pos"], ["pos", "pos"])  # one string class: pos_label=1 cannot be one of its labels
    with pytest.raises(ValueError, match="labels= is not used with average='binary'"):
        precision_recall_f1([0, 1], [0, 1], labels=[1])
    with pytest.raises(ValueError, match=r"pos_label=0 is only used with average='binary', not average='macro'"):
        precision_recall_f1([0, 1], [0, 1], average="macro", pos_label=0)
    with pytest.raises(ValueError, match="labels must name at least one class"):
        precision_recall_f1([0, 1], [0, 1], average=None, labels=[])
    with pytest.raises(ValueError, match=r"labels must not repeat a class, got \[1\] more than once in \[1, 0, 1\]"):
        precision_recall_f1([0, 1], [0, 1], average="micro", labels=[1, 0, 1])
    with pytest.raises(TypeError, match=r"labels must be all ints or all strings, not a mix \(.*labels: \['str'\]"):
        precision_recall_f1([0, 1], [0, 1], average="macro", labels=["1"])
    with pytest.raises(ValueError, match=r"zero_division must be 0.0, 1.0 or float\('nan'\), got 0.5"):
        precision_recall_f1([0, 1], [0, 1], zero_division=0.5)
    with pytest.raises(TypeError, match=r"zero_division must be 0.0, 1.0 or float\('nan'\), got str"):
        precision_recall_f1([0, 1], [0, 1], zero_division="warn")


def test_confusion_matrix_labels_errors():
    with pytest.raises(ValueError, match="labels must name at least one class"):
        confusion_matrix([0, 1], [0, 1], labels=[])
    with pytest.raises(ValueError, match=r"none of labels=\[2, 3\] occurs in y_true: at least one must"):
        confusion_matrix([0, 1], [2, 3], labels=[2, 3])
    with pytest.raises(ValueError, match=r"labels must not repeat a class, got \[0\]"):
        confusion_matrix([0, 1], [0, 1], labels=[0, 0, 1])


# --------------------------------------------------------------------------------- SQuAD v1.1, by hand
# The official definition (evaluate-v1.1.py): normalise = lower-case -> delete ASCII punctuation -> replace the
# whole words a/an/the by a space -> collapse white space. EM: normalised strings equal. F1: on the normalised
# tokens, common = multiset intersection, P = common/|pred|, R = common/|truth|, F1 = 2PR/(P+R), 0 if common = 0.
# Both take the max over the ground truths; the corpus scores are means × 100.


@pytest.mark.parametrize(
    ("answer", "normalized"),
    [
        ("The  Quick, brown FOX!", "quick brown fox"),  # case, punctuation, the article, double space
        ("an apple a day", "apple day"),  # " apple   day" once the articles are spaces
        ("Anna and the  answer", "anna and answer"),  # whole words only: not the "an" in "anna" or "answer"
        ("theater", "theater"),
        ("A.B.C.", "abc"),  # punctuation goes first: "abc" has no article left (the other order gives "bc")
        ("don't  stop\tthe\nmusic ", "dont stop music"),
        ("“Hi” — there", "“hi” — there"),  # non-ASCII punctuation is not in string.punctuation: kept
        ("The.", ""),
    ],
)
def test_normalize_answer_follows_squad_v1_1(answer, normalized):
    assert normalize_answer(answer) == normalized


def test_squad_exact_match_compares_normalized_answers():
    assert squad_exact_match("the Eiffel Tower.", ["Eiffel Tower"]) == 1.0  # "eiffel tower" == "eiffel tower"
    assert squad_exact_match("Eiffel", ["Eiffel Tower"]) == 0.0  # a part is not a match
    assert squad_exact_match("Eiffel", ["Eiffel Tower", "eiffel!"]) == 1.0  # any ground truth will do
    assert squad_exact_match("EIFFEL TOWER", "eiffel tower") == 1.0  # one answer as a plain str
    assert squad_exact_match("", ["Eiffel Tower"]) == 0.0
    assert squad_exact_match("", ["the"]) == 1.0  # "" == "" after normalisation


def test_squad_f1_on_partial_overlaps():
    # pred "the big red barn" -> [big, red, barn]; truth "a red barn near the river" -> [red, barn, near, river]
    # common = {red, barn} = 2: P = 2/3, R = 2/4, F1 = 2·(2/3)(1/2) / (2/3 + 1/2) = (2/3)/(7/6) = 4/7
    assert squad_f1("the big red barn", "a red barn near the river") == pytest.approx(4 / 7, abs=1e-15)
    # Repeated tokens count min(times in each): pred [new, york, new, york], truth [new, york]
    # common = 1 new + 1 york = 2: P = 2/4, R = 2/2, F1 = 2·(1/2)(1) / (3/2) = 2/3
    # (counting the prediction's tokens found in the truth would give 4: P = 1, F1 = 1)
    assert squad_f1("New York New York", ["New York"]) == pytest.approx(2 / 3, abs=1e-15)
    # pred [new, york, new, york], truth [new, york, new, york, city]: common = 2 new + 2 york = 4
    # P = 4/4, R = 4/5, F1 = 2·(4/5) / (9/5) = 8/9 (a set intersection would give 2: P = 1/2, R = 2/5, F1 = 4/9)
    assert squad_f1("New York New York", ["New York, New York City"]) == pytest.approx(8 / 9, abs=1e-15)
    assert squad_f1("Paris", ["London"]) == 0.0  # no common token
    assert squad_f1("the red barn", "Red barn!") == 1.0  # equal once normalised


def test_squad_f1_takes_the_best_ground_truth():
    # pred [denver, broncos, team]
    # vs [broncos]: common 1, P = 1/3, R = 1, F1 = 2·(1/3)·1 / (4/3) = 1/2
    # vs [carolina, panthers]: 0
    # vs [denver, broncos]: common 2, P = 2/3, R = 1, F1 = 2·(2/3)·1 / (5/3) = 4/5  <- the max, the last answer
    truths = ["Broncos", "Carolina Panthers", "the Denver Broncos"]
    assert squad_f1("the Denver Broncos team", truths) == pytest.approx(4 / 5, abs=1e-15)
    assert squad_f1("the Denver Broncos team", truths[:1]) == pytest.approx(1 / 2, abs=1e-15)
    assert squad_exact_match("the Denver Broncos team", truths) == 0.0


def test_squad_f1_of_an_empty_prediction_is_zero():
    assert squad_f1("", ["Eiffel Tower"]) == 0.0
    assert squad_f1("The!", ["Eiffel Tower"]) == 0.0  # normalises to no token at all
    # v1.1: no common token -> 0, even when the ground truth is empty too (SQuAD v2.0 would score 1 here)
    assert squad_f1("", ["the"]) == 0.0


def test_squad_scores_are_percent_means_over_questions():
    predictions = ["Eiffel Tower", "the big red barn", "Paris"]
    references = [["the Eiffel Tower"], "a red barn near the river", ["London", "Paris, France"]]
    # EM: 1, 0, 0 -> 100 · 1/3
    # F1: 1; 4/7 (above); "paris" vs [london] 0, vs [paris, france]: P = 1, R = 1/2, F1 = 2/3 -> max 2/3
    # mean F1 = (21/21 + 12/21 + 14/21) / 3 = 47/63 -> 100 · 47/63 ≈ 74.60
    scores = squad_scores(predictions, references)
    assert scores == pytest.approx({"exact_match": 100 / 3, "f1": 100 * 47 / 63}, abs=1e-12)


def test_squad_errors():
    with pytest.raises(TypeError, match="an answer must be a str, got NoneType None"):
        squad_f1(None, ["x"])
    with pytest.raises(TypeError, match="an answer must be a str, got int 5"):
        squad_exact_match("5", ["five", 5])
    with pytest.raises(ValueError, match="ground_truths must hold at least one answer"):
        squad_f1("x", [])
    with pytest.raises(ValueError, match="got 2 predictions for 1 references"):
        squad_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="squad_scores needs at least one question"):
        squad_scores([], [])
    with pytest.raises(TypeError, match="one entry per question"):
        squad_scores("Paris", ["Paris"])
