"""The training loop: accumulation, clipping, schedule, evaluation, early stopping, NaN handling, autocast.

The strongest test rebuilds the loop by hand (our AdamW, schedule, clipping, the same batches and dropout
draws) and demands bit-identical weights; the others pin one behaviour each.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from transformer_from_scratch.attention import MultiHeadAttention
from transformer_from_scratch.functional import cross_entropy
from transformer_from_scratch.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from transformer_from_scratch.training.clipping import clip_grad_norm_
from transformer_from_scratch.training.optim import AdamW, param_groups_for_weight_decay
from transformer_from_scratch.training.schedules import cosine_with_warmup, set_lr
from transformer_from_scratch.training.trainer import DivergenceError, NonFiniteLossError, TrainConfig, Trainer, _shard

N_ROWS, D_IN, N_CLASSES = 64, 6, 3


class TinyNet(nn.Module):
    """A 2-layer MLP with dropout (so the global RNG matters) — any nn.Module fits the trainer."""

    def __init__(self, dropout: float = 0.1):
        super().__init__()
        self.hidden = nn.Linear(D_IN, 16)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(16, N_CLASSES)

    def forward(self, x):  # (B, D_IN) -> (B, N_CLASSES)
        return self.out(self.drop(torch.tanh(self.hidden(x))))


def make_data(dtype=torch.float32):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(N_ROWS, D_IN, generator=g, dtype=dtype)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()  # 3 learnable classes
    return x, y


def make_task(batch_size: int = 8, dtype=torch.float32):
    x, y = make_data(dtype)

    def loss_fn(model, batch):
        xb, yb = batch
        return cross_entropy(model(xb), yb)

    def train_batches(generator):
        idx = torch.randint(0, N_ROWS, (batch_size,), generator=generator)  # (B,)
        return x[idx], y[idx]

    return loss_fn, train_batches


def config(**overrides) -> TrainConfig:
    base = dict(steps=6, max_lr=1e-2, warmup_steps=1, weight_decay=0.1, grad_clip=1.0, progress=False, seed=3)
    return TrainConfig(**(base | overrides))


# ------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(steps=0), "steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(max_lr=-1.0), "max_lr"),
        (dict(min_lr=0.5, max_lr=0.1), "min_lr"),
        (dict(schedule="linear"), "schedule"),
        (dict(warmup_steps=6), "warmup_steps"),
        (dict(schedule="inverse_sqrt", warmup_steps=0), "warmup_steps"),
        (dict(betas=(0.9, 1.0)), r"betas\[1\]"),
        (dict(grad_clip=0.0), "grad_clip"),
        (dict(grad_accumulation=0), "grad_accumulation"),
        (dict(early_stopping_patience=2), "eval_every"),
        (dict(eval_every=1, early_stopping_mode="lowest"), "early_stopping_mode"),
        (dict(checkpoint_every=2), "out_dir"),
        (dict(autocast="fp8"), "autocast"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        config(**overrides)


def test_config_is_frozen_and_round_trips_through_json():
    cfg = config(out_dir="runs/x", checkpoint_every=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3
    assert TrainConfig(**cfg.to_json()) == cfg  # betas list -> tuple again


def test_inverse_sqrt_schedule_peaks_at_max_lr_after_warmup():
    cfg = config(schedule="inverse_sqrt", warmup_steps=4, steps=20, max_lr=0.01)
    lrs = [cfg.lr_at(s) for s in range(1, 21)]
    assert max(lrs) == pytest.approx(0.01, rel=1e-12) and lrs.index(max(lrs)) == 3
    assert lrs[15] == pytest.approx(0.01 * (4 / 16) ** 0.5, rel=1e-12)  # 1/√s decay after the peak


# -------------------------------------------------------------------------------------- the loop itself


def test_trainer_equals_a_hand_written_loop_bit_for_bit():
    """AdamW + cosine warm-up via set_lr + clipping + accumulation of 2, with dropout: identical weights."""
    loss_fn, train_batches = make_task(batch_size=4)
    cfg = config(steps=5, warmup_steps=2, grad_accumulation=2, grad_clip=0.05)

    torch.manual_seed(0)
    model = TinyNet()
    reference = copy.deepcopy(model)  # draws nothing from the global RNG
    history = Trainer(model, cfg, loss_fn=loss_fn, train_batches=train_batches).fit()

    torch.manual_seed(0)
    TinyNet()  # consume the same initialisation draws, so dropout sees the same global RNG stream
    optimizer = AdamW(param_groups_for_weight_decay(reference, 0.1), lr=0.0, weight_decay=0.1)
    generator = torch.Generator().manual_seed(3)
    losses = []
    for step in range(1, 6):
        set_lr(optimizer, cosine_with_warmup(step, 1e-2, 0.0, 2, 5))
        optimizer.zero_grad()
        total = 0.0
        for _ in range(2):
            loss = loss_fn(reference, train_batches(generator))
            (loss / 2).backward()
            total += float(loss.detach())
        clip_grad_norm_(list(reference.parameters()), 0.05)
        optimizer.step()
        losses.append(total / 2)

    assert [r["train_loss"] for r in history] == losses
    assert [r["lr"] for r in history] == [cosine_with_warmup(s, 1e-2, 0.0, 2, 5) for s in range(1, 6)]
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name


def test_two_micro_batches_of_4_equal_one_batch_of_8():
    x, y = make_data(torch.float64)
    xb, yb = x[:8], y[:8]

    def loss_fn(model, batch):
        return cross_entropy(model(batch[0]), batch[1])

    def run(accumulation: int):
        torch.manual_seed(0)
        model = TinyNet(dropout=0.0).double()
        calls = iter(range(accumulation))

        def train_batches(generator):
            i, rows = next(calls), 8 // accumulation  # micro-batch i: rows [i·rows, (i+1)·rows)
            return xb[i * rows : (i + 1) * rows], yb[i * rows : (i + 1) * rows]

        cfg = config(steps=1, schedule="constant", grad_accumulation=accumulation, grad_clip=None)
        history = Trainer(model, cfg, loss_fn=loss_fn, train_batches=train_batches).fit()
        return model, history

    torch.manual_seed(0)
    by_hand = TinyNet(dropout=0.0).double()
    expected_loss = loss_fn(by_hand, (xb, yb))  # the mean over all 8 rows
    expected_loss.backward()

    for accumulation in (1, 2):
        model, history = run(accumulation)
        assert history[0]["train_loss"] == pytest.approx(float(expected_loss.detach()), rel=1e-12, abs=0)
        # the gradients of the last step stay on the parameters until the next step zeroes them
        for p, q in zip(model.parameters(), by_hand.parameters()):
            assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12)
        expected_norm = math.sqrt(sum(float((q.grad**2).sum()) for q in by_hand.parameters()))
        assert history[0]["grad_norm"] == pytest.approx(expected_norm, rel=1e-10)


def test_clipping_caps_the_global_gradient_norm_and_logs_the_norm_before_clipping():
    loss_fn, train_batches = make_task()
    torch.manual_seed(0)
    model = TinyNet(dropout=0.0)
    history = Trainer(
        model, config(steps=1, schedule="constant", grad_clip=1e-3), loss_fn=loss_fn, train_batches=train_batches
    ).fit()
    clipped = math.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters()))
    assert history[0]["grad_norm"] > 1e-2  # what was measured: the unclipped norm
    assert clipped == pytest.approx(1e-3, rel=1e-4)  # what the optimizer saw


def test_training_reduces_the_loss():
    loss_fn, train_batches = make_task(batch_size=16)
    torch.manual_seed(0)
    history = Trainer(TinyNet(), config(steps=60, max_lr=3e-2), loss_fn=loss_fn, train_batches=train_batches).fit()
    first, last = history[0]["train_loss"], sum(r["train_loss"] for r in history[-10:]) / 10
    assert last < 0.6 * first


def test_metrics_from_loss_fn_are_averaged_and_tokens_per_second_reported():
    loss_fn, train_batches = make_task(batch_size=4)
    calls = []

    def loss_with_metrics(model, batch):
        calls.append(len(calls) + 1)
        return loss_fn(model, batch), {"call": float(calls[-1])}

    torch.manual_seed(0)
    history = Trainer(
        TinyNet(),
        config(steps=2, grad_accumulation=2),
        loss_fn=loss_with_metrics,
        train_batches=train_batches,
        count_tokens=lambda batch: batch[0].shape[0],
    ).fit()
    assert [r["train_call"] for r in history] == [1.5, 3.5]  # mean of calls (1, 2) and (3, 4)
    assert all(r["tokens_per_s"] > 0 for r in history)


def test_a_model_left_in_eval_mode_is_trained_in_train_mode():
    loss_fn, train_batches = make_task()
    modes = []

    def recording_loss(model, batch):
        modes.append(model.training)
        return loss_fn(model, batch)

    model = TinyNet().eval()
    Trainer(model, config(steps=2), loss_fn=recording_loss, train_batches=train_batches).fit()
    assert modes == [True, True]


def test_fit_until_pauses_and_a_second_fit_continues():
    loss_fn, train_batches = make_task()
    torch.manual_seed(0)
    trainer = Trainer(TinyNet(), config(steps=6), loss_fn=loss_fn, train_batches=train_batches)
    assert [r["step"] for r in trainer.fit(until=2)] == [1, 2]
    assert [r["step"] for r in trainer.fit()] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="until"):
        trainer.fit(until=7)


# ------------------------------------------------------------------------------ evaluation, early stopping


def scripted(values):
    """An evaluate() that returns the given validation losses in order, and counts its calls."""
    it = iter(values)
    seen_modes = []

    def evaluate(model):
        seen_modes.append((model.training, torch.is_grad_enabled()))
        return {"val_loss": next(it), "val_other": 1.0}

    evaluate.seen_modes = seen_modes
    return evaluate


def test_evaluation_runs_every_eval_every_steps_in_eval_mode_without_grad():
    loss_fn, train_batches = make_task()
    evaluate = scripted([3.0, 2.0, 1.0])
    torch.manual_seed(0)
    history = Trainer(
        TinyNet(), config(steps=6, eval_every=2), loss_fn=loss_fn, train_batches=train_batches, evaluate=evaluate
    ).fit()
    assert [r.get("val_loss") for r in history] == [None, 3.0, None, 2.0, None, 1.0]
    assert evaluate.seen_modes == [(False, False)] * 3


@pytest.mark.parametrize(
    "mode, values, patience, stop_step, best",
    [
        # best at the 3rd evaluation (step 6); three evaluations without improvement -> stop at step 12
        ("min", [3.0, 2.0, 1.0, 1.5, 1.2, 1.0, 0.1, 0.1], 3, 12, 1.0),
        # max: best 3.0 at step 6; two evaluations below it -> stop at step 10
        ("max", [1.0, 2.0, 3.0, 2.5, 2.9, 4.0], 2, 10, 3.0),
    ],
)
def test_early_stopping_after_patience_evaluations_without_improvement(mode, values, patience, stop_step, best):
    loss_fn, train_batches = make_task()
    cfg = config(steps=20, eval_every=2, early_stopping_patience=patience, early_stopping_mode=mode)
    torch.manual_seed(0)
    trainer = Trainer(TinyNet(), cfg, loss_fn=loss_fn, train_batches=train_batches, evaluate=scripted(values))
    history = trainer.fit()
    assert len(history) == stop_step and history[-1]["step"] == stop_step
    reason = history[-1]["stop_reason"]
    assert reason == trainer.stop_reason
    assert f"val_loss did not improve for {patience} evaluations" in reason and f"best {best} at step 6" in reason
    assert all("stop_reason" not in r for r in history[:-1])
    assert trainer.fit() == history  # a stopped run stays stopped


def test_early_stopping_on_a_metric_evaluate_does_not_return_is_an_error():
    loss_fn, train_batches = make_task()
    cfg = config(eval_every=1, early_stopping_patience=1, early_stopping_metric="val_acc")
    trainer = Trainer(TinyNet(), cfg, loss_fn=loss_fn, train_batches=train_batches, evaluate=scripted([1.0]))
    with pytest.raises(ValueError, match="val_acc.*val_loss"):
        trainer.fit()


def test_early_stopping_without_evaluate_is_an_error():
    loss_fn, train_batches = make_task()
    with pytest.raises(ValueError, match="evaluate"):
        Trainer(
            TinyNet(), config(eval_every=1, early_stopping_patience=1), loss_fn=loss_fn, train_batches=train_batches
        )


# ------------------------------------------------------------------------------------- failures, output


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, bad):
    loss_fn, train_batches = make_task()
    calls = []

    def poisoned(model, batch):
        calls.append(None)
        loss = loss_fn(model, batch)
        return loss * bad if len(calls) == 5 else loss  # step 5 goes bad

    torch.manual_seed(0)
    model = TinyNet()
    cfg = config(steps=10, out_dir=tmp_path, checkpoint_every=1)
    trainer = Trainer(model, cfg, loss_fn=poisoned, train_batches=train_batches)
    with pytest.raises(NonFiniteLossError, match=f"loss became {bad} at step 5") as caught:
        trainer.fit()
    assert caught.value.step == 5
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000003", "step_000004"]  # keep_checkpoints=2
    assert caught.value.checkpoint == latest_checkpoint(tmp_path)
    tensors, state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 4 and [r["step"] for r in state["history"]] == [1, 2, 3, 4]
    for name, p in model.named_parameters():  # the bad step never reached the weights
        assert torch.equal(tensors[f"model.{name}"], p.detach()), name
        assert torch.isfinite(p).all()


def test_loss_fn_must_return_a_scalar_loss():
    _, train_batches = make_task()
    trainer = Trainer(TinyNet(), config(), loss_fn=lambda m, b: m(b[0]), train_batches=train_batches)
    with pytest.raises(TypeError, match="loss_fn must return"):
        trainer.fit()


def test_the_trainer_prints_nothing(capsys):
    loss_fn, train_batches = make_task()
    Trainer(TinyNet(), config(steps=3, eval_every=1), loss_fn=loss_fn, train_batches=train_batches,
            evaluate=scripted([1.0, 2.0, 3.0])).fit()  # fmt: skip
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bar_goes_to_stderr_when_on(capsys):
    loss_fn, train_batches = make_task()
    Trainer(TinyNet(), config(steps=3, progress=True), loss_fn=loss_fn, train_batches=train_batches).fit()
    captured = capsys.readouterr()
    assert captured.out == "" and "3/3" in captured.err


# ----------------------------------------------------------------------------------------------- autocast


class TinyAttentionNet(nn.Module):
    """Self-attention over a short sequence, mean-pooled: exercises matmuls that autocast lowers."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(D_IN, 8)
        self.attention = MultiHeadAttention(8, 2)
        self.out = nn.Linear(8, N_CLASSES)

    def forward(self, x):  # (B, D_IN)
        h = self.embed(x).unsqueeze(1).expand(-1, 3, -1) * torch.arange(1.0, 4.0).view(1, 3, 1)  # (B, T=3, 8)
        return self.out(self.attention(h).mean(dim=1))  # (B, T, 8) -> (B, 8) -> (B, N_CLASSES)


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_on_cpu_runs_in_low_precision_and_the_loss_stays_finite(precision, dtype):
    _, train_batches = make_task(batch_size=16)
    seen = []

    def loss_fn(model, batch):
        logits = model(batch[0])
        seen.append(logits.dtype)
        return cross_entropy(logits.float(), batch[1])

    torch.manual_seed(0)
    model = TinyAttentionNet()
    history = Trainer(
        model, config(steps=30, max_lr=3e-2, autocast=precision), loss_fn=loss_fn, train_batches=train_batches
    ).fit()
    assert set(seen) == {dtype}  # autocast really was on
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay in float32
    losses = [r["train_loss"] for r in history]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


