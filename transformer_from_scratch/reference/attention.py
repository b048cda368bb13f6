r"""NumPy float64 reference for scaled dot-product and multi-head attention — Vaswani et al. 2017, §3.2.

Written for the eye, not for speed: an explicit loop over queries in the attention, an explicit loop over
heads in multi-head attention. numpy only, never torch. Shape legend as in ``functional.py``
(B batch, T queries, S keys, H heads, Dh head width, D model width).

Conventions shared with the torch code:
  * ``allowed`` is boolean, True where query i may attend to key j, broadcastable to (…, T, S);
  * ``bias`` is added to the scaled scores before the softmax; a -inf bias works like a disallowed key;
  * a query with no allowed key gets zero weights and a zero output.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["softmax", "scaled_dot_product_attention", "multi_head_attention"]


def softmax(x, axis: int = -1) -> np.ndarray:
    """exp(x - max) / Σ exp(x - max): subtracting the maximum keeps every exponent ≤ 0 (no overflow)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def scaled_dot_product_attention(q, k, v, allowed=None, bias=None, return_weights: bool = False, scale=None):
    """softmax(q kᵀ / √Dh + bias) v, one query at a time; ``scale`` replaces 1/√Dh when given (T5: 1).

    q (…, T, Dh), k (…, S, Dh), v (…, S, Dv); the leading dimensions broadcast against each other.
    Returns the output (…, T, Dv) and, with ``return_weights``, the weights (…, T, S).
    """
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    t, d_head = q.shape[-2:]
    s, d_value = v.shape[-2:]
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q = np.broadcast_to(q, (*lead, t, d_head))
    k = np.broadcast_to(k, (*lead, s, d_head))
    v = np.broadcast_to(v, (*lead, s, d_value))
    allowed = np.ones((t, s), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    bias = np.zeros((t, s)) if bias is None else np.asarray(bias, dtype=np.float64)
    allowed = np.broadcast_to(allowed, (*lead, t, s))
    bias = np.broadcast_to(bias, (*lead, t, s))

    c = 1.0 / math.sqrt(d_head) if scale is None else float(scale)
    out = np.zeros((*lead, t, d_value))
    weights = np.zeros((*lead, t, s))
    for idx in np.ndindex(*lead):  # every (batch, head, …) slice on its own
        for i in range(t):  # every query on its own
            scores = np.array([c * (q[idx][i] @ k[idx][j]) + bias[idx][i, j] for j in range(s)])
            # a key counts when it is allowed and its score is not -inf (a -inf bias blocks it too)
            visible = allowed[idx][i] & (scores > -np.inf)
            if not visible.any():
                continue  # nothing to attend to: zero weights, zero output
            w = np.zeros(s)
            w[visible] = softmax(scores[visible])
            weights[idx][i] = w
            out[idx][i] = sum(w[j] * v[idx][j] for j in range(s))
    return (out, weights) if return_weights else out


def _linear(x, w, b):
    """x (…, in) · wᵀ (in, out) + b — weights in nn.Linear orientation (out, in)."""
    y = x @ w.T
    return y if b is None else y + b


def multi_head_attention(
    x_q,
    x_kv,
    w_q,
    b_q,
    w_k,
    b_k,
    w_v,
    b_v,
    w_o,
    b_o,
    n_heads: int,
    allowed=None,
    bias=None,
    return_weights: bool = False,
):
    """Concat(head_1, …, head_H) W_oᵀ + b_o with head_h = Attention(x_q W_q,hᵀ, x_kv W_k,hᵀ, x_kv W_v,hᵀ).

    x_q (B, T, D), x_kv (B, S, D); head h uses rows h·Dh:(h+1)·Dh of w_q, w_k, w_v (and of their biases)
    and columns h·Dh:(h+1)·Dh of w_o. ``allowed`` and ``bias`` broadcast to (B, H, T, S).
    Returns (B, T, D) and, with ``return_weights``, the weights (B, H, T, S).
    """
    x_q, x_kv = np.asarray(x_q, dtype=np.float64), np.asarray(x_kv, dtype=np.float64)
    w_q, w_k, w_v, w_o = (np.asarray(w, dtype=np.float64) for w in (w_q, w_k, w_v, w_o))
    b_q, b_k, b_v, b_o = (None if b is None else np.asarray(b, dtype=np.float64) for b in (b_q, b_k, b_v, b_o))
    batch, t, d_model = x_q.shape
    s = x_kv.shape[1]
    d_head = d_model // n_heads
    if allowed is not None:
        allowed = np.broadcast_to(np.asarray(allowed, dtype=bool), (batch, n_heads, t, s))
    if bias is not None:
        bias = np.broadcast_to(np.asarray(bias, dtype=np.float64), (batch, n_heads, t, s))

    head_outputs, head_weights = [], []
    for h in range(n_heads):
        rows = slice(h * d_head, (h + 1) * d_head)
        q_h = _linear(x_q, w_q[rows], None if b_q is None else b_q[rows])  # (B, T, Dh)
        k_h = _linear(x_kv, w_k[rows], None if b_k is None else b_k[rows])  # (B, S, Dh)
        v_h = _linear(x_kv, w_v[rows], None if b_v is None else b_v[rows])  # (B, S, Dh)
        o_h, w_h = scaled_dot_product_attention(
            q_h,
            k_h,
            v_h,
            allowed=None if allowed is None else allowed[:, h],
            bias=None if bias is None else bias[:, h],
            return_weights=True,
        )
        head_outputs.append(o_h)  # (B, T, Dh)
        head_weights.append(w_h)  # (B, T, S)
    concat = np.concatenate(head_outputs, axis=-1)  # H × (B, T, Dh) -> (B, T, D)
    out = _linear(concat, w_o, b_o)  # (B, T, D)
    weights = np.stack(head_weights, axis=1)  # H × (B, T, S) -> (B, H, T, S)
    return (out, weights) if return_weights else out
