r"""The XLNet recipe: pre-training a tiny XLNet with permuted language modelling (PLM), measured on held-out text.

The pieces, each small enough to read in one go:

    prepare_xlnet_data(...)       the BERT recipe's WordPiece tokenizer and documents, cut into windows of
                                  ``max_len`` tokens (train and held-out documents apart) -> :class:`XLNetData`
    make_windows(documents, ...)  documents -> (ids, valid): sentences joined by [SEP], consecutive windows, padded
    make_xlnet_batch(data, index, generator)   some training windows -> a :class:`~objectives.plm.PermutationBatch`
                                  (a fresh factorization order per window, the last ~1/K of it predicted)
    xlnet_loss(model, batch)      the mean cross-entropy of the predicted tokens -> (loss, {"plm_accuracy"})
    heldout_batches(data)         the held-out windows under ``heldout_orders`` fixed, seeded orders each
    evaluate_xlnet(model, data)   held-out PLM loss per predicted token against the unigram baseline, with the
                                  standard error of their difference
    xlnet_model_config(V, ...)    the recipe's model: 2 layers, D = 64, 4 heads, F = 256, no dropout
    xlnet_train_config(...)       its optimisation: 2000 steps of 32 windows, AdamW (β₂ = 0.98), warm-up + cosine
    make_xlnet_trainer(data, model_config, train_config)   a fresh XLNetLMHeadModel in a Trainer (pausable)
    train_xlnet(data, model_config, train_config)          the whole run -> Run (report: :class:`XLNetReport`)

``tfs train xlnet`` runs it as::

    data = prepare_xlnet_data()
    run = train_xlnet(data, xlnet_model_config(data.tokenizer.vocab_size), xlnet_train_config())
    run.report.plm_loss, run.report.unigram_loss, run.report.margin_sigma

The data
--------
The documents are those of the BERT recipe (``recipes/bert.py``): the embedded Python documentation corpus, its
"train" split for training and its "validation" and "test" splits — documents never seen in training — for every
reported number, tokenized by the same WordPiece tokenizer (4000 tokens, trained on the training documents and
cached). Each document becomes one stream, every sentence followed by ``[SEP]``, cut into consecutive windows of
``max_len`` tokens; the last window of a document is padded. ``[SEP]`` (and any other special token, such as
``[UNK]``) stays in the factorization order as context but is never predicted (``permute_batch``'s
``special_mask``). Each training step draws ``batch_size`` windows uniformly with replacement and a fresh order for
each from the trainer's generator; K (``k``, default 6 as XLNet-base) sets the predicted fraction, 1/K of each
window's ordinary tokens, the last ones of its order.

What the report measures
------------------------
* ``plm_loss``: the mean cross-entropy, in nats per predicted token, of the query stream's prediction of each
  held-out target — every held-out window under each of ``heldout_orders`` factorization orders drawn once from a
  generator seeded with ``heldout_seed`` (so every evaluation, and every run with the same data options, scores
  the same targets with the same contexts). A target late in its order sees most of its window, both sides.
* ``unigram_loss``: on the very same targets, the cross-entropy of the add-one smoothed unigram distribution of
  the training tokens that can be targets (ordinary tokens, not [SEP] / [UNK] / padding)::

      p(v) = (c_v + 1) / (N + V)        unigram loss = -(1/M) Σ_i log p(x_i)   over the M predicted targets

  — the best a model can do that ignores the context (``recipes.gpt.unigram_distribution``).
* ``margin`` = unigram_loss − plm_loss (> 0 when the model beats the baseline) and ``margin_std_error``: the
  standard error of the mean of the M paired per-token differences dᵢ = −log p(xᵢ) − (−log p_model(xᵢ | …)),
  s_d / √M, so ``margin_sigma`` = margin / standard error. It treats the M targets as independent. They are not
  quite: the tokens of one window, and one token under several orders, share context. ``margin_std_error_windows``
  is the cluster-robust standard error with whole windows as the independent units (√(W/(W−1)·Σ_w (D_w − m·n_w)²)
  / M, where window w holds n_w targets summing to D_w and m is the mean difference), which allows for any
  correlation inside a window (on the default corpus it is 1.7× the per-token one); quote the smaller σ.
* ``plm_accuracy`` / ``unigram_accuracy``: the fraction of the same targets whose arg-max is right, for the model
  and for the baseline (always the most frequent training token).

Choices (each one a line to change)
-----------------------------------
* Windows, not sentence pairs: XLNet pre-trains on long contiguous text; a window crosses sentence boundaries
  and the [SEP] marks them. No segment ids (one segment per window) and no Transformer-XL memory.
* The training windows are fixed (cut at the same offsets every time); what changes from step to step is the order
  and hence which tokens are predicted and from what context.
* The held-out orders are drawn with the same K as training, so the held-out targets are, like the training ones,
  the last 1/K of their orders.

Measured (default recipe: 2000 steps of 32 windows of 64 tokens, 4000 WordPiece tokens, 368k parameters; 3138
training and 340 held-out windows; ``tfs train xlnet`` on one thread of the project's 2-core machine: 171 s of
training, 175 s in all): held-out PLM loss 4.511 nats per predicted token against the unigram baseline's 6.245 over
13,367 targets (340 windows × 4 orders) — a margin of 1.735 ± 0.017 nats, 100 σ per token (58 σ with windows as
the units); top-1 accuracy 0.256 against 0.053. The held-out loss was 5.12 / 4.69 / 4.55 at steps 500 / 1000 /
1500 while the training loss fell to 3.64: past 1000 steps the model mostly learns its training windows.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import XLNetConfig
from ..datasets.corpus import Corpus, load_python_docs_corpus
from ..functional import cross_entropy
from ..models.xlnet import XLNetLMHeadModel
from ..objectives.plm import DEFAULT_K, PermutationBatch, permute_batch
from ..tokenizers.base import Tokenizer
from ..training import TrainConfig, Trainer, count_parameters, seed_everything, to_device
from .bert import _as_corpus, _tokenize_documents, train_wordpiece
from .gpt import unigram_distribution
from .runs import Report, Run, RunSetup, check_input, common_train_config, fingerprint, finish_run, fit

__all__ = [
    "XLNetData",
    "XLNetReport",
    "xlnet_model_config",
    "xlnet_train_config",
    "make_windows",
    "prepare_xlnet_data",
    "make_xlnet_batch",
    "xlnet_loss",
    "heldout_batches",
    "evaluate_xlnet",
    "make_xlnet_trainer",
    "xlnet_report",
    "train_xlnet",
]

IGNORE_INDEX = -100
HELDOUT_BATCH_SIZE = 128  # windows per held-out batch: only the evaluation's memory depends on it


# ------------------------------------------------------------------------------------------------ configs


def xlnet_model_config(
    vocab_size: int,
    *,
    n_layers: int = 2,
    n_heads: int = 4,
    d_model: int = 64,
    dropout: float = 0.0,
    pad_id: int | None = 0,
    **overrides,
) -> XLNetConfig:
    """The recipe's model: XLNet's two-stream blocks (post-LN, exact GELU, relative positions) with 2 layers,
    4 heads, D = 64, F = 4·D, one dropout rate (0) for the hidden and the attention dropout. ``overrides``
    replace any other field (e.g. ``impl="kernels"``, ``initializer_range``)."""
    base = XLNetConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        n_heads=n_heads,
        n_layers=n_layers,
        d_ff=4 * d_model,
        dropout=dropout,
        attention_dropout=dropout,
        pad_id=pad_id,
    )
    return dataclasses.replace(base, **overrides)


def xlnet_train_config(**overrides) -> TrainConfig:
    """The optimisation of this recipe: 2000 steps of 32 windows, AdamW with weight decay 0.01 and β₂ = 0.98 (as the
    BERT recipe), evaluation every 500 steps; warm-up, cosine and clipping as every recipe
    (:func:`~.runs.common_train_config`). ``overrides`` replace any field."""
    recipe = common_train_config(steps=2000, batch_size=32, weight_decay=0.01, betas=(0.9, 0.98), eval_every=500)
    return dataclasses.replace(recipe, **overrides)


# --------------------------------------------------------------------------------------------------- data


@dataclass
class XLNetData:
    """Everything a run reads, built once by :func:`prepare_xlnet_data`.

    tokenizer — the WordPiece tokenizer trained on the training documents (the BERT recipe's);
    train_documents, heldout_documents — documents -> sentences -> token ids;
    train_ids, heldout_ids (N, L) long and train_valid, heldout_valid (N, L) bool — the windows (:func:`make_windows`);
    unigram (V,) float64 — the add-one smoothed unigram distribution of the training tokens that can be targets;
    k — predict about 1/K of each window's ordinary tokens; heldout_orders, heldout_seed — the held-out orders;
    max_len — tokens per window; options — the keywords of prepare_xlnet_data that rebuild it (None: custom data).
    """

    tokenizer: Tokenizer
    train_documents: list[list[list[int]]]
    heldout_documents: list[list[list[int]]]
    train_ids: Tensor
    train_valid: Tensor
    heldout_ids: Tensor
    heldout_valid: Tensor
    unigram: Tensor
    k: float
    heldout_orders: int
    heldout_seed: int
    max_len: int
    options: dict | None = None

    def special_mask(self, ids: Tensor) -> Tensor:
        """(…) bool: True at the tokenizer's special tokens ([SEP], [UNK], [PAD], …), which are never predicted."""
        return torch.isin(ids, torch.tensor(sorted(self.tokenizer.special_ids), dtype=ids.dtype, device=ids.device))

    def fingerprint(self) -> str:
        """SHA-256 of the windows, K, the held-out orders and the options (:func:`~.runs.fingerprint`)."""
        return fingerprint(
            self.train_ids, self.heldout_ids, self.k, self.heldout_orders, self.heldout_seed, self.options
        )


def make_windows(documents: Sequence[Sequence[Sequence[int]]], max_len: int, *, sep_id: int, pad_id: int,
                 special_ids=()) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Cut each document into consecutive windows of ``max_len`` tokens -> ids (N, max_len) long, valid (N, max_len).

    A document is one stream: its sentences in order, each followed by ``sep_id``. A window never spans two
    documents; the last window of a document is padded with ``pad_id`` (valid False). Windows holding no ordinary
    token (only ids of ``special_ids`` and ``sep_id``) have nothing to predict and are left out.
    """
    _check_positive_int("max_len", max_len)
    skip = {sep_id, *special_ids}
    rows: list[list[int]] = []
    for document in documents:
        stream = [t for sentence in document for t in (*sentence, sep_id)]
        for start in range(0, len(stream), max_len):
            window = stream[start : start + max_len]
            if any(t not in skip for t in window):
                rows.append(window)
    ids = torch.full((len(rows), max_len), pad_id, dtype=torch.long)
    valid = torch.zeros((len(rows), max_len), dtype=torch.bool)
    for i, window in enumerate(rows):
        ids[i, : len(window)] = torch.tensor(window, dtype=torch.long)
        valid[i, : len(window)] = True
    return ids, valid


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k < 1:
        raise ValueError(f"k must be a number ≥ 1 (predict about 1/k of the tokens of each window), got {k!r}")


def _target_tokens(documents: list[list[list[int]]], special_ids) -> Tensor:
    """Every token of the documents that can be a target (not special), as one 1-D tensor."""
    tokens = [t for document in documents for sentence in document for t in sentence if t not in special_ids]
    if not tokens:
        raise ValueError("the training documents hold no ordinary (non-special) token")
    return torch.tensor(tokens, dtype=torch.long)


def prepare_xlnet_data(
    train: Corpus | None = None,
    heldout: Corpus | Sequence[Corpus] | None = None,
    *,
    vocab_size: int = 4000,
    max_len: int = 64,
    k: float = DEFAULT_K,
    heldout_orders: int = 4,
    heldout_seed: int = 0,
    tokenizer: Tokenizer | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> XLNetData:
    """Build the data of an XLNet pre-training run (see :class:`XLNetData` and the module docstring).

    Args:
        train: the training documents; default the "train" split of the Python documentation corpus.
        heldout: the documents every reported number is measured on; default its "validation" and "test" splits.
        vocab_size: size of the WordPiece vocabulary trained on ``train`` (``recipes.bert.train_wordpiece``, cached;
            ignored when ``tokenizer`` is given).
        max_len: tokens per window.
        k: predict about 1/K of the ordinary tokens of each window (XLNet's K; 1 predicts every token).
        heldout_orders: factorization orders drawn for each held-out window; the report averages over all of them.
        heldout_seed: seeds those orders, so every evaluation scores the same targets.
        tokenizer: a tokenizer with [PAD] and [SEP] to use instead of training one.
        cache_dir: where the corpus and the trained tokenizer are cached.
    """
    _check_positive_int("max_len", max_len)
    _check_k(k)
    _check_positive_int("heldout_orders", heldout_orders)
    if isinstance(heldout_seed, bool) or not isinstance(heldout_seed, int) or heldout_seed < 0:
        raise ValueError(f"heldout_seed must be an integer ≥ 0, got {heldout_seed!r}")
    options = None
    if train is None and heldout is None and tokenizer is None:  # the embedded corpus: a run.json can name it
        options = dict(vocab_size=vocab_size, max_len=max_len, k=k, heldout_orders=heldout_orders,
                       heldout_seed=heldout_seed)  # fmt: skip
    train = load_python_docs_corpus("train", cache_dir) if train is None else _as_corpus(train, "train")
    if heldout is None:
        heldout = [load_python_docs_corpus("validation", cache_dir), load_python_docs_corpus("test", cache_dir)]
    heldout = _as_corpus(heldout, "heldout")
    if tokenizer is None:
        tokenizer = train_wordpiece(train, vocab_size, cache_dir=cache_dir)
    elif not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"tokenizer must be a Tokenizer, got {type(tokenizer).__name__}")
    for role in ("pad_id", "sep_id"):
        if getattr(tokenizer, role) is None:
            raise ValueError(f"the tokenizer has no {role[:-3]} token; the XLNet recipe needs [PAD] and [SEP]")

    special = tokenizer.special_ids
    train_documents = _tokenize_documents(train, tokenizer)
    heldout_documents = _tokenize_documents(heldout, tokenizer)
    cut = dict(sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id, special_ids=special)
    train_ids, train_valid = make_windows(train_documents, max_len, **cut)
    heldout_ids, heldout_valid = make_windows(heldout_documents, max_len, **cut)
    for name, ids in (("train", train_ids), ("heldout", heldout_ids)):
        if ids.shape[0] == 0:
            raise ValueError(f"the {name} documents hold no ordinary token: no window to predict")
    return XLNetData(
        tokenizer=tokenizer,
        train_documents=train_documents,
        heldout_documents=heldout_documents,
        train_ids=train_ids,
        train_valid=train_valid,
        heldout_ids=heldout_ids,
        heldout_valid=heldout_valid,
        unigram=unigram_distribution(_target_tokens(train_documents, special), tokenizer.vocab_size),
        k=k,
        heldout_orders=heldout_orders,
        heldout_seed=heldout_seed,
        max_len=max_len,
        options=options,
    )


# ------------------------------------------------------------------------------------------------ batches


def make_xlnet_batch(data: XLNetData, index: Tensor, generator: torch.Generator, *, heldout: bool = False
                     ) -> PermutationBatch:  # fmt: skip
    """The windows ``index`` (B,) of the training (or held-out) set, each under a fresh factorization order drawn
    from ``generator``, its last ~1/K ordinary tokens the targets (``objectives.permute_batch``)."""
    ids, valid = (data.heldout_ids, data.heldout_valid) if heldout else (data.train_ids, data.train_valid)
    ids, valid = ids[index], valid[index]  # (B, L) each
    return permute_batch(
        ids, valid, k=data.k, special_mask=data.special_mask(ids), generator=generator, ignore_index=IGNORE_INDEX
    )


def heldout_batches(data: XLNetData, batch_size: int = HELDOUT_BATCH_SIZE) -> Iterator[tuple[Tensor, PermutationBatch]]:
    """(window index (B,), batch) for every held-out window under each of ``data.heldout_orders`` orders, drawn from
    one generator seeded with ``data.heldout_seed``: the same batches, targets and contexts at every call."""
    generator = torch.Generator().manual_seed(data.heldout_seed)
    n = data.heldout_ids.shape[0]
    for _ in range(data.heldout_orders):
        for start in range(0, n, batch_size):
            index = torch.arange(start, min(start + batch_size, n))
            yield index, make_xlnet_batch(data, index, generator, heldout=True)


# ----------------------------------------------------------------------------------------- loss and metrics


def xlnet_loss(model: nn.Module, batch: PermutationBatch) -> tuple[Tensor, dict[str, float]]:
    """The PLM loss of one batch: mean cross-entropy over its targets (``XLNetLMHeadModel``'s ``loss``), and the
    fraction of targets whose arg-max is right (``plm_accuracy``)."""
    out = model(**batch.model_inputs())
    filled = batch.labels != IGNORE_INDEX  # (B, P)
    right = (out.logits.detach().argmax(dim=-1) == batch.labels) & filled
    return out.loss, {"plm_accuracy": float(right.sum()) / max(int(filled.sum()), 1)}


def _per_target(model: nn.Module, data: XLNetData, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Over every held-out target: (model NLL, model right, label, window index), each (M,)."""
    nll, right, labels, windows = [], [], [], []
    for index, batch in heldout_batches(data):
        batch = to_device(batch, device)
        logits = model(**{k: v for k, v in batch.model_inputs().items() if k != "labels"}).logits  # (B, P, V)
        filled = batch.labels != IGNORE_INDEX  # (B, P)
        losses = cross_entropy(logits.float(), batch.labels, reduction="none")  # (B, P), 0 at empty slots
        nll.append(losses[filled].double().cpu())
        right.append((logits.argmax(dim=-1) == batch.labels)[filled].cpu())
        labels.append(batch.labels[filled].cpu())
        windows.append(index[:, None].expand(filled.shape)[filled.cpu()])
    return torch.cat(nll), torch.cat(right), torch.cat(labels), torch.cat(windows)


def _paired_margin(model_nll: Tensor, baseline_nll: Tensor, windows: Tensor) -> dict[str, float]:
    """margin = mean(baseline − model) over the M targets, its per-token standard error s_d/√M, and the
    cluster-robust one with windows as the units."""
    d = baseline_nll - model_nll  # (M,) float64: > 0 where the model beats the unigram baseline
    m = d.numel()
    if m < 2:
        raise ValueError(f"the held-out windows hold {m} predicted token(s); a standard error needs at least 2")
    mean = float(d.mean())
    se = float(d.std(unbiased=True)) / math.sqrt(m)
    _, cluster = torch.unique(windows, return_inverse=True)  # (M,) -> 0 … W-1
    w = int(cluster.max()) + 1
    sums = torch.zeros(w, dtype=torch.float64).index_add_(0, cluster, d)  # (W,) D_w
    counts = torch.zeros(w, dtype=torch.float64).index_add_(0, cluster, torch.ones_like(d))  # (W,) n_w
    se_windows = math.sqrt(w / max(w - 1, 1) * float(((sums - mean * counts) ** 2).sum())) / m
    return {
        "margin": mean,
        "margin_std_error": se,
        "margin_sigma": mean / se if se > 0 else math.inf,
        "margin_std_error_windows": se_windows,
    }


@torch.no_grad()
def evaluate_xlnet(model: XLNetLMHeadModel, data: XLNetData) -> dict[str, float]:
    """Held-out PLM loss against the unigram baseline (see the module docstring for the exact definitions).

    Returns ``plm_loss`` and ``unigram_loss`` (mean nats per predicted token, the same targets), ``margin``
    (unigram − PLM), ``margin_std_error`` (per-token, paired), ``margin_sigma`` (margin / that error),
    ``margin_std_error_windows`` (windows as the units), ``plm_accuracy``, ``unigram_accuracy``,
    ``predicted_tokens``, ``heldout_windows`` and ``heldout_orders``. The model is put in eval mode for the call
    and restored afterwards.
    """
    check_input("data", data, XLNetData, "prepare_xlnet_data")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        model_nll, right, labels, windows = _per_target(model, data, device)
    finally:
        model.train(was_training)
    baseline_nll = -data.unigram.log()[labels]  # (M,) float64
    most_frequent = int(data.unigram.argmax())
    return {
        "plm_loss": float(model_nll.mean()),
        "unigram_loss": float(baseline_nll.mean()),
        **_paired_margin(model_nll, baseline_nll, windows),
        "plm_accuracy": float(right.double().mean()),
        "unigram_accuracy": float((labels == most_frequent).double().mean()),
        "predicted_tokens": float(labels.numel()),
        "heldout_windows": float(data.heldout_ids.shape[0]),
        "heldout_orders": float(data.heldout_orders),
    }


# ---------------------------------------------------------------------------------------------------- run


@dataclass(frozen=True)
class XLNetReport(Report):
    """The held-out numbers of a finished XLNet run (:func:`evaluate_xlnet`'s, see the module docstring), after the
    model's size and the run's length (:class:`~.runs.Report`), and the objective's K."""

    plm_loss: float
    unigram_loss: float
    margin: float
    margin_std_error: float
    margin_sigma: float
    margin_std_error_windows: float
    plm_accuracy: float
    unigram_accuracy: float
    predicted_tokens: int
    heldout_windows: int
    heldout_orders: int
    k: float


def _check_fits(data: XLNetData, model_config: XLNetConfig) -> None:
    check_input("data", data, XLNetData, "prepare_xlnet_data")
    check_input("model_config", model_config, XLNetConfig, "xlnet_model_config")
    if model_config.vocab_size != data.tokenizer.vocab_size:
        raise ValueError(
            f"model_config.vocab_size={model_config.vocab_size} does not fit the data's vocabulary of "
            f"{data.tokenizer.vocab_size} tokens"
        )


def make_xlnet_trainer(data: XLNetData, model_config: XLNetConfig, train_config: TrainConfig) -> Trainer:
    """A :class:`Trainer` for a fresh :class:`XLNetLMHeadModel`, ready to ``fit()`` — :func:`train_xlnet` without the
    running, for those who want to pause (``trainer.fit(until=…)``) or look inside.

    ``train_config.seed`` seeds the weights (``seed_everything``) and the trainer's batch generator: each step draws
    ``train_config.batch_size`` windows uniformly from ``data.train_ids`` and a fresh order for each.
    """
    _check_fits(data, model_config)
    check_input("train_config", train_config, TrainConfig, "xlnet_train_config")
    seed_everything(train_config.seed)
    model = XLNetLMHeadModel(model_config)
    n = data.train_ids.shape[0]

    def train_batches(generator: torch.Generator) -> PermutationBatch:
        index = torch.randint(0, n, (train_config.batch_size,), generator=generator)
        return make_xlnet_batch(data, index, generator)

    def evaluate(m: nn.Module) -> dict[str, float]:
        metrics = evaluate_xlnet(m, data)
        return {
            "val_loss": metrics["plm_loss"],
            "val_unigram_loss": metrics["unigram_loss"],
            "val_margin_sigma": metrics["margin_sigma"],
            "val_plm_accuracy": metrics["plm_accuracy"],
        }

    return Trainer(
        model,
        train_config,
        loss_fn=xlnet_loss,
        train_batches=train_batches,
        evaluate=evaluate,
        count_tokens=lambda batch: int(batch.valid.sum()),
    )


def xlnet_report(trainer: Trainer, data: XLNetData, seconds: float) -> XLNetReport:
    """Measure a trained XLNet on the held-out windows (:func:`evaluate_xlnet`)."""
    m = evaluate_xlnet(trainer.model, data)
    counts = {name: int(m.pop(name)) for name in ("predicted_tokens", "heldout_windows", "heldout_orders")}
    return XLNetReport(
        **m, **counts, k=data.k, n_parameters=count_parameters(trainer.model), steps=trainer.step, seconds=seconds
    )


def train_xlnet(
    data: XLNetData,
    model_config: XLNetConfig,
    train_config: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
) -> Run:
    """Pre-train an :class:`XLNetLMHeadModel` with permuted language modelling on ``data`` and measure it on the
    held-out documents.

    ``data`` comes from :func:`prepare_xlnet_data`, ``model_config`` from :func:`xlnet_model_config` (its vocabulary
    must be the data's), ``train_config`` from :func:`xlnet_train_config`: its ``seed`` seeds the weights and the
    batches; with ``out_dir`` the run writes its setup, ``history.jsonl`` and checkpoints there. ``resume``: a run
    folder (its newest checkpoint) or one of its step folders, written with the same configs and data; the run
    continues in that folder when it is ``out_dir``. Returns a :class:`~.runs.Run` whose ``report`` is an
    :class:`XLNetReport`.
    """
    trainer = make_xlnet_trainer(data, model_config, train_config)
    setup = RunSetup("xlnet", model_config, train_config, data.fingerprint(), data.options, data.tokenizer)
    _, seconds = fit(trainer, setup, resume=resume)
    report = xlnet_report(trainer, data, seconds)
    return finish_run(trainer, tokenizer=data.tokenizer, report=report, data=data)
