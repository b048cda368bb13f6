"""masks.py: every builder against the NumPy reference, the converters' polarity, and every error message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from transformer_from_scratch import functional as tf
from transformer_from_scratch import masks
from transformer_from_scratch import reference as ref


def assert_mask_equal(ours: torch.Tensor, expected: np.ndarray) -> None:
    assert ours.dtype == torch.bool
    assert tuple(ours.shape) == expected.shape, (tuple(ours.shape), expected.shape)
    assert np.array_equal(ours.numpy(), expected), f"\n{ours.int().numpy()}\n!=\n{expected.astype(int)}"


# ---- causal --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("t", "s"), [(1, 1), (4, 4), (3, 7), (1, 5), (6, None), (0, 3), (0, 0)])
def test_causal_mask_matches_reference(t, s):
    assert_mask_equal(masks.causal_mask(t, s), ref.causal_mask(t, s))


def test_causal_mask_is_lower_triangular_with_the_diagonal():
    m = masks.causal_mask(4)
    assert torch.equal(m, torch.ones(4, 4, dtype=torch.bool).tril())
    assert m[0].tolist() == [True, False, False, False]  # position 0 sees only itself
    assert m[3].all()  # the last position sees everything


def test_causal_mask_last_query_sees_every_key_when_s_exceeds_t():
    """Bottom-right alignment: the T queries are the last T of S positions (KV-cache decoding)."""
    m = masks.causal_mask(2, 5)
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    assert torch.equal(m, masks.causal_mask(5)[-2:])  # the last two rows of the square mask


def test_causal_mask_is_built_on_the_requested_device():
    assert masks.causal_mask(3, device="meta").device.type == "meta"


def test_causal_mask_errors():
    with pytest.raises(ValueError, match="causal_mask needs S ≥ T .* got T=5, S=3"):
        masks.causal_mask(5, 3)
    with pytest.raises(ValueError, match="t must be ≥ 0 .*got -1"):
        masks.causal_mask(-1, 2)


# ---- padding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lengths", "max_len"), [([3, 1, 4], 6), ([2, 5], None), ([0, 2], 2), ([], 3)])
def test_padding_mask_from_lengths_matches_reference(lengths, max_len):
    lengths_t = torch.tensor(lengths, dtype=torch.long)
    assert_mask_equal(
        masks.padding_mask_from_lengths(lengths_t, max_len), ref.padding_mask_from_lengths(lengths, max_len)
    )
    if lengths:
        assert_mask_equal(
            masks.padding_mask_from_lengths(lengths, max_len), ref.padding_mask_from_lengths(lengths, max_len)
        )


def test_padding_mask_from_ids_matches_reference_left_and_right_padding():
    ids = torch.tensor([[5, 6, 7, 0, 0], [0, 0, 8, 9, 1], [3, 0, 4, 0, 2]])  # right, left, interleaved
    assert_mask_equal(masks.padding_mask_from_ids(ids, pad_id=0), ref.padding_mask_from_ids(ids.numpy(), 0))
    assert masks.padding_mask_from_ids(ids, pad_id=0)[1].tolist() == [False, False, True, True, True]


def test_padding_mask_dispatch():
    ids = torch.tensor([[1, 2, 0], [4, 0, 0]])
    assert torch.equal(masks.padding_mask(ids=ids, pad_id=0), masks.padding_mask(lengths=[2, 1], max_len=3))


def test_padding_errors():
    with pytest.raises(ValueError, match=r"lengths must be 1-D \(B,\), got shape \(2, 1\)"):
        masks.padding_mask_from_lengths([[1], [2]])
    with pytest.raises(TypeError, match="lengths must be integers, got torch.float32"):
        masks.padding_mask_from_lengths(torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="lengths must be integers, got torch.bool"):
        masks.padding_mask_from_lengths(torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"lengths must be non-negative, got \[2, -1\]"):
        masks.padding_mask_from_lengths([2, -1])
    with pytest.raises(ValueError, match="a length of 5 exceeds max_len=4"):
        masks.padding_mask_from_lengths([5, 2], max_len=4)
    with pytest.raises(TypeError, match="ids must be an integer tensor, got torch.float32"):
        masks.padding_mask_from_ids(torch.zeros(2, 3), pad_id=0)
    with pytest.raises(ValueError, match="exactly one of lengths= or ids="):
        masks.padding_mask()
    with pytest.raises(ValueError, match="exactly one of lengths= or ids="):
        masks.padding_mask(lengths=[1], ids=torch.tensor([[1]]), pad_id=0)
    with pytest.raises(ValueError, match=r"padding_mask\(ids=...\) needs pad_id="):
        masks.padding_mask(ids=torch.tensor([[1]]))


# ---- key padding and cross attention -------------------------------------------------------------------


def test_key_padding_masks_keys_not_queries(gen):
    valid = torch.rand(3, 5, generator=gen) < 0.6
    m = masks.key_padding(valid)
    assert_mask_equal(m, ref.key_padding(valid.numpy()))
    full = m.expand(3, 2, 4, 5)  # (B, H, T, S)
    for i in range(4):
        assert torch.equal(full[:, 1, i, :], valid)  # the last axis (keys) carries the padding


def test_cross_attention_mask_matches_reference(gen):
    query_valid = masks.padding_mask_from_lengths([4, 2, 0], max_len=4)
    key_valid = masks.padding_mask_from_ids(torch.tensor([[1, 2, 0, 0, 0, 0], [0, 3, 4, 5, 0, 6], [7] * 6]), 0)
    m = masks.cross_attention_mask(query_valid, key_valid)
    assert_mask_equal(m, ref.cross_attention_mask(query_valid.numpy(), key_valid.numpy()))
    assert m.shape == (3, 1, 4, 6)
    assert not m[1, 0, 2:].any()  # padded queries see nothing
    assert torch.equal(m[1, 0, 0], key_valid[1])  # a real query sees exactly the real keys


def test_key_padding_and_cross_errors():
    with pytest.raises(TypeError, match="valid must be a bool .* got torch.int64"):
        masks.key_padding(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"valid must have shape \(B, S\), got \(2, 1, 3\)"):
        masks.key_padding(torch.ones(2, 1, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="query_valid must be a bool"):
        masks.cross_attention_mask(torch.ones(2, 3), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"key_valid must have shape \(B, S\), got \(4,\)"):
        masks.cross_attention_mask(torch.ones(2, 3, dtype=torch.bool), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"batch sizes differ: query_valid \(2, 3\) vs key_valid \(3, 4\)"):
        masks.cross_attention_mask(torch.ones(2, 3, dtype=torch.bool), torch.ones(3, 4, dtype=torch.bool))


# ---- combine and allowed_to_bias -----------------------------------------------------------------------


def test_combine_is_logical_and_with_broadcast(gen):
    valid = torch.rand(2, 5, generator=gen) < 0.6
    m = masks.combine(masks.causal_mask(5), None, masks.key_padding(valid))
    expected = np.logical_and(ref.causal_mask(5), ref.key_padding(valid.numpy()))
    assert_mask_equal(m, expected)
    assert masks.combine(None, None) is None
    single = masks.causal_mask(3)
    assert masks.combine(single) is single


def test_combine_errors():
    with pytest.raises(TypeError, match="masks to combine must be bool, got torch.float32"):
        masks.combine(masks.causal_mask(3), torch.ones(3, 3))
    with pytest.raises(ValueError, match=r"masks of shapes \(3, 3\) and \(2, 1, 1, 4\) do not broadcast together"):
        masks.combine(masks.causal_mask(3), masks.key_padding(torch.ones(2, 4, dtype=torch.bool)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_allowed_to_bias_is_zero_or_exact_neg_inf(dtype, gen):
    allowed = torch.rand(2, 1, 3, 4, generator=gen) < 0.5
    bias = masks.allowed_to_bias(allowed, dtype)
    assert bias.dtype == dtype
    assert (bias[allowed] == 0).all()
    assert torch.isneginf(bias[~allowed]).all()  # -inf, not a finite fill like -1e9 (fp16 overflow) or -1e4 (leaks)


def test_allowed_to_bias_blocks_completely_even_against_huge_scores(gen):
    """A finite fill such as -1e4 leaks through when scores are large; -inf never does."""
    scores = torch.tensor([[0.0, 2e4, 2e4]], dtype=torch.float64)  # the blocked keys score highest
    allowed = torch.tensor([[True, False, False]])
    w = tf.softmax(scores + masks.allowed_to_bias(allowed, torch.float64))
    assert w.tolist() == [[1.0, 0.0, 0.0]]
    leaky = tf.softmax(scores + torch.where(allowed, 0.0, -1e4))
    assert leaky[0, 0] == 0.0 and leaky[0, 1] == 0.5  # the bug this convention prevents: all weight leaks


def test_allowed_to_bias_errors():
    with pytest.raises(TypeError, match="allowed must be bool, got torch.int64"):
        masks.allowed_to_bias(torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype, got torch.int32"):
        masks.allowed_to_bias(torch.ones(2, 2, dtype=torch.bool), torch.int32)


# ---- converters ----------------------------------------------------------------------------------------


def test_key_padding_mask_converters_flip_polarity(gen):
    valid = torch.rand(3, 6, generator=gen) < 0.6
    kpm = masks.to_key_padding_mask(valid)
    assert torch.equal(kpm, ~valid)  # PyTorch: True = ignore this key
    assert torch.equal(masks.from_key_padding_mask(kpm), masks.key_padding(valid))
    assert masks.from_key_padding_mask(kpm).shape == (3, 1, 1, 6)


def test_key_padding_mask_converter_agrees_with_torch_sdpa(gen):
    """PyTorch's own kernel, fed our allowed mask, ignores exactly the keys key_padding_mask marks True."""
    q, k, v = (torch.randn(2, 2, n, 4, generator=gen) for n in (3, 5, 5))
    kpm = torch.tensor([[False, False, True, True, False], [False, True, False, False, False]])
    allowed = masks.from_key_padding_mask(kpm)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    keep = [0, 1, 4]  # batch row 0 without its ignored keys
    ref_out = F.scaled_dot_product_attention(q[:1], k[:1, :, keep], v[:1, :, keep])
    torch.testing.assert_close(out[:1], ref_out, rtol=1e-6, atol=1e-6)


