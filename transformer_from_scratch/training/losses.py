r"""Cross-entropy from a hand-written log-softmax — the loss of every model in this package.

For logits z over a vocabulary of V classes and a target class y:

    log p_v = z_v - m - log Σ_u exp(z_u - m),   m = max_u z_u          (stable log-softmax)
    NLL     = -log p_y
    loss    = (1 - ε) · NLL + ε · mean_v(-log p_v)                     (label smoothing, ε ∈ [0, 1])

Label smoothing (Szegedy et al. 2016, "Rethinking the Inception Architecture", §7) trains against the
mixture (1 - ε)·onehot(y) + ε·uniform(V) instead of the one-hot target; Vaswani et al. 2017 (§5.4) used
ε = 0.1. The formula above is that mixture's cross-entropy, and it is what ``F.cross_entropy`` computes.

Shapes: logits (…, V) — class dimension **last**, any number of leading dimensions, e.g. (B, T, V) —
and targets (…) of integer class ids. ``F.cross_entropy`` puts the classes in dimension 1 instead; for
(B, T, V) logits call it as ``F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["log_softmax", "cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")


_LOG2_E = math.log2(math.e)


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
