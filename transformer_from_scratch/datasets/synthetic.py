r"""Synthetic sequence-to-sequence tasks: copy, reverse and sort strings over a small alphabet.

    copy      c a b d a   ->   c a b d a
    reverse   c a b d a   ->   a d b a c
    sort      c a b d a   ->   a a b c d

Each example is a random string of length L ~ Uniform{min_len, …, max_len} whose symbols are drawn
uniformly and independently from the first ``alphabet_size`` lowercase letters. The target is a fixed
function of the source, so a model that has learned the task gets every example right: these are the
"does my Transformer work at all?" tasks of the course (reversal needs attention to a position far away,
sorting needs counting).

Token ids (:class:`SymbolVocab`): 0 = <pad>, 1 = <bos>, 2 = <eos>, then one id per symbol (3 = "a", …).
Pairs hold symbol ids only; :func:`to_batch` adds BOS/EOS to the target and pads, through
:func:`transformer_from_scratch.datasets.batching.pad_pairs`.

Determinism: every function draws from a ``torch.Generator`` — pass ``generator=`` or ``seed=`` (default
seed 0). Within one call the sources are distinct, so the train, validation and test splits of
:func:`make_splits` never share an example. The samples committed in ``data/synthetic/`` are written by
:func:`write_samples`; regenerate them from the repository root with

    python -c "from transformer_from_scratch.datasets import write_samples; write_samples('data/synthetic')"
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from ._common import check_int, check_split_sizes, make_generator
from .batching import Seq2SeqBatch, pad_pairs

__all__ = [
    "TASKS",
    "SymbolVocab",
    "make_task",
    "TaskSplits",
    "make_splits",
    "to_batch",
    "iterate_batches",
    "write_samples",
    "read_samples",
    "SAMPLE_SEED",
    "SAMPLE_SIZE",
]

TASKS = ("copy", "reverse", "sort")
SAMPLE_SEED = 0  # seed of the committed samples in data/synthetic/
SAMPLE_SIZE = 50  # examples per committed sample file

Pair = tuple[list[int], list[int]]


@dataclass(frozen=True)
class SymbolVocab:
    """Token ids of the synthetic tasks: three special tokens, then the first ``alphabet_size`` letters.

    >>> vocab = SymbolVocab(alphabet_size=4)
    >>> vocab.encode("cab"), vocab.decode([1, 5, 3, 4, 2, 0])
    ([5, 3, 4], 'cab')
    """

    alphabet_size: int = 10

    pad_id: ClassVar[int] = 0
    bos_id: ClassVar[int] = 1
    eos_id: ClassVar[int] = 2
    specials: ClassVar[tuple[str, ...]] = ("<pad>", "<bos>", "<eos>")

    def __post_init__(self) -> None:
        check_int("alphabet_size", self.alphabet_size, 1, len(string.ascii_lowercase))

    @property
    def symbols(self) -> str:
        """The alphabet, in id order: "abcdefghij" for alphabet_size = 10."""
        return string.ascii_lowercase[: self.alphabet_size]

    @property
    def first_symbol_id(self) -> int:
        """Id of the first letter; symbol i of the alphabet has id ``first_symbol_id + i``."""
        return len(self.specials)

    def __len__(self) -> int:
        """Vocabulary size V: specials plus alphabet."""
        return len(self.specials) + self.alphabet_size

    def encode(self, text: str) -> list[int]:
        """A string of alphabet symbols -> their ids (no BOS/EOS added)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str of symbols from {self.symbols!r}, got {type(text).__name__}")
        ids = []
        for i, ch in enumerate(text):
            k = self.symbols.find(ch)
            if k < 0:
                raise ValueError(f"symbol {ch!r} at position {i} of {text!r} is not in the alphabet {self.symbols!r}")
            ids.append(self.first_symbol_id + k)
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor, *, stop_at_eos: bool = True) -> str:
        """Ids -> string of symbols. <pad> and <bos> are skipped; decoding stops at the first <eos> (or skips
        it with ``stop_at_eos=False``). So a decoder output ``[bos, …, eos, pad, pad]`` decodes to its text."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"ids must be a 1-D sequence of token ids, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        out = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self):
                raise ValueError(f"token id {i!r} is outside the vocabulary of size {len(self)}")
            if i == self.eos_id and stop_at_eos:
                break
            if i >= self.first_symbol_id:
                out.append(self.symbols[i - self.first_symbol_id])
        return "".join(out)


def _target(name: str, source: list[int]) -> list[int]:
    if name == "copy":
        return list(source)
    if name == "reverse":
        return source[::-1]
    return sorted(source)  # symbol ids are in alphabetical order, so sorting ids sorts the letters


def make_task(
    name: str,
    n: int,
    *,
    min_len: int = 5,
    max_len: int = 12,
    alphabet_size: int = 10,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> list[Pair]:
    """``n`` (source_ids, target_ids) pairs of task ``name`` ("copy", "reverse" or "sort"), distinct sources.

    Ids follow :class:`SymbolVocab(alphabet_size) <SymbolVocab>`; no special tokens inside. Lengths are
    uniform on [min_len, max_len]; a repeated source is drawn again, so all sources differ (and ``n`` may not
    exceed the number of possible strings; when few strings of the shortest lengths exist, redrawing repeats
    makes those lengths rarer than uniform). Randomness: ``generator``, or a fresh one seeded with ``seed``
    (default 0). Same arguments, same pairs.
    """
    if name not in TASKS:
        raise ValueError(f"name must be one of {TASKS}, got {name!r}")
    check_int("n", n, 0)
    check_int("alphabet_size", alphabet_size, 1, len(string.ascii_lowercase))
    check_int("min_len", min_len, 1)
    check_int("max_len", max_len, min_len)
    possible = sum(alphabet_size**length for length in range(min_len, max_len + 1))
    if n > possible:
        raise ValueError(
            f"n={n} distinct sources requested, but only {possible} strings of length {min_len}..{max_len} exist "
            f"over {alphabet_size} symbols; lower n or widen the lengths or the alphabet"
        )
    g = make_generator(seed, generator)
    first = SymbolVocab(alphabet_size).first_symbol_id
    pairs: list[Pair] = []
    seen: set[tuple[int, ...]] = set()
    while len(pairs) < n:
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
        source = (torch.randint(0, alphabet_size, (length,), generator=g) + first).tolist()  # (L,) symbol ids
        if tuple(source) in seen:
            continue  # keep the sources distinct: this is what keeps the splits disjoint
        seen.add(tuple(source))
        pairs.append((source, _target(name, source)))
    return pairs


@dataclass(frozen=True)
class TaskSplits:
    """Disjoint train / validation / test pairs of one task."""

    train: list[Pair]
    validation: list[Pair]
    test: list[Pair]


def make_splits(
    name: str,
    *,
    n_train: int = 2000,
    n_validation: int = 200,
    n_test: int = 200,
    min_len: int = 5,
    max_len: int = 12,
    alphabet_size: int = 10,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> TaskSplits:
    """Train, validation and test pairs that never share a source: one call of :func:`make_task` for all
    ``n_train + n_validation + n_test`` examples, cut in that order. The same seed gives the same splits."""
    pairs = make_task(
        name,
        check_split_sizes(n_train, n_validation, n_test),
        min_len=min_len,
        max_len=max_len,
        alphabet_size=alphabet_size,
        seed=seed,
        generator=generator,
    )
    return TaskSplits(
        train=pairs[:n_train],
        validation=pairs[n_train : n_train + n_validation],
        test=pairs[n_train + n_validation :],
    )


def to_batch(pairs: Sequence[Pair]) -> Seq2SeqBatch:
    """Pad pairs into a :class:`Seq2SeqBatch` for an encoder–decoder: src (B, S) as is, tgt_in = [bos] + target,
    tgt_out = target + [eos] (ignore_index -100 after it), all padded with <pad> = 0."""
    return pad_pairs(pairs, SymbolVocab.pad_id, bos_id=SymbolVocab.bos_id, eos_id=SymbolVocab.eos_id)


def iterate_batches(
    pairs: Sequence[Pair],
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[Seq2SeqBatch]:
    """One pass over ``pairs`` in batches of ``batch_size`` (the last one smaller unless ``drop_last``).
    With ``shuffle=True`` the order is a permutation drawn from ``generator`` (required)."""
    check_int("batch_size", batch_size, 1)
    if shuffle and not isinstance(generator, torch.Generator):
        raise ValueError("shuffle=True needs generator= (a torch.Generator), so that the order is reproducible")
    order = torch.randperm(len(pairs), generator=generator).tolist() if shuffle else list(range(len(pairs)))
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for start in range(0, stop, batch_size):
        yield to_batch([pairs[i] for i in order[start : start + batch_size]])


def write_samples(
    folder: str | Path, *, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED, alphabet_size: int = 10
) -> list[Path]:
    """Write ``{task}_sample.tsv`` for every task into ``folder``: a header line ``source<TAB>target``, then
    ``n`` examples of :func:`make_task` (default lengths) as symbol strings. Returns the paths written.
    With the defaults this reproduces the committed files in ``data/synthetic/`` byte for byte."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = SymbolVocab(alphabet_size)
    paths = []
    for task in TASKS:
        pairs = make_task(task, n, alphabet_size=alphabet_size, seed=seed)
        lines = ["source\ttarget"] + [f"{vocab.decode(src)}\t{vocab.decode(tgt)}" for src, tgt in pairs]
        path = folder / f"{task}_sample.tsv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
        paths.append(path)
    return paths


def read_samples(path: str | Path) -> list[tuple[str, str]]:
    """Read a ``source<TAB>target`` file written by :func:`write_samples` -> [(source, target), …] strings."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != "source\ttarget":
        raise ValueError(f"{path} does not start with the header line 'source<TAB>target'")
    pairs = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 'source<TAB>target', got {line!r}")
        pairs.append((fields[0], fields[1]))
    return pairs
