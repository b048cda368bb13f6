"""The `tfs` command: the main job runs, training writes what it says, and every error is one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest

from transformer_from_scratch import cli
from transformer_from_scratch.cli import build_parser, main
from transformer_from_scratch.recipes import gpt, runs
from transformer_from_scratch.verification import CHECKS


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_prints_every_check_and_passes(capsys):
    code, out, _ = run(["verify"], capsys)
    assert code == 0
    for check in CHECKS:
        assert check.name in out
    assert "FAIL" not in out and "all checks passed" in out


def test_tour_verifies_trains_and_writes_plots(tmp_path, capsys):
    code, out, _ = run(["tour", "--steps", "30", "--out", str(tmp_path), "--no-progress"], capsys)
    assert code == 0
    assert "all checks passed" in out
    assert "exact match on 500 held-out sequences" in out
    assert (tmp_path / "training.png").stat().st_size > 1000
    assert (tmp_path / "cross_attention.png").stat().st_size > 1000


def test_train_writes_history_and_checkpoints_and_resumes_the_same_run(tmp_path, capsys):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    batch = ["--batch-size", "16"]  # not the default: the resumed run must take it from the checkpoint
    assert main(["train", "copy", "--steps", "12", *batch, "--out", str(straight), "--no-progress"]) == 0
    assert (
        main(
            [
                "train",
                "copy",
                "--steps",
                "12",
                *batch,
                "--out",
                str(resumed),
                "--no-progress",
                "--checkpoint-every",
                "6",
            ]
        )
        == 0
    )
    capsys.readouterr()
    history = [json.loads(line) for line in (straight / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(1, 13))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert (straight / "step_000012" / "tensors.safetensors").exists()

    # Resume the second run from its step-6 checkpoint: it must retrace steps 7..12 exactly.
    assert (
        main(
            [
                "train",
                "copy",
                "--out",
                str(tmp_path / "again"),
                "--resume",
                str(resumed / "step_000006"),
                "--no-progress",
            ]
        )
        == 0
    )
    again = [json.loads(line) for line in (tmp_path / "again" / "history.jsonl").read_text().splitlines()]
    assert [h["train_loss"] for h in again] == [h["train_loss"] for h in history]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "reverse", "--steps", "0"], "expected a positive integer"),
        (["train", "translate"], "invalid choice"),
        (["train", "copy", "--lr", "-1", "--steps", "5"], "max_lr"),
        (["train", "copy", "--resume", "/no/such/checkpoint"], "no checkpoint at /no/such/checkpoint"),
        (["train", "copy", "--batch-size", "0", "--steps", "5"], "--batch-size"),
        (["bogus"], "invalid choice"),
        (["train", "gpt", "--data", "/no/such/file.txt"], "/no/such/file.txt"),
        (["train", "gpt", "--tokenizer", "words", "--steps", "2"], "--tokenizer must be one of"),
        (["train", "gpt", "--data", "/no/such/file.txt", "--steps", "5", "--warmup-steps", "5"], "warmup_steps"),
        (["train", "gpt", "--n-heads", "3", "--data", "/no/such/file.txt"], "n_heads"),
        (["train", "copy", "--impl", "fast"], "invalid choice"),
        (["train", "gpt", "--resume", "somewhere"], "--resume is not supported for gpt"),
        (["train", "bert", "--resume", "/no/such/run"], "no checkpoint at /no/such/run"),
    ],
)
def test_errors_are_one_line_without_traceback(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TFS_RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and message in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no empty run folder left


def test_corrupted_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["train", "copy", "--steps", "4", "--out", str(tmp_path), "--no-progress"]) == 0
    (tmp_path / "step_000004" / "state.json").write_text("{ not json")
    capsys.readouterr()
    assert main(["train", "copy", "--resume", str(tmp_path / "step_000004"), "--no-progress"]) == 2
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "state.json" in err


def test_python_dash_m_is_the_same_program():
    result = subprocess.run(
        [sys.executable, "-m", "transformer_from_scratch", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "tour" in result.stdout and "train" in result.stdout and "verify" in result.stdout


def test_train_gpt_on_a_user_file_prints_loss_perplexity_and_a_sample(tmp_path, capsys):
    text = "the cat sat on the mat. the dog sat on the log. " * 200
    data = tmp_path / "tiny.txt"
    data.write_text(text)
    out = tmp_path / "gpt"
    argv = [
        "train",
        "gpt",
        "--data",
        str(data),
        "--steps",
        "30",
        "--context",
        "16",
        "--n-layers",
        "1",
        "--d-model",
        "32",
        "--n-heads",
        "2",
        "--batch-size",
        "8",
        "--eval-every",
        "15",
        "--sample-tokens",
        "20",
        "--out",
        str(out),
        "--no-progress",
    ]
    code, stdout, _ = run(argv, capsys)
    assert code == 0
    assert "validation loss" in stdout and "perplexity" in stdout and "unigram" in stdout and "sample" in stdout
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(1, 31))
    assert {"step", "train_loss", "val_loss", "tokens_per_s"} <= set(history[-1])
    assert history[-1]["val_loss"] < history[0]["train_loss"]  # it learned something about this tiny text


def test_train_bert_reports_masked_accuracy_against_the_baseline_and_nsp(tmp_path, capsys):
    code, stdout, _ = run(["train", "bert", "--steps", "10", "--out", str(tmp_path), "--no-progress"], capsys)
    assert code == 0
    assert "held-out masked-token accuracy" in stdout and "unigram-frequency baseline" in stdout
    assert "held-out NSP accuracy" in stdout
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(1, 11))
    assert (tmp_path / "tokenizer.json").exists()


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    """Without --out each run creates runs/<timestamp>; a second run in the same second must not reuse it."""

    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 11, 29, 7, 30, 5)

    monkeypatch.setattr(runs, "datetime", FrozenClock)
    monkeypatch.setenv("TFS_RUNS_DIR", str(tmp_path / "runs"))
    folders = [cli._runs_dir(None) for _ in range(3)]
    assert [f.name for f in folders] == ["20261129-073005", "20261129-073005-2", "20261129-073005-3"]
    assert all(f.is_dir() and f.parent == tmp_path / "runs" for f in folders)
    assert cli._runs_dir(str(tmp_path / "mine")) == tmp_path / "mine"  # --out is used as given


def _parse_train(argv):
    return build_parser().parse_args(["train", *argv])


def test_gpt_flags_map_to_the_recipe_configs(tmp_path):
    args = _parse_train(["gpt", "--steps", "50", "--beta2", "0.95", "--tokenizer", "bpe", "--no-progress"])
    train_config = cli._train_config(args, gpt.gpt_train_config, tmp_path, cli._gpt_short_run)
    assert train_config.steps == 50 and train_config.betas == (0.9, 0.95) and args.tokenizer == "bpe"
    assert train_config.warmup_steps == 5  # scaled down for a short run
    assert cli._gpt_model_options(args) == {"impl": "plain"}  # d_model and the rest: the recipe's
    # No flags: exactly the recipe's configs, with the run folder and the progress bar.
    defaults = _parse_train(["gpt"])
    assert cli._train_config(defaults, gpt.gpt_train_config, tmp_path, cli._gpt_short_run) == gpt.gpt_train_config(
        out_dir=str(tmp_path), progress=True
    )
    assert gpt.gpt_model_config(65, **cli._gpt_model_options(defaults)) == gpt.gpt_model_config(65)
    assert (defaults.tokenizer, defaults.bpe_vocab_size, defaults.sample_tokens, defaults.temperature) == (
        "char",
        512,
        200,
        0.8,
    )
    # The flags every task shares (--steps, --seed, --impl …) serve gpt too; a gpt-only flag does not shadow them.
    mixed = _parse_train(["gpt", "--steps", "7", "--d-model", "64", "--impl", "kernels", "--grad-clip", "0"])
    config = cli._train_config(mixed, gpt.gpt_train_config, None, cli._gpt_short_run)
    assert (config.steps, config.grad_clip, config.warmup_steps) == (7, None, 0)  # --grad-clip 0: no clipping
    assert cli._gpt_model_options(mixed) == {"d_model": 64, "impl": "kernels"}


def test_impl_reaches_the_model_config(tmp_path, capsys):
    code, _, _ = run(
        ["train", "copy", "--steps", "2", "--impl", "kernels", "--out", str(tmp_path), "--no-progress"], capsys
    )
    assert code == 0
    assert json.loads((tmp_path / "model_config.json").read_text())["impl"] == "kernels"
