r"""Task heads: small modules that turn encoder hidden states into predictions.

    CLSPooler   pooled = tanh(W h_[CLS] + b)                                   — Devlin et al. 2019 (BERT), §3
    MLMHead     logits = LayerNorm(gelu(W h + b)) Eᵀ + b_out, E the token embeddings   — BERT masked LM
    NSPHead     logits = W pooled + b over {IsNext = 0, NotNext = 1}                    — BERT next sentence
    PLMHead     logits = g Eᵀ + b_out, E the token embeddings                         — XLNet permuted LM

Shapes: hidden states h (B, T, D) -> pooled (B, D); MLM logits (B, T, V); NSP logits (B, 2).

The MLM decoder is *tied* to the input embeddings (Press & Wolf 2017): ``MLMHead.decoder.weight`` is the very
``nn.Parameter`` of the token embedding (V, D), so one matrix both reads tokens in and scores them out, and its
gradient is the sum of both uses. Only the output bias ``b_out`` (V,) belongs to the head.

:func:`pretraining_loss` is BERT's objective: cross-entropy of the MLM logits over the *selected* positions
only (labels ``ignore_index`` = -100 everywhere else) plus cross-entropy of the NSP logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional as tf
from ._validation import check_all
from .layers import LayerNorm

__all__ = ["CLSPooler", "MLMHead", "NSPHead", "PLMHead", "pretraining_loss", "IS_NEXT", "NOT_NEXT"]

IS_NEXT, NOT_NEXT = 0, 1  # NSP labels, as in BERT and Hugging Face: 0 = "sentence B follows sentence A"


def _check_hidden(h: Tensor, d_model: int, name: str = "hidden") -> None:
    if not isinstance(h, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(h).__name__}")
    if h.dim() < 2 or h.shape[-1] != d_model:
        raise ValueError(f"{name} must have shape (…, d_model={d_model}), got {tuple(h.shape)}")


class CLSPooler(nn.Module):
    """BERT's pooler: tanh of a dense layer over the hidden state of the first token ([CLS]).

    forward(h (B, T, D)) -> pooled (B, D). The NSP head reads it; fine-tuned sentence classifiers did too.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.dense = nn.Linear(d_model, d_model)  # (B, D) -> (B, D)

    def forward(self, h: Tensor) -> Tensor:
        _check_hidden(h, self.d_model)
        if h.dim() != 3:
            raise ValueError(f"hidden must have shape (B, T, D), got {tuple(h.shape)}")
        return torch.tanh(self.dense(h[:, 0]))  # (B, T, D) -> [CLS] (B, D) -> (B, D)


class MLMHead(nn.Module):
    r"""Masked-LM head: logits = LayerNorm(gelu(dense(h))) Eᵀ + bias — the "transform" then the tied decoder.

    Args:
        d_model, vocab_size: D and V.
        embedding: the token-embedding ``nn.Parameter`` (V, D) to tie the decoder to; ``None`` makes an
            untied decoder of its own (initialised like BERT's weights, N(0, 0.02²)).
        layer_norm_eps: ε of the transform's LayerNorm (1e-12 in BERT).
        impl: the implementation of GELU and LayerNorm (see ``functional.py``).

    Sub-modules: ``dense`` (D -> D), ``norm`` (LayerNorm), ``decoder`` (``nn.Linear(D, V, bias=False)`` whose
    ``weight`` *is* ``embedding`` when tied) and the parameter ``bias`` (V,).
    forward(h (…, D)) -> logits (…, V).
    """

    def __init__(
        self,
        d_model: int,
        vocab_size: int,
        *,
        embedding: nn.Parameter | None = None,
        layer_norm_eps: float = 1e-12,
        impl: str = "plain",
    ):
        super().__init__()
        self.d_model, self.vocab_size = d_model, vocab_size
        self.dense = nn.Linear(d_model, d_model)  # (…, D) -> (…, D)
        self.norm = LayerNorm(d_model, eps=layer_norm_eps, impl=impl)
        self.decoder = nn.Linear(d_model, vocab_size, bias=False)  # (…, D) -> (…, V)
        self.bias = nn.Parameter(torch.zeros(vocab_size))  # output-only bias, one per token
        if embedding is not None:
            if not isinstance(embedding, nn.Parameter) or tuple(embedding.shape) != (vocab_size, d_model):
                got = tuple(embedding.shape) if isinstance(embedding, Tensor) else type(embedding).__name__
                raise ValueError(f"embedding must be the (V, D) = ({vocab_size}, {d_model}) Parameter, got {got}")
            self.decoder.weight = embedding  # tied: the same Parameter object, not a copy
        else:
            nn.init.normal_(self.decoder.weight, std=0.02)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, vocab_size={self.vocab_size}"

    def forward(self, h: Tensor) -> Tensor:
        _check_hidden(h, self.d_model)
        x = self.norm(tf.gelu(self.dense(h), impl=self.norm.impl))  # (…, D) -> (…, D)
        return F.linear(x, self.decoder.weight, self.bias)  # (…, D)·(D, V) + (V,) -> (…, V)


