r"""BERT fine-tuned for a task — Devlin et al. 2019, §4 and Figure 4: the pre-trained encoder plus one small head.

    sequence classification   logits = W Dropout(pooled) + b                       (B, n_labels)    §4.1 (GLUE)
                              pooled = tanh(W_p h_L[:, 0] + b_p)  ("cls", BERT's pooler)
                                    or Σ_t valid_t h_L[:, t] / Σ_t valid_t  ("mean", Sentence-BERT)
    token classification      logits_t = W Dropout(h_L[:, t]) + b                  (B, T, n_labels) §5.3 (NER)
    question answering        start_t, end_t = S·h_L[:, t] + b_S, E·h_L[:, t] + b_E  (B, T) each      §4.2 (SQuAD)

Losses (:mod:`heads`): cross-entropy over the labels (-100 = ignore), mean squared error when ``n_labels == 1``
(regression), and (CE(start) + CE(end)) / 2 for spans — the definitions of Hugging Face's classes of the same
names, whose checkpoints load here (key names in :mod:`interop.hf_bert_tasks`).

Fine-tuning starts from a pre-trained encoder: ``BertForSequenceClassification.from_pretrained(folder,
n_labels=3)`` on a plain ``BertModel`` folder (all-MiniLM-L6-v2) loads the encoder and the pooler and leaves the
head at BERT's initialisation — N(0, initializer_range²) weights, zero biases. It says so: a ``UserWarning``
names the new parameters and the checkpoint's unused keys, and ``model.load_report`` keeps both lists. A
checkpoint of the same task loads completely (nothing new).

Padding: as :class:`~models.bert.BertModel` — ``valid`` (B, T) bool, ``attention_mask`` (1/0) or ``config.pad_id``.
Padded positions never reach a loss or a pooled vector (see each class).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._validation import check_choice, check_probability
from ..config import BertConfig
from ..heads import (
    SequenceClassificationHead,
    Span,
    SpanQAHead,
    TokenClassificationHead,
    best_span,
    classification_loss,
    span_loss,
    token_classification_loss,
)
from ..interop import hf_bert_tasks
from ..pooling import mean_pool
from .bert import BertModel, BertOutput, _init_bert_weights

__all__ = [
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertSequenceClassificationOutput",
    "BertTokenClassificationOutput",
    "BertQuestionAnsweringOutput",
]

POOLINGS = ("cls", "mean")


class _EncoderStates:
    """The encoder's hidden states and attention weights, reachable on a task output as on a :class:`BertOutput`."""

    bert: BertOutput

    @property
    def hidden_states(self) -> tuple[Tensor, ...]:
        return self.bert.hidden_states

    @property
    def attentions(self) -> tuple[Tensor, ...] | None:
        return self.bert.attentions


@dataclass(frozen=True)
class BertSequenceClassificationOutput(_EncoderStates):
    """What :class:`BertForSequenceClassification` returns.

    logits (B, n_labels); pooled (B, D) — the vector the head read; bert — the encoder's :class:`BertOutput`
    (``hidden_states`` and ``attentions`` are also reachable here as properties; ``valid`` is ``bert.valid``);
    loss (0-d) when labels were given, else None.
    """

    logits: Tensor
    pooled: Tensor
    bert: BertOutput
    loss: Tensor | None = None


@dataclass(frozen=True)
class BertTokenClassificationOutput(_EncoderStates):
    """What :class:`BertForTokenClassification` returns: logits (B, T, n_labels), the encoder's :class:`BertOutput`
    and the loss (0-d) when labels were given. Logits at padded positions are numbers but mean nothing."""

    logits: Tensor
    bert: BertOutput
    loss: Tensor | None = None


@dataclass(frozen=True)
class BertQuestionAnsweringOutput(_EncoderStates):
    """What :class:`BertForQuestionAnswering` returns: start_logits and end_logits (B, T), the encoder's
    :class:`BertOutput` and the loss (0-d) when the answer positions were given."""

    start_logits: Tensor
    end_logits: Tensor
    bert: BertOutput
    loss: Tensor | None = None


