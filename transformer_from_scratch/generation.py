r"""Decoding: turning next-token distributions into sequences — greedy, sampling, beam search.

Every decoder here talks to a model through one small callable, so the same code serves the 2017
encoder–decoder today and decoder-only (GPT-style) models later:

    logits_fn(ids, rows) -> logits
        ids     (N, t)  long    N partial hypotheses: the prefix followed by the tokens generated so far
        rows    (N,)    long    rows[n] is the batch element (0 ≤ rows[n] < B) that hypothesis n belongs to
        logits  (N, V)  float   unnormalised scores of the next token of each hypothesis

``rows`` is what lets one callable serve every decoder: greedy decoding and sampling ask only about the
batch elements that have not finished yet, beam search asks about all live beams of all batch elements at
once (N ≤ B·K), and :func:`encoder_decoder_logits_fn` uses ``rows`` to pick each hypothesis's encoder
memory. N is a local symbol of this module (hypotheses); t is the current hypothesis length; the rest
of the shape legend is the package's (B batch, S source length, D model width, V vocabulary).

All prompts of a batch share the same length t0 (``prefix`` is (B, t0), e.g. a column of BOS ids).
For a decoder-only model, prompts of different lengths are left-padded to one length (:func:`left_pad`) and
their padding mask is given to :func:`causal_lm_logits_fn`; otherwise decode them one at a time.

Sampling order (per step): temperature → top-k → top-p (nucleus) → softmax → draw. This is also the order
in which Hugging Face ``transformers`` applies its default sampling warpers. All randomness comes from the
``generator`` argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import masks

__all__ = [
    "LogitsFn",
    "encoder_decoder_logits_fn",
    "causal_lm_logits_fn",
    "left_pad",
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "greedy",
    "sample",
    "Hypothesis",
    "BeamSearchOutput",
    "beam_search",
    "length_normalised_score",
]

LogitsFn = Callable[[Tensor, Tensor], Tensor]
"""``logits_fn(ids (N, t) long, rows (N,) long) -> logits (N, V) float`` — see the module docstring."""


# ----------------------------------------------------------------------------------------- model adapters


def encoder_decoder_logits_fn(
    model: nn.Module, src_ids: Tensor, src_valid: Tensor | None = None, *, use_cache: bool = False
) -> LogitsFn:
    """Wrap an encoder–decoder so that the source is encoded **once** and every step only runs the decoder.

    ``model`` needs ``encode(src_ids, src_valid) -> memory (B, S, D)`` (or an output carrying it as
    ``.last_hidden_state``, as :class:`~models.EncoderDecoder` returns) and ``decode(tgt_ids, memory,
    src_valid=None, tgt_valid=None) -> logits (B, T, V)`` (or an output with ``.logits``). ``src_ids`` is (B, S),
    ``src_valid`` the (B, S) bool padding mask (True at real tokens) or None; when None and the model has
    ``config.pad_id`` set, the mask is derived from the ids, as the model's own ``forward`` does. The
    returned callable gathers the memory (and padding mask) of each hypothesis's batch element with ``rows``
    and returns the logits at the last decoder position. Hypotheses never contain padding (finished ones are
    not extended), so every target token is declared real (``tgt_valid`` all True) — even a generated token
    that happens to equal ``pad_id``.

    ``use_cache=True`` decodes incrementally: the model's ``decode`` must accept ``kv_cache=`` and ``use_cache=``
    and return ``.kv_cache`` (:class:`~models.t5.T5ForConditionalGeneration` does). As in
    :func:`causal_lm_logits_fn`, each hypothesis is matched to its parent of the previous call, the parents' caches
    are gathered with ``select`` and only the last token is fed; the cross-attention keys and values of the memory
    are computed on the first call and travel in the cache from then on.

    Models run under ``torch.no_grad()``. Put the model in ``eval()`` mode first, or dropout stays on.
    """
    if not isinstance(src_ids, Tensor) or src_ids.dim() != 2:
        raise ValueError(f"src_ids must be a (B, S) tensor of token ids, got {getattr(src_ids, 'shape', src_ids)}")
    if src_valid is not None and (not isinstance(src_valid, Tensor) or src_valid.shape != src_ids.shape):
        raise ValueError(
            f"src_valid must be a bool tensor of the shape of src_ids {tuple(src_ids.shape)}, "
            f"got {getattr(src_valid, 'shape', src_valid)}"
        )
    pad_id = getattr(getattr(model, "config", None), "pad_id", None)
    if src_valid is None and pad_id is not None:
        src_valid = masks.padding_mask_from_ids(src_ids, pad_id)  # (B, S)
    with torch.no_grad():
        memory = model.encode(src_ids, src_valid)
    memory = getattr(memory, "last_hidden_state", memory)  # (B, S, D)

    def logits_fn(ids: Tensor, rows: Tensor) -> Tensor:
        valid = None if src_valid is None else src_valid[rows]  # (N, S)
        tgt_valid = torch.ones_like(ids, dtype=torch.bool)  # (N, t)
        with torch.no_grad():
            out = model.decode(ids, memory[rows], src_valid=valid, tgt_valid=tgt_valid)  # memory[rows]: (N, S, D)
        return _last_logits(out)  # (N, t, V) -> (N, V): the prediction made at the last position

    if not use_cache:
        return logits_fn

    state: dict = {"ids": None, "rows": None, "cache": None}  # the previous call's hypotheses and their cache

    def cached_logits_fn(ids: Tensor, rows: Tensor) -> Tensor:
        valid = None if src_valid is None else src_valid[rows]  # (N, S)
        with torch.no_grad():
            parent = _parents(ids, rows, state["ids"], state["rows"])
            if parent is None:  # the first step: every decoder position so far, a fresh cache
                tgt_valid = torch.ones_like(ids, dtype=torch.bool)  # (N, t)
                out = model.decode(ids, memory[rows], src_valid=valid, tgt_valid=tgt_valid, use_cache=True)
            else:  # one new token per hypothesis, against its parent's cached keys and values
                cache = state["cache"].select(parent.to(ids.device))
                new_valid = torch.ones(ids.shape[0], 1, dtype=torch.bool, device=ids.device)
                out = model.decode(ids[:, -1:], memory[rows], src_valid=valid, tgt_valid=new_valid, kv_cache=cache)
        state.update(ids=ids, rows=rows, cache=out.kv_cache)
        return _last_logits(out)

    return cached_logits_fn


def _last_logits(out) -> Tensor:
    """(N, t, V) logits, or a model output carrying them as ``.logits`` -> the last position's (N, V)."""
    logits = out.logits if hasattr(out, "logits") else out
    return logits[:, -1, :]  # (N, t, V) -> (N, V)


