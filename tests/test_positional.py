"""positional.py, the RoPE functions of functional.py, and rotary attention in MultiHeadAttention.

Witnesses: the NumPy float64 reference ``reference/positional.py`` (rtol 1e-10 in float64, rtol 1e-5 /
atol 1e-6 in float32); Hugging Face's DistilBERT sinusoidal table, Llama's rotate-half RoPE and GPT-J's
rotate-every-two RoPE as oracles; properties (norms, relative positions, the two layouts, broadcasting,
the sinusoidal shift matrices) and ``gradcheck``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.testing import assert_close

from transformer_from_scratch import functional as tf
from transformer_from_scratch import masks
from transformer_from_scratch.attention import MultiHeadAttention
from transformer_from_scratch.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_table,
)
from transformer_from_scratch.reference import positional as ref

F64 = {"rtol": 1e-10, "atol": 1e-12}  # float64 torch vs float64 NumPy
F32 = {"rtol": 1e-5, "atol": 1e-6}  # float32 torch vs float64 NumPy / a float32 oracle
CONVENTIONS = ["half", "interleaved"]


def randn(g, *shape, dtype=torch.float64, scale=1.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def half_from_interleaved(d_head: int) -> torch.Tensor:
    """Permutation P with x_half = x_interleaved[..., P]: pair i moves from (2i, 2i+1) to (i, i + Dh/2)."""
    return torch.cat([torch.arange(0, d_head, 2), torch.arange(1, d_head, 2)])


@st.composite
def rope_cases(draw, max_len=6):
    """(B, H, T, Dh, seed) with B ≥ 2, H ≥ 2 and an even Dh."""
    return (
        draw(st.integers(2, 3)),
        draw(st.integers(2, 3)),
        draw(st.integers(1, max_len)),
        2 * draw(st.integers(1, 4)),
        draw(st.integers(0, 2**31 - 1)),
    )


# ---- sinusoidal table --------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_len, d_model", [(1, 1), (30, 2), (50, 16), (20, 7), (9, 33)])
def test_sinusoidal_table_matches_reference(max_len, d_model):
    assert_close(sinusoidal_table(max_len, d_model), torch.from_numpy(ref.sinusoidal_table(max_len, d_model)), **F64)


def test_sinusoidal_table_follows_the_paper_interleaving():
    """Column 2i is sin(pos·ω_i), column 2i+1 is cos(pos·ω_i), ω_i = 10000^(-2i/D): spot values by hand."""
    table = sinusoidal_table(100, 8)
    assert_close(table[0], torch.tensor([0.0, 1.0] * 4, dtype=torch.float64), **F64)  # sin 0 = 0, cos 0 = 1
    assert_close(table[37, 4].item(), math.sin(37 / 10000 ** (4 / 8)), **F64)
    assert_close(table[37, 5].item(), math.cos(37 / 10000 ** (4 / 8)), **F64)
    assert_close(table[99, 0].item(), math.sin(99.0), **F64)


@pytest.mark.parametrize("d_model", [16, 7])
def test_sinusoidal_table_matches_hugging_face_distilbert(d_model):
    from transformers.models.distilbert.modeling_distilbert import create_sinusoidal_embeddings

    theirs = create_sinusoidal_embeddings(40, d_model, torch.empty(40, d_model))  # float32
    assert_close(sinusoidal_table(40, d_model).float(), theirs, rtol=1e-6, atol=1e-7)


@given(k=st.integers(1, 40), half_d=st.integers(1, 8))
def test_sinusoidal_shift_by_k_is_a_fixed_block_rotation(k, half_d):
    """PE(pos + k) = M_k PE(pos) for every pos, M_k block-diagonal with 2×2 rotations by k·ω_i.

    sin(a + b) = sin a cos b + cos a sin b and cos(a + b) = cos a cos b - sin a sin b, so the pair
    (sin, cos) at pos + k is [[cos kω, sin kω], [-sin kω, cos kω]] (sin, cos) at pos: a linear map that
    does not depend on pos — the property Vaswani et al. §3.5 give for choosing sinusoids.
    """
    d_model = 2 * half_d
    table = sinusoidal_table(400, d_model)
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (D/2,)
    m = torch.zeros(d_model, d_model, dtype=torch.float64)
    for i, w in enumerate(omega.tolist()):
        c, s = math.cos(k * w), math.sin(k * w)
        m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    now, later = table[: 400 - k], table[k:]  # rows pos and pos + k
    assert_close(now @ m.T, later, rtol=1e-9, atol=1e-9)  # row form of PE(pos + k) = M_k PE(pos)
    assert_close(m @ m.T, torch.eye(d_model, dtype=torch.float64), **F64)  # orthogonal: a rotation
    # The same map found without the formula: a least-squares fit on even positions predicts the odd ones.
    fit = torch.linalg.lstsq(now[0::2], later[0::2]).solution  # (D, D) with PE(pos) @ fit ≈ PE(pos + k)
    assert_close(now[1::2] @ fit, later[1::2], rtol=1e-8, atol=1e-9)


# ---- SinusoidalPositionalEncoding and LearnedPositionalEmbedding ------------------------------------------


def test_sinusoidal_encoding_adds_the_table(gen):
    pe = SinusoidalPositionalEncoding(10, max_len=32)
    x = randn(gen, 3, 12, 10)
    expected = x.numpy() + ref.sinusoidal_table(32, 10)[:12]
    assert_close(pe(x), torch.from_numpy(expected), **F64)
    x32 = x.float()
    assert pe(x32).dtype == torch.float32
    assert_close(pe(x32).double(), torch.from_numpy(x32.double().numpy() + ref.sinusoidal_table(32, 10)[:12]), **F32)


@pytest.mark.parametrize(
    "make", [lambda: SinusoidalPositionalEncoding(6, 20), lambda: LearnedPositionalEmbedding(20, 6)]
)
@given(seed=st.integers(0, 2**31 - 1), t=st.integers(1, 8))
def test_absolute_positions_broadcast_from_t_1t_and_bt(make, seed, t):
    module = make().double()
    g = torch.Generator().manual_seed(seed)
    x = randn(g, 3, t, 6)
    pos = torch.randint(0, 20, (t,), generator=g)
    table = module.table if isinstance(module, SinusoidalPositionalEncoding) else module.weight.detach()
    expected = x + table[pos]
    assert_close(module(x, pos), expected, **F64)  # (T,)
    assert_close(module(x, pos[None]), expected, **F64)  # (1, T)
    assert_close(module(x, pos.expand(3, t)), expected, **F64)  # (B, T)
    assert_close(module(x, torch.arange(t)), module(x), **F64)  # None means 0 … T-1
    rows = torch.randint(0, 20, (3, t), generator=g)  # a different row of positions per sequence
    out = module(x, rows)
    for b in range(3):
        assert_close(out[b], x[b] + table[rows[b]], **F64)


def test_learned_positional_embedding_trains_only_the_used_rows(gen):
    emb = LearnedPositionalEmbedding(16, 4)
    assert sorted(emb.state_dict()) == ["weight"]
    assert 0.015 < emb.weight.std().item() < 0.025  # N(0, 0.02²), the BERT / GPT-2 initialiser
    x = randn(gen, 2, 5, 4, dtype=torch.float32)
    emb(x, torch.tensor([[0, 1, 2, 3, 4], [7, 7, 7, 7, 7]])).sum().backward()
    used = torch.zeros(16, dtype=torch.bool)
    used[[0, 1, 2, 3, 4, 7]] = True
    assert (emb.weight.grad[used] != 0).all() and (emb.weight.grad[~used] == 0).all()
    assert_close(emb.weight.grad[7], torch.full((4,), 5.0))  # position 7 used five times


@pytest.mark.parametrize(
    "make", [lambda: SinusoidalPositionalEncoding(4, 512), lambda: LearnedPositionalEmbedding(512, 4)]
)
def test_absolute_positions_errors(make):
    module = make()
    with pytest.raises(ValueError, match="sequence length 700 exceeds max_len=512"):
        module(torch.zeros(1, 700, 4))
    with pytest.raises(ValueError, match=r"position 600 exceeds max_len=512 \(valid positions are 0 … 511\)"):
        module(torch.zeros(2, 3, 4), torch.tensor([0, 1, 600]))
    with pytest.raises(ValueError, match="must be non-negative"):
        module(torch.zeros(2, 3, 4), torch.tensor([0, -1, 2]))
    with pytest.raises(TypeError, match="positions must be an integer tensor"):
        module(torch.zeros(2, 3, 4), torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"positions must have shape \(T,\), \(1, T\) or \(B, T\) with B=2, T=3"):
        module(torch.zeros(2, 3, 4), torch.tensor([[0, 1, 2]] * 3))  # 3 rows for a batch of 2
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, d_model=4\)"):
        module(torch.zeros(2, 3, 5))


def test_sinusoidal_odd_width_is_supported():
    pe = SinusoidalPositionalEncoding(5, max_len=10)
    assert_close(pe.table, torch.from_numpy(ref.sinusoidal_table(10, 5)), **F64)
    assert_close(pe.table[:, 4], torch.sin(torch.arange(10, dtype=torch.float64) / 10000 ** (4 / 5)), **F64)


# ---- buffers: never in a state_dict, always at full precision ---------------------------------------------


def test_tables_are_non_persistent_buffers():
    pe = SinusoidalPositionalEncoding(8, max_len=16)
    rotary = RotaryEmbedding(8, max_len=16)
    assert dict(pe.state_dict()) == {} and dict(rotary.state_dict()) == {}
    assert {n for n, _ in pe.named_buffers()} == {"table"}
    assert {n for n, _ in rotary.named_buffers()} == {"cos_cached", "sin_cached"}
    mha = MultiHeadAttention(16, 2, rotary=rotary)
    assert not any("cached" in key for key in mha.state_dict())  # and not through a parent module either
    assert mha.rotary is rotary and dict(mha.named_modules())["rotary"] is rotary


def test_tables_regain_float64_precision_after_a_round_trip_through_float32(gen):
    pe = SinusoidalPositionalEncoding(16, max_len=600).float().double()
    rotary = RotaryEmbedding(8, max_len=600).float().double()
    x = randn(gen, 1, 600, 16)
    assert_close(pe(x), torch.from_numpy(x.numpy() + ref.sinusoidal_table(600, 16)), **F64)
    q = randn(gen, 1, 1, 600, 8)
    q_rot, _ = rotary(q, q)
    assert_close(q_rot, torch.from_numpy(ref.rope(q.numpy(), np.arange(600), 10000.0, "half")), **F64)


# ---- RoPE: reference and oracles --------------------------------------------------------------------------


@pytest.mark.parametrize("convention", CONVENTIONS)
@given(case=rope_cases(), s=st.integers(1, 6))
def test_rope_matches_reference_float64(convention, case, s):
    batch, heads, t, d_head, seed = case
    g = torch.Generator().manual_seed(seed)
    rotary = RotaryEmbedding(d_head, max_len=8, convention=convention)
    q, k = randn(g, batch, heads, t, d_head), randn(g, batch, heads, s, d_head)
    q_pos = torch.randint(0, 50, (batch, t), generator=g)  # beyond max_len=8: the caches grow
    k_pos = torch.randint(0, 50, (s,), generator=g)
    q_rot, k_rot = rotary(q, k, q_pos, k_positions=k_pos)
    assert_close(q_rot, torch.from_numpy(ref.rope(q.numpy(), q_pos.numpy()[:, None], 10000.0, convention)), **F64)
    assert_close(k_rot, torch.from_numpy(ref.rope(k.numpy(), k_pos.numpy(), 10000.0, convention)), **F64)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_rope_float32_matches_reference(gen, convention):
    rotary = RotaryEmbedding(16, theta=500000.0, convention=convention)
    q = randn(gen, 2, 3, 9, 16, dtype=torch.float32)
    pos = torch.tensor([0, 1, 2, 100, 500, 1000, 2000, 3000, 4095])  # large positions: angles made in float64
    q_rot, k_rot = rotary(q, q * 2, pos)
    assert q_rot.dtype == torch.float32
    expected = ref.rope(q.double().numpy(), pos.numpy(), 500000.0, convention)
    assert_close(q_rot.double(), torch.from_numpy(expected), **F32)
    assert_close(k_rot.double(), torch.from_numpy(2 * expected), **F32)


def test_rope_half_matches_hugging_face_llama(gen):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    batch, heads, t, d_head = 2, 3, 7, 8
    q, k = randn(gen, batch, heads, t, d_head), randn(gen, batch, heads, t, d_head)
    pos = torch.randint(0, 60, (batch, t), generator=gen)
    cos, sin = tf.rope_angles(pos, d_head)  # (B, T, Dh/2) float64
    # Llama's layout: the Dh/2 angles repeated twice, cos/sin (B, T, Dh), rotate_half on q and k
    q_hf, k_hf = apply_rotary_pos_emb(q, k, torch.cat([cos, cos], -1), torch.cat([sin, sin], -1))
    q_ours, k_ours = RotaryEmbedding(d_head, convention="half")(q, k, pos)
    assert_close(q_ours, q_hf, **F64)
    assert_close(k_ours, k_hf, **F64)
    # Llama's own float32 tables agree to float32 accuracy (its angles are float32 products)
    config = LlamaConfig(hidden_size=heads * d_head, num_attention_heads=heads, vocab_size=11)
    hf_cos, hf_sin = LlamaRotaryEmbedding(config)(q.float(), pos)
    assert_close(hf_cos, torch.cat([cos, cos], -1).float(), **F32)
    assert_close(hf_sin, torch.cat([sin, sin], -1).float(), **F32)


def test_rope_interleaved_matches_hugging_face_gptj(gen):
    from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb

    batch, heads, t, d_head = 2, 3, 7, 8
    q = randn(gen, batch, heads, t, d_head)
    pos = torch.randint(0, 60, (batch, t), generator=gen)
    cos, sin = tf.rope_angles(pos, d_head)  # (B, T, Dh/2)
    theirs = apply_rotary_pos_emb(q.transpose(1, 2), sin, cos).transpose(1, 2)  # GPT-J wants (B, T, H, Dh)
    ours, _ = RotaryEmbedding(d_head, convention="interleaved")(q, q, pos)
    assert_close(ours, theirs, **F64)


# ---- RoPE: properties --------------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", CONVENTIONS)
@given(case=rope_cases())
def test_rope_preserves_norms(convention, case):
    batch, heads, t, d_head, seed = case
    g = torch.Generator().manual_seed(seed)
    q = randn(g, batch, heads, t, d_head)
    pos = torch.randint(0, 3000, (batch, t), generator=g)
    q_rot, _ = RotaryEmbedding(d_head, convention=convention)(q, q, pos)
    assert_close(q_rot.norm(dim=-1), q.norm(dim=-1), **F64)
    assert not torch.allclose(q_rot[..., 1:, :], q[..., 1:, :]) or t == 1 or (pos == 0).all()


@pytest.mark.parametrize("convention", CONVENTIONS)
@given(case=rope_cases(), s=st.integers(1, 6), offset=st.integers(1, 500))
def test_rope_scores_depend_only_on_relative_position(convention, case, s, offset):
    """q_m · k_n after RoPE is unchanged when m and n are shifted by the same offset."""
    batch, heads, t, d_head, seed = case
    g = torch.Generator().manual_seed(seed)
    rotary = RotaryEmbedding(d_head, convention=convention)
    q, k = randn(g, batch, heads, t, d_head), randn(g, batch, heads, s, d_head)
    q_pos, k_pos = torch.randint(0, 100, (batch, t), generator=g), torch.randint(0, 100, (batch, s), generator=g)
    q1, k1 = rotary(q, k, q_pos, k_positions=k_pos)
    q2, k2 = rotary(q, k, q_pos + offset, k_positions=k_pos + offset)
    assert_close(q1 @ k1.transpose(-2, -1), q2 @ k2.transpose(-2, -1), rtol=1e-9, atol=1e-9)  # (B,H,T,S)
    # the absolute rotation did change the vectors: the law is about scores, not about q and k
    assert not torch.allclose(q1, q2)


@given(case=rope_cases())
def test_rope_conventions_differ_by_a_fixed_permutation(case):
    """rope_half(x[..., P]) = rope_interleaved(x)[..., P]: one rotation, two memory layouts."""
    batch, heads, t, d_head, seed = case
    g = torch.Generator().manual_seed(seed)
    x = randn(g, batch, heads, t, d_head)
    pos = torch.randint(0, 100, (batch, t), generator=g)
    perm = half_from_interleaved(d_head)
    half, _ = RotaryEmbedding(d_head, convention="half")(x[..., perm], x[..., perm], pos)
    interleaved, _ = RotaryEmbedding(d_head, convention="interleaved")(x, x, pos)
    assert_close(half, interleaved[..., perm], **F64)
    if d_head >= 4:  # with one pair the layouts coincide; otherwise they are genuinely different
        plain, _ = RotaryEmbedding(d_head, convention="half")(x, x, pos)
        assert not torch.allclose(plain, interleaved) or (pos == 0).all()


@pytest.mark.parametrize("convention", CONVENTIONS)
@given(case=rope_cases())
def test_rope_positions_broadcast_from_t_1t_and_bt(convention, case):
    batch, heads, t, d_head, seed = case
    g = torch.Generator().manual_seed(seed)
    rotary = RotaryEmbedding(d_head, convention=convention)
    q, k = randn(g, batch, heads, t, d_head), randn(g, batch, heads, t, d_head)
    pos = torch.randint(0, 100, (t,), generator=g)
    expected = rotary(q, k, pos)
    for shaped in (pos[None], pos.expand(batch, t)):
        for got, want in zip(rotary(q, k, shaped), expected):
            assert_close(got, want, **F64)
    rows = torch.randint(0, 100, (batch, t), generator=g)  # per-row positions = one call per row
    q_rot, k_rot = rotary(q, k, rows)
    for b in range(batch):
        q_b, k_b = rotary(q[b : b + 1], k[b : b + 1], rows[b])
        assert_close(q_rot[b : b + 1], q_b, **F64)
        assert_close(k_rot[b : b + 1], k_b, **F64)


def test_rope_position_zero_is_the_identity_and_default_positions_count_from_zero(gen):
    rotary = RotaryEmbedding(6, convention="interleaved")
    q = randn(gen, 2, 2, 4, 6)
    zero, _ = rotary(q, q, torch.zeros(4, dtype=torch.long))
    assert_close(zero, q, **F64)
    for got, want in zip(rotary(q, q), rotary(q, q, torch.arange(4))):
        assert_close(got, want, **F64)


def test_rope_caches_grow_past_max_len_and_match_a_larger_cache(gen):
    small, large = RotaryEmbedding(8, max_len=4), RotaryEmbedding(8, max_len=256)
    q = randn(gen, 1, 2, 3, 8)
    pos = torch.tensor([3, 100, 200])
    for got, want in zip(small(q, q, pos), large(q, q, pos)):
        assert_close(got, want, **F64)
    assert small.cos_cached.shape == (201, 4)  # grown to cover position 200
    assert small.cos_cached.dtype == torch.float64


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_gradcheck_rope(gen, convention):
    rotary = RotaryEmbedding(6, convention=convention)
    q = randn(gen, 2, 2, 3, 6).requires_grad_()
    k = randn(gen, 2, 2, 4, 6).requires_grad_()
    pos_q, pos_k = torch.tensor([[5, 6, 7], [0, 1, 2]]), torch.tensor([1, 9, 3, 4])
    assert torch.autograd.gradcheck(lambda q, k: rotary(q, k, pos_q, k_positions=pos_k), (q, k))


# ---- RoPE: errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d_head", [7, 0, -2])
def test_rope_rejects_odd_or_non_positive_width(d_head):
    with pytest.raises(ValueError, match=f"d_head must be a positive even int, got {d_head}"):
        RotaryEmbedding(d_head)
    with pytest.raises(ValueError, match="d_head must be a positive even int"):
        tf.rope_angles(torch.arange(3), d_head)


def test_rope_rejects_bad_conventions_and_theta():
    with pytest.raises(ValueError, match=r"convention must be one of \('half', 'interleaved'\), got 'neox'"):
        RotaryEmbedding(8, convention="neox")
    cos, sin = tf.rope_angles(torch.arange(3), 8)
    with pytest.raises(ValueError, match="convention must be one of"):
        tf.apply_rope(torch.zeros(3, 8), cos, sin, convention="pairs")
    with pytest.raises(ValueError, match="theta must be a number > 1"):
        RotaryEmbedding(8, theta=0.5)
    with pytest.raises(ValueError, match=r"cos and sin must have Dh/2 = 4 entries"):
        tf.apply_rope(torch.zeros(3, 8), cos[:, :3], sin[:, :3])


def test_rope_rejects_bad_positions_and_shapes():
    rotary = RotaryEmbedding(4)
    q, k = torch.zeros(2, 2, 3, 4), torch.zeros(2, 2, 5, 4)
    with pytest.raises(TypeError, match="positions of q must be an integer tensor"):
        rotary(q, q, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="must be an integer tensor"):
        rotary(q, q, torch.tensor([True, False, True]))
    with pytest.raises(ValueError, match="must be non-negative"):
        rotary(q, q, torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match=r"\(T,\), \(1, T\) or \(B, T\) with B=2, T=3; got \(4,\)"):
        rotary(q, q, torch.arange(4))
    with pytest.raises(ValueError, match=r"q has T=3 positions but k has S=5; pass k_positions="):
        rotary(q, k, torch.arange(3))
    with pytest.raises(ValueError, match=r"k must have shape \(B, H, T, d_head=4\)"):
        rotary(q, torch.zeros(2, 2, 3, 6), torch.arange(3))
    with pytest.raises(TypeError, match="positions must be an integer or real tensor"):
        tf.rope_angles(torch.tensor([True]), 4)


# ---- rotary multi-head attention ---------------------------------------------------------------------------


def random_mha(d_model, n_heads, g, **kwargs) -> MultiHeadAttention:
    mha = MultiHeadAttention(d_model, n_heads, **kwargs).double()
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(randn(g, *p.shape, scale=d_model**-0.5))
    return mha


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_rotary_attention_equals_projections_rope_then_attention(gen, convention):
    """Composed by hand from the reference rope: project, split heads, rotate q and k, attend, merge, project."""
    d_model, n_heads, batch, t = 12, 3, 2, 5
    mha = random_mha(d_model, n_heads, gen, rotary=RotaryEmbedding(4, convention=convention))
    x = randn(gen, batch, t, d_model)
    pos = torch.tensor([[0, 1, 2, 3, 4], [9, 10, 11, 40, 41]])  # (B, T)
    allowed = masks.causal_mask(t)
    q = tf.split_heads(mha.q_proj(x), n_heads).detach().numpy()  # (B,H,T,Dh)
    k = tf.split_heads(mha.k_proj(x), n_heads).detach().numpy()
    v = tf.split_heads(mha.v_proj(x), n_heads)
    q_rot = torch.from_numpy(ref.rope(q, pos.numpy()[:, None], 10000.0, convention))
    k_rot = torch.from_numpy(ref.rope(k, pos.numpy()[:, None], 10000.0, convention))
    expected = mha.out_proj(tf.merge_heads(tf.scaled_dot_product_attention(q_rot, k_rot, v, allowed=allowed)))
    assert_close(mha(x, allowed=allowed, positions=pos), expected, **F64)
    for impl in ("kernels", "torch"):  # the other implementations rotate too
        mha.impl = impl
        assert_close(mha(x, allowed=allowed, positions=pos), expected, **F64)


@given(seed=st.integers(0, 2**31 - 1), offset=st.integers(1, 1000), t=st.integers(2, 6))
def test_rotary_self_attention_is_translation_invariant(seed, offset, t):
    """Shifting every position by the same offset leaves rotary attention unchanged (sinusoidal would not)."""
    g = torch.Generator().manual_seed(seed)
    mha = random_mha(8, 2, g, rotary=RotaryEmbedding(4))
    x = randn(g, 2, t, 8)
    pos = torch.arange(t)
    assert_close(mha(x, positions=pos + offset), mha(x, positions=pos), rtol=1e-9, atol=1e-9)
    plain = random_mha(8, 2, torch.Generator().manual_seed(seed))
    rotated = random_mha(8, 2, torch.Generator().manual_seed(seed), rotary=RotaryEmbedding(4))
    assert not torch.allclose(rotated(x), plain(x))  # the rotation is not a no-op


def test_rotary_with_a_kv_cache_layout_equals_full_self_attention(gen):
    """Queries = the last T of S tokens at positions S-T … S-1, keys at 0 … S-1: the bottom rows of the full run."""
    s, t = 7, 3
    mha = random_mha(8, 2, gen, rotary=RotaryEmbedding(4, convention="interleaved"))
    x = randn(gen, 2, s, 8)
    full = mha(x, allowed=masks.causal_mask(s))
    tail = mha(x[:, s - t :], x, allowed=masks.causal_mask(t, s), positions=(torch.arange(s - t, s), torch.arange(s)))
    assert_close(tail, full[:, s - t :], **F64)


def test_rotary_attention_argument_errors():
    with pytest.raises(ValueError, match=r"rotary has d_head=8, but d_model=12 / n_heads=3 gives heads of width 4"):
        MultiHeadAttention(12, 3, rotary=RotaryEmbedding(8))
    with pytest.raises(TypeError, match="rotary must be a RotaryEmbedding or None"):
        MultiHeadAttention(12, 3, rotary="rope")
    x, memory = torch.zeros(2, 3, 12), torch.zeros(2, 5, 12)
    rotary_mha = MultiHeadAttention(12, 3, rotary=RotaryEmbedding(4))
    with pytest.raises(ValueError, match=r"needs positions=\(query_positions, key_positions\)"):
        rotary_mha(x, memory)
    with pytest.raises(ValueError, match="self-attention takes one positions tensor"):
        rotary_mha(x, positions=(torch.arange(3), torch.arange(3)))
    with pytest.raises(ValueError, match="positions= is only used by rotary embeddings"):
        MultiHeadAttention(12, 3)(x, positions=torch.arange(3))
