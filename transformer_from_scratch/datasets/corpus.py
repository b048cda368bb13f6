r"""A real English corpus that ships with every Python, and loaders for the user's own text.

    load_python_docs_corpus(split)   the Python documentation topics (``pydoc_data.topics``) and the docstrings of
                                     the standard-library modules, as documents of sentences, cut into
                                     train / validation / test at the document level; built on first use, cached
    corpus_manifest()                sizes and SHA-256 checksums of the cached splits
    load_text_file(path)             a text file -> Corpus (documents separated by blank lines)
    load_text_folder(path, pattern)  a folder of text files -> Corpus (one document per file)
    iter_lines(path)                 stream a big file line by line
    split_sentences(text)            the rule-based sentence splitter used everywhere here

Documents keep their boundaries (next-sentence prediction draws its "next" sentence from the same document
and its "random" one from another), and every sentence of a document is kept in reading order.

How the Python documentation corpus is built (``build_python_docs_corpus``), rule by rule:

1. Sources, in sorted title order.
   ``topic:<name>``  — one document per entry of ``pydoc_data.topics.topics`` (the text ``help("assert")`` shows).
   ``module:<name>`` — one document per public name in ``sys.stdlib_module_names`` (Python ≥ 3.10) that is found
   in the standard-library folders (``site-packages`` excluded, so a package that shadows a standard module —
   setuptools' ``distutils`` — is not read): the module docstring, then the docstrings of its public classes,
   functions and methods, in source order. Modules written in Python are *not imported*: their source is parsed
   with :mod:`ast`, so nothing runs and nothing can print, open a browser or be slow. Built-in and C-extension
   modules (``math``, ``sys``, ``itertools``, …) have no source, so they are imported — in a separate, isolated
   interpreter (``python -I -S``), because tools replace members at run time (pytest ``sys.unraisablehook``,
   Jupyter ``builtins.input``) — and their own public classes (with public methods) and functions are read in
   sorted name order. Skipped: private modules (leading ``_``), ``this`` (its text is ROT13), ``antigravity``
   (opens a web browser), ``idlelib`` and ``turtledemo`` (an IDE and demo scripts, not library documentation),
   ``readline`` (importing it may write terminal control codes) and platform modules absent here.
2. Prose only. A text is cut into blocks at blank lines; headings (a line underlined by a run of ``=``, ``*``,
   ``-``, …) are removed; a block is cut into items at bullet markers (``-``, ``*``, ``1.``, ``(1)``), which are
   removed. An item is **dropped as code or a table** if a line starts with ``>>>``, ``...`` or ``$``, contains a
   grammar rule ``::=``, or aligns columns with three or more spaces inside it. A kept item is unwrapped into one
   line (a word broken at its hyphen is rejoined: "built-" + "in" -> "built-in"), inline markup is removed
   (``:mod:`json``` -> ``json``; ````x```` -> ``"x"``, the quoting the pydoc topics use; ``*word*`` -> ``word``),
   and it is kept only if it reads like prose: it starts with a capital, digit, quote or parenthesis, ends with
   ``. ! ? :`` (closing quotes or brackets allowed), and at least 80 % of its characters are letters or spaces.
3. Sentences: :func:`split_sentences` (see there); a sentence needs at least 3 words.
4. Deduplication: within a document an exact repeat of an earlier sentence is dropped (inherited methods repeat
   "Return self==value." and the like); a document whose sentences equal an earlier document's is dropped; a
   document left without sentences is dropped. Sentences are *not* deduplicated across documents.
5. Splits at the document level: ``u = int(sha256(title)[:16 hex], 16) / 2**64``; ``u < 0.05`` -> test,
   ``u < 0.10`` -> validation, else train. The assignment of a title never changes when other documents come or
   go (a new Python version), so the splits are stable and disjoint by construction.

Cache: ``<root>/corpus-py<major>.<minor>.<micro>/`` (the text depends on the Python version) holds
``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` — one document per line, ``{"title": …, "sentences": […]}``
— and ``manifest.json`` with, per split, its documents, sentences, characters, words and the SHA-256 of the split
file. ``<root>`` is ``cache_dir=`` if given, else ``$TFS_CACHE_DIR``, else ``$XDG_CACHE_HOME/transformer_from_scratch``,
else ``~/.cache/transformer_from_scratch``. Files are written atomically (temporary file + rename; the manifest
last). A missing, unreadable or outdated manifest, or a split file whose checksum differs, makes the corpus be
rebuilt. Provenance and measured sizes: ``data/README.md``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ._common import atomic_write_text, jsonl_line

__all__ = [
    "Document",
    "Corpus",
    "CorpusStats",
    "SPLITS",
    "split_sentences",
    "prose_paragraphs",
    "document_split",
    "split_corpus",
    "build_python_docs_corpus",
    "load_python_docs_corpus",
    "corpus_manifest",
    "corpus_cache_dir",
    "iter_lines",
    "iter_documents",
    "load_text_file",
    "load_text_folder",
]

SPLITS = ("train", "validation", "test")
CORPUS_FORMAT = 2  # bump whenever a build rule changes: caches made by other rules are then rebuilt
VALIDATION_FRACTION = 0.05
TEST_FRACTION = 0.05
MIN_WORDS = 3  # a shorter "sentence" is a fragment (a heading, a label), not a sentence
SKIPPED_MODULES = frozenset({"this", "antigravity", "idlelib", "turtledemo", "readline", "__hello__", "__phello__"})

# ------------------------------------------------------------------------------------------ data types


@dataclass(frozen=True)
class CorpusStats:
    """Sizes of a corpus: characters count every sentence's characters (no separators); words are
    whitespace-separated tokens."""

    documents: int
    sentences: int
    characters: int
    words: int


@dataclass(frozen=True)
class Document:
    """A titled document: its sentences in reading order."""

    title: str
    sentences: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.title, str):
            raise TypeError(f"title must be a str, got {type(self.title).__name__}")
        if not isinstance(self.sentences, tuple) or not all(isinstance(s, str) for s in self.sentences):
            raise TypeError(f"sentences must be a tuple of str, got {type(self.sentences).__name__}")

    def text(self) -> str:
        """The sentences, one per line."""
        return "\n".join(self.sentences)


@dataclass(frozen=True)
class Corpus:
    """Documents of sentences. ``text()`` writes one sentence per line and a blank line between documents —
    the format :func:`load_text_file` reads back with ``sentence_per_line=True``."""

    documents: tuple[Document, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.documents, tuple) or not all(isinstance(d, Document) for d in self.documents):
            raise TypeError(f"documents must be a tuple of Document, got {type(self.documents).__name__}")

    def __len__(self) -> int:
        return len(self.documents)

    def __iter__(self) -> Iterator[Document]:
        return iter(self.documents)

    def text(self) -> str:
        """All documents: one sentence per line, documents separated by one blank line."""
        return "\n\n".join(d.text() for d in self.documents)

    def sentences(self) -> list[str]:
        """All sentences of all documents, in order (document boundaries dropped)."""
        return [s for d in self.documents for s in d.sentences]

    @cached_property
    def stats(self) -> CorpusStats:
        """Documents, sentences, characters and words (see :class:`CorpusStats`)."""
        sentences = self.sentences()
        return CorpusStats(
            documents=len(self.documents),
            sentences=len(sentences),
            characters=sum(len(s) for s in sentences),
            words=sum(len(s.split()) for s in sentences),
        )


# ------------------------------------------------------------------------------------ sentence splitting

# Words ending in "." that never end a sentence here. "etc." is not among them: it ends a sentence when the next
# word is capitalised, which is the only place the splitter looks. A single capital and a dot ("J.") is an initial.
_ABBREVIATIONS = frozenset({"e.g.", "i.e.", "cf.", "vs.", "viz.", "al.", "approx.", "mr.", "mrs.", "ms.", "dr."})
# A candidate boundary: end punctuation, optional closing quotes/brackets, whitespace, then what may start a
# sentence (a capital or a digit, possibly after an opening quote or bracket).
_BOUNDARY = re.compile(r"""[.!?]+["'”’)\]]*(\s+)(?=["'“‘(\[]?[A-Z0-9])""")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences with one simple rule, stated completely:

    whitespace is collapsed, then the text is cut after ``.``, ``!`` or ``?`` (plus any closing quotes or
    brackets) when whitespace and then a capital letter or a digit (optionally after an opening quote or bracket)
    follow — unless the word before the cut is an abbreviation that never ends a sentence (``e.g.``, ``i.e.``,
    ``cf.``, ``vs.``, ``viz.``, ``al.``, ``approx.``, ``Mr.``, ``Mrs.``, ``Ms.``, ``Dr.``, any case) or an
    initial (one capital letter and a dot).

    >>> split_sentences("Use a list, e.g. [1, 2]. It grows, etc. Then stop! Really? Yes.")
    ['Use a list, e.g. [1, 2].', 'It grows, etc.', 'Then stop!', 'Really?', 'Yes.']

    Known limits of so simple a rule: a sentence that starts with a lowercase word (``"len()" returns …`` after a
    period) is not cut off, and an abbreviation outside the list followed by a capital is cut after.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = " ".join(text.split())
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        end = match.start(1)  # the sentence ends where the whitespace begins
        last_word = text[start:end].rsplit(" ", 1)[-1].lstrip("\"'“‘([")
        if last_word.lower() in _ABBREVIATIONS or re.fullmatch(r"[A-Z]\.", last_word):
            continue
        sentences.append(text[start:end])
        start = match.end(1)
    if text[start:]:
        sentences.append(text[start:])
    return sentences


# ------------------------------------------------------------------------------------------ prose filter

_UNDERLINE = re.compile(r"""([=\-~^*"#+`'_.:])\1{2,}""")  # a heading's underline (or overline): ===, ***, ---
_BULLET = re.compile(r"^(?:[-*+•]|\d{1,2}[.)]|\(\d{1,2}\))\s+")
_ALIGNED = re.compile(r"\S {3,}\S")  # columns of a table or aligned code comments
_ROLE = re.compile(r":[\w.+-]+(?::[\w.+-]+)?:`([^`]*)`")  # :mod:`json`, :py:class:`int`
_LITERAL = re.compile(r"``([^`]+)``")
_BACKTICKS = re.compile(r"`([^`]+)`")
_EMPHASIS = re.compile(r"(?<![\w*])\*{1,2}(\w[^*\n]*?\w|\w)\*{1,2}(?![\w*])")
_PROSE_START = re.compile(r"""^["'“‘(\[]|^[A-Z0-9]""")
_PROSE_END = re.compile(r"""[.!?:]["'”’)\]]*$""")


def _is_code_or_table(lines: list[str]) -> bool:
    for line in lines:
        stripped = line.strip()
        if stripped.startswith((">>>", "...", "$ ")) or "::=" in stripped or _ALIGNED.search(stripped):
            return True
    return False


def _unwrap(lines: list[str]) -> str:
    """Join wrapped lines with spaces — except after a word broken at its hyphen ("built-" + "in" -> "built-in"),
    since the pydoc topics are wrapped with breaks allowed at hyphens."""
    text = ""
    for line in lines:
        line = line.strip()
        if re.search(r"[A-Za-z]-$", text) and line[:1].islower():
            text += line
        else:
            text = f"{text} {line}" if text else line
    return text


def _strip_markup(text: str) -> str:
    text = _ROLE.sub(lambda m: m.group(1).lstrip("~!"), text)
    text = _LITERAL.sub(r'"\1"', text)
    text = _BACKTICKS.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    return " ".join(text.split())


def _reads_like_prose(paragraph: str) -> bool:
    if not paragraph or not _PROSE_START.match(paragraph) or not _PROSE_END.search(paragraph):
        return False
    letters_or_spaces = sum(map(str.isalpha, paragraph)) + paragraph.count(" ")
    return letters_or_spaces >= 0.8 * len(paragraph)


def prose_paragraphs(text: str) -> list[str]:
    """The prose of a documentation text, as unwrapped paragraphs (rule 2 of the module docstring): headings,
    bullet markers, code, grammar rules and tables removed; inline markup stripped."""
    paragraphs: list[str] = []
    blocks: list[list[str]] = [[]]
    for line in text.expandtabs(8).splitlines():
        if line.strip():
            blocks[-1].append(line.rstrip())
        elif blocks[-1]:
            blocks.append([])
    for block in blocks:
        kept: list[str] = []
        for line in block:
            if _UNDERLINE.fullmatch(line.strip()):
                if kept:
                    kept.pop()  # the heading above its underline
                continue
            kept.append(line)
        items: list[list[str]] = []
        for line in kept:
            bullet = _BULLET.match(line.strip())
            if bullet or not items:
                items.append([line.strip()[bullet.end() :] if bullet else line])
            else:
                items[-1].append(line)
        for item in items:
            if _is_code_or_table(item):
                continue
            paragraph = _strip_markup(_unwrap(item))
            if _reads_like_prose(paragraph):
                paragraphs.append(paragraph)
    return paragraphs


def _document(title: str, texts: Iterable[str]) -> Document:
    """Sentences of the prose of ``texts`` (rules 2–4): short fragments and in-document repeats dropped."""
    seen: set[str] = set()
    sentences = []
    for text in texts:
        for paragraph in prose_paragraphs(text):
            for sentence in split_sentences(paragraph):
                if len(sentence.split()) >= MIN_WORDS and sentence not in seen:
                    seen.add(sentence)
                    sentences.append(sentence)
    return Document(title, tuple(sentences))


# ----------------------------------------------------------------------------------- the docs corpus build


def _stdlib_folders() -> list[str]:
    """The folders of sys.path that belong to the Python installation itself (not site-/dist-packages)."""
    bases = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}
    folders = []
    for entry in sys.path:
        real = os.path.realpath(entry) if entry else ""
        if real and any(real.startswith(b) for b in bases) and "site-packages" not in real:
            if "dist-packages" not in real:
                folders.append(entry)
    return folders


