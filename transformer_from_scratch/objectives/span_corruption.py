r"""Span corruption: T5's denoising objective — Raffel et al. 2020, §3.1.4 (and §3.3.4 for span lengths).

Drop about 15% of the tokens in short contiguous spans; replace every dropped span in the input by one sentinel
token, and ask the model to write out the dropped spans, each after its sentinel:

    original    Thank you for inviting me to your party last week .
    noise                 ✓   ✓              ✓                         noise density 0.15, mean span length 3
    inputs      Thank you <X>       me to your party <Y>  week .      each span -> its sentinel, in order
    targets     <X> for inviting <Y> last                              sentinel_0 span_0 sentinel_1 span_1 …

(the example of the paper's Figure 2; under the rule below the first token is never noise and the last always is).

The sentinels are distinct ids reserved for this (T5: ``<extra_id_0>`` = vocab_size − 1, ``<extra_id_1>`` =
vocab_size − 2, …, see :func:`t5_sentinel_ids`); the caller passes them as a list and the i-th span of a
sequence always gets ``sentinel_ids[i]``. Inputs and targets are both much shorter than masked language
modelling's full-length labels, which is why T5 chose it (Table 4 of the paper).

The rule, for one sequence of n real (non-pad) tokens
-----------------------------------------------------
* **Counts are deterministic.** noise = round(n · density), at least 1 and at most n − 1;
  spans = round(noise / mean_span_length), at least 1 and at most min(noise, n − noise) (each of the spans
  needs a non-empty noise part and a non-empty non-noise part in front of it). ``round`` is Python's
  (half to even, as ``tf.round`` in T5's code). So every draw of a length-n sequence has exactly the same
  number of noise tokens and of spans; only *where* they are is random.
* **Span lengths are a uniformly random composition**: the noise tokens are split into ``spans`` positive parts,
  every composition equally likely (choose spans − 1 distinct cut points among the noise − 1 gaps uniformly);
  the non-noise tokens are split the same way, independently. The parts are interleaved starting with
  non-noise — keep₀ noise₀ keep₁ noise₁ … keep_{k−1} noise_{k−1} — so the first token is never noise and the
  last token always is (as in T5's ``random_spans_noise_mask``).
* **Inputs** = the tokens with each noise span replaced by its sentinel; **targets** = sentinel₀ span₀ sentinel₁
  span₁ …. Two optional endings (our choice, both off by default): ``final_sentinel=True`` appends the next
  unused sentinel to the targets, as drawn in Figure 2 of the paper (``<X> for inviting <Y> last <Z>``);
  ``end_id`` (e.g. ``</s>``) is appended to both inputs and targets, as T5's data pipeline does.
* The original tokens must not contain a sentinel id — otherwise the targets could not be read back, and
  :func:`reconstruct` would be ambiguous; that raises ``ValueError``.

Padding: :func:`span_corrupt` sees the real tokens only. :func:`span_corrupt_batch` takes ragged lists (or a
padded (B, T) tensor with its ``valid`` mask), corrupts each row's real tokens and pads inputs and targets with
``pad_id``; so a span never contains nor crosses a pad and no pad ever appears in the targets. ``labels`` hold
-100 (``ignore_index``) at target padding, ready for ``cross_entropy(..., ignore_index=-100)``.

Randomness comes only from the ``generator`` argument (``torch.randperm`` on CPU): equal generators, equal
corruptions. Tests: ``tests/test_span_corruption.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "SpanCorruption",
    "SpanCorruptionBatch",
    "noise_counts",
    "random_segmentation",
    "random_spans_noise_mask",
    "reconstruct",
    "span_corrupt",
    "span_corrupt_batch",
    "t5_sentinel_ids",
]


@dataclass(frozen=True)
class SpanCorruption:
    """One corrupted sequence (the output of :func:`span_corrupt`).

    input_ids (S,) long — the tokens with each noise span replaced by its sentinel (then ``end_id`` if asked);
    target_ids (L,) long — sentinel₀ span₀ sentinel₁ span₁ … (then the final sentinel / ``end_id`` if asked);
    noise_mask (n,) bool — True at the original tokens that were dropped into the targets.
    """

    input_ids: Tensor
    target_ids: Tensor
    noise_mask: Tensor


@dataclass(frozen=True)
class SpanCorruptionBatch:
    """A padded batch of corrupted sequences (the output of :func:`span_corrupt_batch`).

    input_ids (B, S) long, padded with ``pad_id``; input_valid (B, S) bool, True at real input tokens;
    labels (B, L) long, the targets padded with ``ignore_index`` (-100); label_valid (B, L) bool.
    Feed ``labels.masked_fill(~label_valid, pad_id)`` (shifted right) to the decoder if it needs real ids.
    """

    input_ids: Tensor
    input_valid: Tensor
    labels: Tensor
    label_valid: Tensor
    ignore_index: int = -100


def t5_sentinel_ids(vocab_size: int, count: int = 100) -> list[int]:
    """T5's sentinel ids: ``<extra_id_i>`` = vocab_size − 1 − i for i = 0 … count − 1 (the last ids of the vocab)."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= vocab_size:
        raise ValueError(f"count must be an integer in [1, vocab_size={vocab_size}], got {count!r}")
    return [vocab_size - 1 - i for i in range(count)]


