r"""The per-position layers of a Transformer block and the token embedding.

    LayerNorm        (x - μ) / √(σ² + ε) · weight + bias                — Ba et al. 2016 (2017 Transformer, BERT, GPT-2)
    RMSNorm          x / √(mean(x²) + ε) · weight                       — Zhang & Sennrich 2019 (T5, Llama)
    FeedForward      w2(act(w1 x)), or w2(act(w1 x) ⊙ w3 x) gated         — Vaswani et al. 2017 eq. (2); Shazeer 2020
    TokenEmbedding   weight[ids] (· √D)                                 — Vaswani et al. 2017 §3.4

Each module owns its parameters and calls the pure functions of :mod:`functional` with its ``impl`` ("plain" —
the textbook code, by default —, "kernels" or "torch", see ``functional.py``); tests compare those functions with
the NumPy references in ``reference/layers.py`` and with PyTorch's own layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional as tf
from ._validation import check_integer_tensor, check_token_ids, check_width

__all__ = ["ACTIVATIONS", "GATED", "FFN_ACTIVATIONS", "LayerNorm", "RMSNorm", "FeedForward", "TokenEmbedding"]

ACTIVATIONS: dict[str, Callable[..., Tensor]] = {
    "relu": tf.relu,  # the 2017 Transformer
    "gelu": tf.gelu,  # exact erf form: BERT, nn.TransformerEncoderLayer(activation="gelu")
    "gelu_tanh": tf.gelu_tanh,  # tanh approximation: GPT-2
}
GATED = {"swiglu": tf.silu, "gated_gelu": tf.gelu_tanh}  # the gate's activation: Llama's SwiGLU, T5 v1.1's GeGLU
FFN_ACTIVATIONS = (*ACTIVATIONS, *GATED)


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_eps(eps) -> None:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")


def _check_impl(impl) -> None:
    if impl not in tf.IMPLS:
        raise ValueError(f"impl must be one of {tf.IMPLS}, got {impl!r}")


class _Norm(nn.Module):
    """What both norms share: the width D, ε, the implementation and a ``weight`` of ones (D,)."""

    def __init__(self, d_model: int, eps: float, impl: str):
        super().__init__()
        _check_positive_int("d_model", d_model)
        _check_eps(eps)
        _check_impl(impl)
        self.d_model, self.eps, self.impl = d_model, float(eps), impl
        self.weight = nn.Parameter(torch.ones(d_model))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, eps={self.eps}"


class LayerNorm(_Norm):
    """Layer normalisation over the last dimension, with ``weight`` (ones) and ``bias`` (zeros) of shape (D,).

    Biased variance and ε inside the square root, as ``nn.LayerNorm``; ε is 1e-5 by default
    (``nn.LayerNorm``, GPT-2) — BERT checkpoints use 1e-12, so pass ``eps`` from the checkpoint's config.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, *, impl: str = "plain"):
        super().__init__(d_model, eps, impl)
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: Tensor) -> Tensor:
        """x (…, D) -> (…, D)."""
        check_width(x, self.d_model)
        return tf.layer_norm(x, self.weight, self.bias, self.eps, impl=self.impl)


class RMSNorm(_Norm):
    """Root-mean-square normalisation over the last dimension, with ``weight`` (ones) of shape (D,); no bias.

    Half-precision inputs are normalised in float32 and cast back (see :func:`functional.rms_norm`).
    """

    def __init__(self, d_model: int, eps: float = 1e-6, *, impl: str = "plain"):
        super().__init__(d_model, eps, impl)

    def forward(self, x: Tensor) -> Tensor:
        """x (…, D) -> (…, D), in the dtype of x."""
        check_width(x, self.d_model)
        return tf.rms_norm(x, self.weight, self.eps, impl=self.impl)


