"""GPT (models/gpt.py, GPTConfig): NumPy reference parity, padding and positions, causality, tying, loss, dropout
sites, initialisation, parameter count, gradients, errors.

KV-cache decoding lives in test_kv_cache.py, generation in test_gpt_generation.py, Hugging Face parity in
test_interop_hf_gpt2.py and test_interop_hf_llama.py.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import randomize_
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.config import GPTConfig
from transformer_from_scratch.generation import left_pad
from transformer_from_scratch.models import GPT, positions_from_valid
from transformer_from_scratch.reference import gpt as ref

V = 23
PROMPTS = [[1, 2, 3, 4, 5, 6, 7], [5, 6, 9], [7, 8, 9, 10, 11]]  # left-padded to T = 7 with pad id 0

# Small enough for the loop-based NumPy reference: D=12, H=3 (Dh=4), 2 layers.
SHAPE = dict(vocab_size=V, d_model=12, n_heads=3, n_layers=2, d_ff=20, max_len=16)
CONFIGS = {
    "gpt2": GPTConfig.tiny(**SHAPE),
    "llama-half": GPTConfig.llama_tiny(**SHAPE),
    "llama-interleaved": GPTConfig.llama_tiny(**SHAPE, rope_convention="interleaved", rope_theta=100.0),
    "rope-layernorm-gelu-bias-tied": GPTConfig.llama_tiny(
        **SHAPE, rope_convention="interleaved", norm="layer", activation="gelu", bias=True, tie_head=True
    ),
    "learned-rms-relu-untied": GPTConfig.tiny(**SHAPE, norm="rms", activation="relu", tie_head=False, bias=False),
}


def model64(config: GPTConfig, seed: int = 0) -> GPT:
    return randomize_(GPT(config).double().eval(), seed)


def reference_logits(model: GPT, ids, valid=None, positions=None, return_details=False):
    c = model.config
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return ref.gpt(
        ids.numpy(),
        weights,
        n_heads=c.n_heads,
        n_layers=c.n_layers,
        positional=c.positional,
        rope_theta=c.rope_theta,
        rope_convention=c.rope_convention,
        norm=c.norm,
        activation=c.activation,
        eps=c.layer_norm_eps,
        valid=None if valid is None else valid.numpy(),
        positions=None if positions is None else positions.numpy(),
        return_details=return_details,
    )


def assert_rel(ours: torch.Tensor, expected: np.ndarray, rtol: float = 1e-10) -> None:
    """Largest error relative to the reference's overall scale (as verification.py measures it)."""
    err = np.abs(ours.detach().numpy() - expected).max() / np.abs(expected).max()
    assert err <= rtol, f"relative error {err:.3g} > {rtol}"


# ---- the NumPy reference ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_numpy_reference_float64_left_padded(name):
    model = model64(CONFIGS[name], seed=1)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    labels = torch.where(valid, ids, torch.full_like(ids, -100))
    out = model(ids, valid=valid, labels=labels, return_attention=True, return_hidden_states=True)
    logits, hidden, attentions = reference_logits(model, ids, valid, return_details=True)
    assert_rel(out.logits, logits)
    for ours, theirs in zip(out.hidden_states, hidden, strict=True):
        assert_rel(ours, theirs)
    for ours, theirs in zip(out.attentions, attentions, strict=True):
        assert_rel(ours, theirs)
    expected_loss = ref.causal_lm_loss(logits, labels.numpy(), valid.numpy())
    assert abs(out.loss.item() - expected_loss) <= 1e-10 * abs(expected_loss)


@pytest.mark.parametrize("name", ["gpt2", "llama-half"])
def test_matches_numpy_reference_float32(name):
    model = randomize_(GPT(CONFIGS[name]).eval(), seed=2)
    ids = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(0))
    logits = reference_logits(model, ids)
    # float32 rounding through two blocks is ~1e-6 of the logits' scale (~2.5); a bug is orders of magnitude more
    scale = float(np.abs(logits).max())
    torch.testing.assert_close(model(ids).logits, torch.from_numpy(logits).float(), rtol=1e-5, atol=1e-5 * scale)


def test_explicit_positions_match_the_reference_and_override_the_default():
    model = model64(CONFIGS["gpt2"], seed=3)
    ids = torch.randint(0, V, (2, 6), generator=torch.Generator().manual_seed(1))
    positions = torch.tensor([[3, 4, 5, 6, 7, 8], [0, 2, 4, 6, 8, 10]])
    out = model(ids, positions=positions).logits
    assert_rel(out, reference_logits(model, ids, positions=positions))
    assert not torch.allclose(out, model(ids).logits)


# ---- padding and positions ------------------------------------------------------------------------------------


def test_positions_count_real_tokens_only():
    valid = torch.tensor([[False, False, True, True, True], [True, True, True, True, True]])
    assert positions_from_valid(valid).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    assert positions_from_valid(valid).tolist() == ref.positions_from_valid(valid.numpy()).tolist()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_left_padded_batch_gives_each_prompt_its_logits_alone(name):
    model = model64(CONFIGS[name], seed=4)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    batched = model(ids, valid=valid).logits  # (B, T, V)
    for b, prompt in enumerate(PROMPTS):
        alone = model(torch.tensor([prompt])).logits[0]  # (t_b, V)
        torch.testing.assert_close(batched[b, ids.shape[1] - len(prompt) :], alone, rtol=1e-12, atol=1e-12)


