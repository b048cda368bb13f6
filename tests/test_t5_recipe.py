"""The T5 recipes (recipes/t5.py, recipes/text_to_text.py): T5's vocabulary layout on a lossless BPE, packed
windows, span-corrupted batches that give the windows back exactly, the held-out report recomputed by hand, task
prefixes, the metrics wired to ``metrics.py`` (and through it to sacreBLEU), the baselines, greedy decoding cut at
``</s>``, short runs that learn, and a resumed pre-training run that is the same run.

The pre-training corpus is synthetic, with a rule a model finds in seconds: every document walks one topic's six
words in a fixed cyclic order, so a dropped span is fixed by its neighbours.
"""

from __future__ import annotations

import dataclasses
import math
import random
from functools import cache
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from transformer_from_scratch import metrics
from transformer_from_scratch.datasets import reports, stories, translation
from transformer_from_scratch.models.t5 import T5ForConditionalGeneration
from transformer_from_scratch.objectives.span_corruption import noise_counts, reconstruct, t5_sentinel_ids
from transformer_from_scratch.recipes import t5
from transformer_from_scratch.recipes import text_to_text as tt
from transformer_from_scratch.recipes.runs import RunFolderError
from transformer_from_scratch.tokenizers.bpe import BPETokenizer
from transformer_from_scratch.tokenizers.wordpiece import WordPieceTokenizer
from transformer_from_scratch.training import list_checkpoints
from transformer_from_scratch.training.checkpoint import checkpoint_dir_name

TOPICS = {
    "fruit": ["apple", "banana", "cherry", "grape", "lemon", "mango"],
    "tools": ["hammer", "wrench", "saw", "drill", "chisel", "pliers"],
    "birds": ["robin", "eagle", "sparrow", "heron", "owl", "finch"],
}
N_SENTINELS = 8


def topic_documents(n_per_topic: int, seed: int) -> list[str]:
    """Documents of 24 words: a topic's cycle from a random start, in sentences of 6 words."""
    rng = random.Random(seed)
    documents = []
    for _ in range(n_per_topic):
        for words in TOPICS.values():
            start = rng.randrange(6)
            cycle = [words[(start + i) % 6] for i in range(24)]
            documents.append(" ".join(" ".join(cycle[i : i + 6]) + "." for i in range(0, 24, 6)))
    return documents


@cache
def topic_tokenizer() -> BPETokenizer:
    return t5.train_t5_tokenizer(topic_documents(10, seed=0), 400, n_sentinels=N_SENTINELS)  # whole words


@cache
def topic_data(max_len: int = 32) -> t5.T5Data:
    return t5.prepare_t5_data(
        topic_documents(20, seed=1), topic_documents(10, seed=2), max_len=max_len, tokenizer=topic_tokenizer()
    )


def tiny_config(vocab_size: int, **overrides):
    return t5.t5_model_config(vocab_size, d_model=32, d_kv=8, d_ff=64, n_heads=4, **overrides)


# --------------------------------------------------------------------------------------------- tokenizer


def test_the_tokenizer_has_t5_ids_and_round_trips_any_text():
    tokenizer = topic_tokenizer()
    v = tokenizer.vocab_size
    assert 300 < v <= 400  # the merges run out before 400 on this small text
    assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2)
    assert tokenizer.vocab[:3] == ["<pad>", "</s>", "<unk>"]
    assert t5.t5_sentinels(tokenizer) == t5_sentinel_ids(v, N_SENTINELS) == list(range(v - 1, v - 1 - N_SENTINELS, -1))
    assert tokenizer.vocab[v - 1] == "<extra_id_0>" and tokenizer.vocab[v - N_SENTINELS] == "<extra_id_7>"
    assert tokenizer.special_ids == {0, 1, 2, *range(v - N_SENTINELS, v)}
    for text in ("quatre-vingt-dix-sept", "Sandra went to the hallway. Où?", "12,400 fans — 3-1 ✓", "apple banana."):
        assert tokenizer.decode(tokenizer.encode(text)) == text  # byte-level: lossless, accents and all
    # a sentinel written in the text is the sentinel token, as in T5's vocabulary
    assert tokenizer.encode("owl<extra_id_1>") == [*tokenizer.encode("owl"), v - 2]


