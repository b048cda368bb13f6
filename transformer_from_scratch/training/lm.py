r"""Training a GPT language model on text: the data, the loss, the evaluation and a ready-made run.

The pieces, each small enough to read in one go:

    read_text_file(path) / split_text(text)   a user's file, cut 90 / 10 into train / validation text
    lm_texts(data)                             (train text, validation text): the embedded corpus or a file
    build_tokenizer(kind, train_text)          "char" or "bpe" (byte-level BPE trained on the train text, cached)
    load_lm_data(...)                          both texts as 1-D token tensors + the tokenizer -> LMData
    lm_loss(model, batch)                      next-token cross-entropy on a (x, y) batch of ``lm_batch``
    evaluate_lm(model, tokens, context)        validation loss and perplexity, every token predicted once
    unigram_loss(train, targets, V)            the baseline: a model that ignores the context altogether
    gpt_model_config(V, ...)                   the GPT of the recipe (GPT-2's architecture, F = 4·D)
    sample_text(model, tokenizer, prompt, n)   sampling with temperature / top-k / top-p, sliding the context
    train_gpt(...)                             the whole run -> LMRun(model, tokenizer, history, report)
    add_gpt_arguments / run_gpt_command        the ``tfs train gpt`` command line

``train_gpt`` is what chapter 08 and ``tfs train gpt`` call.

Measuring a language model
--------------------------
The validation loss is the mean negative log-likelihood, in nats per token, of the validation tokens:

    loss = -(1/M) Σ_i log p(x_i | x_<i)          perplexity = exp(loss)

Perplexity is the size of a uniform distribution that would be exactly as surprised: a character model with
perplexity 5 hesitates, on average, as if between 5 equally likely characters. Both depend on the
tokenizer (a BPE token carries about two characters here), so compare models only at the same tokenization.

The floor to beat is the **unigram baseline**: a model that ignores the context altogether, predicting every token
from its frequency in the training tokens, with add-one (Laplace) smoothing so that a token never seen in
training still has a finite loss:

    p(v) = (c_v + 1) / (N + V)        c_v = count of v among the N training tokens, V = vocabulary size
    unigram loss = -(1/M) Σ_i log p(x_i)        over the same M validation targets as the model's loss

A language model that does not beat it by a clear margin has learned nothing about context.

Evaluation windows (``evaluate_lm``): the validation stream is cut into consecutive, non-overlapping windows
of ``context`` inputs, so every validation token after the first is predicted exactly once, the first token of
each window with no history and the last with ``context - 1`` tokens of history. A sliding window (predict only
the last token of each window) scores lower but costs ``context`` times as much; we use the cheap, standard
non-overlapping form and say so.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import generation
from ..config import GPTConfig
from ..datasets.batching import lm_batch
from ..datasets.corpus import corpus_cache_dir, load_python_docs_corpus
from ..functional import cross_entropy
from ..models.gpt import GPT
from ..tokenizers import BPETokenizer, CharTokenizer, SpecialTokens, Tokenizer
from .trainer import TrainConfig, Trainer
from .utils import count_parameters, seed_everything

__all__ = [
    "TOKENIZERS",
    "TRAIN_FRACTION",
    "GPT_DEFAULTS",
    "read_text_file",
    "split_text",
    "lm_texts",
    "build_tokenizer",
    "LMData",
    "load_lm_data",
    "lm_loss",
    "gpt_model_config",
    "sample_text",
    "default_prompt",
    "evaluation_windows",
    "evaluate_lm",
    "unigram_distribution",
    "unigram_loss",
    "LMReport",
    "LMRun",
    "train_gpt",
    "write_history",
    "HISTORY_FILE",
    "TOKENIZER_FILE",
    "MODEL_CONFIG_FILE",
    "gpt_kwargs_from_args",
    "add_gpt_arguments",
    "run_gpt_command",
]

TOKENIZERS = ("char", "bpe")
TRAIN_FRACTION = 0.9  # a user's file: the first 90 % of its characters train, the last 10 % validate
CHAR_SPECIAL_TOKENS = SpecialTokens(pad=None, unk="<unk>", cls=None, sep=None, mask=None)  # unk: unseen characters

# The recipe of ``tfs train gpt``: the model and optimisation settings of ``train_gpt`` (each a flag), with defaults.
GPT_DEFAULTS: dict[str, Any] = {
    "tokenizer": "char",
    "bpe_vocab_size": 512,
    "n_layers": 4,
    "n_heads": 4,
    "d_model": 128,
    "context": 64,
    "batch_size": 32,
    "steps": 1000,
    "lr": 2e-3,
    "min_lr": 1e-4,
    "warmup_steps": 100,
    "weight_decay": 0.1,
    "beta2": 0.99,
    "grad_clip": 1.0,
    "dropout": 0.0,
    "eval_every": 100,
    "seed": 0,
}


# ------------------------------------------------------------------------------------------------------- text


def read_text_file(path: str | os.PathLike) -> str:
    """The whole of a UTF-8 text file. Raises FileNotFoundError (missing), ValueError (a folder, not UTF-8, or
    blank) with the path in the message."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, f"text file {str(path)!r} does not exist", str(path))
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder; pass one UTF-8 text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{str(path)!r} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    if not text.strip():
        raise ValueError(f"text file {str(path)!r} is empty; a language model needs some text to learn from")
    return text


