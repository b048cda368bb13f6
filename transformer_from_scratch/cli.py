"""The ``tfs`` command (also ``python -m transformer_from_scratch``).

    tfs tour                     the main job: verify every module against the NumPy reference, then train a model
    tfs verify                   only the verification table
    tfs train TASK               train: reverse | copy | sort (an encoder–decoder), gpt, bert, xlnet, t5 — each task
                                 has its own options and defaults (``tfs train TASK --help``)
    tfs generate --from RUN      continue a prompt with a trained GPT, or transduce a string with a synthetic task
                                 (an xlnet run is refused: permuted LM is not a left-to-right generator here)
    tfs evaluate --from RUN      compute a run's held-out report again from its newest checkpoint
    tfs finetune classify --from PATH --task sentiment|topic --freeze encoder|none
                                 fine-tune a pre-trained encoder (a bert run folder or a Hugging Face BERT folder)
                                 and print held-out accuracy, macro-F1 and per-class scores against the
                                 majority-class baseline; writes predictions, metrics and a confusion-matrix figure
    tfs finetune qa --from PATH  the same for extractive QA on bAbI-style stories: exact match and F1 against the
                                 first-place-word baseline
    tfs finetune t5 --task translate|summarize|qa [--from RUN]   a T5 fine-tuned text to text; held-out BLEU,
                                 ROUGE-L or exact match of its generations against the task's baseline

The commands turn options into the recipes' configs (``recipes/``), check all of them — and that the run fits in
memory — before any work starts, run the recipe and print its report: this is the only module that parses
arguments or prints. A run writes into ``--out`` (default ``runs/<timestamp>``), which must not hold another run
unless ``--overwrite`` moves that one aside; ``--resume RUN`` continues a run in its own folder. Bad arguments,
missing files and unusable folders end with one clear line on stderr and exit status 2, a run that diverges with
exit status 1, an interrupted one with 130 — never a traceback, and never a half-made folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .config import IMPLS
from .datasets import synthetic
from .recipes import bert, finetune, gpt, saved, seq2seq, t5, text_to_text, xlnet
from .recipes.runs import Run, RunFolderError, claim_run_folder, holds_a_run, read_run, run_folder_of
from .training import CheckpointError, DivergenceError, TrainConfig, load_checkpoint
from .training.memory import InsufficientMemoryError, check_fits_in_memory, estimate_training_memory
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


def _new_run_path() -> Path:
    """An unused ``$TFS_RUNS_DIR`` (default ``runs``) / <timestamp> path (…-2, -3 within one second); created
    only when the run starts, so a command that fails before leaves nothing behind."""
    base = Path(os.environ.get("TFS_RUNS_DIR", "runs"))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = base / stamp, 1
    while folder.exists():
        n += 1
        folder = base / f"{stamp}-{n}"
    return folder


def _check_out(path: Path, overwrite: bool) -> None:
    """Refuse, before any work, an ``--out`` that is a file or holds a run (unless --overwrite)."""
    if path.exists() and not path.is_dir():
        raise CLIError(f"--out {path} is a file, not a folder")
    if not overwrite and path.is_dir() and holds_a_run(path):
        raise CLIError(
            f"--out {path} already holds a run; continue it with --resume {path}, or pass --overwrite to move it aside"
        )


@dataclass
class _Current:
    """The run this command is training, for the message when it is interrupted."""

    task: str | None = None
    folder: Path | None = None


_CURRENT = _Current()


# ------------------------------------------------------------------------------------- options -> TrainConfig

# option (its argparse destination) -> the TrainConfig field it sets; None on the command line: the default
_TRAIN_FLAGS = (
    ("steps", "steps"),
    ("batch_size", "batch_size"),
    ("lr", "max_lr"),
    ("min_lr", "min_lr"),
    ("warmup_steps", "warmup_steps"),
    ("weight_decay", "weight_decay"),
    ("eval_every", "eval_every"),
    ("checkpoint_every", "checkpoint_every"),
    ("keep_checkpoints", "keep_checkpoints"),
    ("seed", "seed"),
)


@dataclass(frozen=True)
class _Task:
    """What ``tfs train TASK`` needs to know of a recipe: its TrainConfig (the defaults shown in --help) and the
    settings a shorter ``--steps`` scales down when their own options are not given."""

    name: str
    help: str
    recipe: Callable[..., TrainConfig]
    short_run: Callable[[int, TrainConfig], dict[str, Any]]


def _seq2seq_short_run(steps: int, recipe: TrainConfig) -> dict[str, int]:
    """A shorter run evaluates 5 times and warms up over its first 10% (at most the recipe's 100 steps)."""
    return {"eval_every": max(1, steps // 5), "warmup_steps": min(recipe.warmup_steps, steps // 10)}


def _gpt_short_run(steps: int, recipe: TrainConfig) -> dict[str, int]:
    """A shorter run warms up over its first 10% (at most the recipe's 100 steps)."""
    return {"warmup_steps": min(recipe.warmup_steps, steps // 10)}


def _bert_short_run(steps: int, recipe: TrainConfig) -> dict[str, int]:
    """A run no longer than the recipe's warm-up warms up over its first 10% instead."""
    return {"warmup_steps": steps // 10} if recipe.warmup_steps >= steps else {}


def _xlnet_short_run(steps: int, recipe: TrainConfig) -> dict[str, int]:
    """As BERT's: a run no longer than the recipe's warm-up warms up over its first 10% instead."""
    return _bert_short_run(steps, recipe)


_SEQ2SEQ_HELP = {
    "copy": "an encoder–decoder learns to copy strings of symbols (chapter 04's recipe)",
    "reverse": "an encoder–decoder learns to reverse strings of symbols (chapter 04)",
    "sort": "an encoder–decoder learns to sort strings of symbols",
}
TASKS = {
    **{
        name: _Task(name, _SEQ2SEQ_HELP.get(name, f"an encoder–decoder learns {name}"), seq2seq.seq2seq_train_config,
                    _seq2seq_short_run)
        for name in synthetic.TASKS
    },
    "gpt": _Task("gpt", "a GPT language model on the embedded corpus or your text file (chapter 08)",
                 gpt.gpt_train_config, _gpt_short_run),
    "bert": _Task("bert", "a tiny BERT pre-trained with MLM + NSP on the embedded corpus (chapter 06)",
                  bert.bert_train_config, _bert_short_run),
    "xlnet": _Task("xlnet", "a tiny XLNet pre-trained with permuted language modelling on the embedded corpus "
                   "(chapter 07)", xlnet.xlnet_train_config, _xlnet_short_run),
    "t5": _Task("t5", "a tiny T5 pre-trained by span corruption on the embedded corpus (chapter 09)",
                t5.t5_train_config, _xlnet_short_run),
}  # fmt: skip


def _train_config(args: argparse.Namespace, task: _Task, folder: Path, resumed: dict | None) -> TrainConfig:
    """The recipe's TrainConfig — or, with ``--resume``, the run's own ``train_config.json`` — with the options the
    user gave on top; errors become one line.

    Without --resume: ``short_run`` scales down the settings a shorter ``--steps`` would otherwise leave too long;
    ``--lr`` below the recipe's final rate lowers the final rate with it; every run checkpoints at each evaluation
    unless ``--checkpoint-every`` says otherwise. With --resume an option that changes the run is refused later
    (``runs.check_resume``), in one line.
    """
    recipe = task.recipe()
    fields: dict[str, Any] = dict(resumed) if resumed is not None else {}
    given = {field: getattr(args, flag) for flag, field in _TRAIN_FLAGS if getattr(args, flag, None) is not None}
    fields.update(given)
    fields.update(out_dir=str(folder), progress=not args.no_progress)
    if args.beta2 is not None:
        fields["betas"] = (recipe.betas[0], args.beta2)
    if args.grad_clip is not None:
        fields["grad_clip"] = args.grad_clip or None  # 0: measure the gradient norm without clipping
    if resumed is None:
        if "steps" in given:
            for field, value in task.short_run(given["steps"], recipe).items():
                fields.setdefault(field, value)
        if args.lr is not None and args.min_lr is None:
            fields["min_lr"] = min(recipe.min_lr, args.lr)
    try:
        config = dataclasses.replace(recipe, **fields)
        if resumed is None and "checkpoint_every" not in given:
            config = dataclasses.replace(config, checkpoint_every=config.eval_every)
        return config
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None


# ----------------------------------------------------------------------------------------------- tfs train


@dataclass
class _Prepared:
    """A task made ready to train: its data and model config, what else its recipe takes, and the sequence
    length (and, for XLNet, the most targets per sequence) the memory estimate assumes."""

    data: Any
    model_config: Any
    seq_len: int
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    targets: int | None = None


def _impl(args: argparse.Namespace, resumed_model: dict | None) -> dict[str, str]:
    if args.impl is not None:
        return {"impl": args.impl}
    return {"impl": resumed_model["impl"]} if resumed_model and "impl" in resumed_model else {}


def _prepare_seq2seq(args: argparse.Namespace, train_config: TrainConfig, resumed: Any) -> _Prepared:
    data = seq2seq.seq2seq_data(args.task, seed=train_config.seed)
    model_config = seq2seq.seq2seq_model_config(**_impl(args, resumed and resumed.model_config))
    return _Prepared(data, model_config, model_config.max_len, {"beam_size": args.beam_size})


_GPT_MODEL_FLAGS = ("n_layers", "n_heads", "d_model", "context", "dropout")
_GPT_DATA_FLAGS = ("data", "tokenizer", "bpe_vocab_size")


def _gpt_model_options(args: argparse.Namespace, resumed: Any) -> dict[str, Any]:
    """The keywords of ``gpt_model_config`` (vocabulary size aside): the options given, else the resumed run's
    values; a bad value fails here, before any text is read."""
    options: dict[str, Any] = {}
    if resumed is not None:
        m = resumed.model_config
        options = {"n_layers": m["n_layers"], "n_heads": m["n_heads"], "d_model": m["d_model"],
                   "context": m["max_len"], "dropout": m["dropout"]}  # fmt: skip
    options.update({k: getattr(args, k) for k in _GPT_MODEL_FLAGS if getattr(args, k) is not None})
    options.update(_impl(args, resumed and resumed.model_config))
    try:
        gpt.gpt_model_config(1, **options)  # the real vocabulary size is known once the tokenizer is learned
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    return options


def _gpt_data_options(args: argparse.Namespace, resumed: Any) -> dict[str, Any]:
    """``load_lm_data``'s keywords: the resumed run's (a different --data / --tokenizer is refused), else the
    options given, else the defaults."""
    given = {k: getattr(args, k) for k in _GPT_DATA_FLAGS if getattr(args, k) is not None}
    if "data" in given:
        given["data"] = os.path.abspath(given["data"])
    if resumed is None:
        return {"data": None, "tokenizer": "char", "bpe_vocab_size": 512, **given}
    options = dict(resumed.data or {})
    for key, value in given.items():
        if options.get(key) != value:
            flag = "--" + key.replace("_", "-")
            raise CLIError(
                f"--resume: {resumed.folder} was trained with {key} {options.get(key)!r}, not {flag} {value}"
            )
    return options


def _prepare_gpt(args: argparse.Namespace, train_config: TrainConfig, resumed: Any) -> _Prepared:
    model_options = _gpt_model_options(args, resumed)
    data_options = _gpt_data_options(args, resumed)
    if data_options["tokenizer"] not in gpt.TOKENIZERS:
        raise CLIError(f"--tokenizer must be one of {gpt.TOKENIZERS}, got {data_options['tokenizer']!r}")
    data = gpt.load_lm_data(**data_options)
    model_config = gpt.gpt_model_config(data.vocab_size, **model_options)
    prompt = args.prompt
    if prompt is not None:
        _warn_unknown(gpt.unknown_characters(data.tokenizer, prompt))
    options = dict(prompt=prompt, sample_tokens=args.sample_tokens, temperature=args.temperature)
    return _Prepared(data, model_config, model_config.max_len, options)


def _prepare_bert(args: argparse.Namespace, train_config: TrainConfig, resumed: Any) -> _Prepared:
    data = bert.prepare_bert_data(seed=train_config.seed)
    tokenizer = data.tokenizer
    impl = _impl(args, resumed and resumed.model_config)
    model_config = bert.bert_model_config(tokenizer.vocab_size, data.max_len, pad_id=tokenizer.pad_id, **impl)
    return _Prepared(data, model_config, data.max_len)


_XLNET_MODEL_FLAGS = ("n_layers", "n_heads", "d_model", "dropout")
# option (its argparse destination) -> keyword of prepare_xlnet_data
_XLNET_DATA_FLAGS = {"context": "max_len", "k": "k", "heldout_orders": "heldout_orders"}


def _xlnet_model_options(args: argparse.Namespace, resumed: Any) -> dict[str, Any]:
    """The keywords of ``xlnet_model_config`` (vocabulary size aside): the options given, else the resumed run's
    values; a bad value fails here, before any text is read."""
    options: dict[str, Any] = {}
    if resumed is not None:
        options = {k: resumed.model_config[k] for k in _XLNET_MODEL_FLAGS}
    options.update({k: getattr(args, k) for k in _XLNET_MODEL_FLAGS if getattr(args, k) is not None})
    options.update(_impl(args, resumed and resumed.model_config))
    try:
        xlnet.xlnet_model_config(1, pad_id=None, **options)  # the vocabulary is the tokenizer's, read later
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    return options


def _xlnet_data_options(args: argparse.Namespace, resumed: Any) -> dict[str, Any]:
    """``prepare_xlnet_data``'s keywords: the resumed run's (a different --context / --k / --heldout-orders is
    refused), else the options given, else the recipe's defaults."""
    given = {key: getattr(args, flag) for flag, key in _XLNET_DATA_FLAGS.items() if getattr(args, flag) is not None}
    if resumed is None:
        return given
    options = dict(resumed.data or {})
    for flag, key in _XLNET_DATA_FLAGS.items():
        if key in given and options.get(key) != given[key]:
            raise CLIError(
                f"--resume: {resumed.folder} was trained with {key} {options.get(key)!r}, not "
                f"--{flag.replace('_', '-')} {given[key]}"
            )
    return options


def _prepare_xlnet(args: argparse.Namespace, train_config: TrainConfig, resumed: Any) -> _Prepared:
    model_options = _xlnet_model_options(args, resumed)
    data_options = _xlnet_data_options(args, resumed)
    # Memory first, with the vocabulary asked for (the learned one is at most that): a --context too long for the
    # machine is refused before the corpus is cut into windows of that length.
    defaults = {k: p.default for k, p in inspect.signature(xlnet.prepare_xlnet_data).parameters.items()}
    asked = {**defaults, **data_options}
    _check_memory(
        _Prepared(None, xlnet.xlnet_model_config(asked["vocab_size"], **model_options), asked["max_len"],
                  targets=math.ceil(asked["max_len"] / asked["k"])),
        train_config,
    )  # fmt: skip
    data = xlnet.prepare_xlnet_data(**data_options)
    tokenizer = data.tokenizer
    model_config = xlnet.xlnet_model_config(tokenizer.vocab_size, pad_id=tokenizer.pad_id, **model_options)
    # permute_batch rounds n/K up at most: a window of max_len tokens has at most ⌈max_len / K⌉ targets
    return _Prepared(data, model_config, data.max_len, targets=math.ceil(data.max_len / data.k))


def _check_memory(prepared: _Prepared, train_config: TrainConfig) -> None:
    targets = {} if prepared.targets is None else {"targets": prepared.targets}
    estimate = estimate_training_memory(
        prepared.model_config, batch_size=train_config.batch_size, seq_len=prepared.seq_len, **targets
    )
    try:
        # The estimate counts tensors; glibc's malloc keeps freed activations resident, which raised the measured
        # peak to 1.14-1.49x the estimate (training/memory.py), so only 60 % of the available memory is counted on.
        check_fits_in_memory(estimate, fraction=0.6)
    except InsufficientMemoryError as e:
        raise CLIError(f"{e} (--batch-size, and --context for gpt and xlnet)") from None


def _warn_unknown(characters: list[str]) -> None:
    if characters:
        shown = " ".join(repr(c) for c in characters[:10]) + (" …" if len(characters) > 10 else "")
        print(f"tfs: warning: the prompt holds characters the tokenizer does not know ({shown}); each becomes "
              "its unknown token", file=sys.stderr)  # fmt: skip


def _schedule_note(resumed: Any, config: TrainConfig) -> str | None:
    """A line saying how the learning rate moves when a resumed run is asked for more steps than it planned."""
    planned = resumed.train_config.get("steps")
    if planned is None or planned == config.steps:
        return None
    step = int(json.loads((resumed.latest / "state.json").read_text())["step"])
    if config.steps <= step:
        return None  # refused by the recipe, in one line
    old = dataclasses.replace(config, steps=planned)
    was = f"instead of {old.lr_at(step + 1):.3g}" if step < planned else f"its schedule ended at {old.lr_at(step):.3g}"
    return (
        f"note: this run planned {planned} steps and now trains to {config.steps}, so its schedule is stretched: "
        f"step {step + 1} runs at learning rate {config.lr_at(step + 1):.3g} ({was})"
    )


def _prepare_t5(args: argparse.Namespace, train_config: TrainConfig, resumed: Any) -> _Prepared:
    data = t5.prepare_t5_data()
    tokenizer = data.tokenizer
    impl = _impl(args, resumed and resumed.model_config)
    model_config = t5.t5_model_config(tokenizer.vocab_size, pad_id=tokenizer.pad_id, eos_id=tokenizer.eos_id, **impl)
    return _Prepared(data, model_config, data.max_len)


_PREPARE = {
    **{name: _prepare_seq2seq for name in synthetic.TASKS},
    "gpt": _prepare_gpt,
    "bert": _prepare_bert,
    "xlnet": _prepare_xlnet,
    "t5": _prepare_t5,
}


def cmd_train(args: argparse.Namespace) -> int:
    """``tfs train TASK``: check every option, read the data, check the memory, then run the task's recipe in a
    fresh run folder (or continue ``--resume``'s) and print its report."""
    task = TASKS[args.task]
    resumed = _resumed_run(args)
    folder = resumed.folder if resumed is not None else Path(args.out) if args.out else _new_run_path()
    if resumed is None:
        _check_out(folder, args.overwrite)
    train_config = _train_config(args, task, folder, resumed.train_config if resumed else None)
    try:
        prepared = _PREPARE[args.task](args, train_config, resumed)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    _check_memory(prepared, train_config)
    if resumed is not None:
        note = _schedule_note(resumed, train_config)
        if note:
            print(note)
    elif args.overwrite:
        _, moved = claim_run_folder(folder, overwrite=True)
        if moved is not None:
            print(f"moved the run that was in {folder} to {moved}")
    _CURRENT.task, _CURRENT.folder = args.task, folder
    run = _run_recipe(args.task, prepared, train_config, resumed)
    _REPORTS[args.task](args, run)
    print(f"the run is in {folder}/ (continue it with: tfs train {args.task} --resume {folder} --steps N)")
    return 0


def _resumed_run(args: argparse.Namespace) -> Any:
    """The run ``--resume`` names, read and checked against the task (None without --resume)."""
    if args.resume is None:
        return None
    if args.overwrite:
        raise CLIError("--resume continues a run and --overwrite moves one aside: choose one")
    try:
        resumed = read_run(args.resume)
    except RunFolderError as e:
        raise CLIError(f"--resume: {e}") from None
    if args.out is not None and Path(args.out).resolve() != resumed.folder.resolve():
        raise CLIError(f"--resume continues the run in its own folder {resumed.folder}; drop --out {args.out}")
    if resumed.task != args.task:
        raise CLIError(f"--resume: {resumed.folder} is a run of {resumed.task!r}, not of {args.task!r}")
    if resumed.latest is None:
        raise CLIError(
            f"--resume: {resumed.folder} holds no checkpoint yet (it stopped before its first one); start it "
            f"again with --out {resumed.folder} --overwrite"
        )
    _, checkpoint = run_folder_of(args.resume)
    if checkpoint != resumed.latest:
        raise CLIError(f"--resume takes a run folder ({resumed.folder}), not one of its older checkpoints")
    try:
        load_checkpoint(checkpoint)  # complete, and its checksum right
    except CheckpointError as e:
        raise CLIError(f"--resume: {e}") from None
    return resumed


def _run_recipe(task: str, prepared: _Prepared, train_config: TrainConfig, resumed: Any) -> Run:
    resume = None if resumed is None else resumed.folder
    train = {"gpt": gpt.train_gpt, "bert": bert.train_bert, "xlnet": xlnet.train_xlnet, "t5": t5.train_t5}.get(
        task, seq2seq.train_seq2seq
    )
    try:
        return train(prepared.data, prepared.model_config, train_config, resume=resume, **prepared.options)
    except RunFolderError as e:
        raise CLIError(f"--resume: {e}" if resumed is not None else str(e)) from None


def _example(report: seq2seq.Seq2SeqReport) -> str:
    return f"{report.example_source} -> {report.example_output} (expected {report.example_target})"


def _report_seq2seq(args: argparse.Namespace, run: Run) -> None:
    r = run.report
    decoding = "greedy" if r.beam_size == 1 else f"beam search, width {r.beam_size}"
    print(f"task {args.task}: {r.steps} steps, {r.n_parameters:,} parameters, {r.seconds:.0f} s")
    print(f"exact match on {r.test_pairs} held-out sequences ({decoding}): {r.exact_match:.1%}")
    print(f"example: {_example(r)}")


def _report_bert(args: argparse.Namespace, run: Run) -> None:
    r = run.report
    print(f"BERT: {r.n_parameters:,} parameters, {r.steps} steps in {r.seconds:.0f} s")
    print(
        f"held-out masked-token accuracy {r.mlm_accuracy:.3f} "
        f"(unigram-frequency baseline {r.unigram_baseline_accuracy:.3f}, {r.masked_positions} [MASK] positions)"
    )
    print(f"held-out NSP accuracy {r.nsp_accuracy:.3f} ± {r.nsp_accuracy_std:.3f} (chance 0.500, {r.nsp_pairs} pairs)")


def _plm_lines(m: dict[str, float] | Any) -> list[str]:
    """The held-out PLM loss against the unigram baseline, from :func:`recipes.xlnet.evaluate_xlnet`'s numbers."""
    get = m.get if isinstance(m, dict) else lambda name: getattr(m, name)
    return [
        f"held-out PLM loss {get('plm_loss'):.4f} nats/token (unigram baseline {get('unigram_loss'):.4f}) over "
        f"{int(get('predicted_tokens')):,} predicted tokens ({int(get('heldout_windows'))} windows × "
        f"{int(get('heldout_orders'))} orders)",
        f"margin {get('margin'):.4f} ± {get('margin_std_error'):.4f} nats/token = {get('margin_sigma'):.1f} σ "
        f"(per-token standard error; {get('margin') / get('margin_std_error_windows'):.1f} σ with whole windows as "
        "the units)",
        f"top-1 accuracy on the targets {get('plm_accuracy'):.3f} (unigram {get('unigram_accuracy'):.3f})",
    ]


def _report_xlnet(args: argparse.Namespace, run: Run) -> None:
    r, c = run.report, run.model.config
    print(
        f"XLNet: {c.n_layers} layers, {c.n_heads} heads, d_model {c.d_model}, {r.n_parameters:,} parameters; "
        f"K = {r.k:g}; {r.steps} steps in {r.seconds:.0f} s"
    )
    for line in _plm_lines(r):
        print(line)


def _report_gpt(args: argparse.Namespace, run: Run) -> None:
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


def _report_t5(args: argparse.Namespace, run: Run) -> None:
    r, c = run.report, run.model.config
    print(
        f"T5: {c.n_layers} + {c.n_decoder} layers, {c.n_heads} heads of width {c.d_kv}, d_model {c.d_model}, "
        f"{r.n_parameters:,} parameters; {r.steps} steps in {r.seconds:.0f} s"
    )
    print(
        f"held-out loss on the dropped tokens {r.span_loss:.4f} nats/token (unigram baseline {r.unigram_loss:.4f}) "
        f"over {r.span_tokens:,} tokens in {r.heldout_windows} windows; margin {r.margin:.4f} ± "
        f"{r.margin_std_error:.4f} = {r.margin_sigma:.1f} σ"
    )
    print(f"held-out loss per target token (sentinels and </s> included) {r.loss:.4f}")


_REPORTS = {
    **{name: _report_seq2seq for name in synthetic.TASKS},
    "gpt": _report_gpt,
    "bert": _report_bert,
    "xlnet": _report_xlnet,
    "t5": _report_t5,
}


# ------------------------------------------------------------------------------------ the tour (chapter 04)


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


def cmd_tour(args: argparse.Namespace) -> int:
    folder = Path(args.out) if args.out else _new_run_path()
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"--out {folder} is a file, not a folder")
    print(f"transformer_from_scratch {__version__} — tour\n")
    print("1. Numerical verification against the NumPy float64 reference")
    start = time.perf_counter()
    table, ok = verification_table(args.seed)
    print(table)
    print(f"   {'all checks passed' if ok else 'SOME CHECKS FAILED'} ({time.perf_counter() - start:.1f} s)\n")

    print("2. Training the 2017 encoder–decoder to reverse sequences (chapter 04)")
    recipe = seq2seq.seq2seq_train_config()
    changes: dict[str, Any] = {"seed": args.seed, "progress": not args.no_progress}
    if args.steps is not None:
        changes.update(steps=args.steps, **_seq2seq_short_run(args.steps, recipe))
    train_config = dataclasses.replace(recipe, **changes)  # no out_dir: the plots go to the folder, no checkpoints
    data = seq2seq.seq2seq_data("reverse", seed=args.seed)
    model_config = seq2seq.seq2seq_model_config(impl=args.impl)
    run = seq2seq.train_seq2seq(data, model_config, train_config)
    r = run.report
    print(f"   {len(run.history)} steps in {r.seconds:.0f} s; final train loss {run.history[-1]['train_loss']:.4f}")
    print(f"   exact match on {r.test_pairs} held-out sequences (greedy): {r.exact_match:.1%}")
    print(f"   example: {_example(r)}\n")

    print(f"3. Plots written to {folder}/")
    for path in [*_plot_run(run.history, folder), _plot_cross_attention(run, folder)]:
        print(f"   {path}")
    return 0 if ok else 1


# ------------------------------------------------------------------------------- tfs generate, tfs evaluate


def _load(path: str) -> saved.TrainedRun:
    try:
        return saved.load_run(path)
    except RunFolderError as e:
        raise CLIError(f"--from: {e}") from None


def cmd_generate(args: argparse.Namespace) -> int:
    """``tfs generate --from RUN --prompt TEXT``: greedy by default; sampling with --temperature / --top-k /
    --top-p; beam search with --beam."""
    sampling = args.temperature is not None or args.top_k is not None or args.top_p is not None
    if args.beam is not None and sampling:
        raise CLIError("choose --beam (beam search) or --temperature / --top-k / --top-p (sampling), not both")
    if not args.prompt:
        raise CLIError("--prompt must not be empty")
    trained = _load(args.from_run)
    options = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, beam_size=args.beam)
    generator = torch.Generator().manual_seed(args.seed)
    try:
        if trained.task == "gpt":
            _warn_unknown(gpt.unknown_characters(trained.tokenizer, args.prompt))
            n = 200 if args.max_new_tokens is None else args.max_new_tokens
            text = gpt.generate_text(trained.model, trained.tokenizer, args.prompt, n, generator=generator, **options)
        elif trained.task in saved.SEQ2SEQ_TASKS:
            text = seq2seq.transduce_text(
                trained.model, trained.tokenizer, args.prompt, max_new_tokens=args.max_new_tokens,
                generator=generator, **options,
            )  # fmt: skip
        elif trained.task == "xlnet":
            raise CLIError(
                f"--from: {trained.saved.folder} is an xlnet run: its permuted language model predicts tokens in any "
                "order from both sides and is not a left-to-right generator here (generate from a gpt run)"
            )
        else:
            raise CLIError(f"--from: {trained.saved.folder} is a {trained.task} run, which does not generate text")
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    print(text)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``tfs evaluate --from RUN``: the held-out report of the run's recipe, computed again from its checkpoint."""
    trained = _load(args.from_run)
    try:
        m = saved.evaluate_run(trained, beam_size=args.beam_size)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    print(f"{trained.task} run {trained.saved.folder}, checkpoint {trained.checkpoint.name}")
    if trained.task in saved.SEQ2SEQ_TASKS:
        decoding = "greedy" if args.beam_size == 1 else f"beam search, width {args.beam_size}"
        print(f"exact match on {int(m['test_pairs'])} held-out sequences ({decoding}): {m['exact_match']:.1%}")
    elif trained.task == "xlnet":
        for line in _plm_lines(m):
            print(line)
    elif trained.task == "gpt":
        print(
            f"validation loss {m['val_loss']:.4f} nats/token · perplexity {m['val_perplexity']:.2f} "
            f"(unigram baseline: loss {m['unigram_loss']:.4f}, perplexity {math.exp(m['unigram_loss']):.2f}; "
            f"{int(m['val_tokens']):,} tokens)"
        )
    else:
        print(
            f"held-out masked-token accuracy {m['mlm_accuracy']:.3f} (unigram-frequency baseline "
            f"{m['unigram_baseline_accuracy']:.3f}, {int(m['masked_positions'])} [MASK] positions)"
        )
        print(
            f"held-out NSP accuracy {m['nsp_accuracy']:.3f} ± {m['nsp_accuracy_std']:.3f} ({int(m['nsp_pairs'])} pairs)"
        )
    return 0


# ------------------------------------------------------------------------------------------------ tfs finetune


def _finetune_setup(args: argparse.Namespace) -> tuple[finetune.PretrainedEncoder, finetune.FinetuneConfig, Path]:
    """The encoder of --from, the FinetuneConfig of the options, and the output folder — all checked first."""
    folder = Path(args.out) if args.out else _new_run_path()
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"--out {folder} is a file, not a folder")
    try:
        config = finetune.FinetuneConfig(
            freeze=args.freeze, steps=args.steps, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
            max_len=args.max_len, pooling=getattr(args, "pooling", "mean"), eval_every=args.eval_every,
            seed=args.seed, progress=not args.no_progress,
        )  # fmt: skip
    except ValueError as e:
        raise CLIError(str(e)) from None
    try:
        source = finetune.load_pretrained_encoder(args.from_path)
    except finetune.EncoderSourceError as e:
        raise CLIError(f"--from: {e}") from None
    return source, config, folder


def _source_line(source: finetune.PretrainedEncoder, what: str, config: finetune.FinetuneConfig, result) -> str:
    kind = "bert run" if source.kind == "run" else "Hugging Face BERT"
    new = ", ".join(result.load_report["new"]) or "none"
    return (
        f"{what}: {kind} {source.path}, freeze={config.freeze}, {result.steps} steps, {result.seconds:.0f} s; "
        f"new (trained from BERT's initialisation): {new}"
    )


def _plot_confusion(matrix, label_names: tuple[str, ...], path: Path, title: str) -> Path:
    """The confusion matrix as a heatmap with counts (rows: true class, columns: predicted)."""
    import matplotlib  # only the plotting commands pay for matplotlib's import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(label_names)
    fig, ax = plt.subplots(figsize=(1.1 * n + 2.5, 1.0 * n + 2))
    ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=color)
    ax.set_xticks(range(n), label_names, rotation=45, ha="right")
    ax.set_yticks(range(n), label_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def cmd_finetune_classify(args: argparse.Namespace) -> int:
    """``tfs finetune classify``: fine-tune, print held-out metrics against the majority-class baseline, write
    predictions.jsonl, metrics.json and confusion_matrix.png into --out."""
    source, config, folder = _finetune_setup(args)
    data = finetune.classification_data(args.task, seed=args.seed)
    try:
        result = finetune.finetune_classifier(source, data, config)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    m, b = result.metrics, result.baseline
    print(_source_line(source, f"tfs finetune classify --task {args.task}", config, result))
    print(
        f"held-out accuracy {m['accuracy']:.4f} (majority-class baseline {b['accuracy']:.4f}) · macro-F1 "
        f"{m['macro_f1']:.4f} (baseline {b['macro_f1']:.4f}) · {len(result.labels)} test examples"
    )
    rows = [
        [name, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"])]
        for name, c in m["per_class"].items()
    ]
    print(_format_table(rows, ["class", "precision", "recall", "f1", "support"]))
    folder.mkdir(parents=True, exist_ok=True)
    _write_jsonl(
        folder / "predictions.jsonl",
        [
            {"text": t, "label": data.label_names[y], "prediction": data.label_names[p]}
            for t, y, p in zip(data.test.texts, result.labels, result.predictions)
        ],
    )
    summary = {k: v for k, v in m.items() if k != "confusion"} | {"confusion": m["confusion"].tolist()}
    baseline = {k: v for k, v in b.items() if k != "confusion"} | {"confusion": b["confusion"].tolist()}
    _write_json(
        folder / "metrics.json",
        {"task": args.task, "labels": list(data.label_names), "freeze": config.freeze, "steps": result.steps,
         "seconds": result.seconds, "load_report": result.load_report, "metrics": summary, "baseline": baseline},
    )  # fmt: skip
    title = f"{args.task}, freeze={config.freeze}: accuracy {m['accuracy']:.3f}"
    figure = _plot_confusion(m["confusion"], data.label_names, folder / "confusion_matrix.png", title)
    print(f"wrote {folder / 'predictions.jsonl'}, {folder / 'metrics.json'}, {figure}")
    return 0


def cmd_finetune_qa(args: argparse.Namespace) -> int:
    """``tfs finetune qa``: fine-tune for extractive QA on bAbI-style stories, print exact match and F1 against
    the first-place-word baseline, write predictions.jsonl and metrics.json into --out."""
    source, config, folder = _finetune_setup(args)
    splits = finetune.qa_splits(task=args.qa_task, seed=args.seed)
    try:
        result = finetune.finetune_qa(source, splits, config)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    m, b = result.metrics, result.baseline
    print(_source_line(source, f"tfs finetune qa --qa-task {args.qa_task}", config, result))
    print(
        f"held-out exact match {m['exact_match']:.2f}% · F1 {m['f1']:.2f}% (first-place baseline: exact match "
        f"{b['exact_match']:.2f}% · F1 {b['f1']:.2f}%) · {len(result.answers)} test questions"
    )
    folder.mkdir(parents=True, exist_ok=True)
    _write_jsonl(
        folder / "predictions.jsonl",
        [
            {"story": e.story, "question": e.question, "answer": a, "prediction": p, "baseline": q}
            for e, a, p, q in zip(splits.test, result.answers, result.predictions, result.baseline_predictions)
        ],
    )
    _write_json(
        folder / "metrics.json",
        {"qa_task": args.qa_task, "freeze": config.freeze, "steps": result.steps, "seconds": result.seconds,
         "load_report": result.load_report, "metrics": m, "baseline": b},
    )  # fmt: skip
    print(f"wrote {folder / 'predictions.jsonl'}, {folder / 'metrics.json'}")
    return 0


def cmd_finetune_t5(args: argparse.Namespace) -> int:
    """``tfs finetune t5``: fine-tune a T5 text to text on one task (from a ``tfs train t5`` run or from scratch),
    then print the held-out metric of its greedy generations against the task's baseline."""
    try:
        model, data = text_to_text.prepare_finetune((args.task,), from_run=args.from_path, seed=args.seed)
        config = text_to_text.finetune_train_config(seed=args.seed)
        if args.steps is not None:  # a shorter run warms up over its first 10 % at most
            config = dataclasses.replace(
                config, steps=args.steps, warmup_steps=min(config.warmup_steps, args.steps // 10)
            )
    except (TypeError, ValueError, RunFolderError) as e:
        raise CLIError(str(e)) from None
    source = f"the run {args.from_path}" if args.from_path else "a random initialisation"
    print(f"tfs finetune t5 --task {args.task}: from {source}, {config.steps} steps")
    result = text_to_text.finetune_t5(model, data, config)
    print(result.scores[args.task].describe())
    print(f"{result.steps} steps in {result.seconds:.0f} s")
    return 0


def _add_finetune_arguments(p: argparse.ArgumentParser, freeze_default: str) -> None:
    p.add_argument(
        "--from", dest="from_path", required=True, metavar="PATH",
        help="the pre-trained encoder: a `tfs train bert` run folder or a Hugging Face BERT folder (config.json, "
        "model.safetensors, vocab.txt), e.g. all-MiniLM-L6-v2",
    )  # fmt: skip
    p.add_argument(
        "--freeze", choices=finetune.FREEZE_CHOICES, default=freeze_default,
        help=f"encoder: train the head alone on cached encoder vectors; none: everything (default {freeze_default})",
    )  # fmt: skip
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, help="optimizer steps (default: the recipe's, see --help)")
    length.add_argument("--epochs", type=_positive, help="passes over the training set, instead of --steps")
    p.add_argument("--lr", type=_positive, help="peak learning rate (default 3e-3 head alone, 1e-4 everything)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="examples per step (default 16)")
    p.add_argument("--max-len", type=_positive_int, help="tokens per example (default 64 classify, 128 qa)")
    p.add_argument("--eval-every", type=_positive_int, help="validate every N steps (default: 5 times per run)")
    p.add_argument("--seed", type=_count, default=0, help="random seed: head initialisation, batches, data (0)")
    p.add_argument("--out", help="folder for predictions, metrics and figures (default runs/<timestamp>)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


# ----------------------------------------------------------------------------------------------- the parser


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus a pointer to --help) instead of the whole usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, low: float | None = None, *, strict: bool = False, high: float | None = None, what: str):
    """An argparse type: a finite ``kind`` number ≥ low (> low when strict, ≤ high)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        ok = math.isfinite(value) and (low is None or (value > low if strict else value >= low))
        if not ok or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


_positive_int = _number(int, 1, what="a positive integer")
_count = _number(int, 0, what="an integer ≥ 0")
_positive = _number(float, 0, strict=True, what="a positive number")
_non_negative = _number(float, 0, what="a number ≥ 0")
_probability = _number(float, 0, strict=True, high=1, what="a number in (0, 1]")
_rate = _number(float, 0, high=1, what="a number in [0, 1]")
_beta = _number(float, 0, high=0.999999, what="a number in [0, 1)")


def _add_impl(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument(
        "--impl",
        choices=IMPLS,
        default=default,
        help="implementation of the functional core: plain (the textbook code, default), kernels (hand-written "
        "backward passes) or torch (PyTorch's fused built-ins); the same numbers",
    )


def _add_train_arguments(p: argparse.ArgumentParser, task: _Task) -> None:
    """The options every task shares, each help line showing this task's own default."""
    c = task.recipe()
    p.add_argument("--steps", type=_positive_int, help=f"optimizer steps (default {c.steps})")
    p.add_argument("--batch-size", type=_positive_int, help=f"examples per step (default {c.batch_size})")
    p.add_argument("--lr", type=_non_negative, help=f"peak learning rate (default {c.max_lr:g})")
    p.add_argument("--min-lr", type=_non_negative, help=f"final learning rate of the cosine (default {c.min_lr:g})")
    p.add_argument("--warmup-steps", type=_count, help=f"linear warm-up steps (default {c.warmup_steps})")
    p.add_argument("--weight-decay", type=_non_negative, help=f"AdamW weight decay (default {c.weight_decay:g})")
    p.add_argument("--beta2", type=_beta, help=f"AdamW beta2 (default {c.betas[1]:g})")
    p.add_argument(
        "--grad-clip",
        type=_non_negative,
        help=f"clip the gradient norm to this; 0 = no clipping (default {c.grad_clip:g})",
    )
    p.add_argument("--eval-every", type=_positive_int, help=f"validate every N steps (default {c.eval_every})")
    p.add_argument(
        "--checkpoint-every", type=_positive_int, help="checkpoint every N steps (default: at each validation)"
    )
    p.add_argument(
        "--keep-checkpoints", type=_positive_int, help=f"newest checkpoints kept (default {c.keep_checkpoints})"
    )
    p.add_argument("--seed", type=_count, help=f"random seed (default {c.seed})")
    p.add_argument("--out", help="the run folder (default runs/<timestamp>); it must not hold another run")
    p.add_argument("--overwrite", action="store_true", help="move a run already in --out aside (to <out>.old-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder where it stopped")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_impl(p, None)


def _add_gpt_arguments(p: argparse.ArgumentParser) -> None:
    m = gpt.gpt_model_config(1)
    p.add_argument("--data", help="a UTF-8 text file, split 90/10 into train/validation (default: the embedded corpus)")
    p.add_argument("--tokenizer", choices=gpt.TOKENIZERS, help="char or bpe (default char)")
    p.add_argument("--bpe-vocab-size", type=_positive_int, help="vocabulary size of the BPE tokenizer (default 512)")
    p.add_argument("--n-layers", type=_positive_int, help=f"Transformer blocks (default {m.n_layers})")
    p.add_argument("--n-heads", type=_positive_int, help=f"attention heads (default {m.n_heads})")
    p.add_argument("--d-model", type=_positive_int, help=f"model width D; feed-forward 4·D (default {m.d_model})")
    p.add_argument("--context", type=_positive_int, help=f"tokens the model reads (default {m.max_len})")
    p.add_argument("--dropout", type=_rate, help=f"dropout rate (default {m.dropout:g})")
    p.add_argument("--prompt", help="text the final sample continues (default 'The ', if every character is known)")
    p.add_argument("--sample-tokens", type=_positive_int, default=200, help="tokens to sample after training (200)")
    p.add_argument("--temperature", type=_positive, default=0.8, help="sampling temperature (default 0.8)")


def _add_xlnet_arguments(p: argparse.ArgumentParser) -> None:
    m = xlnet.xlnet_model_config(1, pad_id=None)
    data = inspect.signature(xlnet.prepare_xlnet_data).parameters  # the defaults of --context and --k
    p.add_argument("--n-layers", type=_positive_int, help=f"XLNet blocks (default {m.n_layers})")
    p.add_argument("--n-heads", type=_positive_int, help=f"attention heads (default {m.n_heads})")
    p.add_argument("--d-model", type=_positive_int, help=f"model width D; feed-forward 4·D (default {m.d_model})")
    p.add_argument("--dropout", type=_rate, help=f"dropout rate, hidden and attention (default {m.dropout:g})")
    p.add_argument(
        "--context",
        type=_positive_int,
        help=f"tokens per training and held-out window (default {data['max_len'].default})",
    )
    p.add_argument(
        "--k",
        type=_positive_int,
        help=f"predict the last 1/K of each window's factorization order (default {data['k'].default}, XLNet-base's)",
    )
    p.add_argument(
        "--heldout-orders",
        type=_positive_int,
        help="factorization orders per held-out window; the report averages over all of them "
        f"(default {data['heldout_orders'].default})",
    )


def _add_generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_run", required=True, metavar="RUN", help="a run folder (or one checkpoint)")
    p.add_argument("--prompt", required=True, help="the text to continue (gpt) or the string to transduce")
    p.add_argument(
        "--max-new-tokens", type=_positive_int, help="tokens to generate (default 200; the synthetic tasks: length + 2)"
    )
    p.add_argument("--temperature", type=_positive, help="sample at this temperature (default: greedy)")
    p.add_argument("--top-k", type=_positive_int, help="sample among the k most probable tokens")
    p.add_argument("--top-p", type=_probability, help="sample from the smallest set holding probability p")
    p.add_argument("--beam", type=_positive_int, help="beam search with this many beams")
    p.add_argument("--seed", type=_count, default=0, help="seed of the sampling (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tfs", description="transformer_from_scratch: verify, tour, train, generate, evaluate, finetune."
    )
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
    p.add_argument("--seed", type=_count, default=0, help="random seed (default 0)")
    p.add_argument("--steps", type=_positive_int, default=None, help="training steps (default: the chapter 04 recipe)")
    p.add_argument("--out", default=None, help="folder for the plots (default runs/<timestamp>)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_impl(p, "plain")
    p.set_defaults(func=cmd_tour)

    p = sub.add_parser(
        "train", help="train a model: reverse | copy | sort | gpt | bert | xlnet | t5 (tfs train TASK --help)"
    )
    tasks = p.add_subparsers(dest="task", metavar="TASK", parser_class=_Parser, required=True)
    for name, task in TASKS.items():
        t = tasks.add_parser(name, help=task.help, description=f"tfs train {name}: {task.help}.")
        _add_train_arguments(t, task)
        if name in synthetic.TASKS:
            t.add_argument("--beam-size", type=_positive_int, default=1, help="beam width of the final report (1)")
        if name == "gpt":
            _add_gpt_arguments(t)
        if name == "xlnet":
            _add_xlnet_arguments(t)
        t.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="continue a prompt with a trained gpt run, or transduce with reverse/copy/sort")
    _add_generate_arguments(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("evaluate", help="compute a run's held-out report again from its newest checkpoint")
    p.add_argument("--from", dest="from_run", required=True, metavar="RUN", help="a run folder (or one checkpoint)")
    p.add_argument("--beam-size", type=_positive_int, default=1, help="beam width (reverse/copy/sort; default 1)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("finetune", help="fine-tune a pre-trained encoder: classify | qa (tfs finetune KIND --help)")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", parser_class=_Parser, required=True)
    c = kinds.add_parser(
        "classify", help="sentence classification: sentiment (reviews) or topic (Python documentation passages)",
        description="tfs finetune classify: fine-tune an encoder for sentence classification and compare with the "
        "majority-class baseline. Defaults: 1,000 head-only steps (--freeze encoder) or 150 full steps (none).",
    )  # fmt: skip
    c.add_argument("--task", choices=finetune.CLASSIFY_TASKS, required=True, help="sentiment or topic")
    _add_finetune_arguments(c, "encoder")
    c.add_argument("--pooling", choices=("mean", "cls"), default="mean", help="sentence vector (default mean)")
    c.set_defaults(func=cmd_finetune_classify)
    q = kinds.add_parser(
        "qa", help="extractive QA on bAbI-style stories",
        description="tfs finetune qa: fine-tune an encoder for extractive QA ([CLS] question [SEP] story [SEP]) and "
        "compare with the first-place-word baseline. Default: 150 full steps.",
    )  # fmt: skip
    q.add_argument("--qa-task", type=int, choices=(1, 2), default=1, help="bAbI task 1 or 2 (default 1)")
    _add_finetune_arguments(q, "none")
    q.set_defaults(func=cmd_finetune_qa)
    t = kinds.add_parser(
        "t5", help="fine-tune a T5 text to text: translate | summarize | qa, scored against a baseline",
        description="tfs finetune t5: fine-tune a T5 (a tfs train t5 run, or a fresh model) on one task with its "
        "prefix and print the held-out metric of its greedy generations — BLEU for translate (number words, "
        "English to French), ROUGE-L for summarize (reports), SQuAD EM/F1 for qa (bAbI) — against the baseline.",
    )  # fmt: skip
    t.add_argument("--task", choices=text_to_text.TASKS, required=True, help="translate, summarize or qa")
    t.add_argument("--from", dest="from_path", default=None, help="a tfs train t5 run folder (default: from scratch)")
    t.add_argument("--steps", type=_positive_int, default=None, help="training steps (default: the recipe's 1000)")
    t.add_argument("--seed", type=int, default=0, help="seeds the data, the weights and the batches (0)")
    t.set_defaults(func=cmd_finetune_t5)

    p = sub.add_parser("verify", help="verify every module against the NumPy float64 reference")
    p.add_argument("--seed", type=_count, default=0, help="random seed for the check inputs (default 0)")
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
    except DivergenceError as e:
        print(f"tfs: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tfs: interrupted{_resume_hint()}", file=sys.stderr)
        return 130
    finally:
        _CURRENT.task = _CURRENT.folder = None


def _resume_hint() -> str:
    folder = _CURRENT.folder
    if folder is None or not folder.is_dir():
        return ""
    steps = sorted(p.name for p in folder.iterdir() if p.name.startswith("step_"))
    if not steps:
        return f"; {folder} holds no checkpoint yet"
    return (
        f"; the newest checkpoint is {folder / steps[-1]} — continue with: tfs train {_CURRENT.task} --resume {folder}"
    )


if __name__ == "__main__":
    sys.exit(main())
