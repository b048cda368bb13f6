r"""T5 — Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer".

Every task is text in, text out: "translate English to French: two hundred" -> "deux cents", "summarize: …" ->
one sentence. The model is the 2017 encoder–decoder (``models/transformer.py``) with four changes (§2.1):

    pre-norm blocks      x + Dropout(Sublayer(RMSNorm(x))), and one more RMSNorm after each stack
    relative positions   no position embeddings; each head adds a learned scalar b_h(bucket(j − i)) to the score
                         of query i and key j (``positional.RelativePositionBias``): buckets both ways in the
                         encoder, only the past in the decoder's self-attention, none in cross-attention
    no biases            every projection is bias-free; heads have their own width d_kv (H·d_kv need not be D)
    unscaled scores      q·k without 1/√d_kv — T5 folds that factor into the initialisation of W^Q

    encoder   m = RMSNorm(EncoderBlock_L(… EncoderBlock_1(E[x]) …))                bias: bidirectional buckets
    decoder   h = RMSNorm(DecoderBlock_L(… DecoderBlock_1(E[y_shifted], m) …))     bias: causal buckets
    logits    (h · D^-½) Eᵀ        (the embedding matrix E is shared by encoder, decoder and output)

The blocks are the package's :class:`~blocks.EncoderBlock` and :class:`~blocks.DecoderBlock` built from
``T5Config.block_config()`` (RMSNorm, pre-norm, ``bias=False``, ``d_kv``, ``attention_scale=1``). T5 keeps the
bias table in the first block of each stack and lets the others reuse it; here the stack owns it
(``encoder.position_bias``), computes the (1, H, T, S) bias once per call and hands the same tensor to every
block — the same numbers, one table per stack. The feed-forward network is ReLU (T5 1.0) or gated GELU (T5 v1.1).

Training: ``labels`` (B, T) are the target ids with -100 where nothing is scored (padding). The decoder reads
them shifted right — ``decoder_start_id`` first, the last label dropped, -100 replaced by ``pad_id`` — so
position t predicts labels[t] from labels[< t] (teacher forcing). The loss is the mean cross-entropy over labels
that are not -100.

Generation (:meth:`T5ForConditionalGeneration.generate`): greedy, sampling or beam search through
``generation.py``. The source is encoded once; with ``use_cache=True`` each step feeds the decoder one token,
extends the self-attention keys and values by one position (:class:`~attention.EncoderDecoderKVCache`) and reads
the cross-attention keys and values of the encoder output, computed on the first step only.

Padding: ``valid`` (B, S) bool, True at real source tokens — by default ``input_ids != pad_id``.
``decoder_valid`` (B, T) marks real decoder tokens; by default all are real, because the decoder's first input,
``decoder_start_id``, is the pad id in T5 — and with right padding the causal mask already keeps every real
position away from the padding after it. Hugging Face's ``attention_mask`` is ``valid`` (1 = real token).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import functional as tf
from .. import generation, masks
from .._validation import check_ids_2d, check_labels, check_token_ids, check_valid
from ..attention import EncoderDecoderKVCache, MultiHeadAttention
from ..blocks import DecoderBlock, EncoderBlock
from ..config import T5Config
from ..interop import hf_t5
from ..layers import FeedForward, RMSNorm, TokenEmbedding
from ..positional import RelativePositionBias
from ..stacks import StackOutput

__all__ = ["T5Model", "T5ForConditionalGeneration", "T5Output", "T5EncoderStack", "T5DecoderStack", "shift_right"]


@dataclass(frozen=True, eq=False)
class T5Output:
    """What :class:`T5Model` and :class:`T5ForConditionalGeneration` return (``forward`` and ``decode``).

    last_hidden_state (B, T, D) — the decoder output after its final norm (and dropout); logits (B, T, V) — the
    scores of the next token at every decoder position (:class:`T5ForConditionalGeneration` only, else None);
    loss — mean cross-entropy against ``labels`` when given; encoder_last_hidden_state (B, S, D) — the memory
    (``forward`` only); kv_cache — the decoder's :class:`~attention.EncoderDecoderKVCache` when decoding
    incrementally (``use_cache=True`` or ``kv_cache=`` given), else None.
    """

    last_hidden_state: Tensor
    logits: Tensor | None = None
    loss: Tensor | None = None
    encoder_last_hidden_state: Tensor | None = None
    kv_cache: EncoderDecoderKVCache | None = None


def shift_right(labels: Tensor, decoder_start_id: int, pad_id: int) -> Tensor:
    """Decoder inputs for teacher forcing: labels (B, T) -> (B, T) = [start, labels[:, :-1]] with -100 -> pad_id."""
    start = torch.full_like(labels[:, :1], decoder_start_id)  # (B, 1)
    shifted = torch.cat([start, labels[:, :-1]], dim=1)  # (B, T)
    return shifted.masked_fill(shifted == -100, pad_id)


class _T5Stack(nn.Module):
    """Blocks of one kind, the relative position bias they share, the final RMSNorm and T5's dropouts."""

    def __init__(self, block_cls, config: T5Config, n_layers: int, *, bidirectional: bool):
        super().__init__()
        c = config
        self.position_bias = RelativePositionBias(
            c.n_heads, bidirectional=bidirectional, num_buckets=c.num_buckets, max_distance=c.max_distance
        )  # (num_buckets, H) table, one per stack
        self.layers = nn.ModuleList([block_cls(c.block_config()) for _ in range(n_layers)])
        self.final_norm = RMSNorm(c.d_model, eps=c.layer_norm_eps, impl=c.impl)
        self.dropout = nn.Dropout(c.dropout)  # after the embeddings and after the final norm


