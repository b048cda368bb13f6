"""BERT (models/bert.py, heads.py, pooling.py, BertConfig): NumPy reference parity, padding, tying, loss, gradients.

Hugging Face parity lives in test_interop_hf_bert.py, the real all-MiniLM-L6-v2 checkpoint in
test_minilm_checkpoint.py.
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

from transformer_from_scratch import masks, pooling
from transformer_from_scratch.config import BertConfig, BlockConfig
from transformer_from_scratch.heads import MLMHead, NSPHead, pretraining_loss
from transformer_from_scratch.models import BertForPreTraining, BertModel
from transformer_from_scratch.reference import bert as ref
from transformer_from_scratch.stacks import Encoder

B, T = 3, 7
VALID = masks.padding_mask_from_lengths([7, 4, 2], max_len=T)  # (B, T), True at real tokens


def tiny(**overrides) -> BertConfig:
    """Small enough for the loop-based NumPy reference: V=29, D=12, H=3, 2 layers, 3 segment types."""
    base = dict(vocab_size=29, d_model=12, n_heads=3, d_ff=20, max_len=16, type_vocab_size=3)
    return BertConfig.tiny(**{**base, **overrides})


def ids(seed: int, shape=(B, T), high: int = 29, low: int = 0) -> torch.Tensor:
    return torch.randint(low, high, shape, generator=torch.Generator().manual_seed(seed))


def selected_labels(input_ids: torch.Tensor, valid: torch.Tensor, seed: int, p: float = 0.4) -> torch.Tensor:
    """MLM labels: the original token at ~p of the real positions (at least one per row), -100 elsewhere."""
    g = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(input_ids.shape, generator=g) < p) & valid
    chosen[:, 0] = True
    return torch.where(chosen, input_ids, torch.full_like(input_ids, -100))


def numpy_state(module: torch.nn.Module) -> dict:
    return {k: v.detach().double().numpy() for k, v in module.state_dict().items()}


# ---- NumPy reference parity -------------------------------------------------------------------------------


@pytest.mark.parametrize("padded", [False, True], ids=["no-padding", "padded"])
def test_pretraining_forward_matches_reference_float64(padded):
    model = randomize_(BertForPreTraining(tiny()), 1).double().eval()
    x, seg = ids(2), ids(3, high=3)
    valid = VALID if padded else torch.ones(B, T, dtype=torch.bool)
    mlm_labels, nsp_labels = selected_labels(x, valid, 4), torch.tensor([0, 1, 1])
    with torch.no_grad():
        kwargs = dict(token_type_ids=seg, valid=valid, mlm_labels=mlm_labels, nsp_labels=nsp_labels)
        out = model(x, return_attention=True, **kwargs)
    mlm, nsp, (h, pooled, hidden, attentions) = ref.bert_pretraining(
        x.numpy(), numpy_state(model), n_heads=3, n_layers=2, token_type_ids=seg.numpy(), valid=valid.numpy()
    )
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.mlm_logits.detach().numpy(), mlm, **tol)
    np.testing.assert_allclose(out.nsp_logits.detach().numpy(), nsp, **tol)
    np.testing.assert_allclose(out.bert.last_hidden_state.detach().numpy(), h, **tol)
    np.testing.assert_allclose(out.bert.pooled.detach().numpy(), pooled, **tol)
    assert len(out.bert.hidden_states) == 3 and len(out.bert.attentions) == 2
    for ours, theirs in zip(out.bert.hidden_states, hidden):
        np.testing.assert_allclose(ours.detach().numpy(), theirs, **tol)
    for ours, theirs in zip(out.bert.attentions, attentions):
        np.testing.assert_allclose(ours.detach().numpy(), theirs, **tol)
    expected_mlm = ref.cross_entropy(mlm, mlm_labels.numpy())
    expected_nsp = ref.cross_entropy(nsp, nsp_labels.numpy())
    np.testing.assert_allclose(float(out.mlm_loss), expected_mlm, rtol=1e-10)
    np.testing.assert_allclose(float(out.nsp_loss), expected_nsp, rtol=1e-10)
    np.testing.assert_allclose(float(out.loss), expected_mlm + expected_nsp, rtol=1e-10)


def test_float32_matches_reference():
    model = randomize_(BertForPreTraining(tiny()), 5).eval()
    x, seg = ids(6), ids(7, high=3)
    with torch.no_grad():
        out = model(x, token_type_ids=seg, valid=VALID)
    mlm, nsp, _ = ref.bert_pretraining(
        x.numpy(), numpy_state(model), n_heads=3, n_layers=2, token_type_ids=seg.numpy(), valid=VALID.numpy()
    )
    assert out.mlm_logits.dtype == torch.float32
    np.testing.assert_allclose(out.mlm_logits.numpy(), mlm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.nsp_logits.numpy(), nsp, rtol=1e-5, atol=1e-5)


def test_layer_norm_eps_is_the_configs_and_matters():
    """BERT's ε = 1e-12 reaches every LayerNorm; with nn.LayerNorm's 1e-5 the reference disagrees."""
    model = randomize_(BertForPreTraining(tiny()), 8).double().eval()
    norms = [m for m in model.modules() if type(m).__name__ == "LayerNorm"]
    assert len(norms) == 1 + 2 * 2 + 1 and all(m.eps == 1e-12 for m in norms)
    with torch.no_grad():  # a small-variance input makes ε visible
        model.bert.embeddings.token.weight.mul_(1e-3)
        model.bert.embeddings.position.weight.mul_(1e-3)
        model.bert.embeddings.segment.weight.mul_(1e-3)
    x = ids(9)
    out = model(x).mlm_logits.detach().numpy()
    right = ref.bert_pretraining(x.numpy(), numpy_state(model), n_heads=3, n_layers=2, eps=1e-12)[0]
    wrong = ref.bert_pretraining(x.numpy(), numpy_state(model), n_heads=3, n_layers=2, eps=1e-5)[0]
    np.testing.assert_allclose(out, right, rtol=1e-10, atol=1e-12)
    assert np.abs(out - wrong).max() > 1e-3


# ---- masks and padding ---------------------------------------------------------------------------------------


def test_valid_attention_mask_and_pad_id_give_the_same_result():
    model = randomize_(BertModel(tiny(pad_id=0)), 10).double().eval()
    x = ids(11, low=1)
    x[~VALID] = 0
    by_valid = model(x, valid=VALID).last_hidden_state
    by_hf_mask = model(x, attention_mask=VALID.long()).last_hidden_state
    by_pad_id = model(x).last_hidden_state
    torch.testing.assert_close(by_hf_mask, by_valid, rtol=0, atol=0)
    torch.testing.assert_close(by_pad_id, by_valid, rtol=0, atol=0)
    no_mask = BertModel(tiny()).double().eval()
    no_mask.load_state_dict(model.state_dict())
    assert not torch.allclose(no_mask(x).last_hidden_state[VALID], by_valid[VALID]), "padding must matter unmasked"


@given(seed=st.integers(0, 2**31 - 1), extra=st.integers(1, 4))
def test_padding_never_changes_real_token_outputs(seed, extra):
    """Pad tokens (any ids, any segments) and any amount of extra padding leave every real output unchanged."""
    model = randomize_(BertForPreTraining(tiny(max_len=16)), seed).double().eval()
    x, seg = ids(seed + 1), ids(seed + 2, high=3)
    out = model(x, token_type_ids=seg, valid=VALID)

    x2, seg2 = x.clone(), seg.clone()
    x2[~VALID] = ids(seed + 3)[~VALID]
    seg2[~VALID] = (seg2[~VALID] + 1) % 3
    longer = torch.cat([x2, ids(seed + 4, (B, extra))], dim=1)  # (B, T + extra): more padding on the right
    longer_seg = torch.cat([seg2, ids(seed + 5, (B, extra), high=3)], dim=1)
    longer_valid = torch.cat([VALID, torch.zeros(B, extra, dtype=torch.bool)], dim=1)
    out2 = model(longer, token_type_ids=longer_seg, valid=longer_valid)

    tol = dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out2.bert.last_hidden_state[:, :T][VALID], out.bert.last_hidden_state[VALID], **tol)
    torch.testing.assert_close(out2.mlm_logits[:, :T][VALID], out.mlm_logits[VALID], **tol)
    torch.testing.assert_close(out2.nsp_logits, out.nsp_logits, **tol)
    emb, emb2 = (
        pooling.sentence_embedding(o.bert.last_hidden_state, v) for o, v in ((out, VALID), (out2, longer_valid))
    )
    torch.testing.assert_close(emb2, emb, **tol)


def test_return_attention_weights_are_probabilities_over_real_keys():
    model = randomize_(BertModel(tiny(n_layers=3)), 12).double().eval()
    x = ids(13)
    out = model(x, valid=VALID, return_attention=True)
    plain = model(x, valid=VALID)
    assert plain.attentions is None
    torch.testing.assert_close(out.last_hidden_state, plain.last_hidden_state, rtol=0, atol=0)
    assert len(out.attentions) == 3
    for w in out.attentions:
        assert w.shape == (B, 3, T, T)
        torch.testing.assert_close(w.sum(-1), torch.ones(B, 3, T, dtype=torch.float64))
        assert (w.permute(0, 3, 1, 2)[~VALID] == 0).all(), "attended to a padded key"
        assert (w.permute(0, 3, 1, 2)[VALID] > 0).any()
    # the first layer's weights are MultiHeadAttention's on the embeddings
    emb = model.embeddings(x, torch.zeros_like(x))
    _, expected = model.encoder.layers[0].self_attn(emb, allowed=masks.key_padding(VALID), return_weights=True)
    torch.testing.assert_close(out.attentions[0], expected, rtol=0, atol=0)


def test_hidden_states_are_the_embeddings_then_each_block():
    model = randomize_(BertModel(tiny(n_layers=3)), 14).double().eval()
    x, seg = ids(15), ids(16, high=3)
    out = model(x, token_type_ids=seg, valid=VALID)
    allowed = masks.key_padding(VALID)
    h = model.embeddings(x, seg)
    torch.testing.assert_close(out.hidden_states[0], h, rtol=0, atol=0)
    for layer, expected in zip(model.encoder.layers, out.hidden_states[1:]):
        h = layer(h, allowed=allowed)
        torch.testing.assert_close(expected, h, rtol=0, atol=0)
    assert out.hidden_states[-1] is out.last_hidden_state
    torch.testing.assert_close(out.pooled, torch.tanh(model.pooler.dense(h[:, 0])), rtol=0, atol=0)


def test_encoder_hidden_states_and_weights_change_no_number():
    """The stack's output used by BERT: hidden states before the final norm; asking for more changes nothing."""
    enc = randomize_(Encoder(BlockConfig(12, 3, 20), 2, final_norm=True), 17).double().eval()
    x = torch.randn(2, 5, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(18))
    out = enc(x)
    assert out.hidden_states is None and out.attentions is None and out.cross_attentions is None
    with_w = enc(x, return_attention=True)
    with_h = enc(x, return_hidden_states=True)
    with_wh = enc(x, return_attention=True, return_hidden_states=True)
    for other in (with_w, with_h, with_wh):
        torch.testing.assert_close(other.last_hidden_state, out.last_hidden_state, rtol=0, atol=0)
    assert len(with_w.attentions) == len(with_wh.attentions) == 2
    assert len(with_h.hidden_states) == len(with_wh.hidden_states) == 3
    hidden = with_h.hidden_states
    assert hidden[0] is x
    torch.testing.assert_close(hidden[1], enc.layers[0](x), rtol=0, atol=0)
    torch.testing.assert_close(out.last_hidden_state, enc.final_norm(hidden[-1]), rtol=0, atol=0)
    assert not torch.allclose(out.last_hidden_state, hidden[-1])


