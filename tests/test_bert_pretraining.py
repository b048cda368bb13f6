"""The BERT pre-training recipe (recipes/bert.py): the evaluation counts exactly what it says (only [MASK]
positions, the unigram baseline of the *training* targets, NSP pairs), batches carry consistent MLM/NSP labels, the
gathered MLM loss equals the full forward's, a few steps on a tiny corpus learn something measurable, and a resumed
run is the same run.

The learnability test uses a small synthetic corpus with a rule a model can find in seconds: each document talks
about one of four topics, and every sentence walks that topic's six words in a fixed cyclic order — so a masked
word is its left neighbour's successor, and a NotNext segment usually comes from another topic.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from functools import cache
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from transformer_from_scratch.config import BertConfig
from transformer_from_scratch.datasets.corpus import Corpus, Document, corpus_cache_dir
from transformer_from_scratch.models.bert import BertForPreTraining
from transformer_from_scratch.objectives.nsp import IS_NEXT, NOT_NEXT
from transformer_from_scratch.positional import sinusoidal_table
from transformer_from_scratch.recipes.bert import (
    BertBatch,
    BertData,
    bert_loss,
    bert_model_config,
    bert_train_config,
    evaluate_bert,
    make_bert_batch,
    make_bert_trainer,
    prepare_bert_data,
    train_bert,
    train_wordpiece,
)
from transformer_from_scratch.tokenizers.wordpiece import WordPieceTokenizer
from transformer_from_scratch.training.checkpoint import checkpoint_dir_name, list_checkpoints

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0 … 4, BERT's order
TOPICS = {
    "fruit": ["apple", "banana", "cherry", "grape", "lemon", "mango"],
    "tools": ["hammer", "wrench", "saw", "drill", "chisel", "pliers"],
    "birds": ["robin", "eagle", "sparrow", "heron", "owl", "finch"],
    "space": ["comet", "planet", "orbit", "nebula", "quasar", "rocket"],
}


def topic_corpus(n_docs_per_topic: int, seed: int, name: str) -> Corpus:
    """Documents of 6 sentences; a sentence = 5 consecutive words of its topic's cycle + "."."""
    rng = random.Random(seed)
    documents = []
    for d in range(n_docs_per_topic):
        for topic, words in TOPICS.items():
            sentences = []
            for _ in range(6):
                start = rng.randrange(len(words))
                sentences.append(" ".join(words[(start + i) % len(words)] for i in range(5)) + " .")
            documents.append(Document(f"{name}:{topic}:{d}", tuple(sentences)))
    return Corpus(tuple(documents), name=name)


def topic_tokenizer() -> WordPieceTokenizer:
    words = sorted(w for ws in TOPICS.values() for w in ws)
    return WordPieceTokenizer([*SPECIALS, ".", *words])


@cache
def topic_data() -> BertData:
    return prepare_bert_data(
        topic_corpus(12, seed=1, name="train"),
        topic_corpus(12, seed=2, name="heldout"),
        max_len=32,
        train_passes=4,
        tokenizer=topic_tokenizer(),  # given: nothing is trained or cached
    )


def tiny_model_config(data: BertData, **overrides) -> BertConfig:
    base = bert_model_config(data.tokenizer.vocab_size, data.max_len, d_model=32, n_heads=4, d_ff=64)
    return dataclasses.replace(base, **overrides)


# ------------------------------------------------------------------------------------ the evaluation counts


class FixedLogits(nn.Module):
    """A stand-in model whose MLM/NSP logits are given: lets a test decide exactly what is predicted."""

    def __init__(self, mlm_logits: torch.Tensor, nsp_logits: torch.Tensor):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # evaluate_bert asks the parameters for the device
        self.mlm_logits, self.nsp_logits = mlm_logits, nsp_logits

    def forward(self, input_ids, *, token_type_ids=None, valid=None):
        return SimpleNamespace(mlm_logits=self.mlm_logits, nsp_logits=self.nsp_logits)


