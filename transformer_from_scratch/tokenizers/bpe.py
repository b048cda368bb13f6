r"""Byte-level byte-pair encoding (BPE): a trainer, an encoder that applies merges by rank, GPT-2 files.

BPE (Sennrich, Haddow & Birch 2016, "Neural Machine Translation of Rare Words with Subword Units") starts
from single symbols and repeatedly fuses the most frequent adjacent pair into a new symbol. GPT-2 (Radford
et al. 2019, "Language Models are Unsupervised Multitask Learners", §2.2, and the `encoder.py` of the
GPT-2 code release) made it *byte-level*: the symbols are the 256 byte values of the UTF-8 encoding, so
every string — any script, any emoji — is encodable and nothing is ever unknown.

Pipeline, for training and encoding alike:
  1. special tokens ("<|endoftext|>") are cut out of the text first; they are hard boundaries that never
     take part in a merge and map to their own id;
  2. the rest is pre-tokenized with the GPT-2 regular expression (``GPT2_SPLIT_PATTERN``): contractions
     ('s 't 're 've 'm 'll 'd), an optional space + letters, an optional space + digits, an optional
     space + other symbols, whitespace runs. Merges never cross a pre-token boundary;
  3. each pre-token is turned into its UTF-8 bytes, and merges are applied inside it.

Decoding concatenates the tokens' bytes and reads them as UTF-8, so ``decode(encode(s)) == s`` for every
string ``s`` — except strings holding lone surrogates (U+D800..U+DFFF), which have no UTF-8 encoding and are
refused by ``encode`` with a ValueError.

Token ids of a tokenizer trained here: byte ``b`` has id ``b`` (0..255), the special tokens follow in the
order given, then one id per merge. GPT-2 files keep their own ids (there, "<|endoftext|>" is 50256).

Training (``train_bpe``) keeps the pair statistics up to date *incrementally* (``PairCounts``): a merge
only revisits the words that contain the merged pair, instead of recounting the whole corpus. Among equally
frequent pairs the lexicographically greatest pair of byte strings ``(bytes(a), bytes(b))`` wins (tuple
order: compare ``bytes(a)`` first, then ``bytes(b)``), which makes training deterministic.
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex

from .base import SpecialTokens, Tokenizer, _as_special_tokens, _merge_pair, register_tokenizer

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "GPT2_SPECIAL_TOKENS",
    "END_OF_TEXT",
    "BPETokenizer",
    "BPETrainingResult",
    "PairCounts",
    "bytes_to_unicode",
    "bytes_to_gpt2_string",
    "gpt2_string_to_bytes",
    "count_pretokens",
    "pretokenize",
    "split_on_special_tokens",
    "train_bpe",
]

# The pre-tokenization pattern of the GPT-2 release (encoder.py). \p{L} = any letter, \p{N} = any number:
# Python's `re` cannot express Unicode categories, hence the `regex` package.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_GPT2_SPLIT = regex.compile(GPT2_SPLIT_PATTERN)


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into GPT-2 pre-tokens; ``"".join(pretokenize(s)) == s`` for every string ``s``."""
    return _GPT2_SPLIT.findall(text)


def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 byte -> printable character table (Radford et al. 2019, `encoder.py` of the GPT-2 release).

    GPT-2 files store tokens as text, so every byte needs a visible, unambiguous character: the printable
    Latin-1 bytes ``!``..``~``, ``¡``..``¬`` and ``®``..``ÿ`` stand for themselves; the remaining 68 bytes
    (controls, space, DEL, NBSP, soft hyphen) are given the characters ``chr(256 + n)`` in increasing byte
    order, n = 0, 1, ... So the space 0x20 becomes "Ġ" (U+0120) and the newline 0x0A becomes "Ċ" (U+010A).
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table: dict[int, str] = {}
    n = 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + n)
            n += 1
    return table


_BYTE_TO_CHAR = bytes_to_unicode()
_CHAR_TO_BYTE = {char: byte for byte, char in _BYTE_TO_CHAR.items()}


def bytes_to_gpt2_string(token: bytes) -> str:
    """A token's bytes in the printable GPT-2 spelling, e.g. ``b" the"`` -> ``"Ġthe"``."""
    return "".join(_BYTE_TO_CHAR[b] for b in token)