def test_to_torch_attn_mask_means_blocked():
    allowed = masks.causal_mask(3)
    blocked = masks.to_torch_attn_mask(allowed)
    assert blocked.tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    with pytest.raises(TypeError, match="allowed must be bool, got torch.float32"):
        masks.to_torch_attn_mask(torch.ones(2, 2))


def test_hf_attention_mask_converters():
    hf = torch.tensor([[1, 1, 0], [0, 1, 1]])
    allowed = masks.from_hf_attention_mask(hf)
    assert_mask_equal(allowed, ref.key_padding(hf.numpy() == 1))
    back = masks.to_hf_attention_mask(allowed[:, 0, 0])
    assert back.dtype == torch.long and torch.equal(back, hf)
    assert masks.to_hf_attention_mask(allowed[:, 0, 0], torch.float32).dtype == torch.float32


def test_converter_errors():
    with pytest.raises(TypeError, match="key_padding_mask must be bool .* got torch.int64"):
        masks.from_key_padding_mask(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="valid must be a bool"):
        masks.to_key_padding_mask(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, S\), got \(3,\)"):
        masks.from_hf_attention_mask(torch.ones(3))
    with pytest.raises(ValueError, match=r"attention_mask must contain only 0 and 1, got values \[0, 1, 2\]"):
        masks.from_hf_attention_mask(torch.tensor([[1, 2, 0]]))
    with pytest.raises(ValueError, match=r"valid must have shape \(B, S\)"):
        masks.to_hf_attention_mask(torch.ones(2, 1, 3, dtype=torch.bool))