class _BertTaskModel(nn.Module):
    """What the task models share: BERT's initialisation and loading any BERT folder with a report."""

    _task: str  # a key of interop.hf_bert_tasks.TASKS

    def reset_parameters(self) -> None:
        """BERT's initialisation for every parameter, the head's included: N(0, initializer_range²) weights and
        embeddings, zero biases, LayerNorm 1/0."""
        _init_bert_weights(self, self.config.initializer_range)

    def _encode(self, input_ids, token_type_ids, valid, attention_mask, return_attention) -> BertOutput:
        return self.bert(
            input_ids,
            token_type_ids=token_type_ids,
            valid=valid,
            attention_mask=attention_mask,
            return_attention=return_attention,
        )

    @classmethod
    def _load(
        cls,
        path: str | os.PathLike,
        build: Callable[[BertConfig, int, float | None], _BertTaskModel],
        *,
        n_labels: int | None,
        with_pooler: bool,
        dtype: torch.dtype | None,
    ):
        """Read the folder, build the model with ``build(config, n_labels, checkpoint's classifier_dropout)``, load
        what the checkpoint has, report the rest (warning + ``load_report``), eval mode."""
        checkpoint = hf_bert_tasks.read_pretrained(path, task=cls._task, n_labels=n_labels, with_pooler=with_pooler)
        model = build(checkpoint.config, checkpoint.n_labels, checkpoint.classifier_dropout)
        model = model.to(torch.float32 if dtype is None else dtype)  # initialised (head included), then overwritten
        missing, unexpected = model.load_state_dict(checkpoint.state, strict=False)
        if unexpected or sorted(missing) != sorted(checkpoint.result.new):  # the converter and the model disagree
            raise RuntimeError(f"internal error loading {path}: missing {missing}, unexpected {unexpected}")
        model.load_report = {"new": list(checkpoint.result.new), "unused": list(checkpoint.result.unused)}
        if model.load_report["new"] or model.load_report["unused"]:
            warnings.warn(
                f"{cls.__name__}.from_pretrained({str(path)!r}): "
                f"{len(missing)} parameter(s) are not in the checkpoint and keep BERT's initialisation "
                f"(N(0, {checkpoint.config.initializer_range}²) weights, zero biases) — train them before use: "
                f"{model.load_report['new']}; {len(model.load_report['unused'])} checkpoint key(s) unused: "
                f"{model.load_report['unused']}",
                UserWarning,
                stacklevel=3,
            )
        return model.eval()


def _classifier_dropout(config: BertConfig, classifier_dropout: float | None) -> float:
    """The head's dropout rate: ``classifier_dropout``, or the encoder's ``dropout`` when None (as Hugging Face)."""
    if classifier_dropout is None:
        return config.dropout
    check_probability("classifier_dropout", classifier_dropout)
    return classifier_dropout


