"""Oracle: Hugging Face ``transformers`` BERT built offline from a small config, weights through interop.hf_bert.

HF's ``attention_mask`` is 1 = keep (our ``valid``); outputs are compared on real positions only, since HF
fills masked scores with finfo.min and its padded query rows are not defined the way ours are. Float32, so
tolerances are 1e-5. LayerNorm parameters and biases start at 1/0 in HF: they are randomised first, or a
swapped norm or a dropped bias would go unnoticed.
"""

from __future__ import annotations

import json

import pytest
import safetensors.torch as safetensors_torch
import torch
import transformers
from helpers import randomize_hf_

from transformer_from_scratch import masks
from transformer_from_scratch.config import BertConfig
from transformer_from_scratch.interop import hf_bert
from transformer_from_scratch.models import BertForPreTraining, BertModel

TOL32 = dict(rtol=1e-5, atol=1e-5)
B, T = 3, 9
VALID = masks.padding_mask_from_lengths([9, 6, 3], max_len=T)  # (B, T)
HF_CONFIG = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=3,
    attn_implementation="eager",
)


def hf_model(cls_name: str, seed: int, **overrides):
    torch.manual_seed(seed)  # HF initialises from the global generator
    config = transformers.BertConfig(**{**HF_CONFIG, **overrides})
    return randomize_hf_(getattr(transformers, cls_name)(config), seed, matrices=False).eval()


def batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 99, (B, T), generator=g)
    segments = torch.zeros(B, T, dtype=torch.long)
    segments[:, 4:] = 1
    segments[0, 7:] = 2  # a third segment type: the table has 3 rows
    chosen = (torch.rand(B, T, generator=g) < 0.3) & VALID
    chosen[:, 1] = True
    labels = torch.where(chosen, torch.randint(0, 99, (B, T), generator=g), torch.full((B, T), -100))
    return ids, segments, labels, torch.tensor([0, 1, 1])


@pytest.fixture(scope="module")
def hf_pretraining():
    return hf_model("BertForPreTraining", seed=1)


def load_hf_(model, hf_state_dict, *, strict: bool = True) -> hf_bert.LoadResult:
    """Convert a Hugging Face state dict for ``model`` (its config and class) and load it; the LoadResult."""
    pretraining = isinstance(model, BertForPreTraining)
    state, result = hf_bert.state_dict_from_hf(hf_state_dict, model.config, pretraining=pretraining, strict=strict)
    model.load_state_dict(state, strict=strict)
    return result


def converted(hf) -> BertForPreTraining:
    ours = BertForPreTraining(hf_bert.config_from_hf(hf.config.to_dict())).eval()
    assert load_hf_(ours, hf.state_dict()) == ([], [])
    return ours


# ---- HF -> ours ------------------------------------------------------------------------------------------------


def test_pretraining_logits_loss_and_hidden_states_match_hf(hf_pretraining):
    ours = converted(hf_pretraining)
    assert ours.config.layer_norm_eps == 1e-12 and ours.config.type_vocab_size == 3
    ids, segments, labels, nsp = batch(2)
    with torch.no_grad():
        theirs = hf_pretraining(
            input_ids=ids,
            token_type_ids=segments,
            attention_mask=masks.to_hf_attention_mask(VALID),
            labels=labels,
            next_sentence_label=nsp,
            output_hidden_states=True,
            output_attentions=True,
        )
        mine = ours(ids, token_type_ids=segments, valid=VALID, mlm_labels=labels, nsp_labels=nsp, return_attention=True)
    torch.testing.assert_close(mine.mlm_logits[VALID], theirs.prediction_logits[VALID], **TOL32)
    torch.testing.assert_close(mine.nsp_logits, theirs.seq_relationship_logits, **TOL32)
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL32)
    assert len(mine.bert.hidden_states) == len(theirs.hidden_states) == 3
    for a, b in zip(mine.bert.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a[VALID], b[VALID], **TOL32)
    for a, b in zip(mine.bert.attentions, theirs.attentions):  # (B, H, T, T); real queries only
        torch.testing.assert_close(a.transpose(1, 2)[VALID], b.transpose(1, 2)[VALID], **TOL32)
    # the labels matter: another selection gives another loss (so the comparison above is not vacuous)
    other = torch.where(labels == -100, labels, (labels + 1) % 99)
    with torch.no_grad():
        other_loss = ours(ids, valid=VALID, token_type_ids=segments, mlm_labels=other, nsp_labels=nsp).loss
    assert abs(float(other_loss) - float(mine.loss)) > 1e-3


