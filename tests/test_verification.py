"""Every registered numerical check passes: the torch code in float64 matches its NumPy reference.

Checks registered later (by other modules) are picked up automatically.
"""

from __future__ import annotations

import numpy as np
import pytest

from transformer_from_scratch.verification import CHECKS, FLOAT64_RTOL, Check, run_checks


def test_there_are_checks():
    names = [c.name for c in CHECKS]
    assert len(names) >= 4
    assert len(set(names)) == len(names), "check names must be unique"


@pytest.mark.parametrize("check", CHECKS, ids=[c.name for c in CHECKS])
@pytest.mark.parametrize("seed", [0, 1])
def test_check_passes(check, seed):
    result = check.run(seed)
    assert check.rtol <= FLOAT64_RTOL, f"{check.name}: a float64 check must not loosen rtol={FLOAT64_RTOL}"
    assert np.isfinite(result.max_rel_err), f"{check.name}: non-finite error {result}"
    assert result.passed, f"{check.name}: max relative error {result.max_rel_err:.3g} > rtol {result.rtol:g}"


def test_run_checks_reports_every_check():
    assert [r.name for r in run_checks()] == [c.name for c in CHECKS]


def test_a_wrong_implementation_fails_its_check():
    """The harness itself can fail: a 1e-8 relative discrepancy is caught, a shape mismatch raises."""
    ref = np.linspace(-1.0, 1.0, 10)
    assert not Check("off", lambda g: (ref * (1 + 1e-8), ref)).run().passed
    assert Check("same", lambda g: (ref.copy(), ref)).run().passed
    with pytest.raises(AssertionError, match="shape"):
        Check("shape", lambda g: (ref[:5], ref)).run()
