r"""NumPy float64 reference for T5, the text-to-text encoder–decoder — Raffel et al. 2020, "Exploring the Limits of
Transfer Learning with a Unified Text-to-Text Transformer" (JMLR 21), §2.1 — never imports torch.

Written for the eye: the relative position bias filled in entry by entry, attention one head and one query at a
time, every sub-layer spelled out. What sets T5 apart from the 2017 Transformer (``blocks.py``), all in §2.1:

  * pre-norm residual sub-layers ``x = x + Sub(RMSNorm(x))`` — "layer normalization … only rescaled and no additive
    bias" — and one more RMSNorm at the end of each stack;
  * no absolute positions: a learned scalar per head and per *bucket* of the relative distance j − i is added to the
    attention scores; the encoder's buckets tell left from right, the decoder's only look back, cross-attention has
    none; one table per stack, shared by all of its layers;
  * the scores are q·k with NO 1/√Dh — T5 folds that factor into the initialisation of W_q;
  * projections without biases, and a head width ``d_kv`` that need not be D / H;
  * one embedding matrix for the encoder input, the decoder input and (tied) the output layer, which then scales
    the decoder output by D^-½ (the released code; the paper only says the matrix is shared).

The formulas, for one sequence (ids, ``valid`` True at real tokens):

    encoder   x = E[ids];   bias_enc[h, i, j] = P_enc[bucket(j − i, bidirectional), h]
              per layer:  x = x + SelfAttn(RMSNorm1(x); bias_enc, keys j with valid[j])
                          x = x + FF(RMSNorm2(x))
              memory = RMSNorm_final(x)
    decoder   y = E[decoder ids];   bias_dec[h, i, j] = P_dec[bucket(j − i, causal), h]
              per layer:  y = y + SelfAttn(RMSNorm1(y); bias_dec, keys j ≤ i with decoder_valid[j])
                          y = y + CrossAttn(RMSNorm2(y), memory; no bias, keys j with valid[j])
                          y = y + FF(RMSNorm3(y))
              h = RMSNorm_final(y)
    logits    (h · D^-½) Eᵀ when tied, h W_headᵀ when not

    Attn: score_ij = q_i·k_j + bias[h, i, j] over the allowed keys; softmax; Σ_j w_ij v_j; concat heads; W_o.
    FF:   relu        W2 relu(W1 x)
          gated_gelu  W2 (gelu_tanh(W1 x) ⊙ W3 x)      (T5 v1.1 / Hugging Face "gated-gelu")
    RMSNorm(x) = x / √(mean(x²) + eps) ⊙ w

Weights come as a flat mapping of numpy arrays keyed like ``T5ForConditionalGeneration.state_dict()``:
``"shared.weight"`` (V, D), ``"encoder.position_bias.embedding.weight"`` (num_buckets, H),
``"encoder.layers.{i}.norm1.weight"`` (D,), ``"encoder.layers.{i}.self_attn.{q,k,v}_proj.weight"`` (H·d_kv, D),
``"….self_attn.out_proj.weight"`` (D, H·d_kv), ``"….ff.w1.weight"`` (F, D), ``"….ff.w3.weight"`` (F, D, gated_gelu
only), ``"….ff.w2.weight"`` (D, F), ``"encoder.final_norm.weight"``, the same under ``"decoder."`` plus
``"decoder.layers.{i}.cross_attn.*"`` and ``"norm3"``, and ``"lm_head.weight"`` (V, D) only when untied. Head h
owns rows h·d_kv:(h+1)·d_kv of W_q, W_k, W_v and the same columns of W_o. Dropout is not modelled (the reference is
the model in evaluation mode).

Masks follow the package's convention: ``allowed`` is True where query i may attend to key j; only keys are masked
(a padded query still attends to the real keys, as in Hugging Face's T5), and a query with no allowed key at all
gets a zero attention output.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .bert import cross_entropy
from .layers import gelu_tanh, relu, rms_norm
from .positional import relative_position_bucket

__all__ = [
    "t5_position_bias",
    "t5_attention",
    "t5_feed_forward",
    "t5_encoder",
    "t5_decoder",
    "t5_lm_logits",
    "t5_forward",
    "t5_loss",
    "shift_right",
]


def _w(params: Mapping, key: str) -> np.ndarray:
    if key not in params:
        raise KeyError(f"the T5 parameters have no {key!r} (keys are named as in T5ForConditionalGeneration)")
    return np.asarray(params[key], dtype=np.float64)


def _n_decoder_layers(config) -> int:
    return config.n_layers if config.n_decoder_layers is None else config.n_decoder_layers


def t5_position_bias(
    table, t: int, s: int, *, bidirectional: bool, num_buckets: int, max_distance: int, query_offset: int = 0
) -> np.ndarray:
    """bias[h, i, j] = table[bucket(j − i), h] for queries at positions query_offset … query_offset + T − 1 and keys at
    0 … S − 1: table (num_buckets, H) -> (H, T, S). The same values for every layer of a stack and every sequence."""
    table = np.asarray(table, dtype=np.float64)
    n_heads = table.shape[1]
    bias = np.zeros((n_heads, t, s))
    for i in range(t):
        for j in range(s):
            relative = j - (query_offset + i)  # key minus query: > 0 means the key is to the right
            bucket = relative_position_bucket(relative, bidirectional, num_buckets, max_distance)
            for h in range(n_heads):
                bias[h, i, j] = table[bucket, h]
    return bias


def t5_attention(x_q, x_kv, params: Mapping, name: str, *, n_heads: int, d_kv: int, allowed, bias=None):
    """T5 multi-head attention: score_ij = q_i·k_j + bias[h, i, j] (no 1/√d_kv), softmax over the allowed keys.

    x_q (B, T, D), x_kv (B, S, D), allowed (B, T, S) bool, bias (H, T, S) or None, projections
    ``{name}.{q,k,v}_proj.weight`` (H·d_kv, D) and ``{name}.out_proj.weight`` (D, H·d_kv) -> (B, T, D).
    """
    x_q, x_kv = np.asarray(x_q, dtype=np.float64), np.asarray(x_kv, dtype=np.float64)
    allowed = np.asarray(allowed, dtype=bool)
    batch, t, _ = x_q.shape
    s = x_kv.shape[1]
    w_q, w_k, w_v = (_w(params, f"{name}.{p}_proj.weight") for p in ("q", "k", "v"))  # (H·d_kv, D) each
    heads = []
    for h in range(n_heads):
        rows = slice(h * d_kv, (h + 1) * d_kv)  # head h owns these output rows of W_q, W_k, W_v
        q = x_q @ w_q[rows].T  # (B, T, d_kv)
        k = x_kv @ w_k[rows].T  # (B, S, d_kv)
        v = x_kv @ w_v[rows].T  # (B, S, d_kv)
        out = np.zeros((batch, t, d_kv))
        for b in range(batch):
            for i in range(t):
                keys = [j for j in range(s) if allowed[b, i, j]]
                if not keys:
                    continue  # nothing to attend to: a zero output
                scores = np.array([q[b, i] @ k[b, j] + (0.0 if bias is None else bias[h, i, j]) for j in keys])
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()  # softmax over the allowed keys only
                out[b, i] = sum(w * v[b, j] for w, j in zip(weights, keys))
        heads.append(out)
    concat = np.concatenate(heads, axis=-1)  # H × (B, T, d_kv) -> (B, T, H·d_kv)
    return concat @ _w(params, f"{name}.out_proj.weight").T  # (B, T, H·d_kv) · (H·d_kv, D) -> (B, T, D)


def t5_feed_forward(x, params: Mapping, name: str, kind: str) -> np.ndarray:
    """relu: W2 relu(W1 x);  gated_gelu: W2 (gelu_tanh(W1 x) ⊙ W3 x). No biases. (B, L, D) -> (B, L, D)."""
    x = np.asarray(x, dtype=np.float64)
    hidden = x @ _w(params, f"{name}.w1.weight").T  # (B, L, D) · (D, F) -> (B, L, F)
    if kind == "relu":
        hidden = relu(hidden)
    elif kind == "gated_gelu":
        hidden = gelu_tanh(hidden) * (x @ _w(params, f"{name}.w3.weight").T)  # (B, L, F) ⊙ (B, L, F)
    else:
        raise ValueError(f"feed_forward must be 'relu' or 'gated_gelu', got {kind!r}")
    return hidden @ _w(params, f"{name}.w2.weight").T  # (B, L, F) · (F, D) -> (B, L, D)


def _valid_or_default(valid, ids, pad_id):
    """``valid`` as a bool array; None -> True wherever the id is not ``pad_id`` (None: every token is real)."""
    ids = np.asarray(ids)
    if valid is not None:
        return np.asarray(valid, dtype=bool)
    return np.ones(ids.shape, dtype=bool) if pad_id is None else ids != pad_id


def t5_encoder(params: Mapping, config, input_ids, valid=None) -> np.ndarray:
    """The encoder's last hidden state (after its final RMSNorm): input_ids (B, S) -> (B, S, D).

    ``valid`` (B, S) True at real tokens; None -> ``input_ids != config.pad_id``, as the model does.
    """
    input_ids = np.asarray(input_ids)
    batch, s = input_ids.shape
    valid = _valid_or_default(valid, input_ids, config.pad_id)
    eps, heads = config.layer_norm_eps, dict(n_heads=config.n_heads, d_kv=config.d_kv)
    allowed = np.zeros((batch, s, s), dtype=bool)  # (B, S, S): every query sees every real key
    for b in range(batch):
        for i in range(s):
            for j in range(s):
                allowed[b, i, j] = valid[b, j]
    bias = t5_position_bias(
        _w(params, "encoder.position_bias.embedding.weight"),
        s,
        s,
        bidirectional=True,
        num_buckets=config.num_buckets,
        max_distance=config.max_distance,
    )  # (H, S, S), computed once, added in every layer

    x = _w(params, "shared.weight")[input_ids]  # (B, S, D), not scaled
    for layer in range(config.n_layers):
        p = f"encoder.layers.{layer}"
        n1 = rms_norm(x, _w(params, f"{p}.norm1.weight"), eps)
        x = x + t5_attention(n1, n1, params, f"{p}.self_attn", allowed=allowed, bias=bias, **heads)
        n2 = rms_norm(x, _w(params, f"{p}.norm2.weight"), eps)
        x = x + t5_feed_forward(n2, params, f"{p}.ff", config.feed_forward)
    return rms_norm(x, _w(params, "encoder.final_norm.weight"), eps)


def t5_decoder(params: Mapping, config, decoder_input_ids, memory, valid=None, decoder_valid=None) -> np.ndarray:
    """The decoder's last hidden state (after its final RMSNorm): ids (B, T), memory (B, S, D) -> (B, T, D).

    ``valid`` (B, S) marks the real source tokens (None: all real — the memory carries no ids to derive it from);
    ``decoder_valid`` (B, T) the real target tokens (None: all real; the start token is often the pad id).
    """
    decoder_input_ids = np.asarray(decoder_input_ids)
    memory = np.asarray(memory, dtype=np.float64)
    batch, t = decoder_input_ids.shape
    s = memory.shape[1]
    valid = np.ones((batch, s), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    decoder_valid = np.ones((batch, t), dtype=bool) if decoder_valid is None else np.asarray(decoder_valid, dtype=bool)
    eps, heads = config.layer_norm_eps, dict(n_heads=config.n_heads, d_kv=config.d_kv)
    self_allowed = np.zeros((batch, t, t), dtype=bool)  # (B, T, T): key j ≤ i and real
    cross_allowed = np.zeros((batch, t, s), dtype=bool)  # (B, T, S): every real source key
    for b in range(batch):
        for i in range(t):
            for j in range(t):
                self_allowed[b, i, j] = j <= i and decoder_valid[b, j]
            for j in range(s):
                cross_allowed[b, i, j] = valid[b, j]
    bias = t5_position_bias(
        _w(params, "decoder.position_bias.embedding.weight"),
        t,
        t,
        bidirectional=False,
        num_buckets=config.num_buckets,
        max_distance=config.max_distance,
    )  # (H, T, T), causal buckets

    y = _w(params, "shared.weight")[decoder_input_ids]  # (B, T, D)
    for layer in range(_n_decoder_layers(config)):
        p = f"decoder.layers.{layer}"
        n1 = rms_norm(y, _w(params, f"{p}.norm1.weight"), eps)
        y = y + t5_attention(n1, n1, params, f"{p}.self_attn", allowed=self_allowed, bias=bias, **heads)
        n2 = rms_norm(y, _w(params, f"{p}.norm2.weight"), eps)
        y = y + t5_attention(n2, memory, params, f"{p}.cross_attn", allowed=cross_allowed, bias=None, **heads)
        n3 = rms_norm(y, _w(params, f"{p}.norm3.weight"), eps)
        y = y + t5_feed_forward(n3, params, f"{p}.ff", config.feed_forward)
    return rms_norm(y, _w(params, "decoder.final_norm.weight"), eps)


def t5_lm_logits(params: Mapping, config, hidden) -> np.ndarray:
    """(B, T, D) -> (B, T, V): (h · D^-½) Eᵀ with the shared embedding when tied, h W_headᵀ when not."""
    hidden = np.asarray(hidden, dtype=np.float64)
    if config.tie_word_embeddings:
        d_model = hidden.shape[-1]
        return (hidden * d_model**-0.5) @ _w(params, "shared.weight").T  # (B, T, D) · (D, V)
    return hidden @ _w(params, "lm_head.weight").T  # (B, T, D) · (D, V)


def t5_forward(params: Mapping, config, input_ids, decoder_input_ids, valid=None, decoder_valid=None) -> np.ndarray:
    """Logits (B, T, V) of ``T5ForConditionalGeneration`` in evaluation mode.

    ``config`` is any object with the fields of ``T5Config`` (n_heads, d_kv, n_layers, n_decoder_layers, num_buckets,
    max_distance, feed_forward, layer_norm_eps, tie_word_embeddings, pad_id). ``valid`` (B, S) defaults to
    ``input_ids != pad_id``; ``decoder_valid`` (B, T) to all real.
    """
    valid = _valid_or_default(valid, input_ids, config.pad_id)
    memory = t5_encoder(params, config, input_ids, valid)
    hidden = t5_decoder(params, config, decoder_input_ids, memory, valid, decoder_valid)
    return t5_lm_logits(params, config, hidden)


def t5_loss(logits, labels, ignore_index: int = -100) -> float:
    """Mean over the labels ≠ ignore_index of −log softmax(logits[b, t])[labels[b, t]] — no shift: the decoder
    input is already the labels shifted right, so position t predicts labels[b, t]."""
    return cross_entropy(logits, labels, ignore_index)


def shift_right(labels, decoder_start_id: int, pad_id: int, ignore_index: int = -100) -> np.ndarray:
    """Teacher forcing: the decoder input at t is the label at t − 1. (B, T) -> (B, T), entry by entry:
    [start, labels[0], …, labels[T − 2]], with ``ignore_index`` replaced by ``pad_id`` (it is not a token)."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, dtype=np.int64)
    for b in range(labels.shape[0]):
        out[b, 0] = decoder_start_id
        for t in range(1, labels.shape[1]):
            out[b, t] = pad_id if labels[b, t - 1] == ignore_index else labels[b, t - 1]
    return out