# ------------------------------------------------------------------------------------- batches under DDP


def test_sharding_splits_every_tensor_of_a_nested_batch_into_equal_row_slices():
    @dataclasses.dataclass(frozen=True)
    class Pair:
        ids: torch.Tensor
        label: str

    batch = {"x": torch.arange(12).view(6, 2), "rest": (torch.arange(6.0), Pair(torch.arange(6) * 10, "same"))}
    parts = [_shard(batch, rank, 3) for rank in range(3)]
    assert torch.equal(torch.cat([p["x"] for p in parts]), batch["x"])
    assert torch.equal(torch.cat([p["rest"][0] for p in parts]), batch["rest"][0])
    assert torch.equal(torch.cat([p["rest"][1].ids for p in parts]), batch["rest"][1].ids)
    assert [p["rest"][1].label for p in parts] == ["same"] * 3 and parts[1]["x"].shape == (2, 2)
    assert _shard(batch, 0, 1) is batch
    with pytest.raises(ValueError, match=r"shape \(6, 2\) cannot be split into 4 equal slices"):
        _shard(batch, 0, 4)


# ----------------------------------------------------------------------------- divergence, on_step, retention


def test_a_loss_that_stays_far_above_its_start_stops_the_run_with_a_message():
    loss_fn, train_batches = make_task()

    def exploding(model, batch):  # from step 4 on the loss is 1000× what the model gives
        loss = loss_fn(model, batch)
        return loss * 1000 if len(seen) >= 3 else loss

    seen: list[dict] = []
    cfg = config(steps=30, divergence_factor=10.0, divergence_patience=5)
    trainer = Trainer(TinyNet(), cfg, loss_fn=exploding, train_batches=train_batches, on_step=seen.append)
    with pytest.raises(DivergenceError, match=r"diverged.*10 × its first value.*for 5 steps.*step 8") as caught:
        trainer.fit()
    assert caught.value.step == 8 and trainer.step == 8  # steps 4..8: five in a row above the limit
    assert not isinstance(caught.value, NonFiniteLossError)


