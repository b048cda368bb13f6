"""Tokenizers: text -> ids -> text, all behind one interface (:class:`base.Tokenizer`).

    base.py            the interface: special tokens, pairs with segment ids, padded batches with
                       ``allowed`` masks, streaming a file, JSON save/load and the type registry
    normalization.py   Unicode normalization, cleanup, lowercasing, accent stripping, punctuation and
                       CJK splitting (BERT's rules), stop words
    char.py            one token per character
    word.py            one token per word, vocabulary by frequency
    wordpiece.py       BERT's WordPiece: vocab.txt-compatible encoder and a likelihood-score trainer
    bpe.py             byte-level BPE (GPT-2 style)

Any saved tokenizer loads with ``Tokenizer.load(path)`` (or ``load_tokenizer(path)``).
"""

from .base import (
    BERT_SPECIAL_TOKENS,
    EncodedBatch,
    PairEncoding,
    SpecialTokens,
    Tokenizer,
    count_tokens,
    load_tokenizer,
    read_lines,
    register_tokenizer,
    tokenizer_types,
    vocab_by_frequency,
)
from .bpe import BPETokenizer
from .char import CharTokenizer
from .normalization import BERT_NORMALIZER, ENGLISH_STOP_WORDS, Normalizer, remove_stop_words
from .word import WordTokenizer
from .wordpiece import WordPieceTokenizer, wordpiece_throughput

__all__ = [
    "Tokenizer",
    "SpecialTokens",
    "BERT_SPECIAL_TOKENS",
    "PairEncoding",
    "EncodedBatch",
    "register_tokenizer",
    "tokenizer_types",
    "load_tokenizer",
    "read_lines",
    "count_tokens",
    "vocab_by_frequency",
    "Normalizer",
    "BERT_NORMALIZER",
    "ENGLISH_STOP_WORDS",
    "remove_stop_words",
    "CharTokenizer",
    "WordTokenizer",
    "WordPieceTokenizer",
    "wordpiece_throughput",
    "BPETokenizer",
]
