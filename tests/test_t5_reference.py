"""T5 (models/t5.py) against the NumPy float64 reference (reference/t5.py), and the reference on its own.

The model in float64 equals the reference to rtol = atol = 1e-10 — logits, encoder output, decoder output and loss —
for relu and gated-gelu feed-forwards, tied and untied heads, d_kv·H ≠ d_model, encoder depth ≠ decoder depth,
padding in the encoder (``valid``) and in the decoder (``decoder_valid``), through all three implementations
("plain", "kernels", "torch"); the float32 model agrees to float32 accuracy (tolerance below). A hypothesis property
draws small random configurations.

The reference itself is checked without the model: its position bias equals ``RelativePositionBias``, it equals
Hugging Face's ``T5ForConditionalGeneration`` (random weights, float64) to 1e-12, and it has the structure the paper
describes (causal decoder, no position bias in cross-attention, order seen only through the bias).
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import numpy as np
import pytest
import torch
from helpers import randomize_
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.config import T5Config
from transformer_from_scratch.models.t5 import T5ForConditionalGeneration, T5Model
from transformer_from_scratch.positional import RelativePositionBias
from transformer_from_scratch.reference import t5 as ref

F64 = {"rtol": 1e-10, "atol": 1e-10}  # float64 model vs float64 reference
# float32 model vs float64 reference: float32 rounding through up to 3 + 3 unscaled-attention layers, on logits of up
# to 4 (untied heads are not scaled by D^-½). Measured: at most 1.03e-5 absolute (gated_gelu, untied), 2.6e-6 of the
# largest logit; the tolerance leaves a 3x margin and is still 10^5 times looser than F64.
F32 = {"rtol": 1e-5, "atol": 3e-5}
IMPLS = ("plain", "kernels", "torch")

# tiny(): V=100, D=32, H=4, F=64, 8 buckets, max_distance 20. d_kv·H = 24 or 20 ≠ 32 except in "tiny".
CONFIGS = {
    "relu-tied-dkv6-enc2-dec3": T5Config.tiny(d_kv=6, n_decoder_layers=3),
    "relu-untied-dkv5-enc3-dec1": T5Config.tiny(d_kv=5, n_layers=3, n_decoder_layers=1, tie_word_embeddings=False),
    "gated_gelu-tied-dkv5-enc1-dec2": T5Config.tiny(feed_forward="gated_gelu", d_kv=5, n_layers=1, n_decoder_layers=2),
    "gated_gelu-untied-dkv6-enc2-dec3": T5Config.tiny(
        feed_forward="gated_gelu", d_kv=6, n_decoder_layers=3, tie_word_embeddings=False
    ),
    "tiny": T5Config.tiny(),
}

# Source: row 1 and row 2 right-padded (pad id 0). Target: starts with the start id 0; row 1 right-padded.
SRC = torch.tensor([[5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 0, 0, 0], [16, 17, 18, 19, 20, 21, 0]])
VALID = SRC != 0
TGT = torch.tensor([[0, 3, 4, 5, 6, 7], [0, 8, 9, 0, 0, 0], [0, 10, 11, 12, 13, 14]])
TGT_VALID = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
LABELS = torch.tensor([[3, 4, 5, 6, 7, 1], [8, 9, 1, -100, -100, -100], [10, 11, 12, 13, 14, 1]])


def numpy_params(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy() for k, v in model.state_dict().items()}


@functools.cache
def base_model(name: str, seed: int = 0) -> T5ForConditionalGeneration:
    """The float64 model of config ``name`` with random weights (norm gains near 1, matrices ~ 1/√fan-in)."""
    return randomize_(T5ForConditionalGeneration(CONFIGS[name]).double().eval(), seed)


def model_with_impl(name: str, impl: str, model_cls=T5ForConditionalGeneration) -> torch.nn.Module:
    """The same weights as :func:`base_model`, computed through ``impl``."""
    model = model_cls(dataclasses.replace(CONFIGS[name], impl=impl)).double().eval()
    state = base_model(name).state_dict()
    if model_cls is T5Model:
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    model.load_state_dict(state)
    return model


@functools.cache
def reference(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(encoder output, decoder output, logits) of the reference on SRC/TGT with both paddings."""
    params, config = numpy_params(base_model(name)), CONFIGS[name]
    memory = ref.t5_encoder(params, config, SRC.numpy(), VALID.numpy())
    hidden = ref.t5_decoder(params, config, TGT.numpy(), memory, VALID.numpy(), TGT_VALID.numpy())
    logits = ref.t5_forward(params, config, SRC.numpy(), TGT.numpy(), VALID.numpy(), TGT_VALID.numpy())
    return memory, hidden, logits