def test_gradients_match_hf(hf_pretraining):
    """The backward pass too: every parameter's gradient of the pre-training loss, name by name."""
    ours = converted(hf_pretraining)
    ids, segments, labels, nsp = batch(3)
    theirs_model = hf_model("BertForPreTraining", seed=1)
    theirs_model.load_state_dict(hf_pretraining.state_dict())
    theirs_model(
        input_ids=ids,
        token_type_ids=segments,
        attention_mask=VALID.long(),
        labels=labels,
        next_sentence_label=nsp,
    ).loss.backward()
    ours(ids, token_type_ids=segments, valid=VALID, mlm_labels=labels, nsp_labels=nsp).loss.backward()
    hf_params = dict(theirs_model.named_parameters())
    ours_params = dict(ours.named_parameters())
    pairs = hf_bert.key_pairs(2, pretraining=True)
    for theirs_name, ours_name in pairs:
        expected = hf_params[theirs_name].grad
        torch.testing.assert_close(ours_params[ours_name].grad, expected, rtol=1e-4, atol=1e-6, msg=ours_name)
    assert ours_params["bert.embeddings.token.weight"].grad.abs().sum() > 0


def test_bert_model_matches_hf_bert_model():
    hf = hf_model("BertModel", seed=4)
    ours = BertModel(hf_bert.config_from_hf(hf.config.to_dict())).eval()
    assert load_hf_(ours, hf.state_dict()) == ([], [])
    ids, segments, _, _ = batch(5)
    with torch.no_grad():
        theirs = hf(input_ids=ids, token_type_ids=segments, attention_mask=VALID.long(), output_hidden_states=True)
        mine = ours(ids, token_type_ids=segments, attention_mask=VALID.long())
    torch.testing.assert_close(mine.last_hidden_state[VALID], theirs.last_hidden_state[VALID], **TOL32)
    torch.testing.assert_close(mine.pooled, theirs.pooler_output, **TOL32)
    for a, b in zip(mine.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a[VALID], b[VALID], **TOL32)


def test_default_segment_ids_and_no_mask_match_hf():
    """No token_type_ids -> segment 0 everywhere; no mask -> every token attends to every token (both sides)."""
    hf = hf_model("BertModel", seed=6)
    ours = BertModel(hf_bert.config_from_hf(hf.config.to_dict())).eval()
    load_hf_(ours, hf.state_dict())
    ids = batch(7)[0]
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).last_hidden_state, hf(input_ids=ids).last_hidden_state, **TOL32)


# ---- ours -> HF ------------------------------------------------------------------------------------------------


def test_ours_to_hf_state_dict_loads_strictly_and_gives_the_same_outputs():
    config = BertConfig.tiny(vocab_size=99, d_model=32, n_heads=4, n_layers=2, d_ff=37, type_vocab_size=3)
    torch.manual_seed(8)
    ours = BertForPreTraining(config).eval()
    randomize_hf_(ours, 8, matrices=False)  # biases, norms and the MLM output bias away from 0/1
    sd = hf_bert.state_dict_to_hf(ours.state_dict(), ours.config)
    theirs = transformers.BertForPreTraining(
        transformers.BertConfig(**hf_bert.config_to_hf(config), attn_implementation="eager")
    ).eval()
    assert set(sd) == set(theirs.state_dict())  # including the tied decoder under both of HF's names
    result = theirs.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert theirs.cls.predictions.decoder.weight is theirs.bert.embeddings.word_embeddings.weight
    ids, segments, labels, nsp = batch(9)
    with torch.no_grad():
        mine = ours(ids, token_type_ids=segments, valid=VALID, mlm_labels=labels, nsp_labels=nsp)
        out = theirs(
            input_ids=ids, token_type_ids=segments, attention_mask=VALID.long(), labels=labels, next_sentence_label=nsp
        )
    torch.testing.assert_close(out.prediction_logits[VALID], mine.mlm_logits[VALID], **TOL32)
    torch.testing.assert_close(out.seq_relationship_logits, mine.nsp_logits, **TOL32)
    torch.testing.assert_close(out.loss, mine.loss, **TOL32)
    # and back again: ours -> HF -> ours is the identity on every tensor
    again = BertForPreTraining(config)
    load_hf_(again, theirs.state_dict())
    for name, tensor in ours.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    # detached copies: editing the exported dict leaves the model alone
    sd["bert.embeddings.word_embeddings.weight"].zero_()
    assert ours.bert.embeddings.token.weight.abs().sum() > 0


def test_bert_model_export_has_hf_bert_model_keys():
    ours = BertModel(BertConfig.tiny(vocab_size=99, d_model=32, n_heads=4, d_ff=37, type_vocab_size=3))
    theirs = transformers.BertModel(transformers.BertConfig(**hf_bert.config_to_hf(ours.config)))
    sd = hf_bert.state_dict_to_hf(ours.state_dict(), ours.config)
    assert set(sd) == set(theirs.state_dict())
    theirs.load_state_dict(sd, strict=True)
    torch.testing.assert_close(theirs.pooler.dense.weight, ours.pooler.dense.weight, rtol=0, atol=0)


