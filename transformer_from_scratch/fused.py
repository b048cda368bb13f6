r"""The third implementation: the functions of :mod:`functional` dispatched to PyTorch's own fused built-ins.

    masked_softmax                 torch.softmax                          (+ zero rows where nothing is allowed)
    scaled_dot_product_attention   F.scaled_dot_product_attention         (flash / memory-efficient / math kernels)
    layer_norm, rms_norm           F.layer_norm, F.rms_norm
    relu, gelu, gelu_tanh, silu    F.relu, F.gelu, F.gelu(approximate="tanh"), F.silu
    log_softmax, cross_entropy     F.log_softmax, F.cross_entropy

They are what a user would call instead of this package, wrapped so that they keep the package's conventions:
a boolean ``allowed`` is True where a query may attend; a query with nothing to attend to gets zero weights and a
zero output (never NaN, in values or gradients); a cross-entropy whose every target is ignored is 0, not NaN.
Selected with ``impl="torch"`` (see :func:`functional.use_impl`); the inputs are checked by ``functional`` first.
``tests/test_impls.py`` holds them equal to the textbook.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "masked_softmax",
    "scaled_dot_product_attention",
    "layer_norm",
    "rms_norm",
    "relu",
    "gelu",
    "gelu_tanh",
    "silu",
    "log_softmax",
    "cross_entropy",
]


def masked_softmax(scores: Tensor, allowed: Tensor | None = None, dim: int = -1) -> Tensor:
    """``torch.softmax`` over the allowed entries; a row with nothing allowed (or only -inf scores) gives zeros.

    ``torch.softmax`` of an all -inf row is 0/0 = NaN, in the forward pass and in its gradient. Such rows are given
    finite scores before the softmax (so no NaN arises anywhere) and zeroed after it.
    """
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    empty = (scores == float("-inf")).all(dim=dim, keepdim=True)  # rows with nothing to attend to
    weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=dim)
    return weights.masked_fill(empty, 0.0)


def scaled_dot_product_attention(q, k, v, allowed, bias, dropout_p, generator, return_weights, scale=None):
    """``F.scaled_dot_product_attention`` with the package's mask polarity and zero rows where nothing is allowed.

    The arguments are those of ``functional.scaled_dot_product_attention``, checked there.
    The fused kernel never forms the weights, so with ``return_weights=True`` they are computed from the same
    built-ins unfused: ``torch.matmul``, :func:`masked_softmax`, ``torch.matmul``. The fused kernel draws its
    dropout from PyTorch's global generator, so a ``generator`` cannot be honoured and is refused.
    """
    if generator is not None and dropout_p > 0.0:
        raise ValueError(
            'impl="torch" draws attention dropout inside F.scaled_dot_product_attention from the global generator; '
            'generator= needs impl="plain" or "kernels"'
        )
    if return_weights:
        scores = torch.matmul(q, k.transpose(-2, -1))  # (…,T,Dh)·(…,Dh,S) -> (…,T,S)
        scores = scores / math.sqrt(q.shape[-1]) if scale is None else scores * scale
        if bias is not None:
            scores = scores + bias
        weights = masked_softmax(scores, allowed)
        dropped = F.dropout(weights, dropout_p) if dropout_p > 0.0 else weights
        return torch.matmul(dropped, v), weights  # (…,T,S)·(…,S,Dv) -> (…,T,Dv)
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):  # the fused kernel wants equal leading dimensions
        lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        q, k, v = (x.expand(*lead, *x.shape[-2:]) for x in (q, k, v))
    attn_mask = allowed
    if bias is not None:
        attn_mask = bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    if allowed is not None:
        # A fully masked row is defined as zero here; some kernels (and older torch versions) give NaN.
        scores_shape = (*out.shape[:-1], k.shape[-2])
        any_allowed = allowed.expand(scores_shape).any(dim=-1, keepdim=True)  # (…, T, 1)
        out = torch.where(any_allowed, out, torch.zeros((), dtype=out.dtype, device=out.device))
    return out


def layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float = 1e-5) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def rms_norm(x: Tensor, weight: Tensor | None, eps: float = 1e-6) -> Tensor:
    """``F.rms_norm`` (torch ≥ 2.4), in float32 for half-precision inputs as ``functional.rms_norm``."""
    compute_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    h = x.to(compute_dtype)
    w = None if weight is None else weight.to(compute_dtype)
    if hasattr(F, "rms_norm"):
        return F.rms_norm(h, (x.shape[-1],), w, eps).to(x.dtype)
    y = h * torch.rsqrt(h.pow(2).mean(dim=-1, keepdim=True) + eps)  # torch < 2.4 has no fused RMSNorm
    return (y if w is None else y * w).to(x.dtype)


def relu(x: Tensor) -> Tensor:
    return F.relu(x)


def gelu(x: Tensor) -> Tensor:
    return F.gelu(x)


def gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


def silu(x: Tensor) -> Tensor:
    return F.silu(x)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return F.log_softmax(x, dim=dim)


def cross_entropy(
    logits: Tensor, targets: Tensor, *, ignore_index: int, label_smoothing: float, reduction: str
) -> Tensor:
    """``F.cross_entropy`` with the classes moved to dimension 1, as it expects them; an all-ignored mean is 0.

    Deviation kept from ``functional.cross_entropy``: ``F.cross_entropy``'s mean over zero targets is 0/0 = NaN,
    so the mean is taken here as the sum over the real targets divided by max(count, 1).
    """
    v = logits.shape[-1]
    per_target = F.cross_entropy(
        logits.reshape(-1, v),
        targets.reshape(-1).long(),
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction="none",
    ).view(targets.shape)  # 0 at ignored targets
    if reduction == "none":
        return per_target
    total = per_target.sum()
    if reduction == "sum":
        return total
    return total / (targets != ignore_index).sum().clamp(min=1).to(total.dtype)
