"""The Python documentation corpus (build rules, determinism, splits, manifest, cache) and the loaders of the
user's text files. The real corpus is built once per session into a temporary cache; the cache mechanics are
tested with a tiny stand-in builder, so that corrupting and rebuilding costs nothing."""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import types
from pathlib import Path

import pytest

from transformer_from_scratch.datasets import corpus as corpus_module
from transformer_from_scratch.datasets.corpus import (
    SPLITS,
    Corpus,
    Document,
    build_python_docs_corpus,
    corpus_cache_dir,
    corpus_manifest,
    document_split,
    iter_lines,
    load_python_docs_corpus,
    load_text_file,
    load_text_folder,
    prose_paragraphs,
    split_corpus,
    split_sentences,
)

DATA = Path(__file__).resolve().parent.parent / "data"

# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def docs_cache(tmp_path_factory):
    """A cache root holding the real corpus, built once for the whole session; yields (root, build seconds)."""
    root = tmp_path_factory.mktemp("tfs-cache")
    start = time.perf_counter()
    corpus_manifest(root)
    return root, time.perf_counter() - start


@pytest.fixture(scope="session")
def docs_splits(docs_cache):
    root, _ = docs_cache
    return {name: load_python_docs_corpus(name, root) for name in (*SPLITS, "all")}


def jsonl_bytes(corpus: Corpus) -> bytes:
    """The split file format, written out here independently: one compact JSON object per document and line."""
    rows = [{"title": d.title, "sentences": list(d.sentences)} for d in corpus.documents]
    return "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows).encode("utf-8")


# ------------------------------------------------------------------------------------ sentence splitting


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One sentence. Another one.", ["One sentence.", "Another one."]),
        ("Use a list, e.g. [1, 2]. It grows.", ["Use a list, e.g. [1, 2].", "It grows."]),  # e.g. never ends one
        ("That is, i.e. This stays.", ["That is, i.e. This stays."]),
        ("Lists, tuples, etc. They differ.", ["Lists, tuples, etc.", "They differ."]),  # etc. before a capital ends
        ("Lists, tuples, etc. and more.", ["Lists, tuples, etc. and more."]),  # … and not before a lowercase word
        ("Written by J. R. Smith. Done.", ["Written by J. R. Smith.", "Done."]),  # initials
        ("Really? Yes! Fine.", ["Really?", "Yes!", "Fine."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),  # closing quote stays with it
        ("(See the manual.) The end.", ["(See the manual.)", "The end."]),
        ("Call os.path.join() here. It joins.", ["Call os.path.join() here.", "It joins."]),  # dots inside a word
        ("New in version 3.8. It works.", ["New in version 3.8.", "It works."]),
        ("The value 2.5 is fine.", ["The value 2.5 is fine."]),
        ('Set it. "Len" follows.', ["Set it.", '"Len" follows.']),  # opening quote before the next word
        ('Set it. "len()" runs.', ['Set it. "len()" runs.']),  # the documented limit: a lowercase start
        ("A line\n  wrapped   here. Next.", ["A line wrapped here.", "Next."]),  # whitespace collapsed
        ("", []),
    ],
)
def test_split_sentences_rule(text, expected):
    assert split_sentences(text) == expected


def test_split_sentences_rejects_non_text():
    with pytest.raises(TypeError, match="text must be a str"):
        split_sentences(b"bytes.")


def test_prose_paragraphs_keeps_prose_and_drops_code_tables_and_headings():
    text = """The "assert" statement
**********************

Assert statements are a convenient way to insert debugging
assertions into a program.  They are built-
in to the language.

   assert_stmt ::= "assert" expression ["," expression]

>>> assert 1 + 1 == 2
>>> x = 3

Function            Description
mean                Arithmetic mean (average) of data.

Some options:
  - The first option is :func:`len` with ``x``.
  - The *second* one.
  - a lowercase fragment, not a sentence

x = compute(1, 2)
"""
    assert prose_paragraphs(text) == [
        "Assert statements are a convenient way to insert debugging assertions into a program. They are built-in "
        "to the language.",
        "Some options:",
        'The first option is len with "x".',
        "The second one.",
    ]


# --------------------------------------------------------------------------------------- the real corpus


