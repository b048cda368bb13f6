r"""Word-level tokenizer: one token per word (after normalization and punctuation splitting).

Text is normalized and pre-tokenized by a :class:`~.normalization.Normalizer` (by default BERT's:
clean, lowercase, strip accents, split punctuation and CJK), optionally stripped of English stop
words, and every word becomes one token. The vocabulary keeps the words seen at least ``min_freq``
times in a training corpus, most frequent first (ties by the word itself), after the special tokens;
any other word is ``[UNK]`` — the out-of-vocabulary problem that motivates subword tokenizers.

Decoding joins the words with single spaces: ``decode(encode(x)) == " ".join(words of x)`` when
every word is in the vocabulary (the original spacing around punctuation is not recoverable).
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
from .normalization import BERT_NORMALIZER, Normalizer, _check_normalizer, _saved_normalizer, remove_stop_words

__all__ = ["WordTokenizer"]


@register_tokenizer
class WordTokenizer(Tokenizer):
    """One token per word; unknown words map to ``[UNK]`` (which the special tokens must provide)."""

    type_name = "word"

    def __init__(
        self,
        vocab: Sequence[str],
        special_tokens: SpecialTokens | Mapping[str, Any] | None = BERT_SPECIAL_TOKENS,
        *,
        normalizer: Normalizer = BERT_NORMALIZER,
        stop_words: bool = False,
        parse_special_tokens: bool = True,
    ) -> None:
        super().__init__(vocab, special_tokens, parse_special_tokens=parse_special_tokens)
        _check_normalizer(normalizer)
        if self.unk_id is None:
            raise ValueError("a word tokenizer needs an unk special token for out-of-vocabulary words")
        self.normalizer = normalizer
        self.stop_words = bool(stop_words)

    def words(self, text: str) -> list[str]:
        """Text -> words: normalize, split on whitespace and punctuation, drop stop words if asked."""
        return _words(text, self.normalizer, self.stop_words)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        special_tokens: SpecialTokens | Mapping[str, Any] | None = BERT_SPECIAL_TOKENS,
        normalizer: Normalizer = BERT_NORMALIZER,
        stop_words: bool = False,
    ) -> WordTokenizer:
        """Vocabulary = special tokens, then words with count ≥ ``min_freq`` by count desc, then word.

        ``max_size`` caps the whole vocabulary (special tokens included). ``texts`` may be any iterable,
        e.g. ``read_lines(path)`` to stream a large file. Raises ValueError on an empty corpus.
        """
        special_tokens = _as_special_tokens(special_tokens)
        if special_tokens.unk is None:
            raise ValueError("a word tokenizer needs an unk special token for out-of-vocabulary words")
        counts = count_tokens(texts, lambda text: _words(text, normalizer, stop_words))
        vocab = vocab_by_frequency(counts, min_freq=min_freq, max_size=max_size, reserved=special_tokens.tokens())
        return cls(vocab, special_tokens, normalizer=normalizer, stop_words=stop_words)

    def _tokenize(self, text: str) -> list[str]:
        unk = self._special.unk
        return [w if w in self._ids else unk for w in self.words(text)]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Words joined by single spaces."""
        return " ".join(tokens)

    def _options(self) -> dict[str, Any]:
        return {"normalizer": self.normalizer.to_dict(), "stop_words": self.stop_words}

    @classmethod
    def _from_saved(cls, vocab, special_tokens, options, *, parse_special_tokens):
        normalizer, options = _saved_normalizer(options, default=BERT_NORMALIZER)
        return cls(vocab, special_tokens, normalizer=normalizer, parse_special_tokens=parse_special_tokens, **options)


def _words(text: str, normalizer: Normalizer, stop_words: bool) -> list[str]:
    """Normalize, split on whitespace and punctuation, and drop stop words if ``stop_words``."""
    words = normalizer.pre_tokenize(text)
    return remove_stop_words(words) if stop_words else words