class T5EncoderStack(_T5Stack):
    """L :class:`~blocks.EncoderBlock` s with a bidirectional relative position bias; embeddings in, memory out.

    forward(x (B, S, D) embeddings, valid=None (B, S) bool) -> :class:`~stacks.StackOutput` (memory (B, S, D)).
    """

    def __init__(self, config: T5Config):
        super().__init__(EncoderBlock, config, config.n_layers, bidirectional=True)

    def forward(self, x: Tensor, valid: Tensor | None = None) -> StackOutput:
        s = x.shape[1]
        bias = self.position_bias(s, s)  # (1, H, S, S): b_h(bucket(j − i)), the same tensor for every block
        allowed = None if valid is None else masks.key_padding(valid)  # (B, 1, 1, S)
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x, allowed=allowed, bias=bias)  # (B, S, D)
        return StackOutput(last_hidden_state=self.dropout(self.final_norm(x)))


class T5DecoderStack(_T5Stack):
    """L :class:`~blocks.DecoderBlock` s with a causal relative position bias in self-attention.

    forward(y (B, T, D) embeddings, memory (B, S, D), *, valid=None (B, T), src_valid=None (B, S),
    kv_cache=None) -> :class:`~stacks.StackOutput`. With an :class:`~attention.EncoderDecoderKVCache` holding
    S_past positions, y holds the T new ones at positions S_past … S_past + T − 1; ``valid`` covers only them.
    """

    def __init__(self, config: T5Config):
        super().__init__(DecoderBlock, config, config.n_decoder, bidirectional=False)

    def forward(
        self,
        y: Tensor,
        memory: Tensor,
        *,
        valid: Tensor | None = None,
        src_valid: Tensor | None = None,
        kv_cache: EncoderDecoderKVCache | None = None,
    ) -> StackOutput:
        t = y.shape[1]
        past = 0 if kv_cache is None else kv_cache.length
        s = past + t  # keys of the self-attention: the cached positions, then the new ones
        bias = self.position_bias(t, s, query_offset=past)  # (1, H, T, S)
        self_allowed = masks.causal_mask(t, s, device=y.device)  # (T, S), bottom-right aligned
        if kv_cache is not None:
            new_valid = torch.ones(y.shape[:2], dtype=torch.bool, device=y.device) if valid is None else valid
            valid = new_valid if kv_cache.valid is None else torch.cat([kv_cache.valid, new_valid], dim=1)
            kv_cache.valid = valid  # (B, S): every cached and new decoder position
        if valid is not None:
            self_allowed = masks.combine(self_allowed, masks.key_padding(valid))  # (B, 1, T, S)
        cross_allowed = None if src_valid is None else masks.key_padding(src_valid)  # (B, 1, 1, S_src)
        y = self.dropout(y)
        for i, layer in enumerate(self.layers):
            caches = {}
            if kv_cache is not None:
                caches = dict(kv_cache=kv_cache.self_attn[i], cross_kv_cache=kv_cache.cross_attn[i])
            y = layer(y, memory, self_allowed=self_allowed, cross_allowed=cross_allowed, self_bias=bias, **caches)
        return StackOutput(last_hidden_state=self.dropout(self.final_norm(y)))


