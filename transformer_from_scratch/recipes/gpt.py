r"""The GPT recipe: a decoder-only language model trained on text, measured against the unigram baseline.

The pieces, each small enough to read in one go:

    read_text_file(path) / split_text(text)   a user's file, cut 90 / 10 into train / validation text
    lm_texts(data)                             (train text, validation text): the embedded corpus or a file
    build_tokenizer(kind, train_text)          "char" or "bpe" (byte-level BPE trained on the train text, cached)
    load_lm_data(...)                          both texts as 1-D token tensors + the tokenizer -> LMData
    lm_loss(model, batch)                      next-token cross-entropy on a (x, y) batch of ``lm_batch``
    evaluate_lm(model, tokens, context)        validation loss and perplexity, every token predicted once
    unigram_loss(train, targets, V)            the baseline: a model that ignores the context altogether
    gpt_model_config(V, ...)                   the GPT of the recipe (GPT-2's architecture, F = 4·D)
    gpt_train_config(...)                      its optimisation: 1000 steps of 32 windows, AdamW, warm-up + cosine
    generate_text(model, tokenizer, prompt, n) greedy, sampling (temperature / top-k / top-p) or beam search,
                                               sliding the context; sample_text: sampling
    make_gpt_trainer(data, model_config, train_config)   a fresh GPT in a Trainer, ready to fit
    gpt_report(trainer, data, seconds)                   validation loss, perplexity, baseline and a sample
    train_gpt(data, model_config, train_config)          the whole run -> Run (report: LMReport)

Chapter 08 and ``tfs train gpt`` run it as::

    data = load_lm_data()                                   # the embedded Python-docs corpus, characters
    run = train_gpt(data, gpt_model_config(data.vocab_size), gpt_train_config())
    run.report.val_perplexity, run.report.sample

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

import dataclasses
import hashlib
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import generation
from ..config import GPTConfig
from ..datasets.batching import lm_batch
from ..datasets.corpus import corpus_cache_dir, load_python_docs_corpus
from ..functional import cross_entropy
from ..models.gpt import GPT
from ..tokenizers import BPETokenizer, CharTokenizer, SpecialTokens, Tokenizer
from ..training import TrainConfig, Trainer, count_parameters, seed_everything
from .runs import Report, Run, RunSetup, check_input, common_train_config, fingerprint, finish_run, fit

__all__ = [
    "TOKENIZERS",
    "TRAIN_FRACTION",
    "read_text_file",
    "split_text",
    "lm_texts",
    "build_tokenizer",
    "LMData",
    "load_lm_data",
    "lm_loss",
    "evaluation_windows",
    "evaluate_lm",
    "unigram_distribution",
    "unigram_loss",
    "gpt_model_config",
    "gpt_train_config",
    "sliding_logits_fn",
    "unknown_characters",
    "generate_text",
    "sample_text",
    "default_prompt",
    "LMReport",
    "make_gpt_trainer",
    "gpt_report",
    "train_gpt",
]

TOKENIZERS = ("char", "bpe")
TRAIN_FRACTION = 0.9  # a user's file: the first 90 % of its characters train, the last 10 % validate
CHAR_SPECIAL_TOKENS = SpecialTokens(pad=None, unk="<unk>", cls=None, sep=None, mask=None)  # unk: unseen characters


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
    options: dict | None = None  # the keywords of load_lm_data that rebuild it (run.json keeps them)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def fingerprint(self) -> str:
        """SHA-256 of both token streams (:func:`~.runs.fingerprint`)."""
        return fingerprint(self.train, self.validation)


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
    path = None if data is None else os.path.abspath(data)
    options = {"data": path, "tokenizer": tokenizer, "bpe_vocab_size": bpe_vocab_size}
    return LMData(tok, _encode(tok, train_text), _encode(tok, validation_text), source, options)


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


# ------------------------------------------------------------------------------------- the recipe's settings


def gpt_model_config(
    vocab_size: int,
    *,
    n_layers: int = 4,
    n_heads: int = 4,
    d_model: int = 128,
    context: int = 64,
    dropout: float = 0.0,
    **overrides,
) -> GPTConfig:
    """The GPT of this recipe: GPT-2's architecture (learned positions, pre-LN, tanh GELU, tied head) with
    4 layers, 4 heads, D = 128, F = 4·D, ``max_len = context`` = 64 tokens and one dropout rate (0) for GPT-2's
    three dropout sites. ``overrides`` replace any other field of the config (e.g. ``impl="kernels"``)."""
    config = GPTConfig(
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
    return dataclasses.replace(config, **overrides)


def gpt_train_config(**overrides) -> TrainConfig:
    """The optimisation of this recipe: 1000 steps of 32 random windows, AdamW with β₂ = 0.99 and decoupled weight
    decay 0.1 (not on biases and norm gains), validation every 100 steps; warm-up, cosine and clipping as every
    recipe (:func:`~.runs.common_train_config`). ``overrides`` replace any field."""
    recipe = common_train_config(steps=1000, batch_size=32, weight_decay=0.1, betas=(0.9, 0.99), eval_every=100)
    return dataclasses.replace(recipe, **overrides)


def sliding_logits_fn(model: GPT) -> generation.LogitsFn:
    """Next-token logits that read at most the last ``max_len`` tokens of each hypothesis.

    The learned position table has ``max_len`` rows, so a continuation longer than that slides a window: each
    step sees the last ``max_len`` tokens (recomputed, no cache — exact, and cheap at these sizes).
    """
    max_len = model.config.max_len

    def logits_fn(ids: Tensor, rows: Tensor) -> Tensor:
        return model(ids[:, -max_len:]).logits[:, -1, :]  # (N, ≤ max_len, V) -> (N, V)

    return logits_fn


def unknown_characters(tokenizer: Tokenizer, text: str) -> list[str]:
    """The characters of ``text`` the tokenizer can only read as its unknown token (none for byte-level BPE)."""
    if tokenizer.unk_id is None:
        return []
    return sorted({ch for ch in text if not ch.isspace() and tokenizer.unk_id in tokenizer.encode(ch)})


@torch.no_grad()
def generate_text(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int,
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    beam_size: int | None = None,
    generator: torch.Generator | None = None,
) -> str:
    """Continue ``prompt``: greedy by default, sampling when ``temperature``, ``top_k`` or ``top_p`` is given
    (:func:`generation.sample`; temperature 1 unless given), beam search with ``beam_size``
    (:func:`generation.beam_search`). Each step reads the last ``max_len`` tokens (:func:`sliding_logits_fn`).
    Returns the prompt and its continuation as text; the model is in eval mode for the call, restored after."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty str (the model needs at least one token to continue)")
    sampling = temperature is not None or top_k is not None or top_p is not None
    if beam_size is not None and sampling:
        raise ValueError("choose beam_size (beam search) or temperature / top_k / top_p (sampling), not both")
    device = next(model.parameters()).device
    ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)  # (1, t0)
    logits_fn = sliding_logits_fn(model)
    was_training = model.training
    model.eval()
    try:
        if beam_size is not None:
            out = generation.beam_search(logits_fn, ids, beam_size=beam_size, max_new_tokens=max_new_tokens).sequences
        elif sampling:
            temperature = 1.0 if temperature is None else temperature
            out = generation.sample(
                logits_fn,
                ids,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
        else:
            out = generation.greedy(logits_fn, ids, max_new_tokens=max_new_tokens)
    finally:
        model.train(was_training)
    return tokenizer.decode(out[0].cpu())


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
    """Continue ``prompt`` by sampling (:func:`generate_text` with a temperature), reading at most the last
    ``max_len`` tokens. Returns the prompt and its continuation as text."""
    return generate_text(
        model,
        tokenizer,
        prompt,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        generator=generator,
    )


def default_prompt(data: LMData) -> str:
    """The prompt of the report's sample: "The " when the tokenizer knows each of its characters (the embedded
    corpus), else the first 4 training tokens as text (a user's file may have no capital T)."""
    tok = data.tokenizer
    if tok.unk_id is None or tok.unk_id not in tok.encode("The "):
        return "The "
    return tok.decode(data.train[:4])


# -------------------------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class LMReport(Report):
    """The numbers of a finished GPT run (losses in nats per token of the run's tokenizer), after the model's size
    and the run's length (:class:`~.runs.Report`)."""

    val_loss: float
    val_perplexity: float
    unigram_loss: float  # the add-one smoothed training unigram distribution on the same validation targets
    unigram_perplexity: float
    val_tokens: int  # validation targets scored
    train_tokens: int
    vocab_size: int
    tokenizer: str  # "char" or "bpe"
    tokens_per_s: float  # median over the training steps
    prompt: str
    sample: str  # the prompt and its sampled continuation
    source: str


def _check_fits(data: LMData, model_config: GPTConfig) -> None:
    """The model must read the data's tokens, and both streams must be long enough to train and to score."""
    check_input("data", data, LMData, "load_lm_data")
    check_input("model_config", model_config, GPTConfig, "gpt_model_config")
    if model_config.vocab_size != data.vocab_size:
        raise ValueError(
            f"model_config.vocab_size={model_config.vocab_size} does not fit the data's vocabulary of "
            f"{data.vocab_size} tokens; build it with gpt_model_config(data.vocab_size, ...)"
        )
    context = model_config.max_len
    if data.train.numel() < context + 1:
        raise ValueError(
            f"the training text has {data.train.numel()} tokens, fewer than context + 1 = {context + 1}; "
            "use more text or a smaller context"
        )
    if data.validation.numel() < 2:
        raise ValueError(f"the validation text has {data.validation.numel()} token(s); it needs at least 2")


def make_gpt_trainer(
    data: LMData, model_config: GPTConfig, train_config: TrainConfig, *, eval_tokens: int | None = 50_000
) -> Trainer:
    """A :class:`Trainer` for a fresh :class:`GPT` (weights seeded with ``train_config.seed``), ready to ``fit()``.

    Each step trains on ``train_config.batch_size`` random windows of ``model_config.max_len`` tokens of the
    training stream (:func:`lm_batch`); every ``eval_every`` steps :func:`evaluate_lm` scores the first
    ``eval_tokens`` validation targets (None: all).
    """
    _check_fits(data, model_config)
    context = model_config.max_len
    seed_everything(train_config.seed)
    model = GPT(model_config)

    def train_batches(generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return lm_batch(data.train, train_config.batch_size, context, generator=generator)  # x, y (B, T)

    def evaluate(m: nn.Module) -> dict[str, float]:
        result = evaluate_lm(m, data.validation, context, max_tokens=eval_tokens)
        return {"val_loss": result["val_loss"], "val_perplexity": result["val_perplexity"]}

    return Trainer(
        model,
        train_config,
        loss_fn=lm_loss,
        train_batches=train_batches,
        evaluate=evaluate,
        count_tokens=lambda batch: batch[0].numel(),
    )


def gpt_report(
    trainer: Trainer,
    data: LMData,
    seconds: float,
    *,
    eval_tokens: int | None = 50_000,
    prompt: str | None = None,
    sample_tokens: int = 200,
    temperature: float = 0.8,
) -> LMReport:
    """Measure a trained GPT: validation loss and perplexity (also written into the last history record, so the
    last step always carries the final numbers), the unigram baseline on the same targets, and a sample of
    ``sample_tokens`` tokens continuing ``prompt`` (default :func:`default_prompt`) at ``temperature``, drawn
    with a generator seeded from ``train_config.seed``."""
    model, history = trainer.model, trainer.history
    final = evaluate_lm(model, data.validation, model.config.max_len, max_tokens=eval_tokens)
    if "val_loss" not in history[-1]:
        history[-1].update(val_loss=final["val_loss"], val_perplexity=final["val_perplexity"])
    n_targets = int(final["val_tokens"])
    baseline = unigram_loss(data.train, data.validation[1 : 1 + n_targets], data.vocab_size)
    prompt = default_prompt(data) if prompt is None else prompt
    generator = torch.Generator().manual_seed(trainer.config.seed)
    sample = sample_text(model, data.tokenizer, prompt, sample_tokens, temperature=temperature, generator=generator)
    return LMReport(
        val_loss=final["val_loss"],
        val_perplexity=final["val_perplexity"],
        unigram_loss=baseline,
        unigram_perplexity=math.exp(baseline),
        val_tokens=n_targets,
        train_tokens=int(data.train.numel()),
        vocab_size=data.vocab_size,
        tokenizer=data.tokenizer.type_name,
        n_parameters=count_parameters(model),
        steps=trainer.step,
        seconds=seconds,
        tokens_per_s=statistics.median(r["tokens_per_s"] for r in history),
        prompt=prompt,
        sample=sample,
        source=data.source,
    )


def train_gpt(
    data: LMData,
    model_config: GPTConfig,
    train_config: TrainConfig,
    *,
    eval_tokens: int | None = 50_000,
    prompt: str | None = None,
    sample_tokens: int = 200,
    temperature: float = 0.8,
    resume: str | os.PathLike | None = None,
) -> Run:
    """Train a GPT on ``data`` and report validation loss, perplexity, the unigram baseline and a sample.

        ``data`` comes from :func:`load_lm_data`; ``model_config`` from :func:`gpt_model_config` (its ``max_len`` is the
        context the model reads); ``train_config`` from :func:`gpt_train_config` (its ``seed`` seeds the weights, the
        batches and the sample; with ``out_dir`` the run writes checkpoints, ``history.jsonl``, ``tokenizer.json`` and
        ``model_config.json`` there). The other options go to :func:`make_gpt_trainer` and :func:`gpt_report`;
        ``resume`` continues a run folder (or one of its checkpoints) written with the same configs and data —
    in that folder when it is ``out_dir`` (:func:`~.runs.fit`). Returns a :class:`~.runs.Run` whose
        ``report`` is an :class:`LMReport`.
    """
    if isinstance(sample_tokens, bool) or not isinstance(sample_tokens, int) or sample_tokens < 1:
        raise ValueError(f"sample_tokens must be a positive integer, got {sample_tokens!r}")
    trainer = make_gpt_trainer(data, model_config, train_config, eval_tokens=eval_tokens)
    setup = RunSetup("gpt", model_config, train_config, data.fingerprint(), data.options, data.tokenizer)
    _, seconds = fit(trainer, setup, resume=resume)
    report = gpt_report(
        trainer,
        data,
        seconds,
        eval_tokens=eval_tokens,
        prompt=prompt,
        sample_tokens=sample_tokens,
        temperature=temperature,
    )
    return finish_run(trainer, tokenizer=data.tokenizer, report=report, data=data)
