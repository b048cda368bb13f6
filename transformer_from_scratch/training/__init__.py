"""Training: the Trainer loop, safetensors checkpoints, the AdamW optimiser, gradient clipping, learning-rate
schedules and run helpers — the generic machinery, which knows no model, no dataset and no metric. (The loss,
``functional.cross_entropy``, lives beside the functional core; batches are made in ``datasets.batching``; the
recipes that put a model, its data and its measurements into a trainer live one floor up, in ``recipes/``.)
One exception knows a model's shape: ``finetune.py`` finds a pre-trained encoder by its ``bert`` attribute (its
embeddings and blocks) to freeze it, give each depth its learning rate and cache its features.

Each piece is written from scratch and tested against its PyTorch counterpart:
``AdamW`` ≡ ``torch.optim.AdamW``, ``clip_grad_norm_`` ≡
``torch.nn.utils.clip_grad_norm_``, ``cosine_with_warmup`` ≡ ``LinearLR`` followed by ``CosineAnnealingLR``.
"""

from .checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    prune_checkpoints,
    save_checkpoint,
)
from .clipping import clip_grad_norm_, grad_norm
from .finetune import (
    FreezeSummary,
    extract_features,
    finetune_param_groups,
    fit_classifier,
    fit_head,
    fit_restoring_best,
    freeze,
    predict_classes,
)
from .memory import (
    InsufficientMemoryError,
    MemoryEstimate,
    available_memory_bytes,
    check_fits_in_memory,
    estimate_training_memory,
    parameter_count,
)
from .optim import AdamW, param_groups_for_weight_decay
from .schedules import Schedule, constant, cosine_with_warmup, inverse_sqrt, set_lr
from .trainer import DivergenceError, History, NonFiniteLossError, TrainConfig, Trainer, to_device
from .utils import count_parameters, pick_device, seed_everything

__all__ = [
    "CheckpointError",
    "History",
    "DivergenceError",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "to_device",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model_weights",
    "prune_checkpoints",
    "save_checkpoint",
    "InsufficientMemoryError",
    "MemoryEstimate",
    "available_memory_bytes",
    "check_fits_in_memory",
    "estimate_training_memory",
    "parameter_count",
    "AdamW",
    "Schedule",
    "clip_grad_norm_",
    "constant",
    "cosine_with_warmup",
    "count_parameters",
    "grad_norm",
    "inverse_sqrt",
    "param_groups_for_weight_decay",
    "pick_device",
    "seed_everything",
    "set_lr",
    "FreezeSummary",
    "extract_features",
    "finetune_param_groups",
    "fit_classifier",
    "fit_head",
    "fit_restoring_best",
    "freeze",
    "predict_classes",
]
