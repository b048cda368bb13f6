"""Corpus and sentence BLEU with sacreBLEU's 13a tokenisation and smoothing options (see
:mod:`transformer_from_scratch.metrics`)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["BleuScore", "corpus_bleu", "sentence_bleu", "tokenize_13a"]

# ----------------------------------------------------------------------------------- BLEU (machine translation)

# mteval-v13a's tokenisation, written out as four regular-expression passes over " line " (sacreBLEU's "13a"):
_13A_RULES = (
    # every ASCII symbol except . , - and ' becomes its own token:  { | } ~  [ \ ] ^ _ `  space ! " # $ % &  ( ) * +
    # : ; < = > ? @  and /
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # a period or comma not after a digit is split off ...
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... and so is one not before a digit (so 3.14 and 1,000 stay)
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # a dash after a digit is split off (2-3 -> 2 - 3)
)
_BLEU_SMOOTHING = {"none": None, "floor": 0.1, "add-k": 1, "exp": None}  # method -> default smooth_value
_BLEU_ORDER = 4


class BleuScore(NamedTuple):
    """A BLEU score and what it is made of (all in sacreBLEU's units).

    score: BLEU in [0, 100]. precisions: the four (smoothed) modified n-gram precisions in percent, 0.0 for
    orders that were not reached. bp: the brevity penalty in [0, 1]. sys_len, ref_len: the hypothesis tokens
    and the effective reference tokens (the closest reference length per sentence), summed over the corpus.
    """

    score: float
    precisions: list[float]
    bp: float
    sys_len: int
    ref_len: int


def tokenize_13a(line: str) -> str:
    """mteval-v13a's tokenisation (sacreBLEU's default "13a"), returned as tokens joined by single spaces.

    Drops ``<skipped>`` and end-of-line hyphens, unescapes ``&quot; &amp; &lt; &gt;``, then splits off every ASCII
    symbol except ``. , - '``; a period or comma is split off unless a digit sits on both sides ("3.14", "1,000"
    stay whole), a dash only after a digit ("2-3" -> "2 - 3"). Letters of any script are left alone.

    >>> tokenize_13a("Hello, world! It costs $3.50 (approx.)")
    'Hello , world ! It costs $ 3.50 ( approx . )'
    """
    if not isinstance(line, str):
        raise TypeError(f"a sentence must be a str, got {type(line).__name__} {line!r}")
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def _bleu_tokens(sentence: str, tokenize: str, lowercase: bool) -> list[str]:
    if not isinstance(sentence, str):
        raise TypeError(f"a sentence must be a str, got {type(sentence).__name__} {sentence!r}")
    if lowercase:
        sentence = sentence.lower()
    sentence = sentence.rstrip()
    return (tokenize_13a(sentence) if tokenize == "13a" else sentence).split()


def _ngram_counts(tokens: list[str], max_order: int = _BLEU_ORDER) -> Counter:
    """Every n-gram (as a tuple of tokens) of orders 1..max_order, with how often it occurs."""
    return Counter(tuple(tokens[i : i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1))


def _bleu_statistics(
    hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], tokenize: str, lowercase: bool
) -> tuple[int, int, list[int], list[int]]:
    """Corpus sums: (sys_len, ref_len, matches[n-1], totals[n-1]) for n = 1..4.

    A hypothesis n-gram matches at most as often as it occurs in one reference (the maximum over references:
    the "clipped" count of Papineni et al.); ref_len takes, per sentence, the reference length closest to the
    hypothesis length, the shorter one on a tie.
    """
    if tokenize not in ("13a", "none"):
        raise ValueError(f"tokenize must be '13a' or 'none', got {tokenize!r}")
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("hypotheses and references must be lists, one entry per sentence (got a str)")
    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses for {len(references)} references")
    sys_len = ref_len = 0
    matches, totals = [0] * _BLEU_ORDER, [0] * _BLEU_ORDER
    for hypothesis, refs in zip(hypotheses, references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError("every hypothesis needs at least one reference, got an empty list")
        hyp = _bleu_tokens(hypothesis, tokenize, lowercase)
        ref_tokens = [_bleu_tokens(r, tokenize, lowercase) for r in refs]
        clip: Counter = Counter()
        for tokens in ref_tokens:
            clip |= _ngram_counts(tokens)  # | keeps the larger count of each n-gram
        sys_len += len(hyp)
        ref_len += min((abs(len(t) - len(hyp)), len(t)) for t in ref_tokens)[1]  # closest, then shorter
        for ngram, count in _ngram_counts(hyp).items():
            totals[len(ngram) - 1] += count
            matches[len(ngram) - 1] += min(count, clip[ngram])
    return sys_len, ref_len, matches, totals


def _bleu_from_statistics(
    sys_len: int,
    ref_len: int,
    matches: list[int],
    totals: list[int],
    smooth: str,
    smooth_value: float | None,
    effective_order: bool,
) -> BleuScore:
    """BLEU = BP · exp( (1/N) Σ_{n=1..N} log p_n ), BP = 1 if c ≥ r else exp(1 − r/c) (0 if c = 0), p_n = m_n / t_n.

    N is 4, or with effective_order the highest order with at least one hypothesis n-gram. Smoothing of an order
    with no match (Chen & Cherry 2014): "none" leaves p_n = 0, hence BLEU = 0; "floor" uses p_n = ε / t_n
    (ε = 0.1); "exp" uses p_n = 1 / (2^k t_n) for the k-th such order (mteval's NIST smoothing); "add-k" uses
    p_n = (m_n + k) / (t_n + k) for every n ≥ 2 (k = 1). If no n-gram of any order matches, BLEU is 0.
    """
    if smooth not in _BLEU_SMOOTHING:
        raise ValueError(f"smooth must be one of {sorted(_BLEU_SMOOTHING)}, got {smooth!r}")
    value = _BLEU_SMOOTHING[smooth] if smooth_value is None else smooth_value
    bp = 1.0 if sys_len >= ref_len else (math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0)
    precisions = [0.0] * _BLEU_ORDER
    if not any(matches):
        return BleuScore(0.0, precisions, bp, sys_len, ref_len)
    order, halvings = _BLEU_ORDER, 0
    for n in range(1, _BLEU_ORDER + 1):
        m, t = matches[n - 1], totals[n - 1]
        if smooth == "add-k" and n > 1:
            m, t = m + value, t + value
        if t == 0:
            break  # the hypotheses are shorter than n tokens: no n-grams of this or a higher order
        if effective_order:
            order = n
        if m > 0:
            precisions[n - 1] = 100.0 * m / t
        elif smooth == "exp":
            halvings += 1
            precisions[n - 1] = 100.0 / (2**halvings * t)
        elif smooth == "floor":
            precisions[n - 1] = 100.0 * value / t
    used = precisions[:order]
    if any(p == 0.0 for p in used):
        return BleuScore(0.0, precisions, bp, sys_len, ref_len)  # a zero precision in the geometric mean
    score = bp * math.exp(sum(math.log(p) for p in used) / order)
    return BleuScore(score, precisions, bp, sys_len, ref_len)


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    smooth: str = "exp",
    smooth_value: float | None = None,
    tokenize: str = "13a",
    lowercase: bool = False,
    effective_order: bool = False,
) -> BleuScore:
    """Corpus BLEU (Papineni et al., 2002, "BLEU: a method for automatic evaluation of machine translation"):

        BLEU = BP · exp( (1/4) Σ_{n=1..4} log p_n ),   BP = min(1, exp(1 − r / c)),

    with p_n the corpus-level modified n-gram precision (matches clipped by the reference counts, summed over
    all sentences, divided by all hypothesis n-grams), c the hypothesis length and r the effective reference
    length (per sentence the closest reference length, shorter on ties), both summed over the corpus.

    Reported like sacreBLEU (Post, 2018), whose defaults these are and whose numbers it reproduces: score in
    [0, 100], 13a tokenisation (:func:`tokenize_13a`; ``"none"`` splits on white space), ``smooth`` one of
    "exp" | "floor" | "add-k" | "none" with ``smooth_value`` ε = 0.1 for floor and k = 1 for add-k by default
    (see :func:`_bleu_from_statistics` for the formulas).

    hypotheses[i]: the system output for sentence i; references[i]: its reference, a str or a list of strs.
    """
    stats = _bleu_statistics(hypotheses, references, tokenize, lowercase)
    return _bleu_from_statistics(*stats, smooth, smooth_value, effective_order)


def sentence_bleu(
    hypothesis: str,
    references: str | Sequence[str],
    *,
    smooth: str = "exp",
    smooth_value: float | None = None,
    tokenize: str = "13a",
    lowercase: bool = False,
    effective_order: bool = True,
) -> BleuScore:
    """BLEU of one sentence: :func:`corpus_bleu` of a one-sentence corpus, with effective order on by default
    (orders longer than the hypothesis are left out of the mean instead of zeroing it), as sacreBLEU does.
    """
    if not isinstance(hypothesis, str):
        raise TypeError(f"hypothesis must be a str, got {type(hypothesis).__name__}")
    stats = _bleu_statistics([hypothesis], [references], tokenize, lowercase)
    return _bleu_from_statistics(*stats, smooth, smooth_value, effective_order)
