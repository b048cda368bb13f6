"""What the Hugging Face converters share: local folders, key checks, shape checks and our GPT's layout.

Every function here works on plain data — parsed ``config.json`` dicts, state dicts (name -> tensor) and our
config dataclasses — never on a model, so that the models can call the converters (``from_pretrained``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file
from torch import Tensor

from ..config import GPTConfig

__all__ = [
    "LoadResult",
    "Converted",
    "read_config_json",
    "read_safetensors",
    "read_pretrained",
    "optional_fields",
    "check_family",
    "check_tied",
    "match_keys",
    "checked_state_dict",
    "require_keys",
    "gpt_state_shapes",
]


Converted = tuple[str, str, Tensor]  # (our key, the Hugging Face key it came from, the tensor in our layout)


class LoadResult(NamedTuple):
    """What a non-strict conversion left out, in Hugging Face names: ``missing`` (expected, absent — those
    parameters keep their values when the result is loaded with ``strict=False``) and ``unexpected`` (present,
    unused)."""

    missing: list[str]
    unexpected: list[str]


# ---- local folders -----------------------------------------------------------------------------------------


def read_config_json(path: str | os.PathLike) -> tuple[Path, dict]:
    """(folder, parsed config.json) of a local Hugging Face folder, with a clear error for each way it can be wrong."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"no such folder: {folder} (from_pretrained reads a local Hugging Face folder)")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; from_pretrained needs the folder holding config.json")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{folder} has no config.json (files present: {sorted(p.name for p in folder.iterdir())})"
        )
    try:
        return folder, json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_file} is not valid JSON: {err}") from None


