r"""The textbook: the mathematics of the Transformer as pure tensor functions, with no parameters of their own.

Each function is the formula of its paper, composed from tensor operations, and autograd does the backward pass.
Modules (``attention.py``, ``layers.py``, ...) own the weights and call these functions; the tests and the NumPy
references in ``reference/`` target them directly.

Shape legend — used in every comment of the package:

    B  batch            T  query length        S  key/value length
    H  heads            Dh head width          D  model width (d_model = H · Dh)
    F  feed-forward width                      V  vocabulary size

Batch comes first everywhere. A boolean mask is called ``allowed`` and is ``True`` where query *i* may attend
to key *j* (the polarity of ``torch.nn.functional.scaled_dot_product_attention``); it broadcasts to
(B, H, T, S). A query row with no allowed key gets all-zero weights and a zero output, never NaN.

Three implementations, one switch. Every function with an ``impl`` argument computes the same numbers three ways:

    "plain"    the code below — what a student reads (the default)
    "kernels"  :mod:`kernels` — ours again, with hand-written backward passes; faster on a CPU
    "torch"    :mod:`fused` — PyTorch's fused built-ins, wrapped to keep our conventions

``impl=None`` follows :func:`use_impl` (``with use_impl("kernels"): ...``), which is "plain" unless changed;
models take the choice from their config (``GPTConfig(impl="kernels")``). ``tests/test_impls.py`` holds the
three equal: in float64 to 1e-10, gradients included, fully masked rows giving zeros on every path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from einops import rearrange
from torch import Tensor

from . import fused, kernels
from ._validation import check_allowed, check_bias, check_dropout_p, check_loss_inputs, check_qkv
from .config import IMPLS

__all__ = [
    "IMPLS",
    "use_impl",
    "resolve_impl",
    "softmax",
    "masked_softmax",
    "dropout",
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "check_allowed",
    "layer_norm",
    "rms_norm",
    "relu",
    "gelu",
    "gelu_tanh",
    "silu",
    "rope_angles",
    "apply_rope",
    "ROPE_CONVENTIONS",
    "log_softmax",
    "cross_entropy",
]

# ---- the switch ---------------------------------------------------------------------------------------------

_DEFAULT_IMPL: ContextVar[str] = ContextVar("transformer_from_scratch_impl", default="plain")
_MODULES = {"kernels": kernels, "torch": fused}


@contextmanager
def use_impl(impl: str) -> Iterator[None]:
    """Within the ``with`` block, functions called with ``impl=None`` use ``impl`` ("plain", "kernels", "torch").

    A model follows its config, not this context: ``GPT(GPTConfig(..., impl="kernels"))``.
    """
    token = _DEFAULT_IMPL.set(resolve_impl(impl))
    try:
        yield
    finally:
        _DEFAULT_IMPL.reset(token)


def resolve_impl(impl: str | None) -> str:
    """``impl``, or the one :func:`use_impl` selected when it is None; checked against :data:`IMPLS`."""
    if impl is None:
        return _DEFAULT_IMPL.get()
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


# ---- softmax and attention -------------------------------------------------------------------------------------


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    r"""softmax(x)_i = exp(x_i - m) / Σ_j exp(x_j - m), with m = max_j x_j.

    Subtracting the row maximum changes nothing mathematically (the factor exp(-m) cancels) but keeps
    every exponent ≤ 0, so exp never overflows — the "numerically stable" softmax.
    """
    m = x.amax(dim=dim, keepdim=True).detach()  # the shift is a constant: its gradient cancels exactly
    e = torch.exp(x - m)
    return e / e.sum(dim=dim, keepdim=True)


def masked_softmax(scores: Tensor, allowed: Tensor | None = None, dim: int = -1, *, impl: str | None = None) -> Tensor:
    r"""Softmax over the allowed entries only; disallowed entries get weight exactly 0.

    Disallowed scores become -inf, and e^-inf = 0. A row where nothing is allowed (or every score is -inf) would
    be 0/0 = NaN; here it is all zeros: its maximum -inf is raised to the most negative finite number (so
    x - m stays -inf, not -inf + inf = NaN), and its denominator 0 is raised to 1 — every other row has a
    denominator ≥ 1, since its largest term is e⁰ = 1. ``allowed`` (bool) broadcasts to ``scores``.
    """
    check_allowed(allowed, tuple(scores.shape))
    impl = resolve_impl(impl)
    if impl != "plain":
        return _MODULES[impl].masked_softmax(scores, allowed, dim)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    m = scores.amax(dim=dim, keepdim=True).clamp_min(torch.finfo(scores.dtype).min).detach()
    e = torch.exp(scores - m)
    return e / e.sum(dim=dim, keepdim=True).clamp_min(1.0)


def dropout(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    r"""Inverted dropout: each entry kept with probability 1 - p and scaled by 1/(1 - p), else 0 — one uniform draw
    per entry from ``generator``, so E[dropout(x)] = x. (Srivastava et al. 2014.)"""
    if p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep / (1.0 - p)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    allowed: Tensor | None = None,
    bias: Tensor | None = None,
    dropout_p: float = 0.0,
    generator: torch.Generator | None = None,
    return_weights: bool = False,
    impl: str | None = None,
    scale: float | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + bias) V — Vaswani et al. 2017, eq. (1).

    Shapes: q (…, T, Dh) · k (…, S, Dh) · v (…, S, Dv) · allowed/bias broadcastable to (…, T, S)
    -> output (…, T, Dv) and, with ``return_weights=True``, the weights (…, T, S).
    The leading dimensions "…" are usually (B, H) but any number works, and they may broadcast (one key/value
    head shared by all query heads).

    ``allowed`` is boolean, True where query i may attend to key j. A query with nothing allowed gets
    zero weights and a zero output. ``bias`` is added to the scaled scores before the softmax (T5
    relative positions, ALiBi); -inf entries act like disallowed ones. ``dropout_p`` drops attention
    weights (inverted dropout, scaled by 1/(1-p)) using ``generator`` when given. The returned weights
    are the ones before dropout.

    ``scale`` replaces the factor 1/√d_k when given: T5 uses ``scale=1.0`` (no scaling; Raffel et al. 2020 fold
    1/√d_k into the initialisation of the query projection instead).
    """
    scores_shape = check_qkv(q, k, v)
    check_dropout_p(dropout_p)
    check_allowed(allowed, scores_shape)
    check_bias(bias, scores_shape)
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0):
        raise ValueError(f"scale must be None (1/√d_k) or a positive number, got {scale!r}")
    impl = resolve_impl(impl)
    if impl != "plain":
        return _MODULES[impl].scaled_dot_product_attention(
            q, k, v, allowed, bias, dropout_p, generator, return_weights, scale
        )
    if scale is None:
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (…,T,Dh)·(…,Dh,S) -> (…,T,S)
    else:
        scores = (q @ k.transpose(-2, -1)) * scale  # (…,T,S), e.g. scale = 1 in T5
    if bias is not None:
        scores = scores + bias
    weights = masked_softmax(scores, allowed, impl="plain")  # (…,T,S): each row sums to 1, or is all 0
    out = dropout(weights, dropout_p, generator) @ v  # (…,T,S)·(…,S,Dv) -> (…,T,Dv)
    return (out, weights) if return_weights else out


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, T, D) -> (B, H, T, Dh): head h owns the contiguous slice D[h·Dh : (h+1)·Dh]."""
    if x.shape[-1] % n_heads != 0:
        raise ValueError(f"width {x.shape[-1]} is not divisible by n_heads={n_heads}")
    return rearrange(x, "b t (h d) -> b h t d", h=n_heads)  # (B,T,D) -> (B,H,T,Dh)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, Dh) -> (B, T, D): the exact inverse of :func:`split_heads`."""
    return rearrange(x, "b h t d -> b t (h d)")  # (B,H,T,Dh) -> (B,T,D)


