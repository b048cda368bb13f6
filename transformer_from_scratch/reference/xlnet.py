r"""NumPy float64 reference for XLNet's two-stream attention — Yang et al. 2019, §2.3 — never imports torch.

Written for the eye: one sequence, one head and one query at a time, every score spelled out as the sum of its
three terms. For a query at position i (projected q, per head, width Dh) and a key/value at position j:

    score_ij = [ (q + u)·k_j  +  (q + v)·W_r R(i − j)  +  (q + b)·s_ij ] / √Dh

    R(Δ) = [sin(Δ ω_0), …, sin(Δ ω_{D/2−1}), cos(Δ ω_0), …, cos(Δ ω_{D/2−1})],   ω_k = 10000^(−2k/D)
    s_ij = the "same segment" vector when token_type[i] = token_type[j], else the "different segments" one

R(i − j) is computed afresh for every pair (no table, no gather by distance, no relative shift). The softmax runs
over the allowed keys only; a query with no allowed key gets a zero attention output. Keys and values always come
from the content stream. The two streams, through the same blocks (post-LN, exact GELU):

    content  h_i ← LayerNorm(h_i + Attn(h_i; h_j for allowed j));  h_i ← LayerNorm(h_i + FFN(h_i));  h⁽⁰⁾ = E[x]
    query    g_p ← LayerNorm(g_p + Attn(g_p at position z_p; h_j for allowed j));  …  g⁽⁰⁾ = w (mask embedding)
    logits   g Eᵀ + b_out   (the head is tied to the token embedding E)

Weights come as a flat dict of numpy arrays keyed like ``XLNetLMHeadModel.state_dict()``:
``"xlnet.embedding.weight"`` (V, D), ``"xlnet.mask_embedding"`` (D,),
``"xlnet.layers.{l}.attn.{q,k,v,r,out}_proj.weight"`` (D, D) in nn.Linear orientation (out, in) — head h owns
rows h·Dh:(h+1)·Dh of q/k/v/r and columns h·Dh:(h+1)·Dh of out —,
``"xlnet.layers.{l}.attn.content_bias"`` (u), ``"position_bias"`` (v), ``"segment_bias"`` (b), each (H, Dh),
``"xlnet.layers.{l}.attn.segment_embedding"`` (2, H, Dh) (row 0 same, row 1 different),
``"xlnet.layers.{l}.norm1.*"``, ``"ff.w1.*"``, ``"ff.w2.*"``, ``"norm2.*"`` and ``"lm_head.bias"`` (V,).
Dropout is not modelled (the reference is the model in evaluation mode).

Masks follow the package's convention: ``allowed`` is True where query i may attend to key j.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .bert import cross_entropy
from .layers import feed_forward, layer_norm

__all__ = ["XLNetStreams", "relative_encoding", "permutation_masks", "xlnet_lm", "plm_loss"]


@dataclass(frozen=True)
class XLNetStreams:
    """What :func:`xlnet_lm` returns.

    content (B, T, D) and query (B, P, D) (None without targets) after the last block; content_states and
    query_states: the L + 1 values of each stream (after the embedding, after every block); logits (B, P, V)
    from the query stream, or (B, T, V) from the content stream when there are no targets.
    """

    content: np.ndarray
    query: np.ndarray | None
    logits: np.ndarray
    content_states: list
    query_states: list | None


def relative_encoding(delta: int, d_model: int) -> np.ndarray:
    """R(Δ) (D,): sines of Δ ω_k in the first half, cosines in the second, ω_k = 10000^(−2k/D)."""
    half = d_model // 2
    r = np.zeros(d_model)
    for k in range(half):
        omega = 10000.0 ** (-2.0 * k / d_model)
        r[k] = math.sin(delta * omega)
        r[half + k] = math.cos(delta * omega)
    return r


def permutation_masks(rank, valid) -> tuple[np.ndarray, np.ndarray]:
    """rank, valid (B, T) -> content, query (B, T, T), entry by entry: query i may see key j when j is real and
    comes before i in the factorization order (rank[j] < rank[i]); the content stream also sees itself (≤)."""
    rank, valid = np.asarray(rank), np.asarray(valid, dtype=bool)
    batch, t = rank.shape
    content = np.zeros((batch, t, t), dtype=bool)
    query = np.zeros((batch, t, t), dtype=bool)
    for b in range(batch):
        for i in range(t):
            for j in range(t):
                content[b, i, j] = valid[b, j] and rank[b, j] <= rank[b, i]
                query[b, i, j] = valid[b, j] and rank[b, j] < rank[b, i]
    return content, query


def _w(weights: dict, key: str) -> np.ndarray:
    return np.asarray(weights[key], dtype=np.float64)


def _attention(x, position, segment, h, segments, allowed, attn: dict, n_heads: int) -> np.ndarray:
    """One query vector x (D,) at ``position`` in ``segment`` attends to the content stream h (T, D).

    ``segments`` (T,) are the keys' segments, ``allowed`` (T,) bool the keys it may see -> the output (D,).
    """
    t, d_model = h.shape
    d_head = d_model // n_heads
    heads = []
    for n in range(n_heads):
        rows = slice(n * d_head, (n + 1) * d_head)  # head n owns these output rows of W_q, W_k, W_v, W_r
        q = _w(attn, "q_proj.weight")[rows] @ x  # (Dh,)
        u, v, b = attn["content_bias"][n], attn["position_bias"][n], attn["segment_bias"][n]  # (Dh,) each
        scores, values = {}, {}
        for j in range(t):
            if not allowed[j]:
                continue
            k_j = _w(attn, "k_proj.weight")[rows] @ h[j]  # (Dh,)
            r_ij = _w(attn, "r_proj.weight")[rows] @ relative_encoding(position - j, d_model)  # (Dh,)
            s_ij = attn["segment_embedding"][0 if segment == segments[j] else 1, n]  # (Dh,)
            content_term = (q + u) @ k_j
            position_term = (q + v) @ r_ij
            segment_term = (q + b) @ s_ij
            scores[j] = (content_term + position_term + segment_term) / math.sqrt(d_head)
            values[j] = _w(attn, "v_proj.weight")[rows] @ h[j]  # (Dh,)
        out = np.zeros(d_head)
        if scores:  # a query with no allowed key attends to nothing: zero output
            m = max(scores.values())
            z = sum(math.exp(s - m) for s in scores.values())
            for j, s in scores.items():
                out += math.exp(s - m) / z * values[j]
        heads.append(out)
    return _w(attn, "out_proj.weight") @ np.concatenate(heads)  # (D, H·Dh) · (H·Dh,) -> (D,)


def _finish(x, attn_out, block: dict, eps: float) -> np.ndarray:
    """Post-LN: x = LayerNorm(x + attention); x = LayerNorm(x + FFN(x)) with exact GELU. (N, D) -> (N, D)."""
    x = layer_norm(x + attn_out, _w(block, "norm1.weight"), _w(block, "norm1.bias"), eps)
    ff = feed_forward(x, block["ff.w1.weight"], block["ff.w1.bias"], block["ff.w2.weight"], block["ff.w2.bias"], "gelu")
    return layer_norm(x + ff, _w(block, "norm2.weight"), _w(block, "norm2.bias"), eps)


def _sub(weights: dict, prefix: str) -> dict:
    """The entries under ``prefix.``, with the prefix removed, as float64 arrays: the weights of one sub-module."""
    return {k[len(prefix) + 1 :]: _w(weights, k) for k in weights if k.startswith(prefix + ".")}


def xlnet_lm(
    ids,
    weights: dict,
    *,
    n_heads: int,
    n_layers: int,
    eps: float = 1e-12,
    valid=None,
    token_type_ids=None,
    content_allowed=None,
    query_allowed=None,
    target_mapping=None,
) -> XLNetStreams:
    """The two-stream forward pass of ``XLNetLMHeadModel`` (evaluation mode) -> :class:`XLNetStreams`.

    ids, valid, token_type_ids (B, T); content_allowed, query_allowed (B, T, T) bool; target_mapping (B, P, T)
    with at most one 1 per row. Defaults: all tokens real, one segment; without targets every token's content
    sees every real token; with targets no token's content sees a target but the target itself, and a target's
    query sees what its content sees, minus itself. Padding (valid False) is never attended to. Target
    row p of sequence b sits at the position marked in target_mapping[b, p]; an all-zero row attends to nothing.
    """
    ids = np.asarray(ids)
    batch, t = ids.shape
    valid = np.ones((batch, t), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    segments = np.zeros((batch, t), dtype=np.int64) if token_type_ids is None else np.asarray(token_type_ids)
    is_target = np.zeros((batch, t), dtype=bool)
    if target_mapping is not None:
        is_target = np.asarray(target_mapping).any(axis=1)  # (B, T)
    if content_allowed is None:
        content_allowed = np.ones((batch, t, t), dtype=bool)
        for b, i, j in np.ndindex(batch, t, t):
            content_allowed[b, i, j] = (not is_target[b, j]) or i == j
    content_allowed = np.asarray(content_allowed, dtype=bool)
    if query_allowed is None:
        query_allowed = content_allowed.copy()
        for b, i in np.ndindex(batch, t):
            query_allowed[b, i, i] = False
    query_allowed = np.asarray(query_allowed, dtype=bool)

    embedding = _w(weights, "xlnet.embedding.weight")  # (V, D)
    h = embedding[ids]  # (B, T, D): the content stream starts at the tokens
    g = None
    if target_mapping is not None:
        target_mapping = np.asarray(target_mapping)
        targets = [[np.flatnonzero(row) for row in target_mapping[b]] for b in range(batch)]  # [] or [position]
        g = np.tile(_w(weights, "xlnet.mask_embedding"), (batch, target_mapping.shape[1], 1))  # (B, P, D): w
    content_states, query_states = [h], None if g is None else [g]

    for layer in range(n_layers):
        block = _sub(weights, f"xlnet.layers.{layer}")
        attn = _sub(block, "attn")
        h_attn = np.zeros_like(h)
        for b in range(batch):
            for i in range(t):
                keys = content_allowed[b, i] & valid[b]  # (T,)
                h_attn[b, i] = _attention(h[b, i], i, segments[b, i], h[b], segments[b], keys, attn, n_heads)
        if g is not None:
            g_attn = np.zeros_like(g)
            for b in range(batch):
                for p, where in enumerate(targets[b]):
                    if len(where) == 0:
                        continue  # an empty target slot attends to nothing
                    i = int(where[0])  # the target's position: its own token is hidden by query_allowed[b, i, i]
                    keys = query_allowed[b, i] & valid[b]
                    g_attn[b, p] = _attention(g[b, p], i, segments[b, i], h[b], segments[b], keys, attn, n_heads)
            g = _finish(g, g_attn, block, eps)  # the same weights on the query stream
            query_states.append(g)
        h = _finish(h, h_attn, block, eps)
        content_states.append(h)

    stream = h if g is None else g
    logits = stream @ embedding.T + _w(weights, "lm_head.bias")  # (B, N, D) · (D, V) + (V,) -> (B, N, V)
    return XLNetStreams(h, g, logits, content_states, query_states)


def plm_loss(logits, labels, ignore_index: int = -100) -> float:
    """Mean over the target slots with a label (≠ ignore_index) of −log softmax(logits)[label]."""
    return cross_entropy(logits, labels, ignore_index)
