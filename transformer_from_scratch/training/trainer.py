r"""The training loop: one small, explicit loop that trains any model, written out step by step.

One optimizer step (``Trainer._train_step``) is::

    lr = schedule(step);  set_lr(optimizer, lr)                       schedules.py, step counted from 1
    for each of the A micro-batches:                                  gradient accumulation
        batch = train_batches(generator)                              drawn from the trainer's own generator
        loss  = loss_fn(model, batch)                                 under autocast when asked
        (loss / A).backward()                                         Σ over A of ∇(loss / A) = ∇ mean loss
    stop with NonFiniteLossError if the mean loss is NaN or ±inf      before the weights are touched
    grad_norm = clip_grad_norm_(params, grad_clip)                    clipping.py (or just measured)
    optimizer.step()                                                  optim.py's AdamW

and every ``eval_every`` steps it calls ``evaluate(model)`` in eval mode under ``torch.no_grad()``, stops
early when the watched metric has not improved for ``early_stopping_patience`` evaluations, and writes a
checkpoint every ``checkpoint_every`` steps (see ``checkpoint.py``).

The task is given as three callables, so any model fits:

* ``loss_fn(model, batch) -> loss`` — a 0-d tensor, or ``(loss, {"accuracy": 0.9, ...})`` to also log
  training metrics (averaged over the micro-batches, recorded as ``train_accuracy``);
* ``train_batches(generator) -> batch`` — draws one micro-batch of ``config.batch_size`` examples using the
  ``torch.Generator`` it is given (the trainer records the batch size with the run; the drawing is yours).
  The trainer owns that generator (seeded from ``config.seed``) and saves its state in checkpoints, which is
  what lets a resumed run draw exactly the batches the uninterrupted run would have drawn. A batch is a
  tensor, or a tuple / list / dict / dataclass of tensors; the trainer moves it to the model's device;
* ``evaluate(model) -> {"val_loss": 1.23, ...}`` (optional) — validation metrics, plain floats.

``fit()`` returns the history, a list with one dict per step::

    {"step": 10, "train_loss": 2.31, "lr": 0.001, "grad_norm": 0.87}        every step
    {..., "tokens_per_s": 5120.0}                                              with count_tokens=
    {..., "val_loss": 2.40}                                                    at evaluation steps
    {..., "stop_reason": "early stopping: val_loss did not improve ..."}      on the last one, if stopped early

Example::

    from transformer_from_scratch.datasets.batching import lm_batch
    from transformer_from_scratch.functional import cross_entropy
    from transformer_from_scratch.training import Trainer, TrainConfig

    def loss_fn(model, batch):
        x, y = batch                                                   # (B, T), (B, T)
        return cross_entropy(model(x), y)                              # logits (B, T, V)

    def train_batches(generator):
        return lm_batch(train_tokens, config.batch_size, context=64, generator=generator)

    def evaluate(model):
        return {"val_loss": float(loss_fn(model, val_batch))}

    config = TrainConfig(steps=500, batch_size=32, max_lr=3e-3, warmup_steps=50, eval_every=50,
                         early_stopping_patience=3, out_dir="runs/lm", checkpoint_every=100)
    trainer = Trainer(model, config, loss_fn=loss_fn, train_batches=train_batches, evaluate=evaluate)
    history = trainer.fit()
    # later, in a new process: same model class, same config, then
    trainer.resume("runs/lm"); trainer.fit()                           # continues the very same run

Several processes: launch the same script with ``torchrun --nproc_per_node=2 script.py``. The trainer then
initialises ``torch.distributed`` (gloo on the CPU, NCCL on GPUs) if the script has not, wraps the model in
``DistributedDataParallel``, and every rank draws the same global micro-batch and trains on its own slice of
the rows (the batch size must divide by the number of processes). DDP averages the gradients, so a step
equals a single-process step on the whole batch. Only rank 0 shows progress and writes checkpoints;
``evaluate`` runs on every rank and rank 0's early-stopping decision is the one all ranks follow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from .checkpoint import (
    checkpoint_dir_name,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_tensors,
    load_optimizer_state,
    model_tensors,
    optimizer_state_to_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from .clipping import clip_grad_norm_, grad_norm
from .optim import AdamW, param_groups_for_weight_decay
from .schedules import constant, cosine_with_warmup, inverse_sqrt, set_lr

__all__ = [
    "TrainConfig",
    "Trainer",
    "DivergenceError",
    "NonFiniteLossError",
    "History",
    "RESUMABLE_FIELDS",
    "to_device",
]

History = list[dict[str, Any]]
_SCHEDULES = ("cosine", "inverse_sqrt", "constant")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_RESERVED_KEYS = {"step", "train_loss", "lr", "grad_norm", "tokens_per_s", "stop_reason"}
# Config fields that may differ when resuming: they change how long / how visibly a run goes, not what it computes.
RESUMABLE_FIELDS = frozenset(
    {
        "steps",
        "progress",
        "out_dir",
        "checkpoint_every",
        "keep_checkpoints",
        "divergence_factor",
        "divergence_patience",
    }
)


class DivergenceError(RuntimeError):
    """Training diverged: the loss stayed above ``divergence_factor`` × its first value for
    ``divergence_patience`` steps in a row (see :class:`TrainConfig`). ``step``, ``value`` (the last loss) and
    ``checkpoint`` (the newest one written, or None) say where it stopped."""

    def __init__(self, message: str, *, step: int, value: float, checkpoint: Path | None):
        super().__init__(message)
        self.step, self.value, self.checkpoint = step, value, checkpoint


class NonFiniteLossError(DivergenceError):
    """Training produced a NaN or infinite loss (or gradient norm); the weights were not updated with it."""


def _check_int(name: str, value, low: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        expected = f"an integer ≥ {low}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _check_float(name: str, value, low: float, *, strict: bool = False, high: float | None = None) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value > low if strict else value >= low) and (high is None or value < high)
    if not ok:
        bounds = ("(" if strict else "[") + f"{low}, " + (f"{high})" if high is not None else "∞)")
        raise ValueError(f"{name} must be a finite number in {bounds}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run, validated on construction; change one with ``dataclasses.replace``.

    Args:
        steps: number of optimizer updates N.
        batch_size: examples (sequences, pairs, windows) per micro-batch. The trainer does not draw batches —
            ``train_batches`` does — but the batch size defines the run as much as the learning rate, so it is
            stored here: in checkpoints, and compared when resuming. Under DDP each of the W processes trains on
            batch_size / W of them.
        max_lr, min_lr, warmup_steps, schedule: the learning rate of update s (counted from 1):
            "cosine"       linear warm-up to max_lr over warmup_steps, then cosine down to min_lr at N;
            "inverse_sqrt" Vaswani et al. 2017 eq. (3), scaled so that it peaks at max_lr at s = warmup_steps
                           (the paper's d_model=512, warmup 4000 peak at (512·4000)^-½ ≈ 7.0e-4);
            "constant"     max_lr throughout (min_lr and warmup_steps unused).
        weight_decay, betas, eps: AdamW's; biases and norm gains are never decayed.
        grad_clip: clip the global gradient norm to this value; None measures it without clipping.
        grad_accumulation: micro-batches A per update; the loss of each is divided by A.
        eval_every: call ``evaluate`` every this many steps (None: never).
        early_stopping_patience: stop after this many evaluations in a row without improvement of
            ``early_stopping_metric`` (a key of evaluate's dict) in direction ``early_stopping_mode``
            ("min" or "max"). None: never stop early.
        out_dir: directory for checkpoints (None: none are written). With it, a checkpoint is written every
            ``checkpoint_every`` steps (None: only at the end of ``fit``) and the newest ``keep_checkpoints`` kept.
        autocast: None (full precision), "bf16" or "fp16" mixed precision on devices that support it; fp16 adds
            gradient scaling (``torch.amp.GradScaler``) against underflow.
        progress: show a tqdm progress bar (rank 0 only). The trainer prints nothing else.
        divergence_factor, divergence_patience: stop with :class:`DivergenceError` when the training loss stays
            above ``divergence_factor`` × the loss of the first step for ``divergence_patience`` steps in a row
            (a learning rate far too high); ``divergence_factor=None`` never stops. A NaN or infinite loss stops
            at once (:class:`NonFiniteLossError`).
        seed: seeds the trainer's data generator (``train_batches`` receives it). Weights are initialised by
            the caller, who seeds the global RNG (``seed_everything``) before building the model.
    """

    steps: int
    batch_size: int = 32
    max_lr: float = 1e-3
    min_lr: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float | None = 1.0
    grad_accumulation: int = 1
    eval_every: int | None = None
    early_stopping_patience: int | None = None
    early_stopping_metric: str = "val_loss"
    early_stopping_mode: str = "min"
    out_dir: str | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    autocast: str | None = None
    progress: bool = True
    seed: int = 0
    divergence_factor: float | None = 10.0
    divergence_patience: int = 20

    def __post_init__(self) -> None:
        _check_int("steps", self.steps, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_float("max_lr", self.max_lr, 0.0)
        _check_float("min_lr", self.min_lr, 0.0)
        if self.min_lr > self.max_lr:
            raise ValueError(f"min_lr={self.min_lr} must not exceed max_lr={self.max_lr}")
        _check_int("warmup_steps", self.warmup_steps, 0)
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {_SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "cosine" and self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be < steps={self.steps} for the cosine schedule")
        if self.schedule == "inverse_sqrt" and self.warmup_steps < 1:
            raise ValueError("the inverse_sqrt schedule needs warmup_steps ≥ 1 (its peak is at warmup_steps)")
        _check_float("weight_decay", self.weight_decay, 0.0)
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(self.betas))  # a list from JSON becomes the same tuple
        _check_float("betas[0]", self.betas[0], 0.0, high=1.0)
        _check_float("betas[1]", self.betas[1], 0.0, high=1.0)
        _check_float("eps", self.eps, 0.0, strict=True)
        if self.grad_clip is not None:
            _check_float("grad_clip", self.grad_clip, 0.0, strict=True)
        _check_int("grad_accumulation", self.grad_accumulation, 1)
        _check_int("eval_every", self.eval_every, 1, optional=True)
        _check_int("early_stopping_patience", self.early_stopping_patience, 1, optional=True)
        if self.early_stopping_patience is not None and self.eval_every is None:
            raise ValueError("early_stopping_patience needs eval_every: early stopping watches evaluations")
        if not isinstance(self.early_stopping_metric, str) or not self.early_stopping_metric:
            raise ValueError(f"early_stopping_metric must be a metric name, got {self.early_stopping_metric!r}")
        if self.early_stopping_mode not in ("min", "max"):
            raise ValueError(f"early_stopping_mode must be 'min' or 'max', got {self.early_stopping_mode!r}")
        if self.out_dir is not None:
            if not isinstance(self.out_dir, (str, os.PathLike)):
                raise TypeError(f"out_dir must be a path or None, got {type(self.out_dir).__name__}")
            object.__setattr__(self, "out_dir", os.fspath(self.out_dir))  # store a str: JSON-friendly
        _check_int("checkpoint_every", self.checkpoint_every, 1, optional=True)
        if self.checkpoint_every is not None and self.out_dir is None:
            raise ValueError("checkpoint_every needs out_dir: where should the checkpoints go?")
        _check_int("keep_checkpoints", self.keep_checkpoints, 1)
        if self.autocast not in (None, *_AUTOCAST_DTYPES):
            raise ValueError(f"autocast must be None, 'bf16' or 'fp16', got {self.autocast!r}")
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be a bool, got {type(self.progress).__name__}")
        _check_int("seed", self.seed, 0)
        if self.divergence_factor is not None:
            _check_float("divergence_factor", self.divergence_factor, 1.0, strict=True)
        _check_int("divergence_patience", self.divergence_patience, 1)

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer update ``step`` (counted from 1), from ``schedules.py``."""
        if self.schedule == "cosine":
            return cosine_with_warmup(step, self.max_lr, self.min_lr, self.warmup_steps, self.steps)
        if self.schedule == "inverse_sqrt":
            # factor · d^-½ · min(s^-½, s·W^-1.5) peaks at s = W with factor · (d·W)^-½; d = 1, factor = max_lr·√W
            # puts that peak at max_lr.
            return inverse_sqrt(step, 1, self.warmup_steps, factor=self.max_lr * self.warmup_steps**0.5)
        return constant(step, self.max_lr)

    def to_json(self) -> dict[str, Any]:
        """The config as plain JSON values (tuples become lists), as stored in checkpoints."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


# ------------------------------------------------------------------------------------------------ batches


def _map_tensors(fn: Callable[[Tensor], Tensor], batch: Any) -> Any:
    """Apply ``fn`` to every tensor in a batch: a tensor, or tuples / lists / dicts / dataclasses of them."""
    if isinstance(batch, Tensor):
        return fn(batch)
    if isinstance(batch, Mapping):
        return type(batch)({k: _map_tensors(fn, v) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(_map_tensors(fn, v) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_map_tensors(fn, v) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {f.name: _map_tensors(fn, getattr(batch, f.name)) for f in dataclasses.fields(batch) if f.init}
        return dataclasses.replace(batch, **changes)
    return batch  # numbers, strings, None: the same on every rank and device


def to_device(batch: Any, device: torch.device | str) -> Any:
    """The same batch with every tensor moved to ``device`` (a tensor, or tuples / lists / dicts / dataclasses)."""
    return _map_tensors(lambda t: t.to(device), batch)


def _shard(batch: Any, rank: int, world_size: int) -> Any:
    """Rank r of W keeps rows [r·B/W, (r+1)·B/W) of every tensor: the W slices concatenate to the batch."""

    def rows(t: Tensor) -> Tensor:
        if t.dim() == 0 or t.shape[0] % world_size != 0:
            raise ValueError(
                f"a batch tensor of shape {tuple(t.shape)} cannot be split into {world_size} equal slices along "
                f"its first (batch) dimension; make the batch size a multiple of the number of processes"
            )
        per_rank = t.shape[0] // world_size
        return t[rank * per_rank : (rank + 1) * per_rank]

    return batch if world_size == 1 else _map_tensors(rows, batch)


def _loss_and_metrics(output: Any) -> tuple[Tensor, dict[str, float]]:
    loss, metrics = output if isinstance(output, tuple) and len(output) == 2 else (output, {})
    if not isinstance(loss, Tensor) or loss.numel() != 1 or not loss.is_floating_point():
        raise TypeError(
            "loss_fn must return a floating-point loss tensor with one element (or (loss, metrics dict)), got "
            f"{type(loss).__name__}{tuple(loss.shape) if isinstance(loss, Tensor) else ''}"
        )
    if not isinstance(metrics, Mapping):
        raise TypeError(f"the metrics returned by loss_fn must be a dict of floats, got {type(metrics).__name__}")
    return loss.reshape(()), {str(k): float(v) for k, v in metrics.items()}


# ---------------------------------------------------------------------------------------- the trainer


class Trainer:
    """Trains ``model`` as described by ``config``; see the module docstring for the callables and an example.

    Args:
        model: any ``nn.Module``; it is trained in place (``trainer.model`` is the same object).
        config: a :class:`TrainConfig`.
        loss_fn: ``(model, batch) -> loss`` or ``(loss, metrics)``; receives the model to call (under DDP, the
            DDP wrapper — call it, do not reach into it).
        train_batches: ``(generator) -> batch``, one micro-batch per call.
        evaluate: ``(model) -> dict[str, float]``, called in eval mode without gradients; optional.
        count_tokens: ``(batch) -> int``; when given, the history reports ``tokens_per_s``.
        on_step: ``(record) -> None``, called with each step's history record as soon as it is complete (e.g. to
            append it to a log file); settable later as ``trainer.on_step``.
        device: where to train; default: where the model's parameters are (under torchrun with CUDA:
            ``cuda:LOCAL_RANK``).
        param_groups: the optimizer's param groups (dicts with "params" and optionally "weight_decay" and
            "lr_scale"); default ``param_groups_for_weight_decay(model, config.weight_decay)``. At step s a group's
            learning rate is ``config.lr_at(s) × lr_scale`` (``schedules.set_lr``): per-group rates follow the
            schedule and keep their ratios (``finetune.finetune_param_groups`` builds such groups).
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        *,
        loss_fn: Callable[[nn.Module, Any], Any],
        train_batches: Callable[[torch.Generator], Any],
        evaluate: Callable[[nn.Module], Mapping[str, float]] | None = None,
        count_tokens: Callable[[Any], int] | None = None,
        device: torch.device | str | None = None,
        on_step: Callable[[dict[str, Any]], None] | None = None,
        param_groups: list[dict] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        for name, fn in (("loss_fn", loss_fn), ("train_batches", train_batches)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
        for name, fn in (("evaluate", evaluate), ("count_tokens", count_tokens), ("on_step", on_step)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
        if config.early_stopping_patience is not None and evaluate is None:
            raise ValueError("config.early_stopping_patience is set but no evaluate= callable was given")
        self.config, self.loss_fn, self.train_batches = config, loss_fn, train_batches
        self.evaluate, self.count_tokens, self.on_step = evaluate, count_tokens, on_step

        # Device and processes. Under torchrun (WORLD_SIZE > 1) every process runs this same code.
        if device is None:
            first = next(model.parameters(), None)
            device = first.device if first is not None else torch.device("cpu")
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.autocast_dtype = self._check_autocast(config.autocast)  # fail before starting any process group
        self.rank, self.world_size = self._setup_distributed()
        self.model = model.to(self.device)
        self.wrapped = self.model  # what loss_fn calls: the model itself, or its DDP wrapper
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

        self.scaler = torch.amp.GradScaler(self.device.type) if config.autocast == "fp16" else None
        if param_groups is None:
            param_groups = param_groups_for_weight_decay(self.model, config.weight_decay)
        elif not (isinstance(param_groups, (list, tuple)) and all(isinstance(g, Mapping) for g in param_groups)):
            raise TypeError(f"param_groups must be a list of dicts (optimizer param groups), got {param_groups!r:.80}")
        self.optimizer = AdamW(
            [dict(g) for g in param_groups],
            lr=config.lr_at(1),
            betas=config.betas,
            eps=config.eps,
            weight_decay=config.weight_decay,
        )
        set_lr(self.optimizer, config.lr_at(1))  # each group's lr_scale applies from the start
        self.generator = torch.Generator().manual_seed(config.seed)  # the data generator, saved in checkpoints

        self.step = 0  # optimizer updates done so far; update s uses lr_at(s)
        self.history: History = []
        self.stop_reason: str | None = None
        self.best_metric: float | None = None  # early stopping: best value so far, when, evaluations since
        self.best_step: int | None = None
        self.evals_without_improvement = 0
        self.last_checkpoint: Path | None = None

    # ------------------------------------------------------------------------------------------- set-up

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes checkpoints (rank 0; the only one without torchrun)."""
        return self.rank == 0

    def _setup_distributed(self) -> tuple[int, int]:
        if not dist.is_available():
            return 0, 1
        if not dist.is_initialized():
            if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
                return 0, 1  # a plain `python script.py`
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")  # reads torchrun's env vars
        return dist.get_rank(), dist.get_world_size()

    def _check_autocast(self, name: str | None) -> torch.dtype | None:
        if name is None:
            return None
        dtype = _AUTOCAST_DTYPES[name]
        is_available = getattr(torch.amp, "is_autocast_available", lambda kind: kind in ("cpu", "cuda"))  # torch<2.4
        if not is_available(self.device.type):
            raise ValueError(f"autocast={name!r}: mixed precision is not available on device {self.device}")
        if self.device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError(f"autocast='bf16': {torch.cuda.get_device_name(self.device)} has no bfloat16; use 'fp16'")
        return dtype

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _all_mean(self, values: list[float]) -> list[float]:
        """The mean over all processes of each value (the values themselves in a single process)."""
        if self.world_size == 1:
            return values
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        t = torch.tensor(values, dtype=dtype, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return (t / self.world_size).tolist()

    # ---------------------------------------------------------------------------------------- training

    def fit(self, until: int | None = None) -> History:
        """Train until ``config.steps`` updates (or ``until``, to pause early), an early stop, or an error.

        Returns the history of the whole run so far (also ``trainer.history``). Can be called again to continue;
        a run resumed from a checkpoint continues from the checkpoint's step.
        """
        cfg = self.config
        until = cfg.steps if until is None else until
        _check_int("until", until, 0)
        if until > cfg.steps:
            raise ValueError(f"until={until} is beyond config.steps={cfg.steps}; raise steps with dataclasses.replace")
        bar = tqdm(total=until, initial=self.step, disable=not (cfg.progress and self.is_main), desc="training")
        try:
            while self.step < until and self.stop_reason is None:
                record = self._train_step()
                if self.evaluate is not None and cfg.eval_every is not None and self.step % cfg.eval_every == 0:
                    record.update(self._evaluate())
                    self._early_stopping(record)
                self.history.append(record)
                if self.on_step is not None and self.is_main:
                    self.on_step(record)
                self._check_divergence()
                bar.update(1)
                bar.set_postfix(loss=f"{record['train_loss']:.4g}", lr=f"{record['lr']:.3g}")
                if cfg.checkpoint_every is not None and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
        finally:
            bar.close()
        if cfg.out_dir is not None and self.step > 0 and not self._saved_current_step():
            self.save_checkpoint()  # the end of a run (or of a pause) is always saved
        return self.history

    def _train_step(self) -> dict[str, Any]:
        cfg, step = self.config, self.step + 1
        lr = set_lr(self.optimizer, cfg.lr_at(step))
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)  # gradients of the previous step stay readable until here
        start, tokens, loss_sum, metric_sums = time.perf_counter(), 0, 0.0, {}
        n_micro = cfg.grad_accumulation
        for i in range(n_micro):
            batch = self.train_batches(self.generator)  # the same global micro-batch on every rank
            if self.count_tokens is not None:
                tokens += int(self.count_tokens(batch))
            batch = to_device(_shard(batch, self.rank, self.world_size), self.device)
            last = i == n_micro - 1
            # DDP averages gradients across processes during backward; between micro-batches there is no need.
            sync = nullcontext() if (self.world_size == 1 or last) else self.wrapped.no_sync()
            with sync:
                with self._autocast():
                    loss, metrics = _loss_and_metrics(self.loss_fn(self.wrapped, batch))
                scaled = loss / n_micro  # Σ_i ∇(loss_i / A) = ∇ of the mean loss over the A micro-batches
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            loss_sum += float(loss.detach())
            for k, v in metrics.items():
                metric_sums[k] = metric_sums.get(k, 0.0) + v

        means = self._all_mean([loss_sum / n_micro] + [v / n_micro for v in metric_sums.values()])
        train_loss, metric_means = means[0], dict(zip(metric_sums, means[1:]))
        if not math.isfinite(train_loss):  # the same decision on every rank: train_loss is the all-rank mean
            self._raise_non_finite(f"loss became {train_loss}", step, train_loss)

        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # true gradients, before measuring or clipping them
        params = [p for p in self.model.parameters() if p.grad is not None]
        if cfg.grad_clip is not None:
            norm = float(clip_grad_norm_(params, cfg.grad_clip))
        else:
            norm = float(grad_norm(params))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the update when the fp16 gradients overflowed
            self.scaler.update()
        elif not math.isfinite(norm):
            self._raise_non_finite(f"gradient norm became {norm} (loss {train_loss:.6g})", step, norm)
        else:
            self.optimizer.step()
        self.step = step

        record: dict[str, Any] = {"step": step, "train_loss": train_loss, "lr": lr, "grad_norm": norm}
        if self.count_tokens is not None:
            record["tokens_per_s"] = tokens / max(time.perf_counter() - start, 1e-9)
        record.update({f"train_{k}": v for k, v in metric_means.items()})
        return record

    def _raise_non_finite(self, what: str, step: int, value: float) -> None:
        where = (
            f"the last checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was written"
        )
        raise NonFiniteLossError(
            f"{what} at step {step}; the weights were not updated with it ({where}). "
            "Lower max_lr, add warm-up or grad_clip, or check the data of this step.",
            step=step,
            value=value,
            checkpoint=self.last_checkpoint,
        )

    def _check_divergence(self) -> None:
        """Raise :class:`DivergenceError` when the last ``divergence_patience`` losses all exceed
        ``divergence_factor`` × the first step's loss. Read from the history alone, so a resumed run counts on."""
        cfg = self.config
        first = self.history[0]["train_loss"]
        if cfg.divergence_factor is None or first <= 0:
            return
        limit, recent = cfg.divergence_factor * first, self.history[-cfg.divergence_patience :]
        if len(recent) == cfg.divergence_patience and all(r["train_loss"] > limit for r in recent):
            last = recent[-1]
            where = f"the last checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint"
            raise DivergenceError(
                f"training diverged: the loss has stayed above {cfg.divergence_factor:g} × its first value "
                f"({first:.4g}) for {cfg.divergence_patience} steps and is {last['train_loss']:.4g} at step "
                f"{last['step']} ({where}); lower the learning rate (max_lr={cfg.max_lr:g}) or add warm-up",
                step=last["step"],
                value=last["train_loss"],
                checkpoint=self.last_checkpoint,
            )

    def _evaluate(self) -> dict[str, float]:
        self.model.eval()
        try:
            with torch.no_grad():
                metrics = self.evaluate(self.model)
        finally:
            self.model.train()
        if not isinstance(metrics, Mapping):
            raise TypeError(f"evaluate must return a dict of metric name -> float, got {type(metrics).__name__}")
        clash = _RESERVED_KEYS & set(metrics)
        if clash:
            raise ValueError(f"evaluate returned reserved history keys {sorted(clash)}; rename them (e.g. 'val_loss')")
        return {str(k): float(v) for k, v in metrics.items()}

    def _early_stopping(self, record: dict[str, Any]) -> None:
        cfg = self.config
        if cfg.early_stopping_patience is None:
            return
        name = cfg.early_stopping_metric
        if name not in record:
            raise ValueError(
                f"early_stopping_metric={name!r} is not among the metrics evaluate returned: "
                f"{sorted(k for k in record if k not in _RESERVED_KEYS)}"
            )
        value = record[name]
        if self.best_metric is None:
            better = not math.isnan(value)
        else:
            better = value < self.best_metric if cfg.early_stopping_mode == "min" else value > self.best_metric
        if better:
            self.best_metric, self.best_step, self.evals_without_improvement = value, self.step, 0
        else:
            self.evals_without_improvement += 1
        stop = self.evals_without_improvement >= cfg.early_stopping_patience
        if self.world_size > 1:  # every rank must stop at the same step, or the others wait forever: rank 0 decides
            flag = torch.tensor([int(stop)], device=self.device)
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
        if stop:
            self.stop_reason = (
                f"early stopping: {name} did not improve for {self.evals_without_improvement} evaluations "
                f"(best {self.best_metric} at step {self.best_step}, mode={cfg.early_stopping_mode!r})"
            )
            record["stop_reason"] = self.stop_reason

    # ------------------------------------------------------------------------------------- checkpoints

    def _saved_current_step(self) -> bool:
        return self.last_checkpoint is not None and self.last_checkpoint.name == checkpoint_dir_name(self.step)

    def _gather(self, t: Tensor) -> list[Tensor]:
        """``t`` from every rank (same shape everywhere), in rank order."""
        if self.world_size == 1:
            return [t]
        comm = t.to(self.device)
        parts = [torch.empty_like(comm) for _ in range(self.world_size)]
        dist.all_gather(parts, comm)
        return [p.cpu() for p in parts]

    def save_checkpoint(self, directory: str | os.PathLike | None = None) -> Path | None:
        """Write the complete training state; default ``<out_dir>/step_<step>``. Returns its path (None off rank 0).

        Under DDP every rank must call this (it gathers each rank's random-number-generator state).
        """
        if directory is None:
            if self.config.out_dir is None:
                raise ValueError("save_checkpoint() needs a directory, or config.out_dir")
            directory = Path(self.config.out_dir) / checkpoint_dir_name(self.step)
        tensors = model_tensors(self.model)  # "model.<name>"
        opt_tensors, opt_json = optimizer_state_to_checkpoint(self.optimizer)  # "optimizer.state.<i>.<name>"
        tensors.update(opt_tensors)
        tensors["rng.data_generator"] = self.generator.get_state()
        for r, state in enumerate(self._gather(torch.get_rng_state())):  # dropout draws from these
            tensors[f"rng.torch_cpu.rank{r}"] = state
        if self.device.type == "cuda":
            for r, state in enumerate(self._gather(torch.cuda.get_rng_state(self.device))):
                tensors[f"rng.cuda.rank{r}"] = state
        np_state = np.random.get_state()  # noqa: NPY002 — the caller's code may use the legacy global generator
        py_state = random.getstate()
        state = {
            "step": self.step,
            "world_size": self.world_size,
            "config": self.config.to_json(),
            "history": self.history,
            "stop_reason": self.stop_reason,
            "early_stopping": {
                "best_metric": self.best_metric,
                "best_step": self.best_step,
                "evals_without_improvement": self.evals_without_improvement,
            },
            "optimizer": opt_json,
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "python_random": [py_state[0], list(py_state[1]), py_state[2]],
            "numpy_random": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        }
        path = None
        if self.is_main:
            path = save_checkpoint(directory, tensors, state)
            if self.config.out_dir is not None and Path(directory).parent == Path(self.config.out_dir):
                prune_checkpoints(self.config.out_dir, self.config.keep_checkpoints, protect=directory)
        self.last_checkpoint = Path(directory)
        if self.world_size > 1:
            dist.barrier()  # no rank races ahead while rank 0 is still writing
        return path

    def resume(self, path: str | os.PathLike, *, strict: bool = True) -> None:
        """Restore the complete training state from a checkpoint directory, or from the newest in an ``out_dir``.

        Afterwards ``fit()`` continues the same run: same weights, optimizer moments, step and schedule position,
        history, early-stopping counters, data generator and dropout RNG — on the CPU, the resumed run's losses
        and weights are bit-identical to an uninterrupted run. With ``strict=True`` the checkpoint's config must
        equal this trainer's, except for {steps, progress, out_dir, checkpoint_every, keep_checkpoints}.
        """
        path = Path(path)
        if path.is_dir() and list_checkpoints(path):
            path = latest_checkpoint(path)
        tensors, state = load_checkpoint(path)
        if strict:
            saved, current = state["config"], self.config.to_json()
            changed = sorted(
                k for k in current.keys() | saved.keys() if k not in RESUMABLE_FIELDS and saved.get(k) != current.get(k)
            )
            if changed:
                details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
                raise ValueError(
                    f"{path} was written with a different config ({details}); pass strict=False to resume anyway"
                )
        load_model_tensors(self.model, tensors)
        load_optimizer_state(
            self.optimizer, {k: v for k, v in tensors.items() if k.startswith("optimizer.")}, state["optimizer"]
        )
        if self.scaler is not None and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.stop_reason = state["stop_reason"]
        stopping = state["early_stopping"]
        self.best_metric, self.best_step = stopping["best_metric"], stopping["best_step"]
        self.evals_without_improvement = int(stopping["evals_without_improvement"])

        self.generator.set_state(tensors["rng.data_generator"])
        saved_world = int(state["world_size"])
        # With a different number of processes the run cannot be the same one; rank r then takes rank r mod W's state.
        torch.set_rng_state(tensors[f"rng.torch_cpu.rank{self.rank % saved_world}"])
        cuda_key = f"rng.cuda.rank{self.rank % saved_world}"
        if self.device.type == "cuda" and cuda_key in tensors:
            torch.cuda.set_rng_state(tensors[cuda_key], self.device)
        py = state["python_random"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        npy = state["numpy_random"]
        np.random.set_state((npy[0], np.asarray(npy[1], dtype=np.uint32), *npy[2:]))  # noqa: NPY002
        self.last_checkpoint = path
