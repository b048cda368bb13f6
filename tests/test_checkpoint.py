"""Checkpoints: exact round trips, atomic writes, loud corruption errors, no pickle, and exact resumption."""

from __future__ import annotations

import json
import os
import pickle
import random

import numpy as np
import pytest
import torch
from torch import nn

from transformer_from_scratch.functional import cross_entropy
from transformer_from_scratch.training import checkpoint as ckpt
from transformer_from_scratch.training.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    load_optimizer_state,
    optimizer_state_to_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from transformer_from_scratch.training.optim import AdamW, param_groups_for_weight_decay
from transformer_from_scratch.training.trainer import TrainConfig, Trainer


def sample_tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "model.w": torch.randn(3, 4, generator=g),
        "model.w64": torch.randn(5, generator=g, dtype=torch.float64),
        "model.bf16": torch.randn(2, 2, generator=g).bfloat16(),
        "model.scalar": torch.tensor(2.5),
        "ids": torch.arange(7),
        "rng": torch.get_rng_state(),
        "view": torch.randn(4, 6, generator=g)[:, ::2],  # not contiguous
    }


def test_round_trip_is_exact_for_every_dtype(tmp_path):
    tensors = sample_tensors()
    tensors["tied"] = tensors["model.w"]  # shared memory: safetensors refuses it unless copied
    state = {"step": 3, "history": [{"step": 1, "train_loss": 0.1 + 0.2}], "name": "run"}
    path = save_checkpoint(tmp_path / "step_000003", tensors, state)
    loaded, loaded_state = load_checkpoint(path)
    assert loaded.keys() == tensors.keys()
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype and torch.equal(loaded[name], t), name
    assert loaded_state["history"] == state["history"]  # 0.30000000000000004 survives JSON exactly
    assert loaded_state["format"] == ckpt.FORMAT_VERSION and loaded_state["step"] == 3
    assert sorted(os.listdir(path)) == [ckpt.STATE_FILE, ckpt.TENSORS_FILE]
    assert os.listdir(tmp_path) == ["step_000003"]  # no temporary directory left behind


def test_saving_again_replaces_the_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "c", {"a": torch.zeros(2)}, {"step": 1})
    save_checkpoint(tmp_path / "c", {"a": torch.ones(2)}, {"step": 2})
    tensors, state = load_checkpoint(tmp_path / "c")
    assert torch.equal(tensors["a"], torch.ones(2)) and state["step"] == 2
    assert os.listdir(tmp_path) == ["c"]


def test_state_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(tmp_path / "c", {}, {"when": object()})
    assert not (tmp_path / "c").exists()


def test_a_crash_during_the_commit_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "step_000001", {"a": torch.zeros(2)}, {"step": 1})
    real_replace = os.replace

    def crash(src, dst):
        if "step_000002" in str(dst):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "step_000002", {"a": torch.ones(2)}, {"step": 2})
    monkeypatch.undo()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000001"]
    assert os.listdir(tmp_path) == ["step_000001"]  # the temporary directory was removed
    assert load_checkpoint(latest_checkpoint(tmp_path))[1]["step"] == 1


def test_list_latest_and_prune(tmp_path):
    for step in (10, 2, 100):  # numeric order, not the order of creation
        save_checkpoint(tmp_path / ckpt.checkpoint_dir_name(step), {"a": torch.zeros(1)}, {"step": step})
    (tmp_path / ".tmp-step_000200-abc").mkdir()  # leftover of an interrupted save
    (tmp_path / "notes").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000002", "step_000010", "step_000100"]
    assert latest_checkpoint(tmp_path).name == "step_000100"
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(os.listdir(tmp_path)) == ["notes", "step_000010", "step_000100"]
    assert latest_checkpoint(tmp_path / "missing") is None


# ------------------------------------------------------------------------------------------- corruption


