"""SQuAD v1.1 answer normalisation, exact match and token-level F1 for extractive (and generated) answers (see
:mod:`transformer_from_scratch.metrics`)."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = ["normalize_answer", "squad_exact_match", "squad_f1", "squad_scores"]

# ------------------------------------------------------------------------------------------ SQuAD v1.1 (QA)

_ARTICLE = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)  # the 32 ASCII punctuation characters only


def normalize_answer(s: str) -> str:
    """SQuAD v1.1's answer normalisation, in its order: lower-case; delete ASCII punctuation; replace the articles
    "a", "an", "the" (whole words) by a space; collapse runs of white space into one space and strip the ends.

    >>> normalize_answer("The  Eiffel Tower!")
    'eiffel tower'

    The order matters: punctuation goes before articles, so "A.B.C." becomes "abc" (no article left in it).
    Non-ASCII punctuation (“curly quotes”, the dash —) is kept, as in the official script.
    """
    if not isinstance(s, str):
        raise TypeError(f"an answer must be a str, got {type(s).__name__} {s!r}")
    text = s.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLE.sub(" ", text)
    return " ".join(text.split())


def _ground_truth_list(ground_truths: str | Sequence[str]) -> list[str]:
    answers = [ground_truths] if isinstance(ground_truths, str) else list(ground_truths)
    if not answers:
        raise ValueError("ground_truths must hold at least one answer")
    return answers


def _f1_one(prediction: str, ground_truth: str) -> float:
    """Token F1 of one prediction against one answer: common = the multiset intersection of their tokens, and
    F1 = 2 P R / (P + R) with P = |common| / |prediction tokens|, R = |common| / |answer tokens|; 0 if none common.
    """
    predicted, answer = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = sum((Counter(predicted) & Counter(answer)).values())  # a token counts min(times in each) times
    if common == 0:
        return 0.0  # also when both are empty: SQuAD v1.1 (v2.0 scores empty vs empty as 1)
    p, r = common / len(predicted), common / len(answer)
    return 2 * p * r / (p + r)


def squad_exact_match(prediction: str, ground_truths: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised ground-truth answer, else 0.0 (SQuAD v1.1 EM).

    ground_truths: one answer (a str) or several; the question scores its best answer.
    """
    answers = _ground_truth_list(ground_truths)
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(a) for a in answers))


def squad_f1(prediction: str, ground_truths: str | Sequence[str]) -> float:
    """max over the ground-truth answers of the token F1 of the normalised prediction (SQuAD v1.1 F1), in [0, 1].

    Tokens are the white-space-separated words of :func:`normalize_answer`. With common = the multiset
    intersection of prediction and answer tokens, P = |common| / |prediction|, R = |common| / |answer| and
    F1 = 2 P R / (P + R) — 0 when nothing is common (an empty prediction scores 0, even against an answer that
    normalises to empty, such as "the").
    """
    answers = _ground_truth_list(ground_truths)
    return max(_f1_one(prediction, a) for a in answers)


def squad_scores(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """Corpus SQuAD v1.1 scores in PERCENT, as the official evaluation prints them:
    ``{"exact_match": 100 · mean squad_exact_match, "f1": 100 · mean squad_f1}``.

    predictions[i] is the answer to question i and references[i] its ground-truth answer(s): one str or a list.
    """
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError("predictions and references must be lists, one entry per question (got a str)")
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("squad_scores needs at least one question")
    em = sum(squad_exact_match(p, r) for p, r in zip(predictions, references))
    f1 = sum(squad_f1(p, r) for p, r in zip(predictions, references))
    return {"exact_match": 100.0 * em / len(references), "f1": 100.0 * f1 / len(references)}