def _source_docstrings(tree: ast.Module) -> Iterator[str]:
    """Module docstring, then public classes, functions and (public classes') methods, in source order."""
    doc = ast.get_docstring(tree, clean=True)
    if doc:
        yield doc

    def walk(body: list[ast.stmt]) -> Iterator[str]:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not node.name.startswith(
                "_"
            ):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    yield doc
                if isinstance(node, ast.ClassDef):
                    yield from walk(node.body)

    yield from walk(tree.body)


# Built-in and C-extension modules have no source to parse, so they must be imported — in a fresh interpreter
# started with -I -S (isolated: no environment variables, no user or site packages), never in the caller's:
# tools replace members at run time (pytest swaps sys.unraisablehook, IPython kernels builtins.input), and the
# corpus would then depend on where it was built. The child prints {module: [docstrings]} as JSON.
_COMPILED_DOCSTRINGS_SCRIPT = """
import importlib, inspect, json, sys, warnings
result = {}
for name in sys.argv[1:]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PEP 594 deprecation warnings (audioop, nis, spwd, ...)
        module = importlib.import_module(name)
    texts = [module.__doc__] if isinstance(module.__doc__, str) else []
    for attr in sorted(vars(module)):  # own public classes (and their public methods) and functions
        obj = vars(module)[attr]
        if attr.startswith("_") or getattr(obj, "__module__", None) != name:
            continue
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if isinstance(obj.__doc__, str):
            texts.append(obj.__doc__)
        if inspect.isclass(obj):
            for method_name in sorted(vars(obj)):
                method = vars(obj)[method_name]
                if not method_name.startswith("_") and inspect.isroutine(method) and isinstance(method.__doc__, str):
                    texts.append(method.__doc__)
    result[name] = [inspect.cleandoc(t) for t in texts]
sys.stdout.write(json.dumps(result))
"""