def test_config_round_trip():
    config = BertConfig.tiny(vocab_size=99, layer_norm_eps=1e-7, dropout=0.05, attention_dropout=0.15, pad_id=3)
    hf_config = transformers.BertConfig(**hf_bert.config_to_hf(config))
    assert hf_bert.config_from_hf(hf_config.to_dict()) == config
    assert hf_config.hidden_act == "gelu" and hf_config.num_hidden_layers == 2 and hf_config.pad_token_id == 3


# ---- key mismatches ----------------------------------------------------------------------------------------------


def test_mismatched_state_dict_lists_missing_and_unexpected_keys(hf_pretraining):
    sd = dict(hf_pretraining.state_dict())
    del sd["bert.encoder.layer.1.output.LayerNorm.bias"]
    sd["bert.encoder.layer.2.output.dense.weight"] = torch.zeros(32, 37)
    ours = BertForPreTraining(hf_bert.config_from_hf(hf_pretraining.config.to_dict()))
    before = ours.bert.encoder.layers[0].ff.w1.weight.detach().clone()
    with pytest.raises(ValueError, match="missing keys") as err:
        load_hf_(ours, sd)
    assert "bert.encoder.layer.1.output.LayerNorm.bias" in str(err.value)
    assert "unexpected keys (1): ['bert.encoder.layer.2.output.dense.weight']" in str(err.value)
    torch.testing.assert_close(ours.bert.encoder.layers[0].ff.w1.weight, before, rtol=0, atol=0)  # nothing copied
    missing, unexpected = load_hf_(ours, sd, strict=False)
    assert missing == ["bert.encoder.layer.1.output.LayerNorm.bias"]
    assert unexpected == ["bert.encoder.layer.2.output.dense.weight"]
    assert not torch.equal(ours.bert.encoder.layers[0].ff.w1.weight, before)  # the rest was copied


def test_a_bert_model_loads_the_encoder_of_a_pretraining_checkpoint(hf_pretraining):
    sd = hf_pretraining.state_dict()
    ours = BertModel(hf_bert.config_from_hf(hf_pretraining.config.to_dict()))
    with pytest.raises(ValueError, match=r"unexpected keys \(\d+\): \['cls\.predictions\.bias'"):
        load_hf_(ours, sd)
    missing, unexpected = load_hf_(ours, sd, strict=False)
    assert missing == [] and all(k.startswith("cls.") for k in unexpected)
    torch.testing.assert_close(
        ours.embeddings.token.weight, hf_pretraining.bert.embeddings.word_embeddings.weight, rtol=0, atol=0
    )


def test_shape_mismatch_and_untied_decoder_are_refused(hf_pretraining):
    sd = dict(hf_pretraining.state_dict())
    small = BertForPreTraining(BertConfig.tiny(vocab_size=98, d_model=32, n_heads=4, d_ff=37, type_vocab_size=3))
    with pytest.raises(ValueError, match=r"bert.embeddings.word_embeddings.weight \(99, 32\) -> .* \(98, 32\)"):
        load_hf_(small, sd)
    sd["cls.predictions.decoder.weight"] = sd["cls.predictions.decoder.weight"] + 1.0
    ours = BertForPreTraining(hf_bert.config_from_hf(hf_pretraining.config.to_dict()))
    with pytest.raises(ValueError, match="not tied to the word embeddings"):
        load_hf_(ours, sd)
    with pytest.raises(TypeError, match="config must be a BertConfig, got Linear"):
        hf_bert.state_dict_from_hf(sd, torch.nn.Linear(2, 2), pretraining=True)


def test_saved_position_ids_buffer_is_checked():
    ours = BertModel(BertConfig.tiny(vocab_size=99, d_model=32, n_heads=4, d_ff=37, type_vocab_size=3))
    sd = hf_bert.state_dict_to_hf(ours.state_dict(), ours.config)
    sd["embeddings.position_ids"] = torch.arange(64)[None]  # what older transformers versions saved
    assert load_hf_(ours, sd) == ([], [])
    sd["embeddings.position_ids"] = torch.arange(64)[None].flip(-1)
    with pytest.raises(ValueError, match="position_ids holds non-default values"):
        load_hf_(ours, sd)


# ---- from_pretrained (local folders) -----------------------------------------------------------------------------


