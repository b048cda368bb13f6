r"""Converters between Hugging Face's BERT fine-tuning models and ours (:mod:`models.bert_tasks`), as plain data.

    task                        Hugging Face class               their head            our head          pooler
    "sequence_classification"   BertForSequenceClassification    classifier.*  (K, D)  head.linear.*     yes
    "token_classification"      BertForTokenClassification       classifier.*  (K, D)  head.linear.*     no
    "question_answering"        BertForQuestionAnswering         qa_outputs.*  (2, D)  head.linear.*     no

K is the number of labels. The encoder's keys are those of :mod:`.hf_bert` (see its table) under ``bert.`` on both
sides — ``bert.encoder.layer.{i}.attention.self.query.*`` -> ``bert.encoder.layers.{i}.self_attn.q_proj.*`` and so
on; a plain ``BertModel`` checkpoint (all-MiniLM-L6-v2) has the same keys without the prefix. Every tensor is
copied as it is: both sides use ``nn.Linear`` orientation (out, in). Hugging Face's token and QA models have no
pooler (``add_pooling_layer=False``), nor has our sequence classifier with ``pooling="mean"``
(``with_pooler=False`` here); a pooler in the checkpoint is then unused.

Fine-tuning starts from a checkpoint of *another* class — a ``BertModel``, a ``BertForPreTraining`` (its ``cls.*``
heads unused), another task's model. With ``strict=False`` the head and the pooler may be absent (the caller
initialises them) and keys that are not used come back in the :class:`TaskLoadResult`; a missing *encoder* key is
an error in every mode, since a partly random encoder is never what anyone wants. :func:`read_pretrained` also
reads config.json's ``architectures``: the ``classifier.*`` of a token classifier is not a sequence classifier's
head (nor the reverse), although the names are the same, so there it is counted unused rather than loaded.

    config = hf_bert.config_from_hf(hf_config_dict)
    state, result = state_dict_from_hf(hf_state_dict, config, task="question_answering")
    model = BertForQuestionAnswering(config); model.load_state_dict(state)
    hf_state_dict = state_dict_to_hf(model.state_dict(), config, task="question_answering")
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from torch import Tensor

from ..config import BertConfig
from . import _hf, hf_bert

__all__ = [
    "TASKS",
    "HF_CLASSES",
    "OUR_HEAD",
    "TaskLoadResult",
    "TaskCheckpoint",
    "key_pairs",
    "n_labels_in",
    "state_dict_from_hf",
    "state_dict_to_hf",
    "config_to_hf",
    "read_pretrained",
]

TASKS = ("sequence_classification", "token_classification", "question_answering")
HF_CLASSES = {
    "sequence_classification": "BertForSequenceClassification",
    "token_classification": "BertForTokenClassification",
    "question_answering": "BertForQuestionAnswering",
}
_HF_HEAD = {
    "sequence_classification": "classifier",
    "token_classification": "classifier",
    "question_answering": "qa_outputs",
}
OUR_HEAD = "head.linear"  # the nn.Linear of every task head (heads.SequenceClassificationHead.linear, …)
_ENCODER = "bert."  # our task models hold the encoder as `bert`


class TaskLoadResult(NamedTuple):
    """What a conversion left out: ``new`` — our keys that the checkpoint did not provide (the head, maybe the
    pooler: the caller keeps their fresh initialisation), ``unused`` — the checkpoint's keys that went nowhere, in
    Hugging Face names."""

    new: list[str]
    unused: list[str]


class TaskCheckpoint(NamedTuple):
    """What :func:`read_pretrained` returns: our ``config`` and ``state`` dict, the :class:`TaskLoadResult`, the
    number of labels ``n_labels`` and config.json's ``classifier_dropout`` (None when absent or null)."""

    config: BertConfig
    state: dict[str, Tensor]
    result: TaskLoadResult
    n_labels: int
    classifier_dropout: float | None


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return task


def _with_pooler(task: str, with_pooler: bool | None) -> bool:
    return task == "sequence_classification" if with_pooler is None else with_pooler