def test_a_text_is_read_after_a_space_so_a_first_word_is_the_word_inside():
    tokenizer = topic_tokenizer()
    owl = t5.encode_text(tokenizer, "owl")
    assert len(owl) == 1 and tokenizer.vocab[owl[0]] == "Ġowl"  # " owl", as inside a sentence
    assert t5.encode_text(tokenizer, "owl heron") == tokenizer.encode(" owl heron")
    assert t5.encode_text(tokenizer, "owl heron")[1:] == t5.encode_text(tokenizer, "heron")
    for text in ("owl", " two spaces", "", "Où est-il ?"):
        assert t5.decode_text(tokenizer, t5.encode_text(tokenizer, text)) == text
    assert t5.decode_text(tokenizer, [*owl, tokenizer.vocab_size - 1, 1, 0]) == "owl"  # specials dropped


def test_renumbering_keeps_the_trained_tokens():
    """The same merges as BPETokenizer.train's own vocabulary: every text is cut into the same token strings."""
    texts = topic_documents(10, seed=0)
    specials = t5.t5_special_tokens(N_SENTINELS)
    plain = BPETokenizer.train([" " + t for t in texts], vocab_size=400, special_tokens=specials)
    ours = topic_tokenizer()
    assert sorted(plain.vocab) == sorted(ours.vocab) and plain.vocab != ours.vocab
    for text in (texts[3], "a mango, a heron and a drill"):
        assert ours.tokenize(text) == plain.tokenize(text)


def test_a_tokenizer_without_t5_specials_is_refused():
    bert = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    with pytest.raises(ValueError, match="eos"):
        t5.t5_sentinels(bert)
    with pytest.raises(TypeError, match="tokenizer must be a Tokenizer"):
        t5.t5_sentinels("vocab.txt")
    with pytest.raises(ValueError, match="n_sentinels"):
        t5.t5_special_tokens(0)


# ---------------------------------------------------------------------------------- windows and batches


def test_windows_pack_the_documents_each_closed_by_eos():
    documents = [[5, 6, 7], [8], [9, 10, 11, 12, 13]]
    windows = t5.pack_windows(documents, 4, eos_id=1)
    assert windows == [[5, 6, 7, 1], [8, 1, 9, 10], [11, 12, 13, 1]]
    # a last window of one token cannot be corrupted (one kept, one dropped): it is dropped
    assert t5.pack_windows([[5, 6, 7]], 3, eos_id=1) == [[5, 6, 7]]
    assert t5.pack_windows([[5, 6, 7, 8]], 2, eos_id=1) == [[5, 6], [7, 8]]
    with pytest.raises(ValueError, match="max_len"):
        t5.pack_windows(documents, 1, eos_id=1)


def test_prepared_data_holds_every_token_once():
    data = topic_data()
    tokenizer = data.tokenizer
    stream = [t for d in topic_documents(20, seed=1) for t in (*t5.encode_text(tokenizer, d), 1)]
    flat = [t for w in data.train_windows for t in w]
    assert flat == stream or (len(stream) % 32 == 1 and flat == stream[:-1])  # a last window of 1 token is dropped
    assert all(len(w) == 32 for w in data.train_windows[:-1])
    counts = torch.bincount(torch.tensor(stream), minlength=tokenizer.vocab_size).double()
    torch.testing.assert_close(data.unigram, (counts + 1) / (len(stream) + tokenizer.vocab_size))
    assert sum(len(b) for b in data.heldout_batches) == len(data.heldout_windows)


