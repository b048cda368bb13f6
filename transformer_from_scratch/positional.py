r"""Positional information: attention itself is blind to order (permuting the tokens permutes the outputs).

Three ways to tell the model where each token sits, each a thin module over a table or a function:

    SinusoidalPositionalEncoding   x + PE[pos], a fixed table of sines and cosines — Vaswani et al. 2017, §3.5
    LearnedPositionalEmbedding     x + P[pos], a trained table — BERT, GPT-2
    RotaryEmbedding                rotates q and k by position-dependent angles inside attention — Su et al. 2021
    relative_sinusoids             sinusoids of the distance i − j, read by XLNet's attention — Dai et al. 2019
    RelativePositionBias           a learned scalar per head and *bucket* of the distance j − i, added to the
                                   attention scores — T5, Raffel et al. 2020 §2.1 (relative_position_bucket)

``positions`` is an integer tensor of shape (T,), (1, T) or (B, T) — the same positions for every sequence,
or one row per sequence (left padding, packed sequences, decoding with a KV cache). ``None`` means
0, 1, …, T - 1. Tables are non-persistent buffers: they follow ``.to(device)`` but never enter a
``state_dict`` (they are recomputed, not learned). They are kept in float64 and cast to the dtype of the
input at use, so the float64 path matches the NumPy reference to ~1e-16: a module cast (``.half()``,
``.to(device, dtype)``) rebuilds them in float64 on the new device instead of rounding them, which would
otherwise survive a later ``.double()``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import functional as tf
from ._validation import check_all, is_compiling

__all__ = [
    "sinusoidal_table",
    "relative_sinusoids",
    "relative_position_bucket",
    "RelativePositionBias",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
]


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_positions(positions: Tensor, length: int, batch: int, name: str = "positions") -> None:
    """Integer positions of shape (T,), (1, T) or (B, T), non-negative, for a sequence of ``length`` T."""
    if not isinstance(positions, Tensor):
        raise TypeError(f"{name} must be an integer torch.Tensor, got {type(positions).__name__}")
    if positions.dtype == torch.bool or positions.is_floating_point() or positions.is_complex():
        raise TypeError(f"{name} must be an integer tensor (token positions), got {positions.dtype}")
    shape = tuple(positions.shape)
    if positions.dim() not in (1, 2) or shape[-1] != length or (positions.dim() == 2 and shape[0] not in (1, batch)):
        raise ValueError(f"{name} must have shape (T,), (1, T) or (B, T) with B={batch}, T={length}; got {shape}")
    check_all(
        positions >= 0,
        lambda: f"{name} must be non-negative, got a position of {int(positions.min())}",
        f"{name} must be non-negative",
    )


def _check_sequence(x: Tensor, d_model: int) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"x must have shape (B, T, d_model={d_model}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor (embeddings), got {x.dtype}")


def _lookup(table: Tensor, x: Tensor, positions: Tensor | None, max_len: int) -> Tensor:
    """Rows of ``table`` (max_len, D) for the positions of x (B, T, D): (T, D), (1, T, D) or (B, T, D)."""
    batch, length = x.shape[0], x.shape[1]
    if positions is None:
        if length > max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={max_len}")
        return table[:length]  # (T, D)
    _check_positions(positions, length, batch)
    check_all(
        positions < max_len,
        lambda: f"position {int(positions.max())} exceeds max_len={max_len} (valid positions are 0 … {max_len - 1})",
        f"a position exceeds max_len={max_len}",
    )
    return table[positions.to(table.device)]  # (T,) -> (T, D); (1|B, T) -> (1|B, T, D)


def sinusoidal_table(max_len: int, d_model: int, *, device: torch.device | str | None = None) -> Tensor:
    r"""The fixed table PE (max_len, D) of Vaswani et al. 2017, §3.5, in float64:

        PE(pos, 2i) = sin(pos / 10000^{2i/D}),    PE(pos, 2i+1) = cos(pos / 10000^{2i/D})

    Sines on even columns, cosines on odd ones (the paper's interleaving; some code puts all sines first,
    which is a different table). Column pair (2i, 2i+1) turns at angular frequency ω_i = 10000^{-2i/D}, from
    2π down to 2π·10000 in wavelength. For an odd D the last column is a lone sine.
    """
    _check_positive_int("max_len", max_len)
    _check_positive_int("d_model", d_model)
    pos = torch.arange(max_len, dtype=torch.float64, device=device)[:, None]  # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64, device=device)  # 2i = 0, 2, 4, …  (⌈D/2⌉,)
    angles = pos / 10000.0 ** (two_i / d_model)  # (max_len, 1) / (⌈D/2⌉,) -> (max_len, ⌈D/2⌉)
    table = torch.empty(max_len, d_model, dtype=torch.float64, device=device)
    table[:, 0::2] = torch.sin(angles)  # columns 0, 2, 4, …
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])  # columns 1, 3, 5, … (one fewer when D is odd)
    return table


def relative_sinusoids(distances: Tensor, d_model: int) -> Tensor:
    r"""R(Δ) = [sin(Δ ω_0), …, sin(Δ ω_{D/2-1}), cos(Δ ω_0), …, cos(Δ ω_{D/2-1})], ω_i = 10000^{-2i/D}:
    the encoding of a *relative* distance Δ = i − j of Transformer-XL (Dai et al. 2019, §3.3) and XLNet.

    Shapes: distances (K,) -> (K, D), float64, on the device of ``distances``. Unlike :func:`sinusoidal_table`,
    all sines come first and then all cosines (the layout of the released Transformer-XL and XLNet code; a
    learned projection follows, so only converters care). Δ > 0 means the key is to the left of the query.
    """
    _check_positive_int("d_model", d_model)
    if d_model % 2 != 0:
        raise ValueError(f"d_model={d_model} must be even: the sinusoids come in sin/cos pairs")
    omega = 1.0 / 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64, device=distances.device) / d_model)
    angles = distances.to(torch.float64)[:, None] * omega  # (K, 1) · (D/2,) -> (K, D/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (K, D)


def _bucket_sizes(bidirectional: bool, num_buckets: int, max_distance: int) -> tuple[int, int]:
    """(nb, exact): the buckets of one direction and how many of them are exact — validated."""
    _check_positive_int("num_buckets", num_buckets)
    _check_positive_int("max_distance", max_distance)
    nb = num_buckets // 2 if bidirectional else num_buckets
    exact = nb // 2
    if exact < 1 or max_distance <= exact:
        raise ValueError(
            f"num_buckets={num_buckets} and max_distance={max_distance}: need at least 4 buckets (2 when not "
            f"bidirectional) and max_distance > the {exact} exact buckets"
        )
    return nb, exact


def relative_position_bucket(
    relative_position: Tensor, *, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128
) -> Tensor:
    r"""The bucket of each relative position r = j − i (key minus query) — T5, Raffel et al. 2020 §2.1.

    Near distances get a bucket each, far ones share logarithmically wider buckets, and everything at or beyond
    ``max_distance`` falls into the last one. With ``bidirectional=True`` (an encoder) half of the buckets are for
    keys to the left (r ≤ 0), half for keys to the right (r > 0, offset nb = num_buckets / 2) and n = |r|; with
    ``bidirectional=False`` (a causal decoder) all buckets are for the left, n = max(−r, 0), so every key to the
    right (which the causal mask hides anyway) shares bucket 0 with r = 0. Then, with exact = nb / 2::

        bucket(n) = n                                                           n < exact
                  = min(nb − 1, exact + ⌊log(n / exact) / log(max_distance / exact) · (nb − exact)⌋)   otherwise

    Shapes: relative_position (...) integer -> (...) long buckets in [0, num_buckets). The logarithm is taken in
    float32, as in T5's released code and Hugging Face's, so the buckets agree with checkpoints trained with it.
    """
    if (
        not isinstance(relative_position, Tensor)
        or relative_position.is_floating_point()
        or (relative_position.dtype == torch.bool)
    ):
        got = relative_position.dtype if isinstance(relative_position, Tensor) else type(relative_position).__name__
        raise TypeError(f"relative_position must be an integer tensor, got {got}")
    nb, exact = _bucket_sizes(bidirectional, num_buckets, max_distance)
    r = relative_position.long()
    if bidirectional:
        offset = (r > 0).long() * nb  # keys to the right use the upper half of the buckets
        n = r.abs()
    else:
        offset = torch.zeros_like(r)
        n = (-r).clamp(min=0)  # distance to a key on the left; keys on the right count as distance 0
    # float32 logarithm, as T5; log(max(n, 1)) keeps n = 0 finite (those n are exact buckets anyway).
    scaled = torch.log(n.clamp(min=1).float() / exact) / math.log(max_distance / exact) * (nb - exact)
    far = (exact + scaled.long()).clamp(max=nb - 1)  # truncation toward zero, as int() / .to(long)
    return offset + torch.where(n < exact, n, far)


class RelativePositionBias(nn.Module):
    """bias[h, i, j] = E[bucket(j − i), h]: a learned scalar per head and distance bucket, added to the attention
    scores (T5). One instance serves every layer of a stack (T5 keeps it in the first block and shares it).

    ``forward(T, S, *, query_offset=0)`` -> (1, H, T, S) for queries at positions query_offset … query_offset+T−1
    and keys at 0 … S−1 (a decoder with a KV cache passes the number of cached positions as ``query_offset``).
    """

    def __init__(self, n_heads: int, *, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        _check_positive_int("n_heads", n_heads)
        _bucket_sizes(bidirectional, num_buckets, max_distance)
        self.n_heads, self.bidirectional = n_heads, bidirectional
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.embedding = nn.Embedding(num_buckets, n_heads)  # (num_buckets, H)

    def extra_repr(self) -> str:
        kind = "bidirectional" if self.bidirectional else "causal"
        return f"n_heads={self.n_heads}, {kind}, num_buckets={self.num_buckets}, max_distance={self.max_distance}"

    def forward(self, t: int, s: int, *, query_offset: int = 0) -> Tensor:
        _check_positive_int("t", t)
        _check_positive_int("s", s)
        if isinstance(query_offset, bool) or not isinstance(query_offset, int) or query_offset < 0:
            raise ValueError(f"query_offset must be an integer ≥ 0 (cached positions), got {query_offset!r}")
        device = self.embedding.weight.device
        queries = torch.arange(query_offset, query_offset + t, device=device)  # (T,)
        keys = torch.arange(s, device=device)  # (S,)
        relative = keys[None, :] - queries[:, None]  # (1, S) - (T, 1) -> (T, S): r = j − i
        buckets = relative_position_bucket(
            relative, bidirectional=self.bidirectional, num_buckets=self.num_buckets, max_distance=self.max_distance
        )  # (T, S)
        return self.embedding(buckets).permute(2, 0, 1).unsqueeze(0)  # (T, S, H) -> (1, H, T, S)


class SinusoidalPositionalEncoding(nn.Module):
    """x + PE[positions], with the fixed sinusoidal table of :func:`sinusoidal_table` (no parameters).

    Args:
        d_model: model width D (any positive int; an odd D ends with a lone sine column).
        max_len: number of positions in the table; a longer sequence raises ``ValueError``.

    Dropout on the sum (the paper's P_drop on "the sums of the embeddings and the positional encodings")
    belongs to the caller, so this module stays deterministic.
    """

    table: Tensor

    def __init__(self, d_model: int, max_len: int = 5000):
        super().__init__()
        _check_positive_int("d_model", d_model)
        _check_positive_int("max_len", max_len)
        self.d_model, self.max_len = d_model, max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)  # (max_len, D)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"

    def _apply(self, fn, recurse=True):
        # Every move or cast of the module (.to, .half(), .cuda()) ends here: rebuild the exact float64 table
        # on the new device rather than keep a rounded copy.
        super()._apply(fn, recurse)
        self.table = sinusoidal_table(self.max_len, self.d_model, device=self.table.device)
        return self

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """x (B, T, D), positions (T,) / (1, T) / (B, T) or None for 0 … T-1 -> x + PE[positions] (B, T, D)."""
        _check_sequence(x, self.d_model)
        pe = _lookup(self.table, x, positions, self.max_len)  # (T, D) or (1|B, T, D), float64
        return x + pe.to(x.dtype)


class LearnedPositionalEmbedding(nn.Module):
    """x + weight[positions], with a trained table ``weight`` (max_len, D) — BERT, GPT-2.

    ``weight`` starts as N(0, 0.02²), the initialiser of BERT and GPT-2; checkpoints overwrite it. The
    forward signature and errors are those of :class:`SinusoidalPositionalEncoding`.
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        _check_positive_int("max_len", max_len)
        _check_positive_int("d_model", d_model)
        self.max_len, self.d_model = max_len, d_model
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=0.02)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """x (B, T, D), positions (T,) / (1, T) / (B, T) or None -> x + weight[positions] (B, T, D)."""
        _check_sequence(x, self.d_model)
        return x + _lookup(self.weight, x, positions, self.max_len)