def one_hot_logits(predictions: torch.Tensor, vocab_size: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(predictions, vocab_size).float() * 10.0  # (…) -> (…, V)


def test_evaluation_counts_only_mask_positions_and_the_unigram_baseline_on_a_hand_made_batch():
    V, MASK, UNIGRAM, N = 12, 4, 7, -100
    # row 0: [CLS] x [MASK] [MASK] y [SEP]; row 1: [CLS] [MASK] z(unchanged, selected) w [SEP] [PAD]
    input_ids = torch.tensor([[2, 9, MASK, MASK, 8, 3], [2, MASK, 10, 11, 3, 0]])
    labels = torch.tensor([[N, N, 7, 9, N, N], [N, 7, 10, N, N, N]])
    # the model predicts: row 0 -> 7 at the first [MASK] (right), 5 at the second (wrong), and the right token at
    # the unselected positions (must not count); row 1 -> 6 at its [MASK] (wrong), 10 at the unchanged selected
    # position (right: counts for "selected", not for "[MASK]")
    predictions = torch.tensor([[2, 9, 7, 5, 8, 3], [2, 6, 10, 11, 3, 0]])
    batch = BertBatch(
        input_ids=input_ids,
        token_type_ids=torch.zeros_like(input_ids),
        valid=input_ids != 0,
        mlm_labels=labels,
        nsp_labels=torch.tensor([IS_NEXT, NOT_NEXT]),
    )
    nsp_logits = torch.tensor([[3.0, 0.0], [2.0, 0.0]])  # predicts IsNext twice: 1 of 2 right
    model = FixedLogits(one_hot_logits(predictions, V), nsp_logits)
    report = evaluate_bert(model, [batch, batch], mask_id=MASK, unigram_token=UNIGRAM)

    assert report["masked_positions"] == 6  # 3 [MASK] positions per batch, twice; the unchanged one is not one
    assert report["mlm_accuracy"] == pytest.approx(2 / 6)  # only the first [MASK] of row 0 is right
    assert report["unigram_baseline_accuracy"] == pytest.approx(4 / 6)  # labels 7, 9, 7 at [MASK]: two are "7"
    assert report["mlm_accuracy_selected"] == pytest.approx(4 / 8)  # + the unchanged selected position
    assert report["nsp_accuracy"] == pytest.approx(0.5)
    assert report["nsp_pairs"] == 4
    assert report["nsp_accuracy_std"] == pytest.approx(math.sqrt(0.5 * 0.5 / 4))
    selected = labels != N
    ce = torch.nn.functional.cross_entropy(one_hot_logits(predictions, V)[selected], labels[selected])
    assert report["mlm_loss"] == pytest.approx(float(ce), rel=1e-6)
    assert report["loss"] == pytest.approx(report["mlm_loss"] + report["nsp_loss"])


def test_unigram_token_is_the_most_frequent_non_special_training_token():
    tokenizer = topic_tokenizer()
    train = Corpus(
        (
            Document("a", ("apple banana apple .", "apple cherry .", "[MASK] [MASK] [MASK] [MASK] [MASK] banana .")),
            Document("b", ("banana apple .", "cherry cherry banana .")),
        )
    )
    heldout = Corpus((Document("c", ("apple banana .", "cherry apple .")), Document("d", ("banana .", "apple ."))))
    data = prepare_bert_data(train, heldout, max_len=16, train_passes=1, tokenizer=tokenizer)
    # counted by hand, specials excluded: apple 4, banana 4, "." 5, cherry 3 -> "."; [MASK] (5×) is special
    assert tokenizer.id_to_token(data.unigram_token) == "."
    counts = Counter(t for doc in data.train_documents for s in doc for t in s if t not in tokenizer.special_ids)
    assert counts[data.unigram_token] == max(counts.values()) == 5


# ------------------------------------------------------------------------------------- batches and labels


def test_batches_carry_consistent_mlm_and_nsp_labels():
    data = topic_data()
    tokenizer = data.tokenizer
    pairs = data.train_pairs[:64]
    batch = make_bert_batch(pairs, tokenizer, generator=torch.Generator().manual_seed(0))
    B, L = batch.input_ids.shape
    assert (B, L) == (64, max(len(p.input_ids) for p in pairs))
    for name in ("token_type_ids", "valid", "mlm_labels"):
        assert getattr(batch, name).shape == (B, L), name
    assert batch.nsp_labels.tolist() == [p.label for p in pairs]

    original = torch.full((B, L), tokenizer.pad_id)
    for b, p in enumerate(pairs):
        original[b, : len(p.input_ids)] = torch.tensor(p.input_ids)
    selected = batch.mlm_labels != -100
    special = torch.isin(original, torch.tensor(sorted(tokenizer.special_ids)))
    assert not (selected & (special | ~batch.valid)).any(), "a special token or padding was selected"
    assert torch.equal(batch.mlm_labels[selected], original[selected]), "labels must be the original tokens"
    assert torch.equal(batch.input_ids[~selected], original[~selected]), "unselected tokens must stay unchanged"
    assert 0.08 < selected.sum() / (~special & batch.valid).sum() < 0.22  # ~15% of the eligible tokens
    assert torch.equal(batch.valid, original != tokenizer.pad_id)
    # segments: 0 up to and including the first [SEP], 1 after it (0 again at padding)
    for b, p in enumerate(pairs):
        first_sep = p.input_ids.index(tokenizer.sep_id)
        assert batch.token_type_ids[b, : first_sep + 1].eq(0).all()
        assert batch.token_type_ids[b, first_sep + 1 : len(p.input_ids)].eq(1).all()
        assert batch.token_type_ids[b, len(p.input_ids) :].eq(0).all()
        # IsNext: B continues A in the same document; NotNext: B comes from another document
        if p.label == IS_NEXT:
            assert p.b_doc == p.a_doc and p.b_sentences[0] == p.a_sentences[1]
        else:
            assert p.b_doc != p.a_doc
    # the held-out batches hold every held-out pair, in order
    assert torch.equal(
        torch.cat([hb.nsp_labels for hb in data.heldout_batches]), torch.tensor([p.label for p in data.heldout_pairs])
    )


def test_gathered_mlm_loss_equals_the_full_forward_and_a_wrapped_model():
    data = topic_data()
    torch.manual_seed(0)
    model = BertForPreTraining(tiny_model_config(data))
    batch = make_bert_batch(data.train_pairs[:16], data.tokenizer, generator=torch.Generator().manual_seed(3))

    loss, metrics = bert_loss(model, batch)  # gathered: MLM logits at the selected positions only
    grads = torch.autograd.grad(loss, list(model.parameters()))
    full = model(
        batch.input_ids,
        token_type_ids=batch.token_type_ids,
        valid=batch.valid,
        mlm_labels=batch.mlm_labels,
        nsp_labels=batch.nsp_labels,
    )
    full_grads = torch.autograd.grad(full.loss, list(model.parameters()))
    assert_close(loss, full.loss, rtol=1e-5, atol=1e-6)
    assert metrics["mlm_loss"] == pytest.approx(float(full.mlm_loss.detach()), rel=1e-5)
    assert metrics["nsp_loss"] == pytest.approx(float(full.nsp_loss.detach()), rel=1e-5)
    for g, h in zip(grads, full_grads):
        assert_close(g, h, rtol=1e-4, atol=1e-6)

    class Wrapper(nn.Module):  # stands in for DistributedDataParallel: only its forward may be called
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kwargs):
            return self.inner(*args, **kwargs)

    wrapped_loss, wrapped_metrics = bert_loss(Wrapper(model), batch)
    assert_close(wrapped_loss, loss, rtol=1e-5, atol=1e-6)
    assert wrapped_metrics == pytest.approx(metrics, rel=1e-5)
    selected = batch.mlm_labels != -100
    predicted = full.mlm_logits.argmax(-1)[selected]
    assert metrics["mlm_accuracy"] == pytest.approx(float((predicted == batch.mlm_labels[selected]).float().mean()))