# ---- tied MLM decoder ------------------------------------------------------------------------------------------


def test_mlm_decoder_is_the_word_embedding_parameter():
    model = BertForPreTraining(tiny())
    token = model.bert.embeddings.token.weight
    assert model.mlm.decoder.weight is token
    assert model.mlm.decoder.weight.data_ptr() == token.data_ptr()
    names = [n for n, p in model.named_parameters() if p is token]
    assert names == ["bert.embeddings.token.weight"], "parameters() must list the shared matrix once"
    assert {"bert.embeddings.token.weight", "mlm.decoder.weight"} <= set(model.state_dict())
    model = model.double()  # casting keeps the tie
    assert model.mlm.decoder.weight is model.bert.embeddings.token.weight
    with torch.no_grad():
        model.bert.embeddings.token.weight[3, 0] = 123.0
    assert float(model.mlm.decoder.weight.detach()[3, 0]) == 123.0


def test_the_tied_gradient_is_the_sum_of_both_uses():
    """One tensor receives both gradients: d loss/d E = (via the input lookup) + (via the output scores)."""
    tied = randomize_(BertForPreTraining(tiny()), 19).double()
    x = ids(20)
    labels = selected_labels(x, VALID, 21)
    tied(x, valid=VALID, mlm_labels=labels).loss.backward()
    grad = tied.bert.embeddings.token.weight.grad
    assert tied.mlm.decoder.weight.grad is grad

    untied = BertForPreTraining(tiny()).double()
    untied.load_state_dict(tied.state_dict())
    untied.mlm.decoder.weight = torch.nn.Parameter(tied.bert.embeddings.token.weight.detach().clone())
    untied(x, valid=VALID, mlm_labels=labels).loss.backward()
    via_input, via_output = untied.bert.embeddings.token.weight.grad, untied.mlm.decoder.weight.grad
    assert via_input.abs().sum() > 0 and via_output.abs().sum() > 0
    torch.testing.assert_close(grad, via_input + via_output, rtol=1e-12, atol=1e-14)


