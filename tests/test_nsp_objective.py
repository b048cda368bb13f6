"""Next-sentence prediction pairs: 50/50 balance (±5σ), negatives never from A's document, positives that really
are the next sentences, packing ([CLS] A [SEP] B [SEP], segment ids, ≤ max_len) and longest-first truncation.

The test corpus gives every token occurrence its own id, so an id alone says which document, sentence and
position it came from: the checks below read the packed ids, not only the bookkeeping fields of NSPExample.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import cache

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.objectives import (
    IS_NEXT,
    NOT_NEXT,
    NSPExample,
    collate_nsp,
    make_nsp_pairs,
    mask_tokens,
    pack_pair,
)

PAD, CLS, SEP, MASK = 0, 1, 2, 3
FIRST_ID = 10  # content ids start here
SIGMAS = 5.0


def assert_binomial(count: int, n: int, p: float, what: str) -> None:
    z = (count - n * p) / math.sqrt(n * p * (1 - p))
    assert abs(z) <= SIGMAS, f"{what}: {count}/{n} = {count / n:.4f}, expected {p} (z = {z:+.2f})"


@cache
def unique_token_corpus(n_docs=300, max_sentences=8, max_sentence_len=14, seed=0):
    """Documents of 0–8 sentences of 1–14 tokens (plus a few empty sentences); every token id is distinct.

    Returns (documents, where) with where[id] = (document, sentence index after dropping empties, position).
    """
    g = torch.Generator().manual_seed(seed)
    documents, where, next_id = [], {}, FIRST_ID
    for d in range(n_docs):
        doc, kept = [], 0
        for _ in range(int(torch.randint(0, max_sentences + 1, (), generator=g))):
            if float(torch.rand((), generator=g)) < 0.03:
                doc.append([])  # empty sentences are skipped by make_nsp_pairs
                continue
            n = int(torch.randint(1, max_sentence_len + 1, (), generator=g))
            sentence = list(range(next_id, next_id + n))
            for pos, i in enumerate(sentence):
                where[i] = (d, kept, pos)
            next_id += n
            doc.append(sentence)
            kept += 1
        documents.append(doc)
    return documents, where


def split_pair(ex: NSPExample) -> tuple[list[int], list[int]]:
    """Check the [CLS] A [SEP] B [SEP] layout and its segment ids; return (A, B)."""
    ids, types = list(ex.input_ids), list(ex.token_type_ids)
    assert len(ids) == len(types)
    assert ids[0] == CLS and ids[-1] == SEP
    assert ids.count(SEP) == 2 and CLS not in ids[1:]
    first_sep = ids.index(SEP)
    a, b = ids[1:first_sep], ids[first_sep + 1 : -1]
    assert len(a) >= 1 and len(b) >= 1
    assert types == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    return a, b


def sentences_tokens(documents, d, span):
    cleaned = [s for s in documents[d] if s]
    return [t for sentence in cleaned[span[0] : span[1]] for t in sentence]


@cache
def many_pairs(max_len=32, passes=40, truncation="end", seed=0):
    documents, _ = unique_token_corpus()
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(passes):
        out += make_nsp_pairs(documents, max_len=max_len, cls_id=CLS, sep_id=SEP, generator=g, truncation=truncation)
    return tuple(out)


def test_labels_are_balanced_50_50():
    examples = many_pairs()
    assert len(examples) > 10_000
    assert_binomial(sum(ex.label == IS_NEXT for ex in examples), len(examples), 0.5, "IsNext")


def test_balance_holds_when_every_sentence_fills_the_budget():
    """Two long sentences per document: one sentence already fills max_len. Google's script forces every
    one-sentence chunk to NotNext, which would give ~100% NotNext here; ours stays 50/50."""
    g = torch.Generator().manual_seed(1)
    documents = [[[FIRST_ID + 3 * d] * 40, [FIRST_ID + 3 * d + 1] * 40, [FIRST_ID + 3 * d + 2] * 40] for d in range(50)]
    examples = []
    for _ in range(100):
        examples += make_nsp_pairs(documents, max_len=24, cls_id=CLS, sep_id=SEP, generator=g)
    assert len(examples) > 5_000
    assert_binomial(sum(ex.label == IS_NEXT for ex in examples), len(examples), 0.5, "IsNext")
    assert all(len(ex.input_ids) == 24 for ex in examples)


@pytest.mark.parametrize("truncation", ["end", "random"])
def test_negatives_never_come_from_the_same_document(truncation):
    """Exhaustive over every NotNext pair, read from the token ids themselves."""
    _, where = unique_token_corpus()
    negatives = [ex for ex in many_pairs(truncation=truncation) if ex.label == NOT_NEXT]
    assert len(negatives) > 5_000
    for ex in negatives:
        a, b = split_pair(ex)
        docs_a = {where[t][0] for t in a}
        docs_b = {where[t][0] for t in b}
        assert len(docs_a) == 1 and len(docs_b) == 1, "a segment mixes documents"
        assert docs_a != docs_b, f"NotNext segment B comes from A's own document {docs_a}"
        assert ex.b_doc != ex.a_doc and docs_b == {ex.b_doc}


def test_negative_documents_are_uniform_over_the_other_documents():
    """Each non-empty document other than A's is B's source with probability 1/(n_sources - 1)."""
    documents, _ = unique_token_corpus()
    sources = [d for d, doc in enumerate(documents) if any(doc)]
    negatives = [ex for ex in many_pairs() if ex.label == NOT_NEXT]
    assert {ex.b_doc for ex in negatives} == set(sources), "some document is never used for a NotNext B"
    as_a, as_b = Counter(ex.a_doc for ex in negatives), Counter(ex.b_doc for ex in negatives)
    for d in sources:
        trials = len(negatives) - as_a[d]  # pairs whose A is from another document
        assert_binomial(as_b[d], trials, 1 / (len(sources) - 1), f"document {d}")


def test_positives_are_the_true_next_sentences():
    """IsNext: A is a run of whole sentences from its start, B starts with the very next sentence of the same
    document and continues in order; with end truncation both are prefixes of their sentence runs."""
    documents, where = unique_token_corpus()
    positives = [ex for ex in many_pairs() if ex.label == IS_NEXT]
    assert len(positives) > 5_000
    for ex in positives:
        a, b = split_pair(ex)
        d, a_last_sentence, _ = where[a[0]]
        assert where[a[0]][2] == 0, "A does not start at a sentence boundary"
        assert a == sentences_tokens(documents, d, ex.a_sentences)[: len(a)]
        assert ex.a_doc == ex.b_doc == d and ex.b_sentences[0] == ex.a_sentences[1]
        assert where[b[0]] == (d, ex.a_sentences[1], 0), "B does not start with the sentence after A"
        assert b == sentences_tokens(documents, d, ex.b_sentences)[: len(b)]


def test_lengths_never_exceed_max_len_and_full_budget_is_used_when_available():
    documents, _ = unique_token_corpus()
    for max_len in (5, 9, 32):
        g = torch.Generator().manual_seed(max_len)
        examples = make_nsp_pairs(documents, max_len=max_len, cls_id=CLS, sep_id=SEP, generator=g)
        for ex in examples:
            a, b = split_pair(ex)
            assert len(ex.input_ids) <= max_len
            full_a = sentences_tokens(documents, ex.a_doc, ex.a_sentences)
            full_b = sentences_tokens(documents, ex.b_doc, ex.b_sentences)
            assert len(a) + len(b) == min(max_len - 3, len(full_a) + len(full_b))


def test_every_sentence_with_a_successor_starts_a_segment_a_across_passes():
    """The walk covers the corpus: every sentence that has a next sentence is the start of some A."""
    documents, _ = unique_token_corpus(n_docs=40)
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(30):
        examples = make_nsp_pairs(documents, max_len=20, cls_id=CLS, sep_id=SEP, generator=g)
        starts |= {(ex.a_doc, ex.a_sentences[0]) for ex in examples}
    expected = {(d, 0) for d, doc in enumerate(documents) if sum(1 for s in doc if s) >= 2}
    assert expected <= starts
    assert all(s < sum(1 for x in documents[d] if x) - 1 for d, s in starts), "a last sentence started an A"


def test_chunks_fill_the_budget_unless_the_document_ends():
    """IsNext chunks (A + B before truncation) hold at least max_len - 3 tokens or reach the document's end."""
    documents, _ = unique_token_corpus()
    for ex in many_pairs():
        if ex.label == IS_NEXT:
            n_sentences = sum(1 for s in documents[ex.a_doc] if s)
            chunk = sentences_tokens(documents, ex.a_doc, (ex.a_sentences[0], ex.b_sentences[1]))
            assert len(chunk) >= 32 - 3 or ex.b_sentences[1] == n_sentences


