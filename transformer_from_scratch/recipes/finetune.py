r"""Fine-tuning recipes: a pre-trained encoder adapted to classification (sentiment, topic) and to extractive QA.

The data steps, shared by chapter 11 and ``tfs finetune``:

    classification_data(task)                      texts + label ids of the train / validation / test splits
    encode_texts(tokenizer, texts, max_len)        [CLS] text [SEP], cut to max_len -> EncodedBatch
    encode_qa(tokenizer, examples, max_len)        [CLS] question [SEP] story [SEP] + the answer's token span
    answer_token_span(tokenizer, example)          the answer's character span -> token positions in the story
    majority_class_baseline / first_place_baseline the numbers to beat

**Classification tasks** (:data:`CLASSIFY_TASKS`): ``"sentiment"`` — the reviews of :mod:`datasets.sentiment`
(negation and contrast decide the label; labels ``negative``, ``positive``); ``"topic"`` — passages of the Python
documentation labelled with one of six topics (:mod:`datasets.topics`; held-out passages come from documents never
seen in training).

**The answer span in tokens.** Our tokenizers have no offset mapping, but a bAbI answer (a place word) starts at
a word boundary and ends before the sentence's full stop, and BERT's pre-tokenizer cuts at whitespace and
punctuation. So the tokens of ``story[:answer_start]`` are exactly the first tokens of the story, and the answer's
own tokens follow: start = len(tokens(prefix)), end = start + len(tokens(answer)) − 1 (inclusive).
:func:`answer_token_span` *checks* this (the story's tokens must begin with the prefix's, then the answer's) and
raises a ValueError otherwise, so a tokenizer that merges across the boundary cannot silently shift the span.

**Never truncating an answer away.** A story is never cut: an example whose ``[CLS] question [SEP] story [SEP]``
exceeds ``max_len`` raises a ValueError (``overflow="error"``, the default) or is left out (``overflow="drop"``;
:attr:`QAEncoding.kept` lists the examples that remain). With the default ``max_len=128`` every bAbI story of
tasks 1–2 fits (the longest is about 80 tokens).

**Baselines.** Classification: always the most frequent training label. QA: the first place word that occurs
in the story ("Mary went to the kitchen. ..." -> "kitchen") — right whenever the question is about the first
person to move who never moved again.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..datasets import sentiment, stories, topics
from ..datasets.stories import QAExample
from ..tokenizers.base import EncodedBatch, Tokenizer

__all__ = [
    "CLASSIFY_TASKS",
    "LabelledTexts",
    "ClassificationData",
    "label_names",
    "classification_data",
    "encode_texts",
    "QAEncoding",
    "answer_token_span",
    "encode_qa",
    "span_texts",
    "majority_class_baseline",
    "first_place_baseline",
]

CLASSIFY_TASKS = ("sentiment", "topic")
OVERFLOW = ("error", "drop")


# ------------------------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class LabelledTexts:
    """Texts and their label ids (indices into the task's label names)."""

    texts: list[str]
    labels: list[int]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"texts has {len(self.texts)} entries but labels has {len(self.labels)}")

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class ClassificationData:
    """The three splits of a classification task and its label names (label id = position)."""

    task: str
    label_names: tuple[str, ...]
    train: LabelledTexts
    validation: LabelledTexts
    test: LabelledTexts


def label_names(task: str) -> tuple[str, ...]:
    """The label names of a classification task, in label-id order."""
    if task == "sentiment":
        return sentiment.LABELS
    if task == "topic":
        return topics.TOPICS
    raise ValueError(f"task must be one of {CLASSIFY_TASKS}, got {task!r}")


def classification_data(task: str, *, seed: int = 0) -> ClassificationData:
    """The train / validation / test splits of ``task`` ("sentiment" | "topic") as texts and label ids.

    sentiment: :func:`datasets.sentiment.make_review_splits` (2,000 / 200 / 200 reviews, distinct texts);
    topic: :func:`datasets.topics.make_topic_splits` (split by document). ``seed`` is passed to the generator
    (sentiment) or to the document split (topic)."""
    names = label_names(task)
    if task == "sentiment":
        splits = sentiment.make_review_splits(seed=seed)
    else:
        splits = topics.make_topic_splits(seed=seed)

    def part(examples) -> LabelledTexts:
        return LabelledTexts([e.text for e in examples], [names.index(e.label) for e in examples])

    return ClassificationData(task, names, part(splits.train), part(splits.validation), part(splits.test))


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], max_len: int = 64) -> EncodedBatch:
    """``[CLS] text [SEP]`` for every text, cut to ``max_len`` tokens (the text's end is dropped, the two special
    tokens kept) and right-padded to the longest row: an :class:`~tokenizers.base.EncodedBatch` (B, L ≤ max_len)."""
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"tokenizer must be a Tokenizer, got {type(tokenizer).__name__}")
    return tokenizer.encode_batch(list(texts), max_len=max_len, truncation=True, add_special_tokens=True)


def majority_class_baseline(train_labels: Sequence[int], n: int) -> list[int]:
    """``n`` predictions of the most frequent training label (ties: the smallest label id)."""
    if not train_labels:
        raise ValueError("train_labels is empty: the majority class needs training labels")
    counts = Counter(train_labels)
    best = max(counts.values())
    return [min(label for label, c in counts.items() if c == best)] * n


# ---------------------------------------------------------------------------------------------- question answering


