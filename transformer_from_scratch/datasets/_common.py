"""Small helpers shared by the corpus and the synthetic generators (private: import the public modules).

arguments         check_int(name, value, low, high)
seeded draws      make_generator, uniform_int, choice, bernoulli, permutation — all from a torch.Generator
distinct samples  draw_distinct(n, draw, key) — redraw repeats, so cut splits never share an example
splits            Splits(train, validation, test), draw_splits(make, n_train, n_validation, n_test) — one
                  call of a generator, cut; cut_splits, check_split_sizes; check_domains(domains, known)
files             atomic_write_text, write_jsonl / read_jsonl, write_tsv / read_tsv (UTF-8, "\\n" line ends)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import torch

T = TypeVar("T")

__all__ = [
    "check_int",
    "make_generator",
    "uniform_int",
    "choice",
    "bernoulli",
    "permutation",
    "draw_distinct",
    "Splits",
    "cut_splits",
    "check_split_sizes",
    "draw_splits",
    "check_domains",
    "atomic_write_text",
    "write_jsonl",
    "read_jsonl",
    "write_tsv",
    "read_tsv",
]


def check_int(name: str, value, low: int, high: int | None = None) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an int in [low, high] (no upper bound: high None)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        expected = f"an int ≥ {low}" if high is None else f"an int in [{low}, {high}]"
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def make_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """``generator`` as given, or a fresh one seeded with ``seed`` (default 0); never both."""
    if seed is not None and generator is not None:
        raise ValueError("pass either seed= or generator=, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    seed = 0 if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def uniform_int(g: torch.Generator, low: int, high: int) -> int:
    """One integer uniform on {low, …, high} (both ends included)."""
    return int(torch.randint(low, high + 1, (1,), generator=g))


def choice(g: torch.Generator, items: Sequence[T]) -> T:
    """One element of ``items``, uniformly."""
    return items[uniform_int(g, 0, len(items) - 1)]


def bernoulli(g: torch.Generator, p: float) -> bool:
    """True with probability ``p``."""
    return float(torch.rand((1,), generator=g)) < p


def permutation(g: torch.Generator, n: int) -> list[int]:
    """A uniformly random ordering of 0 … n-1."""
    return torch.randperm(n, generator=g).tolist()


def draw_distinct(n: int, draw: Callable[[], T], key: Callable[[T], Hashable], *, what: str) -> list[T]:
    """``n`` results of ``draw()`` whose ``key`` differ: a repeat is drawn again. Raises a ValueError when
    repeats keep coming (the space of possible examples is nearly exhausted), instead of looping forever."""
    check_int("n", n, 0)
    items: list[T] = []
    seen: set[Hashable] = set()
    budget = 50 * n + 1000  # repeats tolerated in all, before concluding that the space is too small
    while len(items) < n:
        item = draw()
        k = key(item)
        if k in seen:
            budget -= 1
            if budget < 0:
                raise ValueError(
                    f"could only draw {len(items)} distinct {what} out of n={n} requested; the generator's "
                    f"space is nearly exhausted — lower n or widen the generator's options"
                )
            continue
        seen.add(k)
        items.append(item)
    return items


@dataclass(frozen=True)
class Splits(Generic[T]):
    """Disjoint train / validation / test examples of one generator (cut from one call, in that order)."""

    train: list[T]
    validation: list[T]
    test: list[T]


def cut_splits(items: Sequence[T], n_train: int, n_validation: int, n_test: int) -> Splits[T]:
    """Cut ``items`` (exactly ``n_train + n_validation + n_test`` of them) into train, validation, test."""
    return Splits(
        train=list(items[:n_train]),
        validation=list(items[n_train : n_train + n_validation]),
        test=list(items[n_train + n_validation : n_train + n_validation + n_test]),
    )


def check_split_sizes(n_train: int, n_validation: int, n_test: int) -> int:
    """Validate the three split sizes; return their sum."""
    for arg, value in (("n_train", n_train), ("n_validation", n_validation), ("n_test", n_test)):
        check_int(arg, value, 0)
    return n_train + n_validation + n_test


def draw_splits(make: Callable[[int], Sequence[T]], n_train: int, n_validation: int, n_test: int) -> Splits[T]:
    """Train, validation and test examples cut, in that order, from ONE call ``make(n_train + n_validation +
    n_test)`` of a generator of distinct examples — so the splits never share an example."""
    total = check_split_sizes(n_train, n_validation, n_test)
    return cut_splits(make(total), n_train, n_validation, n_test)


def check_domains(domains: Iterable[str] | None, known: tuple[str, ...]) -> tuple[str, ...]:
    """``domains`` as a tuple (None: all of ``known``); a ValueError unless it is a non-empty subset of ``known``."""
    domains = known if domains is None else tuple(domains)
    if not domains or any(d not in known for d in domains):
        raise ValueError(f"domains must be a non-empty subset of {known}, got {domains!r}")
    return domains


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, "\\n" line ends) to ``path`` atomically: a temporary file in the same folder is
    written, flushed to disk, then renamed over ``path`` — a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a data file is readable by all, like any written file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def jsonl_line(row: dict) -> str:
    """One canonical JSON line: keys in the order given, non-ASCII kept, no spaces, a trailing newline."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write one JSON object per line (see :func:`jsonl_line`), atomically."""
    return atomic_write_text(path, "".join(jsonl_line(row) for row in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a file written by :func:`write_jsonl`; a malformed line raises a ValueError naming file and line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not a JSON line ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def write_tsv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Path:
    """Write a header line and tab-separated rows, atomically. Fields may not contain tabs or newlines."""
    lines = ["\t".join(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} fields, the header {tuple(header)} has {len(header)}")
        for field in row:
            if "\t" in field or "\n" in field:
                raise ValueError(f"TSV field {field!r} contains a tab or a newline")
        lines.append("\t".join(row))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_tsv(path: str | Path, header: Sequence[str]) -> list[tuple[str, ...]]:
    """Read a file written by :func:`write_tsv` with the given ``header`` -> rows of strings."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    expected = "\t".join(header)
    if not lines or lines[0] != expected:
        raise ValueError(f"{path} does not start with the header line {expected!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = tuple(line.split("\t"))
        if len(fields) != len(header):
            raise ValueError(f"{path}:{number}: expected {len(header)} tab-separated fields, got {line!r}")
        rows.append(fields)
    return rows
