r"""Converters between our blocks/stacks and PyTorch's ``nn.TransformerEncoderLayer``,
``nn.TransformerDecoderLayer`` and ``nn.Transformer`` — an oracle nobody on this project wrote.

Key names (theirs -> ours), per layer:

    self_attn.in_proj_weight (3D, D) = cat[W_q; W_k; W_v]   -> self_attn.{q,k,v}_proj.weight (D, D) each
    self_attn.in_proj_bias (3D,)                             -> self_attn.{q,k,v}_proj.bias
    self_attn.out_proj.{weight,bias}                         -> self_attn.out_proj.{weight,bias}
    multihead_attn.* (decoder only)                          -> cross_attn.*
    linear1.* / linear2.*                                    -> ff.w1.* / ff.w2.*
    norm1.* / norm2.* / norm3.*                              -> norm1.* / norm2.* / norm3.*

for a stack (``nn.TransformerEncoder`` / ``nn.TransformerDecoder``): ``layers.{i}.*`` -> ``layers.{i}.*`` and
``norm.*`` -> ``final_norm.*``; and for ``nn.Transformer`` the same under ``encoder.`` and ``decoder.``.

This module reads PyTorch's modules but never imports ours: the state-dict mappings are plain data, and
:func:`block_config_from_torch` / :func:`block_from_torch` / :func:`stack_from_torch` return a
:class:`~config.BlockConfig` and our state dict, which ``EncoderBlock.from_torch``, ``DecoderBlock.from_torch``,
``Encoder.from_torch`` and ``Decoder.from_torch`` build on. The other direction (:func:`to_torch_encoder_layer`,
:func:`to_torch_transformer` …) reads our modules only through their ``config``, ``state_dict()`` and sub-module
names.

Final norms: ``nn.Transformer`` always ends each stack with a LayerNorm, post-LN included, whereas the paper's
post-LN model has none. We reproduce both faithfully: a converted stack gets ``final_norm`` exactly when the
PyTorch stack has a ``norm`` module, and :func:`to_torch_transformer` builds the ``nn.Transformer`` with
``custom_encoder``/``custom_decoder`` stacks whose ``norm`` is ``None`` when ours have no final norm.

Layout: our modules are batch-first; call PyTorch's with ``batch_first=True`` (weights do not depend on it).
Only the options both sides share are supported: LayerNorm with bias, biased projections, ReLU or exact GELU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import BlockConfig

__all__ = [
    "encoder_layer_to_ours",
    "encoder_layer_from_ours",
    "decoder_layer_to_ours",
    "decoder_layer_from_ours",
    "stack_to_ours",
    "transformer_to_ours",
    "transformer_from_ours",
    "block_config_from_torch",
    "block_from_torch",
    "stack_from_torch",
    "ConvertedStack",
    "load_torch_transformer",
    "to_torch_encoder_layer",
    "to_torch_decoder_layer",
    "to_torch_transformer",
]

_QKV = ("q_proj", "k_proj", "v_proj")
_PACKED = (("weight", "in_proj_weight"), ("bias", "in_proj_bias"))  # our parameter name, PyTorch's packed one
# (their sub-module, our sub-module) — parameters named weight/bias on both sides.
_ENCODER_RENAMES = (
    ("self_attn.out_proj", "self_attn.out_proj"),
    ("linear1", "ff.w1"),
    ("linear2", "ff.w2"),
    ("norm1", "norm1"),
    ("norm2", "norm2"),
)
_DECODER_RENAMES = (*_ENCODER_RENAMES, ("multihead_attn.out_proj", "cross_attn.out_proj"), ("norm3", "norm3"))
_ENCODER_ATTENTION = (("self_attn", "self_attn"),)  # attention modules with a packed in_proj
_DECODER_ATTENTION = (*_ENCODER_ATTENTION, ("multihead_attn", "cross_attn"))


# ---- state-dict key mapping (pure; works on any mapping name -> tensor) ----------------------------------


@dataclass
class _KeyMap:
    """How a PyTorch state dict lines up with ours: (their key, our key) of the tensors copied as they are, and
    (their prefix, our prefix) of the attention modules whose packed in_proj (3D, …) is our q/k/v_proj."""

    renamed: list[tuple[str, str]] = field(default_factory=list)
    packed: list[tuple[str, str]] = field(default_factory=list)

    def __add__(self, other: _KeyMap) -> _KeyMap:
        return _KeyMap(self.renamed + other.renamed, self.packed + other.packed)


def _layer_keys(cross: bool, theirs: str = "", ours: str = "") -> _KeyMap:
    """The keys of one encoder layer (or, with ``cross``, decoder layer) under the prefixes ``theirs``/``ours``."""
    renames = _DECODER_RENAMES if cross else _ENCODER_RENAMES
    attentions = _DECODER_ATTENTION if cross else _ENCODER_ATTENTION
    return _KeyMap(
        [(f"{theirs}{t}.{p}", f"{ours}{o}.{p}") for t, o in renames for p in ("weight", "bias")],
        [(theirs + t, ours + o) for t, o in attentions],
    )


def _stack_keys(n_layers: int, cross: bool, final_norm: bool, theirs: str = "", ours: str = "") -> _KeyMap:
    """The keys of a stack: its layers, and PyTorch's ``norm`` = our ``final_norm`` when there is one."""
    keys = sum((_layer_keys(cross, f"{theirs}layers.{i}.", f"{ours}layers.{i}.") for i in range(n_layers)), _KeyMap())
    if final_norm:
        keys.renamed += [(f"{theirs}norm.{p}", f"{ours}final_norm.{p}") for p in ("weight", "bias")]
    return keys


