r"""NumPy float64 reference for the encoder block, the decoder block and the whole 2017 encoder–decoder.

Assembled only from the other references (attention, layer norm, feed-forward, sinusoidal table), with the
residual/normalisation order written out for each case. numpy only, never torch.

Weights come as a flat dict of numpy arrays keyed like the torch modules' ``state_dict()`` — for a block
``"self_attn.q_proj.weight"``, ``"ff.w1.bias"``, ``"norm1.weight"``…; for the model ``"src_embed.weight"``,
``"encoder.layers.0.self_attn.q_proj.weight"``, ``"generator.weight"``… A missing bias key means "no bias".
Dropout is not modelled (the reference is the model in evaluation mode).

Shapes: x (B, T, D) decoder side, memory (B, S, D) encoder side; masks are ``allowed`` (True = may attend).
"""

from __future__ import annotations

import math

import numpy as np

from .attention import multi_head_attention
from .layers import feed_forward, layer_norm, rms_norm
from .masks import causal_mask, key_padding
from .positional import sinusoidal_table

__all__ = ["encoder_block", "decoder_block", "encoder_decoder"]


def _norm(x, weights: dict, name: str, norm: str, eps: float):
    if norm == "layer":
        return layer_norm(x, weights[f"{name}.weight"], weights[f"{name}.bias"], eps)
    if norm == "rms":
        return rms_norm(x, weights[f"{name}.weight"], eps)
    raise ValueError(f"unknown norm {norm!r}")


def _attention(x_q, x_kv, weights: dict, name: str, n_heads: int, allowed):
    """Multi-head attention with the projections ``{name}.q_proj`` … ``{name}.out_proj`` -> (out, weights)."""
    params = []
    for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
        params += [weights[f"{name}.{proj}.weight"], weights.get(f"{name}.{proj}.bias")]
    return multi_head_attention(x_q, x_kv, *params, n_heads=n_heads, allowed=allowed, return_weights=True)


def _feed_forward(x, weights: dict, name: str, activation: str):
    return feed_forward(
        x,
        weights[f"{name}.w1.weight"],
        weights.get(f"{name}.w1.bias"),
        weights[f"{name}.w2.weight"],
        weights.get(f"{name}.w2.bias"),
        activation,
        w3=weights.get(f"{name}.w3.weight"),
    )


def encoder_block(
    x,
    weights: dict,
    n_heads: int,
    *,
    allowed=None,
    norm_first: bool = False,
    activation: str = "relu",
    eps: float = 1e-5,
    norm: str = "layer",
    return_weights: bool = False,
):
    """One encoder block.

    post-LN (paper):  h = Norm1(x + SelfAttn(x));        out = Norm2(h + FFN(h))
    pre-LN:           h = x + SelfAttn(Norm1(x));        out = h + FFN(Norm2(h))
    """
    x = np.asarray(x, dtype=np.float64)
    if norm_first:
        n1 = _norm(x, weights, "norm1", norm, eps)
        attn, w = _attention(n1, n1, weights, "self_attn", n_heads, allowed)
        h = x + attn
        out = h + _feed_forward(_norm(h, weights, "norm2", norm, eps), weights, "ff", activation)
    else:
        attn, w = _attention(x, x, weights, "self_attn", n_heads, allowed)
        h = _norm(x + attn, weights, "norm1", norm, eps)
        out = _norm(h + _feed_forward(h, weights, "ff", activation), weights, "norm2", norm, eps)
    return (out, w) if return_weights else out


def decoder_block(
    x,
    memory,
    weights: dict,
    n_heads: int,
    *,
    self_allowed=None,
    cross_allowed=None,
    norm_first: bool = False,
    activation: str = "relu",
    eps: float = 1e-5,
    norm: str = "layer",
    return_weights: bool = False,
):
    """One decoder block: masked self-attention, cross-attention over ``memory``, feed-forward.

    post-LN (paper):  h1 = Norm1(x + SelfAttn(x));  h2 = Norm2(h1 + CrossAttn(h1, memory));  out = Norm3(h2 + FFN(h2))
    pre-LN:           h1 = x + SelfAttn(Norm1(x));  h2 = h1 + CrossAttn(Norm2(h1), memory);  out = h2 + FFN(Norm3(h2))
    """
    x = np.asarray(x, dtype=np.float64)
    memory = np.asarray(memory, dtype=np.float64)
    if norm_first:
        n1 = _norm(x, weights, "norm1", norm, eps)
        attn, w_self = _attention(n1, n1, weights, "self_attn", n_heads, self_allowed)
        h1 = x + attn
        n2 = _norm(h1, weights, "norm2", norm, eps)
        cross, w_cross = _attention(n2, memory, weights, "cross_attn", n_heads, cross_allowed)
        h2 = h1 + cross
        out = h2 + _feed_forward(_norm(h2, weights, "norm3", norm, eps), weights, "ff", activation)
    else:
        attn, w_self = _attention(x, x, weights, "self_attn", n_heads, self_allowed)
        h1 = _norm(x + attn, weights, "norm1", norm, eps)
        cross, w_cross = _attention(h1, memory, weights, "cross_attn", n_heads, cross_allowed)
        h2 = _norm(h1 + cross, weights, "norm2", norm, eps)
        out = _norm(h2 + _feed_forward(h2, weights, "ff", activation), weights, "norm3", norm, eps)
    return (out, w_self, w_cross) if return_weights else out