def test_span_batches_give_the_windows_back_exactly():
    data = topic_data()
    windows = data.train_windows[:16]
    batch = data.batch(windows, torch.Generator().manual_seed(3))
    eos, sentinels = data.tokenizer.eos_id, data.sentinel_ids
    assert batch.input_ids.shape[0] == batch.labels.shape[0] == 16
    for b, window in enumerate(windows):
        inputs = batch.input_ids[b][batch.valid[b]].tolist()
        targets = batch.labels[b][batch.labels[b] != -100].tolist()
        assert reconstruct(inputs, targets, sentinel_ids=sentinels, end_id=eos) == window
        assert inputs[-1] == eos and targets[-1] == eos and targets[0] == sentinels[0]
        noise, spans = noise_counts(len(window))
        assert int(batch.span_mask[b].sum()) == noise  # the dropped tokens: not the sentinels, not the final </s>
        assert len(targets) == noise + spans + 1
        dropped = batch.labels[b][batch.span_mask[b]]
        assert not bool(torch.isin(dropped, torch.tensor(sentinels)).any())
    assert not bool((batch.input_ids[~batch.valid] != 0).any())  # padded with <pad>


def test_too_few_sentinels_for_the_window_length_is_refused():
    # a window of 400 tokens gets round(60 / 3) = 20 spans; the tokenizer has 8 sentinels
    with pytest.raises(ValueError, match="20 spans.*8"):
        t5.prepare_t5_data(topic_documents(2, 1), topic_documents(1, 2), max_len=400, tokenizer=topic_tokenizer())
    with pytest.raises(TypeError, match="train must be"):
        t5.prepare_t5_data(42, topic_documents(1, 2), tokenizer=topic_tokenizer())


# --------------------------------------------------------------------------------- pre-training, measured


def test_the_report_scores_what_it_says():
    """Recompute every number of evaluate_t5 by hand from the held-out batches."""
    data = topic_data()
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(tiny_config(data.tokenizer.vocab_size))
    model.train()
    report = t5.evaluate_t5(model, data)
    assert model.training  # restored
    every, spans, baseline, right, labels_seen = [], [], [], [], []
    with torch.no_grad():
        for batch in data.heldout_batches:
            logits = model.eval()(batch.input_ids, valid=batch.valid, labels=batch.labels).logits.double()
            for b in range(len(batch)):
                for j in range(batch.labels.shape[1]):
                    label = int(batch.labels[b, j])
                    if label == -100:
                        continue
                    nll = float(-torch.log_softmax(logits[b, j], -1)[label])
                    every.append(nll)
                    if batch.span_mask[b, j]:
                        spans.append(nll)
                        baseline.append(float(-torch.log(data.unigram[label])))
                        right.append(int(logits[b, j].argmax()) == label)
                        labels_seen.append(label)
    assert report["target_tokens"] == len(every) and report["span_tokens"] == len(spans)
    assert report["loss"] == pytest.approx(np.mean(every), rel=1e-5)
    assert report["span_loss"] == pytest.approx(np.mean(spans), rel=1e-5)
    assert report["unigram_loss"] == pytest.approx(np.mean(baseline), rel=1e-12)
    d = np.array(baseline) - np.array(spans)
    assert report["margin"] == pytest.approx(d.mean(), rel=1e-4, abs=1e-6)
    assert report["margin_std_error"] == pytest.approx(d.std(ddof=1) / math.sqrt(len(d)), rel=1e-4)
    assert report["span_accuracy"] == pytest.approx(np.mean(right))
    most_frequent = int(data.unigram.argmax())
    assert report["unigram_accuracy"] == pytest.approx(np.mean([t == most_frequent for t in labels_seen]))
    assert t5.evaluate_t5(model, data) == report  # the held-out corruption is fixed


def test_a_short_pre_training_run_beats_the_unigram_baseline():
    data = topic_data()
    config = t5.t5_train_config(steps=150, batch_size=16, max_lr=5e-3, warmup_steps=15, eval_every=150)
    trainer = t5.make_t5_trainer(data, tiny_config(data.tokenizer.vocab_size), config)
    before = t5.evaluate_t5(trainer.model, data)
    history = trainer.fit()
    after = t5.evaluate_t5(trainer.model, data)
    assert history[-1]["val_loss"] == pytest.approx(after["loss"])
    # measured: loss 6.3 -> 1.5 nats per target token; the 136 dropped tokens 2.20 nats against the unigram's 3.26
    # (9.6 per-token standard errors, 9.0 with windows as the units); accuracy 0.31 against 0.11
    assert after["loss"] < before["loss"] - 3.0
    assert before["margin"] < 0 < after["margin"]
    assert after["margin_sigma"] > 5 and after["margin"] / after["margin_std_error_windows"] > 5
    assert after["span_accuracy"] > after["unigram_accuracy"] + 0.1