def _to_ours(sd: Mapping[str, Tensor], keys: _KeyMap) -> dict[str, Tensor]:
    out = {ours: sd[theirs] for theirs, ours in keys.renamed}
    for theirs, ours in keys.packed:
        for p, packed in _PACKED:
            chunks = sd[f"{theirs}.{packed}"].chunk(3, dim=0)  # (3D, D) -> 3 × (D, D); (3D,) -> 3 × (D,)
            out.update({f"{ours}.{name}.{p}": chunk for name, chunk in zip(_QKV, chunks)})
    return out


def _from_ours(sd: Mapping[str, Tensor], keys: _KeyMap) -> dict[str, Tensor]:
    out = {theirs: sd[ours] for theirs, ours in keys.renamed}
    for theirs, ours in keys.packed:
        for p, packed in _PACKED:
            out[f"{theirs}.{packed}"] = torch.cat([sd[f"{ours}.{name}.{p}"] for name in _QKV])  # -> (3D, D) / (3D,)
    return out


def encoder_layer_to_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``nn.TransformerEncoderLayer.state_dict()`` -> keys of :class:`~blocks.EncoderBlock`."""
    return _to_ours(sd, _layer_keys(cross=False))


def encoder_layer_from_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """:class:`~blocks.EncoderBlock` state dict -> keys of ``nn.TransformerEncoderLayer``."""
    return _from_ours(sd, _layer_keys(cross=False))


def decoder_layer_to_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``nn.TransformerDecoderLayer.state_dict()`` -> keys of :class:`~blocks.DecoderBlock`."""
    return _to_ours(sd, _layer_keys(cross=True))


def decoder_layer_from_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """:class:`~blocks.DecoderBlock` state dict -> keys of ``nn.TransformerDecoderLayer``."""
    return _from_ours(sd, _layer_keys(cross=True))


def _n_layers(sd: Mapping[str, Tensor], prefix: str = "") -> int:
    start = f"{prefix}layers."
    indices = {int(k[len(start) :].split(".")[0]) for k in sd if k.startswith(start)}
    return max(indices) + 1 if indices else 0


def stack_to_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``nn.TransformerEncoder`` / ``nn.TransformerDecoder`` state dict -> keys of our
    :class:`~stacks.Encoder` / :class:`~stacks.Decoder` (a decoder is recognised by its cross-attention keys)."""
    cross = "layers.0.multihead_attn.in_proj_weight" in sd
    return _to_ours(sd, _stack_keys(_n_layers(sd), cross, final_norm="norm.weight" in sd))


def _transformer_keys(sd: Mapping[str, Tensor], final_norm_name: str) -> _KeyMap:
    """Both stacks' keys; a stack has a final norm when ``sd`` holds ``{stack}.{final_norm_name}.weight``."""
    keys = _KeyMap()
    for stack, cross in (("encoder", False), ("decoder", True)):
        final_norm = f"{stack}.{final_norm_name}.weight" in sd
        keys += _stack_keys(_n_layers(sd, f"{stack}."), cross, final_norm, f"{stack}.", f"{stack}.")
    return keys


