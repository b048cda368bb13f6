"""Masked language modelling corruption: the 15% rate, the 80/10/10 split, what may never be selected, labels,
random replacements, whole-word masking — with ±5σ binomial bounds on seeded generators.

A count K of n independent trials with probability p has mean np and standard deviation σ = √(np(1-p)); every
statistical assertion here is |K - np| ≤ 5σ, which a correct implementation fails with probability ≈ 6e-7 (and
the generators are seeded, so the outcome never changes between runs). Sample sizes are chosen so that a skew of
one percentage point lies far outside the bound: ``test_split_check_rejects_known_bugs`` shows it does.
"""

from __future__ import annotations

import math
from functools import cache

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.objectives import MaskedBatch, mask_tokens, replacement_ids, word_ids_from_tokens

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = (PAD, CLS, SEP)  # MASK is always special; UNK stays an ordinary token here
SIGMAS = 5.0


def z_score(count: int, n: int, p: float) -> float:
    """How many binomial standard deviations the count lies from its mean n·p."""
    sd = math.sqrt(n * p * (1.0 - p))
    if sd == 0.0:
        return 0.0 if count == n * p else math.inf
    return (count - n * p) / sd


def assert_binomial(count: int, n: int, p: float, what: str) -> None:
    z = z_score(count, n, p)
    assert abs(z) <= SIGMAS, f"{what}: {count}/{n} = {count / n:.5f}, expected p = {p:.5f} (z = {z:+.2f})"


