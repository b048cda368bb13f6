r"""Stacks of blocks — the encoder and the decoder of Vaswani et al. 2017, §3.1 (N = 6 each).

    Encoder:  x_{l+1} = EncoderBlock_l(x_l)                       l = 0 … N-1, then optional final Norm
    Decoder:  y_{l+1} = DecoderBlock_l(y_l, memory)               every block attends to the same memory

A pre-LN stack (``norm_first=True``) adds the residual stream of every block without ever normalising it,
so it ends with one more Norm — ``final_norm`` defaults to ``norm_first``. ``nn.Transformer`` puts that
final norm after post-LN stacks as well; ``final_norm=True`` reproduces it (see ``interop/torch_nn.py``).

The stacks take ready-made ``allowed`` masks; building them from padding and causality is the model's job
(``models/transformer.py``). With ``return_attention=True`` they also return one weight tensor per block.
"""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import DecoderBlock, EncoderBlock, make_norm

__all__ = ["Encoder", "Decoder"]


class _Stack(nn.Module):
    def __init__(self, block_cls, n_layers: int, d_model: int, n_heads: int, d_ff: int, final_norm, options: dict):
        super().__init__()
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
        self.layers = nn.ModuleList([block_cls(d_model, n_heads, d_ff, **options) for _ in range(n_layers)])
        final_norm = options["norm_first"] if final_norm is None else final_norm
        # A Norm after the last block (pre-LN needs it; nn.Transformer has it always), or no module at all.
        self.final_norm = make_norm(options["norm"], d_model, options["layer_norm_eps"]) if final_norm else None


class Encoder(_Stack):
    """N :class:`~blocks.EncoderBlock` s (+ a final Norm when ``final_norm``, default ``norm_first``).

    Keyword options are those of :class:`~blocks.EncoderBlock`. ``forward(x (B,S,D), *, allowed=None,
    positions=None, return_attention=False, return_hidden_states=False, kv_cache=None)`` -> memory (B,S,D)
    [, list of N self-attention weights (B,H,S,S)] [, list of N + 1 hidden states (B,S,D)].

    ``kv_cache`` (an ``attention.KVCache`` with one layer cache per block) is how a decoder-only model (this
    stack with a causal mask) decodes incrementally: block i reads and extends ``kv_cache[i]``.

    The hidden states are the stack's input followed by the output of every block (before the final norm, if
    any) — what BERT users probe layer by layer. With both flags the result is (memory, weights, hidden).
    """

    def __init__(
        self,
        n_layers: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        final_norm: bool | None = None,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
        norm: str = "layer",
        rotary: nn.Module | None = None,
        fused: bool = False,
    ):
        options = dict(
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation_dropout=activation_dropout,
            activation=activation,
            norm_first=norm_first,
            layer_norm_eps=layer_norm_eps,
            bias=bias,
            norm=norm,
            rotary=rotary,
            fused=fused,
        )
        super().__init__(EncoderBlock, n_layers, d_model, n_heads, d_ff, final_norm, options)

    def forward(
        self,
        x: Tensor,
        *,
        allowed: Tensor | None = None,
        positions: Tensor | None = None,
        return_attention: bool = False,
        return_hidden_states: bool = False,
        kv_cache=None,
    ) -> Tensor | tuple[Tensor, list[Tensor]] | tuple[Tensor, list[Tensor], list[Tensor]]:
        weights: list[Tensor] = []
        hidden: list[Tensor] = [x]  # (B,S,D): the input, then one entry per block
        if kv_cache is not None and len(kv_cache) != len(self.layers):
            raise ValueError(f"kv_cache has {len(kv_cache)} layer caches, but this stack has {len(self.layers)} blocks")
        for i, layer in enumerate(self.layers):
            options = dict(allowed=allowed, positions=positions)
            if kv_cache is not None:
                options["kv_cache"] = kv_cache[i]
            if return_attention:
                x, w = layer(x, **options, return_attention=True)
                weights.append(w)  # (B,H,S,S)
            else:
                x = layer(x, **options)  # (B,S,D)
            hidden.append(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if return_hidden_states:
            return (x, weights, hidden) if return_attention else (x, hidden)
        return (x, weights) if return_attention else x


class Decoder(_Stack):
    """N :class:`~blocks.DecoderBlock` s (+ a final Norm when ``final_norm``, default ``norm_first``).

    ``forward(y (B,T,D), memory (B,S,D), *, self_allowed=None, cross_allowed=None, positions=None,
    return_attention=False)`` -> (B,T,D) [, list of N self weights (B,H,T,T), list of N cross weights
    (B,H,T,S)].
    """

    def __init__(
        self,
        n_layers: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        final_norm: bool | None = None,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
        norm: str = "layer",
        rotary: nn.Module | None = None,
        fused: bool = False,
    ):
        options = dict(
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation_dropout=activation_dropout,
            activation=activation,
            norm_first=norm_first,
            layer_norm_eps=layer_norm_eps,
            bias=bias,
            norm=norm,
            rotary=rotary,
            fused=fused,
        )
        super().__init__(DecoderBlock, n_layers, d_model, n_heads, d_ff, final_norm, options)

    def forward(
        self,
        y: Tensor,
        memory: Tensor,
        *,
        self_allowed: Tensor | None = None,
        cross_allowed: Tensor | None = None,
        positions: Tensor | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, list[Tensor], list[Tensor]]:
        self_weights: list[Tensor] = []
        cross_weights: list[Tensor] = []
        for layer in self.layers:
            if return_attention:
                y, w_self, w_cross = layer(
                    y,
                    memory,
                    self_allowed=self_allowed,
                    cross_allowed=cross_allowed,
                    positions=positions,
                    return_attention=True,
                )
                self_weights.append(w_self)  # (B,H,T,T)
                cross_weights.append(w_cross)  # (B,H,T,S)
            else:
                y = layer(y, memory, self_allowed=self_allowed, cross_allowed=cross_allowed, positions=positions)
        if self.final_norm is not None:
            y = self.final_norm(y)
        return (y, self_weights, cross_weights) if return_attention else y
