"""attention.MultiHeadAttention: the NumPy reference, nn.MultiheadAttention as an oracle, gradcheck,
the kernels and PyTorch implementations against the textbook one, dropout, and every error message."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.testing import assert_close

from transformer_from_scratch import masks
from transformer_from_scratch import reference as ref
from transformer_from_scratch.attention import MultiHeadAttention

F64 = {"rtol": 1e-10, "atol": 1e-12}  # float64 vs NumPy float64
F32 = {"rtol": 1e-5, "atol": 1e-6}  # float32 vs NumPy float64
ORACLE32 = {"rtol": 1e-6, "atol": 1e-6}  # float32 vs a float32 PyTorch oracle


def randn(g, *shape, dtype=torch.float64):
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def random_mha(g, d_model, n_heads, dtype=torch.float64, **kwargs) -> MultiHeadAttention:
    """Every weight and bias drawn from ``g`` (biases too: zero biases would leave their path untested)."""
    mha = MultiHeadAttention(d_model, n_heads, **kwargs).to(dtype)
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(randn(g, *p.shape, dtype=dtype) * d_model**-0.5)
    return mha


def reference_mha(mha, x_q, x_kv=None, allowed=None, bias=None):
    x_kv = x_q if x_kv is None else x_kv
    params = []
    for proj in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj):
        params += [
            proj.weight.detach().double().numpy(),
            None if proj.bias is None else proj.bias.detach().double().numpy(),
        ]
    out, w = ref.multi_head_attention(
        x_q.detach().double().numpy(),
        x_kv.detach().double().numpy(),
        *params,
        n_heads=mha.n_heads,
        allowed=None if allowed is None else allowed.numpy(),
        bias=None if bias is None else bias.detach().double().numpy(),
        return_weights=True,
    )
    return torch.from_numpy(out), torch.from_numpy(w)


def self_attention_case(g, dtype=torch.float64, batch=3, t=5, d_model=12, n_heads=3):
    mha = random_mha(g, d_model, n_heads, dtype)
    x = randn(g, batch, t, d_model, dtype=dtype)
    valid = masks.padding_mask_from_lengths([t, 3, 1][:batch], max_len=t)
    allowed = masks.combine(masks.causal_mask(t), masks.key_padding(valid))  # (B, 1, T, T)
    bias = randn(g, 1, n_heads, t, t, dtype=dtype)  # (1, H, T, T)
    return mha, x, allowed, bias


def cross_attention_case(g, dtype=torch.float64, batch=2, t=4, s=6, d_model=8, n_heads=2):
    mha = random_mha(g, d_model, n_heads, dtype)
    x_q, x_kv = randn(g, batch, t, d_model, dtype=dtype), randn(g, batch, s, d_model, dtype=dtype)
    query_valid = masks.padding_mask_from_lengths([t, 2], max_len=t)
    key_valid = masks.padding_mask_from_lengths([3, s], max_len=s)
    allowed = masks.cross_attention_mask(query_valid, key_valid)  # (B, 1, T, S); padded queries see nothing
    bias = randn(g, batch, n_heads, t, s, dtype=dtype)
    return mha, x_q, x_kv, allowed, bias


# ---- the NumPy reference -------------------------------------------------------------------------------


def test_self_attention_matches_reference_float64(gen):
    mha, x, allowed, bias = self_attention_case(gen)
    out, w = mha(x, allowed=allowed, bias=bias, return_weights=True)
    ref_out, ref_w = reference_mha(mha, x, None, allowed, bias)
    assert out.shape == (3, 5, 12) and w.shape == (3, 3, 5, 5)
    assert_close(out, ref_out, **F64)
    assert_close(w, ref_w, **F64)


def test_cross_attention_matches_reference_float64(gen):
    mha, x_q, x_kv, allowed, bias = cross_attention_case(gen)
    out, w = mha(x_q, x_kv, allowed=allowed, bias=bias, return_weights=True)
    ref_out, ref_w = reference_mha(mha, x_q, x_kv, allowed, bias)
    assert out.shape == (2, 4, 8) and w.shape == (2, 2, 4, 6)
    assert_close(out, ref_out, **F64)
    assert_close(w, ref_w, **F64)
    # padded queries (batch row 1, positions 2, 3) attend to nothing: the output is the output bias alone
    assert (w[1, :, 2:] == 0).all()
    assert_close(out[1, 2:], mha.out_proj.bias.expand(2, 8), **F64)


def test_without_projection_biases_matches_reference(gen):
    mha = random_mha(gen, 8, 4, bias=False)
    assert all(p.bias is None for p in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj))
    x_q, x_kv = randn(gen, 2, 3, 8), randn(gen, 2, 7, 8)
    assert_close(mha(x_q, x_kv), reference_mha(mha, x_q, x_kv)[0], **F64)


def test_matches_reference_float32(gen):
    mha, x_q, x_kv, allowed, bias = cross_attention_case(gen, dtype=torch.float32)
    out, w = mha(x_q, x_kv, allowed=allowed, bias=bias, return_weights=True)
    ref_out, ref_w = reference_mha(mha, x_q, x_kv, allowed, bias)
    assert out.dtype == torch.float32
    assert_close(out.double(), ref_out, **F32)
    assert_close(w.double(), ref_w, **F32)
    mha, x, allowed, bias = self_attention_case(gen, dtype=torch.float32)
    assert_close(mha(x, allowed=allowed, bias=bias).double(), reference_mha(mha, x, None, allowed, bias)[0], **F32)


def test_per_head_mask_of_shape_bhts(gen):
    mha = random_mha(gen, 12, 4)
    x_q, x_kv = randn(gen, 2, 3, 12), randn(gen, 2, 5, 12)
    allowed = torch.rand(2, 4, 3, 5, generator=gen) < 0.5  # a different mask per head
    out, w = mha(x_q, x_kv, allowed=allowed, return_weights=True)
    ref_out, ref_w = reference_mha(mha, x_q, x_kv, allowed)
    assert_close(out, ref_out, **F64)
    assert_close(w, ref_w, **F64)


# ---- gradients -----------------------------------------------------------------------------------------


def test_gradcheck_inputs_bias_and_every_parameter(gen):
    mha, x_q, x_kv, allowed, bias = cross_attention_case(gen, batch=2, t=3, s=4, d_model=4, n_heads=2)
    names = [n for n, _ in mha.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in mha.parameters())

    def f(x_q, x_kv, bias, *params):
        return functional_call(mha, dict(zip(names, params)), (x_q, x_kv), {"allowed": allowed, "bias": bias})

    inputs = (x_q.requires_grad_(), x_kv.requires_grad_(), bias.requires_grad_(), *params)
    assert torch.autograd.gradcheck(f, inputs)


# ---- the oracle: nn.MultiheadAttention -----------------------------------------------------------------


def torch_mha_with_our_weights(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    oracle = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True, dtype=mha.q_proj.weight.dtype)
    with torch.no_grad():
        oracle.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
        oracle.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
        oracle.out_proj.weight.copy_(mha.out_proj.weight)
        oracle.out_proj.bias.copy_(mha.out_proj.bias)
    return oracle.eval()


def test_self_attention_with_key_padding_matches_nn_multiheadattention(gen):
    mha = random_mha(gen, 16, 4, torch.float32).eval()
    oracle = torch_mha_with_our_weights(mha)
    x = randn(gen, 3, 6, 16, dtype=torch.float32)
    valid = masks.padding_mask_from_lengths([6, 4, 2], max_len=6)
    key_padding_mask = masks.to_key_padding_mask(valid)  # PyTorch's polarity: True = ignore
    ours, w = mha(x, allowed=masks.from_key_padding_mask(key_padding_mask), return_weights=True)
    theirs, their_w = oracle(x, x, x, key_padding_mask=key_padding_mask, average_attn_weights=False)
    for b in range(3):  # compare real query positions only
        n = int(valid[b].sum())
        assert_close(ours[b, :n], theirs[b, :n], **ORACLE32)
        assert_close(w[b, :, :n], their_w[b, :, :n], **ORACLE32)


def test_causal_self_attention_matches_nn_multiheadattention(gen):
    mha = random_mha(gen, 12, 3, torch.float32).eval()
    oracle = torch_mha_with_our_weights(mha)
    x = randn(gen, 2, 7, 12, dtype=torch.float32)
    causal = masks.causal_mask(7)
    ours, w = mha(x, allowed=causal, return_weights=True)
    theirs, their_w = oracle(x, x, x, attn_mask=masks.to_torch_attn_mask(causal), average_attn_weights=False)
    assert_close(ours, theirs, **ORACLE32)
    assert_close(w, their_w, **ORACLE32)


def test_cross_attention_with_key_padding_matches_nn_multiheadattention(gen):
    mha = random_mha(gen, 8, 2, torch.float32).eval()
    oracle = torch_mha_with_our_weights(mha)
    x_q, x_kv = randn(gen, 3, 4, 8, dtype=torch.float32), randn(gen, 3, 9, 8, dtype=torch.float32)
    key_valid = masks.padding_mask_from_lengths([9, 5, 1], max_len=9)
    key_padding_mask = masks.to_key_padding_mask(key_valid)
    ours, w = mha(x_q, x_kv, allowed=masks.from_key_padding_mask(key_padding_mask), return_weights=True)
    theirs, their_w = oracle(x_q, x_kv, x_kv, key_padding_mask=key_padding_mask, average_attn_weights=False)
    assert_close(ours, theirs, **ORACLE32)
    assert_close(w, their_w, **ORACLE32)
    # averaged over heads, as nn.MultiheadAttention reports by default
    _, their_mean = oracle(x_q, x_kv, x_kv, key_padding_mask=key_padding_mask)
    assert_close(w.mean(dim=1), their_mean, **ORACLE32)


# ---- the other implementations (impl="kernels", impl="torch") against the textbook ----------------------------

OTHER_IMPLS = ["kernels", "torch"]


def twin(mha: MultiHeadAttention, impl: str) -> MultiHeadAttention:
    other = MultiHeadAttention(mha.d_model, mha.n_heads, impl=impl).to(mha.q_proj.weight.dtype)
    other.load_state_dict(mha.state_dict())
    return other


@pytest.mark.parametrize("impl", OTHER_IMPLS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_impl_equals_plain_self_attention(gen, dtype, impl):
    mha, x, allowed, bias = self_attention_case(gen, dtype=dtype)
    other = twin(mha, impl)
    tol = F64 if dtype == torch.float64 else F32
    for kwargs in ({}, {"allowed": allowed}, {"bias": bias}, {"allowed": allowed, "bias": bias}):
        assert_close(other(x, **kwargs), mha(x, **kwargs), **tol)


@pytest.mark.parametrize("impl", OTHER_IMPLS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_impl_equals_plain_cross_attention_with_fully_masked_rows(gen, dtype, impl):
    mha, x_q, x_kv, allowed, bias = cross_attention_case(gen, dtype=dtype)
    other = twin(mha, impl)
    tol = F64 if dtype == torch.float64 else F32
    for kwargs in ({"allowed": allowed}, {"allowed": allowed, "bias": bias}):
        out = other(x_q, x_kv, **kwargs)
        assert not torch.isnan(out).any()
        assert_close(out, mha(x_q, x_kv, **kwargs), **tol)
        assert_close(out[1, 2:], mha.out_proj.bias.expand(2, 8), **tol)  # padded queries: zero attention


@pytest.mark.parametrize("impl", OTHER_IMPLS)
def test_impl_with_a_neg_inf_bias_row_gives_zero_not_nan(gen, impl):
    mha, x_q, x_kv, _, bias = cross_attention_case(gen)
    bias = bias.clone()
    bias[0, :, 1] = float("-inf")  # query 1 of batch row 0 blocked through the bias alone
    out = twin(mha, impl)(x_q, x_kv, bias=bias)
    assert not torch.isnan(out).any()
    assert_close(out, mha(x_q, x_kv, bias=bias), **F64)


def test_torch_impl_zeroes_empty_rows_even_if_the_kernel_returns_nan(gen, monkeypatch):
    """Older torch versions return NaN for a query with no allowed key; impl="torch" must still give 0.

    torch 2.13 already returns zeros there, so the kernel is wrapped to behave like the older ones.
    """
    from transformer_from_scratch import fused

    kernel = fused.F.scaled_dot_product_attention

    def nan_on_empty_rows(q, k, v, attn_mask=None, **kwargs):
        out = kernel(q, k, v, attn_mask=attn_mask, **kwargs)
        blocked = ~attn_mask if attn_mask.dtype == torch.bool else torch.isneginf(attn_mask)
        empty = blocked.expand(*q.shape[:-1], k.shape[-2]).all(-1, keepdim=True)  # (B,H,T,1)
        return out.masked_fill(empty, float("nan"))

    monkeypatch.setattr(fused.F, "scaled_dot_product_attention", nan_on_empty_rows)
    mha, x_q, x_kv, allowed, bias = cross_attention_case(gen)
    other = twin(mha, "torch")
    for kwargs in ({"allowed": allowed}, {"allowed": allowed, "bias": bias}):
        out = other(x_q, x_kv, **kwargs)
        assert not torch.isnan(out).any()
        assert_close(out, mha(x_q, x_kv, **kwargs), **F64)


@pytest.mark.parametrize("impl", OTHER_IMPLS)
def test_impl_gradients_equal_plain(gen, impl):
    mha, x_q, x_kv, allowed, bias = cross_attention_case(gen)
    other = twin(mha, impl)
    grads = []
    for module in (mha, other):
        xq = x_q.clone().requires_grad_()
        module.zero_grad()
        module(xq, x_kv, allowed=allowed, bias=bias).pow(2).sum().backward()
        grads.append([xq.grad, *(p.grad for p in module.parameters())])
    for a, b in zip(*grads):
        assert not torch.isnan(b).any()
        assert_close(b, a, **F64)


@pytest.mark.parametrize("impl", OTHER_IMPLS)
def test_impl_can_return_weights(gen, impl):
    mha, x, allowed, bias = self_attention_case(gen)
    out, w = twin(mha, impl)(x, allowed=allowed, return_weights=True)
    expected_out, expected_w = mha(x, allowed=allowed, return_weights=True)
    assert_close(out, expected_out, **F64)
    assert_close(w, expected_w, **F64)


# ---- dropout -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["plain", *OTHER_IMPLS])
def test_dropout_only_in_train_mode(gen, impl):
    mha = random_mha(gen, 8, 2, dropout=0.5, impl=impl)
    plain = random_mha(torch.Generator().manual_seed(1234), 8, 2)  # same weights, no dropout
    mha.load_state_dict(plain.state_dict())
    x = randn(gen, 2, 6, 8)
    mha.eval()
    assert torch.equal(mha(x), mha(x))  # eval: deterministic
    assert_close(mha(x), plain(x), **F64)  # eval: dropout off
    mha.train()
    torch.manual_seed(0)
    a = mha(x)
    torch.manual_seed(0)
    b = mha(x)
    c = mha(x)
    assert torch.equal(a, b)  # train: reproducible from the seed
    assert not torch.allclose(a, plain(x))  # train: dropout changes the output
    assert not torch.allclose(b, c)  # ... differently on each call


def test_dropout_does_not_change_returned_weights(gen):
    mha = random_mha(gen, 8, 2, dropout=0.5).train()
    x = randn(gen, 2, 6, 8)
    _, w = mha(x, return_weights=True)
    assert_close(w.sum(-1), torch.ones(2, 2, 6, dtype=torch.float64), **F64)


# ---- module surface and errors -------------------------------------------------------------------------


def test_parameter_names_and_shapes():
    mha = MultiHeadAttention(12, 3)
    shapes = {n: tuple(p.shape) for n, p in mha.named_parameters()}
    expected = {f"{p}.weight": (12, 12) for p in ("q_proj", "k_proj", "v_proj", "out_proj")}
    expected |= {f"{p}.bias": (12,) for p in ("q_proj", "k_proj", "v_proj", "out_proj")}
    assert shapes == expected
    assert mha.d_head == 4
    assert "d_head=4" in repr(mha)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"d_model": 30, "n_heads": 4}, ValueError, "d_model=30 is not divisible by n_heads=4"),
        ({"d_model": 0, "n_heads": 1}, ValueError, "d_model must be a positive int, got 0"),
        ({"d_model": 8.0, "n_heads": 2}, ValueError, "d_model must be a positive int, got 8.0"),
        ({"d_model": 8, "n_heads": 0}, ValueError, "n_heads must be a positive int, got 0"),
        ({"d_model": 8, "n_heads": 2, "dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
        ({"d_model": 8, "n_heads": 2, "dropout": -0.1}, ValueError, r"dropout must be in \[0, 1\), got -0.1"),
    ],
)
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        MultiHeadAttention(**kwargs)


def test_forward_errors(gen):
    mha = random_mha(gen, 8, 2)
    x_q, x_kv = randn(gen, 2, 3, 8), randn(gen, 2, 5, 8)
    with pytest.raises(ValueError, match=r"x_kv has width 6, expected d_model=8"):
        mha(x_q, randn(gen, 2, 5, 6))
    with pytest.raises(ValueError, match=r"x_q has width 4, expected d_model=8"):
        mha(randn(gen, 2, 3, 4), x_kv)
    with pytest.raises(ValueError, match=r"batch sizes differ: x_q \(2, 3, 8\) vs x_kv \(3, 5, 8\)"):
        mha(x_q, randn(gen, 3, 5, 8))
    with pytest.raises(ValueError, match=r"x_q must have shape \(B, length, d_model\), got \(3, 8\)"):
        mha(x_q[0])
    with pytest.raises(TypeError, match="x_kv must be a torch.Tensor, got list"):
        mha(x_q, [[0.0]])
    with pytest.raises(TypeError, match="allowed must have dtype torch.bool .* got torch.int64"):
        mha(x_q, x_kv, allowed=torch.ones(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"allowed of shape \(5, 3\) is not broadcastable .* \(2, 2, 3, 5\)"):
        mha(x_q, x_kv, allowed=torch.ones(5, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"bias of shape \(2, 3, 3, 5\) is not broadcastable .* \(2, 2, 3, 5\)"):
        mha(x_q, x_kv, bias=torch.zeros(2, 3, 3, 5, dtype=torch.float64))


@pytest.mark.parametrize("impl", OTHER_IMPLS)
def test_forward_errors_other_impls(gen, impl):
    mha = twin(random_mha(gen, 8, 2), impl)
    x_q, x_kv = randn(gen, 2, 3, 8), randn(gen, 2, 5, 8)
    with pytest.raises(TypeError, match="allowed must have dtype torch.bool"):
        mha(x_q, x_kv, allowed=torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"allowed of shape \(2, 1, 1, 3\) is not broadcastable .* \(2, 2, 3, 5\)"):
        mha(x_q, x_kv, allowed=torch.ones(2, 1, 1, 3, dtype=torch.bool))  # padding on the query axis


def test_packed_projection_falls_back_to_the_modules_when_a_projection_has_a_hook():
    """The one-matmul q|k|v path must give the same result as the three modules, and never skip a hook."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(12, 3).double()
    x, memory = torch.randn(2, 5, 12, dtype=torch.float64), torch.randn(2, 7, 12, dtype=torch.float64)
    packed_self, packed_cross = mha(x), mha(x, memory)
    calls = []
    mha.q_proj.register_forward_hook(lambda module, args, out: calls.append(out.shape))
    torch.testing.assert_close(mha(x), packed_self, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mha(x, memory), packed_cross, rtol=1e-12, atol=1e-12)
    assert calls == [torch.Size([2, 5, 12]), torch.Size([2, 5, 12])]  # the hook saw both forward passes
