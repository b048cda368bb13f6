"""Evaluation metrics, written out in plain Python/torch.

For now: exact match of whole sequences and token accuracy. Later chapters add precision/recall/F1,
perplexity, BLEU and ROUGE here.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["exact_match", "token_accuracy"]


def exact_match(predictions: Sequence[Sequence[int]], references: Sequence[Sequence[int]]) -> float:
    """Fraction of predictions equal to their reference, token for token (lengths included)."""
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("exact_match needs at least one reference")
    return sum(list(p) == list(r) for p, r in zip(predictions, references)) / len(references)


def token_accuracy(logits: Tensor, targets: Tensor, *, ignore_index: int = -100) -> float:
    """Fraction of non-ignored target positions whose arg-max prediction is right. logits (…, V), targets (…)."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)} (…, V) vs (…)")
    counted = targets != ignore_index
    n = int(counted.sum())
    if n == 0:
        raise ValueError("every target is ignore_index: there is nothing to score")
    correct = (logits.argmax(dim=-1) == targets) & counted
    return float(correct.sum()) / n
