"""Oracle: Hugging Face ``GPT2LMHeadModel`` built offline from a small config, weights through interop.hf_gpt2.

GPT-2's Conv1D stores weights (in, out) — the converter transposes them and cuts c_attn into q | k | v. Every
parameter is randomised first: HF starts biases and LayerNorms at 0 and 1, which would hide a swapped norm or a
dropped bias, and its N(0, 0.02²) matrices give nearly uniform attention. Float32, eager attention, tolerances
1e-5. With left padding HF needs ``position_ids = (mask.cumsum(-1) - 1).clamp(min=0)``; our model counts
positions that way by itself. Padded query rows are not compared (HF fills masked scores with finfo.min, so its
padded rows are arbitrary numbers).
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from helpers import randomize_hf_

from transformer_from_scratch import interop
from transformer_from_scratch.config import GPTConfig
from transformer_from_scratch.generation import left_pad
from transformer_from_scratch.interop import hf_gpt2
from transformer_from_scratch.models import GPT

TOL32 = dict(rtol=1e-5, atol=1e-5)
V = 99
HF_CONFIG = dict(
    vocab_size=V,
    n_positions=32,
    n_embd=32,
    n_layer=2,
    n_head=4,
    n_inner=48,  # not 4·D, so a converter that assumed 4·D would fail
    bos_token_id=1,
    eos_token_id=2,
    attn_implementation="eager",
)
PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12], [13, 14, 15], [16, 17, 18, 19, 20]]


def hf_gpt2_model(seed: int = 0, **overrides):
    torch.manual_seed(seed)  # HF initialises from the global generator
    config = transformers.GPT2Config(**{**HF_CONFIG, **overrides})
    return randomize_hf_(transformers.GPT2LMHeadModel(config), seed).eval()


@pytest.fixture(scope="module")
def hf():
    return hf_gpt2_model(seed=1)


@pytest.fixture(scope="module")
def ours(hf):
    return GPT.from_hf(hf)


def hf_positions(valid: torch.Tensor) -> torch.Tensor:
    return (valid.long().cumsum(-1) - 1).clamp(min=0)


# ---- Hugging Face -> ours -----------------------------------------------------------------------------------


def test_config_is_read_from_hugging_face(ours):
    c = ours.config
    assert (c.vocab_size, c.d_model, c.n_heads, c.n_layers, c.d_ff, c.max_len) == (V, 32, 4, 2, 48, 32)
    assert c.activation == "gelu_tanh" and c.layer_norm_eps == 1e-5 and c.tie_head
    assert (c.dropout, c.embedding_dropout, c.attention_dropout) == (0.1, 0.1, 0.1)


def test_logits_and_loss_equal_hugging_face(hf, ours):
    ids = torch.randint(0, V, (3, 12), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[0, 3] = labels[2, 7] = -100
    with torch.no_grad():
        theirs = hf(ids, labels=labels)
        mine = ours(ids, labels=labels)
    torch.testing.assert_close(mine.logits, theirs.logits, **TOL32)
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL32)
    assert mine.logits.abs().max() > 1.0  # not a vacuous comparison of near-zero logits


def test_left_padded_batch_equals_hugging_face_with_position_ids(hf, ours):
    ids, valid = left_pad(PROMPTS, pad_id=0)
    # -100 on the padding and on each row's first real token (nothing real predicts it): see the next test.
    labels = torch.where(valid, ids, torch.full_like(ids, -100))
    labels[torch.arange(3), valid.long().argmax(dim=1)] = -100
    with torch.no_grad():
        theirs = hf(ids, attention_mask=valid.long(), position_ids=hf_positions(valid), labels=labels)
        mine = ours(ids, valid=valid, labels=labels)
    torch.testing.assert_close(mine.logits[valid], theirs.logits[valid], **TOL32)
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL32)
    # Hugging Face's default positions ignore padding: without position_ids its padded rows shift.
    with torch.no_grad():
        shifted = hf(ids, attention_mask=valid.long()).logits
    assert not torch.allclose(shifted[1][valid[1]], theirs.logits[1][valid[1]], **TOL32)


def test_deviation_predictions_from_padding_are_not_scored(hf, ours):
    """HF scores the padded position before a row's first real token; our loss ignores that prediction."""
    ids, valid = left_pad(PROMPTS, pad_id=0)
    labels = torch.where(valid, ids, torch.full_like(ids, -100))  # the usual labels: -100 on padding only
    with torch.no_grad():
        theirs = hf(ids, attention_mask=valid.long(), position_ids=hf_positions(valid), labels=labels).loss
        mine = ours(ids, valid=valid, labels=labels).loss
    first_real = labels.clone()
    first_real[torch.arange(3), valid.long().argmax(dim=1)] = -100
    with torch.no_grad():
        theirs_without = hf(ids, attention_mask=valid.long(), position_ids=hf_positions(valid), labels=first_real).loss
    torch.testing.assert_close(mine, theirs_without, **TOL32)
    assert abs(mine - theirs) > 1e-4


def test_greedy_generation_equals_hugging_face_generate_with_left_padding(hf, ours):
    ids, valid = left_pad(PROMPTS, pad_id=0)
    with torch.no_grad():
        theirs = hf.generate(
            ids, attention_mask=valid.long(), max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=None
        )
    mine = ours.generate(ids, valid=valid, max_new_tokens=8)
    assert mine.tolist() == theirs.tolist()