@pytest.mark.parametrize(("factor", "patience", "spike_steps"), [(10.0, 5, {3, 4, 5, 6}), (None, 1, set(range(2, 13)))])
def test_a_short_excursion_above_the_limit_and_factor_none_do_not_stop_training(factor, patience, spike_steps):
    loss_fn, train_batches = make_task()
    calls: list[None] = []

    def spiky(model, batch):
        calls.append(None)
        loss = loss_fn(model, batch)
        return loss * 1000 if len(calls) in spike_steps else loss

    cfg = config(steps=12, divergence_factor=factor, divergence_patience=patience)
    trainer = Trainer(TinyNet(), cfg, loss_fn=spiky, train_batches=train_batches)
    assert len(trainer.fit()) == 12


def test_on_step_sees_every_record_as_it_is_made():
    loss_fn, train_batches = make_task()
    seen: list[dict] = []
    trainer = Trainer(TinyNet(), config(steps=5), loss_fn=loss_fn, train_batches=train_batches, on_step=seen.append)
    history = trainer.fit()
    assert seen == history and [r["step"] for r in seen] == [1, 2, 3, 4, 5]


def test_retention_never_deletes_the_checkpoint_just_written(tmp_path):
    """A folder that already holds checkpoints of later steps (another run's) must not cost this run its own."""
    loss_fn, train_batches = make_task()
    old = Trainer(TinyNet(), config(steps=8, out_dir=tmp_path), loss_fn=loss_fn, train_batches=train_batches)
    old.fit(until=7)
    old.save_checkpoint()
    old.fit()  # step_000007 and step_000008 in the folder
    new = Trainer(TinyNet(), config(steps=3, out_dir=tmp_path), loss_fn=loss_fn, train_batches=train_batches)
    new.fit()
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert "step_000003" in names and len(names) == 2  # keep_checkpoints=2: this run's newest and one other
    _, state = load_checkpoint(tmp_path / "step_000003")
    assert state["config"]["steps"] == 3


