r"""Converters between our BERT (:mod:`models.bert`) and Hugging Face ``transformers`` BERT checkpoints.

Key names (theirs -> ours). ``BertModel`` keys carry no prefix; in ``BertForPreTraining`` they sit under
``bert.`` on both sides and the heads are ``cls.*`` (theirs) / ``mlm.*``, ``nsp.*`` (ours):

    embeddings.word_embeddings.weight                -> embeddings.token.weight        (V, D)
    embeddings.position_embeddings.weight            -> embeddings.position.weight     (max_len, D)
    embeddings.token_type_embeddings.weight          -> embeddings.segment.weight      (type_vocab_size, D)
    embeddings.LayerNorm.{weight,bias}               -> embeddings.norm.*
    encoder.layer.{i}.attention.self.query.*         -> encoder.layers.{i}.self_attn.q_proj.*     (key -> k_proj,
    encoder.layer.{i}.attention.output.dense.*       -> encoder.layers.{i}.self_attn.out_proj.*    value -> v_proj)
    encoder.layer.{i}.attention.output.LayerNorm.*   -> encoder.layers.{i}.norm1.*
    encoder.layer.{i}.intermediate.dense.*           -> encoder.layers.{i}.ff.w1.*
    encoder.layer.{i}.output.dense.*                 -> encoder.layers.{i}.ff.w2.*
    encoder.layer.{i}.output.LayerNorm.*             -> encoder.layers.{i}.norm2.*
    pooler.dense.*                                   -> pooler.dense.*
    cls.predictions.transform.dense.*                -> mlm.dense.*
    cls.predictions.transform.LayerNorm.*            -> mlm.norm.*
    cls.predictions.bias                             -> mlm.bias                       (V,)
    cls.predictions.decoder.weight                   =  bert.embeddings.word_embeddings.weight (tied)
    cls.predictions.decoder.bias                     =  cls.predictions.bias                  (tied)
    cls.seq_relationship.*                           -> nsp.classifier.*

Both sides use ``nn.Linear`` orientation (out, in), so every tensor is copied as it is. Hugging Face lists a
tied matrix under both of its names; the copies must be equal (an untied checkpoint is refused, since our MLM
decoder *is* the embedding). ``embeddings.position_ids`` (0 … max_len-1) and ``embeddings.token_type_ids``
(zeros) are buffers that older checkpoints saved; they are checked and otherwise ignored.

Everything here is plain data — configs and state dicts — so :meth:`models.bert.BertModel.from_pretrained` can
call it::

    config = config_from_hf(hf_config_dict)                                    # -> BertConfig
    state, result = state_dict_from_hf(hf_state_dict, config, pretraining=False)  # -> our keys, LoadResult
    model = BertModel(config); model.load_state_dict(state)
    hf_state_dict = state_dict_to_hf(model.state_dict(), model.config)

:func:`read_pretrained` reads a local folder in Hugging Face's format — ``config.json`` and
``model.safetensors`` (or a sharded ``model.safetensors.index.json``). Pickle files (``pytorch_model.bin``)
are refused: unpickling can run arbitrary code.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

import torch
from torch import Tensor

from ..config import BertConfig
from . import _hf
from ._hf import LoadResult

__all__ = [
    "key_pairs",
    "config_from_hf",
    "config_to_hf",
    "state_dict_from_hf",
    "state_dict_to_hf",
    "read_pretrained",
    "LoadResult",
]

_LAYER_RENAMES = (
    ("attention.self.query", "self_attn.q_proj"),
    ("attention.self.key", "self_attn.k_proj"),
    ("attention.self.value", "self_attn.v_proj"),
    ("attention.output.dense", "self_attn.out_proj"),
    ("attention.output.LayerNorm", "norm1"),
    ("intermediate.dense", "ff.w1"),
    ("output.dense", "ff.w2"),
    ("output.LayerNorm", "norm2"),
)
_EMBEDDING_RENAMES = (
    ("embeddings.word_embeddings.weight", "embeddings.token.weight"),
    ("embeddings.position_embeddings.weight", "embeddings.position.weight"),
    ("embeddings.token_type_embeddings.weight", "embeddings.segment.weight"),
    ("embeddings.LayerNorm.weight", "embeddings.norm.weight"),
    ("embeddings.LayerNorm.bias", "embeddings.norm.bias"),
)
_HEAD_RENAMES = (
    ("cls.predictions.transform.dense.weight", "mlm.dense.weight"),
    ("cls.predictions.transform.dense.bias", "mlm.dense.bias"),
    ("cls.predictions.transform.LayerNorm.weight", "mlm.norm.weight"),
    ("cls.predictions.transform.LayerNorm.bias", "mlm.norm.bias"),
    ("cls.predictions.bias", "mlm.bias"),
    ("cls.seq_relationship.weight", "nsp.classifier.weight"),
    ("cls.seq_relationship.bias", "nsp.classifier.bias"),
)
_TIED_WORD = "cls.predictions.decoder.weight"  # = {bert.}embeddings.word_embeddings.weight
_TIED_BIAS = "cls.predictions.decoder.bias"  # = cls.predictions.bias
_OUR_DECODER = "mlm.decoder.weight"  # our MLM decoder weight *is* bert.embeddings.token.weight
_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")  # saved by older versions; not weights


def _check_config(config) -> BertConfig:
    if not isinstance(config, BertConfig):
        raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
    return config


def _described(config: BertConfig, pretraining: bool) -> str:
    return f"{'BertForPreTraining' if pretraining else 'BertModel'}(n_layers={config.n_layers})"


def key_pairs(n_layers: int, *, pretraining: bool = False) -> list[tuple[str, str]]:
    """(Hugging Face key, our key) for every tensor, in state-dict order; tied duplicates not included."""
    prefix = "bert." if pretraining else ""
    pairs = [(prefix + theirs, prefix + ours) for theirs, ours in _EMBEDDING_RENAMES]
    for i in range(n_layers):
        for theirs, ours in _LAYER_RENAMES:
            for p in ("weight", "bias"):
                pairs.append((f"{prefix}encoder.layer.{i}.{theirs}.{p}", f"{prefix}encoder.layers.{i}.{ours}.{p}"))
    pairs += [(f"{prefix}pooler.dense.{p}", f"{prefix}pooler.dense.{p}") for p in ("weight", "bias")]
    if pretraining:
        pairs += list(_HEAD_RENAMES)
    return pairs


def _our_shapes(config: BertConfig, pretraining: bool) -> dict[str, tuple[int, ...]]:
    """Every key of our ``BertModel`` / ``BertForPreTraining`` state dict (tied decoder included) and its shape."""
    c = config
    d, v = c.d_model, c.vocab_size
    linears = {f"self_attn.{name}": (d, d) for name in ("q_proj", "k_proj", "v_proj", "out_proj")}
    linears.update({"ff.w1": (c.d_ff, d), "ff.w2": (d, c.d_ff)})  # nn.Linear orientation (out, in)
    shapes = {"embeddings.token.weight": (v, d), "embeddings.position.weight": (c.max_len, d)}
    shapes["embeddings.segment.weight"] = (c.type_vocab_size, d)
    shapes.update({"embeddings.norm.weight": (d,), "embeddings.norm.bias": (d,)})
    for i in range(c.n_layers):
        for name, shape in [*linears.items(), ("norm1", (d,)), ("norm2", (d,))]:
            shapes[f"encoder.layers.{i}.{name}.weight"] = shape
            shapes[f"encoder.layers.{i}.{name}.bias"] = shape[:1]
    shapes.update({"pooler.dense.weight": (d, d), "pooler.dense.bias": (d,)})
    if not pretraining:
        return shapes
    shapes = {"bert." + key: shape for key, shape in shapes.items()}
    heads = {"mlm.dense.weight": (d, d), "mlm.dense.bias": (d,), "mlm.norm.weight": (d,), "mlm.norm.bias": (d,)}
    heads.update({"mlm.bias": (v,), _OUR_DECODER: (v, d), "nsp.classifier.weight": (2, d), "nsp.classifier.bias": (2,)})
    return {**shapes, **heads}


def _detect_prefix(hf_state_dict: Mapping[str, Tensor], pretraining: bool) -> str:
    """'' or 'bert.': where the encoder's keys live in ``hf_state_dict``."""
    if pretraining:
        return "bert."
    probe = "embeddings.word_embeddings.weight"
    return "bert." if probe not in hf_state_dict and ("bert." + probe) in hf_state_dict else ""