def test_untied_mlm_head_and_head_errors():
    head = MLMHead(12, 29)
    assert head.decoder.weight.shape == (29, 12) and 0.01 < float(head.decoder.weight.detach().std()) < 0.03
    with pytest.raises(ValueError, match=r"\(V, D\) = \(29, 12\)"):
        MLMHead(12, 29, embedding=torch.nn.Parameter(torch.zeros(30, 12)))
    with pytest.raises(ValueError, match="d_model=12"):
        head(torch.zeros(2, 3, 13))
    with pytest.raises(ValueError, match="pooled"):
        NSPHead(12)(torch.zeros(2, 13))


# ---- the pre-training loss -------------------------------------------------------------------------------------


@given(seed=st.integers(0, 2**31 - 1), p=st.floats(0.05, 0.9))
def test_mlm_loss_counts_only_the_selected_positions(seed, p):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, 29, generator=g, dtype=torch.float64, requires_grad=True)
    targets = ids(seed + 1)
    labels = selected_labels(targets, VALID, seed + 2, p)
    chosen = labels != -100
    loss, mlm_loss, nsp_loss = pretraining_loss(logits, labels)
    assert nsp_loss is None and loss is mlm_loss
    # by hand: the mean of -log softmax at the selected positions only
    per_position = -F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(loss, per_position[chosen].mean(), rtol=1e-12, atol=1e-12)
    # anything at an ignored position — its logits — leaves the loss unchanged and gets zero gradient
    noisy = logits.detach().clone()
    noisy[~chosen] += 10.0 * torch.randn(int((~chosen).sum()), 29, generator=g, dtype=torch.float64)
    torch.testing.assert_close(pretraining_loss(noisy, labels)[0], loss, rtol=1e-12, atol=1e-12)
    loss.backward()
    assert (logits.grad[~chosen] == 0).all()
    assert (logits.grad[chosen].abs().sum(-1) > 0).all()


