"""AdamW and clip_grad_norm_: step-for-step equal to torch.optim.AdamW and torch.nn.utils.clip_grad_norm_,
equal to the update written out by hand, resumable from a state_dict, and strict about hyperparameters."""

import copy
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from transformer_from_scratch.training.clipping import clip_grad_norm_, grad_norm
from transformer_from_scratch.training.optim import AdamW, param_groups_for_weight_decay
from transformer_from_scratch.training.schedules import cosine_with_warmup, set_lr


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: a second intra-op thread only adds synchronisation (20x slower on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


WEIGHT_TOL = {torch.float64: 1e-10, torch.float32: 1e-4}  # max |ours - torch| after 1,000 steps


class TinyNet(nn.Module):
    """A 2-layer MLP with a LayerNorm, plus a parameter that never receives a gradient."""

    def __init__(self, dtype):
        super().__init__()
        self.fc1 = nn.Linear(6, 16, dtype=dtype)
        self.norm = nn.LayerNorm(16, dtype=dtype)
        self.fc2 = nn.Linear(16, 3, dtype=dtype)
        self.unused = nn.Parameter(torch.ones(4, dtype=dtype))  # grad stays None: both optimisers skip it

    def forward(self, x):
        return self.fc2(torch.tanh(self.norm(self.fc1(x))))


def make_model(dtype, seed=0):
    torch.manual_seed(seed)
    model = TinyNet(dtype)
    with torch.no_grad():  # randomise the LayerNorm so its (no-decay) parameters are exercised too
        model.norm.weight.add_(0.1 * torch.randn(16, dtype=dtype))
        model.norm.bias.add_(0.1 * torch.randn(16, dtype=dtype))
    return model


def make_data(dtype, n_batches=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(5, 6, generator=g, dtype=dtype), torch.randn(5, 3, generator=g, dtype=dtype))
        for _ in range(n_batches)
    ]


def train(model, optimizer, data, steps, schedule=None, start=1):
    for step in range(start, start + steps):
        if schedule is not None:
            set_lr(optimizer, schedule(step))
        x, y = data[step % len(data)]
        optimizer.zero_grad(set_to_none=True)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()


def max_weight_diff(a, b):
    return max((pa - pb).abs().max().item() for pa, pb in zip(a.parameters(), b.parameters()))


def pair(dtype, **kw):
    ours_model, torch_model = make_model(dtype), make_model(dtype)
    assert max_weight_diff(ours_model, torch_model) == 0.0
    ours = AdamW(param_groups_for_weight_decay(ours_model, 0.05), **kw)
    oracle = torch.optim.AdamW(param_groups_for_weight_decay(torch_model, 0.05), foreach=False, **kw)
    return ours_model, ours, torch_model, oracle


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_thousand_steps_match_torch_adamw(dtype):
    ours_model, ours, torch_model, oracle = pair(dtype, lr=3e-3, betas=(0.8, 0.99), eps=1e-7)
    data = make_data(dtype)
    train(ours_model, ours, data, 1000)
    train(torch_model, oracle, data, 1000)
    diff = max_weight_diff(ours_model, torch_model)
    assert diff <= WEIGHT_TOL[dtype], diff
    moved = (ours_model.fc1.weight - make_model(dtype).fc1.weight).abs().max().item()
    assert moved > 0.05  # the weights really travelled, so agreement is not trivial
    assert torch.equal(ours_model.unused, torch.ones(4, dtype=dtype))  # no grad -> no decay, no update


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_scheduled_learning_rate_changes_mid_run_match_torch(dtype):
    ours_model, ours, torch_model, oracle = pair(dtype)
    data = make_data(dtype)

    def schedule(step):
        return cosine_with_warmup(step, max_lr=1e-2, min_lr=1e-4, warmup_steps=50, total_steps=300)

    train(ours_model, ours, data, 300, schedule)
    train(torch_model, oracle, data, 300, schedule)
    assert ours.param_groups[0]["lr"] == pytest.approx(1e-4)
    diff = max_weight_diff(ours_model, torch_model)
    assert diff <= WEIGHT_TOL[dtype], diff