class T5Model(nn.Module):
    """The T5 encoder–decoder without an output layer: shared embedding, encoder stack, decoder stack.

    Sub-modules: ``shared`` (:class:`~layers.TokenEmbedding` (V, D), unscaled), ``encoder``
    (:class:`T5EncoderStack`), ``decoder`` (:class:`T5DecoderStack`).

    forward(input_ids (B, S), decoder_input_ids (B, T), *, valid=None, decoder_valid=None) -> :class:`T5Output`
    with the decoder's ``last_hidden_state`` (B, T, D) and the memory. :meth:`encode` and :meth:`decode` run the
    halves separately (generation encodes once and decodes step by step).
    """

    def __init__(self, config: T5Config):
        super().__init__()
        if not isinstance(config, T5Config):
            raise TypeError(f"config must be a T5Config (e.g. T5Config.tiny()), got {type(config).__name__}")
        self.config = config
        self.shared = TokenEmbedding(config.vocab_size, config.d_model, check_ids=False)
        self.encoder = T5EncoderStack(config)
        self.decoder = T5DecoderStack(config)
        self._build_head()
        self.reset_parameters()

    def _build_head(self) -> None:
        """No output layer here; :class:`T5ForConditionalGeneration` adds its untied ``lm_head``."""

    def reset_parameters(self) -> None:
        r"""T5's initialisation (Mesh TensorFlow, as the released models), with f = ``initializer_factor``:
        embeddings and an untied head N(0, f²); W^Q N(0, f²/(D·d_kv)) — the 1/√d_kv the scores leave out —,
        W^K, W^V N(0, f²/D), W^O N(0, f²/(H·d_kv)); feed-forward inputs N(0, f²/D), output N(0, f²/F); position
        bias tables N(0, f²/D); RMSNorm weights f."""
        c, f = self.config, self.config.initializer_factor
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, MultiHeadAttention):
                    nn.init.normal_(module.q_proj.weight, std=f * (c.d_model * c.d_kv) ** -0.5)
                    nn.init.normal_(module.k_proj.weight, std=f * c.d_model**-0.5)
                    nn.init.normal_(module.v_proj.weight, std=f * c.d_model**-0.5)
                    nn.init.normal_(module.out_proj.weight, std=f * (c.n_heads * c.d_kv) ** -0.5)
                elif isinstance(module, FeedForward):
                    for inner in (module.w1, getattr(module, "w3", None)):
                        if inner is not None:
                            nn.init.normal_(inner.weight, std=f * c.d_model**-0.5)
                    nn.init.normal_(module.w2.weight, std=f * c.d_ff**-0.5)
                elif isinstance(module, RelativePositionBias):
                    nn.init.normal_(module.embedding.weight, std=f * c.d_model**-0.5)
                elif isinstance(module, RMSNorm):
                    module.weight.fill_(f)
            nn.init.normal_(self.shared.weight, std=f)
            head = getattr(self, "lm_head", None)
            if head is not None:
                nn.init.normal_(head.weight, std=f)

    # ---- input checks ---------------------------------------------------------------------------------

    def _check_ids(self, ids, name: str) -> None:
        check_ids_2d(ids, name)
        check_token_ids(ids, self.config.vocab_size, name)

    def _source_valid(self, input_ids: Tensor, valid: Tensor | None) -> Tensor:
        if valid is None:
            return masks.padding_mask_from_ids(input_ids, self.config.pad_id)  # (B, S)
        check_valid(valid, "valid", tuple(input_ids.shape))
        return valid.to(input_ids.device)

    def _check_memory(self, memory, src_valid: Tensor | None, batch: int) -> None:
        d = self.config.d_model
        if not isinstance(memory, Tensor) or memory.dim() != 3 or memory.shape[-1] != d:
            got = tuple(memory.shape) if isinstance(memory, Tensor) else type(memory).__name__
            raise ValueError(f"memory must be the encoder output of shape (B, S, d_model={d}), got {got}")
        if memory.shape[0] != batch:
            raise ValueError(f"batch sizes differ: decoder_input_ids has {batch} rows vs memory {tuple(memory.shape)}")
        if src_valid is not None:
            check_valid(src_valid, "src_valid", tuple(memory.shape[:2]), shape_of="the memory (B, S)")

    # ---- the two halves ---------------------------------------------------------------------------------

    def encode(self, input_ids: Tensor, valid: Tensor | None = None) -> StackOutput:
        """input_ids (B, S) -> :class:`~stacks.StackOutput` with the memory (B, S, D) in ``last_hidden_state``.

        ``valid`` (B, S) bool, True at real tokens; default ``input_ids != pad_id``."""
        self._check_ids(input_ids, "input_ids")
        valid = self._source_valid(input_ids, valid)
        return self.encoder(self.shared(input_ids), valid)  # (B, S) -> (B, S, D) -> (B, S, D)

    def _decoder_states(self, decoder_input_ids, memory, src_valid, tgt_valid, kv_cache, use_cache):
        self._check_ids(decoder_input_ids, "decoder_input_ids")
        self._check_memory(memory, src_valid, decoder_input_ids.shape[0])
        if tgt_valid is not None:
            check_valid(tgt_valid, "tgt_valid", tuple(decoder_input_ids.shape), shape_of="decoder_input_ids")
        if kv_cache is not None and not isinstance(kv_cache, EncoderDecoderKVCache):
            raise TypeError(f"kv_cache must be an EncoderDecoderKVCache or None, got {type(kv_cache).__name__}")
        if kv_cache is None and use_cache:
            kv_cache = EncoderDecoderKVCache(self.config.n_decoder)
        y = self.shared(decoder_input_ids)  # (B, T) -> (B, T, D)
        out = self.decoder(y, memory, valid=tgt_valid, src_valid=src_valid, kv_cache=kv_cache)
        return out.last_hidden_state, kv_cache  # (B, T, D)

    def decode(
        self,
        decoder_input_ids: Tensor,
        memory: Tensor,
        *,
        src_valid: Tensor | None = None,
        tgt_valid: Tensor | None = None,
        kv_cache: EncoderDecoderKVCache | None = None,
        use_cache: bool = False,
    ) -> T5Output:
        """decoder_input_ids (B, T), memory (B, S, D) -> :class:`T5Output` (decoder states (B, T, D)).

        ``src_valid`` (B, S) masks padded source keys; ``tgt_valid`` (B, T) padded decoder keys (default: all
        real). ``kv_cache`` continues an incremental decoding (the T ids are the new positions); ``use_cache=True``
        starts one. The cache comes back in ``kv_cache``."""
        hidden, cache = self._decoder_states(decoder_input_ids, memory, src_valid, tgt_valid, kv_cache, use_cache)
        return T5Output(last_hidden_state=hidden, kv_cache=cache)

    def forward(
        self,
        input_ids: Tensor,
        decoder_input_ids: Tensor,
        *,
        valid: Tensor | None = None,
        decoder_valid: Tensor | None = None,
    ) -> T5Output:
        """input_ids (B, S), decoder_input_ids (B, T) -> :class:`T5Output` with the decoder states (B, T, D)."""
        memory = self.encode(input_ids, valid).last_hidden_state  # (B, S, D)
        src_valid = self._source_valid(input_ids, valid)
        hidden = self.decode(decoder_input_ids, memory, src_valid=src_valid, tgt_valid=decoder_valid)
        return T5Output(last_hidden_state=hidden.last_hidden_state, encoder_last_hidden_state=memory)

    # ---- Hugging Face ------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, dtype: torch.dtype | None = None):
        """Load a local Hugging Face T5 folder (``config.json`` + weights) in eval mode; no network access.

        See :func:`interop.hf_t5.read_pretrained` for the files accepted and the errors (a T5Model drops the LM
        head of a T5ForConditionalGeneration checkpoint). ``dtype`` defaults to float32 whatever the checkpoint
        stores."""
        config, state = hf_t5.read_pretrained(path, lm_head=issubclass(cls, T5ForConditionalGeneration))
        model = cls(config).to(torch.float32 if dtype is None else dtype)  # the dtype first: loading casts into it
        model.load_state_dict(state)
        return model.eval()

    @classmethod
    def from_hf(cls, hf_model: nn.Module):
        """A live ``transformers`` T5ForConditionalGeneration / T5Model -> ours with its config and weights, in
        its dtype, eval mode (reads only ``hf_model.config`` and ``hf_model.state_dict()``, converted strictly)."""
        config, state = hf_t5.read_hf_model(hf_model, lm_head=issubclass(cls, T5ForConditionalGeneration))
        model = cls(config).to(state["shared.weight"].dtype)  # the dtype first: loading casts into it
        model.load_state_dict(state)
        return model.eval()


