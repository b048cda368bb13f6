r"""The T5 recipe: pre-training an encoder–decoder by span corruption (Raffel et al. 2020, §3.1.4).

The pieces, each small enough to read in one go:

    train_t5_tokenizer(texts, V)  byte-level BPE (lossless) laid out as T5's vocabulary: <pad> = 0, </s> = 1,
                                  <unk> = 2, …, and the sentinels <extra_id_0> = V−1, <extra_id_1> = V−2, …
    t5_sentinels(tokenizer)       the sentinel ids, <extra_id_0> first (``span_corruption.t5_sentinel_ids``)
    encode_text / decode_text     text <-> ids as T5 reads it: after a space (SentencePiece's dummy prefix)
    pack_windows(documents, L)    documents -> one stream, each document followed by </s>, cut into windows of L
    prepare_t5_data(...)          tokenizer, training and held-out windows, the held-out windows corrupted once
    make_span_batch(windows, …)   windows -> span-corrupted inputs and targets (``objectives.span_corruption``)
    t5_loss(model, batch)         the mean cross-entropy of the target tokens -> (loss, {"span_accuracy"})
    evaluate_t5(model, data)      held-out loss per target token, and on the dropped tokens against the unigram
                                  baseline with the standard error of their difference
    t5_model_config(V, ...)       the recipe's model: 2 + 2 layers, D = 64, 4 heads of d_kv = 16, F = 256
    t5_train_config(...)          its optimisation: 2000 steps of 32 windows, AdamW (β₂ = 0.98, peak 5e-3), cosine
    new_t5_model(config, seed)    a freshly initialised T5ForConditionalGeneration
    make_t5_trainer(data, model_config, train_config)   a fresh T5ForConditionalGeneration in a Trainer
    train_t5(data, model_config, train_config)          the whole pre-training run -> Run (report: T5Report)
    load_t5_run(path)             the model and tokenizer of a ``train_t5`` run folder (to fine-tune it)

Fine-tuning the result text-to-text — translation, summarization, question answering, one model for several
tasks told apart by a prefix — is :mod:`.text_to_text`. ``tfs train t5`` runs the pre-training as::

    data = prepare_t5_data()
    run = train_t5(data, t5_model_config(data.tokenizer.vocab_size), t5_train_config())
    run.report.span_loss, run.report.unigram_loss, run.report.margin_sigma

The tokenizer
-------------
T5 reads and writes raw text through SentencePiece; here byte-level BPE (``tokenizers.bpe``) plays that part: it
is lossless (``decode_text(encode_text(s)) == s``), so a generated translation or summary is real text that BLEU
and ROUGE score against the reference as it is — accents, hyphens and capitals included. As SentencePiece, a text
is read after a space (:func:`encode_text`), so a word is the same token at the start of a text as inside it. The
learned vocabulary is laid out as T5's: pad = 0 (also the decoder's start token), eos = 1, unk = 2 (byte-level
BPE never needs it), the 256 bytes and the merges, and the last ``n_sentinels`` ids the sentinels,
``<extra_id_0>`` = V − 1 — exactly ``span_corruption.t5_sentinel_ids(V)``. Sentinels are special tokens: never
merged, never produced from text unless written literally.

Pre-training data
-----------------
By default the embedded Python documentation corpus (``datasets.corpus``), as the BERT and XLNet recipes: its
"train" split for training, its "validation" and "test" splits (documents never seen in training) for every
reported number; or any documents given as strings (chapter 09 pre-trains on unlabelled text of its tasks).
Each document (a Corpus document: its sentences joined by spaces) is tokenized, followed by ``</s>``, and all are
packed into one stream cut into windows of ``max_len`` tokens — T5 packs its pre-training examples the same way.
Every training step draws ``batch_size`` windows uniformly with replacement and corrupts them afresh: noise
density 0.15, mean span length 3 (``span_corrupt_batch``, with ``</s>`` closing both inputs and targets). The
held-out windows are corrupted once, from a generator seeded with ``heldout_seed``.

What the report measures
------------------------
* ``loss``: the mean cross-entropy over every held-out target token — sentinels, dropped tokens and the final
  ``</s>`` — what training minimises.
* ``span_loss``: the same over the dropped tokens only, and ``unigram_loss`` on those very tokens under the
  add-one smoothed unigram distribution of the training windows (``recipes.gpt.unigram_distribution``): the best
  a model can do that ignores the context. ``margin`` = unigram − span loss, with the paired standard error of the
  mean of the per-token differences (``margin_std_error``, ``margin_sigma``) and the cluster-robust one with
  windows as the units (``margin_std_error_windows``), computed as in the XLNet recipe.
* ``span_accuracy`` / ``unigram_accuracy``: the fraction of dropped tokens whose arg-max is right (model) and
  that equal the most frequent training token (baseline).

Choices (each one a line to change)
-----------------------------------
* Relu feed-forward, tied embeddings, no dropout: the original T5 at a size that trains in minutes on a CPU.
* Windows packed across documents (as T5), never padded except the last.
* A small vocabulary (1000 BPE tokens) and short windows (64 tokens): each token is seen often enough for the
  model to leave the unigram plateau within the run (see :func:`t5_train_config`). The tokenizer trains in well
  under a second, so it is not cached.

Measured (default recipe: 2000 steps of 32 windows of 64 tokens, 1000 BPE tokens, 294k parameters; 4327 training
and 457 held-out windows; ``train_t5`` on one thread of the project's 2-core machine shared with other jobs: 193 s
of training): held-out span loss 5.13 nats per dropped token against the unigram baseline's 5.93 over 4568 dropped
tokens — a margin of 0.80 ± 0.025 nats, 32σ per token (29σ with windows as the units); top-1 accuracy 0.070 against
0.034; 3.83 nats per target token with the sentinels and ``</s>``. The held-out span loss was 5.76 / 5.28 / 5.18 at
steps 500 / 1000 / 1500: the plateau is left between steps 500 and 1000.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..config import T5Config
from ..datasets.corpus import Corpus, load_python_docs_corpus
from ..models.t5 import T5ForConditionalGeneration
from ..objectives.span_corruption import noise_counts, span_corrupt_batch
from ..tokenizers.base import SpecialTokens, Tokenizer
from ..tokenizers.bpe import BPETokenizer
from ..training import TrainConfig, Trainer, count_parameters, load_model_weights, seed_everything, to_device
from .gpt import unigram_distribution
from .runs import (
    Report,
    Run,
    RunFolderError,
    RunSetup,
    check_input,
    common_train_config,
    fingerprint,
    finish_run,
    fit,
    read_run,
    run_folder_of,
)
from .xlnet import _paired_margin

__all__ = [
    "PAD_TOKEN",
    "EOS_TOKEN",
    "UNK_TOKEN",
    "N_SENTINELS",
    "sentinel_token",
    "t5_special_tokens",
    "train_t5_tokenizer",
    "t5_sentinels",
    "encode_text",
    "decode_text",
    "pack_windows",
    "T5Data",
    "prepare_t5_data",
    "SpanBatch",
    "make_span_batch",
    "t5_loss",
    "evaluate_t5",
    "t5_model_config",
    "t5_train_config",
    "new_t5_model",
    "make_t5_trainer",
    "T5Report",
    "t5_report",
    "train_t5",
    "PretrainedT5",
    "load_t5_run",
]

IGNORE_INDEX = -100
HELDOUT_BATCH_SIZE = 128  # windows per held-out batch: only the evaluation's memory depends on it
PAD_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "</s>", "<unk>"
N_SENTINELS = 32  # a window of 64 tokens has 3 spans, one of 128 has 6; 32 leave room for ~640 tokens


# ------------------------------------------------------------------------------------------------ tokenizer


def sentinel_token(i: int) -> str:
    """The text of sentinel i: ``<extra_id_i>`` (T5's spelling)."""
    return f"<extra_id_{i}>"


def t5_special_tokens(n_sentinels: int = N_SENTINELS) -> SpecialTokens:
    """T5's special tokens: pad ``<pad>``, eos ``</s>``, unk ``<unk>`` and the sentinels ``<extra_id_0>`` …
    ``<extra_id_{n−1}>`` (as extra tokens); no [CLS], [SEP] or [MASK]."""
    _check_positive_int("n_sentinels", n_sentinels)
    sentinels = tuple(sentinel_token(i) for i in range(n_sentinels))
    return SpecialTokens(pad=PAD_TOKEN, unk=UNK_TOKEN, cls=None, sep=None, mask=None, eos=EOS_TOKEN, extra=sentinels)


def train_t5_tokenizer(texts: Iterable[str], vocab_size: int = 1000, *, n_sentinels: int = N_SENTINELS
                       ) -> BPETokenizer:  # fmt: skip
    """Byte-level BPE trained on ``texts`` (documents, each read as :func:`encode_text` reads it: after a space),
    its ids laid out as T5's vocabulary.

    ``BPETokenizer.train`` numbers the 256 bytes first, then the special tokens, then the merges; the ids are
    renumbered (the merges are kept, so every text encodes to the same tokens): ``<pad>`` = 0, ``</s>`` = 1,
    ``<unk>`` = 2, then the bytes and merged tokens in their order, then ``<extra_id_{n−1}>`` … ``<extra_id_0>``,
    so that ``<extra_id_i>`` = V − 1 − i. Training takes well under a second on the 800k characters of the
    default corpus.
    """
    specials = t5_special_tokens(n_sentinels)
    trained = BPETokenizer.train([" " + t for t in texts], vocab_size=vocab_size, special_tokens=specials)
    special = set(specials.tokens())
    ordinary = [t for t in trained.vocab if t not in special]
    vocab = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN, *ordinary, *(sentinel_token(i) for i in reversed(range(n_sentinels)))]
    return BPETokenizer(vocab, trained.merges, specials)