def gpt2_string_to_bytes(text: str) -> bytes:
    """Inverse of ``bytes_to_gpt2_string``; ValueError for a character outside the byte table."""
    try:
        return bytes(_CHAR_TO_BYTE[c] for c in text)
    except KeyError as err:
        raise ValueError(
            f"token {text!r} contains the character {err.args[0]!r} (U+{ord(err.args[0]):04X}), which is not in "
            "the GPT-2 byte<->unicode table; is this a byte-level BPE vocabulary?"
        ) from None


def split_on_special_tokens(text: str, special_tokens: Iterable[str]) -> list[tuple[str, bool]]:
    """Cut ``text`` into ``(piece, is_special)`` chunks; special tokens are matched longest first.

    ``"a<|endoftext|>b"`` -> ``[("a", False), ("<|endoftext|>", True), ("b", False)]``. Empty ordinary
    pieces are dropped, so ``"".join(piece for piece, _ in chunks) == text``.
    """
    specials = sorted(set(special_tokens), key=len, reverse=True)
    if not specials:
        return [(text, False)] if text else []
    pattern = regex.compile("|".join(regex.escape(s) for s in specials))
    chunks: list[tuple[str, bool]] = []
    start = 0
    for match in pattern.finditer(text):
        if match.start() > start:
            chunks.append((text[start : match.start()], False))
        chunks.append((match.group(), True))
        start = match.end()
    if start < len(text):
        chunks.append((text[start:], False))
    return chunks


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------


