"""Three implementations, one switch: impl="plain" (the textbook code of functional.py), "kernels" (hand-written
backward passes, kernels.py) and "torch" (PyTorch's fused built-ins, fused.py) compute the same function.

In float64 the three agree to 1e-10 in values and in every gradient, fully masked attention rows give zeros (never
NaN) on every path, and the choice reaches every layer of a model through its config. The textbook code is also
what runs when nothing is chosen.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from transformer_from_scratch import (
    GPT,
    BertConfig,
    BertForPreTraining,
    EncoderDecoder,
    GPTConfig,
    TransformerConfig,
    masks,
)
from transformer_from_scratch import functional as tf

F64 = {"rtol": 1e-10, "atol": 1e-12}
OTHERS = ["kernels", "torch"]


def randn(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def values_and_gradients(fn, inputs: list[torch.Tensor], seed: int = 99):
    """fn(*inputs) and the gradients of a fixed random projection of it with respect to every input."""
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*leaves)
    outs = out if isinstance(out, tuple) else (out,)
    loss = sum((o * randn(seed + i, *o.shape)).sum() for i, o in enumerate(outs))
    grads = torch.autograd.grad(loss, leaves)
    return [o.detach() for o in outs], list(grads)


def assert_same_function(fn, inputs: list[torch.Tensor], impl: str) -> None:
    """fn(..., impl=impl) equals fn(..., impl="plain") in values and gradients, and neither holds a NaN."""
    want_out, want_grads = values_and_gradients(lambda *x: fn(*x, impl="plain"), inputs)
    got_out, got_grads = values_and_gradients(lambda *x: fn(*x, impl=impl), inputs)
    for got, want in zip([*got_out, *got_grads], [*want_out, *want_grads]):
        assert not torch.isnan(got).any() and not torch.isnan(want).any()
        assert_close(got, want, **F64)
    assert any(g.abs().max() > 1e-3 for g in want_grads), "the gradients are not trivially zero"


# ---- function by function -----------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", OTHERS)
@pytest.mark.parametrize("return_weights", [False, True])
@pytest.mark.parametrize("mask", ["none", "causal", "padding+empty row", "per-head"])
def test_attention_is_one_function(impl, return_weights, mask):
    b, h, t, s = 2, 3, 5, 7
    q, k, v, bias = randn(1, b, h, t, 4), randn(2, b, h, s, 4), randn(3, b, h, s, 6), randn(4, 1, h, t, s)
    allowed = {
        "none": None,
        "causal": masks.causal_mask(t, s),
        "padding+empty row": torch.arange(s) < torch.tensor([[[[7]]], [[[0]]]]),  # (B,1,1,S): row 1 sees nothing
        "per-head": randn(5, b, h, t, s) > 0,
    }[mask]

    def attention(q, k, v, bias, impl):
        return tf.scaled_dot_product_attention(
            q, k, v, allowed=allowed, bias=bias, return_weights=return_weights, impl=impl
        )

    assert_same_function(attention, [q, k, v, bias], impl)
    if mask == "padding+empty row":
        out = attention(q, k, v, bias, impl)
        out = out[0] if return_weights else out
        assert (out[1] == 0).all(), "a query with nothing allowed gets a zero output"


@pytest.mark.parametrize("impl", OTHERS)
def test_attention_with_keys_and_values_shared_by_the_heads(impl):
    q, k, v = randn(6, 2, 4, 5, 8), randn(7, 2, 1, 6, 8), randn(8, 2, 1, 6, 8)  # one k/v head for 4 query heads

    def attention(q, k, v, impl):
        return tf.scaled_dot_product_attention(q, k, v, allowed=masks.causal_mask(5, 6), impl=impl)

    assert_same_function(attention, [q, k, v], impl)


@pytest.mark.parametrize("impl", OTHERS)
@pytest.mark.parametrize("return_weights", [False, True])
def test_attention_with_a_scale_is_one_function(impl, return_weights):
    """scale= (T5: 1, no 1/√Dh) reaches every implementation, with the padding mask and a bias."""
    q, k, v, bias = randn(21, 2, 3, 5, 4), randn(22, 2, 3, 6, 4), randn(23, 2, 3, 6, 4), randn(24, 1, 3, 5, 6)
    allowed = torch.arange(6) < torch.tensor([[[[6]]], [[[4]]]])  # (B,1,1,S)

    def attention(q, k, v, bias, impl):
        out = tf.scaled_dot_product_attention(
            q, k, v, allowed=allowed, bias=bias, scale=1.0, return_weights=return_weights, impl=impl
        )
        return out

    assert_same_function(attention, [q, k, v, bias], impl)
    unscaled = attention(q, k, v, bias, impl)
    default = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, bias=bias, return_weights=return_weights)
    assert not torch.allclose(unscaled[0] if return_weights else unscaled, default[0] if return_weights else default)


def test_attention_dropout_draws_the_same_weights_in_plain_and_kernels():
    """With a generator, plain and kernels drop exactly the same weights (impl="torch" refuses a generator)."""
    q, k, v = randn(9, 2, 2, 6, 4), randn(10, 2, 2, 6, 4), randn(11, 2, 2, 6, 4)

    def attention(q, k, v, impl):
        g = torch.Generator().manual_seed(5)
        return tf.scaled_dot_product_attention(q, k, v, dropout_p=0.4, generator=g, impl=impl)

    assert_same_function(attention, [q, k, v], "kernels")
    with pytest.raises(ValueError, match="generator"):
        attention(q, k, v, "torch")


@pytest.mark.parametrize("impl", OTHERS)
def test_masked_softmax_is_one_function(impl):
    scores = randn(12, 2, 3, 5, 6, scale=3.0)
    allowed = randn(13, 2, 1, 5, 6) > -0.3
    allowed[0, 0, 2] = False  # a row with nothing allowed

    def softmax(x, impl):
        return tf.masked_softmax(x, allowed, impl=impl)

    assert_same_function(softmax, [scores], impl)
    assert (softmax(scores, impl)[0, :, 2] == 0).all()


@pytest.mark.parametrize("impl", OTHERS)
@pytest.mark.parametrize("with_affine", [True, False])
def test_layer_norm_is_one_function(impl, with_affine):
    x, w, b = randn(14, 3, 4, 10, scale=5.0) + 3.0, randn(15, 10), randn(16, 10)
    if with_affine:
        assert_same_function(lambda x, w, b, impl: tf.layer_norm(x, w, b, 1e-5, impl=impl), [x, w, b], impl)
    else:
        assert_same_function(lambda x, impl: tf.layer_norm(x, None, None, 1e-5, impl=impl), [x], impl)


@pytest.mark.parametrize("impl", OTHERS)
def test_rms_norm_is_one_function(impl):
    x, w = randn(17, 3, 4, 10, scale=2.0), randn(18, 10)
    assert_same_function(lambda x, w, impl: tf.rms_norm(x, w, 1e-6, impl=impl), [x, w], impl)


@pytest.mark.parametrize("impl", OTHERS)
@pytest.mark.parametrize("name", ["relu", "gelu", "gelu_tanh", "silu"])
def test_activations_are_one_function(impl, name):
    x = randn(19, 4, 50, scale=3.0)
    x[0, :3] = torch.tensor([0.0, -12.0, 12.0])  # the kink of ReLU and both tails
    assert_same_function(lambda x, impl: getattr(tf, name)(x, impl=impl), [x], impl)


@pytest.mark.parametrize("impl", OTHERS)
@pytest.mark.parametrize("dim", [-1, 1])
def test_log_softmax_is_one_function(impl, dim):
    x = randn(20, 3, 6, 5, scale=4.0)
    x[0, 1, 2] = float("-inf")  # a masked class
    assert_same_function(lambda x, impl: tf.log_softmax(x, dim=dim, impl=impl), [x], impl)


@pytest.mark.parametrize("impl", OTHERS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_is_one_function(impl, reduction, label_smoothing):
    logits = randn(21, 2, 5, 9, scale=3.0)
    targets = torch.randint(0, 9, (2, 5), generator=torch.Generator().manual_seed(22))
    targets[0, :2] = -100  # ignored targets

    def loss(z, impl):
        return tf.cross_entropy(z, targets, label_smoothing=label_smoothing, reduction=reduction, impl=impl)

    assert_same_function(loss, [logits], impl)


@pytest.mark.parametrize("impl", tf.IMPLS)
def test_cross_entropy_with_every_target_ignored_is_zero_on_every_path(impl):
    logits = randn(23, 2, 3, 5).requires_grad_()
    loss = tf.cross_entropy(logits, torch.full((2, 3), -100), impl=impl)
    loss.backward()
    assert loss.item() == 0.0 and (logits.grad == 0).all()


# ---- the switch ---------------------------------------------------------------------------------------------------


def test_plain_is_the_default_and_use_impl_changes_it_for_a_block_of_code(monkeypatch):
    from transformer_from_scratch import fused, kernels

    calls = []
    monkeypatch.setattr(kernels, "layer_norm", lambda *a: calls.append("kernels") or a[0])
    monkeypatch.setattr(fused, "layer_norm", lambda *a: calls.append("torch") or a[0])
    x = randn(24, 2, 4)
    tf.layer_norm(x, None, None)
    assert calls == []  # the textbook ran
    with tf.use_impl("kernels"):
        tf.layer_norm(x, None, None)
        tf.layer_norm(x, None, None, impl="torch")  # an explicit choice wins
    tf.layer_norm(x, None, None)
    assert calls == ["kernels", "torch"] and tf.resolve_impl(None) == "plain"
    with pytest.raises(ValueError, match=r"impl must be one of \('plain', 'kernels', 'torch'\), got 'fast'"):
        tf.layer_norm(x, None, None, impl="fast")
    with pytest.raises(ValueError, match="impl must be one of"), tf.use_impl("fast"):
        pass


def _model_cases():
    yield "gpt2", lambda impl: GPT(GPTConfig.tiny(impl=impl)), lambda m, ids: m(ids, labels=ids)
    yield "llama", lambda impl: GPT(GPTConfig.llama_tiny(impl=impl)), lambda m, ids: m(ids, labels=ids)
    yield (
        "bert",
        lambda impl: BertForPreTraining(BertConfig.tiny(vocab_size=64, impl=impl)),
        lambda m, ids: m(ids, mlm_labels=ids, nsp_labels=ids[:, 0] % 2),
    )
    yield (
        "encoder-decoder",
        lambda impl: EncoderDecoder(TransformerConfig.tiny(src_vocab_size=64, tgt_vocab_size=64, impl=impl)),
        lambda m, ids: m(ids, ids, labels=ids),
    )


@pytest.mark.parametrize("impl", OTHERS)
@pytest.mark.parametrize("case", list(_model_cases()), ids=lambda c: c[0])
def test_a_model_config_reaches_every_layer_and_changes_no_number(case, impl):
    _, make, run = case
    torch.manual_seed(0)
    plain = make("plain").double()
    other = make(impl).double()
    other.load_state_dict(plain.state_dict())
    impls = {m.impl for m in other.modules() if hasattr(m, "impl")}
    assert impls == {impl}, f"every layer follows the config, got {impls}"
    ids = torch.randint(1, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    loss_plain, loss_other = run(plain, ids).loss, run(other, ids).loss
    assert_close(loss_other, loss_plain, **F64)
    loss_plain.backward()
    loss_other.backward()
    for (name, p), q in zip(plain.named_parameters(), other.parameters()):
        assert_close(q.grad, p.grad, **F64, msg=lambda m, n=name: f"{n}: {m}")
