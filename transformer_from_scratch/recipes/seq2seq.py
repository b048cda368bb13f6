r"""The encoder–decoder recipe: the 2017 Transformer trained on a synthetic task (copy, reverse or sort).

The pieces, each small enough to read in one go:

    seq2seq_data(task, ...)           the task's train / validation / test pairs and its symbol vocabulary
    seq2seq_loss(model, batch)        teacher forcing: the decoder reads [bos, y1 … yn] and must predict
                                      [y1 … yn, eos]; cross-entropy over real target positions
    decode(model, sources, ...)       greedy or beam-search decoding of a list of sources
    evaluate_exact_match(...)         the fraction of sources decoded exactly right
    transduce_text(model, vocab, s)   one source string -> the model's output string (greedy, sampling, beam)
    seq2seq_model_config(...)         the model of chapter 04: post-LN, D = 64, 4 heads, 2 + 2 layers
    seq2seq_train_config(...)         its optimisation: 600 steps of 64 pairs, warm-up + cosine
    make_seq2seq_trainer(data, model_config, train_config)   a fresh EncoderDecoder in a Trainer
    train_seq2seq(data, model_config, train_config)          the whole run -> Run (report: Seq2SeqReport)

Chapter 04, ``tfs tour`` and ``tfs train reverse`` run it as::

    data = seq2seq_data("reverse")
    run = train_seq2seq(data, seq2seq_model_config(), seq2seq_train_config())
    run.report.exact_match                    # on the 500 test strings, greedy decoding
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import generation
from ..config import TransformerConfig
from ..datasets import synthetic
from ..datasets.batching import Seq2SeqBatch, pad_batch
from ..functional import cross_entropy
from ..metrics import exact_match, token_accuracy
from ..models import EncoderDecoder
from ..training import TrainConfig, Trainer, count_parameters, seed_everything
from .runs import Report, Run, RunSetup, check_input, common_train_config, fingerprint, finish_run, fit

__all__ = [
    "Seq2SeqData",
    "Seq2SeqReport",
    "seq2seq_data",
    "seq2seq_loss",
    "decode",
    "evaluate_exact_match",
    "transduce_text",
    "seq2seq_model_config",
    "seq2seq_train_config",
    "make_seq2seq_trainer",
    "seq2seq_report",
    "train_seq2seq",
]


# --------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Seq2SeqData:
    """The data of a synthetic-task run: ``task`` ("copy", "reverse" or "sort"), its disjoint ``splits``
    (``train`` / ``validation`` / ``test`` lists of (source ids, target ids)) and the ``vocab`` that reads them."""

    task: str
    splits: synthetic.TaskSplits
    vocab: synthetic.SymbolVocab
    options: dict | None = None  # the keywords of seq2seq_data that rebuild it (run.json keeps them)

    def fingerprint(self) -> str:
        """SHA-256 of the three splits (:func:`~.runs.fingerprint`)."""
        return fingerprint(self.task, self.splits)


def seq2seq_data(
    task: str = "reverse",
    *,
    n_train: int = 20_000,
    n_validation: int = 200,
    n_test: int = 500,
    min_len: int = 5,
    max_len: int = 12,
    alphabet_size: int = 10,
    seed: int = 0,
) -> Seq2SeqData:
    """Chapter 04's data: strings of 5–12 symbols over ``a … j`` drawn by ``synthetic.make_splits`` (distinct
    sources, so no test string was seen in training) — 20,000 to train on, 200 to validate, 500 to test."""
    options = dict(
        n_train=n_train,
        n_validation=n_validation,
        n_test=n_test,
        min_len=min_len,
        max_len=max_len,
        alphabet_size=alphabet_size,
        seed=seed,
    )
    splits = synthetic.make_splits(task, **options)
    return Seq2SeqData(task, splits, synthetic.SymbolVocab(alphabet_size), {"task": task, **options})


# ----------------------------------------------------------------------------------------- loss and metrics


def seq2seq_loss(model: nn.Module, batch: Seq2SeqBatch, *, label_smoothing: float = 0.0):
    """Teacher-forced cross-entropy of an encoder–decoder; returns ``(loss, {"token_accuracy": …})``."""
    logits = model(batch.src, batch.tgt_in, src_valid=batch.src_valid, tgt_valid=batch.tgt_valid).logits  # (B, T, V)
    loss = cross_entropy(logits, batch.tgt_out, label_smoothing=label_smoothing)  # padding is ignore_index
    return loss, {"token_accuracy": token_accuracy(logits.detach(), batch.tgt_out)}


def _strip(ids: list[int], eos_id: int, pad_id: int) -> list[int]:
    """Generated ids up to (not including) the first EOS; padding removed."""
    out = []
    for i in ids:
        if i == eos_id:
            break
        if i != pad_id:
            out.append(i)
    return out


@torch.no_grad()
def decode(
    model: EncoderDecoder,
    sources: Sequence[Sequence[int]],
    *,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    max_new_tokens: int,
    beam_size: int = 1,
    batch_size: int = 256,
) -> list[list[int]]:
    """Decode every source (greedy when ``beam_size == 1``, else beam search); returns the generated ids
    without BOS/EOS. The model is put in eval mode for the call and restored afterwards."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs: list[list[int]] = []
    try:
        for start in range(0, len(sources), batch_size):
            chunk = sources[start : start + batch_size]
            src, src_valid = pad_batch(chunk, pad_id)  # (B, S), (B, S)
            src, src_valid = src.to(device), src_valid.to(device)
            logits_fn = generation.encoder_decoder_logits_fn(model, src, src_valid)
            prefix = torch.full((len(chunk), 1), bos_id, dtype=torch.long, device=device)  # (B, 1)
            if beam_size == 1:
                ids = generation.greedy(logits_fn, prefix, max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id)
            else:
                ids = generation.beam_search(
                    logits_fn, prefix, beam_size=beam_size, max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id
                ).sequences
            outputs.extend(_strip(row[1:], eos_id, pad_id) for row in ids.tolist())  # drop the BOS prefix
    finally:
        model.train(was_training)
    return outputs