def _check_buffers(hf_state_dict: Mapping[str, Tensor], prefix: str) -> set[str]:
    """Validate the saved position_ids / token_type_ids buffers, if any; return the keys they used."""
    used = set()
    for name in _BUFFERS:
        key = prefix + name
        if key not in hf_state_dict:
            continue
        used.add(key)
        value = hf_state_dict[key].reshape(-1)
        expected = torch.arange(value.numel()) if name.endswith("position_ids") else torch.zeros(value.numel())
        if not torch.equal(value.to(torch.long), expected.to(torch.long)):
            raise ValueError(
                f"{key} holds non-default values; this converter supports only positions 0 … T-1 and segment "
                "ids passed at call time"
            )
    return used


def _check_tied_decoder(hf_state_dict: Mapping[str, Tensor]) -> set[str]:
    """The MLM decoder of a pre-training checkpoint must be the word embeddings (and its bias the MLM bias)."""
    reason = (
        "this checkpoint's MLM decoder is not tied to the word embeddings, but in our BertForPreTraining the "
        "decoder weight is the embedding matrix"
    )
    word = "bert.embeddings.word_embeddings.weight"
    return _hf.check_tied(hf_state_dict, _TIED_WORD, word, reason) | _hf.check_tied(
        hf_state_dict, _TIED_BIAS, "cls.predictions.bias", reason
    )