def transformer_to_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``nn.Transformer.state_dict()`` -> keys of our ``encoder``/``decoder`` stacks (``encoder.layers.0…``).

    ``encoder.norm``/``decoder.norm`` become ``encoder.final_norm``/``decoder.final_norm`` when present.
    """
    return _to_ours(sd, _transformer_keys(sd, "norm"))


def transformer_from_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our ``encoder.*``/``decoder.*`` keys (e.g. of an EncoderDecoder) -> keys of ``nn.Transformer``.

    Other entries (embeddings, generator) have no counterpart in ``nn.Transformer`` and are left out.
    """
    return _from_ours(sd, _transformer_keys(sd, "final_norm"))


# ---- our configs and state dicts from PyTorch modules ----------------------------------------------------


def _activation_name(layer: nn.Module) -> str:
    act = layer.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        return "gelu"
    raise ValueError(f"only ReLU and exact GELU activations convert to our blocks, got {act!r}")


def block_config_from_torch(layer: nn.Module) -> BlockConfig:
    """Our block config that reproduces a PyTorch ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer``."""
    if layer.linear1.bias is None or layer.self_attn.in_proj_bias is None or layer.norm1.bias is None:
        raise ValueError("layers built with bias=False are not supported: our LayerNorm always has a bias")
    return BlockConfig(
        d_model=layer.self_attn.embed_dim,
        n_heads=layer.self_attn.num_heads,
        d_ff=layer.linear1.out_features,
        dropout=layer.dropout1.p,  # residual dropout
        attention_dropout=layer.self_attn.dropout,  # on the attention weights
        activation_dropout=layer.dropout.p,  # between linear1 and linear2
        activation=_activation_name(layer),
        norm_first=layer.norm_first,
        layer_norm_eps=layer.norm1.eps,
    )


def block_from_torch(layer: nn.Module) -> tuple[BlockConfig, dict[str, Tensor]]:
    """(block config, our block's state dict) of an ``nn.TransformerEncoderLayer`` or ``nn.TransformerDecoderLayer``:
    what ``EncoderBlock.from_torch`` / ``DecoderBlock.from_torch`` build and load."""
    to_ours = decoder_layer_to_ours if isinstance(layer, nn.TransformerDecoderLayer) else encoder_layer_to_ours
    return block_config_from_torch(layer), to_ours(layer.state_dict())


class ConvertedStack(NamedTuple):
    """What our stack needs to equal a PyTorch one: ``Encoder(config, n_layers, final_norm=final_norm)`` (or
    ``Decoder``) loaded with ``state_dict``."""

    config: BlockConfig
    n_layers: int
    final_norm: bool
    state_dict: dict[str, Tensor]


def stack_from_torch(stack: nn.Module) -> ConvertedStack:
    """An ``nn.TransformerEncoder`` / ``nn.TransformerDecoder`` as our stack's parts (``final_norm`` iff
    ``stack.norm`` is set): what ``Encoder.from_torch`` / ``Decoder.from_torch`` build and load."""
    final_norm = stack.norm is not None
    if final_norm and not isinstance(stack.norm, nn.LayerNorm):
        raise ValueError(f"the stack's final norm must be an nn.LayerNorm, got {type(stack.norm).__name__}")
    config = block_config_from_torch(stack.layers[0])
    return ConvertedStack(config, len(stack.layers), final_norm, stack_to_ours(stack.state_dict()))


def load_torch_transformer(model: nn.Module, transformer: nn.Transformer) -> nn.Module:
    """Copy the encoder and decoder weights of ``transformer`` into ``model`` (e.g. an EncoderDecoder).

    ``model.encoder``/``model.decoder`` must have the same shapes and, for a faithful copy, a final norm
    exactly where ``transformer`` has one (``TransformerConfig(final_norm=True)`` for a default
    ``nn.Transformer``). Embeddings and the generator are untouched: ``nn.Transformer`` has none. ``model`` is
    only read through its ``encoder``/``decoder`` attributes, their ``final_norm`` and ``load_state_dict``.
    """
    ours = transformer_to_ours(transformer.state_dict())
    for stack in ("encoder", "decoder"):
        theirs_norm = getattr(transformer, stack).norm is not None
        ours_norm = getattr(model, stack).final_norm is not None
        if theirs_norm != ours_norm:
            raise ValueError(
                f"transformer.{stack} {'has' if theirs_norm else 'has no'} final norm but model.{stack} "
                f"{'has' if ours_norm else 'has none'}; build the model with final_norm={theirs_norm}"
            )
        module = getattr(model, stack)
        prefix = stack + "."
        module.load_state_dict({k[len(prefix) :]: v for k, v in ours.items() if k.startswith(prefix)})
    return model


