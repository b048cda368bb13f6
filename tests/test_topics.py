"""Topic classification of the Python documentation (datasets/topics.py): the mapping, the passage rules, the
document-level splits (disjoint, deterministic, stratified) and the class balance the data README states."""

from __future__ import annotations

import math

import pytest

from transformer_from_scratch.datasets.corpus import Document
from transformer_from_scratch.datasets.topics import (
    MODULE_TOPICS,
    TOPICS,
    TopicExample,
    class_balance,
    document_passages,
    make_topic_splits,
    split_documents,
    topic_of,
)


@pytest.fixture(scope="module")
def splits():
    return make_topic_splits()


def test_topic_of_follows_the_library_reference_chapters():
    assert topic_of("module:socket") == "network"  # Networking and Interprocess Communication
    assert topic_of("module:smtplib") == "network"  # Internet Protocols and Support
    assert topic_of("module:json") == "text"  # Internet Data Handling
    assert topic_of("module:csv") == "text"  # File Formats
    assert topic_of("module:tarfile") == "files"  # Data Compression and Archiving
    assert topic_of("module:statistics") == "math"
    assert topic_of("module:pdb") == "devtools"
    assert topic_of("topic:debugger") == "devtools"  # the pdb chapter, shown by help("debugger")
    assert topic_of("topic:integers") == "math"  # numeric literals
    assert topic_of("topic:with") == "language"
    assert topic_of("module:sys") is None  # Python Runtime Services: not used
    assert topic_of("module:tkinter") is None
    assert topic_of("notes.txt:1") is None
    with pytest.raises(TypeError, match="title must be a str"):
        topic_of(3)


def test_every_mapped_topic_is_a_known_topic_and_a_module_has_one_topic():
    assert set(MODULE_TOPICS.values()) <= set(TOPICS)
    # one topic per module: the dict would silently keep the last one, so count the chapter lists themselves
    from transformer_from_scratch.datasets.topics import _CHAPTERS

    names = [m for modules in _CHAPTERS.values() for m in modules]
    assert len(names) == len(set(names))


def test_labels_are_the_topic_of_the_document(splits):
    for part in (splits.train, splits.validation, splits.test):
        for example in part:
            assert isinstance(example, TopicExample)
            assert example.label == topic_of(example.title)
            assert TOPICS[example.label_id] == example.label


def test_splits_are_disjoint_by_document_and_by_text(splits):
    titles = [{e.title for e in part} for part in (splits.train, splits.validation, splits.test)]
    assert not titles[0] & titles[1] and not titles[0] & titles[2] and not titles[1] & titles[2]
    texts = [e.text for part in (splits.train, splits.validation, splits.test) for e in part]
    assert len(texts) == len(set(texts))


def test_splits_are_deterministic_and_the_seed_changes_the_held_out_documents(splits):
    again = make_topic_splits()
    assert again == splits
    other = make_topic_splits(seed=1)
    assert {e.title for e in other.test} != {e.title for e in splits.test}
    # the same passages, only assigned differently
    assert sorted(e.text for p in (other.train, other.validation, other.test) for e in p) == sorted(
        e.text for p in (splits.train, splits.validation, splits.test) for e in p
    )


def test_every_topic_is_held_out_in_the_stated_proportions(splits):
    train, validation, test = (class_balance(p) for p in (splits.train, splits.validation, splits.test))
    for topic in TOPICS:
        total = train[topic] + validation[topic] + test[topic]
        assert test[topic] >= 0.2 * total  # test takes documents until it holds ≥ test_fraction …
        assert validation[topic] >= 0.1 * total
        assert train[topic] >= 0.4 * total  # … and big documents cannot eat the training set
    # the test set is big enough for about ±2% standard error on an 80%-accurate classifier
    n_test = len(splits.test)
    assert math.sqrt(0.8 * 0.2 / n_test) < 0.02
    # no class dominates (the README states the measured balance); a majority baseline stays below 40%
    assert max(test.values()) / n_test < 0.4


def test_passage_rules_on_a_hand_made_document():
    long = " ".join(["word"] * 9) + "."  # 9 words
    doc = Document("module:x", ("One two three.", "Four five six.", long, "Seven eight nine.", "Ten eleven twelve."))
    # max 2 sentences, max 8 words: the 9-word sentence is dropped and closes the passage before it
    assert document_passages(doc, max_sentences=2, max_words=8) == [
        "One two three. Four five six.",
        "Seven eight nine. Ten eleven twelve.",
    ]
    assert document_passages(doc, max_sentences=1, max_words=8) == [
        "One two three.",
        "Four five six.",
        "Seven eight nine.",
        "Ten eleven twelve.",
    ]
    # words bound: 3 + 3 + 9 > 10, so the long sentence starts its own passage
    assert document_passages(doc, max_sentences=3, max_words=10) == [
        "One two three. Four five six.",
        long,
        "Seven eight nine. Ten eleven twelve.",
    ]
    # the cap keeps evenly spaced passages: 4 passages, cap 2 -> indices 0 and 2
    assert document_passages(doc, max_sentences=1, max_words=8, max_per_document=2) == [
        "One two three.",
        "Seven eight nine.",
    ]
    with pytest.raises(ValueError, match="max_words must be an int ≥ 1, got 0"):
        document_passages(doc, max_words=0)


def test_split_documents_is_greedy_per_topic():
    sizes = {f"module:m{i}": ("math", 10) for i in range(10)} | {f"topic:t{i}": ("language", 5) for i in range(4)}
    assignment = split_documents(sizes, validation_fraction=0.1, test_fraction=0.2, seed=0)
    math_splits = [assignment[f"module:m{i}"] for i in range(10)]
    assert math_splits.count("test") == 2 and math_splits.count("validation") == 1
    language = [assignment[f"topic:t{i}"] for i in range(4)]
    assert language.count("test") == 1 and language.count("validation") == 1 and language.count("train") == 2
    with pytest.raises(ValueError, match="validation_fraction \\+ test_fraction must be < 1"):
        split_documents(sizes, validation_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="test_fraction must be a number in \\[0, 1\\), got 1.5"):
        split_documents(sizes, test_fraction=1.5)


def test_class_balance_counts_every_topic():
    examples = [TopicExample("a", "math", "t"), TopicExample("b", "math", "t"), TopicExample("c", "text", "u")]
    assert class_balance(examples) == {t: {"math": 2, "text": 1}.get(t, 0) for t in TOPICS}