def t5_sentinels(tokenizer: Tokenizer) -> list[int]:
    """The ids of ``<extra_id_0>``, ``<extra_id_1>``, … in ``tokenizer`` (all it has, in that order).

    Raises ValueError when the tokenizer has no pad or eos token, or no ``<extra_id_0>``."""
    check_input("tokenizer", tokenizer, Tokenizer, "train_t5_tokenizer")
    for role in ("pad_id", "eos_id"):
        if getattr(tokenizer, role) is None:
            raise ValueError(f"the tokenizer has no {role[:-3]} token; T5 needs <pad> and </s> (train_t5_tokenizer)")
    ids, i = [], 0
    while sentinel_token(i) in tokenizer:
        ids.append(tokenizer.token_to_id(sentinel_token(i)))
        i += 1
    if not ids:
        raise ValueError(f"the tokenizer has no sentinel {sentinel_token(0)}; build it with train_t5_tokenizer")
    return ids


def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    """The ids of ``text`` read as T5 reads it: SentencePiece puts a space before the first word (its "dummy
    prefix"), so a word is the same token at the start of a text as inside it — "bathroom" answering a question is
    the token " bathroom" of the story. Byte-level BPE does the same with ``" " + text``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return tokenizer.encode(" " + text)


def decode_text(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """The text of ``ids`` with special tokens dropped and the leading space of :func:`encode_text` removed:
    ``decode_text(tok, encode_text(tok, s)) == s``."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return text[1:] if text.startswith(" ") else text


