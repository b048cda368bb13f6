r"""Converters between our :class:`models.gpt.GPT` and Hugging Face ``transformers`` GPT-2 checkpoints.

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
from torch import Tensor, nn

from ..config import GPTConfig
from ..models.gpt import GPT
from .hf_bert import LoadResult, _read_hf_config, _read_safetensors

__all__ = [
    "config_from_hf",
    "config_to_hf",
    "load_hf_gpt2_state_dict",
    "to_hf_gpt2_state_dict",
    "from_hf_model",
    "from_pretrained",
    "LoadResult",
]

_PREFIX = "transformer."
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers saved by older versions


def check_gpt_family(model: nn.Module, family: str, preset: str, **wanted) -> GPTConfig:
    """The config of ``model`` if it is a GPT whose fields match ``wanted``; a clear error naming the preset if not."""
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a GPT, got {type(model).__name__}")
    c = model.config
    wrong = {name: getattr(c, name) for name, value in wanted.items() if getattr(c, name) != value}
    if wrong:
        raise ValueError(
            f"a {family} checkpoint needs a GPT with {wanted}; this model has {wrong} (use GPTConfig.{preset}() or "
            "config_from_hf)"
        )
    return c


def _check_model(model: nn.Module) -> GPTConfig:
    return check_gpt_family(
        model, "GPT-2", "gpt2_small", positional="learned", norm="layer", activation="gelu_tanh", bias=True
    )


def _hf_keys(n_layers: int, prefix: str, tied: bool) -> list[str]:
    """Every Hugging Face key of a GPT-2 state dict, in order (``lm_head.weight`` only when it has a prefix)."""
    keys = [f"{prefix}wte.weight", f"{prefix}wpe.weight"]
    for i in range(n_layers):
        for name in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            keys += [f"{prefix}h.{i}.{name}.weight", f"{prefix}h.{i}.{name}.bias"]
    keys += [f"{prefix}ln_f.weight", f"{prefix}ln_f.bias"]
    if prefix and not tied:
        keys.append("lm_head.weight")
    return keys


def _from_hf(state: Mapping[str, Tensor], n_layers: int, d_model: int, prefix: str) -> dict[str, Tensor]:
    """Hugging Face tensors -> our keys (Conv1D weights transposed, c_attn cut into q, k, v)."""
    out = {
        "token.weight": state[f"{prefix}wte.weight"],
        "position.weight": state[f"{prefix}wpe.weight"],
        "decoder.final_norm.weight": state[f"{prefix}ln_f.weight"],
        "decoder.final_norm.bias": state[f"{prefix}ln_f.bias"],
    }
    for i in range(n_layers):
        theirs, ours = f"{prefix}h.{i}.", f"decoder.layers.{i}."
        for hf_norm, our_norm in (("ln_1", "norm1"), ("ln_2", "norm2")):
            for p in ("weight", "bias"):
                out[f"{ours}{our_norm}.{p}"] = state[f"{theirs}{hf_norm}.{p}"]
        # c_attn: x (…, D) · W (D, 3D) + b (3D,); output columns [0, D) are q, [D, 2D) k, [2D, 3D) v.
        w_qkv = state[f"{theirs}attn.c_attn.weight"]  # (D, 3D), Conv1D orientation (in, out)
        b_qkv = state[f"{theirs}attn.c_attn.bias"]  # (3D,)
        if tuple(w_qkv.shape) != (d_model, 3 * d_model):
            raise ValueError(
                f"{theirs}attn.c_attn.weight has shape {tuple(w_qkv.shape)}, expected (D, 3D) = "
                f"({d_model}, {3 * d_model}) (is the config the checkpoint's?)"
            )
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            cols = slice(j * d_model, (j + 1) * d_model)
            out[f"{ours}self_attn.{proj}.weight"] = w_qkv[:, cols].T  # (D, D) in -> out, transposed to (out, in)
            out[f"{ours}self_attn.{proj}.bias"] = b_qkv[cols]
        for hf_proj, our_proj in (
            ("attn.c_proj", "self_attn.out_proj"),
            ("mlp.c_fc", "ff.w1"),
            ("mlp.c_proj", "ff.w2"),
        ):
            out[f"{ours}{our_proj}.weight"] = state[f"{theirs}{hf_proj}.weight"].T  # (in, out) -> (out, in)
            out[f"{ours}{our_proj}.bias"] = state[f"{theirs}{hf_proj}.bias"]
    return out


def copy_converted_(model: nn.Module, converted: Mapping[str, Tensor]) -> None:
    """Copy tensors keyed by our names into ``model`` (cast to its dtype/device), after checking every shape."""
    ours = model.state_dict()
    mismatched = [
        f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(ours[key].shape)}"
        for key, value in converted.items()
        if tuple(value.shape) != tuple(ours[key].shape)
    ]
    if mismatched:
        raise ValueError("tensor shapes do not match (is the config the checkpoint's?):\n  " + "\n  ".join(mismatched))
    with torch.no_grad():
        for key, value in converted.items():
            target = ours[key]  # shares storage with the parameter (a tied matrix is written twice, equally)
            target.copy_(value.to(device=target.device, dtype=target.dtype))


def load_hf_gpt2_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], *, strict: bool = True) -> LoadResult:
    """Copy a Hugging Face GPT-2 state dict (``GPT2LMHeadModel`` or ``GPT2Model``) into our ``model``.

    The config must match the checkpoint (:func:`config_from_hf`). A tied model refuses a checkpoint whose
    ``lm_head.weight`` differs from ``wte``; an untied model (``tie_head=False``) takes ``lm_head.weight`` and
    needs it. Missing keys are an error (a partial GPT-2 cannot run); with ``strict`` (default) unexpected keys
    are an error too, otherwise they are returned. Nothing is copied unless everything checks out.
    """
    c = _check_model(model)
    prefix = _PREFIX if f"{_PREFIX}wte.weight" in state_dict else ""
    expected = _hf_keys(c.n_layers, prefix, c.tie_head)
    if not c.tie_head and "lm_head.weight" not in expected:  # a bare GPT2Model has no head to read
        expected.append("lm_head.weight")
    used = {k for k in state_dict if k.endswith(_BUFFER_SUFFIXES) and k not in expected}
    if c.tie_head and "lm_head.weight" in state_dict:
        used.add("lm_head.weight")
        if not torch.equal(state_dict["lm_head.weight"], state_dict.get(f"{prefix}wte.weight", torch.empty(0))):
            raise ValueError(
                "lm_head.weight differs from wte.weight: this checkpoint's head is not tied to the token embedding; "
                "build the model with tie_head=False (config_from_hf reads tie_word_embeddings)"
            )
    missing = [k for k in expected if k not in state_dict]
    unexpected = sorted(set(state_dict) - set(expected) - used)
    if missing or (strict and unexpected):
        raise ValueError(
            f"the state dict does not match GPT(n_layers={c.n_layers}, tie_head={c.tie_head}) as GPT-2:\n"
            f"  missing keys ({len(missing)}): {missing}\n"
            f"  unexpected keys ({len(unexpected)}): {unexpected}"
        )
    converted = _from_hf(state_dict, c.n_layers, c.d_model, prefix)
    if not c.tie_head:
        converted["lm_head.weight"] = state_dict["lm_head.weight"]
    copy_converted_(model, converted)
    return LoadResult([], unexpected)


def to_hf_gpt2_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Our GPT -> a ``GPT2LMHeadModel`` state dict (loads with strict=True; ``lm_head.weight`` always present,
    equal to ``wte`` when tied, as their ``state_dict()`` lists it). Tensors are detached contiguous copies."""
    c = _check_model(model)
    ours = {k: v.detach() for k, v in model.state_dict().items()}
    p = _PREFIX
    out = {
        f"{p}wte.weight": ours["token.weight"],
        f"{p}wpe.weight": ours["position.weight"],
    }
    for i in range(c.n_layers):
        theirs, mine = f"{p}h.{i}.", f"decoder.layers.{i}."
        for hf_norm, our_norm in (("ln_1", "norm1"), ("ln_2", "norm2")):
            for q in ("weight", "bias"):
                out[f"{theirs}{hf_norm}.{q}"] = ours[f"{mine}{our_norm}.{q}"]
        projs = ("q_proj", "k_proj", "v_proj")
        w = torch.cat([ours[f"{mine}self_attn.{proj}.weight"] for proj in projs])  # 3 × (D, D) -> (3D, D)
        out[f"{theirs}attn.c_attn.weight"] = w.T  # (3D, D) -> (D, 3D), Conv1D orientation
        out[f"{theirs}attn.c_attn.bias"] = torch.cat([ours[f"{mine}self_attn.{proj}.bias"] for proj in projs])
        for hf_proj, our_proj in (
            ("attn.c_proj", "self_attn.out_proj"),
            ("mlp.c_fc", "ff.w1"),
            ("mlp.c_proj", "ff.w2"),
        ):
            out[f"{theirs}{hf_proj}.weight"] = ours[f"{mine}{our_proj}.weight"].T
            out[f"{theirs}{hf_proj}.bias"] = ours[f"{mine}{our_proj}.bias"]
    out[f"{p}ln_f.weight"] = ours["decoder.final_norm.weight"]
    out[f"{p}ln_f.bias"] = ours["decoder.final_norm.bias"]
    out["lm_head.weight"] = ours["lm_head.weight"]
    return {k: v.clone().contiguous() for k, v in out.items()}


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


