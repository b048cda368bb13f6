r"""Task heads: small modules that turn encoder hidden states into predictions.

    CLSPooler   pooled = tanh(W h_[CLS] + b)                                   — Devlin et al. 2019 (BERT), §3
    MLMHead     logits = LayerNorm(gelu(W h + b)) Eᵀ + b_out, E the token embeddings   — BERT masked LM
    NSPHead     logits = W pooled + b over {IsNext = 0, NotNext = 1}                    — BERT next sentence
    PLMHead     logits = g Eᵀ + b_out, E the token embeddings                         — XLNet permuted LM

Fine-tuning heads (Devlin et al. 2019, §4–5; Radford et al. 2018, §3.2 for a decoder's last token):

    SequenceClassificationHead  logits = W Dropout(pooled) + b       one vector per sequence  — BERT §4.1 (GLUE)
    TokenClassificationHead     logits_t = W Dropout(h_t) + b        one vector per token     — BERT §5.3 (NER)
    SpanQAHead                  start_t = S·h_t + b_S,  end_t = E·h_t + b_E                   — BERT §4.2 (SQuAD)
    best_span                   argmax of start_i + end_j over i ≤ j < i + max_answer_len     — BERT §4.2
    classification_loss         CE(logits, labels); MSE(logits, labels) when n_labels = 1     — regression (STS-B)
    token_classification_loss   CE over the labelled real tokens
    span_loss                   (CE(start_logits, start) + CE(end_logits, end)) / 2           — as Hugging Face

Shapes: hidden states h (B, T, D) -> pooled (B, D); MLM logits (B, T, V); NSP logits (B, 2); sequence logits
(B, n_labels); token logits (B, T, n_labels); start/end logits (B, T) each.

"pooled" is whatever vector stands for the sequence: BERT's tanh pooler over [CLS] (:class:`CLSPooler`), the
masked mean of the token states (:func:`pooling.mean_pool`), or a decoder's state at the last real token.

The MLM decoder is *tied* to the input embeddings (Press & Wolf 2017): ``MLMHead.decoder.weight`` is the very
``nn.Parameter`` of the token embedding (V, D), so one matrix both reads tokens in and scores them out, and its
gradient is the sum of both uses. Only the output bias ``b_out`` (V,) belongs to the head.

:func:`pretraining_loss` is BERT's objective: cross-entropy of the MLM logits over the *selected* positions
only (labels ``ignore_index`` = -100 everywhere else) plus cross-entropy of the NSP logits.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional as tf
from ._validation import check_all, check_bool, check_int, check_labels, check_probability
from .layers import LayerNorm

__all__ = [
    "CLSPooler",
    "MLMHead",
    "NSPHead",
    "PLMHead",
    "pretraining_loss",
    "IS_NEXT",
    "NOT_NEXT",
    "SequenceClassificationHead",
    "TokenClassificationHead",
    "SpanQAHead",
    "Span",
    "best_span",
    "classification_loss",
    "token_classification_loss",
    "span_loss",
]

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


# ---- fine-tuning heads --------------------------------------------------------------------------------------------


class SequenceClassificationHead(nn.Module):
    r"""logits = W Dropout(pooled) + b — one score per label for each sequence: (B, D) -> (B, n_labels).

    BERT's sentence-level head (Devlin et al. 2019, §4.1): "the only new parameters introduced during fine-tuning
    are classification layer weights W ∈ R^{K×H}". ``n_labels`` = 1 makes it a regression head (one real number,
    e.g. an STS-B similarity; see :func:`classification_loss`).

    Args:
        d_model, n_labels: D and the number of labels K (≥ 1).
        dropout: dropout on the pooled vector before the linear layer (BERT: ``hidden_dropout_prob`` = 0.1).
        bias: whether the linear layer has a bias (GPT-2's ``score`` layer has none).

    Sub-modules: ``dropout`` and ``linear`` (``nn.Linear(D, n_labels)``). forward(pooled (B, D)) -> (B, n_labels).
    """

    def __init__(self, d_model: int, n_labels: int, *, dropout: float = 0.1, bias: bool = True):
        super().__init__()
        check_int("d_model", d_model, 1)
        check_int("n_labels", n_labels, 1)
        check_probability("dropout", dropout)
        check_bool("bias", bias)
        self.d_model, self.n_labels = d_model, n_labels
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(d_model, n_labels, bias=bias)  # (B, D) -> (B, n_labels)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_labels={self.n_labels}"

    def forward(self, pooled: Tensor) -> Tensor:
        _check_hidden(pooled, self.d_model, "pooled")
        return self.linear(self.dropout(pooled))  # (…, D) -> (…, n_labels)


class TokenClassificationHead(nn.Module):
    r"""logits_t = W Dropout(h_t) + b — one score per label for every token: (B, T, D) -> (B, T, n_labels).

    BERT's tagging head (Devlin et al. 2019, §5.3, CoNLL-2003 named-entity recognition): the same linear layer on
    each token's final hidden state, no pooling. Sub-modules: ``dropout`` and ``linear`` (``nn.Linear(D, n_labels)``).
    """

    def __init__(self, d_model: int, n_labels: int, *, dropout: float = 0.1):
        super().__init__()
        check_int("d_model", d_model, 1)
        check_int("n_labels", n_labels, 1)
        check_probability("dropout", dropout)
        self.d_model, self.n_labels = d_model, n_labels
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(d_model, n_labels)  # (B, T, D) -> (B, T, n_labels)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_labels={self.n_labels}"

    def forward(self, h: Tensor) -> Tensor:
        _check_hidden(h, self.d_model)
        return self.linear(self.dropout(h))  # (B, T, D) -> (B, T, n_labels)


class SpanQAHead(nn.Module):
    r"""Extractive QA: start_t = S·h_t + b_S and end_t = E·h_t + b_E — Devlin et al. 2019, §4.2 (SQuAD).

    "We only introduce a start vector S ∈ R^H and an end vector E ∈ R^H during fine-tuning": here they are the two
    rows of ``linear`` = ``nn.Linear(D, 2)`` (row 0 = S, row 1 = E, the order of Hugging Face's ``qa_outputs``).
    A softmax over the T positions of start_t gives P(answer starts at t); likewise for the end.

    forward(h (B, T, D)) -> (start_logits (B, T), end_logits (B, T)). :func:`best_span` reads them.
    """

    def __init__(self, d_model: int):
        super().__init__()
        check_int("d_model", d_model, 1)
        self.d_model = d_model
        self.linear = nn.Linear(d_model, 2)  # (B, T, D) -> (B, T, 2)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}"

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        _check_hidden(h, self.d_model)
        logits = self.linear(h)  # (B, T, D) -> (B, T, 2)
        return logits[..., 0], logits[..., 1]  # (B, T, 2) -> start (B, T), end (B, T)


class Span(NamedTuple):
    """What :func:`best_span` returns, one entry per example: ``start`` and ``end`` (B,) long — token positions, the
    end *inclusive* — and ``score`` (B,) = start_logits[start] + end_logits[end]."""

    start: Tensor
    end: Tensor
    score: Tensor


def _check_span_logits(start_logits, end_logits) -> None:
    for name, t in (("start_logits", start_logits), ("end_logits", end_logits)):
        if not isinstance(t, Tensor) or not t.is_floating_point() or t.dim() != 2:
            got = (tuple(t.shape), t.dtype) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a floating-point tensor of shape (B, T), got {got}")
    if start_logits.shape != end_logits.shape:
        raise ValueError(
            f"start_logits and end_logits must have the same shape (B, T), got {tuple(start_logits.shape)} and "
            f"{tuple(end_logits.shape)}"
        )


def best_span(
    start_logits: Tensor, end_logits: Tensor, *, allowed: Tensor | None = None, max_answer_len: int = 30
) -> Span:
    r"""The best legal answer span of each example: (i*, j*) = argmax over legal (i, j) of start_i + end_j.

        legal(i, j)  ⇔  i ≤ j,  j − i + 1 ≤ max_answer_len,  allowed_i and allowed_j

    "The score of a candidate span from position i to position j is defined as S·T_i + E·T_j, and the maximum
    scoring span where j ≥ i is used as a prediction" — Devlin et al. 2019, §4.2; the length limit (30 tokens)
    is that of the BERT and Hugging Face SQuAD scripts. Exact, not greedy: every one of the T² pairs is scored at
    once, scores (B, T, T) = start (B, T, 1) + end (B, 1, T), and the illegal pairs are masked out by a band
    (0 ≤ j − i < max_answer_len) and ``allowed``. Ties go to the smallest start, then the smallest end.

    Args:
        start_logits, end_logits: (B, T) each, e.g. from :class:`SpanQAHead`.
        allowed: (B, T) bool, True where an answer may start or end — typically the context tokens (not the
            question, not [CLS]/[SEP], not padding). None: every position.
        max_answer_len: the longest answer in tokens, ≥ 1.

    Returns a :class:`Span` of (B,) tensors. Raises ``ValueError`` naming the rows that have no legal span (no
    allowed position at all), and for NaN logits.
    """
    _check_span_logits(start_logits, end_logits)
    check_int("max_answer_len", max_answer_len, 1)
    batch, t = start_logits.shape
    if allowed is not None:
        if not isinstance(allowed, Tensor) or allowed.dtype != torch.bool or allowed.shape != start_logits.shape:
            got = (tuple(allowed.shape), allowed.dtype) if isinstance(allowed, Tensor) else type(allowed).__name__
            raise ValueError(f"allowed must be a bool tensor of the logits' shape {(batch, t)}, got {got}")
        allowed = allowed.to(start_logits.device)
    check_all(
        ~(start_logits.isnan() | end_logits.isnan()),
        lambda: "start_logits and end_logits must not contain NaN",
        "start_logits and end_logits must not contain NaN",
    )
    positions = torch.arange(t, device=start_logits.device)
    length = positions[None, :] - positions[:, None] + 1  # (T, T): j − i + 1 at row i, column j
    legal = ((length >= 1) & (length <= max_answer_len)).expand(batch, t, t)  # (T, T) -> (B, T, T)
    if allowed is not None:
        legal = legal & allowed[:, :, None] & allowed[:, None, :]  # start allowed (B,T,1), end allowed (B,1,T)
    has_span = legal.flatten(1).any(dim=1)  # (B, T, T) -> (B,)
    check_all(
        has_span,
        lambda: (
            f"no legal answer span in row(s) {(~has_span).nonzero().flatten().tolist()}: allowed has no True "
            "position there (a span needs an allowed start and an allowed end, start ≤ end)"
        ),
        "best_span: a row has no legal answer span (no allowed position)",
    )
    scores = start_logits[:, :, None] + end_logits[:, None, :]  # (B, T, 1) + (B, 1, T) -> (B, T, T)
    masked = scores.masked_fill(~legal, float("-inf"))
    best = masked.flatten(1).amax(dim=1)  # (B, T, T) -> (B,)
    winners = legal & (masked == best[:, None, None])  # legal too, so that an all -inf row still picks a legal pair
    flat = winners.flatten(1).to(torch.uint8).argmax(dim=1)  # (B,): the first winner, row-major = smallest i, then j
    return Span(start=flat // t, end=flat % t, score=scores.flatten(1).gather(1, flat[:, None]).squeeze(1))


# ---- fine-tuning losses -----------------------------------------------------------------------------------------


def _check_in_range(values: Tensor, high: int, name: str, what: str, ignore_index: int | None = None) -> None:
    """Every entry of ``values`` lies in [0, high) (or equals ``ignore_index``), with the first offender named."""
    bad = (values < 0) | (values >= high)
    if ignore_index is not None:
        bad = bad & (values != ignore_index)
    ignore = "" if ignore_index is None else f" or {ignore_index} (ignored)"

    def message() -> str:
        where = tuple(int(i) for i in bad.nonzero()[0])
        return f"{name} must hold {what} in [0, {high}){ignore}, got {int(values[where])} at index {where}"

    check_all(~bad, message, f"{name}: a value is outside [0, {high}){ignore}")


def classification_loss(logits: Tensor, labels: Tensor, *, ignore_index: int = -100, impl: str | None = None) -> Tensor:
    r"""The loss of a sequence classifier, logits (B, n_labels) against labels (B,) -> 0-d — as Hugging Face.

        n_labels ≥ 2:  CE = mean over the labels ≠ ignore_index of −log softmax(logits_b)[labels_b]   (long labels)
        n_labels = 1:  MSE = mean over the batch of (logits_b − labels_b)²                  regression (float labels)

    Raises ``TypeError`` for labels of the wrong kind (class ids must be integers, regression targets floats) and
    ``ValueError`` for a wrong shape or a class id outside [0, n_labels) that is not ``ignore_index``.
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a floating-point tensor of shape (B, n_labels), got {got}")
    batch, n_labels = logits.shape
    if n_labels == 1:
        if not isinstance(labels, Tensor) or not labels.is_floating_point():
            got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
            raise TypeError(
                f"labels of a regression head (n_labels=1) must be a floating-point tensor (B,) of targets, got {got}; "
                "for classification build the model with n_labels ≥ 2"
            )
        if tuple(labels.shape) != (batch,):
            raise ValueError(f"labels must have shape (B,) = ({batch},), got {tuple(labels.shape)}")
        error = logits[:, 0] - labels.to(logits.device, logits.dtype)  # (B, 1) -> (B,)
        return (error * error).mean()
    check_labels(labels, "labels", (batch,))
    labels = labels.to(logits.device)
    _check_in_range(labels, n_labels, "labels", "class ids", ignore_index)
    return tf.cross_entropy(logits, labels, ignore_index=ignore_index, impl=impl)


def token_classification_loss(
    logits: Tensor,
    labels: Tensor,
    valid: Tensor | None = None,
    *,
    ignore_index: int = -100,
    impl: str | None = None,
) -> Tensor:
    r"""CE of a token classifier: mean over the tokens whose label is not ``ignore_index`` (and that are real).

    Shapes: logits (B, T, n_labels), labels (B, T) of class ids or ``ignore_index``, valid (B, T) bool or None.
    # Deviation from Hugging Face: ``BertForTokenClassification`` scores every label that is not -100, padding
    # included; here a padded position (``valid`` False) never counts, whatever its label. With -100 on the
    # padding (the usual data preparation) the two losses are equal.
    """
    if not isinstance(logits, Tensor) or logits.dim() != 3 or not logits.is_floating_point():
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a floating-point tensor of shape (B, T, n_labels), got {got}")
    check_labels(labels, "labels", tuple(logits.shape[:2]), shape_of="input_ids")
    labels = labels.to(logits.device)
    _check_in_range(labels, logits.shape[-1], "labels", "class ids", ignore_index)
    if valid is not None:
        labels = torch.where(valid.to(labels.device), labels, torch.full_like(labels, ignore_index))  # padding: none
    return tf.cross_entropy(logits, labels, ignore_index=ignore_index, impl=impl)


def span_loss(
    start_logits: Tensor,
    end_logits: Tensor,
    start_positions: Tensor,
    end_positions: Tensor,
    *,
    impl: str | None = None,
) -> Tensor:
    r"""Extractive-QA loss = (CE(start_logits, start) + CE(end_logits, end)) / 2 — as Hugging Face's
    ``BertForQuestionAnswering`` (the BERT paper sums the two log-likelihoods, §4.2; the mean halves it).

    Shapes: start/end logits (B, T); positions (B,) long — the answer's first and last token (inclusive).
    Every position must lie in [0, T): a ``ValueError`` names the first one that does not.
    # Deviation from Hugging Face: they clamp positions to [0, T] and ignore T — a position ≥ T silently drops
    # that term from the loss (a batch where all are dropped gives NaN) and a negative one silently becomes 0,
    # the [CLS] token. We refuse both; mark "no answer in this window" as position 0 ([CLS]) explicitly, as the
    # SQuAD 2.0 recipe of the BERT paper does (§4.3).
    """
    _check_span_logits(start_logits, end_logits)
    batch, t = start_logits.shape
    for name, positions in (("start_positions", start_positions), ("end_positions", end_positions)):
        check_labels(positions, name, (batch,))
        _check_in_range(positions.to(start_logits.device), t, name, "token positions")
    start_loss = tf.cross_entropy(start_logits, start_positions.to(start_logits.device), impl=impl)
    end_loss = tf.cross_entropy(end_logits, end_positions.to(end_logits.device), impl=impl)
    return (start_loss + end_loss) / 2
