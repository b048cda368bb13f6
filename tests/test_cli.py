"""The `tfs` command: the main job runs, each task has its own options, a run folder is a run that resumes
exactly, generation and evaluation read it back, and every error is one clear line that leaves nothing behind."""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest
import torch
from safetensors.torch import load_file

from transformer_from_scratch import cli
from transformer_from_scratch.cli import build_parser, main
from transformer_from_scratch.recipes import gpt, saved, seq2seq, xlnet
from transformer_from_scratch.verification import CHECKS


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def history_of(folder):
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def deterministic(history):
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in history]


def tensors_of(checkpoint):
    return load_file(str(checkpoint / "tensors.safetensors"))


def assert_same_tensors(a, b):
    ta, tb = tensors_of(a), tensors_of(b)
    assert ta.keys() == tb.keys()
    for name in ta:
        assert torch.equal(ta[name], tb[name]), name


TINY_TEXT = "the cat sat on the mat. the dog sat on the log. " * 200
TINY_GPT = ["--context", "16", "--n-layers", "1", "--d-model", "32", "--n-heads", "2", "--batch-size", "8"]
SHORT_XLNET = ["--batch-size", "8", "--heldout-orders", "1"]  # one held-out order: each evaluation ~4x cheaper


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """Four small finished runs (reverse, gpt, bert, xlnet), a text file, and folders that are not runs."""
    base = tmp_path_factory.mktemp("runs")
    (base / "tiny.txt").write_text(TINY_TEXT)
    common = ["--no-progress", "--steps", "4"]
    assert main(["train", "reverse", *common, "--out", str(base / "rev")]) == 0
    assert main(["train", "gpt", *common, *TINY_GPT, "--data", str(base / "tiny.txt"), "--out", str(base / "gpt")]) == 0
    assert main(["train", "bert", *common, "--eval-every", "2", "--out", str(base / "bert")]) == 0
    assert main(["train", "xlnet", *common, "--eval-every", "2", *SHORT_XLNET, "--out", str(base / "xlnet")]) == 0
    (base / "a_file").write_text("not a folder")
    (base / "plain").mkdir()
    (base / "plain" / "notes.txt").write_text("a folder that holds no run")
    shutil.copytree(base / "bert", base / "corrupt")
    (base / "corrupt" / "step_000004" / "state.json").write_text("{ not json")
    shutil.copytree(base / "rev", base / "nockpt")
    for step in (base / "nockpt").glob("step_*"):
        shutil.rmtree(step)
    (base / "binary.txt").write_bytes(b"\xff\xfe\x00\x81" * 50)
    return base


# ------------------------------------------------------------------------------------------ the main jobs


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


