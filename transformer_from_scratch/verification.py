"""Numerical verification of every module against its NumPy float64 reference.

Each check builds random inputs with a seeded generator, runs the torch implementation in float64 and the
reference in ``reference/``, and reports the largest relative error. ``tfs tour`` prints the table; the
test-suite asserts every check passes. Add a check next to the others when a module gains a reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Check", "CheckResult", "CHECKS", "register", "run_checks"]

FLOAT64_RTOL = 1e-10  # DESIGN.md §3: float64 torch vs float64 NumPy


@dataclass(frozen=True)
class CheckResult:
    name: str
    max_abs_err: float
    max_rel_err: float
    rtol: float

    @property
    def passed(self) -> bool:
        return self.max_rel_err <= self.rtol


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable[[torch.Generator], tuple[np.ndarray, np.ndarray]]  # -> (ours, reference)
    rtol: float = FLOAT64_RTOL

    def run(self, seed: int = 0) -> CheckResult:
        ours, ref = self.fn(torch.Generator().manual_seed(seed))
        ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
        if ours.shape != ref.shape:
            raise AssertionError(f"{self.name}: shape {ours.shape} differs from the reference's {ref.shape}")
        abs_err = np.abs(ours - ref)
        # relative to the overall scale of the reference, so near-zero entries do not blow it up
        scale = max(float(np.abs(ref).max(initial=0.0)), 1e-300)
        return CheckResult(
            self.name, float(abs_err.max(initial=0.0)), float(abs_err.max(initial=0.0) / scale), self.rtol
        )


CHECKS: list[Check] = []


def register(name: str, rtol: float = FLOAT64_RTOL):
    """Decorator adding a check ``fn(generator) -> (ours, reference)`` to :data:`CHECKS`."""

    def wrap(fn):
        CHECKS.append(Check(name, fn, rtol))
        return fn

    return wrap


def run_checks(seed: int = 0) -> list[CheckResult]:
    return [c.run(seed) for c in CHECKS]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ---- attention core (functional.py, masks.py, attention.py) ------------------------------------------

from . import functional as tf  # noqa: E402
from . import masks  # noqa: E402
from . import reference as ref  # noqa: E402
from .attention import MultiHeadAttention  # noqa: E402


def _randn(g: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


def _random_mha(d_model: int, n_heads: int, g: torch.Generator) -> MultiHeadAttention:
    """A float64 MultiHeadAttention whose weights and biases all come from ``g``."""
    mha = MultiHeadAttention(d_model, n_heads).double()
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(_randn(g, *p.shape, scale=d_model**-0.5))
    return mha


def _mha_reference(mha: MultiHeadAttention, x_q, x_kv, allowed=None, bias=None):
    """Run :func:`reference.multi_head_attention` with the weights of ``mha``."""
    params = []
    for proj in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj):
        params += [_np(proj.weight), None if proj.bias is None else _np(proj.bias)]
    return ref.multi_head_attention(
        _np(x_q),
        _np(x_kv),
        *params,
        n_heads=mha.n_heads,
        allowed=None if allowed is None else _np(allowed),
        bias=None if bias is None else _np(bias),
        return_weights=True,
    )


def _flat(*arrays: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


@register("functional.softmax vs reference.softmax (logits of scale 10)")
def _check_softmax(g: torch.Generator):
    x = _randn(g, 2, 5, 9, scale=10.0)  # (B, T, S)
    return _np(tf.softmax(x)), ref.softmax(_np(x))


def _sdpa_check(impl: str):
    def check(g: torch.Generator):
        batch, heads, t, s, d_head, d_value = 2, 3, 5, 7, 4, 6
        q, k, v = (
            _randn(g, batch, heads, t, d_head),
            _randn(g, batch, heads, s, d_head),
            _randn(g, batch, heads, s, d_value),
        )
        allowed = torch.rand(batch, 1, t, s, generator=g) < 0.6  # (B, 1, T, S), shared by the heads
        allowed[1, 0, 2] = False  # query 2 of batch row 1 sees nothing: zero weights, zero output
        bias = _randn(g, 1, heads, t, s)  # (1, H, T, S), e.g. a relative-position bias
        out, w = tf.scaled_dot_product_attention(q, k, v, allowed=allowed, bias=bias, return_weights=True, impl=impl)
        ref_out, ref_w = ref.scaled_dot_product_attention(
            _np(q), _np(k), _np(v), allowed=_np(allowed), bias=_np(bias), return_weights=True
        )
        return _flat(_np(out), _np(w)), _flat(ref_out, ref_w)

    return check


for _impl in tf.IMPLS:
    register(f"functional.scaled_dot_product_attention(impl={_impl!r}), random mask + bias, T≠S, a fully masked row")(
        _sdpa_check(_impl)
    )


@register("MultiHeadAttention self-attention, causal + key padding + bias")
def _check_mha_self(g: torch.Generator):
    batch, t, d_model, n_heads = 3, 6, 12, 3
    mha = _random_mha(d_model, n_heads, g)
    x = _randn(g, batch, t, d_model)
    valid = masks.padding_mask_from_lengths([6, 4, 2], max_len=t)  # (B, T)
    allowed = masks.combine(masks.causal_mask(t), masks.key_padding(valid))  # (B, 1, T, T)
    bias = _randn(g, 1, n_heads, t, t)
    out, w = mha(x, allowed=allowed, bias=bias, return_weights=True)
    ref_out, ref_w = _mha_reference(mha, x, x, allowed, bias)
    return _flat(_np(out), _np(w)), _flat(ref_out, ref_w)


@register("MultiHeadAttention cross-attention, T≠S, query and key padding")
def _check_mha_cross(g: torch.Generator):
    batch, t, s, d_model, n_heads = 2, 4, 7, 8, 2
    mha = _random_mha(d_model, n_heads, g)
    x_q, x_kv = _randn(g, batch, t, d_model), _randn(g, batch, s, d_model)
    query_valid = masks.padding_mask_from_lengths([4, 3], max_len=t)  # (B, T)
    key_valid = masks.padding_mask_from_lengths([5, 7], max_len=s)  # (B, S)
    allowed = masks.cross_attention_mask(query_valid, key_valid)  # (B, 1, T, S)
    out, w = mha(x_q, x_kv, allowed=allowed, return_weights=True)
    ref_out, ref_w = _mha_reference(mha, x_q, x_kv, allowed)
    return _flat(_np(out), _np(w)), _flat(ref_out, ref_w)


# ---- layers and positions (layers.py, positional.py, functional.py) ------------------------------------

from . import layers as _layers  # noqa: E402
from . import positional as _positional  # noqa: E402
from .reference import layers as _ref_layers  # noqa: E402
from .reference import positional as _ref_positional  # noqa: E402


def _normal64(g: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


def _randomise(module: torch.nn.Module, g: torch.Generator, scale: float = 0.5) -> torch.nn.Module:
    """Cast to float64 and overwrite every parameter (norm gains and biases included) with draws from g."""
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(_normal64(g, *p.shape, scale=scale))
    return module


@register("LayerNorm vs reference.layer_norm (random weight and bias, eps=1e-5)")
def _check_layer_norm(g: torch.Generator):
    norm = _randomise(_layers.LayerNorm(10), g)
    x = _normal64(g, 3, 7, 10, scale=3.0) + 2.0  # (B, T, D), off-centre so the mean matters
    return _np(norm(x)), _ref_layers.layer_norm(_np(x), _np(norm.weight), _np(norm.bias), 1e-5)


@register("RMSNorm vs reference.rms_norm (random weight, eps=1e-6)")
def _check_rms_norm(g: torch.Generator):
    norm = _randomise(_layers.RMSNorm(10), g)
    x = _normal64(g, 3, 7, 10, scale=3.0)
    return _np(norm(x)), _ref_layers.rms_norm(_np(x), _np(norm.weight), 1e-6)


def _feed_forward_check(activation: str):
    def check(g: torch.Generator):
        ffn = _randomise(_layers.FeedForward(8, 20, activation=activation), g)
        x = _normal64(g, 3, 5, 8)
        w3 = _np(ffn.w3.weight) if activation in _layers.GATED else None
        b1, b2 = (None if lin.bias is None else _np(lin.bias) for lin in (ffn.w1, ffn.w2))
        expected = _ref_layers.feed_forward(_np(x), _np(ffn.w1.weight), b1, _np(ffn.w2.weight), b2, activation, w3)
        return _np(ffn(x)), expected

    return check


for _activation in _layers.FFN_ACTIVATIONS:
    register(f"FeedForward({_activation}) vs reference.feed_forward")(_feed_forward_check(_activation))


@register("SinusoidalPositionalEncoding vs reference.sinusoidal_table (D=12 and odd D=7)")
def _check_sinusoidal(g: torch.Generator):
    ours, expected = [], []
    for d_model in (12, 7):
        pe = _positional.SinusoidalPositionalEncoding(d_model, max_len=64)
        x = _normal64(g, 2, 50, d_model)
        positions = torch.randint(0, 64, (2, 50), generator=g)  # (B, T), one row of positions per sequence
        ours.append(_np(pe(x, positions)))
        expected.append(_np(x) + _ref_positional.sinusoidal_table(64, d_model)[_np(positions)])
    return np.concatenate([o.ravel() for o in ours]), np.concatenate([e.ravel() for e in expected])


def _rope_check(convention: str):
    def check(g: torch.Generator):
        batch, heads, t, s, d_head = 2, 3, 5, 7, 8
        rotary = _positional.RotaryEmbedding(d_head, max_len=16, convention=convention)
        q, k = _normal64(g, batch, heads, t, d_head), _normal64(g, batch, heads, s, d_head)
        q_pos = torch.randint(0, 40, (batch, t), generator=g)  # (B, T), past max_len: the caches grow
        k_pos = torch.randint(0, 40, (s,), generator=g)  # (S,)
        q_rot, k_rot = rotary(q, k, q_pos, k_positions=k_pos)
        ref_q = _ref_positional.rope(_np(q), _np(q_pos)[:, None, :], 10000.0, convention)  # (B, 1, T) broadcast
        ref_k = _ref_positional.rope(_np(k), _np(k_pos), 10000.0, convention)
        return np.concatenate([_np(q_rot).ravel(), _np(k_rot).ravel()]), np.concatenate([ref_q.ravel(), ref_k.ravel()])

    return check


for _convention in ("half", "interleaved"):
    register(f"RotaryEmbedding({_convention!r}) vs reference.rope, T≠S, per-row positions")(_rope_check(_convention))


# ---- blocks and the encoder–decoder (blocks.py, stacks.py, models/transformer.py) --------------------------

from . import blocks as _blocks  # noqa: E402
from .config import TransformerConfig as _TransformerConfig  # noqa: E402
from .models import transformer as _transformer  # noqa: E402
from .reference import blocks as _ref_blocks  # noqa: E402


def _random_params_(module: torch.nn.Module, g: torch.Generator) -> torch.nn.Module:
    """Every parameter from ``g`` in float64: norm gains near 1, matrices ~ 1/√fan-in, biases ~ 0.3."""
    module.double().eval()
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = _randn(g, *p.shape)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * noise)
            else:
                p.copy_(noise * (0.3 if p.dim() == 1 else p.shape[-1] ** -0.5))
    return module


def _numpy_state(module: torch.nn.Module) -> dict:
    return {k: _np(v) for k, v in module.state_dict().items()}


def _block_check(norm_first: bool):
    def check(g: torch.Generator):
        batch, t, s, d_model, n_heads, d_ff = 3, 5, 6, 12, 3, 20
        config = _blocks.BlockConfig(d_model, n_heads, d_ff, norm_first=norm_first)
        enc = _random_params_(_blocks.EncoderBlock(config), g)
        dec = _random_params_(_blocks.DecoderBlock(dataclasses.replace(config, activation="gelu")), g)
        x, y = _randn(g, batch, s, d_model), _randn(g, batch, t, d_model)
        src_valid = masks.padding_mask_from_lengths([6, 2, 4], max_len=s)  # (B, S)
        tgt_valid = masks.padding_mask_from_lengths([5, 3, 1], max_len=t)  # (B, T)
        enc_allowed = masks.key_padding(src_valid)  # (B,1,1,S)
        self_allowed = masks.combine(masks.causal_mask(t), masks.key_padding(tgt_valid))  # (B,1,T,T)
        memory, w_enc = enc(x, allowed=enc_allowed, return_attention=True)
        out, w_self, w_cross = dec(
            y, memory, self_allowed=self_allowed, cross_allowed=enc_allowed, return_attention=True
        )
        ref_memory, ref_w_enc = _ref_blocks.encoder_block(
            _np(x), _numpy_state(enc), n_heads, allowed=_np(enc_allowed), norm_first=norm_first, return_weights=True
        )
        ref_out, ref_self, ref_cross = _ref_blocks.decoder_block(
            _np(y),
            ref_memory,
            _numpy_state(dec),
            n_heads,
            self_allowed=_np(self_allowed),
            cross_allowed=_np(enc_allowed),
            norm_first=norm_first,
            activation="gelu",
            return_weights=True,
        )
        ours = _flat(_np(memory), _np(w_enc), _np(out), _np(w_self), _np(w_cross))
        return ours, _flat(ref_memory, ref_w_enc, ref_out, ref_self, ref_cross)

    return check


register("EncoderBlock + DecoderBlock, post-LN (paper), padding + causal masks, T≠S")(_block_check(False))
register("EncoderBlock + DecoderBlock, pre-LN, padding + causal masks, T≠S")(_block_check(True))


def _model_check(**overrides):
    def check(g: torch.Generator):
        config = _TransformerConfig.tiny(
            src_vocab_size=23, tgt_vocab_size=19, d_model=12, n_heads=3, d_ff=20, max_len=16, **overrides
        )
        model = _random_params_(_transformer.EncoderDecoder(config), g)
        src = torch.randint(0, config.src_vocab_size, (3, 7), generator=g)
        tgt = torch.randint(0, config.tgt_vocab_size, (3, 5), generator=g)
        src_valid = masks.padding_mask_from_lengths([7, 3, 5], max_len=7)
        tgt_valid = masks.padding_mask_from_lengths([5, 2, 4], max_len=5)
        logits = model(src, tgt, src_valid=src_valid, tgt_valid=tgt_valid).logits
        expected = _ref_blocks.encoder_decoder(
            _np(src),
            _np(tgt),
            _numpy_state(model),
            n_heads=config.n_heads,
            n_encoder_layers=config.n_encoder_layers,
            n_decoder_layers=config.n_decoder_layers,
            norm_first=config.norm_first,
            final_norm=config.has_final_norm,
            activation=config.activation,
            eps=config.layer_norm_eps,
            scale_embeddings=config.scale_embeddings,
            positional=config.positional,
            src_valid=_np(src_valid),
            tgt_valid=_np(tgt_valid),
        )
        return _np(logits), expected

    return check


register("EncoderDecoder (2017 Transformer), post-LN, 2+2 layers, padded source and target")(_model_check())
register("EncoderDecoder, pre-LN + final norms, GELU, learned positions")(
    _model_check(norm_first=True, activation="gelu", positional="learned")
)


# ---- BERT (models/bert.py, heads.py, pooling.py) ---------------------------------------------------------------

from . import pooling as _pooling  # noqa: E402
from .config import BertConfig as _BertConfig  # noqa: E402
from .models import bert as _bert  # noqa: E402
from .reference import bert as _ref_bert  # noqa: E402


def _bert_case(g: torch.Generator):
    """A random float64 BertForPreTraining (V=29, D=12, H=3, 2 layers) and a padded two-segment batch."""
    config = _BertConfig.tiny(vocab_size=29, d_model=12, n_heads=3, d_ff=20, max_len=16, type_vocab_size=3)
    model = _random_params_(_bert.BertForPreTraining(config), g)
    ids = torch.randint(0, config.vocab_size, (3, 7), generator=g)  # (B, T)
    segments = torch.randint(0, config.type_vocab_size, (3, 7), generator=g)
    valid = masks.padding_mask_from_lengths([7, 4, 2], max_len=7)  # (B, T), real tokens first
    return config, model, ids, segments, valid


@register("BertForPreTraining: embeddings → encoder → MLM + NSP heads and loss, padded, 3 segments")
def _check_bert_pretraining(g: torch.Generator):
    config, model, ids, segments, valid = _bert_case(g)
    selected = (torch.rand(3, 7, generator=g) < 0.4) & valid  # MLM positions to predict, real tokens only
    selected[0, 0] = True
    mlm_labels = torch.where(selected, ids, torch.full_like(ids, -100))
    nsp_labels = torch.tensor([0, 1, 1])
    out = model(ids, token_type_ids=segments, valid=valid, mlm_labels=mlm_labels, nsp_labels=nsp_labels)
    inputs = dict(token_type_ids=_np(segments), valid=_np(valid))
    mlm, nsp, (h, pooled, _, _) = _ref_bert.bert_pretraining(
        _np(ids), _numpy_state(model), n_heads=3, n_layers=2, eps=config.layer_norm_eps, **inputs
    )
    loss = _ref_bert.pretraining_loss(mlm, _np(mlm_labels), nsp, _np(nsp_labels))
    bert = out.bert
    ours = _flat(_np(bert.last_hidden_state), _np(bert.pooled), _np(out.mlm_logits), _np(out.nsp_logits), _np(out.loss))
    return ours, _flat(h, pooled, mlm, nsp, loss)


@register("BertModel hidden states of every layer + attention weights, padded")
def _check_bert_hidden_states(g: torch.Generator):
    config, model, ids, segments, valid = _bert_case(g)
    out = model.bert(ids, token_type_ids=segments, valid=valid, return_attention=True)
    inputs = dict(token_type_ids=_np(segments), valid=_np(valid))
    _, _, hidden, attentions = _ref_bert.bert_model(
        _np(ids), _numpy_state(model.bert), n_heads=3, n_layers=2, eps=config.layer_norm_eps, **inputs
    )
    return _flat(*map(_np, out.hidden_states), *map(_np, out.attentions)), _flat(*hidden, *attentions)


@register("pooling.mean_pool (masked) vs reference.bert.mean_pool")
def _check_mean_pool(g: torch.Generator):
    hidden = _randn(g, 3, 6, 5)
    valid = masks.padding_mask_from_lengths([6, 1, 3], max_len=6)
    return _np(_pooling.mean_pool(hidden, valid)), _ref_bert.mean_pool(_np(hidden), _np(valid))


# ---- GPT (models/gpt.py, KV cache in attention.py) -------------------------------------------------------------

from .config import GPTConfig as _GPTConfig  # noqa: E402
from .models import gpt as _gpt  # noqa: E402
from .reference import gpt as _ref_gpt  # noqa: E402

_GPT_SHAPE = dict(vocab_size=23, d_model=12, n_heads=3, n_layers=2, d_ff=20, max_len=16)


def _gpt_case(g: torch.Generator, config):
    """A random float64 GPT and a left-padded batch (B=3, T=7), with labels -100 on the padding."""
    model = _random_params_(_gpt.GPT(config), g)
    ids = torch.randint(1, config.vocab_size, (3, 7), generator=g)  # (B, T)
    valid = torch.arange(7)[None, :] >= torch.tensor([[0], [4], [2]])  # (B, T): 0, 4 and 2 pads on the left
    ids = torch.where(valid, ids, torch.zeros_like(ids))
    return model, ids, valid


def _ref_gpt_logits(model, ids, valid):
    c = model.config
    return _ref_gpt.gpt(
        _np(ids),
        _numpy_state(model),
        n_heads=c.n_heads,
        n_layers=c.n_layers,
        positional=c.positional,
        rope_theta=c.rope_theta,
        rope_convention=c.rope_convention,
        norm=c.norm,
        activation=c.activation,
        eps=c.layer_norm_eps,
        valid=_np(valid),
    )


def _gpt_check(config):
    def check(g: torch.Generator):
        model, ids, valid = _gpt_case(g, config)
        labels = torch.where(valid, ids, torch.full_like(ids, -100))
        out = model(ids, valid=valid, labels=labels)
        logits = _ref_gpt_logits(model, ids, valid)
        loss = _ref_gpt.causal_lm_loss(logits, _np(labels), _np(valid))
        return _flat(_np(out.logits), _np(out.loss)), _flat(logits, loss)

    return check


for _impl in tf.IMPLS:
    register(f"GPT, GPT-2 layout, impl={_impl!r}: left-padded, logits + loss")(
        _gpt_check(_GPTConfig.tiny(**_GPT_SHAPE, impl=_impl))
    )
register("GPT Llama-style (RoPE rotate-half, RMSNorm, SwiGLU, no biases, untied head), left-padded")(
    _gpt_check(_GPTConfig.llama_tiny(**_GPT_SHAPE))
)


@register("GPT decoding with a KV cache in chunks (RoPE interleaved) vs the reference's full forward")
def _check_gpt_kv_cache(g: torch.Generator):
    model, ids, valid = _gpt_case(g, _GPTConfig.llama_tiny(**_GPT_SHAPE, rope_convention="interleaved"))
    cache = model.new_kv_cache()
    steps = [model(ids[:, a:b], valid=valid[:, a:b], kv_cache=cache).logits for a, b in ((0, 3), (3, 4), (4, 7))]
    cached = torch.cat(steps, dim=1)  # (B, T, V), computed step by step
    return _np(cached)[_np(valid)], _ref_gpt_logits(model, ids, valid)[_np(valid)]


# ---- T5 (models/t5.py, the encoder–decoder KV cache in attention.py) ------------------------------------------

from .config import T5Config as _T5Config  # noqa: E402
from .models import t5 as _t5  # noqa: E402
from .reference import t5 as _ref_t5  # noqa: E402

_T5_SHAPE = dict(vocab_size=23, d_model=12, d_kv=5, d_ff=20, n_heads=3, n_layers=2, n_decoder_layers=3)


def _t5_case(g: torch.Generator, config):
    """A random float64 T5ForConditionalGeneration, a right-padded source (B=3, S=7) and labels (T=5) with -100."""
    model = _random_params_(_t5.T5ForConditionalGeneration(config), g)
    ids = torch.randint(2, config.vocab_size, (3, 7), generator=g)  # (B, S)
    valid = masks.padding_mask_from_lengths([7, 4, 2], max_len=7)
    ids = torch.where(valid, ids, torch.zeros_like(ids))
    labels = torch.randint(2, config.vocab_size, (3, 5), generator=g)  # (B, T)
    labels[1, 3:] = -100
    return model, ids, valid, labels


def _t5_check(config):
    def check(g: torch.Generator):
        model, ids, valid, labels = _t5_case(g, config)
        out = model(ids, labels=labels, valid=valid)
        state, decoder_ids = _numpy_state(model), _ref_t5.shift_right(_np(labels), 0, 0)
        logits = _ref_t5.t5_forward(state, config, _np(ids), decoder_ids, _np(valid))
        return _flat(_np(out.logits), _np(out.loss)), _flat(logits, _ref_t5.t5_loss(logits, _np(labels)))

    return check


register("T5 (relu, tied head, d_kv·H ≠ D, 2 + 3 layers): padded source, labels with -100, logits + loss")(
    _t5_check(_T5Config.tiny(**_T5_SHAPE))
)
register("T5 v1.1 style (gated GELU, untied head), impl='kernels': logits + loss")(
    _t5_check(_T5Config.tiny(**_T5_SHAPE, feed_forward="gated_gelu", tie_word_embeddings=False, impl="kernels"))
)


@register("T5 decoding one token at a time (self- and cross-attention caches) vs the reference's full forward")
def _check_t5_kv_cache(g: torch.Generator):
    config = _T5Config.tiny(**_T5_SHAPE)
    model, ids, valid, labels = _t5_case(g, config)
    decoder_ids = model.shift_right(labels)
    memory = model.encode(ids, valid).last_hidden_state
    cache, steps = None, []
    for t in range(decoder_ids.shape[1]):
        out = model.decode(decoder_ids[:, t : t + 1], memory, src_valid=valid, kv_cache=cache, use_cache=True)
        cache = out.kv_cache
        steps.append(out.logits)
    reference = _ref_t5.t5_forward(_numpy_state(model), config, _np(ids), _np(decoder_ids), _np(valid))
    return _np(torch.cat(steps, dim=1)), reference