# ---------------------------------------------------------------------------------------------- learning


def test_a_few_hundred_steps_on_a_tiny_corpus_learn_both_objectives():
    data = topic_data()
    trainer = make_bert_trainer(
        data,
        tiny_model_config(data),
        bert_train_config(steps=400, warmup_steps=25, eval_every=400, batch_size=16, seed=0),
    )
    before = evaluate_bert(trainer.model, data.heldout_batches, mask_id=4, unigram_token=data.unigram_token)
    history = trainer.fit()
    after = evaluate_bert(trainer.model, data.heldout_batches, mask_id=4, unigram_token=data.unigram_token)
    assert history[-1]["val_mlm_accuracy"] == pytest.approx(after["mlm_accuracy"])
    # MLM: the baseline always answers "." (1 token in 6); knowing the topic alone already doubles that (this short
    # run learns the topics, the cyclic order takes longer). σ of an accuracy near 0.2 over ~230 positions is 0.026.
    assert after["unigram_baseline_accuracy"] == pytest.approx(before["unigram_baseline_accuracy"])
    assert 0.1 < after["unigram_baseline_accuracy"] < 0.25 and after["masked_positions"] > 200
    assert after["mlm_accuracy"] > after["unigram_baseline_accuracy"] + 0.08, after
    assert after["mlm_loss"] < before["mlm_loss"] - 1.0
    # NSP: other documents are usually about another topic; held-out documents were never seen
    assert after["nsp_accuracy"] > 0.5 + 3 * after["nsp_accuracy_std"], after


