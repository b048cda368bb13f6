r"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically, never unpickled.

One checkpoint is one directory holding two files::

    runs/reverse/step_000040/
        tensors.safetensors   every tensor: the weights ("model.*"), the optimizer's moment estimates
                              ("optimizer.*") and the random-number-generator states ("rng.*")
        state.json            everything else, readable in a text editor: format version, step, the
                              training config, the history so far, the optimizer's numbers (lr, betas,
                              step counts), and the SHA-256 of tensors.safetensors

Why two formats: ``torch.save`` pickles, and unpickling a file can run arbitrary code, so a checkpoint
downloaded from someone else is a security hole. ``safetensors`` stores only named tensors, and JSON only
numbers, strings and lists; loading either never executes anything.

Atomic writes: both files are written into a fresh temporary directory next to the target
(``.tmp-step_000040-…``), flushed to disk, and then the whole directory is moved into place with one
``os.replace`` — a single rename, which the operating system performs completely or not at all. A crash
mid-save leaves a stray ``.tmp-*`` directory (ignored and cleaned up by :func:`prune_checkpoints`), never
a half-written checkpoint under a real name, and the previous checkpoints are untouched.

Corruption is reported, not guessed around: a missing file, JSON that does not parse, or a tensor file whose
SHA-256 differs from the one recorded in ``state.json`` (truncated, bit-flipped, or from another save) raises
:class:`CheckpointError` naming the file.

Example::

    save_checkpoint("runs/demo/step_000010", {"model.w": w}, {"step": 10})
    tensors, state = load_checkpoint("runs/demo/step_000010")
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

__all__ = [
    "CheckpointError",
    "TENSORS_FILE",
    "STATE_FILE",
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_dir_name",
    "list_checkpoints",
    "latest_checkpoint",
    "prune_checkpoints",
    "model_tensors",
    "load_model_tensors",
    "load_model_weights",
    "optimizer_state_to_checkpoint",
    "load_optimizer_state",
]

