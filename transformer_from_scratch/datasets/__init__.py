"""Data for the course: deterministic synthetic task generators (and, later, embedded corpora).

    synthetic.py   copy / reverse / sort over a small alphabet — seeded generators, disjoint splits,
                   padded encoder–decoder batches, committed samples in data/synthetic/

Provenance, sizes and licenses of every corpus: data/README.md.
"""

from .synthetic import (
    SAMPLE_SEED,
    SAMPLE_SIZE,
    TASKS,
    SymbolVocab,
    TaskSplits,
    iterate_batches,
    make_splits,
    make_task,
    read_samples,
    to_batch,
    write_samples,
)

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
