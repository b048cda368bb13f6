r"""Multi-head attention — Vaswani et al. 2017, §3.2.2.

    MultiHead(Q, K, V) = Concat(head_1, …, head_H) W^O,   head_h = Attention(Q W_h^Q, K W_h^K, V W_h^V)

The per-head projections W_h^Q (D × Dh) are stored side by side as one ``nn.Linear(D, H·Dh)``; head h
owns output columns [h·Dh, (h+1)·Dh) (see :func:`functional.split_heads`). This is the layout of
``nn.MultiheadAttention`` and of Hugging Face checkpoints, so converters only copy weights.

Self-attention: ``mha(x)``. Cross-attention: ``mha(x_decoder, x_encoder)`` — queries from the first
argument, keys and values from the second.

Rotary position embeddings (RoPE, Su et al. 2021): ``MultiHeadAttention(..., rotary=RotaryEmbedding(Dh))``
rotates every head's queries and keys by their positions after the projections, before the scores.

KV cache (incremental decoding): ``mha(x_new, kv_cache=cache)`` with a :class:`LayerKVCache` projects only the
T new tokens, appends their keys and values to the S_past cached ones and lets the new queries attend to all
S = S_past + T keys — see :class:`LayerKVCache`. In cross-attention, ``mha(x_new, memory, kv_cache=cache)`` computes
the keys and values of the memory on the first call, stores them, and reuses them on every later call: the encoder
output does not change while a decoder generates.

T5 (Raffel et al. 2020) sizes its heads independently of the model width and does not scale the scores:
``MultiHeadAttention(D, H, d_head=d_kv, scale=1.0, bias=False)`` — the projections then map D -> H·d_kv -> D.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional as tf
from ._validation import check_float_input
from .positional import RotaryEmbedding

__all__ = ["MultiHeadAttention", "LayerKVCache", "KVCache", "EncoderDecoderKVCache"]


class MultiHeadAttention(nn.Module):
    """Multi-head (self- or cross-) attention with ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``.

    Args:
        d_model: model width D (input and output).
        n_heads: number of heads H; without ``d_head``, D must be divisible by H and each head has width Dh = D / H.
        d_head: the width Dh of one head when it is not D / H (T5's ``d_kv``); q, k, v project D -> H·Dh and the
            output projection H·Dh -> D.
        scale: the factor c of the scores c · q·k (default 1/√Dh, Vaswani et al. 2017; T5 uses 1).
        bias: whether the four projections have a bias (``False`` for Llama-style blocks).
        dropout: dropout probability on the attention weights (training mode only).
        impl: the implementation of :func:`functional.scaled_dot_product_attention` to call: ``"plain"`` (the
            textbook formula, the default), ``"kernels"`` (one autograd node with the backward written out) or
            ``"torch"`` (``F.scaled_dot_product_attention``). All three give the same numbers.
        rotary: a :class:`~positional.RotaryEmbedding` of width Dh applied to q and k of every head
            (``None``: no positional information inside attention, the behaviour of the 2017 model).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        impl: str = "plain",
        rotary: RotaryEmbedding | None = None,
        d_head: int | None = None,
        scale: float | None = None,
    ):
        super().__init__()
        if not isinstance(d_model, int) or d_model <= 0:
            raise ValueError(f"d_model must be a positive int, got {d_model!r}")
        if not isinstance(n_heads, int) or n_heads <= 0:
            raise ValueError(f"n_heads must be a positive int, got {n_heads!r}")
        if d_head is not None and (isinstance(d_head, bool) or not isinstance(d_head, int) or d_head <= 0):
            raise ValueError(f"d_head must be None (d_model / n_heads) or a positive int, got {d_head!r}")
        if d_head is None and d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0):
            raise ValueError(f"scale must be None (1/√d_head) or a positive number, got {scale!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if impl not in tf.IMPLS:
            raise ValueError(f"impl must be one of {tf.IMPLS}, got {impl!r}")
        self.d_model, self.n_heads = d_model, n_heads
        self.d_head = d_model // n_heads if d_head is None else d_head
        self.scale = None if scale is None else float(scale)  # None: 1/√Dh
        self.dropout, self.impl = dropout, impl
        inner = n_heads * self.d_head  # H·Dh, = D unless d_head is given
        self.q_proj = nn.Linear(d_model, inner, bias=bias)  # W^Q for all heads: (D) -> (H·Dh)
        self.k_proj = nn.Linear(d_model, inner, bias=bias)
        self.v_proj = nn.Linear(d_model, inner, bias=bias)
        self.out_proj = nn.Linear(inner, d_model, bias=bias)  # W^O: (H·Dh) -> (D)
        if rotary is not None:
            if not isinstance(rotary, RotaryEmbedding):
                raise TypeError(f"rotary must be a RotaryEmbedding or None, got {type(rotary).__name__}")
            if rotary.d_head != self.d_head:
                raise ValueError(
                    f"rotary has d_head={rotary.d_head}, but d_model={d_model} / n_heads={n_heads} "
                    f"gives heads of width {self.d_head}"
                )
        self.rotary = rotary  # a submodule (or None): its caches follow .to(device)

    def extra_repr(self) -> str:
        scale = "" if self.scale is None else f", scale={self.scale}"
        return f"d_model={self.d_model}, n_heads={self.n_heads}, d_head={self.d_head}{scale}, impl={self.impl!r}"

    def _check_inputs(self, x_q: Tensor, x_kv: Tensor) -> None:
        for name, x, proj in (("x_q", x_q, self.q_proj), ("x_kv", x_kv, self.k_proj)):
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() != 3:
                raise ValueError(f"{name} must have shape (B, length, d_model), got {tuple(x.shape)}")
            if x.shape[-1] != self.d_model:
                raise ValueError(f"{name} has width {x.shape[-1]}, expected d_model={self.d_model}")
            weight = getattr(proj, "weight", None)  # None for a projection that is not a plain nn.Linear
            weight_dtype = weight.dtype if isinstance(weight, Tensor) and weight.is_floating_point() else None
            check_float_input(x, name, weight_dtype, "this MultiHeadAttention")
        if x_q.shape[0] != x_kv.shape[0]:
            raise ValueError(f"batch sizes differ: x_q {tuple(x_q.shape)} vs x_kv {tuple(x_kv.shape)}")

    def forward(
        self,
        x_q: Tensor,
        x_kv: Tensor | None = None,
        *,
        allowed: Tensor | None = None,
        bias: Tensor | None = None,
        return_weights: bool = False,
        positions: Tensor | tuple[Tensor, Tensor] | None = None,
        kv_cache: LayerKVCache | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x_q (B, T, D), x_kv (B, S, D) or None for self-attention -> (B, T, D) [and weights (B, H, T, S)].

        ``allowed`` (bool, broadcastable to (B, H, T, S)) and ``bias`` (float, same) as in
        :func:`functional.scaled_dot_product_attention`.

        ``positions`` is used only with ``rotary``: integer positions (T,), (1, T) or (B, T) of the tokens of
        ``x_q`` (default 0 … T-1), shared by queries and keys in self-attention. With ``x_kv`` given
        (cross-attention, or keys from a cache) pass the pair ``(query_positions, key_positions)``.

        ``kv_cache`` in self-attention: a :class:`LayerKVCache` holding the keys and values of the S_past
        earlier positions. The new keys and values are appended to it (in place) and the T queries attend to
        all S = S_past + T keys, so ``allowed`` must broadcast to (B, H, T, S) — e.g.
        ``masks.causal_mask(T, S)``, bottom-right aligned; ``None`` lets every new query see every key, which is
        causal only for T = 1. With ``rotary``, ``positions`` (of the T new tokens) default to S_past … S - 1.

        ``kv_cache`` in cross-attention (``x_kv`` given): when empty, the keys and values of ``x_kv`` are computed
        and stored in it; when filled, they are taken from it and ``x_kv`` is not projected again (its batch and
        length must match the stored keys).
        """
        cross = x_kv is not None
        x_kv = x_q if x_kv is None else x_kv
        self._check_inputs(x_q, x_kv)
        q_positions, k_positions = self._positions(positions, cross)
        if kv_cache is not None:
            if not isinstance(kv_cache, LayerKVCache):
                raise TypeError(f"kv_cache must be a LayerKVCache or None, got {type(kv_cache).__name__}")
            if self.rotary is not None and positions is None and not cross:  # the new tokens sit after the cached ones
                q_positions = k_positions = torch.arange(
                    kv_cache.length, kv_cache.length + x_q.shape[1], device=x_q.device
                )  # (T,)
        if cross and kv_cache is not None and kv_cache.length > 0:
            # The memory's keys and values were computed on an earlier call: project only the queries.
            if self.rotary is not None:
                raise ValueError("rotary embeddings are not used in cross-attention with a cache")
            if kv_cache.k.shape[0] != x_kv.shape[0] or kv_cache.length != x_kv.shape[1]:
                raise ValueError(
                    f"the cross-attention cache holds keys of shape {tuple(kv_cache.k.shape)}, which do not belong "
                    f"to x_kv {tuple(x_kv.shape)}: batch and length must match (select() the cache with the rows)"
                )
            q, k, v = tf.split_heads(self.q_proj(x_q), self.n_heads), kv_cache.k, kv_cache.v  # (B,H,T,Dh), cached
        else:
            q, k, v = self._project(x_q, x_kv, cross)  # (B,H,T,Dh), (B,H,S,Dh), (B,H,S,Dh)
            if self.rotary is not None:
                q, k = self.rotary(q, k, q_positions, k_positions=k_positions)  # rotate, shapes unchanged
            if kv_cache is not None:
                # self-attention: (B,H,T,Dh) new -> (B,H,S_past+T,Dh), cached keys first, then the new ones;
                # cross-attention: the memory's keys and values, stored once
                k, v = kv_cache.update(k, v)
        out, weights = self._attend(q, k, v, allowed=allowed, bias=bias, return_weights=return_weights)
        out = self.out_proj(tf.merge_heads(out))  # (B,H,T,Dh) -> (B,T,D) -> (B,T,D)
        return (out, weights) if return_weights else out

    def _project(self, x_q: Tensor, x_kv: Tensor, cross: bool) -> tuple[Tensor, Tensor, Tensor]:
        """q = x_q W^Q + b^Q, k = x_kv W^K + b^K, v = x_kv W^V + b^V, split into heads: (B,H,T,Dh), (B,H,S,Dh) × 2.

        Projections that read the same input share one matrix product: stacking the weights of ``q_proj``,
        ``k_proj`` and ``v_proj`` row-wise gives x [W^Q | W^K | W^V] in one pass over x (self-attention), or
        [W^K | W^V] over x_kv (cross-attention); its output columns are then cut into projections and heads.
        One large product is faster than three small ones; the result is the same. The parameters stay three
        separate ``nn.Linear`` (so checkpoints and converters see q_proj, k_proj, v_proj), and a projection
        that is not a plain ``nn.Linear`` (a wrapper, an adapter, one with hooks) is called as a module instead.
        """
        h = self.n_heads
        projs = (self.q_proj, self.k_proj, self.v_proj)
        plain = all(type(p) is nn.Linear and not (p._forward_hooks or p._forward_pre_hooks) for p in projs)
        if not plain or len({p.bias is None for p in projs}) != 1:
            q, k, v = self.q_proj(x_q), self.k_proj(x_kv), self.v_proj(x_kv)  # (B,T,D), (B,S,D), (B,S,D)
            return tf.split_heads(q, h), tf.split_heads(k, h), tf.split_heads(v, h)  # (B,L,D) -> (B,H,L,Dh)
        packed = projs[1:] if cross else projs  # n = 2 (k, v) or 3 (q, k, v) projections of x_kv
        n = len(packed)
        weight = torch.cat([p.weight for p in packed])  # n × (H·Dh, D) -> (n·H·Dh, D)
        bias = None if packed[0].bias is None else torch.cat([p.bias for p in packed])  # (n·H·Dh,)
        # Column j·H·Dh + h·Dh + e of the product is feature e of head h of projection j (within each projection,
        # the layout of functional.split_heads). Cutting it with views keeps the backward pass to one copy:
        # (B,S,n·H·Dh) -> (B,S,n,H,Dh) -> n × (B,S,H,Dh) -> n × (B,H,S,Dh)
        parts = F.linear(x_kv, weight, bias).unflatten(-1, (n, h, self.d_head)).unbind(2)
        heads = [part.transpose(1, 2) for part in parts]
        if cross:
            k, v = heads
            return tf.split_heads(self.q_proj(x_q), h), k, v  # (B,T,D) -> (B,H,T,Dh)
        q, k, v = heads  # S = T
        return q, k, v

    def _positions(self, positions, cross: bool) -> tuple[Tensor | None, Tensor | None]:
        """Split ``positions`` into (query positions, key positions); check they are used only with rotary."""
        if self.rotary is None:
            if positions is not None:
                raise ValueError("positions= is only used by rotary embeddings; this attention has rotary=None")
            return None, None
        if not cross:
            if isinstance(positions, (tuple, list)):
                raise ValueError("self-attention takes one positions tensor (T,), (1, T) or (B, T), not a pair")
            return positions, positions
        if not (isinstance(positions, (tuple, list)) and len(positions) == 2):
            raise ValueError(
                "rotary attention with a separate x_kv needs positions=(query_positions, key_positions), "
                f"got {type(positions).__name__}"
            )
        return positions[0], positions[1]

    def _attend(self, q, k, v, *, allowed, bias, return_weights):
        p = self.dropout if self.training else 0.0
        result = tf.scaled_dot_product_attention(
            q,
            k,
            v,
            allowed=allowed,
            bias=bias,
            dropout_p=p,
            return_weights=return_weights,
            impl=self.impl,
            scale=self.scale,
        )
        return result if return_weights else (result, None)


# ---- KV cache: keys and values of earlier positions, for incremental decoding --------------------------------


class LayerKVCache:
    r"""The keys and values one self-attention layer has computed so far: ``k``, ``v`` (B, H, S_past, Dh) each.

    In a causal model the key and value of position j depend only on the tokens ≤ j, so they never change once
    computed. Decoding token t + 1 therefore needs only the projections of the new token: append its key and
    value here and attend over all t + 1. This turns each step from O(t) new projections (recomputing the whole
    prefix) into O(1), while the attention itself still reads all t + 1 keys. Keys are stored *after* the rotary
    rotation, so cached keys keep the positions they were computed at.

    Grown with ``torch.cat`` (simple; a preallocated buffer would avoid the copies). ``update`` appends in place;
    :meth:`select` gathers batch rows (dropping finished sequences, reordering beams).
    """

    def __init__(self) -> None:
        self.k: Tensor | None = None  # (B, H, S_past, Dh)
        self.v: Tensor | None = None  # (B, H, S_past, Dh)

    @property
    def length(self) -> int:
        """S_past, the number of cached positions (0 when empty)."""
        return 0 if self.k is None else self.k.shape[2]

    def __repr__(self) -> str:
        shape = None if self.k is None else tuple(self.k.shape)
        return f"LayerKVCache(k, v: {shape})"

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new k, v (B, H, T, Dh) and return all of them: (B, H, S_past + T, Dh) each."""
        if k.dim() != 4 or v.shape[:3] != k.shape[:3]:
            raise ValueError(
                f"k and v must be (B, H, T, Dh) with equal B, H, T; got {tuple(k.shape)}, {tuple(v.shape)}"
            )
        if self.k is not None:
            if k.shape[:2] != self.k.shape[:2] or k.shape[3] != self.k.shape[3] or v.shape[3] != self.v.shape[3]:
                raise ValueError(
                    f"new keys {tuple(k.shape)} do not continue the cached ones {tuple(self.k.shape)}: batch, heads "
                    "and head width must match (use select() after dropping or reordering sequences)"
                )
            k = torch.cat([self.k, k], dim=2)  # (B,H,S_past,Dh) + (B,H,T,Dh) -> (B,H,S_past+T,Dh)
            v = torch.cat([self.v, v], dim=2)
        self.k, self.v = k, v
        return k, v

    def select(self, rows: Tensor) -> LayerKVCache:
        """A new cache holding batch rows ``rows`` (N,) of this one: (B, H, S, Dh) -> (N, H, S, Dh)."""
        out = LayerKVCache()
        if self.k is not None:
            out.k, out.v = self.k[rows], self.v[rows]
        return out


class KVCache:
    r"""The caches of a whole decoder stack: one :class:`LayerKVCache` per block, plus the padding mask.

    ``layers[i]`` belongs to block i; ``valid`` (B, S_past) bool records which cached positions are real tokens
    (False at left padding), so later steps keep masking those keys and can count positions. A model that takes
    ``kv_cache=`` (e.g. :class:`models.gpt.GPT`) fills it on the first call (the "prefill" of the prompt) and
    extends it on every later call; the caller only passes the new tokens.
    """

    def __init__(self, n_layers: int) -> None:
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
        self.layers = [LayerKVCache() for _ in range(n_layers)]
        self.valid: Tensor | None = None  # (B, S_past) bool, True at real tokens

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> LayerKVCache:
        return self.layers[i]

    def __repr__(self) -> str:
        return f"KVCache(n_layers={len(self.layers)}, length={self.length})"

    @property
    def length(self) -> int:
        """S_past, the number of cached positions (0 when empty)."""
        return self.layers[0].length

    def select(self, rows: Tensor) -> KVCache:
        """A new cache holding batch rows ``rows`` (N,): drop finished sequences, copy or reorder beams."""
        out = KVCache(len(self.layers))
        out.layers = [layer.select(rows) for layer in self.layers]
        out.valid = None if self.valid is None else self.valid[rows]  # (B, S_past) -> (N, S_past)
        return out


class EncoderDecoderKVCache:
    r"""The caches of an encoder–decoder's decoder: per block, the self-attention keys and values of the generated
    positions (a :class:`KVCache`, which grows by one position per step) and the cross-attention keys and values of
    the encoder output (one :class:`LayerKVCache` per block, computed on the first step and never again).

    ``valid`` (B, S_past) records which cached decoder positions are real tokens (as :class:`KVCache`). The source's
    padding mask is not kept: every call passes it with the memory.
    """

    def __init__(self, n_layers: int) -> None:
        self.self_attn = KVCache(n_layers)
        self.cross_attn = [LayerKVCache() for _ in range(n_layers)]

    def __len__(self) -> int:
        return len(self.cross_attn)

    def __repr__(self) -> str:
        source = self.cross_attn[0].length
        return f"EncoderDecoderKVCache(n_layers={len(self)}, length={self.length}, source_length={source})"

    @property
    def length(self) -> int:
        """S_past, the number of cached decoder positions (0 when empty)."""
        return self.self_attn.length

    @property
    def valid(self) -> Tensor | None:
        return self.self_attn.valid

    @valid.setter
    def valid(self, value: Tensor | None) -> None:
        self.self_attn.valid = value

    def select(self, rows: Tensor) -> EncoderDecoderKVCache:
        """A new cache holding batch rows ``rows`` (N,): drop finished sequences, copy or reorder beams."""
        out = EncoderDecoderKVCache(len(self))
        out.self_attn = self.self_attn.select(rows)
        out.cross_attn = [layer.select(rows) for layer in self.cross_attn]
        return out
