r"""Text-to-text fine-tuning of T5: every task a string in and a string out, told apart by a prefix (Raffel et al.
2020, §2.4) — translation, summarization and question answering, one model for one task or several at once.

The pieces, each small enough to read in one go:

    TASKS, task_source(task, …)   "translate English to French: …", "summarize: …", "question: … context: …"
    task_splits(task, ...)        the package's generators as TextPairs: number words EN -> FR
                                  (``datasets.translation``), report -> one-sentence summary (``datasets.reports``),
                                  bAbI-style story + question -> answer (``datasets.stories``, task 1)
    text_to_text_data(tasks, ...) one or several tasks, encoded once (``</s>`` closing source and target)
    collate_pairs, text_to_text_loss, example_losses    batches, the teacher-forced loss, per-pair losses
    finetune_train_config(...)    1000 steps of 32 pairs, AdamW, warm-up + cosine (as every recipe)
    make_finetune_trainer(model, data, train_config)    a Trainer on the training pairs of every task
    generate_texts(model, tokenizer, sources)           greedy decoding with the KV cache (``model.generate``)
    score_task(task, predictions, references)           BLEU | ROUGE | SQuAD EM / F1 (``metrics``)
    baseline_predictions(task, pairs, train)            nearest training pair | lead sentence | first place
    evaluate_task(model, data, task)                    generate the test split, score it and the baseline
    prepare_finetune(tasks, from_run=…)                 the model (a ``tfs train t5`` run's, or fresh) and its data
    finetune_t5(model, data, train_config)              train, then evaluate every task -> T5FinetuneResult

``tfs finetune t5 --task translate [--from RUN]`` is::

    model, data = prepare_finetune(("translate",), from_run=path_or_None, seed=0)
    result = finetune_t5(model, data, finetune_train_config(seed=0))
    result.scores["translate"].describe()       # BLEU on the test pairs against the nearest-pair baseline

What is scored
--------------
A task's source is its prefix and the input text, its target the output text, both read as T5 reads text
(``t5.encode_text``) and closed by ``</s>``. Several tasks train one model at once: each step picks a task with
probability proportional to its training pairs (T5's "examples-proportional mixing"; equal split sizes give equal
mixing) and draws ``batch_size`` of its pairs — one task per batch, so short translations are not padded to the
length of reports; the prefix alone says which task is asked. The test split of each task is decoded greedily
(``model.generate``, KV cache), cut at ``</s>``, and scored:

* ``translate`` — corpus BLEU (sacreBLEU's defaults: 13a tokenisation, exp smoothing) in [0, 100], and the
  percentage of exact translations; baseline: the French of the *nearest training pair* — the training pair whose
  English shares the most words with the source (then the closest in length, then the earlier), a
  dictionary-free translation memory. :func:`copy_source` (the English as the French, BLEU ≈ 0) shows the floor.
* ``summarize`` — ROUGE-1 / 2 / L F-measure, mean over reports, in percent; baseline: the *lead sentence* (the
  report's first sentence, ``datasets.corpus.split_sentences``), the classic summarisation baseline.
* ``qa`` — SQuAD exact match and F1 in percent; baseline: the extractive ``first_place_baseline`` of
  ``recipes.finetune`` (the first place word of the story).

No truncation anywhere: every source and target of the generators fits (reports, the longest, are under 70
tokens with a 1000-token vocabulary), and a sentence cut short would score as an error.

Measured (default fine-tune: 1000 steps of 32 pairs, 2000 training and 200 test pairs, seed 0, one thread of the
project's 2-core machine shared with other jobs). From a fresh model with a tokenizer of the task's own text:
translate BLEU 99.6 (99 % exact) against 32.4 for the nearest training pair, 43 s of training; summarize ROUGE-L
96.2 against 51.9 for the lead sentence, 155 s; qa exact match 36.0 against 27.5 for the first place, 73 s — the
"last move" of bAbI task 1 is beyond this model at this length (chapter 09, section 8). From the recipe's
``tfs train t5`` run (Python documentation, its 1000-token vocabulary): translate 61.7, summarize 84.0, qa 32.0
— worse than from scratch: a tokenizer and a pre-training from another domain cost more than they bring here
(chapter 09 pre-trains on unlabelled text of the tasks instead, and there it helps).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import metrics
from ..datasets import reports, stories, translation
from ..datasets._common import Splits
from ..datasets.corpus import split_sentences
from ..models.t5 import T5ForConditionalGeneration
from ..tokenizers.base import Tokenizer
from ..training import TrainConfig, Trainer, to_device
from .finetune import first_place_baseline
from .runs import check_input, common_train_config
from .t5 import decode_text, encode_text, load_t5_run, new_t5_model, t5_model_config, t5_sentinels, train_t5_tokenizer

__all__ = [
    "TASKS",
    "PREFIXES",
    "MAIN_METRIC",
    "BASELINE_NAMES",
    "TextPair",
    "task_source",
    "text_pair",
    "task_splits",
    "encode_pair",
    "TextToTextData",
    "text_to_text_data",
    "Seq2SeqBatch",
    "collate_pairs",
    "text_to_text_loss",
    "example_losses",
    "finetune_train_config",
    "make_finetune_trainer",
    "generate_texts",
    "score_task",
    "nearest_pair_translations",
    "copy_source",
    "lead_sentence",
    "baseline_predictions",
    "TaskScores",
    "evaluate_task",
    "prepare_finetune",
    "T5FinetuneResult",
    "finetune_t5",
]

IGNORE_INDEX = -100
BATCH_SIZE = 128  # pairs per evaluation batch: only the memory of an evaluation depends on it
GENERATE_BATCH_SIZE = 128  # sources decoded together


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# ----------------------------------------------------------------------------------- text-to-text: the tasks

TASKS = ("translate", "summarize", "qa")
PREFIXES = {"translate": "translate English to French: ", "summarize": "summarize: ", "qa": "question: "}
QA_CONTEXT = " context: "


@dataclass(frozen=True)
class TextPair:
    """One text-to-text example: the ``task``, the ``source`` (prefix + input), the ``target`` text, and the
    generator's ``example`` it was made from (a NumberPair, Report or QAExample), which the baselines read."""

    task: str
    source: str
    target: str
    example: Any = field(default=None, compare=False, repr=False)