def test_loss_is_the_sum_of_mlm_and_nsp_and_either_alone_works():
    model = randomize_(BertForPreTraining(tiny()), 22).double().eval()
    x = ids(23)
    labels, nsp = selected_labels(x, VALID, 24), torch.tensor([1, 0, 1])
    both = model(x, valid=VALID, mlm_labels=labels, nsp_labels=nsp)
    only_mlm = model(x, valid=VALID, mlm_labels=labels)
    only_nsp = model(x, valid=VALID, nsp_labels=nsp)
    none = model(x, valid=VALID)
    assert none.loss is None and none.mlm_loss is None and none.nsp_loss is None
    torch.testing.assert_close(both.loss, only_mlm.loss + only_nsp.loss, rtol=1e-12, atol=0)
    assert only_mlm.nsp_loss is None and only_nsp.mlm_loss is None
    expected_nsp = F.cross_entropy(both.nsp_logits, nsp)
    torch.testing.assert_close(both.nsp_loss, expected_nsp, rtol=1e-12, atol=0)
    expected_mlm = F.cross_entropy(both.mlm_logits.reshape(-1, 29), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(both.mlm_loss, expected_mlm, rtol=1e-12, atol=0)


def test_an_mlm_batch_with_nothing_selected_gives_zero_not_nan():
    """Deviation inherited from functional.cross_entropy: F.cross_entropy would give NaN."""
    model = BertForPreTraining(tiny())
    out = model(ids(25), mlm_labels=torch.full((B, T), -100))
    assert float(out.loss.detach()) == 0.0
    out.loss.backward()
    assert all(p.grad is None or (p.grad == 0).all() for p in model.parameters())


def test_loss_argument_errors():
    model = BertForPreTraining(tiny())
    x = ids(26)
    with pytest.raises(ValueError, match=r"mlm_labels must have shape \(3, 7\)"):
        model(x, mlm_labels=torch.zeros(3, 6, dtype=torch.long))
    with pytest.raises(TypeError, match="mlm_labels must be an integer tensor"):
        model(x, mlm_labels=torch.zeros(3, 7))
    with pytest.raises(ValueError, match=r"nsp_labels must have shape \(3,\)"):
        model(x, nsp_labels=torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"nsp_labels must be 0 \(IsNext\) or 1 \(NotNext\)"):
        model(x, nsp_labels=torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="target 29 at position"):
        model(x, mlm_labels=torch.full((3, 7), 29))
    with pytest.raises(ValueError, match="needs mlm_labels, nsp_labels or both"):
        pretraining_loss()


# ---- gradients -------------------------------------------------------------------------------------------------


def test_gradcheck_through_a_tiny_bert():
    """torch.autograd.gradcheck of the pre-training loss in float64 w.r.t. parameters of every part."""
    config = BertConfig.tiny(vocab_size=11, d_model=8, n_heads=2, n_layers=1, d_ff=6, max_len=8, type_vocab_size=2)
    model = randomize_(BertForPreTraining(config), 27).double().eval()
    x = ids(28, (2, 5), high=11)
    valid = masks.padding_mask_from_lengths([5, 3], max_len=5)
    seg = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
    labels = selected_labels(x, valid, 29, p=0.5)
    nsp = torch.tensor([0, 1])
    names = [
        "bert.embeddings.token.weight",  # tied: reaches the loss through the lookup and the MLM decoder
        "bert.embeddings.norm.weight",
        "bert.encoder.layers.0.self_attn.q_proj.weight",
        "bert.encoder.layers.0.ff.w1.bias",
        "bert.encoder.layers.0.norm2.bias",
        "bert.pooler.dense.weight",
        "mlm.norm.weight",
        "mlm.bias",
        "nsp.classifier.weight",
    ]
    params = dict(model.named_parameters())
    inputs = tuple(params[n].detach().clone().requires_grad_(True) for n in names)

    def loss(*tensors):
        overrides = dict(zip(names, tensors))
        kwargs = dict(token_type_ids=seg, valid=valid, mlm_labels=labels, nsp_labels=nsp)
        return torch.func.functional_call(model, overrides, (x,), kwargs).loss

    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_every_parameter_receives_a_gradient():
    model = BertForPreTraining(tiny())
    x, seg = ids(30), ids(31, high=3)
    out = model(
        x, token_type_ids=seg, valid=VALID, mlm_labels=selected_labels(x, VALID, 32), nsp_labels=torch.tensor([0, 1, 0])
    )
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} receives no gradient"


