r"""WordPiece: BERT's subword tokenizer — a BERT ``vocab.txt`` compatible encoder and a trainer.

Encoding (Wu et al. 2016; Devlin et al. 2019) — after BERT's normalization and pre-tokenization
(:class:`~.normalization.Normalizer`: clean, CJK split, lowercase + strip accents, punctuation split),
each word is cut *greedily, longest match first*:

    start at the first character; take the longest vocabulary entry that matches there
    (an entry for a piece that does not start the word is written with the prefix "##");
    continue after it; if at some position no entry matches, the *whole word* becomes [UNK].
    A word longer than ``max_input_chars_per_word`` (100) characters is [UNK] without trying.

    "unaffable" -> ["un", "##aff", "##able"]        "naïve" -> "naive" -> ["naive"]

Loading ``vocab.txt`` (one token per line, the id is the line number) with
:meth:`WordPieceTokenizer.from_vocab_file` gives ids identical to Hugging Face's ``BertTokenizer`` on
the same file (tests/test_wordpiece.py checks 70 tricky strings and sentence pairs against it).

Decoding joins tokens with spaces and glues every "##" continuation to the token before it:
``["un", "##aff", "##able", "!"] -> "unaffable !"``. So for text without [UNK],
``decode(encode(x)) == " ".join(normalizer.pre_tokenize(x))`` — the normalized words, one space apart.

Training (:meth:`WordPieceTokenizer.train`) — greedy merges that raise the likelihood of the corpus
the most (Schuster & Nakajima 2012):

    1. count the words of the corpus (after normalization + pre-tokenization);
    2. spell each word as characters, non-initial ones with the prefix: "hug" -> h ##u ##g;
       the alphabet (every such symbol) plus the special tokens is the initial vocabulary;
    3. repeat until the vocabulary has ``vocab_size`` tokens or no pair is left: merge the adjacent
       pair (a, b) with the best score everywhere ("##u" + "##g" -> "##ug") and add the merged token.

    criterion="likelihood" (default): the exact gain in log-likelihood of the corpus under a unigram
    model of the current symbols. With n_t the count of symbol t (weighted by word frequency),
    N = Σ n_t and F(x) = x·ln x, the log-likelihood is Σ_t F(n_t) − F(N); merging n_ab pairs changes it by

        ΔL(a, b) = F(n_ab) + F(n_a − n_ab) + F(n_b − n_ab) − F(n_a) − F(n_b) + F(N) − F(N − n_ab)

    (for a = b: F(n_ab) + F(n_a − 2·n_ab) − F(n_a) + F(N) − F(N − n_ab)). Approximations, for speed:
    n_ab counts overlapping occurrences ("##a ##a ##a" holds 2) and the merged symbol is treated as
    new even when the same string was made before from other parts.

    criterion="pmi": the score of Hugging Face's course ("WordPiece tokenization"),
    n_ab / (n_a · n_b) — pointwise mutual information. It ignores how frequent a pair is, so rare
    pairs merge first and even "the" can stay in pieces in a vocabulary of thousands; the likelihood
    gain weighs PMI by frequency (roughly ΔL ≈ n_ab · PMI) and makes frequent words single tokens quickly.

    Ties (equal scores): the higher n_ab wins, then the alphabetically smaller (a, b) — so training is
    deterministic and independent of the order of the corpus.

Encoding a trained tokenizer still uses greedy longest-match (the merges are not replayed), exactly as
BERT does with its released vocabulary.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .base import (
    BERT_SPECIAL_TOKENS,
    SpecialTokens,
    Tokenizer,
    _as_special_tokens,
    _merge_pair,
    count_tokens,
    register_tokenizer,
)
from .normalization import BERT_NORMALIZER, Normalizer, _check_normalizer, _saved_normalizer

__all__ = ["WordPieceTokenizer", "likelihood_gain", "wordpiece_throughput"]

_CACHE_LIMIT = 200_000  # distinct whitespace-free chunks remembered by the id cache


@register_tokenizer
class WordPieceTokenizer(Tokenizer):
    """Greedy longest-match-first subword tokenizer with "##" continuations (BERT's)."""

    type_name = "wordpiece"

    def __init__(
        self,
        vocab: Sequence[str],
        special_tokens: SpecialTokens | Mapping[str, Any] | None = BERT_SPECIAL_TOKENS,
        *,
        normalizer: Normalizer = BERT_NORMALIZER,
        continuing_prefix: str = "##",
        max_input_chars_per_word: int = 100,
        parse_special_tokens: bool = True,
    ) -> None:
        super().__init__(vocab, special_tokens, parse_special_tokens=parse_special_tokens)
        _check_normalizer(normalizer)
        if not isinstance(continuing_prefix, str) or not continuing_prefix:
            raise ValueError(f"continuing_prefix must be a non-empty string, got {continuing_prefix!r}")
        if isinstance(max_input_chars_per_word, bool) or not isinstance(max_input_chars_per_word, int):
            raise TypeError(f"max_input_chars_per_word must be an int, got {max_input_chars_per_word!r}")
        if max_input_chars_per_word < 1:
            raise ValueError(f"max_input_chars_per_word must be ≥ 1, got {max_input_chars_per_word}")
        if self.unk_id is None:
            raise ValueError("WordPiece needs an unk special token: a word with an unmatched piece becomes unk")
        self._normalizer = normalizer
        self._prefix = continuing_prefix
        self._max_chars = max_input_chars_per_word
        # No vocabulary entry is longer than this many characters (prefix excluded): bounds the search.
        self._longest_piece = max(len(t.removeprefix(continuing_prefix)) for t in self._vocab)
        self._cache: dict[str, list[int]] = {}

    # Read-only: the per-chunk cache depends on them. Build a new tokenizer to change them.
    normalizer = property(lambda self: self._normalizer, doc="the Normalizer applied before cutting words")
    continuing_prefix = property(lambda self: self._prefix, doc='marker of a non-initial piece ("##")')
    max_input_chars_per_word = property(lambda self: self._max_chars, doc="longer words become [UNK]")

    # --- vocab.txt -----------------------------------------------------------------------------------

    @classmethod
    def from_vocab_file(
        cls,
        path: str | os.PathLike,
        *,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        split_cjk: bool = True,
        special_tokens: SpecialTokens | Mapping[str, Any] | None = BERT_SPECIAL_TOKENS,
        max_input_chars_per_word: int = 100,
    ) -> WordPieceTokenizer:
        """Load a BERT ``vocab.txt``: one token per line, id = line number (0-based).

        ``lowercase=True`` for "uncased" checkpoints; ``strip_accents=None`` follows ``lowercase`` as BERT
        does. Raises ValueError if a special token is missing from the file.
        """
        with open(path, encoding="utf-8") as f:
            vocab = [line.rstrip("\r\n") for line in f]
        normalizer = Normalizer(lowercase=lowercase, strip_accents=strip_accents, split_cjk=split_cjk)
        return cls(vocab, special_tokens, normalizer=normalizer, max_input_chars_per_word=max_input_chars_per_word)

    def save_vocab_file(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as a BERT ``vocab.txt`` (normalizer options are not part of that format)."""
        bad = [t for t in self._vocab if "\n" in t or "\r" in t]
        if bad:
            raise ValueError(f"tokens containing line breaks cannot be written to vocab.txt: {bad[:3]}")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(t + "\n" for t in self._vocab)

    # --- encoding ------------------------------------------------------------------------------------

    def _word_to_ids(self, word: str) -> list[int]:
        """Greedy longest-match-first over one pre-tokenized word; [UNK] if any position fails."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_id]
        ids_of, prefix, longest = self._ids, self.continuing_prefix, self._longest_piece
        out: list[int] = []
        start, n = 0, len(word)
        while start < n:
            end = min(n, start + longest)
            found = None
            while end > start:
                piece = word[start:end] if start == 0 else prefix + word[start:end]
                found = ids_of.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return [self.unk_id]
            out.append(found)
            start = end
        return out

    def _chunk_ids(self, chunk: str) -> list[int]:
        """Ids of one whitespace-free chunk (see ``Normalizer.coarse_split``), through a per-chunk cache."""
        ids = self._cache.get(chunk)
        if ids is None:
            ids = [i for word in self.normalizer.pre_tokenize(chunk) for i in self._word_to_ids(word)]
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[chunk] = ids
        return ids

    def _encode_chunk(self, text: str) -> list[int]:
        # Chunks ("word," "(x)" ...) repeat, so each distinct one is normalized and cut only once.
        cache, out = self._cache, []
        for chunk in self.normalizer.coarse_split(text):
            ids = cache.get(chunk)
            out.extend(ids if ids is not None else self._chunk_ids(chunk))
        return out

    def _tokenize(self, text: str) -> list[str]:
        vocab = self._vocab
        return [vocab[i] for i in self._encode_chunk(text)]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Join with spaces, gluing "##" continuations to the previous token."""
        return " ".join(tokens).replace(" " + self.continuing_prefix, "")

    # --- persistence ---------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {
            "normalizer": self.normalizer.to_dict(),
            "continuing_prefix": self.continuing_prefix,
            "max_input_chars_per_word": self.max_input_chars_per_word,
        }

    @classmethod
    def _from_saved(cls, vocab, special_tokens, options, *, parse_special_tokens):
        normalizer, options = _saved_normalizer(options, default=BERT_NORMALIZER)
        return cls(vocab, special_tokens, normalizer=normalizer, parse_special_tokens=parse_special_tokens, **options)

    # --- training ------------------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int,
        normalizer: Normalizer = BERT_NORMALIZER,
        special_tokens: SpecialTokens | Mapping[str, Any] | None = BERT_SPECIAL_TOKENS,
        min_frequency: int = 1,
        criterion: str = "likelihood",
        continuing_prefix: str = "##",
        max_input_chars_per_word: int = 100,
    ) -> WordPieceTokenizer:
        """Learn a vocabulary of (at most) ``vocab_size`` tokens by greedy merges (see the module docstring).

        ``criterion``: "likelihood" (unigram log-likelihood gain, default) or "pmi" (n_ab / (n_a n_b)).

        ``min_frequency``: a pair must occur at least this often (weighted) to be merged. Training stops
        early, with a smaller vocabulary, when no pair qualifies. ``texts`` may be a stream
        (``read_lines(path)``); only the word counts are kept in memory.

        Raises ValueError for an empty corpus, or when ``vocab_size`` is smaller than the special tokens
        plus the alphabet (the single-character symbols, which every word needs).
        """
        _check_train_options(vocab_size, min_frequency, criterion)
        specials = _as_special_tokens(special_tokens)
        word_counts = _trainable_word_counts(texts, normalizer, max_input_chars_per_word)
        words = [[w[0], *(continuing_prefix + ch for ch in w[1:])] for w in word_counts]  # "hug" -> h ##u ##g
        vocab = _initial_vocab(words, specials, vocab_size)
        in_vocab = set(vocab)
        counts = _MergeCounts(words, list(word_counts.values()))
        while len(vocab) < vocab_size:
            best = _best_pair(counts.pairs, counts.symbols, min_frequency, criterion)
            if best is None:
                break
            merged = best[0] + best[1][len(continuing_prefix) :]  # "##u" + "##g" -> "##ug"
            counts.merge(best, merged)
            if merged not in in_vocab:
                in_vocab.add(merged)
                vocab.append(merged)
        return cls(
            vocab,
            specials,
            normalizer=normalizer,
            continuing_prefix=continuing_prefix,
            max_input_chars_per_word=max_input_chars_per_word,
        )


def _check_train_options(vocab_size: int, min_frequency: int, criterion: str) -> None:
    """Raise naming the first bad option of :meth:`WordPieceTokenizer.train`."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an integer ≥ 1, got {min_frequency!r}")
    if criterion not in ("likelihood", "pmi"):
        raise ValueError(f"criterion must be 'likelihood' or 'pmi', got {criterion!r}")


def _trainable_word_counts(texts: Iterable[str], normalizer: Normalizer, max_chars: int) -> Counter[str]:
    """Word -> count over the corpus, without the words longer than ``max_chars`` characters."""
    word_counts = count_tokens(texts, normalizer.pre_tokenize)
    # Words too long to encode become [UNK] at encoding time; they teach nothing.
    word_counts = Counter({w: c for w, c in word_counts.items() if len(w) <= max_chars})
    if not word_counts:
        raise ValueError(f"the corpus has no word of at most max_input_chars_per_word={max_chars}")
    return word_counts


def _initial_vocab(words: list[list[str]], specials: SpecialTokens, vocab_size: int) -> list[str]:
    """The special tokens, then the alphabet (every symbol of the spelled words, sorted); raises if > vocab_size."""
    alphabet = sorted({s for symbols in words for s in symbols})
    vocab = specials.tokens() + [s for s in alphabet if s not in set(specials.tokens())]
    if vocab_size < len(vocab):
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the {len(specials.tokens())} special tokens plus the "
            f"{len(alphabet)} symbols of the alphabet ({len(vocab)}); raise vocab_size to at least {len(vocab)}"
        )
    return vocab


