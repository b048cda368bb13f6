"""The NumPy references are an independent witness: they must never import torch (DESIGN.md §3).

Two checks, each able to fail on its own: a static one (no ``import torch`` and no import reaching out of
``reference/`` in any reference file) and a dynamic one (the whole reference package, loaded by file path,
imports and runs in a fresh interpreter where importing torch raises).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "transformer_from_scratch" / "reference"
REFERENCE_FILES = sorted(REFERENCE_DIR.glob("*.py"))


def forbidden_imports(source: str) -> list[str]:
    """Imports of torch, or relative imports leaving reference/ (the package around it imports torch)."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.split(".")[0] in ("torch", "transformer_from_scratch")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module.split(".")[0] in ("torch", "transformer_from_scratch"):
                bad.append(module)
            elif node.level >= 2:
                bad.append("." * node.level + module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            bad.append("__import__(...)")
    return bad


def test_reference_files_exist():
    names = {p.name for p in REFERENCE_FILES}
    assert {"__init__.py", "attention.py", "masks.py"} <= names


@pytest.mark.parametrize("path", REFERENCE_FILES, ids=[p.name for p in REFERENCE_FILES])
def test_reference_source_has_no_torch_import(path):
    assert forbidden_imports(path.read_text()) == [], f"{path.name} imports torch or code outside reference/"


def test_the_static_check_can_fail():
    assert forbidden_imports("import torch.nn as nn") == ["torch.nn"]
    assert forbidden_imports("from torch import Tensor") == ["torch"]
    assert forbidden_imports("from .. import functional") == [".."]
    assert forbidden_imports("import numpy as np\nfrom .masks import causal_mask") == []


_LOAD_WITH_TORCH_BLOCKED = textwrap.dedent(
    """
    import importlib.abc, importlib.util, sys
    from pathlib import Path

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("the NumPy reference must not import torch: " + name)
            return None

    sys.meta_path.insert(0, BlockTorch())
    ref_dir = Path(sys.argv[1])
    # Load reference/ as a stand-alone package by file path, bypassing transformer_from_scratch/__init__.py
    spec = importlib.util.spec_from_file_location(
        "reference_alone", ref_dir / "__init__.py", submodule_search_locations=[str(ref_dir)]
    )
    ref = importlib.util.module_from_spec(spec)
    sys.modules["reference_alone"] = ref
    spec.loader.exec_module(ref)
    for path in sorted(ref_dir.glob("*.py")):
        if path.stem != "__init__":
            importlib.import_module("reference_alone." + path.stem)
    # exercise the code paths too, in case an import hides inside a function
    import numpy as np
    x = np.random.default_rng(0).normal(size=(2, 2, 3, 4))
    ref.scaled_dot_product_attention(x, x, x, allowed=ref.causal_mask(3), bias=np.zeros((3, 3)))
    w = np.eye(4)
    ref.multi_head_attention(x[0], x[1], w, None, w, None, w, None, w, None, n_heads=2,
                             allowed=ref.cross_attention_mask(ref.padding_mask_from_lengths([2, 3], 3),
                                                              ref.padding_mask_from_ids([[1, 0, 0], [1, 1, 1]], 0)))
    ref.key_padding(ref.padding_mask_from_lengths([1, 2]))
    assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
    print("numpy-only")
    """
)


def _run_blocked(ref_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _LOAD_WITH_TORCH_BLOCKED, str(ref_dir)], capture_output=True, text=True, timeout=120
    )


def test_reference_package_imports_and_runs_with_torch_blocked():
    result = _run_blocked(REFERENCE_DIR)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy-only"


def test_the_dynamic_check_can_fail(tmp_path):
    """A copy of reference/ with one torch import added must make the subprocess fail."""
    for path in REFERENCE_FILES:
        (tmp_path / path.name).write_text(path.read_text())
    masks_py = tmp_path / "masks.py"
    masks_py.write_text(masks_py.read_text() + "\nimport torch  # a regression\n")
    result = _run_blocked(tmp_path)
    assert result.returncode != 0
    assert "must not import torch" in result.stderr