def split_text(text: str, train_fraction: float = TRAIN_FRACTION) -> tuple[str, str]:
    r"""Cut ``text`` in two: the first ⌊f·N⌋ characters train, the rest validate (N characters, f = 0.9).

    The cut is contiguous rather than interleaved, so the validation text is a stretch the model never saw
    (interleaved lines would leak near-copies of the training text into the validation set).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, (int, float)) or not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be a number in (0, 1), got {train_fraction!r}")
    cut = math.floor(train_fraction * len(text))
    return text[:cut], text[cut:]


def lm_texts(data: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """(train text, validation text): the embedded Python-docs corpus (its own train / validation splits, one
    sentence per line, a blank line between documents) when ``data`` is None, else the file ``data`` cut by
    :func:`split_text`."""
    if data is None:
        return (
            load_python_docs_corpus("train", cache_dir).text(),
            load_python_docs_corpus("validation", cache_dir).text(),
        )
    return split_text(read_text_file(data))


# -------------------------------------------------------------------------------------------------- tokenizers


def _check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def build_tokenizer(
    kind: str,
    train_text: str,
    *,
    bpe_vocab_size: int = 512,
    cache_dir: str | os.PathLike | None = None,
) -> Tokenizer:
    """A tokenizer learned from the training text only (the validation text must stay unseen).

    ``"char"``: one id per character seen in training, most frequent first, plus ``<unk>`` for characters that
    only occur in the validation text. ``"bpe"``: byte-level BPE with ``bpe_vocab_size`` ids (256 bytes,
    ``<|endoftext|>`` and the merges), so nothing is ever unknown. BPE training takes a moment, so the result is
    cached as JSON under ``<cache root>/lm-tokenizers/`` (the root of the corpus cache), keyed by the SHA-256 of
    the training text and the vocabulary size; a cache file that cannot be read is rebuilt.
    """
    _check_choice("tokenizer", kind, TOKENIZERS)
    if not isinstance(train_text, str) or not train_text:
        raise ValueError("train_text must be a non-empty str")
    if kind == "char":
        return CharTokenizer.train([train_text], special_tokens=CHAR_SPECIAL_TOKENS)
    if isinstance(bpe_vocab_size, bool) or not isinstance(bpe_vocab_size, int) or bpe_vocab_size < 258:
        raise ValueError(
            f"bpe_vocab_size must be an int ≥ 258 (256 bytes, <|endoftext|>, a merge), got {bpe_vocab_size!r}"
        )
    digest = hashlib.sha256(train_text.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]
    folder = corpus_cache_dir(cache_dir).parent / "lm-tokenizers"  # the cache root, beside the corpus folders
    path = folder / f"bpe-{bpe_vocab_size}-{digest}.json"
    if path.exists():
        try:
            cached = Tokenizer.load(path)
            if isinstance(cached, BPETokenizer):
                return cached
        except (ValueError, KeyError, OSError):
            pass  # damaged: train again and overwrite
    tokenizer = BPETokenizer.train([train_text], vocab_size=bpe_vocab_size)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tokenizer.save(path)
    except OSError:
        pass  # a read-only cache only costs the retraining next time
    return tokenizer


def _encode(tokenizer: Tokenizer, text: str) -> Tensor:
    return torch.tensor(tokenizer.encode(text), dtype=torch.long)  # (N,)


@dataclass(frozen=True, eq=False)
class LMData:
    """Token streams for language modelling: ``train`` (N,) and ``validation`` (M,) long tensors, the tokenizer
    that made them, and where the text came from (``source``)."""

    tokenizer: Tokenizer
    train: Tensor
    validation: Tensor
    source: str

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


def load_lm_data(
    data: str | os.PathLike | None = None,
    *,
    tokenizer: str = "char",
    bpe_vocab_size: int = 512,
    cache_dir: str | os.PathLike | None = None,
) -> LMData:
    """Read the text (:func:`lm_texts`), learn the tokenizer on the train part (:func:`build_tokenizer`) and
    encode both parts into 1-D token tensors."""
    _check_choice("tokenizer", tokenizer, TOKENIZERS)
    train_text, validation_text = lm_texts(data, cache_dir=cache_dir)
    tok = build_tokenizer(tokenizer, train_text, bpe_vocab_size=bpe_vocab_size, cache_dir=cache_dir)
    source = "python-docs corpus (embedded)" if data is None else os.fspath(data)
    return LMData(tok, _encode(tok, train_text), _encode(tok, validation_text), source)


# ------------------------------------------------------------------------------------------- loss and metrics


def _logits(model: nn.Module, ids: Tensor) -> Tensor:
    """``model(ids)`` as next-token logits (B, T, V), whether the model returns a tensor or an output object."""
    out = model(ids)
    logits = out if isinstance(out, Tensor) else getattr(out, "logits", None)
    if not isinstance(logits, Tensor) or logits.dim() != 3 or logits.shape[:2] != ids.shape:
        raise TypeError(
            f"the model must map ids (B, T) = {tuple(ids.shape)} to logits (B, T, V) (a tensor, or an output with "
            f".logits), got {getattr(logits, 'shape', type(out).__name__)}"
        )
    return logits


def lm_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    r"""Next-token cross-entropy of a batch from :func:`~.batching.lm_batch`: x, y (B, T) with y = x shifted left,

        loss = -(1/(B·T)) Σ_{b,t} log softmax(model(x)[b, t])[y[b, t]]

    The causal mask inside the model is what makes this honest: position t sees x[b, :t+1] = tokens up to t, and
    y[b, t] is token t + 1, which it cannot see.
    """
    x, y = batch
    return cross_entropy(_logits(model, x), y)  # logits (B, T, V) vs targets (B, T)


def evaluation_windows(tokens: Tensor, context: int, *, max_tokens: int | None = None) -> list[tuple[Tensor, Tensor]]:
    r"""Consecutive, non-overlapping windows that predict every token of ``tokens`` after the first exactly once.

    Window w reads x = tokens[w·T : w·T + T] and predicts y = tokens[w·T + 1 : w·T + T + 1] (T = ``context``);
    the last window may be shorter. With ``max_tokens`` only the first ``max_tokens`` targets
    (tokens[1 : 1 + max_tokens]) are used. Returns at most two (x, y) pairs: the W full windows stacked,
    x, y (W, T), then, if the targets do not fill the last window, the remainder as x, y (1, t) with t < T.
    """
    if not isinstance(tokens, Tensor) or tokens.dim() != 1 or tokens.shape[0] < 2:
        raise ValueError(f"tokens must be a 1-D tensor of at least 2 token ids, got {getattr(tokens, 'shape', tokens)}")
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ValueError(f"context must be a positive integer, got {context!r}")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer or None, got {max_tokens!r}")
        tokens = tokens[: max_tokens + 1]
    n_targets = tokens.shape[0] - 1
    n_full = n_targets // context
    windows = []
    if n_full:
        body = tokens[: n_full * context + 1]
        x = body[:-1].reshape(n_full, context)  # (W·T,) -> (W, T)
        y = body[1:].reshape(n_full, context)  # (W, T): each row shifted left by one
        windows.append((x, y))
    rest = n_targets - n_full * context
    if rest:
        tail = tokens[n_full * context :]  # (rest + 1,)
        windows.append((tail[None, :-1], tail[None, 1:]))  # (1, rest) each
    return windows


@torch.no_grad()
def evaluate_lm(
    model: nn.Module, tokens: Tensor, context: int, *, batch_size: int = 64, max_tokens: int | None = None
) -> dict[str, float]:
    """Validation loss (mean nats per predicted token), perplexity = exp(loss) and the number of predicted tokens,
    over the windows of :func:`evaluation_windows`. The model runs in eval mode (restored afterwards)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for x, y in evaluation_windows(tokens, context, max_tokens=max_tokens):
            for start in range(0, x.shape[0], batch_size):
                xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
                total += float(cross_entropy(_logits(model, xb).float(), yb, reduction="sum"))
                count += yb.numel()
    finally:
        model.train(was_training)
    loss = total / count
    return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 700.0)), "val_tokens": float(count)}


