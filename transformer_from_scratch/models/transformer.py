r"""The encoder–decoder Transformer of Vaswani et al. 2017, "Attention Is All You Need" (Figure 1).

    memory = Encoder(Dropout(Embed_src(src) + PE))                                   (B, S, D)
    logits = Generator(Decoder(Dropout(Embed_tgt(tgt) + PE), memory))                (B, T, V_tgt)

with the embeddings multiplied by √D (§3.4), sinusoidal positions (§3.5), N post-LN blocks per stack and a
linear "generator" producing next-token logits (softmax is left to the loss or to the sampler).

Masks (one polarity: ``allowed`` is True where a query may attend to a key):
  * encoder self-attention: every query sees the real source tokens            key_padding(src_valid)
  * decoder self-attention: position i sees target positions ≤ i that are real causal ∧ key_padding(tgt_valid)
  * cross-attention: every target position sees the real source tokens         key_padding(src_valid)
``src_valid`` (B, S) / ``tgt_valid`` (B, T) are bool masks, True at real tokens. When omitted they come from
``config.pad_id`` (if set); otherwise every token is real. Padded *query* positions still get an output
(a function of the real tokens only); the loss should ignore it.

Parameter sharing (§3.4): ``tie_embeddings`` uses one module for both embeddings, ``tie_output`` makes the
generator's weight the target embedding matrix, so paper_base() stores the 37000 × 512 table once.

``forward`` returns a :class:`Seq2SeqOutput` (logits, the loss when ``labels`` are given, attention weights when
asked); ``encode`` returns the encoder's :class:`~stacks.StackOutput` (the memory is its ``last_hidden_state``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import masks
from .._validation import check_ids_2d, check_labels, check_token_ids, check_valid
from ..config import TransformerConfig
from ..functional import cross_entropy
from ..layers import TokenEmbedding
from ..positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from ..stacks import Decoder, Encoder, StackOutput

__all__ = ["EncoderDecoder", "Seq2SeqOutput"]


@dataclass(frozen=True, eq=False)
class Seq2SeqOutput:
    """What :class:`EncoderDecoder` returns (``forward`` and ``decode``).

    logits (B, T, V_tgt) — scores of the token *after* each target position; loss — mean cross-entropy against
    ``labels`` (ignoring -100) when they were given, else None; with ``return_attention=True``, one tensor per
    layer: encoder_attentions (B, H, S, S) (``forward`` only), decoder_self_attentions (B, H, T, T) and
    decoder_cross_attentions (B, H, T, S), else None.
    """

    logits: Tensor
    loss: Tensor | None = None
    encoder_attentions: tuple[Tensor, ...] | None = None
    decoder_self_attentions: tuple[Tensor, ...] | None = None
    decoder_cross_attentions: tuple[Tensor, ...] | None = None


class EncoderDecoder(nn.Module):
    """The 2017 Transformer: source/target embeddings + positions, encoder, decoder, output projection.

    Build it from a config: ``EncoderDecoder(TransformerConfig.tiny())`` or
    ``EncoderDecoder(TransformerConfig.paper_base())``.

    Sub-modules: ``src_embed``, ``tgt_embed`` (the same module when tied), ``src_positional``,
    ``tgt_positional``, ``dropout``, ``encoder`` (:class:`~stacks.Encoder`), ``decoder``
    (:class:`~stacks.Decoder`) and ``generator`` (``nn.Linear(D, V_tgt, bias=False)``, its weight *is*
    ``tgt_embed.weight`` when ``tie_output``).
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        self.config = config
        c = config
        self.src_embed = TokenEmbedding(c.src_vocab_size, c.d_model, scale=c.scale_embeddings, check_ids=False)
        if c.tie_embeddings:
            self.tgt_embed = self.src_embed  # §3.4: "the same weight matrix between the two embedding layers"
        else:
            self.tgt_embed = TokenEmbedding(c.tgt_vocab_size, c.d_model, scale=c.scale_embeddings, check_ids=False)
        self.src_positional = self._make_positional(c)
        self.tgt_positional = self._make_positional(c)
        self.dropout = nn.Dropout(c.dropout)  # on the sums of embeddings and positional encodings (§5.4)
        self.encoder = Encoder(c.block_config(), c.n_encoder_layers, final_norm=c.has_final_norm)
        self.decoder = Decoder(c.block_config(), c.n_decoder_layers, final_norm=c.has_final_norm)
        # The paper's "learned linear transformation" before the softmax (§3.4); no bias, so that with
        # tie_output it is exactly the (transposed) embedding matrix.
        self.generator = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)  # (B,T,D) -> (B,T,V)
        self.reset_parameters()
        if c.tie_output:
            self.generator.weight = self.tgt_embed.weight  # (V, D): logits = h · Eᵀ

    @staticmethod
    def _make_positional(c: TransformerConfig) -> nn.Module:
        if c.positional == "sinusoidal":
            return SinusoidalPositionalEncoding(c.d_model, c.max_len)
        return LearnedPositionalEmbedding(c.max_len, c.d_model)

    def reset_parameters(self) -> None:
        """Glorot/Xavier-uniform for every weight matrix of the stacks and the generator.

        The paper does not say how it initialised; this is what ``nn.Transformer`` and the tensor2tensor code
        do. Biases keep ``nn.Linear``'s default, norms start at weight 1 / bias 0, embeddings at N(0, 1/D).
        """
        for module in (self.encoder, self.decoder, self.generator):
            for p in module.parameters():
                if p.dim() == 2:
                    nn.init.xavier_uniform_(p)

    # ---- input checks ---------------------------------------------------------------------------------

    def _check_ids(self, ids: Tensor, name: str, vocab_size: int, side: str) -> None:
        check_ids_2d(ids, name)
        check_token_ids(ids, vocab_size, name, f"{side} vocabulary")
        if ids.shape[1] > self.config.max_len:
            raise ValueError(
                f"{name} has sequence length {ids.shape[1]}, which exceeds max_len={self.config.max_len} of the "
                "positional table; truncate the input or build the model with a larger max_len"
            )

    def _valid(self, ids: Tensor, valid: Tensor | None, name: str) -> Tensor | None:
        """The (B, L) real-token mask for ``ids``: the given one (checked), one derived from pad_id, or None."""
        if valid is None:
            return None if self.config.pad_id is None else masks.padding_mask_from_ids(ids, self.config.pad_id)
        check_valid(valid, name, tuple(ids.shape), shape_of="the token ids")
        return valid.to(ids.device)

    def _check_memory(self, memory: Tensor, src_valid: Tensor | None, batch: int) -> None:
        d_model = self.config.d_model
        if not isinstance(memory, Tensor) or memory.dim() != 3 or memory.shape[-1] != d_model:
            got = tuple(memory.shape) if isinstance(memory, Tensor) else type(memory).__name__
            raise ValueError(f"memory must be the encoder output of shape (B, S, d_model={d_model}), got {got}")
        if memory.shape[0] != batch:
            raise ValueError(
                f"batch sizes differ: tgt_ids has {batch} rows vs memory {tuple(memory.shape)} "
                "(one target sequence per source sequence)"
            )
        if src_valid is not None:
            if not isinstance(src_valid, Tensor) or src_valid.dtype != torch.bool:
                got = src_valid.dtype if isinstance(src_valid, Tensor) else type(src_valid).__name__
                raise TypeError(f"src_valid must be a bool tensor, True at real tokens, got {got}")
            if tuple(src_valid.shape) != tuple(memory.shape[:2]):
                raise ValueError(
                    f"src_valid must have shape (B, S) = {tuple(memory.shape[:2])} of the memory, "
                    f"got {tuple(src_valid.shape)}"
                )

    # ---- the two halves -------------------------------------------------------------------------------

    def _encode(self, src_ids: Tensor, src_valid: Tensor | None, return_attention: bool) -> StackOutput:
        """The encoder on checked ids: src_ids (B, S) -> memory (B, S, D) in ``last_hidden_state``."""
        allowed = None if src_valid is None else masks.key_padding(src_valid)  # (B,1,1,S)
        x = self.dropout(self.src_positional(self.src_embed(src_ids)))  # (B,S) -> (B,S,D)
        return self.encoder(x, allowed=allowed, return_attention=return_attention)

    def encode(
        self, src_ids: Tensor, src_valid: Tensor | None = None, *, return_attention: bool = False
    ) -> StackOutput:
        """src_ids (B, S) -> the encoder's :class:`~stacks.StackOutput`: the memory (B, S, D) in
        ``last_hidden_state`` and, with ``return_attention``, the per-layer weights (B, H, S, S) in ``attentions``."""
        self._check_ids(src_ids, "src_ids", self.config.src_vocab_size, "source")
        return self._encode(src_ids, self._valid(src_ids, src_valid, "src_valid"), return_attention)

    def _decode(self, tgt_ids, memory, src_valid, tgt_valid, return_attention: bool) -> Seq2SeqOutput:
        """The decoder and generator on checked inputs: tgt_ids (B, T), memory (B, S, D) -> logits (B, T, V)."""
        causal = masks.causal_mask(tgt_ids.shape[1], device=tgt_ids.device)  # (T,T): position i sees j ≤ i
        self_allowed = masks.combine(causal, None if tgt_valid is None else masks.key_padding(tgt_valid))
        cross_allowed = None if src_valid is None else masks.key_padding(src_valid)  # (B,1,1,S)
        y = self.dropout(self.tgt_positional(self.tgt_embed(tgt_ids)))  # (B,T) -> (B,T,D)
        out = self.decoder(
            y, memory, self_allowed=self_allowed, cross_allowed=cross_allowed, return_attention=return_attention
        )
        return Seq2SeqOutput(
            logits=self.generator(out.last_hidden_state),  # (B,T,D) -> (B,T,V)
            decoder_self_attentions=out.attentions,
            decoder_cross_attentions=out.cross_attentions,
        )

    def decode(
        self,
        tgt_ids: Tensor,
        memory: Tensor,
        src_valid: Tensor | None = None,
        tgt_valid: Tensor | None = None,
        *,
        return_attention: bool = False,
    ) -> Seq2SeqOutput:
        """tgt_ids (B, T), memory (B, S, D) -> :class:`Seq2SeqOutput` with the logits (B, T, V_tgt) of the token
        *after* each position (and the decoder's attention weights with ``return_attention``).

        ``src_valid`` (B, S) must describe the memory's padding; it cannot be derived from the memory, so pass
        the mask given to :meth:`encode` (or leave it None when the source has no padding).
        """
        self._check_ids(tgt_ids, "tgt_ids", self.config.tgt_vocab_size, "target")
        self._check_memory(memory, src_valid, tgt_ids.shape[0])
        tgt_valid = self._valid(tgt_ids, tgt_valid, "tgt_valid")
        return self._decode(tgt_ids, memory, src_valid, tgt_valid, return_attention)

    def forward(
        self,
        src_ids: Tensor,
        tgt_ids: Tensor,
        *,
        src_valid: Tensor | None = None,
        tgt_valid: Tensor | None = None,
        labels: Tensor | None = None,
        return_attention: bool = False,
    ) -> Seq2SeqOutput:
        """src_ids (B, S), tgt_ids (B, T) -> :class:`Seq2SeqOutput` (teacher forcing: tgt_ids is the target
        shifted right, starting with BOS). ``labels`` (B, T): the token each position must predict, -100 to
        ignore (e.g. padding) -> ``loss``. ``return_attention``: every layer's weights, encoder and decoder."""
        self._check_ids(src_ids, "src_ids", self.config.src_vocab_size, "source")
        self._check_ids(tgt_ids, "tgt_ids", self.config.tgt_vocab_size, "target")
        if src_ids.shape[0] != tgt_ids.shape[0]:
            raise ValueError(
                f"batch sizes differ: src_ids {tuple(src_ids.shape)} vs tgt_ids {tuple(tgt_ids.shape)} "
                "(one target sequence per source sequence)"
            )
        if labels is not None:
            check_labels(labels, "labels", tuple(tgt_ids.shape), shape_of="tgt_ids")
        src_valid = self._valid(src_ids, src_valid, "src_valid")
        tgt_valid = self._valid(tgt_ids, tgt_valid, "tgt_valid")
        encoded = self._encode(src_ids, src_valid, return_attention)
        out = self._decode(tgt_ids, encoded.last_hidden_state, src_valid, tgt_valid, return_attention)
        loss = None
        if labels is not None:
            loss = cross_entropy(out.logits, labels.to(out.logits.device), impl=self.config.impl)
        return Seq2SeqOutput(
            logits=out.logits,
            loss=loss,
            encoder_attentions=encoded.attentions,
            decoder_self_attentions=out.decoder_self_attentions,
            decoder_cross_attentions=out.decoder_cross_attentions,
        )