@cache
def corpus(batch: int = 1000, length: int = 300, vocab_size: int = 12, seed: int = 0):
    """A padded batch: [CLS] tokens … [SEP] [PAD] …, random stray specials, [MASK]s and garbage after the end.

    Returns (input_ids (B, T), valid (B, T), special_mask (B, T), vocab_size).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch, length), generator=g)  # every id appears, specials included
    lengths = torch.randint(length // 4, length + 1, (batch,), generator=g)  # (B,)
    positions = torch.arange(length)[None, :]  # (1, T)
    valid = positions < lengths[:, None]  # (B, T)
    ids[:, 0] = CLS
    ids[torch.arange(batch), lengths - 1] = SEP
    # behind the end: mostly [PAD], but some ordinary ids too, so only `valid` can keep them out
    behind = ~valid & (torch.rand(batch, length, generator=g) < 0.7)
    ids[behind] = PAD
    special_mask = torch.rand(batch, length, generator=g) < 0.05  # e.g. "never mask these" positions
    return ids, valid, special_mask, vocab_size


def eligible_positions(ids, valid, special_mask):
    return valid & ~special_mask & ~torch.isin(ids, torch.tensor([*SPECIAL, MASK]))


def run(ids, valid, special_mask, vocab_size, seed=1, **kwargs) -> MaskedBatch:
    return mask_tokens(
        ids,
        mask_id=MASK,
        vocab_size=vocab_size,
        special_ids=SPECIAL,
        special_mask=special_mask,
        valid=valid,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


# ------------------------------------------------------------------------------------------ selection


@pytest.mark.parametrize("p", [0.15, 0.4])
def test_selection_rate_is_p_among_eligible_tokens(p):
    ids, valid, special_mask, v = corpus()
    out = run(ids, valid, special_mask, v, mlm_probability=p)
    eligible = eligible_positions(ids, valid, special_mask)
    n = int(eligible.sum())
    assert n > 100_000
    assert_binomial(int((out.selected & eligible).sum()), n, p, "selected among eligible")


@pytest.mark.parametrize("seed", range(3))
def test_special_tokens_padding_and_special_mask_are_never_selected(seed):
    """Exhaustive: with p = 1 the selection is *exactly* the eligible set; with p = 0.5 it stays inside it."""
    ids, valid, special_mask, v = corpus()
    eligible = eligible_positions(ids, valid, special_mask)
    out = run(ids, valid, special_mask, v, seed=seed, mlm_probability=1.0)
    assert torch.equal(out.selected, eligible)
    out = run(ids, valid, special_mask, v, seed=seed, mlm_probability=0.5)
    assert not (out.selected & ~eligible).any()
    assert torch.equal(out.input_ids[~eligible], ids[~eligible])  # untouched, including garbage behind the end
    for special in (*SPECIAL, MASK):
        assert not out.selected[ids == special].any(), f"special id {special} was selected"


def test_special_ids_alone_keep_padding_out_without_valid():
    ids, _, _, v = corpus()
    g = torch.Generator().manual_seed(3)
    out = mask_tokens(ids, mask_id=MASK, vocab_size=v, special_ids=SPECIAL, mlm_probability=1.0, generator=g)
    assert torch.equal(out.selected, ~torch.isin(ids, torch.tensor([*SPECIAL, MASK])))


def test_labels_are_the_original_ids_at_selected_positions_and_ignore_index_elsewhere():
    ids, valid, special_mask, v = corpus()
    for ignore_index in (-100, -1):
        out = run(ids, valid, special_mask, v, ignore_index=ignore_index)
        sel = out.selected
        assert 0.1 < sel.sum() / eligible_positions(ids, valid, special_mask).sum() < 0.2
        assert torch.equal(out.labels[sel], ids[sel])
        assert (out.labels[~sel] == ignore_index).all()
        assert torch.equal(out.input_ids[~sel], ids[~sel])  # unselected positions are never corrupted
        assert out.input_ids.dtype == out.labels.dtype == torch.long


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32])
def test_any_integer_dtype_gives_long_ids_and_labels(dtype):
    ids, valid, special_mask, v = corpus(batch=64, length=50)
    out = run(ids.to(dtype), valid, special_mask, v)
    ref = run(ids, valid, special_mask, v)
    assert out.input_ids.dtype == out.labels.dtype == torch.long
    assert torch.equal(out.input_ids, ref.input_ids) and torch.equal(out.labels, ref.labels)


# ------------------------------------------------------------------------------------------ 80/10/10


def split_z_scores(original, corrupted, selected, *, pool_size, mask_fraction=0.8, random_fraction=0.1):
    """z-scores of the three observable outcomes among the selected tokens.

    The random branch draws uniformly from ``pool_size`` ids, one of which is the original token, so a random
    replacement leaves the token unchanged with probability 1/pool_size:
        P([MASK]) = mask_fraction
        P(unchanged) = keep_fraction + random_fraction / pool_size
        P(another token) = random_fraction · (1 - 1/pool_size)
    """
    n = int(selected.sum())
    masked = int(((corrupted == MASK) & selected).sum())
    unchanged = int(((corrupted == original) & selected).sum())
    replaced = n - masked - unchanged
    keep_fraction = 1.0 - mask_fraction - random_fraction
    return {
        "[MASK]": z_score(masked, n, mask_fraction),
        "unchanged": z_score(unchanged, n, keep_fraction + random_fraction / pool_size),
        "replaced": z_score(replaced, n, random_fraction * (1.0 - 1.0 / pool_size)),
    }


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.5, 0.3), (0.6, 0.0)])
def test_selected_tokens_split_80_10_10(fractions):
    mask_fraction, random_fraction = fractions
    ids, valid, special_mask, v = corpus(batch=2000, length=400)
    out = run(ids, valid, special_mask, v, mlm_probability=0.5, mask_fraction=mask_fraction,
              random_fraction=random_fraction)  # fmt: skip
    n = int(out.selected.sum())
    assert n > 100_000
    pool = replacement_ids(v, SPECIAL, MASK).numel()
    z = split_z_scores(ids, out.input_ids, out.selected, pool_size=pool, mask_fraction=mask_fraction,
                       random_fraction=random_fraction)  # fmt: skip
    assert all(abs(x) <= SIGMAS for x in z.values()), z


def _buggy_naive_second_draw(ids, selected, vocab_size, g):
    """0.8, then bernoulli(0.1) of the rest: the random branch gets 0.2 · 0.1 = 2% (80/2/18)."""
    out = ids.clone()
    masked = selected & (torch.rand(ids.shape, generator=g) < 0.8)
    random = selected & ~masked & (torch.rand(ids.shape, generator=g) < 0.1)
    out[masked] = MASK
    pool = replacement_ids(vocab_size, SPECIAL, MASK)
    out[random] = pool[torch.randint(0, pool.numel(), ids.shape, generator=g)][random]
    return out


def _buggy_independent_overwrite(ids, selected, vocab_size, g):
    """Two independent Bernoullis, random written over mask: 72% [MASK], 10% random, 18% unchanged."""
    out = ids.clone()
    masked = selected & (torch.rand(ids.shape, generator=g) < 0.8)
    random = selected & (torch.rand(ids.shape, generator=g) < 0.1)
    out[masked] = MASK
    pool = replacement_ids(vocab_size, SPECIAL, MASK)
    out[random] = pool[torch.randint(0, pool.numel(), ids.shape, generator=g)][random]
    return out


def _buggy_whole_vocabulary(ids, selected, vocab_size, g):
    """Correct 80/10/10 thresholds, but "random" ids from the whole vocabulary, [MASK] included: with V = 12 the
    [MASK] rate becomes 0.8 + 0.1/12 ≈ 81% — a one-point skew."""
    out = ids.clone()
    u = torch.rand(ids.shape, generator=g)
    random_ids = torch.randint(0, vocab_size, ids.shape, generator=g)
    out[selected & (u < 0.8)] = MASK
    random = selected & (u >= 0.8) & (u < 0.9)
    out[random] = random_ids[random]
    return out


def _buggy_81_10_9(ids, selected, vocab_size, g):
    """Off-by-one-point thresholds: 81% [MASK], 10% random, 9% unchanged."""
    out = ids.clone()
    u = torch.rand(ids.shape, generator=g)
    out[selected & (u < 0.81)] = MASK
    random = selected & (u >= 0.81) & (u < 0.91)
    pool = replacement_ids(vocab_size, SPECIAL, MASK)
    out[random] = pool[torch.randint(0, pool.numel(), ids.shape, generator=g)][random]
    return out


@pytest.mark.parametrize(
    "bug", [_buggy_naive_second_draw, _buggy_independent_overwrite, _buggy_whole_vocabulary, _buggy_81_10_9]
)
def test_split_check_rejects_known_bugs(bug):
    """The power of the 80/10/10 test: each buggy variant, run on the same selection, falls outside ±5σ."""
    ids, valid, special_mask, v = corpus(batch=2000, length=400)
    ours = run(ids, valid, special_mask, v, mlm_probability=0.5)
    pool = replacement_ids(v, SPECIAL, MASK).numel()
    z_ours = split_z_scores(ids, ours.input_ids, ours.selected, pool_size=pool)
    assert all(abs(x) <= SIGMAS for x in z_ours.values()), z_ours
    corrupted = bug(ids, ours.selected, v, torch.Generator().manual_seed(7))
    z_bug = split_z_scores(ids, corrupted, ours.selected, pool_size=pool)
    assert max(abs(x) for x in z_bug.values()) > SIGMAS, f"{bug.__name__} was not detected: {z_bug}"


def test_random_replacements_are_uniform_over_non_special_ids():
    """Per replacement id x: among selected tokens whose original is not x, x appears with probability
    random_fraction / pool_size (±5σ each). Special ids, [MASK] aside, never appear as replacements."""
    ids, valid, special_mask, v = corpus()
    out = run(ids, valid, special_mask, v, mlm_probability=0.6, mask_fraction=0.2, random_fraction=0.7)
    sel = out.selected
    replaced = sel & (out.input_ids != MASK) & (out.input_ids != ids)
    pool = replacement_ids(v, SPECIAL, MASK)
    assert sorted(pool.tolist()) == [UNK, *range(5, v)]
    assert torch.isin(out.input_ids[replaced], pool).all(), "a random replacement was a special id"
    n_sel = int(sel.sum())
    for x in pool.tolist():
        trials = n_sel - int((ids[sel] == x).sum())  # replacing x by x is invisible
        assert_binomial(int((out.input_ids[replaced] == x).sum()), trials, 0.7 / pool.numel(), f"replacement {x}")


def test_unchanged_branch_leaves_the_token_as_it_was():
    """With mask_fraction = random_fraction = 0 every selected token is labelled but left exactly as it was."""
    ids, valid, special_mask, v = corpus()
    out = run(ids, valid, special_mask, v, mlm_probability=0.5, mask_fraction=0.0, random_fraction=0.0)
    assert out.selected.sum() > 50_000
    assert torch.equal(out.input_ids, ids)
    assert torch.equal(out.labels[out.selected], ids[out.selected])


def test_same_generator_same_batch_and_another_seed_another_batch():
    ids, valid, special_mask, v = corpus(batch=64, length=50)
    a, b = run(ids, valid, special_mask, v, seed=5), run(ids, valid, special_mask, v, seed=5)
    c = run(ids, valid, special_mask, v, seed=6)
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)


@given(
    batch=st.integers(1, 4),
    length=st.integers(1, 30),
    vocab_size=st.integers(6, 40),
    p=st.sampled_from([0.0, 0.15, 0.5, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_corruption_invariants(batch, length, vocab_size, p, seed):
    """Any batch: ineligible positions untouched and unlabelled; a selected position is [MASK], itself or an
    allowed replacement, labelled with its original id; p = 1 selects every eligible token, p = 0 none."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch, length), generator=g)
    valid = torch.rand(batch, length, generator=g) < 0.8
    out = mask_tokens(ids, mask_id=MASK, vocab_size=vocab_size, special_ids=SPECIAL, valid=valid,
                      mlm_probability=p, generator=g)  # fmt: skip
    eligible = valid & ~torch.isin(ids, torch.tensor([*SPECIAL, MASK]))
    sel = out.selected
    assert not (sel & ~eligible).any()
    if p == 1.0:
        assert torch.equal(sel, eligible)
    if p == 0.0:
        assert not sel.any()
    assert torch.equal(out.input_ids[~sel], ids[~sel])
    assert torch.equal(out.labels[sel], ids[sel])
    allowed = torch.cat([replacement_ids(vocab_size, SPECIAL, MASK), torch.tensor([MASK])])
    assert torch.isin(out.input_ids[sel], allowed).all()