def test_right_padding_leaves_real_positions_unchanged():
    model = model64(CONFIGS["llama-half"], seed=5)
    ids = torch.tensor([[4, 5, 6, 0, 0], [7, 8, 9, 10, 11]])
    valid = ids != 0
    torch.testing.assert_close(model(ids, valid=valid).logits[0, :3], model(ids[:1, :3]).logits[0], rtol=0, atol=1e-12)


def test_padded_query_rows_are_finite_even_when_a_row_is_all_padding():
    model = model64(CONFIGS["gpt2"], seed=6)
    ids = torch.tensor([[0, 0, 0, 0], [0, 0, 3, 4]])
    valid = ids != 0  # row 0 has no real token at all
    out = model(ids, valid=valid, return_attention=True)
    assert torch.isfinite(out.logits).all()
    for w in out.attentions:  # a padded query with no real token at or before it attends to nothing
        assert torch.equal(w[0], torch.zeros_like(w[0]))
        assert torch.equal(w[1, :, :2], torch.zeros_like(w[1, :, :2]))
        torch.testing.assert_close(w[1, :, 2:].sum(-1), torch.ones(w.shape[1], 2, dtype=w.dtype))


def test_attention_mask_and_pad_id_give_the_same_mask_as_valid():
    ids, valid = left_pad(PROMPTS, pad_id=0)
    model = model64(CONFIGS["gpt2"], seed=7)
    expected = model(ids, valid=valid).logits
    torch.testing.assert_close(model(ids, attention_mask=valid.long()).logits, expected, rtol=0, atol=0)
    with_pad = model64(dataclasses.replace(CONFIGS["gpt2"], pad_id=0), seed=7)
    torch.testing.assert_close(with_pad(ids).logits, expected, rtol=0, atol=0)
    assert not torch.allclose(model(ids).logits, expected)  # without a mask the padding is attended to


# ---- causality -----------------------------------------------------------------------------------------------


@given(
    name=st.sampled_from(list(CONFIGS)),
    t=st.integers(0, 6),
    seed=st.integers(0, 2**16),
)
def test_appending_or_changing_future_tokens_never_changes_earlier_logits(name, t, seed):
    model = model64(CONFIGS[name], seed=8)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (2, 7), generator=g)
    changed = ids.clone()
    shift = torch.randint(1, V, changed[:, t + 1 :].shape, generator=g)
    changed[:, t + 1 :] = (changed[:, t + 1 :] + shift) % V  # every later token is different
    longer = torch.cat([ids, torch.randint(0, V, (2, 3), generator=g)], dim=1)
    base = model(ids).logits
    torch.testing.assert_close(model(changed).logits[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-12)
    torch.testing.assert_close(model(longer).logits[:, :7], base, rtol=0, atol=1e-12)
    if t < 6:  # while the changed positions themselves do see the change
        assert not torch.allclose(model(changed).logits[:, t + 1 :], base[:, t + 1 :])


# ---- head tying, parameter count, initialisation ------------------------------------------------------------


def test_gpt2_small_has_124_439_808_parameters_with_the_tied_head():
    with torch.device("meta"):  # no memory: shapes only
        tied = GPT(GPTConfig.gpt2_small())
        untied = GPT(GPTConfig.gpt2_small(tie_head=False))
    assert tied.num_parameters() == 124_439_808
    assert sum(p.numel() for p in tied.parameters()) == 124_439_808
    assert untied.num_parameters() == 124_439_808 + 50_257 * 768
    assert tied.num_parameters(exclude_position=True) == 124_439_808 - 1024 * 768


def test_tied_head_is_the_token_embedding_and_gets_both_gradients():
    model = GPT(CONFIGS["gpt2"])
    assert model.lm_head.weight is model.token.weight
    untied = GPT(CONFIGS["learned-rms-relu-untied"])
    assert untied.lm_head.weight is not untied.token.weight
    ids = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(0))
    model(ids, labels=ids).loss.backward()
    g_tied = model.token.weight.grad.clone()
    # The same loss with the two uses separated: the tied gradient is their sum.
    separate = GPT(dataclasses.replace(CONFIGS["gpt2"], tie_head=False))
    separate.load_state_dict(model.state_dict())
    separate(ids, labels=ids).loss.backward()
    torch.testing.assert_close(g_tied, separate.token.weight.grad + separate.lm_head.weight.grad)


