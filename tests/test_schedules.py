"""Learning-rate schedules: values at the points the formulas pin down, monotone phases, and agreement over
every step with torch.optim.lr_scheduler (LinearLR -> CosineAnnealingLR) and Hugging Face's cosine schedule."""

import math
import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from transformer_from_scratch.training.schedules import constant, cosine_with_warmup, inverse_sqrt, set_lr


def test_cosine_known_points():
    mx, mn, w, n = 1e-3, 1e-5, 10, 110  # midpoint of the cosine at step (10 + 110) / 2 = 60
    assert cosine_with_warmup(0, mx, mn, w, n) == 0.0
    assert cosine_with_warmup(1, mx, mn, w, n) == pytest.approx(mx / w, rel=1e-15)
    assert cosine_with_warmup(5, mx, mn, w, n) == pytest.approx(mx / 2, rel=1e-15)
    assert cosine_with_warmup(w, mx, mn, w, n) == mx
    assert cosine_with_warmup(60, mx, mn, w, n) == pytest.approx((mx + mn) / 2, rel=1e-15)
    # a quarter of the way down: min + (max - min)(1 + cos(π/4)) / 2
    assert cosine_with_warmup(35, mx, mn, w, n) == pytest.approx(mn + (mx - mn) * (1 + math.sqrt(0.5)) / 2, rel=1e-15)
    assert cosine_with_warmup(n, mx, mn, w, n) == pytest.approx(mn, rel=1e-15)
    assert cosine_with_warmup(n + 1, mx, mn, w, n) == mn
    assert cosine_with_warmup(10 * n, mx, mn, w, n) == mn
    assert cosine_with_warmup(0, mx, mn, 0, n) == mx  # no warm-up: the cosine starts at the top


@st.composite
def cosine_args(draw):
    max_lr = draw(st.floats(1e-6, 1.0))
    min_lr = draw(st.floats(0.0, 1.0)) * max_lr
    warmup = draw(st.integers(0, 50))
    total = warmup + draw(st.integers(1, 200))
    return max_lr, min_lr, warmup, total


@given(args=cosine_args())
def test_cosine_phases_are_monotone_and_bounded(args):
    mx, mn, w, n = args
    lrs = [cosine_with_warmup(s, mx, mn, w, n) for s in range(0, n + 20)]
    warm, decay = lrs[: w + 1], lrs[w:]
    assert all(a <= b for a, b in zip(warm, warm[1:]))  # non-decreasing warm-up
    assert all(a >= b for a, b in zip(decay, decay[1:]))  # non-increasing afterwards
    assert max(lrs) == lrs[w] == pytest.approx(mx, rel=1e-15)
    assert all(mn * (1 - 1e-12) <= lr <= mx for lr in decay)
    assert lrs[n:] == pytest.approx([mn] * len(lrs[n:]), rel=1e-12, abs=1e-300)


def torch_sequential_lrs(mx, mn, w, n):
    """LinearLR from max/W to max, then CosineAnnealingLR to min; the lr of update k is read before it."""
    p = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=mx)
    sched = torch.optim.lr_scheduler
    warmup = sched.LinearLR(opt, start_factor=1 / w, end_factor=1.0, total_iters=w - 1)
    cosine = sched.CosineAnnealingLR(opt, T_max=n - w, eta_min=mn)
    both = sched.SequentialLR(opt, [warmup, cosine], milestones=[w - 1])
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "step() before optimizer.step()" notice is irrelevant here
        for _ in range(n):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            both.step()
    return lrs  # lrs[k] is the lr of update k + 1


@pytest.mark.parametrize("mx, mn, w, n", [(1e-3, 1e-5, 10, 200), (3e-4, 0.0, 100, 1000), (0.5, 0.05, 2, 37)])
def test_cosine_matches_torch_linear_then_cosine_annealing_at_every_step(mx, mn, w, n):
    oracle = torch_sequential_lrs(mx, mn, w, n)
    ours = [cosine_with_warmup(s, mx, mn, w, n) for s in range(1, n + 1)]
    worst = max(abs(a - b) / mx for a, b in zip(ours, oracle))
    assert worst <= 1e-12, worst