class NSPHead(nn.Module):
    """Next-sentence prediction: ``classifier`` = ``nn.Linear(D, 2)`` over the pooled [CLS] output.

    forward(pooled (B, D)) -> logits (B, 2); class 0 = IsNext (B follows A), 1 = NotNext (B is random).
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.classifier = nn.Linear(d_model, 2)  # (B, D) -> (B, 2)

    def forward(self, pooled: Tensor) -> Tensor:
        _check_hidden(pooled, self.d_model, "pooled")
        return self.classifier(pooled)


class PLMHead(nn.Module):
    r"""XLNet's LM head: logits = g Eᵀ + b_out — no transform, the decoder tied to the token embeddings.

    Args:
        d_model, vocab_size: D and V.
        embedding: the token-embedding ``nn.Parameter`` (V, D) to tie to (``None``: an untied weight, N(0, 0.02²)).

    Sub-modules: ``decoder`` (``nn.Linear(D, V, bias=False)``, its ``weight`` *is* ``embedding`` when tied) and
    the parameter ``bias`` (V,). forward(g (…, D)) -> logits (…, V): (B, P, D) -> (B, P, V) for the query
    stream of P targets, (B, T, D) -> (B, T, V) for the content stream.
    """

    def __init__(self, d_model: int, vocab_size: int, *, embedding: nn.Parameter | None = None):
        super().__init__()
        self.d_model, self.vocab_size = d_model, vocab_size
        self.decoder = nn.Linear(d_model, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        if embedding is not None:
            if not isinstance(embedding, nn.Parameter) or tuple(embedding.shape) != (vocab_size, d_model):
                got = tuple(embedding.shape) if isinstance(embedding, Tensor) else type(embedding).__name__
                raise ValueError(f"embedding must be the (V, D) = ({vocab_size}, {d_model}) Parameter, got {got}")
            self.decoder.weight = embedding  # tied: the same Parameter object
        else:
            nn.init.normal_(self.decoder.weight, std=0.02)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, vocab_size={self.vocab_size}"

    def forward(self, g: Tensor) -> Tensor:
        _check_hidden(g, self.d_model)
        return F.linear(g, self.decoder.weight, self.bias)  # (…, D)·(D, V) + (V,) -> (…, V)


def pretraining_loss(
    mlm_logits: Tensor | None = None,
    mlm_labels: Tensor | None = None,
    nsp_logits: Tensor | None = None,
    nsp_labels: Tensor | None = None,
    *,
    ignore_index: int = -100,
    impl: str | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    r"""BERT's pre-training loss = CE_MLM + CE_NSP -> (total, mlm_loss, nsp_loss).

        CE_MLM = mean over selected positions (labels ≠ ignore_index) of -log p(original token)
        CE_NSP = mean over the batch of -log p(IsNext/NotNext label)

    Shapes: mlm_logits (B, T, V) with mlm_labels (B, T); nsp_logits (B, 2) with nsp_labels (B,). Either pair
    may be left out (its loss is then None and the total is the other one). Positions whose label is
    ``ignore_index`` contribute nothing — neither to the sum nor to the count of the mean. ``impl`` chooses the
    implementation of :func:`functional.cross_entropy`.
    """
    mlm_loss = nsp_loss = None
    if (mlm_logits is None) != (mlm_labels is None):
        raise ValueError("pass both mlm_logits and mlm_labels, or neither")
    if (nsp_logits is None) != (nsp_labels is None):
        raise ValueError("pass both nsp_logits and nsp_labels, or neither")
    if mlm_logits is None and nsp_logits is None:
        raise ValueError("pretraining_loss needs mlm_labels, nsp_labels or both")
    if mlm_logits is not None:
        mlm_loss = tf.cross_entropy(mlm_logits, mlm_labels.to(mlm_logits.device), ignore_index=ignore_index, impl=impl)
    if nsp_logits is not None:
        check_all(
            (nsp_labels == IS_NEXT) | (nsp_labels == NOT_NEXT),
            lambda: f"nsp_labels must be 0 (IsNext) or 1 (NotNext), got {torch.unique(nsp_labels).tolist()}",
            "nsp_labels must be 0 (IsNext) or 1 (NotNext)",
        )
        nsp_loss = tf.cross_entropy(nsp_logits, nsp_labels.to(nsp_logits.device), impl=impl)
    if mlm_loss is None:
        return nsp_loss, None, nsp_loss
    return (mlm_loss if nsp_loss is None else mlm_loss + nsp_loss), mlm_loss, nsp_loss
