r"""Gradient clipping by the global norm (Pascanu et al. 2013, "On the difficulty of training RNNs").

All gradients are treated as one long vector g = concat(g_1, …, g_n):

    ‖g‖_p = (Σ_i Σ_k |g_ik|^p)^(1/p)          (p = ∞: max_ik |g_ik|)
    g_i ← g_i · min(1, max_norm / (‖g‖_p + 1e-6))

so the direction of the update is kept and only its length is capped. The 1e-6 and the unconditional
multiplication follow ``torch.nn.utils.clip_grad_norm_``, which the tests compare against.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["clip_grad_norm_", "grad_norm"]


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]  # parameters without a gradient are skipped


def _check_norm_type(norm_type: float) -> float:
    norm_type = float(norm_type)
    if not (norm_type > 0.0):  # also rejects NaN
        raise ValueError(f"norm_type must be a positive number or float('inf'), got {norm_type}")
    return norm_type


def _total_norm(grads: list[Tensor], norm_type: float) -> Tensor:
    """‖concat(grads)‖_p as a 0-d tensor on the first gradient's device (0.0 when there is none)."""
    if not grads:
        return torch.tensor(0.0)
    device = grads[0].device
    dtype = grads[0].dtype
    for g in grads[1:]:
        dtype = torch.promote_types(dtype, g.dtype)
    if math.isinf(norm_type):
        parts = [g.detach().abs().amax() if g.numel() else g.new_zeros(()) for g in grads]  # max |g_ik| per tensor
        return torch.stack([part.to(device, dtype) for part in parts]).amax()
    if norm_type == 2.0:
        parts = [(g.detach() * g.detach()).sum() for g in grads]  # Σ_k g_ik² per tensor
    else:
        parts = [g.detach().abs().pow(norm_type).sum() for g in grads]  # Σ_k |g_ik|^p per tensor
    return torch.stack([part.to(device, dtype) for part in parts]).sum().pow(1.0 / norm_type)


def grad_norm(parameters: Tensor | Iterable[Tensor], norm_type: float = 2.0) -> Tensor:
    """The global p-norm of the gradients of ``parameters`` (those with ``.grad`` set), without clipping."""
    return _total_norm(_grads(parameters), _check_norm_type(norm_type))


@torch.no_grad()
def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    *,
    error_if_nonfinite: bool = False,
) -> Tensor:
    r"""Scale all gradients in place so that their global p-norm is at most ``max_norm``.

    Returns the total norm *before* clipping as a 0-d tensor (log it: spikes show instabilities).
    Parameters whose ``.grad`` is None are ignored. With ``error_if_nonfinite=True`` a NaN/inf norm
    raises instead of silently turning every gradient into NaN.
    """
    grads = _grads(parameters)
    max_norm = float(max_norm)
    if not max_norm >= 0.0:
        raise ValueError(f"max_norm must be a non-negative number, got {max_norm}")
    norm_type = _check_norm_type(norm_type)
    total = _total_norm(grads, norm_type)
    if not grads:
        return total
    if error_if_nonfinite and not bool(torch.isfinite(total)):
        raise RuntimeError(
            f"the total {norm_type}-norm of the gradients is {float(total)}; the loss or the model produced "
            "non-finite gradients (pass error_if_nonfinite=False to clip anyway)"
        )
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)  # min(1, max_norm / (‖g‖ + 1e-6))
    for g in grads:
        g.mul_(scale.to(g.device, g.dtype))
    return total
