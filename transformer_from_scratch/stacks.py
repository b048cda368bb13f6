r"""Stacks of blocks — the encoder and the decoder of Vaswani et al. 2017, §3.1 (N = 6 each), and the decoder of a
decoder-only language model.

    Encoder:        x_{l+1} = EncoderBlock_l(x_l)                 bidirectional: the caller's mask (key padding)
    Decoder:        y_{l+1} = DecoderBlock_l(y_l, memory)         self-attention + cross-attention to the memory
    CausalDecoder:  x_{l+1} = EncoderBlock_l(x_l)                 causal: position t sees positions ≤ t (KV cache)

A decoder-only model (GPT) has no encoder to attend to, so its blocks are encoder blocks; what makes them a
decoder is the causal mask, which :class:`CausalDecoder` builds itself — with the keys and values of earlier
positions taken from a KV cache during generation.

A pre-LN stack (``norm_first=True``) adds the residual stream of every block without ever normalising it,
so it ends with one more Norm — ``final_norm`` defaults to ``norm_first``. ``nn.Transformer`` puts that
final norm after post-LN stacks as well; ``final_norm=True`` reproduces it (see ``interop/torch_nn.py``).

Every stack is built from one :class:`~config.BlockConfig` and returns a :class:`StackOutput`: the last hidden
state (after the final norm), and, when asked, the hidden states (the input, then every block's output) and the
attention weights of every block.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from . import masks
from .attention import KVCache
from .blocks import DecoderBlock, EncoderBlock, make_norm
from .config import BlockConfig
from .interop import torch_nn

__all__ = ["StackOutput", "Encoder", "Decoder", "CausalDecoder"]


@dataclass(frozen=True, eq=False)
class StackOutput:
    """What a stack returns.

    last_hidden_state (B, T, D) — the output of the last block, after the final norm if the stack has one;
    hidden_states — N + 1 tensors (B, T, D), the stack's input and then every block's output (before the final
    norm), with ``return_hidden_states=True``, else None; attentions — N self-attention weight tensors (B, H, T, S)
    with ``return_attention=True``, else None; cross_attentions — N cross-attention weight tensors (B, H, T, S_enc)
    of a :class:`Decoder` with ``return_attention=True``, else None.
    """

    last_hidden_state: Tensor
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None
    cross_attentions: tuple[Tensor, ...] | None = None


class _Stack(nn.Module):
    """N blocks of one :class:`~config.BlockConfig`, and a final norm when ``final_norm`` (default ``norm_first``)."""

    def __init__(self, block_cls, config: BlockConfig, n_layers: int, final_norm: bool | None, rotary):
        super().__init__()
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
        self.layers = nn.ModuleList([block_cls(config, rotary=rotary) for _ in range(n_layers)])
        self.config = config
        final_norm = config.norm_first if final_norm is None else final_norm
        # A Norm after the last block (pre-LN needs it; nn.Transformer has it always), or no module at all.
        self.final_norm = (
            make_norm(config.norm, config.d_model, config.layer_norm_eps, config.impl) if final_norm else None
        )

    @classmethod
    def from_torch(cls, stack: nn.Module):
        """A new stack equal to a PyTorch one — ``nn.TransformerEncoder`` for an :class:`Encoder`,
        ``nn.TransformerDecoder`` for a :class:`Decoder` (keys mapped by :mod:`interop.torch_nn`) — with
        ``final_norm`` exactly when ``stack.norm`` is set, on the stack's device and dtype, in its train/eval mode."""
        parts = torch_nn.stack_from_torch(stack)
        p = next(stack.parameters())
        ours = cls(parts.config, parts.n_layers, final_norm=parts.final_norm).to(device=p.device, dtype=p.dtype)
        ours.load_state_dict(parts.state_dict)
        return ours.train(stack.training)

    def _output(self, x: Tensor, hidden: list[Tensor] | None, weights: list[Tensor] | None, cross=None) -> StackOutput:
        if self.final_norm is not None:
            x = self.final_norm(x)
        return StackOutput(
            last_hidden_state=x,
            hidden_states=None if hidden is None else tuple(hidden),
            attentions=None if weights is None else tuple(weights),
            cross_attentions=None if cross is None else tuple(cross),
        )


class _SelfAttentionStack(_Stack):
    """Encoder blocks in sequence, each reading the same mask (and its own layer of a KV cache, when given)."""

    def __init__(self, config: BlockConfig, n_layers: int, *, final_norm: bool | None = None, rotary=None):
        super().__init__(EncoderBlock, config, n_layers, final_norm, rotary)

    def _run(self, x, allowed, positions, kv_cache, return_attention, return_hidden_states) -> StackOutput:
        hidden = [x] if return_hidden_states else None  # (B,T,D): the input, then one entry per block
        weights = [] if return_attention else None
        for i, layer in enumerate(self.layers):
            options = dict(allowed=allowed, positions=positions)
            if kv_cache is not None:
                options["kv_cache"] = kv_cache[i]
            if return_attention:
                x, w = layer(x, **options, return_attention=True)
                weights.append(w)  # (B,H,T,S)
            else:
                x = layer(x, **options)  # (B,T,D)
            if hidden is not None:
                hidden.append(x)
        return self._output(x, hidden, weights)


