"""cross_entropy / log_softmax: equal to F.cross_entropy (an oracle we did not write), to the label-smoothing
mixture written out in NumPy float64, finite for huge logits, and loud on bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.functional import cross_entropy, log_softmax

TOL = {torch.float64: {"rtol": 1e-12, "atol": 1e-12}, torch.float32: {"rtol": 1e-6, "atol": 1e-6}}


def torch_ce(logits, targets, **kw):
    """The oracle, called with the classes moved to dimension 1 as F.cross_entropy expects."""
    v = logits.shape[-1]
    out = F.cross_entropy(logits.reshape(-1, v), targets.reshape(-1), **kw)
    return out.reshape(targets.shape) if kw.get("reduction") == "none" else out


@st.composite
def ce_cases(draw):
    batch = draw(st.integers(2, 3))
    t = draw(st.integers(1, 6))
    v = draw(st.integers(2, 11))
    seed = draw(st.integers(0, 2**31 - 1))
    ignore_index = draw(st.sampled_from([-100, 0, 3]))  # -100 (the default) or a pad id inside [0, V)
    smoothing = draw(st.sampled_from([0.0, 0.1, 0.37, 1.0]))
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    return batch, t, v, seed, ignore_index, smoothing, reduction


def make_case(batch, t, v, seed, ignore_index, dtype=torch.float64, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, t, v, generator=g, dtype=dtype) * scale  # (B, T, V)
    targets = torch.randint(0, v, (batch, t), generator=g)  # (B, T)
    drop = torch.rand(batch, t, generator=g) < 0.3
    targets[drop] = ignore_index
    targets[0, 0] = 1 if ignore_index == 0 else 0  # keep at least one real target
    if ignore_index >= 0:  # make sure some targets are ignored through a real class id too
        targets[-1, -1] = ignore_index
    return logits, targets


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@given(case=ce_cases())
def test_matches_torch_cross_entropy(case, dtype):
    batch, t, v, seed, ignore_index, smoothing, reduction = case
    logits, targets = make_case(batch, t, v, seed, ignore_index, dtype)
    kw = {"ignore_index": ignore_index, "label_smoothing": smoothing, "reduction": reduction}
    ours = cross_entropy(logits, targets, **kw)
    torch.testing.assert_close(ours, torch_ce(logits, targets, **kw), **TOL[dtype])


@given(case=ce_cases())
def test_gradient_matches_torch(case):
    batch, t, v, seed, ignore_index, smoothing, reduction = case
    logits, targets = make_case(batch, t, v, seed, ignore_index)
    kw = {"ignore_index": ignore_index, "label_smoothing": smoothing, "reduction": reduction}
    weights = torch.randn(targets.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    (cross_entropy(a, targets, **kw) * (weights if reduction == "none" else 1.0)).sum().backward()
    (torch_ce(b, targets, **kw) * (weights if reduction == "none" else 1.0)).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


def test_gradcheck_float64():
    logits, targets = make_case(2, 3, 5, seed=7, ignore_index=-100)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda z: cross_entropy(z, targets, label_smoothing=0.2, reduction="none"), (logits,), eps=1e-6, atol=1e-8
    )


def numpy_smoothed_ce(logits: np.ndarray, targets: np.ndarray, eps: float, ignore_index: int) -> float:
    """Cross-entropy against the soft target (1-ε)·onehot(y) + ε/V, averaged over real targets — loops."""
    v = logits.shape[-1]
    flat_z, flat_y = logits.reshape(-1, v), targets.reshape(-1)
    total, count = 0.0, 0
    for z, y in zip(flat_z, flat_y):
        if y == ignore_index:
            continue
        log_p = z - np.log(np.sum(np.exp(z - z.max()))) - z.max()
        q = np.full(v, eps / v)
        q[y] += 1.0 - eps
        total += -np.sum(q * log_p)
        count += 1
    return total / count


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_label_smoothing_is_cross_entropy_against_the_smoothed_distribution(eps):
    logits, targets = make_case(3, 4, 7, seed=11, ignore_index=-100)
    ours = cross_entropy(logits, targets, label_smoothing=eps)
    ref = numpy_smoothed_ce(logits.numpy(), targets.numpy(), eps, -100)
    assert abs(float(ours) - ref) <= 1e-12 * abs(ref)


def test_any_leading_dimensions():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)  # (2, 3, 4, V=5)
    targets = torch.randint(0, 5, (2, 3, 4), generator=g)
    torch.testing.assert_close(cross_entropy(logits, targets), torch_ce(logits, targets), rtol=1e-12, atol=1e-12)
    one = cross_entropy(logits[0, 0, 0], targets[0, 0, 0], reduction="none")  # logits (V,), target ()
    torch.testing.assert_close(one, -torch.log_softmax(logits[0, 0, 0], -1)[targets[0, 0, 0]], rtol=1e-12, atol=0)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_huge_logits_stay_finite_in_float32(scale):
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 4, 6, generator=g) * scale  # entries around ±1e4: exp would overflow without the shift
    logits[0, 0] = scale  # a row of equal huge values
    targets = torch.randint(0, 6, (2, 4), generator=g)
    for smoothing in (0.0, 0.1):
        ours = cross_entropy(logits, targets, label_smoothing=smoothing, reduction="none")
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours, torch_ce(logits, targets, label_smoothing=smoothing, reduction="none"))
    naive = -torch.log(torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True))  # the unstable way
    assert not torch.isfinite(naive).all()  # ...which is why the max is subtracted


def test_all_targets_ignored_gives_zero_loss_and_zero_gradient_not_nan():
    logits = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.full((2, 3), -100)
    loss = cross_entropy(logits, targets, label_smoothing=0.1)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    # Deviation pinned: PyTorch returns 0/0 = NaN here.
    assert torch.isnan(torch_ce(logits.detach(), targets))
    assert cross_entropy(logits, targets, reduction="sum").item() == 0.0


def test_ignored_targets_contribute_nothing():
    logits, targets = make_case(2, 5, 6, seed=2, ignore_index=-100)
    per_target = cross_entropy(logits, targets, reduction="none")
    assert torch.equal(per_target[targets == -100], torch.zeros_like(per_target[targets == -100]))
    real = targets != -100
    mean = cross_entropy(logits, targets)
    torch.testing.assert_close(mean, per_target[real].sum() / real.sum(), rtol=1e-14, atol=0)
    # changing the logits at ignored positions changes nothing
    moved = logits.clone()
    moved[~real] += 100.0
    assert torch.equal(cross_entropy(moved, targets), mean)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_log_softmax_matches_torch_and_ignores_shifts(dim):
    g = torch.Generator().manual_seed(9)
    x = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    ours = log_softmax(x, dim=dim)
    torch.testing.assert_close(ours, torch.log_softmax(x, dim=dim), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.exp().sum(dim), torch.ones_like(ours.sum(dim)), rtol=1e-12, atol=1e-12)
    shift = torch.randn(x.shape, generator=g, dtype=torch.float64).amax(dim=dim, keepdim=True) * 50
    torch.testing.assert_close(log_softmax(x + shift, dim=dim), ours, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim", [0, -1])
def test_log_softmax_backward_equals_torch_with_masked_entries(dim):
    """The hand-written backward (g - softmax · Σ g) against autograd of torch.log_softmax, -inf entries included."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64) * 3
    x[1, 2] = x[3, 0] = float("-inf")  # masked logits: probability 0, the gradient passes straight through
    upstream = torch.randn(4, 6, generator=g, dtype=torch.float64)
    upstream[torch.isinf(x)] = 0.0  # (-inf) · g would make both sides NaN in the loss; the gradient is what we test
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    (log_softmax(a, dim=dim) * upstream).sum().backward()
    (torch.log_softmax(b, dim=dim) * upstream).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)
    assert a.grad.abs().max() > 0.1


