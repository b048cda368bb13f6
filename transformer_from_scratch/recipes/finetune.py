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

The training steps (``tfs finetune`` is these and a print):

    load_pretrained_encoder(path)                  a `tfs train bert` run folder or a Hugging Face BERT folder
    build_task_model(source, "classify" | "qa")    the task model with the pre-trained encoder, + what is new
    finetune_classifier(source, data, config)      -> ClassificationResult: predictions, metrics, baseline
    finetune_qa(source, splits, config)            -> QAResult: predicted answers, EM / F1, baseline
    classification_metrics(labels, predictions)    accuracy, macro-F1, per-class P / R / F1, confusion matrix

**Where the encoder comes from.** A run folder of ``tfs train bert`` holds a ``BertForPreTraining`` and its
WordPiece tokenizer (:func:`recipes.saved.load_run`); the task model is built with the same config and its
``bert`` gets the run's ``bert`` weights — the head (and, for QA or mean pooling, nothing else) is new; the MLM
and NSP heads are left behind, and so is the pooler when the task model has none. A Hugging Face BERT folder
(``config.json``, ``model.safetensors``, ``vocab.txt``; all-MiniLM-L6-v2) goes through the task model's own
``from_pretrained`` and the tokenizer is read from ``vocab.txt`` (lowercased unless ``tokenizer_config.json``
says ``"do_lower_case": false``). Either way :attr:`TaskModel.load_report` lists the new and the unused keys.

**How it trains** (:mod:`training.finetune`). ``freeze="encoder"``: the encoder is frozen, so its vectors (mean
of the last hidden states over real tokens, or the [CLS] pooler — ``pooling``) are computed once for every split
(:func:`~training.finetune.extract_features`) and only the linear head trains on them
(:func:`~training.finetune.fit_head`) — seconds instead of minutes. ``freeze="none"``: everything trains with the
:class:`~training.trainer.Trainer` (AdamW, 10% linear warm-up then cosine, clipping at 1.0), the validation split
is evaluated every ``eval_every`` steps and the weights of the lowest validation loss are restored at the end
(:func:`~training.finetune.fit_restoring_best`). QA always runs the Trainer (start/end cross-entropy of
:class:`~models.bert_tasks.BertForQuestionAnswering`); predictions are its ``predict_spans`` restricted to the
story's tokens, decoded back to text and scored with SQuAD's exact match and F1 (:func:`metrics.squad_scores`).

**Baselines.** Classification: always the most frequent training label. QA: the first place word that occurs
in the story ("Mary went to the kitchen. ..." -> "kitchen") — right whenever the question is about the first
person to move who never moved again.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import metrics
from ..config import BertConfig
from ..datasets import sentiment, stories, topics
from ..datasets._common import Splits
from ..datasets.stories import QAExample
from ..heads import best_span
from ..models.bert_tasks import BertForQuestionAnswering, BertForSequenceClassification
from ..tokenizers.base import EncodedBatch, Tokenizer
from ..tokenizers.wordpiece import WordPieceTokenizer
from ..training import History, TrainConfig, Trainer, seed_everything
from ..training.finetune import extract_features, finetune_param_groups, fit_head, fit_restoring_best, freeze
from .runs import RunFolderError
from .saved import load_run

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
    "EncoderSourceError",
    "PretrainedEncoder",
    "load_pretrained_encoder",
    "TaskModel",
    "build_task_model",
    "FREEZE_CHOICES",
    "FinetuneConfig",
    "classification_metrics",
    "ClassificationResult",
    "finetune_classifier",
    "QAResult",
    "finetune_qa",
    "qa_splits",
    "predict_answers",
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


# ------------------------------------------------------------------------------------- the pre-trained encoder


class EncoderSourceError(ValueError):
    """``--from PATH`` is neither a usable run folder of ``tfs train bert`` nor a Hugging Face BERT folder: one line."""


@dataclass
class PretrainedEncoder:
    """Where a fine-tune starts: ``kind`` "run" (a ``tfs train bert`` run folder) or "hf" (a Hugging Face BERT
    folder), its ``path``, its ``tokenizer`` and ``config``; ``encoder_state`` holds the run's ``bert`` weights
    (None for "hf": the task model's ``from_pretrained`` reads the folder)."""

    kind: str
    path: Path
    tokenizer: Tokenizer
    config: BertConfig
    encoder_state: dict[str, Tensor] | None = None


def _hf_lowercase(folder: Path) -> bool:
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return True
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get("do_lower_case", True))
    except json.JSONDecodeError:
        raise EncoderSourceError(f"{config} is not valid JSON") from None


