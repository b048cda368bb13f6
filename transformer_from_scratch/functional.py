r"""Pure tensor functions: the mathematics of the Transformer, with no parameters of their own.

Modules (``attention.py``, ``layers.py``, ...) own the weights and call these functions; the tests and
the NumPy references in ``reference/`` target them directly.

Shape legend — used in every comment of the package:

    B  batch            T  query length        S  key/value length
    H  heads            Dh head width          D  model width (d_model = H · Dh)
    F  feed-forward width                      V  vocabulary size

Batch comes first everywhere. A boolean mask is called ``allowed`` and is ``True`` where query *i* may
attend to key *j* (the polarity of ``torch.nn.functional.scaled_dot_product_attention``); it broadcasts to
(B, H, T, S). A query row with no allowed key gets all-zero weights and a zero output, never NaN.
"""

from __future__ import annotations

import itertools
import math

import torch
from einops import rearrange
from torch import Tensor

__all__ = [
    "softmax",
    "masked_softmax",
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "check_allowed",
]


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    r"""softmax(x)_i = exp(x_i - m) / Σ_j exp(x_j - m), with m = max_j x_j.

    Subtracting the row maximum changes nothing mathematically (the factor exp(-m) cancels) but keeps
    every exponent ≤ 0, so exp never overflows — the "numerically stable" softmax.
    """
    m = x.amax(dim=dim, keepdim=True).detach()  # the shift is a constant: its gradient cancels exactly
    e = torch.exp(x - m)
    return e / e.sum(dim=dim, keepdim=True)


_LOG2_E = math.log2(math.e)


def _softmax_last_dim(x: Tensor, *, inplace: bool) -> Tensor:
    """Softmax over the last dimension; -inf entries get weight 0. ``inplace=True`` overwrites ``x`` (a tensor the
    caller owns and no longer needs); otherwise one new tensor is allocated and the rest works in place on it.

    The row maximum m is subtracted first. A row that is all -inf (nothing allowed) has m = -inf; raising m to the
    most negative finite number keeps x - m = -inf there (weight 0) instead of -inf + inf = NaN, and the
    denominator of such a row, 0, is raised to 1, so the row comes out all zeros.
    """
    m = x.amax(dim=-1, keepdim=True).clamp_min_(torch.finfo(x.dtype).min)  # (…, 1)
    x = x.sub_(m) if inplace else x - m
    if x.dtype in (torch.float32, torch.float64):
        x.mul_(_LOG2_E).exp2_()  # exp(x - m) = 2^((x - m) · log₂ e); exp2(-inf) = 0 for disallowed entries
    else:
        x.exp_()  # half precision: rounding (x - m) · log₂ e would cost more than a rounding of exp
    denom = x.sum(dim=-1, keepdim=True)  # ≥ 1 where anything is allowed (the maximum contributes e⁰ = 1)
    return x.div_(denom.clamp_min_(1.0))  # 0 / 1 = 0 on rows where nothing is allowed