def test_log_softmax_of_a_row_with_masked_entries():
    x = torch.tensor([[0.0, float("-inf"), 1.0]], dtype=torch.float64)
    out = log_softmax(x)
    assert out[0, 1] == float("-inf")
    torch.testing.assert_close(out, torch.log_softmax(x, -1))


@pytest.mark.parametrize(
    "logits_shape, targets_shape",
    [((2, 3, 5), (2, 4)), ((2, 3, 5), (2, 3, 5)), ((2, 3, 5), (3,))],
)
def test_shape_mismatch_is_an_error(logits_shape, targets_shape):
    with pytest.raises(ValueError, match=r"targets must have the shape of logits without the class dimension"):
        cross_entropy(torch.randn(logits_shape), torch.zeros(targets_shape, dtype=torch.long))


@pytest.mark.parametrize("bad", [5, 7, -1, -99])
def test_target_out_of_range_is_an_error(bad):
    targets = torch.tensor([[0, 1, 2], [3, bad, 4]])
    with pytest.raises(ValueError, match=rf"target {bad} at position \(1, 1\) is outside the 5 classes"):
        cross_entropy(torch.randn(2, 3, 5), targets)


def test_ignore_index_inside_the_vocabulary_is_ignored_not_an_error():
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    targets = torch.tensor([[0, 1, 2], [3, 0, 4]])
    ours = cross_entropy(logits, targets, ignore_index=0)
    torch.testing.assert_close(ours, torch_ce(logits, targets, ignore_index=0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours, cross_entropy(logits[targets != 0], targets[targets != 0]), rtol=1e-12, atol=0)


def test_float_or_bool_targets_are_type_errors():
    logits = torch.randn(2, 5)
    with pytest.raises(TypeError, match="targets must hold integer class ids"):
        cross_entropy(logits, torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="targets must hold integer class ids"):
        cross_entropy(logits, torch.tensor([True, False]))
    with pytest.raises(TypeError, match="logits must be a floating-point tensor"):
        cross_entropy(torch.zeros(2, 5, dtype=torch.long), torch.tensor([0, 1]))


def test_bad_reduction_and_smoothing_are_errors():
    logits, targets = torch.randn(2, 5), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="reduction must be one of"):
        cross_entropy(logits, targets, reduction="average")
    for eps in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
            cross_entropy(logits, targets, label_smoothing=eps)