def _check_prompt_valid(valid: Tensor | None) -> None:
    """Raise unless ``valid`` is None or a (B, t0) bool tensor."""
    if valid is not None and (not isinstance(valid, Tensor) or valid.dtype != torch.bool):
        got = valid.dtype if isinstance(valid, Tensor) else type(valid).__name__
        raise TypeError(f"valid must be a (B, t0) bool tensor, True at the real tokens of the prompts, got {got}")
    if valid is not None and valid.dim() != 2:
        raise ValueError(f"valid must have shape (B, t0), got {tuple(valid.shape)}")


def _hypothesis_valid(prompt_valid: Tensor | None, ids: Tensor, rows: Tensor) -> Tensor:
    """(N, t) bool: the prompt's padding mask ``prompt_valid[rows]`` (B, t0), then True for every generated token."""
    if prompt_valid is None:
        return torch.ones_like(ids, dtype=torch.bool)
    prompt = prompt_valid[rows].to(ids.device)  # (N, t0)
    if ids.shape[1] < prompt.shape[1]:
        raise ValueError(f"hypotheses of length {ids.shape[1]} are shorter than the prompts ({prompt.shape[1]})")
    generated = torch.ones(ids.shape[0], ids.shape[1] - prompt.shape[1], dtype=torch.bool, device=ids.device)
    return torch.cat([prompt, generated], dim=1)  # (N, t0) + (N, t - t0) -> (N, t)


