"""Metrics: exact match of whole sequences and token accuracy, on hand-made cases and against plain loops."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.metrics import exact_match, token_accuracy

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
