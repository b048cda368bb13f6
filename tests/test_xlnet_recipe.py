"""The XLNet pre-training recipe (recipes/xlnet.py): windows are cut as documented, every training batch is a fresh
permutation that never predicts a special token, the held-out report scores exactly what it says (the same
targets for the model and the add-one unigram baseline of the *training* tokens, with the paired standard errors
recomputed here by hand), and a short run of a tiny model beats the baseline by many standard errors.

The corpus is synthetic, with a rule a model finds in seconds: each document talks about one of four topics, and
every sentence walks that topic's six words in a fixed cyclic order — so a token is fixed by either neighbour,
which a permuted LM can read on both sides.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from functools import cache

import numpy as np
import pytest
import torch

from transformer_from_scratch.config import XLNetConfig
from transformer_from_scratch.datasets.corpus import Corpus, Document
from transformer_from_scratch.models.xlnet import XLNetLMHeadModel
from transformer_from_scratch.recipes import xlnet
from transformer_from_scratch.recipes.xlnet import (
    XLNetData,
    XLNetReport,
    evaluate_xlnet,
    heldout_batches,
    make_windows,
    make_xlnet_batch,
    make_xlnet_trainer,
    prepare_xlnet_data,
    train_xlnet,
    xlnet_loss,
    xlnet_model_config,
    xlnet_train_config,
)
from transformer_from_scratch.tokenizers.wordpiece import WordPieceTokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0 … 4, BERT's order
PAD, UNK, SEP = 0, 1, 3
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
def topic_data(k: float = 6, max_len: int = 32, heldout_orders: int = 4) -> XLNetData:
    return prepare_xlnet_data(
        topic_corpus(8, seed=1, name="train"),
        topic_corpus(8, seed=2, name="heldout"),
        max_len=max_len,
        k=k,
        heldout_orders=heldout_orders,
        tokenizer=topic_tokenizer(),  # given: nothing is trained or cached
    )


def tiny_model_config(data: XLNetData, **overrides) -> XLNetConfig:
    base = xlnet_model_config(data.tokenizer.vocab_size, n_layers=2, d_model=32, n_heads=4)
    return dataclasses.replace(base, **overrides)


# ----------------------------------------------------------------------------------------------- windows


def test_windows_join_sentences_with_sep_cut_consecutively_and_pad_the_last():
    documents = [
        [[10, 11, 12], [13, 14]],  # stream: 10 11 12 SEP 13 14 SEP  (7 tokens)
        [[20]],  # stream: 20 SEP
        [[UNK]],  # stream: UNK SEP — nothing to predict when [UNK] is special: left out
    ]
    ids, valid = make_windows(documents, 3, sep_id=SEP, pad_id=PAD, special_ids={PAD, UNK, SEP})
    # the third window of the first document would be a lone [SEP]: nothing to predict, left out as well
    assert ids.tolist() == [[10, 11, 12], [SEP, 13, 14], [20, SEP, PAD]]
    assert valid.tolist() == [[True] * 3, [True] * 3, [True, True, False]]
    # without special_ids only [SEP] is skipped: the [UNK] window stays
    assert make_windows(documents, 3, sep_id=SEP, pad_id=PAD)[0].tolist()[-1] == [UNK, SEP, PAD]
    with pytest.raises(ValueError, match="max_len must be a positive integer, got 0"):
        make_windows(documents, 0, sep_id=SEP, pad_id=PAD)


def test_a_window_holding_only_special_tokens_is_left_out():
    ids, _ = make_windows([[[10, 11, 12]]], 3, sep_id=SEP, pad_id=PAD, special_ids={SEP})
    assert ids.tolist() == [[10, 11, 12]]  # the trailing [SEP] alone would be a window with no target


def test_prepared_data_covers_every_token_once_and_counts_the_training_unigrams():
    data = topic_data()
    tokenizer = data.tokenizer
    for documents, ids, valid in (
        (data.train_documents, data.train_ids, data.train_valid),
        (data.heldout_documents, data.heldout_ids, data.heldout_valid),
    ):
        stream = [t for doc in documents for s in doc for t in (*s, SEP)]
        assert ids[valid].tolist() == stream  # row by row, the windows are the streams again
        assert not bool((ids[~valid] != PAD).any())
    # p(v) = (c_v + 1) / (N + V) over the training tokens that can be targets (no [SEP], no [PAD])
    counts = Counter(t for doc in data.train_documents for s in doc for t in s)
    n, v = sum(counts.values()), tokenizer.vocab_size
    apple = tokenizer.encode("apple")[0]
    assert data.unigram[apple].item() == pytest.approx((counts[apple] + 1) / (n + v), rel=1e-12)
    assert data.unigram[SEP].item() == pytest.approx(1 / (n + v), rel=1e-12)  # never a target: never counted
    assert data.unigram.sum().item() == pytest.approx(1.0, rel=1e-12)


def test_bad_options_are_named():
    train, heldout = topic_corpus(1, 1, "a"), topic_corpus(1, 2, "b")
    for kwargs, message in (
        (dict(k=0.5), "k must be a number ≥ 1"),
        (dict(k=True), "k must be a number ≥ 1"),
        (dict(max_len=0), "max_len must be a positive integer"),
        (dict(heldout_orders=0), "heldout_orders must be a positive integer"),
        (dict(heldout_seed=-1), "heldout_seed must be an integer ≥ 0"),
    ):
        with pytest.raises(ValueError, match=message):
            prepare_xlnet_data(train, heldout, tokenizer=topic_tokenizer(), **kwargs)
    with pytest.raises(TypeError, match="tokenizer must be a Tokenizer"):
        prepare_xlnet_data(train, heldout, tokenizer="wordpiece")
    data = topic_data()
    with pytest.raises(TypeError, match=r"data must be a XLNetData \(from prepare_xlnet_data\)"):
        make_xlnet_trainer(object(), tiny_model_config(data), xlnet_train_config(steps=2, warmup_steps=0))
    with pytest.raises(ValueError, match="model_config.vocab_size=99 does not fit the data's vocabulary of 30"):
        make_xlnet_trainer(data, tiny_model_config(data, vocab_size=99), xlnet_train_config(steps=2, warmup_steps=0))


# ----------------------------------------------------------------------------------------------- batches


def test_each_training_batch_is_a_fresh_order_whose_targets_are_never_special():
    data = topic_data()
    index = torch.arange(16)
    generator = torch.Generator().manual_seed(0)
    first, second = make_xlnet_batch(data, index, generator), make_xlnet_batch(data, index, generator)
    assert torch.equal(first.input_ids, second.input_ids)  # the same windows …
    assert not torch.equal(first.order, second.order)  # … under another factorization order
    assert not torch.equal(first.targets, second.targets)
    for batch in (first, second):
        assert not bool((batch.targets & data.special_mask(batch.input_ids)).any())  # no [SEP] or [PAD] target
        filled = batch.labels != -100
        assert bool(filled.any())
        ids_at_targets = batch.input_ids[batch.targets]
        assert sorted(ids_at_targets.tolist()) == sorted(batch.labels[filled].tolist())
    # partial prediction: 1/K of the ordinary tokens, rounded stochastically (floor or ceil of n/K per window)
    ordinary = (data.train_valid[index] & ~data.special_mask(data.train_ids[index])).sum(dim=1)
    per_row = first.targets.sum(dim=1)
    assert bool(((per_row >= ordinary // 6) & (per_row <= -(-ordinary // 6))).all())


def test_k_sets_the_predicted_fraction():
    ordinary = None
    fractions = {}
    for k in (1, 3):
        data = topic_data(k=k)
        batch = make_xlnet_batch(data, torch.arange(data.train_ids.shape[0]), torch.Generator().manual_seed(1))
        ordinary = int((data.train_valid & ~data.special_mask(data.train_ids)).sum())
        fractions[k] = int(batch.targets.sum()) / ordinary
    assert fractions[1] == 1.0  # K = 1 predicts every ordinary token
    # K = 3: E = 1/3 exactly; each window adds at most a Bernoulli draw, so the sd is below √(W/4) / ordinary
    windows = topic_data(k=3).train_ids.shape[0]
    assert abs(fractions[3] - 1 / 3) < 5 * math.sqrt(windows / 4) / ordinary


def test_the_loss_is_the_mean_cross_entropy_of_the_targets():
    data = topic_data()
    torch.manual_seed(0)
    model = XLNetLMHeadModel(tiny_model_config(data)).eval()
    batch = make_xlnet_batch(data, torch.arange(8), torch.Generator().manual_seed(3))
    loss, metrics = xlnet_loss(model, batch)
    logits = model(**batch.model_inputs()).logits  # (B, P, V)
    filled = batch.labels != -100
    expected = torch.nn.functional.cross_entropy(logits[filled], batch.labels[filled])
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    right = (logits.argmax(-1) == batch.labels)[filled].float().mean()
    assert metrics["plm_accuracy"] == pytest.approx(float(right))


# -------------------------------------------------------------------------------------- the held-out report


def test_the_paired_margin_and_its_standard_errors_follow_their_formulas():
    rng = np.random.default_rng(0)
    model_nll, baseline_nll = rng.gamma(2.0, 1.0, 50), rng.gamma(3.0, 1.0, 50)
    windows = rng.integers(0, 7, 50)
    got = xlnet._paired_margin(torch.tensor(model_nll), torch.tensor(baseline_nll), torch.tensor(windows))
    d = baseline_nll - model_nll
    assert got["margin"] == pytest.approx(d.mean(), rel=1e-12)
    assert got["margin_std_error"] == pytest.approx(d.std(ddof=1) / math.sqrt(50), rel=1e-12)
    assert got["margin_sigma"] == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(50)), rel=1e-12)
    # cluster-robust: windows are the units; W / (W - 1) · Σ_w (Σ_{i∈w} (d_i - m))² / M²
    clusters = np.unique(windows)
    w = len(clusters)
    between = sum(((d[windows == c] - d.mean()).sum()) ** 2 for c in clusters)
    assert got["margin_std_error_windows"] == pytest.approx(math.sqrt(w / (w - 1) * between) / 50, rel=1e-12)
    with pytest.raises(ValueError, match="a standard error needs at least 2"):
        xlnet._paired_margin(torch.ones(1), torch.ones(1), torch.zeros(1, dtype=torch.long))


def test_the_report_scores_the_same_targets_for_the_model_and_the_baseline():
    """Recompute every number of evaluate_xlnet by hand from the held-out batches."""
    data = topic_data()
    torch.manual_seed(0)
    model = XLNetLMHeadModel(tiny_model_config(data))
    model.train()
    report = evaluate_xlnet(model, data)
    assert model.training  # restored

    model_nll, baseline_nll, right, windows = [], [], [], []
    ordinary_per_order = int((data.heldout_valid & ~data.special_mask(data.heldout_ids)).sum())
    for index, batch in heldout_batches(data):
        with torch.no_grad():
            logits = model.eval()(**batch.model_inputs()).logits  # (B, P, V)
        filled = batch.labels != -100
        labels = batch.labels[filled]
        assert not bool(torch.isin(labels, torch.tensor([PAD, UNK, SEP])).any())
        model_nll += torch.nn.functional.cross_entropy(logits[filled].double(), labels, reduction="none").tolist()
        baseline_nll += (-torch.log(data.unigram[labels])).tolist()
        right += (logits.argmax(-1)[filled] == labels).tolist()
        windows += index[:, None].expand(filled.shape)[filled].tolist()
    m = len(model_nll)
    assert report["predicted_tokens"] == m
    assert report["heldout_orders"] == 4 and report["heldout_windows"] == data.heldout_ids.shape[0]
    # 4 orders, each predicting about 1/6 of the ordinary held-out tokens (each window rounds n/6 up or down)
    windows_count = data.heldout_ids.shape[0]
    assert abs(m - 4 * ordinary_per_order / 6) <= 4 * windows_count
    assert report["plm_loss"] == pytest.approx(np.mean(model_nll), rel=1e-5)
    assert report["unigram_loss"] == pytest.approx(np.mean(baseline_nll), rel=1e-12)
    d = np.array(baseline_nll) - np.array(model_nll)
    assert report["margin"] == pytest.approx(d.mean(), rel=1e-4, abs=1e-6)
    assert report["margin_std_error"] == pytest.approx(d.std(ddof=1) / math.sqrt(m), rel=1e-4)
    assert report["plm_accuracy"] == pytest.approx(np.mean(right))
    most_frequent = int(data.unigram.argmax())
    expected_unigram_accuracy = np.mean([t == most_frequent for t in data.heldout_ids[data.heldout_valid].tolist()])
    assert 0 < report["unigram_accuracy"] and abs(report["unigram_accuracy"] - expected_unigram_accuracy) < 0.1
    # the held-out orders are fixed: a second evaluation scores the very same targets
    assert evaluate_xlnet(model, data) == report
    # an untrained model is no better than the unigram baseline
    assert report["margin"] < 0


def test_a_short_run_of_a_tiny_model_beats_the_unigram_baseline_by_many_standard_errors():
    data = topic_data()
    train_config = xlnet_train_config(steps=200, batch_size=16, max_lr=3e-3, warmup_steps=20, eval_every=100)
    run = train_xlnet(data, tiny_model_config(data), train_config)
    r = run.report
    assert isinstance(r, XLNetReport) and r.steps == 200 and r.k == 6
    assert r.predicted_tokens > 700  # 4 orders of 1/6 of the ~1150 ordinary held-out tokens
    assert math.isfinite(r.plm_loss) and math.isfinite(r.unigram_loss)
    # the 24 topic words and "." are about equally frequent: the baseline is close to log 25 = 3.22 nats
    assert 2.9 < r.unigram_loss < 3.4
    assert r.plm_loss < r.unigram_loss - 1.0  # a nat per token and more
    assert r.margin == pytest.approx(r.unigram_loss - r.plm_loss, rel=1e-9)
    # measured 1.51 nats: 117 per-token standard errors, 109 window-clustered ones
    assert r.margin_sigma > 30 and r.margin / r.margin_std_error_windows > 30
    assert r.plm_accuracy > r.unigram_accuracy + 0.05  # measured 0.291 vs 0.174 (binomial sd ≈ 0.017 each)
    assert [h["step"] for h in run.history if "val_loss" in h] == [100, 200]
    assert run.history[-1]["val_loss"] == pytest.approx(r.plm_loss)  # the evaluation at the end is the report's
    assert run.history[-1]["val_unigram_loss"] == pytest.approx(r.unigram_loss)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert r.n_parameters == sum(p.numel() for p in run.model.parameters())