def test_python_dash_m_is_the_same_program():
    result = subprocess.run(
        [sys.executable, "-m", "transformer_from_scratch", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in ("tour", "train", "generate", "evaluate", "verify"):
        assert command in result.stdout


# ------------------------------------------------------------------------------- per-task options and help


@pytest.mark.parametrize(
    "task, defaults",
    [
        ("reverse", ["optimizer steps (default 600)", "examples per step (default 64)", "(default 0)"]),
        ("gpt", ["optimizer steps (default 1000)", "examples per step (default 32)", "(default 0.1)", "--context"]),
        ("bert", ["optimizer steps (default 2000)", "examples per step (default 32)", "beta2 (default 0.98)"]),
        (
            "xlnet",
            [
                "optimizer steps (default 2000)",
                "examples per step (default 32)",
                "window (default 64)",
                "order (default 6, XLNet-base's)",
                "all of them (default 4)",
                "4·D (default 64)",
            ],
        ),  # fmt: skip
    ],
)
def test_each_task_shows_its_own_options_and_true_defaults(task, defaults, capsys):
    with pytest.raises(SystemExit):
        main(["train", task, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for default in defaults:
        assert default in text, default
    gpt_only = ("--tokenizer", "--temperature", "--prompt")
    assert all((flag in text) == (task == "gpt") for flag in gpt_only)
    assert ("--context" in text) == ("--d-model" in text) == (task in ("gpt", "xlnet"))
    assert ("--k K" in text) == ("--heldout-orders" in text) == (task == "xlnet")
    assert ("--beam-size" in text) == (task == "reverse")


def test_options_map_to_the_recipe_configs(tmp_path):
    def parse(argv):
        return build_parser().parse_args(["train", *argv])

    args = parse(["gpt", "--steps", "50", "--beta2", "0.95", "--tokenizer", "bpe", "--no-progress"])
    config = cli._train_config(args, cli.TASKS["gpt"], tmp_path, None)
    assert config.steps == 50 and config.betas == (0.9, 0.95) and args.tokenizer == "bpe"
    assert config.warmup_steps == 5  # scaled down for a short run
    assert config.checkpoint_every == config.eval_every == 100  # every run checkpoints at each validation
    assert cli._gpt_model_options(args, None) == {}  # d_model and the rest: the recipe's
    # No options: exactly the recipe's configs, with the run folder, the progress bar and the checkpoints.
    defaults = parse(["gpt"])
    assert cli._train_config(defaults, cli.TASKS["gpt"], tmp_path, None) == gpt.gpt_train_config(
        out_dir=str(tmp_path), progress=True, checkpoint_every=100
    )
    assert gpt.gpt_model_config(65, **cli._gpt_model_options(defaults, None)) == gpt.gpt_model_config(65)
    assert (defaults.sample_tokens, defaults.temperature) == (200, 0.8)
    mixed = parse(["gpt", "--steps", "7", "--d-model", "64", "--impl", "kernels", "--grad-clip", "0"])
    config = cli._train_config(mixed, cli.TASKS["gpt"], tmp_path, None)
    assert (config.steps, config.grad_clip, config.warmup_steps) == (7, None, 0)  # --grad-clip 0: no clipping
    assert cli._gpt_model_options(mixed, None) == {"d_model": 64, "impl": "kernels"}
    bert = cli._train_config(parse(["bert", "--batch-size", "8"]), cli.TASKS["bert"], tmp_path, None)
    assert bert.batch_size == 8  # bert reads --batch-size like every task
    # xlnet: no options are the recipe's configs; its model and data options map to their keywords
    plain = parse(["xlnet"])
    assert cli._train_config(plain, cli.TASKS["xlnet"], tmp_path, None) == xlnet.xlnet_train_config(
        out_dir=str(tmp_path), progress=True, checkpoint_every=500
    )
    assert cli._xlnet_model_options(plain, None) == {} and cli._xlnet_data_options(plain, None) == {}
    sized = parse(["xlnet", "--steps", "50", "--d-model", "32", "--n-layers", "1", "--context", "48", "--k", "4"])
    config = cli._train_config(sized, cli.TASKS["xlnet"], tmp_path, None)
    assert (config.steps, config.warmup_steps) == (50, 5)  # warm-up scaled down as bert's
    assert cli._xlnet_model_options(sized, None) == {"d_model": 32, "n_layers": 1}
    assert cli._xlnet_data_options(sized, None) == {"max_len": 48, "k": 4}
    assert xlnet.xlnet_model_config(100, d_model=32).d_ff == 128  # F = 4·D, as the help says


def test_impl_reaches_the_model_config(tmp_path, capsys):
    code, _, _ = run(
        ["train", "copy", "--steps", "2", "--impl", "kernels", "--out", str(tmp_path), "--no-progress"], capsys
    )
    assert code == 0
    assert json.loads((tmp_path / "model_config.json").read_text())["impl"] == "kernels"


# ------------------------------------------------------------------------------------ a run folder is a run


def test_a_run_folder_holds_its_setup_history_and_checkpoints(runs_dir):
    for name, task in (("rev", "reverse"), ("gpt", "gpt"), ("bert", "bert"), ("xlnet", "xlnet")):
        folder = runs_dir / name
        run_json = json.loads((folder / "run.json").read_text())
        assert run_json["task"] == task and len(run_json["data_fingerprint"]) == 64
        assert json.loads((folder / "train_config.json").read_text())["steps"] == 4
        assert "d_model" in json.loads((folder / "model_config.json").read_text())
        assert (folder / "tokenizer.json").exists() == (task != "reverse")  # the synthetic tasks use a fixed vocab
        assert [h["step"] for h in history_of(folder)] == [1, 2, 3, 4]
        assert (folder / "step_000004" / "tensors.safetensors").exists()


def test_reusing_out_is_refused_and_leaves_the_old_run_untouched(tmp_path, capsys):
    out = tmp_path / "r"
    assert (
        main(["train", "reverse", "--steps", "20", "--checkpoint-every", "10", "--out", str(out), "--no-progress"]) == 0
    )
    before = sorted(p.name for p in out.iterdir())
    code, _, err = run(["train", "reverse", "--steps", "6", "--out", str(out), "--no-progress"], capsys)
    assert code == 2 and "already holds a run" in err and f"--resume {out}" in err
    assert sorted(p.name for p in out.iterdir()) == before == [
        "history.jsonl", "model_config.json", "run.json", "step_000010", "step_000020", "train_config.json"
    ]  # fmt: skip


def test_overwrite_moves_the_old_run_aside_and_never_deletes_it(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "reverse", "--steps", "4", "--out", str(out), "--no-progress"]) == 0
    old_history = history_of(out)
    code, stdout, _ = run(
        ["train", "reverse", "--steps", "3", "--out", str(out), "--overwrite", "--no-progress"], capsys
    )
    assert code == 0 and "moved the run" in stdout
    (aside,) = tmp_path.glob("r.old-*")
    assert history_of(aside) == old_history and (aside / "step_000004").is_dir()
    assert [h["step"] for h in history_of(out)] == [1, 2, 3] and not (out / "step_000004").exists()


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch, capsys):
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 11, 29, 7, 30, 5)

    monkeypatch.setattr(cli, "datetime", FrozenClock)
    monkeypatch.setenv("TFS_RUNS_DIR", str(tmp_path / "runs"))
    for _ in range(2):
        assert main(["train", "copy", "--steps", "2", "--no-progress"]) == 0
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert names == ["20261129-073005", "20261129-073005-2"]
    assert all((tmp_path / "runs" / n / "run.json").exists() for n in names)


# ------------------------------------------------------------------ resuming: the same run, bit for bit


def _interrupt_after(folder, step):
    """The folder as a run killed just after the checkpoint of ``step`` leaves it: later checkpoints gone, the
    history written further than the checkpoint (it is appended step by step)."""
    for checkpoint in folder.glob("step_*"):
        if int(checkpoint.name.split("_")[1]) > step:
            shutil.rmtree(checkpoint)


@pytest.mark.parametrize(
    "task, extra",
    [
        ("copy", []),
        ("reverse", ["--batch-size", "16"]),  # not the default: the resumed run must take it from the folder
        ("sort", []),
        ("gpt", [*TINY_GPT, "--data", "TEXT"]),
        ("bert", ["--batch-size", "8"]),
        ("xlnet", SHORT_XLNET),
    ],
)
def test_resume_continues_in_the_folder_bit_identical_to_an_uninterrupted_run(task, extra, tmp_path, capsys):
    (tmp_path / "tiny.txt").write_text(TINY_TEXT)
    extra = [str(tmp_path / "tiny.txt") if a == "TEXT" else a for a in extra]
    argv = ["train", task, "--steps", "12", "--eval-every", "4", "--keep-checkpoints", "5", "--no-progress", *extra]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*argv, "--out", str(whole)]) == 0
    shutil.copytree(whole, cut)  # the same run, then cut short as a kill would leave it
    _interrupt_after(cut, 8)
    capsys.readouterr()
    assert main(["train", task, "--resume", str(cut), "--no-progress"]) == 0  # no other option: the folder says
    assert "the run is in" in capsys.readouterr().out
    assert deterministic(history_of(cut)) == deterministic(history_of(whole))
    assert [h["step"] for h in history_of(cut)] == list(range(1, 13))
    assert_same_tensors(cut / "step_000012", whole / "step_000012")  # weights, AdamW moments, generator states
    assert history_of(cut)[9]["train_loss"] != history_of(cut)[3]["train_loss"]  # not vacuous


