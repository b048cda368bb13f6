r"""Converters between our XLNet (:mod:`models.xlnet`) and Hugging Face ``transformers`` XLNet checkpoints.

Key names (theirs -> ours). ``XLNetModel`` keys carry no prefix; in ``XLNetLMHeadModel`` the encoder sits under
``transformer.`` (theirs) / ``xlnet.`` (ours) and the head is ``lm_loss.*`` / ``lm_head.*``:

    word_embedding.weight               -> embedding.weight                   (V, D)      as is
    mask_emb                            -> mask_embedding                     (1, 1, D) -> (D,)
    layer.{i}.rel_attn.q | k | v | r    -> layers.{i}.attn.{q,k,v,r}_proj.weight   (D, H, Dh) -> (H·Dh, D)
    layer.{i}.rel_attn.o                -> layers.{i}.attn.out_proj.weight         (D, H, Dh) -> (D, H·Dh)
    layer.{i}.rel_attn.r_w_bias         -> layers.{i}.attn.content_bias       (H, Dh)     u, as is
    layer.{i}.rel_attn.r_r_bias         -> layers.{i}.attn.position_bias      (H, Dh)     v, as is
    layer.{i}.rel_attn.r_s_bias         -> layers.{i}.attn.segment_bias       (H, Dh)     b, as is
    layer.{i}.rel_attn.seg_embed        -> layers.{i}.attn.segment_embedding  (2, H, Dh)  row 1 = different, as is
    layer.{i}.rel_attn.layer_norm.*     -> layers.{i}.norm1.*
    layer.{i}.ff.layer_1.*              -> layers.{i}.ff.w1.*                 nn.Linear on both sides, as is
    layer.{i}.ff.layer_2.*              -> layers.{i}.ff.w2.*
    layer.{i}.ff.layer_norm.*           -> layers.{i}.norm2.*
    lm_loss.bias                        -> lm_head.bias                       (V,)
    lm_loss.weight                      =  transformer.word_embedding.weight  (tied; ours: lm_head.decoder.weight)

The layouts. Hugging Face keeps q, k, v, r as (D, H, Dh) tensors used *input-major*, ``x @ W.view(D, H·Dh)``,
while ``nn.Linear`` computes ``x @ weightᵀ``: so ``q_proj.weight = W.reshape(D, H·Dh).T``. The output
projection ``o`` is also stored (D, H, Dh) but used as ``a @ W.view(D, H·Dh).T`` — already ``nn.Linear``'s
(out, in) orientation: ``out_proj.weight = W.reshape(D, H·Dh)``. Heads are contiguous slices of H·Dh on both
sides. An untied LM head (``lm_loss.weight`` ≠ the word embedding) is refused: our head *is* the embedding.

What is compared, and where the two differ (``tests/test_interop_hf_xlnet.py`` pins both):

* Masks: Hugging Face's ``perm_mask`` is 1 = blocked — ``masks.to_hf_perm_mask(query_allowed)`` gives it, and
  its content stream (``perm_mask`` with the diagonal cleared) is then our ``content_allowed``.
* A query row with *nothing* allowed: Hugging Face subtracts 1e30 from every score, so the row becomes a
  uniform average over all keys; ours gives zero weights and a zero attention output (the package's rule).
  Every target with at least one visible token gives the same numbers on both sides.
* Hugging Face never derives padding from the ids; we do when ``config.pad_id`` is set (it comes from
  ``pad_token_id``, 5 in the released checkpoints) and no ``valid`` is passed.

Everything here is plain data — configs and state dicts — so :meth:`models.xlnet.XLNetModel.from_pretrained`
can call it::

    config = config_from_hf(hf_config_dict)                                      # -> XLNetConfig
    state, result = state_dict_from_hf(hf_state_dict, config, lm_head=True)      # -> our keys, LoadResult
    model = XLNetLMHeadModel(config); model.load_state_dict(state)
    hf_state_dict = state_dict_to_hf(model.state_dict(), model.config)

:func:`read_pretrained` reads a local folder (``config.json`` + ``model.safetensors``); pickle is refused.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

from torch import Tensor

from ..config import XLNetConfig
from . import _hf
from ._hf import LoadResult

__all__ = [
    "key_pairs",
    "config_from_hf",
    "config_to_hf",
    "state_dict_from_hf",
    "state_dict_to_hf",
    "read_pretrained",
    "LoadResult",
]

# (Hugging Face name, our name, layout) per layer; the layouts are explained in the module docstring.
_LAYER_RENAMES = (
    ("rel_attn.q", "attn.q_proj.weight", "input_major"),
    ("rel_attn.k", "attn.k_proj.weight", "input_major"),
    ("rel_attn.v", "attn.v_proj.weight", "input_major"),
    ("rel_attn.o", "attn.out_proj.weight", "output_major"),
    ("rel_attn.r", "attn.r_proj.weight", "input_major"),
    ("rel_attn.r_w_bias", "attn.content_bias", "same"),
    ("rel_attn.r_r_bias", "attn.position_bias", "same"),
    ("rel_attn.r_s_bias", "attn.segment_bias", "same"),
    ("rel_attn.seg_embed", "attn.segment_embedding", "same"),
    ("rel_attn.layer_norm.weight", "norm1.weight", "same"),
    ("rel_attn.layer_norm.bias", "norm1.bias", "same"),
    ("ff.layer_1.weight", "ff.w1.weight", "same"),
    ("ff.layer_1.bias", "ff.w1.bias", "same"),
    ("ff.layer_2.weight", "ff.w2.weight", "same"),
    ("ff.layer_2.bias", "ff.w2.bias", "same"),
    ("ff.layer_norm.weight", "norm2.weight", "same"),
    ("ff.layer_norm.bias", "norm2.bias", "same"),
)
_HF_PREFIX, _OUR_PREFIX = "transformer.", "xlnet."
_TIED_WORD = "lm_loss.weight"  # = transformer.word_embedding.weight
_OUR_DECODER = "lm_head.decoder.weight"  # our PLM decoder weight *is* xlnet.embedding.weight


def _check_config(config) -> XLNetConfig:
    if not isinstance(config, XLNetConfig):
        raise TypeError(f"config must be an XLNetConfig, got {type(config).__name__}")
    return config


def _described(config: XLNetConfig, lm_head: bool) -> str:
    return f"{'XLNetLMHeadModel' if lm_head else 'XLNetModel'}(n_layers={config.n_layers})"


def _triples(n_layers: int, lm_head: bool) -> list[tuple[str, str, str]]:
    """(Hugging Face key, our key, layout) for every tensor, in our state-dict order; tied duplicates left out."""
    theirs_prefix, ours_prefix = (_HF_PREFIX, _OUR_PREFIX) if lm_head else ("", "")
    rows = [("mask_emb", "mask_embedding", "flat"), ("word_embedding.weight", "embedding.weight", "same")]
    for i in range(n_layers):
        rows += [(f"layer.{i}.{theirs}", f"layers.{i}.{ours}", how) for theirs, ours, how in _LAYER_RENAMES]
    rows = [(theirs_prefix + theirs, ours_prefix + ours, how) for theirs, ours, how in rows]
    if lm_head:
        rows.append(("lm_loss.bias", "lm_head.bias", "same"))
    return rows


def key_pairs(n_layers: int, *, lm_head: bool = False) -> list[tuple[str, str]]:
    """(Hugging Face key, our key) for every tensor of ``XLNetModel`` or, with ``lm_head``, ``XLNetLMHeadModel``;
    the tied head matrix is not included (it is the word embedding on both sides)."""
    return [(theirs, ours) for theirs, ours, _ in _triples(n_layers, lm_head)]


def _from_hf_layout(tensor: Tensor, how: str) -> Tensor:
    """One Hugging Face tensor in our layout. Flattening is by position, so a wrong shape still converts and is
    then reported, with both names, by the shape check."""
    if how == "input_major":  # (D, H, Dh) used as x @ W.view(D, H·Dh) -> nn.Linear weight (H·Dh, D)
        return tensor.flatten(1).T
    if how == "output_major":  # (D, H, Dh) used as a @ W.view(D, H·Dh).T -> nn.Linear weight (D, H·Dh)
        return tensor.flatten(1)
    if how == "flat":  # mask_emb (1, 1, D) -> (D,)
        return tensor.reshape(-1)
    return tensor


def _to_hf_layout(tensor: Tensor, how: str, config: XLNetConfig) -> Tensor:
    """The inverse of :func:`_from_hf_layout`, for a tensor of the config's shape."""
    d, h, dh = config.d_model, config.n_heads, config.d_head
    if how == "input_major":  # (H·Dh, D) -> (D, H·Dh) -> (D, H, Dh)
        return tensor.T.reshape(d, h, dh)
    if how == "output_major":  # (D, H·Dh) -> (D, H, Dh)
        return tensor.reshape(d, h, dh)
    if how == "flat":  # (D,) -> (1, 1, D)
        return tensor.reshape(1, 1, d)
    return tensor


