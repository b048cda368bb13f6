r"""Next-sentence prediction (NSP): BERT's sentence-pair objective — Devlin et al. 2019, §3.1 ("Task #2").

    IsNext   (label 0)   [CLS] the man went to the store [SEP] he bought milk [SEP]          B follows A
    NotNext  (label 1)   [CLS] the man went to the store [SEP] penguins are flightless [SEP]  B from another document

    token_type_ids        0    0   0    0   0   0    0     0    1    1      1     1

The classifier on [CLS] must tell the two apart. Labels follow Hugging Face's ``BertForPreTraining``: 0 means
"B is the continuation of A", 1 means "B is random".

How the pairs are built (:func:`make_nsp_pairs`, after Google's ``create_pretraining_data.py``)
--------------------------------------------------------------------------------------------
Documents are lists of sentences, sentences are lists of token ids. Each document is walked from its first
sentence; at sentence i:

1. **Chunk.** Take consecutive sentences i, i+1, … until they hold at least ``target`` tokens or the document
   ends, but always at least two sentences (``target = max_len - 3``; with probability ``short_seq_prob`` a
   shorter target, uniform in [2, max_len - 3], as BERT does to resemble short fine-tuning inputs).
2. **Split.** Segment A = the first k sentences of the chunk, k uniform in {1, …, len(chunk) - 1}.
3. **Label.** A fair coin from the generator, drawn for every pair independently of the data, so the classes
   are balanced 50/50 whatever the corpus looks like.
4. **Segment B.** IsNext: the rest of the chunk — the sentences that really follow A. NotNext: a document
   chosen uniformly among the *other* documents (never A's own, so B can never be A's true continuation), from
   a uniform start sentence, as many consecutive sentences as fill the remaining target (at least one). The
   true continuation it did not use is put back: the walk resumes right after A.
5. **Pack** as ``[CLS] A [SEP] B [SEP]`` and, while longer than ``max_len``, drop one token from the longer
   side (from B on a tie) — "longest first", the same rule as :meth:`Tokenizer.encode_pair`. Tokens are dropped
   from the end (``truncation="end"``) or, as in BERT, from the front or the end by a coin flip
   (``truncation="random"``).

A sentence that is the last of its document never starts a segment A: it has no true next sentence, and
forcing such an A to be NotNext (as the original script does for one-sentence chunks) skews the balance
towards NotNext. Empty sentences are skipped. "Another document" is judged by position in ``documents``: if
the corpus holds the same text twice, deduplicate it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

import torch
from torch import Tensor

from ..datasets.batching import pad_batch

__all__ = ["IS_NEXT", "NOT_NEXT", "NSPExample", "NSPBatch", "make_nsp_pairs", "pack_pair", "collate_nsp"]

IS_NEXT = 0  # B follows A (Hugging Face's BertForPreTraining convention)
NOT_NEXT = 1  # B comes from a different document

Truncation = Literal["end", "random"]


@dataclass(frozen=True)
class NSPExample:
    """One packed sentence pair.

    input_ids       ``[CLS] A [SEP] B [SEP]`` — at most ``max_len`` ids;
    token_type_ids  0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]`` (BERT's segment embeddings);
    label           :data:`IS_NEXT` (0) or :data:`NOT_NEXT` (1);
    a_doc, a_sentences   where A came from: document index and the sentence range [start, stop) in it;
    b_doc, b_sentences   the same for B (before truncation).
    """

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    label: int
    a_doc: int
    a_sentences: tuple[int, int]
    b_doc: int
    b_sentences: tuple[int, int]


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")
    return value


def _coin(generator: torch.Generator) -> float:
    """One U[0, 1) draw from ``generator``."""
    return float(torch.rand((), generator=generator, device=generator.device))


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """One uniform integer in [low, high] (both ends included)."""
    return int(torch.randint(low, high + 1, (), generator=generator, device=generator.device))


def _truncate_longest_first(
    a: list[int], b: list[int], budget: int, truncation: Truncation, generator: torch.Generator
) -> tuple[list[int], list[int]]:
    """Drop tokens from the longer of a and b (b on a tie) until len(a) + len(b) ≤ budget."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        longer = a if len(a) > len(b) else b
        if truncation == "random" and _coin(generator) < 0.5:
            del longer[0]  # BERT drops from the front half of the time, "to add more randomness"
        else:
            longer.pop()
    return a, b


def pack_pair(
    a: Sequence[int],
    b: Sequence[int],
    *,
    max_len: int,
    cls_id: int,
    sep_id: int,
    truncation: Truncation = "end",
    generator: torch.Generator | None = None,
) -> tuple[list[int], list[int]]:
    """``[CLS] a [SEP] b [SEP]`` and its segment ids, longest-first truncated to at most ``max_len`` ids.

    Returns (input_ids, token_type_ids), both lists of length ≤ max_len. ``truncation="random"`` needs a
    ``generator``. With max_len ≥ 5 and non-empty a and b, both sides keep at least one token.
    """
    _check_int("max_len", max_len, 5)
    if truncation not in ("end", "random"):
        raise ValueError(f'truncation must be "end" or "random", got {truncation!r}')
    if truncation == "random" and not isinstance(generator, torch.Generator):
        raise TypeError(f'truncation="random" needs generator= a torch.Generator, got {type(generator).__name__}')
    a, b = _truncate_longest_first(list(a), list(b), max_len - 3, truncation, generator)
    input_ids = [cls_id, *a, sep_id, *b, sep_id]
    token_type_ids = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    return input_ids, token_type_ids


def _clean_documents(documents) -> list[list[list[int]]]:
    """Validate documents -> sentences -> ids and drop empty sentences."""
    if isinstance(documents, (str, bytes, Tensor)) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a list of documents (lists of sentences), got {type(documents).__name__}")
    cleaned = []
    for d, doc in enumerate(documents):
        if isinstance(doc, (str, bytes)) or not isinstance(doc, Sequence):
            raise TypeError(f"documents[{d}] must be a list of sentences (lists of int ids), got {type(doc).__name__}")
        sentences = []
        for s, sentence in enumerate(doc):
            if isinstance(sentence, Tensor):
                sentence = sentence.tolist()
            if isinstance(sentence, (str, bytes)) or not isinstance(sentence, Sequence):
                raise TypeError(
                    f"documents[{d}][{s}] must be a list of int token ids, got {type(sentence).__name__} "
                    "(tokenize the text first)"
                )
            for i in sentence:
                if isinstance(i, bool) or not isinstance(i, int):
                    raise TypeError(f"documents[{d}][{s}] must contain int token ids, got {i!r}")
            if len(sentence) > 0:
                sentences.append(list(sentence))
        cleaned.append(sentences)
    return cleaned


def _check_nsp_options(
    max_len: int, cls_id: int, sep_id: int, generator: torch.Generator, short_seq_prob: float, truncation: Truncation
) -> None:
    """Raise a ValueError or TypeError naming the first bad option of :func:`make_nsp_pairs`."""
    _check_int("max_len", max_len, 5)
    _check_int("cls_id", cls_id, 0)
    _check_int("sep_id", sep_id, 0)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(short_seq_prob, bool) or not isinstance(short_seq_prob, (int, float)) or not 0 <= short_seq_prob <= 1:
        raise ValueError(f"short_seq_prob must be a probability in [0, 1], got {short_seq_prob!r}")
    if truncation not in ("end", "random"):
        raise ValueError(f'truncation must be "end" or "random", got {truncation!r}')


def _nsp_sources(docs: list[list[list[int]]]) -> list[int]:
    """Indices of the non-empty documents; raises unless there are two of them and one has two sentences."""
    sources = [d for d, doc in enumerate(docs) if len(doc) > 0]
    if len(sources) < 2:
        raise ValueError(
            f"NSP needs at least 2 non-empty documents (a NotNext segment must come from a different document), "
            f"got {len(sources)} of {len(docs)}"
        )
    if all(len(doc) < 2 for doc in docs):
        raise ValueError("NSP needs a document with at least 2 sentences (an IsNext pair needs a next sentence)")
    return sources


def _tokens(sentences: Sequence[list[int]]) -> list[int]:
    """The token ids of consecutive sentences, concatenated."""
    return [t for sentence in sentences for t in sentence]


def _chunk_end(doc: list[list[int]], i: int, target: int) -> int:
    """j such that sentences [i, j) hold at least two sentences and ``target`` tokens, or run to the document's end."""
    j, n_tokens = i + 1, len(doc[i])
    while j < len(doc) and (j < i + 2 or n_tokens < target):
        n_tokens += len(doc[j])
        j += 1
    return j


def _other_document_segment(
    docs: list[list[list[int]]], sources: list[int], own: int, room: int, generator: torch.Generator
) -> tuple[int, int, int]:
    """A NotNext segment B -> (document, start, stop): a document uniform among ``sources`` except the one at
    position ``own``, a uniform start sentence, and consecutive sentences until ``room`` tokens (at least one)."""
    # uniform over the other documents: draw k among len(sources) - 1 and skip over our own
    k = _randint(0, len(sources) - 2, generator)
    b_doc = sources[k] if k < own else sources[k + 1]
    other = docs[b_doc]
    b_start = _randint(0, len(other) - 1, generator)
    b_stop, n_b = b_start + 1, len(other[b_start])
    while b_stop < len(other) and n_b < room:
        n_b += len(other[b_stop])
        b_stop += 1
    return b_doc, b_start, b_stop


def make_nsp_pairs(
    documents: Sequence[Sequence[Sequence[int]]],
    *,
    max_len: int,
    cls_id: int,
    sep_id: int,
    generator: torch.Generator,
    short_seq_prob: float = 0.0,
    truncation: Truncation = "end",
) -> list[NSPExample]:
    """One pass over ``documents`` (document -> sentences -> token ids) making NSP pairs; see the module doc.

    Returns the pairs in corpus order (shuffle them when batching); call again with the same generator for
    another pass with different splits (BERT's ``dupe_factor``). Every draw comes from ``generator``.

    Raises ValueError when fewer than two documents have a sentence (NotNext pairs need another document),
    when no document has two sentences (IsNext pairs need a next sentence) or when max_len < 5.
    """
    _check_nsp_options(max_len, cls_id, sep_id, generator, short_seq_prob, truncation)
    docs = _clean_documents(documents)
    sources = _nsp_sources(docs)  # documents a NotNext B can come from
    budget = max_len - 3  # room for A and B next to [CLS], [SEP], [SEP]
    position_in_sources = {d: n for n, d in enumerate(sources)}
    examples: list[NSPExample] = []
    for d, doc in enumerate(docs):
        i = 0
        # Deviation: Google's script also starts a chunk at a document's last sentence and then forces the pair to
        # NotNext (and so does any one-sentence chunk), which tilts the labels towards NotNext. Here a chunk
        # always holds two sentences or more, so every pair can take either label and the coin alone decides.
        while i + 1 < len(doc):  # sentence i has a true next sentence
            target = budget
            if short_seq_prob > 0 and _coin(generator) < short_seq_prob:
                target = _randint(2, budget, generator)
            j = _chunk_end(doc, i, target)  # 1. chunk: sentences [i, j)
            # 2. split: A = sentences [i, a_stop), at least one sentence of the chunk left for B
            a_start, a_stop = i, _randint(i + 1, j - 1, generator)
            a = _tokens(doc[a_start:a_stop])
            is_next = _coin(generator) < 0.5  # 3. label: a fair coin, independent of the data
            # 4. segment B
            if is_next:
                b_doc, b_start, b_stop = d, a_stop, j  # the sentences that really follow A
                i = j
            else:
                room = target - len(a)
                b_doc, b_start, b_stop = _other_document_segment(docs, sources, position_in_sources[d], room, generator)
                i = a_stop  # put the unused true continuation back: the next A starts right after this one
            b = _tokens(docs[b_doc][b_start:b_stop])
            # 5. pack
            input_ids, token_type_ids = pack_pair(
                a, b, max_len=max_len, cls_id=cls_id, sep_id=sep_id, truncation=truncation, generator=generator
            )
            label = IS_NEXT if is_next else NOT_NEXT
            examples.append(
                NSPExample(
                    tuple(input_ids), tuple(token_type_ids), label, d, (a_start, a_stop), b_doc, (b_start, b_stop)
                )
            )
    return examples


@dataclass(frozen=True)
class NSPBatch:
    """A padded batch of NSP pairs.

    input_ids (B, L) long (padded with ``pad_id``) · token_type_ids (B, L) long (0 at padding) ·
    valid (B, L) bool (True at real tokens; feed it to :func:`masks.key_padding`) · nsp_labels (B,) long.
    """

    input_ids: Tensor
    token_type_ids: Tensor
    valid: Tensor
    nsp_labels: Tensor

    def to(self, device: torch.device | str) -> NSPBatch:
        """The same batch with every tensor moved to ``device``."""
        return NSPBatch(*(getattr(self, f.name).to(device) for f in fields(self)))


def collate_nsp(examples: Sequence[NSPExample], *, pad_id: int, max_len: int | None = None) -> NSPBatch:
    """Right-pad NSP examples into an :class:`NSPBatch` of length ``max_len`` or the longest example."""
    if isinstance(examples, Tensor) or not isinstance(examples, Sequence) or len(examples) == 0:
        raise ValueError("examples must be a non-empty list of NSPExample")
    for n, ex in enumerate(examples):
        if not isinstance(ex, NSPExample):
            raise TypeError(f"examples[{n}] must be an NSPExample, got {type(ex).__name__}")
    input_ids, valid = pad_batch([list(ex.input_ids) for ex in examples], pad_id, max_len=max_len)  # (B, L)
    token_type_ids, _ = pad_batch([list(ex.token_type_ids) for ex in examples], 0, max_len=max_len)  # (B, L)
    nsp_labels = torch.tensor([ex.label for ex in examples], dtype=torch.long)  # (B,)
    return NSPBatch(input_ids, token_type_ids, valid, nsp_labels)