def _check_density_and_span(noise_density, mean_span_length) -> tuple[float, float]:
    if isinstance(noise_density, bool) or not isinstance(noise_density, (int, float)) or not 0 < noise_density < 1:
        raise ValueError(f"noise_density must be a fraction strictly between 0 and 1, got {noise_density!r}")
    if isinstance(mean_span_length, bool) or not isinstance(mean_span_length, (int, float)) or mean_span_length < 1:
        raise ValueError(f"mean_span_length must be a number ≥ 1 (tokens per span), got {mean_span_length!r}")
    return float(noise_density), float(mean_span_length)


def noise_counts(length: int, noise_density: float = 0.15, mean_span_length: float = 3.0) -> tuple[int, int]:
    """(noise tokens, spans) for a sequence of ``length`` real tokens — deterministic, see the module docstring."""
    density, mean_span = _check_density_and_span(noise_density, mean_span_length)
    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise ValueError(
            f"span corruption needs a sequence of at least 2 real tokens (one kept, one dropped), got length {length!r}"
        )
    n_noise = min(max(round(length * density), 1), length - 1)
    n_spans = min(max(round(n_noise / mean_span), 1), n_noise, length - n_noise)
    return n_noise, n_spans


def random_segmentation(n_items: int, n_segments: int, generator: torch.Generator) -> Tensor:
    """(n_segments,) long: a uniformly random composition of ``n_items`` into ``n_segments`` positive parts.

    The n_items − 1 gaps between items are the possible cut points; choosing n_segments − 1 of them uniformly
    without replacement (a random permutation's first entries) picks each composition with equal probability,
    since compositions and cut sets are in one-to-one correspondence.
    """
    if not 1 <= n_segments <= n_items:
        raise ValueError(f"need 1 ≤ n_segments ≤ n_items, got n_segments={n_segments}, n_items={n_items}")
    cuts = torch.randperm(n_items - 1, generator=generator)[: n_segments - 1].sort().values + 1  # (k-1,) in [1, n)
    bounds = torch.cat([torch.zeros(1, dtype=torch.long), cuts, torch.full((1,), n_items, dtype=torch.long)])
    return bounds[1:] - bounds[:-1]  # (k,) each ≥ 1, sum n_items


def random_spans_noise_mask(
    length: int, *, generator: torch.Generator, noise_density: float = 0.15, mean_span_length: float = 3.0
) -> Tensor:
    """(length,) bool: which of ``length`` tokens are noise — keep₀ noise₀ keep₁ noise₁ … (module docstring)."""
    _check_generator(generator)
    n_noise, n_spans = noise_counts(length, noise_density, mean_span_length)
    noise_lengths = random_segmentation(n_noise, n_spans, generator)  # (k,)
    keep_lengths = random_segmentation(length - n_noise, n_spans, generator)  # (k,)
    lengths = torch.stack([keep_lengths, noise_lengths], dim=1).reshape(-1)  # (2k,) keep, noise, keep, noise …
    is_noise = torch.tensor([False, True]).repeat(n_spans)  # (2k,)
    return torch.repeat_interleave(is_noise, lengths)  # (length,)


def _check_generator(generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def _as_id_list(name: str, ids) -> list[int]:
    if isinstance(ids, Tensor):
        if ids.dim() != 1 or ids.is_floating_point() or ids.dtype == torch.bool:
            raise TypeError(
                f"{name} must be a 1-D integer tensor or a list of ints, got {ids.dtype} {tuple(ids.shape)}"
            )
        return ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise TypeError(f"{name} must be a list of int token ids, got {type(ids).__name__}")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"{name} must contain int token ids, got {i!r} of type {type(i).__name__}")
    return list(ids)