def close(ours: torch.Tensor, expected: np.ndarray, tol: dict) -> None:
    torch.testing.assert_close(ours.detach().double(), torch.from_numpy(np.asarray(expected, dtype=np.float64)), **tol)


# ---- the model equals the reference ----------------------------------------------------------------------------


def test_the_configurations_cover_what_they_claim():
    configs = CONFIGS.values()
    assert {c.feed_forward for c in configs} == {"relu", "gated_gelu"}
    assert {c.tie_word_embeddings for c in configs} == {True, False}
    assert any(c.d_kv * c.n_heads != c.d_model for c in configs)
    assert any(c.n_layers != c.n_decoder for c in configs)
    assert (~VALID).any() and (~TGT_VALID).any()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", CONFIGS)
def test_logits_and_encoder_output_match_the_reference_float64(name, impl):
    model = model_with_impl(name, impl)
    memory, _, logits = reference(name)
    with torch.no_grad():
        out = model(SRC, TGT, valid=VALID, decoder_valid=TGT_VALID)
    close(out.encoder_last_hidden_state, memory, F64)
    close(out.logits, logits, F64)  # every position, padded ones included


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", CONFIGS)
def test_loss_matches_the_reference_and_shifts_labels_inside(name, impl):
    model = model_with_impl(name, impl)
    params, config = numpy_params(model), CONFIGS[name]
    decoder_input_ids = ref.shift_right(LABELS.numpy(), config.decoder_start_id, config.pad_id)
    logits = ref.t5_forward(params, config, SRC.numpy(), decoder_input_ids, VALID.numpy())
    with torch.no_grad():
        out = model(SRC, valid=VALID, labels=LABELS)
    close(out.logits, logits, F64)
    close(out.loss, ref.t5_loss(logits, LABELS.numpy()), F64)


def test_shift_right_matches_the_reference():
    model = base_model("tiny")
    c = model.config
    ours = model.shift_right(LABELS)
    assert ours.tolist() == ref.shift_right(LABELS.numpy(), c.decoder_start_id, c.pad_id).tolist()
    assert ours[:, 0].tolist() == [c.decoder_start_id] * 3 and (ours != -100).all()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["relu-untied-dkv5-enc3-dec1", "gated_gelu-tied-dkv5-enc1-dec2"])
def test_encode_and_decode_match_the_reference_encoder_and_decoder(name, impl):
    """The two halves on their own, in the bare T5Model and in the model with the head."""
    memory, hidden, logits = reference(name)
    bare = model_with_impl(name, impl, T5Model)
    full = model_with_impl(name, impl)
    with torch.no_grad():
        enc = bare.encode(SRC, valid=VALID).last_hidden_state
        close(enc, memory, F64)
        close(bare.decode(TGT, enc, src_valid=VALID, tgt_valid=TGT_VALID).last_hidden_state, hidden, F64)
        close(full.decode(TGT, enc, src_valid=VALID, tgt_valid=TGT_VALID).logits, logits, F64)


@pytest.mark.parametrize("name", CONFIGS)
def test_float32_model_matches_the_float64_reference(name):
    model = copy.deepcopy(base_model(name)).float()
    _, _, logits = reference(name)
    with torch.no_grad():
        out = model(SRC, TGT, valid=VALID, decoder_valid=TGT_VALID)
    assert out.logits.dtype == torch.float32
    close(out.logits, logits, F32)


