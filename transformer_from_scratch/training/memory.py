r"""How much memory one training step needs — estimated from the model config, before anything is built.

Shapes as in ``functional.py`` (B batch · T query length · S key length · H heads · Dh head width · D model width ·
F feed-forward width · V vocabulary), P the number of parameters, b the bytes of one number of ``dtype``
(4 for float32). One step of AdamW holds, at its peak:

    parameters    P·b      counted from the config, a tied matrix once (the model is never built)
    gradients     P·b      one per parameter
    optimizer     2·P·b    AdamW's two moments m and v (``optim.py``)
    buffers                the sinusoidal tables (max_len, D) and RoPE caches (max_len, Dh/2), float64
    activations   b · Σ over layers of the tensors autograd keeps from the forward pass to the backward pass:
                    per norm        n_norm  · B·T·D     its output included (the next projection keeps it)
                    per attention   n_attn  · B·T·D     q, k, v (copies in head layout), the merged heads
                                  + n_score · B·H·T·S   scores / probabilities
                                  + 3·D² (2·D² cross)    the packed copy of W^Q, W^K, W^V that the product keeps
                    per FFN         n_act   · B·T·F     the activation's intermediates and its output
                    logits + loss   n_loss  · B·T·V     the logits and the log-softmax's buffers
                  an encoder block (GPT's too) has 2 norms, 1 attention, 1 FFN; a decoder block 3, 2 (self, cross), 1;
                  plus GPT's final norm, BERT's embedding norm and MLM transform (a D-wide FFN and a norm), the input
                  (B·T·D) of a post-LN 2017 stack, and the int64 token ids
                  + 1 byte (a kept mask, ``dtype`` bytes for ``nn.Dropout`` on a CPU) per element of every
                    tensor that a non-zero dropout touches
    transient     2·b · max(B·H·T·S, B·T·F, B·T·V)      the largest temporaries: a gradient and its operand

with S = T (self-attention; the encoder–decoder's ``seq_len`` is both the source and the target length).

The counts depend on the implementation of the functional core (``impl``), read off its code — ``functional.py``
(autograd keeps every intermediate), ``kernels.py`` (a hand-written backward keeps one or two tensors) and
``fused.py`` (PyTorch's built-ins)::

                                plain   kernels   torch
    n_norm   LayerNorm            4        2        2       plain: x - μ twice, x̂, the output
             RMSNorm              3        3        3       x, x/rms, the output (F.rms_norm is composite on CPU)
    n_attn                        4        5        5       kernels and torch also keep the output O
    n_score                       2        1        0       plain: e^(s - m) and the probabilities; torch: the
                                                            fused kernel never forms T×S (with dropout: 2)
    n_act    relu / gelu / gelu_tanh / swiglu / gated_gelu (T5 v1.1's GEGLU with the tanh GELU)
                             1/4/5/5/7 1/3/2/5/4 1/2/2/4/4  plain relu also keeps a bool mask (1 byte)
    n_loss                        3        2        2       the logits, e^(z - m), log p (plain)

The textbook path (``"plain"``, the default) is the largest. BERT's MLM head is counted over all T positions —
an upper bound for the recipe's loss (``recipes/bert.py``), which scores only the ~15 % selected positions.
The total adds every term, although gradients are allocated while the activations are being freed: an upper
bound of the peak by about the gradients (``tests/test_memory.py`` measures it 5–11 % above the resident peak).
It counts tensors, not the allocator's habits: on Linux, glibc's ``malloc`` raises its mmap threshold as large
blocks are freed (up to 32 MiB), after which freed activations stay in the heap and the resident memory of the
process peaked at 1.14–1.49× this estimate in the same measurements; a fixed threshold
(``MALLOC_MMAP_THRESHOLD_=131072`` in the environment, or ``mallopt``) returns them and removes the difference.

XLNet (``models/xlnet.py``) runs every block twice with the same weights: the content stream over the T tokens
and the query stream over the P targets (``targets``; at most ⌈T/K⌉ in the PLM recipe, at most T). Each stream of
N queries (N = T, then N = P) keeps what an encoder block keeps for N queries against T keys, plus what the
relative attention adds::

    per stream    3 · B·N·D              q + u, q + v, q + b: the three biased copies of the queries
                + H · B·N·(2T−1)         the scores against every distance, which ``gather`` keeps (it saves its
                                         input, not only the index)
                + 10 bytes · B·N·T       the int64 distance index, the bool "other segment", the negated mask
    query stream  − 2 · B·P·D            its keys and values are the content stream's
    once          (B, T, T) and (B, P, T) bool masks, int64 ids and labels; R (2T−1, D) and W_r R per layer
    logits        n_loss · B·P·V         the head scores the P targets only
    transient     2·b · max(B·H·T·(2T−1), B·T·F, B·P·V)

The last layer's content stream feeds nothing the loss reads (the query stream reads that layer's input), but the
model's output holds it until the forward returns, which is when the step peaks, so it is counted.
``tests/test_memory.py`` measures XLNet (plain and kernels, K = 4) as the other families: the estimate is
1.06–1.08× the peak (the torch path is not measured).

T5 (``models/t5.py``, ``T5ForConditionalGeneration``) is counted, as the 2017 encoder–decoder, with a source
and a target of ``seq_len`` tokens each. Its blocks are pre-norm with RMSNorm and no biases — an encoder block has
2 norms, a self-attention and an FFN, a decoder block 3 norms, self- and cross-attention and an FFN — and differ
from the table above in these terms (I = H·d_kv, the width of q, k, v and the merged heads, need not be D)::

    per attention   n_attn · B·T·I                the copies and the merged heads are I wide, not D
                  + 3·D·I (2·D·I cross)           the packed weight copies (no biases)
                    torch: a score bias that needs a gradient (self-attention) or dropout sends
                    ``F.scaled_dot_product_attention`` to PyTorch's math kernel, which keeps 4 · B·T·I (no O) and
                    1 · B·H·T·S (with dropout 3: the probabilities, the float noise, the dropped weights)
    per FFN         gated_gelu: n_act of the table — the tanh GELU's intermediates (plain: w1 x, tanh, ½·w1 x,
                    1 + tanh; kernels and torch: w1 x), the gate's output, w3 x, and their product
    per stack       H·T·S + 8 bytes · T·S         the relative position bias (1, H, T, S), one for the whole batch
                                                  and all blocks, and the int64 bucket index (T, S) of its lookup
    final norms     2 · n_norm · B·T·D            after each stack; + B·T·D, the tied head's copy h·D^-½
    ids             3 · 8 bytes · B·T             the input ids, the labels, the shifted decoder ids
    dropout         T5 drops at one rate everywhere; nn.Dropout keeps its noise in ``dtype`` (B·T·D after the
                    embeddings and the final norm of each stack and on every sub-layer output, B·T·F in every
                    FFN — twice for the kernels' and torch's relu, whose output the activation keeps besides w2's
                    dropped copy); the attention weights' mask as in the first table (plain, kernels: 1 byte)

No backward keeps the bias (the scores add it), but it lives while its stack runs forward, and its gradient
while the stack runs backward: it is counted. ``tests/test_memory.py`` holds the activations term to the tensors
that one forward leaves alive — those the autograd graph keeps, the outputs, the ids and the biases — for the
three paths, ReLU with the tied head and gated GELU untied with dropout: 0.07–0.32 % below them (the per-row
statistics of the norms and softmaxes are not counted). It measures the peak as for the other families (plain
ReLU tied; kernels gated GELU untied; H·d_kv ≠ D): the estimate is 1.07–1.08× it on both paths, and 1.07–1.10×
for the torch path and with dropout 0.1 (measured once, outside the tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

__all__ = [
    "MemoryEstimate",
    "InsufficientMemoryError",
    "parameter_count",
    "estimate_training_memory",
    "available_memory_bytes",
    "check_fits_in_memory",
]

_NORM = {"layer": {"plain": 4, "kernels": 2, "torch": 2}, "rms": {"plain": 3, "kernels": 3, "torch": 3}}
_ATTN = {"plain": 4, "kernels": 5, "torch": 5}
_SCORES = {"plain": 2, "kernels": 1, "torch": 0}
_ACT = {
    "plain": {"relu": 1, "gelu": 4, "gelu_tanh": 5, "swiglu": 5, "gated_gelu": 7},  # + relu's bool mask x > 0
    "kernels": {"relu": 1, "gelu": 3, "gelu_tanh": 2, "swiglu": 5, "gated_gelu": 4},
    "torch": {"relu": 1, "gelu": 2, "gelu_tanh": 2, "swiglu": 4, "gated_gelu": 4},
}
_LOSS = {"plain": 3, "kernels": 2, "torch": 2}
_GIB, _MIB = 2**30, 2**20


def _size(n: float) -> str:
    return f"{n / _GIB:.2f} GiB" if n >= _GIB else f"{n / _MIB:.1f} MiB"


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training step needs; ``total`` is the sum of the others. ``str()`` is a one-line summary."""

    parameters: int
    gradients: int
    optimizer: int
    buffers: int
    activations: int
    transient: int
    n_parameters: int
    total: int = field(init=False)

    def __post_init__(self) -> None:
        parts = (self.parameters, self.gradients, self.optimizer, self.buffers, self.activations, self.transient)
        object.__setattr__(self, "total", sum(parts))

    def breakdown(self) -> str:
        """One line: ``parameters 12.8 MiB, gradients 12.8 MiB, optimizer 25.6 MiB, activations …, transient …``."""
        parts = [("parameters", self.parameters), ("gradients", self.gradients), ("optimizer", self.optimizer)]
        parts += [("buffers", self.buffers)] if self.buffers else []
        parts += [("activations", self.activations), ("transient", self.transient)]
        return ", ".join(f"{name} {_size(n)}" for name, n in parts)

    def __str__(self) -> str:
        return f"about {_size(self.total)} ({self.breakdown()})"


