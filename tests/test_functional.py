"""functional.py: softmax, masked_softmax, scaled_dot_product_attention, split/merge heads.

Witnesses: the NumPy float64 reference (rtol 1e-10 in float64, rtol 1e-5 / atol 1e-6 in float32),
``torch.nn.functional.scaled_dot_product_attention`` as an oracle, and ``torch.autograd.gradcheck``. The laws that
every implementation must keep (masks, fully masked rows, gradients) run for each ``impl``; the equality of the
three implementations function by function is ``test_impls.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.testing import assert_close

from transformer_from_scratch import functional as tf
from transformer_from_scratch import masks
from transformer_from_scratch import reference as ref
from transformer_from_scratch._validation import broadcast_shape

F64 = {"rtol": 1e-10, "atol": 1e-12}  # float64 torch vs float64 NumPy
F32 = {"rtol": 1e-5, "atol": 1e-6}  # float32 torch vs float64 NumPy / float32 oracle


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()


def randn(g, *shape, dtype=torch.float64, scale=1.0):
    return torch.randn(*shape, generator=g, dtype=torch.float64).mul(scale).to(dtype)


def reference_sdpa(q, k, v, allowed=None, bias=None, scale=None):
    """Reference output and weights as float64 tensors (inputs taken at their own precision)."""
    out, w = ref.scaled_dot_product_attention(
        np64(q),
        np64(k),
        np64(v),
        allowed=None if allowed is None else allowed.numpy(),
        bias=None if bias is None else np64(bias),
        return_weights=True,
        scale=scale,
    )
    return torch.from_numpy(out), torch.from_numpy(w)


# ---- softmax -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_matches_reference_float64(gen, dim):
    x = randn(gen, 3, 4, 5, scale=5.0)
    assert_close(tf.softmax(x, dim=dim), torch.from_numpy(ref.softmax(x.numpy(), axis=dim)), **F64)


def test_softmax_float32_matches_reference(gen):
    x = randn(gen, 4, 9, dtype=torch.float32, scale=5.0)
    assert_close(tf.softmax(x).double(), torch.from_numpy(ref.softmax(np64(x))), **F32)


@pytest.mark.parametrize(
    ("dtype", "magnitude"),
    [(torch.float64, 1e4), (torch.float32, 1e4), (torch.float32, 3e38), (torch.float16, 6e4), (torch.float16, 1e4)],
)
def test_softmax_is_stable_for_huge_logits(gen, dtype, magnitude):
    """±1e4 overflows exp() in every dtype (fp16 tops out at 65504, fp32 at 3.4e38); the shift prevents it."""
    x = (torch.rand(3, 6, generator=gen, dtype=torch.float64) * 2 - 1) * magnitude
    x[:, 0] = magnitude  # at least one huge positive logit per row
    x = x.to(dtype)
    y = tf.softmax(x)
    assert not torch.isnan(y).any() and not torch.isinf(y).any()
    assert_close(
        y.double(), torch.from_numpy(ref.softmax(np64(x))), rtol=0.0, atol=1e-3 if dtype == torch.float16 else 1e-6
    )
    naive = torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)  # what the max-shift protects against
    assert torch.isnan(naive).any()


def test_softmax_gradient_matches_autograd_of_the_formula(gen):
    x = randn(gen, 3, 5).requires_grad_()
    assert torch.autograd.gradcheck(tf.softmax, (x,))


# ---- masked_softmax ------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", tf.IMPLS)
def test_masked_softmax_is_softmax_over_allowed_entries(gen, impl):
    scores = randn(gen, 2, 4, 6, scale=3.0)
    allowed = torch.rand(2, 4, 6, generator=gen) < 0.5
    allowed[0, 1] = False  # a row with nothing allowed
    allowed[1, 2] = True  # a row with everything allowed
    w = tf.masked_softmax(scores, allowed, impl=impl)
    assert (w[~allowed] == 0).all()
    assert (w[0, 1] == 0).all() and not torch.isnan(w).any()
    for b in range(2):
        for t in range(4):
            row = allowed[b, t]
            if row.any():
                assert_close(w[b, t, row], torch.from_numpy(ref.softmax(scores[b, t, row].numpy())), **F64)


def test_masked_softmax_without_mask_is_softmax(gen):
    x = randn(gen, 3, 7, scale=4.0)
    assert_close(tf.masked_softmax(x), tf.softmax(x), **F64)


@pytest.mark.parametrize("impl", tf.IMPLS)
@pytest.mark.parametrize("dim", [0, 1, -2])
def test_masked_softmax_along_another_dim_with_broadcast_mask(gen, dim, impl):
    scores = randn(gen, 2, 3, 4)
    allowed = torch.rand(3, 4, generator=gen) < 0.6  # lower rank than scores, broadcast
    full = allowed.expand(2, 3, 4)
    expected = tf.masked_softmax(scores.movedim(dim, -1), full.movedim(dim, -1)).movedim(-1, dim)
    assert_close(tf.masked_softmax(scores, allowed, dim=dim, impl=impl), expected, **F64)
    ones = tf.masked_softmax(scores, allowed, dim=dim, impl=impl).sum(dim)
    assert_close(ones, full.any(dim).double(), **F64)


@pytest.mark.parametrize("impl", tf.IMPLS)
def test_masked_softmax_backward_equals_autograd_of_torch_softmax(gen, impl):
    """Every implementation's backward (for "kernels" the hand-written y ⊙ (g - <g, y>)) against autograd through
    torch.softmax + where."""
    scores = randn(gen, 2, 3, 5, 6)
    allowed = torch.rand(2, 1, 5, 6, generator=gen) < 0.6
    allowed[..., 0, :] = False  # fully masked rows
    allowed[..., 1, :] = True
    g_out = randn(gen, 2, 3, 5, 6)

    x1 = scores.clone().requires_grad_()
    (tf.masked_softmax(x1, allowed, impl=impl) * g_out).sum().backward()

    x2 = scores.clone().requires_grad_()
    filled = x2.masked_fill(~allowed, float("-inf"))
    some = allowed.any(-1, keepdim=True)  # rows where anything is allowed
    composed = torch.where(some, torch.softmax(filled, dim=-1), torch.zeros(()))  # plain softmax: NaN rows
    (composed * g_out).sum().backward()
    expected = torch.where(some, x2.grad, torch.zeros(()))  # autograd leaves NaN in empty rows; ours gives 0
    assert_close(x1.grad, expected, **F64)
    assert (x1.grad[..., 0, :] == 0).all()  # nothing flows into a row that sees nothing


@pytest.mark.parametrize("impl", tf.IMPLS)
def test_masked_softmax_gradcheck_with_a_fully_masked_row(gen, impl):
    scores = randn(gen, 2, 4, 5).requires_grad_()
    allowed = torch.rand(2, 4, 5, generator=gen) < 0.6
    allowed[1, 3] = False
    assert torch.autograd.gradcheck(lambda x: tf.masked_softmax(x, allowed, impl=impl), (scores,))


@pytest.mark.parametrize("impl", tf.IMPLS)
def test_masked_softmax_with_neg_inf_scores_and_no_mask(impl):
    scores = torch.tensor([[float("-inf")] * 3, [0.0, float("-inf"), 0.0]], dtype=torch.float64)
    w = tf.masked_softmax(scores, impl=impl)
    assert_close(w, torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.5]], dtype=torch.float64), rtol=0, atol=0)


# ---- scaled_dot_product_attention: the reference ------------------------------------------------------


LEADING = [(), (3,), (2, 3), (2, 2, 3)]


@pytest.mark.parametrize("lead", LEADING, ids=[str(s) for s in LEADING])
def test_sdpa_matches_reference_float64_masks_bias_and_leading_dims(gen, lead):
    t, s, d_head, d_value = 4, 6, 5, 3
    q, k, v = randn(gen, *lead, t, d_head), randn(gen, *lead, s, d_head), randn(gen, *lead, s, d_value)
    allowed = torch.rand(*lead[:1], *([1] * len(lead[1:])), t, s, generator=gen) < 0.6  # broadcast over heads
    allowed[..., 1, :] = False  # a fully masked query
    bias = randn(gen, t, s)  # one bias for every leading index
    out, w = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, bias=bias, return_weights=True)
    ref_out, ref_w = reference_sdpa(q, k, v, allowed, bias)
    assert out.shape == (*lead, t, d_value) and w.shape == (*lead, t, s)
    assert_close(out, ref_out, **F64)
    assert_close(w, ref_w, **F64)
    assert (out[..., 1, :] == 0).all() and (w[..., 1, :] == 0).all()


@pytest.mark.parametrize("lead", LEADING, ids=[str(s) for s in LEADING])
def test_sdpa_matches_reference_float32(gen, lead):
    t, s, d_head, d_value = 5, 3, 4, 6
    q = randn(gen, *lead, t, d_head, dtype=torch.float32)
    k = randn(gen, *lead, s, d_head, dtype=torch.float32)
    v = randn(gen, *lead, s, d_value, dtype=torch.float32)
    allowed = torch.rand(t, s, generator=gen) < 0.7
    bias = randn(gen, *lead, t, s, dtype=torch.float32)
    out, w = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, bias=bias, return_weights=True)
    ref_out, ref_w = reference_sdpa(q, k, v, allowed, bias)
    assert out.dtype == torch.float32
    assert_close(out.double(), ref_out, **F32)
    assert_close(w.double(), ref_w, **F32)


def test_sdpa_without_mask_or_bias_matches_reference(gen):
    q, k, v = randn(gen, 2, 3, 4, 5), randn(gen, 2, 3, 7, 5), randn(gen, 2, 3, 7, 2)
    assert_close(tf.scaled_dot_product_attention(q, k, v), reference_sdpa(q, k, v)[0], **F64)


def test_neg_inf_bias_acts_like_a_disallowed_key(gen):
    q, k, v = randn(gen, 2, 2, 3, 4), randn(gen, 2, 2, 5, 4), randn(gen, 2, 2, 5, 4)
    allowed = torch.rand(2, 1, 3, 5, generator=gen) < 0.5
    allowed[0, 0, 0] = False
    bias = masks.allowed_to_bias(allowed, torch.float64)
    assert_close(
        tf.scaled_dot_product_attention(q, k, v, bias=bias),
        tf.scaled_dot_product_attention(q, k, v, allowed=allowed),
        **F64,
    )


def test_scaling_is_one_over_sqrt_d_head(gen):
    """The scores are q·k / √Dh — not / Dh, not / √D, not unscaled (written out with torch primitives)."""
    q, k, v = randn(gen, 2, 3, 4), randn(gen, 2, 5, 4), randn(gen, 2, 5, 3)
    _, w = tf.scaled_dot_product_attention(q, k, v, return_weights=True)
    expected = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(4), dim=-1)
    assert_close(w, expected, **F64)


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_scale_replaces_one_over_sqrt_d_head(gen, scale):
    """scale=c gives softmax(c · q·k + bias) (T5: c = 1), equal to the reference and to the written-out formula."""
    q, k, v = randn(gen, 2, 3, 4), randn(gen, 2, 5, 4), randn(gen, 2, 5, 3)
    bias = randn(gen, 3, 5)
    out, w = tf.scaled_dot_product_attention(q, k, v, bias=bias, scale=scale, return_weights=True)
    assert_close(w, torch.softmax(scale * (q @ k.transpose(-2, -1)) + bias, dim=-1), **F64)
    ref_out, ref_w = reference_sdpa(q, k, v, None, bias, scale=scale)
    assert_close(out, ref_out, **F64)
    assert_close(w, ref_w, **F64)


@pytest.mark.parametrize("scale", [0, -1.0, True, "1"])
def test_error_bad_scale(gen, scale):
    q = randn(gen, 2, 3, 4)
    with pytest.raises(ValueError, match="scale"):
        tf.scaled_dot_product_attention(q, q, q, scale=scale)


# ---- scaled_dot_product_attention: the PyTorch oracle -------------------------------------------------


@pytest.mark.parametrize(("t", "s"), [(3, 7), (6, 2), (5, 5)])
def test_sdpa_matches_torch_sdpa_with_bool_masks(gen, t, s):
    q = randn(gen, 2, 3, t, 8, dtype=torch.float32)
    k = randn(gen, 2, 3, s, 8, dtype=torch.float32)
    v = randn(gen, 2, 3, s, 5, dtype=torch.float32)
    allowed = torch.rand(2, 1, t, s, generator=gen) < 0.6
    allowed[..., 0] = True  # torch's kernel and ours agree on empty rows on torch 2.13, but avoid relying on it
    ours = tf.scaled_dot_product_attention(q, k, v, allowed=allowed)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_sdpa_matches_torch_sdpa_with_additive_bias(gen):
    q, k, v = (randn(gen, 2, 4, n, 8, dtype=torch.float32) for n in (3, 6, 6))
    bias = randn(gen, 1, 4, 3, 6, dtype=torch.float32)
    ours = tf.scaled_dot_product_attention(q, k, v, bias=bias)
    assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=bias), rtol=1e-6, atol=1e-6)


def test_our_causal_mask_is_bottom_right_aligned_unlike_is_causal(gen):
    """DESIGN: masks.causal_mask aligns to the bottom right; SDPA's is_causal to the top left when T ≠ S."""
    t, s = 3, 5
    q, k, v = randn(gen, 2, 2, t, 4), randn(gen, 2, 2, s, 4), randn(gen, 2, 2, s, 4)
    ours = tf.scaled_dot_product_attention(q, k, v, allowed=masks.causal_mask(t, s))
    top_left = torch.ones(t, s, dtype=torch.bool).tril()
    assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, s, dtype=torch.bool).tril(2)))
    assert not torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=top_left))