@pytest.fixture
def saved(tmp_path):
    return save_checkpoint(tmp_path / "step_000005", sample_tensors(), {"step": 5})


def test_truncated_tensor_file_is_reported_with_its_name(saved):
    path = saved / ckpt.TENSORS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"{path}.*truncated or corrupted"):
        load_checkpoint(saved)


def test_a_flipped_byte_in_the_tensor_data_is_detected(saved):
    path = saved / ckpt.TENSORS_FILE
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # inside the tensor data: safetensors alone would load it without complaint
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{path}.*SHA-256"):
        load_checkpoint(saved)


def test_garbled_json_is_reported_with_its_name(saved):
    path = saved / ckpt.STATE_FILE
    path.write_text(path.read_text()[:-7] + "}}{garbage")
    with pytest.raises(CheckpointError, match=f"{path} is not valid JSON"):
        load_checkpoint(saved)


def test_a_state_file_without_checksum_is_rejected(saved):
    (saved / ckpt.STATE_FILE).write_text(json.dumps({"step": 5}))
    with pytest.raises(CheckpointError, match="tensors_sha256"):
        load_checkpoint(saved)


@pytest.mark.parametrize("missing", [ckpt.TENSORS_FILE, ckpt.STATE_FILE])
def test_a_missing_file_is_reported_with_its_name(saved, missing):
    (saved / missing).unlink()
    with pytest.raises(CheckpointError, match=f"{saved / missing} is missing"):
        load_checkpoint(saved)


def test_a_missing_directory_is_reported(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


# --------------------------------------------------------------------------------- models and optimizers


def test_optimizer_state_round_trips_through_safetensors_and_json(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    optimizer = AdamW(param_groups_for_weight_decay(model, 0.1), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).square().mean().backward()
        optimizer.step()
    tensors, as_json = optimizer_state_to_checkpoint(optimizer)
    assert all(name.startswith("optimizer.state.") for name in tensors)
    save_checkpoint(tmp_path / "c", tensors, {"optimizer": as_json})
    loaded_tensors, state = load_checkpoint(tmp_path / "c")

    fresh = AdamW(param_groups_for_weight_decay(model, 0.1), lr=5.0, betas=(0.1, 0.2))
    load_optimizer_state(fresh, loaded_tensors, state["optimizer"])
    before, after = optimizer.state_dict(), fresh.state_dict()
    assert after["param_groups"] == before["param_groups"]  # lr, betas (a tuple again), weight decay
    assert after["state"].keys() == before["state"].keys()
    for i, entry in before["state"].items():
        assert after["state"][i]["step"] == entry["step"] == 3
        assert torch.equal(after["state"][i]["exp_avg"], entry["exp_avg"])
        assert torch.equal(after["state"][i]["exp_avg_sq"], entry["exp_avg_sq"])


# ---------------------------------------------------------------------------------------------- resuming


class DropoutNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(5, 12)
        self.drop = nn.Dropout(0.3)  # the global RNG must be restored for the same masks to be drawn
        self.out = nn.Linear(12, 3)

    def forward(self, x):  # (B, 5) -> (B, 3)
        return self.out(self.drop(torch.relu(self.hidden(x))))


def make_trainer(out_dir, *, init_seed: int, **overrides) -> Trainer:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(40, 5, generator=g)
    y = (x.sum(dim=1) > 0).long() + (x[:, 0] > 1).long()
    val = torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)

    def loss_fn(model, batch):
        return cross_entropy(model(batch[0]), batch[1])

    def train_batches(generator):
        idx = torch.randint(0, 40, (cfg.batch_size,), generator=generator)  # (B,)
        return x[idx], y[idx]

    def evaluate(model):
        return {"val_loss": float(loss_fn(model, val))}

    torch.manual_seed(init_seed)
    model = DropoutNet()
    settings = dict(
        steps=10, batch_size=6, max_lr=2e-2, warmup_steps=3, weight_decay=0.05, grad_clip=0.5, grad_accumulation=2,
        eval_every=3, out_dir=out_dir, checkpoint_every=4, progress=False, seed=5,
    )  # fmt: skip
    cfg = TrainConfig(**(settings | overrides))
    return Trainer(model, cfg, loss_fn=loss_fn, train_batches=train_batches, evaluate=evaluate)


def test_resuming_continues_the_same_run_exactly(tmp_path):
    straight = make_trainer(tmp_path / "straight", init_seed=0)
    straight_history = straight.fit()
    assert len(straight_history) == 10

    first = make_trainer(tmp_path / "paused", init_seed=0)
    first.fit(until=5)  # a pause between two periodic checkpoints is saved too
    assert [p.name for p in list_checkpoints(tmp_path / "paused")] == ["step_000004", "step_000005"]
    torch.manual_seed(999)  # whatever happened in between must not matter
    random.seed(999)

    resumed = make_trainer(tmp_path / "paused", init_seed=1)  # a differently initialised model
    assert not torch.equal(resumed.model.hidden.weight, straight.model.hidden.weight)
    resumed.resume(tmp_path / "paused")  # an out_dir: its newest checkpoint
    assert resumed.step == 5
    resumed_history = resumed.fit()

    assert resumed_history == straight_history  # losses, lrs, grad norms and val losses, bit for bit
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name
    a, b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)