def load_pretrained_encoder(path: str | os.PathLike) -> PretrainedEncoder:
    """Read ``path``: a Hugging Face BERT folder (it has ``config.json``) or a run folder of ``tfs train bert``
    (or one of its step folders). Anything else raises :class:`EncoderSourceError` with one line saying which."""
    folder = Path(path)
    if not folder.exists():
        raise EncoderSourceError(f"{folder} does not exist (expected a `tfs train bert` run folder or HF BERT folder)")
    if not folder.is_dir():
        raise EncoderSourceError(f"{folder} is a file, not a `tfs train bert` run folder or a HF BERT folder")
    if (folder / "config.json").is_file():
        if not (folder / "vocab.txt").is_file():
            raise EncoderSourceError(f"{folder} has config.json but no vocab.txt: the WordPiece vocabulary is needed")
        try:
            tokenizer = WordPieceTokenizer.from_vocab_file(folder / "vocab.txt", lowercase=_hf_lowercase(folder))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the new-head warning: reported by build_task_model
                config = BertForQuestionAnswering.from_pretrained(folder).config
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise EncoderSourceError(f"{folder} is not a usable Hugging Face BERT folder: {e}") from None
        return PretrainedEncoder("hf", folder, tokenizer, config)
    try:
        trained = load_run(folder)
    except RunFolderError as e:
        raise EncoderSourceError(
            f"{folder} is neither a Hugging Face BERT folder (no config.json) nor a usable run folder ({e})"
        ) from None
    if trained.task != "bert":
        raise EncoderSourceError(f"{folder} is a {trained.task} run; fine-tuning needs an encoder: a bert run")
    state = {k: v.detach().clone() for k, v in trained.model.bert.state_dict().items()}
    return PretrainedEncoder("run", folder, trained.tokenizer, trained.model.config, state)


@dataclass
class TaskModel:
    """A task model whose encoder holds the pre-trained weights, and ``load_report`` = ``{"new": [keys that start
    from BERT's initialisation], "unused": [pre-trained keys left behind]}``."""

    model: nn.Module
    load_report: dict[str, list[str]]


def build_task_model(
    source: PretrainedEncoder, task: str, *, n_labels: int | None = None, pooling: str = "mean"
) -> TaskModel:
    """``task`` "classify" -> :class:`BertForSequenceClassification` (``n_labels``, ``pooling``), "qa" ->
    :class:`BertForQuestionAnswering`, with ``source``'s encoder weights (the rule of the module docstring)."""
    if task not in ("classify", "qa"):
        raise ValueError(f"task must be 'classify' or 'qa', got {task!r}")
    if task == "classify" and (isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 2):
        raise ValueError(f"n_labels must be an int ≥ 2 for classification, got {n_labels!r}")
    if source.kind == "hf":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the same facts are in load_report
            if task == "classify":
                model = BertForSequenceClassification.from_pretrained(source.path, n_labels=n_labels, pooling=pooling)
            else:
                model = BertForQuestionAnswering.from_pretrained(source.path)
        return TaskModel(model, model.load_report)
    if task == "classify":
        model = BertForSequenceClassification(source.config, n_labels, pooling=pooling)
    else:
        model = BertForQuestionAnswering(source.config)
    missing, unexpected = model.bert.load_state_dict(source.encoder_state, strict=False)
    if missing:  # the run's encoder always has every tensor ours has (pooler included)
        raise RuntimeError(f"internal error: the run's encoder lacks {missing}")
    encoder_keys = {f"bert.{k}" for k in model.bert.state_dict()}
    report = {
        "new": sorted(k for k in model.state_dict() if k not in encoder_keys),
        "unused": sorted(f"bert.{k}" for k in unexpected) + ["mlm.*", "nsp.*"],
    }
    model.load_report = report
    return TaskModel(model.eval(), report)


# ------------------------------------------------------------------------------------------------ training


FREEZE_CHOICES = ("encoder", "none")
_DEFAULT_STEPS = {("classify", "encoder"): 1000, ("classify", "none"): 150, ("qa", "encoder"): 300, ("qa", "none"): 150}
_DEFAULT_LR = {"encoder": 3e-3, "none": 1e-4}


@dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tuning run. ``freeze``: "encoder" (only the head trains) or "none" (everything trains). ``steps`` or
    ``epochs`` (passes over the training set, rounded up to whole steps) — None for both: the default of the task
    (classification: 1,000 head-only steps or 150 full steps; QA: 150 full or 300 head-only steps). ``lr``: peak
    learning rate (None: 3e-3 for a head alone, 1e-4 for everything). ``max_len``: tokens per row (None: 64 for
    classification, 128 for QA, at most the encoder's own ``max_len``). ``eval_every``: validation every N steps
    (full fine-tuning and QA; None: five times per run). ``max_answer_len``: the longest predicted answer, in tokens."""

    freeze: str = "encoder"
    steps: int | None = None
    epochs: float | None = None
    lr: float | None = None
    batch_size: int = 16
    max_len: int | None = None
    pooling: str = "mean"
    eval_every: int | None = None
    max_answer_len: int = 10
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        if self.freeze not in FREEZE_CHOICES:
            raise ValueError(f"freeze must be one of {FREEZE_CHOICES}, got {self.freeze!r}")
        if self.steps is not None and self.epochs is not None:
            raise ValueError(f"give steps or epochs, not both (got steps={self.steps}, epochs={self.epochs})")
        for name in ("steps", "batch_size", "max_len", "eval_every", "max_answer_len"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("epochs", "lr"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {self.pooling!r}")

    def resolved_steps(self, task: str, n_train: int) -> int:
        """The number of optimizer steps: ``steps``, or ⌈epochs · n_train / batch_size⌉, or the default."""
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * n_train / self.batch_size))
        return _DEFAULT_STEPS[(task, self.freeze)]

    @property
    def resolved_lr(self) -> float:
        return _DEFAULT_LR[self.freeze] if self.lr is None else float(self.lr)


def _rows(encodings: EncodedBatch, index: Tensor) -> EncodedBatch:
    """The chosen rows, cut to their longest real length (less padding, less compute): (b, L') each."""
    width = int(encodings.lengths[index].max())
    return EncodedBatch(
        ids=encodings.ids[index, :width],
        valid=encodings.valid[index, :width],
        allowed=encodings.allowed[index][..., :width],
        segment_ids=encodings.segment_ids[index, :width],
        lengths=encodings.lengths[index],
    )


def _max_len(config: FinetuneConfig, source: PretrainedEncoder, default: int) -> int:
    """``config.max_len``, or ``default`` capped at the encoder's positions; a larger explicit value is an error."""
    if config.max_len is None:
        return min(default, source.config.max_len)
    if config.max_len > source.config.max_len:
        raise ValueError(f"max_len={config.max_len} exceeds the encoder's max_len={source.config.max_len} positions")
    return config.max_len


def _chunks(encodings: EncodedBatch, size: int = 64) -> list[EncodedBatch]:
    return [_rows(encodings, torch.arange(i, min(i + size, len(encodings)))) for i in range(0, len(encodings), size)]


def _train_config(config: FinetuneConfig, steps: int, *, evaluate: bool) -> TrainConfig:
    eval_every = (config.eval_every or max(1, steps // 5)) if evaluate else None
    return TrainConfig(
        steps=steps,
        batch_size=config.batch_size,
        max_lr=config.resolved_lr,
        warmup_steps=steps // 10,
        eval_every=eval_every,
        early_stopping_metric="val_loss",
        progress=config.progress,
        seed=config.seed,
    )


def _fit_whole_model(model: nn.Module, config: FinetuneConfig, steps: int, loss_fn, train_batches, evaluate) -> History:
    """Train the trainable parameters of ``model`` with the Trainer (AdamW groups of ``finetune_param_groups``,
    warm-up + cosine), evaluating every ``config.eval_every`` steps, and end with the best evaluation's weights in
    eval mode."""
    groups = finetune_param_groups(model, lr=config.resolved_lr)
    trainer = Trainer(
        model, _train_config(config, steps, evaluate=True), loss_fn=loss_fn, train_batches=train_batches,
        evaluate=evaluate, param_groups=groups,
    )  # fmt: skip
    history = fit_restoring_best(trainer)
    model.eval()
    return history


def classification_metrics(labels: Sequence[int], predictions: Sequence[int], label_names: Sequence[str]) -> dict:
    """accuracy, macro_f1, per_class {name: {precision, recall, f1, support}} and confusion (C, C) (rows: true
    class, columns: predicted; classes in ``label_names`` order, ids 0 … C-1)."""
    classes = list(range(len(label_names)))
    per = metrics.precision_recall_f1(labels, predictions, average=None, labels=classes)
    return {
        "accuracy": metrics.accuracy(labels, predictions),
        "macro_f1": metrics.f1_score(labels, predictions, average="macro", labels=classes),
        "per_class": {
            name: {
                "precision": float(per.precision[i]),
                "recall": float(per.recall[i]),
                "f1": float(per.f1[i]),
                "support": int(per.support[i]),
            }
            for i, name in enumerate(label_names)
        },
        "confusion": metrics.confusion_matrix(labels, predictions, labels=classes),
    }


@dataclass
class ClassificationResult:
    """A classification fine-tune: the ``model`` (eval mode), the held-out ``predictions`` and ``labels`` (ids),
    ``metrics`` and ``baseline`` (both from :func:`classification_metrics`; the baseline predicts the majority
    class), the training ``history``, the ``load_report`` and the wall-clock ``seconds``."""

    task: str
    label_names: tuple[str, ...]
    model: nn.Module
    predictions: list[int]
    labels: list[int]
    metrics: dict
    baseline: dict
    history: list[dict]
    load_report: dict[str, list[str]]
    seconds: float
    steps: int = 0


@torch.no_grad()
def _class_logits(model: nn.Module, encodings: EncodedBatch) -> Tensor:
    was_training = model.training
    model.eval()
    try:
        out = [model(b.ids, token_type_ids=b.segment_ids, valid=b.valid).logits for b in _chunks(encodings)]
    finally:
        model.train(was_training)
    return torch.cat(out)  # (N, C)


def finetune_classifier(
    source: PretrainedEncoder, data: ClassificationData, config: FinetuneConfig = FinetuneConfig()
) -> ClassificationResult:
    """Fine-tune ``source``'s encoder on ``data`` and predict its test split (the rules of the module docstring).
    Seeds the global RNG (``seed_everything(config.seed)``) before the head is initialised."""
    start = time.perf_counter()
    seed_everything(config.seed)
    built = build_task_model(source, "classify", n_labels=len(data.label_names), pooling=config.pooling)
    model = built.model
    max_len = _max_len(config, source, 64)
    splits = ("train", "validation", "test")
    enc = {name: encode_texts(source.tokenizer, getattr(data, name).texts, max_len) for name in splits}
    labels = {name: torch.tensor(getattr(data, name).labels, dtype=torch.long) for name in enc}
    steps = config.resolved_steps("classify", len(data.train))
    freeze(model, config.freeze)
    if config.freeze == "encoder":  # the encoder's vectors once, then the head alone
        features = {name: extract_features(model, _chunks(e), pooling=config.pooling) for name, e in enc.items()}
        history = fit_head(features["train"], labels["train"], model.head, _train_config(config, steps, evaluate=False))
        model.eval()
        with torch.no_grad():
            predictions = model.head(features["test"]).argmax(-1).tolist()
    else:
        n = len(data.train)

        def loss_fn(m, batch):
            rows, y = batch
            return m(rows.ids, token_type_ids=rows.segment_ids, valid=rows.valid, labels=y).loss

        def train_batches(generator):
            index = torch.randperm(n, generator=generator)[: config.batch_size]  # (B,) distinct examples
            return _rows(enc["train"], index), labels["train"][index]

        def evaluate(m):
            logits = _class_logits(m, enc["validation"])  # (N_val, C)
            return {
                "val_loss": float(torch.nn.functional.cross_entropy(logits, labels["validation"])),
                "val_accuracy": float((logits.argmax(-1) == labels["validation"]).float().mean()),
            }

        history = _fit_whole_model(model, config, steps, loss_fn, train_batches, evaluate)
        predictions = _class_logits(model, enc["test"]).argmax(-1).tolist()
    test_labels = data.test.labels
    baseline = majority_class_baseline(data.train.labels, len(test_labels))
    return ClassificationResult(
        task=data.task,
        label_names=data.label_names,
        model=model,
        predictions=predictions,
        labels=list(test_labels),
        metrics=classification_metrics(test_labels, predictions, data.label_names),
        baseline=classification_metrics(test_labels, baseline, data.label_names),
        history=history,
        load_report=built.load_report,
        seconds=time.perf_counter() - start,
        steps=steps,
    )


# ---------------------------------------------------------------------------------------------- QA training


def qa_splits(*, task: int = 1, n_train: int = 2000, n_validation: int = 200, n_test: int = 400, seed: int = 0):
    """bAbI-style stories of ``task`` 1 or 2 for QA fine-tuning (:func:`datasets.stories.make_story_splits`); 400
    test questions by default, so an exact match near 90% is measured to about ±1.5% (one standard error)."""
    return stories.make_story_splits(task=task, n_train=n_train, n_validation=n_validation, n_test=n_test, seed=seed)


@dataclass
class QAResult:
    """A QA fine-tune: the ``model`` (eval mode), the predicted answers of the test questions and the true ones,
    ``metrics`` and ``baseline`` (SQuAD ``exact_match`` and ``f1`` in percent; the baseline answers the first
    place word of the story), ``baseline_predictions``, ``history``, ``load_report``, ``seconds``, ``steps``."""

    model: nn.Module
    predictions: list[str]
    answers: list[str]
    metrics: dict[str, float]
    baseline: dict[str, float]
    baseline_predictions: list[str]
    history: list[dict]
    load_report: dict[str, list[str]]
    seconds: float
    steps: int


def _qa_batch(qa: QAEncoding, index: Tensor) -> tuple[EncodedBatch, Tensor, Tensor, Tensor]:
    rows = _rows(qa.encodings, index)
    width = rows.ids.shape[1]
    return rows, qa.start_positions[index], qa.end_positions[index], qa.context[index, :width]


@torch.no_grad()
def predict_answers(model: BertForQuestionAnswering, tokenizer: Tokenizer, qa: QAEncoding, *, max_answer_len: int = 10):
    """The answer text of every encoded question: the best span among the story's tokens (``predict_spans``,
    at most ``max_answer_len`` tokens), decoded. Also returns (start, end) (N,) each, positions in the rows."""
    was_training = model.training
    model.eval()
    texts, starts, ends = [], [], []
    try:
        for i in range(0, len(qa), 64):
            rows, _, _, context = _qa_batch(qa, torch.arange(i, min(i + 64, len(qa))))
            span = model.predict_spans(
                rows.ids, token_type_ids=rows.segment_ids, valid=rows.valid, allowed=context,
                max_answer_len=max_answer_len,
            )  # fmt: skip
            texts += span_texts(tokenizer, rows.ids, span.start, span.end)
            starts.append(span.start)
            ends.append(span.end)
    finally:
        model.train(was_training)
    return texts, torch.cat(starts), torch.cat(ends)


def finetune_qa(
    source: PretrainedEncoder, splits: Splits[QAExample], config: FinetuneConfig = FinetuneConfig(freeze="none")
) -> QAResult:
    """Fine-tune ``source``'s encoder for extractive QA on ``splits`` (e.g. :func:`qa_splits`) with the Trainer,
    restoring the weights of the lowest validation loss; predict the test answers and score them against the
    first-place baseline. ``config.freeze="encoder"`` trains the span head alone (the encoder still runs)."""
    start = time.perf_counter()
    seed_everything(config.seed)
    built = build_task_model(source, "qa")
    model, tokenizer = built.model, source.tokenizer
    max_len = _max_len(config, source, 128)
    qa = {
        name: encode_qa(tokenizer, getattr(splits, name), max_len=max_len) for name in ("train", "validation", "test")
    }
    steps = config.resolved_steps("qa", len(qa["train"]))
    freeze(model, config.freeze)
    n = len(qa["train"])

    def loss_fn(m, batch):
        rows, s, e, _ = batch
        out = m(rows.ids, token_type_ids=rows.segment_ids, valid=rows.valid, start_positions=s, end_positions=e)
        return out.loss

    def train_batches(generator):
        return _qa_batch(qa["train"], torch.randperm(n, generator=generator)[: config.batch_size])

    def evaluate(m):  # one forward pass per chunk gives both the loss and the predicted spans
        val, total, texts = qa["validation"], 0.0, []
        with torch.no_grad():
            for i in range(0, len(val), 64):
                rows, s, e, context = _qa_batch(val, torch.arange(i, min(i + 64, len(val))))
                out = m(rows.ids, token_type_ids=rows.segment_ids, valid=rows.valid, start_positions=s, end_positions=e)
                total += float(out.loss) * len(s)
                span = best_span(
                    out.start_logits, out.end_logits, allowed=context, max_answer_len=config.max_answer_len
                )
                texts += span_texts(tokenizer, rows.ids, span.start, span.end)
        em = metrics.squad_scores(texts, [e.answer for e in val.examples])["exact_match"]
        return {"val_loss": total / len(val), "val_exact_match": em}

    history = _fit_whole_model(model, config, steps, loss_fn, train_batches, evaluate)
    test = qa["test"]
    predictions, _, _ = predict_answers(model, tokenizer, test, max_answer_len=config.max_answer_len)
    answers = [e.answer for e in test.examples]
    baseline_predictions = [first_place_baseline(e) for e in test.examples]
    return QAResult(
        model=model,
        predictions=predictions,
        answers=answers,
        metrics=metrics.squad_scores(predictions, answers),
        baseline=metrics.squad_scores(baseline_predictions, answers),
        baseline_predictions=baseline_predictions,
        history=history,
        load_report=built.load_report,
        seconds=time.perf_counter() - start,
        steps=steps,
    )
