r"""Fine-tuning a pre-trained encoder — the two ways of Devlin et al. 2019 §5.3, behind one small API.

A task model is ``model.bert`` (the encoder: ``embeddings``, blocks ``encoder.layers[0 … L-1]``, ``pooler``) plus
everything else, the task head (``model.head``). That attribute, ``ENCODER_ATTRIBUTE = "bert"``, is how every
function here finds the encoder of ``BertForSequenceClassification`` / ``TokenClassification`` /
``QuestionAnswering``; a bare ``BertModel`` is its own encoder (and has no head).

**Which weights train** — :func:`freeze` (it only sets ``requires_grad``; train / eval mode is untouched):

    "none"        everything trains                                   full fine-tuning (BERT §4)
    "embeddings"  the embedding layer (token, position, segment tables and their LayerNorm) is frozen
    "encoder"     the whole encoder is frozen — embeddings, all L blocks and the pooler — except the top
                  ``unfreeze_top`` blocks, which train together with everything above them (the pooler)

Choice for the pooler: it belongs to the encoder and is frozen with it (``unfreeze_top=0``), as in Hugging Face
feature extraction, where the pooled output of the frozen ``BertModel`` is the feature. So ``"encoder"`` with
``unfreeze_top=0`` trains exactly the head, on features that :func:`extract_features` can compute once and cache.

**Learning rates** — :func:`finetune_param_groups`: with depth d = 0 for the embeddings, d = i + 1 for block i,
d = L + 1 for the pooler and the head, and layer decay ξ (Clark et al. 2020, ELECTRA; ``None`` means ξ = 1)::

    lr_d = lr · ξ^(L + 1 - d)         encoder parts: the top block gets lr·ξ, the embeddings lr·ξ^(L+1)
    lr_head = head_lr (default lr)    the task head, whatever ξ

Each group stores ``"lr_scale" = lr_group / lr``; the :class:`~training.trainer.Trainer` (``param_groups=``) and
``schedules.set_lr`` set a group's rate to ``schedule(s) · lr_scale``, so warm-up and cosine decay scale all of
them together and keep their ratios (give the trainer ``max_lr = lr``). Biases and norm gains (1-d tensors) get
no weight decay (``optim.param_groups_for_weight_decay``); frozen parameters are left out.

**Keeping the best weights** — :func:`fit_restoring_best` runs ``trainer.fit()`` and afterwards loads the weights
of the best evaluation (an in-memory copy of the state dict, taken whenever ``config.early_stopping_metric``
improves strictly in direction ``config.early_stopping_mode`` — the trainer's own rule).

**Feature extraction** — :func:`extract_features` runs the frozen encoder once over the data (eval mode,
``torch.no_grad``) and returns the vectors the head reads: the pooled [CLS] vector, or the mean of the last hidden
states over real tokens; :func:`fit_head` trains only the head on those cached rows. With dropout 0 that is the
same computation as a frozen-encoder fine-tune on the same batches — only without L blocks of forward pass.

**The article's snippet, made real** — a ``torch.nn.Module`` has no ``fit``, and a tokenizer's output is not a
batch of tensors. The working equivalent, same shape::

    model = BertForSequenceClassification.from_pretrained(path, n_labels=2)
    encodings = tokenizer.encode_batch(train_texts, truncation=True, max_len=64, add_special_tokens=True)
    history = fit_classifier(model, encodings, train_labels, epochs=3, lr=5e-5)
    predictions = predict_classes(model, tokenizer.encode_batch(test_texts, truncation=True, max_len=64,
                                                                add_special_tokens=True))
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .optim import param_groups_for_weight_decay
from .trainer import History, TrainConfig, Trainer

__all__ = [
    "ENCODER_ATTRIBUTE",
    "FREEZE_MODES",
    "FreezeSummary",
    "freeze",
    "finetune_param_groups",
    "fit_restoring_best",
    "extract_features",
    "fit_head",
    "fit_classifier",
    "predict_classes",
]

ENCODER_ATTRIBUTE = "bert"
FREEZE_MODES = ("none", "embeddings", "encoder")


def _encoder_of(model: nn.Module) -> nn.Module:
    """``model.bert`` for a task model, ``model`` itself for a bare encoder (one with embeddings and encoder)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    encoder = getattr(model, ENCODER_ATTRIBUTE, model)
    if not (hasattr(encoder, "embeddings") and hasattr(getattr(encoder, "encoder", None), "layers")):
        raise TypeError(
            f"cannot find the encoder of {type(model).__name__}: expected a BERT task model with "
            f"model.{ENCODER_ATTRIBUTE} (embeddings + encoder.layers), or a BertModel"
        )
    return encoder