# --------------------------------------------------------------------------------------- pre-training data


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def pack_windows(documents: Sequence[Sequence[int]], max_len: int, *, eos_id: int) -> list[list[int]]:
    """The documents as one stream, each followed by ``eos_id``, cut into consecutive windows of ``max_len``
    tokens; the last window keeps what is left, unless that is a single token (span corruption needs one token
    kept and one dropped)."""
    _check_positive_int("max_len", max_len)
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2 (one token kept, one dropped), got {max_len}")
    stream = [t for document in documents for t in (*document, eos_id)]
    windows = [stream[i : i + max_len] for i in range(0, len(stream), max_len)]
    return [w for w in windows if len(w) >= 2]


def _document_texts(value, name: str) -> list[str]:
    """A Corpus (its documents, sentences joined by spaces), a list of Corpus, or a list of strings."""
    if isinstance(value, Corpus):
        return [" ".join(d.sentences) for d in value.documents]
    if isinstance(value, (list, tuple)) and value and all(isinstance(c, Corpus) for c in value):
        return [text for c in value for text in _document_texts(c, name)]
    if isinstance(value, (list, tuple)) and value and all(isinstance(t, str) for t in value):
        return list(value)
    raise TypeError(f"{name} must be a Corpus, a list of Corpus or a non-empty list of str, got {type(value).__name__}")


