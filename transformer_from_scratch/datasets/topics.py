r"""Topic classification of the Python documentation: which part of the docs does a short passage come from?

    "The socket module provides access to the BSD socket interface."           network
    "Return the cosine of x (measured in radians)."                            math
    "The with statement is used to wrap the execution of a block."             language

A real-text classification task for fine-tuning (chapter 11) that needs no download: the passages are cut from
the Python documentation corpus (:func:`~transformer_from_scratch.datasets.corpus.load_python_docs_corpus`, whose
documents are titled ``module:<name>`` and ``topic:<name>``), and each passage is labelled with the topic of the
document it comes from.

The topics (:data:`TOPICS`, label id = position) and where the grouping comes from
---------------------------------------------------------------------------------
The grouping follows the chapters of *The Python Standard Library* reference for Python 3.11
(https://docs.python.org/3.11/library/index.html) and, for ``topic:`` documents, *The Python Language Reference*
(https://docs.python.org/3.11/reference/index.html). A topic is a union of whole chapters:

``text``      Text Processing Services · Binary Data Services · File Formats · Internet Data Handling · Structured
              Markup Processing Tools · Internationalization
``files``     File and Directory Access · Data Persistence · Data Compression and Archiving · the file and process
              modules of Generic Operating System Services (os, io, platform, errno, getpass) · Unix Specific
              Services
``network``   Networking and Interprocess Communication (sockets, ssl, select) · Internet Protocols and Support —
              plus the protocol modules that 3.11 lists as superseded but that stood in those chapters before
              (asyncore, asynchat, cgi, cgitb, nntplib, smtpd, telnetlib)
``math``      Numeric and Mathematical Modules — plus the Language Reference sections on numbers and arithmetic
              (numeric literals, numeric types, power, unary, binary, shifting and bitwise operators)
``devtools``  Development Tools · Debugging and Profiling · Python Language Services · Custom Python
              Interpreters — plus the ``topic:debugger`` document (it is the pdb chapter)
``language``  every other ``topic:`` document: the sections of the Language Reference and of "Built-in Types"
              that ``help()`` shows (statements, expressions, the data model, str and sequence methods)

The mapping is :data:`MODULE_TOPICS` (module name -> topic) and :data:`MATH_LANGUAGE_TOPICS` /
:data:`DEVTOOLS_LANGUAGE_TOPICS` (``topic:`` names that leave ``language``); :func:`topic_of` applies it.
Documents of other chapters (Python Runtime Services such as ``sys`` and ``builtins``, Concurrent Execution —
only four documents here, too few to hold some out —, the GUI and multimedia modules, and the other superseded
modules) are *not* used.

Passages, rule by rule (:func:`document_passages`)
-------------------------------------------------
1. A document's sentences are read in order and grouped greedily into passages of consecutive sentences: a
   passage takes up to ``max_sentences`` sentences as long as it stays within ``max_words`` words. A sentence
   longer than ``max_words`` on its own is dropped (passages are whole sentences, never cut). With the default
   32 words a passage is at most ~48 WordPiece tokens of MiniLM's vocabulary in the vast majority of cases.
2. A document gives at most ``max_per_document`` passages, evenly spaced over the document (``tkinter`` alone
   has 600+ sentences; without the cap a few big documents would make up a class).
3. A passage text that occurs twice (inherited docstrings repeat across modules) is kept once only — its first
   occurrence in sorted title order —, so no text is both in train and in test.

Splits at the document level (:func:`split_documents`): held-out passages come from documents never seen in
training. Within each topic the documents are ordered by ``sha256(f"{seed}:{title}")`` and assigned greedily:
test takes documents until it holds at least ``test_fraction`` of the topic's passages, then validation until it
holds ``validation_fraction``, the rest is train. So every topic appears in every split, the splits are disjoint
by document, and the same arguments give the same splits. Measured class balance: ``data/README.md`` and
:func:`class_balance`.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._common import Splits, check_int
from .corpus import Document, load_python_docs_corpus

__all__ = [
    "TOPICS",
    "TOPIC_DESCRIPTIONS",
    "MODULE_TOPICS",
    "MATH_LANGUAGE_TOPICS",
    "DEVTOOLS_LANGUAGE_TOPICS",
    "TopicExample",
    "topic_of",
    "document_passages",
    "split_documents",
    "make_topic_splits",
    "class_balance",
]

TOPICS = ("text", "files", "network", "math", "devtools", "language")  # label id = position
TOPIC_DESCRIPTIONS = {
    "text": "text processing and data formats",
    "files": "files, persistence and the operating system",
    "network": "networking and Internet protocols",
    "math": "numbers and mathematics",
    "devtools": "development, debugging and language tools",
    "language": "the language reference and built-in types",
}

_CHAPTERS: dict[str, tuple[str, ...]] = {
    "text": (
        # Text Processing Services
        "string", "re", "difflib", "textwrap", "unicodedata", "stringprep", "rlcompleter",
        # Binary Data Services
        "codecs", "encodings",
        # File Formats
        "csv", "configparser", "netrc", "plistlib",
        # Internet Data Handling
        "email", "json", "mailbox", "mimetypes", "base64", "binascii", "quopri",
        # Structured Markup Processing Tools
        "html", "xml", "pyexpat",
        # Internationalization
        "gettext", "locale",
    ),
    "files": (
        # File and Directory Access
        "pathlib", "posixpath", "ntpath", "genericpath", "fileinput", "stat", "filecmp", "tempfile", "glob",
        "fnmatch", "linecache", "shutil",
        # Data Persistence
        "pickle", "copyreg", "shelve", "marshal", "dbm", "sqlite3",
        # Data Compression and Archiving
        "zlib", "gzip", "bz2", "lzma", "zipfile", "tarfile",
        # Generic Operating System Services (files and processes)
        "os", "io", "platform", "errno", "getpass",
        # Unix Specific Services
        "posix", "pwd", "grp", "termios", "tty", "pty", "fcntl", "resource",
    ),
    "network": (
        # Networking and Interprocess Communication
        "asyncio", "socket", "ssl", "select", "selectors",
        # Internet Protocols and Support
        "webbrowser", "http", "ftplib", "poplib", "imaplib", "smtplib", "uuid", "socketserver", "ipaddress",
        # superseded in 3.11, in the two chapters above before
        "asyncore", "asynchat", "cgi", "cgitb", "nntplib", "smtpd", "telnetlib",
    ),
    "math": (
        # Numeric and Mathematical Modules
        "numbers", "math", "cmath", "decimal", "fractions", "random", "statistics",
    ),
    "devtools": (
        # Development Tools
        "typing", "pydoc", "doctest", "unittest",
        # Debugging and Profiling
        "bdb", "pdb", "cProfile", "profile", "pstats", "timeit", "trace", "tracemalloc",
        # Python Language Services
        "ast", "symtable", "keyword", "tokenize", "tabnanny", "pyclbr", "py_compile", "compileall", "dis",
        "pickletools",
        # Custom Python Interpreters
        "code", "codeop",
    ),
}  # fmt: skip

MODULE_TOPICS: dict[str, str] = {module: topic for topic, modules in _CHAPTERS.items() for module in modules}
MATH_LANGUAGE_TOPICS = frozenset(
    {"integers", "floating", "imaginary", "numbers", "numeric-types", "power", "unary", "binary", "shifting", "bitwise"}
)
DEVTOOLS_LANGUAGE_TOPICS = frozenset({"debugger"})

MAX_SENTENCES = 3
MAX_WORDS = 32
MAX_PER_DOCUMENT = 40
VALIDATION_FRACTION = 0.1
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class TopicExample:
    """A passage of the Python documentation, its topic (one of :data:`TOPICS`) and the title of its document."""

    text: str
    label: str
    title: str

    @property
    def label_id(self) -> int:
        """Index of the label in :data:`TOPICS`."""
        return TOPICS.index(self.label)


def topic_of(title: str) -> str | None:
    """The topic of a corpus document title (``module:<name>`` or ``topic:<name>``), or None if the document's
    chapter is not used (see the module docstring)."""
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    kind, _, name = title.partition(":")
    if kind == "module":
        return MODULE_TOPICS.get(name)
    if kind == "topic":
        if name in MATH_LANGUAGE_TOPICS:
            return "math"
        if name in DEVTOOLS_LANGUAGE_TOPICS:
            return "devtools"
        return "language"
    return None


def document_passages(
    document: Document,
    *,
    max_sentences: int = MAX_SENTENCES,
    max_words: int = MAX_WORDS,
    max_per_document: int = MAX_PER_DOCUMENT,
) -> list[str]:
    """The passages of one document (rules 1–2 of the module docstring): consecutive sentences joined by a space,
    at most ``max_sentences`` of them and ``max_words`` words; at most ``max_per_document`` passages, evenly
    spaced."""
    check_int("max_sentences", max_sentences, 1)
    check_int("max_words", max_words, 1)
    check_int("max_per_document", max_per_document, 1)
    passages: list[str] = []
    current: list[str] = []
    words = 0
    for sentence in document.sentences:
        n = len(sentence.split())
        if current and (len(current) == max_sentences or words + n > max_words):
            passages.append(" ".join(current))
            current, words = [], 0
        if n > max_words:  # too long on its own: dropped, never cut
            continue
        current.append(sentence)
        words += n
    if current:
        passages.append(" ".join(current))
    if len(passages) > max_per_document:  # evenly spaced: indices floor(i * len / max), all distinct
        passages = [passages[i * len(passages) // max_per_document] for i in range(max_per_document)]
    return passages


def _order_key(seed: int, title: str) -> str:
    return hashlib.sha256(f"{seed}:{title}".encode()).hexdigest()


def split_documents(
    sizes: dict[str, tuple[str, int]],
    *,
    validation_fraction: float = VALIDATION_FRACTION,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
) -> dict[str, str]:
    """Assign documents to "train" / "validation" / "test", stratified by topic (the rule of the module docstring).

    ``sizes``: title -> (topic, number of passages). Returns title -> split name."""
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, int | float) or not 0 <= value < 1:
            raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    if validation_fraction + test_fraction >= 1:
        raise ValueError(
            f"validation_fraction + test_fraction must be < 1 (train needs documents), got "
            f"{validation_fraction} + {test_fraction}"
        )
    assignment: dict[str, str] = {}
    for topic in TOPICS:
        titles = sorted((t for t, (k, _) in sizes.items() if k == topic), key=lambda t: _order_key(seed, t))
        total = sum(sizes[t][1] for t in titles)
        held = {"test": 0, "validation": 0}
        goals = {"test": test_fraction * total, "validation": validation_fraction * total}
        for title in titles:
            split = next((s for s in ("test", "validation") if goals[s] > 0 and held[s] < goals[s]), "train")
            assignment[title] = split
            if split != "train":
                held[split] += sizes[title][1]
    return assignment


def make_topic_splits(
    *,
    max_sentences: int = MAX_SENTENCES,
    max_words: int = MAX_WORDS,
    max_per_document: int = MAX_PER_DOCUMENT,
    validation_fraction: float = VALIDATION_FRACTION,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> Splits[TopicExample]:
    """Train / validation / test passages labelled with their document's topic; the splits never share a
    document (nor a passage text). Passages keep the document order (sorted by title, then reading order).
    Same arguments, same splits; ``seed`` only changes which documents are held out."""
    check_int("seed", seed, 0)
    corpus = load_python_docs_corpus("all", cache_dir)
    seen: set[str] = set()
    passages: dict[str, tuple[str, list[str]]] = {}  # title -> (topic, passages)
    for document in corpus:  # sorted by title
        topic = topic_of(document.title)
        if topic is None:
            continue
        kept = []
        for text in document_passages(
            document, max_sentences=max_sentences, max_words=max_words, max_per_document=max_per_document
        ):
            if text not in seen:
                seen.add(text)
                kept.append(text)
        if kept:
            passages[document.title] = (topic, kept)
    sizes = {title: (topic, len(texts)) for title, (topic, texts) in passages.items()}
    assignment = split_documents(sizes, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed)
    out: dict[str, list[TopicExample]] = {"train": [], "validation": [], "test": []}
    for title, (topic, texts) in passages.items():
        out[assignment[title]].extend(TopicExample(text, topic, title) for text in texts)
    return Splits(train=out["train"], validation=out["validation"], test=out["test"])


def class_balance(examples: Iterable[TopicExample] | Sequence[TopicExample]) -> dict[str, int]:
    """Number of examples per topic, in :data:`TOPICS` order (zeros included)."""
    counts = Counter(e.label for e in examples)
    return {topic: counts.get(topic, 0) for topic in TOPICS}