def test_untied_head_and_bare_gpt2model_keys():
    hf = hf_gpt2_model(seed=2, tie_word_embeddings=False)
    ours = GPT.from_hf(hf)
    assert not ours.config.tie_head and ours.lm_head.weight is not ours.token.weight
    ids = torch.randint(0, V, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf(ids).logits, **TOL32)
    # A bare GPT2Model state dict (no "transformer." prefix, no head) loads into a tied model.
    bare = {
        k.removeprefix("transformer."): v
        for k, v in hf_gpt2_model(seed=3).state_dict().items()
        if k != "lm_head.weight"
    }
    tied = GPT(GPTConfig.tiny(vocab_size=V, d_model=32, n_heads=4, n_layers=2, d_ff=48, max_len=32))
    state, result = hf_gpt2.state_dict_from_hf(bare, tied.config)
    assert result == ([], [])
    tied.load_state_dict(state)
    torch.testing.assert_close(tied.token.weight, bare["wte.weight"])


# ---- ours -> Hugging Face -----------------------------------------------------------------------------------


def test_our_weights_run_in_hugging_face():
    config = hf_gpt2.config_from_hf(transformers.GPT2Config(**HF_CONFIG).to_dict())
    ours = GPT(config).eval()
    randomize_hf_(ours, seed=4)  # biases and norms away from 0/1
    state = hf_gpt2.state_dict_to_hf(ours.state_dict(), ours.config)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**HF_CONFIG)).eval()
    hf.load_state_dict(state, strict=True)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    with torch.no_grad():
        theirs = hf(ids, attention_mask=valid.long(), position_ids=hf_positions(valid)).logits
        torch.testing.assert_close(ours(ids, valid=valid).logits[valid], theirs[valid], **TOL32)
    # And back: the round trip reproduces every tensor exactly.
    again = GPT(config)
    again.load_state_dict(hf_gpt2.state_dict_from_hf(state, config)[0])
    for key, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_config_round_trip():
    config = GPTConfig.tiny(vocab_size=V, d_ff=100, layer_norm_eps=1e-6, dropout=0.05, pad_id=3, tie_head=False)
    hf_config = transformers.GPT2Config(**hf_gpt2.config_to_hf(config), bos_token_id=1, eos_token_id=2)
    assert hf_gpt2.config_from_hf(hf_config.to_dict()) == config


def test_from_pretrained_reads_a_saved_folder(tmp_path, hf):
    hf.save_pretrained(tmp_path, safe_serialization=True)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "gpt2"
    ours = GPT.from_pretrained(tmp_path)
    ids = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf(ids).logits, **TOL32)
    assert not ours.training
    assert GPT.from_pretrained(str(tmp_path), dtype=torch.float64).token.weight.dtype == torch.float64
    with pytest.raises(ValueError, match="rope_convention='interleaved' applies to rotary checkpoints"):
        GPT.from_pretrained(tmp_path, rope_convention="interleaved")
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "gpt_neox"}))
    with pytest.raises(ValueError, match=r"model_type='gpt_neox'; GPT reads the model types \['gpt2', 'llama'\]"):
        GPT.from_pretrained(tmp_path)


# ---- refusals -----------------------------------------------------------------------------------------------


def test_refuses_what_it_cannot_convert(hf):
    state = dict(hf.state_dict())
    config = hf_gpt2.config_from_hf(hf.config.to_dict())
    untied = dict(state, **{"lm_head.weight": state["lm_head.weight"] + 1.0})
    with pytest.raises(ValueError, match="not tied"):
        hf_gpt2.state_dict_from_hf(untied, config)
    missing = {k: v for k, v in state.items() if k != "transformer.h.1.mlp.c_fc.bias"}
    with pytest.raises(ValueError, match=r"missing keys \(1\).*h\.1\.mlp\.c_fc\.bias"):
        hf_gpt2.state_dict_from_hf(missing, config)
    extra = dict(state, **{"transformer.h.9.ln_1.weight": torch.ones(32)})
    with pytest.raises(ValueError, match=r"unexpected keys \(1\)"):
        hf_gpt2.state_dict_from_hf(extra, config)
    assert hf_gpt2.state_dict_from_hf(extra, config, strict=False)[1].unexpected == ["transformer.h.9.ln_1.weight"]
    with pytest.raises(ValueError, match="gpt2"):
        hf_gpt2.state_dict_from_hf(state, GPTConfig.llama_tiny())
    with pytest.raises(ValueError, match="activation_function"):
        hf_gpt2.config_from_hf({**hf.config.to_dict(), "activation_function": "relu"})
    with pytest.raises(ValueError, match="model_type"):
        hf_gpt2.config_from_hf({**hf.config.to_dict(), "model_type": "bert"})


@pytest.mark.parametrize("module", ["hf_gpt2", "hf_llama", "hf_causal_lm"])
def test_from_pretrained_folder_errors_are_clear(tmp_path, module):
    load = getattr(interop, module).read_pretrained
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        load(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load(tmp_path / "empty")