class InsufficientMemoryError(MemoryError):
    """A run whose estimated peak memory exceeds what the machine has available (see :func:`check_fits_in_memory`)."""


# ---- the families, recognised by their fields (training/ imports no model code, not even config.py) ----------


def _family(config) -> str:
    if hasattr(config, "d_kv") and hasattr(config, "num_buckets"):
        return "t5"  # heads of their own width and relative-position buckets: no other model config has both
    for name, family in (("src_vocab_size", "seq2seq"), ("type_vocab_size", "bert"), ("tie_head", "gpt")):
        if hasattr(config, name):
            return family
    if all(hasattr(config, name) for name in ("vocab_size", "n_layers", "d_ff")) and not hasattr(config, "max_len"):
        return "xlnet"  # the one family without max_len: its positions are relative, computed for any length
    raise TypeError(
        "model_config must be a GPTConfig, BertConfig, XLNetConfig, T5Config or TransformerConfig, "
        f"got {type(config).__name__}"
    )


def _ffn_params(d: int, f: int, activation: str, bias: bool) -> int:
    if activation in ("swiglu", "gated_gelu"):
        return 3 * d * f  # w1, w2, w3, never a bias
    return 2 * d * f + (f + d if bias else 0)


def parameter_count(model_config) -> int:
    """The number of parameters of the model a config describes — ``sum(p.numel())`` of the built model, a tied
    matrix counted once — by arithmetic on the config alone."""
    c, family = model_config, _family(model_config)
    d, f = c.d_model, c.d_ff
    if family == "gpt":
        norm = 2 * d if c.norm == "layer" else d
        attention = 4 * d * d + (4 * d if c.bias else 0)
        block = attention + _ffn_params(d, f, c.activation, c.bias) + 2 * norm
        position = c.max_len * d if c.positional == "learned" else 0
        head = 0 if c.tie_head else c.vocab_size * d
        return c.vocab_size * d + position + c.n_layers * block + norm + head
    if family == "t5":
        return _t5_parameter_count(c)
    if family == "xlnet":  # no attention biases; W_r, the u / v / b vectors (H·Dh = D each), two segment vectors
        attention = 5 * d * d + 3 * d + 2 * d
        block = attention + _ffn_params(d, f, "gelu", bias=True) + 2 * 2 * d
        return c.vocab_size * d + d + c.n_layers * block + c.vocab_size  # embedding, mask vector w, head bias
    attention, norm = 4 * d * d + 4 * d, 2 * d  # BERT and the 2017 model: biases and LayerNorm everywhere
    ffn = _ffn_params(d, f, "gelu" if family == "bert" else c.activation, bias=True)
    if family == "bert":
        embeddings = (c.vocab_size + c.max_len + c.type_vocab_size) * d + norm
        heads = (d * d + d) + (d * d + d + norm + c.vocab_size) + (2 * d + 2)  # pooler, MLM (tied), NSP
        return embeddings + c.n_layers * (attention + ffn + 2 * norm) + heads
    embeddings = c.src_vocab_size * d + (0 if c.tie_embeddings else c.tgt_vocab_size * d)
    positions = 2 * c.max_len * d if c.positional == "learned" else 0  # one table per side
    encoder = c.n_encoder_layers * (attention + ffn + 2 * norm)
    decoder = c.n_decoder_layers * (2 * attention + ffn + 3 * norm)
    final = 2 * norm if c.has_final_norm else 0
    generator = 0 if c.tie_output else c.tgt_vocab_size * d
    return embeddings + positions + encoder + decoder + final + generator


