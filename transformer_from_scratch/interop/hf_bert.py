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

:func:`from_pretrained` reads a local folder in Hugging Face's format — ``config.json`` and
``model.safetensors`` (or a sharded ``model.safetensors.index.json``). Pickle files (``pytorch_model.bin``)
are refused: unpickling can run arbitrary code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..config import BertConfig
from ..models.bert import BertForPreTraining, BertModel

__all__ = [
    "bert_key_pairs",
    "load_hf_bert_state_dict",
    "to_hf_bert_state_dict",
    "config_from_hf",
    "config_to_hf",
    "from_pretrained",
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
_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")  # saved by older versions; not weights


class LoadResult(NamedTuple):
    """What a non-strict load left out, in Hugging Face names: ``missing`` (expected, absent — those parameters
    keep their values) and ``unexpected`` (present, unused)."""

    missing: list[str]
    unexpected: list[str]


def _kind(model: nn.Module) -> str:
    if isinstance(model, BertForPreTraining):
        return "pretraining"
    if isinstance(model, BertModel):
        return "model"
    raise TypeError(f"model must be a BertModel or a BertForPreTraining, got {type(model).__name__}")


def bert_key_pairs(n_layers: int, *, pretraining: bool = False) -> list[tuple[str, str]]:
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


def _detect_prefix(state_dict: Mapping[str, Tensor], kind: str) -> str:
    """'' or 'bert.': where the encoder's keys live in ``state_dict``."""
    if kind == "pretraining":
        return "bert."
    probe = "embeddings.word_embeddings.weight"
    return "bert." if probe not in state_dict and ("bert." + probe) in state_dict else ""


def _check_buffers(state_dict: Mapping[str, Tensor], prefix: str) -> set[str]:
    """Validate the saved position_ids / token_type_ids buffers, if any; return the keys they used."""
    used = set()
    for name in _BUFFERS:
        key = prefix + name
        if key not in state_dict:
            continue
        used.add(key)
        value = state_dict[key].reshape(-1)
        expected = torch.arange(value.numel()) if name.endswith("position_ids") else torch.zeros(value.numel())
        if not torch.equal(value.to(torch.long), expected.to(torch.long)):
            raise ValueError(
                f"{key} holds non-default values; this converter supports only positions 0 … T-1 and segment "
                "ids passed at call time"
            )
    return used


def load_hf_bert_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], *, strict: bool = True) -> LoadResult:
    """Copy a Hugging Face BERT state dict into ``model`` (a :class:`BertModel` or :class:`BertForPreTraining`).

    For a ``BertModel`` the keys may come with or without the ``bert.`` prefix (a ``BertForPreTraining``
    checkpoint then has ``cls.*`` keys left over: unexpected). Tensors are cast to the model's dtype and device.
    Shapes must match. With ``strict`` (default) any missing or unexpected key raises a ``ValueError`` listing
    them all, and nothing is copied; otherwise the keys that were found are copied and the rest is returned.
    """
    kind = _kind(model)
    pretraining = kind == "pretraining"
    prefix = _detect_prefix(state_dict, kind)
    pairs = bert_key_pairs(model.config.n_layers, pretraining=pretraining)
    if prefix and not pretraining:
        pairs = [("bert." + theirs, ours) for theirs, ours in pairs]
    ours_params = model.state_dict()

    used = _check_buffers(state_dict, prefix)
    word_key = prefix + "embeddings.word_embeddings.weight"
    for tied, source in ((_TIED_WORD, word_key), (_TIED_BIAS, "cls.predictions.bias")):
        if pretraining and tied in state_dict:
            used.add(tied)
            if source in state_dict and not torch.equal(state_dict[tied], state_dict[source]):
                raise ValueError(
                    f"{tied} differs from {source}: this checkpoint's MLM decoder is not tied to the word embeddings, "
                    "but in our BertForPreTraining the decoder weight is the embedding matrix"
                )

    missing = [theirs for theirs, _ in pairs if theirs not in state_dict]
    unexpected = sorted(set(state_dict) - {theirs for theirs, _ in pairs} - used)
    if strict and (missing or unexpected):
        raise ValueError(
            f"the state dict does not match {type(model).__name__}(n_layers={model.config.n_layers}):\n"
            f"  missing keys ({len(missing)}): {missing}\n"
            f"  unexpected keys ({len(unexpected)}): {unexpected}"
        )
    mismatched = [
        f"{theirs} {tuple(state_dict[theirs].shape)} -> {ours} {tuple(ours_params[ours].shape)}"
        for theirs, ours in pairs
        if theirs in state_dict and tuple(state_dict[theirs].shape) != tuple(ours_params[ours].shape)
    ]
    if mismatched:
        raise ValueError("tensor shapes do not match (is the config the checkpoint's?):\n  " + "\n  ".join(mismatched))
    with torch.no_grad():
        for theirs, ours in pairs:
            if theirs in state_dict:
                target = ours_params[ours]  # a view sharing storage with the parameter
                target.copy_(state_dict[theirs].to(device=target.device, dtype=target.dtype))
    return LoadResult(missing, unexpected)


