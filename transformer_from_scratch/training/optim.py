r"""AdamW — Adam with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2), written out.

For each parameter θ with gradient g, at step t = 1, 2, …:

    θ ← θ - lr · λ · θ                         decoupled weight decay (not added to g)
    m ← β1 · m + (1 - β1) · g                   first moment (running mean of g)
    v ← β2 · v + (1 - β2) · g²                  second moment (running mean of g²)
    m̂ = m / (1 - β1^t),  v̂ = v / (1 - β2^t)      bias correction: m and v start at 0 (Kingma & Ba 2015)
    θ ← θ - lr · m̂ / (√v̂ + ε)

The decay is multiplied by lr, as in ``torch.optim.AdamW`` (the paper scales it by the schedule
multiplier η_t only), and it is applied before the Adam update; the floating-point operations below are
arranged in the same order as PyTorch's single-tensor implementation, so the two agree to the last bit
in practice (the tests allow 1e-10 in float64 over 1,000 steps).

Plain Adam with L2 regularisation would add λ·θ to g, and the division by √v̂ would then shrink the
decay of parameters with large gradients — the coupling that AdamW removes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from numbers import Real

import torch
from torch import Tensor, nn

__all__ = ["AdamW", "param_groups_for_weight_decay"]


def _check_number(name: str, value, *, low: float, low_inclusive: bool = True, high: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    too_low = value < low if low_inclusive else value <= low
    too_high = high is not None and value >= high
    if too_low or too_high:
        lo = "[" if low_inclusive else "("
        hi = f"{high})" if high is not None else "∞)"
        raise ValueError(f"{name} must be in {lo}{low}, {hi}, got {value}")


def _check_hyperparameters(lr, betas, eps, weight_decay) -> None:
    _check_number("lr", lr, low=0.0)
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    _check_number("betas[0]", betas[0], low=0.0, high=1.0)
    _check_number("betas[1]", betas[1], low=0.0, high=1.0)
    # Deviation from torch.optim.AdamW, which accepts eps=0: with eps=0 a parameter whose gradient is
    # still exactly zero (an unused embedding row) gets 0/0 = NaN, so we require eps > 0.
    _check_number("eps", eps, low=0.0, low_inclusive=False)
    _check_number("weight_decay", weight_decay, low=0.0)


class AdamW(torch.optim.Optimizer):
    r"""Adam with decoupled weight decay; see the module docstring for the update.

    Args:
        params: parameters, or a list of param-group dicts (e.g. from :func:`param_groups_for_weight_decay`)
            whose "lr"/"betas"/"eps"/"weight_decay" override the defaults below.
        lr: learning rate (a schedule changes ``group["lr"]`` between steps, see ``schedules.set_lr``).
        betas: (β1, β2), decay rates of the first and second moments, each in [0, 1).
        eps: ε > 0 added to √v̂ for numerical stability.
        weight_decay: λ ≥ 0, decoupled: θ ← θ(1 - lr·λ) every step.

    The per-parameter state is ``{"step": int, "exp_avg": m, "exp_avg_sq": v}`` — only numbers and tensors,
    so ``state_dict()`` / ``load_state_dict()`` round-trip (and save to safetensors after flattening).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        _check_hyperparameters(lr, betas, eps, weight_decay)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (also called once per group by the constructor), validating its hyperparameters."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        _check_hyperparameters(group["lr"], group["betas"], group["eps"], group["weight_decay"])
        for p in group["params"]:
            if not p.is_floating_point():
                raise TypeError(f"AdamW optimises floating-point parameters, got one of dtype {p.dtype}")

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One update of every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            _check_number("lr", lr, low=0.0)  # a schedule may have edited it since the last step
            for p in group["params"]:
                if p.grad is None:
                    continue  # unused this step: no decay, no moment update (as torch.optim.AdamW)
                g = p.grad
                if g.is_sparse:
                    raise TypeError("AdamW does not support sparse gradients")
                state = self.state[p]
                if not state:  # first step of this parameter: m = v = 0
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                t = state["step"]

                p.mul_(1.0 - lr * weight_decay)  # θ ← θ - lr·λ·θ   (decoupled weight decay)
                m.lerp_(g, 1.0 - beta1)  # m ← m + (1-β1)(g - m) = β1·m + (1-β1)·g
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)  # v ← β2·v + (1-β2)·g²

                bias_correction1 = 1.0 - beta1**t
                bias_correction2 = 1.0 - beta2**t
                step_size = lr / bias_correction1  # lr·m̂ = (lr / (1-β1^t))·m
                denom = (v.sqrt() / bias_correction2**0.5).add_(eps)  # √v̂ + ε = √v / √(1-β2^t) + ε
                p.addcdiv_(m, denom, value=-step_size)  # θ ← θ - lr·m̂ / (√v̂ + ε)
        return loss


def param_groups_for_weight_decay(
    model: nn.Module, weight_decay: float, *, exclude_embeddings: bool = False
) -> list[dict]:
    """Split a model's trainable parameters into a decayed and a non-decayed param group.

    Weight decay pulls weights towards 0. That is a sensible prior for the matrices of linear layers,
    but not for biases (a shift) nor for the gains of LayerNorm/RMSNorm (whose neutral value is 1), so
    every parameter with fewer than 2 dimensions goes to the group with ``weight_decay=0.0``.
    Embedding tables are matrices and are decayed, unless ``exclude_embeddings=True``.

    Returns ``[{"params": [...], "weight_decay": weight_decay}, {"params": [...], "weight_decay": 0.0}]``,
    leaving out a group that would be empty; tied (shared) parameters appear once. Pass the list
    straight to :class:`AdamW` (or any ``torch.optim`` optimiser).
    """
    _check_number("weight_decay", weight_decay, low=0.0)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding) and exclude_embeddings}
    decay, no_decay = [], []
    for p in model.parameters():  # parameters() yields a shared parameter only once
        if not p.requires_grad:
            continue
        if p.dim() < 2 or id(p) in embedding_weights:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
