"""Small helpers for runs: seeding every random source, choosing a device, counting parameters.

Library code never seeds globally (randomness is passed in as a ``generator``); notebooks, the CLI and
tests call :func:`seed_everything` once at the top.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

__all__ = ["seed_everything", "pick_device", "count_parameters"]

_DEVICE_CHOICES = ("cpu", "auto", "cuda", "mps")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU) with ``seed``.

    Returns a fresh CPU ``torch.Generator`` seeded with the same value, to pass to data and sampling
    code. Bitwise-reproducible GPU kernels additionally need ``torch.use_deterministic_algorithms(True)``,
    which is left to the caller because it makes some operations raise.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32) (NumPy's range), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 — the legacy global generator is exactly what is being seeded
    torch.manual_seed(seed)  # seeds the CPU generator and every CUDA device
    return torch.Generator().manual_seed(seed)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(prefer: str = "cpu") -> torch.device:
    """The device to run on: "cpu" (the default), "cuda", "mps", or "auto" (cuda -> mps -> cpu).

    Asking for "cuda" or "mps" where it is not available raises ``RuntimeError`` rather than silently
    falling back to the CPU; use "auto" to take the best device present.
    """
    if not isinstance(prefer, str) or prefer not in _DEVICE_CHOICES:
        raise ValueError(f"prefer must be one of {_DEVICE_CHOICES}, got {prefer!r}")
    if prefer == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"prefer='cuda' but CUDA is not available (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda}); use prefer='auto' or 'cpu'"
        )
    if prefer == "mps" and not _mps_available():
        raise RuntimeError("prefer='mps' but Apple's MPS backend is not available here; use prefer='auto' or 'cpu'")
    return torch.device(prefer)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters of ``module``; a tied (shared) parameter is counted once.

    With ``trainable_only=True`` (the default) frozen parameters (``requires_grad=False``) are left out.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    # Module.parameters() yields each Parameter object once, even when several modules share it.
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