@dataclass(frozen=True)
class SpanBatch:
    """A padded batch of span-corrupted windows — what :class:`T5ForConditionalGeneration` trains on.

    input_ids (B, S) long — the windows with each dropped span replaced by its sentinel, then ``</s>``, padded;
    valid (B, S) bool — True at real input tokens; labels (B, L) long — sentinel₀ span₀ sentinel₁ span₁ … ``</s>``,
    -100 at padding; span_mask (B, L) bool — True where the label is a dropped token (not a sentinel, not the
    closing ``</s>``). The decoder's inputs are ``labels`` shifted right, inside the model.
    """

    input_ids: Tensor
    valid: Tensor
    labels: Tensor
    span_mask: Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def make_span_batch(
    windows: Sequence[Sequence[int]],
    *,
    sentinel_ids: Sequence[int],
    pad_id: int,
    eos_id: int,
    generator: torch.Generator,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
) -> SpanBatch:
    """Corrupt each window with :func:`~objectives.span_corruption.span_corrupt_batch` (``</s>`` closing inputs
    and targets) and mark the dropped tokens among the labels."""
    corrupted = span_corrupt_batch(
        list(windows),
        pad_id=pad_id,
        sentinel_ids=sentinel_ids,
        generator=generator,
        noise_density=noise_density,
        mean_span_length=mean_span_length,
        end_id=eos_id,
        ignore_index=IGNORE_INDEX,
    )
    labels = corrupted.labels  # (B, L)
    lengths = corrupted.label_valid.sum(dim=1, keepdim=True)  # (B, 1)
    before_end = torch.arange(labels.shape[1])[None, :] < lengths - 1  # (B, L): the closing </s> is not a span token
    sentinel = torch.isin(labels, torch.tensor(list(sentinel_ids), dtype=labels.dtype))
    span_mask = corrupted.label_valid & before_end & ~sentinel
    return SpanBatch(corrupted.input_ids, corrupted.input_valid, labels, span_mask)


@dataclass
class T5Data:
    """Everything a pre-training run reads, built once by :func:`prepare_t5_data`.

    tokenizer — T5's vocabulary (:func:`train_t5_tokenizer`); sentinel_ids — ``<extra_id_0>`` first;
    train_windows, heldout_windows — lists of token ids (:func:`pack_windows`); heldout_batches — the held-out
    windows corrupted once (``heldout_seed``); unigram (V,) float64 — the add-one smoothed unigram distribution of
    the training windows; max_len, noise_density, mean_span_length — the objective; options — the keywords of
    prepare_t5_data that rebuild it (None: custom data).
    """

    tokenizer: Tokenizer
    sentinel_ids: list[int]
    train_windows: list[list[int]]
    heldout_windows: list[list[int]]
    heldout_batches: list[SpanBatch]
    unigram: Tensor
    max_len: int
    noise_density: float
    mean_span_length: float
    heldout_seed: int
    options: dict | None = None

    def batch(self, windows: Sequence[Sequence[int]], generator: torch.Generator) -> SpanBatch:
        """:func:`make_span_batch` with this data's tokenizer and objective."""
        return make_span_batch(
            windows,
            sentinel_ids=self.sentinel_ids,
            pad_id=self.tokenizer.pad_id,
            eos_id=self.tokenizer.eos_id,
            generator=generator,
            noise_density=self.noise_density,
            mean_span_length=self.mean_span_length,
        )

    def fingerprint(self) -> str:
        """SHA-256 of the windows, the objective and the options (:func:`~.runs.fingerprint`)."""
        flat = [torch.tensor([t for w in ws for t in w]) for ws in (self.train_windows, self.heldout_windows)]
        lengths = [torch.tensor([len(w) for w in ws]) for ws in (self.train_windows, self.heldout_windows)]
        objective = (self.noise_density, self.mean_span_length, self.heldout_seed, self.sentinel_ids)
        return fingerprint(*flat, *lengths, objective, self.options)


