"""The unchanged Trainer under torchrun with 2 CPU processes (gloo) equals one process on the whole batch."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from transformer_from_scratch.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from transformer_from_scratch.training.trainer import Trainer

WORKER = Path(__file__).with_name("ddp_worker.py")
pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available",
)


def load_worker():
    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(WORKER),
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"torchrun failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    tensors = [load_file(str(out / f"rank{r}.safetensors")) for r in range(2)]
    return out, reports, tensors


@pytest.fixture(scope="module")
def single_process():
    worker = load_worker()
    loss_fn, train_batches = worker.make_task()
    model = worker.build_model()
    rows = []

    def recording_loss(model, batch):
        rows.append(batch[0][:, 0].tolist())
        return loss_fn(model, batch)

    trainer = Trainer(model, worker.make_config(), loss_fn=recording_loss, train_batches=train_batches)
    history = trainer.fit()
    assert trainer.world_size == 1
    return model, history, rows


def test_each_rank_trains_on_its_own_half_of_every_micro_batch(ddp_run, single_process):
    _, reports, _ = ddp_run
    _, _, rows = single_process
    assert len(rows) == 6  # 3 steps × 2 micro-batches of 8 rows
    for i, whole in enumerate(rows):
        assert reports[0]["rows"][i] + reports[1]["rows"][i] == whole
        assert len(reports[0]["rows"][i]) == len(reports[1]["rows"][i]) == 4


def test_two_processes_equal_one_process_on_the_concatenated_batch(ddp_run, single_process):
    _, reports, tensors = ddp_run
    model, history, _ = single_process
    assert [r["world_size"] for r in reports] == [2, 2]
    for rank in range(2):
        for name, p in model.named_parameters():
            # float64; the only difference is the order of additions when DDP averages the two halves
            assert_close(tensors[rank][f"grad.{name}"], p.grad, rtol=1e-10, atol=1e-12)
            assert_close(tensors[rank][f"weight.{name}"], p.detach(), rtol=1e-10, atol=1e-12)
        for got, want in zip(reports[rank]["history"], history, strict=True):
            assert got["step"] == want["step"] and got["lr"] == want["lr"]
            assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-12)
            assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-10)


def test_only_rank_0_writes_checkpoints(ddp_run, single_process):
    out, reports, tensors = ddp_run
    model, _, _ = single_process
    assert len(reports[0]["saves"]) == 3 and reports[1]["saves"] == []  # checkpoint_every=1, 3 steps
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step_000002", "step_000003"]
    loaded, state = load_checkpoint(latest_checkpoint(out / "checkpoints"))
    assert state["world_size"] == 2 and {"rng.torch_cpu.rank0", "rng.torch_cpu.rank1"} <= loaded.keys()
    for name, p in model.named_parameters():
        assert_close(loaded[f"model.{name}"], p.detach(), rtol=1e-10, atol=1e-12)