# ---- building PyTorch modules from ours (read through config, state_dict() and sub-module names) -------------


def _like(module: nn.Module, reference: nn.Module) -> nn.Module:
    p = next(reference.parameters())
    return module.to(device=p.device, dtype=p.dtype)


def _torch_options(block: nn.Module) -> dict:
    c = block.config  # our BlockConfig
    if c.activation not in ("relu", "gelu"):
        raise ValueError(f"nn.Transformer layers support relu and gelu, not activation={c.activation!r}")
    if c.norm != "layer":
        raise ValueError(f"nn.Transformer layers use LayerNorm; a block with norm={c.norm!r} does not convert")
    if not c.bias or block.self_attn.rotary is not None:
        raise ValueError("only blocks with bias=True and no rotary embedding convert to nn.Transformer layers")
    return dict(
        d_model=c.d_model,
        nhead=c.n_heads,
        dim_feedforward=c.d_ff,
        dropout=c.dropout,
        activation=c.activation,
        layer_norm_eps=c.layer_norm_eps,
        batch_first=True,
        norm_first=c.norm_first,
    )


def _set_dropouts(layer: nn.Module, config: BlockConfig) -> None:
    """nn.Transformer layers take one dropout p; ours has three — set the other two afterwards."""
    layer.self_attn.dropout = config.attention_dropout
    if hasattr(layer, "multihead_attn"):
        layer.multihead_attn.dropout = config.attention_dropout
    layer.dropout.p = config.activation_dropout


def to_torch_encoder_layer(block: nn.Module) -> nn.TransformerEncoderLayer:
    """A new ``nn.TransformerEncoderLayer(batch_first=True)`` equal to ``block`` (our EncoderBlock)."""
    layer = _like(nn.TransformerEncoderLayer(**_torch_options(block)), block)
    layer.load_state_dict(encoder_layer_from_ours(block.state_dict()))
    _set_dropouts(layer, block.config)
    return layer.train(block.training)


def to_torch_decoder_layer(block: nn.Module) -> nn.TransformerDecoderLayer:
    """A new ``nn.TransformerDecoderLayer(batch_first=True)`` equal to ``block`` (our DecoderBlock)."""
    layer = _like(nn.TransformerDecoderLayer(**_torch_options(block)), block)
    layer.load_state_dict(decoder_layer_from_ours(block.state_dict()))
    _set_dropouts(layer, block.config)
    return layer.train(block.training)


def _torch_final_norm(stack: nn.Module) -> nn.LayerNorm | None:
    """A LayerNorm like our stack's final norm, or None when it has none."""
    c = stack.config
    return None if stack.final_norm is None else nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)


def to_torch_transformer(model: nn.Module) -> nn.Transformer:
    """A new ``nn.Transformer(batch_first=True)`` equal to ``model.encoder`` + ``model.decoder``.

    Built from ``custom_encoder``/``custom_decoder`` stacks so that a stack without a final norm (the paper's
    post-LN model) stays without one, instead of gaining ``nn.Transformer``'s default final LayerNorm.
    The encoder stack is built with ``enable_nested_tensor=False``, so padded positions are computed like
    every other position (the nested-tensor fast path would return zeros there).
    """
    enc_opts = _torch_options(model.encoder.layers[0])
    dec_opts = _torch_options(model.decoder.layers[0])
    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(**enc_opts),
        num_layers=len(model.encoder.layers),
        norm=_torch_final_norm(model.encoder),
        enable_nested_tensor=False,
    )
    decoder = nn.TransformerDecoder(
        nn.TransformerDecoderLayer(**dec_opts),
        num_layers=len(model.decoder.layers),
        norm=_torch_final_norm(model.decoder),
    )
    transformer = nn.Transformer(
        d_model=enc_opts["d_model"],
        nhead=enc_opts["nhead"],
        custom_encoder=encoder,
        custom_decoder=decoder,
        batch_first=True,
    )
    transformer = _like(transformer, model.encoder)
    # After construction: nn.Transformer.__init__ re-initialises every matrix, custom stacks included.
    transformer.load_state_dict(transformer_from_ours(model.state_dict()))
    for ours_stack, theirs_stack in ((model.encoder, encoder), (model.decoder, decoder)):
        for block, layer in zip(ours_stack.layers, theirs_stack.layers):
            _set_dropouts(layer, block.config)
    return transformer.train(model.training)
