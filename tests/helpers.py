"""Helpers shared by several test modules (imported as ``from helpers import …``, like ``strategies``)."""

from __future__ import annotations

import torch


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every parameter of one of *our* modules random values (norm weights near 1, everything else
    ~ 1/√fan-in), so that no bias or norm parameter sits at a default value that would hide a wrong formula."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * noise)
            else:
                p.copy_(noise * (0.3 if p.dim() == 1 else p.shape[-1] ** -0.5))
    return module


def randomize_hf_(model: torch.nn.Module, seed: int, *, matrices: bool = True) -> torch.nn.Module:
    """Redraw the parameters of a Hugging Face model: 1-D ones (norm gains, biases) perturbed from their 1/0 start
    and, with ``matrices=True``, matrices N(0, 0.3²) — larger than HF's 0.02, so attention is far from uniform and
    the logits are of order 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            elif matrices:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model