class _MergeCounts:
    """Symbol and adjacent-pair counts of the spelled words (each weighted by its word's frequency), with the
    words holding each pair — kept up to date as :meth:`merge` rewrites the words in place."""

    def __init__(self, words: list[list[str]], freqs: list[int]) -> None:
        self.words, self.freqs = words, freqs
        self.symbols: Counter[str] = Counter()
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.where: dict[tuple[str, str], set[int]] = {}  # pair -> indices of the words containing it
        for i, (symbols, f) in enumerate(zip(words, freqs)):
            _add_word(i, symbols, f, self.symbols, self.pairs, self.where)

    def merge(self, pair: tuple[str, str], merged: str) -> None:
        """Replace every adjacent ``pair`` by the symbol ``merged`` in every word, updating the counts."""
        touched: set[tuple[str, str]] = set()
        for i in sorted(self.where.pop(pair, ())):
            symbols, f = self.words[i], self.freqs[i]
            touched.update(zip(symbols, symbols[1:]))
            _add_word(i, symbols, -f, self.symbols, self.pairs, self.where)
            self.words[i] = symbols = _merge_pair(symbols, *pair, merged)
            _add_word(i, symbols, f, self.symbols, self.pairs, self.where)
        for key in touched:  # pairs that no longer occur anywhere
            if self.pairs[key] <= 0:
                del self.pairs[key]
                self.where.pop(key, None)