def test_resume_with_more_steps_says_how_the_schedule_moves(runs_dir, tmp_path, capsys):
    folder = tmp_path / "rev"
    shutil.copytree(runs_dir / "rev", folder)
    code, out, _ = run(["train", "reverse", "--resume", str(folder), "--steps", "6", "--no-progress"], capsys)
    assert code == 0 and "planned 4 steps and now trains to 6" in out and "step 5 runs at learning rate" in out
    assert [h["step"] for h in history_of(folder)] == list(range(1, 7))
    assert json.loads((folder / "train_config.json").read_text())["steps"] == 6  # the folder knows the new length


KILL_ARGV = ["train", "reverse", "--steps", "150", "--checkpoint-every", "10", "--eval-every", "150", "--no-progress"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kill") / "whole"
    assert main([*KILL_ARGV, "--out", str(folder)]) == 0
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_a_killed_run_resumes_to_the_same_weights(signal_name, uninterrupted, tmp_path):
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "transformer_from_scratch", *KILL_ARGV, "--out", str(killed)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120

    def past_step_30() -> bool:  # only the newest 2 checkpoints are kept, so step_000030 alone may come and go
        return any(int(p.name.removeprefix("step_")) >= 30 for p in killed.glob("step_[0-9]*") if p.is_dir())

    while not past_step_30() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(getattr(signal, signal_name))
    _, err = process.communicate(timeout=60)
    assert process.returncode == (130 if signal_name == "SIGINT" else -signal.SIGKILL), err
    assert not (killed / "step_000150").exists()  # it really stopped part-way
    if signal_name == "SIGINT":
        assert "interrupted" in err and f"--resume {killed}" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "reverse", "--resume", str(killed), "--no-progress"]) == 0
    assert_same_tensors(killed / "step_000150", uninterrupted / "step_000150")
    assert deterministic(history_of(killed)) == deterministic(history_of(uninterrupted))


