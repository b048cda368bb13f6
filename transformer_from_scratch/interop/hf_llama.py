r"""Converters between our Llama-style :class:`models.gpt.GPT` and Hugging Face ``LlamaForCausalLM`` checkpoints, as
data: :func:`config_from_hf` / :func:`config_to_hf`, :func:`state_dict_from_hf` / :func:`state_dict_to_hf` and
:func:`read_pretrained` for a local folder (``GPT.from_pretrained`` and ``GPT.from_hf`` call them).

A Llama decoder is our GPT with ``positional="rope"``, ``norm="rms"``, ``activation="swiglu"``, ``bias=False`` and
(usually) ``tie_head=False`` — see ``GPTConfig.llama_tiny()``. Both sides use ``nn.Linear`` orientation, so the
matrices are copied as they are. Key names (theirs -> ours), per block i:

    model.embed_tokens.weight                         -> token.weight                          (V, D)
    model.layers.{i}.input_layernorm.weight           -> decoder.layers.{i}.norm1.weight
    model.layers.{i}.self_attn.{q,k,v}_proj.weight    -> decoder.layers.{i}.self_attn.{q,k,v}_proj.weight
    model.layers.{i}.self_attn.o_proj.weight          -> decoder.layers.{i}.self_attn.out_proj.weight
    model.layers.{i}.post_attention_layernorm.weight  -> decoder.layers.{i}.norm2.weight
    model.layers.{i}.mlp.gate_proj.weight             -> decoder.layers.{i}.ff.w1.weight    silu(gate x) ⊙ up x
    model.layers.{i}.mlp.up_proj.weight               -> decoder.layers.{i}.ff.w3.weight
    model.layers.{i}.mlp.down_proj.weight             -> decoder.layers.{i}.ff.w2.weight
    model.norm.weight                                 -> decoder.final_norm.weight
    lm_head.weight                                    -> lm_head.weight (= embed_tokens when tied)

RoPE layout: Llama rotates the pairs (i, i + Dh/2) of every head ("rotate half"), our ``rope_convention="half"``.
A model with ``rope_convention="interleaved"`` (pairs (2i, 2i + 1)) is the same function once the rows of W_q and
W_k are permuted inside every head — row 2i of ours is their row i, row 2i + 1 their row i + Dh/2 — so that
each rotated pair holds the same two numbers; the converter does that permutation when the config asks for it.
Scores q·k are sums over all Dh dimensions, so permuting q and k alike leaves them unchanged.

Grouped-query attention (``num_key_value_heads`` < ``num_attention_heads``) is not implemented and is refused.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

import torch
from torch import Tensor

from ..config import GPTConfig
from . import _hf
from ._hf import LoadResult

__all__ = [
    "key_pairs",
    "rope_row_permutation",
    "config_from_hf",
    "config_to_hf",
    "state_dict_from_hf",
    "state_dict_to_hf",
    "read_pretrained",
    "LoadResult",
]

_LAYER_RENAMES = (
    ("input_layernorm.weight", "norm1.weight"),
    ("self_attn.q_proj.weight", "self_attn.q_proj.weight"),
    ("self_attn.k_proj.weight", "self_attn.k_proj.weight"),
    ("self_attn.v_proj.weight", "self_attn.v_proj.weight"),
    ("self_attn.o_proj.weight", "self_attn.out_proj.weight"),
    ("post_attention_layernorm.weight", "norm2.weight"),
    ("mlp.gate_proj.weight", "ff.w1.weight"),
    ("mlp.up_proj.weight", "ff.w3.weight"),
    ("mlp.down_proj.weight", "ff.w2.weight"),
)
_ROTATED = ("self_attn.q_proj.weight", "self_attn.k_proj.weight")  # rows to permute for the interleaved layout
_BUFFERS = ("model.rotary_emb.inv_freq",)  # saved by some versions; recomputed here


def _check_config(config: GPTConfig) -> GPTConfig:
    return _hf.check_family(
        config, "Llama", "llama_tiny", positional="rope", norm="rms", activation="swiglu", bias=False
    )


def key_pairs(n_layers: int, *, tie_head: bool = False) -> list[tuple[str, str]]:
    """(Hugging Face key, our key) for every tensor, in state-dict order (no ``lm_head`` when tied)."""
    pairs = [("model.embed_tokens.weight", "token.weight")]
    for i in range(n_layers):
        pairs += [(f"model.layers.{i}.{theirs}", f"decoder.layers.{i}.{ours}") for theirs, ours in _LAYER_RENAMES]
    pairs.append(("model.norm.weight", "decoder.final_norm.weight"))
    if not tie_head:
        pairs.append(("lm_head.weight", "lm_head.weight"))
    return pairs


def rope_row_permutation(n_heads: int, d_head: int) -> Tensor:
    """perm (H·Dh,) with ours_interleaved[r] = theirs_half[perm[r]] for the rows of W_q and W_k.

    Inside head h: our row 2i is their row i, our row 2i + 1 their row i + Dh/2 (i = 0 … Dh/2 - 1).
    The inverse, ``torch.argsort(perm)``, goes back.
    """
    half = d_head // 2
    within = torch.stack([torch.arange(half), torch.arange(half) + half], dim=1).reshape(-1)  # [0, h, 1, h+1, …]
    return torch.cat([h * d_head + within for h in range(n_heads)])  # (H·Dh,)


def _permute_rotated_rows(state: dict[str, Tensor], perm: Tensor) -> dict[str, Tensor]:
    """W_q and W_k (H·Dh, D) with their rows reordered within every head by ``perm``; other tensors unchanged."""
    return {key: value[perm] if key.endswith(_ROTATED) else value for key, value in state.items()}


def state_dict_from_hf(
    hf_state_dict: Mapping[str, Tensor], config: GPTConfig, *, strict: bool = True
) -> tuple[dict[str, Tensor], LoadResult]:
    """A Hugging Face ``LlamaForCausalLM`` state dict -> (our Llama-style GPT's state dict, result).

    Missing keys are an error; with ``strict`` (default) unexpected keys too, otherwise they are listed in the
    :class:`LoadResult`. A tied config refuses an ``lm_head.weight`` that differs from the embedding. With
    ``rope_convention="interleaved"`` the q/k rows are permuted (see the module docstring). The result holds
    every key of ``GPT(config).state_dict()``: load it with ``model.load_state_dict``.
    """
    c = _check_config(config)
    pairs = key_pairs(c.n_layers, tie_head=c.tie_head)
    accounted_for = {k for k in _BUFFERS if k in hf_state_dict}
    if c.tie_head:
        reason = (
            "this checkpoint's head is untied; build the model with tie_head=False (config_from_hf reads "
            "tie_word_embeddings)"
        )
        accounted_for |= _hf.check_tied(hf_state_dict, "lm_head.weight", "model.embed_tokens.weight", reason)
    result = _hf.match_keys(
        hf_state_dict,
        [theirs for theirs, _ in pairs],
        accounted_for,
        described=f"GPT(n_layers={c.n_layers}, tie_head={c.tie_head}) as Llama",
        strict=strict,
        allow_missing=False,
    )
    if c.tie_head:
        pairs.append(("model.embed_tokens.weight", "lm_head.weight"))  # one matrix, listed under both our names
    converted = [(ours, theirs, hf_state_dict[theirs]) for theirs, ours in pairs]
    state = _hf.checked_state_dict(converted, _hf.gpt_state_shapes(c), hf_state_dict)
    if c.rope_convention == "interleaved":
        state = _permute_rotated_rows(state, rope_row_permutation(c.n_heads, c.d_head))
    return state, result


def state_dict_to_hf(state_dict: Mapping[str, Tensor], config: GPTConfig) -> dict[str, Tensor]:
    """Our Llama-style GPT's state dict -> a ``LlamaForCausalLM`` state dict (``lm_head.weight`` always present,
    as their ``state_dict()`` lists it). An interleaved-RoPE config has its q/k rows permuted back to the half
    layout. Tensors are detached contiguous copies."""
    c = _check_config(config)
    pairs = key_pairs(c.n_layers, tie_head=False)
    _hf.require_keys(state_dict, [ours for _, ours in pairs], f"GPT(n_layers={c.n_layers}) as Llama")
    ours = {mine: state_dict[mine].detach() for _, mine in pairs}
    if c.rope_convention == "interleaved":
        ours = _permute_rotated_rows(ours, torch.argsort(rope_row_permutation(c.n_heads, c.d_head)))
    return {theirs: ours[mine].clone().contiguous() for theirs, mine in pairs}


# ---- configs and folders --------------------------------------------------------------------------------


def _rope_theta(hf: Mapping) -> float:
    """RoPE base: ``rope_parameters["rope_theta"]`` (transformers ≥ 5) or ``rope_theta`` (older config.json)."""
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    rope_type = params.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    if rope_type != "default":
        raise ValueError(f"config.json asks for rope_type={rope_type!r}; only plain RoPE ('default') is supported")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def _check_supported(hf: Mapping) -> None:
    """ValueError for the Llama options this model does not implement."""
    d_model, n_heads = hf["hidden_size"], hf["num_attention_heads"]
    kv_heads = hf.get("num_key_value_heads") or n_heads
    if kv_heads != n_heads:
        raise ValueError(
            f"num_key_value_heads={kv_heads} < num_attention_heads={n_heads} is grouped-query attention, which this "
            "model does not implement; only checkpoints with one key/value head per query head are supported"
        )
    if hf.get("head_dim") not in (None, d_model // n_heads):
        raise ValueError(f"head_dim={hf['head_dim']} differs from hidden_size / num_attention_heads; not supported")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"config.json has hidden_act={hf['hidden_act']!r}; Llama's SwiGLU needs 'silu'")
    if hf.get("attention_bias", False) or hf.get("mlp_bias", False):
        raise ValueError("attention_bias / mlp_bias = True are not supported (Llama projections are bias-free)")
    if hf.get("pretraining_tp", 1) != 1:
        raise ValueError(f"pretraining_tp={hf['pretraining_tp']} (sliced projections) is not supported")


def config_from_hf(hf_config: Mapping, *, rope_convention: str = "half") -> GPTConfig:
    """A Hugging Face Llama ``config.json`` (as a dict) -> :class:`GPTConfig`; ValueError for what we cannot run.

    ``rope_convention="interleaved"`` builds a model in that layout (the weights are then permuted on load).
    """
    hf = hf_config
    if not isinstance(hf, Mapping):
        raise TypeError(f"the config must be a mapping (the parsed config.json), got {type(hf).__name__}")
    if hf.get("model_type", "llama") != "llama":
        raise ValueError(f"config.json has model_type={hf['model_type']!r}; only 'llama' checkpoints are supported")
    required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    missing = [name for name in required if name not in hf]
    if missing:
        raise ValueError(f"config.json lacks the Llama field(s) {missing}")
    _check_supported(hf)
    return GPTConfig(
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        n_heads=hf["num_attention_heads"],
        n_layers=hf["num_hidden_layers"],
        d_ff=hf["intermediate_size"],
        max_len=hf.get("max_position_embeddings", 2048),
        dropout=0.0,
        embedding_dropout=0.0,
        attention_dropout=float(hf.get("attention_dropout", 0.0)),
        activation="swiglu",
        norm="rms",
        layer_norm_eps=hf.get("rms_norm_eps", 1e-6),
        positional="rope",
        rope_theta=_rope_theta(hf),
        rope_convention=rope_convention,
        bias=False,
        tie_head=bool(hf.get("tie_word_embeddings", False)),
        **_hf.optional_fields(hf),
    )


def config_to_hf(config: GPTConfig) -> dict:
    """:class:`GPTConfig` -> the keyword arguments of ``transformers.LlamaConfig`` (and a config.json)."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    out = dict(
        model_type="llama",
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        hidden_act="silu",
        max_position_embeddings=config.max_len,
        rms_norm_eps=config.layer_norm_eps,
        rope_parameters={"rope_theta": config.rope_theta, "rope_type": "default"},
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=config.attention_dropout,
        tie_word_embeddings=config.tie_head,
        initializer_range=config.initializer_range,
    )
    if config.pad_id is not None:
        out["pad_token_id"] = config.pad_id
    return out


def read_pretrained(path: str | os.PathLike, *, rope_convention: str = "half") -> tuple[GPTConfig, dict[str, Tensor]]:
    """(config, our GPT's state dict) of a local Hugging Face Llama folder (``config.json`` + ``model.safetensors``),
    converted strictly; ``rope_convention`` as in :func:`config_from_hf`."""
    read_config = functools.partial(config_from_hf, rope_convention=rope_convention)
    return _hf.read_pretrained(path, read_config, state_dict_from_hf)