def _decode_pairs(
    model: EncoderDecoder, pairs: Sequence[tuple[list[int], list[int]]], vocab: synthetic.SymbolVocab, beam_size: int
) -> list[list[int]]:
    """Decode the sources of ``pairs``, allowing two tokens more than the longest target."""
    longest = max(len(t) for _, t in pairs)
    v = vocab
    sources = [s for s, _ in pairs]
    return decode(
        model,
        sources,
        bos_id=v.bos_id,
        eos_id=v.eos_id,
        pad_id=v.pad_id,
        max_new_tokens=longest + 2,
        beam_size=beam_size,
    )


def evaluate_exact_match(
    model: EncoderDecoder,
    pairs: Sequence[tuple[list[int], list[int]]],
    *,
    beam_size: int = 1,
    vocab: synthetic.SymbolVocab | None = None,
) -> float:
    """Exact match of decoded outputs against the targets of synthetic ``pairs``."""
    predictions = _decode_pairs(model, pairs, vocab or synthetic.SymbolVocab(), beam_size)
    return exact_match(predictions, [t for _, t in pairs])


@torch.no_grad()
def transduce_text(
    model: EncoderDecoder,
    vocab: synthetic.SymbolVocab,
    text: str,
    *,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    beam_size: int | None = None,
    generator: torch.Generator | None = None,
) -> str:
    """The model's output for one source string of the vocabulary's symbols: greedy by default, sampling when
    ``temperature``, ``top_k`` or ``top_p`` is given, beam search with ``beam_size``; at most ``max_new_tokens``
    symbols (default: the source's length + 2). Raises ValueError before decoding when ``text`` holds a symbol
    outside the alphabet or is longer than the model's ``max_len`` positions."""
    ids = vocab.encode(text)  # ValueError naming the symbol
    if not ids:
        raise ValueError("text must hold at least one symbol")
    if len(ids) > model.config.max_len:
        raise ValueError(f"text has {len(ids)} symbols; this model reads at most {model.config.max_len}")
    max_new_tokens = len(ids) + 2 if max_new_tokens is None else max_new_tokens
    sampling = temperature is not None or top_k is not None or top_p is not None
    if beam_size is not None and sampling:
        raise ValueError("choose beam_size (beam search) or temperature / top_k / top_p (sampling), not both")
    if not sampling:
        return vocab.decode(_decode_one(model, vocab, ids, max_new_tokens, beam_size or 1))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        src = torch.tensor([ids], device=device)  # (1, S)
        logits_fn = generation.encoder_decoder_logits_fn(model, src)
        prefix = torch.full((1, 1), vocab.bos_id, dtype=torch.long, device=device)  # (1, 1)
        out = generation.sample(
            logits_fn,
            prefix,
            max_new_tokens=max_new_tokens,
            temperature=1.0 if temperature is None else temperature,
            top_k=top_k,
            top_p=top_p,
            eos_id=vocab.eos_id,
            pad_id=vocab.pad_id,
            generator=generator,
        )
    finally:
        model.train(was_training)
    return vocab.decode(_strip(out[0, 1:].tolist(), vocab.eos_id, vocab.pad_id))