def test_valid_defaults_to_the_tokens_that_are_not_pad():
    """``valid=None`` means ``input_ids != pad_id`` for the model and the reference alike (not "all real")."""
    name = "relu-tied-dkv6-enc2-dec3"
    model, params, config = base_model(name), numpy_params(base_model(name)), CONFIGS[name]
    expected = ref.t5_forward(params, config, SRC.numpy(), TGT.numpy())
    with torch.no_grad():
        close(model(SRC, TGT).logits, expected, F64)
    all_real = ref.t5_forward(params, config, SRC.numpy(), TGT.numpy(), np.ones(SRC.shape, dtype=bool))
    assert np.abs(all_real - expected).max() > 1e-3  # the default is not "every token is real"


@pytest.mark.parametrize("impl", IMPLS)
def test_a_query_with_no_visible_key_gets_zero_attention_like_the_reference(impl):
    """Left-padded target rows: their first queries see no key in self-attention (zero output, package convention),
    and a source row of padding only leaves cross-attention nothing to see."""
    name = "gated_gelu-untied-dkv6-enc2-dec3"
    model, params, config = model_with_impl(name, impl), numpy_params(base_model(name)), CONFIGS[name]
    src, valid = SRC.clone(), VALID.clone()
    src[1], valid[1] = 0, False  # a row of padding only
    tgt_valid = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    expected = ref.t5_forward(params, config, src.numpy(), TGT.numpy(), valid.numpy(), tgt_valid.numpy())
    with torch.no_grad():
        logits = model(src, TGT, valid=valid, decoder_valid=tgt_valid).logits
    assert torch.isfinite(logits).all()
    close(logits, expected, F64)