def test_short_seq_prob_makes_shorter_chunks():
    """Long documents of short sentences: without short_seq_prob nearly every pair fills max_len; with
    short_seq_prob = 1 the target is uniform in [2, max_len - 3], so pairs are about half as long."""
    documents = [[[FIRST_ID + 100 * d + s] * 3 for s in range(40)] for d in range(20)]
    lengths = {}
    for prob in (0.0, 1.0):
        g = torch.Generator().manual_seed(0)
        examples = make_nsp_pairs(documents, max_len=64, cls_id=CLS, sep_id=SEP, generator=g, short_seq_prob=prob)
        lengths[prob] = [len(ex.input_ids) for ex in examples]
    assert sum(lengths[0.0]) / len(lengths[0.0]) > 50
    assert 25 < sum(lengths[1.0]) / len(lengths[1.0]) < 45


def test_same_generator_gives_the_same_pairs():
    documents, _ = unique_token_corpus(n_docs=30)

    def pairs(seed):
        return make_nsp_pairs(
            documents, max_len=16, cls_id=CLS, sep_id=SEP, generator=torch.Generator().manual_seed(seed)
        )

    assert pairs(3) == pairs(3)
    assert pairs(3) != pairs(4)


# ------------------------------------------------------------------------------------------ truncation


def longest_first_lengths(la: int, lb: int, budget: int) -> tuple[int, int]:
    """Closed form of longest-first truncation (B shortened on a tie): the shorter side keeps its length if it
    fits in its half, the split is otherwise as even as possible with A getting the extra token."""
    if la + lb <= budget:
        return la, lb
    new_a = min(la, max(budget - lb, math.ceil(budget / 2)))
    return new_a, budget - new_a