def test_a_resumed_run_is_the_same_run(tmp_path):
    data = topic_data()
    model_config = tiny_model_config(data)

    def train_config(out_dir, **changes):
        return bert_train_config(
            steps=20, warmup_steps=2, eval_every=10, batch_size=8, seed=3, out_dir=out_dir, **changes
        )

    whole = train_bert(data, model_config, train_config(tmp_path / "whole", checkpoint_every=10))
    assert [c.name for c in list_checkpoints(tmp_path / "whole")] == [checkpoint_dir_name(10), checkpoint_dir_name(20)]
    assert WordPieceTokenizer.load(tmp_path / "whole" / "tokenizer.json").vocab == data.tokenizer.vocab
    resumed = train_bert(
        data, model_config, train_config(tmp_path / "resumed"), resume=tmp_path / "whole" / checkpoint_dir_name(10)
    )
    assert resumed.report.steps == whole.report.steps == 20
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    for (name, p), q in zip(whole.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name
    assert resumed.report.nsp_accuracy == whole.report.nsp_accuracy


# ------------------------------------------------------------------------------------ tokenizer and errors


def test_the_wordpiece_vocabulary_is_cached_by_corpus_text_and_size(tmp_path):
    corpus = topic_corpus(2, seed=5, name="small")
    first = train_wordpiece(corpus, 60, cache_dir=tmp_path)
    files = sorted((corpus_cache_dir(tmp_path) / "wordpiece").glob("*.json"))
    assert len(files) == 1 and files[0].name.endswith("-60.json")
    assert train_wordpiece(corpus, 60, cache_dir=tmp_path).vocab == first.vocab
    train_wordpiece(topic_corpus(2, seed=6, name="other"), 60, cache_dir=tmp_path)  # other text: another file
    train_wordpiece(corpus, 61, cache_dir=tmp_path)  # other size: another file
    assert len(list((corpus_cache_dir(tmp_path) / "wordpiece").glob("*.json"))) == 3
    # a damaged cache file is trained again, not trusted
    files[0].write_text("{not json")
    assert train_wordpiece(corpus, 60, cache_dir=tmp_path).vocab == first.vocab


def test_position_init_starts_the_position_table_as_a_scaled_sinusoid():
    data = topic_data()
    config = tiny_model_config(data)
    table = sinusoidal_table(config.max_len, config.d_model).float()  # (max_len, D)
    scaled = make_bert_trainer(
        data, config, bert_train_config(), position_init=0.3
    ).model.bert.embeddings.position.weight
    assert_close(scaled.detach(), 0.3 * table)
    default = make_bert_trainer(data, config, bert_train_config()).model.bert.embeddings.position.weight
    assert default.detach().std().item() == pytest.approx(config.initializer_range, rel=0.1)  # BERT's N(0, σ²)


def test_bad_arguments_are_named():
    data = topic_data()
    with pytest.raises(ValueError, match="batch_size"):
        bert_train_config(batch_size=0)
    with pytest.raises(ValueError, match="vocab_size=99"):
        make_bert_trainer(data, tiny_model_config(data, vocab_size=99), bert_train_config())
    with pytest.raises(ValueError, match="checkpoint_every needs out_dir"):
        bert_train_config(checkpoint_every=5)
    with pytest.raises(ValueError, match="vocab_size"):
        train_wordpiece(topic_corpus(1, seed=0, name="x"), 0, cache=False)