def test_a_resumed_run_is_the_same_run(tmp_path):
    data = topic_data()
    model_config = tiny_config(data.tokenizer.vocab_size)

    def train_config(out_dir, **changes):
        return t5.t5_train_config(steps=20, warmup_steps=2, eval_every=10, batch_size=8, seed=3, out_dir=out_dir,
                                  **changes)  # fmt: skip

    whole = t5.train_t5(data, model_config, train_config(tmp_path / "whole", checkpoint_every=10))
    assert [c.name for c in list_checkpoints(tmp_path / "whole")] == [checkpoint_dir_name(10), checkpoint_dir_name(20)]
    resumed = t5.train_t5(
        data, model_config, train_config(tmp_path / "resumed"), resume=tmp_path / "whole" / checkpoint_dir_name(10)
    )
    assert resumed.report.steps == whole.report.steps == 20
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    for (name, p), q in zip(whole.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name
    assert resumed.report == dataclasses.replace(whole.report, seconds=resumed.report.seconds)
    # the run folder reads back as a model to fine-tune, with its tokenizer
    loaded = t5.load_t5_run(tmp_path / "whole")
    assert loaded.tokenizer.vocab == data.tokenizer.vocab and loaded.checkpoint.name == checkpoint_dir_name(20)
    for (name, p), q in zip(whole.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(p, q), name
    with pytest.raises(RunFolderError, match="no run folder|not a run folder"):
        t5.load_t5_run(tmp_path / "nowhere")


def test_a_model_that_does_not_fit_the_data_is_refused():
    data = topic_data()
    v, steps = data.tokenizer.vocab_size, t5.t5_train_config(steps=200)
    with pytest.raises(ValueError, match=f"vocab_size={v + 1} does not fit the data's vocabulary of {v}"):
        t5.make_t5_trainer(data, tiny_config(v + 1), steps)
    with pytest.raises(ValueError, match="eos_id=2; the tokenizer has <pad> = 0, </s> = 1"):
        t5.make_t5_trainer(data, tiny_config(v, eos_id=2), steps)
    with pytest.raises(TypeError, match="data must be a T5Data .from prepare_t5_data"):
        t5.make_t5_trainer("data", tiny_config(v), steps)


# --------------------------------------------------------------------------------------- text to text


def test_each_task_has_its_prefix():
    number = translation.make_number_pairs(1, seed=0)[0]
    report = reports.make_reports(1, seed=0)[0]
    story = stories.make_stories(1, seed=0)[0]
    assert tt.text_pair("translate", number) == tt.TextPair(
        "translate", f"translate English to French: {number.english}", number.french
    )
    assert tt.text_pair("summarize", report).source == "summarize: " + report.report
    assert tt.text_pair("summarize", report).target == report.summary
    qa = tt.text_pair("qa", story)
    assert qa.source == f"question: {story.question} context: {story.story}" and qa.target == story.answer
    assert qa.example is story
    with pytest.raises(TypeError, match="'qa' example must be a QAExample"):
        tt.text_pair("qa", report)
    with pytest.raises(ValueError, match="task must be one of"):
        tt.task_source("classify", "text")
    with pytest.raises(ValueError, match="question"):
        tt.task_source("summarize", "text", "Where?")


def test_text_to_text_data_mixes_the_tasks_and_encodes_each_pair_with_eos():
    data = tt.text_to_text_data(("translate", "qa"), tokenizer=topic_tokenizer(), n_train=30, n_validation=5,
                                n_test=7, seed=4)  # fmt: skip
    assert data.tasks == ("translate", "qa")
    assert [p.task for p in data.train] == ["translate"] * 30 + ["qa"] * 30
    assert len(data.pairs("test", "qa")) == 7 and len(data.validation) == 10
    expected = tt.task_splits("qa", n_train=30, n_validation=5, n_test=7, seed=4)
    assert data.pairs("test", "qa") == expected.test
    tokenizer = data.tokenizer
    for pair, (source, target) in zip(data.train, data.train_ids):
        assert source[-1] == target[-1] == 1
        assert t5.decode_text(tokenizer, source[:-1]) == pair.source
        assert t5.decode_text(tokenizer, target[:-1]) == pair.target
    assert data.max_target_len["translate"] == max(len(t) for (p, (_, t)) in zip(data.train, data.train_ids)
                                                   if p.task == "translate")  # fmt: skip
    batch = tt.collate_pairs(data.train_ids[:3], pad_id=0)
    assert batch.labels.shape[1] == max(len(t) for _, t in data.train_ids[:3])
    assert bool((batch.labels == -100).any()) and not bool((batch.input_ids[~batch.valid] != 0).any())
    with pytest.raises(ValueError, match="distinct"):
        tt.text_to_text_data(("qa", "qa"), tokenizer=topic_tokenizer())


def test_the_scores_are_the_metrics_of_metrics_py():
    rng = random.Random(0)
    words = ["deux", "cent", "mille", "quatre-vingt", "dix", "et", "un"]
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) for _ in range(40)]
    hyps = [r if i % 3 == 0 else " ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) for i, r in
            enumerate(refs)]  # fmt: skip
    scores = tt.score_task("translate", hyps, refs)
    assert scores["bleu"] == metrics.corpus_bleu(hyps, refs).score
    assert scores["exact"] == pytest.approx(100 * np.mean([h == r for h, r in zip(hyps, refs)]))
    rouge = metrics.rouge_scores(hyps, refs)
    assert tt.score_task("summarize", hyps, refs) == {k: 100 * v.fmeasure for k, v in rouge.items()}
    assert tt.score_task("qa", hyps, refs) == metrics.squad_scores(hyps, refs)
    sacrebleu = pytest.importorskip("sacrebleu")
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9)
    with pytest.raises(ValueError, match="3 predictions for 2 references"):
        tt.score_task("qa", ["a", "b", "c"], ["a", "b"])