def _decode_one(
    model: EncoderDecoder, vocab: synthetic.SymbolVocab, ids: list[int], max_new_tokens: int, beam_size: int
) -> list[int]:
    """:func:`decode` of one source: the generated ids without BOS and EOS."""
    return decode(
        model,
        [ids],
        bos_id=vocab.bos_id,
        eos_id=vocab.eos_id,
        pad_id=vocab.pad_id,
        max_new_tokens=max_new_tokens,
        beam_size=beam_size,
    )[0]


# ------------------------------------------------------------------------------------- the recipe's settings


def seq2seq_model_config(alphabet_size: int = 10, max_len: int = 12, **overrides) -> TransformerConfig:
    """The model of chapter 04: a post-LN encoder–decoder, D=64, 4 heads, F=256, 2+2 layers, one embedding matrix
    shared by source, target and output, no dropout; positions for ``max_len`` symbols plus BOS and EOS.
    ``overrides`` replace any other field (e.g. ``impl="kernels"``)."""
    vocab = synthetic.SymbolVocab(alphabet_size)
    base = TransformerConfig.tiny(
        src_vocab_size=len(vocab),
        tgt_vocab_size=len(vocab),
        d_model=64,
        n_heads=4,
        d_ff=256,
        max_len=max_len + 2,
        pad_id=vocab.pad_id,
        tie_embeddings=True,
        tie_output=True,
        dropout=0.0,
    )
    return dataclasses.replace(base, **overrides)


def seq2seq_train_config(**overrides) -> TrainConfig:
    """The optimisation of chapter 04 (measured to reach ≥ 99% exact match on reversal): 600 steps of 64 pairs,
    AdamW without weight decay, validation every 100 steps; warm-up, cosine and clipping as every recipe
    (:func:`~.runs.common_train_config`). ``overrides`` replace any field."""
    recipe = common_train_config(steps=600, batch_size=64, weight_decay=0.0, eval_every=100)
    return dataclasses.replace(recipe, **overrides)


# -------------------------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Seq2SeqReport(Report):
    """The test-split numbers of a finished encoder–decoder run, after the model's size and the run's length
    (:class:`~.runs.Report`): exact match of the decoded outputs (greedy when ``beam_size`` is 1, else beam
    search) over ``test_pairs`` strings, and the first test string, decoded."""

    exact_match: float
    test_pairs: int
    beam_size: int
    example_source: str
    example_output: str
    example_target: str


def _check_fits(data: Seq2SeqData, model_config: TransformerConfig) -> None:
    check_input("data", data, Seq2SeqData, "seq2seq_data")
    check_input("model_config", model_config, TransformerConfig, "seq2seq_model_config")
    vocab_size = len(data.vocab)
    if (model_config.src_vocab_size, model_config.tgt_vocab_size) != (vocab_size, vocab_size):
        raise ValueError(
            f"model_config (src_vocab_size={model_config.src_vocab_size}, tgt_vocab_size="
            f"{model_config.tgt_vocab_size}) does not fit the data's vocabulary of {vocab_size} ids; build it with "
            f"seq2seq_model_config(alphabet_size={data.vocab.alphabet_size}, ...)"
        )


