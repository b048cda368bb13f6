"""NumPy float64 references for positional encodings — loops over positions and dimensions, never torch."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["sinusoidal_table", "rope", "relative_position_bucket"]


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    """PE[pos, 2i] = sin(pos / 10000^(2i/D)), PE[pos, 2i+1] = cos(pos / 10000^(2i/D)) — Vaswani et al. §3.5."""
    table = np.zeros((max_len, d_model), dtype=np.float64)
    for pos in range(max_len):
        for j in range(d_model):
            two_i = j - j % 2  # columns 2i and 2i+1 share the frequency of 2i
            angle = pos / 10000.0 ** (two_i / d_model)
            table[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return table


def rope(x, positions, theta: float = 10000.0, convention: str = "half") -> np.ndarray:
    """Rotary position embedding: rotate every pair of dimensions of x[..., t, :] by positions[..., t] * theta_i.

    x has shape (..., T, Dh), Dh even; positions broadcasts to x.shape[:-1] (e.g. (T,) or (B, 1, T)).
    Pair i (frequency theta_i = theta^(-2i/Dh)) is the dimensions (2i, 2i+1) for "interleaved" and
    (i, i + Dh/2) for "half". Each pair (a, b) is multiplied by the 2x2 rotation matrix
    [[cos, -sin], [sin, cos]].
    """
    x = np.asarray(x, dtype=np.float64)
    d_head = x.shape[-1]
    if d_head % 2:
        raise ValueError(f"d_head must be even, got {d_head}")
    if convention not in ("half", "interleaved"):
        raise ValueError(f"unknown convention {convention!r}")
    positions = np.broadcast_to(np.asarray(positions), x.shape[:-1])
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-1]):  # every vector (batch, head, position)
        m = float(positions[idx])
        for i in range(d_head // 2):
            a, b = (2 * i, 2 * i + 1) if convention == "interleaved" else (i, i + d_head // 2)
            angle = m * theta ** (-2.0 * i / d_head)
            rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
            out[idx + (a,)], out[idx + (b,)] = rotation @ np.array([x[idx + (a,)], x[idx + (b,)]])
    return out


def relative_position_bucket(relative_position: int, bidirectional: bool, num_buckets: int, max_distance: int) -> int:
    """T5's bucket of one relative position r = j − i (Raffel et al. 2020 §2.1), case by case, in float64."""
    nb = num_buckets // 2 if bidirectional else num_buckets
    exact = nb // 2
    offset = 0
    if bidirectional:
        if relative_position > 0:
            offset = nb  # a key to the right
        n = abs(relative_position)
    else:
        n = max(-relative_position, 0)
    if n < exact:
        return offset + n
    far = exact + int(math.log(n / exact) / math.log(max_distance / exact) * (nb - exact))
    return offset + min(far, nb - 1)