def _t5_depths(c) -> tuple[int, int]:
    """(encoder blocks, decoder blocks): ``n_decoder_layers`` None means as many as the encoder."""
    return c.n_layers, c.n_layers if c.n_decoder_layers is None else c.n_decoder_layers


def _t5_parameter_count(c) -> int:
    """No biases anywhere; q, k, v project D -> H·d_kv and the output H·d_kv -> D; RMSNorm weights only; each
    stack owns a (num_buckets, H) bias table and a final norm; the embedding is shared by both stacks and, when
    tied, by the output layer."""
    d, inner = c.d_model, c.n_heads * c.d_kv
    attention = 4 * d * inner
    ffn = _ffn_params(d, c.d_ff, c.feed_forward, bias=False)
    n_enc, n_dec = _t5_depths(c)
    encoder = n_enc * (attention + ffn + 2 * d)
    decoder = n_dec * (2 * attention + ffn + 3 * d)
    stacks = 2 * (c.num_buckets * c.n_heads + d)  # the relative position bias table and the final RMSNorm
    head = 0 if c.tie_word_embeddings else c.vocab_size * d
    return c.vocab_size * d + encoder + decoder + stacks + head


# ---- activations --------------------------------------------------------------------------------------------


def _block_numbers(
    c, *, impl: str, norm: str, activation: str, t: int, n_attn: int, attn_dropout: float, s: int | None = None
):
    """Numbers (float-sized, then mask bytes) one block keeps for the backward pass, per sequence of the batch;
    ``s`` keys per query (default t)."""
    d, h = c.d_model, c.n_heads
    s = t if s is None else s
    n_scores = 2 if impl == "torch" and attn_dropout > 0 else _SCORES[impl]  # dropout sends torch to the math path
    floats = (n_attn + 1) * _NORM[norm][impl] * t * d  # an encoder block has 2 norms, a decoder block 3
    floats += n_attn * (_ATTN[impl] * t * d + n_scores * h * t * s)
    floats += _ACT[impl][activation] * t * c.d_ff
    weights = (3 * d * d + 3 * d) + (n_attn - 1) * (2 * d * d + 2 * d)  # packed [W^Q|W^K|W^V], cross [W^K|W^V]
    masks = n_attn * h * t * s if attn_dropout > 0 else 0
    masks += t * c.d_ff if impl == "plain" and activation == "relu" else 0  # torch.where keeps x > 0
    return floats, weights, masks