def _sub(weights: dict, prefix: str) -> dict:
    """The entries under ``prefix.``, with the prefix removed: the weights of one sub-module."""
    return {k[len(prefix) + 1 :]: v for k, v in weights.items() if k.startswith(prefix + ".")}


def _embed(ids, weights: dict, side: str, scale: bool, positional: str):
    """weight[ids] (· √D) + position table rows 0 … L-1: (B, L) -> (B, L, D)."""
    ids = np.asarray(ids)
    table = np.asarray(weights[f"{side}_embed.weight"], dtype=np.float64)  # (V, D)
    d_model = table.shape[1]
    x = table[ids] * (math.sqrt(d_model) if scale else 1.0)  # (B, L, D)
    length = ids.shape[1]
    if positional == "sinusoidal":
        pe = sinusoidal_table(length, d_model)  # (L, D)
    else:
        pe = np.asarray(weights[f"{side}_positional.weight"], dtype=np.float64)[:length]  # (L, D)
    return x + pe


def encoder_decoder(
    src_ids,
    tgt_ids,
    weights: dict,
    *,
    n_heads: int,
    n_encoder_layers: int,
    n_decoder_layers: int,
    norm_first: bool = False,
    final_norm: bool | None = None,
    activation: str = "relu",
    eps: float = 1e-5,
    scale_embeddings: bool = True,
    positional: str = "sinusoidal",
    src_valid=None,
    tgt_valid=None,
):
    """Logits (B, T, V) of the encoder–decoder Transformer, the way Figure 1 of the paper draws it.

    ``src_valid`` (B, S) / ``tgt_valid`` (B, T) are True at real tokens (None: all real). Encoder queries and
    cross-attention queries see the real source tokens; decoder position i sees real target positions ≤ i.
    ``final_norm`` (default: ``norm_first``) adds ``encoder.final_norm`` / ``decoder.final_norm``.
    """
    src_ids, tgt_ids = np.asarray(src_ids), np.asarray(tgt_ids)
    batch, s = src_ids.shape
    t = tgt_ids.shape[1]
    final_norm = norm_first if final_norm is None else final_norm
    src_valid = np.ones((batch, s), dtype=bool) if src_valid is None else np.asarray(src_valid, dtype=bool)
    tgt_valid = np.ones((batch, t), dtype=bool) if tgt_valid is None else np.asarray(tgt_valid, dtype=bool)
    enc_allowed = key_padding(src_valid)  # (B, 1, 1, S)
    dec_allowed = causal_mask(t)[None, None] & key_padding(tgt_valid)  # (1,1,T,T) & (B,1,1,T) -> (B,1,T,T)
    options = dict(norm_first=norm_first, activation=activation, eps=eps)

    x = _embed(src_ids, weights, "src", scale_embeddings, positional)  # (B, S, D)
    for layer in range(n_encoder_layers):
        x = encoder_block(x, _sub(weights, f"encoder.layers.{layer}"), n_heads, allowed=enc_allowed, **options)
    if final_norm:
        x = _norm(x, weights, "encoder.final_norm", "layer", eps)
    memory = x

    y = _embed(tgt_ids, weights, "tgt", scale_embeddings, positional)  # (B, T, D)
    for layer in range(n_decoder_layers):
        y = decoder_block(
            y,
            memory,
            _sub(weights, f"decoder.layers.{layer}"),
            n_heads,
            self_allowed=dec_allowed,
            cross_allowed=enc_allowed,
            **options,
        )
    if final_norm:
        y = _norm(y, weights, "decoder.final_norm", "layer", eps)
    return y @ np.asarray(weights["generator.weight"], dtype=np.float64).T  # (B,T,D)·(D,V) -> (B,T,V)
