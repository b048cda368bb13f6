r"""Builders for boolean ``allowed`` masks — the only place masks are made or converted.

Convention (one polarity everywhere): ``allowed[..., i, j]`` is True where query i may attend to key j.
Every builder returns a bool tensor that broadcasts to the attention scores (B, H, T, S):

    causal_mask(T, S)            (T, S)        query i sees keys j ≤ i (+ S - T when S > T)
    padding_mask(...)            (B, S)        True at real tokens, False at padding
    key_padding(valid)           (B, 1, 1, S)  every query may see every real key
    cross_attention_mask(q, k)   (B, 1, T, S)  real queries see real keys; padded queries see nothing
    combine(a, b, ...)           logical AND, broadcast

Converters for other libraries' conventions:
    PyTorch ``key_padding_mask`` (B, S), True = **ignore**   <->  from/to_key_padding_mask
    PyTorch ``attn_mask`` (T, S), True = **blocked**          <->  to_torch_attn_mask
    Hugging Face ``attention_mask`` (B, S), 1 = keep, 0 = pad <->  from/to_hf_attention_mask
    Hugging Face XLNet ``perm_mask`` (B, T, T), 1 = **blocked** <->  from/to_hf_perm_mask
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._validation import check_all, check_size

__all__ = [
    "causal_mask",
    "padding_mask",
    "padding_mask_from_lengths",
    "padding_mask_from_ids",
    "key_padding",
    "cross_attention_mask",
    "combine",
    "allowed_to_bias",
    "from_key_padding_mask",
    "to_key_padding_mask",
    "to_torch_attn_mask",
    "from_hf_attention_mask",
    "to_hf_attention_mask",
    "from_hf_perm_mask",
    "to_hf_perm_mask",
]


def causal_mask(t: int, s: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """(T, S) lower-triangular mask: query i may attend to key j iff j ≤ i + (S - T).

    With S = T this is the decoder's "no peeking at the future" mask. With S > T (the queries are the
    last T of S positions, as when decoding with a KV cache) the triangle is aligned to the bottom
    right, so the last query sees every key. Note: ``F.scaled_dot_product_attention(is_causal=True)``
    aligns to the top left instead when T ≠ S.
    """
    t = check_size("t", t)  # an int ≥ 0: 2.5 or True is not a length
    s = t if s is None else check_size("s", s)
    if s < t:
        raise ValueError(f"causal_mask needs S ≥ T (keys include every query position), got T={t}, S={s}")
    i = torch.arange(t, device=device)[:, None]  # (T, 1) query positions
    j = torch.arange(s, device=device)[None, :]  # (1, S) key positions
    return j <= i + (s - t)  # (T, S)


def padding_mask_from_lengths(
    lengths: Tensor | Sequence[int], max_len: int | None = None, *, device: torch.device | str | None = None
) -> Tensor:
    """(B, S) mask, True at the first ``lengths[b]`` positions of row b (right padding)."""
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be integers, got {lengths.dtype}")
    if (lengths < 0).any():
        raise ValueError(f"lengths must be non-negative, got {lengths.tolist()}")
    longest = int(lengths.max()) if lengths.numel() else 0
    max_len = longest if max_len is None else check_size("max_len", max_len)
    if longest > max_len:
        raise ValueError(f"a length of {longest} exceeds max_len={max_len}")
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]  # (B, S)


def padding_mask_from_ids(ids: Tensor, pad_id: int) -> Tensor:
    """(B, S) mask, True wherever ``ids`` is not ``pad_id`` (works for left or right padding)."""
    if ids.dtype.is_floating_point:
        raise TypeError(f"ids must be an integer tensor, got {ids.dtype}")
    return ids != pad_id


def padding_mask(
    *,
    lengths: Tensor | Sequence[int] | None = None,
    ids: Tensor | None = None,
    pad_id: int | None = None,
    max_len: int | None = None,
) -> Tensor:
    """(B, S) padding mask from either ``lengths`` (+ optional ``max_len``) or ``ids`` + ``pad_id``."""
    if (lengths is None) == (ids is None):
        raise ValueError("padding_mask needs exactly one of lengths= or ids=")
    if ids is not None:
        if pad_id is None:
            raise ValueError("padding_mask(ids=...) needs pad_id=")
        return padding_mask_from_ids(ids, pad_id)
    return padding_mask_from_lengths(lengths, max_len)


def _check_valid(valid: Tensor, name: str) -> None:
    if valid.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool (B, S) mask with True at real tokens, got {valid.dtype}")
    if valid.dim() != 2:
        raise ValueError(f"{name} must have shape (B, S), got {tuple(valid.shape)}")


def key_padding(valid: Tensor) -> Tensor:
    """(B, S) real-token mask -> (B, 1, 1, S): every query, in every head, may see every real key."""
    _check_valid(valid, "valid")
    return valid[:, None, None, :]  # (B,S) -> (B,1,1,S)


def cross_attention_mask(query_valid: Tensor, key_valid: Tensor) -> Tensor:
    """(B, T) and (B, S) real-token masks -> (B, 1, T, S).

    Real queries see real keys; a padded query sees nothing (its output is then exactly zero).
    """
    _check_valid(query_valid, "query_valid")
    _check_valid(key_valid, "key_valid")
    if query_valid.shape[0] != key_valid.shape[0]:
        raise ValueError(
            f"batch sizes differ: query_valid {tuple(query_valid.shape)} vs key_valid {tuple(key_valid.shape)}"
        )
    return query_valid[:, None, :, None] & key_valid[:, None, None, :]  # (B,1,T,1) & (B,1,1,S) -> (B,1,T,S)


def combine(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of any number of broadcastable ``allowed`` masks; ``None`` entries are skipped."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    for m in present:
        if m.dtype != torch.bool:
            raise TypeError(f"masks to combine must be bool, got {m.dtype}")
    out = present[0]
    for m in present[1:]:
        try:
            out = out & m
        except RuntimeError:
            raise ValueError(
                f"masks of shapes {tuple(out.shape)} and {tuple(m.shape)} do not broadcast together"
            ) from None
    return out


def allowed_to_bias(allowed: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Boolean ``allowed`` -> additive bias: 0 where allowed, -inf where not.

    -inf is exact in every floating dtype (fp16 included); fills such as -1e9 overflow fp16 and -1e4
    leaves a small probability the model can learn to leak through. A row with nothing allowed is
    all -inf: our :func:`functional.masked_softmax` turns it into zeros, a plain softmax into NaN.
    """
    if allowed.dtype != torch.bool:
        raise TypeError(f"allowed must be bool, got {allowed.dtype}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    zeros = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return zeros.masked_fill(~allowed, float("-inf"))


def from_key_padding_mask(key_padding_mask: Tensor) -> Tensor:
    """PyTorch ``key_padding_mask`` (B, S), True = *ignore* this key -> ``allowed`` (B, 1, 1, S)."""
    if key_padding_mask.dtype != torch.bool:
        raise TypeError(f"key_padding_mask must be bool (True = ignore), got {key_padding_mask.dtype}")
    return key_padding(~key_padding_mask)


def to_key_padding_mask(valid: Tensor) -> Tensor:
    """Our (B, S) real-token mask -> PyTorch ``key_padding_mask`` (B, S), True = ignore."""
    _check_valid(valid, "valid")
    return ~valid


def to_torch_attn_mask(allowed: Tensor) -> Tensor:
    """``allowed`` -> the boolean ``attn_mask`` of ``nn.MultiheadAttention``/``nn.Transformer`` (True = blocked)."""
    if allowed.dtype != torch.bool:
        raise TypeError(f"allowed must be bool, got {allowed.dtype}")
    return ~allowed


def from_hf_attention_mask(attention_mask: Tensor) -> Tensor:
    """Hugging Face ``attention_mask`` (B, S) of 1 (keep) / 0 (pad) -> ``allowed`` (B, 1, 1, S)."""
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must have shape (B, S), got {tuple(attention_mask.shape)}")
    check_all(
        (attention_mask == 0) | (attention_mask == 1),
        lambda: f"attention_mask must contain only 0 and 1, got values {torch.unique(attention_mask).tolist()}",
        "attention_mask must contain only 0 and 1",
    )
    return key_padding(attention_mask.bool())


def to_hf_attention_mask(valid: Tensor, dtype: torch.dtype = torch.long) -> Tensor:
    """Our (B, S) real-token mask -> Hugging Face ``attention_mask`` of 1 (keep) / 0 (pad)."""
    _check_valid(valid, "valid")
    return valid.to(dtype)


def to_hf_perm_mask(allowed: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Our XLNet ``query_allowed`` (B, T, T) bool -> Hugging Face's ``perm_mask`` (B, T, T), 1.0 = *blocked*.

    Hugging Face's query stream uses ``perm_mask`` as it is; its content stream clears the diagonal first (a token
    sees itself). So ``perm_mask = 1 − query_allowed`` (strictly earlier in the order) gives both of our streams:
    the query stream's mask and, for every real position, ``content_allowed`` (earlier or the same).
    """
    if not isinstance(allowed, Tensor) or allowed.dtype != torch.bool:
        got = allowed.dtype if isinstance(allowed, Tensor) else type(allowed).__name__
        raise TypeError(f"allowed must be a bool (B, T, T) mask, True where query i may attend to key j; got {got}")
    if allowed.dim() != 3:
        raise ValueError(f"allowed must have shape (B, T, T), got {tuple(allowed.shape)}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype (perm_mask is a float mask), got {dtype}")
    return (~allowed).to(dtype)


def from_hf_perm_mask(perm_mask: Tensor) -> Tensor:
    """Hugging Face XLNet ``perm_mask`` (B, T, T) of 1 (blocked) / 0 -> ``allowed`` (B, T, T) bool — what its query
    stream may see (our ``query_allowed``); see :func:`to_hf_perm_mask`."""
    if not isinstance(perm_mask, Tensor) or perm_mask.dim() != 3:
        got = tuple(perm_mask.shape) if isinstance(perm_mask, Tensor) else type(perm_mask).__name__
        raise ValueError(f"perm_mask must have shape (B, T, T), got {got}")
    check_all(
        (perm_mask == 0) | (perm_mask == 1),
        lambda: f"perm_mask must contain only 0 and 1 (1 = blocked), got values {torch.unique(perm_mask).tolist()}",
        "perm_mask must contain only 0 and 1 (1 = blocked)",
    )
    return perm_mask == 0