def _n_params(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


@dataclass(frozen=True)
class FreezeSummary:
    """What :func:`freeze` left trainable: parameter counts (shared parameters counted once)."""

    mode: str
    unfreeze_top: int
    trainable: int
    total: int

    @property
    def frozen(self) -> int:
        return self.total - self.trainable


def freeze(model: nn.Module, mode: str = "encoder", *, unfreeze_top: int = 0) -> FreezeSummary:
    """Set ``requires_grad`` of every parameter of ``model`` for fine-tuning mode ``mode`` (module docstring).

    Every call starts from "everything trains", so calls do not accumulate. ``unfreeze_top`` (only with
    ``mode="encoder"``) is in [0, L]. Returns the trainable / total parameter counts.
    """
    encoder = _encoder_of(model)
    if mode not in FREEZE_MODES:
        raise ValueError(f"mode must be one of {FREEZE_MODES}, got {mode!r}")
    n_layers = len(encoder.encoder.layers)
    if isinstance(unfreeze_top, bool) or not isinstance(unfreeze_top, int) or not 0 <= unfreeze_top <= n_layers:
        raise ValueError(f"unfreeze_top must be an integer in [0, {n_layers}], got {unfreeze_top!r}")
    if unfreeze_top and mode != "encoder":
        raise ValueError(f"unfreeze_top={unfreeze_top} only applies to mode='encoder', got mode={mode!r}")
    model.requires_grad_(True)
    if mode == "embeddings":
        encoder.embeddings.requires_grad_(False)
    elif mode == "encoder":
        encoder.requires_grad_(False)
        for block in encoder.encoder.layers[n_layers - unfreeze_top :]:
            block.requires_grad_(True)
        if unfreeze_top and getattr(encoder, "pooler", None) is not None:
            encoder.pooler.requires_grad_(True)  # above the top block: it trains with the blocks below it
    trainable = _n_params(p for p in model.parameters() if p.requires_grad)
    return FreezeSummary(mode, unfreeze_top, trainable, _n_params(model.parameters()))


_freeze = freeze  # fit_classifier's argument ``freeze`` shadows the function


def _check_rate(name: str, value, *, positive: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '≥ 0'}, got {value!r}")
    return float(value)


def finetune_param_groups(
    model: nn.Module,
    *,
    lr: float,
    head_lr: float | None = None,
    weight_decay: float = 0.01,
    layer_decay: float | None = None,
) -> list[dict]:
    """AdamW param groups of the trainable parameters of a task model, one learning rate per depth.

    Formulas in the module docstring. Each group is ``{"params", "weight_decay", "lr", "lr_scale", "name"}``
    (``name``: "embeddings", "block 3", "pooler", "head"; a decayed and a non-decayed group per name), ready for
    ``Trainer(..., param_groups=...)`` with ``TrainConfig(max_lr=lr)`` or for :class:`~training.optim.AdamW`.
    Everything outside ``model.bert`` is the head. Empty groups (all frozen) are left out.
    """
    encoder = _encoder_of(model)
    lr = _check_rate("lr", lr, positive=True)
    head_lr = lr if head_lr is None else _check_rate("head_lr", head_lr)
    _check_rate("weight_decay", weight_decay)
    xi = 1.0 if layer_decay is None else _check_rate("layer_decay", layer_decay, positive=True)
    if xi > 1.0:
        raise ValueError(f"layer_decay must be in (0, 1] (lower blocks learn more slowly), got {layer_decay!r}")
    n_layers = len(encoder.encoder.layers)
    parts: list[tuple[str, nn.Module, float]] = [("embeddings", encoder.embeddings, lr * xi ** (n_layers + 1))]
    parts += [(f"block {i}", block, lr * xi ** (n_layers - i)) for i, block in enumerate(encoder.encoder.layers)]
    if getattr(encoder, "pooler", None) is not None:
        parts.append(("pooler", encoder.pooler, lr))
    # The head: every parameter of the model outside the encoder, collected into one module-like list.
    in_encoder = {id(p) for p in encoder.parameters()}
    head = nn.ParameterList([p for p in model.parameters() if id(p) not in in_encoder])
    if encoder is not model:
        parts.append(("head", head, head_lr))
    groups = []
    for name, module, group_lr in parts:
        for g in param_groups_for_weight_decay(module, weight_decay):  # only requires_grad parameters
            groups.append({**g, "lr": group_lr, "lr_scale": group_lr / lr, "name": name})
    if not groups:
        raise ValueError("the model has no trainable parameters: everything is frozen (see freeze())")
    return groups


def fit_restoring_best(trainer: Trainer) -> History:
    """``trainer.fit()``, then load the weights of its best evaluation back into ``trainer.model``.

    "Best" is the trainer's rule: the first non-NaN value of ``config.early_stopping_metric``, then any strictly
    better one in direction ``config.early_stopping_mode`` (early_stopping_patience may be None: every
    evaluation still counts). The copy lives in memory (a clone of the state dict, taken at each improvement).
    The last history record gets ``"restored_step"``: the step whose weights the model now holds (the last step
    when there was no evaluation). Single process only.
    """
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer must be a Trainer, got {type(trainer).__name__}")
    if trainer.evaluate is None or trainer.config.eval_every is None:
        raise ValueError("fit_restoring_best needs evaluations: give the Trainer evaluate= and config.eval_every")
    cfg, evaluate = trainer.config, trainer.evaluate
    best: dict[str, Any] = {"value": None, "step": None, "state": None}

    def watched(model: nn.Module) -> dict[str, float]:
        metrics = evaluate(model)
        if cfg.early_stopping_metric not in metrics:
            raise ValueError(
                f"early_stopping_metric={cfg.early_stopping_metric!r} is not among the metrics evaluate returned: "
                f"{sorted(metrics)}"
            )
        value, old = float(metrics[cfg.early_stopping_metric]), best["value"]
        if old is None:
            better = not math.isnan(value)
        else:
            better = value < old if cfg.early_stopping_mode == "min" else value > old
        if better:
            state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            best.update(value=value, step=trainer.step, state=state)
        return metrics

    trainer.evaluate = watched
    try:
        history = trainer.fit()
    finally:
        trainer.evaluate = evaluate
    if best["state"] is not None:
        trainer.model.load_state_dict(best["state"])  # copies into the same parameters: the optimizer still fits
    if history:
        history[-1]["restored_step"] = best["step"] if best["step"] is not None else trainer.step
    return history


# ------------------------------------------------------------------------------------ feature extraction


def _is_encodings(x) -> bool:
    return all(isinstance(getattr(x, k, None), Tensor) for k in ("ids", "segment_ids", "valid"))


def _check_encodings(name: str, encodings) -> Any:
    """An ``EncodedBatch`` (``tokenizers.base``) — recognised by its ``ids``, ``segment_ids`` and ``valid`` (B, L)
    tensors, since training/ imports nothing else of the package."""
    if not _is_encodings(encodings):
        raise TypeError(
            f"{name} must be an EncodedBatch (tokenizer.encode_batch(texts, truncation=True, max_len=..., "
            f"add_special_tokens=True)), got {type(encodings).__name__}"
        )
    if encodings.ids.dim() != 2 or encodings.valid.shape != encodings.ids.shape:
        raise ValueError(
            f"{name}.ids and .valid must both be (B, L), got {tuple(encodings.ids.shape)} and "
            f"{tuple(encodings.valid.shape)}"
        )
    return encodings


def _rows(encodings, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(ids, segment_ids, valid) of the chosen rows: (B, L) each."""
    return encodings.ids[index], encodings.segment_ids[index], encodings.valid[index]


@torch.no_grad()
def extract_features(encoder_model: nn.Module, batches: Any | Iterable[Any], *, pooling: str | None = None) -> Tensor:
    """The vectors a sequence-classification head reads, computed once: (N, D), rows in the order of ``batches``.

    ``encoder_model``: a task model (its ``bert`` is used) or a ``BertModel``. ``pooling``: "cls" (the tanh
    pooler over [CLS]; needs a pooler) or "mean" (the mean over real tokens); default: the model's own
    ``pooling`` attribute, else "cls" when there is a pooler, else "mean". Runs in eval mode (dropout off)
    under ``torch.no_grad``; the model's mode is restored afterwards.
    """
    encoder = _encoder_of(encoder_model)
    if pooling is None:
        pooling = getattr(encoder_model, "pooling", "cls" if getattr(encoder, "pooler", None) is not None else "mean")
    if pooling not in ("cls", "mean"):
        raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
    if pooling == "cls" and getattr(encoder, "pooler", None) is None:
        raise ValueError("pooling='cls' needs the encoder's pooler, and this encoder has none; use pooling='mean'")
    batches = [batches] if _is_encodings(batches) else list(batches)
    if not batches:
        raise ValueError("batches is empty: nothing to extract features from")
    device = next(encoder.parameters()).device
    was_training, out = encoder.training, []
    encoder.eval()
    try:
        for i, batch in enumerate(batches):
            _check_encodings(f"batches[{i}]", batch)
            ids, seg, valid = batch.ids.to(device), batch.segment_ids.to(device), batch.valid.to(device)
            h = encoder(ids, token_type_ids=seg, valid=valid)
            if pooling == "cls":
                out.append(h.pooled)  # tanh(W h[:, 0] + b): (B, D)
            else:  # pooling.mean_pool, written out (training/ imports nothing else of the package)
                weights = valid.to(h.last_hidden_state.dtype).unsqueeze(-1)  # (B, T) -> (B, T, 1)
                total = (h.last_hidden_state * weights).sum(dim=1)  # (B, T, D) -> (B, D)
                out.append(total / weights.sum(dim=1).clamp(min=1.0))  # (B, D) / (B, 1)
    finally:
        encoder.train(was_training)
    return torch.cat(out)  # (N, D)


def _check_labels(labels, n: int, name: str = "labels") -> Tensor:
    if not isinstance(labels, Tensor):
        if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
            raise TypeError(f"{name} must be a sequence of class ids or a tensor, got {type(labels).__name__}")
        if not all(isinstance(y, int) and not isinstance(y, bool) for y in labels):
            raise TypeError(f"{name} must be integer class ids (map label names to ids first), got {list(labels)[:3]}")
        labels = torch.tensor(list(labels), dtype=torch.long)
    if labels.dim() != 1 or labels.dtype != torch.long or labels.shape[0] != n:
        raise ValueError(
            f"{name} must be {n} integer class ids (shape ({n},), long), got {tuple(labels.shape)} {labels.dtype}"
        )
    return labels


def fit_head(
    features: Tensor, labels, head: nn.Module, config: TrainConfig, *, param_groups: list[dict] | None = None
) -> History:
    """Train ``head`` alone on cached features with the :class:`Trainer`: loss = cross-entropy(head(x_b), y_b).

    ``features`` (N, D) from :func:`extract_features`; ``labels`` (N,) class ids; each step draws
    ``config.batch_size`` row indices with ``torch.randint(N, generator=…)`` — the trainer's generator, so a
    frozen-encoder fine-tune whose ``train_batches`` draws the same indices sees the same examples.
    """
    if not isinstance(features, Tensor) or features.dim() != 2 or not features.is_floating_point():
        raise ValueError(f"features must be a float tensor of shape (N, D), got {getattr(features, 'shape', features)}")
    labels = _check_labels(labels, features.shape[0])
    n = features.shape[0]

    def loss_fn(module, batch):
        x, y = batch  # (B, D), (B,)
        return F.cross_entropy(module(x), y)  # mean over the batch, as heads.classification_loss

    def train_batches(generator):
        index = torch.randint(0, n, (config.batch_size,), generator=generator)  # (B,)
        return features[index], labels[index]

    trainer = Trainer(head, config, loss_fn=loss_fn, train_batches=train_batches, param_groups=param_groups)
    return trainer.fit()


# ------------------------------------------------------------------------------------- the article's fit


def fit_classifier(
    model: nn.Module,
    encodings: Any,
    labels,
    *,
    epochs: int = 3,
    batch_size: int = 16,
    lr: float = 5e-5,
    validation: tuple[Any, Any] | None = None,
    freeze: str = "none",
    seed: int = 0,
    progress: bool = False,
    autocast: str | None = None,
) -> History:
    """``model.fit(encodings, labels)`` for a ``BertForSequenceClassification``: train it in place, return the history.

    ``encodings``: ``tokenizer.encode_batch(texts, truncation=True, max_len=…, add_special_tokens=True)``;
    ``labels``: N class ids. The run: ``epochs · ⌈N / batch_size⌉`` AdamW steps (weight decay 0.01, none on
    biases and norm gains), each on ``batch_size`` distinct random examples; linear warm-up over the first 10%
    of the steps, then cosine to 0, peak ``lr`` (BERT's 5e-5 for a pre-trained encoder); gradient clipping at
    1.0. ``freeze``: a :func:`freeze` mode. With ``validation=(encodings, labels)`` the model is evaluated after
    every epoch (``val_loss``, ``val_accuracy``) and ends with the weights of the epoch of lowest ``val_loss``.
    The model is left in eval mode. ``autocast`` ("bf16" / "fp16" / None): mixed precision for the training
    steps, entered afresh by the trainer at every step — do not wrap the whole call in one ``torch.autocast``
    region instead: autocast keeps its low-precision copy of each weight until the region ends, so every step would
    run on the first step's weights (unless ``cache_enabled=False``).
    """
    encodings = _check_encodings("encodings", encodings)
    n = len(encodings)
    labels = _check_labels(labels, n)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
            raise ValueError(f"{name} must be an integer ≥ {0 if name == 'seed' else 1}, got {value!r}")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
    _freeze(model, freeze)
    steps_per_epoch = math.ceil(n / batch_size)
    steps = epochs * steps_per_epoch
    evaluate = None
    if validation is not None:
        if not (isinstance(validation, tuple) and len(validation) == 2):
            raise TypeError("validation must be a pair (encodings, labels) or None")
        val_enc = _check_encodings("validation[0]", validation[0])
        val_labels = _check_labels(validation[1], len(val_enc), "validation[1]")

        def evaluate(m):
            logits = _logits(m, val_enc, 64)  # (N_val, n_labels)
            return {
                "val_loss": float(F.cross_entropy(logits, val_labels.to(logits.device))),
                "val_accuracy": float((logits.argmax(-1).cpu() == val_labels).float().mean()),
            }

    config = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        max_lr=lr,
        warmup_steps=steps // 10,
        eval_every=steps_per_epoch if evaluate is not None else None,
        early_stopping_metric="val_loss",
        progress=progress,
        seed=seed,
        autocast=autocast,
    )

    def loss_fn(m, batch):
        ids, seg, valid, y = batch
        out = m(ids, token_type_ids=seg, valid=valid, labels=y)
        accuracy = float((out.logits.detach().argmax(-1) == y).float().mean())
        return out.loss, {"accuracy": accuracy}

    def train_batches(generator):
        index = torch.randperm(n, generator=generator)[:batch_size]  # (B,) distinct examples
        return (*_rows(encodings, index), labels[index])

    trainer = Trainer(model, config, loss_fn=loss_fn, train_batches=train_batches, evaluate=evaluate)
    history = fit_restoring_best(trainer) if evaluate is not None else trainer.fit()
    model.eval()
    return history


@torch.no_grad()
def _logits(model: nn.Module, encodings, batch_size: int) -> Tensor:
    device = next(model.parameters()).device
    was_training, out = model.training, []
    model.eval()
    try:
        for start in range(0, len(encodings), batch_size):
            index = torch.arange(start, min(start + batch_size, len(encodings)))
            ids, seg, valid = (t.to(device) for t in _rows(encodings, index))
            out.append(model(ids, token_type_ids=seg, valid=valid).logits)  # (b, n_labels)
    finally:
        model.train(was_training)
    return torch.cat(out)  # (N, n_labels)


def predict_classes(model: nn.Module, encodings, *, batch_size: int = 64) -> Tensor:
    """The most likely class of every row of ``encodings``: (N,) long, computed in eval mode without gradients."""
    encodings = _check_encodings("encodings", encodings)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    return _logits(model, encodings, batch_size).argmax(-1).cpu()