class RotaryEmbedding(nn.Module):
    r"""Rotary position embedding (RoPE) — Su et al. 2021, "RoFormer".

    Rotates each pair of dimensions of every query and key by the angle m·θ_i, m its position and
    θ_i = theta^{-2i/Dh}. Because a rotation by m·θ followed by the transpose of one by n·θ is a rotation by
    (m - n)·θ, the score q_m · k_n depends on the positions only through m - n: relative positions, with
    no table added to the embeddings and no parameters.

    Args:
        d_head: head width Dh (even; every dimension belongs to exactly one rotated pair).
        max_len: initial size of the cos/sin caches. Longer positions do not fail: the caches are
            recomputed (at least doubled) on first use, so decoding can run past ``max_len``. Whether a
            model *trained* on shorter sequences extrapolates is another matter.
        theta: base of the frequencies (10000 in RoFormer and Llama 2; 500000 in Llama 3).
        convention: ``"half"`` pairs (i, i + Dh/2) (GPT-NeoX, Llama) or ``"interleaved"`` pairs (2i, 2i + 1)
            (RoFormer, GPT-J); see :func:`functional.apply_rope`.

    ``cos_cached``/``sin_cached`` (max_len, Dh/2) are non-persistent float64 buffers.
    """

    cos_cached: Tensor
    sin_cached: Tensor

    def __init__(self, d_head: int, *, max_len: int = 2048, theta: float = 10000.0, convention: str = "half"):
        super().__init__()
        tf._check_rope_width(d_head)
        tf._check_rope_convention(convention)
        _check_positive_int("max_len", max_len)
        if not isinstance(theta, (int, float)) or isinstance(theta, bool) or not theta > 1.0:
            raise ValueError(f"theta must be a number > 1 (the base of the frequencies), got {theta!r}")
        self.d_head, self.max_len, self.theta, self.convention = d_head, max_len, float(theta), convention
        cos, sin = tf.rope_angles(torch.arange(max_len), d_head, self.theta)  # 2 × (max_len, Dh/2) float64
        self.register_buffer("cos_cached", cos, persistent=False)
        self.register_buffer("sin_cached", sin, persistent=False)

    def extra_repr(self) -> str:
        return f"d_head={self.d_head}, max_len={self.max_len}, theta={self.theta}, convention={self.convention!r}"

    def _build_caches(self, size: int) -> None:
        positions = torch.arange(size, device=self.cos_cached.device)
        self.cos_cached, self.sin_cached = tf.rope_angles(positions, self.d_head, self.theta)  # 2 × (size, Dh/2)

    def _apply(self, fn, recurse=True):
        # A move or cast of the module (.to, .half(), .cuda()) rebuilds the float64 caches on the new device.
        super()._apply(fn, recurse)
        self._build_caches(self.cos_cached.shape[0])
        return self

    def _caches(self, needed: int) -> tuple[Tensor, Tensor]:
        """The float64 caches, covering at least positions 0 … needed - 1 (at least doubled when too short)."""
        cached = self.cos_cached.shape[0]
        if needed > cached:
            self._build_caches(max(needed, 2 * cached))
        return self.cos_cached, self.sin_cached

    def cos_sin(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """positions (…) integer -> (cos, sin), each (…, Dh/2) float64, read from the caches.

        Sizing the caches needs the largest position, which an accelerator (or ``torch.compile``) could only hand
        over by stopping the host; there the same float64 angles are computed for the given positions instead.
        """
        if positions.device.type != "cpu" or is_compiling():
            return tf.rope_angles(positions.to(self.cos_cached.device), self.d_head, self.theta)  # 2 × (…, Dh/2)
        needed = int(positions.max()) + 1 if positions.numel() else 0
        cos, sin = self._caches(needed)
        positions = positions.to(cos.device)
        return cos[positions], sin[positions]  # (…) -> (…, Dh/2)

    def rotate(self, x: Tensor, positions: Tensor, name: str = "x") -> Tensor:
        """x (B, H, T, Dh), positions (T,) / (1, T) / (B, T) -> x rotated, same shape and dtype."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[-1] != self.d_head:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must have shape (B, H, T, d_head={self.d_head}), got {got}")
        _check_positions(positions, x.shape[2], x.shape[0], name=f"positions of {name}")
        cos, sin = self.cos_sin(positions)  # (T, Dh/2) or (1|B, T, Dh/2)
        if positions.dim() == 2:
            cos, sin = cos[:, None], sin[:, None]  # (1|B, T, Dh/2) -> (1|B, 1, T, Dh/2): same for every head
        return tf.apply_rope(x, cos, sin, self.convention)

    def forward(
        self, q: Tensor, k: Tensor, positions: Tensor | None = None, *, k_positions: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """q (B, H, T, Dh), k (B, H', S, Dh) -> (q, k) rotated by their positions.

        ``positions`` are the positions of the queries, (T,), (1, T) or (B, T); ``None`` means 0 … T-1.
        ``k_positions`` are those of the keys and default to ``positions`` (self-attention, T = S); give them
        when T ≠ S, e.g. a KV cache where the T new queries sit at positions S-T … S-1.
        """
        if not isinstance(q, Tensor) or q.dim() != 4:
            got = tuple(q.shape) if isinstance(q, Tensor) else type(q).__name__
            raise ValueError(f"q must have shape (B, H, T, d_head={self.d_head}), got {got}")
        t = q.shape[2]
        if positions is None:
            positions = torch.arange(t, device=q.device)
        if k_positions is None:
            if isinstance(k, Tensor) and k.dim() == 4 and k.shape[2] != t:
                raise ValueError(
                    f"q has T={t} positions but k has S={k.shape[2]}; pass k_positions= (and positions=) explicitly"
                )
            k_positions = positions
        return self.rotate(q, positions, "q"), self.rotate(k, k_positions, "k")