def state_dict_from_hf(
    hf_state_dict: Mapping[str, Tensor], config: BertConfig, *, pretraining: bool = False, strict: bool = True
) -> tuple[dict[str, Tensor], LoadResult]:
    """A Hugging Face BERT state dict -> (our state dict, what was left out), for ``BertModel(config)`` or, with
    ``pretraining``, ``BertForPreTraining(config)``; load it with ``model.load_state_dict``.

    For a ``BertModel`` the keys may come with or without the ``bert.`` prefix (a ``BertForPreTraining``
    checkpoint then has ``cls.*`` keys left over: unexpected). Shapes must be the config's. With ``strict``
    (default) any missing or unexpected key raises a ``ValueError`` listing them all; otherwise the tensors that
    were found are returned (load them with ``strict=False``: the rest keeps its values) and the Hugging Face
    names of the others in the :class:`LoadResult`. Tensors keep their dtype and are not copied.
    """
    config = _check_config(config)
    prefix = _detect_prefix(hf_state_dict, pretraining)
    pairs = key_pairs(config.n_layers, pretraining=pretraining)
    if prefix and not pretraining:
        pairs = [("bert." + theirs, ours) for theirs, ours in pairs]
    accounted_for = _check_buffers(hf_state_dict, prefix)
    if pretraining:
        accounted_for |= _check_tied_decoder(hf_state_dict)
    result = _hf.match_keys(
        hf_state_dict,
        [theirs for theirs, _ in pairs],
        accounted_for,
        described=_described(config, pretraining),
        strict=strict,
        allow_missing=not strict,
    )
    found = [(ours, theirs, hf_state_dict[theirs]) for theirs, ours in pairs if theirs in hf_state_dict]
    state = _hf.checked_state_dict(found, _our_shapes(config, pretraining), hf_state_dict)
    if pretraining and "bert.embeddings.token.weight" in state:
        state[_OUR_DECODER] = state["bert.embeddings.token.weight"]  # tied: listed under both names, as ours is
    return state, result


def state_dict_to_hf(state_dict: Mapping[str, Tensor], config: BertConfig) -> dict[str, Tensor]:
    """Our BertModel / BertForPreTraining state dict -> one that Hugging Face's same class loads with strict=True.

    The class is read from the keys (``bert.*`` is a BertForPreTraining). The tied MLM decoder appears under
    both Hugging Face names (``cls.predictions.decoder.weight`` and ``.bias``), as their ``state_dict()`` lists
    it. Tensors are detached copies (safe to save or modify).
    """
    config = _check_config(config)
    pretraining = "bert.embeddings.token.weight" in state_dict
    pairs = key_pairs(config.n_layers, pretraining=pretraining)
    _hf.require_keys(state_dict, [ours for _, ours in pairs], _described(config, pretraining))
    out = {theirs: state_dict[ours].detach().clone() for theirs, ours in pairs}
    if pretraining:
        out[_TIED_WORD] = out["bert.embeddings.word_embeddings.weight"].clone()
        out[_TIED_BIAS] = out["cls.predictions.bias"].clone()
    return out


