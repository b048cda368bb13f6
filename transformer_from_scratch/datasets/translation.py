r"""A toy translation pair with real linguistic phenomena: English number words ↔ French number words.

    97        ninety-seven                    quatre-vingt-dix-sept
    71        seventy-one                     soixante et onze
    80        eighty                          quatre-vingts
    280       two hundred eighty              deux cent quatre-vingts
    201       two hundred one                 deux cent un
    21 000    twenty-one thousand             vingt et un mille

A model has to learn what a dictionary cannot give it word by word:

* **French counts in twenties from 60 to 99** (vigesimal): 70 = soixante-dix ("sixty-ten"), 71 = soixante et onze,
  80 = quatre-vingts ("four-twenties"), 97 = quatre-vingt-dix-sept ("four-twenty-ten-seven"). One English word
  (seventy) becomes two French words, and the French units of 71–79 and 91–99 are the *teens*.
* **"et un"**: 21, 31, 41, 51, 61 and 71 join with "et" (vingt et un, soixante et onze); 81 and 91 do not
  (quatre-vingt-un, quatre-vingt-onze); neither do 101 or 1001 (cent un, mille un).
* **Agreement that depends on what follows**: "vingt" (in quatre-vingts) and "cent" take an "s" when they are
  multiplied *and* end the numeral: quatre-vingts, deux cents, deux cent quatre-vingts — but quatre-vingt-un,
  deux cent un, and before "mille" (an adjective, so the numeral goes on) quatre-vingt mille, deux cent mille.
  "mille" never takes an "s" (deux mille) and is never preceded by "un" (mille, mille un).
* **English** is the American "and"-less convention ("two hundred one", not "two hundred and one"); tens and
  units are hyphenated ("ninety-seven"), nothing else is; 0 is "zero".

French spelling: by default the **traditional rules** (before the 1990 spelling reform — Rapport du Conseil
supérieur de la langue française, Journal officiel, 6 December 1990): hyphens join only tens and units below
one hundred, unless they are joined by "et" (dix-sept, vingt et un, quatre-vingt-dix-sept, deux cent un,
trois mille). ``spelling="1990"`` applies the reformed rule instead: every word of a compound numeral is
hyphenated (vingt-et-un, deux-cent-un, trois-mille); the agreement of "vingt", "cent" and "mille" is unchanged.

Sentence-level pairs (:func:`make_sentence_pairs`) put a number 1–999 in a short sentence, adding subject–verb
agreement (I have / she has — j'ai / elle a), elision (je + ai -> j'ai), irregular plurals (mice — souris,
horses — chevaux) and gender agreement of "un" (vingt et un chats, vingt et une pommes):

    She buys eighty-one apples.      Elle achète quatre-vingt-une pommes.

Data: :func:`make_number_pairs`, :func:`make_number_splits` (distinct numbers, so splits never share one),
:func:`make_sentence_pairs`, committed samples ``data/translation/`` written by :func:`write_translation_samples`.
Randomness: ``generator=`` or ``seed=`` (default 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ._common import (
    Splits,
    check_int,
    draw_distinct,
    draw_splits,
    make_generator,
    read_tsv,
    uniform_int,
    write_tsv,
)

__all__ = [
    "english_number",
    "french_number",
    "number_word_tokens",
    "NumberPair",
    "make_number_pairs",
    "make_number_splits",
    "SentencePair",
    "sentence_pair",
    "make_sentence_pairs",
    "write_translation_samples",
    "read_translation_samples",
    "MAX_NUMBER",
]

MAX_NUMBER = 999_999
SPELLINGS = ("traditional", "1990")
SAMPLE_SEED = 0
SAMPLE_SIZE = 60
NUMBER_HEADER = ("number", "english", "french")
SENTENCE_HEADER = ("english", "french")

# --------------------------------------------------------------------------------------------- English

_EN_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_EN_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty", 6: "sixty", 7: "seventy", 8: "eighty", 9: "ninety"}


def _check_number(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"n must be in [0, {MAX_NUMBER}], got {n}")


def _check_spelling(spelling: str) -> None:
    """Raise a ValueError unless ``spelling`` is one of :data:`SPELLINGS`."""
    if spelling not in SPELLINGS:
        raise ValueError(f"spelling must be one of {SPELLINGS}, got {spelling!r}")


def _english_below_1000(n: int) -> list[str]:
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_EN_UNITS[hundreds], "hundred"]
    if rest >= 20:
        tens, unit = divmod(rest, 10)
        words.append(_EN_TENS[tens] + (f"-{_EN_UNITS[unit]}" if unit else ""))
    elif rest or not words:
        words.append(_EN_UNITS[rest])
    return words


def english_number(n: int) -> str:
    """English words for 0 ≤ n ≤ 999 999, American style without "and": 101 -> "one hundred one",
    97 -> "ninety-seven", 21 000 -> "twenty-one thousand"."""
    _check_number(n)
    thousands, rest = divmod(n, 1000)
    words = _english_below_1000(thousands) + ["thousand"] if thousands else []
    if rest or not words:
        words += _english_below_1000(rest)
    return " ".join(words)


# ---------------------------------------------------------------------------------------------- French

_FR_UNITS = "zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize".split()
_FR_TENS = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante"}


def _french_below_100(n: int, *, final: bool) -> list[str]:
    """Words below one hundred; a word of the list may be hyphenated already (traditional rule). ``final``: no
    numeral follows, so "quatre-vingt" takes its "s"."""
    if n <= 16:
        return [_FR_UNITS[n]]
    if n < 20:
        return [f"dix-{_FR_UNITS[n - 10]}"]  # 17 dix-sept, 18 dix-huit, 19 dix-neuf
    tens, unit = divmod(n, 10)
    if tens in (7, 9):  # 70–79 = 60 + 10…19, 90–99 = 80 + 10…19 (vigesimal)
        base = "soixante" if tens == 7 else "quatre-vingt"
        if n == 71:
            return ["soixante", "et", "onze"]  # 71 keeps "et"; 91 does not: quatre-vingt-onze
        return [f"{base}-{_french_below_100(n - (60 if tens == 7 else 80), final=final)[0]}"]
    if tens == 8:
        if unit == 0:
            return ["quatre-vingts" if final else "quatre-vingt"]
        return [f"quatre-vingt-{_FR_UNITS[unit]}"]  # 81 quatre-vingt-un: no "et"
    if unit == 0:
        return [_FR_TENS[tens]]
    if unit == 1:
        return [_FR_TENS[tens], "et", "un"]  # 21, 31, 41, 51, 61
    return [f"{_FR_TENS[tens]}-{_FR_UNITS[unit]}"]


def _french_below_1000(n: int, *, final: bool) -> list[str]:
    hundreds, rest = divmod(n, 100)
    if not hundreds:
        return _french_below_100(rest, final=final)
    words = ["cent"] if hundreds == 1 else [_FR_UNITS[hundreds], "cent"]
    if not rest:
        if hundreds > 1 and final:
            words[-1] = "cents"  # multiplied and ending the numeral: deux cents (but deux cent un, deux cent mille)
        return words
    return words + _french_below_100(rest, final=final)


def french_number(n: int, *, spelling: str = "traditional") -> str:
    """French words for 0 ≤ n ≤ 999 999 (see the module docstring for the rules): 80 -> "quatre-vingts",
    81 -> "quatre-vingt-un", 71 -> "soixante et onze", 200 -> "deux cents", 201 -> "deux cent un",
    80 000 -> "quatre-vingt mille". ``spelling``: "traditional" (default) or "1990" (all words hyphenated)."""
    _check_number(n)
    _check_spelling(spelling)
    thousands, rest = divmod(n, 1000)
    words: list[str] = []
    if thousands:
        # "mille" is invariable and never preceded by "un"; what precedes it is not final (no s on vingt/cent)
        words = ["mille"] if thousands == 1 else [*_french_below_1000(thousands, final=False), "mille"]
    if rest or not words:
        words += _french_below_1000(rest, final=True)
    return ("-" if spelling == "1990" else " ").join(words)


def number_word_tokens(text: str) -> list[str]:
    """Word-level tokens of number words: split at spaces, hyphens kept as their own token, so the vocabulary
    stays tiny. "quatre-vingt-dix" -> ["quatre", "-", "vingt", "-", "dix"]."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [t for t in re.split(r"\s+|(-)", text) if t]