def test_resuming_with_a_different_config_is_refused_unless_asked(tmp_path):
    first = make_trainer(tmp_path, init_seed=0)
    first.fit(until=4)
    other = make_trainer(tmp_path, init_seed=0, max_lr=1e-3, steps=20)
    with pytest.raises(ValueError, match=r"different config \(max_lr: 0.02 -> 0.001\)"):
        other.resume(tmp_path)
    other.resume(tmp_path, strict=False)
    assert other.step == 4


def test_resuming_with_another_batch_size_is_refused(tmp_path):
    """The batch size is part of TrainConfig, so a checkpoint remembers it and a resumed run cannot silently draw
    other batches than the run it continues."""
    make_trainer(tmp_path, init_seed=0, batch_size=6).fit(until=4)
    other = make_trainer(tmp_path, init_seed=0, batch_size=12)
    with pytest.raises(ValueError, match=r"different config \(batch_size: 6 -> 12\)"):
        other.resume(tmp_path)


def test_the_python_and_numpy_random_states_are_restored(tmp_path):
    trainer = make_trainer(tmp_path, init_seed=0)
    trainer.fit(until=1)
    expected = (random.random(), np.random.random())  # noqa: NPY002 — the legacy global generator
    trainer.resume(tmp_path)
    assert (random.random(), np.random.random()) == expected  # noqa: NPY002


def test_load_model_weights_and_nothing_is_unpickled(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, init_seed=0)
    trainer.fit(until=2)

    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint must never be unpickled")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    model = DropoutNet()
    state = load_model_weights(latest_checkpoint(tmp_path), model)
    assert state["step"] == 2
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), trainer.model.parameters()))
    make_trainer(tmp_path, init_seed=3).resume(tmp_path)


def test_resuming_keeps_the_early_stopping_count(tmp_path):
    values = {1: 1.0, 2: 0.5, 3: 0.7, 4: 0.6, 5: 0.9, 6: 0.1}  # best at step 2, then 3 without improvement

    def run(until=None, resume=False):
        trainer = make_trainer(tmp_path, init_seed=0, eval_every=1, early_stopping_patience=3)
        trainer.evaluate = lambda model: {"val_loss": values[trainer.step]}
        if resume:
            trainer.resume(tmp_path)
        return trainer, trainer.fit(until=until)

    run(until=3)  # one evaluation without improvement so far
    trainer, history = run(resume=True)
    assert trainer.step == 5 and "did not improve for 3 evaluations (best 0.5 at step 2" in history[-1]["stop_reason"]