@st.composite
def small_configs(draw):
    n_heads = draw(st.integers(1, 3))
    bidirectional_buckets = draw(st.sampled_from([4, 6, 8, 10]))
    config = T5Config.tiny(
        vocab_size=draw(st.integers(12, 30)),
        d_model=draw(st.sampled_from([6, 8, 12])),
        d_kv=draw(st.integers(1, 5)),
        d_ff=draw(st.integers(3, 10)),
        n_heads=n_heads,
        n_layers=draw(st.integers(1, 2)),
        n_decoder_layers=draw(st.integers(1, 2)),
        num_buckets=bidirectional_buckets,
        max_distance=draw(st.integers(bidirectional_buckets // 2 + 1, 12)),  # > the causal side's exact buckets
        feed_forward=draw(st.sampled_from(["relu", "gated_gelu"])),
        tie_word_embeddings=draw(st.booleans()),
        impl=draw(st.sampled_from(IMPLS)),
    )
    b, s, t = draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    return config, (b, s, t), draw(st.integers(0, 2**16))


@given(case=small_configs())
def test_random_small_configs_match_the_reference(case):
    config, (b, s, t), seed = case
    model = randomize_(T5ForConditionalGeneration(config).double().eval(), seed)
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(1, config.vocab_size, (b, s), generator=g)
    tgt = torch.randint(0, config.vocab_size, (b, t), generator=g)
    valid = torch.rand(b, s, generator=g) < 0.8  # padding anywhere, rows of padding only included
    tgt_valid = torch.rand(b, t, generator=g) < 0.8
    expected = ref.t5_forward(numpy_params(model), config, src.numpy(), tgt.numpy(), valid.numpy(), tgt_valid.numpy())
    with torch.no_grad():
        close(model(src, tgt, valid=valid, decoder_valid=tgt_valid).logits, expected, F64)


# ---- the reference on its own --------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(
    ("num_buckets", "max_distance", "t", "s", "offset"), [(8, 20, 5, 30, 0), (32, 128, 3, 150, 140)]
)
def test_reference_position_bias_equals_relative_position_bias(bidirectional, num_buckets, max_distance, t, s, offset):
    module = randomize_(
        RelativePositionBias(
            3, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
        ).double(),
        1,
    )
    table = module.embedding.weight.detach().numpy()
    expected = ref.t5_position_bias(
        table,
        t,
        s,
        bidirectional=bidirectional,
        num_buckets=num_buckets,
        max_distance=max_distance,
        query_offset=offset,
    )
    close(module(t, s, query_offset=offset)[0], expected, {"rtol": 0, "atol": 0})


def _reference_case(name="relu-tied-dkv6-enc2-dec3"):
    return numpy_params(base_model(name)), CONFIGS[name]


def test_reference_decoder_is_causal():
    params, config = _reference_case()
    base = ref.t5_forward(params, config, SRC.numpy(), TGT.numpy(), VALID.numpy())
    changed = TGT.numpy().copy()
    changed[:, 4] = 42
    after = ref.t5_forward(params, config, SRC.numpy(), changed, VALID.numpy())
    assert np.array_equal(after[:, :4], base[:, :4])  # the past never sees the future
    assert np.abs(after[:, 4:] - base[:, 4:]).max() > 1e-2  # and the change is seen from where it happens


def test_reference_cross_attention_has_no_position_bias_and_the_encoder_sees_order_only_through_its_bias():
    params, config = _reference_case()
    src, valid = SRC.numpy(), VALID.numpy()
    perm = [3, 1, 6, 0, 5, 2, 4]
    memory = ref.t5_encoder(params, config, src, valid)
    # the decoder reads the memory as a set: permuting it (and its mask) changes nothing
    hidden = ref.t5_decoder(params, config, TGT.numpy(), memory, valid)
    permuted = ref.t5_decoder(params, config, TGT.numpy(), memory[:, perm], valid[:, perm])
    np.testing.assert_allclose(permuted, hidden, rtol=0, atol=1e-12)
    # the encoder is order-aware with its bias table, and permutation-equivariant once the table is zero
    moved = ref.t5_encoder(params, config, src[:, perm], valid[:, perm])
    assert np.abs(moved - memory[:, perm])[valid[:, perm]].max() > 1e-2
    flat = dict(params, **{"encoder.position_bias.embedding.weight": np.zeros((config.num_buckets, config.n_heads))})
    np.testing.assert_allclose(
        ref.t5_encoder(flat, config, src[:, perm], valid[:, perm]),
        ref.t5_encoder(flat, config, src, valid)[:, perm],
        rtol=0,
        atol=1e-12,
    )


def test_reference_ignores_padded_source_tokens():
    params, config = _reference_case()
    changed = SRC.numpy().copy()
    changed[1, 5] = 33  # a padded position gets another id
    a = ref.t5_forward(params, config, SRC.numpy(), TGT.numpy(), VALID.numpy())
    b = ref.t5_forward(params, config, changed, TGT.numpy(), VALID.numpy())
    assert np.array_equal(a, b)


@pytest.mark.parametrize("feed_forward", ["relu", "gated_gelu"])
def test_reference_equals_hugging_face_t5_float64(feed_forward, monkeypatch):
    """Hugging Face's T5ForConditionalGeneration with our random weights: logits and loss to 1e-12.

    HF's T5LayerNorm takes the mean of x² in float32 even in a float64 model (≈1e-7 relative); the test makes
    that one line float64 so that the comparison can be tight. Transformers 5 always ties lm_head to ``shared``,
    so only the tied head (with its D^-½) is compared.
    """
    import transformers  # test-only oracle, imported here so that the other tests do not pay for it
    from transformers.models.t5 import modeling_t5

    def rms_norm_float64(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    monkeypatch.setattr(modeling_t5.T5LayerNorm, "forward", rms_norm_float64)
    name = "relu-tied-dkv6-enc2-dec3" if feed_forward == "relu" else "gated_gelu-tied-dkv5-enc1-dec2"
    params, config = _reference_case(name)
    hf = transformers.T5ForConditionalGeneration(
        transformers.T5Config(
            vocab_size=config.vocab_size,
            d_model=config.d_model,
            d_kv=config.d_kv,
            d_ff=config.d_ff,
            num_layers=config.n_layers,
            num_decoder_layers=config.n_decoder,
            num_heads=config.n_heads,
            relative_attention_num_buckets=config.num_buckets,
            relative_attention_max_distance=config.max_distance,
            feed_forward_proj="relu" if feed_forward == "relu" else "gated-gelu",
            dropout_rate=0.0,
            layer_norm_epsilon=config.layer_norm_eps,
            decoder_start_token_id=config.decoder_start_id,
            pad_token_id=config.pad_id,
            attn_implementation="eager",
        )
    )
    hf = hf.double().eval()
    state = {k: torch.from_numpy(v) for k, v in _to_hugging_face(params, config).items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert unexpected == [] and set(missing) <= {
        "encoder.embed_tokens.weight",
        "decoder.embed_tokens.weight",
        "lm_head.weight",
    }
    assert hf.lm_head.weight.data_ptr() == hf.shared.weight.data_ptr()  # tied: the head reads `shared`
    with torch.no_grad():
        out = hf(
            input_ids=SRC,
            attention_mask=VALID.long(),
            decoder_input_ids=TGT,
            decoder_attention_mask=TGT_VALID.long(),
        )
        loss = hf(input_ids=SRC, attention_mask=VALID.long(), labels=LABELS).loss
    expected = ref.t5_forward(params, config, SRC.numpy(), TGT.numpy(), VALID.numpy(), TGT_VALID.numpy())
    np.testing.assert_allclose(out.logits.numpy(), expected, rtol=1e-12, atol=1e-12)
    decoder_input_ids = ref.shift_right(LABELS.numpy(), config.decoder_start_id, config.pad_id)
    ref_loss = ref.t5_loss(
        ref.t5_forward(params, config, SRC.numpy(), decoder_input_ids, VALID.numpy()), LABELS.numpy()
    )
    assert abs(loss.item() - ref_loss) <= 1e-12


def _to_hugging_face(params: dict, config) -> dict:
    """Our state-dict names -> Hugging Face T5's (test-local, written from ORACLE_NOTES, independent of interop/)."""
    out = {"shared.weight": params["shared.weight"]}
    for side, depth in (("encoder", config.n_layers), ("decoder", config.n_decoder)):
        rel = f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
        out[rel] = params[f"{side}.position_bias.embedding.weight"]
        out[f"{side}.final_layer_norm.weight"] = params[f"{side}.final_norm.weight"]
        for i in range(depth):
            ours, theirs = f"{side}.layers.{i}", f"{side}.block.{i}.layer"
            subs = [("self_attn", "0.SelfAttention", "norm1")]
            if side == "decoder":
                subs.append(("cross_attn", "1.EncDecAttention", "norm2"))
            for attn, hf_attn, norm in subs:
                for p, q in (("q_proj", "q"), ("k_proj", "k"), ("v_proj", "v"), ("out_proj", "o")):
                    out[f"{theirs}.{hf_attn}.{q}.weight"] = params[f"{ours}.{attn}.{p}.weight"]
                out[f"{theirs}.{hf_attn.split('.')[0]}.layer_norm.weight"] = params[f"{ours}.{norm}.weight"]
            ff, ff_norm = ("2", "norm3") if side == "decoder" else ("1", "norm2")
            out[f"{theirs}.{ff}.layer_norm.weight"] = params[f"{ours}.{ff_norm}.weight"]
            if config.feed_forward == "relu":
                out[f"{theirs}.{ff}.DenseReluDense.wi.weight"] = params[f"{ours}.ff.w1.weight"]
            else:
                out[f"{theirs}.{ff}.DenseReluDense.wi_0.weight"] = params[f"{ours}.ff.w1.weight"]
                out[f"{theirs}.{ff}.DenseReluDense.wi_1.weight"] = params[f"{ours}.ff.w3.weight"]
            out[f"{theirs}.{ff}.DenseReluDense.wo.weight"] = params[f"{ours}.ff.w2.weight"]
    return out