def make_seq2seq_trainer(data: Seq2SeqData, model_config: TransformerConfig, train_config: TrainConfig) -> Trainer:
    """A :class:`Trainer` for a fresh :class:`EncoderDecoder` (weights seeded with ``train_config.seed``).

    Each step draws ``train_config.batch_size`` training pairs at random (with replacement) and pads them with
    ``synthetic.to_batch``; every ``eval_every`` steps the history records the teacher-forced validation loss and
    token accuracy and ``val_exact_match``, the fraction of validation strings that greedy decoding gets right.
    """
    _check_fits(data, model_config)
    splits, vocab = data.splits, data.vocab
    seed_everything(train_config.seed)
    model = EncoderDecoder(model_config)

    def train_batches(generator: torch.Generator) -> Seq2SeqBatch:
        index = torch.randint(0, len(splits.train), (train_config.batch_size,), generator=generator).tolist()
        return synthetic.to_batch([splits.train[i] for i in index])

    validation_batch = synthetic.to_batch(splits.validation)

    def evaluate(m: nn.Module) -> dict[str, float]:
        loss, metrics = seq2seq_loss(m, validation_batch)
        return {
            "val_loss": float(loss),
            "val_token_accuracy": metrics["token_accuracy"],
            "val_exact_match": evaluate_exact_match(m, splits.validation, vocab=vocab),
        }

    def count_tokens(batch: Seq2SeqBatch) -> int:
        return int(batch.src_valid.sum() + batch.tgt_valid.sum())

    return Trainer(
        model,
        train_config,
        loss_fn=seq2seq_loss,
        train_batches=train_batches,
        evaluate=evaluate,
        count_tokens=count_tokens,
    )


def seq2seq_report(trainer: Trainer, data: Seq2SeqData, seconds: float, *, beam_size: int = 1) -> Seq2SeqReport:
    """Decode every test source once and score the outputs (exact match)."""
    test, v = data.splits.test, data.vocab
    predictions = _decode_pairs(trainer.model, test, v, beam_size)
    (source, target), output = test[0], predictions[0]
    return Seq2SeqReport(
        exact_match=exact_match(predictions, [t for _, t in test]),
        test_pairs=len(test),
        beam_size=beam_size,
        example_source=v.decode(source),
        example_output=v.decode(output),
        example_target=v.decode(target),
        n_parameters=count_parameters(trainer.model),
        steps=trainer.step,
        seconds=seconds,
    )


def train_seq2seq(
    data: Seq2SeqData,
    model_config: TransformerConfig,
    train_config: TrainConfig,
    *,
    beam_size: int = 1,
    resume: str | os.PathLike | None = None,
) -> Run:
    """Train an :class:`EncoderDecoder` on a synthetic task and measure it on the test split.

        ``data`` comes from :func:`seq2seq_data`, ``model_config`` from :func:`seq2seq_model_config`, ``train_config``
        from :func:`seq2seq_train_config` (its ``seed`` seeds the weights and the batches; with ``out_dir`` the run
        writes checkpoints, ``model_config.json`` and ``history.jsonl`` there). ``beam_size``: the decoding of the final
        report (1: greedy). ``resume`` continues from a run folder or one of its checkpoints (:func:`~.runs.fit`:
    in that folder when it is ``out_dir``; refused for another task, model or data). Returns a
        :class:`~.runs.Run` whose ``report`` is a :class:`Seq2SeqReport` and whose ``tokenizer`` is the vocabulary.
    """
    trainer = make_seq2seq_trainer(data, model_config, train_config)
    setup = RunSetup(data.task, model_config, train_config, data.fingerprint(), data.options)
    _, seconds = fit(trainer, setup, resume=resume)
    report = seq2seq_report(trainer, data, seconds, beam_size=beam_size)
    return finish_run(trainer, tokenizer=data.vocab, report=report, data=data)