def prepare_t5_data(
    train: Corpus | Sequence[Corpus] | Sequence[str] | None = None,
    heldout: Corpus | Sequence[Corpus] | Sequence[str] | None = None,
    *,
    vocab_size: int = 1000,
    max_len: int = 64,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    heldout_seed: int = 0,
    tokenizer: Tokenizer | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> T5Data:
    """Build the data of a span-corruption pre-training run (see :class:`T5Data` and the module docstring).

    Args:
        train: the training documents (a Corpus, a list of them, or a list of document strings); default the
            "train" split of the Python documentation corpus.
        heldout: the documents every reported number is measured on; default its "validation" and "test" splits.
        vocab_size: size of the BPE vocabulary trained on ``train`` (ignored when ``tokenizer`` is given).
        max_len: tokens per window (before corruption; the input is shorter, the target ~0.15 of it).
        noise_density, mean_span_length: the span-corruption objective (T5: 0.15 and 3).
        heldout_seed: seeds the corruption of the held-out windows, so every evaluation scores the same targets.
        tokenizer: a T5 tokenizer (:func:`train_t5_tokenizer`) to use instead of training one.
        cache_dir: where the corpus is cached (``datasets.corpus``).
    """
    _check_positive_int("max_len", max_len)
    if isinstance(heldout_seed, bool) or not isinstance(heldout_seed, int) or heldout_seed < 0:
        raise ValueError(f"heldout_seed must be an integer ≥ 0, got {heldout_seed!r}")
    options = None
    if train is None and heldout is None and tokenizer is None:  # the embedded corpus: a run.json can name it
        options = dict(vocab_size=vocab_size, max_len=max_len, noise_density=noise_density,
                       mean_span_length=mean_span_length, heldout_seed=heldout_seed)  # fmt: skip
    train = load_python_docs_corpus("train", cache_dir) if train is None else train
    if heldout is None:
        heldout = [load_python_docs_corpus("validation", cache_dir), load_python_docs_corpus("test", cache_dir)]
    train_texts, heldout_texts = _document_texts(train, "train"), _document_texts(heldout, "heldout")
    if tokenizer is None:
        tokenizer = train_t5_tokenizer(train_texts, vocab_size)
    sentinels = t5_sentinels(tokenizer)
    _, spans = noise_counts(max_len, noise_density, mean_span_length)
    if spans > len(sentinels):
        raise ValueError(
            f"a window of max_len={max_len} tokens gets {spans} spans, but the tokenizer has only {len(sentinels)} "
            "sentinels; lower max_len or train the tokenizer with more n_sentinels"
        )
    eos = tokenizer.eos_id
    train_windows = pack_windows([encode_text(tokenizer, t) for t in train_texts], max_len, eos_id=eos)
    heldout_windows = pack_windows([encode_text(tokenizer, t) for t in heldout_texts], max_len, eos_id=eos)
    for name, windows in (("train", train_windows), ("heldout", heldout_windows)):
        if not windows:
            raise ValueError(f"the {name} documents hold too little text for one window of 2 tokens")
    data = T5Data(
        tokenizer=tokenizer,
        sentinel_ids=sentinels,
        train_windows=train_windows,
        heldout_windows=heldout_windows,
        heldout_batches=[],
        unigram=unigram_distribution(torch.tensor([t for w in train_windows for t in w]), tokenizer.vocab_size),
        max_len=max_len,
        noise_density=noise_density,
        mean_span_length=mean_span_length,
        heldout_seed=heldout_seed,
        options=options,
    )
    generator = torch.Generator().manual_seed(heldout_seed)
    data.heldout_batches = [
        data.batch(heldout_windows[i : i + HELDOUT_BATCH_SIZE], generator)
        for i in range(0, len(heldout_windows), HELDOUT_BATCH_SIZE)
    ]
    return data


# ----------------------------------------------------------------------------------------- loss and metrics


def t5_loss(model: nn.Module, batch: SpanBatch) -> tuple[Tensor, dict[str, float]]:
    """Span corruption's loss on one batch: the mean cross-entropy of every target token (the model's ``loss``),
    and the fraction of dropped tokens whose arg-max is right (``span_accuracy``)."""
    out = model(batch.input_ids, valid=batch.valid, labels=batch.labels)
    right = (out.logits.detach().argmax(dim=-1) == batch.labels) & batch.span_mask  # (B, L)
    return out.loss, {"span_accuracy": float(right.sum()) / max(int(batch.span_mask.sum()), 1)}


@torch.no_grad()
def evaluate_t5(model: T5ForConditionalGeneration, data: T5Data) -> dict[str, float]:
    """Held-out span-corruption loss, and the loss on the dropped tokens against the unigram baseline (see the
    module docstring for the exact definitions).

    Returns ``loss`` (mean nats per target token), ``span_loss`` and ``unigram_loss`` (mean nats per dropped
    token, the same tokens), ``margin`` (unigram − span), ``margin_std_error``, ``margin_sigma``,
    ``margin_std_error_windows``, ``span_accuracy``, ``unigram_accuracy``, ``target_tokens``, ``span_tokens``
    and ``heldout_windows``. The model is put in eval mode for the call and restored afterwards.
    """
    check_input("data", data, T5Data, "prepare_t5_data")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    all_nll, span_nll, span_right, span_labels, windows = [], [], [], [], []
    try:
        offset = 0
        for batch in data.heldout_batches:
            batch = to_device(batch, device)
            logits = model(batch.input_ids, valid=batch.valid, labels=batch.labels).logits.float()  # (B, L, V)
            nll = F.cross_entropy(logits.transpose(1, 2), batch.labels, reduction="none")  # (B, L), 0 at padding
            filled, spans = batch.labels != IGNORE_INDEX, batch.span_mask  # (B, L) each
            all_nll.append(nll[filled].double().cpu())
            span_nll.append(nll[spans].double().cpu())
            span_right.append((logits.argmax(dim=-1) == batch.labels)[spans].cpu())
            span_labels.append(batch.labels[spans].cpu())
            index = torch.arange(offset, offset + len(batch), device=device)[:, None].expand(spans.shape)
            windows.append(index[spans].cpu())
            offset += len(batch)
    finally:
        model.train(was_training)
    model_nll, labels = torch.cat(span_nll), torch.cat(span_labels)
    baseline_nll = -data.unigram.log()[labels]  # (M,) float64
    targets = torch.cat(all_nll)
    return {
        "loss": float(targets.mean()),
        "span_loss": float(model_nll.mean()),
        "unigram_loss": float(baseline_nll.mean()),
        **_paired_margin(model_nll, baseline_nll, torch.cat(windows)),
        "span_accuracy": float(torch.cat(span_right).double().mean()),
        "unigram_accuracy": float((labels == int(data.unigram.argmax())).double().mean()),
        "target_tokens": float(targets.numel()),
        "span_tokens": float(labels.numel()),
        "heldout_windows": float(len(data.heldout_windows)),
    }


# ------------------------------------------------------------------------------------------------ configs


def t5_model_config(
    vocab_size: int,
    *,
    d_model: int = 64,
    d_kv: int = 16,
    d_ff: int = 256,
    n_heads: int = 4,
    n_layers: int = 2,
    dropout: float = 0.0,
    pad_id: int = 0,
    eos_id: int = 1,
    **overrides,
) -> T5Config:
    """The recipe's model: T5 (pre-norm RMSNorm blocks, relative position buckets, relu feed-forward, tied
    embeddings) with 2 encoder and 2 decoder layers, D = 64, 4 heads of d_kv = 16, F = 256, T5's 32 buckets up
    to distance 128, no dropout; the decoder starts from ``pad_id`` as T5's. ``overrides`` replace any other
    field (e.g. ``feed_forward="gated_gelu"``, ``n_decoder_layers``)."""
    base = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_kv,
        d_ff=d_ff,
        n_heads=n_heads,
        n_layers=n_layers,
        num_buckets=32,
        max_distance=128,
        feed_forward="relu",
        dropout=dropout,
        pad_id=pad_id,
        decoder_start_id=pad_id,
        eos_id=eos_id,
    )
    return dataclasses.replace(base, **overrides)


