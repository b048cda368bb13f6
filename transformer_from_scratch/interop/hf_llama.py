r"""Converters between our Llama-style :class:`models.gpt.GPT` and Hugging Face ``LlamaForCausalLM`` checkpoints.

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
each rotated pair holds the same two numbers; the converter does that permutation when the model asks for it.
Scores q·k are sums over all Dh dimensions, so permuting q and k alike leaves them unchanged.

Grouped-query attention (``num_key_value_heads`` < ``num_attention_heads``) is not implemented and is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..config import GPTConfig
from ..models.gpt import GPT
from .hf_bert import LoadResult, _read_hf_config, _read_safetensors
from .hf_gpt2 import check_gpt_family, copy_converted_

__all__ = [
    "llama_key_pairs",
    "rope_row_permutation",
    "config_from_hf",
    "config_to_hf",
    "load_hf_llama_state_dict",
    "to_hf_llama_state_dict",
    "from_hf_model",
    "from_pretrained",
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


def _check_model(model: nn.Module) -> GPTConfig:
    return check_gpt_family(
        model, "Llama", "llama_tiny", positional="rope", norm="rms", activation="swiglu", bias=False
    )


def llama_key_pairs(n_layers: int, *, tie_head: bool = False) -> list[tuple[str, str]]:
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


def load_hf_llama_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], *, strict: bool = True) -> LoadResult:
    """Copy a Hugging Face ``LlamaForCausalLM`` state dict into our Llama-style ``model``.

    Missing keys are an error; with ``strict`` (default) unexpected keys too, otherwise they are returned.
    A tied model refuses an ``lm_head.weight`` that differs from the embedding. With
    ``rope_convention="interleaved"`` the q/k rows are permuted (see the module docstring).
    """
    c = _check_model(model)
    pairs = llama_key_pairs(c.n_layers, tie_head=c.tie_head)
    used = {k for k in _BUFFERS if k in state_dict}
    if c.tie_head and "lm_head.weight" in state_dict:
        used.add("lm_head.weight")
        if not torch.equal(state_dict["lm_head.weight"], state_dict.get("model.embed_tokens.weight", torch.empty(0))):
            raise ValueError(
                "lm_head.weight differs from model.embed_tokens.weight: this checkpoint's head is untied; build "
                "the model with tie_head=False (config_from_hf reads tie_word_embeddings)"
            )
    missing = [theirs for theirs, _ in pairs if theirs not in state_dict]
    unexpected = sorted(set(state_dict) - {theirs for theirs, _ in pairs} - used)
    if missing or (strict and unexpected):
        raise ValueError(
            f"the state dict does not match GPT(n_layers={c.n_layers}, tie_head={c.tie_head}) as Llama:\n"
            f"  missing keys ({len(missing)}): {missing}\n"
            f"  unexpected keys ({len(unexpected)}): {unexpected}"
        )
    perm = rope_row_permutation(c.n_heads, c.d_head) if c.rope_convention == "interleaved" else None
    converted = {}
    for theirs, ours in pairs:
        value = state_dict[theirs]
        if perm is not None and ours.endswith(_ROTATED):
            value = value[perm]  # (H·Dh, D): rows reordered within every head
        converted[ours] = value
    copy_converted_(model, converted)
    return LoadResult([], unexpected)


def to_hf_llama_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Our Llama-style GPT -> a ``LlamaForCausalLM`` state dict (``lm_head.weight`` always present, as their
    ``state_dict()`` lists it). An interleaved-RoPE model has its q/k rows permuted back to the half layout."""
    c = _check_model(model)
    ours = {k: v.detach() for k, v in model.state_dict().items()}
    inverse = torch.argsort(rope_row_permutation(c.n_heads, c.d_head)) if c.rope_convention == "interleaved" else None
    out = {}
    for theirs, mine in llama_key_pairs(c.n_layers, tie_head=False):
        value = ours[mine]
        if inverse is not None and mine.endswith(_ROTATED):
            value = value[inverse]
        out[theirs] = value.clone().contiguous()
    return out


# ---- configs and folders --------------------------------------------------------------------------------


def _rope_theta(hf: Mapping) -> float:
    """RoPE base: ``rope_parameters["rope_theta"]`` (transformers ≥ 5) or ``rope_theta`` (older config.json)."""
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    rope_type = params.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    if rope_type != "default":
        raise ValueError(f"config.json asks for rope_type={rope_type!r}; only plain RoPE ('default') is supported")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def config_from_hf(hf: Mapping, *, rope_convention: str = "half") -> GPTConfig:
    """A Hugging Face Llama ``config.json`` (as a dict) -> :class:`GPTConfig`; ValueError for what we cannot run.

    ``rope_convention="interleaved"`` builds a model in that layout (the weights are then permuted on load).
    """
    if not isinstance(hf, Mapping):
        raise TypeError(f"the config must be a mapping (the parsed config.json), got {type(hf).__name__}")
    if hf.get("model_type", "llama") != "llama":
        raise ValueError(f"config.json has model_type={hf['model_type']!r}; only 'llama' checkpoints are supported")
    required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    missing = [name for name in required if name not in hf]
    if missing:
        raise ValueError(f"config.json lacks the Llama field(s) {missing}")
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
    dropout = float(hf.get("attention_dropout", 0.0))
    fields = dict(
        vocab_size=hf["vocab_size"],
        d_model=d_model,
        n_heads=n_heads,
        n_layers=hf["num_hidden_layers"],
        d_ff=hf["intermediate_size"],
        max_len=hf.get("max_position_embeddings", 2048),
        dropout=0.0,
        embedding_dropout=0.0,
        attention_dropout=dropout,
        activation="swiglu",
        norm="rms",
        layer_norm_eps=hf.get("rms_norm_eps", 1e-6),
        positional="rope",
        rope_theta=_rope_theta(hf),
        rope_convention=rope_convention,
        bias=False,
        tie_head=bool(hf.get("tie_word_embeddings", False)),
    )
    if "initializer_range" in hf:
        fields["initializer_range"] = hf["initializer_range"]
    if hf.get("pad_token_id") is not None:
        fields["pad_id"] = hf["pad_token_id"]
    return GPTConfig(**fields)


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


def from_hf_model(hf_model: nn.Module, *, rope_convention: str = "half") -> GPT:
    """A live ``transformers`` Llama model -> our GPT with the same config and weights, in eval mode, float32."""
    model = GPT(config_from_hf(hf_model.config.to_dict(), rope_convention=rope_convention))
    load_hf_llama_state_dict(model, hf_model.state_dict())
    return model.eval()


def from_pretrained(path: str | os.PathLike, *, dtype: torch.dtype | None = None, rope_convention: str = "half") -> GPT:
    """Build our GPT from a local Hugging Face Llama folder (``config.json`` + ``model.safetensors``), in eval mode."""
    folder, hf_config = _read_hf_config(path)
    model = GPT(config_from_hf(hf_config, rope_convention=rope_convention)).to(
        torch.float32 if dtype is None else dtype
    )
    load_hf_llama_state_dict(model, _read_safetensors(folder))
    return model.eval()
