r"""Sentence embeddings from token hidden states — Reimers & Gurevych 2019, "Sentence-BERT", §3.

    mean_pool(h, valid)   = Σ_t valid_t · h_t / Σ_t valid_t           (B, T, D), (B, T) -> (B, D)
    l2_normalize(x)       = x / max(‖x‖₂, ε)                           (…, D) -> (…, D)
    sentence_embedding    = l2_normalize(mean_pool(h, valid))         all-MiniLM-L6-v2's recipe

The classic bug is averaging the padding too: then the embedding of a sentence depends on how long the
*other* sentences of its batch were. Here only positions with ``valid`` True count, so a sentence gets the
same vector alone or in any padded batch (a test says so). With normalised vectors, cosine similarity is a
plain dot product: ``sentence_embedding(...) @ sentence_embedding(...).T``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mean_pool", "l2_normalize", "sentence_embedding", "cosine_similarity_matrix"]


def _check(hidden: Tensor, valid: Tensor) -> None:
    if not isinstance(hidden, Tensor) or hidden.dim() != 3 or not hidden.is_floating_point():
        got = (tuple(hidden.shape), hidden.dtype) if isinstance(hidden, Tensor) else type(hidden).__name__
        raise ValueError(f"hidden must be a floating-point tensor of shape (B, T, D), got {got}")
    if not isinstance(valid, Tensor) or valid.dtype != torch.bool:
        got = valid.dtype if isinstance(valid, Tensor) else type(valid).__name__
        raise TypeError(
            f"valid must be a bool (B, T) mask, True at real tokens, got {got}; "
            "for a Hugging Face attention_mask pass attention_mask.bool()"
        )
    if tuple(valid.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"valid must have shape (B, T) = {tuple(hidden.shape[:2])}, got {tuple(valid.shape)}")


def mean_pool(hidden: Tensor, valid: Tensor) -> Tensor:
    """The mean of the hidden states (B, T, D) over the real tokens (``valid`` (B, T) True) -> (B, D).

    A row without any real token gives the zero vector (0 / 1), not NaN.
    """
    _check(hidden, valid)
    weights = valid.to(hidden.dtype).unsqueeze(-1)  # (B, T) -> (B, T, 1): 1 at real tokens, 0 at padding
    total = (hidden * weights).sum(dim=1)  # (B, T, D) -> (B, D)
    count = weights.sum(dim=1).clamp(min=1.0)  # (B, T, 1) -> (B, 1)
    return total / count


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """x / max(‖x‖₂, eps) over the last dimension (the convention of ``F.normalize``)."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)  # (…, D) -> (…, 1)
    return x / norm.clamp(min=eps)


def sentence_embedding(hidden: Tensor, valid: Tensor, *, normalize: bool = True) -> Tensor:
    """Masked mean pooling, then (by default) L2 normalisation: (B, T, D), (B, T) -> (B, D)."""
    pooled = mean_pool(hidden, valid)
    return l2_normalize(pooled) if normalize else pooled


def cosine_similarity_matrix(a: Tensor, b: Tensor | None = None) -> Tensor:
    """cos(a_i, b_j) for every pair: (N, D), (M, D) -> (N, M); ``b`` defaults to ``a``."""
    a = l2_normalize(a)
    b = a if b is None else l2_normalize(b)
    return a @ b.T  # (N, D)·(D, M) -> (N, M)