def test_a_diverging_run_stops_with_a_message_and_exit_status_1(tmp_path, capsys):
    code, _, err = run(
        ["train", "reverse", "--steps", "100", "--lr", "1e6", "--out", str(tmp_path / "r"), "--no-progress"], capsys
    )
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and ("diverged" in err or "became" in err) and "max_lr" in err


# ----------------------------------------------------------------------------------- generate and evaluate


def test_evaluate_recomputes_the_training_report(runs_dir, capsys):
    code, out, _ = run(["evaluate", "--from", str(runs_dir / "gpt")], capsys)
    final = history_of(runs_dir / "gpt")[-1]
    assert code == 0 and f"validation loss {final['val_loss']:.4f}" in out
    trained = saved.load_run(runs_dir / "rev")
    data = saved.rebuild_data(trained)
    expected = seq2seq.evaluate_exact_match(trained.model, data.splits.test, vocab=data.vocab)
    code, out, _ = run(["evaluate", "--from", str(runs_dir / "rev")], capsys)
    assert code == 0 and f"{expected:.1%}" in out and "500 held-out sequences" in out
    code, out, _ = run(["evaluate", "--from", str(runs_dir / "bert")], capsys)
    assert code == 0 and "masked-token accuracy" in out and "NSP accuracy" in out


