"""The package's import graph: imports flow one way, downward through named floors, and never form a cycle.

DESIGN.md §1: cli → recipes → training → models / heads / objectives → stacks → blocks → attention / layers /
positional → functional / kernels / fused / masks / config. ``datasets``, ``tokenizers``, ``metrics`` and
``generation`` sit beside the core and import nothing from models or training; ``interop`` maps checkpoints as plain
data and imports no model code, so the models may call it; ``reference`` imports nothing of ours.

Every ``import`` statement counts — at the top of a file or inside a function (a "lazy" import that dodges a cycle
is still an edge), since a cycle means a function lives on the wrong floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "transformer_from_scratch"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Lower floors are imported by higher ones, never the other way round. Two parts on one floor may not import
# each other (a module may import from inside its own package).
FLOORS: list[tuple[str, ...]] = [
    ("_validation",),
    ("config", "reference"),
    ("kernels", "fused", "masks"),
    ("functional",),
    ("positional", "pooling", "metrics", "tokenizers"),
    ("datasets", "generation", "interop"),
    ("layers",),
    ("attention",),
    ("blocks",),
    ("stacks",),
    ("heads", "objectives"),
    ("models",),
    ("training",),
    ("recipes", "verification"),
    ("cli",),
    ("__main__",),
]
FLOOR = {part: level for level, parts in enumerate(FLOORS) for part in parts}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of the package that ``name`` imports, anywhere in the file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .. import x / from .a import b
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the module pkg.sub when it exists, else a name defined in pkg
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported_modules(name, path, set(found)) for name, path in found.items()}


def part(name: str) -> str:
    """The floor-level part a module belongs to: ``transformer_from_scratch.models.gpt`` -> ``models``."""
    return name.split(".")[1] if name != PACKAGE else PACKAGE


def test_every_part_of_the_package_has_a_floor():
    parts = {part(name) for name in modules()} - {PACKAGE}
    assert parts <= set(FLOOR), f"give these a floor in FLOORS: {sorted(parts - set(FLOOR))}"


def test_imports_flow_downward():
    upward = []
    for name, targets in import_graph().items():
        if name == PACKAGE:  # the package's __init__ re-exports the public API from every floor
            continue
        for target in targets:
            a, b = part(name), part(target)
            if target == PACKAGE:  # the package root: only the command line reads __version__ from it
                if a != "cli":
                    upward.append(f"{name} -> {PACKAGE} (the root imports every floor)")
                continue
            if a != b and FLOOR[b] >= FLOOR[a]:
                upward.append(f"{name} -> {target}  ({a} is on floor {FLOOR[a]}, {b} on {FLOOR[b]})")
    assert not upward, "imports that run upward or sideways:\n" + "\n".join(sorted(upward))


def test_the_training_machinery_imports_no_model_code():
    """training/ is generic (any model, any loss): the families' recipes live a floor above it, in recipes/."""
    ours = {
        f"{name} -> {target}"
        for name, targets in import_graph().items()
        if part(name) == "training"
        for target in targets
        if part(target) != "training"
    }
    assert not ours, "training imports the package's: " + ", ".join(sorted(ours))


def test_the_import_graph_has_no_cycle():
    graph = {name: targets - {PACKAGE} for name, targets in import_graph().items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [*path, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])) is not None:
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])) is not None:
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """A test that can fail: an import hidden inside a function is an edge like any other."""
    pkg = tmp_path / PACKAGE / "models"
    pkg.mkdir(parents=True)
    (tmp_path / PACKAGE / "__init__.py").write_text("")
    (tmp_path / PACKAGE / "training.py").write_text("")
    (pkg / "__init__.py").write_text("")
    source = "def f():\n    from ..training import Trainer\n    from .. import training\n"
    (pkg / "gpt.py").write_text(source)
    path = pkg / "gpt.py"
    known = {PACKAGE, f"{PACKAGE}.training", f"{PACKAGE}.models", f"{PACKAGE}.models.gpt"}
    name = ".".join(path.relative_to(tmp_path).with_suffix("").parts)
    assert imported_modules(name, path, known) == {f"{PACKAGE}.training"}