def _xlnet_activation_bytes(c, impl: str, b: int, t: int, p: int, itemsize: int) -> int:
    """XLNet's two streams (module docstring): in every layer an encoder block over T queries and one over P queries
    against the same T keys, each with the relative attention's extras; then the head over the P targets."""
    d, h, n_layers = c.d_model, c.n_heads, c.n_layers
    kwargs = dict(impl=impl, norm="layer", activation="gelu", n_attn=1, attn_dropout=c.attention_dropout, s=t)
    content, _, content_masks = _block_numbers(c, t=t, **kwargs)
    query, _, query_masks = _block_numbers(c, t=p, **kwargs)
    query -= 2 * p * d  # its keys and values are the content stream's
    # per stream of N queries: q + u, q + v, q + b and the scores of every distance, which the gather keeps
    content += 3 * t * d + h * t * (2 * t - 1)
    query += 3 * p * d + h * p * (2 * t - 1)
    # The last layer's content stream feeds nothing the loss reads (the query stream reads that layer's *input*), so
    # autograd frees it — but only once the forward returns (the output holds it), after the peak: it is counted.
    floats = n_layers * (content + query) + _LOSS[impl] * p * c.vocab_size
    dropped = 0
    if c.dropout > 0:  # the embeddings, w, and per stream two sub-layer outputs and the activation
        dropped = (t + p) * d + n_layers * (2 * (t + p) * d + (t + p) * c.d_ff)
    # per layer and stream: the int64 distance index, the bool "other segment" and the negated mask the softmax
    # keeps (N·T each); once: the content and query masks (bool), the ids and the labels (int64)
    per_stream = n_layers * (content_masks + query_masks + 10 * (t + p) * t)
    masks = per_stream + (t + p) * t + (t + p) * 8
    weights = n_layers * 3 * d * d  # the packed [W^Q|W^K|W^V] (no biases)
    relative = (1 + n_layers) * (2 * t - 1) * d  # the sinusoids R and each layer's W_r R, for the whole batch
    return int(b * ((floats + dropped) * itemsize + masks) + (weights + relative) * itemsize)