# ------------------------------------------------------------------------------------------- number pairs


@dataclass(frozen=True)
class NumberPair:
    """One example: the number, its English words, its French words."""

    number: int
    english: str
    french: str


def _number_weights(max_number: int) -> torch.Tensor:
    """Sampling weights on 0…max_number: every digit count gets the same total mass, spread uniformly over the
    numbers of that count — so 70–99, where French is hardest, are not drowned by the 4- to 6-digit numbers."""
    k = torch.arange(max_number + 1)  # (N,) the numbers 0 … max_number
    digits = 1 + sum((k >= 10**p).long() for p in range(1, 6))  # (N,) digit count of each number
    counts = torch.bincount(digits)  # numbers per digit count
    return 1.0 / counts[digits].double()  # (N,)


def make_number_pairs(
    n: int,
    *,
    max_number: int = 9999,
    spelling: str = "traditional",
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> list[NumberPair]:
    """``n`` pairs of distinct numbers in [0, max_number]. The number of digits is uniform (1 to that of
    ``max_number``), then the number uniform among those with that many digits — drawn without replacement, so
    no number repeats (``n`` ≤ max_number + 1). Same arguments, same pairs."""
    check_int("n", n, 0)
    check_int("max_number", max_number, 0, MAX_NUMBER)
    if n > max_number + 1:
        raise ValueError(f"n={n} distinct numbers requested, but [0, {max_number}] holds only {max_number + 1}")
    _check_spelling(spelling)
    g = make_generator(seed, generator)
    if n == 0:
        return []
    numbers = torch.multinomial(_number_weights(max_number), n, replacement=False, generator=g).tolist()  # (n,)
    return [NumberPair(k, english_number(k), french_number(k, spelling=spelling)) for k in numbers]


def make_number_splits(
    *,
    n_train: int = 2000,
    n_validation: int = 200,
    n_test: int = 200,
    max_number: int = 9999,
    spelling: str = "traditional",
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Splits[NumberPair]:
    """Train, validation and test pairs that never share a number: one :func:`make_number_pairs` call, cut."""
    options = dict(max_number=max_number, spelling=spelling, seed=seed, generator=generator)
    return draw_splits(lambda n: make_number_pairs(n, **options), n_train, n_validation, n_test)


# ----------------------------------------------------------------------------------------- sentence pairs

# (English, French, person): person 0 = 1st singular, 1 = 3rd singular, 2 = 1st plural, 3 = 3rd plural
_SUBJECTS = (
    ("I", "je", 0),
    ("he", "il", 1),
    ("she", "elle", 1),
    ("my brother", "mon frère", 1),
    ("my sister", "ma sœur", 1),
    ("we", "nous", 2),
    ("the children", "les enfants", 3),
)
# English (base, 3rd singular); French forms for persons 0, 1, 2, 3
_VERBS = (
    (("have", "has"), ("ai", "a", "avons", "ont")),
    (("see", "sees"), ("vois", "voit", "voyons", "voient")),
    (("buy", "buys"), ("achète", "achète", "achetons", "achètent")),
    (("want", "wants"), ("veux", "veut", "voulons", "veulent")),
)
# English singular, plural; French singular, plural; French gender
_NOUNS = (
    ("apple", "apples", "pomme", "pommes", "f"),
    ("book", "books", "livre", "livres", "m"),
    ("cat", "cats", "chat", "chats", "m"),
    ("house", "houses", "maison", "maisons", "f"),
    ("bird", "birds", "oiseau", "oiseaux", "m"),
    ("horse", "horses", "cheval", "chevaux", "m"),
    ("mouse", "mice", "souris", "souris", "f"),
    ("sheep", "sheep", "mouton", "moutons", "m"),
    ("car", "cars", "voiture", "voitures", "f"),
)


@dataclass(frozen=True)
class SentencePair:
    """A sentence with a number in English and French, and the number."""

    number: int
    english: str
    french: str


def sentence_pair(number: int, subject: str, verb: str, noun: str, *, spelling: str = "traditional") -> SentencePair:
    """One sentence pair from English words: ``sentence_pair(81, "she", "buy", "apple")`` ->
    "She buys eighty-one apples." / "Elle achète quatre-vingt-une pommes." ``subject`` is one of I, he, she,
    my brother, my sister, we, the children; ``verb`` one of have, see, buy, want; ``noun`` (singular) one of
    apple, book, cat, house, bird, horse, mouse, sheep, car; ``number`` in [1, 999]."""
    check_int("number", number, 1, 999)
    _check_spelling(spelling)
    tables = (("subject", subject, [s[0] for s in _SUBJECTS]), ("verb", verb, [v[0][0] for v in _VERBS]))
    tables += (("noun", noun, [n[0] for n in _NOUNS]),)
    indices = []
    for arg, value, options in tables:
        if value not in options:
            raise ValueError(f"{arg} must be one of {options}, got {value!r}")
        indices.append(options.index(value))
    return _sentence_pair(number, *indices, spelling)


def _sentence_pair(number: int, subject: int, verb: int, noun: int, spelling: str) -> SentencePair:
    en_subject, fr_subject, person = _SUBJECTS[subject]
    (en_base, en_third), fr_forms = _VERBS[verb]
    en_sg, en_pl, fr_sg, fr_pl, gender = _NOUNS[noun]
    en_verb = en_third if person == 1 else en_base
    en = f"{en_subject} {en_verb} {english_number(number)} {en_sg if number == 1 else en_pl}."
    fr_number = french_number(number, spelling=spelling)
    if gender == "f":
        fr_number = re.sub(r"(?<![^ -])un$", "une", fr_number)  # the numeral's last word "un" agrees: une
    fr_verb = fr_forms[person]
    if fr_subject == "je" and fr_verb[0] in "aeiouéèê":
        fr_start = f"j'{fr_verb}"  # elision: je + ai -> j'ai, je + achète -> j'achète
    else:
        fr_start = f"{fr_subject} {fr_verb}"
    fr = f"{fr_start} {fr_number} {fr_sg if number == 1 else fr_pl}."
    return SentencePair(number, en[0].upper() + en[1:], fr[0].upper() + fr[1:])


def make_sentence_pairs(
    n: int,
    *,
    max_number: int = 999,
    spelling: str = "traditional",
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> list[SentencePair]:
    """``n`` distinct sentence pairs "<subject> <verb> <number> <noun>." with a number in [1, max_number]
    (digit count uniform, then the number uniform among those; at most 999: the gender agreement of "un" before
    "mille" is disputed, so thousands are left out) and subject, verb and noun uniform from small tables. Same
    arguments, same pairs."""
    check_int("n", n, 0)
    check_int("max_number", max_number, 1, 999)
    _check_spelling(spelling)
    g = make_generator(seed, generator)

    def draw() -> SentencePair:
        digits = uniform_int(g, 1, len(str(max_number)))  # digit count uniform, as in make_number_pairs
        number = uniform_int(g, max(1, 10 ** (digits - 1)), min(max_number, 10**digits - 1))
        subject, verb, noun = (uniform_int(g, 0, len(t) - 1) for t in (_SUBJECTS, _VERBS, _NOUNS))
        return _sentence_pair(number, subject, verb, noun, spelling)

    return draw_distinct(n, draw, key=lambda p: p.english, what="sentence pairs")


# ------------------------------------------------------------------------------------------ samples


def write_translation_samples(folder: str | Path, *, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED) -> list[Path]:
    """Write ``numbers_en_fr_sample.tsv`` (header ``number<TAB>english<TAB>french``; :func:`make_number_pairs`
    with max_number 9999) and ``sentences_en_fr_sample.tsv`` (header ``english<TAB>french``;
    :func:`make_sentence_pairs`) into ``folder``. The defaults reproduce ``data/translation/`` byte for byte."""
    folder = Path(folder)
    numbers = make_number_pairs(n, seed=seed)
    sentences = make_sentence_pairs(n, seed=seed)
    return [
        write_tsv(
            folder / "numbers_en_fr_sample.tsv", NUMBER_HEADER, [(str(p.number), p.english, p.french) for p in numbers]
        ),
        write_tsv(folder / "sentences_en_fr_sample.tsv", SENTENCE_HEADER, [(p.english, p.french) for p in sentences]),
    ]


def read_translation_samples(path: str | Path) -> list[tuple[str, ...]]:
    """Rows of a sample file written by :func:`write_translation_samples` (either kind, told by its header)."""
    first = Path(path).read_text(encoding="utf-8").split("\n", 1)[0]
    header = NUMBER_HEADER if first == "\t".join(NUMBER_HEADER) else SENTENCE_HEADER
    return read_tsv(path, header)
