r"""Permuted language modelling (PLM): XLNet's objective — Yang et al. 2019, §2.2–2.3.

An autoregressive model factorises p(x) = Π_t p(x_t | x_<t) left to right and so never sees the right context;
BERT sees both sides but predicts its [MASK] tokens independently of each other and reads a token that never
appears at fine-tuning time. XLNet keeps the product of conditionals and the uncorrupted input, and changes the
*order*: draw a factorization order z, a permutation of the positions, and maximise

    log p(x) = Σ_t log p(x_{z_t} | x_{z_<t})             (eq. 3, in expectation over uniformly drawn orders z)

The tokens stay where they are — positions are unchanged, only who-may-see-whom changes — so each token is
predicted from context on both sides, averaged over orders. Example, T = 5, order z = (3, 1, 4, 0, 2):

    position    0    1    2    3    4
    rank        3    1    4    0    2      rank[i] = the step of z at which position i is produced
    content     position i sees j when rank[j] ≤ rank[i]   (its own token included)
    query       position i sees j when rank[j] < rank[i]   (strictly earlier: the token being predicted is hidden)

The *content* mask is the one the hidden states h use, the *query* mask the one the prediction stream g uses
(``models/xlnet.py``): to predict position 2 (rank 4) the model may read positions 3, 1, 4, 0 but not 2 itself.

Partial prediction (§2.3): predicting the first tokens of an order is hard (almost no context) and slows
training, so only the last 1/K of each order is predicted — the *targets*; XLNet uses K = 6 (K = 7 for large).
The rest of the order is context only.

Choices made here (each pinned by a test in ``tests/test_plm_objective.py``)
-----------------------------------------------------------------------------
* **The order** is a uniformly random permutation of the real (``valid``) positions: one U[0, 1) key per position
  from ``generator``, sorted. Every order of the n real tokens is equally likely; padding comes after them in
  every order and is never seen by any real token nor predicted.
* **The number of targets** of a row with n eligible tokens is n/K rounded *stochastically* (⌊n/K⌋, plus one more
  with probability n/K − ⌊n/K⌋), so the expected fraction is exactly 1/K at every length; at least one target
  per row that has an eligible token. Special tokens (``special_mask``) stay in the order as context but are
  never targets (the released code also skips its [SEP]/[CLS]); the targets are the last eligible tokens of z.
* **Masks follow the order literally**: every token of the order, context or target, sees the tokens before it
  (the content stream) — eq. (4) of the paper. (The released code lets the context tokens see *all* other
  context tokens, since they are never predicted; that is a different, equally valid choice.)
* **Target mapping** (B, P, T) bool, P = the most targets in any row of the batch: row p of a sequence is
  one-hot at the position of its p-th target (targets sorted by position); rows beyond the sequence's own
  count are all False and their label is ``ignore_index``.

Shapes: input_ids (B, T) long; valid, special_mask (B, T) bool -> :class:`PermutationBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._validation import check_ids_2d, check_valid

__all__ = [
    "PermutationBatch",
    "sample_factorization_order",
    "ranks_from_order",
    "permutation_masks",
    "choose_targets",
    "permute_batch",
    "DEFAULT_K",
]

DEFAULT_K = 6  # XLNet-base: predict the last 1/6 of each factorization order (Yang et al. 2019, §3.1)


@dataclass(frozen=True)
class PermutationBatch:
    """The output of :func:`permute_batch`: a batch ready for ``XLNetLMHeadModel(**batch.model_inputs())``.

    input_ids (B, T) long — unchanged (PLM does not corrupt the input); valid (B, T) bool;
    order (B, T) long — order[b, k] is the position produced at step k (real positions first, then padding);
    rank (B, T) long — the inverse: rank[b, i] is the step at which position i is produced;
    content_allowed, query_allowed (B, T, T) bool — True where query i may attend to key j (see the module doc);
    target_mapping (B, P, T) bool; labels (B, P) long — the token at each target, ``ignore_index`` in empty slots.
    """

    input_ids: Tensor
    valid: Tensor
    order: Tensor
    rank: Tensor
    content_allowed: Tensor
    query_allowed: Tensor
    target_mapping: Tensor
    labels: Tensor
    ignore_index: int = -100

    @property
    def targets(self) -> Tensor:
        """(B, T) bool: the positions that are predicted."""
        return self.target_mapping.any(dim=1)

    def model_inputs(self) -> dict[str, Tensor]:
        """The keyword arguments of ``XLNetLMHeadModel.forward`` (labels included)."""
        return {
            "input_ids": self.input_ids,
            "valid": self.valid,
            "content_allowed": self.content_allowed,
            "query_allowed": self.query_allowed,
            "target_mapping": self.target_mapping,
            "labels": self.labels,
        }

    def to(self, device: torch.device | str) -> PermutationBatch:
        """The same batch with every tensor on ``device``."""
        moved = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.__dict__.items()}
        return PermutationBatch(**moved)


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _draw_device(generator: torch.Generator | None, like: Tensor) -> torch.device:
    """Random numbers are drawn on the generator's device (then moved), or on the data's without one."""
    return like.device if generator is None else generator.device


def sample_factorization_order(valid: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random order of the real positions of each row: valid (B, T) bool -> order (B, T) long.

    order[b, k] is the position produced at step k. Each real position gets an independent U[0, 1) key and the
    positions are sorted by key, so all n! orders are equally likely; padding gets the key 2 (after every real
    position) and keeps its position order (a stable sort).
    """
    check_valid(valid, "valid", tuple(valid.shape) if isinstance(valid, Tensor) else (), shape_of="valid")
    _check_generator(generator)
    keys = torch.rand(valid.shape, generator=generator, device=_draw_device(generator, valid))
    keys = keys.to(valid.device).masked_fill(~valid, 2.0)  # (B, T): padding sorts last
    return keys.argsort(dim=-1, stable=True)  # (B, T): positions in the order they are produced


