"""Shared hypothesis strategies. Shapes stay small; heads > 1, batch > 1 and T ≠ S are the norm.

Each strategy draws *shapes and seeds*; tensors are then made from a seeded torch.Generator, which keeps
examples reproducible and shrinkable without drawing thousands of floats through hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st


@dataclass(frozen=True)
class AttentionShape:
    batch: int
    heads: int
    t: int  # query length
    s: int  # key length
    d_head: int
    d_value: int
    seed: int

    def tensors(self, dtype=torch.float64, scale: float = 1.0):
        """q (B,H,T,Dh), k (B,H,S,Dh), v (B,H,S,Dv) — three independent random tensors."""
        g = torch.Generator().manual_seed(self.seed)
        q = torch.randn(self.batch, self.heads, self.t, self.d_head, generator=g, dtype=dtype) * scale
        k = torch.randn(self.batch, self.heads, self.s, self.d_head, generator=g, dtype=dtype) * scale
        v = torch.randn(self.batch, self.heads, self.s, self.d_value, generator=g, dtype=dtype)
        return q, k, v

    def random_allowed(self, p: float = 0.6, per_head: bool = True):
        """A random (B, H or 1, T, S) bool mask, True with probability p."""
        g = torch.Generator().manual_seed(self.seed + 1)
        heads = self.heads if per_head else 1
        return torch.rand(self.batch, heads, self.t, self.s, generator=g) < p


@st.composite
def attention_shapes(draw, min_batch=2, min_heads=2, max_len=7, distinct_lengths=True):
    batch = draw(st.integers(min_batch, 3))
    heads = draw(st.integers(min_heads, 4))
    t = draw(st.integers(1, max_len))
    s = draw(st.integers(1, max_len).filter(lambda s: s != t) if distinct_lengths else st.integers(1, max_len))
    d_head = draw(st.integers(1, 6))
    d_value = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    return AttentionShape(batch, heads, t, s, d_head, d_value, seed)


@st.composite
def mha_configs(draw, max_heads=4, max_head_width=4):
    """(d_model, n_heads, batch, T, S, seed) with n_heads ≥ 2, batch ≥ 2, T ≠ S."""
    n_heads = draw(st.integers(2, max_heads))
    d_head = draw(st.integers(1, max_head_width))
    batch = draw(st.integers(2, 3))
    t = draw(st.integers(1, 6))
    s = draw(st.integers(1, 6).filter(lambda s: s != t))
    seed = draw(st.integers(0, 2**31 - 1))
    return n_heads * d_head, n_heads, batch, t, s, seed


def lengths_for(batch: int, max_len: int, seed: int, min_len: int = 1) -> torch.Tensor:
    """Random sequence lengths in [min_len, max_len] with at least one full-length row."""
    g = torch.Generator().manual_seed(seed + 2)
    lengths = torch.randint(min_len, max_len + 1, (batch,), generator=g)
    lengths[0] = max_len
    return lengths


@dataclass(frozen=True)
class PLMCase:
    """A small permuted-LM batch: B rows of T tokens, right padding (row 0 full), two segments per row."""

    batch: int
    t: int
    seed: int

    def inputs(self, vocab_size: int):
        """ids (B, T) long, valid (B, T) bool, token_type_ids (B, T) long (0 then 1 from a random split)."""
        g = torch.Generator().manual_seed(self.seed)
        ids = torch.randint(0, vocab_size, (self.batch, self.t), generator=g)
        valid = torch.arange(self.t) < lengths_for(self.batch, self.t, self.seed)[:, None]  # (B, T)
        split = torch.randint(0, self.t + 1, (self.batch, 1), generator=g)  # segment 1 starts here
        token_type_ids = (torch.arange(self.t) >= split).long()  # (B, T)
        return ids, valid, token_type_ids

    def generator(self) -> torch.Generator:
        """A fresh generator for the objective's draws (orders, targets) and the test's own choices."""
        return torch.Generator().manual_seed(self.seed + 3)


@st.composite
def plm_cases(draw, max_len=6):
    """PLMCase with batch 2–3, T in [2, max_len]."""
    return PLMCase(draw(st.integers(2, 3)), draw(st.integers(2, max_len)), draw(st.integers(0, 2**31 - 1)))