def t5_train_config(**overrides) -> TrainConfig:
    """The optimisation of the pre-training: 2000 steps of 32 windows, AdamW with weight decay 0.01 and β₂ = 0.98
    (as the BERT and XLNet recipes), a peak learning rate of 5e-3, evaluation every 500 steps; warm-up, cosine
    and clipping as every recipe (:func:`~.runs.common_train_config`). ``overrides`` replace any field.

    Why 5e-3 and not the 2e-3 of the other recipes: on the Python documentation the tiny T5 first sits on a
    unigram plateau — its dropped tokens predicted no better than by their frequencies — and the recipe's run
    leaves it between steps 500 and 1000 (see the module docstring). With 2e-3, 4000 BPE tokens and windows of
    128 (this recipe's first settings) it was still on it after 2000 steps: 6.65 against the unigram's 6.67."""
    recipe = common_train_config(
        steps=2000, batch_size=32, max_lr=5e-3, weight_decay=0.01, betas=(0.9, 0.98), eval_every=500
    )
    return dataclasses.replace(recipe, **overrides)


def new_t5_model(model_config: T5Config, seed: int = 0) -> T5ForConditionalGeneration:
    """A freshly initialised :class:`T5ForConditionalGeneration`, its weights seeded with ``seed``."""
    check_input("model_config", model_config, T5Config, "t5_model_config")
    seed_everything(seed)
    return T5ForConditionalGeneration(model_config)