# ---- normalisation and activations --------------------------------------------------------------------------
# The oracles for these functions (F.layer_norm, nn.RMSNorm, F.gelu, F.silu) are what impl="torch" calls; the
# tests compare the textbook below against them.


def layer_norm(
    x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float = 1e-5, *, impl: str | None = None
) -> Tensor:
    r"""LayerNorm(x) = (x - μ) / √(σ² + ε) · weight + bias over the last dimension — Ba et al. 2016.

    Shapes: x (…, D) · weight, bias (D,) or None -> (…, D).
    σ² is the *biased* variance (divide by D, not D - 1) and ε sits inside the square root: the
    convention of ``nn.LayerNorm`` and of every BERT/GPT checkpoint. Getting either detail wrong changes
    the outputs of a pretrained model by far more than rounding.
    """
    impl = resolve_impl(impl)
    if impl != "plain":
        return _MODULES[impl].layer_norm(x, weight, bias, eps)
    mean = x.mean(dim=-1, keepdim=True)  # μ (…, 1)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # σ² (…, 1), biased: divided by D
    y = (x - mean) / torch.sqrt(var + eps)  # (…, D)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(x: Tensor, weight: Tensor | None, eps: float = 1e-6, *, impl: str | None = None) -> Tensor:
    r"""RMSNorm(x) = x / √(mean(x²) + ε) · weight over the last dimension — Zhang & Sennrich 2019.

    Shapes: x (…, D) · weight (D,) or None -> (…, D), in the dtype of x.
    No centring and no bias. Half-precision inputs (float16, bfloat16) are normalised in float32 and the
    result is cast back, since a mean of squares in 8 bits of mantissa loses most of its digits; float32
    and float64 inputs are computed in their own precision. The weight is applied in that same
    computation dtype, before the cast back (Hugging Face's Llama casts first, then multiplies: the two
    differ by at most one rounding of the output). ``impl="kernels"`` is this code (no hand-written version).
    """
    if resolve_impl(impl) == "torch":
        return fused.rms_norm(x, weight, eps)
    compute_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    h = x.to(compute_dtype)
    mean_square = (h * h).mean(dim=-1, keepdim=True)  # (…, 1)
    y = h * torch.rsqrt(mean_square + eps)  # (…, D)
    if weight is not None:
        y = y * weight.to(compute_dtype)
    return y.to(x.dtype)


