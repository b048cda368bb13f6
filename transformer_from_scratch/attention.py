r"""Multi-head attention — Vaswani et al. 2017, §3.2.2.

    MultiHead(Q, K, V) = Concat(head_1, …, head_H) W^O,   head_h = Attention(Q W_h^Q, K W_h^K, V W_h^V)

The per-head projections W_h^Q (D × Dh) are stored side by side as one ``nn.Linear(D, H·Dh)``; head h
owns output columns [h·Dh, (h+1)·Dh) (see :func:`functional.split_heads`). This is the layout of
``nn.MultiheadAttention`` and of Hugging Face checkpoints, so converters only copy weights.

Self-attention: ``mha(x)``. Cross-attention: ``mha(x_decoder, x_encoder)`` — queries from the first
argument, keys and values from the second.

Rotary position embeddings (RoPE, Su et al. 2021): ``MultiHeadAttention(..., rotary=RotaryEmbedding(Dh))``
rotates every head's queries and keys by their positions after the projections, before the scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional as tf
from .positional import RotaryEmbedding

__all__ = ["MultiHeadAttention"]


class MultiHeadAttention(nn.Module):
    """Multi-head (self- or cross-) attention with ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``.

    Args:
        d_model: model width D (input and output).
        n_heads: number of heads H; D must be divisible by H, each head has width Dh = D / H.
        bias: whether the four projections have a bias (``False`` for Llama-style blocks).
        dropout: dropout probability on the attention weights (training mode only).
        fused: dispatch the attention itself to ``torch.nn.functional.scaled_dot_product_attention``.
            Off by default so the hand-written path is the one that runs; both are tested equal.
            The fused path cannot return weights: ``return_weights=True`` always uses the hand-written path.
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
        fused: bool = False,
        rotary: RotaryEmbedding | None = None,
    ):
        super().__init__()
        if not isinstance(d_model, int) or d_model <= 0:
            raise ValueError(f"d_model must be a positive int, got {d_model!r}")
        if not isinstance(n_heads, int) or n_heads <= 0:
            raise ValueError(f"n_heads must be a positive int, got {n_heads!r}")
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.dropout, self.fused = dropout, fused
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)  # W^Q for all heads: (D) -> (H·Dh)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # W^O: (H·Dh) -> (D)
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
        return f"d_model={self.d_model}, n_heads={self.n_heads}, d_head={self.d_head}, fused={self.fused}"

    def _check_inputs(self, x_q: Tensor, x_kv: Tensor) -> None:
        for name, x in (("x_q", x_q), ("x_kv", x_kv)):
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() != 3:
                raise ValueError(f"{name} must have shape (B, length, d_model), got {tuple(x.shape)}")
            if x.shape[-1] != self.d_model:
                raise ValueError(f"{name} has width {x.shape[-1]}, expected d_model={self.d_model}")
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
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x_q (B, T, D), x_kv (B, S, D) or None for self-attention -> (B, T, D) [and weights (B, H, T, S)].

        ``allowed`` (bool, broadcastable to (B, H, T, S)) and ``bias`` (float, same) as in
        :func:`functional.scaled_dot_product_attention`.

        ``positions`` is used only with ``rotary``: integer positions (T,), (1, T) or (B, T) of the tokens of
        ``x_q`` (default 0 … T-1), shared by queries and keys in self-attention. With ``x_kv`` given
        (cross-attention, or keys from a cache) pass the pair ``(query_positions, key_positions)``.
        """
        cross = x_kv is not None
        x_kv = x_q if x_kv is None else x_kv
        self._check_inputs(x_q, x_kv)
        q_positions, k_positions = self._positions(positions, cross)
        q = tf.split_heads(self.q_proj(x_q), self.n_heads)  # (B,T,D) -> (B,H,T,Dh)
        k = tf.split_heads(self.k_proj(x_kv), self.n_heads)  # (B,S,D) -> (B,H,S,Dh)
        v = tf.split_heads(self.v_proj(x_kv), self.n_heads)  # (B,S,D) -> (B,H,S,Dh)
        if self.rotary is not None:
            q, k = self.rotary(q, k, q_positions, k_positions=k_positions)  # rotate, shapes unchanged
        out, weights = self._attend(q, k, v, allowed=allowed, bias=bias, return_weights=return_weights)
        out = self.out_proj(tf.merge_heads(out))  # (B,H,T,Dh) -> (B,T,D) -> (B,T,D)
        return (out, weights) if return_weights else out

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
        if self.fused and not return_weights:
            return _fused_attention(q, k, v, allowed=allowed, bias=bias, dropout_p=p), None
        result = tf.scaled_dot_product_attention(
            q, k, v, allowed=allowed, bias=bias, dropout_p=p, return_weights=return_weights
        )
        return result if return_weights else (result, None)


def _fused_attention(q: Tensor, k: Tensor, v: Tensor, *, allowed, bias, dropout_p: float) -> Tensor:
    """PyTorch's fused kernel with our conventions: same mask polarity, zero rows where nothing is allowed."""
    scores_shape = (*q.shape[:-1], k.shape[-2])
    tf.check_allowed(allowed, scores_shape)
    attn_mask = allowed
    if bias is not None:
        attn_mask = bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    if allowed is not None:
        # A fully masked row is defined as zero here; the kernel may give NaN (float masks, older torch).
        any_allowed = allowed.expand(scores_shape).any(dim=-1, keepdim=True)  # (B,H,T,1)
        out = torch.where(any_allowed, out, torch.zeros((), dtype=out.dtype, device=out.device))
    return out
