r"""The one tokenizer interface every tokenizer in this package implements.

A tokenizer turns text into integer ids and back: ``text -> tokens (str) -> ids (int)``. This module
holds everything that does not depend on *how* text is cut into tokens, so that character, word,
WordPiece and byte-level BPE tokenizers differ only in two small methods.

Writing a tokenizer (what a subclass provides)
----------------------------------------------
::

    @register_tokenizer
    class MyTokenizer(Tokenizer):
        type_name = "mine"                                  # key in the registry and "type" in saved JSON

        def _tokenize(self, text: str) -> list[str]: ...    # plain text (no special tokens) -> tokens
        def convert_tokens_to_string(self, tokens) -> str:  # tokens (special ones possibly among them) -> text
        def _options(self) -> dict: ...                     # JSON-able constructor options (may be {})
        @classmethod
        def _from_saved(cls, vocab, special_tokens, options): ...   # rebuild from a saved file

Optional hooks: ``_encode_chunk(text) -> list[int]`` (override for speed, e.g. a per-word id cache;
default maps ``_tokenize`` through the vocabulary with ``[UNK]`` fallback) and
``build_inputs(ids_a, ids_b=None)`` (the special-token template, default BERT's).

The constructor of the base class takes the vocabulary ``vocab`` (a sequence of distinct strings;
the id of a token is its index) and a :class:`SpecialTokens` naming which vocabulary strings play the
special roles. Every special token must be in the vocabulary.

What a user gets (public API)
-----------------------------
``vocab_size``, ``len(tok)``                   number of ids, V
``special_tokens``                             dict token -> id, in role order (pad unk cls sep mask bos eos extra)
``pad_id unk_id cls_id sep_id mask_id bos_id eos_id``   an id, or None when the role is absent
``special_id(role)``                           the id of a role by name; ValueError for an unknown role
``token_to_id(token)`` / ``id_to_token(i)``    strict look-ups; ValueError naming the token / id and V
``tokenize(text)``                             text -> list[str]; special-token strings in the text stay whole
``encode(text, *, add_special_tokens=False)``  text -> list[int]; with specials: ``[CLS] x [SEP]``
``encode_pair(a, b, *, max_len=None)``         ``[CLS] a [SEP] b [SEP]`` -> :class:`PairEncoding` (ids, segment_ids)
``encode_batch(texts, *, text_pairs=None, max_len=None, padding="longest", truncation=False,
add_special_tokens=False)``                    -> :class:`EncodedBatch` of tensors: ids (B, L) long,
                                               valid (B, L) bool, allowed (B, 1, 1, L) bool, segment_ids
                                               (B, L) long, lengths (B,) long
``decode(ids, *, skip_special_tokens=False)``  list/1-D tensor of ids -> str; ValueError for ids outside [0, V)
``encode_file(path)``                          streams a text file line by line, yielding one id list per line
``save(path)`` / ``Tokenizer.load(path)``      plain JSON; ``load`` dispatches on the file's "type"

Saved format (UTF-8 JSON, human-readable)::

    {"type": "wordpiece", "version": 1,
     "vocab": ["[PAD]", "[UNK]", ...],                      # id = position in the list
     "special_tokens": {"pad": "[PAD]", "unk": "[UNK]", ...},   # role -> token string (absent roles omitted)
     "parse_special_tokens": true,
     "options": {...}}                                      # whatever the subclass's _options() returned

Conventions
-----------
* Special tokens written literally in the input text (``"[MASK]"``) are recognised as the special
  token, as Hugging Face tokenizers do, unless the tokenizer was built with
  ``parse_special_tokens=False``; matching is exact (case-sensitive, before any normalisation).
* Segment ids (BERT's token_type_ids): 0 for ``[CLS] a [SEP]``, 1 for ``b [SEP]``, 0 at padding.
* Truncation of pairs is "longest first" (BERT's default): one token at a time is dropped from the end
  of the currently longer side (from ``b`` on a tie) until the pair fits.
* Padding is on the right with ``pad_id``; masks come from :mod:`transformer_from_scratch.masks`.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import torch
from torch import Tensor

from .. import masks

__all__ = [
    "FORMAT_VERSION",
    "SpecialTokens",
    "BERT_SPECIAL_TOKENS",
    "PairEncoding",
    "EncodedBatch",
    "Tokenizer",
    "register_tokenizer",
    "tokenizer_types",
    "load_tokenizer",
    "read_lines",
    "count_tokens",
    "vocab_by_frequency",
]

FORMAT_VERSION = 1
Padding = Literal["longest", "max_length"] | bool
S = TypeVar("S")  # a symbol: a token string (WordPiece) or an id (BPE)


# ---------------------------------------------------------------------------------------------------
# Special tokens
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecialTokens:
    """Which token strings play the special roles. ``None`` means the tokenizer has no such token.

    Roles: ``pad`` (fills batches), ``unk`` (stands for anything out of the vocabulary), ``cls`` and
    ``sep`` (BERT's sequence start / separator), ``mask`` (MLM's hidden token), ``bos`` / ``eos``
    (begin / end of sequence for decoders), ``extra`` (further reserved strings, e.g. T5 sentinels).
    One string may fill several roles (GPT-2 uses ``<|endoftext|>`` as bos, eos and unk).
    """

    pad: str | None = "[PAD]"
    unk: str | None = "[UNK]"
    cls: str | None = "[CLS]"
    sep: str | None = "[SEP]"
    mask: str | None = "[MASK]"
    bos: str | None = None
    eos: str | None = None
    extra: tuple[str, ...] = ()

    ROLES: ClassVar[tuple[str, ...]] = ("pad", "unk", "cls", "sep", "mask", "bos", "eos")

    def __post_init__(self) -> None:
        for role in self.ROLES:
            value = getattr(self, role)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"special token for role {role!r} must be a non-empty string or None, got {value!r}")
        if isinstance(self.extra, str) or not all(isinstance(t, str) and t for t in self.extra):
            raise ValueError(f"extra special tokens must be a tuple of non-empty strings, got {self.extra!r}")
        object.__setattr__(self, "extra", tuple(self.extra))

    @classmethod
    def bert(cls) -> SpecialTokens:
        """``[PAD] [UNK] [CLS] [SEP] [MASK]`` — BERT's five."""
        return cls()

    @classmethod
    def none(cls) -> SpecialTokens:
        """No special tokens at all."""
        return cls(pad=None, unk=None, cls=None, sep=None, mask=None)

    @classmethod
    def from_dict(cls, roles: Mapping[str, Any]) -> SpecialTokens:
        """Build from ``{"pad": "[PAD]", ...}``; roles left out are absent (None, or () for extra).

        Raises ValueError naming any key that is not a known role — e.g. ``{"padding": ...}``.
        """
        known = (*cls.ROLES, "extra")
        unknown = sorted(set(roles) - set(known))
        if unknown:
            raise ValueError(f"unknown special-token role(s) {unknown}; known roles are {list(known)}")
        values: dict[str, Any] = {role: roles.get(role) for role in cls.ROLES}
        values["extra"] = tuple(roles.get("extra", ()))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Role -> token, omitting absent roles (the inverse of :meth:`from_dict`)."""
        out: dict[str, Any] = {role: getattr(self, role) for role in self.ROLES if getattr(self, role) is not None}
        if self.extra:
            out["extra"] = list(self.extra)
        return out

    def tokens(self) -> list[str]:
        """Distinct special-token strings in role order (pad, unk, cls, sep, mask, bos, eos, extra...)."""
        seen: dict[str, None] = {}
        for role in self.ROLES:
            value = getattr(self, role)
            if value is not None:
                seen.setdefault(value, None)
        for value in self.extra:
            seen.setdefault(value, None)
        return list(seen)


BERT_SPECIAL_TOKENS = SpecialTokens()  # [PAD] [UNK] [CLS] [SEP] [MASK]: the default of the trainers


def _as_special_tokens(special_tokens: SpecialTokens | Mapping[str, Any] | None) -> SpecialTokens:
    if special_tokens is None:
        return SpecialTokens.none()
    if isinstance(special_tokens, SpecialTokens):
        return special_tokens
    if isinstance(special_tokens, Mapping):
        return SpecialTokens.from_dict(special_tokens)
    raise TypeError(
        f"special_tokens must be a SpecialTokens, a dict role -> token, or None, got {type(special_tokens).__name__}"
    )


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairEncoding:
    """``[CLS] a [SEP] b [SEP]`` as ids, with BERT's segment ids (0 for ``[CLS] a [SEP]``, 1 for ``b [SEP]``)."""

    ids: list[int]
    segment_ids: list[int]


