"""Training: the Trainer loop, safetensors checkpoints, losses, the AdamW optimiser, gradient clipping,
learning-rate schedules, batching and run helpers.

Each piece is written from scratch and tested against its PyTorch counterpart:
``cross_entropy`` ≡ ``F.cross_entropy``, ``AdamW`` ≡ ``torch.optim.AdamW``, ``clip_grad_norm_`` ≡
``torch.nn.utils.clip_grad_norm_``, ``cosine_with_warmup`` ≡ ``LinearLR`` followed by ``CosineAnnealingLR``.
"""

from ..functional import cross_entropy, log_softmax
from .batching import Seq2SeqBatch, lm_batch, pad_batch, pad_pairs
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
from .optim import AdamW, param_groups_for_weight_decay
from .schedules import Schedule, constant, cosine_with_warmup, inverse_sqrt, set_lr
from .trainer import History, NonFiniteLossError, TrainConfig, Trainer
from .utils import count_parameters, pick_device, seed_everything

__all__ = [
    "CheckpointError",
    "History",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model_weights",
    "prune_checkpoints",
    "save_checkpoint",
    "AdamW",
    "Schedule",
    "Seq2SeqBatch",
    "clip_grad_norm_",
    "constant",
    "cosine_with_warmup",
    "count_parameters",
    "cross_entropy",
    "grad_norm",
    "inverse_sqrt",
    "lm_batch",
    "log_softmax",
    "pad_batch",
    "pad_pairs",
    "param_groups_for_weight_decay",
    "pick_device",
    "seed_everything",
    "set_lr",
]
