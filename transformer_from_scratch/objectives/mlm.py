r"""Masked language modelling (MLM): BERT's corruption of the input — Devlin et al. 2019, §3.1 and App. A.1.

    original    [CLS] the  cat  sat  on  the  mat  [SEP] [PAD]
    selected           .    ✓    .    .   ✓    .                 each eligible token with probability p = 0.15
    corrupted   [CLS] the [MASK] sat  on  dog  mat  [SEP] [PAD]  80% → [MASK], 10% → random token, 10% unchanged
    labels      -100  -100  cat -100 -100 the -100  -100  -100   the original id where selected, ignore_index elsewhere

The model reads the corrupted ids and is trained with ``cross_entropy(logits, labels, ignore_index=-100)``, so
only the selected positions contribute to the loss. Keeping 10% unchanged and replacing 10% by random tokens
means the model cannot assume "[MASK] marks the only tokens I must think about": it has to keep a good
representation of *every* input token, and [MASK], which never appears at fine-tuning time, is seen less.

Choices made here (each pinned by a test in ``tests/test_mlm_objective.py``)
----------------------------------------------------------------------------
* **Selection is Bernoulli**: every eligible token is selected independently with probability
  ``mlm_probability`` (as Hugging Face's ``DataCollatorForLanguageModeling``). Google's original data script
  instead picks exactly ``round(p·n)`` tokens per sequence (capped by ``max_predictions_per_seq``); both give
  rate p on average, Bernoulli makes the count per sequence vary (a short row may get none).
* **Eligible** = not special and not padding: a token is never selected when its id is in ``special_ids``
  (``mask_id`` is always added), when ``special_mask`` is True there, or when ``valid`` is False there.
* **One categorical draw per selected token** splits the selection into the three branches:
  u ~ U[0, 1);  u < 0.8 → [MASK];  0.8 ≤ u < 0.9 → random;  u ≥ 0.9 → unchanged. The three probabilities are
  exactly ``mask_fraction``, ``random_fraction`` and the rest.

  The classic bug is two *independent* draws: ``masked = bernoulli(0.8)``, then ``random = bernoulli(0.1) &
  ~masked``. The second draw only sees the 20% left over, so random gets 0.2 × 0.1 = 2% and unchanged 18%
  (80/2/18). Hugging Face writes the second draw as ``bernoulli(0.5) & ~masked`` — 0.2 × 0.5 = 10%, which is
  correct but easy to "fix" into the bug. Drawing one u per token cannot go wrong this way.
* **Random replacements avoid special tokens.** The replacement is uniform over the *allowed* ids
  {0, …, V-1} minus ``special_ids`` minus ``mask_id`` (it may coincide with the original token, as in BERT).
* **Whole-word masking** (``word_ids=``): the selection unit is a word — all WordPiece pieces of a word
  (``play ##ing``) are selected together, each word with probability p, so the expected token rate stays p.
  The 80/10/10 branch is then drawn *per token*, as Google's ``create_pretraining_data.py`` and Hugging Face's
  ``DataCollatorForWholeWordMask`` do (a word can come out as ``[MASK] ##ing``). Build ``word_ids`` with
  :func:`word_ids_from_tokens`.

Shapes: input_ids (B, T) long; special_mask, valid (B, T) bool; word_ids (B, T) integer -> MaskedBatch with
input_ids (B, T) long and labels (B, T) long. Any leading shape works without ``word_ids``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["MaskedBatch", "mask_tokens", "word_ids_from_tokens", "replacement_ids"]


@dataclass(frozen=True)
class MaskedBatch:
    """The output of :func:`mask_tokens`.

    input_ids (B, T) long — the corrupted ids the model reads;
    labels (B, T) long — the original id at every selected position, ``ignore_index`` everywhere else.
    """

    input_ids: Tensor
    labels: Tensor
    ignore_index: int = -100

    @property
    def selected(self) -> Tensor:
        """(B, T) bool: the positions the loss is computed on (selected for prediction)."""
        return self.labels != self.ignore_index


def _check_probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _check_mask(name: str, mask, shape: torch.Size) -> Tensor:
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{name} must be a bool tensor of shape {tuple(shape)}, got {got}")
    if mask.shape != shape:
        raise ValueError(f"{name} must have the shape of input_ids {tuple(shape)}, got {tuple(mask.shape)}")
    return mask


def replacement_ids(vocab_size: int, special_ids: Collection[int], mask_id: int) -> Tensor:
    """(N,) long: the ids a "random token" replacement is drawn from, uniformly — every id but the special ones."""
    # Deviation: BERT's data script and Hugging Face draw the random token from the whole vocabulary, so it can
    # be [CLS], [SEP], [PAD] or [MASK] itself (with a small vocabulary that visibly inflates the [MASK] rate).
    # We exclude ``special_ids`` and ``mask_id`` so the random branch always shows the model an ordinary token.
    all_ids = torch.arange(vocab_size)  # (V,)
    excluded = torch.tensor(sorted(set(special_ids) | {mask_id}), dtype=torch.long)
    return all_ids[~torch.isin(all_ids, excluded)]  # (N,)


def mask_tokens(
    input_ids: Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    generator: torch.Generator,
    special_ids: Collection[int] = (),
    special_mask: Tensor | None = None,
    valid: Tensor | None = None,
    mlm_probability: float = 0.15,
    mask_fraction: float = 0.8,
    random_fraction: float = 0.1,
    word_ids: Tensor | None = None,
    ignore_index: int = -100,
) -> MaskedBatch:
    r"""Corrupt a batch for masked language modelling and return the corrupted ids and the labels.

    A position is *eligible* iff its id ∉ ``special_ids`` ∪ {``mask_id``}, ``special_mask`` is False there (if
    given) and ``valid`` is True there (if given). Pass the ids of [CLS], [SEP], [PAD] (and any other reserved
    token) as ``special_ids``, or pass ``valid`` so padding is skipped whatever its id.

    Each eligible position (each eligible *word* with ``word_ids``) is selected with probability
    ``mlm_probability``; each selected position then becomes

        [MASK]                         with probability mask_fraction                       (0.8)
        a uniform id of replacement_ids with probability random_fraction                    (0.1)
        itself                         with probability 1 - mask_fraction - random_fraction (0.1)

    from a single uniform draw per position. ``labels`` holds the original id at selected positions and
    ``ignore_index`` elsewhere. Every draw comes from ``generator`` (on its device), so equal generators give
    equal batches.

    ``word_ids`` (B, T) integer: tokens of one row that share a non-negative word id form one word and are
    selected together (whole-word masking); a negative word id marks a token outside any word (e.g. a special
    token or padding), which is never selected. See :func:`word_ids_from_tokens`.

    Shapes: input_ids (B, T) long -> MaskedBatch(input_ids (B, T) long, labels (B, T) long).
    """
    _check_input_ids(input_ids)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    _check_vocabulary(vocab_size, mask_id, special_ids)
    p, f_mask, f_random = _check_fractions(mlm_probability, mask_fraction, random_fraction)
    _check_against_vocabulary(input_ids, ignore_index, vocab_size)
    input_ids = input_ids.long()  # (B, T); room for ignore_index in the labels whatever the input dtype
    shape = input_ids.shape
    eligible = _eligible(input_ids, special_ids, mask_id, special_mask, valid)  # (B, T)

    # ---- select: one Bernoulli(p) per token, or per word -----------------------------------------------
    device = generator.device  # draw where the generator lives, then move: equal generators, equal batches
    if word_ids is None:
        u_select = torch.rand(shape, generator=generator, device=device).to(input_ids.device)  # (B, T)
    else:
        u_select = _per_word_uniforms(word_ids, shape, generator).to(input_ids.device)  # (B, T), one u per word
        eligible &= word_ids.to(input_ids.device) >= 0
    selected = eligible & (u_select < p)  # (B, T)

    # ---- split the selection 80/10/10 with ONE uniform per token ---------------------------------------
    u_branch = torch.rand(shape, generator=generator, device=device).to(input_ids.device)  # (B, T)
    to_mask = selected & (u_branch < f_mask)
    to_random = selected & (u_branch >= f_mask) & (u_branch < f_mask + f_random)
    # the remaining selected tokens (u ≥ f_mask + f_random) stay unchanged

    corrupted = input_ids.clone()
    corrupted[to_mask] = mask_id
    _write_random_tokens(corrupted, to_random, replacement_ids(vocab_size, special_ids, mask_id), generator)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, ignore_index))
    return MaskedBatch(corrupted, labels, ignore_index)


def _check_input_ids(input_ids: Tensor) -> None:
    """Raise unless ``input_ids`` is an integer (not bool) tensor with at least one dimension."""
    if not isinstance(input_ids, Tensor) or input_ids.is_floating_point() or input_ids.is_complex():
        got = input_ids.dtype if isinstance(input_ids, Tensor) else type(input_ids).__name__
        raise TypeError(f"input_ids must be an integer tensor of token ids (B, T), got {got}")
    if input_ids.dtype == torch.bool or input_ids.dim() == 0:
        raise TypeError(
            f"input_ids must be an integer tensor of token ids (B, T), got {input_ids.dtype} "
            f"of shape {tuple(input_ids.shape)}"
        )


def _check_vocabulary(vocab_size: int, mask_id: int, special_ids: Collection[int]) -> None:
    """Raise unless vocab_size ≥ 1, 0 ≤ mask_id < vocab_size and special_ids is a collection of ints."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if isinstance(mask_id, bool) or not isinstance(mask_id, int) or not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id={mask_id!r} is outside the vocabulary of size {vocab_size}")
    if isinstance(special_ids, (str, bytes, Tensor)) or not isinstance(special_ids, Collection):
        raise TypeError(f"special_ids must be a collection of int ids, got {type(special_ids).__name__}")
    for i in special_ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"special_ids must contain int ids, got {i!r} of type {type(i).__name__}")