def test_an_xlnet_run_reports_its_plm_loss_against_the_unigram_baseline_and_evaluates_again(runs_dir, capsys):
    final = history_of(runs_dir / "xlnet")[-1]
    assert final["step"] == 4 and math.isfinite(final["val_loss"]) and math.isfinite(final["val_unigram_loss"])
    trained = saved.load_run(runs_dir / "xlnet")
    m = saved.evaluate_run(trained)
    assert m["plm_loss"] == pytest.approx(final["val_loss"])  # the same checkpoint, the same held-out targets
    assert m["unigram_loss"] == pytest.approx(final["val_unigram_loss"])
    assert m["heldout_orders"] == 1 and m["predicted_tokens"] > 1000
    assert m["margin"] == pytest.approx(m["unigram_loss"] - m["plm_loss"])
    code, out, _ = run(["evaluate", "--from", str(runs_dir / "xlnet")], capsys)
    assert code == 0 and f"held-out PLM loss {final['val_loss']:.4f} nats/token" in out
    assert f"(unigram baseline {final['val_unigram_loss']:.4f})" in out
    assert f"= {m['margin_sigma']:.1f} σ" in out and "whole windows as the units" in out


def test_generate_continues_a_prompt_greedily_by_beam_or_by_sampling(runs_dir, capsys):
    trained = saved.load_run(runs_dir / "gpt")
    expected = gpt.generate_text(trained.model, trained.tokenizer, "the c", 12)
    code, out, err = run(
        ["generate", "--from", str(runs_dir / "gpt"), "--prompt", "the c", "--max-new-tokens", "12"], capsys
    )
    assert code == 0 and out == expected + "\n" and out.startswith("the c") and err == ""
    sample = ["generate", "--from", str(runs_dir / "gpt"), "--prompt", "the", "--temperature", "1.5", "--seed", "3"]
    assert run(sample, capsys)[1] == run(sample, capsys)[1]  # the seed fixes the draw
    code, out, _ = run(["generate", "--from", str(runs_dir / "gpt"), "--prompt", "the", "--beam", "3"], capsys)
    beam = gpt.generate_text(trained.model, trained.tokenizer, "the", 200, beam_size=3)
    assert code == 0 and out == beam + "\n" and out.startswith("the")
    # longer than the context (16): the window slides
    prompt = "the cat " * 5
    code, out, _ = run(
        ["generate", "--from", str(runs_dir / "gpt"), "--prompt", prompt, "--max-new-tokens", "30"], capsys
    )
    assert code == 0 and out == gpt.generate_text(trained.model, trained.tokenizer, prompt, 30) + "\n"
    assert len(trained.tokenizer.encode(out.rstrip("\n"))) == len(prompt) + 30 > trained.model.config.max_len
    model, vocab = saved.load_run(runs_dir / "rev").model, saved.load_run(runs_dir / "rev").tokenizer
    code, out, _ = run(["generate", "--from", str(runs_dir / "rev"), "--prompt", "abcdef"], capsys)
    assert code == 0 and out == seq2seq.transduce_text(model, vocab, "abcdef") + "\n"


def test_generate_warns_about_characters_the_tokenizer_does_not_know(runs_dir, capsys):
    code, out, err = run(
        ["generate", "--from", str(runs_dir / "gpt"), "--prompt", "the 日本", "--max-new-tokens", "3"], capsys
    )
    assert code == 0 and out.startswith("the <unk><unk>")
    assert len(err.strip().splitlines()) == 1 and "warning" in err and "'日'" in err and "'本'" in err


# -------------------------------------------------------------------------- every error: one line, no trace