# ---- configuration, size, initialisation -----------------------------------------------------------------------


def bert_parameter_count(c: BertConfig, *, pretraining: bool) -> int:
    """By hand (Devlin et al. 2019; chapter 06).

    embeddings:   (V + max_len + type_vocab_size)·D + 2D (LayerNorm)
    each layer:   attention 4(D² + D) + FFN (2DF + F + D) + two LayerNorms 4D
    pooler:       D² + D
    heads:        MLM transform D² + D + 2D, output bias V (decoder = embeddings, not counted again);
                  NSP 2D + 2
    """
    d, f = c.d_model, c.d_ff
    embeddings = (c.vocab_size + c.max_len + c.type_vocab_size) * d + 2 * d
    layer = 4 * (d * d + d) + (2 * d * f + f + d) + 4 * d
    pooler = d * d + d
    heads = (d * d + d + 2 * d + c.vocab_size) + (2 * d + 2)
    return embeddings + c.n_layers * layer + pooler + (heads if pretraining else 0)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # the tied matrix counted once


def test_bert_base_has_110m_parameters():
    c = BertConfig.base()
    sizes = (c.vocab_size, c.d_model, c.n_layers, c.n_heads, c.d_ff, c.max_len, c.type_vocab_size)
    assert sizes == (30_522, 768, 12, 12, 3072, 512, 2)
    assert c.layer_norm_eps == 1e-12 and c.dropout == 0.1 and c.attention_dropout == 0.1 and c.d_head == 64
    with torch.device("meta"):  # shapes only
        encoder, full = BertModel(c), BertForPreTraining(c)
    assert count(encoder) == bert_parameter_count(c, pretraining=False) == 109_482_240
    assert count(full) == bert_parameter_count(c, pretraining=True) == 110_106_428
    assert abs(count(full) - 110e6) / 110e6 < 0.01  # "Total Parameters=110M"


