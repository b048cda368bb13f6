r"""The kernels: the functions of :mod:`functional` again, with their backward passes written out by hand.

``functional.py`` is the textbook — each function composed from tensor operations, autograd doing the backward.
This module computes the same numbers faster on a CPU, and each class's docstring derives its backward pass:

    _MaskedSoftmax   softmax JVP  ∂L/∂x = y ⊙ (g - <g, y>)                       keeps y only
    _Attention       softmax(c·QKᵀ + bias) V as one node, δ = rowsum(G ⊙ O)        keeps Q, K, V, P, O
    _LayerNorm       ∂L/∂x = r · (ĝ - mean(ĝ) - x̂ · mean(ĝ · x̂))                 keeps x̂ and r
    _ReLU, _GELU, _GELUTanh   the derivative of each activation                   keep y, (x, Φ), x
    _LogSoftmax      ∂L/∂x = g - softmax(x) · Σ g                                 keeps y only

Why it is faster: autograd of a composed formula keeps every intermediate tensor and, on a CPU, spends most of its
time allocating and filling them (measured with torch 2.13: ReLU through ``torch.where`` ~25× slower than
``torch.relu`` forward + backward, GELU through erf ~8× slower than ``F.gelu``). A hand-written ``Function`` keeps
one or two tensors, chains in-place operations (the trailing-underscore methods) on fresh memory, and evaluates
e^z as 2^(z · log₂ e) in float32 and float64, because PyTorch's exp2 kernel is about three times faster than its
exp on CPU (the same number up to one rounding of the product).

These functions are reached through ``functional``'s switch — ``functional.layer_norm(x, w, b, impl="kernels")``,
``with functional.use_impl("kernels"): ...`` or ``impl="kernels"`` in a model config — which checks the inputs
first; the functions here do not check them again. ``tests/test_impls.py`` holds them equal to the textbook
(float64, values and gradients) and chapter 02 walks through the attention backward on numbers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._validation import broadcast_shape

__all__ = ["masked_softmax", "scaled_dot_product_attention", "layer_norm", "relu", "gelu", "gelu_tanh", "log_softmax"]

_LOG2_E = math.log2(math.e)


def _softmax_last_dim(x: Tensor, *, inplace: bool) -> Tensor:
    """Softmax over the last dimension; -inf entries get weight 0. ``inplace=True`` overwrites ``x`` (a tensor the
    caller owns and no longer needs); otherwise one new tensor is allocated and the rest works in place on it.

    The row maximum m is subtracted first. A row that is all -inf (nothing allowed) has m = -inf; raising m to the
    most negative finite number keeps x - m = -inf there (weight 0) instead of -inf + inf = NaN, and the
    denominator of such a row, 0, is raised to 1, so the row comes out all zeros.
    """
    m = x.amax(dim=-1, keepdim=True).clamp_min_(torch.finfo(x.dtype).min)  # (…, 1)
    x = x.sub_(m) if inplace else x - m
    if x.dtype in (torch.float32, torch.float64):
        x.mul_(_LOG2_E).exp2_()  # exp(x - m) = 2^((x - m) · log₂ e); exp2(-inf) = 0 for disallowed entries
    else:
        x.exp_()  # half precision: rounding (x - m) · log₂ e would cost more than a rounding of exp
    denom = x.sum(dim=-1, keepdim=True)  # ≥ 1 where anything is allowed (the maximum contributes e⁰ = 1)
    return x.div_(denom.clamp_min_(1.0))  # 0 / 1 = 0 on rows where nothing is allowed


class _MaskedSoftmax(torch.autograd.Function):
    r"""Softmax over the last dimension with an optional ``allowed`` mask and a hand-written backward.

    Forward: y = exp(x - m) / Σ exp(x - m), entries not allowed set to exactly 0.
    Backward (the softmax Jacobian–vector product): ∂L/∂x_i = y_i · (g_i - Σ_j g_j y_j), with g = ∂L/∂y.
    Only y is kept for the backward pass — one (…, T, S) tensor instead of the several that autograd
    would keep for the composed operations.
    In float32 and float64, e^z is evaluated as 2^(z · log₂ e) — the same number up to one rounding of the
    product — because PyTorch's exp2 kernel is about three times faster than its exp on CPU.
    """

    @staticmethod
    def forward(ctx, x: Tensor, allowed: Tensor | None) -> Tensor:
        if allowed is None:
            y = _softmax_last_dim(x, inplace=False)
        else:  # masked_fill makes a new tensor, which the softmax may then overwrite
            y = _softmax_last_dim(x.masked_fill(~allowed, float("-inf")), inplace=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        (y,) = ctx.saved_tensors
        gy = g * y  # y ⊙ g
        return gy.addcmul_(y, gy.sum(dim=-1, keepdim=True), value=-1.0), None  # y ⊙ g - y ⊙ <g, y>


def masked_softmax(scores: Tensor, allowed: Tensor | None = None, dim: int = -1) -> Tensor:
    """:class:`_MaskedSoftmax` along ``dim`` (inputs already checked by ``functional.masked_softmax``)."""
    if dim not in (-1, scores.dim() - 1):
        if allowed is not None:  # broadcast first: a mask of lower rank would move the wrong axis
            allowed = allowed.expand(scores.shape).movedim(dim, -1)
        return _MaskedSoftmax.apply(scores.movedim(dim, -1), allowed).movedim(-1, dim)
    return _MaskedSoftmax.apply(scores, allowed)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast runs matrix products in on ``device_type``, or None where autocast is off."""
    try:
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    except (TypeError, AttributeError):  # torch < 2.4: one pair of functions per kind of device
        if device_type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        if device_type == "cuda":
            return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
        return None