class T5ForConditionalGeneration(T5Model):
    """T5 with its output layer: logits over the vocabulary at every decoder position, the loss, and generation.

    The output layer is the shared embedding (``tie_word_embeddings``, the default: logits = (h · D^-½) Eᵀ) or
    its own ``lm_head`` (``nn.Linear(D, V, bias=False)``, T5 v1.1: logits = h Wᵀ).

    forward(input_ids (B, S), decoder_input_ids=None (B, T), *, labels=None (B, T), valid=None,
    decoder_valid=None) -> :class:`T5Output` with ``logits`` (B, T, V) and, with labels, ``loss``. Without
    ``decoder_input_ids`` the decoder reads the labels shifted right (:func:`shift_right`).
    """

    def _build_head(self) -> None:
        if not self.config.tie_word_embeddings:
            self.lm_head = nn.Linear(self.config.d_model, self.config.vocab_size, bias=False)  # (B,T,D) -> (B,T,V)

    def shift_right(self, labels: Tensor) -> Tensor:
        """labels (B, T) -> decoder inputs (B, T): ``decoder_start_id`` first, -100 -> ``pad_id``."""
        return shift_right(labels, self.config.decoder_start_id, self.config.pad_id)

    def project(self, hidden: Tensor) -> Tensor:
        """Decoder states (B, T, D) -> logits (B, T, V)."""
        if self.config.tie_word_embeddings:
            # Mesh TensorFlow rescales before the tied output layer: its embeddings have unit variance per entry.
            return F.linear(hidden * self.config.d_model**-0.5, self.shared.weight)  # (B,T,D)·(D,V) -> (B,T,V)
        return self.lm_head(hidden)

    def decode(
        self,
        decoder_input_ids: Tensor,
        memory: Tensor,
        *,
        src_valid: Tensor | None = None,
        tgt_valid: Tensor | None = None,
        kv_cache: EncoderDecoderKVCache | None = None,
        use_cache: bool = False,
    ) -> T5Output:
        """As :meth:`T5Model.decode`, with the ``logits`` (B, T, V) of every decoder position."""
        hidden, cache = self._decoder_states(decoder_input_ids, memory, src_valid, tgt_valid, kv_cache, use_cache)
        return T5Output(last_hidden_state=hidden, logits=self.project(hidden), kv_cache=cache)

    def forward(
        self,
        input_ids: Tensor,
        decoder_input_ids: Tensor | None = None,
        *,
        labels: Tensor | None = None,
        valid: Tensor | None = None,
        decoder_valid: Tensor | None = None,
    ) -> T5Output:
        if labels is not None:
            if not isinstance(labels, Tensor) or labels.dim() != 2:
                raise ValueError(f"labels must be a (B, T) tensor of token ids and -100, got {_shape(labels)}")
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("give decoder_input_ids, or labels (the decoder then reads them shifted right)")
            decoder_input_ids = self.shift_right(labels)  # (B, T)
        if labels is not None:
            check_labels(labels, "labels", tuple(decoder_input_ids.shape), shape_of="decoder_input_ids")
        memory = self.encode(input_ids, valid).last_hidden_state  # (B, S, D)
        src_valid = self._source_valid(input_ids, valid)
        out = self.decode(decoder_input_ids, memory, src_valid=src_valid, tgt_valid=decoder_valid)
        loss = None
        if labels is not None:
            loss = tf.cross_entropy(out.logits, labels, ignore_index=-100, impl=self.config.impl)  # mean over labels
        return T5Output(
            last_hidden_state=out.last_hidden_state, logits=out.logits, loss=loss, encoder_last_hidden_state=memory
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        *,
        max_new_tokens: int,
        valid: Tensor | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        beam_size: int | None = None,
        length_penalty: float = 1.0,
        eos_id: int | None = None,
        pad_id: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Generate the output text of each source: (B, S) -> decoder ids (B, 1 + n), ``decoder_start_id`` first.

        Greedy by default; ``do_sample`` draws from softmax(filter(logits / temperature)) with top-k / top-p and
        ``generator``; ``beam_size`` runs :func:`generation.beam_search` and returns its best sequences. A row
        stops at ``eos_id`` (default ``config.eos_id``) and is filled with ``pad_id`` (default ``config.pad_id``)
        — what Hugging Face's ``generate`` returns. ``use_cache`` decodes with the KV cache (same tokens, fewer
        computations). ``valid`` (B, S): real source tokens (default ``input_ids != pad_id``). Put the model in
        ``eval()`` mode first, or dropout stays on.
        """
        self._check_ids(input_ids, "input_ids")
        if input_ids.shape[0] == 0:
            raise ValueError(f"input_ids holds no source: the batch is empty (shape {tuple(input_ids.shape)})")
        valid = self._source_valid(input_ids, valid)
        eos_id = self.config.eos_id if eos_id is None else eos_id
        pad_id = self.config.pad_id if pad_id is None else pad_id
        logits_fn = generation.encoder_decoder_logits_fn(self, input_ids, valid, use_cache=use_cache)
        prefix = torch.full((input_ids.shape[0], 1), self.config.decoder_start_id, device=input_ids.device)
        if beam_size is not None:
            if do_sample:
                raise ValueError("choose either beam_size= (beam search) or do_sample=True (sampling), not both")
            result = generation.beam_search(
                logits_fn,
                prefix,
                beam_size=beam_size,
                max_new_tokens=max_new_tokens,
                eos_id=eos_id,
                length_penalty=length_penalty,
                pad_id=pad_id,
            )
            return result.sequences
        if do_sample:
            return generation.sample(
                logits_fn,
                prefix,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                eos_id=eos_id,
                pad_id=pad_id,
                generator=generator,
            )
        return generation.greedy(logits_fn, prefix, max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id)


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__