def test_param_groups_with_lr_scale_follow_the_schedule_and_keep_their_ratios():
    """Trainer(param_groups=...): group g trains at lr_at(s) × lr_scale_g; scale 0 freezes a layer's values."""
    loss_fn, train_batches = make_task()
    cfg = config(steps=6, warmup_steps=2)
    torch.manual_seed(0)
    model = TinyNet(dropout=0.0)
    hidden_before = model.hidden.weight.detach().clone()
    groups = [
        {"params": list(model.hidden.parameters()), "lr_scale": 0.0},
        {"params": [model.out.weight], "lr_scale": 3.0, "weight_decay": 0.0},
        {"params": [model.out.bias], "weight_decay": 0.0},
    ]
    seen = []
    trainer = Trainer(model, cfg, loss_fn=loss_fn, train_batches=train_batches, param_groups=groups)
    trainer.on_step = lambda record: seen.append([g["lr"] for g in trainer.optimizer.param_groups])
    trainer.fit()
    assert seen == [[0.0, 3.0 * cfg.lr_at(s), cfg.lr_at(s)] for s in range(1, 7)]
    assert torch.equal(model.hidden.weight, hidden_before)
    with pytest.raises(TypeError, match="param_groups must be a list of dicts"):
        Trainer(model, cfg, loss_fn=loss_fn, train_batches=train_batches, param_groups=model.parameters())