def _parents(ids: Tensor, rows: Tensor, prev_ids: Tensor | None, prev_rows: Tensor | None) -> Tensor | None:
    """For each hypothesis ids (N, t), the index of the previous call's hypothesis prev_ids (N', t - 1) it extends
    by one token (of the same batch row), or None when some hypothesis extends none of them."""
    if prev_ids is None or ids.shape[1] != prev_ids.shape[1] + 1:
        return None
    same = (ids[:, None, :-1] == prev_ids[None]).all(dim=-1)  # (N, 1, t-1) vs (1, N', t-1) -> (N, N')
    same &= rows[:, None] == prev_rows[None, :]  # and the same batch element (its prompt's padding)
    if not bool(same.any(dim=1).all()):
        return None
    return same.int().argmax(dim=1)  # (N,): the first matching parent


def causal_lm_logits_fn(
    model: Callable[..., Tensor], *, valid: Tensor | None = None, use_cache: bool = False
) -> LogitsFn:
    """Wrap a decoder-only language model ``model(ids (N, t)) -> logits (N, t, V)`` (or an output with
    ``.logits``, as :class:`models.gpt.GPT` returns).

    Without options every step recomputes the whole prefix; ``rows`` is not needed (the prompt is part of ids).

    ``valid`` (B, t0) bool marks the real tokens of left-padded prompts (see :func:`left_pad`): hypothesis n
    then runs with ``valid=cat(valid[rows[n]], True…)`` — generated tokens are always real — and the model
    must accept ``valid=`` (and count positions from it, as GPT does, so padding does not shift them).

    ``use_cache=True`` decodes incrementally with a KV cache; the model must accept ``valid=``, ``kv_cache=``
    and ``use_cache=`` and return ``.logits`` and ``.kv_cache`` (GPT does). The adapter remembers the
    hypotheses of its previous call and their cache. When every new hypothesis is an old one plus one token —
    greedy and sampling (finished rows dropped), beam search (beams reordered, copied, dropped) — it finds each
    one's parent by comparing token ids (and batch row), gathers the parents' caches with ``select`` and feeds
    only the last token. Otherwise (the first call) it runs the whole prefix and starts a new cache. Identical
    hypotheses have identical caches, so any matching parent is correct.

    Models run under ``torch.no_grad()``. Put the model in ``eval()`` mode first, or dropout stays on.
    """
    _check_prompt_valid(valid)

    if not use_cache:

        def logits_fn(ids: Tensor, rows: Tensor) -> Tensor:
            with torch.no_grad():
                if valid is None:
                    out = model(ids)
                else:
                    out = model(ids, valid=_hypothesis_valid(valid, ids, rows))
            return _last_logits(out)

        return logits_fn

    state: dict = {"ids": None, "rows": None, "cache": None}  # the previous call's hypotheses and their cache

    def cached_logits_fn(ids: Tensor, rows: Tensor) -> Tensor:
        with torch.no_grad():
            parent = _parents(ids, rows, state["ids"], state["rows"])
            if parent is None:  # prefill: the whole prefix, a fresh cache
                out = model(ids, valid=_hypothesis_valid(valid, ids, rows), use_cache=True)
            else:  # one new token per hypothesis, against its parent's cached keys and values
                cache = state["cache"].select(parent.to(ids.device))
                new_valid = torch.ones(ids.shape[0], 1, dtype=torch.bool, device=ids.device)
                out = model(ids[:, -1:], valid=new_valid, kv_cache=cache)
        state.update(ids=ids, rows=rows, cache=out.kv_cache)
        return _last_logits(out)

    return cached_logits_fn