class BertForSequenceClassification(_BertTaskModel):
    """BERT with a sentence-level head: one label (or one number) per sequence or sequence pair.

    Args:
        config: the encoder's :class:`~config.BertConfig`.
        n_labels: the number of classes; 1 makes it a regression model (float labels, MSE loss).
        pooling: ``"cls"`` — BERT's tanh pooler over [CLS], as Hugging Face's ``BertForSequenceClassification``
            (and its checkpoints); ``"mean"`` — the mean of the last hidden states over the real tokens
            (:func:`pooling.mean_pool`), the pooling sentence-transformers models such as all-MiniLM-L6-v2 were
            trained with. A ``"mean"`` model has no pooler.
        classifier_dropout: dropout before the linear layer; None = ``config.dropout`` (Hugging Face's default).

    Sub-modules: ``bert`` (:class:`~models.bert.BertModel`, with its pooler only for ``"cls"``) and ``head``
    (:class:`~heads.SequenceClassificationHead`: ``head.dropout``, ``head.linear``).

    forward(input_ids (B, T), *, token_type_ids=None, valid=None, attention_mask=None, labels=None (B,),
    return_attention=False) -> :class:`BertSequenceClassificationOutput`. ``labels``: class ids (long, -100 =
    ignore) or, for ``n_labels == 1``, float targets; see :func:`heads.classification_loss`.
    """

    _task = "sequence_classification"

    def __init__(
        self, config: BertConfig, n_labels: int, *, pooling: str = "cls", classifier_dropout: float | None = None
    ):
        super().__init__()
        check_choice("pooling", pooling, POOLINGS)
        self.bert = BertModel(config, with_pooler=pooling == "cls")
        self.config, self.pooling = config, pooling
        self.head = SequenceClassificationHead(
            config.d_model, n_labels, dropout=_classifier_dropout(config, classifier_dropout)
        )
        self.n_labels = n_labels
        self.load_report: dict[str, list[str]] | None = None  # set by from_pretrained
        self.reset_parameters()

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        n_labels: int | None = None,
        *,
        pooling: str = "cls",
        classifier_dropout: float | None = None,
        dtype: torch.dtype | None = None,
    ) -> BertForSequenceClassification:
        """Load any local Hugging Face BERT folder — a ``BertModel`` (e.g. all-MiniLM-L6-v2), a
        ``BertForPreTraining`` or a ``BertForSequenceClassification`` — in eval mode, ``dtype`` float32 by default.

        The encoder (and, for ``pooling="cls"``, the pooler when present) comes from the checkpoint; the head too
        when it is a sequence classifier's. What the checkpoint lacks keeps BERT's initialisation; a
        ``UserWarning`` names it, and the checkpoint's unused keys, and ``model.load_report`` = ``{"new": [our
        keys], "unused": [checkpoint keys]}`` keeps both. ``n_labels`` defaults to the checkpoint head's (an
        error when there is none); ``classifier_dropout`` to config.json's, else ``config.dropout``. A missing
        encoder tensor is an error (:func:`interop.hf_bert_tasks.read_pretrained`).
        """

        def build(config: BertConfig, n: int, dropout: float | None) -> BertForSequenceClassification:
            chosen = dropout if classifier_dropout is None else classifier_dropout
            return cls(config, n, pooling=pooling, classifier_dropout=chosen)

        check_choice("pooling", pooling, POOLINGS)
        return cls._load(path, build, n_labels=n_labels, with_pooler=pooling == "cls", dtype=dtype)

    def forward(
        self,
        input_ids: Tensor,
        *,
        token_type_ids: Tensor | None = None,
        valid: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        return_attention: bool = False,
    ) -> BertSequenceClassificationOutput:
        out = self._encode(input_ids, token_type_ids, valid, attention_mask, return_attention)
        if self.pooling == "cls":
            pooled = out.pooled  # tanh(W h[:, 0] + b): (B, D)
        else:
            real = out.valid if out.valid is not None else torch.ones_like(input_ids, dtype=torch.bool)
            pooled = mean_pool(out.last_hidden_state, real)  # (B, T, D), (B, T) -> (B, D), padding left out
        logits = self.head(pooled)  # (B, D) -> (B, n_labels)
        loss = None if labels is None else classification_loss(logits, labels, impl=self.config.impl)
        return BertSequenceClassificationOutput(logits, pooled, out, loss)


class BertForTokenClassification(_BertTaskModel):
    """BERT with a per-token head (named-entity recognition, part-of-speech tagging): no pooler.

    Sub-modules: ``bert`` (:class:`~models.bert.BertModel` without pooler) and ``head``
    (:class:`~heads.TokenClassificationHead`). ``classifier_dropout`` as in :class:`BertForSequenceClassification`.

    forward(input_ids (B, T), *, token_type_ids=None, valid=None, attention_mask=None, labels=None (B, T),
    return_attention=False) -> :class:`BertTokenClassificationOutput`. ``labels``: class ids, -100 = ignore
    (e.g. the second piece of a split word); padded positions are ignored whatever their label
    (:func:`heads.token_classification_loss`).
    """

    _task = "token_classification"

    def __init__(self, config: BertConfig, n_labels: int, *, classifier_dropout: float | None = None):
        super().__init__()
        self.bert = BertModel(config, with_pooler=False)
        self.config = config
        self.head = TokenClassificationHead(
            config.d_model, n_labels, dropout=_classifier_dropout(config, classifier_dropout)
        )
        self.n_labels = n_labels
        self.load_report: dict[str, list[str]] | None = None
        self.reset_parameters()

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        n_labels: int | None = None,
        *,
        classifier_dropout: float | None = None,
        dtype: torch.dtype | None = None,
    ) -> BertForTokenClassification:
        """As :meth:`BertForSequenceClassification.from_pretrained`; a pooler in the checkpoint is unused."""

        def build(config: BertConfig, n: int, dropout: float | None) -> BertForTokenClassification:
            return cls(config, n, classifier_dropout=dropout if classifier_dropout is None else classifier_dropout)

        return cls._load(path, build, n_labels=n_labels, with_pooler=False, dtype=dtype)

    def forward(
        self,
        input_ids: Tensor,
        *,
        token_type_ids: Tensor | None = None,
        valid: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        return_attention: bool = False,
    ) -> BertTokenClassificationOutput:
        out = self._encode(input_ids, token_type_ids, valid, attention_mask, return_attention)
        logits = self.head(out.last_hidden_state)  # (B, T, D) -> (B, T, n_labels)
        loss = None
        if labels is not None:
            loss = token_classification_loss(logits, labels, out.valid, impl=self.config.impl)
        return BertTokenClassificationOutput(logits, out, loss)