TENSORS_FILE = "tensors.safetensors"
STATE_FILE = "state.json"
FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step_(\d+)$")
_TENSOR_REF = "__tensor__"  # JSON placeholder {"__tensor__": "optimizer.state.0.exp_avg"} for a tensor leaf


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupted; the message names the file."""


# ----------------------------------------------------------------------------------------------- writing


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename) to disk; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(directory: str | os.PathLike, tensors: dict[str, Tensor], state: dict[str, Any]) -> Path:
    """Write ``directory/tensors.safetensors`` and ``directory/state.json`` atomically; return the directory.

    ``tensors`` maps names to tensors (any device; they are copied to the CPU). ``state`` must be
    JSON-serialisable (numbers, strings, bools, None, lists, dicts with string keys). The keys ``format``
    and ``tensors_sha256`` are added. An existing checkpoint at ``directory`` is replaced.
    """
    directory = Path(directory)
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, Tensor):
            raise TypeError(f"tensors must map str -> torch.Tensor, got {name!r} -> {type(t).__name__}")
    # safetensors wants contiguous CPU tensors that share no memory (tied weights share it): copy each one.
    cpu_tensors = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}
    payload = safetensors_save(cpu_tensors)
    state = {"format": FORMAT_VERSION, **state, "tensors_sha256": hashlib.sha256(payload).hexdigest()}
    try:
        state_text = json.dumps(state, indent=1)
    except (TypeError, ValueError) as e:
        raise TypeError(f"state must be JSON-serialisable: {e}") from e

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{directory.name}-", dir=directory.parent))
    try:
        _write_bytes(tmp / TENSORS_FILE, payload)
        _write_bytes(tmp / STATE_FILE, state_text.encode("utf-8"))
        _fsync_dir(tmp)
        old = None
        if directory.exists():  # replacing: move the old one aside first (a rename cannot overwrite a full dir)
            old = directory.with_name(f".old-{directory.name}-{uuid.uuid4().hex[:8]}")
            os.replace(directory, old)
        os.replace(tmp, directory)  # the commit point: the checkpoint appears complete, or not at all
        _fsync_dir(directory.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


# ----------------------------------------------------------------------------------------------- reading


def load_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` -> ``(tensors, state)`` (tensors on the CPU).

    Raises :class:`CheckpointError` naming the file when the directory or a file is missing, ``state.json``
    does not parse, or ``tensors.safetensors`` does not match the checksum recorded in ``state.json``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    tensors_path, state_path = directory / TENSORS_FILE, directory / STATE_FILE
    for path in (tensors_path, state_path):
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: {directory} is not a complete checkpoint")

    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{state_path} is not valid JSON (garbled or truncated): {e}") from e
    if not isinstance(state, dict) or "tensors_sha256" not in state:
        raise CheckpointError(f"{state_path} is not a checkpoint state file (no 'tensors_sha256' entry)")
    if state.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{state_path} has checkpoint format {state.get('format')!r}; this version reads format {FORMAT_VERSION}"
        )

    payload = tensors_path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != state["tensors_sha256"]:
        raise CheckpointError(
            f"{tensors_path} is truncated or corrupted: its SHA-256 {digest[:12]}… differs from "
            f"{state['tensors_sha256'][:12]}… recorded in {state_path} ({len(payload)} bytes on disk)"
        )
    try:
        tensors = safetensors_load(payload)
    except (SafetensorError, ValueError, RuntimeError) as e:  # checksum matched, but the content is not safetensors
        raise CheckpointError(f"{tensors_path} is not a valid safetensors file: {e}") from e
    return tensors, state


# ------------------------------------------------------------------------------- a directory of checkpoints


def checkpoint_dir_name(step: int) -> str:
    """``step_000040``: zero-padded so that an alphabetical listing is also in step order."""
    return f"step_{step:06d}"


def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """The ``step_*`` checkpoint directories in ``out_dir``, oldest step first (temporary ones excluded)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out_dir.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The checkpoint directory with the highest step in ``out_dir``, or None when there is none."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def prune_checkpoints(out_dir: str | os.PathLike, keep: int, *, protect: str | os.PathLike | None = None) -> None:
    """Delete all but the ``keep`` newest checkpoints, and leftovers of interrupted saves (``.tmp-*``, ``.old-*``).

    ``protect`` — the checkpoint just written — is never deleted and counts as one of the ``keep``, even when the
    folder holds checkpoints of higher steps (left there by another run): the newest checkpoint of the current
    run always survives.
    """
    if keep < 1:
        raise ValueError(f"keep must be ≥ 1, got {keep}")
    out_dir = Path(out_dir)
    found = list_checkpoints(out_dir)
    protected = [p for p in found if protect is not None and p.resolve() == Path(protect).resolve()]
    others = [p for p in found if p not in protected]
    for path in others[: max(len(others) - (keep - len(protected)), 0)]:
        shutil.rmtree(path, ignore_errors=True)
    if out_dir.is_dir():
        for path in out_dir.iterdir():
            if path.is_dir() and (path.name.startswith(".tmp-step_") or path.name.startswith(".old-step_")):
                shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------ models and optimizers


def model_tensors(model: nn.Module, prefix: str = "model.") -> dict[str, Tensor]:
    """The model's ``state_dict`` (parameters and persistent buffers) with ``prefix`` added to every name."""
    return {prefix + name: t for name, t in model.state_dict().items()}


_MODEL_CONFIG_FILE = "model_config.json"  # written next to the checkpoints by recipes.runs (a floor above this one)
_SHOWN = 3  # names listed in a mismatch error; the count says how many there are in all