def _check_task(task) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def task_source(task: str, text: str, question: str | None = None) -> str:
    """The source string of ``task``: "translate English to French: {text}", "summarize: {text}", or for "qa"
    "question: {question} context: {text}" (T5's SQuAD format)."""
    _check_task(task)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if (task == "qa") != (question is not None):
        raise ValueError("a question is needed for task 'qa', and only there")
    if task == "qa":
        return f"{PREFIXES['qa']}{question}{QA_CONTEXT}{text}"
    return PREFIXES[task] + text


def text_pair(task: str, example: Any) -> TextPair:
    """The TextPair of one generated example: a ``translation.NumberPair`` (English -> French), a
    ``reports.Report`` (report -> summary) or a ``stories.QAExample`` (question + story -> answer)."""
    _check_task(task)
    kinds = {"translate": translation.NumberPair, "summarize": reports.Report, "qa": stories.QAExample}
    if not isinstance(example, kinds[task]):
        raise TypeError(f"a {task!r} example must be a {kinds[task].__name__}, got {type(example).__name__}")
    if task == "translate":
        return TextPair(task, task_source(task, example.english), example.french, example)
    if task == "summarize":
        return TextPair(task, task_source(task, example.report), example.summary, example)
    return TextPair(task, task_source(task, example.story, example.question), example.answer, example)


def task_splits(task: str, *, n_train: int = 2000, n_validation: int = 200, n_test: int = 200, seed: int = 0
                ) -> Splits[TextPair]:  # fmt: skip
    """Train / validation / test TextPairs of ``task`` from the package's generators (splits never share an
    example): ``make_number_splits`` (numbers 0–9999), ``make_report_splits`` (all three domains) or
    ``make_story_splits`` (bAbI task 1)."""
    _check_task(task)
    sizes = dict(n_train=n_train, n_validation=n_validation, n_test=n_test, seed=seed)
    if task == "translate":
        splits = translation.make_number_splits(**sizes)
    elif task == "summarize":
        splits = reports.make_report_splits(**sizes)
    else:
        splits = stories.make_story_splits(task=1, **sizes)
    return Splits(*([text_pair(task, e) for e in part] for part in (splits.train, splits.validation, splits.test)))


