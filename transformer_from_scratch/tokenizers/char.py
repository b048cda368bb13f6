r"""Character-level tokenizer: one token per Unicode code point.

The simplest tokenizer there is. The vocabulary is the set of characters seen in a training corpus,
kept when a character occurs at least ``min_freq`` times and ordered by frequency (most frequent
first, ties broken by the character), after the special tokens. Characters outside the vocabulary
become ``[UNK]``.

Without a normalizer (the default) it is lossless on its alphabet:
``decode(encode(text)) == text`` for any text made of vocabulary characters. With a
:class:`~.normalization.Normalizer` the text is normalized first (e.g. lowercased) and decoding
returns the normalized text. Sequences are long (one id per character), which is the price of a tiny
vocabulary and no out-of-vocabulary words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .base import (
    BERT_SPECIAL_TOKENS,
    SpecialTokens,
    Tokenizer,
    _as_special_tokens,
    count_tokens,
    register_tokenizer,
    vocab_by_frequency,
)
from .normalization import Normalizer, _check_normalizer, _saved_normalizer

__all__ = ["CharTokenizer"]


@register_tokenizer
class CharTokenizer(Tokenizer):
    """One token per character. Build with :meth:`train`, or from an explicit ``vocab`` list."""

    type_name = "char"

    def __init__(
        self,
        vocab: Sequence[str],
        special_tokens: SpecialTokens | Mapping[str, Any] | None = BERT_SPECIAL_TOKENS,
        *,
        normalizer: Normalizer | None = None,
        parse_special_tokens: bool = True,
    ) -> None:
        super().__init__(vocab, special_tokens, parse_special_tokens=parse_special_tokens)
        _check_normalizer(normalizer, optional=True)
        specials = set(self.special_tokens)
        long = [t for t in self._vocab if len(t) != 1 and t not in specials]
        if long:
            raise ValueError(f"a character vocabulary holds single characters, got {long[:5]}")
        self.normalizer = normalizer

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        special_tokens: SpecialTokens | Mapping[str, Any] | None = BERT_SPECIAL_TOKENS,
        normalizer: Normalizer | None = None,
    ) -> CharTokenizer:
        """Vocabulary = special tokens, then characters with count ≥ ``min_freq`` by count desc, then character.

        ``max_size`` caps the whole vocabulary (special tokens included). ``texts`` may be any iterable,
        e.g. ``read_lines(path)`` to stream a large file. Raises ValueError on an empty corpus.
        """
        specials = _as_special_tokens(special_tokens)
        counts = count_tokens(texts, lambda text: _characters(text, normalizer))
        vocab = vocab_by_frequency(counts, min_freq=min_freq, max_size=max_size, reserved=specials.tokens())
        return cls(vocab, specials, normalizer=normalizer)

    def _tokenize(self, text: str) -> list[str]:
        return _characters(text, self.normalizer)

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Concatenate: characters (and any special tokens) are written back as they are."""
        return "".join(tokens)

    def _options(self) -> dict[str, Any]:
        return {"normalizer": None if self.normalizer is None else self.normalizer.to_dict()}

    @classmethod
    def _from_saved(cls, vocab, special_tokens, options, *, parse_special_tokens):
        normalizer, options = _saved_normalizer(options, default=None)
        return cls(vocab, special_tokens, normalizer=normalizer, parse_special_tokens=parse_special_tokens, **options)


def _characters(text: str, normalizer: Normalizer | None) -> list[str]:
    """The characters of ``text``, normalized first when there is a normalizer."""
    return list(normalizer.normalize(text) if normalizer is not None else text)
