r"""Turning token ids into training batches: language-model windows and padded (source, target) pairs.

    lm_batch(tokens, B, context)   random windows of a long 1-D token stream -> x (B, T), y (B, T)
    pad_batch(sequences, pad_id)   variable-length sequences -> ids (B, L), valid (B, L)   (right padding)
    pad_pairs(pairs, pad_id, ...)  (source, target) pairs -> Seq2SeqBatch for teacher forcing

Masks are built with :mod:`transformer_from_scratch.masks` (True = may attend), never here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from .. import masks

__all__ = ["lm_batch", "pad_batch", "pad_pairs", "Seq2SeqBatch"]


def lm_batch(tokens: Tensor, batch_size: int, context: int, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    r"""B random windows of a 1-D token stream for next-token prediction.

    Each row starts at an independent uniform position s ∈ {0, …, N - context - 1} (every window of
    ``context + 1`` tokens that fits) and

        x[b, t] = tokens[s_b + t],   y[b, t] = tokens[s_b + t + 1]      (y is x shifted left by one)

    Shapes: tokens (N,) integer, N ≥ context + 1 -> x, y (B, context) long, on ``tokens.device``.
    The start positions are drawn on the CPU from ``generator``, so equal generators give equal batches.
    """
    if not isinstance(tokens, Tensor) or tokens.dim() != 1:
        raise ValueError(f"tokens must be a 1-D tensor (N,), got {getattr(tokens, 'shape', type(tokens).__name__)}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must be integer token ids, got {tokens.dtype}")
    for name, value in (("batch_size", batch_size), ("context", context)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    n = tokens.shape[0]
    if n < context + 1:
        raise ValueError(
            f"a window needs context + 1 = {context + 1} tokens (inputs plus the next token), "
            f"but tokens has only {n}; use a smaller context or more text"
        )
    n_starts = n - context  # starts 0 … N - context - 1
    starts = torch.randint(0, n_starts, (batch_size,), generator=generator, device=generator.device)  # (B,)
    offsets = torch.arange(context + 1, device=generator.device)  # (T + 1,)
    index = (starts[:, None] + offsets[None, :]).to(tokens.device)  # (B, 1) + (1, T+1) -> (B, T+1)
    window = tokens[index].long()  # (B, T+1)
    return window[:, :-1], window[:, 1:]  # x (B, T), y (B, T)


def _as_id_list(seq, what: str) -> list[int]:
    if isinstance(seq, Tensor):
        if seq.dim() != 1 or seq.is_floating_point() or seq.dtype == torch.bool:
            raise ValueError(f"{what} must be a 1-D integer tensor, got shape {tuple(seq.shape)} {seq.dtype}")
        return [int(i) for i in seq.tolist()]
    if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence):
        raise TypeError(f"{what} must be a sequence of int token ids, got {type(seq).__name__}")
    out = []
    for i in seq:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"{what} must contain int token ids, got {i!r} of type {type(i).__name__}")
        out.append(i)
    return out


def _pad(rows: list[list[int]], fill: int, length: int) -> Tensor:
    """Right-pad each row with ``fill`` to ``length`` -> (B, length) long."""
    out = torch.full((len(rows), length), fill, dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def pad_batch(sequences: Sequence, pad_id: int, *, max_len: int | None = None) -> tuple[Tensor, Tensor]:
    """Right-pad variable-length id sequences into one batch.

    Returns ``ids`` (B, L) long, with ``pad_id`` after each sequence, and ``valid`` (B, L) bool, True at
    real tokens, where L = ``max_len`` or the longest sequence. A sequence longer than ``max_len`` is an
    error (truncate it explicitly first). ``valid`` feeds :func:`masks.key_padding`.
    """
    if isinstance(sequences, Tensor) or not isinstance(sequences, Sequence) or len(sequences) == 0:
        raise ValueError("sequences must be a non-empty list of id sequences")
    rows = [_as_id_list(seq, f"sequences[{b}]") for b, seq in enumerate(sequences)]
    lengths = [len(row) for row in rows]
    longest = max(lengths)
    if max_len is not None:
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 0:
            raise ValueError(f"max_len must be a non-negative integer, got {max_len!r}")
        if longest > max_len:
            b = lengths.index(longest)
            raise ValueError(f"sequences[{b}] has length {longest}, which exceeds max_len={max_len}")
    length = longest if max_len is None else max_len
    ids = _pad(rows, pad_id, length)  # (B, L)
    valid = masks.padding_mask_from_lengths(lengths, length)  # (B, L) True at real tokens
    return ids, valid


@dataclass(frozen=True)
class Seq2SeqBatch:
    r"""A padded batch for an encoder-decoder trained with teacher forcing.

    src (B, S) long, src_valid (B, S) bool — the encoder input and its real-token mask;
    tgt_in (B, T) long — the decoder input [bos, y_1, …, y_n] (padded with pad_id);
    tgt_out (B, T) long — what each decoder position must predict [y_1, …, y_n, eos] (padded with
    ignore_index, so ``cross_entropy`` skips padding); tgt_valid (B, T) bool.

    The attention masks come from :mod:`masks`: ``src_allowed`` (B,1,1,S) for encoder self-attention,
    ``tgt_allowed`` (B,1,T,T) causal and padded for decoder self-attention, ``memory_allowed`` (B,1,T,S)
    for cross-attention.
    """

    src: Tensor
    src_valid: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    tgt_valid: Tensor

    @property
    def src_allowed(self) -> Tensor:
        """(B, 1, 1, S): every encoder query may see every real source token."""
        return masks.key_padding(self.src_valid)

    @property
    def tgt_allowed(self) -> Tensor:
        """(B, 1, T, T): decoder position i sees real target positions j ≤ i."""
        t = self.tgt_in.shape[1]
        return masks.combine(masks.causal_mask(t, device=self.tgt_in.device), masks.key_padding(self.tgt_valid))

    @property
    def memory_allowed(self) -> Tensor:
        """(B, 1, T, S): real decoder positions see real source tokens; padded ones see nothing."""
        return masks.cross_attention_mask(self.tgt_valid, self.src_valid)

    def to(self, device: torch.device | str) -> Seq2SeqBatch:
        """The same batch with every tensor moved to ``device``."""
        return Seq2SeqBatch(*(getattr(self, f.name).to(device) for f in fields(self)))


def pad_pairs(
    pairs: Sequence,
    pad_id: int,
    *,
    bos_id: int | None = None,
    eos_id: int | None = None,
    ignore_index: int = -100,
) -> Seq2SeqBatch:
    r"""Pad (source, target) id pairs into a :class:`Seq2SeqBatch` for teacher forcing.

    With full = [bos] + target + [eos] (each marker only when its id is given):

        tgt_in = full[:-1],   tgt_out = full[1:]

    so with both markers tgt_in = [bos] + target and tgt_out = target + [eos]: position t reads the
    tokens up to t and must predict the next one. With no markers the targets are taken to contain them
    already. Sources are padded as they are (add any markers to them beforehand).
    """
    if isinstance(pairs, Tensor) or not isinstance(pairs, Sequence) or len(pairs) == 0:
        raise ValueError("pairs must be a non-empty list of (source, target) pairs")
    sources, ins, outs = [], [], []
    for b, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"pairs[{b}] must be a (source, target) pair, got {pair!r}")
        sources.append(_as_id_list(pair[0], f"pairs[{b}][0] (source)"))
        full = _as_id_list(pair[1], f"pairs[{b}][1] (target)")
        full = ([] if bos_id is None else [bos_id]) + full + ([] if eos_id is None else [eos_id])
        if len(full) < 2:
            raise ValueError(
                f"pairs[{b}]: the target with its bos/eos markers has {len(full)} token(s); teacher forcing "
                "needs at least 2 (an input and a next token) — pass bos_id= and/or eos_id="
            )
        ins.append(full[:-1])
        outs.append(full[1:])
    src, src_valid = pad_batch(sources, pad_id)  # (B, S), (B, S)
    tgt_in, tgt_valid = pad_batch(ins, pad_id)  # (B, T), (B, T)
    tgt_out = _pad(outs, ignore_index, tgt_in.shape[1])  # (B, T), ignore_index where padded
    return Seq2SeqBatch(src, src_valid, tgt_in, tgt_out, tgt_valid)
