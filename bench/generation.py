"""Generation with and without the KV cache: the speed-up of incremental decoding at 256 and 1,024 new tokens.

    python bench/generation.py             # 256 and 1,024 generated tokens, median of 3 runs each
    python bench/generation.py --quick     # a few seconds: 64 and 256 tokens, one run
    python bench/generation.py --threads 1

Model: GPT (GPT-2 architecture) with 4 layers, 4 heads, D=128, F=512, V=512, a 1,040-position table,
random weights (speed does not depend on what the weights are), eval mode, float32. Prompt: 16 random tokens,
batch 1, greedy decoding (``GPT.generate``) with no end-of-sequence token, so every run generates exactly n tokens.

  no cache   every step reruns the whole sequence so far: step i processes 16 + i tokens, so generating n tokens
             costs Θ(n²) token-forwards (and Θ(n³) attention work)
  KV cache   the prompt is processed once (the "prefill"); each step then runs one new token against the cached
             keys and values of all earlier positions: Θ(n) token-forwards (Θ(n²) attention work)

Both must produce the same tokens; that is checked before the times are printed. Each run is timed alone (the
two modes are alternated, bench._timing.interleaved_medians); the speed-up is the ratio of the medians.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import interleaved_medians, print_table  # noqa: E402
from transformer_from_scratch.config import GPTConfig  # noqa: E402
from transformer_from_scratch.models.gpt import GPT  # noqa: E402

PROMPT_LEN, VOCAB = 16, 512


def model_for(max_new_tokens: int) -> GPT:
    torch.manual_seed(0)
    no_dropout = dict(dropout=0.0, embedding_dropout=0.0, attention_dropout=0.0)
    return GPT(GPTConfig.small(vocab_size=VOCAB, max_len=PROMPT_LEN + max_new_tokens, **no_dropout)).eval()


def generate(model: GPT, prompt: torch.Tensor, n: int, use_cache: bool) -> torch.Tensor:
    return model.generate(prompt, max_new_tokens=n, use_cache=use_cache)  # greedy, (1, 16 + n)


def bench(n: int, *, repeats: int, model: GPT) -> dict[str, object]:
    prompt = torch.randint(0, VOCAB, (1, PROMPT_LEN), generator=torch.Generator().manual_seed(n))  # (1, 16)
    with_cache = generate(model, prompt, n, True)
    without = generate(model, prompt, n, False)
    if not torch.equal(with_cache, without):
        first = int((with_cache != without).nonzero()[0, 1])
        raise AssertionError(f"n={n}: the cached and uncached generations differ from position {first}")
    med = interleaved_medians(
        {
            "no cache": lambda: generate(model, prompt, n, False),
            "KV cache": lambda: generate(model, prompt, n, True),
        },
        repeats=repeats,
        warmup=0,  # the equality check above already ran both modes once
    )
    return {
        "new tokens": n,
        "no cache (s)": f"{med['no cache']:.2f}",
        "KV cache (s)": f"{med['KV cache']:.2f}",
        "no cache tokens/s": f"{n / med['no cache']:,.0f}",
        "KV cache tokens/s": f"{n / med['KV cache']:,.0f}",
        "speed-up": f"{med['no cache'] / med['KV cache']:.1f}x",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 64 and 256 tokens, one timed run")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per mode (default 3; 1 quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    lengths = (64, 256) if args.quick else (256, 1024)
    repeats = args.repeats or (1 if args.quick else 3)
    model = model_for(max(lengths))
    c = model.config
    print(
        f"# greedy generation, batch 1, prompt {PROMPT_LEN} tokens · GPT {c.n_layers} layers, {c.n_heads} heads, "
        f"D={c.d_model}, F={c.d_ff}, V={c.vocab_size} · float32, eval · torch {torch.__version__} · "
        f"threads={torch.get_num_threads()} · median of {repeats} interleaved runs{' (quick)' if args.quick else ''}"
    )
    print()
    with torch.no_grad():
        rows = [bench(n, repeats=repeats, model=model) for n in lengths]
    print_table(rows, list(rows[0]))
    print()
    print("Same tokens with and without the cache (checked). Speed-up = no-cache time / KV-cache time.")


if __name__ == "__main__":
    main()
