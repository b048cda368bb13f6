r"""Converters between our blocks/stacks and PyTorch's ``nn.TransformerEncoderLayer``,
``nn.TransformerDecoderLayer`` and ``nn.Transformer`` — an oracle nobody on this project wrote.

Key names (theirs -> ours), per layer:

    self_attn.in_proj_weight (3D, D) = cat[W_q; W_k; W_v]   -> self_attn.{q,k,v}_proj.weight (D, D) each
    self_attn.in_proj_bias (3D,)                             -> self_attn.{q,k,v}_proj.bias
    self_attn.out_proj.{weight,bias}                         -> self_attn.out_proj.{weight,bias}
    multihead_attn.* (decoder only)                          -> cross_attn.*
    linear1.* / linear2.*                                    -> ff.w1.* / ff.w2.*
    norm1.* / norm2.* / norm3.*                              -> norm1.* / norm2.* / norm3.*

and for ``nn.Transformer``: ``encoder.layers.{i}.*`` -> ``encoder.layers.{i}.*`` (same for the decoder),
``encoder.norm.*`` / ``decoder.norm.*`` -> ``encoder.final_norm.*`` / ``decoder.final_norm.*``.

Final norms: ``nn.Transformer`` always ends each stack with a LayerNorm, post-LN included, whereas the paper's
post-LN model has none. We reproduce both faithfully: a converted stack gets ``final_norm`` exactly when the
PyTorch stack has a ``norm`` module, and :func:`to_torch_transformer` builds the ``nn.Transformer`` with
``custom_encoder``/``custom_decoder`` stacks whose ``norm`` is ``None`` when ours have no final norm.

Layout: our modules are batch-first; call PyTorch's with ``batch_first=True`` (weights do not depend on it).
Only the options both sides share are supported: LayerNorm with bias, biased projections, ReLU or exact GELU.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..blocks import DecoderBlock, EncoderBlock
from ..config import BlockConfig
from ..stacks import Decoder, Encoder

__all__ = [
    "encoder_layer_to_ours",
    "encoder_layer_from_ours",
    "decoder_layer_to_ours",
    "decoder_layer_from_ours",
    "transformer_to_ours",
    "transformer_from_ours",
    "encoder_block_from_torch",
    "decoder_block_from_torch",
    "encoder_from_torch",
    "decoder_from_torch",
    "load_torch_transformer",
    "to_torch_encoder_layer",
    "to_torch_decoder_layer",
    "to_torch_transformer",
]

_QKV = ("q_proj", "k_proj", "v_proj")
# (their sub-module, our sub-module) — parameters named weight/bias on both sides.
_ENCODER_RENAMES = (("linear1", "ff.w1"), ("linear2", "ff.w2"), ("norm1", "norm1"), ("norm2", "norm2"))
_DECODER_RENAMES = (*_ENCODER_RENAMES, ("norm3", "norm3"))


# ---- state-dict key mapping (pure; works on any mapping name -> tensor) ----------------------------------


def _attention_to_ours(sd: Mapping[str, Tensor], theirs: str, ours: str, out: dict) -> None:
    w_q, w_k, w_v = sd[f"{theirs}.in_proj_weight"].chunk(3, dim=0)  # (3D, D) -> 3 × (D, D)
    b_q, b_k, b_v = sd[f"{theirs}.in_proj_bias"].chunk(3, dim=0)  # (3D,) -> 3 × (D,)
    for name, w, b in zip(_QKV, (w_q, w_k, w_v), (b_q, b_k, b_v)):
        out[f"{ours}.{name}.weight"], out[f"{ours}.{name}.bias"] = w, b
    for p in ("weight", "bias"):
        out[f"{ours}.out_proj.{p}"] = sd[f"{theirs}.out_proj.{p}"]


def _attention_from_ours(sd: Mapping[str, Tensor], ours: str, theirs: str, out: dict) -> None:
    out[f"{theirs}.in_proj_weight"] = torch.cat([sd[f"{ours}.{n}.weight"] for n in _QKV], dim=0)  # -> (3D, D)
    out[f"{theirs}.in_proj_bias"] = torch.cat([sd[f"{ours}.{n}.bias"] for n in _QKV], dim=0)  # -> (3D,)
    for p in ("weight", "bias"):
        out[f"{theirs}.out_proj.{p}"] = sd[f"{ours}.out_proj.{p}"]


def _layer_to_ours(sd, renames, cross: bool, theirs_prefix: str = "", ours_prefix: str = "") -> dict:
    out: dict[str, Tensor] = {}
    _attention_to_ours(sd, theirs_prefix + "self_attn", ours_prefix + "self_attn", out)
    if cross:
        _attention_to_ours(sd, theirs_prefix + "multihead_attn", ours_prefix + "cross_attn", out)
    for theirs, ours in renames:
        for p in ("weight", "bias"):
            out[f"{ours_prefix}{ours}.{p}"] = sd[f"{theirs_prefix}{theirs}.{p}"]
    return out


def _layer_from_ours(sd, renames, cross: bool, ours_prefix: str = "", theirs_prefix: str = "") -> dict:
    out: dict[str, Tensor] = {}
    _attention_from_ours(sd, ours_prefix + "self_attn", theirs_prefix + "self_attn", out)
    if cross:
        _attention_from_ours(sd, ours_prefix + "cross_attn", theirs_prefix + "multihead_attn", out)
    for theirs, ours in renames:
        for p in ("weight", "bias"):
            out[f"{theirs_prefix}{theirs}.{p}"] = sd[f"{ours_prefix}{ours}.{p}"]
    return out


def encoder_layer_to_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``nn.TransformerEncoderLayer.state_dict()`` -> keys of :class:`~blocks.EncoderBlock`."""
    return _layer_to_ours(sd, _ENCODER_RENAMES, cross=False)


