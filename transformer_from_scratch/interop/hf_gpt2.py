r"""Converters between our :class:`models.gpt.GPT` and Hugging Face ``transformers`` GPT-2 checkpoints, as data:
:func:`config_from_hf` / :func:`config_to_hf`, :func:`state_dict_from_hf` / :func:`state_dict_to_hf` and
:func:`read_pretrained` for a local folder (``GPT.from_pretrained`` and ``GPT.from_hf`` call them), and
:func:`sequence_classification_state_dict_from_hf` / ``_to_hf`` for ``GPT2ForSequenceClassification``
(``transformer.*`` + ``score.weight`` <-> our ``GPTForSequenceClassification``'s ``gpt.*`` + ``head.linear.weight``).

GPT-2 stores its projections as ``Conv1D`` modules: out = x · W + b with W of shape (in, out) — the
*transpose* of ``nn.Linear``'s (out, in). So every matrix is transposed on the way, and the query, key and value
projections, packed side by side in ``c_attn`` (D, 3D), are cut along the output columns: q | k | v.

Key names (theirs -> ours), per block i; ``GPT2LMHeadModel`` keys carry the ``transformer.`` prefix,
``GPT2Model`` keys none:

    transformer.wte.weight                       -> token.weight                      (V, D)
    transformer.wpe.weight                       -> position.weight                   (max_len, D)
    transformer.h.{i}.ln_1.{weight,bias}         -> decoder.layers.{i}.norm1.*
    transformer.h.{i}.attn.c_attn.weight (D, 3D) -> decoder.layers.{i}.self_attn.{q,k,v}_proj.weight   3 × (D, D)ᵀ
    transformer.h.{i}.attn.c_attn.bias   (3D,)   -> decoder.layers.{i}.self_attn.{q,k,v}_proj.bias     3 × (D,)
    transformer.h.{i}.attn.c_proj.*              -> decoder.layers.{i}.self_attn.out_proj.*   (weight transposed)
    transformer.h.{i}.ln_2.*                     -> decoder.layers.{i}.norm2.*
    transformer.h.{i}.mlp.c_fc.*     (D, F)      -> decoder.layers.{i}.ff.w1.*                (weight transposed)
    transformer.h.{i}.mlp.c_proj.*   (F, D)      -> decoder.layers.{i}.ff.w2.*                (weight transposed)
    transformer.ln_f.*                           -> decoder.final_norm.*
    lm_head.weight                               =  transformer.wte.weight (tied; untied -> lm_head.weight)

Older checkpoints also saved the causal-mask buffers ``attn.bias`` / ``attn.masked_bias``; they are ignored.
GPT-2's own positions ignore padding: with left padding pass ``position_ids = (mask.cumsum(-1) - 1).clamp(0)``
to Hugging Face; our model counts positions that way by itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import Tensor

from ..config import GPTConfig
from . import _hf
from ._hf import LoadResult

__all__ = [
    "config_from_hf",
    "config_to_hf",
    "state_dict_from_hf",
    "state_dict_to_hf",
    "sequence_classification_state_dict_from_hf",
    "sequence_classification_state_dict_to_hf",
    "read_pretrained",
    "LoadResult",
]

_PREFIX = "transformer."
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers saved by older versions
_QKV = ("q_proj", "k_proj", "v_proj")
_NORMS = (("ln_1", "norm1"), ("ln_2", "norm2"))  # (theirs, ours) per block, weight and bias
_CONV1D = (("attn.c_proj", "self_attn.out_proj"), ("mlp.c_fc", "ff.w1"), ("mlp.c_proj", "ff.w2"))  # transposed
_OUTER = (("wte.weight", "token.weight"), ("wpe.weight", "position.weight"))
_OUTER += (("ln_f.weight", "decoder.final_norm.weight"), ("ln_f.bias", "decoder.final_norm.bias"))


def _check_config(config: GPTConfig) -> GPTConfig:
    return _hf.check_family(
        config, "GPT-2", "gpt2_small", positional="learned", norm="layer", activation="gelu_tanh", bias=True
    )


def _hf_keys(n_layers: int, prefix: str) -> list[str]:
    """Every Hugging Face key of a GPT-2 body, in order (``lm_head.weight`` not included)."""
    keys = [f"{prefix}wte.weight", f"{prefix}wpe.weight"]
    for i in range(n_layers):
        for name in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            keys += [f"{prefix}h.{i}.{name}.weight", f"{prefix}h.{i}.{name}.bias"]
    keys += [f"{prefix}ln_f.weight", f"{prefix}ln_f.bias"]
    return keys


def _split_qkv(hf_state_dict: Mapping[str, Tensor], theirs: str, ours: str, d_model: int) -> list[_hf.Converted]:
    """c_attn: x (…, D) · W (D, 3D) + b (3D,); output columns [0, D) are q, [D, 2D) k, [2D, 3D) v."""
    w_qkv = hf_state_dict[f"{theirs}attn.c_attn.weight"]  # (D, 3D), Conv1D orientation (in, out)
    b_qkv = hf_state_dict[f"{theirs}attn.c_attn.bias"]  # (3D,)
    if tuple(w_qkv.shape) != (d_model, 3 * d_model):
        raise ValueError(
            f"{theirs}attn.c_attn.weight has shape {tuple(w_qkv.shape)}, expected (D, 3D) = "
            f"({d_model}, {3 * d_model}) (is the config the checkpoint's?)"
        )
    converted = []
    for j, proj in enumerate(_QKV):
        cols = slice(j * d_model, (j + 1) * d_model)
        # (D, D) in -> out, transposed to (out, in)
        converted.append((f"{ours}self_attn.{proj}.weight", f"{theirs}attn.c_attn.weight", w_qkv[:, cols].T))
        converted.append((f"{ours}self_attn.{proj}.bias", f"{theirs}attn.c_attn.bias", b_qkv[cols]))
    return converted


def _block_from_hf(hf_state_dict: Mapping[str, Tensor], i: int, prefix: str, d_model: int) -> list[_hf.Converted]:
    """(our key, their key, tensor) for block i: norms as they are, c_attn cut, Conv1D weights transposed."""
    theirs, ours = f"{prefix}h.{i}.", f"decoder.layers.{i}."
    converted = [
        (f"{ours}{our_norm}.{p}", f"{theirs}{hf_norm}.{p}", hf_state_dict[f"{theirs}{hf_norm}.{p}"])
        for hf_norm, our_norm in _NORMS
        for p in ("weight", "bias")
    ]
    converted += _split_qkv(hf_state_dict, theirs, ours, d_model)
    for hf_proj, our_proj in _CONV1D:
        weight, bias = f"{theirs}{hf_proj}.weight", f"{theirs}{hf_proj}.bias"
        converted.append((f"{ours}{our_proj}.weight", weight, hf_state_dict[weight].T))  # (in, out) -> (out, in)
        converted.append((f"{ours}{our_proj}.bias", bias, hf_state_dict[bias]))
    return converted


def state_dict_from_hf(
    hf_state_dict: Mapping[str, Tensor], config: GPTConfig, *, strict: bool = True
) -> tuple[dict[str, Tensor], LoadResult]:
    """A Hugging Face GPT-2 state dict (``GPT2LMHeadModel`` or ``GPT2Model``) -> (our GPT's state dict, result).

    The config must match the checkpoint (:func:`config_from_hf`). A tied config refuses a checkpoint whose
    ``lm_head.weight`` differs from ``wte``; an untied one (``tie_head=False``) takes ``lm_head.weight`` and
    needs it. Missing keys are an error (a partial GPT-2 cannot run); with ``strict`` (default) unexpected keys
    are an error too, otherwise they are listed in the :class:`LoadResult`. The result holds every key of
    ``GPT(config).state_dict()`` (``lm_head.weight`` too, tied or not): load it with ``model.load_state_dict``.
    """
    c = _check_config(config)
    prefix = _PREFIX if f"{_PREFIX}wte.weight" in hf_state_dict else ""
    expected = _hf_keys(c.n_layers, prefix) + ([] if c.tie_head else ["lm_head.weight"])
    accounted_for = {k for k in hf_state_dict if k.endswith(_BUFFER_SUFFIXES) and k not in expected}
    if c.tie_head:
        reason = (
            "this checkpoint's head is not tied to the token embedding; build the model with tie_head=False "
            "(config_from_hf reads tie_word_embeddings)"
        )
        accounted_for |= _hf.check_tied(hf_state_dict, "lm_head.weight", f"{prefix}wte.weight", reason)
    described = f"GPT(n_layers={c.n_layers}, tie_head={c.tie_head}) as GPT-2"
    result = _hf.match_keys(
        hf_state_dict, expected, accounted_for, described=described, strict=strict, allow_missing=False
    )
    converted = [(ours, prefix + theirs, hf_state_dict[prefix + theirs]) for theirs, ours in _OUTER]
    for i in range(c.n_layers):
        converted += _block_from_hf(hf_state_dict, i, prefix, c.d_model)
    head = f"{prefix}wte.weight" if c.tie_head else "lm_head.weight"
    converted.append(("lm_head.weight", head, hf_state_dict[head]))
    return _hf.checked_state_dict(converted, _hf.gpt_state_shapes(c), hf_state_dict), result


def state_dict_to_hf(state_dict: Mapping[str, Tensor], config: GPTConfig) -> dict[str, Tensor]:
    """Our GPT's state dict -> a ``GPT2LMHeadModel`` state dict (loads with strict=True; ``lm_head.weight`` always
    present, equal to ``wte`` when tied, as their ``state_dict()`` lists it). Tensors are detached contiguous
    copies."""
    c = _check_config(config)
    _hf.require_keys(state_dict, _hf.gpt_state_shapes(c), f"GPT(n_layers={c.n_layers}) as GPT-2")
    ours = {k: v.detach() for k, v in state_dict.items()}
    out = {_PREFIX + theirs: ours[mine] for theirs, mine in _OUTER}
    for i in range(c.n_layers):
        theirs, mine = f"{_PREFIX}h.{i}.", f"decoder.layers.{i}."
        for hf_norm, our_norm in _NORMS:
            for p in ("weight", "bias"):
                out[f"{theirs}{hf_norm}.{p}"] = ours[f"{mine}{our_norm}.{p}"]
        w = torch.cat([ours[f"{mine}self_attn.{proj}.weight"] for proj in _QKV])  # 3 × (D, D) -> (3D, D)
        out[f"{theirs}attn.c_attn.weight"] = w.T  # (3D, D) -> (D, 3D), Conv1D orientation
        out[f"{theirs}attn.c_attn.bias"] = torch.cat([ours[f"{mine}self_attn.{proj}.bias"] for proj in _QKV])
        for hf_proj, our_proj in _CONV1D:
            out[f"{theirs}{hf_proj}.weight"] = ours[f"{mine}{our_proj}.weight"].T
            out[f"{theirs}{hf_proj}.bias"] = ours[f"{mine}{our_proj}.bias"]
    out["lm_head.weight"] = ours["lm_head.weight"]
    return {k: v.clone().contiguous() for k, v in out.items()}


# ---- GPT2ForSequenceClassification ------------------------------------------------------------------------

_SCORE = "score.weight"  # GPT2ForSequenceClassification's head: nn.Linear(D, K, bias=False), (K, D)
_OUR_BODY, _OUR_SCORE = "gpt.", "head.linear.weight"  # GPTForSequenceClassification: the GPT `gpt`, the `head`


def sequence_classification_state_dict_from_hf(
    hf_state_dict: Mapping[str, Tensor], config: GPTConfig, *, strict: bool = True
) -> tuple[dict[str, Tensor], LoadResult]:
    """A Hugging Face ``GPT2ForSequenceClassification`` state dict -> (our ``GPTForSequenceClassification``'s, result).

    ``transformer.*`` converts as in :func:`state_dict_from_hf` (our keys under ``gpt.``); ``score.weight`` (K, D)
    -> ``head.linear.weight``, as it is (both ``nn.Linear``). Their model has no LM head, so the config must be
    tied (``tie_head=True``, GPT-2's default): our ``gpt.lm_head.weight`` is then the token embedding.
    """
    c = _check_config(config)
    if _SCORE not in hf_state_dict:
        raise ValueError(f"the state dict has no {_SCORE!r}: it is not a GPT2ForSequenceClassification's")
    if not c.tie_head:
        raise ValueError("GPT2ForSequenceClassification has no lm_head to load an untied head from; use tie_head=True")
    score = hf_state_dict[_SCORE]
    if score.dim() != 2 or score.shape[1] != c.d_model:
        raise ValueError(f"{_SCORE} has shape {tuple(score.shape)}, expected (n_labels, d_model={c.d_model})")
    body, result = state_dict_from_hf({k: v for k, v in hf_state_dict.items() if k != _SCORE}, c, strict=strict)
    state = {_OUR_BODY + key: value for key, value in body.items()}
    state[_OUR_SCORE] = score
    return state, result


def sequence_classification_state_dict_to_hf(state_dict: Mapping[str, Tensor], config: GPTConfig) -> dict[str, Tensor]:
    """Our ``GPTForSequenceClassification``'s state dict -> one that ``GPT2ForSequenceClassification`` loads with
    strict=True (``transformer.*`` and ``score.weight``, no ``lm_head``). Detached contiguous copies."""
    _hf.require_keys(state_dict, [_OUR_SCORE], "GPTForSequenceClassification")
    body = {key[len(_OUR_BODY) :]: value for key, value in state_dict.items() if key.startswith(_OUR_BODY)}
    out = state_dict_to_hf(body, config)
    del out["lm_head.weight"]
    out[_SCORE] = state_dict[_OUR_SCORE].detach().clone().contiguous()
    return out


# ---- configs and folders --------------------------------------------------------------------------------

# Hugging Face GPT2Config field -> GPTConfig field
_CONFIG_FIELDS = (
    ("vocab_size", "vocab_size"),
    ("n_embd", "d_model"),
    ("n_head", "n_heads"),
    ("n_layer", "n_layers"),
    ("n_positions", "max_len"),
    ("resid_pdrop", "dropout"),
    ("embd_pdrop", "embedding_dropout"),
    ("attn_pdrop", "attention_dropout"),
    ("layer_norm_epsilon", "layer_norm_eps"),
)


def config_from_hf(hf_config: Mapping) -> GPTConfig:
    """A Hugging Face GPT-2 ``config.json`` (as a dict) -> :class:`GPTConfig`; ValueError for what we cannot run.

    ``n_inner`` None means 4·D. ``activation_function`` must be ``"gelu_new"`` (tanh GELU) — ``"gelu_pytorch_tanh"``
    is the same function; ``scale_attn_weights`` must be true and ``scale_attn_by_inverse_layer_idx`` false.
    ``tie_word_embeddings`` (default true) becomes ``tie_head``; ``pad_token_id`` becomes ``pad_id``.
    """
    hf = hf_config
    if not isinstance(hf, Mapping):
        raise TypeError(f"the config must be a mapping (the parsed config.json), got {type(hf).__name__}")
    if hf.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"config.json has model_type={hf['model_type']!r}; only 'gpt2' checkpoints are supported")
    missing = [theirs for theirs, _ in _CONFIG_FIELDS if theirs not in hf]
    if missing:
        raise ValueError(f"config.json lacks the GPT-2 field(s) {missing}")
    if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(
            f"config.json has activation_function={hf['activation_function']!r}; GPT-2 here uses the tanh GELU "
            "('gelu_new')"
        )
    if not hf.get("scale_attn_weights", True) or hf.get("scale_attn_by_inverse_layer_idx", False):
        raise ValueError("only the standard 1/√Dh attention scaling is supported (scale_attn_weights=True)")
    if hf.get("add_cross_attention", False):
        raise ValueError("add_cross_attention=True (a GPT-2 decoder with cross-attention) is not supported")
    fields = {ours: hf[theirs] for theirs, ours in _CONFIG_FIELDS}
    fields["d_ff"] = hf.get("n_inner") or 4 * hf["n_embd"]
    fields["tie_head"] = bool(hf.get("tie_word_embeddings", True))
    return GPTConfig(**fields, **_hf.optional_fields(hf))


def config_to_hf(config: GPTConfig) -> dict:
    """:class:`GPTConfig` -> the keyword arguments of ``transformers.GPT2Config`` (and a config.json)."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    out = {theirs: getattr(config, ours) for theirs, ours in _CONFIG_FIELDS}
    out.update(
        model_type="gpt2",
        n_inner=config.d_ff,
        activation_function="gelu_new",
        initializer_range=config.initializer_range,
        tie_word_embeddings=config.tie_head,
    )
    if config.pad_id is not None:
        out["pad_token_id"] = config.pad_id
    return out


def read_pretrained(path: str | os.PathLike) -> tuple[GPTConfig, dict[str, Tensor]]:
    """(config, our GPT's state dict) of a local Hugging Face GPT-2 folder (``config.json`` + ``model.safetensors``).

    Converted strictly. No network access: ``path`` must be a folder on disk. Pickle weights
    (``pytorch_model.bin``) are refused, as in :func:`interop.hf_bert.read_pretrained`.
    """
    return _hf.read_pretrained(path, config_from_hf, state_dict_from_hf)
