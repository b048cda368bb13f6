r"""NumPy reference for ``masks.py`` — boolean ``allowed`` masks, True where query i may attend to key j.

Written for the eye with explicit loops; numpy only, never torch. Mirrors the builders of
``transformer_from_scratch.masks`` so that the torch versions can be checked entry by entry.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "causal_mask",
    "padding_mask_from_lengths",
    "padding_mask_from_ids",
    "key_padding",
    "cross_attention_mask",
]


def causal_mask(t: int, s: int | None = None) -> np.ndarray:
    """(T, S): query i may see key j iff j ≤ i + (S - T) — the triangle aligned to the bottom right."""
    s = t if s is None else s
    offset = s - t  # the T queries are the last T of the S key positions
    allowed = np.zeros((t, s), dtype=bool)
    for i in range(t):
        for j in range(s):
            allowed[i, j] = j <= i + offset
    return allowed


def padding_mask_from_lengths(lengths, max_len: int | None = None) -> np.ndarray:
    """(B, S): True at the first ``lengths[b]`` positions of row b (right padding)."""
    lengths = [int(n) for n in lengths]
    max_len = max(lengths, default=0) if max_len is None else int(max_len)
    valid = np.zeros((len(lengths), max_len), dtype=bool)
    for b, n in enumerate(lengths):
        valid[b, :n] = True
    return valid


def padding_mask_from_ids(ids, pad_id: int) -> np.ndarray:
    """(B, S): True wherever the token id is not ``pad_id``."""
    return np.asarray(ids) != pad_id


def key_padding(valid) -> np.ndarray:
    """(B, S) real-token mask -> (B, 1, 1, S): every query in every head may see every real key."""
    valid = np.asarray(valid, dtype=bool)
    return valid[:, None, None, :]  # (B,S) -> (B,1,1,S)


def cross_attention_mask(query_valid, key_valid) -> np.ndarray:
    """(B, T) and (B, S) -> (B, 1, T, S): a real query sees the real keys; a padded query sees nothing."""
    query_valid = np.asarray(query_valid, dtype=bool)
    key_valid = np.asarray(key_valid, dtype=bool)
    batch, t = query_valid.shape
    s = key_valid.shape[1]
    allowed = np.zeros((batch, 1, t, s), dtype=bool)
    for b in range(batch):
        for i in range(t):
            for j in range(s):
                allowed[b, 0, i, j] = query_valid[b, i] and key_valid[b, j]
    return allowed
