"""Numerical verification of every module against its NumPy float64 reference.

Each check builds random inputs with a seeded generator, runs the torch implementation in float64 and the
reference in ``reference/``, and reports the largest relative error. ``tfs tour`` prints the table; the
test-suite asserts every check passes. Add a check next to the others when a module gains a reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Check", "CheckResult", "CHECKS", "register", "run_checks"]

FLOAT64_RTOL = 1e-10  # DESIGN.md §3: float64 torch vs float64 NumPy


@dataclass(frozen=True)
class CheckResult:
    name: str
    max_abs_err: float
    max_rel_err: float
    rtol: float

    @property
    def passed(self) -> bool:
        return self.max_rel_err <= self.rtol


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable[[torch.Generator], tuple[np.ndarray, np.ndarray]]  # -> (ours, reference)
    rtol: float = FLOAT64_RTOL

    def run(self, seed: int = 0) -> CheckResult:
        ours, ref = self.fn(torch.Generator().manual_seed(seed))
        ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
        if ours.shape != ref.shape:
            raise AssertionError(f"{self.name}: shape {ours.shape} differs from the reference's {ref.shape}")
        abs_err = np.abs(ours - ref)
        # relative to the overall scale of the reference, so near-zero entries do not blow it up
        scale = max(float(np.abs(ref).max(initial=0.0)), 1e-300)
        return CheckResult(
            self.name, float(abs_err.max(initial=0.0)), float(abs_err.max(initial=0.0) / scale), self.rtol
        )


CHECKS: list[Check] = []


def register(name: str, rtol: float = FLOAT64_RTOL):
    """Decorator adding a check ``fn(generator) -> (ours, reference)`` to :data:`CHECKS`."""

    def wrap(fn):
        CHECKS.append(Check(name, fn, rtol))
        return fn

    return wrap


def run_checks(seed: int = 0) -> list[CheckResult]:
    return [c.run(seed) for c in CHECKS]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ---- attention core (functional.py, masks.py, attention.py) ------------------------------------------