class _Descending:
    """Heap key that orders pairs of byte strings from greatest to smallest (``heapq`` is a min-heap)."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[bytes, bytes]) -> None:
        self.key = key

    def __lt__(self, other: _Descending) -> bool:
        return self.key > other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.key == other.key


def _adjacent_pairs(word: Sequence[int]) -> list[tuple[int, int]]:
    return list(zip(word, word[1:]))


class PairCounts:
    """Pair statistics of a weighted word list, updated in place after each merge.

    ``counts[(a, b)]`` = Σ over words of (frequency × occurrences of the adjacent pair a, b);
    ``where[(a, b)]`` = the indices of the words containing the pair. Only pairs with a positive count are
    stored, so both dicts equal a full recount at all times (the tests check this after every merge).

    Choosing the best pair uses a lazy max-heap of ``(-count, descending byte key, pair)``. Counts of
    existing pairs only *decrease* after a merge, except for pairs that contain the new token, which are
    (re)pushed with their new count; a popped entry whose stored count is out of date is pushed back with
    the current count. So every live pair always has an entry whose stored count is ≥ its true count, and
    an entry whose stored count is exact when it reaches the top is the true maximum.
    """

    def __init__(self, words: Sequence[Sequence[int]], freqs: Sequence[int], token_bytes: list[bytes]) -> None:
        if len(words) != len(freqs):
            raise ValueError(f"words and freqs must have the same length; received {len(words)} and {len(freqs)}")
        self.words: list[list[int]] = [list(w) for w in words]
        self.freqs: list[int] = list(freqs)
        self.token_bytes = token_bytes  # shared with the trainer: id -> bytes, grows with each new token
        self.counts: dict[tuple[int, int], int] = {}
        self.where: dict[tuple[int, int], set[int]] = {}
        for index, (word, freq) in enumerate(zip(self.words, self.freqs)):
            for pair in _adjacent_pairs(word):
                self.counts[pair] = self.counts.get(pair, 0) + freq
                self.where.setdefault(pair, set()).add(index)
        self._heap = [(-count, self._key(pair), pair) for pair, count in self.counts.items()]
        heapq.heapify(self._heap)

    def _key(self, pair: tuple[int, int]) -> _Descending:
        return _Descending((self.token_bytes[pair[0]], self.token_bytes[pair[1]]))

    def best_pair(self) -> tuple[int, int] | None:
        """The most frequent pair (ties: greatest ``(bytes(a), bytes(b))``), or None if no pair is left."""
        heap, counts = self._heap, self.counts
        while heap:
            neg_count, key, pair = heap[0]
            count = counts.get(pair, 0)
            if count == -neg_count:
                return pair
            heapq.heappop(heap)
            if count > 0:  # stale entry: the pair lost occurrences since it was pushed
                heapq.heappush(heap, (-count, key, pair))
        return None

    def merge(self, pair: tuple[int, int], new_id: int) -> None:
        """Fuse ``pair`` into ``new_id`` in every word that contains it, updating counts and positions."""
        counts, where, words, freqs = self.counts, self.where, self.words, self.freqs
        grown: set[tuple[int, int]] = set()
        for index in where.get(pair, ()).copy():
            old, freq = words[index], freqs[index]
            new = _merge_pair(old, *pair, new_id)
            old_pairs, new_pairs = _adjacent_pairs(old), _adjacent_pairs(new)
            for p in old_pairs:
                counts[p] -= freq
            for p in new_pairs:
                counts[p] = counts.get(p, 0) + freq
                if new_id in p:
                    grown.add(p)
            old_set, new_set = set(old_pairs), set(new_pairs)
            for p in old_set - new_set:
                where[p].discard(index)
                if counts[p] == 0:
                    del counts[p]
                    del where[p]
            for p in new_set - old_set:
                where.setdefault(p, set()).add(index)
            words[index] = new
        for p in grown:
            heapq.heappush(self._heap, (-counts[p], self._key(p), p))


@dataclass(frozen=True)
class BPETrainingResult:
    """What training learns. ``token_bytes[i]`` is the byte string of id ``i`` (None for a special token);
    ``merges`` are the fused pairs of ids in rank order; ``special_tokens`` maps each special string to its id."""

    token_bytes: list[bytes | None]
    merges: list[tuple[int, int]]
    special_tokens: dict[str, int]


def count_pretokens(texts: Iterable[str], special_tokens: Sequence[str] = ()) -> Counter[str]:
    """Frequencies of GPT-2 pre-tokens over the documents ``texts``, special tokens cut out first."""
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings (e.g. a list or read_lines(path)), not one string")
    freqs: Counter[str] = Counter()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must yield strings, got {type(text).__name__}")
        for piece, is_special in split_on_special_tokens(text, special_tokens):
            if not is_special:
                freqs.update(_GPT2_SPLIT.findall(piece))
    return freqs


def train_bpe(
    texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str] = (), *, min_frequency: int = 1
) -> BPETrainingResult:
    """Learn byte-level BPE merges until the vocabulary holds ``vocab_size`` tokens.

    ``texts`` is an iterable of documents (merges never cross document, special-token or pre-token
    boundaries). The vocabulary starts with the 256 bytes (id = byte value), then the special tokens in the
    order given; each merge of the most frequent pair (ties: greatest ``(bytes(a), bytes(b))``) appends one
    token. Should the fused bytes already be a token, that id is reused, so ids and byte strings stay one to
    one. Training stops early, with a smaller vocabulary, when no pair occurs ``min_frequency`` times.
    """
    special_tokens = list(special_tokens)
    if len(set(special_tokens)) != len(special_tokens) or not all(isinstance(s, str) and s for s in special_tokens):
        raise ValueError(f"special_tokens must be distinct non-empty strings, got {special_tokens!r}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an integer ≥ 1, got {min_frequency!r}")
    alphabet = 256 + len(special_tokens)
    if vocab_size < alphabet:
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the alphabet: 256 bytes + {len(special_tokens)} special "
            f"token(s) = {alphabet}; raise vocab_size to at least {alphabet}"
        )
    freqs = count_pretokens(texts, special_tokens)
    if not freqs:
        raise ValueError("cannot train on an empty corpus: it holds no text besides special tokens")

    token_bytes: list[bytes | None] = [bytes([b]) for b in range(256)] + [None] * len(special_tokens)
    ids_of_bytes = {bytes([b]): b for b in range(256)}
    words = [list(piece.encode("utf-8")) for piece in freqs]  # byte b has id b
    stats = PairCounts(words, list(freqs.values()), token_bytes)  # type: ignore[arg-type]
    merges: list[tuple[int, int]] = []
    while len(ids_of_bytes) + len(special_tokens) < vocab_size:
        pair = stats.best_pair()
        if pair is None or stats.counts[pair] < min_frequency:
            break
        fused = token_bytes[pair[0]] + token_bytes[pair[1]]  # type: ignore[operator]
        new_id = ids_of_bytes.get(fused)
        if new_id is None:
            new_id = ids_of_bytes[fused] = len(token_bytes)
            token_bytes.append(fused)
        merges.append(pair)
        stats.merge(pair, new_id)
    specials = {s: 256 + i for i, s in enumerate(special_tokens)}
    return BPETrainingResult(token_bytes=token_bytes, merges=merges, special_tokens=specials)


# ---------------------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------------------

END_OF_TEXT = "<|endoftext|>"
# GPT-2's roles: "<|endoftext|>" begins and ends documents. Byte-level BPE never needs [UNK]; GPT-2 has no
# padding token (pass SpecialTokens(pad=..., ...) to pad batches, e.g. with "<|endoftext|>" itself).
GPT2_SPECIAL_TOKENS = SpecialTokens(pad=None, unk=None, cls=None, sep=None, mask=None, bos=END_OF_TEXT, eos=END_OF_TEXT)
_CACHE_LIMIT = 200_000  # distinct pre-tokens remembered by the encoder's cache
_LONG_PIECE = 64  # pre-tokens longer than this many bytes are merged with a heap instead of by scanning


def _parse_merge(entry: str | Sequence[str], line: int) -> tuple[str, str]:
    parts = entry.split(" ") if isinstance(entry, str) else list(entry)
    if len(parts) != 2 or not all(isinstance(p, str) and p for p in parts):
        raise ValueError(f'merge {line} must be two tokens separated by one space ("Ġ t"), got {entry!r}')
    return parts[0], parts[1]


@register_tokenizer
class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2's tokenizer): lossless on any Unicode text, no [UNK] ever.

    Build with :meth:`train` or :meth:`from_gpt2_files`, or directly from a vocabulary (token strings in the
    GPT-2 byte spelling, e.g. "Ġthe" for b" the"; id = index) and the merges in rank order, each a pair of
    vocabulary strings or the line "a b" of a ``merges.txt``.
    """

    type_name = "bpe"

    def __init__(
        self,
        vocab: Sequence[str],
        merges: Sequence[str | Sequence[str]],
        special_tokens: SpecialTokens | Mapping[str, Any] | None = GPT2_SPECIAL_TOKENS,
        *,
        parse_special_tokens: bool = True,
    ) -> None:
        super().__init__(vocab, special_tokens, parse_special_tokens=parse_special_tokens)
        specials = self._special_map
        # id -> bytes (None for special tokens, which decode to their own text).
        self._token_bytes: list[bytes | None] = [
            None if token in specials else gpt2_string_to_bytes(token) for token in self._vocab
        ]
        missing = [b for b in range(256) if _BYTE_TO_CHAR[b] not in self._ids or _BYTE_TO_CHAR[b] in specials]
        if missing:
            raise ValueError(
                f"a byte-level vocabulary needs one token per byte; bytes {missing[:8]} (spelled "
                f"{[_BYTE_TO_CHAR[b] for b in missing[:8]]}) are missing"
            )
        self._byte_ids = [self._ids[_BYTE_TO_CHAR[b]] for b in range(256)]  # byte value -> id
        self._merges: list[tuple[str, str]] = []
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}  # (id a, id b) -> (rank, id of a+b)
        for rank, entry in enumerate(merges):
            a, b = _parse_merge(entry, rank)
            for part in (a, b, a + b):
                if part not in self._ids or part in specials:
                    raise ValueError(f"merge {rank} ({a!r}, {b!r}): {part!r} is not an ordinary vocabulary token")
            self._merges.append((a, b))
            self._ranks.setdefault((self._ids[a], self._ids[b]), (rank, self._ids[a + b]))
        self._cache: dict[str, list[int]] = {}

    # --- construction ---------------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int,
        special_tokens: SpecialTokens | Mapping[str, Any] | None = GPT2_SPECIAL_TOKENS,
        min_frequency: int = 1,
    ) -> BPETokenizer:
        """Learn merges on ``texts`` (documents; ``read_lines(path)`` streams a file) — see :func:`train_bpe`.

        Ids: bytes 0..255, the special tokens in role order, then one id per new token. Raises ValueError for
        an empty corpus or ``vocab_size`` < 256 + number of special tokens.
        """
        specials = _as_special_tokens(special_tokens)
        result = train_bpe(texts, vocab_size, specials.tokens(), min_frequency=min_frequency)
        vocab = [token if token is not None else "" for token in map(_spell_or_none, result.token_bytes)]
        for token, i in result.special_tokens.items():
            vocab[i] = token
        collisions = sorted(set(vocab[:256] + vocab[256 + len(result.special_tokens) :]) & set(result.special_tokens))
        if collisions:
            raise ValueError(
                f"special token(s) {collisions} are spelled like learned byte tokens; use delimited strings such "
                "as '<|pad|>' that the GPT-2 pre-tokenizer can never produce as one token"
            )
        merges = [(vocab[a], vocab[b]) for a, b in result.merges]
        return cls(vocab, merges, specials)

    @classmethod
    def from_gpt2_files(
        cls,
        vocab_path: str | os.PathLike,
        merges_path: str | os.PathLike,
        *,
        special_tokens: SpecialTokens | Mapping[str, Any] | None = GPT2_SPECIAL_TOKENS,
    ) -> BPETokenizer:
        """Load GPT-2 format files: ``encoder.json`` or ``vocab.json`` (token -> id) and ``vocab.bpe`` or
        ``merges.txt`` (a "#version" line, then one merge "a b" per line, in rank order).

        Every special token must be in the vocabulary file (ValueError otherwise); ids must be 0..V-1.
        """
        with open(vocab_path, encoding="utf-8") as f:
            try:
                token_to_id = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{os.fspath(vocab_path)!r} is not a GPT-2 vocabulary (invalid JSON: {e})") from None
        if not isinstance(token_to_id, dict) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in token_to_id.values()
        ):
            raise ValueError(f"{os.fspath(vocab_path)!r} must hold a JSON object token -> integer id")
        vocab: list[str | None] = [None] * len(token_to_id)
        for token, i in token_to_id.items():
            if not 0 <= i < len(vocab) or vocab[i] is not None:
                raise ValueError(
                    f"{os.fspath(vocab_path)!r}: ids must be 0..{len(vocab) - 1}, each used once; "
                    f"token {token!r} has id {i}"
                )
            vocab[i] = token
        with open(merges_path, encoding="utf-8") as f:
            lines = [line.rstrip("\r\n") for line in f]
        merges = [line for line in lines if line and not line.startswith("#version")]
        return cls(vocab, merges, special_tokens)  # type: ignore[arg-type]

    def save_gpt2_files(self, directory: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``vocab.json`` and ``merges.txt`` (the Hugging Face names) into ``directory``; returns both paths."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
        vocab_path.write_text(json.dumps(self.get_vocab(), ensure_ascii=False), encoding="utf-8")
        merges_path.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self._merges), encoding="utf-8")
        return vocab_path, merges_path

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The merges in rank order, as pairs of vocabulary strings (GPT-2 byte spelling)."""
        return list(self._merges)

    def token_bytes(self, i: int) -> bytes:
        """The bytes id ``i`` stands for (a special token: its UTF-8 text)."""
        raw = self._token_bytes[self._check_id(i)]
        return raw if raw is not None else self._vocab[i].encode("utf-8")

    # --- encoding -------------------------------------------------------------------------------------

    def _bpe(self, piece: str) -> list[int]:
        """Apply the merges to one pre-token: repeatedly fuse the adjacent pair of lowest rank (every
        occurrence of it, left to right) until no adjacent pair has a merge."""
        try:
            raw = piece.encode("utf-8")
        except UnicodeEncodeError as err:
            bad = piece[err.start]
            raise ValueError(
                f"text contains the lone surrogate U+{ord(bad):04X}, which has no UTF-8 encoding; byte-level BPE "
                "encodes valid Unicode text only (decode surrogate pairs first, e.g. with errors='surrogatepass')"
            ) from None
        ids = [self._byte_ids[b] for b in raw]
        if len(ids) > _LONG_PIECE:
            return self._merge_with_heap(ids)
        return self._merge_by_scanning(ids)

    def _merge_by_scanning(self, ids: list[int]) -> list[int]:
        """The textbook loop (GPT-2's encoder.py): scan for the lowest-rank pair, fuse it, repeat. O(n²)."""
        ranks = self._ranks
        while len(ids) > 1:
            best = None
            for pair in zip(ids, ids[1:]):
                found = ranks.get(pair)
                if found is not None and (best is None or found[0] < best[1][0]):
                    best = (pair, found)
            if best is None:
                break
            (a, b), (_, new_id) = best
            ids = _merge_pair(ids, a, b, new_id)
        return ids

    def _merge_with_heap(self, ids: list[int]) -> list[int]:
        """Same result in O(n log n) for long pre-tokens (a 1 MB word without spaces).

        The symbols form a linked list; a heap holds candidate merges ``(rank, position, a, b)``, so the
        lowest rank comes first and, within one rank, the leftmost position — the left-to-right order of the
        scanning loop. Popping an entry fuses a pair (the left node keeps the new id, the right node leaves
        the list) and pushes the two new neighbour pairs; entries whose nodes have changed since are skipped.
        The orders agree because a merge list is built so that a merge using a new token always ranks after
        the merge that made it.
        """
        ranks, n = self._ranks, len(ids)
        symbols = list(ids)  # -1 marks a node that left the list
        prev = list(range(-1, n - 1))
        nxt = [*range(1, n), -1]
        heap = []
        for i in range(n - 1):
            found = ranks.get((symbols[i], symbols[i + 1]))
            if found is not None:
                heap.append((found[0], i, symbols[i], symbols[i + 1]))
        heapq.heapify(heap)
        while heap:
            _, i, a, b = heapq.heappop(heap)
            j = nxt[i]
            if symbols[i] != a or j == -1 or symbols[j] != b:
                continue  # stale: one of the two nodes was fused since this entry was pushed
            new_id = ranks[(a, b)][1]
            symbols[i], symbols[j] = new_id, -1
            k = nxt[j]
            nxt[i] = k
            if k != -1:
                prev[k] = i
                found = ranks.get((new_id, symbols[k]))
                if found is not None:
                    heapq.heappush(heap, (found[0], i, new_id, symbols[k]))
            p = prev[i]
            if p != -1:
                found = ranks.get((symbols[p], new_id))
                if found is not None:
                    heapq.heappush(heap, (found[0], p, symbols[p], new_id))
        out, i = [], 0  # node 0 always survives: a fusion keeps its left node
        while i != -1:
            out.append(symbols[i])
            i = nxt[i]
        return out

    def _encode_chunk(self, text: str) -> list[int]:
        # Pre-tokens (" the", " of", ".") repeat, so each distinct one goes through the merges only once.
        cache, out = self._cache, []
        for piece in _GPT2_SPLIT.findall(text):
            ids = cache.get(piece)
            if ids is None:
                ids = self._bpe(piece)
                if len(cache) < _CACHE_LIMIT:
                    cache[piece] = ids
            out.extend(ids)
        return out

    def _tokenize(self, text: str) -> list[str]:
        vocab = self._vocab
        return [vocab[i] for i in self._encode_chunk(text)]

    # --- decoding -------------------------------------------------------------------------------------

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Concatenate the tokens' bytes (special tokens: their text) and decode as UTF-8.

        Byte sequences that are not valid UTF-8 (a multi-byte character cut by hand-picked ids) become
        U+FFFD, as in GPT-2's ``errors="replace"``; ids produced by :meth:`encode` always decode exactly.
        """
        specials, ids, token_bytes = self._special_map, self._ids, self._token_bytes
        raw = bytearray()
        for token in tokens:
            if token in specials:
                raw += token.encode("utf-8")
            else:
                raw += token_bytes[ids[token]]  # type: ignore[operator]
        return raw.decode("utf-8", errors="replace")

    # --- persistence ----------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {"merges": [f"{a} {b}" for a, b in self._merges]}

    @classmethod
    def _from_saved(cls, vocab, special_tokens, options, *, parse_special_tokens):
        options = dict(options)
        merges = options.pop("merges", None)
        if merges is None:
            raise ValueError("a saved BPE tokenizer needs options.merges (the merge list in rank order)")
        return cls(vocab, merges, special_tokens, parse_special_tokens=parse_special_tokens, **options)


def _spell_or_none(token: bytes | None) -> str | None:
    return None if token is None else bytes_to_gpt2_string(token)
