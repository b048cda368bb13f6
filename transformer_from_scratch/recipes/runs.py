r"""What every recipe returns, and the folder a run leaves behind.

    Run                          model, tokenizer, history, report, data, trainer, folder: one class, three recipes
    Report                       what every recipe's report holds: parameters, steps, seconds
    check_input(name, value, …)  a TypeError that names the argument and the function that makes the right thing
    common_train_config(...)     the optimisation the three recipes share; each changes a few fields on top
    make_run_folder(base)        a fresh folder base/<timestamp> (…-2, …-3 for runs started in the same second)
    write_run_setup(config, …)   model_config.json and tokenizer.json, written before training starts
    fit(trainer, resume=…)       resume if asked, train to the end, and time it
    finish_run(trainer, …)       history.jsonl beside the checkpoints, then the :class:`Run`

A recipe is always the same four steps — build a trainer, ``write_run_setup``, ``fit``, measure the model on
held-out data — and ``finish_run``; the recipe modules differ only in the data, the model and the measurements.

A run folder (``train_config.out_dir``) holds::

    step_000500/ …             checkpoints (``training.checkpoint``), written by the trainer
    model_config.json          the model's config, to rebuild the model from a checkpoint
    tokenizer.json             the tokenizer, when the run has one that can be saved
    history.jsonl              one JSON object per step (:func:`write_history`)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from torch import nn

from ..datasets._common import atomic_write_text
from ..training import History, TrainConfig, Trainer

__all__ = [
    "HISTORY_FILE",
    "MODEL_CONFIG_FILE",
    "TOKENIZER_FILE",
    "Run",
    "Report",
    "check_input",
    "common_train_config",
    "make_run_folder",
    "write_history",
    "write_run_setup",
    "fit",
    "finish_run",
]

HISTORY_FILE = "history.jsonl"
TOKENIZER_FILE = "tokenizer.json"
MODEL_CONFIG_FILE = "model_config.json"


@dataclass
class Run:
    """What every recipe returns.

    model — the trained model, in eval mode; tokenizer — what turns its ids back into text (a ``Tokenizer`` for GPT
    and BERT, the ``SymbolVocab`` of the synthetic tasks); history — one dict per step (``train_loss``, ``lr``, …;
    ``val_*`` at evaluation steps); report — the final held-out measurements (``LMReport``, ``BertReport``,
    ``Seq2SeqReport``); data — what the recipe trained on (``LMData``, ``BertData``, ``Seq2SeqData``); trainer —
    the :class:`Trainer` that ran (its optimizer, generator and step); folder — where checkpoints and run files
    went (``train_config.out_dir``), or None.
    """

    model: nn.Module
    tokenizer: Any
    history: History
    report: Any
    data: Any
    trainer: Trainer
    folder: Path | None = None


@dataclass(frozen=True)
class Report:
    """What every recipe's report holds besides its own measurements (``LMReport``, ``BertReport`` and
    ``Seq2SeqReport`` add those): the size of the model and the length of the run."""

    n_parameters: int
    steps: int  # optimizer updates done
    seconds: float  # wall time of training


def check_input(name: str, value: Any, expected: type, made_by: str) -> None:
    """Raise a TypeError naming the argument, the type a recipe expects and the function that makes one."""
    if not isinstance(value, expected):
        raise TypeError(f"{name} must be a {expected.__name__} (from {made_by}), got {type(value).__name__}")


def common_train_config(*, steps: int, **changes) -> TrainConfig:
    """The optimisation every recipe starts from: AdamW with a linear warm-up over 100 steps to a peak learning
    rate of 2e-3, then half a cosine down to 1e-4; the global gradient norm clipped to 1; no progress bar (the
    command line and the notebooks turn it on). ``changes`` replace any other field."""
    base = TrainConfig(
        steps=steps,
        max_lr=2e-3,
        min_lr=1e-4,
        warmup_steps=100,
        schedule="cosine",
        grad_clip=1.0,
        progress=False,
    )
    return dataclasses.replace(base, **changes)


def make_run_folder(base: str | os.PathLike = "runs") -> Path:
    """Create and return a new folder ``base/<YYYYmmdd-HHMMSS>`` for one run.

    ``mkdir`` either creates a folder or fails, so two runs started in the same second (in one process or two)
    never share one: the second gets ``<timestamp>-2``, the third ``<timestamp>-3``.
    """
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = base / stamp, 1
    while True:
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            n += 1
            folder = base / f"{stamp}-{n}"


def write_history(history: History, path: str | os.PathLike) -> Path:
    """One JSON object per line and step: ``step``, ``train_loss``, ``val_loss`` (null where the step was not
    evaluated), ``tokens_per_s``, then the rest of the record (``lr``, ``grad_norm``, other metrics …). Written
    atomically: a reader never sees half a file."""
    lines = []
    for record in history:
        first = {k: record.get(k) for k in ("step", "train_loss", "val_loss", "tokens_per_s")}
        lines.append(json.dumps({**first, **{k: v for k, v in record.items() if k not in first}}))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def _run_folder(train_config: TrainConfig) -> Path | None:
    return None if train_config.out_dir is None else Path(train_config.out_dir)


def write_run_setup(train_config: TrainConfig, model_config: Any, tokenizer: Any = None) -> Path | None:
    """Create the run folder (``train_config.out_dir``; nothing without one) and write ``model_config.json`` and,
    when the tokenizer can be saved, ``tokenizer.json`` — before training, so that even the checkpoints of an
    interrupted run can be read back. Returns the folder."""
    folder = _run_folder(train_config)
    if folder is not None:
        config_json = json.dumps(dataclasses.asdict(model_config), indent=1) + "\n"
        atomic_write_text(folder / MODEL_CONFIG_FILE, config_json)
        if hasattr(tokenizer, "save"):
            tokenizer.save(folder / TOKENIZER_FILE)
    return folder


def fit(trainer: Trainer, *, resume: str | os.PathLike | None = None) -> tuple[History, float]:
    """Continue from the checkpoint ``resume`` (a step folder, or an ``out_dir``) when given, train until
    ``config.steps`` (or an early stop), and leave the model in eval mode. Returns the history and the seconds
    training took."""
    if resume is not None:
        trainer.resume(resume)
    start = time.perf_counter()
    history = trainer.fit()
    seconds = time.perf_counter() - start
    trainer.model.eval()
    return history, seconds


def finish_run(trainer: Trainer, *, tokenizer: Any, report: Any, data: Any) -> Run:
    """Write ``history.jsonl`` into the run folder (if the run has one) and gather the :class:`Run`."""
    folder = _run_folder(trainer.config)
    if folder is not None:
        write_history(trainer.history, folder / HISTORY_FILE)
    return Run(
        model=trainer.model,
        tokenizer=tokenizer,
        history=list(trainer.history),
        report=report,
        data=data,
        trainer=trainer,
        folder=folder,
    )