def _our_shapes(config: XLNetConfig, lm_head: bool) -> dict[str, tuple[int, ...]]:
    """Every key of our ``XLNetModel`` / ``XLNetLMHeadModel`` state dict (tied decoder included) and its shape."""
    c = config
    d, f, v, h, dh = c.d_model, c.d_ff, c.vocab_size, c.n_heads, c.d_head
    per_layer = {f"attn.{name}.weight": (h * dh, d) for name in ("q_proj", "k_proj", "v_proj", "r_proj")}
    per_layer["attn.out_proj.weight"] = (d, h * dh)
    per_layer.update({f"attn.{name}": (h, dh) for name in ("content_bias", "position_bias", "segment_bias")})
    per_layer["attn.segment_embedding"] = (2, h, dh)
    per_layer.update({"ff.w1.weight": (f, d), "ff.w1.bias": (f,), "ff.w2.weight": (d, f), "ff.w2.bias": (d,)})
    per_layer.update({f"{norm}.{p}": (d,) for norm in ("norm1", "norm2") for p in ("weight", "bias")})
    shapes = {"mask_embedding": (d,), "embedding.weight": (v, d)}
    for i in range(c.n_layers):
        shapes.update({f"layers.{i}.{name}": shape for name, shape in per_layer.items()})
    if not lm_head:
        return shapes
    return {**{_OUR_PREFIX + key: shape for key, shape in shapes.items()}, "lm_head.bias": (v,), _OUR_DECODER: (v, d)}