class BertForQuestionAnswering(_BertTaskModel):
    """BERT for extractive question answering: a start and an end score per token (SQuAD), no pooler.

    Input: ``[CLS] question [SEP] context [SEP]`` with segment ids 0 / 1. Sub-modules: ``bert``
    (:class:`~models.bert.BertModel` without pooler) and ``head`` (:class:`~heads.SpanQAHead`, ``head.linear``:
    row 0 scores starts, row 1 ends).

    forward(input_ids (B, T), *, token_type_ids=None, valid=None, attention_mask=None, start_positions=None (B,),
    end_positions=None (B,), return_attention=False) -> :class:`BertQuestionAnsweringOutput`, with
    loss = (CE(start_logits, start_positions) + CE(end_logits, end_positions)) / 2 when both positions are given.

    Positions out of range are refused, not matched: every position must lie in [0, T) — a ``ValueError`` names
    the first that does not. Hugging Face's ``BertForQuestionAnswering`` instead clamps positions to [0, T] and
    ignores T, so a position ≥ T silently drops its term (NaN when the whole batch is dropped) and a negative one
    silently means [CLS]. For "no answer in this window" pass 0, the [CLS] position (see :func:`heads.span_loss`).
    """

    _task = "question_answering"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = BertModel(config, with_pooler=False)
        self.config = config
        self.head = SpanQAHead(config.d_model)
        self.load_report: dict[str, list[str]] | None = None
        self.reset_parameters()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, dtype: torch.dtype | None = None) -> BertForQuestionAnswering:
        """As :meth:`BertForSequenceClassification.from_pretrained`: the ``qa_outputs`` head is loaded when the
        checkpoint has it, else initialised and reported."""
        return cls._load(path, lambda config, _n, _dropout: cls(config), n_labels=None, with_pooler=False, dtype=dtype)

    def forward(
        self,
        input_ids: Tensor,
        *,
        token_type_ids: Tensor | None = None,
        valid: Tensor | None = None,
        attention_mask: Tensor | None = None,
        start_positions: Tensor | None = None,
        end_positions: Tensor | None = None,
        return_attention: bool = False,
    ) -> BertQuestionAnsweringOutput:
        if (start_positions is None) != (end_positions is None):
            raise ValueError("pass both start_positions and end_positions, or neither")
        out = self._encode(input_ids, token_type_ids, valid, attention_mask, return_attention)
        start_logits, end_logits = self.head(out.last_hidden_state)  # (B, T, D) -> (B, T), (B, T)
        loss = None
        if start_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions, impl=self.config.impl)
        return BertQuestionAnsweringOutput(start_logits, end_logits, out, loss)

    @torch.no_grad()
    def predict_spans(
        self,
        input_ids: Tensor,
        *,
        token_type_ids: Tensor | None = None,
        valid: Tensor | None = None,
        attention_mask: Tensor | None = None,
        allowed: Tensor | None = None,
        max_answer_len: int = 30,
    ) -> Span:
        """The best answer span of each example (:func:`heads.best_span`): (start, end, score), each (B,), end
        inclusive. ``allowed`` (B, T) bool — where an answer may lie, typically the context tokens (e.g.
        ``(token_type_ids == 1) & valid`` minus the final [SEP]); default: every real token. Put the model in
        ``eval()`` mode first, or dropout stays on."""
        out = self(input_ids, token_type_ids=token_type_ids, valid=valid, attention_mask=attention_mask)
        if allowed is None:
            allowed = out.bert.valid  # real tokens only (None: all of them)
        return best_span(out.start_logits, out.end_logits, allowed=allowed, max_answer_len=max_answer_len)