# ---- gradients -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", tf.IMPLS)
@pytest.mark.parametrize("return_weights", [True, False])
def test_sdpa_gradcheck_with_mask_bias_and_a_fully_masked_row(gen, return_weights, impl):
    """gradcheck through the output and, when they are returned, through the weights as well."""
    q = randn(gen, 2, 2, 3, 4).requires_grad_()
    k = randn(gen, 2, 2, 5, 4).requires_grad_()
    v = randn(gen, 2, 2, 5, 3).requires_grad_()
    bias = randn(gen, 1, 2, 3, 5).requires_grad_()
    allowed = torch.rand(2, 1, 3, 5, generator=gen) < 0.6
    allowed[1, 0, 2] = False  # fully masked query: zero output, zero gradient, no NaN

    def f(q, k, v, bias):
        return tf.scaled_dot_product_attention(
            q, k, v, allowed=allowed, bias=bias, return_weights=return_weights, impl=impl
        )

    assert torch.autograd.gradcheck(f, (q, k, v, bias))
    out = f(q, k, v, bias)[0] if return_weights else f(q, k, v, bias)
    out.sum().backward()
    assert not any(torch.isnan(t.grad).any() for t in (q, k, v, bias))
    assert (q.grad[1, :, 2] == 0).all()


# ---- the backward pass written out (kernels._Attention) against autograd of the composed operations ----------
# impl="kernels" makes scaled_dot_product_attention one autograd node whose backward is hand-written. Here the same
# mathematics is composed from plain torch operations (matmul, masked_fill, torch.softmax, matmul) and
# differentiated by autograd; values and every gradient must agree, whatever the mask, with and without dropout,
# through the output and through the returned weights. The textbook code (impl="plain") is held to the same.