@pytest.mark.parametrize("preset", ["tiny", "mini"])
def test_parameter_count_formula_on_presets(preset):
    c = getattr(BertConfig, preset)()
    assert count(BertModel(c)) == bert_parameter_count(c, pretraining=False)
    assert count(BertForPreTraining(c)) == bert_parameter_count(c, pretraining=True)


def test_presets():
    t, m = BertConfig.tiny(), BertConfig.mini()
    assert (t.d_model, t.n_heads, t.n_layers, t.dropout) == (32, 4, 2, 0.0)
    assert (m.d_model, m.n_heads, m.n_layers, m.d_ff) == (256, 4, 4, 1024)
    assert BertConfig.mini(vocab_size=5000).vocab_size == 5000
    assert BertConfig.base(n_layers=6).n_layers == 6


def test_initialisation_follows_bert():
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.mini(vocab_size=2000))
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert (p == 0).all(), name
        elif "norm" in name:
            assert (p == 1).all(), name
        else:
            assert abs(float(p.detach().std()) - 0.02) < 0.002, f"{name}: std {float(p.detach().std()):.4f}"
    assert model.mlm.decoder.weight is model.bert.embeddings.token.weight


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(d_model=30, n_heads=4), ValueError, "d_model=30 is not divisible by n_heads=4"),
        (dict(vocab_size=0), ValueError, "vocab_size must be ≥ 1"),
        (dict(type_vocab_size=2.0), TypeError, "type_vocab_size must be an int"),
        (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
        (dict(attention_dropout=-0.1), ValueError, "attention_dropout"),
        (dict(layer_norm_eps=0.0), ValueError, "layer_norm_eps must be > 0"),
        (dict(initializer_range="0.02"), TypeError, "initializer_range must be a positive float"),
        (dict(pad_id=100), ValueError, "pad_id=100 is outside the vocabulary"),
        (dict(n_layers=True), TypeError, "n_layers must be an int"),
    ],
)
def test_config_errors_are_actionable(overrides, error, match):
    with pytest.raises(error, match=match):
        BertConfig.tiny(**overrides)


def test_config_is_frozen_and_replace_revalidates():
    c = BertConfig.tiny()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.d_model = 16
    with pytest.raises(ValueError, match="not divisible"):
        dataclasses.replace(c, n_heads=5)


def test_dropout_settings_reach_every_place():
    model = BertForPreTraining(tiny(dropout=0.2, attention_dropout=0.3))
    assert model.bert.embeddings.dropout.p == 0.2
    for layer in model.bert.encoder.layers:
        assert layer.dropout.p == 0.2 and layer.self_attn.dropout == 0.3 and layer.ff.dropout.p == 0.0
        assert layer.ff.activation == "gelu" and layer.norm_first is False
    assert model.bert.encoder.final_norm is None
    x = ids(33)
    torch.testing.assert_close(model.eval()(x).mlm_logits, model(x).mlm_logits)
    assert not torch.allclose(model.train()(x).mlm_logits, model(x).mlm_logits)


# ---- input errors ------------------------------------------------------------------------------------------------


