r"""What every recipe returns, and the folder a run leaves behind.

    Run                          model, tokenizer, history, report, data, trainer, folder: one class, every recipe
    Report                       what every recipe's report holds: parameters, steps, seconds
    RunSetup                     what defines a run besides its weights: task, configs, tokenizer, data fingerprint
    check_input(name, value, …)  a TypeError that names the argument and the function that makes the right thing
    common_train_config(...)     the optimisation every recipe starts from; each changes a few fields on top
    make_run_folder(base)        a fresh folder base/<timestamp> (…-2, …-3 for runs started in the same second)
    claim_run_folder(path, …)    a folder for a new run: refuses one that holds a run, or moves it aside
    read_run(folder)             the saved setup of a run folder (run.json, the configs, the tokenizer)
    check_resume(setup, path)    one line saying why a checkpoint cannot continue this run, or its step folder
    fit(trainer, setup, resume=…)  write the setup (or check it against the run resumed), train, time it
    finish_run(trainer, …)       history.jsonl complete, then the :class:`Run`

A recipe is always the same steps — build a trainer and its :class:`RunSetup`, ``fit``, measure the model on
held-out data — and ``finish_run``; the recipe modules differ only in the data, the model and the measurements.

A run folder (``train_config.out_dir``) is a run. Before the first step it holds::

    run.json                   the task, how to rebuild its data (``data``) and the data's SHA-256 fingerprint
    model_config.json          the model's config, to rebuild the model from a checkpoint
    train_config.json          the optimisation (``TrainConfig``), so a resumed run continues the same schedule
    tokenizer.json             the tokenizer, when the run has one that can be saved

and as it trains::

    history.jsonl              one JSON object per step, appended as each step ends (:func:`write_history`)
    step_000500/ …             checkpoints (``training.checkpoint``), each written atomically by the trainer

Resuming (``resume=`` a run folder or one of its step folders) continues *in* that folder when it is the run's
``out_dir``: ``history.jsonl`` is cut back to the checkpoint's step and grows from there. It is refused, in one
line, when the folder holds a run of another task, another model, another tokenizer or other data, or when
``train_config.steps`` is not beyond the checkpoint's step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..datasets._common import atomic_write_text
from ..training import History, TrainConfig, Trainer, latest_checkpoint, list_checkpoints
from ..training.trainer import RESUMABLE_FIELDS

__all__ = [
    "HISTORY_FILE",
    "MODEL_CONFIG_FILE",
    "RUN_FILE",
    "TOKENIZER_FILE",
    "TRAIN_CONFIG_FILE",
    "Run",
    "Report",
    "RunFolderError",
    "RunSetup",
    "SavedRun",
    "check_input",
    "check_resume",
    "claim_run_folder",
    "common_train_config",
    "fingerprint",
    "holds_a_run",
    "make_run_folder",
    "read_run",
    "run_folder_of",
    "write_history",
    "write_run_setup",
    "fit",
    "finish_run",
]

HISTORY_FILE = "history.jsonl"
TOKENIZER_FILE = "tokenizer.json"
MODEL_CONFIG_FILE = "model_config.json"
TRAIN_CONFIG_FILE = "train_config.json"
RUN_FILE = "run.json"
_RUN_FILES = (RUN_FILE, MODEL_CONFIG_FILE, TRAIN_CONFIG_FILE, TOKENIZER_FILE, HISTORY_FILE)


class RunFolderError(ValueError):
    """A run folder cannot be used as asked (it holds another run, another task, no checkpoint, …): one line."""


@dataclass(frozen=True)
class RunSetup:
    """What defines a run besides its weights, written into the run folder before training starts.

    task — "gpt", "bert", "xlnet", "copy", "reverse", "sort", …; data — the keywords that rebuild the data (the recipe's
    data function takes them; None when the data was given as objects that cannot be named); data_fingerprint —
    the SHA-256 of what the model trains and is measured on; tokenizer — saved when it has ``save``.
    """

    task: str
    model_config: Any
    train_config: TrainConfig
    data_fingerprint: str
    data: dict[str, Any] | None = None
    tokenizer: Any = None


@dataclass
class Run:
    """What every recipe returns.

    model — the trained model, in eval mode; tokenizer — what turns its ids back into text (a ``Tokenizer`` for GPT
    and BERT, the ``SymbolVocab`` of the synthetic tasks); history — one dict per step (``train_loss``, ``lr``, …;
    ``val_*`` at evaluation steps); report — the final held-out measurements (``LMReport``, ``BertReport``,
    ``XLNetReport``, ``Seq2SeqReport``); data — what the recipe trained on (``LMData``, ``BertData``,
    ``XLNetData``, ``Seq2SeqData``); trainer —
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
    """What every recipe's report holds besides its own measurements (``LMReport``, ``BertReport``,
    ``XLNetReport`` and ``Seq2SeqReport`` add those): the size of the model and the length of the run."""

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
    lines = [_history_line(record) for record in history]
    return atomic_write_text(path, "".join(lines))


