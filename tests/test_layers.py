"""layers.py and the layer functions of functional.py: LayerNorm, RMSNorm, activations, FeedForward, TokenEmbedding.

Witnesses: the NumPy float64 reference ``reference/layers.py`` (rtol 1e-10 in float64, rtol 1e-5 / atol 1e-6
in float32); PyTorch's own ``nn.LayerNorm``, ``nn.RMSNorm``, ``F.gelu``, ``F.silu``, ``nn.Embedding``,
``nn.TransformerEncoderLayer`` and Hugging Face's ``LlamaMLP`` as oracles; properties and ``gradcheck``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from transformer_from_scratch import functional as tf
from transformer_from_scratch.layers import FFN_ACTIVATIONS, GATED, FeedForward, LayerNorm, RMSNorm, TokenEmbedding
from transformer_from_scratch.reference import layers as ref

F64 = {"rtol": 1e-10, "atol": 1e-12}  # float64 torch vs float64 NumPy
F32 = {"rtol": 1e-5, "atol": 1e-6}  # float32 torch vs float64 NumPy / a float32 oracle


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()


def randn(g, *shape, dtype=torch.float64, scale=1.0, shift=0.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype)


def randomise(module: nn.Module, g: torch.Generator, dtype=torch.float64, scale=0.5) -> nn.Module:
    """Cast and overwrite every parameter — LayerNorm gains/biases too, or those paths go untested."""
    module = module.to(dtype)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(randn(g, *p.shape, dtype=dtype, scale=scale))
    return module


def ffn_reference(ffn: FeedForward, x: torch.Tensor) -> torch.Tensor:
    """reference.feed_forward with the weights of ``ffn`` (dropout off), as a float64 tensor."""

    def arr(p):
        return None if p is None else np64(p)

    w3 = arr(ffn.w3.weight) if ffn.activation in GATED else None
    out = ref.feed_forward(
        np64(x), arr(ffn.w1.weight), arr(ffn.w1.bias), arr(ffn.w2.weight), arr(ffn.w2.bias), ffn.activation, w3
    )
    return torch.from_numpy(out)


@st.composite
def width_cases(draw, min_width=1, max_width=9):
    """(leading shape, width D, seed): inputs are (B, T, D) or (B, D) with B ≥ 2."""
    lead = draw(st.sampled_from([(2,), (2, 3), (3, 5)]))
    return lead, draw(st.integers(min_width, max_width)), draw(st.integers(0, 2**31 - 1))


# ---- LayerNorm ---------------------------------------------------------------------------------------------


@given(case=width_cases(min_width=2))
def test_layer_norm_matches_reference_float64(case):
    lead, d, seed = case
    g = torch.Generator().manual_seed(seed)
    norm = randomise(LayerNorm(d), g)
    x = randn(g, *lead, d, scale=3.0, shift=1.5)
    expected = ref.layer_norm(x.numpy(), np64(norm.weight), np64(norm.bias), 1e-5)
    assert_close(norm(x), torch.from_numpy(expected), **F64)


def test_layer_norm_float32_matches_reference(gen):
    norm = randomise(LayerNorm(16), gen, dtype=torch.float32)
    x = randn(gen, 3, 5, 16, dtype=torch.float32, scale=2.0, shift=-1.0)
    expected = ref.layer_norm(np64(x), np64(norm.weight), np64(norm.bias), 1e-5)
    assert_close(norm(x).double(), torch.from_numpy(expected), **F32)


@pytest.mark.parametrize("eps", [1e-5, 1e-12, 1e-3, 0.5])
def test_layer_norm_matches_nn_layer_norm(gen, eps):
    """nn.LayerNorm as the oracle: biased variance and eps inside the square root (a large eps exposes both)."""
    ours = randomise(LayerNorm(12, eps=eps), gen)
    theirs = nn.LayerNorm(12, eps=eps, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict())
    x = randn(gen, 3, 4, 12, scale=0.7)
    assert_close(ours(x), theirs(x), **F64)
    assert_close(tf.layer_norm(x, None, None, eps), F.layer_norm(x, (12,), eps=eps), **F64)


def test_layer_norm_defaults_and_parameters():
    norm = LayerNorm(6)
    assert norm.eps == 1e-5
    assert_close(norm.weight.detach(), torch.ones(6))
    assert_close(norm.bias.detach(), torch.zeros(6))
    assert sorted(norm.state_dict()) == ["bias", "weight"]


@given(case=width_cases(min_width=2), shift=st.floats(-100.0, 100.0))
def test_layer_norm_ignores_a_per_row_shift(case, shift):
    lead, d, seed = case
    g = torch.Generator().manual_seed(seed)
    norm = randomise(LayerNorm(d), g)
    x = randn(g, *lead, d)
    offsets = randn(g, *lead, 1, scale=shift)  # a different constant in every row
    assert_close(norm(x + offsets), norm(x), rtol=1e-9, atol=1e-9)


# ---- RMSNorm -----------------------------------------------------------------------------------------------


@given(case=width_cases())
def test_rms_norm_matches_reference_float64(case):
    lead, d, seed = case
    g = torch.Generator().manual_seed(seed)
    norm = randomise(RMSNorm(d), g)
    x = randn(g, *lead, d, scale=3.0)
    assert_close(norm(x), torch.from_numpy(ref.rms_norm(x.numpy(), np64(norm.weight), 1e-6)), **F64)


def test_rms_norm_float32_matches_reference(gen):
    norm = randomise(RMSNorm(16), gen, dtype=torch.float32)
    x = randn(gen, 3, 5, 16, dtype=torch.float32, scale=2.0)
    assert_close(norm(x).double(), torch.from_numpy(ref.rms_norm(np64(x), np64(norm.weight), 1e-6)), **F32)


@pytest.mark.parametrize("eps", [1e-6, 1e-5, 0.25])
def test_rms_norm_matches_nn_rms_norm(gen, eps):
    ours = randomise(RMSNorm(10, eps=eps), gen)
    theirs = nn.RMSNorm(10, eps=eps, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict())
    x = randn(gen, 2, 7, 10, scale=0.4)
    assert_close(ours(x), theirs(x), **F64)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rms_norm_half_precision_is_computed_in_float32(gen, dtype):
    """The half-precision output is exactly the float32 computation rounded once, not a half computation."""
    norm = randomise(RMSNorm(64), gen, dtype=torch.float32)  # float32 weight, as in mixed precision
    x = randn(gen, 4, 9, 64, scale=3.0).to(dtype)
    out = norm(x)
    assert out.dtype == dtype
    expected = tf.rms_norm(x.float(), norm.weight, 1e-6).to(dtype)
    assert torch.equal(out, expected)
    # the same weights stored in half precision: still one float32 computation, one rounding at the end
    expected_half_weight = tf.rms_norm(x.float(), norm.weight.to(dtype).float(), 1e-6).to(dtype)
    assert torch.equal(tf.rms_norm(x, norm.weight.to(dtype), 1e-6), expected_half_weight)


def test_rms_norm_float64_stays_float64(gen):
    x = randn(gen, 3, 8)
    out = tf.rms_norm(x, None, 1e-6)
    assert out.dtype == torch.float64
    assert_close(out, torch.from_numpy(ref.rms_norm(x.numpy(), np.ones(8), 1e-6)), **F64)


@given(case=width_cases(), factor=st.floats(0.5, 8.0))
def test_rms_norm_is_scale_invariant(case, factor):
    """RMSNorm(a·x) = RMSNorm(x) for a > 0, up to the effect of eps (tiny here)."""
    lead, d, seed = case
    g = torch.Generator().manual_seed(seed)
    x = randn(g, *lead, d)
    w = randn(g, d)
    assert_close(tf.rms_norm(factor * x, w, 1e-14), tf.rms_norm(x, w, 1e-14), rtol=1e-9, atol=1e-9)


# ---- activations -------------------------------------------------------------------------------------------

ACTIVATION_CASES = [
    ("relu", tf.relu, ref.relu, F.relu),
    ("gelu", tf.gelu, ref.gelu, lambda x: F.gelu(x, approximate="none")),
    ("gelu_tanh", tf.gelu_tanh, ref.gelu_tanh, lambda x: F.gelu(x, approximate="tanh")),
    ("silu", tf.silu, ref.silu, F.silu),
]


@pytest.mark.parametrize("name, ours, reference, oracle", ACTIVATION_CASES, ids=[c[0] for c in ACTIVATION_CASES])
def test_activation_matches_reference_and_torch(gen, name, ours, reference, oracle):
    x = randn(gen, 5, 41, scale=4.0)
    x[0, :5] = torch.tensor([0.0, -30.0, 30.0, -1e-3, 1e-3], dtype=torch.float64)  # zero, tails, near zero
    assert_close(ours(x), torch.from_numpy(reference(x.numpy())), **F64)
    assert_close(ours(x), oracle(x), **F64)
    x32 = x.float()
    assert_close(ours(x32).double(), torch.from_numpy(reference(np64(x32))), **F32)


def test_exact_and_tanh_gelu_are_different_functions():
    """They agree to ~1e-3, not to rounding: a checkpoint must use the one it was trained with."""
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    gap = (tf.gelu(x) - tf.gelu_tanh(x)).abs().max().item()
    assert 1e-5 < gap < 1e-2


# ---- FeedForward -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", FFN_ACTIVATIONS)
@given(seed=st.integers(0, 2**31 - 1), d_ff=st.integers(1, 12))
def test_feed_forward_matches_reference_float64(activation, seed, d_ff):
    g = torch.Generator().manual_seed(seed)
    ffn = randomise(FeedForward(6, d_ff, activation=activation), g)
    x = randn(g, 2, 5, 6)
    assert_close(ffn(x), ffn_reference(ffn, x), **F64)


@pytest.mark.parametrize("activation", FFN_ACTIVATIONS)
def test_feed_forward_float32_matches_reference(gen, activation):
    ffn = randomise(FeedForward(16, 40, activation=activation), gen, dtype=torch.float32, scale=0.3)
    x = randn(gen, 3, 5, 16, dtype=torch.float32)
    assert_close(ffn(x).double(), ffn_reference(ffn, x), **F32)


def test_feed_forward_parameters_and_biases():
    assert sorted(FeedForward(4, 8).state_dict()) == ["w1.bias", "w1.weight", "w2.bias", "w2.weight"]
    assert sorted(FeedForward(4, 8, bias=False).state_dict()) == ["w1.weight", "w2.weight"]
    swiglu = FeedForward(4, 8, activation="swiglu", bias=True)  # bias is ignored: SwiGLU is bias-free
    assert sorted(swiglu.state_dict()) == ["w1.weight", "w2.weight", "w3.weight"]
    assert (swiglu.w1.weight.shape, swiglu.w3.weight.shape, swiglu.w2.weight.shape) == ((8, 4), (8, 4), (4, 8))


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_matches_transformer_encoder_layer_path_with_dropout(gen, activation):
    """Same weights, same RNG state, training mode: identical output iff dropout sits where PyTorch puts it."""
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=24, dropout=0.3, activation=activation, batch_first=True)
    ffn = FeedForward(8, 24, activation=activation, dropout=0.3)
    with torch.no_grad():
        for ours, theirs in ((ffn.w1, layer.linear1), (ffn.w2, layer.linear2)):
            theirs.weight.normal_(generator=gen)
            theirs.bias.normal_(generator=gen)
            ours.load_state_dict(theirs.state_dict())
    ffn, layer = ffn.double().train(), layer.double().train()
    x = randn(gen, 3, 5, 8)
    torch.manual_seed(7)
    ours_out = ffn(x)
    torch.manual_seed(7)
    theirs_out = layer.linear2(layer.dropout(layer.activation(layer.linear1(x))))
    assert_close(ours_out, theirs_out, **F64)
    ffn.eval()
    assert_close(ffn(x), ffn(x))  # no dropout in evaluation mode: deterministic
    assert not torch.allclose(ffn(x), ours_out)


def test_swiglu_matches_hugging_face_llama_mlp(gen):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    config = LlamaConfig(hidden_size=8, intermediate_size=20, num_attention_heads=2, vocab_size=11)
    theirs = LlamaMLP(config).double()
    ours = randomise(FeedForward(8, 20, activation="swiglu"), gen)
    with torch.no_grad():  # gate = w1 (inside silu), up = w3 (linear branch), down = w2
        theirs.gate_proj.weight.copy_(ours.w1.weight)
        theirs.up_proj.weight.copy_(ours.w3.weight)
        theirs.down_proj.weight.copy_(ours.w2.weight)
    x = randn(gen, 2, 6, 8)
    assert_close(ours(x), theirs(x), **F64)


@pytest.mark.parametrize("kind", ["relu", "gated-gelu"])
def test_t5_feed_forward_matches_hugging_face(gen, kind):
    """relu = T5DenseActDense (wi, wo), gated_gelu = T5DenseGatedActDense (wi_0 inside the tanh GELU, wi_1 linear)."""
    from transformers import T5Config
    from transformers.models.t5.modeling_t5 import T5DenseActDense, T5DenseGatedActDense

    config = T5Config(d_model=8, d_ff=20, feed_forward_proj=kind, dropout_rate=0.0)
    gated = kind == "gated-gelu"
    theirs = (T5DenseGatedActDense if gated else T5DenseActDense)(config).double().eval()
    ours = randomise(FeedForward(8, 20, activation="gated_gelu" if gated else "relu", bias=False), gen)
    with torch.no_grad():
        if gated:
            theirs.wi_0.weight.copy_(ours.w1.weight)
            theirs.wi_1.weight.copy_(ours.w3.weight)
        else:
            theirs.wi.weight.copy_(ours.w1.weight)
        theirs.wo.weight.copy_(ours.w2.weight)
    x = randn(gen, 2, 6, 8)
    assert_close(ours(x), theirs(x), **F64)
    assert_close(ours(x), ffn_reference(ours, x), **F64)


# ---- TokenEmbedding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [False, True])
def test_token_embedding_matches_nn_embedding(gen, scale):
    ours = TokenEmbedding(13, 6, scale=scale)
    theirs = nn.Embedding(13, 6)
    theirs.load_state_dict(ours.state_dict())
    ids = torch.randint(0, 13, (3, 7), generator=gen)
    factor = math.sqrt(6) if scale else 1.0
    assert_close(ours(ids), theirs(ids) * factor, rtol=0, atol=0)


def test_token_embedding_padding_row_is_zero_and_gets_no_gradient(gen):
    emb = TokenEmbedding(10, 4, padding_idx=0, scale=True)
    assert torch.equal(emb.weight[0].detach(), torch.zeros(4))
    ids = torch.tensor([[0, 3, 3, 0], [5, 0, 1, 2]])
    emb(ids).pow(2).sum().backward()
    assert torch.equal(emb.weight.grad[0], torch.zeros(4))
    assert emb.weight.grad[3].abs().sum() > 0
    assert torch.equal(emb.weight.grad[9], torch.zeros(4))  # an unused id gets no gradient either


def test_token_embedding_scaled_init_has_about_unit_variance():
    emb = TokenEmbedding(4000, 64, scale=True)
    std = emb(torch.arange(4000)).std().item()
    assert 0.95 < std < 1.05


@pytest.mark.parametrize("bad_id", [5003, 5000, -1])
def test_token_embedding_rejects_ids_outside_the_vocabulary(bad_id):
    emb = TokenEmbedding(5000, 4)
    ids = torch.tensor([[1, 2, bad_id], [0, 4999, 7]])
    with pytest.raises(ValueError, match=f"token id {bad_id} is outside the vocabulary of size 5000"):
        emb(ids)


@pytest.mark.parametrize("ids", [torch.tensor([[1.0, 2.0]]), torch.tensor([[True, False]]), [[1, 2]]])
def test_token_embedding_rejects_non_integer_ids(ids):
    with pytest.raises(TypeError, match="ids must be an integer tensor of token ids"):
        TokenEmbedding(10, 4)(ids)


# ---- errors ------------------------------------------------------------------------------------------------


def test_bad_activation_name():
    with pytest.raises(ValueError, match=r"activation must be one of .*'swiglu'.* got 'swish'"):
        FeedForward(4, 8, activation="swish")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LayerNorm(0), "d_model must be a positive int, got 0"),
        (lambda: RMSNorm(4, eps=0.0), "eps must be a positive number"),
        (lambda: FeedForward(4, 8, dropout=1.0), r"dropout must be in \[0, 1\)"),
        (lambda: FeedForward(4, 0), "d_ff must be a positive int"),
        (lambda: TokenEmbedding(10, 4, padding_idx=10), r"padding_idx must be None or an int in \[0, 10\)"),
    ],
)
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("module", [LayerNorm(6), RMSNorm(6), FeedForward(6, 8)], ids=["ln", "rms", "ffn"])
def test_wrong_input_width(module):
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., d_model=6\), got \(2, 3, 5\)"):
        module(torch.randn(2, 3, 5))


# ---- gradients ---------------------------------------------------------------------------------------------


def test_gradcheck_layer_norm_and_rms_norm(gen):
    x = randn(gen, 2, 3, 5, scale=2.0).requires_grad_()
    w = randn(gen, 5).requires_grad_()
    b = randn(gen, 5).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, b: tf.layer_norm(x, w, b, 1e-5), (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w: tf.rms_norm(x, w, 1e-6), (x, w))


@pytest.mark.parametrize("activation", FFN_ACTIVATIONS)
def test_gradcheck_feed_forward(gen, activation):
    ffn = randomise(FeedForward(4, 6, activation=activation), gen)
    names = [n for n, _ in ffn.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in ffn.parameters()]
    x = randn(gen, 2, 3, 4).requires_grad_()

    def f(x, *ps):
        return torch.func.functional_call(ffn, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))


# ---- hand-written backward passes (the autograd.Functions of functional.py) ---------------------------------
# relu, gelu, gelu_tanh and layer_norm carry their own backward: each must give the gradients of PyTorch's
# built-in versions (the oracles), pass gradcheck, and leave its inputs untouched (the passes work in place
# on their own buffers).

TOLERANCES = {torch.float64: F64, torch.float32: F32}
ACTIVATION_ORACLES = [
    ("relu", tf.relu, torch.relu),
    ("gelu", tf.gelu, lambda x: F.gelu(x, approximate="none")),
    ("gelu_tanh", tf.gelu_tanh, lambda x: F.gelu(x, approximate="tanh")),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name, ours, oracle", ACTIVATION_ORACLES, ids=[c[0] for c in ACTIVATION_ORACLES])
def test_activation_gradient_matches_torch(gen, name, ours, oracle, dtype):
    """Values and gradients equal PyTorch's. In float32 the oracle runs in float64 on the same inputs: PyTorch's
    own float32 tanh-GELU is off by ~1e-6 for x ≲ -4 (1 + tanh(u) cancels), more than the float32 tolerance."""
    x = randn(gen, 3, 4, 37, scale=3.0)
    x[0, 0, :6] = torch.tensor([0.0, -30.0, 30.0, -1e-3, 1e-3, -0.0], dtype=torch.float64)  # kink, tails
    x = x.to(dtype)
    upstream = randn(gen, 3, 4, 37, dtype=dtype)
    x_ours, x_theirs = x.clone().requires_grad_(), x.double().requires_grad_()
    y_ours, y_theirs = ours(x_ours), oracle(x_theirs)
    assert y_ours.dtype == dtype
    assert_close(y_ours.double(), y_theirs, **TOLERANCES[dtype])
    (g_ours,) = torch.autograd.grad(y_ours, x_ours, upstream)
    (g_theirs,) = torch.autograd.grad(y_theirs, x_theirs, upstream.double())
    assert g_ours.dtype == dtype
    assert_close(g_ours.double(), g_theirs, **TOLERANCES[dtype])
    assert torch.equal(x_ours.detach(), x)  # the in-place steps never touch the input


def test_relu_gradient_at_zero_is_zero_as_in_torch():
    """max(x, 0) has no derivative at 0; like torch.relu we take the subgradient 0 there (and 1 for x > 0)."""
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(tf.relu(x).sum(), x)
    assert torch.equal(grad, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("name, ours, oracle", ACTIVATION_ORACLES, ids=[c[0] for c in ACTIVATION_ORACLES])
def test_gradcheck_activations(gen, name, ours, oracle):
    x = randn(gen, 2, 3, 5, scale=2.0)
    x = torch.where(x.abs() < 0.1, x + 0.3, x).requires_grad_()  # finite differences must not straddle ReLU's kink
    assert torch.autograd.gradcheck(ours, (x,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("affine", ["weight and bias", "weight only", "bias only", "neither"])
def test_layer_norm_gradients_match_f_layer_norm(gen, affine, dtype):
    d, eps = 24, 1e-5
    x = randn(gen, 3, 5, d, dtype=dtype, scale=2.0, shift=0.5)
    weight = randn(gen, d, dtype=dtype) if affine in ("weight and bias", "weight only") else None
    bias = randn(gen, d, dtype=dtype) if affine in ("weight and bias", "bias only") else None
    upstream = randn(gen, 3, 5, d, dtype=dtype)

    def leaves():
        return [t.clone().requires_grad_() for t in (x, weight, bias) if t is not None]

    def split(ts):  # back to (x, weight, bias) with None where a parameter is absent
        it = iter(ts)
        return [next(it) if t is not None else None for t in (x, weight, bias)]

    ours_in, theirs_in = leaves(), leaves()
    y_ours = tf.layer_norm(*split(ours_in), eps)
    y_theirs = F.layer_norm(theirs_in[0], (d,), *split(theirs_in)[1:], eps)
    assert_close(y_ours, y_theirs, **TOLERANCES[dtype])
    grads_ours = torch.autograd.grad(y_ours, ours_in, upstream)
    grads_theirs = torch.autograd.grad(y_theirs, theirs_in, upstream)
    for g_ours, g_theirs in zip(grads_ours, grads_theirs):
        assert_close(g_ours, g_theirs, **TOLERANCES[dtype])
    assert torch.equal(ours_in[0].detach(), x)  # the input is not normalised in place


def test_layer_norm_backward_with_a_broadcast_upstream_gradient(gen):
    """y.sum() sends back an expanded (stride-0) gradient; the hand-written backward must accept it."""
    norm = randomise(LayerNorm(7), gen)
    x = randn(gen, 2, 3, 7, scale=2.0).requires_grad_()
    x_oracle = x.detach().clone().requires_grad_()
    norm(x).sum().backward()
    (grad_oracle,) = torch.autograd.grad(F.layer_norm(x_oracle, (7,), norm.weight, norm.bias).sum(), x_oracle)
    assert_close(x.grad, grad_oracle, **F64)


def test_gradcheck_layer_norm_without_weight_or_bias(gen):
    x = randn(gen, 2, 3, 5, scale=2.0).requires_grad_()
    w = randn(gen, 5).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: tf.layer_norm(x, None, None, 1e-5), (x,))
    assert torch.autograd.gradcheck(lambda x, w: tf.layer_norm(x, w, None, 1e-5), (x, w))