@given(la=st.integers(1, 40), lb=st.integers(1, 40), max_len=st.integers(5, 50))
def test_truncation_shortens_the_longer_side_first(la, lb, max_len):
    a, b = list(range(100, 100 + la)), list(range(200, 200 + lb))
    ids, types = pack_pair(a, b, max_len=max_len, cls_id=CLS, sep_id=SEP)
    ex = NSPExample(tuple(ids), tuple(types), IS_NEXT, 0, (0, 1), 0, (1, 2))
    got_a, got_b = split_pair(ex)
    assert (len(got_a), len(got_b)) == longest_first_lengths(la, lb, max_len - 3)
    assert got_a == a[: len(got_a)] and got_b == b[: len(got_b)]  # dropped from the end


def test_truncation_examples():
    def lengths(la, lb, max_len):
        ids, _ = pack_pair([7] * la, [8] * lb, max_len=max_len, cls_id=CLS, sep_id=SEP)
        return ids.count(7), ids.count(8)

    assert lengths(10, 3, 10) == (4, 3)  # only the longer side loses tokens
    assert lengths(3, 10, 10) == (3, 4)
    assert lengths(6, 6, 10) == (4, 3)  # B first on a tie
    assert lengths(2, 2, 10) == (2, 2)  # fits: untouched


