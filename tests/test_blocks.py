"""EncoderBlock, DecoderBlock and the stacks: NumPy reference parity, laws of the model, gradients, errors.

The NumPy reference (``reference/blocks.py``) is assembled from the attention, layer-norm and feed-forward
references; PyTorch's own layers are the second witness (``test_interop_torch_nn.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import randomize_
from hypothesis import given
from hypothesis import strategies as st
from torch.func import functional_call

from transformer_from_scratch import masks
from transformer_from_scratch.blocks import DecoderBlock, EncoderBlock
from transformer_from_scratch.config import BlockConfig
from transformer_from_scratch.positional import RotaryEmbedding
from transformer_from_scratch.reference import blocks as ref
from transformer_from_scratch.stacks import Decoder, Encoder


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: on a shared 2-core CPU, synchronising two BLAS threads costs far more than the
    arithmetic (a 12×12 float64 matmul measured ~15 ms with 2 threads under load, ~0.1 ms with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


F64 = dict(rtol=1e-10, atol=1e-12)  # float64 torch vs float64 NumPy
F32 = dict(rtol=1e-5, atol=1e-5)  # float32 torch vs float64 NumPy, outputs of order 1


def numpy_weights(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy() for k, v in module.state_dict().items()}


def randn(seed: int, *shape: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


B, T, S, D, H, FF = 3, 5, 7, 12, 3, 20  # batch, target length, source length, width, heads, ff width
TGT_VALID = masks.padding_mask_from_lengths([5, 3, 4], max_len=T)  # (B, T)
SRC_VALID = masks.padding_mask_from_lengths([7, 2, 5], max_len=S)  # (B, S)


def encoder_mask(kind: str) -> torch.Tensor:
    if kind == "padding":
        return masks.key_padding(SRC_VALID)  # (B,1,1,S)
    return masks.combine(masks.causal_mask(S), masks.key_padding(SRC_VALID))  # (B,1,S,S)


# ---- reference parity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("mask", ["padding", "causal+padding"])
def test_encoder_block_matches_reference_float64(norm_first, activation, mask):
    block = (
        randomize_(EncoderBlock(BlockConfig(D, H, FF, activation=activation, norm_first=norm_first)), 1).double().eval()
    )
    x, allowed = randn(2, B, S, D), encoder_mask(mask)
    out, w = block(x, allowed=allowed, return_attention=True)
    ref_out, ref_w = ref.encoder_block(
        x.numpy(),
        numpy_weights(block),
        H,
        allowed=allowed.numpy(),
        norm_first=norm_first,
        activation=activation,
        return_weights=True,
    )
    np.testing.assert_allclose(out.detach().numpy(), ref_out, **F64)
    np.testing.assert_allclose(w.detach().numpy(), ref_w, **F64)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_block_matches_reference_float64(norm_first, activation):
    block = (
        randomize_(DecoderBlock(BlockConfig(D, H, FF, activation=activation, norm_first=norm_first)), 3).double().eval()
    )
    y, memory = randn(4, B, T, D), randn(5, B, S, D)
    self_allowed = masks.combine(masks.causal_mask(T), masks.key_padding(TGT_VALID))  # (B,1,T,T)
    cross_allowed = masks.key_padding(SRC_VALID)  # (B,1,1,S)
    out, w_self, w_cross = block(
        y, memory, self_allowed=self_allowed, cross_allowed=cross_allowed, return_attention=True
    )
    ref_out, ref_self, ref_cross = ref.decoder_block(
        y.numpy(),
        memory.numpy(),
        numpy_weights(block),
        H,
        self_allowed=self_allowed.numpy(),
        cross_allowed=cross_allowed.numpy(),
        norm_first=norm_first,
        activation=activation,
        return_weights=True,
    )
    np.testing.assert_allclose(out.detach().numpy(), ref_out, **F64)
    np.testing.assert_allclose(w_self.detach().numpy(), ref_self, **F64)
    np.testing.assert_allclose(w_cross.detach().numpy(), ref_cross, **F64)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_blocks_match_reference_float32(norm_first):
    enc = randomize_(EncoderBlock(BlockConfig(D, H, FF, activation="gelu", norm_first=norm_first)), 6).eval()
    dec = randomize_(DecoderBlock(BlockConfig(D, H, FF, norm_first=norm_first)), 7).eval()
    x, y = randn(8, B, S, D, dtype=torch.float32), randn(9, B, T, D, dtype=torch.float32)
    allowed = masks.key_padding(SRC_VALID)
    self_allowed = masks.combine(masks.causal_mask(T), masks.key_padding(TGT_VALID))
    with torch.no_grad():
        memory = enc(x, allowed=allowed)
        out = dec(y, memory, self_allowed=self_allowed, cross_allowed=allowed)
    opts = dict(norm_first=norm_first)
    ref_memory = ref.encoder_block(
        x.double().numpy(), numpy_weights(enc), H, allowed=allowed.numpy(), activation="gelu", **opts
    )
    ref_out = ref.decoder_block(
        y.double().numpy(),
        memory.double().numpy(),
        numpy_weights(dec),
        H,
        self_allowed=self_allowed.numpy(),
        cross_allowed=allowed.numpy(),
        **opts,
    )
    np.testing.assert_allclose(memory.numpy(), ref_memory, **F32)
    np.testing.assert_allclose(out.numpy(), ref_out, **F32)


def test_rms_swiglu_bias_free_block_matches_reference_float64():
    """The Llama-style parts without rotary: RMSNorm, SwiGLU, no biases, pre-norm."""
    block = EncoderBlock(
        BlockConfig(D, H, FF, norm="rms", norm_first=True, activation="swiglu", bias=False, layer_norm_eps=1e-6)
    )
    block = randomize_(block, 10).double().eval()
    assert not any(name.endswith("bias") for name, _ in block.named_parameters())
    x, allowed = randn(11, B, S, D), encoder_mask("causal+padding")
    out = block(x, allowed=allowed)
    ref_out = ref.encoder_block(
        x.numpy(),
        numpy_weights(block),
        H,
        allowed=allowed.numpy(),
        norm_first=True,
        activation="swiglu",
        eps=1e-6,
        norm="rms",
    )
    np.testing.assert_allclose(out.detach().numpy(), ref_out, **F64)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_stacks_match_layer_by_layer_reference_float64(norm_first):
    """A stack is its blocks applied in order, plus the final norm exactly when pre-LN (by default)."""
    enc = randomize_(Encoder(BlockConfig(D, H, FF, norm_first=norm_first), 2), 12).double().eval()
    dec = randomize_(Decoder(BlockConfig(D, H, FF, norm_first=norm_first), 2), 13).double().eval()
    assert (enc.final_norm is not None) == norm_first and (dec.final_norm is not None) == norm_first
    x, y = randn(14, B, S, D), randn(15, B, T, D)
    allowed = masks.key_padding(SRC_VALID)
    self_allowed = masks.combine(masks.causal_mask(T), masks.key_padding(TGT_VALID))
    memory = enc(x, allowed=allowed).last_hidden_state
    out = dec(y, memory, self_allowed=self_allowed, cross_allowed=allowed).last_hidden_state

    w_enc, w_dec = numpy_weights(enc), numpy_weights(dec)
    ref_x, ref_y = x.numpy(), y.numpy()
    for i in range(2):
        sub = {k[len(f"layers.{i}.") :]: v for k, v in w_enc.items() if k.startswith(f"layers.{i}.")}
        ref_x = ref.encoder_block(ref_x, sub, H, allowed=allowed.numpy(), norm_first=norm_first)
    if norm_first:
        mean, var = ref_x.mean(-1, keepdims=True), ref_x.var(-1, keepdims=True)
        ref_x = (ref_x - mean) / np.sqrt(var + 1e-5) * w_enc["final_norm.weight"] + w_enc["final_norm.bias"]
    np.testing.assert_allclose(memory.detach().numpy(), ref_x, **F64)
    for i in range(2):
        sub = {k[len(f"layers.{i}.") :]: v for k, v in w_dec.items() if k.startswith(f"layers.{i}.")}
        ref_y = ref.decoder_block(
            ref_y,
            ref_x,
            sub,
            H,
            self_allowed=self_allowed.numpy(),
            cross_allowed=allowed.numpy(),
            norm_first=norm_first,
        )
    if norm_first:
        mean, var = ref_y.mean(-1, keepdims=True), ref_y.var(-1, keepdims=True)
        ref_y = (ref_y - mean) / np.sqrt(var + 1e-5) * w_dec["final_norm.weight"] + w_dec["final_norm.bias"]
    np.testing.assert_allclose(out.detach().numpy(), ref_y, **F64)


def test_final_norm_can_be_forced_on_a_post_ln_stack():
    """nn.Transformer style: post-LN blocks and a final norm all the same."""
    enc = randomize_(Encoder(BlockConfig(D, H, FF), 1, final_norm=True), 16).double().eval()
    x = randn(17, B, S, D)
    out = enc(x).last_hidden_state
    inner = enc.layers[0](x)
    torch.testing.assert_close(out, enc.final_norm(inner), rtol=0, atol=0)
    assert not torch.allclose(out, inner)


# ---- return_attention ------------------------------------------------------------------------------------


def test_encoder_block_weights_are_those_of_its_self_attention():
    block = randomize_(EncoderBlock(BlockConfig(D, H, FF, norm_first=True)), 18).double().eval()
    x, allowed = randn(19, B, S, D), encoder_mask("causal+padding")
    _, w = block(x, allowed=allowed, return_attention=True)
    _, expected = block.self_attn(block.norm1(x), allowed=allowed, return_weights=True)
    torch.testing.assert_close(w, expected, rtol=0, atol=0)
    assert w.shape == (B, H, S, S)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, H, S, dtype=torch.float64))  # every query sees itself
    upper = torch.triu(torch.ones(S, S, dtype=torch.bool), diagonal=1)
    assert (w[..., upper] == 0).all(), "causal: no weight above the diagonal"
    assert (w[1, :, :, 2:] == 0).all(), "row 1 has 2 real tokens: no weight on its padding"


def test_decoder_stack_returns_every_layers_self_and_cross_weights():
    dec = randomize_(Decoder(BlockConfig(D, H, FF), 3), 20).double().eval()
    y, memory = randn(21, B, T, D), randn(22, B, S, D)
    self_allowed = masks.combine(masks.causal_mask(T), masks.key_padding(TGT_VALID))
    cross_allowed = masks.key_padding(SRC_VALID)
    result = dec(y, memory, self_allowed=self_allowed, cross_allowed=cross_allowed, return_attention=True)
    out, w_self, w_cross = result.last_hidden_state, result.attentions, result.cross_attentions
    assert len(w_self) == len(w_cross) == 3
    plain = dec(y, memory, self_allowed=self_allowed, cross_allowed=cross_allowed)
    assert plain.attentions is None and plain.cross_attentions is None
    torch.testing.assert_close(out, plain.last_hidden_state)
    h = y
    for layer, ws, wc in zip(dec.layers, w_self, w_cross):
        # post-LN: the self-attention sees the block input, the cross-attention the first sub-layer's output
        _, expected_self = layer.self_attn(h, allowed=self_allowed, return_weights=True)
        h1 = layer.norm1(h + layer.self_attn(h, allowed=self_allowed))
        _, expected_cross = layer.cross_attn(h1, memory, allowed=cross_allowed, return_weights=True)
        torch.testing.assert_close(ws, expected_self, rtol=0, atol=0)
        torch.testing.assert_close(wc, expected_cross, rtol=0, atol=0)
        assert wc.shape == (B, H, T, S)
        torch.testing.assert_close(wc.sum(-1), torch.ones(B, H, T, dtype=torch.float64))
        assert (wc[1, :, :, 2:] == 0).all() and (wc[2, :, :, 5:] == 0).all(), "cross-attention saw source padding"
        h = layer(h, memory, self_allowed=self_allowed, cross_allowed=cross_allowed)


# ---- laws of the model -------------------------------------------------------------------------------------


@given(seed=st.integers(0, 2**31 - 1), t=st.integers(0, T - 2), norm_first=st.booleans())
def test_decoder_block_future_never_changes_the_past(seed, t, norm_first):
    block = randomize_(DecoderBlock(BlockConfig(D, H, FF, norm_first=norm_first)), seed).double().eval()
    y, memory = randn(seed + 1, B, T, D), randn(seed + 2, B, S, D)
    y2 = y.clone()
    y2[:, t + 1 :] += randn(seed + 3, B, T - t - 1, D)
    causal = masks.causal_mask(T)
    out, out2 = block(y, memory, self_allowed=causal), block(y2, memory, self_allowed=causal)
    torch.testing.assert_close(out[:, : t + 1], out2[:, : t + 1], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out[:, t + 1 :], out2[:, t + 1 :])  # the future did change


@given(seed=st.integers(0, 2**31 - 1), norm_first=st.booleans())
def test_encoder_block_ignores_padded_tokens(seed, norm_first):
    block = randomize_(EncoderBlock(BlockConfig(D, H, FF, norm_first=norm_first)), seed).double().eval()
    x = randn(seed + 1, B, S, D)
    x2 = x.clone()
    x2[~SRC_VALID] = randn(seed + 2, int((~SRC_VALID).sum()), D)  # new values at the padded positions only
    allowed = masks.key_padding(SRC_VALID)
    out, out2 = block(x, allowed=allowed), block(x2, allowed=allowed)
    torch.testing.assert_close(out[SRC_VALID], out2[SRC_VALID], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(block(x), block(x2)), "without the mask the padding does leak (the test can fail)"


@given(seed=st.integers(0, 2**31 - 1), norm_first=st.booleans())
def test_cross_attention_ignores_padded_source_positions(seed, norm_first):
    block = randomize_(DecoderBlock(BlockConfig(D, H, FF, norm_first=norm_first)), seed).double().eval()
    y, memory = randn(seed + 1, B, T, D), randn(seed + 2, B, S, D)
    memory2 = memory.clone()
    memory2[~SRC_VALID] = randn(seed + 3, int((~SRC_VALID).sum()), D)
    cross = masks.key_padding(SRC_VALID)
    out, out2 = block(y, memory, cross_allowed=cross), block(y, memory2, cross_allowed=cross)
    torch.testing.assert_close(out, out2, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(block(y, memory), block(y, memory2))


@given(seed=st.integers(0, 2**31 - 1), norm_first=st.booleans())
def test_encoder_without_positions_is_permutation_equivariant(seed, norm_first):
    """Attention and the per-position layers never look at order: permuting the tokens permutes the outputs."""
    enc = randomize_(Encoder(BlockConfig(D, H, FF, norm_first=norm_first), 2), seed).double().eval()
    x = randn(seed + 1, B, S, D)
    perm = torch.randperm(S, generator=torch.Generator().manual_seed(seed))
    out, out_perm = enc(x).last_hidden_state, enc(x[:, perm]).last_hidden_state
    torch.testing.assert_close(out_perm, out[:, perm], rtol=1e-12, atol=1e-12)


# ---- the Llama-style block -------------------------------------------------------------------------------


def llama_block(seed: int) -> EncoderBlock:
    rotary = RotaryEmbedding(D // H, max_len=32, theta=10000.0)
    block = EncoderBlock(
        BlockConfig(D, H, FF, norm="rms", norm_first=True, activation="swiglu", bias=False), rotary=rotary
    )
    return randomize_(block, seed).double().eval()


def test_llama_style_block_is_causal_and_uses_only_relative_positions():
    block = llama_block(30)
    causal = masks.causal_mask(S)
    x = randn(31, B, S, D)
    x2 = x.clone()
    x2[:, 4:] += 1.0
    out = block(x, allowed=causal)
    torch.testing.assert_close(out[:, :4], block(x2, allowed=causal)[:, :4], rtol=1e-12, atol=1e-12)
    # RoPE: shifting every position by the same offset changes nothing (scores depend on i - j only) ...
    shifted = block(x, allowed=causal, positions=torch.arange(S) + 7)
    torch.testing.assert_close(out, shifted, rtol=1e-10, atol=1e-12)
    # ... but positions do matter: reversing them changes the output, so the rotation is really applied.
    assert not torch.allclose(out, block(x, allowed=causal, positions=torch.arange(S).flip(0)))
    assert isinstance(block.norm1, torch.nn.Module) and type(block.norm1).__name__ == "RMSNorm"
    assert sum(p.numel() for p in block.parameters()) == 4 * D * D + 3 * D * FF + 2 * D


# ---- gradients ---------------------------------------------------------------------------------------------


def _gradcheck_module(module: torch.nn.Module, *inputs: torch.Tensor, **kwargs) -> bool:
    """gradcheck with respect to the inputs *and* every parameter (through torch.func.functional_call)."""
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in module.named_parameters()]
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]

    def fn(*args):
        return functional_call(module, dict(zip(names, args[len(inputs) :])), tuple(args[: len(inputs)]), kwargs)

    return torch.autograd.gradcheck(fn, (*inputs, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_gradcheck_encoder_block(norm_first):
    d, h, f, b, s = 4, 2, 6, 2, 3
    block = randomize_(EncoderBlock(BlockConfig(d, h, f, activation="gelu", norm_first=norm_first)), 40).double().eval()
    valid = masks.padding_mask_from_lengths([3, 2], max_len=s)
    assert _gradcheck_module(block, randn(41, b, s, d), allowed=masks.key_padding(valid))


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_gradcheck_decoder_block(norm_first):
    d, h, f, b, t, s = 4, 2, 6, 2, 3, 2
    block = randomize_(DecoderBlock(BlockConfig(d, h, f, norm_first=norm_first)), 42).double().eval()
    cross = masks.key_padding(masks.padding_mask_from_lengths([2, 1], max_len=s))
    assert _gradcheck_module(
        block, randn(43, b, t, d), randn(44, b, s, d), self_allowed=masks.causal_mask(t), cross_allowed=cross
    )


def test_gradcheck_llama_style_block():
    rotary = RotaryEmbedding(2, max_len=8)
    block = EncoderBlock(
        BlockConfig(4, 2, 6, norm="rms", norm_first=True, activation="swiglu", bias=False), rotary=rotary
    )
    block = randomize_(block, 45).double().eval()
    assert _gradcheck_module(block, randn(46, 2, 3, 4), allowed=masks.causal_mask(3))


@pytest.mark.parametrize("impl", ["kernels", "torch"])
def test_other_implementations_give_the_same_blocks(impl):
    """impl only swaps the functions the layers call (attention, norms, activations); plain is the default."""
    enc = randomize_(EncoderBlock(BlockConfig(D, H, FF, norm_first=True, activation="gelu")), 47).eval()
    dec = randomize_(DecoderBlock(BlockConfig(D, H, FF)), 48).eval()
    enc_other = EncoderBlock(BlockConfig(D, H, FF, norm_first=True, activation="gelu", impl=impl)).eval()
    dec_other = DecoderBlock(BlockConfig(D, H, FF, impl=impl)).eval()
    enc_other.load_state_dict(enc.state_dict())
    dec_other.load_state_dict(dec.state_dict())
    assert enc.self_attn.impl == enc.norm1.impl == enc.ff.impl == "plain"
    assert enc_other.self_attn.impl == enc_other.norm2.impl == enc_other.ff.impl == dec_other.cross_attn.impl == impl
    x, y = randn(49, B, S, D, dtype=torch.float32), randn(50, B, T, D, dtype=torch.float32)
    allowed = masks.key_padding(SRC_VALID)
    self_allowed = masks.combine(masks.causal_mask(T), masks.key_padding(TGT_VALID))
    with torch.no_grad():
        torch.testing.assert_close(enc_other(x, allowed=allowed), enc(x, allowed=allowed), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            dec_other(y, x, self_allowed=self_allowed, cross_allowed=allowed),
            dec(y, x, self_allowed=self_allowed, cross_allowed=allowed),
            rtol=1e-5,
            atol=1e-5,
        )


# ---- dropout and errors --------------------------------------------------------------------------------------


def test_dropout_options_reach_their_places():
    block = DecoderBlock(BlockConfig(D, H, FF, dropout=0.1, attention_dropout=0.2, activation_dropout=0.3))
    assert block.dropout.p == 0.1
    assert block.self_attn.dropout == block.cross_attn.dropout == 0.2
    assert block.ff.dropout.p == 0.3
    x = randn(50, B, S, D, dtype=torch.float32)
    enc = EncoderBlock(BlockConfig(D, H, FF, dropout=0.5))
    torch.testing.assert_close(enc.eval()(x), enc(x))  # evaluation mode: deterministic
    assert not torch.allclose(enc.train()(x), enc(x)), "training mode drops residual branches"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(norm="batch"), ValueError, "norm must be one of"),
        (dict(dropout=1.0), ValueError, "dropout must be in"),
        (dict(attention_dropout=-0.1), ValueError, "attention_dropout must be in"),
        (dict(activation="tanh"), ValueError, "activation must be one of"),
        (dict(impl="fast"), ValueError, "impl must be one of"),
        (dict(norm_first="yes"), TypeError, "norm_first must be True or False"),
    ],
)
def test_block_config_rejects_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        BlockConfig(D, H, FF, **kwargs)


def test_blocks_and_stacks_take_a_block_config():
    for cls in (EncoderBlock, DecoderBlock):
        with pytest.raises(TypeError, match="config must be a BlockConfig"):
            cls(dict(d_model=D, n_heads=H, d_ff=FF))
    with pytest.raises(TypeError, match="config must be a BlockConfig"):
        Encoder({"d_model": D}, 2)


def test_stack_and_block_errors_are_actionable():
    with pytest.raises(ValueError, match="n_layers must be a positive int"):
        Encoder(BlockConfig(D, H, FF), 0)
    with pytest.raises(ValueError, match="not divisible"):
        EncoderBlock(BlockConfig(10, 3, FF))
    block = EncoderBlock(BlockConfig(D, H, FF))
    with pytest.raises(ValueError, match="width"):
        block(torch.randn(B, S, D + 1))
    with pytest.raises(TypeError, match="bool"):
        block(torch.randn(B, S, D), allowed=torch.ones(S, S))