def _add_word(i, symbols, f, symbol_counts, pair_counts, where) -> None:
    """Add (f > 0) or remove (f < 0) one word's symbols and adjacent pairs from the counts."""
    for s in symbols:
        symbol_counts[s] += f
    for pair in zip(symbols, symbols[1:]):
        pair_counts[pair] += f
        if f > 0:
            where.setdefault(pair, set()).add(i)


def _xlogx(x: float) -> float:
    return x * math.log(x) if x > 0 else 0.0


def likelihood_gain(n_ab: int, n_a: int, n_b: int, n_total: int, *, same: bool = False) -> float:
    """ΔL of merging the n_ab adjacent pairs (a, b), under a unigram model (module docstring).

    ``same``: a and b are the same symbol (each merge then uses up two of its n_a occurrences).
    """
    if same:
        gain = _xlogx(n_ab) + _xlogx(n_a - 2 * n_ab) - _xlogx(n_a)
    else:
        gain = _xlogx(n_ab) + _xlogx(n_a - n_ab) + _xlogx(n_b - n_ab) - _xlogx(n_a) - _xlogx(n_b)
    return gain + _xlogx(n_total) - _xlogx(n_total - n_ab)


def _best_pair(pair_counts, symbol_counts, min_frequency, criterion) -> tuple[str, str] | None:
    """argmax of the score over all pairs; ties -> higher count(ab), then the alphabetically smaller pair.

    This loop runs once per merge over every pair, so :func:`likelihood_gain` is inlined here, with
    F(n_a) computed once per symbol.
    """
    log = math.log
    n_total = sum(symbol_counts.values())
    if criterion == "likelihood":
        f_sym = {s: n * log(n) for s, n in symbol_counts.items() if n > 0}
        f_total = n_total * log(n_total)
    best, best_key = None, None
    for pair, c in pair_counts.items():
        if c < min_frequency:
            continue
        a, b = pair
        if criterion == "pmi":
            score = c / (symbol_counts[a] * symbol_counts[b])
        elif a == b:
            rest = symbol_counts[a] - 2 * c
            score = c * log(c) + (rest * log(rest) if rest > 0 else 0.0) - f_sym[a]
            score += f_total - (n_total - c) * log(n_total - c)
        else:
            rest_a, rest_b = symbol_counts[a] - c, symbol_counts[b] - c
            score = c * log(c) + (rest_a * log(rest_a) if rest_a > 0 else 0.0) - f_sym[a] - f_sym[b]
            score += (rest_b * log(rest_b) if rest_b > 0 else 0.0) + f_total - (n_total - c) * log(n_total - c)
        key = (score, c)
        if best_key is None or key > best_key or (key == best_key and pair < best):
            best, best_key = pair, key
    return best


def wordpiece_throughput(tokenizer: WordPieceTokenizer, text: str, *, repeats: int = 3) -> float:
    """Encoding speed in MB/s (UTF-8 megabytes of ``text`` per second), best of ``repeats`` cold-cache runs.

    Each run starts with an empty per-chunk cache, so the figure includes the first sight of every word.
    """
    n_bytes = len(text.encode("utf-8"))
    best = float("inf")
    for _ in range(repeats):
        tokenizer._cache.clear()  # cold start: every distinct chunk is normalized and cut again
        t0 = time.perf_counter()
        tokenizer.encode(text)
        best = min(best, time.perf_counter() - t0)
    return n_bytes / 1e6 / best