def test_random_truncation_drops_from_front_and_back_equally_often():
    g = torch.Generator().manual_seed(0)
    a, b = list(range(100, 130)), list(range(200, 203))
    front = back = 0
    for _ in range(400):
        ids, _ = pack_pair(a, b, max_len=16, cls_id=CLS, sep_id=SEP, truncation="random", generator=g)
        kept = ids[1 : ids.index(SEP)]
        assert len(kept) == 10 and kept == list(range(kept[0], kept[0] + 10))  # a contiguous slice of A
        assert ids[ids.index(SEP) + 1 : -1] == b  # the shorter side is untouched
        front += kept[0] - 100
        back += 130 - (kept[-1] + 1)
    assert_binomial(front, front + back, 0.5, "tokens dropped from the front")


# ------------------------------------------------------------------------------------------ batches


def test_collate_pads_and_keeps_labels_and_segments():
    examples = list(many_pairs()[:64])
    batch = collate_nsp(examples, pad_id=PAD)
    lengths = [len(ex.input_ids) for ex in examples]
    assert batch.input_ids.shape == batch.token_type_ids.shape == batch.valid.shape == (64, max(lengths))
    assert batch.nsp_labels.tolist() == [ex.label for ex in examples]
    for row, ex in enumerate(examples):
        n = len(ex.input_ids)
        assert batch.input_ids[row, :n].tolist() == list(ex.input_ids)
        assert batch.token_type_ids[row, :n].tolist() == list(ex.token_type_ids)
        assert batch.valid[row].tolist() == [True] * n + [False] * (max(lengths) - n)
        assert (batch.input_ids[row, n:] == PAD).all() and (batch.token_type_ids[row, n:] == 0).all()
    assert collate_nsp(examples, pad_id=PAD, max_len=40).input_ids.shape == (64, 40)


def test_nsp_batch_feeds_mask_tokens_without_touching_cls_sep_or_padding():
    examples = list(many_pairs())[:2000]
    batch = collate_nsp(examples, pad_id=PAD)
    vocab_size = max(max(ex.input_ids) for ex in examples) + 1
    out = mask_tokens(batch.input_ids, mask_id=MASK, vocab_size=vocab_size, special_ids={PAD, CLS, SEP},
                      valid=batch.valid, mlm_probability=1.0, generator=torch.Generator().manual_seed(0))  # fmt: skip
    content = batch.valid & (batch.input_ids >= FIRST_ID)
    assert torch.equal(out.selected, content)


# ------------------------------------------------------------------------------------------ errors


def test_errors_are_actionable():
    g = torch.Generator().manual_seed(0)
    two_docs = [[[10, 11], [12]], [[13], [14]]]
    with pytest.raises(ValueError, match="at least 2 non-empty documents"):
        make_nsp_pairs([[[10], [11]]], max_len=16, cls_id=CLS, sep_id=SEP, generator=g)
    with pytest.raises(ValueError, match="at least 2 non-empty documents"):
        make_nsp_pairs([[[10], [11]], [[]], []], max_len=16, cls_id=CLS, sep_id=SEP, generator=g)
    with pytest.raises(ValueError, match="at least 2 sentences"):
        make_nsp_pairs([[[10]], [[11]]], max_len=16, cls_id=CLS, sep_id=SEP, generator=g)
    with pytest.raises(ValueError, match="max_len must be an integer ≥ 5"):
        make_nsp_pairs(two_docs, max_len=4, cls_id=CLS, sep_id=SEP, generator=g)
    with pytest.raises(TypeError, match=r"documents\[0\]\[1\] must be a list of int token ids"):
        make_nsp_pairs([[[10], "a sentence"], [[12]]], max_len=16, cls_id=CLS, sep_id=SEP, generator=g)
    with pytest.raises(TypeError, match="generator"):
        make_nsp_pairs(two_docs, max_len=16, cls_id=CLS, sep_id=SEP, generator=0)
    with pytest.raises(ValueError, match="truncation"):
        make_nsp_pairs(two_docs, max_len=16, cls_id=CLS, sep_id=SEP, generator=g, truncation="front")
    with pytest.raises(TypeError, match="generator"):
        pack_pair([10], [11], max_len=8, cls_id=CLS, sep_id=SEP, truncation="random")
    with pytest.raises(ValueError, match="non-empty list"):
        collate_nsp([], pad_id=PAD)