def test_the_baselines_answer_as_documented():
    splits = {task: tt.task_splits(task, n_train=50, n_validation=0, n_test=20, seed=1) for task in tt.TASKS}
    train = [p for s in splits.values() for p in s.train]
    # the lead sentence: the report's first sentence
    summaries = tt.baseline_predictions("summarize", splits["summarize"].test, train)
    for pair, lead in zip(splits["summarize"].test, summaries):
        assert pair.example.report.startswith(lead) and lead.endswith(".") and lead.count(". ") == 0
    # the first place word of the story
    qa = tt.baseline_predictions("qa", splits["qa"].test, train)
    for pair, answer in zip(splits["qa"].test, qa):
        first = min((pair.example.story.find(p), p) for p in stories.PLACES if p in pair.example.story)[1]
        assert answer == first
    # the nearest training pair: a training source answers with its own target; otherwise the most shared words,
    # then the closest length, then the earliest pair
    memory = splits["translate"].train
    assert tt.nearest_pair_translations(memory, memory) == [p.target for p in memory]
    test = splits["translate"].test
    for pair, french in zip(test, tt.baseline_predictions("translate", test, train)):
        a = pair.example.english.split()
        keys = [(shared(a, p.example.english.split()), -abs(len(a) - len(p.example.english.split()))) for p in memory]
        assert french == memory[keys.index(max(keys))].target
    assert tt.copy_source(memory[:1]) == [memory[0].example.english]


def shared(a: list[str], b: list[str]) -> int:
    return sum(min(a.count(w), b.count(w)) for w in set(a))


class _FixedGenerator(torch.nn.Module):
    """A stand-in model whose generate returns fixed rows: tests the decoding around model.generate."""

    def __init__(self, rows):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.rows = rows
        self.config = SimpleNamespace(vocab_size=400)

    def generate(self, input_ids, *, valid, max_new_tokens):
        assert valid.shape == input_ids.shape and max_new_tokens == 9
        lengths = valid.sum(dim=1).tolist()  # the rows come back in the order of the sorted sources
        return torch.tensor([self.rows[n] for n in lengths])


