"""Training throughput of our GPT against the same model assembled from torch.nn.TransformerEncoderLayer.

    python bench/gpt_train.py             # 4 layers, 4 heads, D=128, context 64, batch 12 (the issue's setting)
    python bench/gpt_train.py --quick     # a few seconds: fewer repeats (smoke run)
    python bench/gpt_train.py --threads 1 --repeats 30

All models: V = 512 tokens, learned positions, pre-LN blocks (norm_first=True), F = 4·D, a final LayerNorm, an LM
head tied to the token embedding, dropout 0, float32, training mode. Two activations, each against its own twin:
  GPT-2's GELU (tanh approximation, ``gelu_new``) — the default of GPTConfig:
    plain       models.GPT with impl="plain" (the default): the textbook functions, autograd's backward passes
    kernels     impl="kernels": attention, LayerNorm, GELU and the loss with hand-written backward passes
    torch impl  impl="torch": F.scaled_dot_product_attention, F.layer_norm, F.gelu, F.cross_entropy
    torch       nn.Embedding ×2 + nn.TransformerEncoder(nn.TransformerEncoderLayer(norm_first=True,
                activation=F.gelu(·, approximate="tanh"), batch_first=True), final LayerNorm) with a causal mask +
                the tied head
  the exact (erf) GELU of BERT and of nn.TransformerEncoderLayer(activation="gelu"): the same four, "…, exact GELU".
The twins receive our weights, and each is checked to give the same logits before anything is timed.

One timed step = zero_grad, forward, cross-entropy against random next tokens, backward and
``torch.optim.AdamW.step()`` — the same PyTorch optimizer for every model (its default implementation, which on CPU
updates one tensor at a time; lr 1e-3, weight decay 0.01 on every parameter), so only the model differs. Steps are
timed in alternation (bench._timing.interleaved_medians); tokens/s = B·T / median step time; the ratio is ours /
torch in tokens/s (> 1: ours trains faster), each of our three implementations against the twin with its activation.

Peak memory, two measurements per model, each in a fresh subprocess so the models cannot share a high-water mark:
  saved for backward  the bytes of the distinct tensor storages autograd keeps from one forward pass
                      (torch.autograd.graph.saved_tensors_hooks) — exact and deterministic: the activations
  peak RSS increase   the resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs just before
                      the first step) minus the resident set at that moment (model, data and optimizer built),
                      over 5 training steps — what the process really took, allocator caching included, and
                      AdamW's two moment buffers (created by the first step); Linux only, coarse (±1 MiB)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import interleaved_medians, print_table  # noqa: E402
from transformer_from_scratch.config import GPTConfig  # noqa: E402
from transformer_from_scratch.interop.torch_nn import encoder_layer_from_ours  # noqa: E402
from transformer_from_scratch.models.gpt import GPT  # noqa: E402

N_LAYERS, N_HEADS, D_MODEL, CONTEXT, BATCH, VOCAB = 4, 4, 128, 64, 12, 512
IMPLS = {"plain": "plain", "kernels": "kernels", "torch impl": "torch"}  # model name -> GPTConfig.impl
MODELS = (*IMPLS, "torch", *(f"{name}, exact GELU" for name in IMPLS), "torch, exact GELU")
TWIN = {name: "torch" for name in IMPLS} | {f"{name}, exact GELU": "torch, exact GELU" for name in IMPLS}  # -> baseline


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")  # PyTorch's fused kernel for GPT-2's gelu_new


def gpt_config(*, impl: str = "plain", exact_gelu: bool = False) -> GPTConfig:
    return GPTConfig(
        vocab_size=VOCAB,
        d_model=D_MODEL,
        n_heads=N_HEADS,
        n_layers=N_LAYERS,
        d_ff=4 * D_MODEL,
        max_len=CONTEXT,
        dropout=0.0,
        embedding_dropout=0.0,
        attention_dropout=0.0,
        activation="gelu" if exact_gelu else "gelu_tanh",
        impl=impl,
    )


class TorchEncoderLM(nn.Module):
    """A GPT from torch.nn parts: token + learned position embeddings, a pre-LN nn.TransformerEncoder with a
    causal mask and a final LayerNorm, and an output projection tied to the token embedding."""

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, n_layers: int, d_ff: int, context: int, activation):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(context, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, d_ff, dropout=0.0, activation=activation, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        # nn.* masks: True / -inf = blocked (the opposite polarity of our `allowed`)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        h = self.tokens(ids) + self.positions(torch.arange(t, device=ids.device))  # (B, T, D)
        h = self.encoder(h, mask=self.causal[:t, :t], is_causal=True)  # (B, T, D)
        return h @ self.tokens.weight.T  # (B, T, D) · (D, V) -> (B, T, V): the tied head


def baseline_from_ours(ours: GPT) -> TorchEncoderLM:
    """The torch.nn twin of ``ours``, holding the same weights (via interop.torch_nn's key mapping)."""
    c = ours.config
    activation = {"gelu": "gelu", "gelu_tanh": _gelu_tanh}[c.activation]
    twin = TorchEncoderLM(c.vocab_size, c.d_model, c.n_heads, c.n_layers, c.d_ff, c.max_len, activation)
    state = {"tokens.weight": ours.token.weight.detach(), "positions.weight": ours.position.weight.detach()}
    for i, block in enumerate(ours.decoder.layers):
        for key, value in encoder_layer_from_ours(block.state_dict()).items():
            state[f"encoder.layers.{i}.{key}"] = value
    state["encoder.norm.weight"] = ours.decoder.final_norm.weight.detach()
    state["encoder.norm.bias"] = ours.decoder.final_norm.bias.detach()
    twin.load_state_dict(state)
    return twin


def logits_of(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    out = model(ids)
    return out if isinstance(out, torch.Tensor) else out.logits  # GPT returns a GPTOutput


def build(name: str) -> nn.Module:
    """One of MODELS, all with the weights of one seeded GPT."""
    exact = name.endswith("exact GELU")
    torch.manual_seed(0)
    ours = GPT(gpt_config(exact_gelu=exact))
    base = name.removesuffix(", exact GELU")
    if base == "torch":
        return baseline_from_ours(ours).train()
    if IMPLS[base] != "plain":
        other = GPT(gpt_config(impl=IMPLS[base], exact_gelu=exact))
        other.load_state_dict(ours.state_dict())
        return other.train()
    return ours.train()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, VOCAB, (BATCH, CONTEXT), generator=gen)  # (B, T)
    y = torch.randint(0, VOCAB, (BATCH, CONTEXT), generator=gen)  # (B, T) next tokens
    return x, y


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """One training step (zero_grad, forward, loss, backward, AdamW) as a closure for the timer."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        logits = logits_of(model, x)  # (B, T, V)
        F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1)).backward()
        optimizer.step()

    return run


def check_equivalent() -> float:
    """Largest |logit difference| between each model and its twin on one batch (they share their weights)."""
    x, _ = batch()
    with torch.no_grad():
        return max(
            float((logits_of(build(name), x) - logits_of(build(twin), x)).abs().max()) for name, twin in TWIN.items()
        )


def saved_for_backward_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves during one forward + loss (the activation memory)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(logits_of(model, x).reshape(-1, VOCAB), y.reshape(-1))
    loss.backward()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in storages.items() if ptr not in params)  # weights are not activations


def _status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (Linux), e.g. VmRSS (resident now) or VmHWM (its high-water mark)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_of(name: str) -> dict[str, float | None]:
    """Run in a fresh process (see --memory-of): activation bytes and the peak-RSS increase over 5 steps."""
    model = build(name)
    x, y = batch()
    step = train_step(model, x, y)
    rss_increase = None
    if _reset_peak_rss():
        before = _status_kib("VmRSS")
        for _ in range(5):
            step()
        peak = _status_kib("VmHWM")
        if before is not None and peak is not None:
            rss_increase = (peak - before) / 1024
    saved = saved_for_backward_bytes(model, x, y)
    return {"saved_mib": saved / 2**20, "rss_mib": rss_increase}


def measure_memory(name: str, threads: int | None) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-of", name]
    if threads is not None:
        command += ["--threads", str(threads)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per model (default 20; 3 quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--memory-of", choices=MODELS, default=None, help=argparse.SUPPRESS)  # the subprocess
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_of is not None:
        print(json.dumps(memory_of(args.memory_of)))
        return

    repeats = args.repeats or (3 if args.quick else 20)
    warmup = 1 if args.quick else 3
    err = check_equivalent()
    if err > 1e-4:
        raise AssertionError(f"a model and its twin differ by {err:.2e} in their logits; they are not the same model")
    x, y = batch()
    models = {name: build(name) for name in MODELS}
    n_params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    med = interleaved_medians({name: train_step(m, x, y) for name, m in models.items()}, repeats=repeats, warmup=warmup)
    memory = {name: measure_memory(name, args.threads) for name in MODELS}

    tokens = BATCH * CONTEXT
    print(
        f"# GPT training step (forward + backward + torch.optim.AdamW) · {N_LAYERS} layers, {N_HEADS} heads, "
        f"D={D_MODEL}, F={4 * D_MODEL}, context {CONTEXT}, batch {BATCH}, V={VOCAB}, dropout 0 · float32 · torch "
        f"{torch.__version__} · threads={torch.get_num_threads()} · median of {repeats} interleaved steps"
        f"{' (quick)' if args.quick else ''} · logits agree to {err:.1e}"
    )
    print()
    rows = []
    for name in MODELS:
        rss = memory[name]["rss_mib"]
        rows.append(
            {
                "model": name,
                "parameters": f"{n_params[name]:,}",
                "ms / step": f"{1e3 * med[name]:.1f}",
                "tokens/s": f"{tokens / med[name]:,.0f}",
                "ratio vs its twin (tokens/s)": f"{med[TWIN[name]] / med[name]:.2f}" if name in TWIN else "1.00",
                "saved for backward (MiB)": f"{memory[name]['saved_mib']:.1f}",
                "peak RSS increase (MiB)": "n/a" if rss is None else f"{rss:.1f}",
            }
        )
    print_table(rows, list(rows[0]))
    print()
    ratio = {name: med[twin] / med[name] for name, twin in TWIN.items()}
    print(
        "ours / torch in tokens/s — GPT-2's GELU (GPTConfig's default): "
        + ", ".join(f"{name} {ratio[name]:.2f}x" for name in IMPLS)
        + "; exact GELU: "
        + ", ".join(f"{name} {ratio[f'{name}, exact GELU']:.2f}x" for name in IMPLS)
        + ". Memory: autograd's saved tensors (exact) and the peak resident-set increase over 5 steps, each model in "
        "its own subprocess."
    )


if __name__ == "__main__":
    main()