@pytest.mark.parametrize("mx, mn, w, n", [(1e-3, 1e-5, 10, 200), (0.5, 0.0, 0, 50)])
def test_cosine_matches_hugging_face_schedule(mx, mn, w, n):
    from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=mx)
    hf = get_cosine_with_min_lr_schedule_with_warmup(opt, num_warmup_steps=w, num_training_steps=n, min_lr=mn)
    # HF's value after s scheduler steps is the same formula at s (HF applies it to update s + 1).
    for s in range(n + 1):
        assert cosine_with_warmup(s, mx, mn, w, n) == pytest.approx(hf.get_last_lr()[0], rel=1e-12, abs=mx * 1e-15)
        opt.step()
        hf.step()


def test_inverse_sqrt_known_points():
    d, w = 512, 4000  # the paper's base model
    peak = 512**-0.5 * 4000**-0.5
    assert inverse_sqrt(w, d, w) == pytest.approx(peak, rel=1e-15)
    assert inverse_sqrt(w, d, w) == pytest.approx(6.987712429686844e-4, rel=1e-12)
    assert inverse_sqrt(1, d, w) == pytest.approx(512**-0.5 * 4000**-1.5, rel=1e-15)
    assert inverse_sqrt(w // 2, d, w) == pytest.approx(peak / 2, rel=1e-15)  # linear warm-up
    assert inverse_sqrt(4 * w, d, w) == pytest.approx(peak / 2, rel=1e-15)  # 1/√step decay
    assert inverse_sqrt(4 * w, d, w, factor=2.0) == pytest.approx(peak, rel=1e-15)
    assert inverse_sqrt(0, d, w) == 0.0


@given(d_model=st.integers(1, 1024), warmup=st.integers(1, 300), factor=st.floats(0.1, 10.0))
def test_inverse_sqrt_rises_then_falls(d_model, warmup, factor):
    lrs = [inverse_sqrt(s, d_model, warmup, factor) for s in range(0, 3 * warmup + 5)]
    assert all(a <= b for a, b in zip(lrs[: warmup + 1], lrs[1 : warmup + 1]))
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1 :]))
    assert max(lrs) == lrs[warmup]


def test_constant():
    assert [constant(s, 3e-4) for s in (0, 1, 10**6)] == [3e-4] * 3


def test_set_lr_sets_every_group_and_keeps_weight_decay():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))
    opt = torch.optim.AdamW([{"params": [a], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}], lr=1.0)
    assert set_lr(opt, 0.25) == 0.25
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    with pytest.raises(ValueError, match="lr must be a finite number ≥ 0"):
        set_lr(opt, float("nan"))
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        set_lr([a], 0.1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: cosine_with_warmup(-1, 1e-3, 0.0, 10, 100), "step must be ≥ 0"),
        (lambda: cosine_with_warmup(1.5, 1e-3, 0.0, 10, 100), "step must be an integer"),
        (lambda: cosine_with_warmup(1, 1e-3, 1e-2, 10, 100), "min_lr=0.01 must not exceed max_lr=0.001"),
        (lambda: cosine_with_warmup(1, 1e-3, 0.0, 100, 100), "total_steps must be an integer > warmup_steps=100"),
        (lambda: cosine_with_warmup(1, -1e-3, 0.0, 10, 100), "max_lr must be a finite number ≥ 0"),
        (lambda: inverse_sqrt(1, 512, 0), "warmup_steps must be an integer ≥ 1"),
        (lambda: inverse_sqrt(1, 0, 10), "d_model must be a positive integer"),
    ],
)
def test_bad_arguments_are_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_set_lr_scales_each_group_by_its_lr_scale():
    a, b, c = (nn.Parameter(torch.zeros(2)) for _ in range(3))
    opt = torch.optim.AdamW([{"params": [a], "lr_scale": 10.0}, {"params": [b], "lr_scale": 0.25}, {"params": [c]}])
    assert set_lr(opt, 0.5) == 0.5
    assert [g["lr"] for g in opt.param_groups] == [5.0, 0.125, 0.5]
    opt.param_groups[1]["lr_scale"] = -1.0
    with pytest.raises(ValueError, match="param group 1 has lr_scale=-1.0"):
        set_lr(opt, 0.5)