def test_gpt2_initialisation_scales_the_residual_projections():
    config = GPTConfig.small(n_layers=8)
    model = GPT(config)
    std = config.initializer_range
    block = model.decoder.layers[0]
    for w, expected in (
        (block.self_attn.q_proj.weight, std),
        (block.ff.w1.weight, std),
        (model.token.weight, std),
        (model.position.weight, std),
        (block.self_attn.out_proj.weight, std / math.sqrt(2 * config.n_layers)),
        (block.ff.w2.weight, std / math.sqrt(2 * config.n_layers)),
    ):
        assert abs(w.std().item() / expected - 1) < 0.05, (w.shape, w.std().item(), expected)
    assert torch.equal(block.self_attn.q_proj.bias, torch.zeros_like(block.self_attn.q_proj.bias))
    assert torch.equal(block.norm1.weight, torch.ones_like(block.norm1.weight))


# ---- loss ---------------------------------------------------------------------------------------------------


def test_loss_shifts_labels_inside_and_ignores_minus_100():
    model = model64(CONFIGS["llama-half"], seed=9)
    ids = torch.randint(0, V, (3, 6), generator=torch.Generator().manual_seed(3))
    labels = ids.clone()
    labels[0, 2] = labels[2, 5] = -100
    out = model(ids, labels=labels)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected, rtol=1e-12, atol=0)
    unshifted = F.cross_entropy(out.logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)
    assert not torch.isclose(out.loss, unshifted)


def test_loss_ignores_predictions_made_at_padded_positions():
    model = model64(CONFIGS["gpt2"], seed=10)
    ids, valid = left_pad(PROMPTS, pad_id=0)
    labels = torch.where(valid, ids, torch.full_like(ids, -100))
    out = model(ids, valid=valid, labels=labels)
    # Nothing predicts a row's first real token: -100 there as well gives the same loss.
    first_real = labels.clone()
    first_real[torch.arange(3), valid.long().argmax(dim=1)] = -100
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, V), first_real[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected, rtol=1e-12, atol=0)


# ---- dropout sites (GPT-2: embeddings, attention weights, residual branches) --------------------------------


@pytest.mark.parametrize("site", ["embedding_dropout", "attention_dropout", "dropout"])
def test_each_dropout_site_acts_in_training_only(site):
    model = randomize_(GPT(dataclasses.replace(CONFIGS["gpt2"], **{site: 0.5})), seed=11)
    ids = torch.randint(0, V, (2, 6), generator=torch.Generator().manual_seed(4))
    model.eval()
    torch.testing.assert_close(model(ids).logits, model(ids).logits, rtol=0, atol=0)
    reference = model(ids).logits
    model.train()
    torch.manual_seed(0)
    assert not torch.allclose(model(ids).logits, reference)


def test_dropout_modules_sit_where_gpt2_puts_them():
    model = GPT(GPTConfig.tiny(dropout=0.1, embedding_dropout=0.2, attention_dropout=0.3))
    assert model.dropout.p == 0.2
    for block in model.decoder.layers:
        assert block.dropout.p == 0.1  # resid_pdrop, on both sub-layer outputs
        assert block.self_attn.dropout == 0.3  # attn_pdrop, on the attention weights
        assert block.ff.dropout.p == 0.0  # GPT-2 has no dropout inside the MLP


# ---- gradients ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpt2", "llama-interleaved"])
def test_gradcheck_through_a_tiny_model(name):
    config = dataclasses.replace(CONFIGS[name], vocab_size=7, d_model=4, n_heads=2, n_layers=1, d_ff=6)
    model = model64(config, seed=12)
    ids = torch.tensor([[1, 2, 3], [0, 4, 5]])
    valid = torch.tensor([[True, True, True], [False, True, True]])
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for _, p in model.named_parameters())

    def loss(*values):
        out = torch.func.functional_call(model, dict(zip(names, values, strict=True)), (ids,), {"valid": valid})
        return out.logits.sin().sum()

    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-6)


# ---- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (dict(d_model=30, n_heads=4), ValueError, "not divisible"),
        (dict(positional="sinusoidal"), ValueError, "positional"),
        (dict(positional="rope", d_model=12, n_heads=4), ValueError, "even"),
        (dict(norm="batch"), ValueError, "norm"),
        (dict(activation="tanh"), ValueError, "activation"),
        (dict(rope_convention="neox"), ValueError, "rope_convention"),
        (dict(dropout=1.0), ValueError, "dropout"),
        (dict(pad_id=64), ValueError, "pad_id"),
        (dict(tie_head=1), TypeError, "tie_head"),
        (dict(n_layers=0), ValueError, "n_layers"),
    ],
)
def test_config_validation(overrides, error, match):
    with pytest.raises(error, match=match):
        GPTConfig.tiny(**overrides)


def test_forward_errors_name_the_argument():
    model = GPT(GPTConfig.tiny(max_len=8))
    ids = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="token id 64 is outside the vocabulary of size 64"):
        model(torch.full((1, 3), 64))
    with pytest.raises(ValueError, match="sequence length 9 exceeds max_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="valid must be a bool"):
        model(ids, valid=torch.ones(2, 4))
    with pytest.raises(ValueError, match="either valid"):
        model(ids, valid=torch.ones(2, 4, dtype=torch.bool), attention_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match="labels must have the shape"):
        model(ids, labels=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"positions must have shape"):
        model(ids, positions=torch.arange(5))
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT(dict(vocab_size=3))