def ranks_from_order(order: Tensor) -> Tensor:
    """The inverse permutation: order (B, T) -> rank (B, T) with rank[b, order[b, k]] = k."""
    steps = torch.arange(order.shape[-1], device=order.device).expand_as(order)  # (B, T): k
    return torch.empty_like(order).scatter_(-1, order, steps)


def permutation_masks(rank: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """The two attention masks of a factorization order: rank, valid (B, T) -> content, query (B, T, T) bool.

    content[b, i, j] = valid[b, j] and rank[b, j] ≤ rank[b, i] — h_i sees its own token and every earlier one;
    query[b, i, j]   = valid[b, j] and rank[b, j] < rank[b, i]  — g_i sees only strictly earlier tokens.
    Padding keys are never allowed.
    """
    earlier_or_same = rank[:, None, :] <= rank[:, :, None]  # (B, 1, T) ≤ (B, T, 1) -> (B, T, T): [i, j]
    earlier = rank[:, None, :] < rank[:, :, None]  # (B, T, T)
    keys = valid[:, None, :]  # (B, 1, T): key j is a real token
    return earlier_or_same & keys, earlier & keys


def choose_targets(
    rank: Tensor, eligible: Tensor, k: float = DEFAULT_K, generator: torch.Generator | None = None
) -> Tensor:
    """The positions to predict: the last ~n/K eligible tokens of each order -> targets (B, T) bool.

    n/K is rounded stochastically (one U[0, 1) draw per row), so E[#targets] = n/K exactly; a row with an
    eligible token gets at least one target.
    """
    n = eligible.sum(dim=-1)  # (B,) eligible tokens per row
    expected = n.to(torch.float64) / k  # (B,)
    u = torch.rand(n.shape, generator=generator, dtype=torch.float64, device=_draw_device(generator, rank))
    count = (expected.floor() + (u.to(n.device) < expected - expected.floor())).long()  # (B,) stochastic rounding
    count = torch.minimum(count.clamp_min(1), n)  # at least one target, at most n
    # Number the eligible tokens by rank from the end of the order: 1 for the last eligible one, 2 before it, …
    # Eligible token i has (1 + the eligible tokens ranked after it); it is a target if that is ≤ count.
    later = (rank[:, None, :] > rank[:, :, None]) & eligible[:, None, :]  # (B, T, T): [i, j] = j eligible, after i
    from_end = 1 + later.sum(dim=-1)  # (B, T)
    return eligible & (from_end <= count[:, None])


def _mapping(targets: Tensor, input_ids: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """targets (B, T) bool -> target_mapping (B, P, T) bool and labels (B, P), targets sorted by position."""
    b, t = targets.shape
    count = targets.sum(dim=-1)  # (B,)
    p = max(int(count.max()), 1) if b else 1
    positions = torch.arange(t, device=targets.device).expand(b, t)  # (B, T)
    key = torch.where(targets, positions, positions + t)  # targets first, each group in position order
    slots = key.argsort(dim=-1, stable=True)[:, :p]  # (B, P): the position of each target slot
    filled = torch.arange(p, device=targets.device) < count[:, None]  # (B, P): slot p holds a target
    mapping = (slots[..., None] == torch.arange(t, device=targets.device)) & filled[..., None]  # (B, P, T)
    labels = input_ids.gather(1, slots).masked_fill(~filled, ignore_index)  # (B, P)
    return mapping, labels


def permute_batch(
    input_ids: Tensor,
    valid: Tensor | None = None,
    *,
    k: float = DEFAULT_K,
    special_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    ignore_index: int = -100,
) -> PermutationBatch:
    """One PLM training batch: draw an order per row, choose the targets, build the masks and the mapping.

    Args:
        input_ids: (B, T) token ids, returned unchanged.
        valid: (B, T) bool, True at real tokens (default: all real).
        k: predict about 1/K of the eligible tokens of each row (K ≥ 1; K = 1 predicts every token).
        special_mask: (B, T) bool, True at tokens that may be seen but never predicted ([CLS], [SEP]).
        generator: the source of every random draw (orders first, then target counts).
        ignore_index: the label of empty target slots.
    """
    check_ids_2d(input_ids, "input_ids")
    shape = tuple(input_ids.shape)
    if valid is None:
        valid = torch.ones(shape, dtype=torch.bool, device=input_ids.device)
    check_valid(valid, "valid", shape)
    eligible = valid
    if special_mask is not None:
        check_valid(special_mask, "special_mask", shape)
        eligible = valid & ~special_mask
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not k >= 1:
        raise ValueError(f"k must be a number ≥ 1 (predict about 1/k of the tokens), got {k!r}")
    _check_generator(generator)
    order = sample_factorization_order(valid, generator)
    rank = ranks_from_order(order)
    content, query = permutation_masks(rank, valid)
    mapping, labels = _mapping(choose_targets(rank, eligible, k, generator), input_ids, ignore_index)
    return PermutationBatch(input_ids, valid, order, rank, content, query, mapping, labels, ignore_index)
