"""Laws of attention, stated as hypothesis properties (derandomized ``ci`` profile from conftest).

Shapes come from ``tests/strategies.py``: heads > 1, batch > 1, T ≠ S, and independent q, k, v.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import AttentionShape, attention_shapes, lengths_for, mha_configs
from torch.testing import assert_close

from transformer_from_scratch import functional as tf
from transformer_from_scratch import masks
from transformer_from_scratch import reference as ref
from transformer_from_scratch.attention import MultiHeadAttention

F64 = {"rtol": 1e-10, "atol": 1e-12}


def random_mha(d_model: int, n_heads: int, seed: int, dtype=torch.float64) -> MultiHeadAttention:
    g = torch.Generator().manual_seed(seed)
    mha = MultiHeadAttention(d_model, n_heads).to(dtype)
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * d_model**-0.5)
    return mha


def inputs(batch: int, t: int, s: int, d_model: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed + 10)
    return torch.randn(batch, t, d_model, generator=g, dtype=dtype), torch.randn(
        batch, s, d_model, generator=g, dtype=dtype
    )


def with_empty_rows(shape: AttentionShape, allowed: torch.Tensor) -> torch.Tensor:
    """Make the first query of batch row 0 see nothing (in every head), whatever the random mask said."""
    allowed = allowed.clone()
    allowed[0, :, 0] = False
    return allowed


# ---- softmax and weights -------------------------------------------------------------------------------


@given(shape=attention_shapes())
def test_weight_rows_sum_to_one_where_anything_is_allowed_and_are_zero_elsewhere(shape):
    q, k, v = shape.tensors()
    allowed = with_empty_rows(shape, shape.random_allowed())
    out, w = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, return_weights=True)
    some = allowed.any(-1)  # (B, H, T)
    assert_close(w.sum(-1)[some], torch.ones_like(w.sum(-1)[some]), **F64)
    assert (w.sum(-1)[~some] == 0).all() and (out[~some] == 0).all()
    assert (w[~allowed] == 0).all()  # polarity: a key that is not allowed gets exactly zero weight
    assert (w[allowed & some[..., None]] > 0).all()  # ... and an allowed key a positive one


@given(shape=attention_shapes(), shift=st.floats(-50.0, 50.0), spread=st.floats(0.0, 10.0))
def test_a_per_query_shift_of_the_scores_changes_nothing(shape, shift, spread):
    q, k, v = shape.tensors()
    allowed = shape.random_allowed()
    g = torch.Generator().manual_seed(shape.seed + 3)
    per_query = shift + spread * torch.randn(shape.batch, shape.heads, shape.t, 1, generator=g, dtype=torch.float64)
    out, w = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, return_weights=True)
    out2, w2 = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, bias=per_query, return_weights=True)
    assert_close(w2, w, rtol=1e-10, atol=1e-11)
    assert_close(out2, out, rtol=1e-10, atol=1e-11)


@given(
    dtype=st.sampled_from([torch.float16, torch.float32, torch.float64]),
    magnitude=st.sampled_from([1e2, 1e4, 6e4]),
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 9),
)
def test_softmax_never_overflows(dtype, magnitude, seed, n):
    g = torch.Generator().manual_seed(seed)
    x = ((torch.rand(4, n, generator=g, dtype=torch.float64) * 2 - 1) * magnitude).to(dtype)
    for y in (tf.softmax(x), tf.masked_softmax(x)):
        assert torch.isfinite(y).all()
        assert_close(y.double().sum(-1), torch.ones(4, dtype=torch.float64), rtol=0, atol=2e-3)
        assert_close(y.double(), torch.from_numpy(ref.softmax(x.double().numpy())), rtol=0, atol=2e-3)


@given(shape=attention_shapes(), scale=st.sampled_from([1.0, 1e2, 1e4]))
def test_fully_masked_rows_are_zero_never_nan(shape, scale):
    q, k, v = shape.tensors(dtype=torch.float32, scale=scale)
    allowed = with_empty_rows(shape, shape.random_allowed(p=0.3))
    out, w = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, return_weights=True)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    empty = ~allowed.any(-1)
    assert (out[empty] == 0).all() and (w[empty] == 0).all()


# ---- the reference, and mask polarity ------------------------------------------------------------------


@given(shape=attention_shapes())
def test_sdpa_matches_reference_and_an_inverted_mask_does_not(shape):
    q, k, v = shape.tensors()
    allowed = shape.random_allowed(per_head=False)
    ours = tf.scaled_dot_product_attention(q, k, v, allowed=allowed)
    expected = torch.from_numpy(ref.scaled_dot_product_attention(q.numpy(), k.numpy(), v.numpy(), allowed.numpy()))
    assert_close(ours, expected, **F64)
    inverted = tf.scaled_dot_product_attention(q, k, v, allowed=~allowed)
    assert not torch.allclose(inverted, expected, rtol=1e-6, atol=1e-8)


@given(config=mha_configs())
def test_causal_output_at_position_zero_depends_on_token_zero_only(config):
    """Position 0 under a causal mask attends to itself with weight 1: out_0 = W_O (W_V x_0 + b_V) + b_O."""
    d_model, n_heads, batch, t, _, seed = config
    mha = random_mha(d_model, n_heads, seed)
    x, _ = inputs(batch, t, 1, d_model, seed)
    out = mha(x, allowed=masks.causal_mask(t))
    assert_close(out[:, 0], mha.out_proj(mha.v_proj(x[:, 0])), **F64)


# ---- sequence laws -------------------------------------------------------------------------------------


@given(config=mha_configs(), data=st.data())
def test_self_attention_is_permutation_equivariant(config, data):
    """Without positions, permuting the tokens (and the mask with them) permutes the outputs."""
    d_model, n_heads, batch, t, _, seed = config
    perm = torch.tensor(data.draw(st.permutations(range(t))))
    mha = random_mha(d_model, n_heads, seed)
    x, _ = inputs(batch, t, 1, d_model, seed)
    g = torch.Generator().manual_seed(seed + 4)
    allowed = torch.rand(batch, n_heads, t, t, generator=g) < 0.7
    bias = torch.randn(batch, n_heads, t, t, generator=g, dtype=torch.float64)
    out = mha(x, allowed=allowed, bias=bias)
    out_perm = mha(x[:, perm], allowed=allowed[..., perm, :][..., perm], bias=bias[..., perm, :][..., perm])
    assert_close(out_perm, out[:, perm], **F64)


@given(config=mha_configs(), data=st.data())
def test_future_tokens_never_change_the_past(config, data):
    d_model, n_heads, batch, t, _, seed = config
    p = data.draw(st.integers(0, t - 1))  # the last position considered "past"
    mha = random_mha(d_model, n_heads, seed)
    x, noise = inputs(batch, t, t, d_model, seed)
    x2 = x.clone()
    x2[:, p + 1 :] += 10.0 * noise[:, p + 1 :]
    causal = masks.causal_mask(t)
    assert_close(mha(x2, allowed=causal)[:, : p + 1], mha(x, allowed=causal)[:, : p + 1], **F64)
    if p + 1 < t:  # and the future does change (the test can see a difference when there is one)
        assert not torch.allclose(mha(x2, allowed=causal)[:, p + 1 :], mha(x, allowed=causal)[:, p + 1 :])


@given(config=mha_configs(), impl=st.sampled_from(["plain", "kernels", "torch"]))
def test_keys_and_values_behind_padding_never_matter(config, impl):
    d_model, n_heads, batch, t, s, seed = config
    mha = random_mha(d_model, n_heads, seed)
    mha.impl = impl
    x_q, x_kv = inputs(batch, t, s, d_model, seed)
    key_valid = masks.padding_mask_from_lengths(lengths_for(batch, s, seed), max_len=s)  # (B, S)
    allowed = masks.key_padding(key_valid)
    junk = x_kv.clone()
    junk[~key_valid] = 1e3 * torch.randn(int((~key_valid).sum()), d_model, dtype=torch.float64)
    assert_close(mha(x_q, junk, allowed=allowed), mha(x_q, x_kv, allowed=allowed), **F64)
    # and dropping the padded keys altogether gives the same answer, row by row
    out = mha(x_q, x_kv, allowed=allowed)
    for b in range(batch):
        n = int(key_valid[b].sum())
        assert_close(out[b : b + 1], mha(x_q[b : b + 1], x_kv[b : b + 1, :n]), **F64)


# ---- heads ---------------------------------------------------------------------------------------------


@given(config=mha_configs(), seed=st.integers(0, 2**31 - 1))
def test_split_and_merge_heads_round_trip(config, seed):
    d_model, n_heads, batch, t, _, _ = config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, t, d_model, generator=g)
    heads = tf.split_heads(x, n_heads)
    assert heads.shape == (batch, n_heads, t, d_model // n_heads)
    assert torch.equal(tf.merge_heads(heads), x)
    assert torch.equal(tf.split_heads(tf.merge_heads(heads), n_heads), heads)
    d_head = d_model // n_heads
    expected = np.stack([x.numpy()[..., h * d_head : (h + 1) * d_head] for h in range(n_heads)], axis=1)
    assert np.array_equal(heads.numpy(), expected)  # heads are contiguous slices, never mixed with positions


@given(config=mha_configs())
def test_one_head_equals_plain_attention_after_the_projections(config):
    d_model, _, batch, t, s, seed = config
    mha = random_mha(d_model, 1, seed)
    x_q, x_kv = inputs(batch, t, s, d_model, seed)
    allowed = torch.rand(batch, 1, t, s, generator=torch.Generator().manual_seed(seed)) < 0.7
    plain = tf.scaled_dot_product_attention(
        mha.q_proj(x_q), mha.k_proj(x_kv), mha.v_proj(x_kv), allowed=allowed[:, 0]
    )  # (B,T,D)·(B,S,D)·(B,S,D) -> (B,T,D), no head dimension at all
    assert_close(mha(x_q, x_kv, allowed=allowed), mha.out_proj(plain), **F64)


@given(config=mha_configs())
def test_each_head_is_plain_attention_on_its_slice(config):
    d_model, n_heads, batch, t, s, seed = config
    d_head = d_model // n_heads
    mha = random_mha(d_model, n_heads, seed)
    x_q, x_kv = inputs(batch, t, s, d_model, seed)
    _, w = mha(x_q, x_kv, return_weights=True)
    q, k = mha.q_proj(x_q), mha.k_proj(x_kv)
    for h in range(n_heads):
        cols = slice(h * d_head, (h + 1) * d_head)
        _, w_h = tf.scaled_dot_product_attention(q[..., cols], k[..., cols], x_kv, return_weights=True)
        assert_close(w[:, h], w_h, **F64)


@given(config=mha_configs())
def test_multi_head_attention_matches_reference(config):
    d_model, n_heads, batch, t, s, seed = config
    mha = random_mha(d_model, n_heads, seed)
    x_q, x_kv = inputs(batch, t, s, d_model, seed)
    allowed = torch.rand(batch, 1, t, s, generator=torch.Generator().manual_seed(seed)) < 0.6
    params = [p.detach().numpy() for p in (mha.q_proj.weight, mha.q_proj.bias, mha.k_proj.weight, mha.k_proj.bias)]
    params += [p.detach().numpy() for p in (mha.v_proj.weight, mha.v_proj.bias, mha.out_proj.weight, mha.out_proj.bias)]
    expected = ref.multi_head_attention(x_q.numpy(), x_kv.numpy(), *params, n_heads=n_heads, allowed=allowed.numpy())
    assert_close(mha(x_q, x_kv, allowed=allowed), torch.from_numpy(expected), **F64)
