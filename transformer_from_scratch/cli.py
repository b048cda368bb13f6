"""The ``tfs`` command (also ``python -m transformer_from_scratch``).

    tfs tour     the main job: verify every module against the NumPy reference, then train a small model
    tfs verify   only the verification table
    tfs train    train an encoder–decoder on copy / reverse / sort (see ``tfs train --help``)

Bad arguments and missing files end with one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from . import __version__

TASKS = ("copy", "reverse", "sort")


class CLIError(Exception):
    """An error the user can act on; printed as one line."""


def _format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([line, sep, *body])


def verification_table(seed: int = 0) -> tuple[str, bool]:
    """Run every registered check (float64, ours vs NumPy reference); return the table and whether all pass."""
    from .verification import run_checks

    results = run_checks(seed)
    rows = [
        [r.name, f"{r.max_abs_err:.2e}", f"{r.max_rel_err:.2e}", f"{r.rtol:.0e}", "ok" if r.passed else "FAIL"]
        for r in results
    ]
    table = _format_table(rows, ["check (float64, ours vs NumPy reference)", "max abs err", "max rel err", "rtol", ""])
    return table, all(r.passed for r in results)


def cmd_verify(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    table, ok = verification_table(args.seed)
    print(table)
    print(f"\n{'all checks passed' if ok else 'SOME CHECKS FAILED'} in {time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


_CREATED_RUN_FOLDERS: list[Path] = []  # made by _runs_dir during this command; main() removes the empty ones


def _runs_dir(out: str | None) -> Path:
    """``--out`` if given, else a new folder ``$TFS_RUNS_DIR`` (default ``runs``) / <timestamp>.

    The folder is created here, so two runs started in the same second get their own (the second one
    ``<timestamp>-2``) instead of writing into each other's files. A command that stops with an error before
    writing anything leaves no empty folder behind (see :func:`main`).
    """
    if out is not None:
        return Path(out)
    base = Path(os.environ.get("TFS_RUNS_DIR", "runs"))
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = base / stamp, 1
    while True:
        try:
            folder.mkdir()  # atomic: exactly one process creates a given folder
            _CREATED_RUN_FOLDERS.append(folder)
            return folder
        except FileExistsError:
            n += 1
            folder = base / f"{stamp}-{n}"


def _plot_run(history: list[dict], folder: Path) -> list[Path]:
    """Loss and learning-rate curves from a training history; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    steps = [h["step"] for h in history]
    evals = [h for h in history if "val_loss" in h]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(steps, [h["train_loss"] for h in history], label="train", lw=0.8)
    if evals:
        ax1.plot([h["step"] for h in evals], [h["val_loss"] for h in evals], "o-", label="validation")
    ax1.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="loss")
    ax1.legend()
    ax2.plot(steps, [h["lr"] for h in history])
    ax2.set(xlabel="step", ylabel="learning rate", title="schedule")
    fig.tight_layout()
    path = folder / "training.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def _plot_cross_attention(run, folder: Path) -> Path:
    """Heatmap of the last decoder layer's cross-attention (mean over heads) for one test example."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from .datasets import synthetic

    source, target = run.splits.test[0]
    batch = synthetic.to_batch([(source, target)])
    run.model.eval()
    with torch.no_grad():
        out = run.model(batch.src, batch.tgt_in, src_valid=batch.src_valid, return_attention=True)
    weights = out.decoder_cross_attentions[-1][0].mean(dim=0)  # (H, T, S) -> (T, S)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(weights.numpy(), cmap="viridis")
    ax.set_xticks(range(len(source)), list(run.vocab.decode(source)))
    ax.set_yticks(range(len(target) + 1), ["<bos>", *run.vocab.decode(target)])
    ax.set(xlabel="source position", ylabel="decoder input", title="cross-attention (last layer)")
    fig.tight_layout()
    path = folder / "cross_attention.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _train_task(args: argparse.Namespace, *, progress: bool):
    """Build the configs from the flags (errors become one line) and run ``train_synthetic_task``."""
    from .training.seq2seq import synthetic_train_config, train_synthetic_task

    overrides = {"progress": progress, "seed": args.seed}
    if args.resume is not None:
        overrides.update(_saved_train_config(Path(args.resume)))  # continue the same run: its own settings
    for flag, field in (
        ("steps", "steps"),
        ("lr", "max_lr"),
        ("min_lr", "min_lr"),
        ("warmup_steps", "warmup_steps"),
        ("eval_every", "eval_every"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    out = getattr(args, "out", None)
    if out is not None:
        overrides.update(out_dir=str(out), checkpoint_every=getattr(args, "checkpoint_every", None))
    if args.resume is None and args.steps is not None:  # shorter runs: scale the evaluation and warm-up
        overrides.setdefault("eval_every", max(1, args.steps // 5))
        overrides.setdefault("warmup_steps", min(100, args.steps // 10))
    try:
        train_config = synthetic_train_config(**overrides)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    if args.batch_size is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    try:
        return train_synthetic_task(
            args.task, train_config=train_config, batch_size=args.batch_size or 64, seed=args.seed, resume=args.resume
        )
    except ValueError as e:  # e.g. resuming a checkpoint written with other settings
        if args.resume is None:
            raise
        raise CLIError(f"--resume: {e}") from None


def _saved_train_config(path: Path) -> dict:
    """The TrainConfig fields stored in a checkpoint (a step folder, or an --out folder holding step folders)."""
    from .training import CheckpointError, latest_checkpoint, load_checkpoint

    if not path.exists():
        raise CLIError(f"--resume: no checkpoint at {path}")
    folder = latest_checkpoint(path) if not (path / "state.json").exists() else path
    if folder is None:
        raise CLIError(f"--resume: {path} holds no checkpoint (expected step_* folders or a state.json)")
    try:
        _, state = load_checkpoint(folder)
    except CheckpointError as e:
        raise CLIError(f"--resume: {e}") from None
    saved = dict(state["config"])
    saved.pop("progress", None)
    return saved


def _report(run, beam_size: int = 1) -> tuple[float, str]:
    from .training.seq2seq import decode, evaluate_exact_match

    em = evaluate_exact_match(run.model, run.splits.test, beam_size=beam_size, vocab=run.vocab)
    source, target = run.splits.test[0]
    v = run.vocab
    (predicted,) = decode(
        run.model,
        [source],
        bos_id=v.bos_id,
        eos_id=v.eos_id,
        pad_id=v.pad_id,
        max_new_tokens=len(target) + 2,
        beam_size=beam_size,
    )
    example = f"{v.decode(source)} -> {v.decode(predicted)} (expected {v.decode(target)})"
    return em, example


def cmd_tour(args: argparse.Namespace) -> int:
    folder = _runs_dir(args.out)
    print(f"transformer_from_scratch {__version__} — tour\n")
    print("1. Numerical verification against the NumPy float64 reference")
    start = time.perf_counter()
    table, ok = verification_table(args.seed)
    print(table)
    print(f"   {'all checks passed' if ok else 'SOME CHECKS FAILED'} ({time.perf_counter() - start:.1f} s)\n")

    print("2. Training the 2017 encoder–decoder to reverse sequences (chapter 04)")
    start = time.perf_counter()
    args.task, args.resume, args.min_lr, args.warmup_steps, args.eval_every = "reverse", None, None, None, None
    args.lr, args.batch_size, args.out = None, None, None
    run = _train_task(args, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    em, example = _report(run)
    last = run.history[-1]
    print(f"   {len(run.history)} steps in {elapsed:.0f} s; final train loss {last['train_loss']:.4f}")
    print(f"   exact match on {len(run.splits.test)} held-out sequences (greedy): {em:.1%}")
    print(f"   example: {example}\n")

    print(f"3. Plots written to {folder}/")
    for path in [*_plot_run(run.history, folder), _plot_cross_attention(run, folder)]:
        print(f"   {path}")
    return 0 if ok else 1


def cmd_train(args: argparse.Namespace) -> int:
    if args.task == "gpt":
        return _cmd_train_gpt(args)
    if args.task == "bert":
        return _cmd_train_bert(args)
    folder = Path(args.out) if args.out is not None else _runs_dir(None)
    args.out = folder
    start = time.perf_counter()
    run = _train_task(args, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "history.jsonl", "w") as f:
        for record in run.history:
            f.write(json.dumps(record) + "\n")
    em, example = _report(run, beam_size=args.beam_size)
    decoding = "greedy" if args.beam_size == 1 else f"beam search, width {args.beam_size}"
    print(f"task {args.task}: {len(run.history)} steps in {elapsed:.0f} s")
    print(f"exact match on {len(run.splits.test)} held-out sequences ({decoding}): {em:.1%}")
    print(f"example: {example}")
    print(f"checkpoints and history.jsonl in {folder}/")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus a pointer to --help) instead of the whole usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _cmd_train_bert(args: argparse.Namespace) -> int:
    """``tfs train bert``: MLM + NSP pre-training of a tiny BERT on the embedded corpus, then the held-out report."""
    from .training.bert_pretraining import pretrain_bert

    folder = Path(args.out) if args.out is not None else _runs_dir(None)
    if args.resume is not None and not Path(args.resume).exists():
        raise CLIError(f"--resume: no checkpoint at {args.resume}")
    try:
        run = pretrain_bert(
            steps=args.steps,
            lr=args.lr,
            batch_size=args.batch_size or 32,
            seed=args.seed,
            out_dir=folder,
            resume=args.resume,
            progress=not args.no_progress,
            checkpoint_every=args.checkpoint_every,
        )
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    r = run.report
    with open(folder / "history.jsonl", "w") as f:
        for record in run.history:
            f.write(json.dumps(record) + "\n")
    print(f"BERT: {int(r['parameters']):,} parameters, {int(r['steps'])} steps in {r['train_seconds']:.0f} s")
    print(
        f"held-out masked-token accuracy {r['mlm_accuracy']:.3f} "
        f"(unigram-frequency baseline {r['unigram_baseline_accuracy']:.3f}, "
        f"{int(r['masked_positions'])} [MASK] positions)"
    )
    print(
        f"held-out NSP accuracy {r['nsp_accuracy']:.3f} ± {r['nsp_accuracy_std']:.3f} "
        f"(chance 0.500, {int(r['nsp_pairs'])} pairs)"
    )
    print(f"checkpoints, tokenizer.json and history.jsonl in {folder}/")
    return 0


def _cmd_train_gpt(args: argparse.Namespace) -> int:
    from .training.lm import run_gpt_command

    if args.resume is not None:
        raise CLIError("--resume is not supported for gpt yet; start a new run with --out")
    try:
        return run_gpt_command(args)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    from .training.lm import add_gpt_arguments

    parser = _Parser(prog="tfs", description="transformer_from_scratch: verify, tour and train.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="CPU threads for torch (default 1: the course's models are small, and one thread is as fast as two "
        "on a 2-core laptop and much faster when other programs share the CPU)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("tour", help="the main job: verification table, a short training run, plots")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--steps", type=_positive_int, default=None, help="training steps (default: the chapter 04 recipe)")
    p.add_argument("--out", default=None, help="folder for the plots (default runs/<timestamp>)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_tour)

    p = sub.add_parser(
        "train",
        help="train a model: encoder–decoder on copy / reverse / sort, a tiny BERT (bert) or a GPT (gpt)",
    )
    p.add_argument("task", choices=(*TASKS, "bert", "gpt"), help="what to learn")
    p.add_argument(
        "--steps", type=_positive_int, default=None, help="optimizer steps (default 600; bert 2000; gpt 1000)"
    )
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3)")
    p.add_argument("--min-lr", type=float, default=None, help="final learning rate of the cosine (default 1e-4)")
    p.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (default 100)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step (default 64)")
    p.add_argument("--eval-every", type=_positive_int, default=None, help="validate every N steps")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, help="checkpoint every N steps")
    p.add_argument("--beam-size", type=_positive_int, default=1, help="beam width for the final evaluation")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="folder for checkpoints and history.jsonl (default runs/<timestamp>)")
    p.add_argument("--resume", default=None, help="continue from a checkpoint folder (or an --out folder)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_gpt_arguments(p)  # --tokenizer, --n-layers, --d-model, --context, --data, ... (used by `train gpt`)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("verify", help="verify every module against the NumPy float64 reference")
    p.add_argument("--seed", type=int, default=0, help="random seed for the check inputs (default 0)")
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    import torch

    torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except CLIError as e:
        print(f"tfs: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"tfs: error: file not found: {e.filename or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfs: interrupted", file=sys.stderr)
        return 130
    finally:
        for folder in _CREATED_RUN_FOLDERS:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # e.g. the command failed on its arguments before writing anything
        _CREATED_RUN_FOLDERS.clear()


if __name__ == "__main__":
    sys.exit(main())
