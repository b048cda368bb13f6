"""Data for the course: the embedded English corpus and deterministic synthetic task generators.

    corpus.py       the Python documentation corpus (pydoc topics + standard-library docstrings), built on
                    first use and cached, split by document; loaders for the user's own text files and folders
    synthetic.py    copy / reverse / sort over a small alphabet — seeded generators, disjoint splits,
                    padded encoder–decoder batches, committed samples in data/synthetic/
    translation.py  English ↔ French number words (vigesimal French, "et un", agreement of vingt/cent/mille)
    stories.py      bAbI-style stories (tasks 1–2) with extractive answers as character spans
    sentiment.py    short reviews whose labels depend on negation and contrast
    topics.py       passages of the Python documentation labelled with their topic (text, files, network, math,
                    devtools, language), split at the document level
    reports.py      short factual reports with one-sentence reference summaries
    batching.py     token ids -> training batches: language-model windows, padded sequences and (source, target)
                    pairs for teacher forcing

Provenance, sizes and licenses of every corpus: data/README.md.
"""

from .batching import Seq2SeqBatch, lm_batch, pad_batch, pad_pairs
from .synthetic import (
    SAMPLE_SEED,
    SAMPLE_SIZE,
    TASKS,
    SymbolVocab,
    TaskSplits,
    iterate_batches,
    make_splits,
    make_task,
    read_samples,
    to_batch,
    write_samples,
)

__all__ = [
    "Seq2SeqBatch",
    "lm_batch",
    "pad_batch",
    "pad_pairs",
    "TASKS",
    "SymbolVocab",
    "make_task",
    "TaskSplits",
    "make_splits",
    "to_batch",
    "iterate_batches",
    "write_samples",
    "read_samples",
    "SAMPLE_SEED",
    "SAMPLE_SIZE",
]

from . import corpus, reports, sentiment, stories, topics, translation  # noqa: E402
from ._common import Splits  # noqa: E402
from .corpus import (  # noqa: E402
    Corpus,
    CorpusStats,
    Document,
    build_python_docs_corpus,
    corpus_cache_dir,
    corpus_manifest,
    document_split,
    iter_documents,
    iter_lines,
    load_python_docs_corpus,
    load_text_file,
    load_text_folder,
    split_corpus,
    split_sentences,
)
from .reports import Report, make_report_splits, make_reports, read_report_samples, write_report_samples  # noqa: E402
from .sentiment import (  # noqa: E402
    Review,
    label_review,
    make_review_splits,
    make_reviews,
    read_sentiment_samples,
    write_sentiment_samples,
)
from .stories import QAExample, make_stories, make_story_splits, read_story_samples, write_story_samples  # noqa: E402
from .topics import TOPICS, TopicExample, class_balance, make_topic_splits, topic_of  # noqa: E402
from .translation import (  # noqa: E402
    NumberPair,
    SentencePair,
    english_number,
    french_number,
    make_number_pairs,
    make_number_splits,
    make_sentence_pairs,
    number_word_tokens,
    read_translation_samples,
    sentence_pair,
    write_translation_samples,
)

__all__ += [
    "corpus",
    "translation",
    "stories",
    "sentiment",
    "reports",
    "topics",
    "Splits",
    "Corpus",
    "CorpusStats",
    "Document",
    "build_python_docs_corpus",
    "load_python_docs_corpus",
    "corpus_manifest",
    "corpus_cache_dir",
    "document_split",
    "split_corpus",
    "split_sentences",
    "iter_lines",
    "iter_documents",
    "load_text_file",
    "load_text_folder",
    "NumberPair",
    "SentencePair",
    "english_number",
    "french_number",
    "number_word_tokens",
    "make_number_pairs",
    "make_number_splits",
    "make_sentence_pairs",
    "sentence_pair",
    "write_translation_samples",
    "read_translation_samples",
    "QAExample",
    "make_stories",
    "make_story_splits",
    "write_story_samples",
    "read_story_samples",
    "Review",
    "label_review",
    "make_reviews",
    "make_review_splits",
    "write_sentiment_samples",
    "read_sentiment_samples",
    "TOPICS",
    "TopicExample",
    "topic_of",
    "make_topic_splits",
    "class_balance",
    "Report",
    "make_reports",
    "make_report_splits",
    "write_report_samples",
    "read_report_samples",
]
