r"""XLNet — Yang et al. 2019, "XLNet: Generalized Autoregressive Pretraining for Language Understanding", §2.3.

A permuted language model (``objectives/plm.py``) must predict x_{z_t} from x_{z_<t} *at position z_t*: the
prediction needs to know where the target sits, but must not see what is there. One hidden state per token
cannot be both, so XLNet runs two streams through the same blocks, with the same weights:

    content stream  h_i^(l) = Block(query h_i^(l-1), keys/values h_j^(l-1) for rank[j] ≤ rank[i])   (B, T, D)
    query stream    g_i^(l) = Block(query g_i^(l-1), keys/values h_j^(l-1) for rank[j] < rank[i])    (B, P, D)
    h^(0) = E[x]  (the token),   g^(0) = w  (one learned "mask" vector, the same for every target)

g carries the position of its target (through the relative positions of its attention) but never its token:
the token enters only through h_i, and no g_i ever reads h_i. The query stream exists only when targets are
given (``target_mapping``, P of them per sequence); its output feeds the LM head (:class:`~heads.PLMHead`,
tied to the embeddings, with a bias). The content stream alone is the encoder used for fine-tuning.

Attention with relative positions (Transformer-XL, Dai et al. 2019, §3.3) and relative segments (§2.5): for a
query at position i with projected q_i and a key/value h_j (per head, width Dh),

    score_ij = [ (q_i + u)·k_j  +  (q_i + v)·W_r R(i − j)  +  (q_i + b)·s_ij ] / √Dh

R is :func:`~positional.relative_sinusoids`, s_ij is one of two learned vectors (same segment / different
segment), u, v, b are learned per head. The first term is the package's attention with queries q + u; the other
two depend only on (i, j), so they are passed to :func:`functional.scaled_dot_product_attention` as its
additive ``bias`` — no second attention implementation. Blocks are post-LN with exact GELU: LayerNorm(x +
attention), then LayerNorm(x + FeedForward), for both streams.

# Deviation: no Transformer-XL memory (the cached hidden states of a previous segment, ``mems``) and no
# bidirectional data pipeline (``bi_data``): one segment of text at a time, which is all a course model needs.

Padding: ``valid`` (B, T) bool or, from ``config.pad_id``, the ids. Padding keys are never attended to. The
mask convention is the package's: ``content_allowed`` / ``query_allowed`` (B, T, T) bool, True where query i may
attend to key j (``objectives.plm.permutation_masks``). Hugging Face's ``perm_mask`` has the opposite polarity
and converts with ``masks.to_hf_perm_mask`` / ``masks.from_hf_perm_mask``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import functional as tf
from .. import masks
from .._validation import check_all, check_ids_2d, check_labels, check_same_shape, check_token_ids, check_valid
from ..attention import MultiHeadAttention
from ..config import XLNetConfig
from ..heads import PLMHead
from ..interop import hf_xlnet
from ..layers import FeedForward, LayerNorm, TokenEmbedding
from ..positional import relative_sinusoids

__all__ = [
    "XLNetModel",
    "XLNetLMHeadModel",
    "XLNetOutput",
    "XLNetLMOutput",
    "RelativeMultiHeadAttention",
    "XLNetBlock",
    "TwoStreamContext",
]


@dataclass(frozen=True)
class XLNetOutput:
    """What :class:`XLNetModel` returns.

    last_hidden_state (B, T, D) — the content stream h after the last block;
    query_state (B, P, D) — the query stream g after the last block, one row per target (None without targets);
    hidden_states — L + 1 tensors (B, T, D): the content stream after the embedding and after every block;
    attentions, query_attentions — L tensors (B, H, T, T) and (B, H, P, T) of weights with
    ``return_attention=True`` (the latter None without targets), else None.
    """

    last_hidden_state: Tensor
    query_state: Tensor | None
    hidden_states: tuple[Tensor, ...]
    attentions: tuple[Tensor, ...] | None = None
    query_attentions: tuple[Tensor, ...] | None = None


@dataclass(frozen=True)
class XLNetLMOutput:
    """What :class:`XLNetLMHeadModel` returns: logits (B, P, V) from the query stream when targets were given,
    else (B, T, V) from the content stream; loss (0-d, mean over the labelled targets) when labels were given;
    ``xlnet`` — the :class:`XLNetOutput`."""

    logits: Tensor
    xlnet: XLNetOutput
    loss: Tensor | None = None


@dataclass(frozen=True)
class TwoStreamContext:
    """What every block needs besides the two streams, built once per forward by :class:`XLNetModel`.

    relative (2T - 1, D) — R(Δ) for Δ = -(T-1) … T-1, row Δ + T - 1 (after dropout);
    segments (B, T) long; content_allowed (B, 1, T, T) bool, (B, 1, 1, T) for key padding only, or None (all);
    query_positions (B, P) long — the position of each target; query_allowed (B, 1, P, T) bool (None without
    targets); query_segments (B, P) long — the segment of each target.
    """

    relative: Tensor
    segments: Tensor
    content_allowed: Tensor | None
    query_positions: Tensor | None = None
    query_allowed: Tensor | None = None
    query_segments: Tensor | None = None


class RelativeMultiHeadAttention(MultiHeadAttention):
    r"""Multi-head attention with XLNet's relative position and segment terms, for the content and query streams.

    The projections ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` (no bias) and the attention itself are those
    of :class:`~attention.MultiHeadAttention`; added here: ``r_proj`` (W_r, D -> H·Dh, no bias), the per-head
    biases ``content_bias`` (u), ``position_bias`` (v), ``segment_bias`` (b), each (H, Dh), and
    ``segment_embedding`` (2, H, Dh): row 0 for "same segment", row 1 for "different segments".

    forward(h (B,T,D), g (B,P,D) or None, context) -> (out_h (B,T,D), out_g (B,P,D) or None, weights_h, weights_g).
    Keys and values always come from the content stream h.
    """

    def __init__(self, d_model: int, n_heads: int, *, dropout: float = 0.0, impl: str = "plain"):
        super().__init__(d_model, n_heads, bias=False, dropout=dropout, impl=impl)
        h, dh = self.n_heads, self.d_head
        self.r_proj = nn.Linear(d_model, d_model, bias=False)  # W_r: R(Δ) (D) -> (H·Dh)
        self.content_bias = nn.Parameter(torch.zeros(h, dh))  # u (Dai et al. 2019)
        self.position_bias = nn.Parameter(torch.zeros(h, dh))  # v
        self.segment_bias = nn.Parameter(torch.zeros(h, dh))  # b (Yang et al. 2019, §2.5)
        self.segment_embedding = nn.Parameter(torch.zeros(2, h, dh))  # s_same, s_different

    def forward(self, h: Tensor, g: Tensor | None, context: TwoStreamContext, *, return_weights: bool = False):
        q_h, k, v = self._project(h, h, cross=False)  # (B,H,T,Dh) each: one product over h
        r = self.r_proj(context.relative).unflatten(-1, (self.n_heads, self.d_head))  # (2T-1,D) -> (2T-1,H,Dh)
        t = h.shape[1]
        positions = torch.arange(t, device=h.device).expand(h.shape[0], t)  # (B, T): query i sits at position i
        out_h, w_h = self._stream(
            q_h, k, v, r, positions, context.segments, context, context.content_allowed, return_weights
        )
        out_g = w_g = None
        if g is not None:
            q_g = tf.split_heads(self.q_proj(g), self.n_heads)  # (B,P,D) -> (B,H,P,Dh)
            out_g, w_g = self._stream(
                q_g,
                k,
                v,
                r,
                context.query_positions,
                context.query_segments,
                context,
                context.query_allowed,
                return_weights,
            )
        return out_h, out_g, w_h, w_g

    def _stream(self, q, k, v, r, positions, query_segments, context, allowed, return_weights):
        """One stream: queries q (B,H,N,Dh) at ``positions`` (B,N) against the content keys -> (B,N,D), weights."""
        bias = self.relative_bias(q, r, positions, query_segments, context.segments)  # (B,H,N,T)
        q_u = q + self.content_bias[:, None, :]  # (B,H,N,Dh) + (H,1,Dh): the content term (q + u)·k
        out, weights = self._attend(q_u, k, v, allowed=allowed, bias=bias, return_weights=return_weights)
        return self.out_proj(tf.merge_heads(out)), weights  # (B,H,N,Dh) -> (B,N,D) -> (B,N,D)

    def relative_bias(self, q: Tensor, r: Tensor, positions: Tensor, query_segments: Tensor, segments: Tensor):
        r"""The position and segment terms, already divided by √Dh: q (B,H,N,Dh), r (2T-1,H,Dh) -> (B,H,N,T).

        position_ij = (q_i + v)·r_{Δ = i − j}          segment_ij = (q_i + b)·s[segment_i ≠ segment_j]
        """
        b, _, n, dh = q.shape
        t = segments.shape[1]
        # Position: score each query against every distance once, then pick Δ = i − j for every key j.
        by_distance = torch.einsum("bhnd,khd->bhnk", q + self.position_bias[:, None, :], r)  # (B,H,N,2T-1)
        delta = positions[:, None, :, None] - torch.arange(t, device=q.device)  # (B,1,N,1) - (T,) -> (B,1,N,T)
        position = by_distance.gather(-1, (delta + t - 1).expand(b, self.n_heads, n, t))  # (B,H,N,T)
        # Segment: two scores per query (same / different), then pick by whether i and j share a segment.
        by_segment = torch.einsum("bhnd,chd->bhnc", q + self.segment_bias[:, None, :], self.segment_embedding)
        differ = (query_segments[:, :, None] != segments[:, None, :])[:, None]  # (B,1,N,T)
        segment = torch.where(differ, by_segment[..., 1:], by_segment[..., :1])  # (B,H,N,2) -> (B,H,N,T)
        return (position + segment) / math.sqrt(dh)


class XLNetBlock(nn.Module):
    """One XLNet layer, applied to both streams with the same weights (post-LN, exact GELU):

        h = LayerNorm(h + Dropout(Attention_content(h)));  h = LayerNorm(h + Dropout(FeedForward(h)))
        g = LayerNorm(g + Dropout(Attention_query(g, h))); g = LayerNorm(g + Dropout(FeedForward(g)))

    Sub-modules: ``attn`` (:class:`RelativeMultiHeadAttention`), ``norm1``, ``ff``, ``norm2``.
    """

    def __init__(self, config: XLNetConfig):
        super().__init__()
        c = config.block_config()
        self.attn = RelativeMultiHeadAttention(c.d_model, c.n_heads, dropout=c.attention_dropout, impl=c.impl)
        self.norm1 = LayerNorm(c.d_model, eps=c.layer_norm_eps, impl=c.impl)
        self.ff = FeedForward(c.d_model, c.d_ff, activation=c.activation, dropout=c.activation_dropout, impl=c.impl)
        self.norm2 = LayerNorm(c.d_model, eps=c.layer_norm_eps, impl=c.impl)
        self.dropout = nn.Dropout(c.dropout)

    def _finish(self, x: Tensor, attn: Tensor) -> Tensor:
        x = self.norm1(x + self.dropout(attn))  # (B,N,D)
        return self.norm2(x + self.dropout(self.ff(x)))  # (B,N,D)

    def forward(self, h: Tensor, g: Tensor | None, context: TwoStreamContext, *, return_attention: bool = False):
        """h (B,T,D), g (B,P,D) or None -> (h, g, weights_h (B,H,T,T) or None, weights_g (B,H,P,T) or None)."""
        attn_h, attn_g, w_h, w_g = self.attn(h, g, context, return_weights=return_attention)
        h_new = self._finish(h, attn_h)
        g_new = None if g is None else self._finish(g, attn_g)  # the same weights on the query stream
        return h_new, g_new, w_h, w_g


def _check_pairwise(mask, name: str, shape: tuple[int, int, int]) -> None:
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{name} must be a bool tensor (B, T, T), True where query i may attend to key j; got {got}")
    if tuple(mask.shape) not in (shape, shape[1:]):
        raise ValueError(f"{name} must have shape (B, T, T) = {shape} or (T, T), got {tuple(mask.shape)}")


def _stream_masks(content_allowed, query_allowed, positions, filled, b: int, t: int) -> tuple[Tensor, Tensor]:
    """The content and query masks (B, T, T) when targets are given, with the defaults of :class:`XLNetModel`.

    Default content mask: no token sees a target but the target itself — otherwise, from the second layer on, a
    target would read its own token back through the other tokens' content states. Default query mask: the
    content mask without the diagonal (for a permutation's content mask, that is its query mask).
    """
    device = positions.device
    eye = torch.eye(t, dtype=torch.bool, device=device)
    if content_allowed is None:
        target = torch.zeros(b, t, dtype=torch.bool, device=device).scatter(1, positions, filled)  # (B, T)
        content = ~target[:, None, :] | eye  # (B, T, T): key j is not a target, or is the query itself
    else:
        _check_pairwise(content_allowed, "content_allowed", (b, t, t))
        content = content_allowed.to(device).expand(b, t, t)
    if query_allowed is None:
        return content, content & ~eye
    _check_pairwise(query_allowed, "query_allowed", (b, t, t))
    return content, query_allowed.to(device).expand(b, t, t)


def _target_positions(target_mapping, b: int, t: int) -> tuple[Tensor, Tensor]:
    """target_mapping (B, P, T), one-hot rows or all-zero rows -> positions (B, P) long, filled (B, P) bool."""
    if not isinstance(target_mapping, Tensor) or target_mapping.dim() != 3:
        got = tuple(target_mapping.shape) if isinstance(target_mapping, Tensor) else type(target_mapping).__name__
        raise ValueError(f"target_mapping must be a (B, P, T) tensor, got {got}")
    if target_mapping.shape[0] != b or target_mapping.shape[2] != t or target_mapping.shape[1] == 0:
        raise ValueError(
            f"target_mapping must have shape (B, P, T) = ({b}, P ≥ 1, {t}), got {tuple(target_mapping.shape)}"
        )
    hot = target_mapping != 0  # (B, P, T)
    check_all(
        (target_mapping == 0) | (target_mapping == 1),
        lambda: "target_mapping must hold 0/1 (or bool) entries",
        "target_mapping must hold 0/1 (or bool) entries",
    )
    count = hot.sum(dim=-1)  # (B, P)
    check_all(
        count <= 1,
        lambda: "each row of target_mapping must mark at most one position (one target per row)",
        "each row of target_mapping must mark at most one position",
    )
    return hot.to(torch.uint8).argmax(dim=-1), count == 1  # (B, P), (B, P)


class _XLNetBase(nn.Module):
    """XLNet's initialisation: N(0, 0.02²) for every matrix, embedding and attention bias; LayerNorm 1/0."""

    def reset_parameters(self) -> None:
        std = self.config.initializer_range
        drawn: set[int] = set()
        with torch.no_grad():
            for name, p in self.named_parameters():
                if id(p) in drawn:
                    continue  # a tied matrix is drawn once
                drawn.add(id(p))
                leaf = name.rsplit(".", 1)[-1]
                owner = self.get_submodule(name.rsplit(".", 1)[0]) if "." in name else self
                if isinstance(owner, LayerNorm):
                    p.fill_(1.0 if leaf == "weight" else 0.0)
                elif leaf == "bias" and (isinstance(owner, nn.Linear) or isinstance(owner, PLMHead)):
                    p.zero_()
                else:
                    nn.init.normal_(p, std=std)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, dtype: torch.dtype | None = None):
        """Load a local Hugging Face folder (``config.json`` + ``model.safetensors``) of this class — an
        ``XLNetModel``, or an ``XLNetLMHeadModel`` with keys ``transformer.*`` and ``lm_loss.*`` — in eval mode.

        See :func:`interop.hf_xlnet.read_pretrained` for the accepted files and the errors. ``dtype`` defaults to
        float32 whatever the checkpoint stores. No network access: ``path`` must be a folder on disk.
        """
        config, state = hf_xlnet.read_pretrained(path, lm_head=issubclass(cls, XLNetLMHeadModel))
        model = cls(config).to(torch.float32 if dtype is None else dtype)  # randomly initialised, then overwritten
        model.load_state_dict(state)  # casts every tensor to the model's dtype; the tied matrix is listed twice
        return model.eval()

    @classmethod
    def from_hf(cls, hf_model: nn.Module):
        """A live ``transformers`` XLNetModel / XLNetLMHeadModel -> ours with its config and weights, float32, eval.

        Reads only ``hf_model.config.to_dict()`` and ``hf_model.state_dict()`` (converted strictly).
        """
        config = hf_xlnet.config_from_hf(hf_model.config.to_dict())
        state, _ = hf_xlnet.state_dict_from_hf(hf_model.state_dict(), config, lm_head=issubclass(cls, XLNetLMHeadModel))
        model = cls(config)
        model.load_state_dict(state)
        return model.eval()


class XLNetModel(_XLNetBase):
    """The two-stream XLNet encoder: token embedding, mask embedding, L shared-weight :class:`XLNetBlock`.

    Sub-modules and parameters: ``embedding`` (:class:`~layers.TokenEmbedding`, unscaled), ``mask_embedding``
    (D,) — g^(0), ``layers`` (L × :class:`XLNetBlock`), ``dropout``.

    forward(input_ids (B, T), *, token_type_ids=None (B, T), valid=None (B, T) bool, content_allowed=None,
    query_allowed=None (B, T, T) bool, target_mapping=None (B, P, T), return_attention=False) -> :class:`XLNetOutput`.

    Without targets and without ``content_allowed`` every token sees every real token (the fine-tuning encoder).
    The query stream runs only when ``target_mapping`` is given. Its defaults then keep every target hidden from
    its own prediction: ``content_allowed`` lets no token see a target but the target itself, ``query_allowed`` is
    the content mask without the diagonal — each target is predicted from all the non-target tokens, as if the
    targets came last in the order. A permutation's masks (``objectives.permute_batch``) replace both.
    ``token_type_ids`` default to one segment.
    """

    def __init__(self, config: XLNetConfig):
        super().__init__()
        if not isinstance(config, XLNetConfig):
            raise TypeError(f"config must be an XLNetConfig, got {type(config).__name__}")
        self.config = c = config
        self.embedding = TokenEmbedding(c.vocab_size, c.d_model, check_ids=False)  # checked on entry
        self.mask_embedding = nn.Parameter(torch.zeros(c.d_model))  # w: the query stream's start, (D,)
        self.layers = nn.ModuleList([XLNetBlock(c) for _ in range(c.n_layers)])
        self.dropout = nn.Dropout(c.dropout)
        self.reset_parameters()

    def _context(self, input_ids, token_type_ids, valid, content_allowed, query_allowed, target_mapping, dtype):
        """Check the inputs and build the :class:`TwoStreamContext` shared by every block."""
        c = self.config
        check_ids_2d(input_ids, "input_ids")
        check_token_ids(input_ids, c.vocab_size, "input_ids")
        b, t = input_ids.shape
        device = input_ids.device
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        else:
            check_ids_2d(token_type_ids, "token_type_ids")
            check_same_shape(token_type_ids, "token_type_ids", (b, t))
        if valid is None and c.pad_id is not None:
            valid = masks.padding_mask_from_ids(input_ids, c.pad_id)
        if valid is not None:
            check_valid(valid, "valid", (b, t))
        keys = None if valid is None else valid.to(device)[:, None, :]  # (B, 1, T): key j is real
        relative = relative_sinusoids(torch.arange(-(t - 1), t, device=device), c.d_model).to(dtype)  # (2T-1, D)
        if target_mapping is None:
            if query_allowed is not None:
                raise ValueError("query_allowed is for the query stream, which runs only with target_mapping")
            content = None
            if content_allowed is not None:
                _check_pairwise(content_allowed, "content_allowed", (b, t, t))
                content = content_allowed.to(device).expand(b, t, t)
            content = masks.combine(content, keys)  # (B, T, T) or (B, 1, T) or None
            return TwoStreamContext(
                relative=self.dropout(relative),
                segments=token_type_ids,
                content_allowed=None if content is None else content[:, None],  # (B, 1, T|1, T)
            )
        positions, filled = _target_positions(target_mapping.to(device), b, t)  # (B, P), (B, P)
        content, query = _stream_masks(content_allowed, query_allowed, positions, filled, b, t)  # (B, T, T) each
        if keys is not None:
            content, query = content & keys, query & keys
        rows = query.gather(1, positions[..., None].expand(-1, -1, t))  # (B, T, T) -> the targets' rows (B, P, T)
        rows = rows & filled[..., None]  # an empty target slot attends to nothing
        return TwoStreamContext(
            relative=self.dropout(relative),
            segments=token_type_ids,
            content_allowed=content[:, None],  # (B, 1, T, T)
            query_positions=positions,
            query_allowed=rows[:, None],  # (B, 1, P, T)
            query_segments=token_type_ids.gather(1, positions),  # (B, P)
        )

    def forward(
        self,
        input_ids: Tensor,
        *,
        token_type_ids: Tensor | None = None,
        valid: Tensor | None = None,
        content_allowed: Tensor | None = None,
        query_allowed: Tensor | None = None,
        target_mapping: Tensor | None = None,
        return_attention: bool = False,
    ) -> XLNetOutput:
        dtype = self.mask_embedding.dtype
        context = self._context(input_ids, token_type_ids, valid, content_allowed, query_allowed, target_mapping, dtype)
        h = self.dropout(self.embedding(input_ids))  # (B, T) -> (B, T, D): the content stream starts at the tokens
        g = None
        if target_mapping is not None:  # the query stream starts at w, the same vector for every target
            g = self.dropout(self.mask_embedding.expand(input_ids.shape[0], target_mapping.shape[1], -1))  # (B,P,D)
        hidden, weights_h, weights_g = [h], [], []
        for layer in self.layers:
            h, g, w_h, w_g = layer(h, g, context, return_attention=return_attention)
            hidden.append(h)
            weights_h.append(w_h)
            weights_g.append(w_g)
        return XLNetOutput(
            last_hidden_state=h,
            query_state=g,
            hidden_states=tuple(hidden),
            attentions=tuple(weights_h) if return_attention else None,
            query_attentions=tuple(weights_g) if return_attention and g is not None else None,
        )


class XLNetLMHeadModel(_XLNetBase):
    """XLNet with its permuted-LM head: ``xlnet`` (:class:`XLNetModel`) and ``lm_head`` (:class:`~heads.PLMHead`,
    ``lm_head.decoder.weight`` *is* ``xlnet.embedding.weight``).

    forward(input_ids, *, token_type_ids=None, valid=None, content_allowed=None, query_allowed=None,
    target_mapping=None, labels=None (B, P), return_attention=False) -> :class:`XLNetLMOutput`. The arguments
    are those of :class:`XLNetModel` plus ``labels``: the token of each target, -100 in empty slots — exactly
    what ``objectives.permute_batch(...).model_inputs()`` holds. Labels need ``target_mapping``: the content
    stream sees its own token, so predicting it from h would be trivial.
    """

    def __init__(self, config: XLNetConfig):
        super().__init__()
        self.config = config
        self.xlnet = XLNetModel(config)
        self.lm_head = PLMHead(config.d_model, config.vocab_size, embedding=self.xlnet.embedding.weight)
        self.reset_parameters()

    def forward(
        self,
        input_ids: Tensor,
        *,
        token_type_ids: Tensor | None = None,
        valid: Tensor | None = None,
        content_allowed: Tensor | None = None,
        query_allowed: Tensor | None = None,
        target_mapping: Tensor | None = None,
        labels: Tensor | None = None,
        return_attention: bool = False,
    ) -> XLNetLMOutput:
        if labels is not None and target_mapping is None:
            raise ValueError(
                "labels need target_mapping: without targets the logits come from the content stream, which sees "
                "its own token (use objectives.permute_batch to draw targets)"
            )
        out = self.xlnet(
            input_ids,
            token_type_ids=token_type_ids,
            valid=valid,
            content_allowed=content_allowed,
            query_allowed=query_allowed,
            target_mapping=target_mapping,
            return_attention=return_attention,
        )
        stream = out.last_hidden_state if out.query_state is None else out.query_state  # (B,T,D) or (B,P,D)
        logits = self.lm_head(self.xlnet.dropout(stream))  # (…, D) -> (…, V)
        if labels is None:
            return XLNetLMOutput(logits, out)
        check_labels(labels, "labels", tuple(logits.shape[:-1]), shape_of="target_mapping's (B, P)")
        loss = tf.cross_entropy(logits, labels.to(logits.device), impl=self.config.impl)
        return XLNetLMOutput(logits, out, loss)
