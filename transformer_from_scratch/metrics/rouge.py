"""ROUGE-1 / 2 / L (F-measure, precision, recall) with rouge-score's tokenisation and the Porter stemmer it uses
(see :mod:`transformer_from_scratch.metrics`)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["RougeScore", "porter_stem", "rouge_l", "rouge_n", "rouge_scores", "rouge_tokenize"]

# ---------------------------------------------------------------------------------------- ROUGE (summaries)

_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


class RougeScore(NamedTuple):
    """Precision, recall and their harmonic mean (F-measure) of one ROUGE variant, each in [0, 1]."""

    precision: float
    recall: float
    fmeasure: float


def rouge_tokenize(text: str, *, use_stemmer: bool = False) -> list[str]:
    """The tokens ROUGE compares (the rouge-score package's default): lower-case, then every run of characters
    other than ASCII a-z and 0-9 becomes a separator. So "Café au lait!" -> ["caf", "au", "lait"], and words in
    other scripts ("北京") vanish. With use_stemmer, tokens longer than 3 characters go through
    :func:`porter_stem` ("cats" -> "cat", but "was" stays "was").
    """
    if not isinstance(text, str):
        raise TypeError(f"a text must be a str, got {type(text).__name__} {text!r}")
    tokens = _NOT_ALPHANUMERIC.sub(" ", text.lower()).split()
    return [porter_stem(t) if use_stemmer and len(t) > 3 else t for t in tokens]


def _prf(overlap: int, n_prediction: int, n_reference: int) -> RougeScore:
    p = overlap / max(n_prediction, 1)
    r = overlap / max(n_reference, 1)
    return RougeScore(p, r, 2 * p * r / (p + r) if p + r > 0 else 0.0)


def rouge_n(prediction: str, reference: str, n: int, *, use_stemmer: bool = False) -> RougeScore:
    """ROUGE-N (Lin, 2004, "ROUGE: A Package for Automatic Evaluation of Summaries"), one reference:

        overlap = Σ_g min(count_pred(g), count_ref(g)) over n-grams g,
        P = overlap / #pred n-grams,  R = overlap / #ref n-grams,  F = 2PR / (P + R)

    (0 where a denominator or P + R is 0). Tokens are :func:`rouge_tokenize`'s (Porter-stemmed with use_stemmer).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    pred, ref = rouge_tokenize(prediction, use_stemmer=use_stemmer), rouge_tokenize(reference, use_stemmer=use_stemmer)
    pred_grams = Counter(tuple(pred[i : i + n]) for i in range(len(pred) - n + 1))
    ref_grams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
    overlap = sum((pred_grams & ref_grams).values())
    return _prf(overlap, sum(pred_grams.values()), sum(ref_grams.values()))


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, by the textbook dynamic programme, one row at a time."""
    row = [0] * (len(b) + 1)  # row[j] = LCS(a[:i], b[:j]) for the current i
    for x in a:
        diagonal = 0  # LCS(a[:i-1], b[:j-1])
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(prediction: str, reference: str, *, use_stemmer: bool = False) -> RougeScore:
    """ROUGE-L (Lin, 2004), sentence level: with LCS the longest common subsequence of the two token lists,

    P = |LCS| / |pred|,  R = |LCS| / |ref|,  F = 2PR / (P + R)   (β = 1; all 0 if either side is empty).
    """
    pred, ref = rouge_tokenize(prediction, use_stemmer=use_stemmer), rouge_tokenize(reference, use_stemmer=use_stemmer)
    if not pred or not ref:
        return RougeScore(0.0, 0.0, 0.0)
    return _prf(_lcs_length(pred, ref), len(pred), len(ref))


def rouge_scores(
    predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = False
) -> dict[str, RougeScore]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L over pairs: ``{"rouge1": RougeScore, "rouge2": ..., "rougeL": ...}``,
    each field the plain average of the per-pair values (in [0, 1]); use_stemmer as in :func:`rouge_tokenize`.
    """
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError("predictions and references must be lists, one entry per pair (got a str)")
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("rouge_scores needs at least one pair")
    per_pair = {
        "rouge1": [rouge_n(p, r, 1, use_stemmer=use_stemmer) for p, r in zip(predictions, references)],
        "rouge2": [rouge_n(p, r, 2, use_stemmer=use_stemmer) for p, r in zip(predictions, references)],
        "rougeL": [rouge_l(p, r, use_stemmer=use_stemmer) for p, r in zip(predictions, references)],
    }
    return {
        name: RougeScore(*(sum(column) / len(scores) for column in zip(*scores))) for name, scores in per_pair.items()
    }


# -------------------------------------------------------------------------------- Porter stemmer (for ROUGE)

_PORTER_VOWELS = frozenset("aeiou")
# NLTK's extension: whole words with a fixed stem (irregular forms the suffix rules would get wrong)
_PORTER_EXCEPTIONS = {
    "sky": "sky",
    "skies": "sky",
    "dying": "die",
    "lying": "lie",
    "tying": "tie",
    "news": "news",
    "innings": "inning",
    "inning": "inning",
    "outings": "outing",
    "outing": "outing",
    "cannings": "canning",
    "canning": "canning",
    "howe": "howe",
    "proceed": "proceed",
    "exceed": "exceed",
    "succeed": "succeed",
}
# (suffix, replacement) pairs; the first suffix the word ends with decides, and if its condition fails the word is
# left as it is (Porter's "longest matching suffix" rule, the tables being ordered so that this is the first match).
_PORTER_STEP2 = (
    ("ational", "ate"),
    ("tional", "tion"),
    ("enci", "ence"),
    ("anci", "ance"),
    ("izer", "ize"),
    ("bli", "ble"),  # the paper's "abli -> able", widened as in NLTK
    ("alli", "al"),
    ("entli", "ent"),
    ("eli", "e"),
    ("ousli", "ous"),
    ("ization", "ize"),
    ("ation", "ate"),
    ("ator", "ate"),
    ("alism", "al"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("ousness", "ous"),
    ("aliti", "al"),
    ("iviti", "ive"),
    ("biliti", "ble"),
    ("fulli", "ful"),  # NLTK extension
)
_PORTER_STEP3 = (
    ("icate", "ic"),
    ("ative", ""),
    ("alize", "al"),
    ("iciti", "ic"),
    ("ical", "ic"),
    ("ful", ""),
    ("ness", ""),
)
_PORTER_STEP4 = (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism", "ate", "iti",
    "ous", "ive", "ize",
)  # fmt: skip


def _consonants(word: str) -> list[bool]:
    """Porter's consonant test, letter by letter: a, e, i, o, u are vowels; y is a vowel after a consonant and a
    consonant otherwise (at the start of the word or after a vowel); every other letter is a consonant."""
    flags: list[bool] = []
    for i, ch in enumerate(word):
        flags.append(ch not in _PORTER_VOWELS and (ch != "y" or i == 0 or not flags[i - 1]))
    return flags


def _measure(stem: str) -> int:
    """Porter's m: the word is [C](VC)^m[V]; m counts the vowel-run-then-consonant-run pairs."""
    flags = _consonants(stem)
    return sum(1 for a, b in zip(flags, flags[1:]) if not a and b)


def _has_vowel(stem: str) -> bool:
    return not all(_consonants(stem))


def _ends_double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _consonants(word)[-1]


def _ends_cvc(word: str) -> bool:
    """Porter's *o: the word ends consonant-vowel-consonant, the last not w, x or y (NLTK also counts a two-letter
    word vowel-consonant, so "at" -> "ate" style repairs reach e.g. "owing" -> "ow")."""
    flags = _consonants(word)
    if len(word) >= 3:
        return flags[-3] and not flags[-2] and flags[-1] and word[-1] not in "wxy"
    return len(word) == 2 and not flags[0] and flags[1]


def _first_rule(word: str, rules, condition) -> str:
    """Apply the first rule (suffix, replacement) whose suffix ends the word, if condition(stem) holds."""
    for suffix, replacement in rules:
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            return stem + replacement if condition(stem) else word
    return word


def _porter_step1(word: str) -> str:
    """Plurals and -ed / -ing (steps 1a, 1b), then a final y after a consonant becomes i (1c)."""
    # 1a: sses -> ss, ies -> i (NLTK: a four-letter "ies" word -> "ie"), ss stays, s -> (nothing)
    if word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("ies"):
        word = word[:-3] + ("ie" if len(word) == 4 else "i")
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    # 1b
    if word.endswith("ied"):  # NLTK extension, like "ies"
        word = word[:-3] + ("ie" if len(word) == 4 else "i")
    elif word.endswith("eed"):
        if _measure(word[:-3]) > 0:
            word = word[:-1]
    else:
        for suffix in ("ed", "ing"):
            stem = word[: len(word) - len(suffix)]
            if word.endswith(suffix) and _has_vowel(stem):
                if stem.endswith(("at", "bl", "iz")):
                    word = stem + "e"
                elif _ends_double_consonant(stem):
                    word = stem if stem[-1] in "lsz" else stem[:-1]
                elif _measure(stem) == 1 and _ends_cvc(stem):
                    word = stem + "e"
                else:
                    word = stem
                break
    # 1c (NLTK's form): y -> i when a consonant precedes it and it is not the second letter
    if word.endswith("y") and len(word) > 2 and _consonants(word)[-2]:
        word = word[:-1] + "i"
    return word


def porter_stem(word: str) -> str:
    """The Porter stemmer (Porter, 1980, "An algorithm for suffix stripping") with NLTK's extensions, i.e. the
    stemmer rouge-score applies when ``use_stemmer=True``: "running" -> "run", "happiness" -> "happi",
    "relational" -> "relat". Steps: 1 plurals, -ed/-ing, y->i; 2 and 3 map double suffixes to single ones when the
    stem's measure m > 0; 4 drops a suffix when m > 1; 5 drops a final e and undoubles a final ll.
    Lower-case input expected; words of one or two letters are returned as they are.
    """
    if word in _PORTER_EXCEPTIONS:
        return _PORTER_EXCEPTIONS[word]
    if len(word) <= 2:
        return word
    word = _porter_step1(word)
    # 2 (NLTK first rewrites "alli" -> "al" and runs step 2 again; "logi" -> "log" judges m on the stem + "l")
    if word.endswith("alli") and _measure(word[:-4]) > 0:
        word = word[:-2]
    if word.endswith("logi"):
        word = word[:-1] if _measure(word[:-3]) > 0 else word
    else:
        word = _first_rule(word, _PORTER_STEP2, lambda stem: _measure(stem) > 0)
    word = _first_rule(word, _PORTER_STEP3, lambda stem: _measure(stem) > 0)
    # 4: drop a suffix when m > 1 (and -ion only after s or t)
    for suffix in _PORTER_STEP4:
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            if _measure(stem) > 1 and (suffix != "ion" or stem.endswith(("s", "t"))):
                word = stem
            break
    # 5a: drop a final e if m > 1, or if m = 1 and the stem does not end cvc
    if word.endswith("e"):
        m = _measure(word[:-1])
        if m > 1 or (m == 1 and not _ends_cvc(word[:-1])):
            word = word[:-1]
    # 5b: ll -> l when m > 1
    if word.endswith("ll") and _measure(word[:-1]) > 1:
        word = word[:-1]
    return word
