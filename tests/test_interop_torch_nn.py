"""Oracle: PyTorch's nn.TransformerEncoderLayer / nn.TransformerDecoderLayer / nn.Transformer, same weights.

Weights travel through ``interop.torch_nn``. PyTorch masks are the opposite polarity (``key_padding_mask`` and
boolean ``attn_mask`` are True where a key is *ignored*), converted with ``masks.to_key_padding_mask`` and
``masks.to_torch_attn_mask``. Outputs are compared on real (non-padded) positions only: in eval mode under
``no_grad`` the encoder takes a nested-tensor fast path that writes 0.0 at padded positions.
"""

from __future__ import annotations

import pytest
import torch
from helpers import randomize_
from torch import nn

from transformer_from_scratch import masks
from transformer_from_scratch.blocks import DecoderBlock, EncoderBlock
from transformer_from_scratch.config import BlockConfig, TransformerConfig
from transformer_from_scratch.interop import torch_nn as conv
from transformer_from_scratch.models import EncoderDecoder
from transformer_from_scratch.positional import RotaryEmbedding
from transformer_from_scratch.stacks import Decoder, Encoder

TOL32 = dict(rtol=1e-5, atol=1e-5)
B, T, S, D, H, FF = 3, 5, 7, 16, 4, 24
SRC_VALID = masks.padding_mask_from_lengths([7, 3, 5], max_len=S)  # (B, S), True at real tokens
TGT_VALID = masks.padding_mask_from_lengths([5, 2, 4], max_len=T)  # (B, T)
CASES = [(False, "relu"), (False, "gelu"), (True, "relu"), (True, "gelu")]
CASE_IDS = ["post-LN-relu", "post-LN-gelu", "pre-LN-relu", "pre-LN-gelu"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one BLAS thread is much faster than two on a shared 2-core CPU (see test_blocks.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def perturb_norms_(module: nn.Module, seed: int) -> nn.Module:
    """PyTorch initialises LayerNorm to weight 1, bias 0 (and in_proj_bias to 0): randomise them, or a swapped
    norm1/norm2 or a dropped bias would go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def torch_layer(cls, norm_first: bool, activation: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # nn layers initialise from the global generator
    layer = cls(D, H, FF, dropout=0.1, activation=activation, batch_first=True, norm_first=norm_first)
    return perturb_norms_(layer, seed).eval()


# ---- single layers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first, activation", CASES, ids=CASE_IDS)
def test_encoder_layer_matches_nn_transformer_encoder_layer(norm_first, activation):
    theirs = torch_layer(nn.TransformerEncoderLayer, norm_first, activation, seed=1)
    ours = EncoderBlock.from_torch(theirs)
    assert isinstance(ours, EncoderBlock) and not ours.training and ours.norm_first == norm_first
    x = randn(2, B, S, D)
    with torch.no_grad():
        # key padding only (the encoder case)
        expected = theirs(x, src_key_padding_mask=masks.to_key_padding_mask(SRC_VALID))
        got = ours(x, allowed=masks.key_padding(SRC_VALID))
        torch.testing.assert_close(got[SRC_VALID], expected[SRC_VALID], **TOL32)
        # causal + key padding (a decoder-only block)
        causal = masks.causal_mask(S)
        expected = theirs(
            x, src_mask=masks.to_torch_attn_mask(causal), src_key_padding_mask=masks.to_key_padding_mask(SRC_VALID)
        )
        got = ours(x, allowed=masks.combine(causal, masks.key_padding(SRC_VALID)))
        torch.testing.assert_close(got[SRC_VALID], expected[SRC_VALID], **TOL32)


@pytest.mark.parametrize("norm_first, activation", CASES, ids=CASE_IDS)
def test_decoder_layer_matches_nn_transformer_decoder_layer(norm_first, activation):
    theirs = torch_layer(nn.TransformerDecoderLayer, norm_first, activation, seed=3)
    ours = DecoderBlock.from_torch(theirs)
    assert isinstance(ours, DecoderBlock)
    y, memory = randn(4, B, T, D), randn(5, B, S, D)
    causal = masks.causal_mask(T)
    with torch.no_grad():
        expected = theirs(
            y,
            memory,
            tgt_mask=masks.to_torch_attn_mask(causal),
            tgt_key_padding_mask=masks.to_key_padding_mask(TGT_VALID),
            memory_key_padding_mask=masks.to_key_padding_mask(SRC_VALID),
            tgt_is_causal=False,
        )
        got = ours(
            y,
            memory,
            self_allowed=masks.combine(causal, masks.key_padding(TGT_VALID)),
            cross_allowed=masks.key_padding(SRC_VALID),
        )
    torch.testing.assert_close(got[TGT_VALID], expected[TGT_VALID], **TOL32)


def test_encoder_layer_gradients_match_in_training_mode():
    """Backward too: with dropout 0 and grad enabled (no fast path), input and weight gradients agree."""
    torch.manual_seed(6)
    theirs = perturb_norms_(nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=True), 6).train()
    ours = EncoderBlock.from_torch(theirs)
    x1 = randn(7, B, S, D).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    target = randn(8, B, S, D)
    out_theirs = theirs(x1, src_key_padding_mask=masks.to_key_padding_mask(SRC_VALID))
    out_ours = ours(x2, allowed=masks.key_padding(SRC_VALID))
    ((out_theirs - target)[SRC_VALID] ** 2).sum().backward()
    ((out_ours - target)[SRC_VALID] ** 2).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, **TOL32)
    grads_theirs = conv.encoder_layer_to_ours({n: p.grad for n, p in theirs.named_parameters()})
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, grads_theirs[name], **TOL32, msg=lambda m, n=name: f"{n}: {m}")


def test_a_block_refuses_the_other_kind_of_layer():
    """EncoderBlock.from_torch loads strictly: a decoder layer's cross-attention and norm3 have nowhere to go."""
    decoder_layer = torch_layer(nn.TransformerDecoderLayer, False, "relu", seed=19)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        EncoderBlock.from_torch(decoder_layer)
    with pytest.raises(RuntimeError, match="Missing key"):
        DecoderBlock.from_torch(torch_layer(nn.TransformerEncoderLayer, False, "relu", seed=19))


# ---- stacks ----------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")  # enable_nested_tensor notes
@pytest.mark.parametrize("norm_first, with_norm", [(False, False), (False, True), (True, True)])
def test_stacks_from_torch_match_nn_transformer_stacks(norm_first, with_norm):
    """Encoder.from_torch / Decoder.from_torch: every layer's weights (randomised, not the deep-copied start) and a
    final norm exactly when PyTorch's stack has one."""
    torch.manual_seed(20)
    layer = dict(d_model=D, nhead=H, dim_feedforward=FF, dropout=0.1, batch_first=True, norm_first=norm_first)
    norm = (lambda: nn.LayerNorm(D)) if with_norm else (lambda: None)
    their_encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(**layer), 2, norm=norm(), enable_nested_tensor=False
    )
    their_decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), 2, norm=norm())
    randomize_(their_encoder, 21).eval()
    randomize_(their_decoder, 22).eval()
    encoder, decoder = Encoder.from_torch(their_encoder), Decoder.from_torch(their_decoder)
    assert isinstance(encoder, Encoder) and isinstance(decoder, Decoder) and not encoder.training
    assert (encoder.final_norm is not None, decoder.final_norm is not None) == (with_norm, with_norm)
    x, y = randn(23, B, S, D), randn(24, B, T, D)
    causal = masks.causal_mask(T)
    with torch.no_grad():
        memory = encoder(x, allowed=masks.key_padding(SRC_VALID)).last_hidden_state
        their_memory = their_encoder(x, src_key_padding_mask=masks.to_key_padding_mask(SRC_VALID))
        got = decoder(
            y,
            memory,
            self_allowed=masks.combine(causal, masks.key_padding(TGT_VALID)),
            cross_allowed=masks.key_padding(SRC_VALID),
        ).last_hidden_state
        expected = their_decoder(
            y,
            their_memory,
            tgt_mask=masks.to_torch_attn_mask(causal),
            tgt_key_padding_mask=masks.to_key_padding_mask(TGT_VALID),
            memory_key_padding_mask=masks.to_key_padding_mask(SRC_VALID),
        )
    torch.testing.assert_close(memory[SRC_VALID], their_memory[SRC_VALID], **TOL32)
    torch.testing.assert_close(got[TGT_VALID], expected[TGT_VALID], **TOL32)