def _detect_prefix(hf_state_dict: Mapping[str, Tensor], lm_head: bool) -> str:
    """'' or 'transformer.': where the encoder's keys live in ``hf_state_dict``."""
    if lm_head:
        return _HF_PREFIX
    probe = "word_embedding.weight"
    return _HF_PREFIX if probe not in hf_state_dict and (_HF_PREFIX + probe) in hf_state_dict else ""


def state_dict_from_hf(
    hf_state_dict: Mapping[str, Tensor], config: XLNetConfig, *, lm_head: bool = False, strict: bool = True
) -> tuple[dict[str, Tensor], LoadResult]:
    """A Hugging Face XLNet state dict -> (our state dict, what was left out), for ``XLNetModel(config)`` or, with
    ``lm_head``, ``XLNetLMHeadModel(config)``; load it with ``model.load_state_dict``.

    For an ``XLNetModel`` the keys may come with or without the ``transformer.`` prefix (an ``XLNetLMHeadModel``
    checkpoint then has ``lm_loss.*`` keys left over: unexpected). ``lm_loss.weight``, when present, must equal
    the word embedding (a ValueError otherwise). Shapes must be the config's. With ``strict`` (default) any
    missing or unexpected key raises a ``ValueError`` listing them all; otherwise the tensors that were found
    are returned and the Hugging Face names of the others in the :class:`LoadResult`.
    """
    config = _check_config(config)
    prefix = _detect_prefix(hf_state_dict, lm_head)
    triples = _triples(config.n_layers, lm_head)
    if prefix and not lm_head:
        triples = [(prefix + theirs, ours, how) for theirs, ours, how in triples]
    accounted_for = set()
    if lm_head:
        reason = (
            "this checkpoint's LM head is not tied to the word embeddings, but in our XLNetLMHeadModel the head "
            "weight is the embedding matrix"
        )
        accounted_for = _hf.check_tied(hf_state_dict, _TIED_WORD, _HF_PREFIX + "word_embedding.weight", reason)
    result = _hf.match_keys(
        hf_state_dict,
        [theirs for theirs, _, _ in triples],
        accounted_for,
        described=_described(config, lm_head),
        strict=strict,
        allow_missing=not strict,
    )
    found = [
        (ours, theirs, _from_hf_layout(hf_state_dict[theirs], how))
        for theirs, ours, how in triples
        if theirs in hf_state_dict
    ]
    state = _hf.checked_state_dict(found, _our_shapes(config, lm_head), hf_state_dict)
    if lm_head and _OUR_PREFIX + "embedding.weight" in state:
        state[_OUR_DECODER] = state[_OUR_PREFIX + "embedding.weight"]  # tied: listed under both names, as ours is
    return state, result


