"""NumPy float64 reference for the decoder-only GPT (GPT-2, and the Llama-style options) — never imports torch.

Written for the eye: positions counted token by token, the causal-and-padding mask built entry by entry, one
head at a time, rotary embeddings applied per head. Weights are a flat dict of numpy arrays keyed like
``GPT.state_dict()``: ``"token.weight"``, ``"position.weight"`` (learned positions only),
``"decoder.layers.{i}.self_attn.q_proj.weight"``, ``"decoder.layers.{i}.ff.w1.weight"``,
``"decoder.layers.{i}.norm1.weight"``, ``"decoder.final_norm.weight"``, ``"lm_head.weight"``… A missing bias key
means "no bias". Dropout is not modelled (the reference is the model in evaluation mode).

Shapes: ids (B, T) -> logits (B, T, V); the mask is ``allowed`` (True = may attend).
"""

from __future__ import annotations

import math

import numpy as np

from .attention import scaled_dot_product_attention
from .layers import feed_forward, layer_norm, rms_norm
from .positional import rope

__all__ = ["positions_from_valid", "causal_padding_mask", "gpt", "causal_lm_loss"]


def positions_from_valid(valid) -> np.ndarray:
    """Position of each token = (number of real tokens up to and including it) - 1, at least 0: (B, T) -> (B, T).

    [pad, pad, a, b, c] -> [0, 0, 0, 1, 2]: a left-padded sequence gets the positions it would have alone.
    """
    valid = np.asarray(valid, dtype=bool)
    positions = np.zeros(valid.shape, dtype=np.int64)
    for b in range(valid.shape[0]):
        seen = 0
        for t in range(valid.shape[1]):
            seen += int(valid[b, t])
            positions[b, t] = max(seen - 1, 0)
    return positions


def causal_padding_mask(valid) -> np.ndarray:
    """(B, T) real-token mask -> (B, 1, T, T): query i may attend to key j iff j ≤ i and token j is real."""
    valid = np.asarray(valid, dtype=bool)
    batch, t = valid.shape
    allowed = np.zeros((batch, 1, t, t), dtype=bool)
    for b in range(batch):
        for i in range(t):
            for j in range(i + 1):
                allowed[b, 0, i, j] = valid[b, j]
    return allowed


def _w(weights: dict, key: str):
    value = weights.get(key)
    return None if value is None else np.asarray(value, dtype=np.float64)


def _linear(x, weights: dict, name: str) -> np.ndarray:
    """x Wᵀ + b with ``{name}.weight`` (out, in) and the optional ``{name}.bias``."""
    y = x @ _w(weights, f"{name}.weight").T
    bias = _w(weights, f"{name}.bias")
    return y if bias is None else y + bias


def _norm(x, weights: dict, name: str, norm: str, eps: float) -> np.ndarray:
    if norm == "layer":
        return layer_norm(x, _w(weights, f"{name}.weight"), _w(weights, f"{name}.bias"), eps)
    if norm == "rms":
        return rms_norm(x, _w(weights, f"{name}.weight"), eps)
    raise ValueError(f"unknown norm {norm!r}")


def _self_attention(x, weights: dict, name: str, n_heads: int, allowed, positions, rotary):
    """Causal multi-head self-attention, one head at a time; ``rotary`` = (theta, convention) or None.

    x (B, T, D), allowed (B, 1, T, T), positions (B, T) -> (B, T, D) and the weights (B, H, T, T).
    """
    d_model = x.shape[-1]
    d_head = d_model // n_heads
    heads, head_weights = [], []
    for h in range(n_heads):
        rows = slice(h * d_head, (h + 1) * d_head)  # head h owns these output rows of W_q, W_k, W_v
        projected = []
        for proj in ("q_proj", "k_proj", "v_proj"):
            w = _w(weights, f"{name}.{proj}.weight")[rows]  # (Dh, D)
            bias = _w(weights, f"{name}.{proj}.bias")
            y = x @ w.T  # (B, T, Dh)
            projected.append(y if bias is None else y + bias[rows])
        q, k, v = projected
        if rotary is not None:  # rotate queries and keys by their positions (values are not rotated)
            theta, convention = rotary
            q = rope(q, positions, theta, convention)
            k = rope(k, positions, theta, convention)
        out, w = scaled_dot_product_attention(q, k, v, allowed=allowed[:, 0], return_weights=True)
        heads.append(out)  # (B, T, Dh)
        head_weights.append(w)  # (B, T, T)
    concat = np.concatenate(heads, axis=-1)  # H × (B, T, Dh) -> (B, T, D)
    return _linear(concat, weights, f"{name}.out_proj"), np.stack(head_weights, axis=1)


