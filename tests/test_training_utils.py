"""seed_everything, pick_device, count_parameters."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from transformer_from_scratch.training import utils
from transformer_from_scratch.training.utils import count_parameters, pick_device, seed_everything


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))  # noqa: NPY002 — the global generator


def test_seed_everything_makes_every_source_repeat():
    g1 = seed_everything(123)
    first = draws()
    g2 = seed_everything(123)
    assert draws() == first
    assert torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=g2))
    assert torch.equal(torch.rand(5, generator=seed_everything(123)), torch.rand(5, generator=torch.manual_seed(123)))
    seed_everything(124)
    other = draws()
    assert all(a != b for a, b in zip(first, other))


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "7", True])
def test_seed_must_be_an_integer_numpy_accepts(bad):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        seed_everything(bad)


def fake_backends(monkeypatch, cuda: bool, mps: bool):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(utils, "_mps_available", lambda: mps)


@pytest.mark.parametrize(
    "cuda, mps, expected", [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    fake_backends(monkeypatch, cuda, mps)
    assert pick_device("auto") == torch.device(expected)
    assert pick_device() == torch.device("cpu")  # the default never leaves the CPU


def test_asking_for_a_missing_device_is_an_error(monkeypatch):
    fake_backends(monkeypatch, cuda=False, mps=False)
    with pytest.raises(RuntimeError, match="prefer='cuda' but CUDA is not available"):
        pick_device("cuda")
    with pytest.raises(RuntimeError, match="prefer='mps' but Apple's MPS backend is not available"):
        pick_device("mps")
    fake_backends(monkeypatch, cuda=True, mps=True)
    assert pick_device("cuda") == torch.device("cuda") and pick_device("mps") == torch.device("mps")
    with pytest.raises(ValueError, match="prefer must be one of"):
        pick_device("gpu")


def test_real_availability_is_consistent():
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            pick_device("cuda")
    assert pick_device("auto").type in {"cuda", "mps", "cpu"}


def test_count_parameters_counts_tied_weights_once_and_skips_frozen():
    class TiedLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(11, 4)  # 44
            self.norm = nn.LayerNorm(4)  # 8
            self.head = nn.Linear(4, 11, bias=True)  # weight tied to emb; bias 11
            self.head.weight = self.emb.weight
            self.frozen = nn.Linear(4, 2)  # 10, frozen below
            self.frozen.requires_grad_(False)

    model = TiedLM()
    assert count_parameters(model) == 44 + 8 + 11
    assert count_parameters(model, trainable_only=False) == 44 + 8 + 11 + 10
    assert count_parameters(nn.Linear(3, 4)) == 3 * 4 + 4
    with pytest.raises(TypeError, match="module must be an nn.Module"):
        count_parameters([nn.Parameter(torch.zeros(2))])