@dataclass(frozen=True)
class EncodedBatch:
    """A right-padded batch. Shapes: ids, valid, segment_ids (B, L) · allowed (B, 1, 1, L) · lengths (B,).

    ``valid`` is True at real tokens (special tokens included) and False at padding; ``allowed`` is
    ``masks.key_padding(valid)``, ready for attention (True = may attend).
    """

    ids: Tensor
    valid: Tensor
    allowed: Tensor
    segment_ids: Tensor
    lengths: Tensor

    def __len__(self) -> int:
        return self.ids.shape[0]


# ---------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------

_REGISTRY: dict[str, type[Tokenizer]] = {}


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make ``Tokenizer.load`` able to rebuild ``cls`` from files whose "type" is ``cls.type_name``."""
    name = getattr(cls, "type_name", "")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute type_name to be registered")
    existing = _REGISTRY.get(name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"tokenizer type {name!r} is already registered by {existing.__name__}")
    _REGISTRY[name] = cls
    return cls


def tokenizer_types() -> dict[str, type[Tokenizer]]:
    """A copy of the registry: saved "type" -> tokenizer class."""
    return dict(_REGISTRY)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load any saved tokenizer (same as ``Tokenizer.load(path)``)."""
    return Tokenizer.load(path)


# ---------------------------------------------------------------------------------------------------
# Helpers for trainers
# ---------------------------------------------------------------------------------------------------