def encode_pair(tokenizer: Tokenizer, pair: TextPair) -> tuple[list[int], list[int]]:
    """(source ids + ``</s>``, target ids + ``</s>``): the model reads the first and learns to write the second."""
    eos = tokenizer.eos_id
    return [*encode_text(tokenizer, pair.source), eos], [*encode_text(tokenizer, pair.target), eos]


@dataclass
class TextToTextData:
    """The pairs of one or several tasks, encoded once by :func:`text_to_text_data`.

    tokenizer — T5's vocabulary; tasks — the task names; train, validation, test — TextPairs of every task (task
    after task); train_ids, validation_ids — their encodings (:func:`encode_pair`); max_target_len — the longest
    training target in tokens, per task (generation stops a little after it); options — the keywords that
    rebuild it.
    """

    tokenizer: Tokenizer
    tasks: tuple[str, ...]
    train: list[TextPair]
    validation: list[TextPair]
    test: list[TextPair]
    train_ids: list[tuple[list[int], list[int]]]
    validation_ids: list[tuple[list[int], list[int]]]
    max_target_len: dict[str, int]
    options: dict = field(default_factory=dict)

    def pairs(self, split: str, task: str) -> list[TextPair]:
        """The TextPairs of one task in one split ("train", "validation" or "test")."""
        if split not in ("train", "validation", "test"):
            raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}")
        if task not in self.tasks:
            raise ValueError(f"task {task!r} is not among this data's tasks {self.tasks}")
        return [p for p in getattr(self, split) if p.task == task]


def text_to_text_data(
    tasks: Sequence[str] = TASKS,
    *,
    tokenizer: Tokenizer | None = None,
    vocab_size: int = 1000,
    n_train: int = 2000,
    n_validation: int = 200,
    n_test: int = 200,
    seed: int = 0,
) -> TextToTextData:
    """The text-to-text data of ``tasks`` (one or several of :data:`TASKS`), every split of every task drawn with
    ``seed`` (:func:`task_splits`). ``tokenizer``: a T5 tokenizer (a pre-trained run's); None trains one of
    ``vocab_size`` on the training sources and targets (:func:`train_t5_tokenizer`)."""
    tasks = tuple(tasks)
    if not tasks or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks must be distinct names among {TASKS}, got {tasks!r}")
    for task in tasks:
        _check_task(task)
    splits = [task_splits(t, n_train=n_train, n_validation=n_validation, n_test=n_test, seed=seed) for t in tasks]
    train = [p for s in splits for p in s.train]
    if not train:
        raise ValueError("n_train must be at least 1: there is nothing to fine-tune on")
    if tokenizer is None:
        tokenizer = train_t5_tokenizer([text for p in train for text in (p.source, p.target)], vocab_size)
    t5_sentinels(tokenizer)  # a T5 tokenizer: <pad>, </s>, sentinels
    train_ids = [encode_pair(tokenizer, p) for p in train]
    longest = {t: max((len(ids[1]) for p, ids in zip(train, train_ids) if p.task == t), default=1) for t in tasks}
    validation = [p for s in splits for p in s.validation]
    return TextToTextData(
        tokenizer=tokenizer,
        tasks=tasks,
        train=train,
        validation=validation,
        test=[p for s in splits for p in s.test],
        train_ids=train_ids,
        validation_ids=[encode_pair(tokenizer, p) for p in validation],
        max_target_len=longest,
        options=dict(tasks=list(tasks), n_train=n_train, n_validation=n_validation, n_test=n_test, seed=seed),
    )


# -------------------------------------------------------------------------------- text-to-text: the training