# ------------------------------------------------------------------------------------------- pre-training run


@dataclass(frozen=True)
class T5Report(Report):
    """The held-out numbers of a finished pre-training run (:func:`evaluate_t5`'s, see the module docstring),
    after the model's size and the run's length (:class:`~.runs.Report`)."""

    loss: float
    span_loss: float
    unigram_loss: float
    margin: float
    margin_std_error: float
    margin_sigma: float
    margin_std_error_windows: float
    span_accuracy: float
    unigram_accuracy: float
    target_tokens: int
    span_tokens: int
    heldout_windows: int


def _check_fits(data: T5Data, model_config: T5Config) -> None:
    check_input("data", data, T5Data, "prepare_t5_data")
    check_input("model_config", model_config, T5Config, "t5_model_config")
    tokenizer = data.tokenizer
    if model_config.vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"model_config.vocab_size={model_config.vocab_size} does not fit the data's vocabulary of "
            f"{tokenizer.vocab_size} tokens"
        )
    if (model_config.pad_id, model_config.eos_id) != (tokenizer.pad_id, tokenizer.eos_id):
        raise ValueError(
            f"model_config has pad_id={model_config.pad_id}, eos_id={model_config.eos_id}; the tokenizer has "
            f"<pad> = {tokenizer.pad_id}, </s> = {tokenizer.eos_id}"
        )