def state_dict_to_hf(state_dict: Mapping[str, Tensor], config: XLNetConfig) -> dict[str, Tensor]:
    """Our XLNetModel / XLNetLMHeadModel state dict -> one that Hugging Face's same class loads with strict=True.

    The class is read from the keys (``xlnet.*`` is an XLNetLMHeadModel). The tied head appears under both
    Hugging Face names (``lm_loss.weight`` and ``transformer.word_embedding.weight``), as their ``state_dict()``
    lists it; our ``lm_head.decoder.weight`` must then be the embedding. Tensors are detached contiguous copies.
    """
    config = _check_config(config)
    lm_head = _OUR_PREFIX + "embedding.weight" in state_dict
    triples = _triples(config.n_layers, lm_head)
    _hf.require_keys(state_dict, [ours for _, ours, _ in triples], _described(config, lm_head))
    expected = _our_shapes(config, lm_head)
    wrong = [
        f"{ours} {tuple(state_dict[ours].shape)} (expected {expected[ours]})"
        for _, ours, _ in triples
        if tuple(state_dict[ours].shape) != expected[ours]
    ]
    if wrong:
        raise ValueError("tensor shapes do not match the config:\n  " + "\n  ".join(wrong))
    out = {
        theirs: _to_hf_layout(state_dict[ours].detach(), how, config).clone().contiguous()
        for theirs, ours, how in triples
    }
    if lm_head:
        embedding = state_dict[_OUR_PREFIX + "embedding.weight"]
        if _OUR_DECODER in state_dict and not state_dict[_OUR_DECODER].equal(embedding):
            raise ValueError(
                f"{_OUR_DECODER} differs from {_OUR_PREFIX}embedding.weight: Hugging Face's XLNetLMHeadModel ties "
                "lm_loss.weight to the word embedding"
            )
        out[_TIED_WORD] = out[_HF_PREFIX + "word_embedding.weight"].clone()
    return out


# ---- configs and folders --------------------------------------------------------------------------------

# Hugging Face config.json field -> XLNetConfig field
_CONFIG_FIELDS = (
    ("vocab_size", "vocab_size"),
    ("d_model", "d_model"),
    ("n_head", "n_heads"),
    ("n_layer", "n_layers"),
    ("d_inner", "d_ff"),
)
# Fields whose other values we cannot run: (name, the value we compute — also what an absent field means, reason).
# ``same_length`` and ``untie_r`` are not checked: the first matters only for attn_type="uni", the second only
# in the original TensorFlow code (Hugging Face stores every layer's biases, shared or not).
_FIXED = (
    ("model_type", "xlnet", "only XLNet checkpoints are supported"),
    ("ff_activation", "gelu", "our XLNet uses exact (erf) GELU"),
    ("attn_type", "bi", "our XLNet is XLNet's bidirectional two-stream model ('uni' is Transformer-XL)"),
    ("bi_data", False, "the bidirectional data pipeline (half the batch with reversed positions) is not supported"),
    ("tie_word_embeddings", True, "our LM head is the word embedding matrix"),
)
_MEMORY = ("mem_len", "reuse_len")  # Transformer-XL memory: null (or 0) is the only value we accept