def config_from_hf(hf: Mapping) -> GPTConfig:
    """A Hugging Face GPT-2 ``config.json`` (as a dict) -> :class:`GPTConfig`; ValueError for what we cannot run.

    ``n_inner`` None means 4·D. ``activation_function`` must be ``"gelu_new"`` (tanh GELU) — ``"gelu_pytorch_tanh"``
    is the same function; ``scale_attn_weights`` must be true and ``scale_attn_by_inverse_layer_idx`` false.
    ``tie_word_embeddings`` (default true) becomes ``tie_head``; ``pad_token_id`` becomes ``pad_id``.
    """
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
    if "initializer_range" in hf:
        fields["initializer_range"] = hf["initializer_range"]
    if hf.get("pad_token_id") is not None:
        fields["pad_id"] = hf["pad_token_id"]
    return GPTConfig(**fields)


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


def from_hf_model(hf_model: nn.Module) -> GPT:
    """A live ``transformers`` GPT-2 model -> our GPT with the same config and weights, in eval mode, float32."""
    config = config_from_hf(hf_model.config.to_dict())
    model = GPT(config)
    load_hf_gpt2_state_dict(model, hf_model.state_dict())
    return model.eval()


def from_pretrained(path: str | os.PathLike, *, dtype: torch.dtype | None = None) -> GPT:
    """Build our GPT from a local Hugging Face GPT-2 folder (``config.json`` + ``model.safetensors``), in eval mode.

    ``dtype`` defaults to float32. No network access: ``path`` must be a folder on disk. Pickle weights
    (``pytorch_model.bin``) are refused, as in :func:`interop.hf_bert.from_pretrained`.
    """
    folder, hf_config = _read_hf_config(path)
    model = GPT(config_from_hf(hf_config)).to(torch.float32 if dtype is None else dtype)
    load_hf_gpt2_state_dict(model, _read_safetensors(folder))
    return model.eval()