def relu(x: Tensor, *, impl: str | None = None) -> Tensor:
    """ReLU(x) = max(0, x) — the activation of the 2017 Transformer's feed-forward layer (eq. 2).

    Its derivative is 1 where x > 0 and 0 elsewhere (0 at x = 0, as ``torch.relu``)."""
    impl = resolve_impl(impl)
    if impl != "plain":
        return _MODULES[impl].relu(x)
    return torch.where(x > 0, x, torch.zeros_like(x))


def gelu(x: Tensor, *, impl: str | None = None) -> Tensor:
    r"""GELU(x) = x · Φ(x) = ½ x (1 + erf(x / √2)), Φ the standard normal CDF — Hendrycks & Gimpel 2016;
    BERT's activation."""
    impl = resolve_impl(impl)
    if impl != "plain":
        return _MODULES[impl].gelu(x)
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x: Tensor, *, impl: str | None = None) -> Tensor:
    r"""GELU, tanh approximation: ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))) — Hendrycks & Gimpel 2016, §2;
    GPT-2's ``gelu_new``."""
    impl = resolve_impl(impl)
    if impl != "plain":
        return _MODULES[impl].gelu_tanh(x)
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def silu(x: Tensor, *, impl: str | None = None) -> Tensor:
    r"""SiLU(x) = x · σ(x), σ(x) = 1 / (1 + e^{-x}) — a.k.a. swish; the gate of SwiGLU (Shazeer 2020).
    ``impl="kernels"`` is this code (no hand-written version)."""
    if resolve_impl(impl) == "torch":
        return fused.silu(x)
    return x * torch.sigmoid(x)


# ---- rotary position embeddings --------------------------------------------------------------------------------

ROPE_CONVENTIONS = ("half", "interleaved")