def test_first_step_equals_the_update_written_out_by_hand():
    lr, (b1, b2), eps, wd = 0.1, (0.9, 0.999), 1e-8, 0.2
    theta0 = np.array([0.5, -1.0, 2.0])
    grads = [np.array([0.3, -0.2, 1e-3]), np.array([-0.1, 0.4, 0.0])]
    p = nn.Parameter(torch.tensor(theta0))
    opt = AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    theta, m, v = theta0.copy(), np.zeros(3), np.zeros(3)
    for t, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g)
        opt.step()
        theta = theta - lr * wd * theta  # decoupled decay
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(p.detach().numpy(), theta, rtol=1e-13, atol=0)
    assert opt.state[p]["step"] == 2


def test_no_decay_group_is_not_decayed():
    model = make_model(torch.float64)
    before = copy.deepcopy(model)
    opt = AdamW(param_groups_for_weight_decay(model, 0.5), lr=0.1)
    for _ in range(3):
        for q in model.parameters():
            q.grad = torch.zeros_like(q)  # zero gradient: Adam's update is 0 / (0 + eps) = 0, only decay acts
        opt.step()
    shrink = (1 - 0.1 * 0.5) ** 3
    torch.testing.assert_close(model.fc1.weight, before.fc1.weight * shrink, rtol=1e-14, atol=0)
    for name in ("fc1.bias", "norm.weight", "norm.bias", "fc2.bias", "unused"):
        assert torch.equal(model.get_parameter(name), before.get_parameter(name)), name


def test_param_groups_split_biases_norms_and_tied_weights():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.proj = nn.Linear(4, 4)
            self.norm = nn.LayerNorm(4)
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight  # tied
            self.frozen = nn.Parameter(torch.zeros(3, 3), requires_grad=False)

    model = Tied()
    decay, no_decay = param_groups_for_weight_decay(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = lambda group: {id(p) for p in group["params"]}  # noqa: E731
    assert ids(decay) == {id(model.emb.weight), id(model.proj.weight)}
    assert ids(no_decay) == {id(model.proj.bias), id(model.norm.weight), id(model.norm.bias)}
    assert len(decay["params"]) == 2  # the tied matrix appears once
    decay, no_decay = param_groups_for_weight_decay(model, 0.1, exclude_embeddings=True)
    assert ids(decay) == {id(model.proj.weight)} and id(model.emb.weight) in ids(no_decay)
    only_matrices = param_groups_for_weight_decay(nn.Linear(3, 3, bias=False), 0.1)
    assert len(only_matrices) == 1 and only_matrices[0]["weight_decay"] == 0.1  # empty group left out


def test_state_dict_round_trip_continues_identically():
    dtype = torch.float64
    data = make_data(dtype)
    straight_model = make_model(dtype)
    straight = AdamW(param_groups_for_weight_decay(straight_model, 0.05), lr=5e-3)
    train(straight_model, straight, data, 60)

    model = make_model(dtype)
    opt = AdamW(param_groups_for_weight_decay(model, 0.05), lr=5e-3)
    train(model, opt, data, 25)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # loads without pickle: the state is tensors and numbers only
    fresh_model = make_model(dtype, seed=99)
    fresh_model.load_state_dict(saved["model"])
    fresh = AdamW(param_groups_for_weight_decay(fresh_model, 0.05), lr=5e-3)
    fresh.load_state_dict(saved["optimizer"])
    assert all(isinstance(s["step"], int) and s["step"] == 25 for s in fresh.state.values())
    train(fresh_model, fresh, data, 35, start=26)

    assert max_weight_diff(fresh_model, straight_model) == 0.0
    for a, b in zip(fresh.state.values(), straight.state.values()):
        assert a["step"] == b["step"] and torch.equal(a["exp_avg"], b["exp_avg"])
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"lr": -1e-3}, ValueError, r"lr must be in \[0.0, ∞\)"),
        ({"lr": float("nan")}, TypeError, "lr must be a finite real number"),
        ({"lr": torch.tensor(0.1)}, TypeError, "lr must be a finite real number"),
        ({"betas": (1.0, 0.999)}, ValueError, r"betas\[0\] must be in \[0.0, 1.0\)"),
        ({"betas": (0.9, -0.1)}, ValueError, r"betas\[1\] must be in \[0.0, 1.0\)"),
        ({"betas": (0.9,)}, ValueError, "betas must be a pair"),
        ({"eps": 0.0}, ValueError, r"eps must be in \(0.0, ∞\)"),
        ({"eps": -1e-8}, ValueError, r"eps must be in \(0.0, ∞\)"),
        ({"weight_decay": -0.01}, ValueError, r"weight_decay must be in \[0.0, ∞\)"),
    ],
)
def test_bad_hyperparameters_are_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        AdamW([nn.Parameter(torch.zeros(2))], **kwargs)