def to_hf_bert_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Our BertModel / BertForPreTraining -> a state dict that Hugging Face's same class loads with strict=True.

    The tied MLM decoder appears under both Hugging Face names (``cls.predictions.decoder.weight`` and
    ``.bias``), as their ``state_dict()`` lists it. Tensors are detached copies (safe to save or modify).
    """
    kind = _kind(model)
    pretraining = kind == "pretraining"
    ours = model.state_dict()
    out = {
        theirs: ours[o].detach().clone() for theirs, o in bert_key_pairs(model.config.n_layers, pretraining=pretraining)
    }
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
_OPTIONAL_FIELDS = ("initializer_range", "pad_token_id")


def config_from_hf(hf: Mapping) -> BertConfig:
    """A Hugging Face BERT ``config.json`` (as a dict) -> :class:`BertConfig`; ValueError for what we cannot run.

    Required: the fields of the table in this module. ``hidden_act`` must be ``"gelu"`` (exact erf);
    ``position_embedding_type``, when present, ``"absolute"``; ``model_type``, when present, ``"bert"``.
    ``pad_token_id`` becomes ``pad_id`` (so the model derives the padding mask from [PAD] ids when no mask is
    given).
    """
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
    if "initializer_range" in hf:
        fields["initializer_range"] = hf["initializer_range"]
    if hf.get("pad_token_id") is not None:
        fields["pad_id"] = hf["pad_token_id"]
    return BertConfig(**fields)


def config_to_hf(config: BertConfig) -> dict:
    """:class:`BertConfig` -> the keyword arguments of ``transformers.BertConfig`` (and a config.json)."""
    out = {theirs: getattr(config, ours) for theirs, ours in _CONFIG_FIELDS}
    out.update(model_type="bert", hidden_act="gelu", initializer_range=config.initializer_range)
    out["position_embedding_type"] = "absolute"
    if config.pad_id is not None:
        out["pad_token_id"] = config.pad_id
    return out


def _read_hf_config(path: str | os.PathLike) -> tuple[Path, dict]:
    """(folder, parsed config.json) of a local Hugging Face folder, with a clear error for each way it can be wrong."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"no such folder: {folder} (from_pretrained reads a local Hugging Face folder)")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; from_pretrained needs the folder holding config.json")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{folder} has no config.json (files present: {sorted(p.name for p in folder.iterdir())})"
        )
    try:
        return folder, json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_file} is not valid JSON: {err}") from None


def _read_safetensors(folder: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    single = folder / "model.safetensors"
    if single.is_file():
        return load_file(str(single))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        state: dict[str, Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            if not (folder / shard).is_file():
                raise FileNotFoundError(f"{index} names the shard {shard!r}, which is not in {folder}")
            state.update(load_file(str(folder / shard)))
        return state
    present = sorted(p.name for p in folder.iterdir())
    if any(name.endswith((".bin", ".pt", ".pth", ".ckpt")) for name in present):
        raise FileNotFoundError(
            f"{folder} has no model.safetensors, only pickle weights ({present}); pickle files are not loaded "
            "(they can run code). Convert once with transformers: "
            "AutoModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)"
        )
    raise FileNotFoundError(f"{folder} has no model.safetensors (files present: {present})")


def from_pretrained(path: str | os.PathLike, model_class=None, *, dtype: torch.dtype | None = None) -> nn.Module:
    """Build ``model_class`` (default :class:`BertModel`) from a local Hugging Face folder, in eval mode.

    Reads ``config.json`` (see :func:`config_from_hf`) and the weights from ``model.safetensors`` (or a sharded
    ``model.safetensors.index.json``), then copies them with :func:`load_hf_bert_state_dict` (strict: a
    ValueError lists missing and unexpected keys). ``dtype`` defaults to float32 whatever the checkpoint stores.
    No network access: ``path`` must be a folder on disk.
    """
    model_class = BertModel if model_class is None else model_class
    folder, hf_config = _read_hf_config(path)
    config = config_from_hf(hf_config)
    state = _read_safetensors(folder)
    model = model_class(config).to(
        torch.float32 if dtype is None else dtype
    )  # randomly initialised, then every tensor is overwritten
    load_hf_bert_state_dict(model, state, strict=True)
    return model.eval()