def _check_rope_width(d_head: int) -> None:
    if not isinstance(d_head, int) or isinstance(d_head, bool) or d_head <= 0 or d_head % 2 != 0:
        raise ValueError(
            f"rotary embeddings rotate pairs of dimensions, so d_head must be a positive even int, got {d_head!r}"
        )


def _check_rope_convention(convention: str) -> None:
    if convention not in ROPE_CONVENTIONS:
        raise ValueError(f"convention must be one of {ROPE_CONVENTIONS}, got {convention!r}")


def rope_angles(positions: Tensor, d_head: int, theta: float = 10000.0) -> tuple[Tensor, Tensor]:
    r"""cos and sin of the rotary angles m · θ_i, θ_i = theta^(-2i/Dh), i = 0 … Dh/2 - 1 — Su et al. 2021.

    Shapes: positions (…) -> (cos, sin), each (…, Dh/2) in float64: one angle per rotated *pair* of
    dimensions, whichever layout :func:`apply_rope` uses. ``positions`` may be integer or real
    (fractional positions are how position-interpolation methods stretch a context). The angles are
    computed in float64: at position 2048 a float32 angle is off by ~10⁻⁴ rad, far more than the rounding
    of its cosine. :func:`apply_rope` casts to the dtype of its input.
    """
    _check_rope_width(d_head)
    if not isinstance(positions, Tensor):
        raise TypeError(f"positions must be a torch.Tensor, got {type(positions).__name__}")
    if positions.dtype == torch.bool or positions.is_complex():
        raise TypeError(f"positions must be an integer or real tensor, got {positions.dtype}")
    i = torch.arange(d_head // 2, dtype=torch.float64, device=positions.device)  # (Dh/2,)
    inv_freq = theta ** (-2.0 * i / d_head)  # θ_i, (Dh/2,)
    angles = positions.to(torch.float64)[..., None] * inv_freq  # (…, 1) · (Dh/2,) -> (…, Dh/2)
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, convention: str = "half") -> Tensor:
    r"""Rotate each pair (a, b) of dimensions of x by its angle: (a, b) -> (a cos - b sin, a sin + b cos).

    Shapes: x (…, T, Dh) · cos, sin broadcastable to (…, T, Dh/2) -> (…, T, Dh), in the dtype of x.
    ``convention`` says which dimensions form pair i (both use the same frequency θ_i for pair i):

    * ``"interleaved"`` — adjacent dimensions (2i, 2i+1), as written in RoFormer (Su et al. 2021) and in
      GPT-J / Mesh-TensorFlow checkpoints;
    * ``"half"`` — dimensions (i, i + Dh/2), the "rotate half" layout of GPT-NeoX and Llama.

    The two are the same rotation after a fixed permutation of the Dh dimensions, so a model trained
    with one runs with the other once its q/k projection rows are permuted (a test checks this).
    """
    _check_rope_convention(convention)
    _check_rope_width(x.shape[-1])
    if cos.shape[-1] != x.shape[-1] // 2 or sin.shape[-1] != x.shape[-1] // 2:
        raise ValueError(
            f"cos and sin must have Dh/2 = {x.shape[-1] // 2} entries in their last dimension, "
            f"got cos {tuple(cos.shape)} and sin {tuple(sin.shape)}"
        )
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    if convention == "half":
        a, b = x.chunk(2, dim=-1)  # (…, T, Dh) -> 2 × (…, T, Dh/2): pair i is (x_i, x_{i+Dh/2})
        return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)  # -> (…, T, Dh)
    a, b = x[..., 0::2], x[..., 1::2]  # (…, T, Dh) -> 2 × (…, T, Dh/2): pair i is (x_{2i}, x_{2i+1})
    rotated = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)  # (…, T, Dh/2, 2)
    return rotated.flatten(-2)  # (…, T, Dh/2, 2) -> (…, T, Dh), re-interleaving the pairs