def _t5_attention_numbers(impl: str, t: int, inner: int, h: int, *, bias: bool, dropout: float):
    """(floats, mask bytes) one T5 attention keeps per sequence: q, k, v and the merged heads are H·d_kv = ``inner``
    wide. On the torch path a bias that needs a gradient, or dropout, sends ``F.scaled_dot_product_attention`` to
    PyTorch's math kernel, which keeps the copies of q, k, v and the probabilities but not the output O, and
    draws its dropout as a float tensor of noise (kept) times the probabilities (the product kept by P·V)."""
    scores = h * t * t
    if impl == "torch" and (bias or dropout > 0):
        return 4 * t * inner + (3 if dropout > 0 else 1) * scores, 0
    floats = _ATTN[impl] * t * inner + _SCORES[impl] * scores
    return floats, scores if dropout > 0 else 0  # plain and kernels keep a bool mask of the kept weights


def _t5_activation_bytes(c, impl: str, b: int, t: int, itemsize: int) -> int:
    """T5ForConditionalGeneration with source and target both ``t`` long (module docstring): pre-norm RMSNorm
    blocks, attention H·d_kv wide, one relative position bias per stack, the final norms, the tied head's scaled
    copy, and T5's one dropout rate wherever it drops."""
    d, f, h, inner, p = c.d_model, c.d_ff, c.n_heads, c.n_heads * c.d_kv, c.dropout
    n_enc, n_dec = _t5_depths(c)
    norm = _NORM["rms"][impl] * t * d  # x, x / rms(x) and the output, kept by the projection that reads it
    self_floats, self_masks = _t5_attention_numbers(impl, t, inner, h, bias=True, dropout=p)
    cross_floats, cross_masks = _t5_attention_numbers(impl, t, inner, h, bias=False, dropout=p)
    ffn = _ACT[impl][c.feed_forward] * t * f
    ffn_masks = t * f if impl == "plain" and c.feed_forward == "relu" else 0  # torch.where keeps x > 0
    if p > 0:  # nn.Dropout keeps its float noise; a relu that keeps its own output no longer shares it with w2
        ffn += t * f * (2 if c.feed_forward == "relu" and impl != "plain" else 1)
    dropped = 2 * 2 * t * d if p > 0 else 0  # the noise after the embeddings and after the final norm, per stack
    encoder = 2 * norm + self_floats + ffn + (2 * t * d if p > 0 else 0)  # + a residual dropout per sub-layer
    decoder = 3 * norm + self_floats + cross_floats + ffn + (3 * t * d if p > 0 else 0)
    final = 2 * norm + (t * d if c.tie_word_embeddings else 0)  # both final norms; h · D^-½ for the tied head
    floats = n_enc * encoder + n_dec * decoder + final + dropped + _LOSS[impl] * t * c.vocab_size
    masks = n_enc * (self_masks + ffn_masks) + n_dec * (self_masks + cross_masks + ffn_masks)
    ids = 3 * t * 8 + t  # int64 input ids, labels and shifted decoder ids; the bool source mask
    weights = (n_enc + n_dec) * 3 * d * inner + n_dec * 2 * d * inner  # packed [W^Q|W^K|W^V], cross [W^K|W^V]
    # per stack, for the whole batch: the (1, H, T, T) relative position bias (alive while the stack runs forward,
    # its gradient while it runs backward) and the (T, T) int64 bucket index that the table lookup keeps
    bias = 2 * (h * t * t * itemsize + t * t * 8)
    return int(b * (floats * itemsize + masks + ids) + weights * itemsize + bias)


