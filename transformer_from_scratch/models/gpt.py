r"""GPT — a decoder-only language model: Radford et al. 2018/2019 (GPT, GPT-2), and Llama-style variants.

    x_0     = Dropout(E_token[ids] + P[positions])                          learned positions (GPT-2)   (B, T, D)
    x_l     = x_{l-1} + Dropout(SelfAttn(Norm(x_{l-1}), causal))            pre-LN blocks, l = 1 … L
    x_l     = x_l + Dropout(FFN(Norm(x_l)))
    logits  = Norm_final(x_L) W_headᵀ,   W_head = E_token when tied                                     (B, T, V)
    loss    = CE(logits[:, :-1], labels[:, 1:])                             next-token prediction, shift inside

Each position may attend to itself and the positions before it (a causal mask): the logits at position t are
the model's distribution of token t + 1 given tokens ≤ t, so one forward pass trains all T predictions at once.

The stack is the package's :class:`~stacks.CausalDecoder`: pre-LN blocks (``GPTConfig.block_config()``) run with
a causal mask it builds itself. A decoder-only model has no cross-attention, so each block is an
:class:`~blocks.EncoderBlock` — the causal mask is what makes the stack a decoder. GPT-2 (Radford et al. 2019,
§2.3) moved LayerNorm to the input of each sub-block and added one after the last block — the pre-LN arrangement
(Xiong et al. 2020).

Llama-style options come from the same parts (``GPTConfig.llama_tiny()``): rotary positions instead of the
learned table (``positional="rope"``), RMSNorm, SwiGLU, bias-free projections and an untied head.

Padding and positions: pass ``valid`` (B, T) bool (True at real tokens) or Hugging Face's ``attention_mask``
(1/0); without either, the mask comes from ``config.pad_id`` when set, otherwise every token is real. Padded
keys are never attended to. Positions count *real* tokens: position = (number of real tokens up to and
including this one) - 1, clamped at 0 — so a left-padded prompt gets the positions it would have alone
(GPT-2 itself does not do this; Hugging Face users pass ``position_ids`` by hand). A padded query with no real
token before it attends to nothing and gets a zero attention output, never NaN; its logits are meaningless
and the loss must ignore it (``labels`` -100 there).

Incremental decoding: ``model(ids, use_cache=True)`` returns a :class:`~attention.KVCache` in
``output.kv_cache``; ``model(new_ids, kv_cache=cache)`` then runs only the new tokens against the cached keys
and values, with positions and padding continued from the cache. The result equals recomputing everything.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import generation, masks
from .._validation import check_all, check_ids_2d, check_labels, check_same_shape, check_token_ids, check_valid
from ..attention import KVCache
from ..config import GPTConfig
from ..functional import cross_entropy
from ..heads import SequenceClassificationHead, classification_loss
from ..interop import hf_causal_lm
from ..layers import LayerNorm, RMSNorm, TokenEmbedding
from ..positional import LearnedPositionalEmbedding, RotaryEmbedding
from ..stacks import CausalDecoder, StackOutput

__all__ = [
    "GPT",
    "GPTOutput",
    "GPTForSequenceClassification",
    "GPTSequenceClassificationOutput",
    "causal_lm_loss",
    "positions_from_valid",
    "last_real_index",
]


@dataclass(frozen=True, eq=False)
class GPTOutput:
    """What :class:`GPT` returns.

    logits (B, T, V) — scores of the *next* token at every position; loss — mean next-token cross-entropy over
    the labels that are not -100 (a 0-d tensor) when ``labels`` were given, else None; kv_cache — the cache
    (extended by this call) when one was passed or ``use_cache=True``, else None; hidden_states — L + 1 tensors
    (B, T, D) (the embeddings, then every block's output) with ``return_hidden_states=True``; attentions — L
    tensors (B, H, T, S) with ``return_attention=True``.
    """

    logits: Tensor
    loss: Tensor | None = None
    kv_cache: KVCache | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


def positions_from_valid(valid: Tensor) -> Tensor:
    """Positions that count only real tokens: (B, S) bool -> (B, S) long, ``(valid.cumsum(-1) - 1).clamp(min=0)``.

    [pad, pad, a, b, c] -> [0, 0, 0, 1, 2]: a left-padded sequence gets the positions it would have alone. The
    padding before the first real token gets 0 (any value would do: it is never attended to).
    """
    return (valid.long().cumsum(dim=-1) - 1).clamp(min=0)


def causal_lm_loss(
    logits: Tensor,
    labels: Tensor,
    valid: Tensor | None = None,
    ignore_index: int = -100,
    *,
    impl: str | None = None,
) -> Tensor:
    """Next-token cross-entropy: position t predicts labels[t + 1]. logits (B, T, V), labels (B, T) -> 0-d.

    The shift happens here, so ``labels`` may simply be the input ids (with -100 where nothing should be
    predicted, e.g. padding). The mean runs over the targets that are not ``ignore_index``.

    ``valid`` (B, T), when given, also drops every prediction made *at* a padded position: with left padding the
    pad just before a row's first real token would otherwise be scored on predicting that token from nothing.
    # Deviation from Hugging Face: ``GPT2LMHeadModel`` scores that prediction (from a padded query row); we
    # ignore it. With labels of -100 on the padding *and* on each row's first real token the two losses agree.
    """
    targets = labels[:, 1:]  # (B, T-1): the token after each position
    if valid is not None:
        targets = torch.where(valid[:, :-1], targets, torch.full_like(targets, ignore_index))  # padded query: none
    return cross_entropy(logits[:, :-1], targets, ignore_index=ignore_index, impl=impl)  # (B,T-1,V) vs (B,T-1)


def _check_ids(ids, vocab_size: int) -> None:
    check_ids_2d(ids, "input_ids", allow_empty=False)
    check_token_ids(ids, vocab_size, "input_ids")


class GPT(nn.Module):
    """A decoder-only Transformer language model (GPT-2 by default; Llama-style by configuration).

    Build it from a config — ``GPT(GPTConfig.tiny())``, ``GPT(GPTConfig.gpt2_small())``,
    ``GPT(GPTConfig.llama_tiny())`` — or load a Hugging Face GPT-2 / Llama folder with :meth:`from_pretrained`
    (an in-memory Hugging Face model with :meth:`from_hf`); the key mappings are in :mod:`interop.hf_gpt2` and
    :mod:`interop.hf_llama`.

    Sub-modules: ``token`` (:class:`~layers.TokenEmbedding`, unscaled), ``position``
    (:class:`~positional.LearnedPositionalEmbedding`, or None with RoPE), ``rotary``
    (:class:`~positional.RotaryEmbedding` shared by every block, or None), ``dropout`` (on the embeddings),
    ``decoder`` (:class:`~stacks.CausalDecoder` of pre-LN blocks with ``decoder.final_norm``) and ``lm_head``
    (``nn.Linear(D, V, bias=False)``; its weight *is* ``token.weight`` when ``tie_head``).

    forward(input_ids (B, T), *, valid=None, attention_mask=None, positions=None, labels=None, kv_cache=None,
    use_cache=False, return_attention=False, return_hidden_states=False) -> :class:`GPTOutput`.

    * ``valid`` (B, T) bool / ``attention_mask`` (B, T) 1/0: which of the T tokens are real (see the module
      docstring). With a cache they describe the new tokens only; the cache remembers the earlier ones.
    * ``positions`` (T,), (1, T) or (B, T): explicit positions, overriding the ones counted from ``valid``.
    * ``labels`` (B, T): target ids, shifted inside (position t is scored against labels[t + 1]); -100 = ignore.
      Predictions made at padded positions are ignored too (see :func:`causal_lm_loss`).
    * ``kv_cache`` / ``use_cache``: incremental decoding, see :class:`~attention.KVCache`.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = c = config
        self.token = TokenEmbedding(c.vocab_size, c.d_model, check_ids=False)  # checked on entry
        if c.positional == "learned":
            self.position = LearnedPositionalEmbedding(c.max_len, c.d_model)
            self.rotary = None
        else:
            self.position = None
            self.rotary = RotaryEmbedding(c.d_head, max_len=c.max_len, theta=c.rope_theta, convention=c.rope_convention)
        self.dropout = nn.Dropout(c.embedding_dropout)  # GPT-2's embd_pdrop, on token + position embeddings
        # pre-LN blocks; the residual stream is normalised once more after the last one (final_norm)
        self.decoder = CausalDecoder(c.block_config(), c.n_layers, final_norm=True, rotary=self.rotary)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)  # (B,T,D) -> (B,T,V)
        if c.tie_head:
            self.lm_head.weight = self.token.weight  # (V, D): logits = h · Eᵀ (Press & Wolf 2017)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation: N(0, 0.02²) for weights and embeddings, 0 for biases, 1/0 for norms, and
        N(0, 0.02² / (2L)) for the projections that add into the residual stream (attention ``out_proj``, FFN
        ``w2``) — "we scale the weights of residual layers at initialization by a factor of 1/√N where N is the
        number of residual layers" (Radford et al. 2019, §2.3), N = 2L. A tied matrix is drawn once."""
        std = self.config.initializer_range
        residual_std = std / math.sqrt(2 * self.config.n_layers)
        with torch.no_grad():
            for name, p in self.named_parameters():  # a tied matrix is listed once
                if name.endswith(("self_attn.out_proj.weight", "ff.w2.weight")):
                    nn.init.normal_(p, std=residual_std)
                elif p.dim() >= 2:
                    nn.init.normal_(p, std=std)
            for module in self.modules():
                if isinstance(module, nn.Linear) and module.bias is not None:
                    module.bias.zero_()
                elif isinstance(module, (LayerNorm, RMSNorm)):
                    module.weight.fill_(1.0)
                    if isinstance(module, LayerNorm):
                        module.bias.zero_()

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, *, dtype: torch.dtype | None = None, rope_convention: str = "half"
    ) -> GPT:
        """Load a local Hugging Face GPT-2 or Llama folder (``config.json`` + ``model.safetensors``), in eval mode.

        The family comes from config.json's ``model_type`` (:mod:`interop.hf_causal_lm`); ``rope_convention`` is
        the RoPE layout to build a Llama in (its weights are permuted to match). ``dtype`` defaults to float32.
        No network access: ``path`` must be a folder on disk; pickle weights are refused.
        """
        config, state = hf_causal_lm.read_pretrained(path, rope_convention=rope_convention)
        model = cls(config).to(torch.float32 if dtype is None else dtype)  # randomly initialised, then overwritten
        model.load_state_dict(state)  # casts every tensor to the model's dtype
        return model.eval()

    @classmethod
    def from_hf(cls, hf_model: nn.Module, *, rope_convention: str = "half") -> GPT:
        """A live ``transformers`` GPT-2 or Llama model -> our GPT with its config and weights, float32, eval mode.

        Reads only ``hf_model.config.to_dict()`` and ``hf_model.state_dict()`` (converted strictly).
        """
        config = hf_causal_lm.config_from_hf(hf_model.config.to_dict(), rope_convention=rope_convention)
        state, _ = hf_causal_lm.state_dict_from_hf(hf_model.state_dict(), config)
        model = cls(config)
        model.load_state_dict(state)
        return model.eval()

    def new_kv_cache(self) -> KVCache:
        """An empty cache with one layer cache per block, for ``forward(..., kv_cache=...)``."""
        return KVCache(self.config.n_layers)

    def num_parameters(self, *, exclude_position: bool = False) -> int:
        """The number of parameters, a tied matrix counted once (124,439,808 for GPT-2 small)."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_position and self.position is not None:
            total -= self.position.weight.numel()
        return total

    # ---- inputs -----------------------------------------------------------------------------------------

    def _valid(self, input_ids: Tensor, valid, attention_mask) -> Tensor | None:
        """The (B, T) real-token mask of the new tokens, or None when every token is real."""
        shape = tuple(input_ids.shape)
        if valid is not None and attention_mask is not None:
            raise ValueError("pass either valid= (bool, True at real tokens) or attention_mask= (1/0), not both")
        if attention_mask is not None:
            check_same_shape(attention_mask, "attention_mask", shape)
            return attention_mask.to(input_ids.device) != 0
        if valid is None:
            if self.config.pad_id is None:
                return None
            return masks.padding_mask_from_ids(input_ids, self.config.pad_id)  # (B, T)
        check_valid(valid, "valid", shape, hint="; for a Hugging Face 0/1 mask use attention_mask=")
        return valid.to(input_ids.device)

    def _cache(self, kv_cache: KVCache | None, use_cache: bool, batch: int) -> KVCache | None:
        """The cache to read and extend: the one given (checked), a new one with ``use_cache``, or None."""
        if kv_cache is None:
            return self.new_kv_cache() if use_cache else None
        n_layers = self.config.n_layers
        if not isinstance(kv_cache, KVCache) or len(kv_cache) != n_layers:
            raise TypeError(f"kv_cache must be a KVCache with {n_layers} layers (model.new_kv_cache())")
        cached_batch = None if kv_cache.layers[0].k is None else kv_cache.layers[0].k.shape[0]
        if cached_batch is not None and cached_batch != batch:
            raise ValueError(
                f"kv_cache holds {cached_batch} sequences but input_ids has {batch}; "
                "use kv_cache.select(rows) to keep the rows you continue"
            )
        return kv_cache

    @staticmethod
    def _key_valid(new_valid: Tensor | None, kv_cache: KVCache | None, batch: int, past: int, t: int, device):
        """(B, S) real-token mask of every key — the cached positions, then the new ones — or None if all are real."""
        past_valid = None if kv_cache is None else kv_cache.valid  # (B, S_past) or None
        if new_valid is None and past_valid is None:
            return None
        if past_valid is None:
            past_valid = torch.ones(batch, past, dtype=torch.bool, device=device)
        if new_valid is None:
            new_valid = torch.ones(batch, t, dtype=torch.bool, device=device)
        return torch.cat([past_valid, new_valid], dim=1)  # (B, S_past) + (B, T) -> (B, S)

    def _positions(self, positions, valid_all: Tensor | None, past: int, batch: int, t: int, device) -> Tensor:
        """Positions of the T new tokens: given, counted from the real tokens, or past … past + T - 1."""
        if positions is not None:
            if not isinstance(positions, Tensor) or positions.dtype in (torch.bool,) or positions.is_floating_point():
                got = positions.dtype if isinstance(positions, Tensor) else type(positions).__name__
                raise TypeError(f"positions must be an integer tensor, got {got}")
            if (
                positions.dim() not in (1, 2)
                or positions.shape[-1] != t
                or (positions.dim() == 2 and positions.shape[0] not in (1, batch))
            ):
                raise ValueError(
                    f"positions must have shape (T,), (1, T) or (B, T) with B={batch}, T={t}; "
                    f"got {tuple(positions.shape)}"
                )
            return positions.to(device)
        if valid_all is None:
            return torch.arange(past, past + t, device=device)  # (T,)
        return positions_from_valid(valid_all)[:, past:]  # (B, S) -> (B, T)

    def _embed(self, input_ids: Tensor, positions: Tensor) -> Tensor:
        """Token embeddings (+ learned positions), then dropout: (B, T) -> (B, T, D)."""
        x = self.token(input_ids)  # (B, T) -> (B, T, D)
        if self.position is not None:
            x = self.position(x, positions)  # + P[positions]: (B,T,D) + (T,D) or (1|B,T,D)
        return self.dropout(x)

    # ---- forward ----------------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: Tensor,
        *,
        valid: Tensor | None = None,
        attention_mask: Tensor | None = None,
        positions: Tensor | None = None,
        labels: Tensor | None = None,
        kv_cache: KVCache | None = None,
        use_cache: bool = False,
        return_attention: bool = False,
        return_hidden_states: bool = False,
    ) -> GPTOutput:
        c = self.config
        _check_ids(input_ids, c.vocab_size)
        if labels is not None:
            check_labels(labels, "labels", tuple(input_ids.shape), shape_of="input_ids")
        out, kv_cache, new_valid = self._run(
            input_ids,
            valid=valid,
            attention_mask=attention_mask,
            positions=positions,
            kv_cache=kv_cache,
            use_cache=use_cache,
            return_attention=return_attention,
            return_hidden_states=return_hidden_states,
        )
        logits = self.lm_head(out.last_hidden_state)  # (B, T, D) -> (B, T, V), after the final norm
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels.to(input_ids.device), new_valid, impl=c.impl)
        return GPTOutput(
            logits=logits,
            loss=loss,
            kv_cache=kv_cache,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )

    def _run(
        self,
        input_ids: Tensor,
        *,
        valid: Tensor | None,
        attention_mask: Tensor | None,
        positions: Tensor | None,
        kv_cache: KVCache | None,
        use_cache: bool,
        return_attention: bool,
        return_hidden_states: bool,
    ) -> tuple[StackOutput, KVCache | None, Tensor | None]:
        """Embeddings and the decoder stack, ids already checked -> (the stack's output — ``last_hidden_state``
        after the final norm —, the cache extended by this call or None, the (B, T) real-token mask of the new
        tokens or None when all are real). What :meth:`forward` and the task models build on."""
        c = self.config
        batch, t = input_ids.shape
        kv_cache = self._cache(kv_cache, use_cache, batch)
        past = 0 if kv_cache is None else kv_cache.length
        if c.positional == "learned" and positions is None and past + t > c.max_len:
            raise ValueError(
                f"sequence length {past + t} exceeds max_len={c.max_len} (the rows of the learned position table)"
            )
        new_valid = self._valid(input_ids, valid, attention_mask)  # (B, T) or None
        valid_all = self._key_valid(new_valid, kv_cache, batch, past, t, input_ids.device)  # (B, S) or None
        positions = self._positions(positions, valid_all, past, batch, t, input_ids.device)  # (T,) or (1|B, T)

        out = self.decoder(
            self._embed(input_ids, positions),
            valid=valid_all,
            positions=positions if self.rotary is not None else None,
            kv_cache=kv_cache,
            return_attention=return_attention,
            return_hidden_states=return_hidden_states,
        )
        if kv_cache is not None:
            kv_cache.valid = valid_all  # None: every cached position is a real token
        return out, kv_cache, new_valid

    # ---- generation -------------------------------------------------------------------------------------

    def _check_room(self, t0: int, max_new_tokens) -> None:
        """Refuse, before decoding, a generation that would run past the learned position table.

        RoPE models have no table (their rotation caches grow on demand), so any length decodes there.
        """
        max_len = self.config.max_len
        if self.config.positional != "learned" or isinstance(max_new_tokens, bool):
            return
        if not isinstance(max_new_tokens, int) or t0 + max_new_tokens <= max_len:
            return  # fits (a max_new_tokens that is not an int is reported by the decoding function)
        fixes = []
        if max_new_tokens < max_len:
            keep = max_len - max_new_tokens
            fixes.append(f"crop the prompt to its last {keep} tokens (input_ids[:, -{keep}:])")
        if t0 < max_len:
            fixes.append(f"lower max_new_tokens to {max_len - t0}")
        if not fixes:
            fixes.append(f"keep prompt length + max_new_tokens ≤ {max_len}")
        raise ValueError(
            f"max_new_tokens={max_new_tokens} does not fit: the prompt length {t0} + max_new_tokens "
            f"{max_new_tokens} = {t0 + max_new_tokens} exceeds max_len={max_len} (the rows of the learned position "
            f"table); {' or '.join(fixes)}"
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
        """Continue the prompts ``input_ids`` (B, t0): greedy (default), sampling or beam search.

        Prompts of different lengths go in left-padded (:func:`generation.left_pad`) with ``valid`` (B, t0)
        True at real tokens (default: from ``config.pad_id`` when set, else all real). Returns (B, t0 + n): the
        prompts as given, then the generated tokens; rows that stopped at ``eos_id`` are filled with ``pad_id``
        (default ``eos_id``). ``do_sample`` draws from softmax(filter(logits / temperature)) with top-k / top-p
        filters and ``generator``; ``beam_size`` runs :func:`generation.beam_search` and returns its best
        sequences. ``use_cache`` decodes with a KV cache (same tokens, fewer computations). Put the model in
        ``eval()`` mode first, or dropout stays on.

        With learned positions the prompt and the new tokens must fit in ``config.max_len`` positions (t0 +
        ``max_new_tokens`` ≤ max_len, checked before decoding starts); RoPE has no such limit.
        """
        _check_ids(input_ids, self.config.vocab_size)
        if input_ids.shape[0] == 0:
            raise ValueError(
                f"input_ids holds no prompt: the batch is empty (shape {tuple(input_ids.shape)}); "
                "generate needs at least one sequence (B ≥ 1)"
            )
        self._check_room(input_ids.shape[1], max_new_tokens)
        if valid is None and self.config.pad_id is not None:
            valid = masks.padding_mask_from_ids(input_ids, self.config.pad_id)
        if valid is None:
            valid = torch.ones_like(input_ids, dtype=torch.bool)
        logits_fn = generation.causal_lm_logits_fn(self, valid=valid, use_cache=use_cache)
        if beam_size is not None:
            if do_sample:
                raise ValueError("choose either beam_size= (beam search) or do_sample=True (sampling), not both")
            result = generation.beam_search(
                logits_fn,
                input_ids,
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
                input_ids,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                eos_id=eos_id,
                pad_id=pad_id,
                generator=generator,
            )
        return generation.greedy(logits_fn, input_ids, max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id)


# ---- sequence classification --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GPTSequenceClassificationOutput:
    """What :class:`GPTForSequenceClassification` returns.

    logits (B, n_labels); pooled (B, D) — the final-norm hidden state the head scored, that of each row's last real
    token; last_index (B,) long — that token's position; loss (0-d) when labels were given, else None;
    hidden_states / attentions as in :class:`GPTOutput`, when asked for.
    """

    logits: Tensor
    pooled: Tensor
    last_index: Tensor
    loss: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


def last_real_index(valid: Tensor | None, length: int, batch: int, device) -> Tensor:
    """The position of each row's last real token: (B, T) bool -> (B,) long; T - 1 for every row when ``valid`` is
    None (all real). Right or left padding alike. A row without a real token is a ``ValueError``."""
    if valid is None:
        return torch.full((batch,), length - 1, dtype=torch.long, device=device)
    has_real = valid.any(dim=1)  # (B, T) -> (B,)
    check_all(
        has_real,
        lambda: f"row(s) {(~has_real).nonzero().flatten().tolist()} of input_ids hold no real token (all padding)",
        "a row of input_ids holds no real token (all padding)",
    )
    positions = torch.arange(length, device=valid.device)  # (T,)
    return (positions * valid).argmax(dim=1)  # (B, T) -> (B,): the largest position with valid True


class GPTForSequenceClassification(nn.Module):
    r"""A decoder-only model as a classifier: logits = W h_L[b, last real token of row b] — no bias, no dropout.

    Radford et al. 2018 (GPT), §3.2: "the inputs are passed through our pre-trained model to obtain the final
    transformer block's activation h_l^m, which is then fed into an added linear output layer with parameters W_y".
    Under a causal mask only the *last* token has read the whole sequence, so it stands for the sequence — with
    padding, the last *real* one (from ``valid`` / ``attention_mask`` / ``config.pad_id``, right or left padding).
    Tokens after it change nothing: no real position attends to them. This is Hugging Face's
    ``GPT2ForSequenceClassification`` (``score`` = ``nn.Linear(D, n_labels, bias=False)`` on the final-norm state of
    the rightmost non-pad token); their model needs a ``pad_token_id`` for batches > 1, ours takes ``valid`` too and,
    with no padding information at all, reads position T - 1 of every row.

    Sub-modules: ``gpt`` (:class:`GPT`; its ``lm_head`` is not used — with ``tie_head`` it *is* the token embedding
    and adds no parameters) and ``head`` (:class:`~heads.SequenceClassificationHead` without bias or dropout,
    ``head.linear``; initialised N(0, initializer_range²)). ``n_labels == 1`` is regression (MSE on float labels).

    forward(input_ids (B, T), *, valid=None, attention_mask=None, positions=None, labels=None (B,),
    return_attention=False, return_hidden_states=False) -> :class:`GPTSequenceClassificationOutput`.
    Raises ``ValueError`` for a row that is all padding.
    """

    def __init__(self, config: GPTConfig, n_labels: int):
        super().__init__()
        self.gpt = GPT(config)
        self.config = config
        self.head = SequenceClassificationHead(config.d_model, n_labels, dropout=0.0, bias=False)
        self.n_labels = n_labels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation for the body (:meth:`GPT.reset_parameters`), N(0, initializer_range²) for the head."""
        self.gpt.reset_parameters()
        with torch.no_grad():
            nn.init.normal_(self.head.linear.weight, std=self.config.initializer_range)

    def forward(
        self,
        input_ids: Tensor,
        *,
        valid: Tensor | None = None,
        attention_mask: Tensor | None = None,
        positions: Tensor | None = None,
        labels: Tensor | None = None,
        return_attention: bool = False,
        return_hidden_states: bool = False,
    ) -> GPTSequenceClassificationOutput:
        _check_ids(input_ids, self.config.vocab_size)
        out, _, real = self.gpt._run(
            input_ids,
            valid=valid,
            attention_mask=attention_mask,
            positions=positions,
            kv_cache=None,
            use_cache=False,
            return_attention=return_attention,
            return_hidden_states=return_hidden_states,
        )
        batch, t = input_ids.shape
        last = last_real_index(real, t, batch, input_ids.device)  # (B,)
        pooled = out.last_hidden_state[torch.arange(batch, device=input_ids.device), last]  # (B, T, D) -> (B, D)
        logits = self.head(pooled)  # (B, D) -> (B, n_labels)
        loss = None if labels is None else classification_loss(logits, labels, impl=self.config.impl)
        return GPTSequenceClassificationOutput(logits, pooled, last, loss, out.hidden_states, out.attentions)
