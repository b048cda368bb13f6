"""T5 (models/t5.py): properties of the model — causality, padding, the shared relative bias, shifting, the loss,
cached decoding equal to recomputation — and its configuration. The NumPy reference is in test_t5_reference.py,
the Hugging Face oracle in test_interop_hf_t5.py."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from transformer_from_scratch import EncoderDecoderKVCache, T5Config, T5ForConditionalGeneration, T5Model
from transformer_from_scratch import functional as tf
from transformer_from_scratch.models.t5 import shift_right

F64 = {"rtol": 1e-10, "atol": 1e-12}


def make_model(seed: int = 0, dtype=torch.float64, **overrides) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config.tiny(**{"vocab_size": 50, "d_kv": 6, "n_decoder_layers": 3, **overrides})
    return T5ForConditionalGeneration(config).to(dtype).eval()


def ids(seed: int, *shape: int, low: int = 2, high: int = 50) -> torch.Tensor:
    return torch.randint(low, high, shape, generator=torch.Generator().manual_seed(seed))


# ---- the architecture ---------------------------------------------------------------------------------------


def test_blocks_are_pre_norm_rms_bias_free_unscaled_with_d_kv_heads():
    model = make_model(d_model=20, d_kv=7, n_heads=3)
    block = model.encoder.layers[0]
    assert block.norm_first and type(block.norm1).__name__ == "RMSNorm"
    attn = block.self_attn
    assert (attn.q_proj.weight.shape, attn.out_proj.weight.shape) == ((21, 20), (20, 21))  # H·d_kv = 21 ≠ D = 20
    assert attn.scale == 1.0 and attn.q_proj.bias is None and model.decoder.layers[0].ff.w1.bias is None
    assert not any(name.endswith("bias") and "position_bias" not in name for name, _ in model.named_parameters())


def test_one_relative_bias_table_per_stack_feeds_every_block():
    """Changing the encoder's table changes the output; a copy of block 1 run without the bias differs — the table
    reaches blocks beyond the first (T5 shares block 0's table with all of them)."""
    model = make_model()
    x, valid = ids(1, 2, 7), torch.ones(2, 7, dtype=torch.bool)
    memory = model.encode(x, valid).last_hidden_state
    with torch.no_grad():
        h = model.encoder.dropout(model.shared(x))
        bias = model.encoder.position_bias(7, 7)
        h0 = model.encoder.layers[0](h, bias=bias)
        with_bias = model.encoder.layers[1](h0, bias=bias)
        without = model.encoder.layers[1](h0)
        assert_close(model.encoder.final_norm(with_bias), memory, **F64)
        assert (with_bias - without).abs().max() > 1e-3
    names = [n for n, _ in model.named_parameters() if "position_bias" in n]
    assert names == ["encoder.position_bias.embedding.weight", "decoder.position_bias.embedding.weight"]
    assert model.encoder.position_bias.bidirectional and not model.decoder.position_bias.bidirectional


def test_tied_head_scales_by_inverse_sqrt_d_model_and_untied_does_not():
    tied = make_model()
    x, y = ids(2, 2, 6), ids(3, 2, 4)
    out = tied(x, y)
    assert_close(out.logits, out.last_hidden_state @ tied.shared.weight.T * tied.config.d_model**-0.5, **F64)
    untied = make_model(tie_word_embeddings=False)
    assert untied.lm_head.weight is not untied.shared.weight
    out = untied(x, y)
    assert_close(out.logits, out.last_hidden_state @ untied.lm_head.weight.T, **F64)
    assert "lm_head.weight" not in tied.state_dict() and "lm_head.weight" in untied.state_dict()


def test_t5_model_has_no_head_and_the_same_states():
    full = make_model()
    bare = T5Model(full.config).double().eval()
    bare.load_state_dict(full.state_dict())
    x, y = ids(4, 2, 5), ids(5, 2, 3)
    assert_close(bare(x, y).last_hidden_state, full(x, y).last_hidden_state, **F64)
    assert bare(x, y).logits is None


@pytest.mark.parametrize("kind", ["relu", "gated_gelu"])
def test_initialisation_follows_t5(kind):
    """Standard deviations of the initial weights within 10 % of T5's (Mesh TensorFlow) choices."""
    torch.manual_seed(0)
    c = T5Config.tiny(vocab_size=400, d_model=64, d_kv=16, d_ff=128, n_heads=4, feed_forward=kind)
    model = T5Model(c)
    attn, ff = model.encoder.layers[0].self_attn, model.encoder.layers[0].ff
    expected = {
        attn.q_proj.weight: (64 * 16) ** -0.5,
        attn.k_proj.weight: 64**-0.5,
        attn.out_proj.weight: (4 * 16) ** -0.5,
        ff.w1.weight: 64**-0.5,
        ff.w2.weight: 128**-0.5,
        model.shared.weight: 1.0,
    }
    for p, std in expected.items():
        assert abs(p.std().item() / std - 1) < 0.1
    assert (model.encoder.final_norm.weight == 1).all()


def test_parameter_count_of_t5_small_sizes():
    """t5-small: 60,506,624 parameters (shared embedding counted once). The count follows from the sizes."""
    c = T5Config.small()
    with torch.device("meta"):
        model = T5ForConditionalGeneration(c)
    d, f, v, inner = 512, 2048, 32_128, 8 * 64
    attention = 4 * d * inner
    expected = v * d + 2 * 32 * 8 + 2 * d
    expected += 6 * (attention + 2 * d * f + 2 * d)  # encoder blocks
    expected += 6 * (2 * attention + 2 * d * f + 3 * d)  # decoder blocks
    assert sum(p.numel() for p in model.parameters()) == expected == 60_506_624


# ---- masks: causality and padding -----------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(t=st.integers(2, 7), cut=st.integers(0, 6), seed=st.integers(0, 10_000))
def test_decoder_is_causal(t, cut, seed):
    """Changing decoder tokens from position `cut` on changes no logit before `cut`."""
    cut = min(cut, t - 1)
    model = make_model()
    x, y = ids(seed, 2, 5), ids(seed + 1, 2, t)
    y2 = y.clone()
    y2[:, cut:] = ids(seed + 2, 2, t - cut)
    a, b = model(x, y).logits, model(x, y2).logits
    assert_close(a[:, :cut], b[:, :cut], **F64)


@settings(max_examples=15, deadline=None)
@given(n_real=st.integers(1, 6), n_pad=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_encoder_padding_changes_nothing(n_real, n_pad, seed):
    """Appending padding (of any token) to a source, marked in ``valid``, leaves the logits of the decoder unchanged."""
    model = make_model()
    x, y = ids(seed, 1, n_real), ids(seed + 1, 1, 4)
    padded = torch.cat([x, ids(seed + 2, 1, n_pad, low=0)], dim=1)
    valid = torch.arange(n_real + n_pad)[None] < n_real
    assert_close(model(padded, y, valid=valid).logits, model(x, y).logits, **F64)


def test_default_source_mask_comes_from_pad_id_and_decoder_default_is_all_real():
    model = make_model()
    x = ids(6, 2, 6)
    x[1, 4:] = model.config.pad_id
    y = ids(7, 2, 3)
    assert_close(model(x, y).logits, model(x, y, valid=x != 0).logits, **F64)
    assert not torch.allclose(model(x, y).logits, model(x, y, valid=torch.ones_like(x, dtype=torch.bool)).logits)
    y[:, 0] = model.config.decoder_start_id  # = pad_id: still a real decoder token
    assert_close(model(x, y).logits, model(x, y, decoder_valid=torch.ones_like(y, dtype=torch.bool)).logits, **F64)


# ---- labels, shifting, the loss ----------------------------------------------------------------------------------


def test_shift_right_prepends_the_start_id_and_replaces_ignored_labels():
    labels = torch.tensor([[5, 6, 7, -100], [8, -100, -100, -100]])
    assert shift_right(labels, 0, 0).tolist() == [[0, 5, 6, 7], [0, 8, 0, 0]]
    assert shift_right(labels, 3, 2).tolist() == [[3, 5, 6, 7], [3, 8, 2, 2]]


def test_labels_alone_give_teacher_forcing_and_the_mean_loss_over_scored_labels():
    model = make_model()
    x, labels = ids(8, 3, 6), ids(9, 3, 5)
    labels[0, 3:] = -100
    out = model(x, labels=labels)
    explicit = model(x, model.shift_right(labels))
    assert_close(out.logits, explicit.logits, **F64)
    logp = torch.log_softmax(out.logits, dim=-1)
    keep = labels != -100
    expected = -logp[keep].gather(1, labels[keep][:, None]).mean()
    assert_close(out.loss, expected, **F64)
    assert_close(out.loss, tf.cross_entropy(out.logits, labels), **F64)


def test_a_training_step_moves_every_parameter():
    model = make_model().train()
    out = model(ids(10, 2, 6), labels=ids(11, 2, 4))
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name


# ---- decoding: the cache equals recomputation ------------------------------------------------------------------


def test_incremental_decoding_with_the_cache_equals_one_full_pass():
    """Feeding the decoder one token at a time with an EncoderDecoderKVCache gives the logits of the full pass, and
    the cross-attention keys are computed once (the memory passed after the first step is not read)."""
    model = make_model()
    x, y = ids(12, 2, 7), ids(13, 2, 5)
    x[1, 5:] = 0
    valid = x != 0
    full = model(x, y, valid=valid).logits
    memory = model.encode(x, valid).last_hidden_state
    cache = None
    for t in range(5):
        seen = memory if t == 0 else torch.zeros_like(memory)
        out = model.decode(y[:, t : t + 1], seen, src_valid=valid, kv_cache=cache, use_cache=True)
        cache = out.kv_cache
        assert isinstance(cache, EncoderDecoderKVCache) and cache.length == t + 1
        assert_close(out.logits[:, 0], full[:, t], **F64)


@pytest.mark.parametrize("mode", ["greedy", "beam", "sample"])
def test_generate_with_cache_equals_without(mode):
    model = make_model(seed=3)
    x = ids(14, 3, 8)
    x[2, 3:] = 0
    options = {"greedy": {}, "beam": {"beam_size": 3}, "sample": {"do_sample": True, "top_k": 10}}[mode]

    def run(use_cache):
        g = torch.Generator().manual_seed(0)
        generator = {"generator": g} if mode == "sample" else {}
        return model.generate(x, max_new_tokens=9, use_cache=use_cache, **options, **generator)

    cached, plain = run(True), run(False)
    assert torch.equal(cached, plain)
    assert (cached[:, 0] == model.config.decoder_start_id).all() and cached.shape[1] > 1


def test_greedy_generation_is_the_argmax_of_the_forward_pass():
    model = make_model(seed=4)
    x = ids(15, 2, 6)
    out = model.generate(x, max_new_tokens=6, eos_id=49)  # an id the random model rarely picks: full length
    for t in range(1, out.shape[1]):
        logits = model(x, out[:, :t]).logits[:, -1]
        live = (out[:, 1:t] != 49).all(dim=1)
        assert torch.equal(out[live, t], logits[live].argmax(dim=-1))


def test_generation_stops_at_eos_and_pads():
    model = make_model(seed=5)
    x = ids(16, 4, 5)
    first = model.generate(x, max_new_tokens=1)[:, 1]
    out = model.generate(x, max_new_tokens=5, eos_id=int(first[0]), pad_id=0)
    assert out[0, 1] == first[0] and (out[0, 2:] == 0).all()


# ---- configuration and errors -----------------------------------------------------------------------------------


def test_config_presets_and_depths():
    c = T5Config.tiny()
    assert (c.d_model, c.d_kv, c.n_heads, c.n_layers, c.n_decoder) == (32, 8, 4, 2, 2)
    assert T5Config.tiny(n_decoder_layers=5).n_decoder == 5
    block = c.block_config()
    assert (block.d_head, block.attention_scale, block.norm, block.bias) == (8, 1.0, "rms", False)
    assert dataclasses.replace(c, feed_forward="gated_gelu").block_config().activation == "gated_gelu"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("feed_forward", "gelu", ValueError),
        ("d_kv", 0, ValueError),
        ("num_buckets", 1, ValueError),
        ("eos_id", 100, ValueError),
        ("eos_id", None, ValueError),
        ("dropout", 1.0, ValueError),
        ("n_decoder_layers", 0, ValueError),
    ],
)
def test_config_errors_name_the_field(field, value, error):
    with pytest.raises(error, match=field):
        T5Config.tiny(**{field: value})


def test_input_errors():
    model = make_model()
    x = ids(17, 2, 4)
    with pytest.raises(ValueError, match="decoder_input_ids, or labels"):
        model(x)
    with pytest.raises(ValueError, match="input_ids"):
        model(x + 100, labels=ids(18, 2, 3))
    with pytest.raises(ValueError, match="labels"):
        model(x, labels=ids(18, 2, 3, 1))
    with pytest.raises(TypeError, match="valid"):
        model(x, labels=ids(18, 2, 3), valid=torch.ones(2, 4))
    with pytest.raises(ValueError, match="memory"):
        model.decode(ids(19, 2, 3), torch.zeros(3, 4, 32, dtype=torch.float64))
    with pytest.raises(TypeError, match="kv_cache"):
        model.decode(ids(19, 2, 3), torch.zeros(2, 4, 32, dtype=torch.float64), kv_cache=object())
    with pytest.raises(ValueError, match="both"):
        model.generate(x, max_new_tokens=2, beam_size=2, do_sample=True)
    with pytest.raises(TypeError, match="T5Config"):
        T5Model(object())