def read_lines(path: str | os.PathLike, *, encoding: str = "utf-8", skip_blank: bool = False) -> Iterator[str]:
    """Yield the lines of a text file one at a time (newline stripped) without reading it whole.

    Feed this to a trainer (``WordTokenizer.train(read_lines("big.txt"))``) to train on a file larger
    than memory.
    """
    with open(path, encoding=encoding) as f:
        for line in f:
            line = line.rstrip("\r\n")
            if skip_blank and not line.strip():
                continue
            yield line


def count_tokens(texts: Iterable[str], tokenize: Callable[[str], Iterable[str]]) -> Counter[str]:
    """Count tokens over a corpus. Raises ValueError if ``texts`` is a bare string or yields no text at all."""
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings (e.g. a list or read_lines(path)), not one string")
    counts: Counter[str] = Counter()
    n_texts = 0
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must yield strings, got {type(text).__name__}")
        n_texts += 1
        counts.update(tokenize(text))
    if n_texts == 0 or not counts:
        raise ValueError(f"cannot train on an empty corpus: got {n_texts} text(s) and no tokens")
    return counts


def vocab_by_frequency(
    counts: Mapping[str, int], *, min_freq: int = 1, max_size: int | None = None, reserved: Sequence[str] = ()
) -> list[str]:
    """``reserved`` first (in order), then tokens with count ≥ ``min_freq`` by count desc, then the token.

    The ordering is total, so the same counts always give the same vocabulary. ``max_size`` bounds the
    whole vocabulary, reserved tokens included.
    """
    if not isinstance(min_freq, int) or min_freq < 1:
        raise ValueError(f"min_freq must be an integer ≥ 1, got {min_freq!r}")
    if max_size is not None and (not isinstance(max_size, int) or max_size < len(reserved)):
        raise ValueError(f"max_size={max_size!r} must be an integer ≥ the {len(reserved)} reserved (special) tokens")
    vocab = list(dict.fromkeys(reserved))
    taken = set(vocab)
    ranked = sorted((t for t, c in counts.items() if c >= min_freq and t not in taken), key=lambda t: (-counts[t], t))
    if max_size is not None:
        ranked = ranked[: max_size - len(vocab)]
    return vocab + ranked


