"""KV cache (attention.LayerKVCache / KVCache, GPT(kv_cache=...)): incremental decoding equals full recomputation.

The law: feeding a sequence in chunks (one token at a time, or several — "chunked prefill") against the cached
keys and values of the earlier chunks gives, at every step, the logits that one forward pass over the whole
sequence gives at those positions. Float64, to 1e-10 relative — with learned positions and with RoPE in both
conventions, batch > 1, with and without left padding. Also checked against the NumPy reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import randomize_
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch import masks
from transformer_from_scratch.attention import KVCache, LayerKVCache, MultiHeadAttention
from transformer_from_scratch.config import GPTConfig
from transformer_from_scratch.generation import left_pad
from transformer_from_scratch.models import GPT
from transformer_from_scratch.positional import RotaryEmbedding
from transformer_from_scratch.reference import gpt as ref

V = 23
SHAPE = dict(vocab_size=V, d_model=12, n_heads=3, n_layers=2, d_ff=20, max_len=32)
CONFIGS = {
    "learned": GPTConfig.tiny(**SHAPE),
    "rope-half": GPTConfig.llama_tiny(**SHAPE),
    "rope-interleaved": GPTConfig.llama_tiny(**SHAPE, rope_convention="interleaved", bias=True),
}


def model64(name: str, seed: int = 0) -> GPT:
    return randomize_(GPT(CONFIGS[name]).double().eval(), seed)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def decode_in_chunks(model: GPT, ids: torch.Tensor, cuts: list[int], valid: torch.Tensor | None = None):
    """Feed ids[:, a:b] for consecutive (a, b) given by ``cuts``; return the per-step logits and the cache."""
    cache = model.new_kv_cache()
    steps = []
    bounds = [0, *cuts, ids.shape[1]]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        chunk_valid = None if valid is None else valid[:, a:b]
        out = model(ids[:, a:b], valid=chunk_valid, kv_cache=cache)
        assert out.kv_cache is cache and cache.length == b
        steps.append((a, b, out.logits))
    return steps, cache


# ---- the model ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_token_by_token_decoding_equals_full_recomputation_at_every_step(name):
    model = model64(name, seed=1)
    ids = torch.randint(0, V, (3, 10), generator=torch.Generator().manual_seed(0))
    full = model(ids).logits  # (B, T, V)
    steps, _ = decode_in_chunks(model, ids, cuts=list(range(1, 10)))
    for a, b, logits in steps:
        assert logits.shape == (3, 1, V)
        assert relative_error(logits, full[:, a:b]) <= 1e-10, (a, relative_error(logits, full[:, a:b]))


@given(
    name=st.sampled_from(list(CONFIGS)),
    cuts=st.lists(st.integers(1, 11), max_size=5, unique=True).map(sorted),
    padded=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_chunked_prefill_equals_full_recomputation(name, cuts, padded, seed):
    model = model64(name, seed=2)
    g = torch.Generator().manual_seed(seed)
    if padded:  # left-padded prompts: positions and masks must continue correctly across chunks
        lengths = torch.randint(1, 13, (3, 1), generator=g)  # real tokens per row
        valid = torch.arange(12)[None, :] >= 12 - lengths  # (B, 12), padding first
        ids = torch.where(valid, torch.randint(1, V, (3, 12), generator=g), torch.zeros((), dtype=torch.long))
    else:
        ids, valid = torch.randint(0, V, (3, 12), generator=g), None
    full = model(ids, valid=valid).logits
    steps, cache = decode_in_chunks(model, ids, [c for c in cuts if c < 12], valid)
    cached = torch.cat([logits for _, _, logits in steps], dim=1)  # (B, 12, V), step by step
    real = valid if valid is not None else torch.ones(3, 12, dtype=torch.bool)  # padded query rows are undefined
    assert relative_error(cached[real], full[real]) <= 1e-10
    assert cache.length == 12


@pytest.mark.parametrize("name", list(CONFIGS))
def test_cached_decoding_matches_the_numpy_reference(name):
    model = model64(name, seed=3)
    ids, valid = left_pad([[1, 2, 3, 4, 5, 6, 7, 8], [5, 6, 9], [7, 8, 9, 10, 11]], pad_id=0)
    steps, _ = decode_in_chunks(model, ids, cuts=[3, 4, 6], valid=valid)
    cached = torch.cat([logits for _, _, logits in steps], dim=1)  # (B, T, V)
    expected = ref.gpt(
        ids.numpy(),
        {k: v.numpy() for k, v in model.state_dict().items()},
        n_heads=3,
        n_layers=2,
        positional=model.config.positional,
        rope_convention=model.config.rope_convention,
        norm=model.config.norm,
        activation=model.config.activation,
        eps=model.config.layer_norm_eps,
        valid=valid.numpy(),
    )
    err = np.abs(cached.detach().numpy() - expected)[valid.numpy()].max() / np.abs(expected).max()
    assert err <= 1e-10


def test_the_cache_records_padding_and_later_steps_keep_masking_it():
    model = model64("learned", seed=4)
    ids, valid = left_pad([[1, 2, 3, 4], [5, 6]], pad_id=0)
    cache = model.new_kv_cache()
    model(ids, valid=valid, kv_cache=cache)
    assert torch.equal(cache.valid, valid)
    nxt = torch.tensor([[7], [8]])
    step = model(nxt, kv_cache=cache).logits[:, -1]  # no valid: the new token is real, the old padding stays masked
    assert torch.equal(cache.valid[:, -1], torch.tensor([True, True]))
    alone = model(torch.tensor([[5, 6, 8]])).logits[0, -1]
    torch.testing.assert_close(step[1], alone, rtol=0, atol=1e-12)


def test_select_reorders_and_drops_sequences():
    model = model64("rope-half", seed=5)
    ids = torch.randint(0, V, (3, 6), generator=torch.Generator().manual_seed(1))
    cache = model.new_kv_cache()
    model(ids[:, :5], kv_cache=cache)
    rows = torch.tensor([2, 0, 0])  # reorder, copy, drop row 1 (as beam search does)
    picked = cache.select(rows)
    assert picked.length == 5 and cache.layers[0].k.shape[0] == 3  # the original is untouched
    step = model(ids[rows, 5:], kv_cache=picked).logits
    torch.testing.assert_close(step, model(ids[rows]).logits[:, 5:], rtol=0, atol=1e-12)


def test_rope_decoding_may_run_past_max_len_and_still_equals_full_recomputation():
    model = randomize_(GPT(GPTConfig.llama_tiny(**{**SHAPE, "max_len": 4})).double().eval(), seed=6)
    ids = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(2))
    steps, _ = decode_in_chunks(model, ids, cuts=[3, 5, 6, 7, 8])
    full = model(ids).logits
    for a, b, logits in steps:
        assert relative_error(logits, full[:, a:b]) <= 1e-10


@pytest.mark.parametrize("impl", ["kernels", "torch"])
def test_the_other_implementations_decode_with_the_cache_too(impl):
    other = randomize_(GPT(GPTConfig.llama_tiny(**SHAPE, impl=impl)).double().eval(), seed=9)
    plain = model64("rope-half", seed=9)
    ids, valid = left_pad([[1, 2, 3, 4, 5, 6], [7, 8]], pad_id=0)
    steps, _ = decode_in_chunks(other, ids, cuts=[2, 4, 5], valid=valid)
    cached = torch.cat([logits for _, _, logits in steps], dim=1)
    assert relative_error(cached[valid], plain(ids, valid=valid).logits[valid]) <= 1e-10


def test_cache_attention_weights_cover_past_and_new_keys():
    model = model64("rope-interleaved", seed=7)
    ids = torch.randint(0, V, (2, 7), generator=torch.Generator().manual_seed(3))
    full = model(ids, return_attention=True).attentions
    cache = model.new_kv_cache()
    model(ids[:, :4], kv_cache=cache)
    step = model(ids[:, 4:], kv_cache=cache, return_attention=True).attentions
    for w_step, w_full in zip(step, full, strict=True):
        assert w_step.shape == (2, 3, 3, 7)  # (B, H, T_new, S_past + T_new)
        torch.testing.assert_close(w_step, w_full[:, :, 4:], rtol=0, atol=1e-12)


def test_cache_errors_are_actionable():
    model = model64("learned", seed=8)
    cache = model.new_kv_cache()
    model(torch.zeros(2, 3, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="select"):
        model(torch.zeros(3, 1, dtype=torch.long), kv_cache=cache)
    with pytest.raises(TypeError, match="KVCache with 2 layers"):
        model(torch.zeros(2, 1, dtype=torch.long), kv_cache=KVCache(3))
    with pytest.raises(ValueError, match="exceeds max_len=32"):
        model(torch.zeros(2, 30, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="n_layers"):
        KVCache(0)


# ---- the attention layer alone ------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", [None, "half", "interleaved"])
def test_attention_with_a_cache_equals_causal_self_attention(convention):
    g = torch.Generator().manual_seed(4)
    rotary = None if convention is None else RotaryEmbedding(4, max_len=16, convention=convention)
    mha = randomize_(MultiHeadAttention(12, 3, rotary=rotary).double(), seed=9)
    x = torch.randn(2, 7, 12, generator=g, dtype=torch.float64)
    full = mha(x, allowed=masks.causal_mask(7))
    cache = LayerKVCache()
    outs = []
    for a, b in ((0, 3), (3, 4), (4, 7)):
        outs.append(mha(x[:, a:b], allowed=masks.causal_mask(b - a, b), kv_cache=cache))
        assert cache.length == b and cache.k.shape == (2, 3, b, 4)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-12, atol=1e-12)


def test_cross_attention_cache_projects_the_memory_once_and_equals_recomputation():
    """Cross-attention with a cache: the first call stores K, V of the memory; later calls reuse them (a different
    memory of the same shape is not even read) and give what a call without a cache gives."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, d_head=3, scale=1.0, bias=False).double()
    memory, allowed = torch.randn(2, 5, 8, dtype=torch.float64), torch.rand(2, 1, 1, 5) < 0.8
    cache = LayerKVCache()
    for step in range(3):
        x = torch.randn(2, 1, 8, dtype=torch.float64)
        expected = mha(x, memory, allowed=allowed)
        seen = memory if step == 0 else torch.zeros_like(memory)  # after the first call the memory is not read
        got = mha(x, seen, allowed=allowed, kv_cache=cache)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        assert cache.length == 5
    with pytest.raises(ValueError, match="do not belong"):
        mha(torch.randn(2, 1, 8, dtype=torch.float64), torch.randn(2, 4, 8, dtype=torch.float64), kv_cache=cache)


def test_attention_cache_refuses_mismatched_shapes():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(TypeError, match="LayerKVCache"):
        mha(torch.randn(1, 2, 8), kv_cache=KVCache(1))
    cache = LayerKVCache()
    mha(torch.randn(2, 2, 8), kv_cache=cache)
    with pytest.raises(ValueError, match="continue the cached"):
        mha(torch.randn(3, 1, 8), kv_cache=cache)
