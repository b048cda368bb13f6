r"""Learning-rate schedules: plain functions ``step -> lr`` and one line to apply them.

Step convention (the same for every schedule here): ``step`` counts optimizer updates from 1 — the
first update uses ``lr(1)``, the n-th uses ``lr(n)``. ``step=0`` is allowed and gives the formula's
value before any update (0 for the warm-up schedules). A training loop does:

    for step in range(1, total_steps + 1):
        set_lr(optimizer, schedule(step))      # schedule = functools.partial(cosine_with_warmup, ...)
        ...; optimizer.step()

Relation to ``torch.optim.lr_scheduler``: there the first update uses ``last_epoch = 0``, so our
``lr(n)`` is their value at ``last_epoch = n - 1`` (the tests check this over every step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real

import torch

__all__ = ["Schedule", "cosine_with_warmup", "inverse_sqrt", "constant", "set_lr"]

Schedule = Callable[[int], float]
"""A learning-rate schedule: optimizer step (counted from 1) -> learning rate."""


def _check_step(step) -> int:
    if isinstance(step, bool) or not isinstance(step, Integral):
        raise TypeError(f"step must be an integer (optimizer updates counted from 1), got {step!r}")
    if step < 0:
        raise ValueError(f"step must be ≥ 0, got {step}")
    return int(step)


def _check_rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return float(value)


def cosine_with_warmup(step: int, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    r"""Linear warm-up to ``max_lr``, then half a cosine down to ``min_lr`` (Loshchilov & Hutter 2017).

        lr(s) = max_lr · s / W                                           0 ≤ s < W   (warm-up)
        lr(s) = min_lr + ½ (max_lr - min_lr) (1 + cos(π (s - W) / (N - W)))   W ≤ s ≤ N   (cosine)
        lr(s) = min_lr                                                   s > N

    with W = ``warmup_steps`` and N = ``total_steps``. The warm-up starts from 0 at s = 0, so the first
    update (s = 1) uses max_lr / W, update W uses exactly max_lr, the midpoint s = (W + N) / 2 uses
    (max_lr + min_lr) / 2, and update N uses min_lr. ``warmup_steps=0`` starts the cosine at max_lr.
    """
    step = _check_step(step)
    max_lr, min_lr = _check_rate("max_lr", max_lr), _check_rate("min_lr", min_lr)
    if min_lr > max_lr:
        raise ValueError(f"min_lr={min_lr} must not exceed max_lr={max_lr}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, Integral) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer ≥ 0, got {warmup_steps!r}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, Integral) or total_steps <= warmup_steps:
        raise ValueError(f"total_steps must be an integer > warmup_steps={warmup_steps}, got {total_steps!r}")
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step > total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)  # 0 at the end of warm-up, 1 at the end
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def inverse_sqrt(step: int, d_model: int, warmup_steps: int, factor: float = 1.0) -> float:
    r"""lr(s) = factor · d_model^(-1/2) · min(s^(-1/2), s · W^(-3/2)) — Vaswani et al. 2017, eq. (3).

    Grows linearly for the first W = ``warmup_steps`` updates, peaks at s = W with
    factor · (d_model · W)^(-1/2), then decays as 1/√s. The paper used d_model = 512, W = 4000 and
    factor = 1 with Adam(β1=0.9, β2=0.98, ε=1e-9). ``step`` counts from 1 as in the paper;
    ``step=0`` gives min(∞, 0) = 0.
    """
    step = _check_step(step)
    if isinstance(d_model, bool) or not isinstance(d_model, Integral) or d_model < 1:
        raise ValueError(f"d_model must be a positive integer, got {d_model!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, Integral) or warmup_steps < 1:
        raise ValueError(f"warmup_steps must be an integer ≥ 1 (the formula divides by it), got {warmup_steps!r}")
    factor = _check_rate("factor", factor)
    if step == 0:
        return 0.0
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def constant(step: int, lr: float) -> float:
    """lr(s) = ``lr`` for every step (no warm-up, no decay)."""
    _check_step(step)
    return _check_rate("lr", lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    """Set the learning rate of every param group of ``optimizer`` to ``lr × group["lr_scale"]`` and return ``lr``.

    This is how a schedule is applied: ``set_lr(optimizer, schedule(step))`` before ``optimizer.step()``.
    A group without an ``"lr_scale"`` key gets ``lr`` itself; one with it (per-group learning rates, e.g. a
    fine-tuning head at 10× or layer-wise decay, see ``finetune.finetune_param_groups``) keeps its ratio to the
    schedule at every step. Weight decay, set per group, is untouched.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    lr = _check_rate("lr", lr)
    for i, group in enumerate(optimizer.param_groups):
        scale = group.get("lr_scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
            raise ValueError(f"param group {i} has lr_scale={scale!r}; it must be a finite number ≥ 0")
        group["lr"] = lr * scale
    return lr