def left_pad(prompts, pad_id: int, *, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Prompts of different lengths -> (ids (B, L) long, valid (B, L) bool), padded on the **left**.

    ``prompts`` is a sequence of token-id lists or 1-D integer tensors, each non-empty; L is the longest.
    Decoder-only models generate at the end of the row, so the padding goes in front: every prompt's last
    real token sits at column L - 1 and the next token is appended right after it. ``valid`` is True at real
    tokens; give it to the model (or :func:`causal_lm_logits_fn`) so padding is masked and not counted as
    positions.
    """
    _check_token_id("pad_id", pad_id)
    if pad_id is None:
        raise ValueError("pad_id must be a token id (int ≥ 0), got None")
    rows = []
    for i, prompt in enumerate(prompts):
        row = torch.as_tensor(prompt)
        if row.dim() != 1 or row.numel() == 0:
            raise ValueError(f"prompt {i} must be a non-empty 1-D sequence of token ids, got shape {tuple(row.shape)}")
        if row.dtype == torch.bool or row.is_floating_point() or row.is_complex():
            raise TypeError(f"prompt {i} must hold integer token ids, got {row.dtype}")
        rows.append(row.long())
    if not rows:
        raise ValueError("prompts must contain at least one prompt")
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long, device=device)  # (B, L)
    valid = torch.zeros(len(rows), longest, dtype=torch.bool, device=device)  # (B, L)
    for b, row in enumerate(rows):
        ids[b, longest - len(row) :] = row.to(ids.device)
        valid[b, longest - len(row) :] = True
    return ids, valid


# -------------------------------------------------------------------------------- logit transformations


def _check_temperature(temperature: float) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0 (use greedy() for temperature 0), got {temperature!r}")
    if not math.isfinite(temperature):
        raise ValueError(f"temperature must be finite, got {temperature!r}")


def _check_top_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k must be an int ≥ 1, got {k!r}")


def _check_top_p(p: float) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p!r}")


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    r"""Temperature scaling: softmax(z / τ). τ < 1 sharpens the distribution, τ > 1 flattens it, τ → 0 tends
    to the one-hot argmax (greedy), τ → ∞ to uniform.

    The row maximum is subtracted before dividing. Softmax ignores that shift, but it keeps a tiny τ from
    turning large logits into ±inf (and then NaN): the best token gets 0 and the others ≤ 0, possibly -inf.
    """
    _check_temperature(temperature)
    m = logits.amax(dim=-1, keepdim=True)  # (…, 1)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # a row of -inf stays -inf instead of NaN
    return (logits - m) / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits of each row, set the others to -inf (Fan et al. 2018, "top-k sampling").

    Exactly k tokens survive (ties at the k-th value are broken by ``torch.topk``); k larger than the
    vocabulary keeps everything.
    """
    _check_top_k(k)
    k = min(k, logits.shape[-1])
    top = logits.topk(k, dim=-1).indices  # (…, k)
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, top, True)  # (…, V)
    return logits.masked_fill(~keep, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    r"""Nucleus filtering (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration", §3.1).

    Keep the smallest set of most probable tokens whose total probability is ≥ p; the others get -inf.
    Token i (in order of decreasing probability) is kept iff the mass of the tokens before it is < p, so
    the most probable token is always kept. p = 1 keeps everything. Probabilities are softmax(logits),
    computed in float64 so rounding does not move the cut.
    """
    _check_top_p(p)
    if p == 1.0:
        return logits.clone()
    sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)  # (…, V) each
    probs = torch.softmax(sorted_logits.double(), dim=-1)  # (…, V) in decreasing order
    mass_before = F.pad(probs.cumsum(dim=-1)[..., :-1], (1, 0))  # (…, V): Σ of the probabilities before i
    keep_sorted = mass_before < p
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)  # back to vocabulary order
    return logits.masked_fill(~keep, float("-inf"))


# ----------------------------------------------------------------------------------- argument checking


def _check_prefix(prefix: Tensor) -> None:
    if not isinstance(prefix, Tensor):
        raise TypeError(f"prefix must be a torch.Tensor of token ids, got {type(prefix).__name__}")
    if prefix.dtype != torch.long:
        raise TypeError(f"prefix must be a LongTensor (dtype torch.long) of token ids, got {prefix.dtype}")
    if prefix.dim() != 2 or prefix.shape[0] < 1 or prefix.shape[1] < 1:
        raise ValueError(
            "prefix must be 2-D (B, t0) with B ≥ 1 and t0 ≥ 1 (e.g. a (B, 1) column of BOS ids), "
            f"got shape {tuple(prefix.shape)}"
        )


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")