def gpt(
    ids,
    weights: dict,
    *,
    n_heads: int,
    n_layers: int,
    positional: str = "learned",
    rope_theta: float = 10000.0,
    rope_convention: str = "half",
    norm: str = "layer",
    activation: str = "gelu_tanh",
    eps: float = 1e-5,
    valid=None,
    positions=None,
    return_details: bool = False,
):
    """Logits (B, T, V) of the decoder-only model; with ``return_details`` also (hidden states, attentions).

    x = E[ids] (+ P[positions]);  for each block: x = x + Attn(Norm1(x)), x = x + FFN(Norm2(x));
    logits = FinalNorm(x) W_headᵀ.  ``valid`` (B, T): True at real tokens (None: all real); ``positions``
    (B, T) default to :func:`positions_from_valid`. The hidden states are the L + 1 inputs/outputs of the
    blocks (before the final norm).
    """
    ids = np.asarray(ids)
    batch, t = ids.shape
    valid = np.ones((batch, t), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    positions = positions_from_valid(valid) if positions is None else np.broadcast_to(np.asarray(positions), ids.shape)
    allowed = causal_padding_mask(valid)  # (B, 1, T, T)

    x = _w(weights, "token.weight")[ids]  # (B, T, D)
    rotary = None
    if positional == "learned":
        x = x + _w(weights, "position.weight")[positions]  # (B, T, D)
    elif positional == "rope":
        rotary = (rope_theta, rope_convention)
    else:
        raise ValueError(f"unknown positional {positional!r}")

    hidden, attentions = [x], []
    for layer in range(n_layers):
        prefix = f"decoder.layers.{layer}"
        n1 = _norm(x, weights, f"{prefix}.norm1", norm, eps)
        attn, w = _self_attention(n1, weights, f"{prefix}.self_attn", n_heads, allowed, positions, rotary)
        x = x + attn
        n2 = _norm(x, weights, f"{prefix}.norm2", norm, eps)
        x = x + feed_forward(
            n2,
            _w(weights, f"{prefix}.ff.w1.weight"),
            _w(weights, f"{prefix}.ff.w1.bias"),
            _w(weights, f"{prefix}.ff.w2.weight"),
            _w(weights, f"{prefix}.ff.w2.bias"),
            activation,
            w3=_w(weights, f"{prefix}.ff.w3.weight"),
        )
        hidden.append(x)
        attentions.append(w)
    h = _norm(x, weights, "decoder.final_norm", norm, eps)
    logits = h @ _w(weights, "lm_head.weight").T  # (B, T, D) · (D, V) -> (B, T, V)
    return (logits, hidden, attentions) if return_details else logits


def causal_lm_loss(logits, labels, valid=None, ignore_index: int = -100) -> float:
    """Mean over t of -log softmax(logits[b, t])[labels[b, t + 1]], skipping targets equal to ``ignore_index``
    and predictions made at padded positions (``valid[b, t]`` False)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    valid = np.ones(labels.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    total, count = 0.0, 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1] - 1):
            target = int(labels[b, t + 1])  # position t predicts the next token
            if target == ignore_index or not valid[b, t]:
                continue
            row = logits[b, t]
            m = row.max()
            log_z = m + math.log(np.exp(row - m).sum())
            total += log_z - row[target]
            count += 1
    return total / max(count, 1)