def test_generated_texts_stop_at_eos_and_drop_special_tokens():
    tokenizer = topic_tokenizer()
    owl, heron = tokenizer.encode("owl"), tokenizer.encode(" heron")
    v = tokenizer.vocab_size
    long_source, short_source = "apple banana cherry grape", "owl"
    n_long, n_short = len(tokenizer.encode(long_source)) + 1, len(tokenizer.encode(short_source)) + 1
    rows = {
        n_long: [0, *owl, *heron, 1, *owl, 0],  # stops at </s>
        n_short: [0, *owl, v - 1, *heron, 0, 0],  # no </s>: the sentinel and the padding are dropped
    }
    width = max(len(r) for r in rows.values())
    rows = {k: r + [0] * (width - len(r)) for k, r in rows.items()}
    texts = tt.generate_texts(_FixedGenerator(rows), tokenizer, [long_source, short_source], max_new_tokens=9)
    assert texts == ["owl heron", "owl heron"]


def test_a_short_fine_tune_lowers_the_held_out_loss_and_reports_its_own_generations():
    data = tt.text_to_text_data(("translate",), tokenizer=topic_tokenizer(), n_train=200, n_validation=40,
                                n_test=40, seed=0)  # fmt: skip
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(tiny_config(data.tokenizer.vocab_size))
    before = tt.example_losses(model, data.tokenizer, data.validation)
    config = tt.finetune_train_config(steps=120, batch_size=16, max_lr=5e-3, warmup_steps=10, eval_every=60)
    result = tt.finetune_t5(model, data, config)
    after = tt.example_losses(model, data.tokenizer, data.validation)
    d = (before - after).numpy()
    # measured: 6.25 -> 1.38 nats per target token over the 40 pairs, 79 standard errors (the byte-level tokens of
    # this tiny vocabulary spell French numbers letter by letter: far from right yet, BLEU is still 0)
    assert d.mean() > 2.0 and d.mean() > 10 * d.std(ddof=1) / math.sqrt(len(d))
    assert result.steps == 120 and [h["step"] for h in result.history if "val_loss" in h] == [60, 120]
    # the validation loss of the trainer is the token-weighted mean of the same per-token losses
    assert result.history[-1]["val_loss"] < result.history[0]["train_loss"]
    scores = result.scores["translate"]
    assert len(scores.predictions) == 40 and all(isinstance(y, str) for y in scores.predictions)
    refs = [p.target for p in scores.pairs]
    assert scores.metrics == tt.score_task("translate", scores.predictions, refs)
    assert scores.baseline == tt.score_task("translate", scores.baseline_predictions, refs)
    assert scores.predictions == tt.generate_texts(
        model,
        data.tokenizer,
        [p.source for p in scores.pairs],
        max_new_tokens=int(1.5 * data.max_target_len["translate"]) + 4,
    )
    assert "bleu" in scores.describe() and scores.margin == scores.metrics["bleu"] - scores.baseline["bleu"]


def test_a_fine_tune_starts_from_a_pre_training_run_folder(tmp_path):
    data = topic_data()
    run = t5.train_t5(data, tiny_config(data.tokenizer.vocab_size),
                      t5.t5_train_config(steps=12, warmup_steps=2, batch_size=4, out_dir=tmp_path / "run"))  # fmt: skip
    model, pairs = tt.prepare_finetune(("qa",), from_run=tmp_path / "run", n_train=8, n_validation=2, n_test=3)
    assert model.training and pairs.tokenizer.vocab == data.tokenizer.vocab
    for (name, p), q in zip(run.model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(p, q), name
    with pytest.raises(RunFolderError, match="no checkpoint|not a run folder|no run folder"):
        tt.prepare_finetune(("qa",), from_run=tmp_path / "elsewhere")
    fresh, fresh_pairs = tt.prepare_finetune(("qa",), n_train=8, n_validation=2, n_test=3, vocab_size=300)
    assert fresh.config.vocab_size == fresh_pairs.tokenizer.vocab_size <= 300 and fresh.config.d_model == 64