def test_from_pretrained_reads_a_saved_hf_folder(tmp_path):
    hf = hf_model("BertModel", seed=10)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    ours = BertModel.from_pretrained(tmp_path)
    assert not ours.training and ours.config.d_model == 32 and ours.config.n_layers == 2
    ids, segments, _, _ = batch(11)
    with torch.no_grad():
        expected = hf(input_ids=ids, token_type_ids=segments, attention_mask=VALID.long()).last_hidden_state
        got = ours(ids, token_type_ids=segments, valid=VALID).last_hidden_state
    torch.testing.assert_close(got[VALID], expected[VALID], **TOL32)
    assert BertModel.from_pretrained(str(tmp_path), dtype=torch.float64).embeddings.token.weight.dtype == torch.float64


def test_bert_for_pretraining_from_pretrained(tmp_path, hf_pretraining):
    hf_pretraining.save_pretrained(tmp_path, safe_serialization=True)
    ours = BertForPreTraining.from_pretrained(tmp_path)
    assert ours.mlm.decoder.weight is ours.bert.embeddings.token.weight
    ids, segments, labels, nsp = batch(12)
    with torch.no_grad():
        expected = hf_pretraining(input_ids=ids, token_type_ids=segments, attention_mask=VALID.long())
        got = ours(ids, token_type_ids=segments, valid=VALID)
    torch.testing.assert_close(got.mlm_logits[VALID], expected.prediction_logits[VALID], **TOL32)


def write_folder(path, config: dict | None, tensors: dict | None = None):
    path.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    if tensors is not None:
        safetensors_torch.save_file(tensors, str(path / "model.safetensors"))
    return path


def test_from_pretrained_errors_are_clear(tmp_path):
    ours = BertModel(BertConfig.tiny(vocab_size=99, d_model=32, n_heads=4, d_ff=37, type_vocab_size=3))
    config = hf_bert.config_to_hf(ours.config)
    tensors = hf_bert.state_dict_to_hf(ours.state_dict(), ours.config)

    with pytest.raises(FileNotFoundError, match="no such folder"):
        BertModel.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        BertModel.from_pretrained(tmp_path / "file.txt")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        BertModel.from_pretrained(write_folder(tmp_path / "no-config", None, tensors))
    with pytest.raises(FileNotFoundError, match=r"has no model.safetensors \(files present: \['config.json'\]\)"):
        BertModel.from_pretrained(write_folder(tmp_path / "no-weights", config))
    pickled = write_folder(tmp_path / "pickle", config)
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="only pickle weights .* are not loaded"):
        BertModel.from_pretrained(pickled)
    bad_json = write_folder(tmp_path / "bad-json", None, tensors)
    (bad_json / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        BertModel.from_pretrained(bad_json)
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        BertModel.from_pretrained(write_folder(tmp_path / "relu", {**config, "hidden_act": "relu"}, tensors))
    with pytest.raises(ValueError, match="position_embedding_type='relative_key'"):
        BertModel.from_pretrained(
            write_folder(tmp_path / "rel", {**config, "position_embedding_type": "relative_key"}, tensors)
        )
    with pytest.raises(ValueError, match="model_type='roberta'"):
        BertModel.from_pretrained(write_folder(tmp_path / "roberta", {**config, "model_type": "roberta"}, tensors))
    with pytest.raises(ValueError, match=r"lacks the BERT field\(s\) \['hidden_size'\]"):
        BertModel.from_pretrained(
            write_folder(tmp_path / "field", {k: v for k, v in config.items() if k != "hidden_size"}, tensors)
        )
    broken = {k: v for k, v in tensors.items() if k != "pooler.dense.bias"}
    broken["pooler.dense.extra"] = torch.zeros(1)
    expected = r"missing keys \(1\): \['pooler.dense.bias'\]\n.*unexpected keys \(1\): \['pooler.dense.extra'\]"
    with pytest.raises(ValueError, match=expected):
        BertModel.from_pretrained(write_folder(tmp_path / "keys", config, broken))
    deeper = write_folder(tmp_path / "deeper", {**config, "num_hidden_layers": 3}, tensors)
    with pytest.raises(ValueError, match=r"missing keys \(16\): \['encoder.layer.2"):
        BertModel.from_pretrained(deeper)


def test_from_pretrained_reads_sharded_safetensors(tmp_path):
    ours = BertModel(BertConfig.tiny(vocab_size=99, d_model=32, n_heads=4, d_ff=37, type_vocab_size=3))
    tensors = hf_bert.state_dict_to_hf(ours.state_dict(), ours.config)
    folder = write_folder(tmp_path / "sharded", hf_bert.config_to_hf(ours.config))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in shards.items():
        safetensors_torch.save_file({k: tensors[k] for k in keys}, str(folder / shard))
        weight_map.update({k: shard for k in keys})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = BertModel.from_pretrained(folder)
    for name, tensor in ours.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)
