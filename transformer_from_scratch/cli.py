"""The ``tfs`` command (also ``python -m transformer_from_scratch``).

    tfs tour     the main job: verify every module against the NumPy reference, then train a small model
    tfs verify   only the verification table
    tfs train    train a model: an encoder–decoder on copy / reverse / sort, a tiny BERT or a GPT (``--help``)

The commands turn flags into the recipes' configs (``recipes/``), run them and print the reports: this is the
only module that parses arguments or prints. Bad arguments and missing files end with one clear line on stderr
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .config import IMPLS
from .datasets import synthetic
from .recipes import bert, gpt, seq2seq
from .recipes.runs import HISTORY_FILE, MODEL_CONFIG_FILE, TOKENIZER_FILE, Run, make_run_folder
from .training import CheckpointError, TrainConfig, latest_checkpoint, load_checkpoint
from .verification import run_checks


class CLIError(Exception):
    """An error the user can act on; printed as one line."""


# ----------------------------------------------------------------------------------------------- tfs verify


def _format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([line, sep, *body])


def verification_table(seed: int = 0) -> tuple[str, bool]:
    """Run every registered check (float64, ours vs NumPy reference); return the table and whether all pass."""
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


# ---------------------------------------------------------------------------------------------- run folders

_CREATED_RUN_FOLDERS: list[Path] = []  # made by _runs_dir during this command; main() removes the empty ones


def _runs_dir(out: str | None) -> Path:
    """``--out`` if given, else a new folder ``$TFS_RUNS_DIR`` (default ``runs``) / <timestamp>
    (:func:`~.recipes.runs.make_run_folder`). A command that stops with an error before writing anything leaves
    no empty folder behind (see :func:`main`)."""
    if out is not None:
        return Path(out)
    folder = make_run_folder(os.environ.get("TFS_RUNS_DIR", "runs"))
    _CREATED_RUN_FOLDERS.append(folder)
    return folder


# ------------------------------------------------------------------------------------- flags -> TrainConfig

# flag (its argparse destination) -> the TrainConfig field it sets; None on the command line: the recipe's value
_TRAIN_FLAGS = (
    ("steps", "steps"),
    ("batch_size", "batch_size"),
    ("lr", "max_lr"),
    ("min_lr", "min_lr"),
    ("warmup_steps", "warmup_steps"),
    ("weight_decay", "weight_decay"),
    ("eval_every", "eval_every"),
    ("checkpoint_every", "checkpoint_every"),
)


def _saved_train_config(path: Path) -> dict:
    """The TrainConfig fields stored in a checkpoint (a step folder, or an --out folder holding step folders)."""
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


def _train_config(
    args: argparse.Namespace,
    recipe: Callable[..., TrainConfig],
    folder: Path | None,
    short_run: Callable[[int], dict[str, Any]] | None = None,
) -> TrainConfig:
    """The recipe's TrainConfig (``recipe(**fields)``) with the flags the user gave on top; errors become one line.

    With ``--resume`` the checkpoint's own settings come first — resuming continues the same run — and the flags
    still apply on top (``Trainer.resume`` refuses a change that would make it another run). ``short_run(steps)``
    gives the settings a shorter ``--steps`` scales down when their own flags are not given; ``--lr`` below the
    recipe's final rate lowers the final rate with it; ``--beta2`` keeps β₁; ``--grad-clip 0`` turns clipping off.
    """
    fields: dict[str, Any] = {"seed": args.seed, "progress": not args.no_progress}
    resume = getattr(args, "resume", None)
    if resume is not None:
        fields.update(_saved_train_config(Path(resume)))
    for flag, field in _TRAIN_FLAGS:
        if getattr(args, flag, None) is not None:
            fields[field] = getattr(args, flag)
    fields["out_dir"] = None if folder is None else str(folder)
    steps = getattr(args, "steps", None)
    if resume is None and steps is not None and short_run is not None:
        for field, value in short_run(steps).items():
            fields.setdefault(field, value)
    if getattr(args, "beta2", None) is not None:
        fields["betas"] = (recipe().betas[0], args.beta2)
    if getattr(args, "grad_clip", None) is not None:
        fields["grad_clip"] = args.grad_clip or None  # 0: measure the gradient norm without clipping
    lr = getattr(args, "lr", None)
    if lr is not None and getattr(args, "min_lr", None) is None:
        fields["min_lr"] = min(fields.get("min_lr", recipe().min_lr), lr)
    try:
        return recipe(**fields)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None


def _seq2seq_short_run(steps: int) -> dict[str, int]:
    """A shorter run evaluates 5 times and warms up over its first 10% (at most the recipe's 100 steps)."""
    return {
        "eval_every": max(1, steps // 5),
        "warmup_steps": min(seq2seq.seq2seq_train_config().warmup_steps, steps // 10),
    }


def _gpt_short_run(steps: int) -> dict[str, int]:
    """A shorter run warms up over its first 10% (at most the recipe's 100 steps)."""
    return {"warmup_steps": min(gpt.gpt_train_config().warmup_steps, steps // 10)}


def _bert_short_run(steps: int) -> dict[str, int]:
    """A run no longer than the recipe's warm-up warms up over its first 10% instead."""
    warmup = bert.bert_train_config().warmup_steps
    return {"warmup_steps": steps // 10} if warmup >= steps else {}


# ------------------------------------------------------------------------------- the encoder–decoder (tour)


def _plot_run(history: list[dict], folder: Path) -> list[Path]:
    """Loss and learning-rate curves from a training history; returns the files written."""
    import matplotlib  # only the plotting commands pay for matplotlib's import

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


def _plot_cross_attention(run: Run, folder: Path) -> Path:
    """Heatmap of the last decoder layer's cross-attention (mean over heads) for one test example."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source, target = run.data.splits.test[0]
    batch = synthetic.to_batch([(source, target)])
    run.model.eval()
    with torch.no_grad():
        out = run.model(batch.src, batch.tgt_in, src_valid=batch.src_valid, return_attention=True)
    weights = out.decoder_cross_attentions[-1][0].mean(dim=0)  # (H, T, S) -> (T, S)
    vocab = run.data.vocab
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(weights.numpy(), cmap="viridis")
    ax.set_xticks(range(len(source)), list(vocab.decode(source)))
    ax.set_yticks(range(len(target) + 1), ["<bos>", *vocab.decode(target)])
    ax.set(xlabel="source position", ylabel="decoder input", title="cross-attention (last layer)")
    fig.tight_layout()
    path = folder / "cross_attention.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _train_seq2seq(args: argparse.Namespace, task: str, folder: Path | None) -> Run:
    """Build the configs from the flags (errors become one line) and run ``recipes.seq2seq.train_seq2seq``."""
    train_config = _train_config(args, seq2seq.seq2seq_train_config, folder, _seq2seq_short_run)
    data = seq2seq.seq2seq_data(task, seed=train_config.seed)
    model_config = seq2seq.seq2seq_model_config(impl=args.impl)
    resume = getattr(args, "resume", None)
    try:
        return seq2seq.train_seq2seq(
            data, model_config, train_config, beam_size=getattr(args, "beam_size", 1), resume=resume
        )
    except ValueError as e:  # e.g. resuming a checkpoint written with other settings
        if resume is None:
            raise
        raise CLIError(f"--resume: {e}") from None


def _example(report: seq2seq.Seq2SeqReport) -> str:
    return f"{report.example_source} -> {report.example_output} (expected {report.example_target})"


def cmd_tour(args: argparse.Namespace) -> int:
    folder = _runs_dir(args.out)
    print(f"transformer_from_scratch {__version__} — tour\n")
    print("1. Numerical verification against the NumPy float64 reference")
    start = time.perf_counter()
    table, ok = verification_table(args.seed)
    print(table)
    print(f"   {'all checks passed' if ok else 'SOME CHECKS FAILED'} ({time.perf_counter() - start:.1f} s)\n")

    print("2. Training the 2017 encoder–decoder to reverse sequences (chapter 04)")
    run = _train_seq2seq(args, "reverse", folder=None)  # the plots go to the folder, no checkpoints
    r = run.report
    print(f"   {len(run.history)} steps in {r.seconds:.0f} s; final train loss {run.history[-1]['train_loss']:.4f}")
    print(f"   exact match on {r.test_pairs} held-out sequences (greedy): {r.exact_match:.1%}")
    print(f"   example: {_example(r)}\n")

    print(f"3. Plots written to {folder}/")
    for path in [*_plot_run(run.history, folder), _plot_cross_attention(run, folder)]:
        print(f"   {path}")
    return 0 if ok else 1


def _cmd_train_seq2seq(args: argparse.Namespace) -> int:
    """``tfs train copy|reverse|sort``: the encoder–decoder recipe, then exact match on the test strings."""
    folder = _runs_dir(args.out)
    run = _train_seq2seq(args, args.task, folder)
    r = run.report
    decoding = "greedy" if r.beam_size == 1 else f"beam search, width {r.beam_size}"
    print(f"task {args.task}: {len(run.history)} steps in {r.seconds:.0f} s")
    print(f"exact match on {r.test_pairs} held-out sequences ({decoding}): {r.exact_match:.1%}")
    print(f"example: {_example(r)}")
    print(f"checkpoints and {HISTORY_FILE} in {folder}/")
    return 0


# ------------------------------------------------------------------------------------------------- BERT


def _cmd_train_bert(args: argparse.Namespace) -> int:
    """``tfs train bert``: MLM + NSP pre-training of a tiny BERT on the embedded corpus, then the held-out report."""
    folder = _runs_dir(args.out)
    train_config = _train_config(args, bert.bert_train_config, folder, _bert_short_run)
    if train_config.checkpoint_every is None:  # the recipe checkpoints at every evaluation
        train_config = dataclasses.replace(train_config, checkpoint_every=train_config.eval_every)
    try:
        data = bert.prepare_bert_data(seed=train_config.seed)
        tokenizer = data.tokenizer
        model_config = bert.bert_model_config(
            tokenizer.vocab_size, data.max_len, pad_id=tokenizer.pad_id, impl=args.impl
        )
        run = bert.train_bert(data, model_config, train_config, resume=args.resume)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    r = run.report
    print(f"BERT: {r.n_parameters:,} parameters, {r.steps} steps in {r.seconds:.0f} s")
    print(
        f"held-out masked-token accuracy {r.mlm_accuracy:.3f} "
        f"(unigram-frequency baseline {r.unigram_baseline_accuracy:.3f}, {r.masked_positions} [MASK] positions)"
    )
    print(f"held-out NSP accuracy {r.nsp_accuracy:.3f} ± {r.nsp_accuracy_std:.3f} (chance 0.500, {r.nsp_pairs} pairs)")
    print(f"checkpoints, {TOKENIZER_FILE} and {HISTORY_FILE} in {folder}/")
    return 0


# -------------------------------------------------------------------------------------------------- GPT

# flag destination -> keyword of gpt_model_config (None on the command line: the recipe's value)
_GPT_MODEL_FLAGS = ("n_layers", "n_heads", "d_model", "context", "dropout")


def _gpt_model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of ``gpt_model_config`` the flags set (vocabulary size aside); a bad value fails here, before
    any data is read."""
    options: dict[str, Any] = {k: getattr(args, k) for k in _GPT_MODEL_FLAGS if getattr(args, k, None) is not None}
    options["impl"] = args.impl
    gpt.gpt_model_config(1, **options)  # the real vocabulary size is known once the tokenizer is learned
    return options


def _train_gpt(args: argparse.Namespace, folder: Path) -> Run:
    """Flags -> data, configs -> ``recipes.gpt.train_gpt``. Every setting is checked before the text is read."""
    if args.tokenizer not in gpt.TOKENIZERS:
        raise CLIError(f"--tokenizer must be one of {gpt.TOKENIZERS}, got {args.tokenizer!r}")
    train_config = _train_config(args, gpt.gpt_train_config, folder, _gpt_short_run)
    try:
        model_options = _gpt_model_options(args)
        data = gpt.load_lm_data(args.data, tokenizer=args.tokenizer, bpe_vocab_size=args.bpe_vocab_size)
        model_config = gpt.gpt_model_config(data.vocab_size, **model_options)
        return gpt.train_gpt(
            data,
            model_config,
            train_config,
            prompt=args.prompt,
            sample_tokens=args.sample_tokens,
            temperature=args.temperature,
        )
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None


def _cmd_train_gpt(args: argparse.Namespace) -> int:
    """``tfs train gpt``: train a GPT, then print the validation loss, perplexity, the unigram baseline and a
    sample."""
    if args.resume is not None:
        raise CLIError("--resume is not supported for gpt yet; start a new run with --out")
    folder = _runs_dir(args.out)
    run = _train_gpt(args, folder)
    r, c = run.report, run.model.config
    print(
        f"GPT: {c.n_layers} layers, {c.n_heads} heads, d_model {c.d_model}, context {c.max_len}, "
        f"{r.n_parameters:,} parameters"
    )
    print(
        f"data: {r.source} · {r.tokenizer} tokens, vocabulary {r.vocab_size} · {r.train_tokens:,} train / "
        f"{r.val_tokens:,} validation tokens scored"
    )
    print(f"{r.steps} steps in {r.seconds:.0f} s ({r.tokens_per_s:,.0f} tokens/s)")
    print(
        f"validation loss {r.val_loss:.4f} nats/token · perplexity {r.val_perplexity:.2f} "
        f"(unigram baseline: loss {r.unigram_loss:.4f}, perplexity {r.unigram_perplexity:.2f})"
    )
    print(f"sample (temperature {args.temperature}):")
    print(r.sample)
    print(f"checkpoints, {HISTORY_FILE}, {TOKENIZER_FILE} and {MODEL_CONFIG_FILE} in {folder}/")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.task == "gpt":
        return _cmd_train_gpt(args)
    if args.task == "bert":
        return _cmd_train_bert(args)
    return _cmd_train_seq2seq(args)


# ----------------------------------------------------------------------------------------------- the parser


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


def _add_impl(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--impl",
        choices=IMPLS,
        default="plain",
        help="implementation of the functional core: plain (the textbook code, default), kernels (hand-written "
        "backward passes) or torch (PyTorch's fused built-ins); the same numbers",
    )


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``tfs train``: shared by every task first, then the ones only ``gpt`` reads."""
    p.add_argument(
        "--steps", type=_positive_int, default=None, help="optimizer steps (default 600; bert 2000; gpt 1000)"
    )
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3)")
    p.add_argument("--min-lr", type=float, default=None, help="final learning rate of the cosine (default 1e-4)")
    p.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (default 100)")
    p.add_argument(
        "--batch-size", type=_positive_int, default=None, help="examples per step (default 64; bert 32; gpt 32)"
    )
    p.add_argument(
        "--weight-decay", type=float, default=None, help="AdamW weight decay (default 0; bert 0.01; gpt 0.1)"
    )
    p.add_argument("--beta2", type=float, default=None, help="AdamW beta2 (default 0.999; bert 0.98; gpt 0.99)")
    p.add_argument(
        "--grad-clip", type=float, default=None, help="clip the gradient norm to this; 0 = no clipping (default 1.0)"
    )
    p.add_argument("--eval-every", type=_positive_int, default=None, help="validate every N steps")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, help="checkpoint every N steps")
    p.add_argument("--beam-size", type=_positive_int, default=1, help="beam width for the final evaluation")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="folder for checkpoints and history.jsonl (default runs/<timestamp>)")
    p.add_argument("--resume", default=None, help="continue from a checkpoint folder (or an --out folder)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_impl(p)

    g = p.add_argument_group("gpt", "used by `tfs train gpt` only")
    g.add_argument(
        "--data",
        default=None,
        help="a UTF-8 text file, split 90/10 into train/validation (default: the embedded corpus)",
    )
    g.add_argument("--tokenizer", default="char", help="char or bpe (default char)")
    g.add_argument("--bpe-vocab-size", type=int, default=512, help="vocabulary size of the BPE tokenizer (default 512)")
    g.add_argument("--n-layers", type=int, default=None, help="Transformer blocks (default 4)")
    g.add_argument("--n-heads", type=int, default=None, help="attention heads (default 4)")
    g.add_argument(
        "--d-model", type=int, default=None, help="model width D; the feed-forward width is 4·D (default 128)"
    )
    g.add_argument("--context", type=int, default=None, help="tokens the model reads (default 64)")
    g.add_argument("--dropout", type=float, default=None, help="dropout rate (default 0)")
    g.add_argument(
        "--prompt", default=None, help="text the sample continues (default 'The ', if every character is known)"
    )
    g.add_argument(
        "--sample-tokens", type=_positive_int, default=200, help="tokens to sample after training (default 200)"
    )
    g.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")


def build_parser() -> argparse.ArgumentParser:
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
    _add_impl(p)
    p.set_defaults(func=cmd_tour)

    p = sub.add_parser(
        "train",
        help="train a model: encoder–decoder on copy / reverse / sort, a tiny BERT (bert) or a GPT (gpt)",
    )
    p.add_argument("task", choices=(*synthetic.TASKS, "bert", "gpt"), help="what to learn")
    _add_train_arguments(p)
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
