r"""NumPy float64 reference for BERT (Devlin et al. 2019): embeddings -> encoder -> pooler -> MLM and NSP heads.

Assembled from the other references (layer norm, GELU, the post-LN encoder block, attention); numpy only,
never torch. Dropout is not modelled (the reference is the model in evaluation mode).

Weights come as a flat dict of numpy arrays keyed like ``BertForPreTraining.state_dict()``:
``"bert.embeddings.token.weight"``, ``"bert.encoder.layers.0.self_attn.q_proj.weight"``, ``"bert.pooler.dense.weight"``,
``"mlm.dense.weight"``, ``"mlm.bias"``, ``"nsp.classifier.weight"``… (``prefix=""`` for a bare ``BertModel``).
The MLM decoder reads the token-embedding matrix itself — that is what "tied" means.

Shapes: ids, token_type_ids, valid (B, T); hidden states (B, T, D); logits (B, T, V) and (B, 2).
"""

from __future__ import annotations

import math

import numpy as np

from .blocks import encoder_block
from .layers import gelu, layer_norm
from .masks import key_padding

__all__ = ["bert_embeddings", "bert_model", "bert_pretraining", "cross_entropy", "pretraining_loss", "mean_pool"]


def _w(weights: dict, key: str) -> np.ndarray:
    return np.asarray(weights[key], dtype=np.float64)


def _linear(x, weights: dict, name: str) -> np.ndarray:
    """x Wᵀ + b with W in nn.Linear orientation (out, in)."""
    return x @ _w(weights, f"{name}.weight").T + _w(weights, f"{name}.bias")


def bert_embeddings(ids, token_type_ids, weights: dict, *, eps: float, prefix: str = "") -> np.ndarray:
    """LayerNorm(E_token[id] + E_position[t] + E_segment[segment]) one position at a time: (B, T) -> (B, T, D)."""
    ids, token_type_ids = np.asarray(ids), np.asarray(token_type_ids)
    token = _w(weights, f"{prefix}embeddings.token.weight")  # (V, D)
    position = _w(weights, f"{prefix}embeddings.position.weight")  # (max_len, D)
    segment = _w(weights, f"{prefix}embeddings.segment.weight")  # (type_vocab_size, D)
    batch, length = ids.shape
    x = np.zeros((batch, length, token.shape[1]))
    for b in range(batch):
        for t in range(length):  # position t counts from the first token, padding or not
            x[b, t] = token[ids[b, t]] + position[t] + segment[token_type_ids[b, t]]
    gain, bias = _w(weights, f"{prefix}embeddings.norm.weight"), _w(weights, f"{prefix}embeddings.norm.bias")
    return layer_norm(x, gain, bias, eps)


def _sub(weights: dict, prefix: str) -> dict:
    """The entries under ``prefix.``, with the prefix removed: the weights of one sub-module."""
    return {k[len(prefix) + 1 :]: v for k, v in weights.items() if k.startswith(prefix + ".")}


def bert_model(
    ids,
    weights: dict,
    *,
    n_heads: int,
    n_layers: int,
    eps: float = 1e-12,
    token_type_ids=None,
    valid=None,
    prefix: str = "",
):
    """BERT's encoder -> (last hidden state (B, T, D), pooled (B, D), hidden states [L + 1], attentions [L]).

    ``valid`` (B, T) is True at real tokens (None: all real); every query sees every real key.
    """
    ids = np.asarray(ids)
    batch, length = ids.shape
    token_type_ids = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids)
    valid = np.ones((batch, length), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    allowed = key_padding(valid)  # (B, 1, 1, T)

    h = bert_embeddings(ids, token_type_ids, weights, eps=eps, prefix=prefix)
    hidden_states, attentions = [h], []
    for layer in range(n_layers):
        block = _sub(weights, f"{prefix}encoder.layers.{layer}")
        h, w = encoder_block(
            h, block, n_heads, allowed=allowed, norm_first=False, activation="gelu", eps=eps, return_weights=True
        )
        hidden_states.append(h)
        attentions.append(w)
    cls = h[:, 0]  # (B, D): the [CLS] position
    pooled = np.tanh(_linear(cls, weights, f"{prefix}pooler.dense"))
    return h, pooled, hidden_states, attentions


def bert_pretraining(ids, weights: dict, *, n_heads: int, n_layers: int, eps: float = 1e-12, **inputs):
    """-> (MLM logits (B, T, V), NSP logits (B, 2), the outputs of :func:`bert_model`).

    MLM: LayerNorm(gelu(dense(h))) Eᵀ + bias, with E the token embedding; NSP: classifier(pooled).
    """
    out = bert_model(ids, weights, n_heads=n_heads, n_layers=n_layers, eps=eps, prefix="bert.", **inputs)
    h, pooled = out[0], out[1]
    x = gelu(_linear(h, weights, "mlm.dense"))
    x = layer_norm(x, _w(weights, "mlm.norm.weight"), _w(weights, "mlm.norm.bias"), eps)
    mlm_logits = x @ _w(weights, "bert.embeddings.token.weight").T + _w(weights, "mlm.bias")  # (B,T,D)·(D,V)
    nsp_logits = _linear(pooled, weights, "nsp.classifier")  # (B, 2)
    return mlm_logits, nsp_logits, out


def cross_entropy(logits, labels, ignore_index: int = -100) -> float:
    """Mean over the labels ≠ ignore_index of -log softmax(logits)[label], one position at a time."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    flat_logits = logits.reshape(-1, logits.shape[-1])
    losses = []
    for row, label in zip(flat_logits, labels.reshape(-1)):
        if label == ignore_index:
            continue
        m = row.max()
        log_z = m + math.log(np.exp(row - m).sum())
        losses.append(log_z - row[label])
    return float(np.mean(losses)) if losses else 0.0


def pretraining_loss(mlm_logits, mlm_labels, nsp_logits, nsp_labels) -> float:
    """CE over the selected MLM positions + CE of the NSP prediction."""
    return cross_entropy(mlm_logits, mlm_labels) + cross_entropy(nsp_logits, nsp_labels)


def mean_pool(hidden, valid) -> np.ndarray:
    """The average of the hidden states of the real tokens of each row: (B, T, D), (B, T) -> (B, D)."""
    hidden, valid = np.asarray(hidden, dtype=np.float64), np.asarray(valid, dtype=bool)
    out = np.zeros((hidden.shape[0], hidden.shape[2]))
    for b in range(hidden.shape[0]):
        real = [hidden[b, t] for t in range(hidden.shape[1]) if valid[b, t]]
        if real:
            out[b] = sum(real) / len(real)
    return out