def _additive_mask(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """The bool mask as numbers to add to the scores: 0 where allowed, -inf where not (same shape)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, float("-inf"))


class _Attention(torch.autograd.Function):
    r"""softmax(c · Q Kᵀ + bias, allowed) V as one autograd node, with the backward pass written out.

    Per leading index (matrices Q (T, Dh), K (S, Dh), V (S, Dv)), with c = 1/√Dh (or the caller's ``scale``), M the
    dropout mask scaled by 1/(1 - p) (all ones without dropout) and ⊙ the elementwise product:

        S = c · Q Kᵀ + bias (disallowed entries -inf),   P = softmax(S) row by row,   O = (P ⊙ M) V

    Backward, given G = ∂L/∂O (T, Dv) and, when the weights P were returned and used, W = ∂L/∂P from them:

        ∂L/∂V = (P ⊙ M)ᵀ G          ∂L/∂P = (G Vᵀ) ⊙ M + W
        ∂L/∂S = P ⊙ (∂L/∂P - δ),    δ_i = Σ_j P_ij (∂L/∂P)_ij = Σ_d G_id O_id + Σ_j P_ij W_ij    (softmax JVP)
        ∂L/∂Q = c · ∂L/∂S K         ∂L/∂K = c · (∂L/∂S)ᵀ Q          ∂L/∂bias = ∂L/∂S summed over broadcast axes

    The first part of δ needs no (T, S) product: Σ_j P_ij M_ij (G Vᵀ)_ij = Σ_d G_id ((P ⊙ M) V)_id = Σ_d G_id O_id
    (the identity FlashAttention's backward uses, Dao et al. 2022, Alg. 4). Kept for the backward: Q, K, V (as
    contiguous (N, L, Dh) tensors), P, O and the dropout mask. Autograd of the composed operations would keep P but
    not O (and, with dropout, P ⊙ M as well); keeping O — T·Dv numbers per head — is what makes δ a sum over Dv
    instead of over the S keys. The scale c and a mask that is the same for every (batch, head) enter the score
    product itself (``torch.baddbmm``: c · Q Kᵀ plus a 0/-inf matrix in one pass); other masks and biases are
    applied in place, and the whole backward is a handful of kernels instead of a graph of a dozen nodes.
    """

    @staticmethod
    def forward(ctx, q, k, v, allowed, bias, dropout_p: float, generator, return_weights: bool, scale=None):
        autocast_dtype = _autocast_dtype(q.device.type)
        if autocast_dtype is not None and q.dtype != torch.float64:
            # Under autocast the products below would run in the lower precision anyway; casting first makes the
            # tensors kept for the backward pass (which runs outside autocast) agree with it in dtype.
            q, k, v = q.to(autocast_dtype), k.to(autocast_dtype), v.to(autocast_dtype)
        *lead, t, d_head = q.shape
        s, scale = k.shape[-2], (1.0 / math.sqrt(d_head) if scale is None else float(scale))
        q3, k3, v3 = q.reshape(-1, t, d_head), k.reshape(-1, s, d_head), v.reshape(-1, s, v.shape[-1])
        shared = allowed is not None and all(n == 1 for n in allowed.shape[:-2])  # one (T, S) mask for all
        if shared:
            additive = _additive_mask(allowed.reshape(allowed.shape[-2:]), q.dtype)  # (T, S) or (1, S), …
            scores = torch.baddbmm(additive, q3, k3.transpose(1, 2), alpha=scale)  # (N,T,Dh)·(N,Dh,S) -> (N,T,S)
        else:
            scores = torch.bmm(q3, k3.transpose(1, 2)).mul_(scale)  # (N,T,Dh)·(N,Dh,S) -> (N,T,S)
        scores4 = scores.view(*lead, t, s)  # the same memory with the leading axes back: (…, T, S)
        if bias is not None:
            scores4.add_(bias.to(scores.dtype))  # a float32 bias joins bf16/fp16 scores in their dtype
        if allowed is not None and not shared:
            if allowed.numel() < scores.numel():  # broadcast, e.g. key padding (B, 1, 1, S): add a small 0/-inf
                scores4.add_(_additive_mask(allowed, q.dtype))  # tensor — several times faster than masked_fill_
            else:
                scores4.masked_fill_(~allowed, float("-inf"))
        weights = _softmax_last_dim(scores, inplace=True)  # P (N, T, S), overwriting the scores
        keep = None
        dropped = weights
        if dropout_p > 0.0:  # one uniform draw per weight, from `generator`
            keep = (torch.rand(scores4.shape, generator=generator, device=q.device) >= dropout_p).view(weights.shape)
            dropped = weights * keep / (1.0 - dropout_p)  # P ⊙ M
        out = torch.bmm(dropped, v3)  # (N,T,S)·(N,S,Dv) -> (N,T,Dv)
        ctx.scale, ctx.dropout_p = scale, dropout_p
        ctx.shapes = (q.shape, k.shape, v.shape, None if bias is None else (bias.shape, bias.dtype))
        ctx.save_for_backward(q3, k3, v3, weights, out, keep)
        ctx.set_materialize_grads(False)  # an output nobody used gets None in backward, not a tensor of zeros
        out = out.view(*lead, t, v.shape[-1])
        return (out, weights.view(*lead, t, s)) if return_weights else out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor | None, g_weights: Tensor | None = None):
        q3, k3, v3, weights, out, keep = ctx.saved_tensors
        q_shape, k_shape, v_shape, bias_shape = ctx.shapes
        needs_q, needs_k, needs_v, _, needs_bias = ctx.needs_input_grad[:5]
        if g is None and g_weights is None:
            return (None,) * 9
        grad_v = None
        if g is not None:
            g3 = g.reshape(out.shape)  # G (N, T, Dv)
            grad_p = torch.bmm(g3, v3.transpose(1, 2))  # G Vᵀ: (N,T,Dv)·(N,Dv,S) -> (N,T,S)
            dropped = weights
            if keep is not None:
                scaled_keep = keep.to(weights.dtype).div_(1.0 - ctx.dropout_p)  # M (N, T, S), in the weights' dtype
                dropped = weights * scaled_keep  # P ⊙ M
                grad_p.mul_(scaled_keep)  # (G Vᵀ) ⊙ M
            if needs_v:
                grad_v = torch.bmm(dropped.transpose(1, 2), g3).view(v_shape)  # (P ⊙ M)ᵀ G: (N,S,T)·(N,T,Dv)
            delta = (g3 * out).sum(dim=-1, keepdim=True)  # Σ_d G O, (N, T, 1)
        else:  # only the returned weights reach the loss
            grad_p = torch.zeros_like(weights)
            delta = torch.zeros((*weights.shape[:-1], 1), dtype=weights.dtype, device=weights.device)
            if needs_v:
                grad_v = torch.zeros(v_shape, dtype=v3.dtype, device=v3.device)
        if g_weights is not None:
            w3 = g_weights.reshape(weights.shape)  # W (N, T, S)
            grad_p.add_(w3)
            delta.add_((w3 * weights).sum(dim=-1, keepdim=True))  # + Σ_j P W
        grad_s = grad_p.sub_(delta).mul_(weights)  # ∂L/∂S = P ⊙ (∂L/∂P - δ), over ∂L/∂P's memory
        grad_q = torch.bmm(grad_s, k3).mul_(ctx.scale).view(q_shape) if needs_q else None  # (N,T,S)·(N,S,Dh)
        grad_k = torch.bmm(grad_s.transpose(1, 2), q3).mul_(ctx.scale).view(k_shape) if needs_k else None
        grad_bias = None
        if needs_bias:
            shape, dtype = bias_shape  # (…,T,S) summed to the bias's own shape, in its own dtype
            grad_bias = grad_s.view(*q_shape[:-1], k_shape[-2]).sum_to_size(shape).to(dtype)
        return grad_q, grad_k, grad_v, None, grad_bias, None, None, None, None


def scaled_dot_product_attention(q, k, v, allowed, bias, dropout_p, generator, return_weights, scale=None):
    """:class:`_Attention` — the arguments of ``functional.scaled_dot_product_attention``, checked there.

    q, k, v whose leading dimensions only broadcast (e.g. one key/value head shared by all heads) are expanded
    first; autograd sums their gradients back.
    """
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        lead = broadcast_shape(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        q, k, v = (x.expand(*lead, *x.shape[-2:]) for x in (q, k, v))
    return _Attention.apply(q, k, v, allowed, bias, dropout_p, generator, return_weights, scale)


class _LayerNorm(torch.autograd.Function):
    r"""Layer normalisation over the last dimension with a hand-written backward — Ba et al. 2016, §3.

    Forward: μ = mean(x), σ² = mean((x - μ)²), r = 1 / √(σ² + ε), x̂ = (x - μ) · r, y = x̂ · w + b.
    Backward, with g = ∂L/∂y and ĝ = g · w (the gradient reaching x̂):

        ∂L/∂x = r · (ĝ - mean(ĝ) - x̂ · mean(ĝ · x̂)),    ∂L/∂w = Σ g · x̂,    ∂L/∂b = Σ g

    (sums over every position, means over the last dimension). Differentiating through μ removes the mean
    of ĝ; differentiating through σ² (∂r/∂x_i = -r³ (x_i - μ) / D) removes the part of ĝ along x̂.
    Only x̂ (…, D) and r (…, 1) are kept for the backward pass. The forward pass allocates two (…, D)
    tensors and the backward pass one; everything else works in place or reduces straight to (…, 1): on
    CPU, filling fresh memory costs more than the arithmetic.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
        d = x.shape[-1]
        mean = x.mean(dim=-1, keepdim=True)  # μ (…, 1)
        x_hat = x - mean  # (…, D), a new tensor; normalised in place below
        # σ = ‖x - μ‖ / √D, the root mean square of the centred row: σ² is the *biased* variance Σ (x - μ)² / D.
        sigma = torch.linalg.vector_norm(x_hat, dim=-1, keepdim=True).div_(math.sqrt(d))  # (…, 1)
        r = sigma.square_().add_(eps).rsqrt_()  # r = 1 / √(σ² + ε), (…, 1)
        x_hat.mul_(r)  # x̂ = (x - μ) · r
        ctx.save_for_backward(x_hat, r, weight, bias)
        if weight is None:
            return x_hat if bias is None else x_hat + bias
        return x_hat * weight if bias is None else torch.addcmul(bias, x_hat, weight)  # x̂ · w + b

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        x_hat, r, weight, bias = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        d = x_hat.shape[-1]
        g_x_hat = g * x_hat  # g · x̂, (…, D)
        grad_w = g_x_hat.sum_to_size(weight.shape) if need_w else None  # Σ g · x̂: (…, D) -> (D,)
        grad_b = g.sum_to_size(bias.shape) if need_b else None  # Σ g: (…, D) -> (D,)
        grad_x = None
        if need_x:
            # ∂L/∂x = r · (g · w + a + x̂ · c) with the per-row constants a = -mean(ĝ) = -Σ g w / D and
            # c = -mean(ĝ · x̂) = -Σ g x̂ w / D, as products with the column -w / D: (…, D)·(D, 1) -> (…, 1).
            w = torch.ones(d, dtype=g.dtype, device=g.device) if weight is None else weight.to(g.dtype)
            w_col = w[:, None] / -d  # (D, 1)
            a, c = g @ w_col, g_x_hat @ w_col  # (…, 1) each
            grad_x = torch.mul(g, w, out=g_x_hat)  # ĝ = g · w, written over g · x̂ (no longer needed)
            grad_x.add_(a).addcmul_(x_hat, c).mul_(r)  # r · (ĝ + a + x̂ · c)
        return grad_x, grad_w, grad_b, None


def layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float = 1e-5) -> Tensor:
    """:class:`_LayerNorm` over the last dimension."""
    return _LayerNorm.apply(x, weight, bias, eps)


class _ReLU(torch.autograd.Function):
    r"""ReLU(x) = max(x, 0), with a hand-written backward.

    Forward: y = max(x, 0), computed as a clamp from below at 0 (``clamp_min``: the same function).
    Backward: ∂y/∂x = 1 where x > 0 and 0 elsewhere (0 at x = 0, as ``torch.relu``), so ∂L/∂x = g · 1[x > 0].
    Since y ≥ 0, the indicator 1[x > 0] equals sign(y): only y is kept, and the backward is one product.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = x.clamp_min(0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.sign(y).mul_(g)  # g · 1[x > 0]


class _GELU(torch.autograd.Function):
    r"""GELU(x) = x · Φ(x), Φ(x) = ½ (1 + erf(x / √2)) the standard normal CDF — Hendrycks & Gimpel 2016.

    Backward (product rule, with Φ' = φ): ∂y/∂x = Φ(x) + x · φ(x), φ(x) = exp(-x² / 2) / √(2π) the
    standard normal density. Φ(x) is kept from the forward pass; φ(x) is recomputed in the backward.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        cdf = (x / math.sqrt(2.0)).erf_().add_(1.0).mul_(0.5)  # Φ(x) = ½ (1 + erf(x / √2))
        ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        x, cdf = ctx.saved_tensors
        # φ(x) = exp(-x²/2) / √(2π), with exp(z) = 2^(z · log₂ e) as in _MaskedSoftmax (exp2 is the faster kernel)
        pdf = (x * x).mul_(-0.5 * _LOG2_E).exp2_().mul_(1.0 / math.sqrt(2.0 * math.pi))
        return pdf.mul_(x).add_(cdf).mul_(g)  # g · (Φ(x) + x φ(x))


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


class _GELUTanh(torch.autograd.Function):
    r"""GELU, tanh approximation: y = ½ x (1 + tanh(u)), u = √(2/π) (x + 0.044715 x³) — GPT-2's ``gelu_new``.

    (Hendrycks & Gimpel 2016, §2.) Computed through the identity ½ (1 + tanh(u)) = σ(2u), σ the logistic
    sigmoid, i.e. y = x · σ(2u): the same function, without the cancellation of 1 + tanh(u) when
    tanh(u) → -1 (in float32 that loses ~1e-6 for x ≲ -4), and sigmoid is cheaper than tanh on CPU.
    Backward (product and chain rules, with σ'(v) = σ(v) σ(-v)):

        ∂y/∂x = σ(2u) + x · σ(2u) σ(-2u) · 2u' = σ(2u) · (1 + x · 2u' · σ(-2u)),
        2u' = 2 √(2/π) (1 + 3 · 0.044715 x²)

    σ(-2u) is evaluated directly rather than as 1 - σ(2u), which would cancel for large x. Only x is kept and
    2u is recomputed in the backward pass (two passes): keeping it would hold one more (…, F) tensor per layer
    from the forward to the backward pass (in ``bench/gpt_train.py`` autograd keeps 31.5 MiB instead of 37.5),
    and measured there the recomputation costs no time overall. The forward pass allocates one tensor: 2u is
    computed, squashed and multiplied by x in place.
    """

    @staticmethod
    def _two_u(x: Tensor) -> Tensor:
        # 2u = 2 √(2/π) (x + 0.044715 x³) = x · (2 √(2/π) + 2 √(2/π) · 0.044715 · x²): one addcmul, one product
        c = 2.0 * _SQRT_2_OVER_PI
        return torch.addcmul(x.new_tensor(c), x, x, value=c * _GELU_TANH_CUBIC).mul_(x)

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return _GELUTanh._two_u(x).sigmoid_().mul_(x)  # x · σ(2u) = ½ x (1 + tanh(u))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        two_u = _GELUTanh._two_u(x)
        s = torch.sigmoid(two_u)  # σ(2u)
        s_neg = two_u.neg_().sigmoid_()  # σ(-2u), written over 2u
        c = 2.0 * _SQRT_2_OVER_PI
        x_d_two_u = torch.addcmul(x.new_tensor(c), x, x, value=3.0 * c * _GELU_TANH_CUBIC).mul_(x)  # x · 2u'
        grad = torch.addcmul(x.new_tensor(1.0), x_d_two_u, s_neg, out=x_d_two_u)  # 1 + x · 2u' · σ(-2u)
        return grad.mul_(s).mul_(g)  # g · σ(2u) · (1 + x · 2u' · σ(-2u))


def relu(x: Tensor) -> Tensor:
    """:class:`_ReLU`."""
    return _ReLU.apply(x)


def gelu(x: Tensor) -> Tensor:
    """:class:`_GELU` (exact, erf)."""
    return _GELU.apply(x)


def gelu_tanh(x: Tensor) -> Tensor:
    """:class:`_GELUTanh` (tanh approximation, GPT-2's ``gelu_new``)."""
    return _GELUTanh.apply(x)


class _LogSoftmax(torch.autograd.Function):
    r"""log softmax over the last dimension with a hand-written backward.

    Forward: y = (x - m) - log Σ exp(x - m). Backward: with p = exp(y) = softmax(x) and g = ∂L/∂y,
    ∂L/∂x_i = g_i - p_i Σ_j g_j (each y_j depends on x_i through the log-sum: ∂y_j/∂x_i = δ_ij - p_i).
    Only y is kept; p is recomputed from it. As in :class:`_MaskedSoftmax`, e^z is evaluated as
    2^(z · log₂ e) in float32 and float64, the faster kernel on CPU.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        m = x.amax(dim=-1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # a row of all -inf: shift by 0, not -inf
        y = x - m  # (…, V): the one large tensor allocated; exponentiated in place, then overwritten by the result
        if y.dtype in (torch.float32, torch.float64):
            y.mul_(_LOG2_E).exp2_()  # exp(x - m) = 2^((x - m) · log₂ e)
        else:
            y.exp_()
        log_sum = y.sum(dim=-1, keepdim=True).log_()  # log Σ exp(x - m), (…, 1)
        torch.sub(x, m, out=y).sub_(log_sum)  # y = (x - m) - log Σ exp(x - m), recomputed from x in y's memory
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        p = _exp(y)  # softmax(x), a new tensor
        return p.mul_(g.sum(dim=-1, keepdim=True).neg_()).add_(g)  # g - p · Σ g


def _exp(x: Tensor) -> Tensor:
    """e^x as a new tensor, through exp2 in float32/float64."""
    if x.dtype in (torch.float32, torch.float64):
        return (x * _LOG2_E).exp2_()
    return torch.exp(x)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """:class:`_LogSoftmax` along ``dim``."""
    if dim not in (-1, x.dim() - 1):
        return _LogSoftmax.apply(x.movedim(dim, -1)).movedim(-1, dim)
    return _LogSoftmax.apply(x)
