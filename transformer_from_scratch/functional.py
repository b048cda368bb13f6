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


class _MaskedSoftmax(torch.autograd.Function):
    r"""Softmax over the last dimension with an optional ``allowed`` mask and a hand-written backward.

    Forward: y = exp(x - m) / Σ exp(x - m), entries not allowed set to exactly 0.
    Backward (the softmax Jacobian–vector product): ∂L/∂x_i = y_i · (g_i - Σ_j g_j y_j), with g = ∂L/∂y.
    Only y is kept for the backward pass — one (…, T, S) tensor instead of the several that autograd
    would keep for the composed operations, which is what makes the hand-written attention fast.
    """

    @staticmethod
    def forward(ctx, x: Tensor, allowed: Tensor | None) -> Tensor:
        if allowed is not None:
            x = x.masked_fill(~allowed, float("-inf"))
        m = x.amax(dim=-1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # fully masked row: shift by 0, not -inf
        y = x - m  # new tensor; the operations below work in place on it
        y.exp_()  # exp(-inf) = 0 for every disallowed entry
        denom = y.sum(dim=-1, keepdim=True)
        y.div_(denom.masked_fill_(denom == 0, 1.0))  # 0 / 1 = 0 on rows where nothing is allowed
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
    if dim not in (-1, scores.dim() - 1):
        moved = masked_softmax(scores.movedim(dim, -1), None if allowed is None else allowed.movedim(dim, -1))
        return moved.movedim(-1, dim)
    return _MaskedSoftmax.apply(scores, allowed)


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
    try:
        shape = torch.broadcast_shapes(allowed.shape, scores_shape)
    except RuntimeError:
        raise _broadcast_error(name, tuple(allowed.shape), tuple(scores_shape)) from None
    if tuple(shape) != tuple(scores_shape):
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
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")


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
    """
    _check_qkv(q, k, v)
    d_k = q.shape[-1]
    # Scaling q by 1/√d_k before the product is the same as scaling the (larger) scores after it.
    scores = torch.matmul(q / math.sqrt(d_k), k.transpose(-2, -1))  # (…,T,Dh)·(…,Dh,S) -> (…,T,S)
    check_allowed(allowed, tuple(scores.shape))
    if bias is not None:
        if not isinstance(bias, Tensor) or not bias.is_floating_point():
            raise TypeError(f"bias must be a floating-point tensor, got {getattr(bias, 'dtype', type(bias))}")
        try:
            if tuple(torch.broadcast_shapes(bias.shape, scores.shape)) != tuple(scores.shape):
                raise RuntimeError
        except RuntimeError:
            raise _broadcast_error("bias", tuple(bias.shape), tuple(scores.shape)) from None
        scores = scores + bias
    weights = masked_softmax(scores, allowed)  # (…,T,S), rows sum to 1 (or 0 where nothing is allowed)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    dropped = weights
    if dropout_p > 0.0:
        keep = torch.rand(weights.shape, generator=generator, device=weights.device) >= dropout_p
        dropped = weights * keep / (1.0 - dropout_p)
    out = torch.matmul(dropped, v)  # (…,T,S)·(…,S,Dv) -> (…,T,Dv)
    return (out, weights) if return_weights else out


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, T, D) -> (B, H, T, Dh): head h owns the contiguous slice D[h·Dh : (h+1)·Dh]."""
    if x.shape[-1] % n_heads != 0:
        raise ValueError(f"width {x.shape[-1]} is not divisible by n_heads={n_heads}")
    return rearrange(x, "b t (h d) -> b h t d", h=n_heads)  # (B,T,D) -> (B,H,T,Dh)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, Dh) -> (B, T, D): the exact inverse of :func:`split_heads`."""
    return rearrange(x, "b h t d -> b t (h d)")  # (B,H,T,Dh) -> (B,T,D)
