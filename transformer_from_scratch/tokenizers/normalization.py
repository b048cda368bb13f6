r"""Text preprocessing before tokenization: Unicode normalization, cleanup, splitting, stop words.

A tokenizer rarely sees raw text. First the text is *normalized* (one spelling for one meaning), then
*pre-tokenized* (cut into words that no token may cross). This module does both, with BERT's choices
as the reference (Devlin et al. 2019; the "BasicTokenizer" of Google's original BERT code):

    normalize:     Unicode form (NFC / NFKC / NFD / NFKD, optional)
                   -> clean: drop NUL, U+FFFD and control characters; every whitespace char -> " "
                   -> CJK: put spaces around each CJK ideograph, so each becomes its own word
                   -> lowercase (character by character)
                   -> strip accents: NFD, then drop the combining marks (category Mn): "Élan" -> "Elan"
    pre_tokenize:  split on whitespace, then isolate every punctuation character:
                   "don't stop!!" -> ["don", "'", "t", "stop", "!", "!"]

Character classes (BERT's definitions, checked against Hugging Face's BertTokenizer in the tests):

* control     — Unicode category C* (Cc, Cf, Co, Cs, Cn) except tab, newline and carriage return,
                which count as whitespace. Zero-width joiners, soft hyphens and private-use characters
                are therefore deleted.
* whitespace  — space, tab, newline, carriage return, and category Zs.
* punctuation — category P*, plus every ASCII character that is neither a letter, a digit nor a space
                (``$ + < = > ^ ` | ~`` are symbols in Unicode but punctuation for BERT). Non-ASCII
                symbols (``€ ©`` emoji) are *not* punctuation and stay inside their word.
* CJK ideograph — the CJK Unified Ideographs blocks (U+4E00–9FFF, extensions A–F) and the CJK
                compatibility ideographs. Hiragana, katakana and hangul are not in these ranges and are
                left to WordPiece, as in BERT.

Lowercasing is done per character (``"Σ" -> "σ"`` always), as the Rust normalizer behind Hugging
Face's ``BertTokenizer`` does. Python's ``str.lower`` would write a word-final capital sigma as ``ς``
(Unicode's Final_Sigma rule), and so does the older pure-Python ``BertTokenizerLegacy``; on Greek
text the two Hugging Face tokenizers disagree and we follow the current one.

Speed: each step is one C-level pass (``str.translate`` with a per-character table filled on
demand, ``str.lower``, ``unicodedata.normalize``, one compiled regex), with fast paths for ASCII text.

Stop words: :data:`ENGLISH_STOP_WORDS` is a small list of common English function words written for
this project; :func:`remove_stop_words` filters a token list with it (or with your own set).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

__all__ = [
    "BERT_NORMALIZER",
    "CJK_RANGES",
    "ENGLISH_STOP_WORDS",
    "UNICODE_FORMS",
    "Normalizer",
    "clean_text",
    "is_cjk",
    "is_control",
    "is_punctuation",
    "is_whitespace",
    "lowercase",
    "normalize_unicode",
    "pad_cjk",
    "remove_stop_words",
    "split_punctuation",
    "strip_accents",
    "whitespace_split",
]

UNICODE_FORMS = ("NFC", "NFKC", "NFD", "NFKD")

# The code-point ranges BERT treats as CJK ideographs (each becomes a word of its own).
CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0x3400, 0x4DBF),  # Extension A
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2B73F),  # Extension C
    (0x2B740, 0x2B81F),  # Extension D
    (0x2B820, 0x2CEAF),  # Extension E
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x2F800, 0x2FA1F),  # CJK Compatibility Ideographs Supplement
)


# ---------------------------------------------------------------------------------------------------
# Character classes
# ---------------------------------------------------------------------------------------------------


def is_whitespace(ch: str) -> bool:
    """Space, tab, newline, carriage return, or a Unicode space separator (category Zs)."""
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch: str) -> bool:
    """Unicode category C* (control, format, private use, surrogate, unassigned), except tab/newline/CR."""
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch: str) -> bool:
    """Unicode category P*, or an ASCII character that is not a letter, digit or whitespace/control."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(ch: str) -> bool:
    """True for a CJK ideograph in one of :data:`CJK_RANGES`."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


# ---------------------------------------------------------------------------------------------------
# Per-character tables for str.translate, filled lazily (one entry per distinct character seen)
# ---------------------------------------------------------------------------------------------------


class _LazyTable(dict):
    """A ``str.translate`` table that computes the mapping of a character the first time it is met."""

    def __init__(self, rule) -> None:
        super().__init__()
        self._rule = rule

    def __missing__(self, cp: int):
        value = self._rule(chr(cp))
        self[cp] = value
        return value


def _clean_rule(ch: str):
    if ch in "\x00\ufffd" or is_control(ch):
        return None  # delete
    if is_whitespace(ch):
        return " "
    return ch


def _cjk_rule(ch: str):
    return f" {ch} " if is_cjk(ch) else ch


def _mark_rule(ch: str):
    return None if unicodedata.category(ch) == "Mn" else ch


_CLEAN = _LazyTable(_clean_rule)
_CJK = _LazyTable(_cjk_rule)
_MARKS = _LazyTable(_mark_rule)
_LOWER = _LazyTable(str.lower)  # per character: no Final_Sigma context rule
_HAS_CJK = re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in CJK_RANGES) + "]")
_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


_PUNCT_PAD = _LazyTable(lambda ch: f" {ch} " if is_punctuation(ch) else ch)


# ---------------------------------------------------------------------------------------------------
# The steps
# ---------------------------------------------------------------------------------------------------


def normalize_unicode(text: str, form: str | None) -> str:
    """Apply a Unicode normalization form: "NFC", "NFKC", "NFD", "NFKD", or None (unchanged).

    NFC composes ("e" + U+0301 -> "é"); NFD decomposes; the K forms also fold compatibility characters
    ("ﬁ" -> "fi", "①" -> "1", full-width "Ａ" -> "A").
    """
    if form is None:
        return text
    if form not in UNICODE_FORMS:
        raise ValueError(f"form must be one of {UNICODE_FORMS} or None, got {form!r}")
    return unicodedata.normalize(form, text)


def clean_text(text: str) -> str:
    """Delete NUL, U+FFFD and control characters; turn every whitespace character into one space."""
    if text.isascii():
        if _ASCII_CONTROL.search(text):
            text = _ASCII_CONTROL.sub("", text)
        return text.translate(_CLEAN) if ("\t" in text or "\n" in text or "\r" in text) else text
    return text.translate(_CLEAN)


def pad_cjk(text: str) -> str:
    """Surround every CJK ideograph with spaces, so whitespace splitting makes each one a word."""
    if text.isascii() or not _HAS_CJK.search(text):
        return text
    return text.translate(_CJK)


def lowercase(text: str) -> str:
    """Lowercase character by character (no Final_Sigma rule: "ΟΔΟΣ" -> "οδοσ", as BertTokenizer)."""
    if "Σ" not in text:
        return text.lower()  # identical to the per-character mapping when there is no capital sigma
    return text.translate(_LOWER)


def strip_accents(text: str) -> str:
    """NFD, then drop nonspacing combining marks (category Mn): "Crème brûlée" -> "Creme brulee"."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFD", text).translate(_MARKS)


