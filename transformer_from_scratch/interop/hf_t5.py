r"""Converters between our T5 (:mod:`models.t5`) and Hugging Face ``transformers`` T5 checkpoints.

Key names (theirs -> ours). Both sides use ``nn.Linear`` orientation (out, in) and no biases, so every tensor is
copied as it is; only the names change. In stack s (``encoder`` or ``decoder``), block i:

    shared.weight                                          -> shared.weight                          (V, D)
    s.block.0.layer.0.SelfAttention.relative_attention_bias.weight
                                                           -> s.position_bias.embedding.weight       (buckets, H)
    s.block.{i}.layer.0.layer_norm.weight                  -> s.layers.{i}.norm1.weight              (D,)
    s.block.{i}.layer.0.SelfAttention.{q,k,v}.weight       -> s.layers.{i}.self_attn.{q,k,v}_proj.weight
    s.block.{i}.layer.0.SelfAttention.o.weight             -> s.layers.{i}.self_attn.out_proj.weight
    decoder.block.{i}.layer.1.layer_norm.weight            -> decoder.layers.{i}.norm2.weight
    decoder.block.{i}.layer.1.EncDecAttention.{q,k,v}.weight -> decoder.layers.{i}.cross_attn.{q,k,v}_proj.weight
    decoder.block.{i}.layer.1.EncDecAttention.o.weight     -> decoder.layers.{i}.cross_attn.out_proj.weight
    s.block.{i}.layer.{f}.layer_norm.weight                -> s.layers.{i}.norm{f+1}.weight   f = 1 encoder, 2 decoder
    s.block.{i}.layer.{f}.DenseReluDense.wi.weight         -> s.layers.{i}.ff.w1.weight   relu: wo(relu(wi x))
    s.block.{i}.layer.{f}.DenseReluDense.wi_0.weight       -> s.layers.{i}.ff.w1.weight   gated-gelu: the GELU branch
    s.block.{i}.layer.{f}.DenseReluDense.wi_1.weight       -> s.layers.{i}.ff.w3.weight   gated-gelu: the linear one
    s.block.{i}.layer.{f}.DenseReluDense.wo.weight         -> s.layers.{i}.ff.w2.weight
    s.final_layer_norm.weight                              -> s.final_norm.weight
    lm_head.weight                                         -> lm_head.weight (untied only; else = shared.weight)

Keys that are read, checked and dropped:

* ``encoder.embed_tokens.weight`` / ``decoder.embed_tokens.weight``: Hugging Face's stacks hold the shared
  embedding under these names too (``state_dict()`` lists them); each must equal ``shared.weight``.
* ``lm_head.weight`` of a tied model must equal ``shared.weight``.
* ``decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight``: older checkpoints (t5-small …) store
  a bias table for cross-attention that neither T5 nor Hugging Face uses (cross-attention has no position bias);
  Hugging Face ignores it on load, and so do we.

Tied or untied head. Original T5 ties the head to ``shared`` and scales the decoder output by D**-0.5 before it;
T5 v1.1 / Flan-T5 have their own ``lm_head`` and no scaling. Our ``tie_word_embeddings`` is that switch (tied ⇔
scaled). Hugging Face ≥ 5 keeps the switch as ``scale_decoder_outputs`` and forces ``tie_word_embeddings=True``
in the config (its ``T5ForConditionalGeneration`` always starts with ``lm_head`` tied to ``shared``; loading a
checkpoint whose two matrices differ unties them). So :func:`config_from_hf` reads ``scale_decoder_outputs`` when
present and ``tie_word_embeddings`` (older config.json files) otherwise. A model of the other kind — scaled with
an untied head — is refused: we cannot run it.

Everything here is plain data — configs and state dicts — and never imports our models, so the model classes
can call it; a model is built from the result as::

    config, state = read_hf_model(hf_model)                # or read_pretrained(folder)
    model = T5ForConditionalGeneration(config).to(dtype)   # dtype first: load_state_dict casts into it
    model.load_state_dict(state)
    hf_state_dict = state_dict_to_hf(model.state_dict(), model.config)

:func:`read_pretrained` reads a local folder: ``config.json`` and ``model.safetensors`` (or a sharded
``model.safetensors.index.json``), or else ``pytorch_model.bin`` loaded with ``torch.load(weights_only=True)``,
PyTorch's restricted unpickler that rebuilds tensors and plain containers only and refuses any other object.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from ..config import T5Config
from . import _hf
from ._hf import LoadResult

__all__ = [
    "FEED_FORWARDS",
    "key_pairs",
    "config_from_hf",
    "config_to_hf",
    "state_dict_from_hf",
    "state_dict_to_hf",
    "read_pretrained",
    "read_hf_model",
    "LoadResult",
]

# Hugging Face feed_forward_proj -> our feed_forward
FEED_FORWARDS = {"relu": "relu", "gated-gelu": "gated_gelu"}
_ATTENTION = (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj"))
_FEED_FORWARD = {
    "relu": (("wi", "w1"), ("wo", "w2")),
    "gated_gelu": (("wi_0", "w1"), ("wi_1", "w3"), ("wo", "w2")),
}
_SHARED = "shared.weight"
_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")  # = shared.weight
_HEAD = "lm_head.weight"
_UNUSED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)  # see the module docstring


def _check_config(config) -> T5Config:
    if not isinstance(config, T5Config):
        raise TypeError(f"config must be a T5Config, got {type(config).__name__}")
    if config.feed_forward not in _FEED_FORWARD:
        raise ValueError(f"config.feed_forward must be one of {sorted(_FEED_FORWARD)}, got {config.feed_forward!r}")
    return config


def _described(config: T5Config, lm_head: bool) -> str:
    head = "" if not lm_head else ", tied head" if config.tie_word_embeddings else ", untied head"
    return (
        f"{'T5ForConditionalGeneration' if lm_head else 'T5Model'}(n_layers={config.n_layers}, "
        f"n_decoder={config.n_decoder}, feed_forward={config.feed_forward!r}{head})"
    )


def _stack_pairs(stack: str, n_layers: int, feed_forward: str) -> list[tuple[str, str]]:
    """(Hugging Face key, our key) for one stack: position bias, blocks, final norm."""
    pairs = [
        (
            f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            f"{stack}.position_bias.embedding.weight",
        )
    ]
    attentions = [("SelfAttention", "self_attn")]
    if stack == "decoder":
        attentions.append(("EncDecAttention", "cross_attn"))
    for i in range(n_layers):
        theirs, ours = f"{stack}.block.{i}.layer", f"{stack}.layers.{i}"
        for j, (their_attn, our_attn) in enumerate(attentions):  # sub-layer j: norm{j+1} then attention
            pairs.append((f"{theirs}.{j}.layer_norm.weight", f"{ours}.norm{j + 1}.weight"))
            pairs += [(f"{theirs}.{j}.{their_attn}.{a}.weight", f"{ours}.{our_attn}.{b}.weight") for a, b in _ATTENTION]
        f = len(attentions)  # the feed-forward is the last sub-layer
        pairs.append((f"{theirs}.{f}.layer_norm.weight", f"{ours}.norm{f + 1}.weight"))
        pairs += [
            (f"{theirs}.{f}.DenseReluDense.{a}.weight", f"{ours}.ff.{b}.weight") for a, b in _FEED_FORWARD[feed_forward]
        ]
    pairs.append((f"{stack}.final_layer_norm.weight", f"{stack}.final_norm.weight"))
    return pairs


def key_pairs(config: T5Config, *, lm_head: bool = True) -> list[tuple[str, str]]:
    """(Hugging Face key, our key) for every tensor of ``T5ForConditionalGeneration(config)`` (or, with
    ``lm_head=False``, ``T5Model``): ``lm_head.weight`` only when the head is untied. The aliases of
    ``shared.weight`` (``embed_tokens``, a tied ``lm_head``) are not pairs: see the module docstring."""
    c = _check_config(config)
    pairs = [(_SHARED, _SHARED)]
    pairs += _stack_pairs("encoder", c.n_layers, c.feed_forward)
    pairs += _stack_pairs("decoder", c.n_decoder, c.feed_forward)
    if lm_head and not c.tie_word_embeddings:
        pairs.append((_HEAD, _HEAD))
    return pairs


def _our_shapes(config: T5Config, lm_head: bool) -> dict[str, tuple[int, ...]]:
    """Every key of our T5 state dict and its shape, written out from the parameter table of the model."""
    c = config
    d, f, v, inner = c.d_model, c.d_ff, c.vocab_size, c.n_heads * c.d_kv
    attention = {"q_proj": (inner, d), "k_proj": (inner, d), "v_proj": (inner, d), "out_proj": (d, inner)}
    ff = {"w1": (f, d), "w2": (d, f)} | ({"w3": (f, d)} if c.feed_forward == "gated_gelu" else {})
    shapes = {_SHARED: (v, d)}
    for stack, n_layers in (("encoder", c.n_layers), ("decoder", c.n_decoder)):
        shapes[f"{stack}.position_bias.embedding.weight"] = (c.num_buckets, c.n_heads)
        attentions = ("self_attn", "cross_attn") if stack == "decoder" else ("self_attn",)
        for i in range(n_layers):
            prefix = f"{stack}.layers.{i}."
            for n in range(len(attentions) + 1):
                shapes[f"{prefix}norm{n + 1}.weight"] = (d,)
            shapes.update({f"{prefix}{a}.{p}.weight": s for a in attentions for p, s in attention.items()})
            shapes.update({f"{prefix}ff.{w}.weight": s for w, s in ff.items()})
        shapes[f"{stack}.final_norm.weight"] = (d,)
    if lm_head and not c.tie_word_embeddings:
        shapes[_HEAD] = (v, d)
    return shapes


def _check_aliases(hf_state_dict: Mapping[str, Tensor], config: T5Config, lm_head: bool) -> set[str]:
    """The copies of ``shared.weight`` Hugging Face lists under other names must equal it; returns their keys and
    those of the tensors that are dropped (the unused cross-attention bias; any LM head when ``lm_head=False``)."""
    used = set()
    for alias in _ALIASES:
        used |= _hf.check_tied(
            hf_state_dict, alias, _SHARED, "the stacks' embed_tokens must be the shared embedding (T5 has one)"
        )
    if not lm_head:  # T5Model: the head of a T5ForConditionalGeneration checkpoint is not ours to load
        return used | {key for key in (_HEAD, *_UNUSED) if key in hf_state_dict}
    if config.tie_word_embeddings:
        reason = (
            "this checkpoint has its own LM head, but the config ties the head to the shared embedding (and scales "
            "the decoder output by d_model**-0.5). A T5 v1.1-style checkpoint needs tie_word_embeddings=False "
            "(config_from_hf reads it from scale_decoder_outputs / tie_word_embeddings); a scaled model with an "
            "untied head cannot be run here"
        )
        used |= _hf.check_tied(hf_state_dict, _HEAD, _SHARED, reason)
    return used | {key for key in _UNUSED if key in hf_state_dict}


def state_dict_from_hf(
    hf_state_dict: Mapping[str, Tensor], config: T5Config, *, lm_head: bool = True, strict: bool = True
) -> tuple[dict[str, Tensor], LoadResult]:
    """A Hugging Face T5 state dict -> (our state dict, what was left out), for ``T5ForConditionalGeneration(config)``
    or, with ``lm_head=False``, ``T5Model(config)``; load it with ``model.load_state_dict``.

    Missing keys are always an error (a ValueError listing them with the unexpected ones); unexpected keys are an
    error with ``strict`` (default), otherwise they are returned in the :class:`LoadResult`. The aliases of
    ``shared.weight`` must equal it (see the module docstring); with ``lm_head=False`` a checkpoint's
    ``lm_head.weight``, tied or not, is dropped (a T5Model reads the body of a T5ForConditionalGeneration).
    Shapes must be the config's (a ValueError lists every mismatch with both names). Tensors keep their dtype and
    are not copied.
    """
    c = _check_config(config)
    if not isinstance(hf_state_dict, Mapping):
        raise TypeError(f"hf_state_dict must be a mapping of names to tensors, got {type(hf_state_dict).__name__}")
    pairs = key_pairs(c, lm_head=lm_head)
    result = _hf.match_keys(
        hf_state_dict,
        [theirs for theirs, _ in pairs],
        _check_aliases(hf_state_dict, c, lm_head),
        described=_described(c, lm_head),
        strict=strict,
        allow_missing=False,
    )
    converted = [(ours, theirs, hf_state_dict[theirs]) for theirs, ours in pairs]
    return _hf.checked_state_dict(converted, _our_shapes(c, lm_head), hf_state_dict), result


def state_dict_to_hf(state_dict: Mapping[str, Tensor], config: T5Config, *, lm_head: bool = True) -> dict[str, Tensor]:
    """Our T5 state dict -> the state dict of Hugging Face's ``T5ForConditionalGeneration`` (or, with
    ``lm_head=False``, ``T5Model``) as its ``state_dict()`` lists it: the ``embed_tokens`` aliases and, for a tied
    head, ``lm_head.weight`` are copies of ``shared.weight``.

    Every key of our model must be there, and no other (a key of the other head kind means the config's
    ``tie_word_embeddings`` is not the model's): a ValueError names them. Tensors are detached contiguous copies
    (safe to modify, and to save with safetensors, which refuses shared storage).

    Loading an untied result into a live Hugging Face model needs care: transformers ≥ 5 builds
    ``T5ForConditionalGeneration`` with ``lm_head.weight`` *being* ``shared.weight``, so ``load_state_dict`` would
    write both values into one matrix. Give the head its own parameter first
    (``hf.lm_head.weight = nn.Parameter(hf.lm_head.weight.detach().clone())``), or save the result to a folder
    and use ``from_pretrained``, which unties matrices that differ.
    """
    c = _check_config(config)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    pairs = key_pairs(c, lm_head=lm_head)
    described = _described(c, lm_head)
    _hf.require_keys(state_dict, [ours for _, ours in pairs], described)
    expected = _our_shapes(c, lm_head)
    unexpected = sorted(set(state_dict) - set(expected))
    if unexpected:
        raise ValueError(f"the state dict has keys that are not part of our {described}: {unexpected}")
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} (expected {s})" for k, s in expected.items() if state_dict[k].shape != s
    ]
    if wrong:
        raise ValueError("tensor shapes do not match the config:\n  " + "\n  ".join(wrong))
    out = {theirs: state_dict[ours].detach().clone().contiguous() for theirs, ours in pairs}
    for alias in _ALIASES:
        out[alias] = out[_SHARED].clone()
    if lm_head and c.tie_word_embeddings:
        out[_HEAD] = out[_SHARED].clone()
    return out


# ---- configs and folders --------------------------------------------------------------------------------

# Hugging Face config.json field -> T5Config field, for the fields that must be present
_REQUIRED_FIELDS = (
    ("vocab_size", "vocab_size"),
    ("d_model", "d_model"),
    ("d_kv", "d_kv"),
    ("d_ff", "d_ff"),
    ("num_heads", "n_heads"),
    ("num_layers", "n_layers"),
)
# ... and for the optional ones, with Hugging Face's default when config.json leaves them out
_OPTIONAL_FIELDS = (
    ("num_decoder_layers", "n_decoder_layers", None),
    ("relative_attention_num_buckets", "num_buckets", 32),
    ("relative_attention_max_distance", "max_distance", 128),
    ("dropout_rate", "dropout", 0.1),
    ("layer_norm_epsilon", "layer_norm_eps", 1e-6),
    ("initializer_factor", "initializer_factor", 1.0),
    ("eos_token_id", "eos_id", 1),
)


def _tied(hf: Mapping) -> bool:
    """Whether the head is the shared embedding with the D**-0.5 scaling (see the module docstring)."""
    if hf.get("scale_decoder_outputs") is not None:  # transformers ≥ 5: the switch itself
        return bool(hf["scale_decoder_outputs"])
    return bool(hf.get("tie_word_embeddings", True))


def _single_id(name: str, value):
    """``eos_token_id`` may be a list in config.json; we stop on one id."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"config.json has {name}={value!r}; our T5 takes a single id")
        value = value[0]
    return value


def config_from_hf(hf_config: Mapping) -> T5Config:
    """A Hugging Face T5 ``config.json`` (as a dict) -> :class:`T5Config`; ValueError for what we cannot run.

    Required: ``vocab_size``, ``d_model``, ``d_kv``, ``d_ff``, ``num_heads``, ``num_layers``; the others take
    Hugging Face's defaults when absent (``num_decoder_layers`` = ``num_layers``, 32 buckets, max_distance 128,
    ``dropout_rate`` 0.1, eps 1e-6, ``pad_token_id`` 0, ``eos_token_id`` 1, ``decoder_start_token_id`` =
    ``pad_token_id``). ``feed_forward_proj`` must be "relu" (original T5) or "gated-gelu" (T5 v1.1: tanh GELU);
    ``model_type``, when present, "t5"; ``pad_token_id`` not null (shift_right writes it). The head is tied when
    ``scale_decoder_outputs`` (else ``tie_word_embeddings``) is true — see the module docstring.
    """
    hf = hf_config
    if not isinstance(hf, Mapping):
        raise TypeError(f"the config must be a mapping (the parsed config.json), got {type(hf).__name__}")
    if hf.get("model_type", "t5") != "t5":
        raise ValueError(f"config.json has model_type={hf['model_type']!r}; only 't5' checkpoints are supported")
    missing = [theirs for theirs, _ in _REQUIRED_FIELDS if theirs not in hf]
    if missing:
        raise ValueError(f"config.json lacks the T5 field(s) {missing}")
    feed_forward = hf.get("feed_forward_proj", "relu")
    if feed_forward not in FEED_FORWARDS:
        raise ValueError(
            f"config.json has feed_forward_proj={feed_forward!r}; supported: {sorted(FEED_FORWARDS)} "
            "('relu': wo(relu(wi x)), original T5; 'gated-gelu': wo(gelu_tanh(wi_0 x) * wi_1 x), T5 v1.1)"
        )
    pad_id = hf.get("pad_token_id", 0)
    if pad_id is None:
        raise ValueError(
            "config.json has pad_token_id=null; T5 needs a padding id (shift_right replaces -100 labels with it)"
        )
    fields = {ours: hf[theirs] for theirs, ours in _REQUIRED_FIELDS}
    fields.update({ours: hf[theirs] if theirs in hf else default for theirs, ours, default in _OPTIONAL_FIELDS})
    fields["eos_id"] = _single_id("eos_token_id", fields["eos_id"])
    if fields["n_decoder_layers"] == fields["n_layers"]:
        fields["n_decoder_layers"] = None  # our "as deep as the encoder" (Hugging Face writes the number out)
    start = hf.get("decoder_start_token_id")
    return T5Config(
        **fields,
        feed_forward=FEED_FORWARDS[feed_forward],
        tie_word_embeddings=_tied(hf),
        pad_id=pad_id,
        decoder_start_id=pad_id if start is None else start,
    )


def config_to_hf(config: T5Config) -> dict:
    """:class:`T5Config` -> the keyword arguments of ``transformers.T5Config`` (and a config.json).

    ``tie_word_embeddings`` is written as ours (any transformers version reads it as "tied and scaled" or "own head,
    no scaling"; transformers ≥ 5 turns it into ``scale_decoder_outputs``).
    """
    c = _check_config(config)
    out = {theirs: getattr(c, ours) for theirs, ours in _REQUIRED_FIELDS}
    out.update({theirs: getattr(c, ours) for theirs, ours, _ in _OPTIONAL_FIELDS})
    out["num_decoder_layers"] = c.n_decoder
    feed_forward = {ours: theirs for theirs, ours in FEED_FORWARDS.items()}[c.feed_forward]
    out.update(model_type="t5", is_encoder_decoder=True, feed_forward_proj=feed_forward)
    out.update(tie_word_embeddings=c.tie_word_embeddings, pad_token_id=c.pad_id)
    out["decoder_start_token_id"] = c.decoder_start_id
    return out


def _read_weights(folder: Path) -> dict[str, Tensor]:
    """model.safetensors (or its shards) if there, else pytorch_model.bin through the restricted unpickler."""
    if (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file():
        return _hf.read_safetensors(folder)
    binary = folder / "pytorch_model.bin"
    if not binary.is_file():
        return _hf.read_safetensors(folder)  # raises, naming the files present
    try:
        state = torch.load(binary, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{binary} holds objects other than tensors and was refused (torch.load(weights_only=True)): {err}"
        ) from None
    if not isinstance(state, Mapping):
        raise ValueError(f"{binary} holds a {type(state).__name__}, not a state dict (a mapping of names to tensors)")
    return dict(state)


def read_pretrained(path: str | os.PathLike, *, lm_head: bool = True) -> tuple[T5Config, dict[str, Tensor]]:
    """(config, our state dict) of a local Hugging Face T5 folder, for ``T5ForConditionalGeneration`` or, with
    ``lm_head=False``, ``T5Model``.

    Reads ``config.json`` first (see :func:`config_from_hf`; a checkpoint we cannot run is refused before its
    weights are read), then ``model.safetensors`` (or a sharded ``model.safetensors.index.json``), or else
    ``pytorch_model.bin`` through ``torch.load(weights_only=True)``; converted strictly by
    :func:`state_dict_from_hf`. No network access: ``path`` must be a folder on disk. The tensors keep the dtype
    they were saved in.
    """
    folder, hf_config = _hf.read_config_json(path)
    config = config_from_hf(hf_config)
    state, _ = state_dict_from_hf(_read_weights(folder), config, lm_head=lm_head)
    return config, state


def read_hf_model(hf_model: torch.nn.Module, *, lm_head: bool = True) -> tuple[T5Config, dict[str, Tensor]]:
    """(config, our state dict) of a live ``transformers`` ``T5ForConditionalGeneration`` or ``T5Model``, for our
    ``T5ForConditionalGeneration`` or, with ``lm_head=False``, ``T5Model``; converted strictly from
    ``hf_model.config.to_dict()`` and ``hf_model.state_dict()``.

    The tensors are the model's own (its dtype and device, not copied). A model is built from the pair as the
    module docstring shows (move it to the dtype *before* ``load_state_dict``, which casts into the model's dtype).
    """
    hf_config = getattr(hf_model, "config", None)
    if hf_config is None or not hasattr(hf_config, "to_dict") or not hasattr(hf_model, "state_dict"):
        raise TypeError(f"hf_model must be a transformers T5 model with a .config, got {type(hf_model).__name__}")
    config = config_from_hf(hf_config.to_dict())
    state, _ = state_dict_from_hf(hf_model.state_dict(), config, lm_head=lm_head)
    return config, state