def config_from_hf(hf_config: Mapping) -> XLNetConfig:
    """A Hugging Face XLNet ``config.json`` (as a dict) -> :class:`XLNetConfig`; ValueError for what we cannot run.

    Required: ``vocab_size``, ``d_model``, ``n_head``, ``n_layer``, ``d_inner``. Refused (each with its reason):
    ``model_type`` other than "xlnet", ``ff_activation`` other than "gelu", ``attn_type`` other than "bi",
    ``bi_data``, ``mem_len`` or ``reuse_len`` set, ``tie_word_embeddings`` false, ``clamp_len`` > 0 (we never
    clamp distances), ``d_head`` ≠ d_model / n_head. ``dropout`` becomes both our ``dropout`` and
    ``attention_dropout`` (Hugging Face has one rate for both); ``pad_token_id`` becomes ``pad_id``.
    """
    hf = hf_config
    if not isinstance(hf, Mapping):
        raise TypeError(f"the config must be a mapping (the parsed config.json), got {type(hf).__name__}")
    missing = [theirs for theirs, _ in _CONFIG_FIELDS if theirs not in hf]
    if missing:
        raise ValueError(f"config.json lacks the XLNet field(s) {missing}")
    for name, supported, reason in _FIXED:
        if hf.get(name, supported) != supported:
            raise ValueError(f"config.json has {name}={hf[name]!r}; expected {supported!r}: {reason}")
    for name in _MEMORY:
        if hf.get(name) not in (None, 0):
            raise ValueError(
                f"config.json has {name}={hf[name]!r}; expected null: our XLNet has no Transformer-XL memory of "
                "earlier segments (one segment at a time)"
            )
    if hf.get("clamp_len", -1) > 0:
        raise ValueError(
            f"config.json has clamp_len={hf['clamp_len']}; expected ≤ 0: our XLNet never clamps relative distances"
        )
    fields = {ours: hf[theirs] for theirs, ours in _CONFIG_FIELDS}
    if hf.get("d_head") is not None and fields["n_heads"] * hf["d_head"] != fields["d_model"]:
        raise ValueError(
            f"config.json has d_head={hf['d_head']}, n_head={fields['n_heads']}, d_model={fields['d_model']}; our "
            "XLNet needs d_head · n_head = d_model"
        )
    extra = {"dropout": hf["dropout"], "attention_dropout": hf["dropout"]} if "dropout" in hf else {}
    if "layer_norm_eps" in hf:
        extra["layer_norm_eps"] = hf["layer_norm_eps"]
    return XLNetConfig(**fields, **extra, **_hf.optional_fields(hf))


def config_to_hf(config: XLNetConfig) -> dict:
    """:class:`XLNetConfig` -> the keyword arguments of ``transformers.XLNetConfig`` (and a config.json).

    Hugging Face has one dropout rate, so ``dropout`` and ``attention_dropout`` must be equal (ValueError
    otherwise). ``mem_len`` is null and ``use_mems_eval`` false: no memory, as in ours. ``pad_token_id`` is
    written even when ``pad_id`` is None (Hugging Face's default would be 5).
    """
    config = _check_config(config)
    if config.attention_dropout != config.dropout:
        raise ValueError(
            f"Hugging Face's XLNet has one dropout rate; this config has dropout={config.dropout} and "
            f"attention_dropout={config.attention_dropout} (make them equal with dataclasses.replace)"
        )
    out = {theirs: getattr(config, ours) for theirs, ours in _CONFIG_FIELDS}
    out.update(model_type="xlnet", d_head=config.d_head, ff_activation="gelu", attn_type="bi", bi_data=False)
    out.update(mem_len=None, reuse_len=None, clamp_len=-1, use_mems_eval=False, use_mems_train=False)
    out.update(dropout=config.dropout, layer_norm_eps=config.layer_norm_eps, tie_word_embeddings=True)
    out.update(initializer_range=config.initializer_range, pad_token_id=config.pad_id)
    return out


def read_pretrained(path: str | os.PathLike, *, lm_head: bool = False) -> tuple[XLNetConfig, dict[str, Tensor]]:
    """(config, our state dict) of a local Hugging Face XLNet folder, for ``XLNetModel`` or, with ``lm_head``,
    ``XLNetLMHeadModel``.

    Reads ``config.json`` (see :func:`config_from_hf`) and the weights from ``model.safetensors`` (or a sharded
    ``model.safetensors.index.json``), converted strictly by :func:`state_dict_from_hf`. No network access;
    pickle files (``pytorch_model.bin``) are refused: unpickling can run arbitrary code.
    """
    convert = functools.partial(state_dict_from_hf, lm_head=lm_head)
    return _hf.read_pretrained(path, config_from_hf, convert)