@dataclass(frozen=True)
class Seq2SeqBatch:
    """Padded source–target pairs: input_ids (B, S) long and valid (B, S) bool for the encoder; labels (B, L)
    long, the target ids with ``</s>``, -100 at padding (the decoder reads them shifted right)."""

    input_ids: Tensor
    valid: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def collate_pairs(encoded: Sequence[tuple[Sequence[int], Sequence[int]]], *, pad_id: int) -> Seq2SeqBatch:
    """Pad (source ids, target ids) pairs into a :class:`Seq2SeqBatch`: sources with ``pad_id``, labels with -100."""
    if not encoded:
        raise ValueError("collate_pairs needs at least one pair")
    s_len, l_len = max(len(s) for s, _ in encoded), max(len(t) for _, t in encoded)
    input_ids = torch.full((len(encoded), s_len), pad_id, dtype=torch.long)  # (B, S)
    valid = torch.zeros(len(encoded), s_len, dtype=torch.bool)  # (B, S)
    labels = torch.full((len(encoded), l_len), IGNORE_INDEX, dtype=torch.long)  # (B, L)
    for b, (source, target) in enumerate(encoded):
        input_ids[b, : len(source)] = torch.tensor(source, dtype=torch.long)
        valid[b, : len(source)] = True
        labels[b, : len(target)] = torch.tensor(target, dtype=torch.long)
    return Seq2SeqBatch(input_ids, valid, labels)


def text_to_text_loss(model: nn.Module, batch: Seq2SeqBatch) -> tuple[Tensor, dict[str, float]]:
    """Teacher-forced cross-entropy of the target tokens (the model's ``loss``) and their arg-max accuracy."""
    out = model(batch.input_ids, valid=batch.valid, labels=batch.labels)
    filled = batch.labels != IGNORE_INDEX  # (B, L)
    right = (out.logits.detach().argmax(dim=-1) == batch.labels) & filled
    return out.loss, {"token_accuracy": float(right.sum()) / max(int(filled.sum()), 1)}