def test_corpus_builds_quickly_and_identically(docs_cache, docs_splits):
    """Two builds in one session give identical documents; the checksums in the manifest are those of a fresh
    build (so the numbers recorded in data/README.md are reproducible)."""
    _, first_build_seconds = docs_cache
    start = time.perf_counter()
    fresh = build_python_docs_corpus()
    seconds = time.perf_counter() - start
    assert fresh.documents == docs_splits["all"].documents
    root, _ = docs_cache
    manifest = corpus_manifest(root)
    for name, part in split_corpus(fresh).items():
        assert hashlib.sha256(jsonl_bytes(part)).hexdigest() == manifest["splits"][name]["sha256"]
    # "a few seconds" on a laptop; generous bounds because CI machines are shared
    assert first_build_seconds < 60 and seconds < 60, (first_build_seconds, seconds)


def test_corpus_content_follows_the_build_rules(docs_splits):
    corpus = docs_splits["all"]
    titles = [d.title for d in corpus.documents]
    assert titles == sorted(titles) and len(set(titles)) == len(titles)
    assert len(corpus) > 200 and corpus.stats.words > 100_000  # Python 3.11.7: 262 documents, ~143k words
    by_title = {d.title: d for d in corpus.documents}
    # real text from both sources
    assert (
        "Assert statements are a convenient way to insert debugging assertions into a program:"
        in by_title["topic:assert"].sentences
    )
    assert by_title["module:math"].sentences[0] == (
        "This module provides access to the mathematical functions defined by the C standard."
    )
    assert "Read a string from standard input." in by_title["module:builtins"].sentences
    # compiled modules are read in a clean interpreter: pytest replaces sys.unraisablehook in this one
    assert "Handle an unraisable exception." in by_title["module:sys"].sentences
    # skipped and private modules
    for skipped in ("this", "antigravity", "idlelib", "turtledemo", "readline"):
        assert f"module:{skipped}" not in by_title
    assert not any(t.startswith("module:_") for t in titles)
    assert all(t.startswith(("topic:", "module:")) for t in titles)
    documents = set()
    for document in corpus.documents:
        assert document.sentences, document.title
        assert len(set(document.sentences)) == len(document.sentences), f"repeated sentence in {document.title}"
        assert document.sentences not in documents, f"duplicate document {document.title}"
        documents.add(document.sentences)
        for sentence in document.sentences:
            assert len(sentence.split()) >= 3, sentence
            assert sentence == " ".join(sentence.split()), "whitespace is normalized"
            assert not sentence.startswith((">>>", "...")) and "::=" not in sentence, sentence
            assert ":func:`" not in sentence and "``" not in sentence, sentence


def test_splits_are_disjoint_complete_and_follow_the_title_hash(docs_splits):
    titles = {name: [d.title for d in docs_splits[name].documents] for name in SPLITS}
    assert sorted(t for name in SPLITS for t in titles[name]) == [d.title for d in docs_splits["all"].documents]
    for name in SPLITS:
        assert titles[name], f"split {name} is empty"
        assert all(document_split(t) == name for t in titles[name])
    assert len(titles["train"]) > 0.8 * len(docs_splits["all"])