def make_t5_trainer(data: T5Data, model_config: T5Config, train_config: TrainConfig) -> Trainer:
    """A :class:`Trainer` for a fresh :class:`T5ForConditionalGeneration`, ready to ``fit()`` — :func:`train_t5`
    without the running, for those who want to pause (``trainer.fit(until=…)``) or look inside.

    ``train_config.seed`` seeds the weights and the trainer's batch generator: each step draws
    ``train_config.batch_size`` windows uniformly from ``data.train_windows`` and corrupts them afresh.
    """
    _check_fits(data, model_config)
    check_input("train_config", train_config, TrainConfig, "t5_train_config")
    model = new_t5_model(model_config, train_config.seed)
    windows = data.train_windows

    def train_batches(generator: torch.Generator) -> SpanBatch:
        index = torch.randint(0, len(windows), (train_config.batch_size,), generator=generator).tolist()
        return data.batch([windows[i] for i in index], generator)

    def evaluate(m: nn.Module) -> dict[str, float]:
        result = evaluate_t5(m, data)
        keep = ("loss", "span_loss", "unigram_loss", "margin_sigma", "span_accuracy")
        return {f"val_{k}": result[k] for k in keep}

    return Trainer(
        model,
        train_config,
        loss_fn=t5_loss,
        train_batches=train_batches,
        evaluate=evaluate,
        count_tokens=lambda batch: int(batch.valid.sum()) + int((batch.labels != IGNORE_INDEX).sum()),
    )


def t5_report(trainer: Trainer, data: T5Data, seconds: float) -> T5Report:
    """Measure a pre-trained T5 on the held-out windows (:func:`evaluate_t5`)."""
    m = evaluate_t5(trainer.model, data)
    counts = {name: int(m.pop(name)) for name in ("target_tokens", "span_tokens", "heldout_windows")}
    return T5Report(**m, **counts, n_parameters=count_parameters(trainer.model), steps=trainer.step, seconds=seconds)


def train_t5(
    data: T5Data, model_config: T5Config, train_config: TrainConfig, *, resume: str | os.PathLike | None = None
) -> Run:
    """Pre-train a :class:`T5ForConditionalGeneration` by span corruption on ``data`` and measure it on the
    held-out documents.

    ``data`` comes from :func:`prepare_t5_data`, ``model_config`` from :func:`t5_model_config` (its vocabulary
    and special ids must be the tokenizer's), ``train_config`` from :func:`t5_train_config`: its ``seed`` seeds
    the weights and the batches; with ``out_dir`` the run writes its setup, ``history.jsonl`` and checkpoints
    there. ``resume``: a run folder (its newest checkpoint) or one of its step folders, written with the same
    configs and data; the run continues in that folder when it is ``out_dir``. Returns a :class:`~.runs.Run`
    whose ``report`` is a :class:`T5Report`.
    """
    trainer = make_t5_trainer(data, model_config, train_config)
    setup = RunSetup("t5", model_config, train_config, data.fingerprint(), data.options, data.tokenizer)
    _, seconds = fit(trainer, setup, resume=resume)
    report = t5_report(trainer, data, seconds)
    return finish_run(trainer, tokenizer=data.tokenizer, report=report, data=data)


@dataclass
class PretrainedT5:
    """A pre-training run read back by :func:`load_t5_run`: the model (eval mode), its tokenizer, the run folder
    and the checkpoint loaded."""

    model: T5ForConditionalGeneration
    tokenizer: Tokenizer
    folder: Path
    checkpoint: Path


def load_t5_run(path: str | os.PathLike) -> PretrainedT5:
    """The model of a :func:`train_t5` run folder at its newest checkpoint (or at the step folder ``path``), with
    the run's tokenizer — where a fine-tune starts. One-line :class:`~.runs.RunFolderError` otherwise."""
    saved = read_run(path)
    _, checkpoint = run_folder_of(path)
    if saved.task != "t5":
        raise RunFolderError(f"{saved.folder} is a run of {saved.task!r}, not of 't5' (tfs train t5)")
    if checkpoint is None:
        raise RunFolderError(f"{saved.folder} holds no checkpoint yet: nothing to load")
    if saved.tokenizer is None:
        raise RunFolderError(f"{saved.folder} has no tokenizer.json")
    try:
        model = T5ForConditionalGeneration(T5Config(**saved.model_config))
        load_model_weights(checkpoint, model)
        tokenizer = Tokenizer.from_dict(saved.tokenizer)
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise RunFolderError(f"{saved.folder} cannot be loaded as a T5 run: {e}") from None
    return PretrainedT5(model.eval(), tokenizer, saved.folder, checkpoint)
