"""Forward + backward time of our EncoderBlock against torch.nn.TransformerEncoderLayer.

    python bench/blocks.py              # (B=12, T=64) and (B=32, T=128), d_model=128, 4 heads, d_ff=512
    python bench/blocks.py --quick      # a few seconds: fewer repeats (smoke run)
    python bench/blocks.py --profile    # also print torch.profiler tables (ours vs torch), first shape
    python bench/blocks.py --threads 1 --repeats 60   # one intra-op thread, more repeats on a busy machine

Candidates, all float32, training mode (dropout active when p > 0), post-LN, ReLU, same weights:
  plain         EncoderBlock(BlockConfig(..., impl="plain")): the textbook functions, autograd's backward
  kernels       impl="kernels": attention, LayerNorm and ReLU with hand-written backward passes (kernels.py)
  torch impl    impl="torch": F.scaled_dot_product_attention, F.layer_norm, F.relu (fused.py)
  torch         nn.TransformerEncoderLayer(batch_first=True) (its attention calls the fused kernel)
With dropout p, every candidate drops at the same four places: attention weights, feed-forward hidden
units, and both residual branches. Each timed call runs forward, backward with a fixed output gradient and
clears the gradients. Candidates are timed in alternation (bench._timing.interleaved_medians); the table
reports medians and ratios candidate / torch (< 1 means faster than PyTorch's layer).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
from torch import nn

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import interleaved_medians, print_table  # noqa: E402
from transformer_from_scratch.blocks import EncoderBlock  # noqa: E402
from transformer_from_scratch.config import BlockConfig  # noqa: E402
from transformer_from_scratch.interop.torch_nn import to_torch_encoder_layer  # noqa: E402

D_MODEL, N_HEADS, D_FF = 128, 4, 512
SHAPES = ((12, 64), (32, 128))  # (B, T)


IMPLS = {"plain": "plain", "kernels": "kernels", "torch impl": "torch"}  # column name -> impl


def make_candidates(dropout: float) -> dict[str, nn.Module]:
    config = BlockConfig(D_MODEL, N_HEADS, D_FF, dropout=dropout, attention_dropout=dropout, activation_dropout=dropout)
    ours = {name: EncoderBlock(dataclasses.replace(config, impl=impl)) for name, impl in IMPLS.items()}
    for block in ours.values():
        block.load_state_dict(ours["plain"].state_dict())
    builtin = to_torch_encoder_layer(ours["plain"])  # same weights, same dropout probabilities, batch_first=True
    return {**{name: block.train() for name, block in ours.items()}, "torch": builtin.train()}


def step(module: nn.Module, x: torch.Tensor, grad_out: torch.Tensor):
    def run() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).backward(grad_out)

    return run


def check_equal(modules: dict[str, nn.Module], x: torch.Tensor) -> None:
    """Before timing: the candidates compute the same function (evaluation mode, no dropout)."""
    with torch.no_grad():
        outs = {name: m.eval()(x) for name, m in modules.items()}
    for name, y in outs.items():
        err = (y - outs["torch"]).abs().max().item()
        if err > 1e-4:
            raise AssertionError(f"{name} differs from nn.TransformerEncoderLayer by {err:.2e}")
    for m in modules.values():
        m.train()


def bench_case(batch: int, t: int, dropout: float, *, repeats: int, warmup: int) -> dict[str, object]:
    torch.manual_seed(batch * 1000 + t)
    modules = make_candidates(dropout)
    gen = torch.Generator().manual_seed(t)
    x = torch.randn(batch, t, D_MODEL, generator=gen).requires_grad_(True)  # (B, T, D)
    grad_out = torch.randn(batch, t, D_MODEL, generator=gen)
    check_equal(modules, x)
    medians = interleaved_medians(
        {name: step(m, x, grad_out) for name, m in modules.items()}, repeats=repeats, warmup=warmup
    )
    base = medians["torch"]
    row: dict[str, object] = {"B×T": f"{batch}×{t}", "dropout": dropout}
    row.update({f"{name} ms": f"{1e3 * m:.2f}" for name, m in medians.items()})
    row.update({f"{name} / torch": f"{medians[name] / base:.2f}" for name in IMPLS})
    return row


def profile(batch: int, t: int, dropout: float, rows: int = 18) -> None:
    """Where the time goes: the top operators of our three implementations and of PyTorch, forward + backward."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    modules = make_candidates(dropout)
    x = torch.randn(batch, t, D_MODEL).requires_grad_(True)
    grad_out = torch.randn(batch, t, D_MODEL)
    for name in (*IMPLS, "torch"):
        run = step(modules[name], x, grad_out)
        for _ in range(3):
            run()
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(10):
                run()
        print(f"\n### {name}, B={batch}, T={t}, dropout={dropout} (10 steps)\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler tables for the first shape")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs per candidate (default 30; 5 with --quick)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats, warmup = (5, 2) if args.quick else (30, 5)
    if args.repeats:
        repeats = args.repeats
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, d_model={D_MODEL}, heads={N_HEADS}, "
        f"d_ff={D_FF}, float32, training mode, forward + backward\n"
    )
    rows = [
        bench_case(batch, t, dropout, repeats=repeats, warmup=warmup) for batch, t in SHAPES for dropout in (0.0, 0.1)
    ]
    print_table(rows, list(rows[0]))
    if args.profile:
        profile(*SHAPES[0], 0.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
