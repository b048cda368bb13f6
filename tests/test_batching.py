"""Batching: LM windows are uniform over every start that fits and y is x shifted by one; padding puts every
token where it belongs; teacher-forcing pairs are shifted correctly and their masks come from masks.py."""

import dataclasses
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch import masks
from transformer_from_scratch.datasets.batching import Seq2SeqBatch, lm_batch, pad_batch, pad_pairs
from transformer_from_scratch.functional import cross_entropy

# ---- language-model windows --------------------------------------------------------------------------


@given(n=st.integers(2, 40), context=st.integers(1, 39), batch=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_windows_are_slices_of_the_stream_and_y_is_x_shifted_by_one(n, context, batch, seed):
    if context + 1 > n:
        context = n - 1
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 1000, (n,), generator=g)
    positions = torch.arange(n)
    x, y = lm_batch(tokens, batch, context, generator=torch.Generator().manual_seed(seed))
    starts, _ = lm_batch(positions, batch, context, generator=torch.Generator().manual_seed(seed))
    assert x.shape == y.shape == (batch, context) and x.dtype == y.dtype == torch.long
    for b in range(batch):
        s = int(starts[b, 0])
        assert 0 <= s <= n - context - 1
        assert torch.equal(starts[b], torch.arange(s, s + context))  # a contiguous window
        assert torch.equal(x[b], tokens[s : s + context])
        assert torch.equal(y[b], tokens[s + 1 : s + context + 1])  # y[:, t] = tokens[start + t + 1]
    assert torch.equal(y[:, :-1], x[:, 1:])


def test_window_starts_are_uniform_over_every_position_that_fits():
    n, context, draws = 60, 10, 40_000  # 50 possible starts: 0 … 49
    positions = torch.arange(n)
    x, _ = lm_batch(positions, draws, context, generator=torch.Generator().manual_seed(2024))
    counts = torch.bincount(x[:, 0], minlength=n).double()
    k = n - context
    assert counts[k:].sum() == 0  # no window runs past the end
    p = 1 / k
    mean, sd = draws * p, math.sqrt(draws * p * (1 - p))
    assert ((counts[:k] - mean).abs() <= 5 * sd).all(), counts[:k]  # every start, first and last included
    chi2 = float(((counts[:k] - mean) ** 2 / mean).sum())  # χ² with k - 1 = 49 degrees of freedom
    assert chi2 <= (k - 1) + 5 * math.sqrt(2 * (k - 1))


def test_shortest_stream_has_exactly_one_window():
    tokens = torch.tensor([4, 8, 15, 16, 23])
    x, y = lm_batch(tokens, 3, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, tokens[:4].expand(3, 4)) and torch.equal(y, tokens[1:].expand(3, 4))


def test_same_generator_same_batch_different_seed_different_batch():
    tokens = torch.arange(1000)
    a = lm_batch(tokens, 8, 16, generator=torch.Generator().manual_seed(7))
    b = lm_batch(tokens, 8, 16, generator=torch.Generator().manual_seed(7))
    c = lm_batch(tokens, 8, 16, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    g = torch.Generator().manual_seed(7)  # consecutive batches from one generator differ
    assert not torch.equal(lm_batch(tokens, 8, 16, generator=g)[0], lm_batch(tokens, 8, 16, generator=g)[0])


def test_lm_batch_errors():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="a window needs context \\+ 1 = 9 tokens .* only 8"):
        lm_batch(torch.arange(8), 2, 8, generator=g)
    with pytest.raises(ValueError, match="tokens must be a 1-D tensor"):
        lm_batch(torch.arange(20).reshape(4, 5), 2, 3, generator=g)
    with pytest.raises(TypeError, match="tokens must be integer token ids"):
        lm_batch(torch.rand(20), 2, 3, generator=g)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        lm_batch(torch.arange(20), 0, 3, generator=g)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        lm_batch(torch.arange(20), 2, 3, generator=7)


# ---- padding ------------------------------------------------------------------------------------------


@given(lengths=st.lists(st.integers(0, 7), min_size=1, max_size=5), extra=st.integers(0, 3), seed=st.integers(0, 99))
def test_pad_batch_places_every_token_and_marks_it_valid(lengths, extra, seed):
    g = torch.Generator().manual_seed(seed)
    pad_id = -1  # not a token id, so mistakes show
    sequences = [torch.randint(0, 50, (n,), generator=g).tolist() for n in lengths]
    max_len = max(lengths) + extra
    ids, valid = pad_batch(sequences, pad_id, max_len=max_len)
    assert ids.shape == valid.shape == (len(lengths), max_len)
    assert ids.dtype == torch.long and valid.dtype == torch.bool
    for b, seq in enumerate(sequences):
        assert ids[b, : len(seq)].tolist() == seq
        assert (ids[b, len(seq) :] == pad_id).all()
        assert valid[b].tolist() == [True] * len(seq) + [False] * (max_len - len(seq))
    assert torch.equal(valid, masks.padding_mask_from_ids(ids, pad_id))