def _check_sentinels(sentinel_ids) -> list[int]:
    sentinels = _as_id_list("sentinel_ids", sentinel_ids)
    if len(set(sentinels)) != len(sentinels):
        raise ValueError(f"sentinel_ids must be distinct, got {sentinels}")
    return sentinels


def span_corrupt(
    tokens: Sequence[int] | Tensor,
    *,
    sentinel_ids: Sequence[int],
    generator: torch.Generator,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    final_sentinel: bool = False,
    end_id: int | None = None,
) -> SpanCorruption:
    """Corrupt one sequence of real (non-pad) tokens; see the module docstring for the full rule.

    ``sentinel_ids[i]`` replaces the i-th noise span; at least ``spans`` of them are needed (``spans + 1`` with
    ``final_sentinel``), where spans = :func:`noise_counts` (len(tokens), …)[1].

    Shapes: tokens (n,) -> SpanCorruption(input_ids (S,), target_ids (L,), noise_mask (n,)).
    """
    ids = _as_id_list("tokens", tokens)
    sentinels = _check_sentinels(sentinel_ids)
    n_noise, n_spans = noise_counts(len(ids), noise_density, mean_span_length)
    needed = n_spans + int(bool(final_sentinel))
    if len(sentinels) < needed:
        raise ValueError(
            f"too few sentinel_ids: a sequence of {len(ids)} tokens gets {n_spans} spans"
            f"{' plus a final sentinel' if final_sentinel else ''}, so {needed} sentinels are needed, "
            f"got {len(sentinels)}"
        )
    clash = sorted(set(ids) & set(sentinels))
    if clash:
        raise ValueError(f"tokens contain sentinel ids {clash[:5]}; the targets could not be read back")
    if end_id is not None and (isinstance(end_id, bool) or not isinstance(end_id, int)):
        raise TypeError(f"end_id must be an int token id or None, got {end_id!r}")

    noise = random_spans_noise_mask(
        len(ids), generator=generator, noise_density=noise_density, mean_span_length=mean_span_length
    )  # (n,)
    inputs: list[int] = []
    targets: list[int] = []
    span = -1
    previous = False
    for token, is_noise in zip(ids, noise.tolist()):
        if is_noise and not previous:  # a new span starts: its sentinel goes to both sides
            span += 1
            inputs.append(sentinels[span])
            targets.append(sentinels[span])
        (targets if is_noise else inputs).append(token)
        previous = is_noise
    if final_sentinel:
        targets.append(sentinels[span + 1])
    if end_id is not None:
        inputs.append(end_id)
        targets.append(end_id)
    return SpanCorruption(torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long), noise)


def reconstruct(
    input_ids: Sequence[int] | Tensor,
    target_ids: Sequence[int] | Tensor,
    *,
    sentinel_ids: Sequence[int],
    final_sentinel: bool = False,
    end_id: int | None = None,
) -> list[int]:
    """The original tokens, from inputs and targets: each sentinel in the inputs -> the tokens after it in the targets.

    The inverse of :func:`span_corrupt` given the same ``sentinel_ids``, ``final_sentinel`` and ``end_id``;
    raises ``ValueError`` when the two sides do not fit together (a sentinel missing, out of order, …).
    """
    inputs = _as_id_list("input_ids", input_ids)
    targets = _as_id_list("target_ids", target_ids)
    sentinels = _check_sentinels(sentinel_ids)
    if end_id is not None:
        if not inputs or not targets or inputs[-1] != end_id or targets[-1] != end_id:
            raise ValueError(f"end_id={end_id} must end both input_ids and target_ids")
        inputs, targets = inputs[:-1], targets[:-1]
    position = {s: i for i, s in enumerate(sentinels)}
    spans: list[list[int]] = []  # spans[i] = the tokens after sentinel i in the targets
    for token in targets:
        if token in position:
            if position[token] != len(spans):
                raise ValueError(f"target sentinels out of order: expected sentinel {len(spans)}, got {token}")
            spans.append([])
        elif not spans:
            raise ValueError("target_ids must start with sentinel_ids[0]")
        else:
            spans[-1].append(token)
    if final_sentinel:
        if not spans or spans[-1]:
            raise ValueError("target_ids must end with the final (unused) sentinel when final_sentinel=True")
        spans.pop()
    original: list[int] = []
    used = 0
    for token in inputs:
        if token in position:
            if position[token] != used or used >= len(spans):
                raise ValueError(f"input sentinel {token} does not match the targets' sentinel {used}")
            original.extend(spans[used])
            used += 1
        else:
            original.append(token)
    if used != len(spans):
        raise ValueError(f"the targets hold {len(spans)} spans but the inputs use {used} sentinels")
    return original


