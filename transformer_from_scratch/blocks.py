r"""Encoder and decoder blocks ("layers") — Vaswani et al. 2017, §3.1 and Figure 1.

An encoder block has two sub-layers, multi-head self-attention and a position-wise feed-forward network;
a decoder block inserts a third, cross-attention over the encoder output ("memory"), between them. Each
sub-layer is wrapped in a residual connection and a normalisation, in one of two orders:

    post-LN (the paper):   x = Norm(x + Dropout(Sublayer(x)))
    pre-LN  (norm_first):  x = x + Dropout(Sublayer(Norm(x)))

Pre-LN keeps an identity path from the input to the output of the stack, which lets deep models train
without learning-rate warm-up (Xiong et al. 2020, "On Layer Normalization in the Transformer
Architecture"); it then needs one more Norm after the last block (see ``stacks.py``).

Both blocks are built from one :class:`~config.BlockConfig` (widths, dropout sites, norm, activation, ``impl``),
which the model configs derive (``GPTConfig.block_config()``). The same parts build other families:
``BlockConfig(norm="rms", norm_first=True, activation="swiglu", bias=False)``, ``rotary=RotaryEmbedding(...)``
and a causal ``allowed`` mask give a Llama-style decoder-only block (a decoder-only model has no
cross-attention, so its block is an ``EncoderBlock`` run with a causal mask by ``stacks.CausalDecoder``).

Sub-module names (the converters in ``interop/`` rely on them): ``self_attn``, ``ff``, ``norm1``, ``norm2``,
and for the decoder also ``cross_attn`` and ``norm3`` — norm1 goes with self-attention, norm2 with
cross-attention, norm3 with the feed-forward network, as in ``nn.TransformerDecoderLayer``.
"""

from __future__ import annotations

from torch import Tensor, nn

from .attention import MultiHeadAttention
from .config import NORMS, BlockConfig
from .interop import torch_nn
from .layers import FeedForward, LayerNorm, RMSNorm

__all__ = ["EncoderBlock", "DecoderBlock", "BlockConfig", "make_norm", "NORMS"]


def make_norm(norm: str, d_model: int, eps: float, impl: str = "plain") -> nn.Module:
    """``"layer"`` -> LayerNorm (Ba et al. 2016, the paper's); ``"rms"`` -> RMSNorm (Zhang & Sennrich 2019)."""
    if norm == "layer":
        return LayerNorm(d_model, eps=eps, impl=impl)
    if norm == "rms":
        return RMSNorm(d_model, eps=eps, impl=impl)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _check_config(config) -> BlockConfig:
    if not isinstance(config, BlockConfig):
        raise TypeError(
            f"config must be a BlockConfig (e.g. BlockConfig(d_model=64, n_heads=4, d_ff=256)), "
            f"got {type(config).__name__}"
        )
    return config


class _Block(nn.Module):
    """What both blocks share: the config, the self-attention and feed-forward sub-layers, the residual dropout."""

    def __init__(self, config: BlockConfig, rotary: nn.Module | None):
        super().__init__()
        c = self.config = _check_config(config)
        self.d_model, self.n_heads, self.d_ff = c.d_model, c.n_heads, c.d_ff
        self.norm_first = c.norm_first
        self.self_attn = self._attention(rotary)
        self.ff = FeedForward(
            c.d_model, c.d_ff, activation=c.activation, bias=c.bias, dropout=c.activation_dropout, impl=c.impl
        )
        # Residual dropout (§5.4): on each sub-layer's output, before it is added to the residual stream.
        self.dropout = nn.Dropout(c.dropout)

    def _attention(self, rotary=None) -> MultiHeadAttention:
        c = self.config
        return MultiHeadAttention(
            c.d_model,
            c.n_heads,
            bias=c.bias,
            dropout=c.attention_dropout,
            impl=c.impl,
            rotary=rotary,
            d_head=c.d_kv,
            scale=c.attention_scale,
        )

    @classmethod
    def from_torch(cls, layer: nn.Module):
        """A new block with the hyper-parameters and weights of a PyTorch layer — ``nn.TransformerEncoderLayer`` for
        an :class:`EncoderBlock`, ``nn.TransformerDecoderLayer`` for a :class:`DecoderBlock` (keys mapped by
        :mod:`interop.torch_nn`) — on the layer's device and dtype, in its train/eval mode."""
        config, state = torch_nn.block_from_torch(layer)
        p = next(layer.parameters())
        block = cls(config).to(device=p.device, dtype=p.dtype)
        block.load_state_dict(state)  # strict: a decoder layer's keys do not fit an EncoderBlock, nor the reverse
        return block.train(layer.training)

    def _norm(self) -> nn.Module:
        return make_norm(self.config.norm, self.config.d_model, self.config.layer_norm_eps, self.config.impl)

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"

    def _self_attention(self, x: Tensor, allowed, positions, return_attention: bool, kv_cache=None, bias=None):
        """Self-attention sub-layer on an (already normalised, in pre-LN) input: (B,T,D) -> (B,T,D) [, weights]."""
        options = dict(allowed=allowed, positions=positions)
        if kv_cache is not None:  # only passed when given, so attention modules without a cache keep working
            options["kv_cache"] = kv_cache
        if bias is not None:
            options["bias"] = bias
        if return_attention:
            return self.self_attn(x, **options, return_weights=True)
        return self.self_attn(x, **options), None