def _names(names: list[str]) -> str:
    """The first few of ``names``, and how many more there are."""
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _check_model_tensors(model: nn.Module, weights: dict[str, Tensor], source: Path | None) -> None:
    """Raise one ``ValueError`` when ``weights`` (names without prefix) do not fit ``model``: names missing from
    the checkpoint, names the model lacks, or shapes that differ — the first few of each, with both shapes."""
    expected = model.state_dict()  # name -> tensor: parameters and persistent buffers (a tied one under each name)
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    shapes = [  # in the model's order, so the first one named is the first that differs
        f"{name}: checkpoint {tuple(weights[name].shape)} vs model {tuple(t.shape)}"
        for name, t in expected.items()
        if name in weights and weights[name].shape != t.shape
    ]
    if not (missing or unexpected or shapes):
        return
    problems = []
    if shapes:
        problems.append(f"{len(shapes)} tensor(s) differ in shape ({_names(shapes)})")
    if missing:
        problems.append(f"{len(missing)} tensor(s) of the model are missing from the checkpoint ({_names(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) of the checkpoint are not in the model ({_names(unexpected)})")
    where = "the checkpoint" if source is None else f"the checkpoint {source}"
    config = None if source is None else source.parent / _MODEL_CONFIG_FILE
    if config is not None and config.is_file():
        rebuild = f"build the model from {config} (the configuration the run was trained with)"
    else:
        rebuild = f"build the model from the run's {_MODEL_CONFIG_FILE}, next to its checkpoints"
    raise ValueError(
        f"{where} does not fit this {type(model).__name__}: {'; '.join(problems)}. The checkpoint was written for "
        f"another model configuration; {rebuild}"
    )


def load_model_tensors(
    model: nn.Module, tensors: dict[str, Tensor], prefix: str = "model.", *, source: str | os.PathLike | None = None
) -> None:
    """Copy the ``prefix``-ed tensors into ``model`` (strict: every name must match, shapes must agree).

    A mismatch raises one ``ValueError`` listing the first differing names (with both shapes), before anything is
    copied; ``source``, the checkpoint directory, is named in it.
    """
    weights = {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}
    if not weights:
        raise CheckpointError(f"the checkpoint holds no tensors named '{prefix}*'")
    _check_model_tensors(model, weights, None if source is None else Path(source))
    model.load_state_dict(weights, strict=True)


def load_model_weights(directory: str | os.PathLike, model: nn.Module) -> dict[str, Any]:
    """Load only the weights of a checkpoint into ``model`` (e.g. to evaluate it); return its ``state.json``.

    ``model`` must have the architecture the checkpoint was written with — rebuild it from the run's
    ``model_config.json``; a model of another shape raises a ``ValueError`` naming the differing tensors.
    """
    tensors, state = load_checkpoint(directory)
    load_model_tensors(model, tensors, source=directory)
    return state


def _split_tensors(obj: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """Copy ``obj`` with every tensor leaf moved into ``tensors[prefix…]`` and replaced by a JSON reference."""
    if isinstance(obj, Tensor):
        tensors[prefix] = obj
        return {_TENSOR_REF: prefix}
    if isinstance(obj, dict):
        return {str(k): _split_tensors(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint (tensors and numbers only)")


def _join_tensors(obj: Any, tensors: dict[str, Tensor]) -> Any:
    """Inverse of :func:`_split_tensors`: replace each ``{"__tensor__": name}`` with ``tensors[name]``."""
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR_REF}:
            name = obj[_TENSOR_REF]
            if name not in tensors:
                raise CheckpointError(f"state.json refers to tensor {name!r}, which is not in {TENSORS_FILE}")
            return tensors[name]
        return {k: _join_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_tensors(v, tensors) for v in obj]
    return obj


def optimizer_state_to_checkpoint(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (named ``optimizer.state.<param>.<name>``) and JSON."""
    tensors: dict[str, Tensor] = {}
    as_json = _split_tensors(optimizer.state_dict(), "optimizer", tensors)
    return tensors, as_json


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], as_json: dict) -> None:
    """Inverse of :func:`optimizer_state_to_checkpoint`: rebuild the state dict and load it into ``optimizer``."""
    state_dict = _join_tensors(as_json, tensors)
    # JSON turned the integer parameter ids of "state" into strings, and tuples (betas) into lists: undo both.
    state_dict["state"] = {int(k): v for k, v in state_dict["state"].items()}
    if len(state_dict["param_groups"]) != len(optimizer.param_groups):
        raise CheckpointError(
            f"the checkpoint's optimizer has {len(state_dict['param_groups'])} parameter groups, "
            f"this optimizer has {len(optimizer.param_groups)}"
        )
    for saved, current in zip(state_dict["param_groups"], optimizer.param_groups):
        for key, value in current.items():
            if isinstance(value, tuple) and isinstance(saved.get(key), list):
                saved[key] = tuple(saved[key])
    optimizer.load_state_dict(state_dict)
