"""Fine-tuning (training/finetune.py): which weights each freeze mode trains, the learning rate of every depth,
the best evaluation restored, cached features equal to the frozen model's own computation — and a head trained on
them equal, step for step, to the frozen-encoder fine-tune — and the article's snippet made real, on a local
checkpoint folder.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import randomize_
from safetensors import torch as safetensors_torch

from transformer_from_scratch import masks
from transformer_from_scratch.config import BertConfig
from transformer_from_scratch.interop import hf_bert
from transformer_from_scratch.models import BertForQuestionAnswering, BertForSequenceClassification, BertModel
from transformer_from_scratch.tokenizers import WordPieceTokenizer
from transformer_from_scratch.training import TrainConfig, Trainer
from transformer_from_scratch.training.finetune import (
    extract_features,
    finetune_param_groups,
    fit_classifier,
    fit_head,
    fit_restoring_best,
    freeze,
    predict_classes,
)

TOL64 = dict(rtol=1e-10, atol=1e-12)


def classifier(*, pooling="cls", dropout=0.1, seed=0, n_labels=3, dtype=torch.float32):
    torch.manual_seed(seed)
    config = dataclasses.replace(BertConfig.tiny(), dropout=dropout, attention_dropout=dropout)
    model = BertForSequenceClassification(config, n_labels, pooling=pooling, classifier_dropout=dropout)
    return randomize_(model, seed).to(dtype)


def trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def names_under(model, prefix):
    return {name for name, _ in model.named_parameters() if name.startswith(prefix)}


# ---- freeze ----------------------------------------------------------------------------------------------------


def test_freeze_modes_train_exactly_the_documented_parameters():
    model = classifier()
    everything = {name for name, _ in model.named_parameters()}
    n_layers = len(model.bert.encoder.layers)
    encoder = names_under(model, "bert.")
    head = everything - encoder
    assert head == names_under(model, "head.") and head

    summary = freeze(model, "none")
    assert trainable_names(model) == everything and summary.frozen == 0
    summary = freeze(model, "embeddings")
    assert trainable_names(model) == everything - names_under(model, "bert.embeddings.")
    assert summary.frozen == sum(p.numel() for p in model.bert.embeddings.parameters())
    summary = freeze(model, "encoder")
    assert trainable_names(model) == head
    assert summary.trainable == sum(p.numel() for p in model.head.parameters())
    top = f"bert.encoder.layers.{n_layers - 1}."
    freeze(model, "encoder", unfreeze_top=1)
    assert trainable_names(model) == head | names_under(model, top) | names_under(model, "bert.pooler.")
    freeze(model, "encoder", unfreeze_top=n_layers)
    assert trainable_names(model) == everything - names_under(model, "bert.embeddings.")


def test_freeze_calls_do_not_accumulate_and_leave_the_mode_alone():
    model = classifier().train()
    freeze(model, "encoder")
    freeze(model, "embeddings")  # starts again from "everything trains"
    assert names_under(model, "bert.encoder.") <= trainable_names(model)
    assert model.training and model.bert.training


def test_a_bare_encoder_is_its_own_encoder():
    torch.manual_seed(0)
    bert = BertModel(BertConfig.tiny())
    assert freeze(bert, "encoder").trainable == 0
    assert freeze(bert, "none").frozen == 0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: freeze(m, "decoder"), "mode must be one of"),
        (lambda m: freeze(m, "encoder", unfreeze_top=3), r"unfreeze_top must be an integer in \[0, 2\]"),
        (lambda m: freeze(m, "encoder", unfreeze_top=-1), "unfreeze_top"),
        (lambda m: freeze(m, "none", unfreeze_top=1), "only applies to mode='encoder'"),
    ],
)
def test_freeze_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call(classifier())


def test_a_model_without_an_encoder_is_refused():
    with pytest.raises(TypeError, match="cannot find the encoder"):
        freeze(torch.nn.Linear(3, 2), "none")


# ---- per-depth learning rates --------------------------------------------------------------------------------


def test_param_groups_follow_the_layer_decay_formula_and_cover_each_trainable_parameter_once():
    model = classifier()
    n_layers = len(model.bert.encoder.layers)
    lr, xi = 1e-3, 0.5
    groups = finetune_param_groups(model, lr=lr, head_lr=3e-3, weight_decay=0.1, layer_decay=xi)
    expected = {"embeddings": lr * xi ** (n_layers + 1), "pooler": lr, "head": 3e-3}
    expected |= {f"block {i}": lr * xi ** (n_layers - i) for i in range(n_layers)}
    assert {g["name"] for g in groups} == set(expected)
    for g in groups:
        assert g["lr"] == pytest.approx(expected[g["name"]], rel=1e-12)
        assert g["lr_scale"] == pytest.approx(g["lr"] / lr, rel=1e-12)
        assert g["weight_decay"] in (0.0, 0.1)
        assert all((p.dim() > 1) == (g["weight_decay"] > 0) for p in g["params"])  # no decay on biases and gains
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())  # each exactly once


def test_frozen_parameters_are_left_out_and_everything_frozen_is_an_error():
    model = classifier()
    freeze(model, "encoder")
    groups = finetune_param_groups(model, lr=1e-3, layer_decay=0.8)
    assert {g["name"] for g in groups} == {"head"}
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for p in model.head.parameters())
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        finetune_param_groups(model, lr=1e-3)


@pytest.mark.parametrize(
    "kwargs, match", [({"lr": 0.0}, "lr must be"), ({"lr": 1e-3, "layer_decay": 1.5}, "layer_decay")]
)
def test_param_group_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        finetune_param_groups(classifier(), **kwargs)


def test_the_trainer_keeps_the_ratios_of_the_groups_through_the_schedule():
    model = classifier(dropout=0.0)
    groups = finetune_param_groups(model, lr=1e-3, layer_decay=0.5)
    config = TrainConfig(steps=4, batch_size=2, max_lr=1e-3, warmup_steps=2, progress=False)
    ids = torch.randint(1, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    seen = []

    def loss_fn(m, batch):
        return m(ids, labels=torch.tensor([0, 1])).loss

    trainer = Trainer(model, config, loss_fn=loss_fn, train_batches=lambda g: None, param_groups=groups)
    for step in range(1, config.steps + 1):
        trainer.fit(until=step)
        seen.append([(g["name"], g["lr"]) for g in trainer.optimizer.param_groups])
    heads = [dict(step)["head"] for step in seen]
    assert len(set(heads)) == 3 and heads[0] > 0  # warm-up to 1e-3, then cosine decay to 0 at the last step
    for step, head in zip(seen, heads):
        for name, rate in step:
            want = next(g["lr_scale"] for g in groups if g["name"] == name)
            assert rate == pytest.approx(head * want, rel=1e-12)


# ---- restoring the best evaluation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, values, best_eval", [("min", [3.0, 1.0, 2.0, 5.0], 1), ("max", [3.0, 1.0, 4.0, 2.0], 2)]
)
def test_fit_restoring_best_ends_with_the_weights_of_the_best_evaluation(mode, values, best_eval):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    config = TrainConfig(
        steps=8,
        batch_size=16,
        max_lr=0.1,
        eval_every=2,
        early_stopping_metric="score",
        early_stopping_mode=mode,
        progress=False,
    )
    snapshots, scripted = [], iter(values)

    def evaluate(m):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"score": next(scripted)}

    trainer = Trainer(
        model, config, loss_fn=lambda m, b: F.mse_loss(m(x), y), train_batches=lambda g: None, evaluate=evaluate
    )
    history = fit_restoring_best(trainer)
    assert len(snapshots) == 4
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[best_eval][key])
        assert not torch.equal(value, snapshots[-1][key])  # training went on after the best evaluation
    assert history[-1]["restored_step"] == 2 * (best_eval + 1)
    assert trainer.evaluate is evaluate  # the watcher is removed again


def test_fit_restoring_best_needs_evaluations():
    model = torch.nn.Linear(2, 1)
    trainer = Trainer(
        model, TrainConfig(steps=1, progress=False), loss_fn=lambda m, b: m.weight.sum(), train_batches=lambda g: None
    )
    with pytest.raises(ValueError, match="needs evaluations"):
        fit_restoring_best(trainer)


# ---- feature extraction ---------------------------------------------------------------------------------------


class Encoded:
    """The three tensors an EncodedBatch carries that finetune reads (ids, segment ids, valid)."""

    def __init__(self, ids, segment_ids, valid):
        self.ids, self.segment_ids, self.valid = ids, segment_ids, valid

    def __len__(self):
        return self.ids.shape[0]


def random_encodings(n, length, seed, vocab=100):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, length + 1, (n,), generator=g).tolist()
    valid = masks.padding_mask_from_lengths(lengths, max_len=length)  # (n, L)
    ids = torch.randint(1, vocab, (n, length), generator=g) * valid  # padding id 0
    segments = (torch.arange(length) >= length // 2).long().expand(n, length) * valid
    return Encoded(ids, segments, valid)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_the_head_on_cached_features_gives_the_models_own_logits(pooling):
    model = classifier(pooling=pooling, dtype=torch.float64).train()  # extract_features switches to eval itself
    enc = random_encodings(10, 9, seed=1)
    features = extract_features(
        model,
        [
            Encoded(enc.ids[:4], enc.segment_ids[:4], enc.valid[:4]),
            Encoded(enc.ids[4:], enc.segment_ids[4:], enc.valid[4:]),
        ],
    )
    assert model.training  # the mode is restored
    model.eval()
    with torch.no_grad():
        want = model(enc.ids, token_type_ids=enc.segment_ids, valid=enc.valid).logits
        got = model.head(features)
    torch.testing.assert_close(got, want, **TOL64)


def test_mean_features_ignore_what_stands_in_the_padding():
    model = classifier(pooling="mean", dtype=torch.float64)
    enc = random_encodings(6, 8, seed=2)
    other = Encoded(torch.where(enc.valid, enc.ids, 7), enc.segment_ids, enc.valid)
    torch.testing.assert_close(extract_features(model, enc), extract_features(model, other), **TOL64)


def test_feature_extraction_errors():
    bert_mean = classifier(pooling="mean")
    with pytest.raises(ValueError, match="needs the encoder's pooler"):
        extract_features(bert_mean, random_encodings(2, 4, 0), pooling="cls")
    with pytest.raises(TypeError, match="must be an EncodedBatch"):
        extract_features(bert_mean, [torch.zeros(2, 4)])
    with pytest.raises(ValueError, match="batches is empty"):
        extract_features(bert_mean, [])


def test_fitting_the_head_on_cached_features_is_the_frozen_encoder_fine_tune_step_for_step():
    """With dropout 0, training only the head on features computed once is the same computation as training the
    whole model with its encoder frozen on the same examples: same weights after 6 AdamW steps (float64)."""
    frozen = classifier(dropout=0.0, dtype=torch.float64, seed=3)
    head_only = classifier(dropout=0.0, dtype=torch.float64, seed=3).head
    enc = random_encodings(24, 7, seed=4)
    labels = torch.randint(0, 3, (24,), generator=torch.Generator().manual_seed(5))
    config = TrainConfig(steps=6, batch_size=8, max_lr=1e-2, warmup_steps=2, progress=False, seed=11)

    fit_head(extract_features(frozen, enc), labels, head_only, config)

    freeze(frozen, "encoder")

    def train_batches(generator):
        index = torch.randint(0, 24, (config.batch_size,), generator=generator)  # the draw fit_head makes
        return Encoded(enc.ids[index], enc.segment_ids[index], enc.valid[index]), labels[index]

    def loss_fn(m, batch):
        x, y = batch
        return m(x.ids, token_type_ids=x.segment_ids, valid=x.valid, labels=y).loss

    Trainer(frozen, config, loss_fn=loss_fn, train_batches=train_batches).fit()
    moved = False
    for (name, want), got in zip(frozen.head.state_dict().items(), head_only.state_dict().values()):
        torch.testing.assert_close(got, want, **TOL64, msg=name)
        moved |= not torch.equal(want, classifier(dropout=0.0, dtype=torch.float64, seed=3).head.state_dict()[name])
    assert moved


def test_fit_head_checks_its_inputs():
    head = torch.nn.Linear(4, 2)
    config = TrainConfig(steps=1, batch_size=2, progress=False)
    with pytest.raises(ValueError, match=r"features must be a float tensor of shape \(N, D\)"):
        fit_head(torch.zeros(5), [0, 1], head, config)
    with pytest.raises(ValueError, match=r"labels must be 3 integer class ids"):
        fit_head(torch.zeros(3, 4), [0, 1], head, config)
    with pytest.raises(TypeError, match="integer class ids"):
        fit_head(torch.zeros(2, 4), ["pos", "neg"], head, config)


# ---- the article's snippet, made real ---------------------------------------------------------------------------

WORDS = {0: ["good", "great", "fine", "lovely", "superb"], 1: ["bad", "awful", "poor", "dull", "bland"]}
NOUNS = ["food", "room", "plot", "staff", "film", "music"]


def reviews(n, seed):
    """'the <noun> was <adjective> .' with the adjective's polarity as the label: learnable from one word."""
    g = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(torch.randint(0, 2, (1,), generator=g))
        noun = NOUNS[int(torch.randint(0, len(NOUNS), (1,), generator=g))]
        adjective = WORDS[label][int(torch.randint(0, 5, (1,), generator=g))]
        texts.append(f"the {noun} was {adjective} .")
        labels.append(label)
    return texts, labels