def encoder_layer_from_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """:class:`~blocks.EncoderBlock` state dict -> keys of ``nn.TransformerEncoderLayer``."""
    return _layer_from_ours(sd, _ENCODER_RENAMES, cross=False)


def decoder_layer_to_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``nn.TransformerDecoderLayer.state_dict()`` -> keys of :class:`~blocks.DecoderBlock`."""
    return _layer_to_ours(sd, _DECODER_RENAMES, cross=True)


def decoder_layer_from_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """:class:`~blocks.DecoderBlock` state dict -> keys of ``nn.TransformerDecoderLayer``."""
    return _layer_from_ours(sd, _DECODER_RENAMES, cross=True)


def _n_layers(sd: Mapping[str, Tensor], stack: str) -> int:
    indices = {int(k.split(".")[2]) for k in sd if k.startswith(f"{stack}.layers.")}
    return max(indices) + 1 if indices else 0


def transformer_to_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``nn.Transformer.state_dict()`` -> keys of our ``encoder``/``decoder`` stacks (``encoder.layers.0…``).

    ``encoder.norm``/``decoder.norm`` become ``encoder.final_norm``/``decoder.final_norm`` when present.
    """
    out: dict[str, Tensor] = {}
    for stack, renames, cross in (("encoder", _ENCODER_RENAMES, False), ("decoder", _DECODER_RENAMES, True)):
        for i in range(_n_layers(sd, stack)):
            prefix = f"{stack}.layers.{i}."
            out.update(_layer_to_ours(sd, renames, cross, theirs_prefix=prefix, ours_prefix=prefix))
        for p in ("weight", "bias"):
            if f"{stack}.norm.{p}" in sd:
                out[f"{stack}.final_norm.{p}"] = sd[f"{stack}.norm.{p}"]
    return out


def transformer_from_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our ``encoder.*``/``decoder.*`` keys (e.g. of an EncoderDecoder) -> keys of ``nn.Transformer``.

    Other entries (embeddings, generator) have no counterpart in ``nn.Transformer`` and are left out.
    """
    out: dict[str, Tensor] = {}
    for stack, renames, cross in (("encoder", _ENCODER_RENAMES, False), ("decoder", _DECODER_RENAMES, True)):
        for i in range(_n_layers(sd, stack)):
            prefix = f"{stack}.layers.{i}."
            out.update(_layer_from_ours(sd, renames, cross, ours_prefix=prefix, theirs_prefix=prefix))
        for p in ("weight", "bias"):
            if f"{stack}.final_norm.{p}" in sd:
                out[f"{stack}.norm.{p}"] = sd[f"{stack}.final_norm.{p}"]
    return out


# ---- building modules from modules -----------------------------------------------------------------------


def _activation_name(layer: nn.Module) -> str:
    act = layer.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        return "gelu"
    raise ValueError(f"only ReLU and exact GELU activations convert to our blocks, got {act!r}")


def _layer_options(layer: nn.Module) -> BlockConfig:
    """Our block config that reproduces a PyTorch encoder/decoder layer."""
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


def _like(module: nn.Module, reference: nn.Module) -> nn.Module:
    p = next(reference.parameters())
    return module.to(device=p.device, dtype=p.dtype)


def encoder_block_from_torch(layer: nn.TransformerEncoderLayer) -> EncoderBlock:
    """A new :class:`~blocks.EncoderBlock` with the hyper-parameters and weights of ``layer``."""
    block = _like(EncoderBlock(_layer_options(layer)), layer)
    block.load_state_dict(encoder_layer_to_ours(layer.state_dict()))
    return block.train(layer.training)


def decoder_block_from_torch(layer: nn.TransformerDecoderLayer) -> DecoderBlock:
    """A new :class:`~blocks.DecoderBlock` with the hyper-parameters and weights of ``layer``."""
    block = _like(DecoderBlock(_layer_options(layer)), layer)
    block.load_state_dict(decoder_layer_to_ours(layer.state_dict()))
    return block.train(layer.training)


def _stack_from_torch(stack_cls, stack: nn.Module):
    final_norm = stack.norm is not None
    if final_norm and not isinstance(stack.norm, nn.LayerNorm):
        raise ValueError(f"the stack's final norm must be an nn.LayerNorm, got {type(stack.norm).__name__}")
    ours = stack_cls(_layer_options(stack.layers[0]), len(stack.layers), final_norm=final_norm)
    prefix = "encoder" if stack_cls is Encoder else "decoder"
    sd = {f"{prefix}.{k}": v for k, v in stack.state_dict().items()}
    ours_sd = {k[len(prefix) + 1 :]: v for k, v in transformer_to_ours(sd).items()}
    _like(ours, stack).load_state_dict(ours_sd)
    return ours.train(stack.training)


def encoder_from_torch(encoder: nn.TransformerEncoder) -> Encoder:
    """A new :class:`~stacks.Encoder` equal to ``encoder`` (``final_norm`` iff ``encoder.norm`` is set)."""
    return _stack_from_torch(Encoder, encoder)


def decoder_from_torch(decoder: nn.TransformerDecoder) -> Decoder:
    """A new :class:`~stacks.Decoder` equal to ``decoder`` (``final_norm`` iff ``decoder.norm`` is set)."""
    return _stack_from_torch(Decoder, decoder)


def load_torch_transformer(model: nn.Module, transformer: nn.Transformer) -> nn.Module:
    """Copy the encoder and decoder weights of ``transformer`` into ``model`` (e.g. an EncoderDecoder).

    ``model.encoder``/``model.decoder`` must have the same shapes and, for a faithful copy, a final norm
    exactly where ``transformer`` has one (``TransformerConfig(final_norm=True)`` for a default
    ``nn.Transformer``). Embeddings and the generator are untouched: ``nn.Transformer`` has none.
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