def test_input_errors_are_actionable():
    model = BertModel(tiny())
    x = ids(34)
    with pytest.raises(ValueError, match="input_ids: token id 29 is outside the vocabulary of size 29"):
        model(torch.full((B, T), 29))
    with pytest.raises(ValueError, match="token_type_ids: token id 3 is outside the segment vocabulary of size 3"):
        model(x, token_type_ids=torch.full((B, T), 3))
    with pytest.raises(ValueError, match=r"token_type_ids must have the shape of input_ids \(3, 7\)"):
        model(x, token_type_ids=torch.zeros(B, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="sequence length 17, which exceeds max_len=16"):
        model(ids(35, (B, 17)))
    with pytest.raises(ValueError, match="either valid= .* or attention_mask="):
        model(x, valid=VALID, attention_mask=VALID.long())
    with pytest.raises(TypeError, match="valid must be a bool tensor"):
        model(x, valid=VALID.long())
    with pytest.raises(ValueError, match=r"valid must have the shape of input_ids \(3, 7\)"):
        model(x, valid=VALID[:, :5])
    with pytest.raises(ValueError, match="attention_mask must contain only 0 and 1"):
        model(x, attention_mask=VALID.long() * 2)
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of input_ids"):
        model(x, attention_mask=VALID.long()[:2])
    with pytest.raises(TypeError, match="input_ids must be an integer tensor"):
        model(x.float())
    with pytest.raises(ValueError, match=r"input_ids must have shape \(B, T\)"):
        model(x[0])
    with pytest.raises(TypeError, match="BertConfig"):
        BertModel({"d_model": 12})


# ---- sentence embeddings (pooling.py) --------------------------------------------------------------------------


def test_mean_pool_ignores_padding_and_normalises():
    g = torch.Generator().manual_seed(36)
    hidden = torch.randn(B, T, 5, generator=g, dtype=torch.float64)
    pooled = pooling.mean_pool(hidden, VALID)
    np.testing.assert_allclose(pooled.numpy(), ref.mean_pool(hidden.numpy(), VALID.numpy()), rtol=1e-12)
    garbage = hidden.clone()
    garbage[~VALID] = 1e6  # whatever sits at padded positions
    torch.testing.assert_close(pooling.mean_pool(garbage, VALID), pooled, rtol=0, atol=0)
    assert not torch.allclose(hidden.mean(1), pooled), "a plain mean would include padding"
    emb = pooling.sentence_embedding(hidden, VALID)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(B, dtype=torch.float64))
    torch.testing.assert_close(emb, F.normalize(pooled, dim=-1), rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(pooling.sentence_embedding(hidden, VALID, normalize=False), pooled, rtol=0, atol=0)
    empty = pooling.sentence_embedding(hidden, torch.zeros(B, T, dtype=torch.bool))
    assert (empty == 0).all(), "a row without real tokens must give zeros, not NaN"
    sim = pooling.cosine_similarity_matrix(emb)
    torch.testing.assert_close(sim, emb @ emb.T)
    torch.testing.assert_close(torch.diagonal(sim), torch.ones(B, dtype=torch.float64))
    expected = F.cosine_similarity(pooled[:, None], pooled[None, :], dim=-1)
    torch.testing.assert_close(pooling.cosine_similarity_matrix(pooled), expected)


def test_pooling_errors():
    with pytest.raises(TypeError, match="valid must be a bool"):
        pooling.mean_pool(torch.zeros(2, 3, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"valid must have shape \(B, T\) = \(2, 3\)"):
        pooling.mean_pool(torch.zeros(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"shape \(B, T, D\)"):
        pooling.mean_pool(torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool))


def test_tanh_pooler_reads_only_the_cls_position():
    model = randomize_(BertModel(tiny()), 37).double().eval()
    h = torch.randn(B, T, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(38))
    h2 = h.clone()
    h2[:, 1:] += 1.0
    with torch.no_grad():
        pooled = model.pooler(h)
        torch.testing.assert_close(model.pooler(h2), pooled, rtol=0, atol=0)
        expected = math.tanh(float(model.pooler.dense(h[0, 0])[0]))
    assert float(pooled.abs().max()) < 1.0
    assert math.isclose(float(pooled[0, 0]), expected, rel_tol=1e-12)
    h3 = h.clone()
    h3[:, 0] += 1.0
    assert not torch.allclose(model.pooler(h3).detach(), pooled)