def _check_fractions(mlm_probability, mask_fraction, random_fraction) -> tuple[float, float, float]:
    """The three probabilities as floats; each in [0, 1] and mask_fraction + random_fraction ≤ 1."""
    p = _check_probability("mlm_probability", mlm_probability)
    f_mask = _check_probability("mask_fraction", mask_fraction)
    f_random = _check_probability("random_fraction", random_fraction)
    if f_mask + f_random > 1.0 + 1e-12:
        raise ValueError(
            f"mask_fraction + random_fraction must be ≤ 1 (the rest stays unchanged), "
            f"got {mask_fraction} + {random_fraction} = {f_mask + f_random}"
        )
    return p, f_mask, f_random


def _check_against_vocabulary(input_ids: Tensor, ignore_index: int, vocab_size: int) -> None:
    """Raise unless ``ignore_index`` is outside [0, vocab_size) and every id of ``input_ids`` inside it."""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int) or 0 <= ignore_index < vocab_size:
        raise ValueError(f"ignore_index must be an int outside the vocabulary [0, {vocab_size}), got {ignore_index!r}")
    if input_ids.numel() > 0:
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"token id {bad} in input_ids is outside the vocabulary of size {vocab_size}")


def _eligible(
    input_ids: Tensor, special_ids: Collection[int], mask_id: int, special_mask: Tensor | None, valid: Tensor | None
) -> Tensor:
    """(B, T) bool: the positions that may be selected — not special (by id or ``special_mask``), not padding."""
    shape = input_ids.shape
    special = torch.tensor(sorted(set(special_ids) | {mask_id}), dtype=input_ids.dtype, device=input_ids.device)
    eligible = ~torch.isin(input_ids, special)  # (B, T)
    if special_mask is not None:
        eligible &= ~_check_mask("special_mask", special_mask, shape)
    if valid is not None:
        eligible &= _check_mask("valid", valid, shape)
    return eligible