def _allowed_for(kind: str, gen, b: int, h: int, t: int, s: int):
    if kind == "none":
        return None
    if kind == "causal (T, S)":  # shared by every (batch, head): enters torch.baddbmm as a 0/-inf matrix
        return masks.causal_mask(t, s)
    if kind == "key padding (B, 1, 1, S)":
        allowed = torch.ones(b, 1, 1, s, dtype=torch.bool)
        allowed[0, ..., s - 2 :] = False
        return allowed
    allowed = torch.rand(b, h, t, s, generator=gen) < 0.6  # "random (B, H, T, S)"
    allowed[..., 0] = True  # every row keeps a key: torch.softmax of an all -inf row is NaN (ours gives zeros)
    return allowed


def _composed(q, k, v, allowed, bias, keep, p):
    """The textbook formula, left to autograd."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    dropped = weights if keep is None else weights * keep / (1 - p)
    return dropped @ v, weights


def _both(q, k, v, allowed, bias, *, p=0.0, seed=0, use_weights=False, impl="kernels"):
    """(output, weights, gradients) of ours and of the composed formula, for one fixed scalar loss."""
    results = []
    for ours in (True, False):
        leaves = [x.detach().clone().requires_grad_() for x in (q, k, v, bias) if x is not None]
        qq, kk, vv = leaves[:3]
        bb = leaves[3] if bias is not None else None
        if ours:
            generator = torch.Generator().manual_seed(seed)
            out, weights = tf.scaled_dot_product_attention(
                qq, kk, vv, allowed=allowed, bias=bb, dropout_p=p, generator=generator, return_weights=True, impl=impl
            )
        else:
            scores_shape = (*qq.shape[:-1], kk.shape[-2])
            keep = None
            if p > 0:  # the draw ours makes: one uniform per weight, from a generator seeded alike
                keep = torch.rand(scores_shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32) >= p
            out, weights = _composed(qq, kk, vv, allowed, bb, keep, p)
        loss = (out * torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).reshape(out.shape)).sum()
        if use_weights:  # e.g. a penalty on attention entropy: the weights themselves reach the loss
            loss = (
                loss
                + (weights * torch.cos(torch.arange(weights.numel(), dtype=weights.dtype)).reshape(weights.shape)).sum()
            )
        grads = torch.autograd.grad(loss, leaves)
        results.append((out.detach(), weights.detach(), grads))
    return results


@pytest.mark.parametrize("kind", ["none", "causal (T, S)", "key padding (B, 1, 1, S)", "random (B, H, T, S)"])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("use_weights", [False, True])
@pytest.mark.parametrize("impl", ["kernels", "plain"])
def test_written_out_backward_equals_autograd_of_the_composed_formula_float64(gen, kind, with_bias, use_weights, impl):
    b, h, t, s = 2, 3, 4, 6
    q, k, v = randn(gen, b, h, t, 5), randn(gen, b, h, s, 5), randn(gen, b, h, s, 7)
    bias = randn(gen, h, t, s) if with_bias else None  # learned per head, as T5's relative bias: needs a gradient
    allowed = _allowed_for(kind, gen, b, h, t, s)
    (out, w, grads), (out_ref, w_ref, grads_ref) = _both(q, k, v, allowed, bias, use_weights=use_weights, impl=impl)
    assert_close(out, out_ref, **F64)
    assert_close(w, w_ref, **F64)
    assert len(grads) == len(grads_ref) == (4 if with_bias else 3)
    for g, g_ref in zip(grads, grads_ref):
        assert_close(g, g_ref, **F64)
    assert out.abs().max() > 0.1 and all(g.abs().max() > 1e-3 for g in grads)  # not trivially zero


@pytest.mark.parametrize("impl", ["kernels", "plain"])
def test_written_out_backward_with_dropout_equals_autograd_of_the_composed_formula(gen, impl):
    b, h, t, s = 2, 2, 5, 5
    q, k, v = randn(gen, b, h, t, 4), randn(gen, b, h, s, 4), randn(gen, b, h, s, 4)
    for use_weights in (False, True):
        (out, _, grads), (out_ref, _, grads_ref) = _both(
            q, k, v, masks.causal_mask(t, s), None, p=0.3, seed=3, use_weights=use_weights, impl=impl
        )
        assert_close(out, out_ref, **F64)
        for g, g_ref in zip(grads, grads_ref):
            assert_close(g, g_ref, **F64)
    (no_drop, _, _), _ = _both(q, k, v, masks.causal_mask(t, s), None)
    assert not torch.allclose(out, no_drop)  # the dropout did act


@pytest.mark.parametrize("impl", ["plain", "kernels"])
def test_returning_the_weights_changes_no_number(gen, impl):
    """Bit for bit (impl="torch" computes the weights without its fused kernel: equal only to rounding)."""
    q, k, v = randn(gen, 2, 3, 7, 4), randn(gen, 2, 3, 9, 4), randn(gen, 2, 3, 9, 4)
    for allowed in (None, masks.causal_mask(7, 9), torch.rand(2, 1, 7, 9, generator=gen) < 0.5):
        out = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, impl=impl)
        out_w, _ = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, return_weights=True, impl=impl)
        assert torch.equal(out, out_w)


@pytest.mark.parametrize("impl", tf.IMPLS)
def test_keys_and_values_shared_across_heads_broadcast_with_their_gradients(gen, impl):
    q = randn(gen, 2, 4, 5, 8).requires_grad_()
    k, v = randn(gen, 2, 1, 6, 8).requires_grad_(), randn(gen, 2, 1, 6, 8).requires_grad_()  # one k/v head
    out = tf.scaled_dot_product_attention(q, k, v, allowed=masks.causal_mask(5, 6), impl=impl)
    k_full, v_full = k.detach().expand(2, 4, 6, 8).clone(), v.detach().expand(2, 4, 6, 8).clone()
    k_full.requires_grad_(), v_full.requires_grad_()
    expected = tf.scaled_dot_product_attention(q.detach(), k_full, v_full, allowed=masks.causal_mask(5, 6))
    assert_close(out, expected, **F64)
    out.sum().backward()
    expected.sum().backward()
    assert_close(k.grad, k_full.grad.sum(1, keepdim=True), **F64)  # the gradient of a shared head: summed
    assert_close(v.grad, v_full.grad.sum(1, keepdim=True), **F64)


def test_attention_float32_matches_the_reference(gen):
    q, k, v = (randn(gen, 2, 4, 9, 8, dtype=torch.float32) for _ in range(3))
    allowed = masks.causal_mask(9, 9)
    out = tf.scaled_dot_product_attention(q, k, v, allowed=allowed)
    assert out.dtype == torch.float32
    assert_close(out.double(), reference_sdpa(q, k, v, allowed)[0], **F32)


@pytest.mark.parametrize("impl", tf.IMPLS)
def test_attention_under_bf16_autocast_trains_like_float32(gen, impl):
    q, k, v = (randn(gen, 2, 2, 6, 8, dtype=torch.float32).requires_grad_() for _ in range(3))
    allowed = masks.causal_mask(6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, impl=impl)
    assert out.dtype == torch.bfloat16
    grads = torch.autograd.grad(out.float().sum(), (q, k, v))  # the backward runs outside autocast
    expected = torch.autograd.grad(tf.scaled_dot_product_attention(q, k, v, allowed=allowed).sum(), (q, k, v))
    for g, g32 in zip(grads, expected):
        assert g.dtype == torch.float32
        assert_close(g, g32, rtol=0.05, atol=0.05)  # bf16 keeps 8 bits of mantissa: ~0.4% per rounding


# ---- dropout -------------------------------------------------------------------------------------------


def attention_with_identity_values(gen, p, generator, impl="plain"):
    """With v = I the output *is* the (dropped) weight matrix, so dropout can be inspected directly."""
    q, k = randn(gen, 2, 3, 40, 4), randn(gen, 2, 3, 50, 4)
    v = torch.eye(50, dtype=torch.float64).expand(2, 3, 50, 50)
    return tf.scaled_dot_product_attention(q, k, v, dropout_p=p, generator=generator, return_weights=True, impl=impl)


def test_dropout_is_reproducible_with_a_generator(gen):
    a, _ = attention_with_identity_values(gen, 0.3, torch.Generator().manual_seed(7))
    gen.manual_seed(1234)
    b, _ = attention_with_identity_values(gen, 0.3, torch.Generator().manual_seed(7))
    gen.manual_seed(1234)
    c, _ = attention_with_identity_values(gen, 0.3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("impl", tf.IMPLS)
def test_dropout_drops_with_rate_p_and_rescales_the_rest(gen, impl):
    p = 0.25
    generator = None if impl == "torch" else torch.Generator().manual_seed(0)  # torch's draws its own
    out, weights = attention_with_identity_values(gen, p, generator, impl)
    kept = out != 0
    assert_close(out[kept], weights[kept] / (1 - p), **F64)  # inverted dropout: kept weights scaled by 1/(1-p)
    n = weights.numel()
    dropped = n - int(kept.sum())
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(dropped - n * p) < 5 * sigma, (dropped, n * p, sigma)
    # the returned weights are the ones before dropout: rows still sum to 1
    assert_close(weights.sum(-1), torch.ones(2, 3, 40, dtype=torch.float64), **F64)


def test_dropout_zero_changes_nothing(gen):
    out, weights = attention_with_identity_values(gen, 0.0, None)
    assert torch.equal(out, weights)


# ---- split / merge heads -------------------------------------------------------------------------------


def test_split_heads_gives_head_h_the_contiguous_slice(gen):
    x = randn(gen, 2, 5, 12)
    heads = tf.split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    for h in range(3):
        assert torch.equal(heads[:, h], x[..., h * 4 : (h + 1) * 4])
    assert torch.equal(tf.merge_heads(heads), x)


# ---- errors --------------------------------------------------------------------------------------------


def qkv(g, t=3, s=4, d=5, lead=(2, 3)):
    return randn(g, *lead, t, d), randn(g, *lead, s, d), randn(g, *lead, s, d)


def test_error_non_bool_mask(gen):
    q, k, v = qkv(gen)
    with pytest.raises(TypeError, match=r"allowed must have dtype torch.bool .* got torch.float32"):
        tf.scaled_dot_product_attention(q, k, v, allowed=torch.ones(3, 4))
    with pytest.raises(TypeError, match=r"allowed must have dtype torch.bool .* got torch.int64"):
        tf.scaled_dot_product_attention(q, k, v, allowed=torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="allowed must be a torch.Tensor .* got ndarray"):
        tf.scaled_dot_product_attention(q, k, v, allowed=np.ones((3, 4), dtype=bool))


def test_error_mask_not_broadcastable_names_both_shapes(gen):
    q, k, v = qkv(gen)
    with pytest.raises(ValueError, match=r"allowed of shape \(4, 3\) is not broadcastable .* \(2, 3, 3, 4\)"):
        tf.scaled_dot_product_attention(q, k, v, allowed=torch.ones(4, 3, dtype=torch.bool))  # transposed
    with pytest.raises(ValueError, match=r"allowed of shape \(1, 2, 3, 3, 4\) is not broadcastable .* \(2, 3, 3, 4\)"):
        tf.scaled_dot_product_attention(q, k, v, allowed=torch.ones(1, 2, 3, 3, 4, dtype=torch.bool))  # extra dim


def test_error_bias(gen):
    q, k, v = qkv(gen)
    with pytest.raises(TypeError, match="bias must be a floating-point tensor, got torch.bool"):
        tf.scaled_dot_product_attention(q, k, v, bias=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"bias of shape \(3, 5\) is not broadcastable .* \(2, 3, 3, 4\)"):
        tf.scaled_dot_product_attention(q, k, v, bias=torch.zeros(3, 5, dtype=torch.float64))


def test_error_q_k_v_shapes_and_dtypes(gen):
    q, k, v = qkv(gen)
    with pytest.raises(ValueError, match=r"q and k must have the same width Dh, got q \(2, 3, 3, 5\) and k"):
        tf.scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match=r"k and v must have the same length S, got k \(2, 3, 4, 5\) and v"):
        tf.scaled_dot_product_attention(q, k, v[..., :3, :])
    with pytest.raises(ValueError, match=r"leading .* dimensions of q, k, v .* q \(2, 3, 3, 5\), k \(3, 3, 4, 5\)"):
        tf.scaled_dot_product_attention(q, torch.cat([k, k[:1]]), torch.cat([v, v[:1]]))  # batch 2 vs 3
    with pytest.raises(ValueError, match=r"leading .* v \(2, 2, 4, 5\)"):
        tf.scaled_dot_product_attention(q, k, v[:, :2])  # heads 3 vs 2 in v only
    with pytest.raises(TypeError, match="q, k, v must share a dtype, got torch.float64, torch.float32"):
        tf.scaled_dot_product_attention(q, k.float(), v)
    with pytest.raises(ValueError, match=r"q must have shape \(..., length, width\), got \(5,\)"):
        tf.scaled_dot_product_attention(q[0, 0, 0], k, v)
    with pytest.raises(TypeError, match="k must be a torch.Tensor, got list"):
        tf.scaled_dot_product_attention(q, [[1.0]], v)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_error_bad_dropout(gen, p):
    q, k, v = qkv(gen)
    with pytest.raises(ValueError, match=rf"dropout_p must be in \[0, 1\), got {p}"):
        tf.scaled_dot_product_attention(q, k, v, dropout_p=p)


def test_error_split_heads_not_divisible(gen):
    with pytest.raises(ValueError, match="width 10 is not divisible by n_heads=4"):
        tf.split_heads(randn(gen, 2, 3, 10), 4)


def test_error_masked_softmax_mask(gen):
    with pytest.raises(TypeError, match="allowed must have dtype torch.bool"):
        tf.masked_softmax(randn(gen, 2, 3), torch.ones(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"allowed of shape \(3, 2\) is not broadcastable .* \(2, 3\)"):
        tf.masked_softmax(randn(gen, 2, 3), torch.ones(3, 2, dtype=torch.bool))


def test_check_allowed_accepts_broadcastable_masks():
    for shape in [(4,), (3, 4), (1, 1, 3, 4), (2, 1, 1, 4), (2, 3, 3, 4)]:
        tf.check_allowed(torch.ones(shape, dtype=torch.bool), (2, 3, 3, 4))
    tf.check_allowed(None, (2, 3, 3, 4))


@given(st.lists(st.lists(st.sampled_from([0, 1, 1, 2, 3]), max_size=4), min_size=1, max_size=3))
def test_broadcast_shape_agrees_with_torch_broadcast_shapes(shapes):
    """The shape checks of every attention call use a written-out broadcast rule (torch.broadcast_shapes is ~10×
    slower); it must accept, reject and size exactly as PyTorch does — length-0 axes included."""
    try:
        expected = tuple(torch.broadcast_shapes(*map(tuple, shapes)))
    except RuntimeError:
        expected = None
    assert broadcast_shape(*shapes) == expected