def _history_line(record: dict[str, Any]) -> str:
    first = {k: record.get(k) for k in ("step", "train_loss", "val_loss", "tokens_per_s")}
    return json.dumps({**first, **{k: v for k, v in record.items() if k not in first}}) + "\n"


def _append_history(path: Path) -> Any:
    """``on_step`` for the trainer: append each record to ``history.jsonl`` as the step ends (flushed, so an
    interrupted run keeps every finished step)."""

    def append(record: dict[str, Any]) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(_history_line(record))

    return append


def fingerprint(*parts: Any) -> str:
    """The SHA-256 of the data a run trains and is measured on: tensors by their bytes, anything else by its
    JSON text. Two runs with equal fingerprints saw exactly the same ids in the same order."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            digest.update(str((part.dtype, tuple(part.shape))).encode())
            digest.update(part.detach().cpu().contiguous().numpy().tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=_plain).encode("utf-8"))
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def _run_folder(train_config: TrainConfig) -> Path | None:
    return None if train_config.out_dir is None else Path(train_config.out_dir)


def holds_a_run(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds (part of) a run: any of its files, or a checkpoint."""
    folder = Path(folder)
    return any((folder / name).exists() for name in _RUN_FILES) or bool(list_checkpoints(folder))


def claim_run_folder(path: str | os.PathLike, *, overwrite: bool = False) -> tuple[Path, Path | None]:
    """A folder for a new run at ``path``: created when missing; an existing empty folder (or one that holds no
    run) is used as it is. One that holds a run is refused — unless ``overwrite``, which moves it aside to
    ``<path>.old-<timestamp>`` (never deletes it). Returns (the folder, where the old run went or None)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"{folder} is a file, not a folder; choose another path for the run")
    moved = None
    if folder.is_dir() and holds_a_run(folder):
        if not overwrite:
            raise RunFolderError(
                f"{folder} already holds a run; continue it with resume (--resume {folder}), or move it aside "
                "with overwrite (--overwrite)"
            )
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        moved, n = folder.with_name(f"{folder.name}.old-{stamp}"), 1
        while moved.exists():
            n += 1
            moved = folder.with_name(f"{folder.name}.old-{stamp}-{n}")
        os.replace(folder, moved)
    folder.mkdir(parents=True, exist_ok=True)
    return folder, moved


def write_run_setup(setup: RunSetup) -> Path | None:
    """Write ``run.json``, ``model_config.json``, ``train_config.json`` and (when it can be saved) the tokenizer
    into the run folder (``train_config.out_dir``; nothing without one) — before training, so that even an
    interrupted run can be read back and resumed. Refuses a folder that already holds a run
    (:func:`claim_run_folder`). Returns the folder."""
    folder = _run_folder(setup.train_config)
    if folder is None:
        return None
    claim_run_folder(folder)
    _write_setup_files(folder, setup)
    return folder


def _write_setup_files(folder: Path, setup: RunSetup) -> None:
    run = {"task": setup.task, "data": setup.data, "data_fingerprint": setup.data_fingerprint}
    atomic_write_text(folder / RUN_FILE, json.dumps(run, indent=1) + "\n")
    atomic_write_text(folder / MODEL_CONFIG_FILE, json.dumps(dataclasses.asdict(setup.model_config), indent=1) + "\n")
    train = {**setup.train_config.to_json(), "out_dir": None, "progress": False}  # where and how visibly: not saved
    atomic_write_text(folder / TRAIN_CONFIG_FILE, json.dumps(train, indent=1) + "\n")
    if hasattr(setup.tokenizer, "save"):
        setup.tokenizer.save(folder / TOKENIZER_FILE)


@dataclass(frozen=True)
class SavedRun:
    """A run folder as read back by :func:`read_run`: its ``run.json`` (task, data, data_fingerprint), its
    configs as plain dicts, the saved tokenizer's JSON (or None), and its checkpoints, oldest first."""

    folder: Path
    task: str
    data: dict[str, Any] | None
    data_fingerprint: str | None
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    tokenizer: dict[str, Any] | None
    checkpoints: list[Path]

    @property
    def latest(self) -> Path | None:
        return self.checkpoints[-1] if self.checkpoints else None


