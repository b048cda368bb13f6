"""NumPy float64 references for the per-position layers — written for the eye, never imports torch.

Weights use the ``nn.Linear`` orientation (out, in): a projection is ``x @ w.T + b``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["layer_norm", "rms_norm", "relu", "gelu", "gelu_tanh", "silu", "feed_forward"]


def layer_norm(x, weight, bias, eps: float = 1e-5) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis, biased variance (divide by D)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased, as nn.LayerNorm
    return np.asarray(weight) * (x - mean) / np.sqrt(var + eps) + np.asarray(bias)


def rms_norm(x, weight, eps: float = 1e-6) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * weight over the last axis; no centring, no bias."""
    x = np.asarray(x, dtype=np.float64)
    rms = np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps)
    return np.asarray(weight) * x / rms


def relu(x) -> np.ndarray:
    return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


def gelu(x) -> np.ndarray:
    """x * Phi(x) with the exact normal CDF Phi(x) = (1 + erf(x / sqrt 2)) / 2, one entry at a time."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        out[idx] = 0.5 * x[idx] * (1.0 + math.erf(x[idx] / math.sqrt(2.0)))
    return out


def gelu_tanh(x) -> np.ndarray:
    """The tanh approximation of GELU (GPT-2's gelu_new)."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def silu(x) -> np.ndarray:
    """x * sigmoid(x)."""
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.exp(-x))


_ACTIVATIONS = {"relu": relu, "gelu": gelu, "gelu_tanh": gelu_tanh}


def _linear(x, w, b) -> np.ndarray:
    y = np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T  # (..., in) @ (in, out)
    return y if b is None else y + np.asarray(b, dtype=np.float64)


def feed_forward(x, w1, b1, w2, b2, activation: str = "relu", w3=None) -> np.ndarray:
    """Position-wise feed-forward network, no dropout.

    relu / gelu / gelu_tanh:  act(x w1^T + b1) w2^T + b2
    swiglu:                   (silu(x w1^T) * (x w3^T)) w2^T          (b1 and b2 must be None)
    gated_gelu:               (gelu_tanh(x w1^T) * (x w3^T)) w2^T     (T5 v1.1)
    """
    gates = {"swiglu": silu, "gated_gelu": _ACTIVATIONS["gelu_tanh"]}
    if activation in gates:
        if w3 is None:
            raise ValueError(f"{activation} needs w3")
        hidden = gates[activation](_linear(x, w1, b1)) * _linear(x, w3, None)
    elif activation in _ACTIVATIONS:
        hidden = _ACTIVATIONS[activation](_linear(x, w1, b1))
    else:
        raise ValueError(f"unknown activation {activation!r}")
    return _linear(hidden, w2, b2)