def unigram_distribution(train_tokens: Tensor, vocab_size: int) -> Tensor:
    """p(v) = (c_v + 1) / (N + V): add-one smoothed token frequencies of the training tokens, (V,) float64."""
    if not isinstance(train_tokens, Tensor) or train_tokens.dim() != 1 or train_tokens.numel() == 0:
        raise ValueError(f"train_tokens must be a non-empty 1-D tensor, got {getattr(train_tokens, 'shape', None)}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if int(train_tokens.min()) < 0 or int(train_tokens.max()) >= vocab_size:
        raise ValueError(
            f"train_tokens holds ids in [{int(train_tokens.min())}, {int(train_tokens.max())}], outside the "
            f"vocabulary of size {vocab_size}"
        )
    counts = torch.bincount(train_tokens.long(), minlength=vocab_size).double()  # (V,)
    return (counts + 1.0) / (train_tokens.numel() + vocab_size)


def unigram_loss(train_tokens: Tensor, targets: Tensor, vocab_size: int) -> float:
    """Cross-entropy (nats per token) of the add-one smoothed training unigram distribution on ``targets``."""
    p = unigram_distribution(train_tokens, vocab_size)  # (V,)
    targets = targets.reshape(-1).long()
    if targets.numel() == 0:
        raise ValueError("targets is empty: nothing to score")
    if int(targets.min()) < 0 or int(targets.max()) >= vocab_size:
        raise ValueError(f"targets hold ids outside the vocabulary of size {vocab_size}")
    return float(-p.log()[targets].mean())


# ------------------------------------------------------------------------------------------------ the model


def gpt_model_config(
    vocab_size: int, *, n_layers: int, n_heads: int, d_model: int, context: int, dropout: float
) -> GPTConfig:
    """The GPT of this recipe: GPT-2's architecture (learned positions, pre-LN, tanh GELU, tied head) with
    F = 4·D, ``max_len = context`` and one dropout rate for GPT-2's three dropout sites."""
    return GPTConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        n_heads=n_heads,
        n_layers=n_layers,
        d_ff=4 * d_model,
        max_len=context,
        dropout=dropout,
        embedding_dropout=dropout,
        attention_dropout=dropout,
    )