# ---- the whole nn.Transformer -----------------------------------------------------------------------------------


def paired_models(norm_first: bool, activation: str, seed: int):
    """An nn.Transformer with random weights and our EncoderDecoder holding the same stacks.

    ``nn.Transformer`` ends each stack with a LayerNorm even in post-LN mode, so ours is built with
    ``final_norm=True`` — the faithful copy; ``load_torch_transformer`` refuses a mismatch.
    """
    torch.manual_seed(seed)
    theirs = nn.Transformer(D, H, 2, 2, FF, dropout=0.1, activation=activation, batch_first=True, norm_first=norm_first)
    perturb_norms_(theirs, seed).eval()
    config = TransformerConfig.tiny(
        d_model=D, n_heads=H, d_ff=FF, activation=activation, norm_first=norm_first, final_norm=True, max_len=16
    )
    ours = conv.load_torch_transformer(EncoderDecoder(config), theirs).eval()
    return theirs, ours


def run_torch_transformer(theirs: nn.Transformer, ours: EncoderDecoder, src, tgt):
    """Logits of nn.Transformer fed with our embeddings and read out by our generator (it has neither)."""
    x_src = ours.src_positional(ours.src_embed(src))  # (B,S,D)
    x_tgt = ours.tgt_positional(ours.tgt_embed(tgt))  # (B,T,D)
    out = theirs(
        x_src,
        x_tgt,
        tgt_mask=masks.to_torch_attn_mask(masks.causal_mask(tgt.shape[1])),
        src_key_padding_mask=masks.to_key_padding_mask(SRC_VALID),
        tgt_key_padding_mask=masks.to_key_padding_mask(TGT_VALID),
        memory_key_padding_mask=masks.to_key_padding_mask(SRC_VALID),
    )
    return ours.generator(out)


