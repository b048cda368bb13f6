"""T5's relative position buckets and bias (positional.relative_position_bucket, RelativePositionBias): equal to the
NumPy reference and to Hugging Face's T5 on every distance of a wide grid, the laws of the bucketing (range,
monotone in distance, the two halves of a bidirectional encoder, one bucket for the hidden future of a decoder),
the bias of a cached decoding step equal to the rows of the full bias, and the errors a learner meets.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import transformers
from hypothesis import given
from hypothesis import strategies as st
from transformers.models.t5.modeling_t5 import T5Attention

from transformer_from_scratch.positional import RelativePositionBias, relative_position_bucket
from transformer_from_scratch.reference import positional as ref

DISTANCES = torch.arange(-2500, 2501)  # far beyond max_distance on both sides
GRID = [
    (bidirectional, nb, md)
    for bidirectional, nb, md in itertools.product([True, False], [4, 8, 32, 64], [6, 20, 128, 1000])
    if (nb // 2 if bidirectional else nb) // 2 < md
]


@pytest.mark.parametrize("bidirectional, num_buckets, max_distance", GRID)
def test_buckets_equal_the_reference_and_hugging_face_t5(bidirectional, num_buckets, max_distance):
    ours = relative_position_bucket(
        DISTANCES, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    theirs = T5Attention._relative_position_bucket(
        DISTANCES, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    reference = [ref.relative_position_bucket(int(r), bidirectional, num_buckets, max_distance) for r in DISTANCES]
    assert ours.dtype == torch.long
    assert torch.equal(ours, theirs)
    assert ours.tolist() == reference


def test_t5_default_buckets_by_hand():
    """num_buckets 32, max_distance 128, bidirectional: nb = 16, exact = 8. r = −20: n = 20 ≥ 8, so
    8 + ⌊log(20/8) / log(128/8) · 8⌋ = 8 + ⌊0.9163 / 2.7726 · 8⌋ = 8 + ⌊2.644⌋ = 10. r = +20: the same plus 16 = 26.
    r = −127: 8 + ⌊log(15.875)/log(16) · 8⌋ = 8 + ⌊7.98⌋ = 15; r = −128 and beyond: capped at nb − 1 = 15."""
    r = torch.tensor([0, -1, 1, -7, -8, -20, 20, -127, -128, -5000, 5000])
    got = relative_position_bucket(r, bidirectional=True, num_buckets=32, max_distance=128)
    assert got.tolist() == [0, 1, 17, 7, 8, 10, 26, 15, 15, 15, 31]


@given(
    bidirectional=st.booleans(),
    num_buckets=st.integers(4, 64),
    max_distance=st.integers(2, 300),
    a=st.integers(0, 2000),
    b=st.integers(0, 2000),
)
def test_laws_of_the_buckets(bidirectional, num_buckets, max_distance, a, b):
    nb = num_buckets // 2 if bidirectional else num_buckets
    if nb // 2 >= max_distance:
        return
    bucket = lambda r: int(  # noqa: E731
        relative_position_bucket(
            torch.tensor(r), bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
        )
    )
    near, far = min(a, b), max(a, b)
    assert 0 <= bucket(-far) < nb  # keys to the left use the lower buckets
    assert bucket(-near) <= bucket(-far)  # farther never means a nearer bucket
    if near < nb // 2:
        assert bucket(-near) == near  # exact buckets
    if bidirectional and far > 0:
        assert bucket(far) == nb + bucket(-far)  # right half mirrors the left, offset by nb
    if not bidirectional:
        assert bucket(far) == 0  # a decoder's future (masked anyway) shares bucket 0 with r = 0


def relative_bias_pair(bidirectional: bool, seed: int = 0):
    """Our RelativePositionBias and Hugging Face's T5Attention with the same (num_buckets, H) table."""
    config = transformers.T5Config(
        d_model=16, d_kv=4, num_heads=3, relative_attention_num_buckets=8, relative_attention_max_distance=20,
        is_decoder=not bidirectional,
    )  # fmt: skip
    hf = T5Attention(config, has_relative_attention_bias=True).eval()
    ours = RelativePositionBias(3, bidirectional=bidirectional, num_buckets=8, max_distance=20)
    with torch.no_grad():
        ours.embedding.weight.normal_(generator=torch.Generator().manual_seed(seed))
        hf.relative_attention_bias.weight.copy_(ours.embedding.weight)
    return ours, hf


@pytest.mark.parametrize("bidirectional", [True, False])
def test_bias_equals_hugging_face_compute_bias(bidirectional):
    ours, hf = relative_bias_pair(bidirectional)
    with torch.no_grad():
        got, want = ours(13, 29), hf.compute_bias(13, 29)
    assert got.shape == (1, 3, 13, 29)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_bias_is_the_table_row_of_each_bucket(bidirectional):
    ours, _ = relative_bias_pair(bidirectional, seed=3)
    bias = ours(5, 7)
    for i, j, h in itertools.product(range(5), range(7), range(3)):
        b = ref.relative_position_bucket(j - i, bidirectional, 8, 20)
        assert bias[0, h, i, j] == ours.embedding.weight[b, h]


def test_a_cached_decoding_step_gets_the_rows_of_the_full_bias():
    ours, _ = relative_bias_pair(False, seed=1)
    full = ours(12, 12)  # (1, H, 12, 12)
    for step in range(12):
        torch.testing.assert_close(ours(1, step + 1, query_offset=step), full[:, :, step : step + 1, : step + 1])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"relative_position": torch.tensor([0.5])}, TypeError, "integer tensor"),
        ({"num_buckets": 2}, ValueError, "at least 4 buckets"),
        ({"num_buckets": 32, "max_distance": 8}, ValueError, "max_distance > the 8 exact buckets"),
        ({"num_buckets": 0}, ValueError, "num_buckets"),
    ],
)
def test_bucket_errors(kwargs, error, match):
    call = {"relative_position": torch.tensor([1]), "bidirectional": True, **kwargs}
    with pytest.raises(error, match=match):
        relative_position_bucket(call.pop("relative_position"), **call)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda b: b(0, 3), ValueError, "t must be"),
        (lambda b: b(2, 3, query_offset=-1), ValueError, "query_offset must be an integer ≥ 0"),
        (lambda b: relative_position_bucket([1, 2], bidirectional=True), TypeError, "got list"),
        (lambda b: RelativePositionBias(2, bidirectional=True, num_buckets=2), ValueError, "at least 4 buckets"),
    ],
)
def test_bias_module_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(RelativePositionBias(2, bidirectional=False, num_buckets=8, max_distance=20))