# ------------------------------------------------------------------------------------------ whole words


def test_word_ids_from_tokens_follows_the_double_hash_convention():
    tokens = ["[CLS]", "the", "play", "##ing", "##s", "end", "[SEP]", "##x", "a", "[PAD]"]
    assert word_ids_from_tokens(tokens, special_tokens={"[CLS]", "[SEP]", "[PAD]"}) == [
        -1, 0, 1, 1, 1, 2, -1, 3, 4, -1,
    ]  # fmt: skip
    assert word_ids_from_tokens(["##a", "##b", "c", "##d"]) == [0, 0, 1, 1]  # a leading piece starts a word
    assert word_ids_from_tokens(["un", "@@aff", "@@able"], continuation_prefix="@@") == [0, 0, 0]
    with pytest.raises(TypeError, match="tokens"):
        word_ids_from_tokens("the cat")


@cache
def word_corpus(batch=600, length=120, vocab_size=40, seed=0):
    """Rows of words with 1–4 pieces: [CLS] w w w … [SEP] [PAD] …; word ids -1 at specials and padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((batch, length), PAD)
    word_ids = torch.full((batch, length), -1)
    for b in range(batch):
        end = int(torch.randint(length // 2, length, (), generator=g))
        ids[b, 0], t, w = CLS, 1, 0
        while t < end - 1:
            pieces = min(int(torch.randint(1, 5, (), generator=g)), end - 1 - t)
            ids[b, t : t + pieces] = torch.randint(5, vocab_size, (pieces,), generator=g)
            word_ids[b, t : t + pieces] = w
            t, w = t + pieces, w + 1
        ids[b, t] = SEP
    return ids, word_ids, vocab_size


def test_whole_word_masking_never_splits_a_word_and_selects_words_at_rate_p():
    ids, word_ids, v = word_corpus()
    out = mask_tokens(ids, mask_id=MASK, vocab_size=v, special_ids=SPECIAL, word_ids=word_ids, mlm_probability=0.3,
                      generator=torch.Generator().manual_seed(2))  # fmt: skip
    sel = out.selected
    assert not sel[word_ids < 0].any()
    same_word = (word_ids[:, 1:] == word_ids[:, :-1]) & (word_ids[:, 1:] >= 0)  # (B, T-1) adjacent pieces
    assert torch.equal(sel[:, 1:][same_word], sel[:, :-1][same_word]), "a word was split"
    starts = (word_ids >= 0) & ~torch.cat([torch.zeros(ids.shape[0], 1, dtype=torch.bool), same_word], dim=1)
    n_words = int(starts.sum())
    assert n_words > 20_000
    assert_binomial(int(sel[starts].sum()), n_words, 0.3, "selected words")
    # the token rate is still p on average: E[selected tokens] = p·Σ|w|, Var = p(1-p)·Σ|w|² over words w
    key = torch.arange(ids.shape[0])[:, None] * ids.shape[1] + word_ids  # (B, T) one key per (row, word)
    _, sizes = torch.unique(key[word_ids >= 0], return_counts=True)  # (n_words,) pieces per word
    z = (int(sel.sum()) - 0.3 * int(sizes.sum())) / math.sqrt(0.3 * 0.7 * int((sizes**2).sum()))
    assert abs(z) <= SIGMAS, f"token rate z = {z:+.2f}"
    # the 80/10/10 branch is drawn per token: the first two pieces of a selected word are both [MASK] with
    # probability 0.8² = 0.64 (a per-word branch would give 0.8)
    two = starts[:, :-1] & same_word & sel[:, :-1]  # (B, T-1) first piece of a selected multi-piece word
    both = (out.input_ids[:, :-1] == MASK) & (out.input_ids[:, 1:] == MASK)
    assert_binomial(int((both & two).sum()), int(two.sum()), 0.64, "both pieces [MASK]")


def test_without_word_ids_pieces_are_selected_independently():
    """Control for the test above: token-level selection does split words."""
    ids, word_ids, v = word_corpus()
    out = mask_tokens(ids, mask_id=MASK, vocab_size=v, special_ids=SPECIAL, mlm_probability=0.3,
                      generator=torch.Generator().manual_seed(2))  # fmt: skip
    same_word = (word_ids[:, 1:] == word_ids[:, :-1]) & (word_ids[:, 1:] >= 0)
    assert not torch.equal(out.selected[:, 1:][same_word], out.selected[:, :-1][same_word])


def test_negative_word_ids_are_never_selected():
    ids, word_ids, v = word_corpus(batch=50)
    holes = word_ids.clone()
    holes[:, 5:9] = -3
    out = mask_tokens(ids, mask_id=MASK, vocab_size=v, special_ids=SPECIAL, word_ids=holes, mlm_probability=1.0,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(out.selected, holes >= 0)


# ------------------------------------------------------------------------------------------ errors


def test_errors_name_the_argument():
    ids = torch.tensor([[CLS, 7, 8, SEP]])
    g = torch.Generator().manual_seed(0)
    ok = dict(mask_id=MASK, vocab_size=10, generator=g, special_ids=SPECIAL)
    with pytest.raises(ValueError, match="mlm_probability"):
        mask_tokens(ids, **ok, mlm_probability=1.5)
    with pytest.raises(ValueError, match="mask_fraction \\+ random_fraction"):
        mask_tokens(ids, **ok, mask_fraction=0.8, random_fraction=0.3)
    with pytest.raises(ValueError, match="token id 12 .* vocabulary of size 10"):
        mask_tokens(torch.tensor([[12]]), **ok)
    with pytest.raises(ValueError, match="mask_id=10"):
        mask_tokens(ids, **{**ok, "mask_id": 10})
    with pytest.raises(TypeError, match="input_ids"):
        mask_tokens(ids.float(), **ok)
    with pytest.raises(TypeError, match="generator"):
        mask_tokens(ids, **{**ok, "generator": 0})
    with pytest.raises(TypeError, match="valid must be a bool tensor"):
        mask_tokens(ids, **ok, valid=torch.ones(1, 4))
    with pytest.raises(ValueError, match="special_mask must have the shape"):
        mask_tokens(ids, **ok, special_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="word_ids must have the 2-D shape"):
        mask_tokens(ids, **ok, word_ids=torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="ignore_index"):
        mask_tokens(ids, **ok, ignore_index=3)