def whitespace_split(text: str) -> list[str]:
    """Split on runs of whitespace, dropping empty pieces."""
    return text.split()


def split_punctuation(text: str) -> list[str]:
    """Whitespace split, then every punctuation character becomes a word of its own.

    ``"e.g. (x+y)" -> ["e", ".", "g", ".", "(", "x", "+", "y", ")"]``; runs of punctuation split one
    character at a time, ``"?!"`` -> ``["?", "!"]``. (Implemented as: put spaces around every
    punctuation character, then split on whitespace.)
    """
    return text.translate(_PUNCT_PAD).split()


# ---------------------------------------------------------------------------------------------------
# The pipeline, as one frozen config
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalizer:
    """Normalization and pre-tokenization options; :meth:`normalize` and :meth:`pre_tokenize` apply them.

    form            Unicode normalization applied first: None, "NFC", "NFKC", "NFD" or "NFKD"
    clean           delete control characters, map whitespace to spaces
    split_cjk       make every CJK ideograph its own word
    lowercase       lowercase (per character)
    strip_accents   NFD + drop combining marks; None means "same as lowercase" (BERT's rule)
    split_punctuation  isolate punctuation characters in :meth:`pre_tokenize` (else whitespace only)
    """

    form: str | None = None
    clean: bool = True
    split_cjk: bool = True
    lowercase: bool = True
    strip_accents: bool | None = None
    split_punctuation: bool = True

    FIELDS: ClassVar[tuple[str, ...]] = (
        "form",
        "clean",
        "split_cjk",
        "lowercase",
        "strip_accents",
        "split_punctuation",
    )

    def __post_init__(self) -> None:
        if self.form is not None and self.form not in UNICODE_FORMS:
            raise ValueError(f"form must be one of {UNICODE_FORMS} or None, got {self.form!r}")
        for name in ("clean", "split_cjk", "lowercase", "split_punctuation"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.strip_accents is not None and not isinstance(self.strip_accents, bool):
            raise TypeError(f"strip_accents must be a bool or None, got {self.strip_accents!r}")

    @classmethod
    def bert(cls, lowercase: bool = True) -> Normalizer:
        """BERT's BasicTokenizer: clean, CJK split, lowercase + accent stripping (uncased) or neither (cased)."""
        return cls(lowercase=lowercase)

    @classmethod
    def identity(cls) -> Normalizer:
        """Changes nothing; :meth:`pre_tokenize` splits on whitespace only."""
        return cls(clean=False, split_cjk=False, lowercase=False, strip_accents=False, split_punctuation=False)

    @property
    def strips_accents(self) -> bool:
        """Whether accents are stripped (resolves ``strip_accents=None`` to ``lowercase``)."""
        return self.lowercase if self.strip_accents is None else self.strip_accents

    def normalize(self, text: str) -> str:
        """Apply form, clean, CJK padding, lowercase and accent stripping, in that order."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        text = normalize_unicode(text, self.form)
        if self.clean:
            text = clean_text(text)
        if self.split_cjk:
            text = pad_cjk(text)
        if self.lowercase:
            text = lowercase(text)
        if self.strips_accents:
            text = strip_accents(text)
        return text

    def split(self, normalized: str) -> list[str]:
        """Pre-tokenize already-normalized text: whitespace split (+ punctuation split)."""
        return split_punctuation(normalized) if self.split_punctuation else normalized.split()

    def pre_tokenize(self, text: str) -> list[str]:
        """``split(normalize(text))``: the words a tokenizer then cuts into tokens."""
        return self.split(self.normalize(text))

    def coarse_split(self, text: str) -> list[str]:
        """Unicode form + clean, then split on whitespace: a cheap first cut into chunks such that

            pre_tokenize(text) == [w for chunk in coarse_split(text) for w in pre_tokenize(chunk)]

        (every later step — CJK padding, lowercasing, accent stripping, punctuation splitting — acts
        within a whitespace-free chunk). Tokenizers cache their result per chunk: chunks repeat.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        text = normalize_unicode(text, self.form)
        if self.clean:
            text = clean_text(text)
        return text.split()

    def __call__(self, text: str) -> str:
        return self.normalize(text)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> Normalizer:
        unknown = sorted(set(options) - set(cls.FIELDS))
        if unknown:
            raise ValueError(f"unknown normalizer option(s) {unknown}; known options are {list(cls.FIELDS)}")
        return cls(**options)


BERT_NORMALIZER = Normalizer.bert()  # uncased BERT: the default of the word and WordPiece tokenizers


def _check_normalizer(normalizer: Any, *, optional: bool = False) -> None:
    """Raise a TypeError unless ``normalizer`` is a :class:`Normalizer` (or None, when ``optional``)."""
    if optional and normalizer is None:
        return
    if not isinstance(normalizer, Normalizer):
        expected = "a Normalizer or None" if optional else "a Normalizer"
        raise TypeError(f"normalizer must be {expected}, got {type(normalizer).__name__}")


def _saved_normalizer(
    options: Mapping[str, Any], default: Normalizer | None
) -> tuple[Normalizer | None, dict[str, Any]]:
    """Split a saved tokenizer's options into its normalizer and the others; an absent one is ``default``.

    A saved None means "no normalizer" only for a tokenizer whose default is None.
    """
    rest = dict(options)
    if "normalizer" not in rest:
        return default, rest
    saved = rest.pop("normalizer")
    if saved is None and default is None:
        return None, rest
    return Normalizer.from_dict(saved), rest


# ---------------------------------------------------------------------------------------------------
# Stop words
# ---------------------------------------------------------------------------------------------------

# Common English function words (articles, pronouns, auxiliaries, prepositions, conjunctions), chosen
# for this project. Content words that matter for meaning — "not", "no", "never" — are deliberately
# left out: dropping negations flips sentiment.
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    """
    a an the
    i me my mine myself we us our ours ourselves you your yours yourself yourselves
    he him his himself she her hers herself it its itself they them their theirs themselves
    this that these those who whom whose which what
    am is are was were be been being have has had having do does did doing
    will would shall should can could may might must
    and or but if because as until while so than too very just also
    of at by for with about against between into through during before after above below
    to from up down in out on off over under again further then once
    here there when where why how all any both each few more most other some such
    own same only s t d ll m re ve
    """.split()
)


def remove_stop_words(tokens: Iterable[str], stop_words: Iterable[str] | None = None) -> list[str]:
    """Drop tokens whose lowercase form is a stop word (default :data:`ENGLISH_STOP_WORDS`)."""
    if isinstance(tokens, str):
        raise TypeError("tokens must be a list of strings (e.g. from pre_tokenize), not one string")
    words = ENGLISH_STOP_WORDS if stop_words is None else frozenset(w.lower() for w in stop_words)
    return [t for t in tokens if t.lower() not in words]