# ---- building PyTorch modules from ours -------------------------------------------------------------------


def _torch_options(block: nn.Module) -> dict:
    ff, attn = block.ff, block.self_attn
    if ff.activation not in ("relu", "gelu"):
        raise ValueError(f"nn.Transformer layers support relu and gelu, not activation={ff.activation!r}")
    if not isinstance(block.norm1, nn.Module) or type(block.norm1).__name__ != "LayerNorm":
        raise ValueError("nn.Transformer layers use LayerNorm; a block with norm='rms' does not convert")
    if attn.q_proj.bias is None or attn.rotary is not None:
        raise ValueError("only blocks with bias=True and no rotary embedding convert to nn.Transformer layers")
    return dict(
        d_model=block.d_model,
        nhead=block.n_heads,
        dim_feedforward=block.d_ff,
        dropout=block.dropout.p,
        activation=ff.activation,
        layer_norm_eps=block.norm1.eps,
        batch_first=True,
        norm_first=block.norm_first,
    )


def _set_dropouts(layer: nn.Module, block: nn.Module) -> None:
    """nn.Transformer layers take one dropout p; ours has three — set the other two afterwards."""
    layer.self_attn.dropout = block.self_attn.dropout
    if hasattr(layer, "multihead_attn"):
        layer.multihead_attn.dropout = block.cross_attn.dropout
    layer.dropout.p = block.ff.dropout.p


def to_torch_encoder_layer(block: EncoderBlock) -> nn.TransformerEncoderLayer:
    """A new ``nn.TransformerEncoderLayer(batch_first=True)`` equal to ``block``."""
    layer = _like(nn.TransformerEncoderLayer(**_torch_options(block)), block)
    layer.load_state_dict(encoder_layer_from_ours(block.state_dict()))
    _set_dropouts(layer, block)
    return layer.train(block.training)


def to_torch_decoder_layer(block: DecoderBlock) -> nn.TransformerDecoderLayer:
    """A new ``nn.TransformerDecoderLayer(batch_first=True)`` equal to ``block``."""
    layer = _like(nn.TransformerDecoderLayer(**_torch_options(block)), block)
    layer.load_state_dict(decoder_layer_from_ours(block.state_dict()))
    _set_dropouts(layer, block)
    return layer.train(block.training)


def to_torch_transformer(model: nn.Module) -> nn.Transformer:
    """A new ``nn.Transformer(batch_first=True)`` equal to ``model.encoder`` + ``model.decoder``.

    Built from ``custom_encoder``/``custom_decoder`` stacks so that a stack without a final norm (the paper's
    post-LN model) stays without one, instead of gaining ``nn.Transformer``'s default final LayerNorm.
    The encoder stack is built with ``enable_nested_tensor=False``, so padded positions are computed like
    every other position (the nested-tensor fast path would return zeros there).
    """
    enc_opts = _torch_options(model.encoder.layers[0])
    dec_opts = _torch_options(model.decoder.layers[0])

    def final_norm(stack) -> nn.LayerNorm | None:
        norm = stack.final_norm
        return None if norm is None else nn.LayerNorm(norm.d_model, eps=norm.eps)

    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(**enc_opts),
        num_layers=len(model.encoder.layers),
        norm=final_norm(model.encoder),
        enable_nested_tensor=False,
    )
    decoder = nn.TransformerDecoder(
        nn.TransformerDecoderLayer(**dec_opts), num_layers=len(model.decoder.layers), norm=final_norm(model.decoder)
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
            _set_dropouts(layer, block)
    return transformer.train(model.training)