# ---- losses: log-softmax and cross-entropy ---------------------------------------------------------------------
# For logits z over a vocabulary of V classes and a target class y:
#
#     log p_v = z_v - m - log Σ_u exp(z_u - m),   m = max_u z_u          (stable log-softmax)
#     NLL     = -log p_y
#     loss    = (1 - ε) · NLL + ε · mean_v(-log p_v)                     (label smoothing, ε ∈ [0, 1])
#
# Label smoothing (Szegedy et al. 2016, "Rethinking the Inception Architecture", §7) trains against the
# mixture (1 - ε)·onehot(y) + ε·uniform(V) instead of the one-hot target; Vaswani et al. 2017 (§5.4) used
# ε = 0.1. The formula above is that mixture's cross-entropy, and it is what ``F.cross_entropy`` computes.
#
# Shapes: logits (…, V) — class dimension **last**, any number of leading dimensions, e.g. (B, T, V) —
# and targets (…) of integer class ids. ``F.cross_entropy`` puts the classes in dimension 1 instead; for
# (B, T, V) logits call it as ``F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))``.

_REDUCTIONS = ("mean", "sum", "none")


def log_softmax(x: Tensor, dim: int = -1, *, impl: str | None = None) -> Tensor:
    r"""log softmax(x)_i = (x_i - m) - log Σ_j exp(x_j - m), with m = max_j x_j.

    Subtracting the maximum keeps every exponent ≤ 0, so exp never overflows (logits of ±1e4 stay finite
    in float32), and the largest term of the sum is exactly 1, so the log never sees 0. Computing
    log(softmax(x)) instead would give log(0) = -inf wherever a probability underflows.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    impl = resolve_impl(impl)
    if impl != "plain":
        return _MODULES[impl].log_softmax(x, dim)
    m = x.amax(dim=dim, keepdim=True).detach()  # the shift is a constant: its gradient cancels exactly
    return x - m - torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))


def cross_entropy(
    logits: Tensor,
    targets: Tensor,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    impl: str | None = None,
) -> Tensor:
    r"""loss = (1 - ε)·(-log p_y) + ε·mean_v(-log p_v), averaged over the targets that are not ignored.

    Shapes: logits (…, V) · targets (…) integer class ids -> a 0-d tensor ("mean", "sum") or (…) ("none").

    Targets equal to ``ignore_index`` (padding, unmasked MLM positions) contribute 0 and are left out of
    the mean's denominator. ``reduction="none"`` returns the per-target losses with 0 at ignored ones.
    ``impl="kernels"`` uses the hand-written log-softmax of :mod:`kernels` in the formula below.

    Equal to ``F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ...)`` with the same arguments,
    with one deliberate difference:

    # Deviation: when *every* target is ignored, the "mean" is 0.0 (with zero gradients), where
    # ``F.cross_entropy`` returns 0/0 = NaN. A batch without a single target to predict (an MLM batch in
    # which no token was masked) then leaves the weights unchanged instead of turning them into NaN.
    """
    check_loss_inputs(logits, targets, ignore_index, label_smoothing, reduction, _REDUCTIONS)
    impl = resolve_impl(impl)
    if impl == "torch":
        return fused.cross_entropy(
            logits, targets, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction
        )
    real = targets != ignore_index  # (…) True where there is a target to predict
    safe_targets = torch.where(real, targets, torch.zeros_like(targets)).long()  # ignored -> class 0, masked below

    log_p = log_softmax(logits, dim=-1, impl=impl)  # (…, V)
    nll = -log_p.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)  # (…, V) pick class y -> (…)
    per_target = nll
    if label_smoothing > 0.0:
        uniform_ce = -log_p.mean(dim=-1)  # (…, V) -> (…): cross-entropy against the uniform distribution
        per_target = (1.0 - label_smoothing) * nll + label_smoothing * uniform_ce
    per_target = torch.where(real, per_target, torch.zeros_like(per_target))  # ignored targets contribute 0

    if reduction == "none":
        return per_target
    total = per_target.sum()
    if reduction == "sum":
        return total
    n_real = real.sum().clamp(min=1).to(total.dtype)  # all ignored: 0 / 1 = 0 (see Deviation above)
    return total / n_real