def _write_random_tokens(corrupted: Tensor, to_random: Tensor, pool: Tensor, generator: torch.Generator) -> None:
    """Set ``corrupted`` (B, T) at the ``to_random`` positions to ids drawn uniformly from ``pool`` (N,), in place.

    One draw per position of the batch (selected or not), so the draws do not depend on the selection.
    """
    if pool.numel() == 0:  # every id is special: then nothing is eligible either
        return
    device = generator.device
    pick = torch.randint(0, pool.numel(), corrupted.shape, generator=generator, device=device)  # (B, T) into pool
    random_tokens = pool.to(device)[pick].to(corrupted.device)  # (B, T)
    corrupted[to_random] = random_tokens[to_random]


def _per_word_uniforms(word_ids: Tensor, shape: torch.Size, generator: torch.Generator) -> Tensor:
    """(B, T) float: one U[0, 1) per (row, word), broadcast to every piece of that word (any u where word id < 0)."""
    if not isinstance(word_ids, Tensor) or word_ids.is_floating_point() or word_ids.dtype == torch.bool:
        got = word_ids.dtype if isinstance(word_ids, Tensor) else type(word_ids).__name__
        raise TypeError(f"word_ids must be an integer tensor (B, T) of word indices, got {got}")
    if len(shape) != 2 or word_ids.shape != shape:
        raise ValueError(
            f"word_ids must have the 2-D shape (B, T) of input_ids {tuple(shape)}, got {tuple(word_ids.shape)}"
        )
    w = word_ids.to(generator.device).long().clamp(min=-1)  # (B, T); every negative id -> -1
    n_words = int(w.max()) + 2 if w.numel() else 1  # word ids -1, 0, …, max -> 0, …, max + 1
    row = torch.arange(shape[0], device=w.device)[:, None]  # (B, 1)
    key = row * n_words + (w + 1)  # (B, T): a distinct key for each (row, word)
    groups, inverse = torch.unique(key, return_inverse=True)  # (G,), (B, T) index of each token's word
    u_word = torch.rand(groups.shape, generator=generator, device=w.device)  # (G,) one draw per word
    return u_word[inverse]  # (B, T)


def word_ids_from_tokens(
    tokens: Sequence[str], *, continuation_prefix: str = "##", special_tokens: Collection[str] = ()
) -> list[int]:
    """Word index of every WordPiece token: a token starting with ``##`` continues the previous word.

        ["[CLS]", "the", "play", "##ing", "##s", "end", "[SEP]"], special_tokens={"[CLS]", "[SEP]"}
        -> [-1, 0, 1, 1, 1, 2, -1]

    Tokens in ``special_tokens`` get -1 (no word: never selected by whole-word masking) and end the current
    word, so a continuation right after one (or at the start) begins a new word. Feed a batch of these lists,
    padded with -1, to ``mask_tokens(..., word_ids=)``.
    """
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"tokens must be a list of token strings, got {type(tokens).__name__}")
    out: list[int] = []
    word = -1  # index of the current word; -1 before the first one
    in_word = False
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise TypeError(f"tokens[{i}] must be a str, got {tok!r} of type {type(tok).__name__}")
        if tok in special_tokens:
            out.append(-1)
            in_word = False
            continue
        if not (in_word and tok.startswith(continuation_prefix)):
            word += 1  # a new word begins
        in_word = True
        out.append(word)
    return out