def _activation_bytes(c, family: str, impl: str, b: int, t: int, itemsize: int) -> int:
    d = c.d_model
    if family == "gpt":
        layer, weights, masks = _block_numbers(
            c, impl=impl, norm=c.norm, activation=c.activation, t=t, n_attn=1, attn_dropout=c.attention_dropout
        )
        floats = c.n_layers * layer + _NORM[c.norm][impl] * t * d + _LOSS[impl] * t * c.vocab_size
        dropped = ((c.embedding_dropout > 0) + (c.dropout > 0) * 2 * c.n_layers) * t * d
        weights, masks = c.n_layers * weights, c.n_layers * masks
    elif family == "bert":
        layer, weights, masks = _block_numbers(
            c, impl=impl, norm="layer", activation="gelu", t=t, n_attn=1, attn_dropout=c.attention_dropout
        )
        mlm_transform = (_ACT[impl]["gelu"] + _NORM["layer"][impl]) * t * d  # a D-wide "FFN" and a norm
        floats = _NORM["layer"][impl] * t * d + c.n_layers * layer + mlm_transform + _LOSS[impl] * t * c.vocab_size
        dropped = (1 + 2 * c.n_layers) * t * d if c.dropout > 0 else 0
        weights, masks = c.n_layers * weights, c.n_layers * masks
    else:
        kwargs = dict(impl=impl, norm="layer", activation=c.activation, t=t, attn_dropout=c.attention_dropout)
        enc, enc_w, enc_m = _block_numbers(c, n_attn=1, **kwargs)
        dec, dec_w, dec_m = _block_numbers(c, n_attn=2, **kwargs)
        n_enc, n_dec = c.n_encoder_layers, c.n_decoder_layers
        embedded = 0 if c.norm_first else 2 * t * d  # a post-LN stack's first projections keep its input
        final = 2 * _NORM["layer"][impl] * t * d if c.has_final_norm else 0
        floats = n_enc * enc + n_dec * dec + embedded + final + _LOSS[impl] * t * c.tgt_vocab_size
        dropped = (2 + 2 * n_enc + 3 * n_dec) * t * d if c.dropout > 0 else 0
        dropped += (n_enc + n_dec) * t * c.d_ff if c.activation_dropout > 0 else 0
        weights, masks = n_enc * enc_w + n_dec * dec_w, n_enc * enc_m + n_dec * dec_m
    ids = (3 if family == "bert" else 2) * t * 8  # int64 token ids (and segments, labels) the lookups keep
    return int(b * ((floats + dropped) * itemsize + masks + ids) + weights * itemsize)