@torch.no_grad()
def sample_text(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> str:
    """Continue ``prompt`` by sampling (:func:`generation.sample`), reading at most the last ``max_len`` tokens.

    The learned position table has ``max_len`` rows, so a sample longer than that slides a window: each step sees
    the last ``max_len`` tokens (recomputed, no cache — exact, and cheap at these sizes). Returns the prompt and
    its continuation as text. The model is put in eval mode for the call and restored afterwards.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty str (the model needs at least one token to continue)")
    ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long)  # (1, t0)
    max_len = model.config.max_len
    device = next(model.parameters()).device

    def logits_fn(ids: Tensor, rows: Tensor) -> Tensor:
        return model(ids[:, -max_len:]).logits[:, -1, :]  # (N, ≤ max_len, V) -> (N, V)

    was_training = model.training
    model.eval()
    try:
        out = generation.sample(
            logits_fn,
            ids.to(device),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
        )
    finally:
        model.train(was_training)
    return tokenizer.decode(out[0].cpu())


def default_prompt(data: LMData) -> str:
    """The prompt of the report's sample: "The " when the tokenizer knows each of its characters (the embedded
    corpus), else the first 4 training tokens as text (a user's file may have no capital T)."""
    tok = data.tokenizer
    if tok.unk_id is None or tok.unk_id not in tok.encode("The "):
        return "The "
    return tok.decode(data.train[:4])


# -------------------------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class LMReport:
    """The numbers of a finished run (losses in nats per token of the run's tokenizer)."""

    val_loss: float
    val_perplexity: float
    unigram_loss: float  # the add-one smoothed training unigram distribution on the same validation targets
    unigram_perplexity: float
    val_tokens: int  # validation targets scored
    train_tokens: int
    vocab_size: int
    tokenizer: str  # "char" or "bpe"
    n_parameters: int
    steps: int
    seconds: float
    tokens_per_s: float  # median over the training steps
    prompt: str
    sample: str  # the prompt and its sampled continuation
    source: str


@dataclass
class LMRun:
    """What :func:`train_gpt` returns: the trained model (eval mode), its tokenizer, the training history (one
    dict per step, validation metrics at evaluation steps and at the last step) and the final report."""

    model: GPT
    tokenizer: Tokenizer
    history: list[dict[str, Any]]
    report: LMReport
    data: LMData
    trainer: Trainer


HISTORY_FILE = "history.jsonl"
TOKENIZER_FILE = "tokenizer.json"
MODEL_CONFIG_FILE = "model_config.json"


def write_history(history: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """One JSON object per line and step: ``step``, ``train_loss``, ``val_loss`` (null where the step was not
    evaluated), ``tokens_per_s``, then the rest of the record (``lr``, ``grad_norm``, ``val_perplexity`` …)."""
    path = Path(path)
    lines = []
    for record in history:
        first = {k: record.get(k) for k in ("step", "train_loss", "val_loss", "tokens_per_s")}
        lines.append(json.dumps({**first, **{k: v for k, v in record.items() if k not in first}}))
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    return path


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def train_gpt(
    data: str | os.PathLike | LMData | None = None,
    *,
    tokenizer: str = GPT_DEFAULTS["tokenizer"],
    bpe_vocab_size: int = GPT_DEFAULTS["bpe_vocab_size"],
    n_layers: int = GPT_DEFAULTS["n_layers"],
    n_heads: int = GPT_DEFAULTS["n_heads"],
    d_model: int = GPT_DEFAULTS["d_model"],
    context: int = GPT_DEFAULTS["context"],
    batch_size: int = GPT_DEFAULTS["batch_size"],
    steps: int = GPT_DEFAULTS["steps"],
    lr: float = GPT_DEFAULTS["lr"],
    min_lr: float = GPT_DEFAULTS["min_lr"],
    warmup_steps: int = GPT_DEFAULTS["warmup_steps"],
    weight_decay: float = GPT_DEFAULTS["weight_decay"],
    beta2: float = GPT_DEFAULTS["beta2"],
    grad_clip: float | None = GPT_DEFAULTS["grad_clip"],
    dropout: float = GPT_DEFAULTS["dropout"],
    eval_every: int | None = GPT_DEFAULTS["eval_every"],
    seed: int = GPT_DEFAULTS["seed"],
    eval_tokens: int | None = 50_000,
    out_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    prompt: str | None = None,
    sample_tokens: int = 200,
    temperature: float = 0.8,
    progress: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> LMRun:
    """Train a GPT on text and report validation loss, perplexity, the unigram baseline and a sample.

    ``data``: None (the embedded Python-docs corpus, its train / validation splits), a text file (cut 90 / 10 by
    :func:`split_text`) or an :class:`LMData` already loaded. ``tokenizer``: "char" or "bpe" (``bpe_vocab_size``
    ids), learned on the training text. The model is :func:`gpt_model_config`; the optimiser is the package's
    AdamW with betas (0.9, ``beta2``), decoupled ``weight_decay`` (not on biases and norm gains), the global
    gradient norm clipped to ``grad_clip`` (0 or None: no clipping) and a linear warm-up over ``warmup_steps`` to
    ``lr``, then a cosine down to ``min_lr`` at ``steps`` (:class:`TrainConfig`). Each step trains on
    ``batch_size`` random windows of ``context`` tokens (:func:`lm_batch`).

    Validation (:func:`evaluate_lm`) runs every ``eval_every`` steps and after the last one, on the first
    ``eval_tokens`` validation targets (None: all). ``seed`` seeds the weights, the batches and the sample.
    With ``out_dir`` the run writes checkpoints (every ``checkpoint_every`` steps and at the end), ``history.jsonl``
    (:func:`write_history`), ``tokenizer.json`` and ``model_config.json`` there. The sample continues ``prompt``
    for ``sample_tokens`` tokens at ``temperature`` (default prompt: :func:`default_prompt`).
    """
    for name, value in (
        ("n_layers", n_layers),
        ("n_heads", n_heads),
        ("d_model", d_model),
        ("context", context),
        ("batch_size", batch_size),
        ("steps", steps),
        ("sample_tokens", sample_tokens),
    ):
        _check_positive_int(name, value)
    if grad_clip is not None and grad_clip == 0:
        grad_clip = None  # 0 means "do not clip" (the trainer still measures the norm)
    train_config = TrainConfig(  # validated before any data is read: a bad flag fails at once
        steps=steps,
        max_lr=lr,
        min_lr=min_lr,
        warmup_steps=warmup_steps,
        schedule="cosine",
        weight_decay=weight_decay,
        betas=(0.9, beta2),
        grad_clip=grad_clip,
        eval_every=eval_every,
        out_dir=None if out_dir is None else os.fspath(out_dir),
        checkpoint_every=checkpoint_every,
        progress=progress,
        seed=seed,
    )
    gpt_model_config(1, n_layers=n_layers, n_heads=n_heads, d_model=d_model, context=context, dropout=dropout)

    lm_data = (
        data
        if isinstance(data, LMData)
        else load_lm_data(data, tokenizer=tokenizer, bpe_vocab_size=bpe_vocab_size, cache_dir=cache_dir)
    )
    train_tokens, val_tokens = lm_data.train, lm_data.validation
    if train_tokens.numel() < context + 1:
        raise ValueError(
            f"the training text has {train_tokens.numel()} tokens, fewer than context + 1 = {context + 1}; "
            "use more text or a smaller context"
        )
    if val_tokens.numel() < 2:
        raise ValueError(f"the validation text has {val_tokens.numel()} token(s); it needs at least 2")

    seed_everything(seed)
    model = GPT(
        gpt_model_config(
            lm_data.vocab_size, n_layers=n_layers, n_heads=n_heads, d_model=d_model, context=context, dropout=dropout
        )
    )

    def train_batches(generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return lm_batch(train_tokens, batch_size, context, generator=generator)  # x, y (B, T)

    def evaluate(m: nn.Module) -> dict[str, float]:
        result = evaluate_lm(m, val_tokens, context, max_tokens=eval_tokens)
        return {"val_loss": result["val_loss"], "val_perplexity": result["val_perplexity"]}

    trainer = Trainer(
        model,
        train_config,
        loss_fn=lm_loss,
        train_batches=train_batches,
        evaluate=evaluate,
        count_tokens=lambda batch: batch[0].numel(),
    )
    start = time.perf_counter()
    history = trainer.fit()
    seconds = time.perf_counter() - start

    model.eval()
    final = evaluate_lm(model, val_tokens, context, max_tokens=eval_tokens)
    if "val_loss" not in history[-1]:  # the last step always carries the final validation numbers
        history[-1].update(val_loss=final["val_loss"], val_perplexity=final["val_perplexity"])
    n_targets = int(final["val_tokens"])
    baseline = unigram_loss(train_tokens, val_tokens[1 : 1 + n_targets], lm_data.vocab_size)
    prompt = default_prompt(lm_data) if prompt is None else prompt
    sample = sample_text(
        model,
        lm_data.tokenizer,
        prompt,
        sample_tokens,
        temperature=temperature,
        generator=torch.Generator().manual_seed(seed),
    )
    report = LMReport(
        val_loss=final["val_loss"],
        val_perplexity=final["val_perplexity"],
        unigram_loss=baseline,
        unigram_perplexity=math.exp(baseline),
        val_tokens=n_targets,
        train_tokens=int(train_tokens.numel()),
        vocab_size=lm_data.vocab_size,
        tokenizer=lm_data.tokenizer.type_name,
        n_parameters=count_parameters(model),
        steps=trainer.step,
        seconds=seconds,
        tokens_per_s=statistics.median(r["tokens_per_s"] for r in history),
        prompt=prompt,
        sample=sample,
        source=lm_data.source,
    )
    if out_dir is not None:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        write_history(history, folder / HISTORY_FILE)
        lm_data.tokenizer.save(folder / TOKENIZER_FILE)
        (folder / MODEL_CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(model.config), indent=1) + "\n")
    return LMRun(
        model=model, tokenizer=lm_data.tokenizer, history=list(history), report=report, data=lm_data, trainer=trainer
    )


# ------------------------------------------------------------------------------------------ the command line

# flag -> (keyword of train_gpt, type, help). Defaults are None on the command line: None means GPT_DEFAULTS.
_FLAGS: tuple[tuple[str, str, Callable[[str], Any], str], ...] = (
    ("--data", "data", str, "a UTF-8 text file, split 90/10 into train/validation (default: the embedded corpus)"),
    ("--tokenizer", "tokenizer", str, "char or bpe (default char)"),
    ("--bpe-vocab-size", "bpe_vocab_size", int, "vocabulary size of the BPE tokenizer (default 512)"),
    ("--n-layers", "n_layers", int, "Transformer blocks (default 4)"),
    ("--n-heads", "n_heads", int, "attention heads (default 4)"),
    ("--d-model", "d_model", int, "model width D; the feed-forward width is 4·D (default 128)"),
    ("--context", "context", int, "tokens the model reads (default 64)"),
    ("--batch-size", "batch_size", int, "windows per step (default 32)"),
    ("--steps", "steps", int, "optimizer steps (default 1000)"),
    ("--lr", "lr", float, "peak learning rate (default 2e-3)"),
    ("--min-lr", "min_lr", float, "final learning rate of the cosine (default 1e-4)"),
    ("--warmup-steps", "warmup_steps", int, "linear warm-up steps (default 100, at most steps/10)"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay (default 0.1)"),
    ("--beta2", "beta2", float, "AdamW beta2 (default 0.99)"),
    ("--grad-clip", "grad_clip", float, "clip the gradient norm to this; 0 = no clipping (default 1.0)"),
    ("--dropout", "dropout", float, "dropout rate (default 0)"),
    ("--eval-every", "eval_every", int, "validate every N steps (default 100)"),
    ("--seed", "seed", int, "random seed (default 0)"),
    ("--out", "out_dir", str, "folder for checkpoints, history.jsonl and the tokenizer (default runs/<time>)"),
    ("--checkpoint-every", "checkpoint_every", int, "checkpoint every N steps (default: at the end)"),
    ("--prompt", "prompt", str, "text the sample continues (default 'The ', if every character is known)"),
    ("--sample-tokens", "sample_tokens", int, "tokens to sample after training (default 200)"),
    ("--temperature", "temperature", float, "sampling temperature (default 0.8)"),
)


def add_gpt_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the flags of ``tfs train gpt`` to ``parser`` (every one defaults to None = the recipe's default).

    A flag the parser already has (``tfs train`` shares --steps, --lr, --seed … with the other tasks) is left as
    it is; :func:`run_gpt_command` reads it by its destination name, so the shared flag serves both. Also adds
    ``--no-progress`` unless present.
    """
    existing = set(parser._option_string_actions)  # argparse's own table of the option strings already defined
    for flag, _, kind, help_text in _FLAGS:
        if flag not in existing:
            parser.add_argument(flag, type=kind, default=None, help=help_text)
    if "--no-progress" not in existing:
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _flag_dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _runs_folder(out: str | None) -> Path:
    if out is not None:
        return Path(out)
    base = Path(os.environ.get("TFS_RUNS_DIR", "runs"))
    return base / datetime.now().strftime("gpt-%Y%m%d-%H%M%S")


def gpt_kwargs_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of :func:`train_gpt` from parsed flags: given flags as they are, the others from
    ``GPT_DEFAULTS``; with ``--steps`` but no ``--warmup-steps`` the warm-up is min(100, steps // 10)."""
    kwargs: dict[str, Any] = {}
    for flag, keyword, _, _ in _FLAGS:
        value = getattr(args, _flag_dest(flag), None)
        if value is not None:
            kwargs[keyword] = value
    for keyword, default in GPT_DEFAULTS.items():
        kwargs.setdefault(keyword, default)
    if getattr(args, "steps", None) is not None and getattr(args, "warmup_steps", None) is None:
        kwargs["warmup_steps"] = min(GPT_DEFAULTS["warmup_steps"], kwargs["steps"] // 10)
    if kwargs["tokenizer"] not in TOKENIZERS:
        raise ValueError(f"--tokenizer must be one of {TOKENIZERS}, got {kwargs['tokenizer']!r}")
    return kwargs


def run_gpt_command(args: argparse.Namespace) -> int:
    """``tfs train gpt``: train (:func:`train_gpt`), then print the validation loss, perplexity, the unigram
    baseline and a sample. Bad flags or a bad ``--data`` path raise ValueError / FileNotFoundError with a
    one-line message for the caller to print. Returns the exit status 0."""
    kwargs = gpt_kwargs_from_args(args)
    folder = _runs_folder(kwargs.get("out_dir"))
    kwargs["out_dir"] = str(folder)
    run = train_gpt(**kwargs, progress=not getattr(args, "no_progress", False))
    r, c = run.report, run.model.config
    print(
        f"GPT: {c.n_layers} layers, {c.n_heads} heads, d_model {c.d_model}, context {c.max_len}, "
        f"{r.n_parameters:,} parameters"
    )
    print(
        f"data: {r.source} · {r.tokenizer} tokens, vocabulary {r.vocab_size} · {r.train_tokens:,} train / "
        f"{r.val_tokens:,} validation tokens scored"
    )
    print(f"{r.steps} steps in {r.seconds:.0f} s ({r.tokens_per_s:,.0f} tokens/s)")
    print(
        f"validation loss {r.val_loss:.4f} nats/token · perplexity {r.val_perplexity:.2f} "
        f"(unigram baseline: loss {r.unigram_loss:.4f}, perplexity {r.unigram_perplexity:.2f})"
    )
    print(f"sample (temperature {kwargs.get('temperature', 0.8)}):")
    print(r.sample)
    print(f"checkpoints, {HISTORY_FILE}, {TOKENIZER_FILE} and {MODEL_CONFIG_FILE} in {folder}/")
    return 0