ERRORS = [
    # usage and values, checked before any work
    (["bogus"], "invalid choice"),
    (["--threads", "0"], "expected a positive integer"),
    (["train", "translate"], "invalid choice"),
    (["train", "reverse", "--steps", "0"], "expected a positive integer"),
    (["train", "reverse", "--steps", "ten"], "expected a positive integer"),
    (["train", "copy", "--lr", "-1"], "expected a number ≥ 0"),
    (["train", "copy", "--lr", "nan"], "expected a number ≥ 0"),
    (["train", "copy", "--batch-size", "0"], "--batch-size"),
    (["train", "reverse", "--beta2", "1"], "expected a number in [0, 1)"),
    (["train", "reverse", "--grad-clip", "-1"], "expected a number ≥ 0"),
    (["train", "reverse", "--seed", "-1"], "expected an integer ≥ 0"),
    (["train", "reverse", "--keep-checkpoints", "0"], "expected a positive integer"),
    (["train", "reverse", "--min-lr", "0.01", "--lr", "0.001"], "min_lr=0.01 must not exceed max_lr=0.001"),
    (["train", "copy", "--impl", "fast"], "invalid choice"),
    (["train", "reverse", "--context", "10"], "unrecognized arguments: --context"),
    (["train", "bert", "--batch-size", "0"], "--batch-size"),
    (["train", "bert", "--data", "/nonexistent"], "unrecognized arguments: --data"),
    (["train", "bert", "--n-layers", "0"], "unrecognized arguments: --n-layers"),
    (["train", "bert", "--tokenizer", "bogus"], "unrecognized arguments: --tokenizer"),
    (["train", "gpt", "--tokenizer", "words"], "invalid choice"),
    (["train", "gpt", "--temperature", "0"], "expected a positive number"),
    (["train", "gpt", "--temperature", "inf"], "expected a positive number"),
    (["train", "gpt", "--sample-tokens", "0"], "expected a positive integer"),
    (["train", "gpt", "--dropout", "1.5"], "expected a number in [0, 1]"),
    (["train", "gpt", "--n-heads", "3"], "n_heads"),
    (["train", "gpt", "--steps", "5", "--warmup-steps", "5"], "warmup_steps"),
    (["train", "gpt", "--tokenizer", "bpe", "--bpe-vocab-size", "100"], "bpe_vocab_size"),
    (["train", "gpt", "--data", "/no/such/file.txt"], "/no/such/file.txt"),
    (["train", "gpt", "--data", "{runs}/plain"], "is a folder"),
    (["train", "gpt", "--data", "{runs}/binary.txt"], "is not UTF-8"),
    (["train", "gpt", "--context", "100000"], "needs about"),
    (["train", "xlnet", "--k", "0"], "expected a positive integer"),
    (["train", "xlnet", "--k", "1.5"], "expected a positive integer"),
    (["train", "xlnet", "--context", "0"], "expected a positive integer"),
    (["train", "xlnet", "--heldout-orders", "0"], "expected a positive integer"),
    (["train", "xlnet", "--dropout", "2"], "expected a number in [0, 1]"),
    (["train", "xlnet", "--n-heads", "3"], "d_model=64 is not divisible by n_heads=3"),
    (["train", "xlnet", "--d-model", "15", "--n-heads", "3"], "d_model=15 must be even"),
    (["train", "xlnet", "--tokenizer", "bpe"], "unrecognized arguments: --tokenizer"),
    (["train", "xlnet", "--context", "100000"], "needs about"),
    # run folders
    (["train", "reverse", "--out", "{runs}/a_file"], "is a file"),
    (["tour", "--out", "{runs}/a_file"], "is a file"),
    (["train", "reverse", "--out", "{runs}/rev"], "already holds a run"),
    (["train", "reverse", "--resume", "/no/such/run"], "no run folder at /no/such/run"),
    (["train", "reverse", "--resume", "{runs}/a_file"], "is a file"),
    (["train", "reverse", "--resume", "{runs}/plain"], "is not a run folder"),
    (["train", "reverse", "--resume", "{runs}/bert"], "is a run of 'bert', not of 'reverse'"),
    (["train", "xlnet", "--resume", "{runs}/bert"], "is a run of 'bert', not of 'xlnet'"),
    (["train", "xlnet", "--resume", "{runs}/xlnet", "--steps", "9", "--k", "4"], "was trained with k 6, not --k 4"),
    (["train", "xlnet", "--resume", "{runs}/xlnet", "--steps", "9", "--context", "32"], "max_len 64, not --context"),
    (["train", "xlnet", "--resume", "{runs}/xlnet", "--steps", "9", "--n-layers", "3"], "trained another model"),
    (["train", "xlnet", "--resume", "{runs}/xlnet", "--steps", "9", "--lr", "0.01"], "was trained with max_lr"),
    (["train", "sort", "--resume", "{runs}/rev"], "is a run of 'reverse', not of 'sort'"),
    (["train", "reverse", "--resume", "{runs}/rev"], "ask for more than 4 steps"),
    (["train", "reverse", "--resume", "{runs}/rev", "--steps", "3"], "ask for more than 4 steps"),
    (["train", "reverse", "--resume", "{runs}/rev", "--steps", "9", "--lr", "0.01"], "was trained with max_lr=0.002"),
    (["train", "reverse", "--resume", "{runs}/rev", "--steps", "9", "--impl", "kernels"], "trained another model"),
    (["train", "reverse", "--resume", "{runs}/rev", "--out", "{runs}/elsewhere"], "drop --out"),
    (["train", "reverse", "--resume", "{runs}/rev", "--overwrite"], "choose one"),
    (["train", "reverse", "--resume", "{runs}/nockpt"], "holds no checkpoint yet"),
    (["train", "bert", "--resume", "{runs}/corrupt", "--steps", "9"], "state.json"),
    (["train", "gpt", "--resume", "{runs}/gpt", "--steps", "9", "--tokenizer", "bpe"], "with tokenizer 'char'"),
    (["train", "gpt", "--resume", "{runs}/gpt", "--steps", "9", "--d-model", "64"], "trained another model"),
    # generate and evaluate
    (["generate", "--prompt", "x"], "required: --from"),
    (["generate", "--from", "/no/such/run", "--prompt", "x"], "no run folder"),
    (["generate", "--from", "{runs}/bert", "--prompt", "x"], "does not generate text"),
    (["generate", "--from", "{runs}/xlnet", "--prompt", "x"], "is not a left-to-right generator here"),
    (["generate", "--from", "{runs}/gpt", "--prompt", ""], "must not be empty"),
    (["generate", "--from", "{runs}/gpt", "--prompt", "a", "--beam", "2", "--temperature", "0.5"], "not both"),
    (["generate", "--from", "{runs}/gpt", "--prompt", "a", "--top-p", "1.5"], "expected a number in (0, 1]"),
    (["generate", "--from", "{runs}/gpt", "--prompt", "a", "--top-k", "0"], "expected a positive integer"),
    (["generate", "--from", "{runs}/gpt", "--prompt", "a", "--temperature", "-1"], "expected a positive number"),
    (["generate", "--from", "{runs}/rev", "--prompt", "abcxyz"], "not in the alphabet"),
    (["generate", "--from", "{runs}/rev", "--prompt", "a" * 20], "reads at most 14"),
    (["generate", "--from", "{runs}/nockpt", "--prompt", "abc"], "holds no checkpoint"),
    (["evaluate", "--from", "{runs}/plain"], "is not a run folder"),
    (["evaluate", "--from", "{runs}/corrupt"], "state.json"),
]


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("argv, message", ERRORS, ids=[" ".join(a)[:60] for a, _ in ERRORS])
def test_errors_are_one_line_without_traceback_and_leave_nothing_behind(
    argv, message, runs_dir, capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("TFS_RUNS_DIR", str(tmp_path / "runs"))
    argv = [a.replace("{runs}", str(runs_dir)) for a in argv]
    before = _tree(runs_dir)
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main([*argv, "--no-progress"] if argv[0] == "train" and len(argv) > 1 else argv))
    assert exit_info.value.code == 2
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and message in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()  # no run folder was made
    assert _tree(runs_dir) == before  # and no other folder was touched


def test_the_error_table_is_long_enough():
    assert len(ERRORS) >= 40
