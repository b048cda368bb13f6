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
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import masks
from ..config import TransformerConfig
from ..layers import TokenEmbedding
from ..positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from ..stacks import Decoder, Encoder

__all__ = ["EncoderDecoder"]


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
        self.src_embed = TokenEmbedding(c.src_vocab_size, c.d_model, scale=c.scale_embeddings)
        if c.tie_embeddings:
            self.tgt_embed = self.src_embed  # §3.4: "the same weight matrix between the two embedding layers"
        else:
            self.tgt_embed = TokenEmbedding(c.tgt_vocab_size, c.d_model, scale=c.scale_embeddings)
        self.src_positional = self._make_positional(c)
        self.tgt_positional = self._make_positional(c)
        self.dropout = nn.Dropout(c.dropout)  # on the sums of embeddings and positional encodings (§5.4)
        stack_options = dict(
            final_norm=c.has_final_norm,
            dropout=c.dropout,
            attention_dropout=c.attention_dropout,
            activation_dropout=c.activation_dropout,
            activation=c.activation,
            norm_first=c.norm_first,
            layer_norm_eps=c.layer_norm_eps,
        )
        self.encoder = Encoder(c.n_encoder_layers, c.d_model, c.n_heads, c.d_ff, **stack_options)
        self.decoder = Decoder(c.n_decoder_layers, c.d_model, c.n_heads, c.d_ff, **stack_options)
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
        if not isinstance(ids, Tensor):
            raise TypeError(f"{name} must be an integer torch.Tensor of shape (B, length), got {type(ids).__name__}")
        if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
            raise TypeError(f"{name} must be an integer tensor of token ids, got {ids.dtype}")
        if ids.dim() != 2:
            raise ValueError(f"{name} must have shape (B, length), got {tuple(ids.shape)}")
        if ids.numel():
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= vocab_size:
                bad = high if high >= vocab_size else low
                raise ValueError(f"{name} contains token id {bad}, outside the {side} vocabulary of size {vocab_size}")
        if ids.shape[1] > self.config.max_len:
            raise ValueError(
                f"{name} has sequence length {ids.shape[1]}, which exceeds max_len={self.config.max_len} of the "
                "positional table; truncate the input or build the model with a larger max_len"
            )

    def _valid(self, ids: Tensor, valid: Tensor | None, name: str) -> Tensor | None:
        """The (B, L) real-token mask for ``ids``: the given one (checked), one derived from pad_id, or None."""
        if valid is None:
            return None if self.config.pad_id is None else masks.padding_mask_from_ids(ids, self.config.pad_id)
        if not isinstance(valid, Tensor) or valid.dtype != torch.bool:
            got = valid.dtype if isinstance(valid, Tensor) else type(valid).__name__
            raise TypeError(f"{name} must be a bool tensor, True at real tokens and False at padding, got {got}")
        if tuple(valid.shape) != tuple(ids.shape):
            raise ValueError(
                f"{name} must have the shape of the token ids {tuple(ids.shape)}, got {tuple(valid.shape)}"
            )
        return valid.to(ids.device)

    @staticmethod
    def _check_memory(memory: Tensor, d_model: int) -> None:
        if not isinstance(memory, Tensor) or memory.dim() != 3 or memory.shape[-1] != d_model:
            got = tuple(memory.shape) if isinstance(memory, Tensor) else type(memory).__name__
            raise ValueError(f"memory must be the encoder output of shape (B, S, d_model={d_model}), got {got}")

    # ---- the two halves -------------------------------------------------------------------------------

    def encode(
        self, src_ids: Tensor, src_valid: Tensor | None = None, *, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """src_ids (B, S) -> memory (B, S, D) [, per-layer encoder self-attention weights (B, H, S, S)]."""
        self._check_ids(src_ids, "src_ids", self.config.src_vocab_size, "source")
        src_valid = self._valid(src_ids, src_valid, "src_valid")
        allowed = None if src_valid is None else masks.key_padding(src_valid)  # (B,1,1,S)
        x = self.dropout(self.src_positional(self.src_embed(src_ids)))  # (B,S) -> (B,S,D)
        return self.encoder(x, allowed=allowed, return_attention=return_attention)

    def decode(
        self,
        tgt_ids: Tensor,
        memory: Tensor,
        src_valid: Tensor | None = None,
        tgt_valid: Tensor | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, dict[str, list[Tensor]]]:
        """tgt_ids (B, T), memory (B, S, D) -> logits (B, T, V_tgt) for the token *after* each position.

        ``src_valid`` (B, S) must describe the memory's padding; it cannot be derived from the memory, so pass
        the mask given to :meth:`encode` (or leave it None when the source has no padding).
        With ``return_attention``, also ``{"decoder_self": [N × (B,H,T,T)], "decoder_cross": [N × (B,H,T,S)]}``.
        """
        self._check_ids(tgt_ids, "tgt_ids", self.config.tgt_vocab_size, "target")
        self._check_memory(memory, self.config.d_model)
        if memory.shape[0] != tgt_ids.shape[0]:
            raise ValueError(
                f"batch sizes differ: tgt_ids {tuple(tgt_ids.shape)} vs memory {tuple(memory.shape)} "
                "(one target sequence per source sequence)"
            )
        tgt_valid = self._valid(tgt_ids, tgt_valid, "tgt_valid")
        if src_valid is not None:
            if not isinstance(src_valid, Tensor) or src_valid.dtype != torch.bool:
                got = src_valid.dtype if isinstance(src_valid, Tensor) else type(src_valid).__name__
                raise TypeError(f"src_valid must be a bool tensor, True at real tokens, got {got}")
            if tuple(src_valid.shape) != tuple(memory.shape[:2]):
                raise ValueError(
                    f"src_valid must have shape (B, S) = {tuple(memory.shape[:2])} of the memory, "
                    f"got {tuple(src_valid.shape)}"
                )
        t = tgt_ids.shape[1]
        causal = masks.causal_mask(t, device=tgt_ids.device)  # (T,T): position i sees j ≤ i
        self_allowed = masks.combine(causal, None if tgt_valid is None else masks.key_padding(tgt_valid))
        cross_allowed = None if src_valid is None else masks.key_padding(src_valid)  # (B,1,1,S)
        y = self.dropout(self.tgt_positional(self.tgt_embed(tgt_ids)))  # (B,T) -> (B,T,D)
        out = self.decoder(
            y, memory, self_allowed=self_allowed, cross_allowed=cross_allowed, return_attention=return_attention
        )
        if not return_attention:
            return self.generator(out)  # (B,T,D) -> (B,T,V)
        y, self_w, cross_w = out
        return self.generator(y), {"decoder_self": self_w, "decoder_cross": cross_w}

    def forward(
        self,
        src_ids: Tensor,
        tgt_ids: Tensor,
        *,
        src_valid: Tensor | None = None,
        tgt_valid: Tensor | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, dict[str, list[Tensor]]]:
        """src_ids (B, S), tgt_ids (B, T) -> logits (B, T, V_tgt) (teacher forcing: tgt_ids is the shifted target).

        With ``return_attention``: ``(logits, {"encoder_self": [...], "decoder_self": [...],
        "decoder_cross": [...]})``, one (B, H, ·, ·) tensor per layer.
        """
        self._check_ids(src_ids, "src_ids", self.config.src_vocab_size, "source")
        self._check_ids(tgt_ids, "tgt_ids", self.config.tgt_vocab_size, "target")
        if src_ids.shape[0] != tgt_ids.shape[0]:
            raise ValueError(
                f"batch sizes differ: src_ids {tuple(src_ids.shape)} vs tgt_ids {tuple(tgt_ids.shape)} "
                "(one target sequence per source sequence)"
            )
        src_valid = self._valid(src_ids, src_valid, "src_valid")
        if not return_attention:
            memory = self.encode(src_ids, src_valid)
            return self.decode(tgt_ids, memory, src_valid, tgt_valid)
        memory, enc_w = self.encode(src_ids, src_valid, return_attention=True)
        logits, dec = self.decode(tgt_ids, memory, src_valid, tgt_valid, return_attention=True)
        return logits, {"encoder_self": enc_w, **dec}