def test_bad_hyperparameters_in_a_param_group_or_set_later_are_errors():
    p, q = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=r"betas\[1\] must be in"):
        AdamW([{"params": [p]}, {"params": [q], "betas": (0.9, 1.5)}])
    opt = AdamW([p])
    opt.param_groups[0]["lr"] = -0.5  # e.g. a buggy schedule
    p.grad = torch.ones(2)
    with pytest.raises(ValueError, match=r"lr must be in \[0.0, ∞\)"):
        opt.step()


# ---- gradient clipping --------------------------------------------------------------------------------


def grads_for(dtype, seed, scale):
    g = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (5,), (2, 2, 3), (7,)]
    params = [nn.Parameter(torch.zeros(s, dtype=dtype)) for s in shapes]
    for i, p in enumerate(params):
        if i != 1:  # params[1] keeps grad None: it must be ignored, not counted as zero or crash
            p.grad = torch.randn(p.shape, generator=g, dtype=dtype) * scale
    return params


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-3, 0.3, 1.0, 50.0]),
    max_norm=st.sampled_from([0.0, 0.5, 1.0, 10.0]),
    norm_type=st.sampled_from([2.0, 1.0, 3.0, math.inf]),
)
def test_clip_grad_norm_matches_torch(dtype, seed, scale, max_norm, norm_type):
    ours, oracle = grads_for(dtype, seed, scale), grads_for(dtype, seed, scale)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(oracle, max_norm, norm_type, foreach=False)
    tol = {"rtol": 1e-12, "atol": 0.0} if dtype == torch.float64 else {"rtol": 1e-6, "atol": 1e-7}
    torch.testing.assert_close(total, expected, **tol)
    for a, b in zip(ours, oracle):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, **tol)


@given(seed=st.integers(0, 2**31 - 1), max_norm=st.floats(0.01, 5.0))
def test_clipping_caps_the_norm_and_keeps_the_direction(seed, max_norm):
    params = grads_for(torch.float64, seed, scale=3.0)
    before = torch.cat([p.grad.flatten() for p in params if p.grad is not None])
    total = clip_grad_norm_(params, max_norm)
    after = torch.cat([p.grad.flatten() for p in params if p.grad is not None])
    torch.testing.assert_close(total, before.norm(), rtol=1e-12, atol=0)
    assert grad_norm(params).item() <= max_norm * (1 + 1e-12)
    cosine = torch.dot(before, after) / (before.norm() * after.norm())
    assert cosine.item() == pytest.approx(1.0, abs=1e-12)  # only the length changed


def test_small_gradients_are_left_alone():
    params = grads_for(torch.float64, 0, scale=1e-3)
    before = [None if p.grad is None else p.grad.clone() for p in params]
    clip_grad_norm_(params, max_norm=1.0)
    for p, b in zip(params, before):
        assert (p.grad is None and b is None) or torch.equal(p.grad, b)


def test_clipping_without_gradients_and_bad_arguments():
    params = [nn.Parameter(torch.zeros(3))]
    assert clip_grad_norm_(params, 1.0).item() == 0.0
    params[0].grad = torch.tensor([float("nan"), 1.0, 0.0])
    with pytest.raises(RuntimeError, match="non-finite gradients"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm must be a non-negative number"):
        clip_grad_norm_(params, -1.0)
    with pytest.raises(ValueError, match="norm_type must be a positive number"):
        clip_grad_norm_(params, 1.0, norm_type=0.0)
