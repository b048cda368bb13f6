"""Forward + backward time of our MultiHeadAttention against torch.nn.MultiheadAttention.

    python bench/attention.py            # B=8, d_model=256, 8 heads, T in {64, 256, 1024}
    python bench/attention.py --quick    # a few seconds: smaller T, fewer repeats (smoke run)
    python bench/attention.py --threads 1 --repeats 25

Candidates, all float32, training mode, dropout 0, self-attention on the same input and the same weights:
  plain             MultiHeadAttention(impl="plain"), the textbook formula left to autograd (the default)
  kernels           MultiHeadAttention(impl="kernels"): one autograd node, backward written out (kernels.py)
  torch             MultiHeadAttention(impl="torch") -> torch.nn.functional.scaled_dot_product_attention
  mha weights       nn.MultiheadAttention(batch_first=True), need_weights=True (its default; it also
                    materialises and returns the head-averaged weights)
  mha no-weights    nn.MultiheadAttention(batch_first=True), need_weights=False (fused SDPA kernel)
Each timed call runs forward, backward with a fixed output gradient, and clears the parameter gradients.
Candidates are timed in alternation (bench._timing.interleaved_medians); the table reports medians and
each of our three implementations / nn.MultiheadAttention(need_weights=False), the leanest built-in (< 1 means
ours is faster).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import interleaved_medians, print_table  # noqa: E402
from transformer_from_scratch import MultiHeadAttention  # noqa: E402

B, D_MODEL, N_HEADS = 8, 256, 8


def torch_twin(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    """nn.MultiheadAttention holding the weights of ``ours`` (in_proj_weight = cat[W_q, W_k, W_v])."""
    twin = nn.MultiheadAttention(ours.d_model, ours.n_heads, dropout=0.0, batch_first=True)
    with torch.no_grad():
        twin.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        twin.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        twin.out_proj.weight.copy_(ours.out_proj.weight)
        twin.out_proj.bias.copy_(ours.out_proj.bias)
    return twin


def step(module: nn.Module, forward, x: torch.Tensor, grad_out: torch.Tensor):
    """One forward + backward; returns a closure for the timer."""

    def run() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        forward(x).backward(grad_out)

    return run


IMPLS = ("plain", "kernels", "torch")


def bench_length(t: int, *, repeats: int, warmup: int) -> dict[str, object]:
    gen = torch.Generator().manual_seed(t)
    ours = {impl: MultiHeadAttention(D_MODEL, N_HEADS, impl=impl).train() for impl in IMPLS}
    for module in ours.values():
        module.load_state_dict(ours["plain"].state_dict())
    builtin = torch_twin(ours["plain"]).train()
    x = torch.randn(B, t, D_MODEL, generator=gen).requires_grad_(True)  # (B, T, D)
    grad_out = torch.randn(B, t, D_MODEL, generator=gen)

    # The candidates compute the same function: check before timing.
    with torch.no_grad():
        reference = ours["plain"](x)
        for name, y in (
            ("kernels", ours["kernels"](x)),
            ("torch", ours["torch"](x)),
            ("mha weights", builtin(x, x, x, need_weights=True)[0]),
            ("mha no-weights", builtin(x, x, x, need_weights=False)[0]),
        ):
            err = (y - reference).abs().max().item()
            if err > 1e-4:
                raise AssertionError(f"T={t}: {name} differs from plain by {err:.2e}")

    candidates = {impl: step(m, m, x, grad_out) for impl, m in ours.items()}
    candidates["mha weights"] = step(builtin, lambda x: builtin(x, x, x, need_weights=True)[0], x, grad_out)
    candidates["mha no-weights"] = step(builtin, lambda x: builtin(x, x, x, need_weights=False)[0], x, grad_out)
    ms = {name: 1e3 * s for name, s in interleaved_medians(candidates, repeats=repeats, warmup=warmup).items()}
    row: dict[str, object] = {"T": t}
    row.update({f"{name} ms": f"{v:.2f}" for name, v in ms.items()})
    row.update({f"{impl} / mha no-weights": f"{ms[impl] / ms['mha no-weights']:.2f}" for impl in IMPLS})
    row["plain / mha weights"] = f"{ms['plain'] / ms['mha weights']:.2f}"
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: T in {32, 128}, few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per candidate (default 15; 3 quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    lengths = (32, 128) if args.quick else (64, 256, 1024)
    repeats = args.repeats or (3 if args.quick else 15)
    warmup = 1 if args.quick else 3
    torch.manual_seed(0)
    print(
        f"# attention forward+backward · B={B} d_model={D_MODEL} heads={N_HEADS} · float32, training mode, "
        f"dropout 0 · torch {torch.__version__} · threads={torch.get_num_threads()} · median of {repeats} "
        f"interleaved runs{' (quick)' if args.quick else ''}"
    )
    print()
    rows = []
    for t in lengths:
        long = t >= 1024  # one step takes a large fraction of a second: fewer runs keep the whole bench short
        rows.append(bench_length(t, repeats=max(3, repeats // 2) if long else repeats, warmup=1 if long else warmup))
    print_table(rows, list(rows[0]))
    print()
    print(
        "plain / kernels / torch = our MultiHeadAttention with impl=...; mha weights = nn.MultiheadAttention("
        "need_weights=True), its default: materialises the weights as plain and kernels do; mha no-weights = "
        "need_weights=False: dispatches to the fused SDPA kernel. Ratios < 1: ours is faster."
    )


if __name__ == "__main__":
    main()