class FeedForward(nn.Module):
    r"""The position-wise feed-forward network, applied to every position independently.

        relu / gelu / gelu_tanh:   FFN(x) = w2(dropout(act(w1 x)))               — Vaswani et al. 2017, eq. (2)
        swiglu:                    FFN(x) = w2(dropout(silu(w1 x) ⊙ w3 x))      — Shazeer 2020, "GLU variants"
        gated_gelu:                FFN(x) = w2(dropout(gelu_tanh(w1 x) ⊙ w3 x)) — GEGLU with the tanh GELU (T5 v1.1)

    Shapes: x (…, D) -> hidden (…, F) -> (…, D). ``w1`` (D -> F), ``w2`` (F -> D) and, for the gated kinds, ``w3``
    (D -> F) are ``nn.Linear``. Dropout sits between the activation and ``w2``, where
    ``nn.TransformerEncoderLayer`` puts it.

    ``bias`` applies to relu/gelu/gelu_tanh only: the three projections of a gated network are always bias-free, as
    in Shazeer's formulation, in Llama (``w1`` = gate_proj, ``w3`` = up_proj, ``w2`` = down_proj) and in T5 v1.1
    (``w1`` = wi_0, ``w3`` = wi_1, ``w2`` = wo). Llama
    picks d_ff ≈ 8/3 · D for SwiGLU so that its three matrices cost what two matrices of width 4·D would.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        *,
        activation: str = "relu",
        bias: bool = True,
        dropout: float = 0.0,
        impl: str = "plain",
    ):
        super().__init__()
        _check_impl(impl)
        _check_positive_int("d_model", d_model)
        _check_positive_int("d_ff", d_ff)
        if activation not in FFN_ACTIVATIONS:
            raise ValueError(f"activation must be one of {FFN_ACTIVATIONS}, got {activation!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.d_model, self.d_ff, self.activation, self.impl = d_model, d_ff, activation, impl
        gated = activation in GATED
        self.w1 = nn.Linear(d_model, d_ff, bias=bias and not gated)  # (…, D) -> (…, F)
        self.w2 = nn.Linear(d_ff, d_model, bias=bias and not gated)  # (…, F) -> (…, D)
        if gated:
            self.w3 = nn.Linear(d_model, d_ff, bias=False)  # (…, D) -> (…, F), the linear ("up") branch
        self.dropout = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, d_ff={self.d_ff}, activation={self.activation!r}"

    def forward(self, x: Tensor) -> Tensor:
        """x (…, D) -> (…, D)."""
        check_width(x, self.d_model)
        if self.activation in GATED:
            hidden = GATED[self.activation](self.w1(x), impl=self.impl) * self.w3(x)  # (…, F) ⊙ (…, F) -> (…, F)
        else:
            hidden = ACTIVATIONS[self.activation](self.w1(x), impl=self.impl)  # (…, D) -> (…, F)
        return self.w2(self.dropout(hidden))  # (…, F) -> (…, D)


class TokenEmbedding(nn.Module):
    r"""Token ids -> vectors: ``weight[ids]``, times √D when ``scale=True`` — Vaswani et al. 2017, §3.4.

    Args:
        vocab_size: V, the number of rows of ``weight`` (V, D).
        d_model: D.
        scale: multiply by √D, as the 2017 paper does ("we multiply those weights by √d_model") so that the
            embeddings, which share their matrix with the output projection, are not drowned by the
            positional encodings. BERT and GPT-2 do not scale.
        padding_idx: a row initialised to zero that receives no gradient (as in ``nn.Embedding``).
        check_ids: check that every id lies in [0, vocab_size) on each call. A model turns it off for the
            embeddings it owns: it checks its inputs once, on entry, and names them (``input_ids``, ``src_ids``).

    ``weight`` starts as N(0, 1/D): with ``scale=True`` the scaled embeddings then have unit variance per
    entry, like the sinusoidal encodings they are added to.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        *,
        scale: bool = False,
        padding_idx: int | None = None,
        check_ids: bool = True,
    ):
        super().__init__()
        _check_positive_int("vocab_size", vocab_size)
        _check_positive_int("d_model", d_model)
        if padding_idx is not None and not (
            isinstance(padding_idx, int) and not isinstance(padding_idx, bool) and 0 <= padding_idx < vocab_size
        ):
            raise ValueError(f"padding_idx must be None or an int in [0, {vocab_size}), got {padding_idx!r}")
        self.vocab_size, self.d_model, self.scale, self.padding_idx = vocab_size, d_model, bool(scale), padding_idx
        self.check_ids = bool(check_ids)
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=self.d_model**-0.5)
        if self.padding_idx is not None:
            with torch.no_grad():
                self.weight[self.padding_idx].zero_()

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"vocab_size={self.vocab_size}, d_model={self.d_model}, scale={self.scale}{pad}"

    def forward(self, ids: Tensor) -> Tensor:
        """ids (…) integer -> embeddings (…, D), e.g. (B, T) -> (B, T, D)."""
        if self.check_ids:
            check_integer_tensor(ids, "ids", what="(…)")
            check_token_ids(ids, self.vocab_size, "ids")
        # F.embedding is the row lookup weight[ids]; it also keeps the gradient of the padding row at zero.
        out = F.embedding(ids, self.weight, padding_idx=self.padding_idx)  # (…) -> (…, D)
        return out * math.sqrt(self.d_model) if self.scale else out