def test_manifest_records_sizes_and_checksums(docs_cache, docs_splits):
    root, _ = docs_cache
    manifest = corpus_manifest(root)
    folder = corpus_cache_dir(root)
    assert manifest["python"] == ".".join(map(str, sys.version_info[:3]))
    assert manifest["name"] == "python-docs" and manifest["format"] == corpus_module.CORPUS_FORMAT
    for name in SPLITS:
        entry = manifest["splits"][name]
        stats = docs_splits[name].stats
        assert (entry["documents"], entry["sentences"], entry["characters"], entry["words"]) == (
            stats.documents,
            stats.sentences,
            stats.characters,
            stats.words,
        )
        assert hashlib.sha256((folder / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    for key in ("documents", "sentences", "characters", "words"):
        assert manifest["total"][key] == sum(manifest["splits"][n][key] for n in SPLITS)
    assert not list(folder.glob("*.tmp")), "atomic writes leave no temporary file behind"


def test_data_readme_records_this_pythons_checksums(docs_cache):
    """data/README.md states the sizes and checksums measured on the Python the project pins (3.11.7)."""
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "pydoc_data" in readme and "Python Software Foundation" in readme
    if sys.version_info[:3] != (3, 11, 7):
        pytest.skip("the recorded checksums are those of Python 3.11.7")
    manifest = corpus_manifest(docs_cache[0])
    for name in SPLITS:
        assert manifest["splits"][name]["sha256"] in readme, f"{name} checksum missing from data/README.md"
        assert f"{manifest['splits'][name]['words']:,}" in readme


def test_load_rejects_unknown_split(docs_cache):
    with pytest.raises(ValueError, match="split must be one of"):
        load_python_docs_corpus("dev", docs_cache[0])


# ---------------------------------------------------------------------------------------- cache mechanics


@pytest.fixture
def fake_builder(monkeypatch):
    """Replace the expensive build by a tiny corpus; count the builds."""
    calls = []

    def build():
        calls.append(1)
        docs = tuple(Document(f"doc{i:03d}", (f"Sentence {i} of the fake corpus.", "A second one.")) for i in range(60))
        return Corpus(docs, name="python-docs")

    monkeypatch.setattr(corpus_module, "build_python_docs_corpus", build)
    return calls


def test_cache_is_built_once_then_reused(tmp_path, fake_builder):
    first = load_python_docs_corpus("train", tmp_path)
    again = load_python_docs_corpus("train", tmp_path)
    assert len(fake_builder) == 1 and first == again and len(first) > 0
    load_python_docs_corpus("test", tmp_path, rebuild=True)
    assert len(fake_builder) == 2


@pytest.mark.parametrize(
    "damage",
    ["delete manifest", "corrupt manifest", "old format", "other python", "truncated manifest", "tampered split"],
)
def test_a_damaged_cache_is_rebuilt(tmp_path, fake_builder, damage):
    expected = load_python_docs_corpus("train", tmp_path)
    folder = corpus_cache_dir(tmp_path)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if damage == "delete manifest":
        manifest_path.unlink()
    elif damage == "corrupt manifest":
        manifest_path.write_text("{not json", encoding="utf-8")
    elif damage == "old format":
        manifest_path.write_text(json.dumps({**manifest, "format": -1}), encoding="utf-8")
    elif damage == "other python":
        manifest_path.write_text(json.dumps({**manifest, "python": "2.7.18"}), encoding="utf-8")
    elif damage == "truncated manifest":
        manifest_path.write_text(json.dumps({k: v for k, v in manifest.items() if k != "splits"}), encoding="utf-8")
    else:
        train = folder / "train.jsonl"
        train.write_text(
            train.read_text(encoding="utf-8").replace("A second one.", "A second two.", 1), encoding="utf-8"
        )
    assert load_python_docs_corpus("train", tmp_path) == expected
    assert len(fake_builder) == 2, "the damage was noticed and the cache rebuilt once"
    assert json.loads(manifest_path.read_text(encoding="utf-8")) == manifest


def test_cache_location(tmp_path, monkeypatch):
    version = "corpus-py{}.{}.{}".format(*sys.version_info[:3])
    monkeypatch.delenv("TFS_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert corpus_cache_dir() == tmp_path / "home" / ".cache" / "transformer_from_scratch" / version
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpus_cache_dir() == tmp_path / "xdg" / "transformer_from_scratch" / version
    monkeypatch.setenv("TFS_CACHE_DIR", str(tmp_path / "env"))
    assert corpus_cache_dir() == tmp_path / "env" / version
    assert corpus_cache_dir(tmp_path / "arg") == tmp_path / "arg" / version  # the argument wins


# ------------------------------------------------------------------------------------------------ splits


def test_document_split_fractions_within_5_sigma():
    n = 20_000
    counts = {name: 0 for name in SPLITS}
    for i in range(n):
        counts[document_split(f"title {i}")] += 1
    for name, p in (("train", 0.90), ("validation", 0.05), ("test", 0.05)):
        assert abs(counts[name] - n * p) <= 5 * math.sqrt(n * p * (1 - p)), (name, counts[name])
    assert document_split("title 7") == document_split("title 7")
    assert all(document_split(f"t{i}", validation=0.0, test=0.0) == "train" for i in range(100))


def test_document_split_and_split_corpus_errors():
    with pytest.raises(ValueError, match="validation must be a fraction"):
        document_split("x", validation=1.5)
    with pytest.raises(ValueError, match="leave room for train"):
        document_split("x", validation=0.5, test=0.5)
    twins = Corpus((Document("same", ("A b c.",)), Document("same", ("D e f.",))))
    with pytest.raises(ValueError, match="unique document titles"):
        split_corpus(twins)


# --------------------------------------------------------------------------------------- the user's text


def test_corpus_type_text_and_stats():
    corpus = Corpus((Document("a", ("One two three.", "Four five.")), Document("b", ("Six.",))))
    assert corpus.text() == "One two three.\nFour five.\n\nSix."
    assert corpus.sentences() == ["One two three.", "Four five.", "Six."]
    stats = corpus.stats
    assert (stats.documents, stats.sentences, stats.characters, stats.words) == (2, 3, 28, 6)  # 14 + 10 + 4 characters
    with pytest.raises(TypeError, match="sentences must be a tuple"):
        Document("x", ["a list"])


def test_load_text_file_documents_are_separated_by_blank_lines(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("First line of one\ndocument. Second sentence.\n\n\n  \nAnother document here.\n", encoding="utf-8")
    corpus = load_text_file(path)
    assert [d.sentences for d in corpus.documents] == [
        ("First line of one document.", "Second sentence."),
        ("Another document here.",),
    ]
    assert [d.title for d in corpus.documents] == ["notes.txt:1", "notes.txt:6"]
    per_line = load_text_file(path, sentence_per_line=True)
    assert per_line.documents[0].sentences == ("First line of one", "document. Second sentence.")


def test_corpus_text_round_trips_through_a_file(tmp_path, docs_splits):
    corpus = docs_splits["validation"]
    path = tmp_path / "corpus.txt"
    path.write_text(corpus.text() + "\n", encoding="utf-8")
    again = load_text_file(path, sentence_per_line=True)
    assert [d.sentences for d in again.documents] == [d.sentences for d in corpus.documents]


def test_load_text_folder_one_document_per_file(tmp_path):
    (tmp_path / "b.txt").write_text("Bee one. Bee two.\n\nBee three.\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("Ay one.\n", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("\n \n", encoding="utf-8")
    (tmp_path / "skip.md").write_text("Not matched.\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("Sea one.\n", encoding="utf-8")
    corpus = load_text_folder(tmp_path)
    assert [(d.title, d.sentences) for d in corpus.documents] == [
        ("a.txt", ("Ay one.",)),
        ("b.txt", ("Bee one.", "Bee two.", "Bee three.")),
    ]
    recursive = load_text_folder(tmp_path, "**/*.txt")
    assert [d.title for d in recursive.documents] == ["a.txt", "b.txt", "sub/c.txt"]


def test_loader_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text_file(tmp_path / "missing.txt")
    with pytest.raises(IsADirectoryError, match="load_text_folder"):
        load_text_file(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        load_text_file(empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text_folder(tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError, match="load_text_file"):
        load_text_folder(empty)
    with pytest.raises(ValueError, match="all blank"):
        load_text_folder(tmp_path)
    with pytest.raises(ValueError, match="no file"):
        load_text_folder(tmp_path, "*.md")


def test_iter_lines_streams(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"first\r\nsecond\nthird")
    lines = iter_lines(path)
    assert isinstance(lines, types.GeneratorType)
    assert next(lines) == "first"  # read lazily, one line at a time
    assert list(lines) == ["second", "third"]


def test_only_the_standard_library_folders_are_searched(tmp_path, monkeypatch):
    """A calendar.py in the working folder, or a package in site-packages, must not stand in for the standard
    module (setuptools installs such a stand-in for distutils)."""
    stdlib = str(Path(json.__file__).resolve().parent.parent)
    fake_site = tmp_path / "lib" / "site-packages"
    fake_site.mkdir(parents=True)
    monkeypatch.setattr(sys, "path", ["", str(tmp_path), *sys.path, str(fake_site)])
    folders = [str(Path(f).resolve()) for f in corpus_module._stdlib_folders()]
    assert stdlib in folders
    assert str(tmp_path) not in folders and str(fake_site) not in folders and str(Path.cwd()) not in folders
    assert not any("site-packages" in f for f in folders)
