"""T5 span corruption (objectives/span_corruption.py): inputs and targets reconstruct the original exactly, sentinels
in order and each used once, deterministic noise and span counts, the span-length and per-position noise
statistics against exact combinatorics (±5σ over many seeded draws), padding never inside a span nor in the
targets, and the errors a learner meets.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.objectives import (
    noise_counts,
    random_segmentation,
    random_spans_noise_mask,
    reconstruct,
    span_corrupt,
    span_corrupt_batch,
    t5_sentinel_ids,
)

SENTINELS = t5_sentinel_ids(1000, count=200)  # 999, 998, …, 800; ordinary tokens below 800
PAD = 0


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _runs(mask: list[bool]) -> list[tuple[int, int]]:
    """(start, length) of each maximal run of True."""
    runs, start = [], None
    for i, m in enumerate([*mask, False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


# ---- reconstruction and sentinels: properties ------------------------------------------------------------


@given(
    tokens=st.lists(st.integers(1, 799), min_size=2, max_size=198),
    density=st.floats(0.01, 0.99),
    mean_span=st.floats(1.0, 10.0),
    final_sentinel=st.booleans(),
    end_id=st.one_of(st.none(), st.just(1)),
    seed=st.integers(0, 2**31 - 1),
)
def test_inputs_and_targets_reconstruct_the_original_and_sentinels_come_in_order(
    tokens, density, mean_span, final_sentinel, end_id, seed
):
    kw = dict(sentinel_ids=SENTINELS, final_sentinel=final_sentinel, end_id=end_id)
    out = span_corrupt(tokens, generator=_gen(seed), noise_density=density, mean_span_length=mean_span, **kw)
    assert reconstruct(out.input_ids, out.target_ids, **kw) == tokens

    n_noise, n_spans = noise_counts(len(tokens), density, mean_span)
    noise = out.noise_mask.tolist()
    assert sum(noise) == n_noise and len(_runs(noise)) == n_spans
    # sentinels: the i-th span gets sentinel i, each used exactly once on each side, in order
    inputs, targets = out.input_ids.tolist(), out.target_ids.tolist()
    if end_id is not None:
        assert inputs[-1] == end_id and targets[-1] == end_id
        inputs, targets = inputs[:-1], targets[:-1]
    used = SENTINELS[:n_spans]
    assert [t for t in inputs if t in SENTINELS] == used
    assert [t for t in targets if t in SENTINELS] == used + ([SENTINELS[n_spans]] if final_sentinel else [])
    assert targets[0] == SENTINELS[0]
    # the kept tokens stay in the inputs in order, the dropped ones go to the targets in order
    assert [t for t in inputs if t not in SENTINELS] == [t for t, m in zip(tokens, noise) if not m]
    assert [t for t in targets if t not in SENTINELS] == [t for t, m in zip(tokens, noise) if m]


def test_reconstruct_rejects_targets_that_do_not_fit():
    out = span_corrupt(list(range(1, 41)), sentinel_ids=SENTINELS, generator=_gen(0))  # 6 noise tokens, 2 spans
    inputs, targets = out.input_ids.tolist(), out.target_ids.tolist()
    with pytest.raises(ValueError, match="out of order"):
        reconstruct(inputs, [SENTINELS[1], *targets[1:]], sentinel_ids=SENTINELS)
    with pytest.raises(ValueError, match="spans"):
        reconstruct([t for t in inputs if t != SENTINELS[1]], targets, sentinel_ids=SENTINELS)


def test_equal_generators_give_equal_corruptions_and_different_seeds_differ():
    tokens = list(range(1, 101))
    a = span_corrupt(tokens, sentinel_ids=SENTINELS, generator=_gen(7))
    b = span_corrupt(tokens, sentinel_ids=SENTINELS, generator=_gen(7))
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.target_ids, b.target_ids)
    masks = {
        tuple(span_corrupt(tokens, sentinel_ids=SENTINELS, generator=_gen(s)).noise_mask.tolist()) for s in range(20)
    }
    assert len(masks) > 15  # C(14,4)·C(84,4) layouts: 20 seeds almost never repeat


# ---- counts are deterministic --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 7, 10, 13, 20, 33, 50, 64, 100, 127, 250, 512])
def test_noise_count_is_round_n_times_density_at_every_draw(n):
    expected_noise = min(max(round(n * 0.15), 1), n - 1)
    expected_spans = min(max(round(expected_noise / 3), 1), expected_noise, n - expected_noise)
    assert noise_counts(n) == (expected_noise, expected_spans)
    g = _gen(n)
    for _ in range(30):
        noise = random_spans_noise_mask(n, generator=g).tolist()
        assert sum(noise) == expected_noise  # the fraction is round(n·0.15)/n exactly, not just on average
        assert len(_runs(noise)) == expected_spans
        assert not noise[0] and noise[-1]  # keep₀ noise₀ … noise_{k-1}: starts kept, ends in noise


def test_noise_counts_follow_the_t5_rounding():
    # round(n·d) with Python's half-to-even, at least 1; spans = round(noise / mean), at least 1
    assert noise_counts(10) == (2, 1)  # 1.5 -> 2
    assert noise_counts(30) == (4, 1)  # 4.5 -> 4 (half to even), 4/3 -> 1
    assert noise_counts(100) == (15, 5)
    assert noise_counts(512) == (77, 26)  # 76.8 -> 77, 25.67 -> 26
    assert noise_counts(4) == (1, 1)  # 0.6 -> 1
    assert noise_counts(2, 0.01) == (1, 1)  # at least one noise token
    assert noise_counts(10, 0.95, 1.0) == (9, 1)  # at most n-1 noise; spans ≤ kept tokens
    assert noise_counts(10, 0.5, 1.0) == (5, 5)


# ---- statistics against exact combinatorics -------------------------------------------------------------


def test_random_segmentation_is_a_composition_with_the_exact_part_length_distribution():
    # A uniformly random composition of N into k positive parts: part 1 has length l with probability
    # C(N-l-1, k-2) / C(N-1, k-1) (the other k-1 parts share N-l, one cut set each). Its mean is N/k.
    n_items, k, draws = 30, 10, 4000  # T5 at n = 200: 30 noise tokens in 10 spans, mean span length 3
    pmf = {l: math.comb(n_items - l - 1, k - 2) / math.comb(n_items - 1, k - 1) for l in range(1, n_items - k + 2)}
    assert math.isclose(sum(pmf.values()), 1.0, rel_tol=1e-12)
    mean = sum(l * p for l, p in pmf.items())
    var = sum((l - mean) ** 2 * p for l, p in pmf.items())
    assert math.isclose(mean, n_items / k, rel_tol=1e-12)

    g = _gen(0)
    parts = torch.stack([random_segmentation(n_items, k, g) for _ in range(draws)])  # (draws, k)
    assert (parts >= 1).all() and (parts.sum(dim=1) == n_items).all()
    for column in (0, k - 1):  # the first and the last span: every part has the same law
        lengths = parts[:, column].double()
        sigma = math.sqrt(var / draws)
        assert abs(lengths.mean().item() - mean) <= 5 * sigma, (column, lengths.mean().item(), mean, sigma)
        # the share of length-1 spans, a Bernoulli(pmf[1]) count
        share = (lengths == 1).double().mean().item()
        assert abs(share - pmf[1]) <= 5 * math.sqrt(pmf[1] * (1 - pmf[1]) / draws), (share, pmf[1])


def _exact_noise_rate_per_position(length: int, n_noise: int, n_spans: int) -> list[float]:
    """P(position i is noise), by enumerating every (noise composition, kept composition) pair — all equally likely."""

    def compositions(total: int, parts: int):
        for cuts in itertools.combinations(range(1, total), parts - 1):
            bounds = (0, *cuts, total)
            yield [b - a for a, b in zip(bounds, bounds[1:])]

    counts = [0] * length
    configurations = 0
    noise_parts = list(compositions(n_noise, n_spans))
    for keep in compositions(length - n_noise, n_spans):
        for noise in noise_parts:
            position = 0
            for kept, dropped in zip(keep, noise):
                position += kept
                for i in range(position, position + dropped):
                    counts[i] += 1
                position += dropped
            configurations += 1
    return [c / configurations for c in counts]


def test_noise_rate_per_position_matches_the_exact_combinatorics():
    # Statistic: how often each position is noise over many draws. The layout is keep₀ noise₀ … noise_{k-1} with
    # two independent uniform compositions, so every pair (kept parts, noise parts) is equally likely and the exact
    # per-position rate is a count over all C(50,2)·C(8,2) = 34,300 pairs (n = 60: 9 noise tokens, 3 spans).
    # Position 0 is never noise, the last positions always are (the final span has ≥ 1 token), and the rate
    # rises towards the end; each observed rate is a Binomial(draws, p_i)/draws, σ_i = sqrt(p_i(1-p_i)/draws).
    length, draws = 60, 20000
    n_noise, n_spans = noise_counts(length)
    assert (n_noise, n_spans) == (9, 3)
    exact = _exact_noise_rate_per_position(length, n_noise, n_spans)
    assert math.isclose(sum(exact), n_noise, rel_tol=1e-12)  # the rates add up to the deterministic count

    g = _gen(1)
    masks = torch.stack([random_spans_noise_mask(length, generator=g) for _ in range(draws)])  # (draws, n)
    observed = masks.double().mean(dim=0).tolist()
    worst = 0.0
    for i, (o, p) in enumerate(zip(observed, exact)):
        if p in (0.0, 1.0):
            assert o == p, (i, o, p)
            continue
        z = abs(o - p) / math.sqrt(p * (1 - p) / draws)
        worst = max(worst, z)
        assert z <= 5, (i, o, p, z)
    assert exact[0] == 0.0 and exact[-1] == 1.0 and worst > 0


# ---- padding --------------------------------------------------------------------------------------------


def test_batch_pads_inputs_and_targets_and_no_span_touches_a_pad():
    g = _gen(3)
    lengths = [5, 40, 2, 23, 64]
    ids = torch.full((len(lengths), 70), PAD, dtype=torch.long)  # (B, T), right-padded
    valid = torch.zeros(len(lengths), 70, dtype=torch.bool)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(1, 800, (n,), generator=g)
        valid[b, :n] = True
    ids[1, 10:15] = PAD  # padding in the middle of a row, marked by valid=False only
    valid[1, 10:15] = False
    out = span_corrupt_batch(ids, valid=valid, pad_id=PAD, sentinel_ids=SENTINELS, generator=_gen(4), end_id=1)

    assert out.labels.dtype == torch.long and out.input_ids.dtype == torch.long
    assert torch.equal(out.labels == -100, ~out.label_valid)  # -100 exactly at target padding
    assert (out.input_ids[~out.input_valid] == PAD).all()
    for b in range(len(lengths)):
        real = ids[b][valid[b]].tolist()
        inputs = out.input_ids[b][out.input_valid[b]].tolist()
        targets = out.labels[b][out.label_valid[b]].tolist()
        assert PAD not in inputs and PAD not in targets  # pads are never in a span nor in the targets
        assert reconstruct(inputs, targets, sentinel_ids=SENTINELS, end_id=1) == real
        # real tokens of the row are a prefix of the padded inputs: padding only after them
        assert out.input_valid[b].tolist() == sorted(out.input_valid[b].tolist(), reverse=True)

    ragged = [ids[b][valid[b]].tolist() for b in range(len(lengths))]
    again = span_corrupt_batch(ragged, pad_id=PAD, sentinel_ids=SENTINELS, generator=_gen(4), end_id=1)
    assert torch.equal(again.input_ids, out.input_ids) and torch.equal(again.labels, out.labels)


# ---- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("density", [0, 0.0, 1, 1.0, 1.5, -0.1, True, "0.15"])
def test_bad_noise_density_is_rejected(density):
    with pytest.raises(ValueError, match="noise_density"):
        span_corrupt(list(range(1, 50)), sentinel_ids=SENTINELS, generator=_gen(0), noise_density=density)


@pytest.mark.parametrize("mean_span", [0, 0.5, -3, True])
def test_mean_span_below_one_is_rejected(mean_span):
    with pytest.raises(ValueError, match="mean_span_length"):
        span_corrupt(list(range(1, 50)), sentinel_ids=SENTINELS, generator=_gen(0), mean_span_length=mean_span)


def test_too_few_sentinels_too_short_sequences_and_other_mistakes_are_rejected():
    tokens = list(range(1, 101))  # 15 noise tokens in 5 spans
    with pytest.raises(ValueError, match="5 sentinels are needed, got 4"):
        span_corrupt(tokens, sentinel_ids=SENTINELS[:4], generator=_gen(0))
    with pytest.raises(ValueError, match="6 sentinels are needed, got 5"):
        span_corrupt(tokens, sentinel_ids=SENTINELS[:5], generator=_gen(0), final_sentinel=True)
    span_corrupt(tokens, sentinel_ids=SENTINELS[:5], generator=_gen(0))  # exactly enough is fine
    for short in ([], [5]):
        with pytest.raises(ValueError, match="at least 2 real tokens"):
            span_corrupt(short, sentinel_ids=SENTINELS, generator=_gen(0))
    with pytest.raises(ValueError, match="contain sentinel ids"):
        span_corrupt([1, 2, SENTINELS[3], 4], sentinel_ids=SENTINELS, generator=_gen(0))
    with pytest.raises(ValueError, match="distinct"):
        span_corrupt(tokens, sentinel_ids=[999, 999, 998, 997, 996, 995], generator=_gen(0))
    with pytest.raises(TypeError, match="generator"):
        span_corrupt(tokens, sentinel_ids=SENTINELS, generator=0)
    with pytest.raises(TypeError, match="tokens"):
        span_corrupt(torch.rand(10), sentinel_ids=SENTINELS, generator=_gen(0))
    with pytest.raises(ValueError, match="pad_id"):
        span_corrupt_batch([tokens], pad_id=SENTINELS[0], sentinel_ids=SENTINELS, generator=_gen(0))
    with pytest.raises(ValueError, match="pad_id=1"):
        span_corrupt_batch([tokens], pad_id=1, sentinel_ids=SENTINELS, generator=_gen(0))
    with pytest.raises(ValueError, match="valid must be a bool tensor"):
        span_corrupt_batch(
            torch.ones(2, 5, dtype=torch.long), valid=torch.ones(2, 4, dtype=torch.bool), pad_id=PAD,
            sentinel_ids=SENTINELS, generator=_gen(0),
        )  # fmt: skip
    with pytest.raises(ValueError, match="count"):
        t5_sentinel_ids(10, count=11)
    assert t5_sentinel_ids(32100, count=3) == [32099, 32098, 32097]