def _merge_pair(symbols: Sequence[S], a: S, b: S, merged: S) -> list[S]:
    """``symbols`` with every adjacent (a, b) replaced by ``merged``, left to right: a a a -> [aa, a]."""
    out: list[S] = []
    i, n = 0, len(symbols)
    while i < n:
        if i + 1 < n and symbols[i] == a and symbols[i + 1] == b:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


# ---------------------------------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------------------------------


class Tokenizer(ABC):
    """Abstract tokenizer: a vocabulary (id = index), special tokens, and a way to cut text into tokens.

    See the module docstring for the full API, the saved format and how to write a subclass.
    """

    type_name: ClassVar[str] = ""

    def __init__(
        self,
        vocab: Sequence[str],
        special_tokens: SpecialTokens | Mapping[str, Any] | None = None,
        *,
        parse_special_tokens: bool = True,
    ) -> None:
        if isinstance(vocab, str) or not isinstance(vocab, Sequence):
            raise TypeError(f"vocab must be a sequence of token strings, got {type(vocab).__name__}")
        vocab = list(vocab)
        if not vocab:
            raise ValueError("vocab is empty; a tokenizer needs at least one token")
        ids: dict[str, int] = {}
        for i, token in enumerate(vocab):
            if not isinstance(token, str):
                raise TypeError(f"vocab entries must be strings, got {type(token).__name__} at id {i}")
            if token in ids:
                raise ValueError(f"vocab has a duplicate token {token!r} at ids {ids[token]} and {i}")
            ids[token] = i
        self._vocab: list[str] = vocab
        self._ids: dict[str, int] = ids
        self._special = _as_special_tokens(special_tokens)
        missing = [t for t in self._special.tokens() if t not in ids]
        if missing:
            raise ValueError(
                f"special token(s) {missing} are not in the vocabulary (size {len(vocab)}); "
                "add them to the vocabulary or pass special_tokens naming tokens it contains"
            )
        self.parse_special_tokens = bool(parse_special_tokens)
        self._special_map = {t: ids[t] for t in self._special.tokens()}
        self._special_id_set = frozenset(self._special_map.values())
        # Longest first, so "[CLS]x" never matches a shorter special that is a prefix of a longer one.
        specials = sorted(self._special_map, key=lambda t: (-len(t), t))
        self._special_re = re.compile("|".join(re.escape(t) for t in specials)) if specials else None

    # --- what a subclass provides -------------------------------------------------------------------

    @abstractmethod
    def _tokenize(self, text: str) -> list[str]:
        """Plain text (containing no special tokens) -> tokens. Unknown tokens may be returned as-is."""

    @abstractmethod
    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Tokens -> text. Special tokens may appear among them and should come out verbatim."""

    def _options(self) -> dict[str, Any]:
        """JSON-able options needed to rebuild this tokenizer (stored under "options")."""
        return {}

    @classmethod
    def _from_saved(
        cls, vocab: list[str], special_tokens: SpecialTokens, options: dict[str, Any], *, parse_special_tokens: bool
    ) -> Tokenizer:
        """Rebuild from the saved fields. The default passes ``options`` as keyword arguments."""
        return cls(vocab, special_tokens, parse_special_tokens=parse_special_tokens, **options)

    def _encode_chunk(self, text: str) -> list[int]:
        """Plain text (no special tokens) -> ids. Override for speed; the default maps :meth:`_tokenize`."""
        return [self._id_or_unk(t) for t in self._tokenize(text)]

    # --- vocabulary ----------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """V, the number of ids (special tokens included)."""
        return len(self._vocab)

    def __len__(self) -> int:
        return len(self._vocab)

    @property
    def vocab(self) -> list[str]:
        """A copy of the vocabulary: ``vocab[i]`` is the token of id i."""
        return list(self._vocab)

    def get_vocab(self) -> dict[str, int]:
        """A copy of the token -> id map."""
        return dict(self._ids)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, special_tokens={list(self._special_map)})"

    def token_to_id(self, token: str) -> int:
        """The id of ``token``; ValueError if it is not in the vocabulary (no silent ``[UNK]``)."""
        try:
            return self._ids[token]
        except KeyError:
            raise ValueError(f"token {token!r} is not in the vocabulary (size {self.vocab_size})") from None
        except TypeError:
            raise TypeError(f"token must be a string, got {type(token).__name__}") from None

    def id_to_token(self, i: int) -> str:
        """The token of id ``i``; ValueError if ``i`` is outside [0, vocab_size)."""
        self._check_id(i)
        return self._vocab[i]

    def _check_id(self, i: Any) -> int:
        if isinstance(i, bool) or not isinstance(i, int):
            if isinstance(i, Tensor) and i.dim() == 0 and not i.dtype.is_floating_point and i.dtype != torch.bool:
                i = int(i)
            elif hasattr(i, "__index__") and not isinstance(i, bool):
                i = i.__index__()
            else:
                raise TypeError(f"token ids must be integers, got {i!r} of type {type(i).__name__}")
        if not 0 <= i < len(self._vocab):
            raise ValueError(f"token id {i} is outside the vocabulary of size {len(self._vocab)}")
        return i

    def _id_or_unk(self, token: str) -> int:
        i = self._ids.get(token)
        if i is not None:
            return i
        unk = self.unk_id
        if unk is None:
            raise ValueError(
                f"token {token!r} is not in the vocabulary (size {self.vocab_size}) and this tokenizer has no unk "
                "token; train with an unk special token or on text covering this input"
            )
        return unk

    # --- special tokens ------------------------------------------------------------------------------

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token -> id, in role order (pad, unk, cls, sep, mask, bos, eos, extra)."""
        return dict(self._special_map)

    @property
    def special_token_roles(self) -> SpecialTokens:
        """The :class:`SpecialTokens` naming which strings fill which role."""
        return self._special

    @property
    def special_ids(self) -> frozenset[int]:
        return self._special_id_set

    def special_id(self, role: str) -> int | None:
        """The id of the token filling ``role`` ("pad", "unk", "cls", "sep", "mask", "bos", "eos"), or None."""
        if role not in SpecialTokens.ROLES:
            raise ValueError(f"unknown special-token role {role!r}; known roles are {list(SpecialTokens.ROLES)}")
        token = getattr(self._special, role)
        return None if token is None else self._ids[token]

    pad_id = property(lambda self: self.special_id("pad"), doc="id of the padding token, or None")
    unk_id = property(lambda self: self.special_id("unk"), doc="id of the unknown token, or None")
    cls_id = property(lambda self: self.special_id("cls"), doc="id of [CLS], or None")
    sep_id = property(lambda self: self.special_id("sep"), doc="id of [SEP], or None")
    mask_id = property(lambda self: self.special_id("mask"), doc="id of [MASK], or None")
    bos_id = property(lambda self: self.special_id("bos"), doc="id of the begin-of-sequence token, or None")
    eos_id = property(lambda self: self.special_id("eos"), doc="id of the end-of-sequence token, or None")

    # --- text -> tokens / ids ------------------------------------------------------------------------

    def _chunks(self, text: str) -> Iterator[tuple[str, bool]]:
        """Split ``text`` around literal special tokens: yields (piece, is_special)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self._special_re is None or not self.parse_special_tokens:
            yield text, False
            return
        start = 0
        for m in self._special_re.finditer(text):
            if m.start() > start:
                yield text[start : m.start()], False
            yield m.group(), True
            start = m.end()
        if start < len(text) or start == 0:
            yield text[start:], False

    def tokenize(self, text: str) -> list[str]:
        """Text -> tokens (strings), without adding special tokens. Literal special tokens stay whole."""
        out: list[str] = []
        for piece, special in self._chunks(text):
            if special:
                out.append(piece)
            elif piece:
                out.extend(self._tokenize(piece))
        return out

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Text -> ids. With ``add_special_tokens`` the template of :meth:`build_inputs` is applied."""
        ids: list[int] = []
        for piece, special in self._chunks(text):
            if special:
                ids.append(self._special_map[piece])
            elif piece:
                ids.extend(self._encode_chunk(piece))
        if add_special_tokens:
            ids = self.build_inputs(ids)[0]
        return ids

    def build_inputs(self, ids_a: list[int], ids_b: list[int] | None = None) -> tuple[list[int], list[int]]:
        """Add the special-token template; returns (ids, segment_ids).

        Single: ``[CLS] a [SEP]`` when the tokenizer has cls and sep, else ``bos a eos`` with whichever of
        bos/eos exists (or ``a`` unchanged). Pair: ``[CLS] a [SEP] b [SEP]``, segments 0…0 1…1.
        """
        cls_id, sep_id = self.cls_id, self.sep_id
        if ids_b is None:
            if cls_id is not None and sep_id is not None:
                ids = [cls_id, *ids_a, sep_id]
            else:
                bos, eos = self.bos_id, self.eos_id
                ids = ([bos] if bos is not None else []) + list(ids_a) + ([eos] if eos is not None else [])
            return ids, [0] * len(ids)
        if cls_id is None or sep_id is None:
            raise ValueError(
                f"pair encoding needs cls and sep special tokens; this tokenizer has cls={self._special.cls!r}, "
                f"sep={self._special.sep!r}"
            )
        ids = [cls_id, *ids_a, sep_id, *ids_b, sep_id]
        return ids, [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many ids :meth:`build_inputs` adds (3 for a BERT pair, 2 for a single sequence)."""
        return len(self.build_inputs([], [] if pair else None)[0])

    def encode_pair(
        self, text_a: str, text_b: str, *, max_len: int | None = None, truncation: bool = True
    ) -> PairEncoding:
        """``[CLS] a [SEP] b [SEP]`` with segment ids; longest-first truncation to ``max_len`` if given.

        With ``truncation=False`` a pair longer than ``max_len`` raises ValueError instead.
        """
        ids_a, ids_b = self.encode(text_a), self.encode(text_b)
        if max_len is not None:
            ids_a, ids_b = self._fit_pair(ids_a, ids_b, max_len, truncation)
        ids, segments = self.build_inputs(ids_a, ids_b)
        return PairEncoding(ids, segments)

    def _fit_pair(self, ids_a: list[int], ids_b: list[int], max_len: int, truncation: bool):
        _check_max_len(max_len)
        budget = max_len - self.num_special_tokens_to_add(pair=True)
        if budget < 0:
            raise ValueError(f"max_len={max_len} is too small for the {max_len - budget} special tokens of a pair")
        if len(ids_a) + len(ids_b) <= budget:
            return ids_a, ids_b
        if not truncation:
            raise ValueError(
                f"pair length {len(ids_a) + len(ids_b) + max_len - budget} exceeds max_len={max_len}; "
                "pass truncation=True or a larger max_len"
            )
        # Longest first: drop one token at a time from the longer side (b on a tie), as BERT does.
        n_a, n_b = len(ids_a), len(ids_b)
        while n_a + n_b > budget:
            if n_a > n_b:
                n_a -= 1
            else:
                n_b -= 1
        return ids_a[:n_a], ids_b[:n_b]

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        text_pairs: Sequence[str] | None = None,
        max_len: int | None = None,
        padding: Padding = "longest",
        truncation: bool = False,
        add_special_tokens: bool = False,
    ) -> EncodedBatch:
        """Encode B texts (or B pairs) into one right-padded :class:`EncodedBatch`.

        padding: "longest" (pad to the longest row), "max_length" (pad to ``max_len``) or False (rows must
        already have equal length). truncation: cut rows longer than ``max_len`` (singles keep their first
        tokens, then specials are added; pairs are cut longest-first); without it a row longer than
        ``max_len`` is a ValueError. Pairs (``text_pairs``) always use ``[CLS] a [SEP] b [SEP]``.
        """
        texts, padding = _check_batch_options(texts, padding, max_len, truncation)
        if text_pairs is not None:
            rows, segs = self._encode_pairs(texts, text_pairs, max_len, truncation)
        else:
            rows, segs = self._encode_singles(texts, max_len, truncation, add_special_tokens)
        return self._pad_rows(rows, segs, _batch_width([len(r) for r in rows], padding, max_len))

    def _encode_pairs(
        self, texts: list[str], text_pairs: Sequence[str], max_len: int | None, truncation: bool
    ) -> tuple[list[list[int]], list[list[int]]]:
        """(ids, segment ids) of ``[CLS] a [SEP] b [SEP]`` for each pair (a, b) of texts and text_pairs."""
        if isinstance(text_pairs, str):
            raise TypeError("text_pairs must be a sequence of strings, one per text")
        text_pairs = list(text_pairs)
        if len(text_pairs) != len(texts):
            raise ValueError(f"text_pairs has {len(text_pairs)} entries but texts has {len(texts)}")
        pairs = [self.encode_pair(a, b, max_len=max_len, truncation=truncation) for a, b in zip(texts, text_pairs)]
        return [pair.ids for pair in pairs], [pair.segment_ids for pair in pairs]

    def _encode_singles(
        self, texts: list[str], max_len: int | None, truncation: bool, add_special_tokens: bool
    ) -> tuple[list[list[int]], list[list[int]]]:
        """(ids, segment ids) of each text, cut to fit ``max_len`` with its special tokens, which are then added."""
        n_special = self.num_special_tokens_to_add() if add_special_tokens else 0
        rows: list[list[int]] = []
        segs: list[list[int]] = []
        for text in texts:
            ids = _fit_single(self.encode(text), n_special, max_len, truncation)
            if add_special_tokens:
                ids, seg = self.build_inputs(ids)
            else:
                seg = [0] * len(ids)
            rows.append(ids)
            segs.append(seg)
        return rows, segs

    def _pad_rows(self, rows: list[list[int]], segs: list[list[int]], width: int) -> EncodedBatch:
        """Right-pad the rows (ids with ``pad_id``, segment ids with 0) to ``width`` and build the masks."""
        lengths = [len(r) for r in rows]
        if width > min(lengths) and self.pad_id is None:
            raise ValueError("padding needs a pad special token, but this tokenizer has none")
        pad = self.pad_id if self.pad_id is not None else 0
        ids_t = torch.full((len(rows), width), pad, dtype=torch.long)  # (B, L)
        seg_t = torch.zeros((len(rows), width), dtype=torch.long)  # (B, L)
        for b, (row, seg) in enumerate(zip(rows, segs)):
            ids_t[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            seg_t[b, : len(seg)] = torch.tensor(seg, dtype=torch.long)
        lengths_t = torch.tensor(lengths, dtype=torch.long)  # (B,)
        valid = masks.padding_mask_from_lengths(lengths_t, width)  # (B, L), True at real tokens
        allowed = masks.key_padding(valid)  # (B, 1, 1, L)
        return EncodedBatch(ids=ids_t, valid=valid, allowed=allowed, segment_ids=seg_t, lengths=lengths_t)

    def encode_file(
        self,
        path: str | os.PathLike,
        *,
        add_special_tokens: bool = False,
        skip_blank: bool = True,
        encoding: str = "utf-8",
    ) -> Iterator[list[int]]:
        """Stream ``path`` line by line (never reading it whole), yielding ``encode(line)`` per line."""
        for line in read_lines(path, encoding=encoding, skip_blank=skip_blank):
            yield self.encode(line, add_special_tokens=add_special_tokens)

    # --- ids -> text ---------------------------------------------------------------------------------

    def convert_ids_to_tokens(self, ids: Iterable[int] | Tensor) -> list[str]:
        """Ids -> token strings; ValueError for any id outside [0, vocab_size)."""
        return [self._vocab[self._check_id(i)] for i in _as_id_list(ids)]

    def decode(self, ids: Iterable[int] | Tensor, *, skip_special_tokens: bool = False) -> str:
        """Ids -> text. ValueError names the first id outside [0, vocab_size)."""
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in self._special_map]
        return self.convert_tokens_to_string(tokens)

    # --- persistence ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able saved form (see the module docstring)."""
        return {
            "type": self.type_name,
            "version": FORMAT_VERSION,
            "vocab": list(self._vocab),
            "special_tokens": self._special.to_dict(),
            "parse_special_tokens": self.parse_special_tokens,
            "options": self._options(),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to ``path`` as UTF-8 JSON (atomically: a temporary file, then a rename)."""
        data = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tokenizer:
        """Rebuild from :meth:`to_dict`'s form, dispatching on "type" through the registry."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a saved tokenizer is a JSON object, got {type(data).__name__}")
        for key in ("type", "version", "vocab"):
            if key not in data:
                raise ValueError(f"saved tokenizer lacks the required field {key!r}")
        if data["version"] != FORMAT_VERSION:
            raise ValueError(
                f"saved tokenizer has format version {data['version']!r}; this code reads version {FORMAT_VERSION}"
            )
        kind = data["type"]
        target = _REGISTRY.get(kind)
        if target is None:
            raise ValueError(f"unknown tokenizer type {kind!r}; registered types are {sorted(_REGISTRY)}")
        if cls is not Tokenizer and not issubclass(target, cls):
            raise ValueError(f"{cls.__name__}.load got a saved tokenizer of type {kind!r} ({target.__name__})")
        return target._from_saved(
            list(data["vocab"]),
            SpecialTokens.from_dict(data.get("special_tokens", {})),
            dict(data.get("options", {})),
            parse_special_tokens=bool(data.get("parse_special_tokens", True)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a file written by :meth:`save`; works on the base class (any type) or a subclass (that type)."""
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{os.fspath(path)!r} is not a saved tokenizer (invalid JSON: {e})") from None
        return cls.from_dict(data)


def _check_max_len(max_len: Any) -> None:
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 0:
        raise ValueError(f"max_len must be a non-negative integer, got {max_len!r}")


def _check_batch_options(
    texts: Sequence[str], padding: Padding, max_len: int | None, truncation: bool
) -> tuple[list[str], Padding]:
    """Validate :meth:`Tokenizer.encode_batch`'s options -> (texts as a list, padding with True read as "longest")."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings; for one text use encode() or pass [text]")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty; encode_batch needs at least one text")
    if padding not in ("longest", "max_length", False, True):
        raise ValueError(f"padding must be 'longest', 'max_length' or False, got {padding!r}")
    padding = "longest" if padding is True else padding
    if max_len is not None:
        _check_max_len(max_len)
    if padding == "max_length" and max_len is None:
        raise ValueError("padding='max_length' needs max_len")
    if truncation and max_len is None:
        raise ValueError("truncation=True needs max_len")
    return texts, padding


def _fit_single(ids: list[int], n_special: int, max_len: int | None, truncation: bool) -> list[int]:
    """``ids`` cut so that with its ``n_special`` special tokens it holds at most ``max_len`` ids (if truncating)."""
    if max_len is None or len(ids) + n_special <= max_len:
        return ids
    if not truncation:
        raise ValueError(
            f"sequence length {len(ids) + n_special} exceeds max_len={max_len}; "
            "pass truncation=True or a larger max_len"
        )
    if max_len < n_special:
        raise ValueError(f"max_len={max_len} is smaller than the {n_special} special tokens added")
    return ids[: max_len - n_special]


def _batch_width(lengths: list[int], padding: Padding, max_len: int | None) -> int:
    """L, the padded length of a batch whose rows have ``lengths``: max_len, the longest row, or the common length."""
    if padding == "max_length":
        return max_len
    if padding == "longest":
        return max(lengths)
    if len(set(lengths)) > 1:
        raise ValueError(f"padding=False needs rows of equal length, got lengths {lengths}; use padding='longest'")
    return lengths[0]


def _as_id_list(ids: Iterable[int] | Tensor) -> list:
    if isinstance(ids, Tensor):
        if ids.dim() != 1:
            raise ValueError(f"decode takes a 1-D sequence of ids, got a tensor of shape {tuple(ids.shape)}")
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise TypeError(f"ids must be an integer tensor, got {ids.dtype}")
        return ids.tolist()
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"ids must be a sequence of integers, got {type(ids).__name__}")
    return list(ids)