def _buffer_bytes(c, family: str) -> int:
    if family == "gpt" and c.positional == "rope":
        return 2 * c.max_len * (c.d_head // 2) * 8  # cos and sin, float64
    if family == "seq2seq" and c.positional == "sinusoidal":
        return 2 * c.max_len * c.d_model * 8  # one float64 table per side
    return 0


def estimate_training_memory(
    model_config, *, batch_size: int, seq_len: int, dtype: torch.dtype = torch.float32, targets: int | None = None
) -> MemoryEstimate:
    """The memory one AdamW training step of ``model_config``'s model needs on sequences of ``seq_len`` tokens in
    batches of ``batch_size`` — the formula of the module docstring, from the config alone (nothing is built, so
    it is instant for any size). ``dtype``: the parameters' and activations' dtype (float32: 4 bytes).
    ``targets``: XLNet only, the query stream's length P (targets per sequence; default ``seq_len``, the most
    there can be)."""
    family = _family(model_config)
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    if targets is not None and family != "xlnet":
        raise ValueError(f"targets is the query-stream length of XLNet; a {type(model_config).__name__} has none")
    if targets is not None and (isinstance(targets, bool) or not isinstance(targets, int) or not 1 <= targets):
        raise ValueError(f"targets must be a positive int (at most seq_len={seq_len}), got {targets!r}")
    if targets is not None and targets > seq_len:
        raise ValueError(f"targets={targets} exceeds seq_len={seq_len}: there are at most seq_len targets")
    c, itemsize = model_config, dtype.itemsize
    n = parameter_count(c)
    vocab = c.tgt_vocab_size if family == "seq2seq" else c.vocab_size
    b, t = batch_size, seq_len
    largest = max(b * c.n_heads * t * t, b * t * c.d_ff, b * t * vocab)
    if family == "xlnet":
        p = seq_len if targets is None else targets
        largest = max(b * c.n_heads * t * (2 * t - 1), b * t * c.d_ff, b * p * vocab)  # scores of every distance
        activations = _xlnet_activation_bytes(c, c.impl, b, t, p, itemsize)
    elif family == "t5":
        activations = _t5_activation_bytes(c, c.impl, b, t, itemsize)
    else:
        activations = _activation_bytes(c, family, c.impl, b, t, itemsize)
    return MemoryEstimate(
        parameters=n * itemsize,
        gradients=n * itemsize,
        optimizer=2 * n * itemsize,
        buffers=_buffer_bytes(c, family),
        activations=activations,
        transient=2 * largest * itemsize,
        n_parameters=n,
    )


# ---- will it fit? -------------------------------------------------------------------------------------------


def available_memory_bytes() -> int | None:
    """Memory available to a new process: ``MemAvailable`` of /proc/meminfo (Linux), else the free physical pages
    (``os.sysconf``), else None when the platform tells neither."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_in_memory(estimate: MemoryEstimate, available: int | None = None, *, fraction: float = 0.9) -> None:
    """Raise :class:`InsufficientMemoryError` when ``estimate.total`` exceeds ``fraction`` of ``available`` bytes
    (default: :func:`available_memory_bytes`). Does nothing when the available memory cannot be told."""
    if not isinstance(estimate, MemoryEstimate):
        raise TypeError(f"estimate must be a MemoryEstimate, got {type(estimate).__name__}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if available is None:
        available = available_memory_bytes()
        if available is None:
            return
    if estimate.total > fraction * available:
        raise InsufficientMemoryError(
            f"this run needs {estimate} but only {_size(available)} is available "
            f"({fraction:.0%} of it usable); lower the batch size or the sequence length, or choose a smaller model"
        )