def read_safetensors(folder: Path) -> dict[str, Tensor]:
    """Every tensor of ``model.safetensors``, or of the shards a ``model.safetensors.index.json`` names.

    Pickle files (``pytorch_model.bin`` …) are refused: unpickling can run arbitrary code.
    """
    single = folder / "model.safetensors"
    if single.is_file():
        return load_file(str(single))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        state: dict[str, Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            if not (folder / shard).is_file():
                raise FileNotFoundError(f"{index} names the shard {shard!r}, which is not in {folder}")
            state.update(load_file(str(folder / shard)))
        return state
    present = sorted(p.name for p in folder.iterdir())
    if any(name.endswith((".bin", ".pt", ".pth", ".ckpt")) for name in present):
        raise FileNotFoundError(
            f"{folder} has no model.safetensors, only pickle weights ({present}); pickle files are not loaded "
            "(they can run code). Convert once with transformers: "
            "AutoModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)"
        )
    raise FileNotFoundError(f"{folder} has no model.safetensors (files present: {present})")


def read_pretrained(
    path: str | os.PathLike,
    config_from_hf: Callable[[Mapping], object],
    state_dict_from_hf: Callable[[Mapping[str, Tensor], object], tuple[dict[str, Tensor], LoadResult]],
) -> tuple[object, dict[str, Tensor]]:
    """(our config, our state dict) of a local Hugging Face folder, converted strictly by one family's functions.

    config.json is read and checked first, so a checkpoint we cannot run is refused before its weights are read.
    The tensors keep the dtype they were saved in; ``model.load_state_dict`` casts them to the model's.
    """
    folder, hf_config = read_config_json(path)
    config = config_from_hf(hf_config)
    state, _ = state_dict_from_hf(read_safetensors(folder), config)
    return config, state


# ---- configs ---------------------------------------------------------------------------------------------------


def optional_fields(hf_config: Mapping) -> dict:
    """The fields every family reads the same way when config.json has them: ``initializer_range``, and
    ``pad_token_id`` as ``pad_id`` (so the model derives the padding mask from the ids when none is given)."""
    fields = {}
    if "initializer_range" in hf_config:
        fields["initializer_range"] = hf_config["initializer_range"]
    if hf_config.get("pad_token_id") is not None:
        fields["pad_id"] = hf_config["pad_token_id"]
    return fields


def check_family(config: GPTConfig, family: str, preset: str, **wanted) -> GPTConfig:
    """``config`` if it is a GPTConfig whose fields match ``wanted``; a clear error naming the preset if not."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    wrong = {name: getattr(config, name) for name, value in wanted.items() if getattr(config, name) != value}
    if wrong:
        raise ValueError(
            f"a {family} checkpoint needs a GPT with {wanted}; this model has {wrong} (use GPTConfig.{preset}() or "
            "config_from_hf)"
        )
    return config


# ---- state dicts -----------------------------------------------------------------------------------------------


def check_tied(hf_state_dict: Mapping[str, Tensor], tied: str, source: str, reason: str) -> set[str]:
    """Hugging Face lists a tied matrix under both of its names: if ``tied`` is there, it must equal ``source``.

    Returns the keys this check accounted for ({tied} or nothing). A missing ``source`` is left to the key check.
    """
    if tied not in hf_state_dict:
        return set()
    if source in hf_state_dict and not torch.equal(hf_state_dict[tied], hf_state_dict[source]):
        raise ValueError(f"{tied} differs from {source}: {reason}")
    return {tied}


def match_keys(
    hf_state_dict: Mapping[str, Tensor],
    expected: Iterable[str],
    accounted_for: set[str],
    *,
    described: str,
    strict: bool,
    allow_missing: bool,
) -> LoadResult:
    """The missing and unexpected Hugging Face keys; a ValueError listing them all when they are not allowed.

    ``accounted_for``: keys that are neither converted nor unexpected (checked buffers, tied duplicates).
    ``strict`` refuses any mismatch; otherwise unexpected keys are returned, and missing ones too if
    ``allow_missing``. ``described`` names what the state dict should have matched, e.g. ``GPT(n_layers=2)``.
    """
    expected = list(expected)
    missing = [key for key in expected if key not in hf_state_dict]
    unexpected = sorted(set(hf_state_dict) - set(expected) - accounted_for)
    if (missing and not allow_missing) or (strict and (missing or unexpected)):
        raise ValueError(
            f"the state dict does not match {described}:\n"
            f"  missing keys ({len(missing)}): {missing}\n"
            f"  unexpected keys ({len(unexpected)}): {unexpected}"
        )
    return LoadResult(missing, unexpected)


def checked_state_dict(
    converted: Iterable[Converted],
    shapes: Mapping[str, tuple[int, ...]],
    hf_state_dict: Mapping[str, Tensor],
) -> dict[str, Tensor]:
    """{our key: tensor} from (our key, Hugging Face key, converted tensor) triples, once every shape is the one
    the config implies (``shapes``); otherwise a ValueError listing each mismatch with both names."""
    state, wrong = {}, []
    for ours, theirs, value in converted:
        if tuple(value.shape) != shapes[ours]:
            wrong.append(f"{theirs} {tuple(hf_state_dict[theirs].shape)} -> {ours} {shapes[ours]}")
        state[ours] = value
    if wrong:
        raise ValueError("tensor shapes do not match (is the config the checkpoint's?):\n  " + "\n  ".join(wrong))
    return state


def require_keys(state_dict: Mapping[str, Tensor], keys: Iterable[str], described: str) -> None:
    """Before exporting ours: a ValueError naming every key of ``described`` that ``state_dict`` lacks."""
    absent = [key for key in keys if key not in state_dict]
    if absent:
        raise ValueError(f"the state dict lacks these keys of our {described}: {absent}")


def gpt_state_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every key of ``GPT(config).state_dict()`` and its shape: the layout both GPT-2 and Llama convert into.

    ``lm_head.weight`` is listed even when tied (it then *is* ``token.weight``), as ``state_dict()`` lists it.
    """
    c = config
    d, f, v = c.d_model, c.d_ff, c.vocab_size
    shapes = {"token.weight": (v, d)}
    if c.positional == "learned":
        shapes["position.weight"] = (c.max_len, d)
    linears = {f"self_attn.{name}": (d, d) for name in ("q_proj", "k_proj", "v_proj", "out_proj")}
    linears.update({"ff.w1": (f, d), "ff.w2": (d, f)})  # nn.Linear orientation (out, in)
    if c.activation == "swiglu":
        linears["ff.w3"] = (f, d)
    norm_params = ("weight", "bias") if c.norm == "layer" else ("weight",)  # RMSNorm has no bias
    for i in range(c.n_layers):
        prefix = f"decoder.layers.{i}."
        for name, shape in linears.items():
            shapes[f"{prefix}{name}.weight"] = shape
            if c.bias:
                shapes[f"{prefix}{name}.bias"] = shape[:1]
        shapes.update({f"{prefix}{norm}.{p}": (d,) for norm in ("norm1", "norm2") for p in norm_params})
    shapes.update({f"decoder.final_norm.{p}": (d,) for p in norm_params})
    shapes["lm_head.weight"] = (v, d)
    return shapes
