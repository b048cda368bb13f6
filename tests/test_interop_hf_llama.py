"""Oracle: Hugging Face ``LlamaForCausalLM`` (small config, random weights, eager attention) through interop.hf_llama.

Llama = our GPT with RoPE, RMSNorm, SwiGLU, no biases and an untied head. Its RoPE is the rotate-half layout
(pairs (i, i + Dh/2)) = our ``rope_convention="half"``; our interleaved layout gives the same model once the q/k
rows are permuted within every head, which the converter does on request. ``rope_theta`` is set away from the
default so a converter that ignored it would fail. Float32, tolerances 1e-5.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import transformers
from helpers import randomize_hf_

from transformer_from_scratch.config import GPTConfig
from transformer_from_scratch.generation import left_pad
from transformer_from_scratch.interop import hf_llama
from transformer_from_scratch.models import GPT

TOL32 = dict(rtol=1e-5, atol=1e-5)
V = 97
HF_CONFIG = dict(
    vocab_size=V,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=64,
    rms_norm_eps=1e-5,
    rope_parameters={"rope_theta": 500.0, "rope_type": "default"},
    bos_token_id=1,
    eos_token_id=2,
    attn_implementation="eager",
)
PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [15, 16, 17], [18, 19, 20, 21, 22, 23]]


def hf_llama_model(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return randomize_hf_(
        transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**HF_CONFIG, **overrides})), seed
    ).eval()


@pytest.fixture(scope="module")
def hf():
    return hf_llama_model(seed=1)


def test_config_is_read_from_hugging_face(hf):
    c = hf_llama.config_from_hf(hf.config.to_dict())
    assert (c.vocab_size, c.d_model, c.n_heads, c.n_layers, c.d_ff, c.max_len) == (V, 32, 4, 2, 48, 64)
    assert (c.positional, c.norm, c.activation, c.bias, c.tie_head) == ("rope", "rms", "swiglu", False, False)
    assert c.rope_theta == 500.0 and c.layer_norm_eps == 1e-5 and c.rope_convention == "half"
    # config.json files written by transformers 4.x keep rope_theta at the top level
    old_style = {k: v for k, v in hf.config.to_dict().items() if k != "rope_parameters"}
    assert hf_llama.config_from_hf({**old_style, "rope_theta": 250.0}).rope_theta == 250.0


@pytest.mark.parametrize("convention", ["half", "interleaved"])
def test_logits_equal_hugging_face(hf, convention):
    ours = GPT.from_hf(hf, rope_convention=convention)
    assert ours.config.rope_convention == convention
    ids = torch.randint(0, V, (3, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = hf(ids, labels=ids)
        mine = ours(ids, labels=ids)
    torch.testing.assert_close(mine.logits, theirs.logits, **TOL32)
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL32)
    assert mine.logits.abs().max() > 1.0


@pytest.mark.parametrize("convention", ["half", "interleaved"])
def test_left_padded_batch_equals_hugging_face_with_position_ids(hf, convention):
    ours = GPT.from_hf(hf, rope_convention=convention)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        theirs = hf(ids, attention_mask=valid.long(), position_ids=positions).logits
        mine = ours(ids, valid=valid).logits
    torch.testing.assert_close(mine[valid], theirs[valid], **TOL32)


def test_the_interleaved_layout_needs_the_row_permutation(hf):
    """Copying rotate-half weights into an interleaved model without permuting q/k gives a different model."""
    half = GPT.from_hf(hf)
    naive = GPT(dataclasses.replace(half.config, rope_convention="interleaved")).eval()
    naive.load_state_dict(half.state_dict())
    ids = torch.randint(0, V, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (naive(ids).logits - hf(ids).logits).abs().max() > 1e-2
    perm = hf_llama.rope_row_permutation(n_heads=2, d_head=4)
    assert perm.tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.parametrize("convention", ["half", "interleaved"])
def test_our_weights_run_in_hugging_face(convention):
    config = GPTConfig.llama_tiny(vocab_size=V, d_model=32, n_heads=4, d_ff=48, rope_theta=500.0)
    config = dataclasses.replace(config, rope_convention=convention, layer_norm_eps=1e-5)
    ours = randomize_hf_(GPT(config), seed=2).eval()
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**HF_CONFIG)).eval()
    hf.load_state_dict(hf_llama.state_dict_to_hf(ours.state_dict(), ours.config), strict=True)
    ids = torch.randint(0, V, (2, 15), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf(ids).logits, **TOL32)
    again = GPT(config)
    exported = hf_llama.state_dict_to_hf(ours.state_dict(), config)
    again.load_state_dict(hf_llama.state_dict_from_hf(exported, config)[0])
    for key, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_config_round_trip():
    config = GPTConfig.llama_tiny(vocab_size=V, rope_theta=1234.0, pad_id=0, tie_head=True)
    hf_config = transformers.LlamaConfig(**hf_llama.config_to_hf(config), bos_token_id=1, eos_token_id=2)
    assert hf_llama.config_from_hf(hf_config.to_dict()) == config


def test_tied_llama_and_from_pretrained(tmp_path):
    hf = hf_llama_model(seed=3, tie_word_embeddings=True)
    assert hf.lm_head.weight is hf.model.embed_tokens.weight
    hf.save_pretrained(tmp_path, safe_serialization=True)
    ours = GPT.from_pretrained(tmp_path)
    assert ours.config.tie_head and ours.lm_head.weight is ours.token.weight
    interleaved = GPT.from_pretrained(tmp_path, rope_convention="interleaved")
    assert interleaved.config.rope_convention == "interleaved"
    ids = torch.randint(0, V, (2, 11), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf(ids).logits, **TOL32)
        torch.testing.assert_close(interleaved(ids).logits, hf(ids).logits, **TOL32)


def test_refuses_what_it_cannot_convert(hf):
    base = hf.config.to_dict()
    with pytest.raises(ValueError, match="grouped-query"):
        hf_llama.config_from_hf({**base, "num_key_value_heads": 2})
    with pytest.raises(ValueError, match="hidden_act"):
        hf_llama.config_from_hf({**base, "hidden_act": "gelu"})
    with pytest.raises(ValueError, match="rope_type"):
        hf_llama.config_from_hf({**base, "rope_parameters": {"rope_theta": 1e4, "rope_type": "linear", "factor": 2.0}})
    with pytest.raises(ValueError, match="bias"):
        hf_llama.config_from_hf({**base, "attention_bias": True})
    config = hf_llama.config_from_hf(base)
    state = dict(hf.state_dict())
    del state["model.layers.0.mlp.up_proj.weight"]
    with pytest.raises(ValueError, match=r"missing keys \(1\).*up_proj"):
        hf_llama.state_dict_from_hf(state, config)
    with pytest.raises(ValueError, match="Llama checkpoint needs"):
        hf_llama.state_dict_from_hf(hf.state_dict(), GPTConfig.tiny())