# ---- configs and folders --------------------------------------------------------------------------------

# Hugging Face config.json field -> BertConfig field
_CONFIG_FIELDS = (
    ("vocab_size", "vocab_size"),
    ("hidden_size", "d_model"),
    ("num_hidden_layers", "n_layers"),
    ("num_attention_heads", "n_heads"),
    ("intermediate_size", "d_ff"),
    ("max_position_embeddings", "max_len"),
    ("type_vocab_size", "type_vocab_size"),
    ("layer_norm_eps", "layer_norm_eps"),
    ("hidden_dropout_prob", "dropout"),
    ("attention_probs_dropout_prob", "attention_dropout"),
)


def config_from_hf(hf_config: Mapping) -> BertConfig:
    """A Hugging Face BERT ``config.json`` (as a dict) -> :class:`BertConfig`; ValueError for what we cannot run.

    Required: the fields of the table in this module. ``hidden_act`` must be ``"gelu"`` (exact erf);
    ``position_embedding_type``, when present, ``"absolute"``; ``model_type``, when present, ``"bert"``.
    ``pad_token_id`` becomes ``pad_id`` (so the model derives the padding mask from [PAD] ids when no mask is
    given).
    """
    hf = hf_config
    if not isinstance(hf, Mapping):
        raise TypeError(f"the config must be a mapping (the parsed config.json), got {type(hf).__name__}")
    missing = [theirs for theirs, _ in _CONFIG_FIELDS if theirs not in hf]
    if missing:
        raise ValueError(f"config.json lacks the BERT field(s) {missing}")
    if hf.get("model_type", "bert") != "bert":
        raise ValueError(f"config.json has model_type={hf['model_type']!r}; only 'bert' checkpoints are supported")
    if hf.get("hidden_act") != "gelu":
        raise ValueError(
            f"config.json has hidden_act={hf.get('hidden_act')!r}; BertModel uses exact GELU and needs 'gelu'"
        )
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            f"config.json has position_embedding_type={hf['position_embedding_type']!r}; only 'absolute' "
            "(a learned table indexed 0 … T-1) is supported"
        )
    fields = {ours: hf[theirs] for theirs, ours in _CONFIG_FIELDS}
    return BertConfig(**fields, **_hf.optional_fields(hf))


def config_to_hf(config: BertConfig) -> dict:
    """:class:`BertConfig` -> the keyword arguments of ``transformers.BertConfig`` (and a config.json)."""
    config = _check_config(config)
    out = {theirs: getattr(config, ours) for theirs, ours in _CONFIG_FIELDS}
    out.update(model_type="bert", hidden_act="gelu", initializer_range=config.initializer_range)
    out["position_embedding_type"] = "absolute"
    if config.pad_id is not None:
        out["pad_token_id"] = config.pad_id
    return out


def read_pretrained(path: str | os.PathLike, *, pretraining: bool = False) -> tuple[BertConfig, dict[str, Tensor]]:
    """(config, our state dict) of a local Hugging Face BERT folder, for ``BertModel`` or, with ``pretraining``,
    ``BertForPreTraining``.

    Reads ``config.json`` (see :func:`config_from_hf`) and the weights from ``model.safetensors`` (or a sharded
    ``model.safetensors.index.json``), converted strictly by :func:`state_dict_from_hf` (a ValueError lists
    missing and unexpected keys). No network access: ``path`` must be a folder on disk. Used by
    ``BertModel.from_pretrained`` and ``BertForPreTraining.from_pretrained``.
    """
    convert = functools.partial(state_dict_from_hf, pretraining=pretraining)
    return _hf.read_pretrained(path, config_from_hf, convert)