def key_pairs(
    n_layers: int, task: str, *, with_pooler: bool | None = None, prefix: str = "bert."
) -> list[tuple[str, str]]:
    """(Hugging Face key, our key) for every tensor of the task model, in state-dict order, the head's last.

    ``prefix``: where the checkpoint keeps the encoder — ``"bert."`` (a task or pre-training model) or ``""`` (a
    plain ``BertModel``). ``with_pooler`` defaults to the Hugging Face class's (True only for sequence
    classification).
    """
    task = _check_task(task)
    pairs = [
        (prefix + theirs, _ENCODER + ours)
        for theirs, ours in hf_bert.key_pairs(n_layers)
        if _with_pooler(task, with_pooler) or not theirs.startswith("pooler.")
    ]
    return pairs + [(f"{_HF_HEAD[task]}.{p}", f"{OUR_HEAD}.{p}") for p in ("weight", "bias")]


def n_labels_in(hf_state_dict: Mapping[str, Tensor], task: str) -> int | None:
    """The number of labels of the checkpoint's head for ``task`` (rows of its weight), or None if it has none."""
    weight = hf_state_dict.get(f"{_HF_HEAD[_check_task(task)]}.weight")
    return None if weight is None else int(weight.shape[0])


def _n_labels(hf_state_dict: Mapping[str, Tensor], task: str, n_labels: int | None, use_head: bool) -> int:
    """The number of labels to build: 2 for QA, else ``n_labels`` or the checkpoint head's, checked to agree."""
    found = n_labels_in(hf_state_dict, task) if use_head else None
    head = f"{_HF_HEAD[task]}.weight"
    if task == "question_answering":
        if n_labels not in (None, 2):
            raise ValueError(f"a question-answering head has 2 outputs (start, end), got n_labels={n_labels}")
        n_labels = 2
    if n_labels is None:
        if found is None:
            raise ValueError(
                f"the checkpoint has no {head} of a {HF_CLASSES[task]} to take the number of labels from; pass "
                "n_labels= (a new head is initialised)"
            )
        return found
    if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 1:
        raise ValueError(f"n_labels must be an int ≥ 1, got {n_labels!r}")
    if found is not None and found != n_labels:
        raise ValueError(
            f"the checkpoint's {head} has {found} labels but n_labels={n_labels}; pass n_labels={found} to use its "
            "head, or load a checkpoint without this head to start a new one"
        )
    return n_labels


def _our_shapes(config: BertConfig, task: str, n_labels: int, with_pooler: bool) -> dict[str, tuple[int, ...]]:
    shapes = {
        _ENCODER + key: shape
        for key, shape in hf_bert._our_shapes(config, False).items()
        if with_pooler or not key.startswith("pooler.")
    }
    shapes.update({f"{OUR_HEAD}.weight": (n_labels, config.d_model), f"{OUR_HEAD}.bias": (n_labels,)})
    return shapes


def state_dict_from_hf(
    hf_state_dict: Mapping[str, Tensor],
    config: BertConfig,
    *,
    task: str,
    n_labels: int | None = None,
    with_pooler: bool | None = None,
    strict: bool = True,
    use_head: bool = True,
) -> tuple[dict[str, Tensor], TaskLoadResult]:
    """A Hugging Face BERT state dict -> (our task model's state dict, :class:`TaskLoadResult`).

    ``task``: one of :data:`TASKS`. ``n_labels``: the head's outputs (default: the checkpoint head's; always 2 for
    QA). ``with_pooler``: whether our model has a pooler (default: as the Hugging Face class). ``strict``
    (default): the checkpoint must be exactly the Hugging Face class of ``task`` — any missing or unexpected key
    raises a ``ValueError`` listing them. ``strict=False``: the head and the pooler may be missing (listed in
    ``new``; load the result with ``load_state_dict(strict=False)``) and other keys are returned as ``unused``.
    ``use_head=False`` counts the checkpoint's head keys as unused (a head of another task with the same name).
    A missing encoder key is an error either way. Tensors keep their dtype and are not copied.
    """
    task = _check_task(task)
    config = hf_bert._check_config(config)
    with_pooler = _with_pooler(task, with_pooler)
    n_labels = _n_labels(hf_state_dict, task, n_labels, use_head)
    probe = "embeddings.word_embeddings.weight"
    prefix = "" if probe in hf_state_dict and f"bert.{probe}" not in hf_state_dict else "bert."
    pairs = key_pairs(config.n_layers, task, with_pooler=with_pooler, prefix=prefix)
    if not use_head:
        pairs = pairs[:-2]  # the checkpoint's head keys, if any, are then unexpected: unused
    optional = {theirs for theirs, ours in pairs if ours.startswith((f"{OUR_HEAD}.", f"{_ENCODER}pooler."))}
    result = _hf.match_keys(
        hf_state_dict,
        [theirs for theirs, _ in pairs],
        hf_bert._check_buffers(hf_state_dict, prefix),
        described=f"{HF_CLASSES[task]}(n_layers={config.n_layers})",
        strict=strict,
        allow_missing=True,
    )
    encoder_missing = [key for key in result.missing if key not in optional]
    if encoder_missing:
        raise ValueError(
            f"the checkpoint lacks {len(encoder_missing)} encoder tensor(s) of a {config.n_layers}-layer BERT: "
            f"{encoder_missing}; only the task head and the pooler may be new"
        )
    found = [(ours, theirs, hf_state_dict[theirs]) for theirs, ours in pairs if theirs in hf_state_dict]
    state = _hf.checked_state_dict(found, _our_shapes(config, task, n_labels, with_pooler), hf_state_dict)
    new = [ours for theirs, ours in key_pairs(config.n_layers, task, with_pooler=with_pooler) if ours not in state]
    return state, TaskLoadResult(new, result.unexpected)


