"""Permuted language modelling (objectives/plm.py): the statistics of factorization orders and targets.

Random draws are checked against their exact distributions with ±5σ bounds on a seeded generator (DESIGN.md §3):
a bound of 5σ fails by chance about once in 1.7 million runs, so a failure means a wrong distribution.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from transformer_from_scratch.objectives import (
    permutation_masks,
    permute_batch,
    ranks_from_order,
    sample_factorization_order,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _within_5_sigma(count: float, n: int, p: float) -> bool:
    """A Binomial(n, p) count lies within 5 standard deviations of its mean."""
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p))


def test_every_order_of_four_tokens_is_equally_likely():
    n_rows, t = 48_000, 4
    valid = torch.ones(n_rows, t, dtype=torch.bool)
    order = sample_factorization_order(valid, _generator(1))
    counts = {perm: 0 for perm in itertools.permutations(range(t))}
    for row in order.tolist():
        counts[tuple(row)] += 1
    assert sum(counts.values()) == n_rows  # every row is a permutation of 0..3
    p = 1 / math.factorial(t)
    bad = {perm: c for perm, c in counts.items() if not _within_5_sigma(c, n_rows, p)}
    assert not bad, f"orders outside ±5σ of {n_rows * p:.0f}: {bad}"
    # chi-square with 23 degrees of freedom: mean 23, sd √46 ≈ 6.8; 23 + 5·6.8 ≈ 57
    chi2 = sum((c - n_rows * p) ** 2 / (n_rows * p) for c in counts.values())
    assert chi2 < 57, chi2


def test_padding_comes_last_in_every_order_and_real_orders_stay_uniform():
    n_rows = 24_000
    valid = torch.tensor([True, True, True, False, False]).expand(n_rows, 5)
    order = sample_factorization_order(valid, _generator(2))
    assert torch.equal(order[:, 3:], torch.tensor([3, 4]).expand(n_rows, 2))  # pads after the reals, in order
    counts = {perm: 0 for perm in itertools.permutations(range(3))}
    for row in order[:, :3].tolist():
        counts[tuple(row)] += 1
    assert all(_within_5_sigma(c, n_rows, 1 / 6) for c in counts.values()), counts


def test_ranks_invert_the_order():
    order = sample_factorization_order(torch.ones(50, 9, dtype=torch.bool), _generator(3))
    rank = ranks_from_order(order)
    assert torch.equal(order.gather(1, rank), torch.arange(9).expand(50, 9))  # order[rank[i]] = i
    assert torch.equal(rank.gather(1, order), torch.arange(9).expand(50, 9))  # rank[order[k]] = k


def test_masks_follow_the_order_literally():
    rank = torch.tensor([[3, 1, 4, 0, 2]])  # the module docstring's example: order (3, 1, 4, 0, 2)
    valid = torch.ones(1, 5, dtype=torch.bool)
    content, query = permutation_masks(rank, valid)
    for i in range(5):
        for j in range(5):
            assert content[0, i, j] == (rank[0, j] <= rank[0, i])
            assert query[0, i, j] == (rank[0, j] < rank[0, i])
    assert query[0, 2].tolist() == [True, True, False, True, True]  # position 2 (last) sees all but itself
    assert not query[0, 3].any()  # position 3 is produced first: it sees nothing
    assert torch.equal(content, query | torch.eye(5, dtype=torch.bool))  # content = query + the token itself


@pytest.mark.parametrize("n", [7, 10, 13, 20])
def test_the_predicted_fraction_is_one_in_k_on_average(n):
    n_rows, k = 20_000, 6
    batch = permute_batch(torch.zeros(n_rows, n, dtype=torch.long), k=k, generator=_generator(n))
    counts = batch.targets.sum(dim=1).double()
    # the count is ⌊n/k⌋ or ⌊n/k⌋ + 1, the latter with probability n/k − ⌊n/k⌋
    low, frac = n // k, n / k - n // k
    assert set(counts.long().tolist()) <= {low, low + 1}
    assert _within_5_sigma(float((counts - low).sum()), n_rows, frac), (counts.mean().item(), n / k)
    # A deterministic rounding (round(n/k) every time) would give a mean count of round(n/k): for n = 10 that
    # is 2, i.e. 1/5 of the tokens; the draw above keeps it at 10/6 = 1.67.


def test_targets_are_the_last_tokens_of_the_order_and_every_position_is_equally_likely():
    n_rows, t, k = 30_000, 12, 6  # exactly 2 targets per row
    batch = permute_batch(torch.zeros(n_rows, t, dtype=torch.long), k=k, generator=_generator(5))
    assert torch.equal(batch.targets.sum(1), torch.full((n_rows,), 2))
    assert torch.equal(batch.targets, batch.rank >= t - 2)  # the last two steps of the order
    per_position = batch.targets.sum(0)
    assert all(_within_5_sigma(int(c), n_rows, 2 / t) for c in per_position), per_position


def test_padding_is_never_predicted_nor_attended_to():
    g = _generator(6)
    n_rows, t = 2_000, 10
    lengths = torch.randint(1, t + 1, (n_rows,), generator=g)
    valid = torch.arange(t) < lengths[:, None]
    ids = torch.randint(5, 50, (n_rows, t), generator=g).masked_fill(~valid, 0)
    batch = permute_batch(ids, valid, k=3, generator=g)
    assert not (batch.targets & ~valid).any()
    assert not batch.content_allowed.masked_select(~valid[:, None, :].expand(-1, t, -1)).any()
    assert not batch.query_allowed.masked_select(~valid[:, None, :].expand(-1, t, -1)).any()
    assert torch.equal(batch.targets.sum(1) >= 1, lengths >= 1)  # every row has at least one target
    # labels are the tokens at the mapped positions; empty slots are ignore_index
    positions = batch.target_mapping.long().argmax(-1)
    filled = batch.target_mapping.any(-1)
    assert torch.equal(batch.labels[filled], ids.gather(1, positions)[filled])
    assert (batch.labels[~filled] == -100).all()


def test_special_tokens_are_context_but_never_targets():
    n_rows, t = 5_000, 8
    special = torch.zeros(n_rows, t, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True  # [CLS] … [SEP]
    batch = permute_batch(torch.zeros(n_rows, t, dtype=torch.long), k=1, special_mask=special, generator=_generator(7))
    assert not (batch.targets & special).any()
    assert torch.equal(batch.targets, ~special)  # k = 1: every eligible token is predicted
    assert batch.content_allowed[:, :, 0].sum() > 0  # the specials are still seen


def test_a_seeded_generator_reproduces_the_batch_and_a_different_seed_does_not():
    ids = torch.arange(40).view(4, 10)
    a = permute_batch(ids, generator=_generator(8))
    b = permute_batch(ids, generator=_generator(8))
    c = permute_batch(ids, generator=_generator(9))
    assert torch.equal(a.order, b.order) and torch.equal(a.target_mapping, b.target_mapping)
    assert not torch.equal(a.order, c.order)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0.5}, ValueError, "k must be a number ≥ 1"),
        ({"k": True}, ValueError, "k must be"),
        ({"valid": torch.ones(2, 5)}, TypeError, "valid must be a bool tensor"),
        ({"valid": torch.ones(2, 4, dtype=torch.bool)}, ValueError, "valid must have the shape"),
        ({"special_mask": torch.ones(2, 5, dtype=torch.long)}, TypeError, "special_mask must be a bool tensor"),
        ({"generator": 3}, TypeError, "generator must be a torch.Generator"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        permute_batch(torch.zeros(2, 5, dtype=torch.long), **kwargs)