def run_folder_of(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """(run folder, checkpoint): ``path`` is a run folder (its newest checkpoint, or None) or one of its step
    folders (that checkpoint, in its parent)."""
    path = Path(path)
    if (path / "state.json").is_file():
        return path.parent, path
    return path, latest_checkpoint(path)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{path.parent} is not a run folder: it has no {path.name} ({what})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFolderError(f"{path} is damaged (not JSON: {e})") from None


def read_run(path: str | os.PathLike) -> SavedRun:
    """Read the run folder ``path`` (or the run folder of the step folder ``path``); one-line RunFolderError when
    it is missing, not a run folder or damaged."""
    folder, _ = run_folder_of(path)
    if not folder.exists():
        raise RunFolderError(f"no run folder at {folder}")
    if not folder.is_dir():
        raise RunFolderError(f"{folder} is a file, not a run folder")
    run = _read_json(folder / RUN_FILE, "written when a run starts")
    if not isinstance(run, dict) or not isinstance(run.get("task"), str):
        raise RunFolderError(f"{folder / RUN_FILE} is damaged (no task)")
    tokenizer = None
    if (folder / TOKENIZER_FILE).exists():
        tokenizer = _read_json(folder / TOKENIZER_FILE, "the tokenizer")
    return SavedRun(
        folder=folder,
        task=run["task"],
        data=run.get("data"),
        data_fingerprint=run.get("data_fingerprint"),
        model_config=_read_json(folder / MODEL_CONFIG_FILE, "the model's config"),
        train_config=_read_json(folder / TRAIN_CONFIG_FILE, "the optimisation"),
        tokenizer=tokenizer,
        checkpoints=list_checkpoints(folder),
    )


def _differences(saved: dict[str, Any], current: dict[str, Any], ignore=()) -> list[str]:
    keys = sorted(k for k in saved.keys() | current.keys() if k not in ignore and saved.get(k) != current.get(k))
    return [f"{k}={saved.get(k)!r} (asked: {current.get(k)!r})" for k in keys]


def check_resume(setup: RunSetup, path: str | os.PathLike) -> Path:
    """The checkpoint that ``setup`` can continue from ``path`` (a run folder or a step folder), or one line
    (:class:`RunFolderError`) saying why not: another task, model, tokenizer or data; no checkpoint; the run
    already at or past ``train_config.steps``; or optimisation settings that would make it another run."""
    saved = read_run(path)
    folder, checkpoint = run_folder_of(path)
    if saved.task != setup.task:
        raise RunFolderError(f"{folder} is a run of {saved.task!r}, not of {setup.task!r}")
    tokenizer = setup.tokenizer.to_dict() if hasattr(setup.tokenizer, "to_dict") else None
    if saved.tokenizer is not None and tokenizer is not None and json.loads(json.dumps(tokenizer)) != saved.tokenizer:
        raise RunFolderError(f"{folder} was trained with another tokenizer than this run's")
    if saved.data_fingerprint != setup.data_fingerprint:
        raise RunFolderError(f"{folder} was trained on other data (the fingerprint in its {RUN_FILE} differs)")
    model_changes = _differences(saved.model_config, json.loads(json.dumps(dataclasses.asdict(setup.model_config))))
    if model_changes:
        raise RunFolderError(f"{folder} trained another model: {', '.join(model_changes[:4])}")
    if checkpoint is None:
        raise RunFolderError(
            f"{folder} holds no checkpoint yet (the run stopped before its first one); start it again with "
            "overwrite (--overwrite)"
        )
    step = _checkpoint_step(checkpoint)
    steps = setup.train_config.steps
    if steps <= step:
        raise RunFolderError(
            f"{checkpoint} is at step {step}, and this run is asked for {steps} steps; ask for more than {step} "
            "steps to train further"
        )
    current = setup.train_config.to_json()
    changes = _differences(saved.train_config, current, ignore=RESUMABLE_FIELDS)
    if changes:
        raise RunFolderError(f"{folder} was trained with {', '.join(changes)}; drop those changes to continue it")
    return checkpoint


def _checkpoint_step(checkpoint: Path) -> int:
    try:
        state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
        return int(state["step"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunFolderError(f"{checkpoint} is not a readable checkpoint ({e})") from None


def fit(trainer: Trainer, setup: RunSetup | None = None, *, resume: str | os.PathLike | None = None
        ) -> tuple[History, float]:  # fmt: skip
    """Prepare the run folder, train until ``config.steps`` (or an early stop), leave the model in eval mode;
    return the history and the seconds training took.

    A new run writes its setup first (:func:`write_run_setup`). ``resume`` (a run folder or a step folder) is
    checked against ``setup`` (:func:`check_resume`) and restored; when it is this run's own folder the run
    continues there (``history.jsonl`` cut back to the checkpoint), else the setup is written to the new folder.
    Each finished step is appended to ``history.jsonl`` as it ends.
    """
    folder = _run_folder(trainer.config)
    checkpoint = None
    if resume is not None:
        checkpoint = check_resume(setup, resume) if setup is not None else resume
    continuing = folder is not None and checkpoint is not None
    continuing = continuing and run_folder_of(checkpoint)[0].resolve() == folder.resolve()
    if folder is not None and setup is not None and not continuing:
        write_run_setup(setup)
    if checkpoint is not None:
        trainer.resume(checkpoint)
    if continuing and setup is not None:  # the same run, maybe asked for more steps: the folder says how long
        _write_setup_files(folder, setup)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_history(trainer.history, folder / HISTORY_FILE)  # empty, or the resumed run's steps so far
        trainer.on_step = _append_history(folder / HISTORY_FILE)
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