def state_dict_to_hf(state_dict: Mapping[str, Tensor], config: BertConfig, *, task: str) -> dict[str, Tensor]:
    """Our task model's state dict -> one that Hugging Face's class of ``task`` loads with strict=True.

    A sequence classifier needs its pooler (Hugging Face's always pools [CLS]): a ``pooling="mean"`` model has
    no Hugging Face twin and is refused. Tensors are detached copies.
    """
    task = _check_task(task)
    config = hf_bert._check_config(config)
    has_pooler = f"{_ENCODER}pooler.dense.weight" in state_dict
    if task == "sequence_classification" and not has_pooler:
        raise ValueError(
            "Hugging Face's BertForSequenceClassification classifies the tanh-pooled [CLS] vector; this state dict "
            "has no pooler (a pooling='mean' model), so it has no Hugging Face equivalent"
        )
    pairs = key_pairs(config.n_layers, task)  # the Hugging Face class's own layout (pooler or not)
    _hf.require_keys(state_dict, [ours for _, ours in pairs], f"{HF_CLASSES[task]}(n_layers={config.n_layers})")
    return {theirs: state_dict[ours].detach().clone() for theirs, ours in pairs}


def config_to_hf(config: BertConfig, *, task: str, n_labels: int, classifier_dropout: float | None = None) -> dict:
    """The keyword arguments of ``transformers.BertConfig`` (and a config.json) for the task model."""
    task = _check_task(task)
    out = hf_bert.config_to_hf(config)
    out.update(architectures=[HF_CLASSES[task]], num_labels=n_labels)
    if task != "question_answering":
        out["classifier_dropout"] = classifier_dropout
    return out


def read_pretrained(
    path: str | os.PathLike, *, task: str, n_labels: int | None = None, with_pooler: bool | None = None
) -> TaskCheckpoint:
    """A local Hugging Face BERT folder (``config.json`` + ``model.safetensors``) for a task model, converted with
    ``strict=False`` (see :func:`state_dict_from_hf`): any BERT checkpoint whose encoder is complete loads.

    A head is used only when it is this task's: config.json's ``architectures``, when it names another BERT task
    class and not this one, marks the head keys unused. No network access; pickle weights are refused.
    """
    task = _check_task(task)
    folder, hf_config = _hf.read_config_json(path)
    config = hf_bert.config_from_hf(hf_config)
    architectures = hf_config.get("architectures") or []
    foreign = [a for a in architectures if a in HF_CLASSES.values() and a != HF_CLASSES[task]]
    use_head = not foreign or HF_CLASSES[task] in architectures
    hf_state_dict = _hf.read_safetensors(folder)
    n_labels = _n_labels(hf_state_dict, task, n_labels, use_head)
    state, result = state_dict_from_hf(
        hf_state_dict, config, task=task, n_labels=n_labels, with_pooler=with_pooler, strict=False, use_head=use_head
    )
    dropout = hf_config.get("classifier_dropout") if task != "question_answering" else None
    return TaskCheckpoint(config, state, result, n_labels, dropout)
