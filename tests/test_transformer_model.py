"""The 2017 encoder–decoder (EncoderDecoder) and its config: reference parity, masks, tying, size, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import randomize_
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch import masks
from transformer_from_scratch.config import TransformerConfig
from transformer_from_scratch.models import EncoderDecoder
from transformer_from_scratch.reference import blocks as ref


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one BLAS thread is much faster than two on a shared 2-core CPU (see test_blocks.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**overrides) -> TransformerConfig:
    """Widths small enough for the loop-based NumPy reference; T ≠ S, H > 1, distinct vocabularies."""
    base = dict(src_vocab_size=23, tgt_vocab_size=19, d_model=12, n_heads=3, d_ff=20, max_len=16)
    return TransformerConfig.tiny(**{**base, **overrides})


def reference_logits(model: EncoderDecoder, src, tgt, src_valid=None, tgt_valid=None) -> np.ndarray:
    c = model.config
    weights = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    return ref.encoder_decoder(
        src.numpy(),
        tgt.numpy(),
        weights,
        n_heads=c.n_heads,
        n_encoder_layers=c.n_encoder_layers,
        n_decoder_layers=c.n_decoder_layers,
        norm_first=c.norm_first,
        final_norm=c.has_final_norm,
        activation=c.activation,
        eps=c.layer_norm_eps,
        scale_embeddings=c.scale_embeddings,
        positional=c.positional,
        src_valid=None if src_valid is None else src_valid.numpy(),
        tgt_valid=None if tgt_valid is None else tgt_valid.numpy(),
    )


def ids(seed: int, batch: int, length: int, vocab: int, low: int = 0) -> torch.Tensor:
    return torch.randint(low, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


SRC_VALID = masks.padding_mask_from_lengths([7, 3, 5], max_len=7)  # (B=3, S=7)
TGT_VALID = masks.padding_mask_from_lengths([4, 5, 2], max_len=5)  # (B=3, T=5)


# ---- reference parity ------------------------------------------------------------------------------------

CONFIGS = {
    "paper post-LN, tied": dict(src_vocab_size=21, tgt_vocab_size=21, tie_embeddings=True, tie_output=True),
    "pre-LN gelu": dict(norm_first=True, activation="gelu"),
    "post-LN + final norms, learned positions, unscaled": dict(
        final_norm=True, positional="learned", scale_embeddings=False
    ),
}


@pytest.mark.parametrize("overrides", CONFIGS.values(), ids=CONFIGS.keys())
def test_model_matches_reference_float64(overrides):
    model = randomize_(EncoderDecoder(tiny(**overrides)), 1).double().eval()
    src, tgt = ids(2, 3, 7, model.config.src_vocab_size), ids(3, 3, 5, model.config.tgt_vocab_size)
    logits = model(src, tgt, src_valid=SRC_VALID, tgt_valid=TGT_VALID).logits
    expected = reference_logits(model, src, tgt, SRC_VALID, TGT_VALID)
    assert logits.shape == (3, 5, model.config.tgt_vocab_size)
    np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_model_matches_reference_float32():
    model = randomize_(EncoderDecoder(tiny(norm_first=True)), 4).eval()
    src, tgt = ids(5, 3, 7, 23), ids(6, 3, 5, 19)
    with torch.no_grad():
        logits = model(src, tgt, src_valid=SRC_VALID, tgt_valid=TGT_VALID).logits
    expected = reference_logits(model, src, tgt, SRC_VALID, TGT_VALID)
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_forward_is_encode_then_decode():
    model = randomize_(EncoderDecoder(tiny()), 7).double().eval()
    src, tgt = ids(8, 3, 7, 23), ids(9, 3, 5, 19)
    memory = model.encode(src, SRC_VALID).last_hidden_state
    assert memory.shape == (3, 7, 12)
    torch.testing.assert_close(
        model(src, tgt, src_valid=SRC_VALID, tgt_valid=TGT_VALID).logits,
        model.decode(tgt, memory, SRC_VALID, TGT_VALID).logits,
        rtol=0,
        atol=0,
    )


# ---- masks --------------------------------------------------------------------------------------------------


def test_pad_id_derives_the_same_masks_as_explicit_valid():
    model = randomize_(EncoderDecoder(tiny(pad_id=0)), 10).double().eval()
    src, tgt = ids(11, 3, 7, 23, low=1), ids(12, 3, 5, 19, low=1)
    src[~SRC_VALID], tgt[~TGT_VALID] = 0, 0
    derived = model(src, tgt).logits
    explicit = model(src, tgt, src_valid=SRC_VALID, tgt_valid=TGT_VALID).logits
    torch.testing.assert_close(derived, explicit, rtol=0, atol=0)
    unmasked = model(src, tgt, src_valid=torch.ones_like(SRC_VALID), tgt_valid=torch.ones_like(TGT_VALID)).logits
    assert not torch.allclose(derived[TGT_VALID], unmasked[TGT_VALID]), "padding must matter when unmasked"


@given(seed=st.integers(0, 2**31 - 1), t=st.integers(0, 3), norm_first=st.booleans())
def test_changing_a_future_target_token_never_changes_earlier_logits(seed, t, norm_first):
    model = randomize_(EncoderDecoder(tiny(norm_first=norm_first)), seed).double().eval()
    src, tgt = ids(seed + 1, 2, 6, 23), ids(seed + 2, 2, 5, 19)
    tgt2 = tgt.clone()
    tgt2[:, t + 1 :] = (tgt2[:, t + 1 :] + 1 + ids(seed + 3, 2, 4 - t, 17)) % 19  # every later token changes
    memory = model.encode(src).last_hidden_state
    out, out2 = model.decode(tgt, memory).logits, model.decode(tgt2, memory).logits
    torch.testing.assert_close(out[:, : t + 1], out2[:, : t + 1], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out[:, t + 1 :], out2[:, t + 1 :])


@given(seed=st.integers(0, 2**31 - 1))
def test_padded_source_tokens_never_change_the_logits(seed):
    model = randomize_(EncoderDecoder(tiny()), seed).double().eval()
    src, tgt = ids(seed + 1, 3, 7, 23), ids(seed + 2, 3, 5, 19)
    src2 = src.clone()
    src2[~SRC_VALID] = (src2[~SRC_VALID] + 1) % 23
    out = model(src, tgt, src_valid=SRC_VALID).logits
    torch.testing.assert_close(out, model(src2, tgt, src_valid=SRC_VALID).logits, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(model(src, tgt).logits, model(src2, tgt).logits)


# ---- return_attention ---------------------------------------------------------------------------------------


def test_return_attention_gives_every_layers_weights_with_the_right_zeros():
    model = randomize_(EncoderDecoder(tiny(n_encoder_layers=2, n_decoder_layers=3)), 13).double().eval()
    src, tgt = ids(14, 3, 7, 23), ids(15, 3, 5, 19)
    out = model(src, tgt, src_valid=SRC_VALID, tgt_valid=TGT_VALID, return_attention=True)
    plain = model(src, tgt, src_valid=SRC_VALID, tgt_valid=TGT_VALID)
    torch.testing.assert_close(out.logits, plain.logits, rtol=0, atol=0)
    assert plain.encoder_attentions is None and plain.decoder_self_attentions is None
    att = {
        "encoder_self": out.encoder_attentions,
        "decoder_self": out.decoder_self_attentions,
        "decoder_cross": out.decoder_cross_attentions,
    }
    assert [len(att[k]) for k in ("encoder_self", "decoder_self", "decoder_cross")] == [2, 3, 3]

    # The encoder's first layer sees the embedded source: its weights are MultiHeadAttention's on that input.
    x = model.src_positional(model.src_embed(src))
    _, expected = model.encoder.layers[0].self_attn(x, allowed=masks.key_padding(SRC_VALID), return_weights=True)
    torch.testing.assert_close(att["encoder_self"][0], expected, rtol=0, atol=0)

    upper = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    for w in att["encoder_self"]:
        assert w.shape == (3, 3, 7, 7)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 3, 7, dtype=torch.float64))
        assert (w.permute(0, 3, 1, 2)[~SRC_VALID] == 0).all(), "encoder attended to source padding"
    for w in att["decoder_self"]:
        assert w.shape == (3, 3, 5, 5)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 3, 5, dtype=torch.float64))
        assert (w[..., upper] == 0).all(), "decoder attended to the future"
        assert (w.permute(0, 3, 1, 2)[~TGT_VALID] == 0).all(), "decoder attended to target padding"
    for w in att["decoder_cross"]:
        assert w.shape == (3, 3, 5, 7)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 3, 5, dtype=torch.float64))
        assert (w.permute(0, 3, 1, 2)[~SRC_VALID] == 0).all(), "cross-attention attended to source padding"


# ---- sharing, size, initialisation ---------------------------------------------------------------------------


def test_tied_embeddings_and_output_share_one_parameter():
    model = EncoderDecoder(tiny(src_vocab_size=19, tie_embeddings=True, tie_output=True))
    assert model.src_embed.weight is model.tgt_embed.weight is model.generator.weight
    model(ids(16, 2, 7, 19), ids(17, 2, 5, 19)).logits.sum().backward()
    assert model.src_embed.weight.grad is not None and model.src_embed.weight.grad.abs().sum() > 0
    untied = EncoderDecoder(tiny())
    assert untied.src_embed.weight is not untied.tgt_embed.weight
    assert untied.generator.weight is not untied.tgt_embed.weight
    assert untied.generator.weight.shape == (19, 12)
    # state_dict keeps every name (converters rely on it); parameters() lists the shared matrix once
    assert {"src_embed.weight", "tgt_embed.weight", "generator.weight"} <= set(model.state_dict())
    assert count(model) == expected_parameter_count(model.config)
    assert count(untied) - count(model) == (23 - 19) * 12 + 19 * 12 + 19 * 12


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # shared parameters are counted once


def expected_parameter_count(c: TransformerConfig) -> int:
    """The parameter count derived by hand (see chapter 03).

    attention:  4 projections D×D with bias                       4(D² + D)
    FFN:        D×F + F  and  F×D + D                              2DF + F + D
    LayerNorm:  gain and bias                                      2D
    encoder layer = attention + FFN + 2 norms; decoder layer = 2 attentions + FFN + 3 norms;
    final norms 2D each when present; embeddings V·D, counted once per distinct matrix.
    """
    d, f = c.d_model, c.d_ff
    attention, ffn, norm = 4 * (d * d + d), 2 * d * f + f + d, 2 * d
    encoder_layer = attention + ffn + 2 * norm
    decoder_layer = 2 * attention + ffn + 3 * norm
    finals = 2 * norm if c.has_final_norm else 0
    embeddings = c.src_vocab_size * d + (0 if c.tie_embeddings else c.tgt_vocab_size * d)
    generator = 0 if c.tie_output else c.tgt_vocab_size * d
    learned_positions = 2 * c.max_len * d if c.positional == "learned" else 0
    return (
        c.n_encoder_layers * encoder_layer
        + c.n_decoder_layers * decoder_layer
        + finals
        + embeddings
        + generator
        + learned_positions
    )


def test_paper_base_parameter_count():
    """Table 3 of the paper says 65M for the base model; the architecture as described gives 63,082,496.

    V·D = 37000 · 512 = 18,944,000 once (shared by both embeddings and the output projection),
    encoder 6 · 3,152,384 = 18,914,304, decoder 6 · 4,204,032 = 25,224,192. An untied output projection
    would add another 18.9M (82M), so the paper's figure counts the shared matrix once too; the remaining
    ~1.9M is not explained by the text (it would match a vocabulary of about 40,700 tokens).
    """
    c = TransformerConfig.paper_base()
    assert (c.d_model, c.n_heads, c.n_encoder_layers, c.n_decoder_layers, c.d_ff) == (512, 8, 6, 6, 2048)
    assert c.dropout == 0.1 and c.tie_embeddings and c.tie_output and c.src_vocab_size == 37_000
    with torch.device("meta"):  # shapes only: no 250 MB of random numbers
        model = EncoderDecoder(c)
    n = count(model)
    assert n == expected_parameter_count(c) == 63_082_496
    assert abs(n - 65e6) / 65e6 < 0.03


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(norm_first=True), dict(final_norm=True, positional="learned"), dict(tie_output=True)],
    ids=["post-LN", "pre-LN", "final-norm+learned", "tied-output"],
)
def test_parameter_count_formula_on_small_models(overrides):
    c = tiny(**overrides)
    assert count(EncoderDecoder(c)) == expected_parameter_count(c)


def test_every_parameter_receives_a_gradient():
    model = EncoderDecoder(tiny(norm_first=True, positional="learned"))
    src, tgt = ids(18, 3, 7, 23), ids(19, 3, 5, 19)
    torch.nn.functional.cross_entropy(model(src, tgt).logits.flatten(0, 1), ids(20, 3, 5, 19).flatten()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} receives no gradient"


def test_dropout_settings_reach_every_place():
    model = EncoderDecoder(tiny(dropout=0.1, attention_dropout=0.2, activation_dropout=0.3))
    assert model.dropout.p == 0.1
    for layer in [*model.encoder.layers, *model.decoder.layers]:
        assert layer.dropout.p == 0.1 and layer.self_attn.dropout == 0.2 and layer.ff.dropout.p == 0.3
    src, tgt = ids(21, 2, 7, 23), ids(22, 2, 5, 19)
    torch.testing.assert_close(model.eval()(src, tgt).logits, model(src, tgt).logits)
    assert not torch.allclose(model.train()(src, tgt).logits, model(src, tgt).logits)


def test_initial_logits_are_of_order_one():
    """Xavier-initialised stacks and N(0, 1/D) embeddings: untrained logits neither vanish nor explode."""
    torch.manual_seed(0)
    model = EncoderDecoder(TransformerConfig.small(dropout=0.0, tie_embeddings=True, tie_output=True)).eval()
    with torch.no_grad():
        logits = model(ids(23, 4, 20, 1000), ids(24, 4, 20, 1000)).logits
    assert 0.1 < float(logits.std()) < 10.0


# ---- errors -------------------------------------------------------------------------------------------------


def test_input_errors_are_actionable():
    model = EncoderDecoder(tiny())
    src, tgt = ids(25, 2, 7, 23), ids(26, 2, 5, 19)
    with pytest.raises(ValueError, match="src_ids: token id 23 is outside the source vocabulary of size 23"):
        model(torch.full((2, 7), 23), tgt)
    with pytest.raises(ValueError, match="tgt_ids: token id 19 is outside the target vocabulary of size 19"):
        model(src, torch.full((2, 5), 19))
    with pytest.raises(ValueError, match="token id -1"):
        model(src, torch.full((2, 5), -1))
    with pytest.raises(ValueError, match="sequence length 17, which exceeds max_len=16"):
        model(ids(27, 2, 17, 23), tgt)
    with pytest.raises(ValueError, match="tgt_ids has sequence length 20"):
        model(src, ids(28, 2, 20, 19))
    with pytest.raises(ValueError, match="batch sizes differ"):
        model(src, tgt[:1])
    with pytest.raises(ValueError, match="batch sizes differ"):
        model.decode(tgt[:1], model.encode(src).last_hidden_state)
    with pytest.raises(ValueError, match=r"src_valid must have the shape of the token ids \(2, 7\), got \(2, 6\)"):
        model(src, tgt, src_valid=torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="tgt_valid must be a bool tensor"):
        model(src, tgt, tgt_valid=torch.ones(2, 5))
    with pytest.raises(ValueError, match="src_valid must have shape"):
        model.decode(tgt, model.encode(src).last_hidden_state, torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="integer tensor of token ids"):
        model(src.float(), tgt)
    with pytest.raises(ValueError, match=r"src_ids must have shape \(B, T\)"):
        model(src[0], tgt)
    with pytest.raises(ValueError, match="memory must be the encoder output"):
        model.decode(tgt, torch.zeros(2, 7, 13))
    with pytest.raises(TypeError, match="TransformerConfig"):
        EncoderDecoder({"d_model": 12})


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(d_model=30, n_heads=4), ValueError, "d_model=30 is not divisible by n_heads=4"),
        (dict(tie_embeddings=True), ValueError, "src_vocab_size and tgt_vocab_size must be equal"),
        (dict(activation="tanh"), ValueError, "activation must be one of"),
        (dict(positional="rotary"), ValueError, "positional must be one of"),
        (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
        (dict(attention_dropout=-0.1), ValueError, "attention_dropout"),
        (dict(pad_id=19), ValueError, "pad_id=19 is outside the vocabulary"),
        (dict(n_encoder_layers=0), ValueError, "n_encoder_layers must be ≥ 1"),
        (dict(d_ff=2.5), TypeError, "d_ff must be an int"),
        (dict(norm_first="yes"), TypeError, "norm_first must be True or False"),
        (dict(layer_norm_eps=0.0), ValueError, "layer_norm_eps must be > 0"),
        (dict(d_model=9, n_heads=3), ValueError, "d_model must be even"),
    ],
)
def test_config_errors_are_actionable(overrides, error, match):
    with pytest.raises(error, match=match):
        tiny(**overrides)


def test_config_is_frozen_and_replace_revalidates():
    c = tiny()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.d_model = 16
    assert dataclasses.replace(c, norm_first=True).norm_first
    with pytest.raises(ValueError, match="not divisible"):
        dataclasses.replace(c, n_heads=5)
    assert tiny().has_final_norm is False and tiny(norm_first=True).has_final_norm is True
    assert tiny(final_norm=True).has_final_norm is True and tiny().d_head == 4
    assert TransformerConfig.small().d_model == 128