class _MaskedSoftmax(torch.autograd.Function):
    r"""Softmax over the last dimension with an optional ``allowed`` mask and a hand-written backward.

    Forward: y = exp(x - m) / Σ exp(x - m), entries not allowed set to exactly 0.
    Backward (the softmax Jacobian–vector product): ∂L/∂x_i = y_i · (g_i - Σ_j g_j y_j), with g = ∂L/∂y.
    Only y is kept for the backward pass — one (…, T, S) tensor instead of the several that autograd
    would keep for the composed operations.
    In float32 and float64, e^z is evaluated as 2^(z · log₂ e) — the same number up to one rounding of the
    product — because PyTorch's exp2 kernel is about three times faster than its exp on CPU.
    """

    @staticmethod
    def forward(ctx, x: Tensor, allowed: Tensor | None) -> Tensor:
        if allowed is None:
            y = _softmax_last_dim(x, inplace=False)
        else:  # masked_fill makes a new tensor, which the softmax may then overwrite
            y = _softmax_last_dim(x.masked_fill(~allowed, float("-inf")), inplace=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        (y,) = ctx.saved_tensors
        gy = g * y  # y ⊙ g
        return gy.addcmul_(y, gy.sum(dim=-1, keepdim=True), value=-1.0), None  # y ⊙ g - y ⊙ <g, y>


def masked_softmax(scores: Tensor, allowed: Tensor | None = None, dim: int = -1) -> Tensor:
    r"""Softmax over the allowed entries only; disallowed entries get weight exactly 0.

    A row where nothing is allowed (or every score is -inf) returns all zeros instead of the 0/0 = NaN
    a plain softmax would give. ``allowed`` (bool) broadcasts to ``scores``. See :class:`_MaskedSoftmax`
    for the hand-written backward pass.
    """
    check_allowed(allowed, tuple(scores.shape))
    if dim not in (-1, scores.dim() - 1):
        if allowed is not None:  # broadcast first: a mask of lower rank would move the wrong axis
            allowed = allowed.expand(scores.shape).movedim(dim, -1)
        return masked_softmax(scores.movedim(dim, -1), allowed).movedim(-1, dim)
    return _MaskedSoftmax.apply(scores, allowed)


def _broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape that ``shapes`` broadcast to (NumPy/PyTorch rules), or None when they do not broadcast.

    Written out rather than ``torch.broadcast_shapes``, which runs through PyTorch's Python reference
    implementation (11–17 µs a call on the project's CPU, against ~1.5 µs here) — a cost paid three times by
    every attention call, for checks alone.
    """
    out: list[int] = []
    for sizes in itertools.zip_longest(*(reversed(tuple(s)) for s in shapes), fillvalue=1):  # right-aligned
        other = {n for n in sizes if n != 1}  # sizes of 1 stretch; all others must agree (0 included)
        if len(other) > 1:
            return None
        out.append(other.pop() if other else 1)
    return tuple(reversed(out))


def _broadcast_error(name: str, got: tuple[int, ...], target: tuple[int, ...]) -> ValueError:
    return ValueError(
        f"{name} of shape {tuple(got)} is not broadcastable to the attention scores of shape "
        f"{tuple(target)} (…, T, S); pad it with singleton dimensions, e.g. (B, 1, 1, S) for key padding"
    )


def check_allowed(allowed: Tensor | None, scores_shape: tuple[int, ...], name: str = "allowed") -> None:
    """Raise an actionable error unless ``allowed`` is a bool tensor broadcastable to ``scores_shape``."""
    if allowed is None:
        return
    if not isinstance(allowed, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of dtype torch.bool, got {type(allowed).__name__}")
    if allowed.dtype != torch.bool:
        raise TypeError(
            f"{name} must have dtype torch.bool (True = may attend), got {allowed.dtype}; "
            "for additive float masks use bias=, for Hugging Face attention_mask use "
            "masks.from_hf_attention_mask()"
        )
    if _broadcast_shape(allowed.shape, scores_shape) != tuple(scores_shape):
        raise _broadcast_error(name, tuple(allowed.shape), tuple(scores_shape))


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., length, width), got {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same width Dh, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length S, got k {tuple(k.shape)} and v {tuple(v.shape)}")
    if _broadcast_shape(q.shape[:-2], k.shape[:-2], v.shape[:-2]) is None:
        raise ValueError(
            "the leading (batch, head, …) dimensions of q, k, v must match or broadcast, got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast runs matrix products in on ``device_type``, or None where autocast is off."""
    try:
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    except (TypeError, AttributeError):  # torch < 2.4: one pair of functions per kind of device
        if device_type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        if device_type == "cuda":
            return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
        return None


def _additive_mask(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """The bool mask as numbers to add to the scores: 0 where allowed, -inf where not (same shape)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, float("-inf"))


class _Attention(torch.autograd.Function):
    r"""softmax(c · Q Kᵀ + bias, allowed) V as one autograd node, with the backward pass written out.

    Per leading index (matrices Q (T, Dh), K (S, Dh), V (S, Dv)), with c = 1/√Dh, M the dropout mask scaled by
    1/(1 - p) (all ones without dropout) and ⊙ the elementwise product:

        S = c · Q Kᵀ + bias (disallowed entries -inf),   P = softmax(S) row by row,   O = (P ⊙ M) V

    Backward, given G = ∂L/∂O (T, Dv) and, when the weights P were returned and used, W = ∂L/∂P from them:

        ∂L/∂V = (P ⊙ M)ᵀ G          ∂L/∂P = (G Vᵀ) ⊙ M + W
        ∂L/∂S = P ⊙ (∂L/∂P - δ),    δ_i = Σ_j P_ij (∂L/∂P)_ij = Σ_d G_id O_id + Σ_j P_ij W_ij    (softmax JVP)
        ∂L/∂Q = c · ∂L/∂S K         ∂L/∂K = c · (∂L/∂S)ᵀ Q          ∂L/∂bias = ∂L/∂S summed over broadcast axes

    The first part of δ needs no (T, S) product: Σ_j P_ij M_ij (G Vᵀ)_ij = Σ_d G_id ((P ⊙ M) V)_id = Σ_d G_id O_id
    (the identity FlashAttention's backward uses, Dao et al. 2022, Alg. 4). Kept for the backward: Q, K, V (as
    contiguous (N, L, Dh) tensors), P, O and the dropout mask. Autograd of the composed operations would keep P but
    not O (and, with dropout, P ⊙ M as well); keeping O — T·Dv numbers per head — is what makes δ a sum over Dv
    instead of over the S keys. The scale c and a mask that is the same for every (batch, head) enter the score
    product itself (``torch.baddbmm``: c · Q Kᵀ plus a 0/-inf matrix in one pass); other masks and biases are
    applied in place, and the whole backward is a handful of kernels instead of a graph of a dozen nodes.
    """

    @staticmethod
    def forward(ctx, q, k, v, allowed, bias, dropout_p: float, generator, return_weights: bool):
        autocast_dtype = _autocast_dtype(q.device.type)
        if autocast_dtype is not None and q.dtype != torch.float64:
            # Under autocast the products below would run in the lower precision anyway; casting first makes the
            # tensors kept for the backward pass (which runs outside autocast) agree with it in dtype.
            q, k, v = q.to(autocast_dtype), k.to(autocast_dtype), v.to(autocast_dtype)
        *lead, t, d_head = q.shape
        s, scale = k.shape[-2], 1.0 / math.sqrt(d_head)
        q3, k3, v3 = q.reshape(-1, t, d_head), k.reshape(-1, s, d_head), v.reshape(-1, s, v.shape[-1])
        shared = allowed is not None and all(n == 1 for n in allowed.shape[:-2])  # one (T, S) mask for all
        if shared:
            additive = _additive_mask(allowed.reshape(allowed.shape[-2:]), q.dtype)  # (T, S) or (1, S), …
            scores = torch.baddbmm(additive, q3, k3.transpose(1, 2), alpha=scale)  # (N,T,Dh)·(N,Dh,S) -> (N,T,S)
        else:
            scores = torch.bmm(q3, k3.transpose(1, 2)).mul_(scale)  # (N,T,Dh)·(N,Dh,S) -> (N,T,S)
        scores4 = scores.view(*lead, t, s)  # the same memory with the leading axes back: (…, T, S)
        if bias is not None:
            scores4.add_(bias.to(scores.dtype))  # a float32 bias joins bf16/fp16 scores in their dtype
        if allowed is not None and not shared:
            if allowed.numel() < scores.numel():  # broadcast, e.g. key padding (B, 1, 1, S): add a small 0/-inf
                scores4.add_(_additive_mask(allowed, q.dtype))  # tensor — several times faster than masked_fill_
            else:
                scores4.masked_fill_(~allowed, float("-inf"))
        weights = _softmax_last_dim(scores, inplace=True)  # P (N, T, S), overwriting the scores
        keep = None
        dropped = weights
        if dropout_p > 0.0:  # one uniform draw per weight, from `generator`
            keep = (torch.rand(scores4.shape, generator=generator, device=q.device) >= dropout_p).view(weights.shape)
            dropped = weights * keep / (1.0 - dropout_p)  # P ⊙ M
        out = torch.bmm(dropped, v3)  # (N,T,S)·(N,S,Dv) -> (N,T,Dv)
        ctx.scale, ctx.dropout_p = scale, dropout_p
        ctx.shapes = (q.shape, k.shape, v.shape, None if bias is None else (bias.shape, bias.dtype))
        ctx.save_for_backward(q3, k3, v3, weights, out, keep)
        ctx.set_materialize_grads(False)  # an output nobody used gets None in backward, not a tensor of zeros
        out = out.view(*lead, t, v.shape[-1])
        return (out, weights.view(*lead, t, s)) if return_weights else out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor | None, g_weights: Tensor | None = None):
        q3, k3, v3, weights, out, keep = ctx.saved_tensors
        q_shape, k_shape, v_shape, bias_shape = ctx.shapes
        needs_q, needs_k, needs_v, _, needs_bias = ctx.needs_input_grad[:5]
        if g is None and g_weights is None:
            return (None,) * 8
        grad_v = None
        if g is not None:
            g3 = g.reshape(out.shape)  # G (N, T, Dv)
            grad_p = torch.bmm(g3, v3.transpose(1, 2))  # G Vᵀ: (N,T,Dv)·(N,Dv,S) -> (N,T,S)
            dropped = weights
            if keep is not None:
                scaled_keep = keep.to(weights.dtype).div_(1.0 - ctx.dropout_p)  # M (N, T, S), in the weights' dtype
                dropped = weights * scaled_keep  # P ⊙ M
                grad_p.mul_(scaled_keep)  # (G Vᵀ) ⊙ M
            if needs_v:
                grad_v = torch.bmm(dropped.transpose(1, 2), g3).view(v_shape)  # (P ⊙ M)ᵀ G: (N,S,T)·(N,T,Dv)
            delta = (g3 * out).sum(dim=-1, keepdim=True)  # Σ_d G O, (N, T, 1)
        else:  # only the returned weights reach the loss
            grad_p = torch.zeros_like(weights)
            delta = torch.zeros((*weights.shape[:-1], 1), dtype=weights.dtype, device=weights.device)
            if needs_v:
                grad_v = torch.zeros(v_shape, dtype=v3.dtype, device=v3.device)
        if g_weights is not None:
            w3 = g_weights.reshape(weights.shape)  # W (N, T, S)
            grad_p.add_(w3)
            delta.add_((w3 * weights).sum(dim=-1, keepdim=True))  # + Σ_j P W
        grad_s = grad_p.sub_(delta).mul_(weights)  # ∂L/∂S = P ⊙ (∂L/∂P - δ), over ∂L/∂P's memory
        grad_q = torch.bmm(grad_s, k3).mul_(ctx.scale).view(q_shape) if needs_q else None  # (N,T,S)·(N,S,Dh)
        grad_k = torch.bmm(grad_s.transpose(1, 2), q3).mul_(ctx.scale).view(k_shape) if needs_k else None
        grad_bias = None
        if needs_bias:
            shape, dtype = bias_shape  # (…,T,S) summed to the bias's own shape, in its own dtype
            grad_bias = grad_s.view(*q_shape[:-1], k_shape[-2]).sum_to_size(shape).to(dtype)
        return grad_q, grad_k, grad_v, None, grad_bias, None, None, None


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    allowed: Tensor | None = None,
    bias: Tensor | None = None,
    dropout_p: float = 0.0,
    generator: torch.Generator | None = None,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + bias) V — Vaswani et al. 2017, eq. (1).

    Shapes: q (…, T, Dh) · k (…, S, Dh) · v (…, S, Dv) · allowed/bias broadcastable to (…, T, S)
    -> output (…, T, Dv) and, with ``return_weights=True``, the weights (…, T, S).
    The leading dimensions "…" are usually (B, H) but any number works.

    ``allowed`` is boolean, True where query i may attend to key j. A query with nothing allowed gets
    zero weights and a zero output. ``bias`` is added to the scaled scores before the softmax (T5
    relative positions, ALiBi); -inf entries act like disallowed ones. ``dropout_p`` drops attention
    weights (inverted dropout, scaled by 1/(1-p)) using ``generator`` when given. The returned weights
    are the ones before dropout.

    The whole computation is one autograd node whose backward pass is written out (:class:`_Attention`), with or
    without the weights: returning them changes no number of the output, and a loss that uses them is
    differentiated through them as well.
    """
    _check_qkv(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    lead = _broadcast_shape(q.shape[:-2], k.shape[:-2], v.shape[:-2])  # checked by _check_qkv
    scores_shape = (*lead, q.shape[-2], k.shape[-2])  # (…, T, S)
    check_allowed(allowed, scores_shape)
    if bias is not None:
        if not isinstance(bias, Tensor) or not bias.is_floating_point():
            raise TypeError(f"bias must be a floating-point tensor, got {getattr(bias, 'dtype', type(bias))}")
        if _broadcast_shape(bias.shape, scores_shape) != scores_shape:
            raise _broadcast_error("bias", tuple(bias.shape), scores_shape)
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2] == lead):  # e.g. one key/value head shared by all
        q, k, v = (x.expand(*lead, *x.shape[-2:]) for x in (q, k, v))  # autograd sums the gradients back
    return _Attention.apply(q, k, v, allowed, bias, dropout_p, generator, return_weights)


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, T, D) -> (B, H, T, Dh): head h owns the contiguous slice D[h·Dh : (h+1)·Dh]."""
    if x.shape[-1] % n_heads != 0:
        raise ValueError(f"width {x.shape[-1]} is not divisible by n_heads={n_heads}")
    return rearrange(x, "b t (h d) -> b h t d", h=n_heads)  # (B,T,D) -> (B,H,T,Dh)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, Dh) -> (B, T, D): the exact inverse of :func:`split_heads`."""
    return rearrange(x, "b h t d -> b t (h d)")  # (B,H,T,Dh) -> (B,T,D)


# ---- layers and positions: normalisation, activations, rotary embeddings ------------------------------
# The oracles for these functions (F.layer_norm, nn.RMSNorm, F.gelu, F.silu) are deliberately not called
# here: the tests compare against them, so the mathematics below is written out by hand.

__all__ += [
    "layer_norm",
    "rms_norm",
    "relu",
    "gelu",
    "gelu_tanh",
    "silu",
    "rope_angles",
    "apply_rope",
    "ROPE_CONVENTIONS",
]


class _LayerNorm(torch.autograd.Function):
    r"""Layer normalisation over the last dimension with a hand-written backward — Ba et al. 2016, §3.

    Forward: μ = mean(x), σ² = mean((x - μ)²), r = 1 / √(σ² + ε), x̂ = (x - μ) · r, y = x̂ · w + b.
    Backward, with g = ∂L/∂y and ĝ = g · w (the gradient reaching x̂):

        ∂L/∂x = r · (ĝ - mean(ĝ) - x̂ · mean(ĝ · x̂)),    ∂L/∂w = Σ g · x̂,    ∂L/∂b = Σ g

    (sums over every position, means over the last dimension). Differentiating through μ removes the mean
    of ĝ; differentiating through σ² (∂r/∂x_i = -r³ (x_i - μ) / D) removes the part of ĝ along x̂.
    Only x̂ (…, D) and r (…, 1) are kept for the backward pass. The forward pass allocates two (…, D)
    tensors and the backward pass one; everything else works in place or reduces straight to (…, 1): on
    CPU, filling fresh memory costs more than the arithmetic.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
        d = x.shape[-1]
        mean = x.mean(dim=-1, keepdim=True)  # μ (…, 1)
        x_hat = x - mean  # (…, D), a new tensor; normalised in place below
        # σ = ‖x - μ‖ / √D, the root mean square of the centred row: σ² is the *biased* variance Σ (x - μ)² / D.
        sigma = torch.linalg.vector_norm(x_hat, dim=-1, keepdim=True).div_(math.sqrt(d))  # (…, 1)
        r = sigma.square_().add_(eps).rsqrt_()  # r = 1 / √(σ² + ε), (…, 1)
        x_hat.mul_(r)  # x̂ = (x - μ) · r
        ctx.save_for_backward(x_hat, r, weight, bias)
        if weight is None:
            return x_hat if bias is None else x_hat + bias
        return x_hat * weight if bias is None else torch.addcmul(bias, x_hat, weight)  # x̂ · w + b

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        x_hat, r, weight, bias = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        d = x_hat.shape[-1]
        g_x_hat = g * x_hat  # g · x̂, (…, D)
        grad_w = g_x_hat.sum_to_size(weight.shape) if need_w else None  # Σ g · x̂: (…, D) -> (D,)
        grad_b = g.sum_to_size(bias.shape) if need_b else None  # Σ g: (…, D) -> (D,)
        grad_x = None
        if need_x:
            # ∂L/∂x = r · (g · w + a + x̂ · c) with the per-row constants a = -mean(ĝ) = -Σ g w / D and
            # c = -mean(ĝ · x̂) = -Σ g x̂ w / D, as products with the column -w / D: (…, D)·(D, 1) -> (…, 1).
            w = torch.ones(d, dtype=g.dtype, device=g.device) if weight is None else weight.to(g.dtype)
            w_col = w[:, None] / -d  # (D, 1)
            a, c = g @ w_col, g_x_hat @ w_col  # (…, 1) each
            grad_x = torch.mul(g, w, out=g_x_hat)  # ĝ = g · w, written over g · x̂ (no longer needed)
            grad_x.add_(a).addcmul_(x_hat, c).mul_(r)  # r · (ĝ + a + x̂ · c)
        return grad_x, grad_w, grad_b, None


def layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float = 1e-5) -> Tensor:
    r"""LayerNorm(x) = (x - μ) / √(σ² + ε) · weight + bias over the last dimension — Ba et al. 2016.

    Shapes: x (…, D) · weight, bias (D,) or None -> (…, D).
    σ² is the *biased* variance (divide by D, not D - 1) and ε sits inside the square root: the
    convention of ``nn.LayerNorm`` and of every BERT/GPT checkpoint. Getting either detail wrong changes
    the outputs of a pretrained model by far more than rounding. See :class:`_LayerNorm` for the
    hand-written backward pass.
    """
    return _LayerNorm.apply(x, weight, bias, eps)


def rms_norm(x: Tensor, weight: Tensor | None, eps: float = 1e-6) -> Tensor:
    r"""RMSNorm(x) = x / √(mean(x²) + ε) · weight over the last dimension — Zhang & Sennrich 2019.

    Shapes: x (…, D) · weight (D,) or None -> (…, D), in the dtype of x.
    No centring and no bias. Half-precision inputs (float16, bfloat16) are normalised in float32 and the
    result is cast back, since a mean of squares in 8 bits of mantissa loses most of its digits; float32
    and float64 inputs are computed in their own precision. The weight is applied in that same
    computation dtype, before the cast back (Hugging Face's Llama casts first, then multiplies: the two
    differ by at most one rounding of the output).
    """
    compute_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    h = x.to(compute_dtype)
    mean_square = (h * h).mean(dim=-1, keepdim=True)  # (…, 1)
    y = h * torch.rsqrt(mean_square + eps)  # (…, D)
    if weight is not None:
        y = y * weight.to(compute_dtype)
    return y.to(x.dtype)


# The activations below are torch.autograd.Functions with their derivative written out. Autograd of the
# composed formulas keeps several intermediate tensors and, on CPU, spends most of its time allocating and
# filling them (measured with torch 2.13: ReLU through torch.where ~25× slower than torch.relu forward +
# backward, GELU through erf ~8× slower than F.gelu). Here each
# pass allocates one or two tensors and chains in-place operations (the trailing-underscore methods) on them.


class _ReLU(torch.autograd.Function):
    r"""ReLU(x) = max(x, 0), with a hand-written backward.

    Forward: y = max(x, 0), computed as a clamp from below at 0 (``clamp_min``: the same function).
    Backward: ∂y/∂x = 1 where x > 0 and 0 elsewhere (0 at x = 0, as ``torch.relu``), so ∂L/∂x = g · 1[x > 0].
    Since y ≥ 0, the indicator 1[x > 0] equals sign(y): only y is kept, and the backward is one product.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = x.clamp_min(0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.sign(y).mul_(g)  # g · 1[x > 0]


class _GELU(torch.autograd.Function):
    r"""GELU(x) = x · Φ(x), Φ(x) = ½ (1 + erf(x / √2)) the standard normal CDF — Hendrycks & Gimpel 2016.

    Backward (product rule, with Φ' = φ): ∂y/∂x = Φ(x) + x · φ(x), φ(x) = exp(-x² / 2) / √(2π) the
    standard normal density. Φ(x) is kept from the forward pass; φ(x) is recomputed in the backward.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        cdf = (x / math.sqrt(2.0)).erf_().add_(1.0).mul_(0.5)  # Φ(x) = ½ (1 + erf(x / √2))
        ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        x, cdf = ctx.saved_tensors
        # φ(x) = exp(-x²/2) / √(2π), with exp(z) = 2^(z · log₂ e) as in _MaskedSoftmax (exp2 is the faster kernel)
        pdf = (x * x).mul_(-0.5 * _LOG2_E).exp2_().mul_(1.0 / math.sqrt(2.0 * math.pi))
        return pdf.mul_(x).add_(cdf).mul_(g)  # g · (Φ(x) + x φ(x))


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


class _GELUTanh(torch.autograd.Function):
    r"""GELU, tanh approximation: y = ½ x (1 + tanh(u)), u = √(2/π) (x + 0.044715 x³) — GPT-2's ``gelu_new``.

    (Hendrycks & Gimpel 2016, §2.) Computed through the identity ½ (1 + tanh(u)) = σ(2u), σ the logistic
    sigmoid, i.e. y = x · σ(2u): the same function, without the cancellation of 1 + tanh(u) when
    tanh(u) → -1 (in float32 that loses ~1e-6 for x ≲ -4), and sigmoid is cheaper than tanh on CPU.
    Backward (product and chain rules, with σ'(v) = σ(v) σ(-v)):

        ∂y/∂x = σ(2u) + x · σ(2u) σ(-2u) · 2u' = σ(2u) · (1 + x · 2u' · σ(-2u)),
        2u' = 2 √(2/π) (1 + 3 · 0.044715 x²)

    σ(-2u) is evaluated directly rather than as 1 - σ(2u), which would cancel for large x. Only x is kept and
    2u is recomputed in the backward pass (two passes): keeping it would hold one more (…, F) tensor per layer
    from the forward to the backward pass (in ``bench/gpt_train.py`` autograd keeps 31.5 MiB instead of 37.5),
    and measured there the recomputation costs no time overall. The forward pass allocates one tensor: 2u is
    computed, squashed and multiplied by x in place.
    """

    @staticmethod
    def _two_u(x: Tensor) -> Tensor:
        # 2u = 2 √(2/π) (x + 0.044715 x³) = x · (2 √(2/π) + 2 √(2/π) · 0.044715 · x²): one addcmul, one product
        c = 2.0 * _SQRT_2_OVER_PI
        return torch.addcmul(x.new_tensor(c), x, x, value=c * _GELU_TANH_CUBIC).mul_(x)

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return _GELUTanh._two_u(x).sigmoid_().mul_(x)  # x · σ(2u) = ½ x (1 + tanh(u))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        two_u = _GELUTanh._two_u(x)
        s = torch.sigmoid(two_u)  # σ(2u)
        s_neg = two_u.neg_().sigmoid_()  # σ(-2u), written over 2u
        c = 2.0 * _SQRT_2_OVER_PI
        x_d_two_u = torch.addcmul(x.new_tensor(c), x, x, value=3.0 * c * _GELU_TANH_CUBIC).mul_(x)  # x · 2u'
        grad = torch.addcmul(x.new_tensor(1.0), x_d_two_u, s_neg, out=x_d_two_u)  # 1 + x · 2u' · σ(-2u)
        return grad.mul_(s).mul_(g)  # g · σ(2u) · (1 + x · 2u' · σ(-2u))


def relu(x: Tensor) -> Tensor:
    """ReLU(x) = max(0, x) — the activation of the 2017 Transformer's feed-forward layer (eq. 2).

    See :class:`_ReLU` for the backward pass."""
    return _ReLU.apply(x)


def gelu(x: Tensor) -> Tensor:
    r"""GELU(x) = x · Φ(x) = ½ x (1 + erf(x / √2)), exact — Hendrycks & Gimpel 2016; BERT's activation.

    See :class:`_GELU` for the backward pass."""
    return _GELU.apply(x)


def gelu_tanh(x: Tensor) -> Tensor:
    r"""GELU, tanh approximation: ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))) — GPT-2's ``gelu_new``.

    See :class:`_GELUTanh` for the backward pass."""
    return _GELUTanh.apply(x)


def silu(x: Tensor) -> Tensor:
    r"""SiLU(x) = x · σ(x), σ(x) = 1 / (1 + e^{-x}) — a.k.a. swish; the gate of SwiGLU (Shazeer 2020)."""
    return x * torch.sigmoid(x)


ROPE_CONVENTIONS = ("half", "interleaved")


def _check_rope_width(d_head: int) -> None:
    if not isinstance(d_head, int) or isinstance(d_head, bool) or d_head <= 0 or d_head % 2 != 0:
        raise ValueError(
            f"rotary embeddings rotate pairs of dimensions, so d_head must be a positive even int, got {d_head!r}"
        )


def _check_rope_convention(convention: str) -> None:
    if convention not in ROPE_CONVENTIONS:
        raise ValueError(f"convention must be one of {ROPE_CONVENTIONS}, got {convention!r}")


def rope_angles(positions: Tensor, d_head: int, theta: float = 10000.0) -> tuple[Tensor, Tensor]:
    r"""cos and sin of the rotary angles m · θ_i, θ_i = theta^(-2i/Dh), i = 0 … Dh/2 - 1 — Su et al. 2021.

    Shapes: positions (…) -> (cos, sin), each (…, Dh/2) in float64: one angle per rotated *pair* of
    dimensions, whichever layout :func:`apply_rope` uses. ``positions`` may be integer or real
    (fractional positions are how position-interpolation methods stretch a context). The angles are
    computed in float64: at position 2048 a float32 angle is off by ~10⁻⁴ rad, far more than the rounding
    of its cosine. :func:`apply_rope` casts to the dtype of its input.
    """
    _check_rope_width(d_head)
    if not isinstance(positions, Tensor):
        raise TypeError(f"positions must be a torch.Tensor, got {type(positions).__name__}")
    if positions.dtype == torch.bool or positions.is_complex():
        raise TypeError(f"positions must be an integer or real tensor, got {positions.dtype}")
    i = torch.arange(d_head // 2, dtype=torch.float64, device=positions.device)  # (Dh/2,)
    inv_freq = theta ** (-2.0 * i / d_head)  # θ_i, (Dh/2,)
    angles = positions.to(torch.float64)[..., None] * inv_freq  # (…, 1) · (Dh/2,) -> (…, Dh/2)
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, convention: str = "half") -> Tensor:
    r"""Rotate each pair (a, b) of dimensions of x by its angle: (a, b) -> (a cos - b sin, a sin + b cos).

    Shapes: x (…, T, Dh) · cos, sin broadcastable to (…, T, Dh/2) -> (…, T, Dh), in the dtype of x.
    ``convention`` says which dimensions form pair i (both use the same frequency θ_i for pair i):

    * ``"interleaved"`` — adjacent dimensions (2i, 2i+1), as written in RoFormer (Su et al. 2021) and in
      GPT-J / Mesh-TensorFlow checkpoints;
    * ``"half"`` — dimensions (i, i + Dh/2), the "rotate half" layout of GPT-NeoX and Llama.

    The two are the same rotation after a fixed permutation of the Dh dimensions, so a model trained
    with one runs with the other once its q/k projection rows are permuted (a test checks this).
    """
    _check_rope_convention(convention)
    _check_rope_width(x.shape[-1])
    if cos.shape[-1] != x.shape[-1] // 2 or sin.shape[-1] != x.shape[-1] // 2:
        raise ValueError(
            f"cos and sin must have Dh/2 = {x.shape[-1] // 2} entries in their last dimension, "
            f"got cos {tuple(cos.shape)} and sin {tuple(sin.shape)}"
        )
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    if convention == "half":
        a, b = x.chunk(2, dim=-1)  # (…, T, Dh) -> 2 × (…, T, Dh/2): pair i is (x_i, x_{i+Dh/2})
        return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)  # -> (…, T, Dh)
    a, b = x[..., 0::2], x[..., 1::2]  # (…, T, Dh) -> 2 × (…, T, Dh/2): pair i is (x_{2i}, x_{2i+1})
    rotated = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)  # (…, T, Dh/2, 2)
    return rotated.flatten(-2)  # (…, T, Dh/2, 2) -> (…, T, Dh), re-interleaving the pairs


# ---- losses: log-softmax and cross-entropy ------------------------------------------------------------
# Cross-entropy from a hand-written log-softmax — the loss of every model in this package.
#
# For logits z over a vocabulary of V classes and a target class y:
#
#     log p_v = z_v - m - log Σ_u exp(z_u - m),   m = max_u z_u          (stable log-softmax)
#     NLL     = -log p_y
#     loss    = (1 - ε) · NLL + ε · mean_v(-log p_v)                     (label smoothing, ε ∈ [0, 1])
#
# Label smoothing (Szegedy et al. 2016, "Rethinking the Inception Architecture", §7) trains against the
# mixture (1 - ε)·onehot(y) + ε·uniform(V) instead of the one-hot target; Vaswani et al. 2017 (§5.4) used
# ε = 0.1. The formula above is that mixture's cross-entropy, and it is what ``F.cross_entropy`` computes.
#
# Shapes: logits (…, V) — class dimension **last**, any number of leading dimensions, e.g. (B, T, V) —
# and targets (…) of integer class ids. ``F.cross_entropy`` puts the classes in dimension 1 instead; for
# (B, T, V) logits call it as ``F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))``.

__all__ += ["log_softmax", "cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")




class _LogSoftmax(torch.autograd.Function):
    r"""log softmax over the last dimension with a hand-written backward.

    Forward: y = (x - m) - log Σ exp(x - m). Backward: with p = exp(y) = softmax(x) and g = ∂L/∂y,
    ∂L/∂x_i = g_i - p_i Σ_j g_j (each y_j depends on x_i through the log-sum: ∂y_j/∂x_i = δ_ij - p_i).
    Only y is kept; p is recomputed from it. As in ``functional._MaskedSoftmax``, e^z is evaluated as
    2^(z · log₂ e) in float32 and float64, the faster kernel on CPU.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        m = x.amax(dim=-1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # a row of all -inf: shift by 0, not -inf
        y = x - m  # (…, V): the one large tensor allocated; exponentiated in place, then overwritten by the result
        if y.dtype in (torch.float32, torch.float64):
            y.mul_(_LOG2_E).exp2_()  # exp(x - m) = 2^((x - m) · log₂ e)
        else:
            y.exp_()
        log_sum = y.sum(dim=-1, keepdim=True).log_()  # log Σ exp(x - m), (…, 1)
        torch.sub(x, m, out=y).sub_(log_sum)  # y = (x - m) - log Σ exp(x - m), recomputed from x in y's memory
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        p = _exp(y)  # softmax(x), a new tensor
        return p.mul_(g.sum(dim=-1, keepdim=True).neg_()).add_(g)  # g - p · Σ g


def _exp(x: Tensor) -> Tensor:
    """e^x as a new tensor, through exp2 in float32/float64."""
    if x.dtype in (torch.float32, torch.float64):
        return (x * _LOG2_E).exp2_()
    return torch.exp(x)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    r"""log softmax(x)_i = (x_i - m) - log Σ_j exp(x_j - m), with m = max_j x_j.

    Subtracting the maximum keeps every exponent ≤ 0, so exp never overflows (logits of ±1e4 stay finite
    in float32), and the largest term of the sum is exactly 1, so the log never sees 0. Computing
    log(softmax(x)) instead would give log(0) = -inf wherever a probability underflows. See
    :class:`_LogSoftmax` for the hand-written backward pass.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if dim not in (-1, x.dim() - 1):
        return _LogSoftmax.apply(x.movedim(dim, -1)).movedim(-1, dim)
    return _LogSoftmax.apply(x)


def _check_inputs(logits: Tensor, targets: Tensor, ignore_index: int, label_smoothing: float, reduction: str):
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(
            f"logits must be a floating-point tensor (…, V), got {getattr(logits, 'dtype', type(logits).__name__)}"
        )
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a tensor of class ids, got {type(targets).__name__}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(
            f"targets must hold integer class ids (torch.long), got {targets.dtype}; "
            "probability ('soft') targets are not supported — use label_smoothing= for smoothed targets"
        )
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (…, V) with V ≥ 1 classes, got {tuple(logits.shape)}")
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"targets must have the shape of logits without the class dimension: logits {tuple(logits.shape)} "
            f"needs targets {tuple(logits.shape[:-1])}, got {tuple(targets.shape)}"
        )
    if targets.device != logits.device:
        raise ValueError(f"targets are on {targets.device} but logits on {logits.device}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    n_classes = logits.shape[-1]
    real = targets != ignore_index
    bad = real & ((targets < 0) | (targets >= n_classes))
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"target {int(targets[where])} at position {where} is outside the {n_classes} classes [0, {n_classes}) "
            f"and is not ignore_index={ignore_index}"
        )


def cross_entropy(
    logits: Tensor,
    targets: Tensor,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    r"""loss = (1 - ε)·(-log p_y) + ε·mean_v(-log p_v), averaged over the targets that are not ignored.

    Shapes: logits (…, V) · targets (…) integer class ids -> a 0-d tensor ("mean", "sum") or (…) ("none").

    Targets equal to ``ignore_index`` (padding, unmasked MLM positions) contribute 0 and are left out of
    the mean's denominator. ``reduction="none"`` returns the per-target losses with 0 at ignored ones.

    Equal to ``F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ...)`` with the same arguments,
    with one deliberate difference:

    # Deviation: when *every* target is ignored, the "mean" is 0.0 (with zero gradients), where
    # ``F.cross_entropy`` returns 0/0 = NaN. A batch without a single target to predict (an MLM batch in
    # which no token was masked) then leaves the weights unchanged instead of turning them into NaN.
    """
    _check_inputs(logits, targets, ignore_index, label_smoothing, reduction)
    real = targets != ignore_index  # (…) True where there is a target to predict
    safe_targets = torch.where(real, targets, torch.zeros_like(targets)).long()  # ignored -> class 0, masked below

    log_p = log_softmax(logits, dim=-1)  # (…, V)
    nll = -log_p.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)  # (…, V) pick class y -> (…)
    per_target = nll
    if label_smoothing > 0.0:
        uniform_ce = -log_p.mean(dim=-1)  # (…, V) -> (…): cross-entropy against the uniform distribution
        per_target = (1.0 - label_smoothing) * nll + label_smoothing * uniform_ce
    per_target = torch.where(real, per_target, torch.zeros_like(per_target))  # ignored targets contribute 0

    if reduction == "none":
        return per_target
    total = per_target.sum()
    if reduction == "sum":
        return total
    n_real = real.sum().clamp(min=1).to(total.dtype)  # all ignored: 0 / 1 = 0 (see Deviation above)
    return total / n_real