class Encoder(_SelfAttentionStack):
    """N :class:`~blocks.EncoderBlock` s (+ a final Norm when ``final_norm``, default ``norm_first``).

    ``Encoder(config, n_layers, *, final_norm=None, rotary=None)``; ``forward(x (B,S,D), *, allowed=None,
    positions=None, return_attention=False, return_hidden_states=False)`` -> :class:`StackOutput`, its
    ``last_hidden_state`` the memory (B,S,D). ``allowed`` broadcasts to (B,H,S,S) — usually key padding.
    """

    def forward(
        self,
        x: Tensor,
        *,
        allowed: Tensor | None = None,
        positions: Tensor | None = None,
        return_attention: bool = False,
        return_hidden_states: bool = False,
    ) -> StackOutput:
        return self._run(x, allowed, positions, None, return_attention, return_hidden_states)


class CausalDecoder(_SelfAttentionStack):
    r"""The decoder of a decoder-only model: N :class:`~blocks.EncoderBlock` s run with a causal mask.

    ``forward(x (B,T,D), *, valid=None, positions=None, kv_cache=None, return_attention=False,
    return_hidden_states=False)`` -> :class:`StackOutput`.

    x holds the T new positions; with a :class:`~attention.KVCache` holding S_past earlier ones, the keys are all
    S = S_past + T positions and new query i sits at key index S_past + i. Query i may attend to key j when
    j ≤ S_past + i (``masks.causal_mask(T, S)``, bottom-right aligned) and key j is a real token: ``valid`` (B, S)
    bool over *all* S keys, or None when every key is real. Block i reads and extends ``kv_cache[i]``.
    """

    def new_kv_cache(self) -> KVCache:
        """An empty cache with one layer cache per block."""
        return KVCache(len(self.layers))

    def forward(
        self,
        x: Tensor,
        *,
        valid: Tensor | None = None,
        positions: Tensor | None = None,
        kv_cache: KVCache | None = None,
        return_attention: bool = False,
        return_hidden_states: bool = False,
    ) -> StackOutput:
        if kv_cache is not None and len(kv_cache) != len(self.layers):
            raise ValueError(f"kv_cache has {len(kv_cache)} layer caches, but this stack has {len(self.layers)} blocks")
        t = x.shape[1]
        s = t + (0 if kv_cache is None else kv_cache.length)  # keys: the cached positions, then the new ones
        allowed = masks.causal_mask(t, s, device=x.device)  # (T, S)
        if valid is not None:
            allowed = masks.combine(allowed, masks.key_padding(valid))  # (T,S) & (B,1,1,S) -> (B,1,T,S)
        return self._run(x, allowed, positions, kv_cache, return_attention, return_hidden_states)


class Decoder(_Stack):
    """N :class:`~blocks.DecoderBlock` s (+ a final Norm when ``final_norm``, default ``norm_first``).

    ``Decoder(config, n_layers, *, final_norm=None, rotary=None)``; ``forward(y (B,T,D), memory (B,S,D), *,
    self_allowed=None, cross_allowed=None, positions=None, return_attention=False, return_hidden_states=False)``
    -> :class:`StackOutput` with the N self-attention weights (B,H,T,T) in ``attentions`` and the N
    cross-attention weights (B,H,T,S) in ``cross_attentions`` when ``return_attention``.
    """

    def __init__(self, config: BlockConfig, n_layers: int, *, final_norm: bool | None = None, rotary=None):
        super().__init__(DecoderBlock, config, n_layers, final_norm, rotary)

    def forward(
        self,
        y: Tensor,
        memory: Tensor,
        *,
        self_allowed: Tensor | None = None,
        cross_allowed: Tensor | None = None,
        positions: Tensor | None = None,
        return_attention: bool = False,
        return_hidden_states: bool = False,
    ) -> StackOutput:
        hidden = [y] if return_hidden_states else None
        self_weights = [] if return_attention else None
        cross_weights = [] if return_attention else None
        options = dict(self_allowed=self_allowed, cross_allowed=cross_allowed, positions=positions)
        for layer in self.layers:
            if return_attention:
                y, w_self, w_cross = layer(y, memory, **options, return_attention=True)
                self_weights.append(w_self)  # (B,H,T,T)
                cross_weights.append(w_cross)  # (B,H,T,S)
            else:
                y = layer(y, memory, **options)  # (B,T,D)
            if hidden is not None:
                hidden.append(y)
        return self._output(y, hidden, self_weights, cross_weights)