def _check_token_id(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be None or a token id (int ≥ 0), got {value!r}")


def _check_length_penalty(length_penalty: float) -> None:
    """Raise unless ``length_penalty`` is a finite real number (a bool is not one)."""
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
        raise TypeError(f"length_penalty must be a number, got {length_penalty!r}")
    if not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be finite, got {length_penalty!r}")


def _next_logits(logits_fn: LogitsFn, ids: Tensor, rows: Tensor, eos_id: int | None) -> Tensor:
    """Call the model and check that it answered one row of logits per hypothesis."""
    logits = logits_fn(ids, rows)
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits_fn must return a floating-point tensor, got {getattr(logits, 'dtype', logits)}")
    if logits.dim() != 2 or logits.shape[0] != ids.shape[0] or logits.shape[1] < 1:
        raise ValueError(
            f"logits_fn must return next-token logits of shape (N, V) = ({ids.shape[0]}, V) for ids of shape "
            f"{tuple(ids.shape)}, got {tuple(logits.shape)}; with a model returning (N, t, V) take [:, -1, :]"
        )
    if eos_id is not None and eos_id >= logits.shape[1]:
        raise ValueError(f"eos_id={eos_id} is outside the vocabulary of size {logits.shape[1]}")
    return logits


# ---------------------------------------------------------------------------------- greedy and sampling


def _decode_one_token_at_a_time(
    logits_fn: LogitsFn,
    prefix: Tensor,
    choose: Callable[[Tensor], Tensor],
    max_new_tokens: int,
    eos_id: int | None,
    pad_id: int | None,
) -> Tensor:
    """The loop shared by greedy decoding and sampling; ``choose`` maps logits (N, V) to token ids (N,)."""
    _check_prefix(prefix)
    _check_positive_int("max_new_tokens", max_new_tokens)
    _check_token_id("eos_id", eos_id)
    _check_token_id("pad_id", pad_id)
    fill = pad_id if pad_id is not None else eos_id
    batch = prefix.shape[0]
    ids = prefix
    finished = torch.zeros(batch, dtype=torch.bool, device=prefix.device)  # (B,)
    for _ in range(max_new_tokens):
        live = (~finished).nonzero().squeeze(1)  # (N,) batch elements still decoding
        logits = _next_logits(logits_fn, ids[live], live, eos_id)  # (N, V); finished rows are not asked
        next_token = torch.full((batch,), fill if fill is not None else 0, dtype=torch.long, device=prefix.device)
        next_token[live] = choose(logits)  # (B,)
        ids = torch.cat([ids, next_token[:, None]], dim=1)  # (B, t) -> (B, t + 1)
        if eos_id is not None:
            finished = finished | (next_token == eos_id)
            if bool(finished.all()):
                break  # every row has ended: stop early instead of padding to max_new_tokens
    return ids


def greedy(
    logits_fn: LogitsFn, prefix: Tensor, *, max_new_tokens: int, eos_id: int | None = None, pad_id: int | None = None
) -> Tensor:
    """Greedy decoding: append argmax_v logits[v] until EOS or ``max_new_tokens`` new tokens.

    prefix (B, t0) long -> (B, t0 + n) long with n ≤ max_new_tokens: prefix followed by the generated tokens.
    A row that produced ``eos_id`` keeps its EOS and is then filled with ``pad_id`` (default: ``eos_id``);
    the model is no longer called for it. Decoding stops as soon as every row has finished, so n <
    max_new_tokens is possible. Ties go to the lowest token id (``torch.argmax``).
    """

    def choose(logits: Tensor) -> Tensor:
        return logits.argmax(dim=-1)  # (N, V) -> (N,)

    return _decode_one_token_at_a_time(logits_fn, prefix, choose, max_new_tokens, eos_id, pad_id)


def sample(
    logits_fn: LogitsFn,
    prefix: Tensor,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Ancestral sampling: draw each next token from softmax(filter(logits / temperature)).

    Filters, in this order: temperature (:func:`apply_temperature`), top-k (:func:`top_k_filter`),
    top-p (:func:`top_p_filter`). ``top_k=1`` is greedy decoding. Shapes, EOS and padding behave as in
    :func:`greedy`. With the same ``generator`` state the result is the same; without one, torch's global
    generator is used.
    """
    # Validate everything before the first model call, so a bad argument fails fast.
    _check_temperature(temperature)
    if top_k is not None:
        _check_top_k(top_k)
    if top_p is not None:
        _check_top_p(top_p)

    def choose(logits: Tensor) -> Tensor:
        if not bool(torch.isfinite(logits.amax(dim=-1)).all()):
            raise ValueError("logits_fn returned a row without any finite logit; nothing can be sampled from it")
        z = apply_temperature(logits, temperature)  # (N, V)
        if top_k is not None:
            z = top_k_filter(z, top_k)
        if top_p is not None:
            z = top_p_filter(z, top_p)
        probs = torch.softmax(z, dim=-1)  # (N, V), zero outside the kept tokens
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (N, 1) -> (N,)

    return _decode_one_token_at_a_time(logits_fn, prefix, choose, max_new_tokens, eos_id, pad_id)


# ------------------------------------------------------------------------------------------- beam search


def length_normalised_score(log_prob: float, n_tokens: int, length_penalty: float) -> float:
    r"""score(y) = log p(y) / |y|^α with |y| the number of generated tokens (EOS included), α = length_penalty.

    Summed log-probabilities favour short outputs (every token adds a negative term); dividing by |y|^α
    compensates: α = 0 ranks by log p(y), α = 1 by the mean log-probability per token. This is the
    convention of Hugging Face ``transformers`` (``length_penalty``, there with the length counted as the
    generated length). The GNMT form ((5 + |y|) / 6)^α (Wu et al. 2016, eq. 14) is a smoother variant of the
    same idea; we use the plain power, which is the easiest to check by hand.
    """
    return log_prob / n_tokens**length_penalty


@dataclass(frozen=True, eq=False)  # eq=False: tensors do not compare to a single bool
class Hypothesis:
    """One complete beam-search hypothesis."""

    tokens: Tensor  # (t0 + n,) long: the prefix, then the n generated tokens (ending with EOS if finished)
    log_prob: float  # Σ over the n generated tokens of log p(token | everything before it)
    score: float  # length_normalised_score(log_prob, n, length_penalty) — what the hypotheses are ranked by
    finished: bool  # True if it ended with EOS, False if it was cut off by max_new_tokens


@dataclass(frozen=True, eq=False)
class BeamSearchOutput:
    """Result of :func:`beam_search`."""

    sequences: Tensor  # (B, L) long: the best hypothesis of each batch element, right-padded with pad_id
    scores: Tensor  # (B,) float64: the score of each of those best hypotheses
    hypotheses: tuple[tuple[Hypothesis, ...], ...]  # per batch element, up to beam_size hypotheses, best first


def _best_reachable_score(log_prob: float, length: int, max_length: int, length_penalty: float) -> float:
    """Upper bound on the final score of a live beam of ``length`` tokens with summed log-prob ``log_prob``.

    Further tokens only add log-probabilities ≤ 0, and the final length is between length + 1 and
    max_length; log_prob / m^α is monotone in m, so the best case is at one of the two ends.
    """
    return max(
        length_normalised_score(log_prob, length + 1, length_penalty),
        length_normalised_score(log_prob, max_length, length_penalty),
    )


@dataclass(frozen=True)
class _BeamSettings:
    """The fixed arguments of one beam search: K, the step budget, EOS and the length penalty α."""

    beam_size: int
    max_new_tokens: int
    eos_id: int | None
    length_penalty: float


def _best_first(hypotheses: list[Hypothesis], k: int) -> list[Hypothesis]:
    """The k best hypotheses by score, best first."""
    # stable sort: among equal scores the earlier (shorter, higher-ranked) hypothesis stays first
    return sorted(hypotheses, key=lambda h: -h.score)[:k]


def _rank_extensions(
    extensions: Tensor, beams: Tensor, ids: Tensor, length: int, settings: _BeamSettings
) -> tuple[list[int], list[int], list[Hypothesis]]:
    """Walk one batch element's n_b·V extensions best first: the top-K ones ending in EOS finish, the K best
    others stay live. Returns (live beam index, live token) lists and the finished hypotheses.

    extensions (n_b, V) float64 summed log-probabilities of the element's beams ``beams`` (n_b,) in ``ids`` (N, t).
    """
    vocab = extensions.shape[1]
    flat = extensions.reshape(-1)  # (n_b, V) -> (n_b·V,), index = beam·V + token
    ranking = flat.argsort(descending=True, stable=True).tolist()
    keep_beam: list[int] = []  # which live beam each new beam extends
    keep_token: list[int] = []  # and with which token
    ended: list[Hypothesis] = []
    for rank, j in enumerate(ranking):
        beam, token = int(beams[j // vocab]), j % vocab
        if token == settings.eos_id:
            if rank < settings.beam_size:  # only an EOS that made it into the top K counts
                tokens = torch.cat([ids[beam], ids.new_tensor([token])])  # (t + 1,)
                log_prob = float(flat[j])
                score = length_normalised_score(log_prob, length, settings.length_penalty)
                ended.append(Hypothesis(tokens, log_prob, score, True))
        else:
            keep_beam.append(beam)
            keep_token.append(token)
            if len(keep_beam) == settings.beam_size:
                break
    return keep_beam, keep_token, ended


def _extend_beams(
    ids: Tensor,
    rows: Tensor,
    extensions: Tensor,
    finished: list[list[Hypothesis]],
    done: list[bool],
    length: int,
    settings: _BeamSettings,
) -> tuple[Tensor, Tensor, Tensor]:
    """One step for every batch element still searching: set its finished hypotheses aside in ``finished`` and
    return the new live beams: ids (N', t + 1), rows (N',), sums (N',).

    extensions (N, V): the summed log-probability of every one-token extension of every live beam.
    """
    keep_beam: list[int] = []
    keep_token: list[int] = []
    for b, element_done in enumerate(done):
        if element_done:
            continue
        beams = (rows == b).nonzero().squeeze(1)  # (n_b,) indices of b's live beams
        beam_ids, tokens, ended = _rank_extensions(extensions[beams], beams, ids, length, settings)
        keep_beam += beam_ids
        keep_token += tokens
        finished[b] = _best_first(finished[b] + ended, settings.beam_size)
    beam_index = torch.tensor(keep_beam, dtype=torch.long, device=ids.device)  # (N',)
    token_index = torch.tensor(keep_token, dtype=torch.long, device=ids.device)  # (N',)
    new_ids = torch.cat([ids[beam_index], token_index[:, None]], dim=1)  # (N', t + 1)
    return new_ids, rows[beam_index], extensions[beam_index, token_index]


def _cannot_improve(sums: Tensor, finished: list[Hypothesis], length: int, settings: _BeamSettings) -> bool:
    """True when a batch element with live beams of summed log-probabilities ``sums`` (n_b,) is done: it has no
    live beam, or K finished hypotheses that no live beam can beat (see :func:`_best_reachable_score`)."""
    if sums.numel() == 0:
        return True
    if len(finished) < settings.beam_size:
        return False
    best_live = max(
        _best_reachable_score(float(s), length, settings.max_new_tokens, settings.length_penalty) for s in sums
    )
    return best_live <= finished[-1].score


def _final_hypotheses(
    finished: list[Hypothesis], live_ids: Tensor, live_sums: Tensor, length: int, settings: _BeamSettings
) -> tuple[Hypothesis, ...]:
    """A batch element's K best hypotheses among its finished ones and the live beams that max_new_tokens cut
    off — ids (n_b, t), sums (n_b,) — which compete unfinished (n_b = 0 for an element that stopped early)."""
    candidates = list(finished)
    for tokens, log_prob in zip(live_ids, live_sums.tolist()):
        score = length_normalised_score(log_prob, length, settings.length_penalty)
        candidates.append(Hypothesis(tokens.clone(), log_prob, score, False))
    return tuple(_best_first(candidates, settings.beam_size))


def _best_of_each(hypotheses: tuple[tuple[Hypothesis, ...], ...], fill: int, device: torch.device) -> BeamSearchOutput:
    """The best hypothesis of each batch element, right-padded with ``fill`` into (B, L), and its score (B,)."""
    best = [h[0] for h in hypotheses]
    longest = max(len(h.tokens) for h in best)
    sequences = torch.full((len(best), longest), fill, dtype=torch.long, device=device)  # (B, L)
    for b, h in enumerate(best):
        sequences[b, : len(h.tokens)] = h.tokens
    scores = torch.tensor([h.score for h in best], dtype=torch.float64, device=device)  # (B,)
    return BeamSearchOutput(sequences, scores, hypotheses)


def beam_search(
    logits_fn: LogitsFn,
    prefix: Tensor,
    *,
    beam_size: int,
    max_new_tokens: int,
    eos_id: int | None = None,
    length_penalty: float = 1.0,
    pad_id: int | None = None,
) -> BeamSearchOutput:
    r"""Beam search: keep the ``beam_size`` most probable partial hypotheses at every step.

    Each step extends every live beam by every token and ranks the K·V extensions by their summed
    log-probability (all live beams have the same length, so the length penalty cannot change this
    ranking). Walking down that ranking:
      * an extension ending in ``eos_id`` and ranked among the top K is finished: it is put aside and never
        extended again (the K best finished hypotheses are kept, by :func:`length_normalised_score`);
      * the other extensions refill the K live beams.
    A batch element is done when its K finished hypotheses can no longer be beaten: no live beam can
    reach a better score than the worst of them even if every future token had probability 1
    (:func:`_best_reachable_score`). This stop is safe — it never throws away a hypothesis that could still
    enter the top K. After ``max_new_tokens`` steps the live beams compete as unfinished hypotheses.

    With ``beam_size=1`` and either ``length_penalty=0`` or no ``eos_id`` this is greedy decoding. With
    ``length_penalty > 0`` a width-1 beam may continue past an EOS that greedy would stop at, looking for
    a longer hypothesis with a better per-token score.

    Beam search is a heuristic: with a small beam it can miss the most probable sequence, and can even end
    below greedy decoding (greedy's path can be pushed out of the beam). With a beam as large as the number
    of distinct hypotheses it is exhaustive.

    prefix (B, t0) long -> :class:`BeamSearchOutput`; ``sequences`` is (B, L) with the best hypothesis of
    each batch element right-padded with ``pad_id`` (default ``eos_id``). Scores use log-softmax in float64.
    """
    _check_prefix(prefix)
    _check_positive_int("beam_size", beam_size)
    _check_positive_int("max_new_tokens", max_new_tokens)
    _check_token_id("eos_id", eos_id)
    _check_token_id("pad_id", pad_id)
    _check_length_penalty(length_penalty)
    settings = _BeamSettings(beam_size, max_new_tokens, eos_id, length_penalty)
    batch = prefix.shape[0]
    # The live beams of all batch elements, stacked: ids (N, t), rows (N,), summed log-probabilities (N,).
    ids = prefix
    rows = torch.arange(batch, device=prefix.device)
    sums = torch.zeros(batch, dtype=torch.float64, device=prefix.device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]  # per batch element, ≤ K, best first
    done = [False] * batch

    length = 0  # number of generated tokens in every live beam
    for length in range(1, max_new_tokens + 1):
        log_probs = torch.log_softmax(_next_logits(logits_fn, ids, rows, eos_id).double(), dim=-1)  # (N, V)
        extensions = sums[:, None] + log_probs  # (N, V): log p of every one-token extension of every beam
        ids, rows, sums = _extend_beams(ids, rows, extensions, finished, done, length, settings)
        if length == max_new_tokens:
            break
        for b in range(batch):  # safe early stop, see the docstring
            done[b] = done[b] or _cannot_improve(sums[rows == b], finished[b], length, settings)
        if all(done):
            break
        alive = torch.tensor([not done[int(r)] for r in rows], dtype=torch.bool, device=prefix.device)  # (N',)
        ids, sums, rows = ids[alive], sums[alive], rows[alive]

    hypotheses = []
    for b in range(batch):
        cut_off = (rows == b) & (not done[b])  # (N,): beams of an element that max_new_tokens stopped
        hypotheses.append(_final_hypotheses(finished[b], ids[cut_off], sums[cut_off], length, settings))
    fill = pad_id if pad_id is not None else (eos_id if eos_id is not None else 0)
    return _best_of_each(tuple(hypotheses), fill, prefix.device)