class EncoderBlock(_Block):
    r"""Self-attention + feed-forward, each with a residual connection and a norm (paper: post-LN).

    Args:
        config: a :class:`~config.BlockConfig` — widths D, H, F; residual, attention and activation dropout;
            activation; norm ("layer" / "rms"), ``norm_first`` (False = post-LN, the paper) and ε; biases; impl.
        rotary: a ``positional.RotaryEmbedding`` applied to queries and keys of the self-attention.

    forward(x (B,T,D), *, allowed=None, positions=None, return_attention=False, kv_cache=None, bias=None) -> (B,T,D)
    [, self-attention weights (B,H,T,T)]. ``allowed`` is a bool mask broadcastable to (B,H,T,T), True where
    query i may attend to key j (key padding for an encoder, causal for a decoder-only model). ``kv_cache``
    (an ``attention.LayerKVCache``) is handed to the self-attention: x then holds only the T new positions and
    ``allowed`` broadcasts to (B,H,T,S_past+T). ``bias`` (float, broadcastable like ``allowed``) is added to the
    attention scores — T5's relative position bias.
    """

    def __init__(self, config: BlockConfig, *, rotary: nn.Module | None = None):
        super().__init__(config, rotary)
        self.norm1 = self._norm()  # with the self-attention
        self.norm2 = self._norm()  # with the feed-forward network

    def forward(
        self,
        x: Tensor,
        *,
        allowed: Tensor | None = None,
        positions: Tensor | None = None,
        return_attention: bool = False,
        kv_cache=None,
        bias: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        if self.norm_first:
            # Deviation: pre-LN (Xiong et al. 2020) — normalise the sub-layer *input*, keep the residual path
            # an identity. The paper (§3.1) normalises after the addition: LayerNorm(x + Sublayer(x)).
            attn, weights = self._self_attention(self.norm1(x), allowed, positions, return_attention, kv_cache, bias)
            x = x + self.dropout(attn)  # (B,T,D)
            x = x + self.dropout(self.ff(self.norm2(x)))  # (B,T,D)
        else:
            # Post-LN, as in the paper: LayerNorm(x + Dropout(Sublayer(x))).
            attn, weights = self._self_attention(x, allowed, positions, return_attention, kv_cache, bias)
            x = self.norm1(x + self.dropout(attn))  # (B,T,D)
            x = self.norm2(x + self.dropout(self.ff(x)))  # (B,T,D)
        return (x, weights) if return_attention else x


class DecoderBlock(_Block):
    r"""Masked self-attention + cross-attention over the encoder output + feed-forward (paper §3.1).

    Takes the same arguments as :class:`EncoderBlock`; ``rotary`` applies to the self-attention only (the
    cross-attention compares decoder positions with encoder positions, which RoPE does not relate).

    forward(x (B,T,D), memory (B,S,D), *, self_allowed=None, cross_allowed=None, positions=None,
    return_attention=False, self_bias=None, kv_cache=None, cross_kv_cache=None) -> (B,T,D) [, self weights
    (B,H,T,T), cross weights (B,H,T,S)]. ``self_allowed`` broadcasts to (B,H,T,T) — usually causal AND target
    padding; ``cross_allowed`` to (B,H,T,S) — usually source padding. The block does not build masks; the caller
    decides. ``self_bias`` is added to the self-attention scores (T5's relative positions; cross-attention has
    none). For incremental decoding ``kv_cache`` (an ``attention.LayerKVCache``) extends the self-attention's keys
    and ``cross_kv_cache`` keeps the keys and values of the memory, computed on the first call only.
    """

    def __init__(self, config: BlockConfig, *, rotary: nn.Module | None = None):
        super().__init__(config, rotary)
        self.cross_attn = self._attention()
        self.norm1 = self._norm()  # with the masked self-attention
        self.norm2 = self._norm()  # with the cross-attention
        self.norm3 = self._norm()  # with the feed-forward network

    def _cross_attention(self, x: Tensor, memory: Tensor, allowed, return_attention: bool, kv_cache=None):
        """Queries from the decoder (B,T,D), keys and values from the encoder output (B,S,D) -> (B,T,D)."""
        options = dict(allowed=allowed)
        if kv_cache is not None:
            options["kv_cache"] = kv_cache
        if return_attention:
            return self.cross_attn(x, memory, **options, return_weights=True)
        return self.cross_attn(x, memory, **options), None

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        *,
        self_allowed: Tensor | None = None,
        cross_allowed: Tensor | None = None,
        positions: Tensor | None = None,
        return_attention: bool = False,
        self_bias: Tensor | None = None,
        kv_cache=None,
        cross_kv_cache=None,
    ) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        caches = (kv_cache, self_bias)
        if self.norm_first:
            # Deviation: pre-LN (Xiong et al. 2020), see EncoderBlock.forward. The memory is not normalised
            # here: in a pre-LN model the encoder's final norm already did that.
            attn, self_w = self._self_attention(self.norm1(x), self_allowed, positions, return_attention, *caches)
            x = x + self.dropout(attn)  # (B,T,D)
            cross, cross_w = self._cross_attention(
                self.norm2(x), memory, cross_allowed, return_attention, cross_kv_cache
            )
            x = x + self.dropout(cross)  # (B,T,D)
            x = x + self.dropout(self.ff(self.norm3(x)))  # (B,T,D)
        else:
            attn, self_w = self._self_attention(x, self_allowed, positions, return_attention, *caches)
            x = self.norm1(x + self.dropout(attn))  # (B,T,D)
            cross, cross_w = self._cross_attention(x, memory, cross_allowed, return_attention, cross_kv_cache)
            x = self.norm2(x + self.dropout(cross))  # (B,T,D)
            x = self.norm3(x + self.dropout(self.ff(x)))  # (B,T,D)
        return (x, self_w, cross_w) if return_attention else x