@pytest.mark.filterwarnings("ignore::UserWarning")  # nested-tensor prototype / enable_nested_tensor notes
@pytest.mark.parametrize("norm_first, activation", CASES, ids=CASE_IDS)
def test_encoder_decoder_matches_nn_transformer(norm_first, activation):
    theirs, ours = paired_models(norm_first, activation, seed=10)
    src = torch.randint(0, 32, (B, S), generator=torch.Generator().manual_seed(11))
    tgt = torch.randint(0, 32, (B, T), generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        expected = run_torch_transformer(theirs, ours, src, tgt)
        got = ours(src, tgt, src_valid=SRC_VALID, tgt_valid=TGT_VALID).logits
        # the stacks alone, too (padded source positions excluded: the fast path zeroes them)
        embedded = ours.src_positional(ours.src_embed(src))
        memory = ours.encoder(embedded, allowed=masks.key_padding(SRC_VALID)).last_hidden_state
        their_memory = theirs.encoder(
            ours.src_positional(ours.src_embed(src)), src_key_padding_mask=masks.to_key_padding_mask(SRC_VALID)
        )
    torch.testing.assert_close(got[TGT_VALID], expected[TGT_VALID], **TOL32)
    torch.testing.assert_close(memory[SRC_VALID], their_memory[SRC_VALID], **TOL32)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_paper_post_ln_model_converts_without_gaining_final_norms():
    """Ours -> nn.Transformer: a stack without a final norm stays without one (custom_encoder/decoder)."""
    torch.manual_seed(13)
    config = TransformerConfig.tiny(d_model=D, n_heads=H, d_ff=FF, max_len=16)  # post-LN, no final norms
    ours = EncoderDecoder(config).eval()
    perturb_norms_(ours, 13)
    theirs = conv.to_torch_transformer(ours).eval()
    assert theirs.encoder.norm is None and theirs.decoder.norm is None and theirs.batch_first
    src = torch.randint(0, 32, (B, S), generator=torch.Generator().manual_seed(14))
    tgt = torch.randint(0, 32, (B, T), generator=torch.Generator().manual_seed(15))
    with torch.no_grad():
        expected = run_torch_transformer(theirs, ours, src, tgt)
        got = ours(src, tgt, src_valid=SRC_VALID, tgt_valid=TGT_VALID).logits
    torch.testing.assert_close(got, expected, **TOL32)  # no nested fast path here: every position agrees
    with pytest.raises(ValueError, match="build the model with final_norm=False"):
        conv.load_torch_transformer(
            EncoderDecoder(TransformerConfig.tiny(d_model=D, n_heads=H, final_norm=True, d_ff=FF)), theirs
        )


def test_state_dict_mappings_round_trip_and_split_in_proj():
    torch.manual_seed(16)
    layer = nn.TransformerDecoderLayer(D, H, FF, batch_first=True)
    sd = layer.state_dict()
    ours = conv.decoder_layer_to_ours(sd)
    torch.testing.assert_close(ours["self_attn.k_proj.weight"], sd["self_attn.in_proj_weight"][D : 2 * D])
    torch.testing.assert_close(ours["cross_attn.v_proj.bias"], sd["multihead_attn.in_proj_bias"][2 * D :])
    back = conv.decoder_layer_from_ours(ours)
    assert back.keys() == sd.keys()
    for k in sd:
        torch.testing.assert_close(back[k], sd[k], rtol=0, atol=0)
    full = nn.Transformer(D, H, 2, 1, FF, batch_first=True).state_dict()
    mapped = conv.transformer_to_ours(full)
    assert "encoder.final_norm.weight" in mapped and "decoder.layers.0.cross_attn.q_proj.weight" in mapped
    assert conv.transformer_from_ours(mapped).keys() == full.keys()


def test_round_trip_ours_to_torch_and_back_is_exact():
    block = EncoderBlock(BlockConfig(D, H, FF, activation="gelu", norm_first=True, dropout=0.1, attention_dropout=0.2))
    perturb_norms_(block, 17)
    layer = conv.to_torch_encoder_layer(block)
    assert layer.self_attn.dropout == 0.2 and layer.dropout1.p == 0.1 and layer.norm_first
    again = EncoderBlock.from_torch(layer)
    for (name, p), (_, q) in zip(block.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    x = randn(18, B, S, D)
    with torch.no_grad():
        torch.testing.assert_close(layer.eval()(x), block.eval()(x), **TOL32)


def test_unsupported_options_raise_actionable_errors():
    rms = EncoderBlock(BlockConfig(D, H, FF, norm="rms", norm_first=True))
    with pytest.raises(ValueError, match="norm='rms'"):
        conv.to_torch_encoder_layer(rms)
    with pytest.raises(ValueError, match="relu and gelu"):
        conv.to_torch_encoder_layer(EncoderBlock(BlockConfig(D, H, FF, activation="swiglu")))
    with pytest.raises(ValueError, match="rotary"):
        conv.to_torch_encoder_layer(EncoderBlock(BlockConfig(D, H, FF), rotary=RotaryEmbedding(D // H)))
    with pytest.raises(ValueError, match="bias=False"):
        EncoderBlock.from_torch(nn.TransformerEncoderLayer(D, H, FF, bias=False, batch_first=True))
    with pytest.raises(ValueError, match="ReLU and exact GELU"):
        EncoderBlock.from_torch(nn.TransformerEncoderLayer(D, H, FF, activation=torch.tanh, batch_first=True))