def test_pad_batch_default_length_and_tensor_inputs():
    ids, valid = pad_batch([torch.tensor([5, 6, 7]), [8], []], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert valid.tolist() == [[True] * 3, [True, False, False], [False] * 3]


def test_pad_batch_errors():
    with pytest.raises(ValueError, match=r"sequences\[1\] has length 4, which exceeds max_len=3"):
        pad_batch([[1], [1, 2, 3, 4]], 0, max_len=3)
    with pytest.raises(ValueError, match="non-empty list"):
        pad_batch([], 0)
    with pytest.raises(TypeError, match=r"sequences\[0\] must contain int token ids"):
        pad_batch([[1.5, 2]], 0)
    with pytest.raises(TypeError, match=r"sequences\[0\] must be a sequence of int token ids"):
        pad_batch(["hello"], 0)


# ---- (source, target) pairs for teacher forcing -------------------------------------------------------

BOS, EOS, PAD = 1, 2, 0


def test_pad_pairs_teacher_forcing_layout():
    pairs = [([10, 11, 12], [20, 21]), ([13], [22, 23, 24, 25]), ([14, 15], [])]
    batch = pad_pairs(pairs, PAD, bos_id=BOS, eos_id=EOS)
    assert batch.src.tolist() == [[10, 11, 12], [13, 0, 0], [14, 15, 0]]
    assert batch.src_valid.tolist() == [[True] * 3, [True, False, False], [True, True, False]]
    assert batch.tgt_in.tolist() == [[1, 20, 21, 0, 0], [1, 22, 23, 24, 25], [1, 0, 0, 0, 0]]
    assert batch.tgt_out.tolist() == [[20, 21, 2, -100, -100], [22, 23, 24, 25, 2], [2, -100, -100, -100, -100]]
    assert batch.tgt_valid.tolist() == [[True] * 3 + [False] * 2, [True] * 5, [True] + [False] * 4]


@given(
    src_lengths=st.lists(st.integers(0, 6), min_size=2, max_size=4),
    seed=st.integers(0, 999),
    markers=st.sampled_from([(BOS, EOS), (BOS, None), (None, EOS), (None, None)]),
)
def test_pad_pairs_shift_law(src_lengths, seed, markers):
    bos, eos = markers
    g = torch.Generator().manual_seed(seed)
    min_target = 2 - (bos is not None) - (eos is not None)
    tgt_lengths = torch.randint(min_target, 7, (len(src_lengths),), generator=g).tolist()
    pairs = [
        (torch.randint(3, 50, (s,), generator=g).tolist(), torch.randint(3, 50, (t,), generator=g).tolist())
        for s, t in zip(src_lengths, tgt_lengths)
    ]
    batch = pad_pairs(pairs, PAD, bos_id=bos, eos_id=eos)
    for b, (_, target) in enumerate(pairs):
        full = ([bos] if bos is not None else []) + target + ([eos] if eos is not None else [])
        n = len(full) - 1
        assert batch.tgt_in[b, :n].tolist() == full[:-1]
        assert batch.tgt_out[b, :n].tolist() == full[1:]  # position t predicts the token after tgt_in[t]
        assert (batch.tgt_in[b, n:] == PAD).all() and (batch.tgt_out[b, n:] == -100).all()
        assert int(batch.tgt_valid[b].sum()) == n
    real = batch.tgt_valid[:, 1:]
    assert torch.equal(batch.tgt_out[:, :-1][real], batch.tgt_in[:, 1:][real])  # tgt_out is tgt_in shifted left


def test_masks_come_from_the_masks_module_and_have_the_right_meaning():
    pairs = [([10, 11, 12], [20, 21]), ([13], [22, 23, 24])]
    batch = pad_pairs(pairs, PAD, bos_id=BOS, eos_id=EOS)
    b_, s, t = 2, 3, 4
    assert batch.src_allowed.shape == (b_, 1, 1, s)
    assert torch.equal(batch.src_allowed, masks.key_padding(batch.src_valid))
    expected_tgt = torch.zeros(b_, 1, t, t, dtype=torch.bool)
    expected_mem = torch.zeros(b_, 1, t, s, dtype=torch.bool)
    for b in range(b_):
        for i in range(t):
            for j in range(t):
                expected_tgt[b, 0, i, j] = j <= i and bool(batch.tgt_valid[b, j])  # no future, no padding
            for j in range(s):
                expected_mem[b, 0, i, j] = bool(batch.tgt_valid[b, i]) and bool(batch.src_valid[b, j])
    assert torch.equal(batch.tgt_allowed, expected_tgt)
    assert torch.equal(batch.memory_allowed, expected_mem)


def test_loss_on_a_padded_batch_counts_only_real_targets():
    batch = pad_pairs([([5], [20, 21, 22]), ([6], [23])], PAD, bos_id=BOS, eos_id=EOS)
    logits = torch.randn(*batch.tgt_out.shape, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    per_token = cross_entropy(logits, batch.tgt_out, reduction="none")
    assert torch.equal(per_token[~batch.tgt_valid], torch.zeros(int((~batch.tgt_valid).sum()), dtype=torch.float64))
    expected = per_token[batch.tgt_valid].mean()
    torch.testing.assert_close(cross_entropy(logits, batch.tgt_out), expected, rtol=1e-14, atol=0)


def test_batch_is_frozen_and_moves_devices():
    batch = pad_pairs([([5], [20])], PAD, bos_id=BOS, eos_id=EOS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.src = batch.src
    moved = batch.to("cpu")
    assert isinstance(moved, Seq2SeqBatch)
    assert all(torch.equal(getattr(moved, f.name), getattr(batch, f.name)) for f in dataclasses.fields(batch))


def test_pad_pairs_errors():
    with pytest.raises(ValueError, match=r"pairs\[0\]: the target with its bos/eos markers has 1 token"):
        pad_pairs([([5], [7])], PAD)
    with pytest.raises(ValueError, match=r"pairs\[1\] must be a \(source, target\) pair"):
        pad_pairs([([5], [7]), ([5],)], PAD, bos_id=BOS)
    with pytest.raises(ValueError, match="non-empty list"):
        pad_pairs([], PAD)
