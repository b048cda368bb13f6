"""Two-process training, launched by tests/test_ddp.py as

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py OUT

Every rank runs the unchanged Trainer; the trainer itself sets up the process group (gloo) and DDP. Each rank
writes its final weights, the gradients of the last step and its history to OUT, and records how often it
wrote a checkpoint. test_ddp.py imports ``build_model``, ``make_task`` and ``make_config`` from this file to
train the same task in one process on the whole batch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from transformer_from_scratch.functional import cross_entropy
from transformer_from_scratch.training import trainer as trainer_module
from transformer_from_scratch.training.trainer import TrainConfig, Trainer

GLOBAL_BATCH = 8  # rows per micro-batch over all processes; each of the 2 ranks trains on 4 of them


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def make_task():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 5, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 2] > 0.5).long()

    def loss_fn(model, batch):
        return cross_entropy(model(batch[0]), batch[1])

    def train_batches(generator):
        idx = torch.randint(0, 50, (GLOBAL_BATCH,), generator=generator)  # (B,) the same on every rank
        return x[idx], y[idx]

    return loss_fn, train_batches


def make_config(out_dir=None) -> TrainConfig:
    checkpoints = dict(out_dir=out_dir, checkpoint_every=1) if out_dir is not None else {}
    return TrainConfig(
        steps=3, max_lr=5e-2, warmup_steps=1, grad_clip=0.5, grad_accumulation=2, progress=False, seed=1, **checkpoints
    )


def main(out: Path) -> None:
    saves = []
    real_save = trainer_module.save_checkpoint

    def counting_save(directory, tensors, state):  # checkpoint.save_checkpoint, as the trainer calls it
        saves.append(str(directory))
        return real_save(directory, tensors, state)

    trainer_module.save_checkpoint = counting_save
    loss_fn, train_batches = make_task()
    model = build_model()
    seen_rows = []  # the first feature of every row this rank trained on, per micro-batch

    def recording_loss(model, batch):
        seen_rows.append(batch[0][:, 0].tolist())
        return loss_fn(model, batch)

    trainer = Trainer(model, make_config(out / "checkpoints"), loss_fn=recording_loss, train_batches=train_batches)
    history = trainer.fit()

    rank = trainer.rank
    tensors = {f"weight.{n}": p.detach().clone() for n, p in model.named_parameters()}
    tensors |= {f"grad.{n}": p.grad.clone() for n, p in model.named_parameters()}
    save_file(tensors, str(out / f"rank{rank}.safetensors"))
    report = {"world_size": trainer.world_size, "history": history, "saves": saves, "rows": seen_rows}
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
