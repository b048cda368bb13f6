r"""Training an encoder–decoder on (source, target) pairs: the loss, the evaluation and a ready-made run.

The pieces, each small enough to read in one go:

    seq2seq_loss(model, batch)        teacher forcing: the decoder reads [bos, y1 … yn] and must predict
                                      [y1 … yn, eos]; cross-entropy over real target positions
    decode(model, sources, ...)       greedy or beam-search decoding of a list of sources
    evaluate_exact_match(...)         the fraction of sources decoded exactly right
    train_synthetic_task(task, ...)   the whole run on copy / reverse / sort (``datasets.synthetic``)

``train_synthetic_task`` is what chapter 04, ``tfs tour`` and ``tfs train reverse`` call.
"""

from __future__ import annotations

import dataclasses
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
from .trainer import TrainConfig, Trainer
from .utils import seed_everything

__all__ = [
    "seq2seq_loss",
    "decode",
    "evaluate_exact_match",
    "SyntheticRun",
    "synthetic_model_config",
    "synthetic_train_config",
    "train_synthetic_task",
]


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


def evaluate_exact_match(
    model: EncoderDecoder,
    pairs: Sequence[tuple[list[int], list[int]]],
    *,
    beam_size: int = 1,
    vocab: synthetic.SymbolVocab | None = None,
) -> float:
    """Exact match of decoded outputs against the targets of synthetic ``pairs``."""
    v = vocab or synthetic.SymbolVocab()
    longest = max(len(t) for _, t in pairs)
    predictions = decode(
        model,
        [s for s, _ in pairs],
        bos_id=v.bos_id,
        eos_id=v.eos_id,
        pad_id=v.pad_id,
        max_new_tokens=longest + 2,
        beam_size=beam_size,
    )
    return exact_match(predictions, [t for _, t in pairs])


def synthetic_model_config(alphabet_size: int = 10, max_len: int = 12, **overrides) -> TransformerConfig:
    """The model of chapter 04: a post-LN encoder–decoder, D=64, 4 heads, 2+2 layers, shared embeddings."""
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


def synthetic_train_config(**overrides) -> TrainConfig:
    """The optimisation recipe of chapter 04 (measured to reach ≥ 99% exact match on reversal)."""
    base = TrainConfig(
        steps=600,
        max_lr=2e-3,
        min_lr=1e-4,
        warmup_steps=100,
        schedule="cosine",
        weight_decay=0.0,
        grad_clip=1.0,
        eval_every=100,
        progress=False,
    )
    return dataclasses.replace(base, **overrides)


@dataclass
class SyntheticRun:
    """What :func:`train_synthetic_task` returns."""

    model: EncoderDecoder
    history: list[dict]
    splits: synthetic.TaskSplits
    vocab: synthetic.SymbolVocab
    trainer: Trainer


def train_synthetic_task(
    task: str = "reverse",
    *,
    model_config: TransformerConfig | None = None,
    train_config: TrainConfig | None = None,
    batch_size: int = 64,
    n_train: int = 20_000,
    n_validation: int = 200,
    n_test: int = 500,
    min_len: int = 5,
    max_len: int = 12,
    alphabet_size: int = 10,
    seed: int = 0,
    resume: str | None = None,
) -> SyntheticRun:
    """Train an :class:`EncoderDecoder` on a synthetic task; validation exact match is logged at every eval.

    The splits come from ``synthetic.make_splits`` (disjoint); ``seed`` seeds the weights, the data and the
    trainer. ``resume`` continues from a checkpoint directory (see ``Trainer.resume``).
    """
    vocab = synthetic.SymbolVocab(alphabet_size)
    splits = synthetic.make_splits(
        task,
        n_train=n_train,
        n_validation=n_validation,
        n_test=n_test,
        min_len=min_len,
        max_len=max_len,
        alphabet_size=alphabet_size,
        seed=seed,
    )
    model_config = model_config or synthetic_model_config(alphabet_size, max_len)
    train_config = train_config or synthetic_train_config(seed=seed)
    seed_everything(seed)
    model = EncoderDecoder(model_config)

    def train_batches(generator: torch.Generator) -> Seq2SeqBatch:
        index = torch.randint(0, len(splits.train), (batch_size,), generator=generator).tolist()
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

    trainer = Trainer(
        model,
        train_config,
        loss_fn=seq2seq_loss,
        train_batches=train_batches,
        evaluate=evaluate,
        count_tokens=count_tokens,
    )
    if resume is not None:
        trainer.resume(resume)
    history = trainer.fit()
    return SyntheticRun(model=model, history=list(history), splits=splits, vocab=vocab, trainer=trainer)
