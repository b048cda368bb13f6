"""The Hugging Face causal language models our :class:`models.gpt.GPT` reads — GPT-2 (:mod:`.hf_gpt2`) and Llama
(:mod:`.hf_llama`) — chosen by config.json's ``model_type``. ``GPT.from_pretrained`` and ``GPT.from_hf`` call it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

from torch import Tensor

from ..config import GPTConfig
from . import _hf, hf_gpt2, hf_llama
from ._hf import LoadResult

__all__ = ["MODEL_TYPES", "config_from_hf", "state_dict_from_hf", "read_pretrained"]

MODEL_TYPES = ("gpt2", "llama")


def config_from_hf(hf_config: Mapping, *, rope_convention: str = "half") -> GPTConfig:
    """A GPT-2 or Llama ``config.json`` (as a dict) -> :class:`GPTConfig`, by its ``model_type``.

    ``rope_convention`` is Llama's option (see :func:`hf_llama.config_from_hf`); GPT-2 has learned positions, so
    anything but the default is refused for it.
    """
    if not isinstance(hf_config, Mapping):
        raise TypeError(f"the config must be a mapping (the parsed config.json), got {type(hf_config).__name__}")
    model_type = hf_config.get("model_type")
    if model_type == "llama":
        return hf_llama.config_from_hf(hf_config, rope_convention=rope_convention)
    if model_type == "gpt2":
        if rope_convention != "half":
            raise ValueError(
                f"rope_convention={rope_convention!r} applies to rotary checkpoints (Llama); a GPT-2 checkpoint has "
                "learned positions"
            )
        return hf_gpt2.config_from_hf(hf_config)
    raise ValueError(f"config.json has model_type={model_type!r}; GPT reads the model types {list(MODEL_TYPES)}")


def state_dict_from_hf(
    hf_state_dict: Mapping[str, Tensor], config: GPTConfig, *, strict: bool = True
) -> tuple[dict[str, Tensor], LoadResult]:
    """A GPT-2 or Llama state dict -> (our GPT's state dict, result): Llama's converter for a rotary config,
    GPT-2's otherwise (each refuses a config that is not of its family)."""
    family = hf_llama if getattr(config, "positional", None) == "rope" else hf_gpt2
    return family.state_dict_from_hf(hf_state_dict, config, strict=strict)


def read_pretrained(path: str | os.PathLike, *, rope_convention: str = "half") -> tuple[GPTConfig, dict[str, Tensor]]:
    """(config, our GPT's state dict) of a local Hugging Face GPT-2 or Llama folder, converted strictly."""
    read_config = functools.partial(config_from_hf, rope_convention=rope_convention)
    return _hf.read_pretrained(path, read_config, state_dict_from_hf)