def _compiled_docstrings(names: list[str]) -> dict[str, list[str]]:
    """Docstrings of built-in / C-extension modules, read in an isolated child interpreter: for each module its
    own docstring, then its own public classes (with their public methods) and functions, in sorted name order."""
    if not names:
        return {}
    if not sys.executable:
        raise RuntimeError("building the Python docs corpus needs sys.executable to read compiled modules' docstrings")
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _COMPILED_DOCSTRINGS_SCRIPT, *names],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"reading the docstrings of compiled modules failed: {done.stderr.decode('utf-8', 'replace')[-500:]}"
        )
    return json.loads(done.stdout.decode("utf-8"))


def _module_source(name: str, folders: list[str]) -> str | None:
    """How module ``name`` is read: "builtin", "extension", a path to its .py source, or None (absent here)."""
    if name in sys.builtin_module_names:
        return "builtin"
    spec = importlib.machinery.PathFinder.find_spec(name, folders)
    if spec is None or spec.origin is None:
        return None  # a platform module that this installation lacks (winreg, msvcrt, …)
    if spec.origin.endswith(".py"):
        return spec.origin
    if isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
        return "extension"
    return None


def build_python_docs_corpus() -> Corpus:
    """Build the whole Python documentation corpus (all splits, sorted by title) from this interpreter's files,
    following rules 1–4 of the module docstring. Deterministic; a few seconds; no cache involved."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some minimal Python packagings leave the documentation out
        raise RuntimeError(
            "this Python installation has no pydoc_data (its documentation topics were left out); install the full "
            "standard library, or train on your own text with load_text_file / load_text_folder"
        ) from None

    sources: list[tuple[str, list[str]]] = [(f"topic:{key}", [topics[key]]) for key in sorted(topics)]
    folders = _stdlib_folders()
    compiled = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIPPED_MODULES:
            continue
        where = _module_source(name, folders)
        if where in ("builtin", "extension"):
            compiled.append(name)
        elif where is not None:
            tree = ast.parse(Path(where).read_bytes())  # bytes: ast honours the file's coding declaration
            sources.append((f"module:{name}", list(_source_docstrings(tree))))
    sources += [(f"module:{name}", texts) for name, texts in _compiled_docstrings(compiled).items()]
    documents, seen = [], set()
    for title, texts in sorted(sources):
        document = _document(title, texts)
        if document.sentences and document.sentences not in seen:
            seen.add(document.sentences)
            documents.append(document)
    return Corpus(tuple(documents), name="python-docs")


# ------------------------------------------------------------------------------------------------ splits


def document_split(title: str, *, validation: float = VALIDATION_FRACTION, test: float = TEST_FRACTION) -> str:
    """The split of a document, from its title alone: u = first 64 bits of SHA-256(title) / 2⁶⁴;
    u < test -> "test", u < test + validation -> "validation", else "train"."""
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    for arg, value in (("validation", validation), ("test", test)):
        if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
            raise ValueError(f"{arg} must be a fraction in [0, 1), got {value!r}")
    if validation + test >= 1.0:
        raise ValueError(f"validation + test must leave room for train, got {validation} + {test}")
    u = int(hashlib.sha256(title.encode("utf-8")).hexdigest()[:16], 16) / 2**64
    if u < test:
        return "test"
    if u < test + validation:
        return "validation"
    return "train"


def split_corpus(
    corpus: Corpus, *, validation: float = VALIDATION_FRACTION, test: float = TEST_FRACTION
) -> dict[str, Corpus]:
    """Cut a corpus into ``{"train", "validation", "test"}`` by :func:`document_split` of each title (document
    order kept). Titles must be unique, or a document could not be told apart from its namesake."""
    titles = [d.title for d in corpus.documents]
    if len(set(titles)) != len(titles):
        raise ValueError("split_corpus needs unique document titles; rename the duplicates")
    parts: dict[str, list[Document]] = {name: [] for name in SPLITS}
    for document in corpus.documents:
        parts[document_split(document.title, validation=validation, test=test)].append(document)
    return {
        name: Corpus(tuple(docs), name=f"{corpus.name}/{name}" if corpus.name else name) for name, docs in parts.items()
    }


# ------------------------------------------------------------------------------------------------- cache


def corpus_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of this Python version's cached corpus: ``<root>/corpus-py3.11.7`` with ``<root>`` from
    ``cache_dir``, ``$TFS_CACHE_DIR``, ``$XDG_CACHE_HOME/transformer_from_scratch`` or
    ``~/.cache/transformer_from_scratch``, the first that is set."""
    if cache_dir is not None:
        root = Path(cache_dir)
    elif os.environ.get("TFS_CACHE_DIR"):
        root = Path(os.environ["TFS_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME"):
        root = Path(os.environ["XDG_CACHE_HOME"]) / "transformer_from_scratch"
    else:
        root = Path.home() / ".cache" / "transformer_from_scratch"
    major, minor, micro = sys.version_info[:3]
    return root.expanduser() / f"corpus-py{major}.{minor}.{micro}"


def _split_file_text(corpus: Corpus) -> str:
    return "".join(jsonl_line({"title": d.title, "sentences": list(d.sentences)}) for d in corpus.documents)


def _manifest_entry(corpus: Corpus, file_text: str, file_name: str) -> dict:
    stats = corpus.stats
    return {
        "file": file_name,
        "sha256": hashlib.sha256(file_text.encode("utf-8")).hexdigest(),
        "documents": stats.documents,
        "sentences": stats.sentences,
        "characters": stats.characters,
        "words": stats.words,
    }


def _expected_header() -> dict:
    return {
        "name": "python-docs",
        "format": CORPUS_FORMAT,
        "python": ".".join(map(str, sys.version_info[:3])),
        "fractions": {"validation": VALIDATION_FRACTION, "test": TEST_FRACTION},
    }


def _read_manifest(folder: Path) -> dict | None:
    """The manifest, or None when it is missing, unreadable, made by other rules or incomplete."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in _expected_header().items()):
        return None
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or set(splits) != set(SPLITS):
        return None
    keys = {"file", "sha256", "documents", "sentences", "characters", "words"}
    if not all(isinstance(entry, dict) and keys <= set(entry) for entry in splits.values()):
        return None
    return manifest


def _build_cache(folder: Path) -> dict:
    corpus = build_python_docs_corpus()
    manifest = _expected_header()
    manifest["splits"] = {}
    for name, part in split_corpus(corpus).items():
        text = _split_file_text(part)
        atomic_write_text(folder / f"{name}.jsonl", text)
        manifest["splits"][name] = _manifest_entry(part, text, f"{name}.jsonl")
    manifest["total"] = {k: getattr(corpus.stats, k) for k in ("documents", "sentences", "characters", "words")}
    atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=2) + "\n")  # last: marks completion
    return manifest


def corpus_manifest(cache_dir: str | os.PathLike | None = None, *, rebuild: bool = False) -> dict:
    """The manifest of the cached Python documentation corpus (built first if needed): for each split its file,
    SHA-256, documents, sentences, characters and words; the totals; the Python version and build format."""
    folder = corpus_cache_dir(cache_dir)
    manifest = None if rebuild else _read_manifest(folder)
    return manifest if manifest is not None else _build_cache(folder)


def _read_split(folder: Path, entry: dict) -> Corpus | None:
    """A cached split, or None when its file is missing or its checksum differs from the manifest's."""
    try:
        data = (folder / entry["file"]).read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return None
    documents = []
    for line in data.decode("utf-8").splitlines():
        row = json.loads(line)
        documents.append(Document(row["title"], tuple(row["sentences"])))
    return Corpus(tuple(documents))


def load_python_docs_corpus(
    split: str = "train", cache_dir: str | os.PathLike | None = None, *, rebuild: bool = False
) -> Corpus:
    """The Python documentation corpus, split ``"train"``, ``"validation"``, ``"test"`` or ``"all"`` (every
    document, sorted by title). Built on first use and cached (see the module docstring for the location and the
    rules); a corrupt cache is rebuilt. ``rebuild=True`` rebuilds unconditionally."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be one of {(*SPLITS, 'all')}, got {split!r}")
    folder = corpus_cache_dir(cache_dir)
    manifest = corpus_manifest(cache_dir, rebuild=rebuild)
    names = SPLITS if split == "all" else (split,)
    parts = {}
    for name in names:
        part = _read_split(folder, manifest["splits"][name])
        if part is None:  # a split file was damaged after its manifest was written: rebuild once
            manifest = _build_cache(folder)
            part = _read_split(folder, manifest["splits"][name])
            if part is None:
                raise RuntimeError(f"the corpus cache in {folder} cannot be written and read back; check the folder")
        parts[name] = part
    documents = tuple(d for name in names for d in parts[name].documents)
    if split == "all":
        documents = tuple(sorted(documents, key=lambda d: d.title))
    return Corpus(documents, name=f"python-docs/{split}")


# --------------------------------------------------------------------------------------- the user's text


def _check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"text file {str(path)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder; use load_text_folder(path, pattern='*.txt') for folders")
    return path


def iter_lines(path: str | os.PathLike, *, encoding: str = "utf-8") -> Iterator[str]:
    """The lines of a text file, one at a time, without their line end — memory stays flat for big files.
    A missing file is reported at once, not at the first ``next``."""
    path = _check_file(path)

    def lines() -> Iterator[str]:
        with open(path, encoding=encoding, newline=None) as f:
            for line in f:
                yield line.rstrip("\n")

    return lines()


def iter_documents(
    path: str | os.PathLike, *, sentence_per_line: bool = False, encoding: str = "utf-8"
) -> Iterator[Document]:
    """The documents of a text file, streamed: a document is a run of non-blank lines, documents are separated
    by one or more blank lines. With ``sentence_per_line=True`` each line is one sentence (the format of
    :meth:`Corpus.text`); otherwise the lines are joined and cut by :func:`split_sentences`. Titles are
    ``<file name>:<first line number>``."""
    path = _check_file(path)

    def document(lines: list[str], first: int) -> Document:
        if sentence_per_line:
            sentences = tuple(" ".join(line.split()) for line in lines)
        else:
            sentences = tuple(split_sentences(" ".join(lines)))
        return Document(f"{path.name}:{first}", sentences)

    def documents() -> Iterator[Document]:
        lines: list[str] = []
        first = 0
        for number, line in enumerate(iter_lines(path, encoding=encoding), start=1):
            if line.strip():
                if not lines:
                    first = number
                lines.append(line)
            elif lines:
                yield document(lines, first)
                lines = []
        if lines:
            yield document(lines, first)

    return documents()


def load_text_file(path: str | os.PathLike, *, sentence_per_line: bool = False, encoding: str = "utf-8") -> Corpus:
    """A text file as a Corpus: documents separated by blank lines (see :func:`iter_documents`). An empty or
    blank file raises a ValueError."""
    path = _check_file(path)
    documents = tuple(iter_documents(path, sentence_per_line=sentence_per_line, encoding=encoding))
    if not documents:
        raise ValueError(f"text file {str(path)!r} is empty (no non-blank line); a corpus needs some text")
    return Corpus(documents, name=path.name)


def load_text_folder(
    path: str | os.PathLike, pattern: str = "*.txt", *, sentence_per_line: bool = False, encoding: str = "utf-8"
) -> Corpus:
    """The files of a folder matching ``pattern`` (``Path.glob`` syntax: ``"**/*.txt"`` recurses) as a Corpus
    with **one document per file**: all its sentences in order (blank lines inside a file only end a paragraph).
    Files are taken in sorted order of their relative path, which is also the title. Blank files are skipped; a
    folder with no matching non-blank file raises a ValueError."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{str(folder)!r} is a file; use load_text_file(path) for a single file")
    files = sorted((p for p in folder.glob(pattern) if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())
    documents = []
    for file in files:
        sentences = tuple(
            s for d in iter_documents(file, sentence_per_line=sentence_per_line, encoding=encoding) for s in d.sentences
        )
        if sentences:
            documents.append(Document(file.relative_to(folder).as_posix(), sentences))
    if not documents:
        found = f"{len(files)} matching file(s), all blank" if files else "no file"
        raise ValueError(f"folder {str(folder)!r} has {found} matching pattern={pattern!r}; a corpus needs some text")
    return Corpus(tuple(documents), name=folder.name)