@torch.no_grad()
def example_losses(model: nn.Module, tokenizer: Tokenizer, pairs: Sequence[TextPair], *, batch_size: int = 128
                   ) -> Tensor:  # fmt: skip
    """(N,) float64: each pair's mean cross-entropy per target token (``</s>`` included), teacher-forced — the
    per-example numbers a paired comparison of two models needs. The model is left in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(pairs), batch_size):
        batch = collate_pairs([encode_pair(tokenizer, p) for p in pairs[start : start + batch_size]],
                              pad_id=tokenizer.pad_id)  # fmt: skip
        batch = to_device(batch, device)
        logits = model(batch.input_ids, valid=batch.valid, labels=batch.labels).logits.float()  # (B, L, V)
        nll = F.cross_entropy(logits.transpose(1, 2), batch.labels, reduction="none")  # (B, L), 0 at padding
        filled = (batch.labels != IGNORE_INDEX).sum(dim=1)  # (B,)
        out.append((nll.sum(dim=1) / filled).double().cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def finetune_train_config(**overrides) -> TrainConfig:
    """The optimisation of a fine-tune: 1000 steps of 32 pairs, AdamW (weight decay 0.01, β₂ = 0.98), peak
    learning rate 2e-3 after 100 warm-up steps, cosine to 1e-4, clipping at 1 (:func:`~.runs.common_train_config`),
    the validation loss every 250 steps. ``overrides`` replace any field."""
    recipe = common_train_config(steps=1000, batch_size=32, weight_decay=0.01, betas=(0.9, 0.98), eval_every=250)
    return dataclasses.replace(recipe, **overrides)


def make_finetune_trainer(model: T5ForConditionalGeneration, data: TextToTextData, train_config: TrainConfig
                          ) -> Trainer:  # fmt: skip
    """A :class:`Trainer` that fine-tunes ``model`` (pre-trained or fresh) on ``data``'s training pairs, all tasks
    mixed: each step picks a task with probability proportional to its training pairs, then draws
    ``train_config.batch_size`` of its pairs uniformly (``train_config.seed`` seeds the draws). One task per batch
    keeps a batch of short translations from being padded to the length of reports; over the steps every task gets
    its share, as in T5's examples-proportional mixing. ``val_loss``: the mean cross-entropy per target token of
    the validation pairs, teacher-forced."""
    check_input("data", data, TextToTextData, "text_to_text_data")
    check_input("train_config", train_config, TrainConfig, "finetune_train_config")
    if not isinstance(model, nn.Module) or not hasattr(model, "generate"):
        raise TypeError(f"model must be a T5ForConditionalGeneration, got {type(model).__name__}")
    if model.config.vocab_size != data.tokenizer.vocab_size:
        raise ValueError(
            f"the model's vocabulary ({model.config.vocab_size}) is not the data's tokenizer's "
            f"({data.tokenizer.vocab_size}); fine-tune a model with the tokenizer it was pre-trained with"
        )
    pad = data.tokenizer.pad_id
    encoded = data.train_ids
    by_task = [[i for i, p in enumerate(data.train) if p.task == task] for task in data.tasks]
    by_task = [index for index in by_task if index]
    weights = torch.tensor([len(index) for index in by_task], dtype=torch.float64)  # examples-proportional
    validation = [collate_pairs(data.validation_ids[i : i + BATCH_SIZE], pad_id=pad)
                  for i in range(0, len(data.validation_ids), BATCH_SIZE)]  # fmt: skip

    def train_batches(generator: torch.Generator) -> Seq2SeqBatch:
        index = by_task[int(torch.multinomial(weights, 1, generator=generator))]  # one task per batch
        picks = torch.randint(0, len(index), (train_config.batch_size,), generator=generator).tolist()
        return collate_pairs([encoded[index[j]] for j in picks], pad_id=pad)

    def evaluate(m: nn.Module) -> dict[str, float]:
        total = tokens = 0.0
        for batch in validation:
            batch = to_device(batch, next(m.parameters()).device)
            n = int((batch.labels != IGNORE_INDEX).sum())
            total += float(m(batch.input_ids, valid=batch.valid, labels=batch.labels).loss) * n
            tokens += n
        return {"val_loss": total / max(tokens, 1.0)}

    return Trainer(
        model,
        train_config,
        loss_fn=text_to_text_loss,
        train_batches=train_batches,
        evaluate=evaluate if validation else None,
        count_tokens=lambda batch: int(batch.valid.sum()) + int((batch.labels != IGNORE_INDEX).sum()),
    )


@torch.no_grad()
def generate_texts(
    model: T5ForConditionalGeneration,
    tokenizer: Tokenizer,
    sources: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = GENERATE_BATCH_SIZE,
) -> list[str]:
    """Greedy decoding of each source (``model.generate``, KV cache): the text up to the first ``</s>``, special
    tokens dropped. Sources are decoded in batches of similar length; the answers come back in input order."""
    _check_positive_int("max_new_tokens", max_new_tokens)
    model.eval()
    device = next(model.parameters()).device
    encoded = [[*encode_text(tokenizer, s), tokenizer.eos_id] for s in sources]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    texts: list[str] = [""] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collate_pairs([(encoded[i], [0]) for i in chunk], pad_id=tokenizer.pad_id)
        out = model.generate(
            batch.input_ids.to(device), valid=batch.valid.to(device), max_new_tokens=max_new_tokens
        )  # (B, 1 + n), starting with the decoder's start token
        for i, row in zip(chunk, out[:, 1:].tolist()):
            if tokenizer.eos_id in row:
                row = row[: row.index(tokenizer.eos_id)]
            texts[i] = decode_text(tokenizer, row)
    return texts


# ---------------------------------------------------------------------------- text-to-text: scores, baselines

MAIN_METRIC = {"translate": "bleu", "summarize": "rougeL", "qa": "exact_match"}
BASELINE_NAMES = {"translate": "nearest training pair", "summarize": "lead sentence", "qa": "first place in story"}


def score_task(task: str, predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """The held-out scores of one task (see the module docstring): translate -> ``bleu`` (corpus BLEU, 0–100) and
    ``exact`` (percent of exact translations); summarize -> ``rouge1``, ``rouge2``, ``rougeL`` (mean F-measure,
    percent); qa -> ``exact_match`` and ``f1`` (SQuAD, percent)."""
    _check_task(task)
    if len(predictions) != len(references) or not references:
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references (need ≥ 1)")
    if task == "translate":
        exact = sum(p == r for p, r in zip(predictions, references)) / len(references)
        return {"bleu": metrics.corpus_bleu(list(predictions), list(references)).score, "exact": 100.0 * exact}
    if task == "summarize":
        rouge = metrics.rouge_scores(list(predictions), list(references))
        return {name: 100.0 * score.fmeasure for name, score in rouge.items()}
    return metrics.squad_scores(list(predictions), list(references))


def _input_text(pair: TextPair) -> str:
    """The source without its task prefix."""
    return pair.source[len(PREFIXES[pair.task]) :] if pair.task != "qa" else pair.source


def nearest_pair_translations(train: Sequence[TextPair], pairs: Sequence[TextPair]) -> list[str]:
    """For each pair, the target of the training pair whose input shares the most words with its input (the
    overlap of the two bags of words, Σ_w min(n_w, n'_w)); among equal overlaps the one closest in length, then the
    earlier one. A translation memory that knows no dictionary, only the training pairs: an input seen in
    training gets its own translation back."""
    if not train:
        raise ValueError("the nearest-pair baseline needs at least one training pair")
    if not pairs:
        return []
    vocab: dict[str, int] = {}
    memory_words = [[vocab.setdefault(w, len(vocab)) for w in _input_text(p).split()] for p in train]
    query_words = [[vocab.get(w, -1) for w in _input_text(p).split()] for p in pairs]

    def bags(rows: list[list[int]]) -> Tensor:
        x = torch.zeros(len(rows), len(vocab), dtype=torch.long)  # (N, W) word counts; unseen words left out
        for i, row in enumerate(rows):
            for w in row:
                if w >= 0:
                    x[i, w] += 1
        return x

    memory, queries = bags(memory_words), bags(query_words)  # (N_train, W), (N, W)
    memory_len = torch.tensor([len(r) for r in memory_words])  # (N_train,)
    longest = max(int(memory_len.max()), max(len(r) for r in query_words)) + 1
    best = []
    for q, row in zip(queries, query_words):
        overlap = torch.minimum(q[None, :], memory).sum(dim=1)  # (N_train,)
        key = overlap * longest - (memory_len - len(row)).abs()  # overlap first, then the closest length
        best.append(int(key.argmax()))  # the first maximum: the earlier training pair on a tie
    return [train[i].target for i in best]


def copy_source(pairs: Sequence[TextPair]) -> list[str]:
    """The input text itself (the source without its prefix): a translation baseline that knows no French."""
    return [_input_text(p) for p in pairs]


def lead_sentence(pairs: Sequence[TextPair]) -> list[str]:
    """The first sentence of each report (``datasets.corpus.split_sentences``): summarisation's lead baseline."""
    return [split_sentences(p.example.report)[0] for p in pairs]


def baseline_predictions(task: str, pairs: Sequence[TextPair], train: Sequence[TextPair]) -> list[str]:
    """The baseline's answer to each pair of ``task`` (:data:`BASELINE_NAMES`): the nearest training pair's French,
    the lead sentence, or the first place word of the story (``recipes.finetune.first_place_baseline``)."""
    _check_task(task)
    if task == "translate":
        return nearest_pair_translations([p for p in train if p.task == task], pairs)
    if task == "summarize":
        return lead_sentence(pairs)
    return [first_place_baseline(p.example) for p in pairs]


@dataclass
class TaskScores:
    """One task's held-out result: its ``metrics`` and the ``baseline``'s (:func:`score_task`), the generated
    ``predictions``, the ``baseline_predictions``, and the ``pairs`` they answer (sources and references)."""

    task: str
    metrics: dict[str, float]
    baseline: dict[str, float]
    predictions: list[str]
    baseline_predictions: list[str]
    pairs: list[TextPair]

    @property
    def margin(self) -> float:
        """Main metric of the model minus the baseline's (:data:`MAIN_METRIC`)."""
        key = MAIN_METRIC[self.task]
        return self.metrics[key] - self.baseline[key]

    def describe(self) -> str:
        """One line: the main metric, the baseline's and the margin."""
        key = MAIN_METRIC[self.task]
        return (
            f"{self.task}: {key} {self.metrics[key]:.1f} on {len(self.pairs)} held-out pairs against "
            f"{self.baseline[key]:.1f} for the {BASELINE_NAMES[self.task]} baseline ({self.margin:+.1f})"
        )


def evaluate_task(model: T5ForConditionalGeneration, data: TextToTextData, task: str, *, split: str = "test"
                  ) -> TaskScores:  # fmt: skip
    """Generate every ``split`` pair of ``task`` greedily and score it against the references and the baseline;
    generation stops at ``</s>`` or after 1.5 × the longest training target of the task (+ 4 tokens)."""
    pairs = data.pairs(split, task)
    if not pairs:
        raise ValueError(f"the {split} split of {task!r} is empty")
    limit = int(1.5 * data.max_target_len[task]) + 4
    predictions = generate_texts(model, data.tokenizer, [p.source for p in pairs], max_new_tokens=limit)
    baseline = baseline_predictions(task, pairs, data.train)
    references = [p.target for p in pairs]
    return TaskScores(
        task, score_task(task, predictions, references), score_task(task, baseline, references), predictions,
        baseline, pairs,
    )  # fmt: skip


def prepare_finetune(
    tasks: Sequence[str] = ("translate",),
    *,
    from_run: str | os.PathLike | None = None,
    seed: int = 0,
    vocab_size: int = 1000,
    n_train: int = 2000,
    n_validation: int = 200,
    n_test: int = 200,
) -> tuple[T5ForConditionalGeneration, TextToTextData]:
    """Where a fine-tune starts: the model and the data of ``tasks``.

    ``from_run``: a ``tfs train t5`` run folder (``t5.load_t5_run``) — its model, in training mode, and its
    tokenizer; None: a tokenizer of ``vocab_size`` trained on the tasks' training text and a fresh model of the
    recipe's size (``t5.t5_model_config``) seeded with ``seed``. ``seed`` also draws the pairs (:func:`task_splits`).
    """
    sizes = dict(n_train=n_train, n_validation=n_validation, n_test=n_test, seed=seed)
    if from_run is not None:
        pretrained = load_t5_run(from_run)
        data = text_to_text_data(tasks, tokenizer=pretrained.tokenizer, **sizes)
        return pretrained.model.train(), data
    data = text_to_text_data(tasks, vocab_size=vocab_size, **sizes)
    tokenizer = data.tokenizer
    config = t5_model_config(tokenizer.vocab_size, pad_id=tokenizer.pad_id, eos_id=tokenizer.eos_id)
    return new_t5_model(config, seed), data


@dataclass
class T5FinetuneResult:
    """What :func:`finetune_t5` returns: the fine-tuned ``model`` (eval mode), the ``history``, the held-out
    ``scores`` of each task (:class:`TaskScores`), the ``seconds`` training took and the ``steps`` done."""

    model: T5ForConditionalGeneration
    history: list[dict]
    scores: dict[str, TaskScores]
    seconds: float
    steps: int


def finetune_t5(model: T5ForConditionalGeneration, data: TextToTextData, train_config: TrainConfig, *,
                split: str = "test") -> T5FinetuneResult:  # fmt: skip
    """Fine-tune ``model`` on every task of ``data`` at once (:func:`make_finetune_trainer`), then generate and
    score the ``split`` pairs of each task against its baseline (:func:`evaluate_task`)."""
    trainer = make_finetune_trainer(model, data, train_config)
    start = time.perf_counter()
    history = trainer.fit()
    seconds = time.perf_counter() - start
    model.eval()
    scores = {task: evaluate_task(model, data, task, split=split) for task in data.tasks}
    return T5FinetuneResult(model, list(history), scores, seconds, trainer.step)
