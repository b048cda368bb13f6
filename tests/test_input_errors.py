"""Bad inputs to the Python API fail at the boundary with a TypeError / ValueError that names the argument — never
inside torch — and the valid inputs next to them still give the numbers they gave before.

One section per case: attention dtypes, mask sizes, empty batches and sequences, generation past max_len,
checkpoints of another model configuration, and the license file.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from transformer_from_scratch import GPT, BertConfig, BertModel, EncoderDecoder, GPTConfig, TransformerConfig, masks
from transformer_from_scratch import reference as ref
from transformer_from_scratch.attention import MultiHeadAttention
from transformer_from_scratch.training.checkpoint import load_model_weights, model_tensors, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
F32 = {"rtol": 1e-5, "atol": 1e-6}  # float32 vs NumPy float64


# ---- MultiHeadAttention: the input's dtype must be the weights' ------------------------------------------------


def mha_and_inputs(dtype=torch.float32):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).to(dtype)
    g = torch.Generator().manual_seed(1)
    x_q = torch.randn(2, 3, 16, generator=g, dtype=torch.float64).to(dtype)  # T = 3
    x_kv = torch.randn(2, 5, 16, generator=g, dtype=torch.float64).to(dtype)  # S = 5
    return mha, x_q, x_kv


def numpy_mha(mha, x_q, x_kv):
    params = []
    for proj in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj):
        params += [proj.weight.detach().double().numpy(), proj.bias.detach().double().numpy()]
    out = ref.multi_head_attention(
        x_q.double().numpy(), x_kv.double().numpy(), *params, n_heads=mha.n_heads, allowed=None, bias=None
    )
    return torch.from_numpy(out[0] if isinstance(out, tuple) else out)


def test_a_float64_input_to_a_float32_attention_names_the_argument_and_both_dtypes():
    mha, x_q, x_kv = mha_and_inputs()
    with pytest.raises(TypeError, match=r"x_q has dtype torch.float64 .* are torch.float32.*module.double\(\)"):
        mha(x_q.double())
    with pytest.raises(TypeError, match=r"x_kv has dtype torch.float64 .* x_kv.to\(torch.float32\)"):
        mha(x_q, x_kv.double())  # cross-attention: the keys' side is checked too
    with pytest.raises(TypeError, match=r"x_q has dtype torch.float32 .* are torch.float64"):
        mha.double()(x_q)


def test_an_integer_input_to_attention_asks_for_a_floating_tensor():
    mha, x_q, _ = mha_and_inputs()
    with pytest.raises(TypeError, match="x_q must be a floating-point tensor .* got torch.int64"):
        mha(torch.zeros(2, 3, 16, dtype=torch.long))
    with pytest.raises(TypeError, match="x_kv must be a floating-point tensor .* got torch.bool"):
        mha(x_q, torch.zeros(2, 5, 16, dtype=torch.bool))


def test_attention_of_matching_dtypes_gives_the_reference_numbers():
    for dtype, tol in ((torch.float32, F32), (torch.float64, {"rtol": 1e-10, "atol": 1e-12})):
        mha, x_q, x_kv = mha_and_inputs(dtype)
        with torch.no_grad():
            assert_close(mha(x_q).double(), numpy_mha(mha, x_q, x_q), **tol)
            assert_close(mha(x_q, x_kv).double(), numpy_mha(mha, x_q, x_kv), **tol)


def test_under_autocast_other_float_dtypes_are_legal_but_float64_is_not():
    mha, x_q, x_kv = mha_and_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mha(x_q.bfloat16(), x_kv)  # bfloat16 queries, float32 weights and keys: autocast casts them
        assert out.dtype == torch.bfloat16
        assert_close(out.float(), mha(x_q, x_kv).float(), rtol=0.05, atol=0.05)
        with pytest.raises(TypeError, match=r"x_q has dtype torch.float64 .*autocast never casts float64"):
            mha(x_q.double())
    with pytest.raises(TypeError, match=r"x_q has dtype torch.bfloat16 .*or run under torch.autocast"):
        mha(x_q.bfloat16())  # the same input without autocast


def test_the_dtype_check_keeps_attention_in_one_compiled_graph():
    mha, x_q, x_kv = mha_and_inputs()
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, b: mha(a, b), fullgraph=True, backend="eager")
    with torch.no_grad():
        assert_close(compiled(x_q, x_kv), mha(x_q, x_kv), rtol=1e-6, atol=1e-6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert compiled(x_q.bfloat16(), x_kv).dtype == torch.bfloat16
    torch._dynamo.reset()
    with pytest.raises(TypeError, match="x_q has dtype torch.float64"):  # graph break allowed: the error surfaces
        torch.compile(lambda a: mha(a), backend="eager")(x_q.double())


# ---- mask builders: sizes are ints ≥ 0 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((2.5,), TypeError, r"^t must be an int .*got float 2.5"),
        ((True,), TypeError, r"^t must be an int .*got bool"),
        ((torch.tensor(3.0),), TypeError, r"^t must be an int .*float32"),
        ((-1,), ValueError, r"^t must be ≥ 0 .*got -1"),
        ((3, 4.0), TypeError, r"^s must be an int .*got float 4.0"),
        ((3, False), TypeError, r"^s must be an int .*got bool"),
        ((3, -2), ValueError, r"^s must be ≥ 0 .*got -2"),
    ],
)
def test_causal_mask_refuses_sizes_that_are_not_lengths(args, error, match):
    with pytest.raises(error, match=match):
        masks.causal_mask(*args)


def test_padding_mask_refuses_a_max_len_that_is_not_a_length():
    with pytest.raises(TypeError, match="^max_len must be an int .*got float 4.5"):
        masks.padding_mask_from_lengths([1, 2], 4.5)
    with pytest.raises(TypeError, match="^max_len must be an int"):
        masks.padding_mask(lengths=[1, 2], max_len=3.0)
    with pytest.raises(ValueError, match="^max_len must be ≥ 0"):
        masks.padding_mask_from_lengths([0, 0], -1)


def test_mask_builders_still_take_ints_numpy_ints_and_0d_integer_tensors():
    square = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    assert torch.equal(masks.causal_mask(3), square)
    assert torch.equal(masks.causal_mask(np.int64(3)), square)
    assert torch.equal(masks.causal_mask(torch.tensor(3)), square)
    assert torch.equal(masks.causal_mask(2, np.int32(3)), square[1:])  # bottom-right aligned, as before
    assert masks.causal_mask(0).shape == (0, 0)
    expected = torch.tensor([[True, False, False, False], [True, True, False, False]])
    assert torch.equal(masks.padding_mask_from_lengths([1, 2], np.int64(4)), expected)
    assert torch.equal(masks.padding_mask_from_lengths([1, 2], torch.tensor(4)), expected)


# ---- empty batches and empty sequences -------------------------------------------------------------------------


def models():
    torch.manual_seed(0)
    return {
        "gpt": (GPT(GPTConfig.tiny()).eval(), lambda m, x: m(x).logits),
        "llama": (GPT(GPTConfig.llama_tiny()).eval(), lambda m, x: m(x).logits),
        "bert": (BertModel(BertConfig.tiny()).eval(), lambda m, x: m(x).last_hidden_state),
        "encoder_decoder": (EncoderDecoder(TransformerConfig.tiny()).eval(), lambda m, x: m(x, x).logits),
    }


def test_an_empty_batch_gives_empty_outputs_in_every_model():
    """The house convention (BertModel, EncoderDecoder, GPT alike): B = 0 maps to outputs with B = 0."""
    for name, (model, run) in models().items():
        out = run(model, torch.zeros(0, 5, dtype=torch.long))
        assert out.shape[:2] == (0, 5), name
    gpt = models()["gpt"][0]
    out = gpt(torch.zeros(0, 5, dtype=torch.long), labels=torch.zeros(0, 5, dtype=torch.long))
    assert out.logits.shape == (0, 5, gpt.config.vocab_size)
    assert torch.isfinite(out.loss)  # no targets: a zero loss, not NaN


def test_an_empty_sequence_is_refused_naming_the_ids():
    for name, (model, run) in models().items():
        arg = "src_ids" if name == "encoder_decoder" else "input_ids"
        with pytest.raises(ValueError, match=rf"^{arg} must have shape \(B, T\) with T ≥ 1, got \(2, 0\)"):
            run(model, torch.zeros(2, 0, dtype=torch.long))
    model = models()["encoder_decoder"][0]
    with pytest.raises(ValueError, match=r"^tgt_ids must have shape \(B, T\) with T ≥ 1"):
        model(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 0, dtype=torch.long))


@pytest.mark.parametrize("options", [{}, {"do_sample": True}, {"beam_size": 2}], ids=["greedy", "sample", "beam"])
def test_generate_refuses_an_empty_batch(options):
    model = models()["gpt"][0]
    with pytest.raises(ValueError, match=r"^input_ids holds no prompt: the batch is empty \(shape \(0, 5\)\)"):
        model.generate(torch.zeros(0, 5, dtype=torch.long), max_new_tokens=2, **options)


# ---- generation past the learned position table -----------------------------------------------------------------


def count_calls(model):
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


@pytest.mark.parametrize("options", [{}, {"do_sample": True}, {"beam_size": 2}], ids=["greedy", "sample", "beam"])
def test_generate_refuses_to_run_past_max_len_before_decoding(options):
    model = models()["gpt"][0]
    assert model.config.max_len == 64
    calls = count_calls(model)
    prompt = torch.randint(0, model.config.vocab_size, (2, 60), generator=torch.Generator().manual_seed(0))
    with pytest.raises(
        ValueError,
        match=r"^max_new_tokens=10 does not fit: the prompt length 60 \+ max_new_tokens 10 = 70 exceeds max_len=64 "
        r".*crop the prompt to its last 54 tokens \(input_ids\[:, -54:\]\) or lower max_new_tokens to 4",
    ):
        model.generate(prompt, max_new_tokens=10, **options)
    assert not calls  # refused before the first forward pass
    with pytest.raises(ValueError, match=r"^max_new_tokens=1 does not fit: the prompt length 64 .*last 63 tokens"):
        model.generate(torch.zeros(1, 64, dtype=torch.long), max_new_tokens=1, **options)
    with pytest.raises(ValueError, match=r"^max_new_tokens=64 does not fit.* lower max_new_tokens to 54$"):
        model.generate(torch.zeros(1, 10, dtype=torch.long), max_new_tokens=64, **options)


def greedy_by_hand(model, ids, n):
    for _ in range(n):
        ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


def test_generate_fills_max_len_exactly():
    model = models()["gpt"][0]
    prompt = torch.randint(0, model.config.vocab_size, (2, 54), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = greedy_by_hand(model, prompt, 10)  # (2, 64)
    assert torch.equal(model.generate(prompt, max_new_tokens=10), expected)
    assert torch.equal(model.generate(prompt, max_new_tokens=10, use_cache=False), expected)
    beams = model.generate(prompt, max_new_tokens=10, beam_size=2)
    assert beams.shape == (2, 64) and torch.equal(beams[:, :54], prompt)


def test_rope_models_have_no_position_table_and_decode_past_max_len():
    model = models()["llama"][0]
    assert model.config.max_len == 64 and model.position is None
    prompt = torch.randint(0, model.config.vocab_size, (1, 60), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = greedy_by_hand(model, prompt, 10)
    assert torch.equal(model.generate(prompt, max_new_tokens=10), expected)  # 70 > max_len, as before
    beams = model.generate(prompt, max_new_tokens=10, beam_size=2)
    assert beams.shape == (1, 70) and torch.equal(beams[:, :60], prompt)


# ---- checkpoints of another model configuration ------------------------------------------------------------------


def saved_run(tmp_path, config):
    torch.manual_seed(0)
    model = GPT(config)
    (tmp_path / "model_config.json").write_text(json.dumps(dataclasses.asdict(config)))
    return model, save_checkpoint(tmp_path / "step_000001", model_tensors(model), {"step": 1})


def test_loading_into_a_wider_model_names_the_first_tensors_with_both_shapes(tmp_path):
    config = GPTConfig.tiny()
    _, directory = saved_run(tmp_path, config)
    wider = GPT(dataclasses.replace(config, d_model=64))
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(ValueError) as info:
        load_model_weights(directory, wider)
    message = str(info.value)
    assert message.startswith(f"the checkpoint {directory} does not fit this GPT: 35 tensor(s) differ in shape")
    assert "(token.weight: checkpoint (64, 32) vs model (64, 64), position.weight: checkpoint (64, 32)" in message
    assert "written for another model configuration" in message
    assert f"build the model from {tmp_path / 'model_config.json'}" in message
    assert all(torch.equal(before[k], v) for k, v in wider.state_dict().items())  # nothing copied


def test_loading_into_a_deeper_or_shallower_model_lists_the_missing_or_unexpected_names(tmp_path):
    config = GPTConfig.tiny()
    assert config.n_layers == 2
    _, directory = saved_run(tmp_path, config)
    with pytest.raises(ValueError, match=r"16 tensor\(s\) of the model are missing from the checkpoint \(decoder."):
        load_model_weights(directory, GPT(dataclasses.replace(config, n_layers=3)))
    shallow = GPT(dataclasses.replace(config, n_layers=1))
    before = {k: v.clone() for k, v in shallow.state_dict().items()}
    with pytest.raises(ValueError, match=r"16 tensor\(s\) of the checkpoint are not in the model \(decoder.layers.1.*"):
        load_model_weights(directory, shallow)
    assert all(torch.equal(before[k], v) for k, v in shallow.state_dict().items())  # nothing copied


def test_loading_into_the_same_configuration_restores_the_weights(tmp_path):
    model, directory = saved_run(tmp_path, GPTConfig.tiny())
    torch.manual_seed(1)
    other = GPT(GPTConfig.tiny())
    assert load_model_weights(directory, other)["step"] == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


# ---- the license ---------------------------------------------------------------------------------------------------


def test_the_package_ships_the_mit_license():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 The transformer_from_scratch authors\n")
    assert "Permission is hereby granted, free of charge" in text and 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg", encoding="utf-8")
    assert setup["metadata"]["license"] == "MIT"
    assert setup["metadata"]["license_files"].split() == ["LICENSE"]