def local_checkpoint(folder):
    """A Hugging Face-format BERT folder written here (config.json, model.safetensors, vocab.txt), as a downloaded
    checkpoint would be — random weights, a vocabulary of the review words."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "was", "."] + NOUNS + WORDS[0] + WORDS[1]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), d_model=32, n_heads=4, n_layers=2, d_ff=64, max_len=32, pad_id=0)
    ours = BertModel(config)
    (folder / "config.json").write_text(json.dumps({**hf_bert.config_to_hf(config), "architectures": ["BertModel"]}))
    state = hf_bert.state_dict_to_hf(ours.state_dict(), config)
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


def test_the_articles_snippet_runs_with_our_classes_and_learns(tmp_path):
    path = local_checkpoint(tmp_path / "checkpoint")
    train_texts, train_labels = reviews(96, seed=0)
    test_texts, test_labels = reviews(200, seed=1)

    # The article's three lines, in the form that runs in PyTorch. The encoder is random (no pre-training), so it
    # needs about 40 steps to leave the 0.69-nats plateau: 12 epochs of 6 steps.
    with pytest.warns(UserWarning, match="head"):
        model = BertForSequenceClassification.from_pretrained(path, n_labels=2)
    tokenizer = WordPieceTokenizer.from_vocab_file(path / "vocab.txt")
    encodings = tokenizer.encode_batch(train_texts, truncation=True, max_len=16, add_special_tokens=True)
    history = fit_classifier(model, encodings, train_labels, epochs=12, batch_size=16, lr=3e-3)
    predictions = predict_classes(
        model, tokenizer.encode_batch(test_texts, truncation=True, max_len=16, add_special_tokens=True)
    )

    assert len(history) == 12 * math.ceil(96 / 16)
    accuracy = (predictions == torch.tensor(test_labels)).float().mean().item()
    assert accuracy >= 0.95, accuracy  # one word decides; chance is 0.5 (σ = 0.035 on 200 reviews)
    assert not model.training


def test_fit_classifier_trains_under_bfloat16_autocast_step_by_step(tmp_path):
    """autocast="bf16" enters autocast at every step: the weights each step uses are the updated ones, so the
    model learns the one-word task as in float32 (wrapping the whole call in one autocast region would not)."""
    path = local_checkpoint(tmp_path / "checkpoint")
    tokenizer = WordPieceTokenizer.from_vocab_file(path / "vocab.txt")
    (train_texts, train_labels), (test_texts, test_labels) = reviews(96, seed=0), reviews(200, seed=1)
    with pytest.warns(UserWarning, match="head"):
        model = BertForSequenceClassification.from_pretrained(path, n_labels=2)
    encodings = tokenizer.encode_batch(train_texts, truncation=True, max_len=16, add_special_tokens=True)
    fit_classifier(model, encodings, train_labels, epochs=12, batch_size=16, lr=3e-3, autocast="bf16")
    test = tokenizer.encode_batch(test_texts, truncation=True, max_len=16, add_special_tokens=True)
    assert next(model.parameters()).dtype == torch.float32  # the weights stay float32; only the products are bf16
    accuracy = (predict_classes(model, test) == torch.tensor(test_labels)).float().mean().item()
    assert accuracy >= 0.95, accuracy


def test_fit_classifier_with_validation_restores_the_best_epoch():
    model = classifier(n_labels=2, dropout=0.0)
    enc = random_encodings(32, 6, seed=7)
    labels = (enc.ids[:, 1] % 2).tolist()  # the parity of the first real token after [CLS]-position 0
    val = random_encodings(16, 6, seed=8)
    history = fit_classifier(
        model, enc, labels, epochs=3, batch_size=8, lr=1e-3, validation=(val, (val.ids[:, 1] % 2).tolist())
    )
    evaluations = [r for r in history if "val_loss" in r]
    assert len(evaluations) == 3
    best = min(evaluations, key=lambda r: r["val_loss"])
    assert history[-1]["restored_step"] == best["step"]
    logits = model(val.ids, token_type_ids=val.segment_ids, valid=val.valid).logits
    assert F.cross_entropy(logits, val.ids[:, 1] % 2).item() == pytest.approx(best["val_loss"], rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"epochs": 0}, ValueError, "epochs must be an integer"),
        ({"batch_size": 99}, ValueError, "exceeds the 8 training examples"),
        ({"validation": [1, 2]}, TypeError, "validation must be a pair"),
        ({"freeze": "all"}, ValueError, "mode must be one of"),
    ],
)
def test_fit_classifier_errors(kwargs, error, match):
    enc = random_encodings(8, 5, seed=0)
    with pytest.raises(error, match=match):
        fit_classifier(classifier(n_labels=2), enc, [0, 1] * 4, **{"batch_size": 4, **kwargs})


def test_predict_classes_refuses_raw_texts():
    with pytest.raises(TypeError, match="must be an EncodedBatch"):
        predict_classes(BertForQuestionAnswering(BertConfig.tiny()), ["a text"])
