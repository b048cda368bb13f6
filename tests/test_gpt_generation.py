"""Generation with GPT (generation.causal_lm_logits_fn with left padding and a KV cache, left_pad, GPT.generate).

Laws: a left-padded batch generates what each prompt generates alone; decoding with the cache produces the same
tokens (and beam scores) as recomputing the prefix — while feeding the model one token per step; top-k = 1
sampling is greedy; beam width 1 is greedy; EOS stops a row; a seeded generator reproduces a sample.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from transformer_from_scratch import generation
from transformer_from_scratch.config import GPTConfig
from transformer_from_scratch.generation import beam_search, causal_lm_logits_fn, greedy, left_pad, sample
from transformer_from_scratch.models import GPT

V = 23
SHAPE = dict(vocab_size=V, d_model=16, n_heads=4, n_layers=2, d_ff=24, max_len=32)
CONFIGS = {
    "learned": GPTConfig.tiny(**SHAPE),
    "rope-half": GPTConfig.llama_tiny(**SHAPE),
    "rope-interleaved": GPTConfig.llama_tiny(**SHAPE, rope_convention="interleaved"),
}
PROMPTS = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]


def make_model(name: str, seed: int = 0, dtype=torch.float64) -> GPT:
    """Random weights large enough that the next-token distributions are far from uniform (no argmax ties)."""
    model = GPT(CONFIGS[name]).to(dtype).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name_, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype)
            p.copy_(1.0 + 0.3 * noise if "norm" in name_ and name_.endswith("weight") else noise * 0.5)
    return model


class CallLog:
    """Wrap a model and record the length of every input it is called with."""

    def __init__(self, model: GPT):
        self.model, self.lengths = model, []

    def __call__(self, ids, **kwargs):
        self.lengths.append(ids.shape[1])
        return self.model(ids, **kwargs)


# ---- left_pad -----------------------------------------------------------------------------------------------


def test_left_pad_puts_padding_first():
    ids, valid = left_pad([[1, 2, 3], torch.tensor([4]), [5, 6]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4], [0, 5, 6]]
    assert valid.tolist() == [[True, True, True], [False, False, True], [False, True, True]]
    assert ids.dtype == torch.long and valid.dtype == torch.bool


@pytest.mark.parametrize(
    ("prompts", "pad_id", "error", "match"),
    [
        ([[1], []], 0, ValueError, "prompt 1 must be a non-empty"),
        ([], 0, ValueError, "at least one"),
        ([[1.5]], 0, TypeError, "integer"),
        ([[1]], -1, ValueError, "pad_id"),
        ([[1]], None, ValueError, "pad_id"),
    ],
)
def test_left_pad_errors(prompts, pad_id, error, match):
    with pytest.raises(error, match=match):
        left_pad(prompts, pad_id)


# ---- left padding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("use_cache", [False, True])
def test_batched_greedy_with_left_padding_equals_per_prompt_generation(name, use_cache):
    model = make_model(name, seed=1)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    batched = model.generate(ids, valid=valid, max_new_tokens=6, use_cache=use_cache)
    for b, prompt in enumerate(PROMPTS):
        alone = model.generate(torch.tensor([prompt]), max_new_tokens=6, use_cache=use_cache)[0]
        assert batched[b, ids.shape[1] :].tolist() == alone[len(prompt) :].tolist()
        assert batched[b, : ids.shape[1]].tolist() == ids[b].tolist()


def test_without_the_padding_mask_left_padding_changes_the_generation():
    model = make_model("learned", seed=1)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    masked = model.generate(ids, valid=valid, max_new_tokens=6)
    unmasked = model.generate(ids, valid=torch.ones_like(valid), max_new_tokens=6)
    assert masked[1:].tolist() != unmasked[1:].tolist()  # the padded rows see the pads and shifted positions
    assert masked[0].tolist() == unmasked[0].tolist()  # the longest prompt has no padding


def test_pad_id_in_the_config_masks_the_prompt_padding():
    model = make_model("rope-half", seed=2)
    with_pad = GPT(dataclasses.replace(model.config, pad_id=0)).double().eval()
    with_pad.load_state_dict(model.state_dict())
    ids, valid = left_pad(PROMPTS, pad_id=0)
    assert (
        with_pad.generate(ids, max_new_tokens=5).tolist() == model.generate(ids, valid=valid, max_new_tokens=5).tolist()
    )


# ---- the KV cache in decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_cached_greedy_equals_uncached_and_feeds_one_token_per_step(name):
    model = make_model(name, seed=3)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    log = CallLog(model)
    cached = greedy(causal_lm_logits_fn(log, valid=valid, use_cache=True), ids, max_new_tokens=7)
    plain = greedy(causal_lm_logits_fn(model, valid=valid), ids, max_new_tokens=7)
    assert cached.tolist() == plain.tolist()
    assert log.lengths == [ids.shape[1]] + [1] * 6  # prefill once, then one new token per call


def test_cached_greedy_with_eos_drops_finished_rows_and_keeps_using_the_cache():
    model = make_model("learned", seed=4)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    plain = greedy(causal_lm_logits_fn(model, valid=valid), ids, max_new_tokens=8)
    eos = int(plain[1, ids.shape[1] + 1])  # row 1 emits this token at step 2: make it the EOS
    log = CallLog(model)
    cached = greedy(causal_lm_logits_fn(log, valid=valid, use_cache=True), ids, max_new_tokens=8, eos_id=eos, pad_id=0)
    expected = greedy(causal_lm_logits_fn(model, valid=valid), ids, max_new_tokens=8, eos_id=eos, pad_id=0)
    assert cached.tolist() == expected.tolist()
    assert cached[1, ids.shape[1] + 1] == eos and (cached[1, ids.shape[1] + 2 :] == 0).all()
    assert log.lengths[0] == ids.shape[1] and set(log.lengths[1:]) == {1}


@pytest.mark.parametrize("name", ["learned", "rope-interleaved"])
def test_cached_sampling_equals_uncached_with_the_same_generator(name):
    model = make_model(name, seed=5)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    options = dict(max_new_tokens=8, temperature=1.3, top_k=10, top_p=0.9)
    cached = sample(
        causal_lm_logits_fn(model, valid=valid, use_cache=True),
        ids,
        generator=torch.Generator().manual_seed(7),
        **options,
    )
    plain = sample(causal_lm_logits_fn(model, valid=valid), ids, generator=torch.Generator().manual_seed(7), **options)
    assert cached.tolist() == plain.tolist()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_cached_beam_search_equals_uncached_and_feeds_one_token_per_step(name):
    model = make_model(name, seed=6)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    log = CallLog(model)
    options = dict(beam_size=3, max_new_tokens=6, eos_id=1, length_penalty=0.7)
    cached = beam_search(causal_lm_logits_fn(log, valid=valid, use_cache=True), ids, **options)
    plain = beam_search(causal_lm_logits_fn(model, valid=valid), ids, **options)
    assert cached.sequences.tolist() == plain.sequences.tolist()
    torch.testing.assert_close(cached.scores, plain.scores, rtol=1e-12, atol=0)
    assert log.lengths[0] == ids.shape[1] and set(log.lengths[1:]) == {1}  # beams reordered from the cache


def test_a_cached_adapter_falls_back_to_a_fresh_prefill_when_hypotheses_do_not_continue():
    model = make_model("rope-half", seed=7)
    log = CallLog(model)
    fn = causal_lm_logits_fn(log, use_cache=True)
    a = torch.tensor([[1, 2, 3]])
    b = torch.tensor([[4, 5, 6, 7]])  # same length + 1 but not a continuation of a
    fn(a, torch.tensor([0]))
    out = fn(b, torch.tensor([0]))
    torch.testing.assert_close(out, model(b).logits[:, -1], rtol=0, atol=1e-12)
    assert log.lengths == [3, 4]


# ---- decoding laws ------------------------------------------------------------------------------------------


def test_top_k_1_sampling_is_greedy():
    model = make_model("rope-half", seed=8)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    sampled = model.generate(ids, valid=valid, max_new_tokens=6, do_sample=True, top_k=1, temperature=2.0)
    assert sampled.tolist() == model.generate(ids, valid=valid, max_new_tokens=6).tolist()


@pytest.mark.parametrize("name", ["learned", "rope-half"])
def test_beam_width_1_is_greedy(name):
    model = make_model(name, seed=9)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    beam = model.generate(ids, valid=valid, max_new_tokens=6, beam_size=1)
    assert beam.tolist() == model.generate(ids, valid=valid, max_new_tokens=6).tolist()


def test_sampling_is_reproducible_with_a_generator():
    model = make_model("learned", seed=10)
    ids, valid = left_pad(PROMPTS, pad_id=0)

    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        return model.generate(ids, valid=valid, max_new_tokens=10, do_sample=True, generator=g).tolist()

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)


def test_eos_stops_a_row_and_max_tokens_stops_the_rest():
    model = make_model("rope-interleaved", seed=11)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    free = model.generate(ids, valid=valid, max_new_tokens=6)
    eos = int(free[0, ids.shape[1] + 2])  # the third token of row 0
    out = model.generate(ids, valid=valid, max_new_tokens=6, eos_id=eos, pad_id=0)
    row = out[0, ids.shape[1] :].tolist()
    first_eos = row.index(eos)
    assert first_eos <= 2 and all(t == 0 for t in row[first_eos + 1 :])
    assert out.shape[1] <= ids.shape[1] + 6


def test_generate_argument_errors():
    model = make_model("learned")
    ids = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="not both"):
        model.generate(ids, max_new_tokens=2, beam_size=2, do_sample=True)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(ids, max_new_tokens=0)
    with pytest.raises(TypeError, match="valid must be a"):
        causal_lm_logits_fn(model, valid=torch.ones(1, 2))
    assert "left_pad" in generation.__all__
