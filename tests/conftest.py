"""Shared pytest configuration: hypothesis profiles, float64 helpers, offline Hugging Face."""

import os
import tempfile

import pytest
import torch
from hypothesis import HealthCheck, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The embedded corpus is built on first use and cached; tests (and the notebooks they execute) build it once
# per session in a temporary folder instead of the user's ~/.cache.
os.environ.setdefault("TFS_CACHE_DIR", tempfile.mkdtemp(prefix="tfs-test-cache-"))

# "ci" is derandomized (the same examples every run) and small; "dev" explores more when asked:
#   pytest --hypothesis-profile=dev
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tests use tiny tensors: one thread avoids oversubscribing the 2-core CI machine (notebooks run in
# their own kernels with the default thread count).
torch.set_num_threads(1)


@pytest.fixture
def gen():
    """A seeded torch.Generator for tests that need randomness."""
    return torch.Generator().manual_seed(1234)