def span_corrupt_batch(
    sequences: Sequence[Sequence[int]] | Tensor,
    *,
    pad_id: int,
    sentinel_ids: Sequence[int],
    generator: torch.Generator,
    valid: Tensor | None = None,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    final_sentinel: bool = False,
    end_id: int | None = None,
    ignore_index: int = -100,
) -> SpanCorruptionBatch:
    """Corrupt every row's real tokens with :func:`span_corrupt` and pad the inputs and targets.

    ``sequences`` is a list of token-id lists (ragged, no padding), or a (B, T) integer tensor whose real tokens
    are where ``valid`` (B, T) bool is True (``valid`` defaults to ``ids != pad_id``). Rows are drawn in order
    from the one ``generator``.

    Shapes -> SpanCorruptionBatch(input_ids (B, S), input_valid (B, S), labels (B, L), label_valid (B, L)) with
    S, L the longest corrupted input and target of the batch.
    """
    if isinstance(pad_id, bool) or not isinstance(pad_id, int):
        raise TypeError(f"pad_id must be an int token id, got {pad_id!r}")
    if isinstance(sequences, Tensor):
        if sequences.dim() != 2 or sequences.is_floating_point() or sequences.dtype == torch.bool:
            raise TypeError(
                f"sequences must be a (B, T) integer tensor, got {sequences.dtype} {tuple(sequences.shape)}"
            )
        if valid is None:
            valid = sequences != pad_id
        if not isinstance(valid, Tensor) or valid.dtype != torch.bool or valid.shape != sequences.shape:
            got = f"{valid.dtype} {tuple(valid.shape)}" if isinstance(valid, Tensor) else type(valid).__name__
            raise ValueError(f"valid must be a bool tensor of shape {tuple(sequences.shape)}, got {got}")
        rows = [row[keep].tolist() for row, keep in zip(sequences, valid)]
    else:
        if valid is not None:
            raise ValueError("valid is only for a padded (B, T) tensor; lists of sequences hold real tokens only")
        if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Sequence) or len(sequences) == 0:
            raise TypeError(f"sequences must be a non-empty list of token-id lists, got {type(sequences).__name__}")
        rows = [_as_id_list(f"sequences[{b}]", row) for b, row in enumerate(sequences)]
    if pad_id in set(_check_sentinels(sentinel_ids)):
        raise ValueError(f"pad_id={pad_id} must not be one of the sentinel_ids")
    for b, row in enumerate(rows):
        if pad_id in row:
            raise ValueError(f"row {b} has pad_id={pad_id} among its real tokens; mark padding with valid=False")

    examples = [
        span_corrupt(
            row,
            sentinel_ids=sentinel_ids,
            generator=generator,
            noise_density=noise_density,
            mean_span_length=mean_span_length,
            final_sentinel=final_sentinel,
            end_id=end_id,
        )
        for row in rows
    ]
    batch, s_len = len(examples), max(len(e.input_ids) for e in examples)
    l_len = max(len(e.target_ids) for e in examples)
    input_ids = torch.full((batch, s_len), pad_id, dtype=torch.long)  # (B, S)
    input_valid = torch.zeros(batch, s_len, dtype=torch.bool)  # (B, S)
    labels = torch.full((batch, l_len), ignore_index, dtype=torch.long)  # (B, L)
    label_valid = torch.zeros(batch, l_len, dtype=torch.bool)  # (B, L)
    for b, e in enumerate(examples):
        input_ids[b, : len(e.input_ids)] = e.input_ids
        input_valid[b, : len(e.input_ids)] = True
        labels[b, : len(e.target_ids)] = e.target_ids
        label_valid[b, : len(e.target_ids)] = True
    return SpanCorruptionBatch(input_ids, input_valid, labels, label_valid, ignore_index)