@dataclass(frozen=True)
class QAEncoding:
    """Encoded QA examples: ``encodings`` of ``[CLS] question [SEP] story [SEP]`` (B, L) with segment ids 0 / 1;
    ``start_positions`` / ``end_positions`` (B,) long — the answer's first and last token (inclusive) in the row;
    ``context`` (B, L) bool — the story's tokens, where an answer may lie; ``kept`` — the indices of the examples
    encoded (all of them unless ``overflow="drop"`` left some out) and ``examples`` — those examples."""

    encodings: EncodedBatch
    start_positions: Tensor
    end_positions: Tensor
    context: Tensor
    kept: list[int]
    examples: list[QAExample]

    def __len__(self) -> int:
        return len(self.kept)


def _check_tokenizer(tokenizer) -> None:
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"tokenizer must be a Tokenizer, got {type(tokenizer).__name__}")


def answer_token_span(tokenizer: Tokenizer, example: QAExample) -> tuple[int, int]:
    """(start, end) of the answer among the story's tokens, end inclusive (the rule of the module docstring).

    Raises a ValueError when the tokens of the story do not begin with the tokens of the text before the answer
    followed by the answer's tokens — the tokenizer merged across the answer's boundary."""
    _check_tokenizer(tokenizer)
    story = example.story
    if story[example.answer_start : example.answer_end] != example.answer:
        raise ValueError(
            f"answer {example.answer!r} is not at characters [{example.answer_start}, {example.answer_end}) of "
            f"the story {story!r}"
        )
    prefix = tokenizer.encode(story[: example.answer_start])
    answer = tokenizer.encode(example.answer)
    tokens = tokenizer.encode(story)
    if not answer or tokens[: len(prefix) + len(answer)] != prefix + answer:
        raise ValueError(
            f"the answer {example.answer!r} does not start a token of the story {story!r} under this tokenizer: "
            "its character span cannot be mapped to tokens"
        )
    return len(prefix), len(prefix) + len(answer) - 1


def encode_qa(
    tokenizer: Tokenizer, examples: Sequence[QAExample], *, max_len: int = 128, overflow: str = "error"
) -> QAEncoding:
    """``[CLS] question [SEP] story [SEP]`` for every example, with the answer's token positions in the row.

    A story is never cut: an example longer than ``max_len`` tokens raises a ValueError naming it
    (``overflow="error"``) or is left out (``overflow="drop"``; see :attr:`QAEncoding.kept`)."""
    _check_tokenizer(tokenizer)
    if overflow not in OVERFLOW:
        raise ValueError(f"overflow must be one of {OVERFLOW}, got {overflow!r}")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 4:
        raise ValueError(f"max_len must be an int ≥ 4, got {max_len!r}")
    examples = list(examples)
    if not examples:
        raise ValueError("examples is empty: nothing to encode")
    kept, starts, ends = [], [], []
    for i, example in enumerate(examples):
        n = len(tokenizer.encode(example.question)) + len(tokenizer.encode(example.story)) + 3
        if n > max_len:
            if overflow == "error":
                raise ValueError(
                    f"example {i} needs {n} tokens ([CLS] question [SEP] story [SEP]) but max_len={max_len}; a "
                    "story is never cut (the answer could be cut away): raise max_len, or pass overflow='drop'"
                )
            continue
        start, end = answer_token_span(tokenizer, example)
        offset = len(tokenizer.encode(example.question)) + 2  # [CLS] question [SEP]
        kept.append(i)
        starts.append(offset + start)
        ends.append(offset + end)
    if not kept:
        raise ValueError(f"every example is longer than max_len={max_len}: nothing left to encode")
    chosen = [examples[i] for i in kept]
    encodings = tokenizer.encode_batch(
        [e.question for e in chosen], text_pairs=[e.story for e in chosen], max_len=max_len, truncation=False
    )
    # the story's tokens: segment 1, real, and not the final [SEP]
    last = (encodings.lengths - 1)[:, None]  # (B, 1)
    positions = torch.arange(encodings.ids.shape[1])[None, :]  # (1, L)
    context = (encodings.segment_ids == 1) & encodings.valid & (positions != last)  # (B, L)
    return QAEncoding(
        encodings=encodings,
        start_positions=torch.tensor(starts, dtype=torch.long),
        end_positions=torch.tensor(ends, dtype=torch.long),
        context=context,
        kept=kept,
        examples=chosen,
    )


def span_texts(tokenizer: Tokenizer, ids: Tensor, starts: Tensor, ends: Tensor) -> list[str]:
    """The text of each token span: ``decode(ids[b, start_b : end_b + 1])`` for every row b (end inclusive).
    ids (B, L), starts / ends (B,)."""
    _check_tokenizer(tokenizer)
    if ids.dim() != 2 or starts.shape != (ids.shape[0],) or ends.shape != (ids.shape[0],):
        raise ValueError(
            f"ids must be (B, L) and starts, ends (B,), got {tuple(ids.shape)}, {tuple(starts.shape)}, "
            f"{tuple(ends.shape)}"
        )
    return [
        tokenizer.decode(row[int(s) : int(e) + 1], skip_special_tokens=True) for row, s, e in zip(ids, starts, ends)
    ]


_WORD = re.compile(r"[A-Za-z]+")


def first_place_baseline(example: QAExample) -> str:
    """The first place word (one of :data:`datasets.stories.PLACES`) that occurs in the story — the QA baseline."""
    for word in _WORD.findall(example.story):
        if word in stories.PLACES:
            return word
    raise ValueError(f"no place word of {stories.PLACES} in the story {example.story!r}")
