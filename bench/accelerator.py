"""On a CUDA GPU: the checks a CPU cannot make, and training throughput of the three implementations.

    python bench/accelerator.py                 # everything below (a few minutes on one H100/H200-class GPU)
    python bench/accelerator.py --quick         # smaller model, fewer steps (smoke run)
    python bench/accelerator.py --json out.json # also write the numbers to a file

1. No host synchronisation: the forward and backward passes of GPT (GPT-2 and Llama layouts), BERT and the 2017
   encoder–decoder, with padding and labels, for impl = plain, kernels and torch, run under
   ``torch.cuda.set_sync_debug_mode("error")``, which raises on any call that would stop the host until the GPU
   catches up (``.item()``, ``int(tensor)``, ``nonzero``, a copy to the CPU) — the input checks included.
2. The three implementations agree on the GPU (float32 logits and losses of one model with shared weights).
3. ``torch.compile(fullgraph=True)`` (inductor, the default backend) compiles the GPT training step of each
   implementation without a graph break.
4. Training throughput (forward + backward + ``torch.optim.AdamW``, bf16 autocast) of GPT-2 small's shape —
   12 layers, D = 768, 12 heads, context 1024, batch 8, V = 50,304 — for plain / kernels / torch, eager and
   compiled, against the same model built from ``nn.TransformerEncoderLayer`` (bench/gpt_train.py's twin). Each
   step is timed with CUDA events; medians of interleaved runs.

Nothing here runs in CI (CI has no GPU); the CPU tests hold the same properties where a CPU can show them
(tests/test_impls.py, tests/test_compile.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gpt_train import baseline_from_ours  # noqa: E402
from transformer_from_scratch import (  # noqa: E402
    GPT,
    BertConfig,
    BertForPreTraining,
    EncoderDecoder,
    GPTConfig,
    TransformerConfig,
)

IMPLS = ("plain", "kernels", "torch")


def sync_free_cases(device: torch.device):
    """(name, model factory, loss of a padded batch) for every family."""
    v = 512
    ids = torch.randint(1, v, (4, 33), device=device)
    valid = torch.arange(33, device=device)[None, :] >= torch.tensor([[0], [3], [7], [0]], device=device)
    ids = torch.where(valid, ids, torch.zeros_like(ids))
    labels = torch.where(valid, ids, torch.full_like(ids, -100))

    def gpt(m):
        return m(ids, valid=valid, labels=labels).loss

    def bert(m):
        return m(ids, valid=valid, mlm_labels=labels, nsp_labels=ids[:, -1] % 2).loss

    def seq2seq(m):
        return m(ids, ids, src_valid=valid, tgt_valid=valid, labels=labels).loss

    return [
        ("GPT-2 layout", lambda impl: GPT(GPTConfig.tiny(vocab_size=v, impl=impl)), gpt),
        ("Llama layout", lambda impl: GPT(GPTConfig.llama_tiny(vocab_size=v, impl=impl)), gpt),
        ("BERT", lambda impl: BertForPreTraining(BertConfig.tiny(vocab_size=v, impl=impl)), bert),
        (
            "encoder-decoder",
            lambda impl: EncoderDecoder(TransformerConfig.tiny(src_vocab_size=v, tgt_vocab_size=v, impl=impl)),
            seq2seq,
        ),
    ]


def loss_without_sync(model, loss_of) -> tuple[float | None, str | None]:
    """One forward + backward under sync debug mode "error": (loss, None), or (None, the error) if it synchronised."""
    loss_of(model).backward()  # warm-up outside the check: first calls may initialise CUDA libraries
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = loss_of(model)
        loss.backward()
    except RuntimeError as e:
        return None, str(e).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return float(loss.detach()), None


def check_no_sync_and_agreement(device: torch.device) -> list[dict]:
    rows = []
    for name, make, loss_of in sync_free_cases(device):
        torch.manual_seed(0)
        models = {impl: make(impl).to(device) for impl in IMPLS}
        for model in models.values():
            model.load_state_dict(models["plain"].state_dict())
        results = {impl: loss_without_sync(model, loss_of) for impl, model in models.items()}
        plain = results["plain"][0]
        for impl, (loss, error) in results.items():
            difference = None if loss is None or plain is None else abs(loss - plain)
            rows.append(
                {
                    "model": name,
                    "impl": impl,
                    "sync_free": error is None,
                    "error": error,
                    "abs(loss - plain loss)": difference,
                }
            )
    return rows


def gpt2_small(impl: str, quick: bool) -> GPTConfig:
    if quick:
        return GPTConfig(
            vocab_size=8192,
            d_model=256,
            n_heads=4,
            n_layers=4,
            d_ff=1024,
            max_len=256,
            impl=impl,
            dropout=0.0,
            embedding_dropout=0.0,
            attention_dropout=0.0,
        )
    return GPTConfig.gpt2_small(vocab_size=50_304, dropout=0.0, embedding_dropout=0.0, attention_dropout=0.0, impl=impl)


def logits_of(model, x):
    out = model(x)
    return out if isinstance(out, torch.Tensor) else out.logits


def make_step(model, x, y, *, compiled: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)

    def loss_fn(x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = logits_of(model, x)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    forward = torch.compile(loss_fn, fullgraph=True) if compiled else loss_fn

    def step():
        optimizer.zero_grad(set_to_none=True)
        forward(x, y).backward()
        optimizer.step()

    return step


def timed_medians(steps: dict, repeats: int, warmup: int) -> dict[str, float]:
    for step in steps.values():
        for _ in range(warmup):
            step()
    torch.cuda.synchronize()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times[name].append(start.elapsed_time(end) / 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def throughput_rows(med: dict[str, float], base: float, tokens: int) -> list[dict]:
    return [
        {
            "model": name,
            "ms / step": round(1e3 * s, 1),
            "tokens/s": round(tokens / s),
            "ours / nn.TransformerEncoder eager (tokens/s)": round(base / s, 2),
        }
        for name, s in med.items()
    ]


def throughput(device: torch.device, quick: bool, results: dict, save) -> None:
    """Eager first (all four models, interleaved), then compiled (each impl), printing as it goes."""
    cfg = gpt2_small("plain", quick)
    batch, context = (8, cfg.max_len)
    gen = torch.Generator(device=device).manual_seed(1)
    x = torch.randint(0, cfg.vocab_size, (batch, context), device=device, generator=gen)
    y = torch.randint(0, cfg.vocab_size, (batch, context), device=device, generator=gen)
    torch.manual_seed(0)
    plain = GPT(cfg).to(device)
    models = {impl: plain if impl == "plain" else GPT(gpt2_small(impl, quick)).to(device) for impl in IMPLS}
    for model in models.values():
        model.load_state_dict(plain.state_dict())
    models["nn.TransformerEncoder"] = baseline_from_ours(plain).to(device)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        ref = logits_of(models["plain"], x).float()
        agreement = {name: float((logits_of(m, x).float() - ref).abs().max()) for name, m in models.items()}
    results["throughput_config"] = {
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "n_heads": cfg.n_heads,
        "context": context,
        "batch": batch,
        "vocab": cfg.vocab_size,
    }
    results["bf16 logits max |difference| vs plain"] = agreement
    print("  ", results["throughput_config"], "bf16 logits max |difference| vs plain:", agreement)
    repeats, warmup = (5, 2) if quick else (15, 3)
    eager = {f"{name} eager": make_step(m, x, y, compiled=False) for name, m in models.items()}
    med = timed_medians(eager, repeats, warmup)
    base = med["nn.TransformerEncoder eager"]
    results["throughput"] = throughput_rows(med, base, batch * context)
    for row in results["throughput"]:
        print("  ", row)
    save()
    for impl in IMPLS:
        start = time.perf_counter()
        step = make_step(models[impl], x, y, compiled=True)
        step()  # compile now, outside the timing
        torch.cuda.synchronize()
        compile_seconds = time.perf_counter() - start
        row = throughput_rows(timed_medians({f"{impl} compiled": step}, repeats, warmup), base, batch * context)[0]
        row["compile seconds"] = round(compile_seconds, 1)
        results["throughput"].append(row)
        print("  ", row)
        save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller model and fewer steps")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench/accelerator.py needs a CUDA GPU; none is visible (torch.cuda.is_available() is False)")
        return 2
    device = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name()} · torch {torch.__version__}\n")
    results: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}

    print("1–2. forward + backward under torch.cuda.set_sync_debug_mode('error'); |loss - plain loss| (float32)")
    results["sync_free"] = check_no_sync_and_agreement(device)
    for row in results["sync_free"]:
        print("  ", row)
    print("\n3–4. GPT training step, bf16 autocast: eager and torch.compile(fullgraph=True) per impl")

    def save() -> None:  # what is known so far, in case a later part is cut short
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n")

    save()
    throughput(device, args.quick, results, save)
    failed = [r for r in results["sync_free"] if not r["sync_free"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
