"""Oracle: Hugging Face ``transformers`` XLNet built offline from a small config, weights through interop.hf_xlnet.

The permuted-LM comparison feeds both models the same factorization order, drawn by ``objectives.permute_batch``
with a seeded generator: ours takes ``content_allowed`` / ``query_allowed`` (True = may attend), Hugging Face
takes ``perm_mask = masks.to_hf_perm_mask(query_allowed)`` (1 = blocked), ``attention_mask`` (1 = real) and
``token_type_ids`` (two segments). Compared: the logits of every target slot (empty ones included), the loss,
the content stream at real positions after every layer, the attention weights of both streams.

Where the two differ on purpose — and so what is *not* compared in the parity cases:
* a query row with nothing allowed (a target first in its order): Hugging Face subtracts 1e30 from every score
  and averages all keys uniformly, ours attends to nothing (zero output). Every target here sees ≥ 1 token
  (asserted), and :func:`test_a_fully_blocked_query_row_is_uniform_in_hf_and_zero_in_ours` pins the difference;
* padded *query* rows of the content stream: Hugging Face's see themselves too (its diagonal is cleared for
  every row), ours only the real tokens — so outputs are compared at real positions only.

Tolerances and the errors measured (max |ours − theirs| over logits, loss and hidden states, this machine):
float32 ≤ 1e-5 (measured 3.2e-6 on logits of size ~5, every impl); float64 ≤ 1e-12 (measured 4.6e-15 plain,
6.3e-15 kernels, 7.1e-15 torch). Float64 needs one patch of the oracle: Hugging Face computes the relative
sinusoids in float32 whatever the model's dtype (``.float()`` in ``relative_positional_encoding``; the
two-stream path then even fails on the dtype mismatch), so :func:`float64_positions` rebuilds its inputs
(distances klen … −qlen + 1, inverse frequencies) in float64 and calls Hugging Face's own
``positional_embedding``. The unpatched float32 runs check those sinusoids against ours.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import safetensors.torch as safetensors_torch
import torch
import transformers
from helpers import randomize_hf_

from transformer_from_scratch import masks
from transformer_from_scratch.config import XLNetConfig
from transformer_from_scratch.interop import hf_xlnet
from transformer_from_scratch.models import XLNetLMHeadModel, XLNetModel
from transformer_from_scratch.objectives import permute_batch
from transformer_from_scratch.objectives.plm import permutation_masks, ranks_from_order

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}
IMPLS = ("plain", "kernels", "torch")
V, B, T = 80, 3, 9
PAD = 0
VALID = masks.padding_mask_from_lengths([9, 7, 5], max_len=T)  # (B, T)
SEGMENTS = (torch.arange(T) >= torch.tensor([4, 3, 2])[:, None]).long()  # (B, T): two segments per row
HF_CONFIG = dict(
    vocab_size=V,
    d_model=32,
    n_layer=2,
    n_head=4,
    d_inner=48,
    ff_activation="gelu",
    attn_type="bi",
    mem_len=None,
    use_mems_eval=False,
    dropout=0.0,
    pad_token_id=PAD,
    attn_implementation="eager",
)


def hf_model(cls_name: str, seed: int, **overrides):
    """A Hugging Face XLNet with every parameter redrawn: matrices N(0, 0.3²) (attention far from uniform), the
    (H, Dh) attention biases and seg_embed too, LayerNorm gains/biases and FF biases away from 1/0."""
    torch.manual_seed(seed)  # HF initialises from the global generator
    config = transformers.XLNetConfig(**{**HF_CONFIG, **overrides})
    return randomize_hf_(getattr(transformers, cls_name)(config), seed).eval()


def float64_positions(hf) -> None:
    """Make a float64 Hugging Face XLNet compute its relative sinusoids in float64 (see the module docstring):
    the same distances and frequencies as its ``relative_positional_encoding`` ("bi", no clamping), passed to its
    own ``positional_embedding``."""
    xl = getattr(hf, "transformer", hf)

    def relative_positional_encoding(qlen, klen, bsz=None, device=None):
        distances = torch.arange(klen, -qlen, -1, dtype=torch.float64, device=device)  # klen … -qlen + 1
        exponents = torch.arange(0, xl.d_model, 2, dtype=torch.float64, device=device) / xl.d_model
        return xl.positional_embedding(distances, 1 / torch.pow(10000, exponents), bsz)

    xl.relative_positional_encoding = relative_positional_encoding


def in_dtype(hf, dtype):
    """The Hugging Face model itself in float32; a float64 copy with float64 sinusoids otherwise."""
    if dtype == torch.float32:
        return hf
    hf64 = copy.deepcopy(hf).to(dtype)
    float64_positions(hf64)
    return hf64


def ours_from(hf, impl: str = "plain", dtype: torch.dtype = torch.float32):
    """``from_hf`` (plain, float32), then rebuilt in ``impl`` and moved to ``dtype``."""
    ours = (XLNetLMHeadModel if hasattr(hf, "lm_loss") else XLNetModel).from_hf(hf)
    if impl != "plain":
        again = type(ours)(dataclasses.replace(ours.config, impl=impl))
        again.load_state_dict(ours.state_dict())
        ours = again.eval()
    return ours.to(dtype)


def inputs(seed: int):
    """ids (B, T) with PAD at padding only, and a PermutationBatch whose targets each see ≥ 1 token."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (B, T), generator=g).masked_fill(~VALID, PAD)
    batch = permute_batch(ids, VALID, k=3, generator=g)
    slots = batch.target_mapping.any(-1)  # (B, P): filled target slots
    positions = batch.target_mapping.long().argmax(-1)  # (B, P)
    rows = batch.query_allowed.gather(1, positions[..., None].expand(-1, -1, T))  # (B, P, T)
    assert rows.any(-1)[slots].all(), "a parity case must not have a fully blocked target"
    assert (~slots).any(), "the case should include an empty target slot (label -100)"
    return ids, batch


def hf_inputs(batch, dtype=torch.float32) -> dict:
    return dict(
        input_ids=batch.input_ids,
        attention_mask=masks.to_hf_attention_mask(batch.valid),
        perm_mask=masks.to_hf_perm_mask(batch.query_allowed, dtype),
        target_mapping=batch.target_mapping.to(dtype),
        token_type_ids=SEGMENTS,
        labels=batch.labels,
    )


@pytest.fixture(scope="module")
def hf_lm():
    return hf_model("XLNetLMHeadModel", seed=1)


# ---- the mask converters -------------------------------------------------------------------------------------


def test_perm_mask_converters_flip_the_polarity_and_round_trip():
    _, batch = inputs(0)
    perm = masks.to_hf_perm_mask(batch.query_allowed)
    assert perm.dtype == torch.float32 and set(perm.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(perm, 1.0 - batch.query_allowed.float())  # 1 = blocked
    assert masks.to_hf_perm_mask(batch.query_allowed, torch.float64).dtype == torch.float64
    assert torch.equal(masks.from_hf_perm_mask(perm), batch.query_allowed)
    with pytest.raises(TypeError, match="allowed must be a bool .* got torch.float32"):
        masks.to_hf_perm_mask(perm)
    with pytest.raises(ValueError, match=r"allowed must have shape \(B, T, T\), got \(9, 9\)"):
        masks.to_hf_perm_mask(batch.query_allowed[0])
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        masks.to_hf_perm_mask(batch.query_allowed, torch.long)
    with pytest.raises(ValueError, match=r"perm_mask must contain only 0 and 1 .* got values \[0.0, 0.5, 1.0\]"):
        masks.from_hf_perm_mask(perm * torch.tensor([1.0, 0.5, 1.0])[:, None, None])
    with pytest.raises(ValueError, match=r"perm_mask must have shape \(B, T, T\), got \(9, 9\)"):
        masks.from_hf_perm_mask(perm[0])


def test_hf_streams_attend_exactly_where_our_masks_allow(hf_lm):
    """The claim behind to_hf_perm_mask, read off Hugging Face's own attention weights: with perm_mask =
    1 − query_allowed its query stream attends where query_allowed is True, and its content stream (perm_mask
    with the diagonal cleared) where content_allowed is True — at every real position, in every head and layer.
    The weights themselves match ours too."""
    ours = ours_from(hf_lm)
    _, batch = inputs(3)
    with torch.no_grad():
        theirs = hf_lm(**hf_inputs(batch), output_attentions=True)
        mine = ours(**batch.model_inputs(), token_type_ids=SEGMENTS, return_attention=True)
    slots = batch.target_mapping.any(-1)  # (B, P)
    positions = batch.target_mapping.long().argmax(-1)  # (B, P)
    for layer, (hf_h, hf_g) in enumerate(theirs.attentions):  # (B, H, T, T) each; hf_g's rows are positions
        content_seen = (hf_h > 0).transpose(1, 2)[VALID]  # (N real, H, T)
        assert torch.equal(content_seen, batch.content_allowed[VALID][:, None].expand_as(content_seen)), layer
        hf_g_rows = hf_g.gather(2, positions[:, None, :, None].expand(-1, hf_g.shape[1], -1, T))  # (B, H, P, T)
        query_rows = batch.query_allowed.gather(1, positions[..., None].expand(-1, -1, T))  # (B, P, T)
        query_seen = (hf_g_rows > 0).transpose(1, 2)[slots]  # (N targets, H, T)
        assert torch.equal(query_seen, query_rows[slots][:, None].expand_as(query_seen)), layer
        torch.testing.assert_close(
            mine.xlnet.attentions[layer].transpose(1, 2)[VALID], hf_h.transpose(1, 2)[VALID], **TOL[torch.float32]
        )
        torch.testing.assert_close(
            mine.xlnet.query_attentions[layer].transpose(1, 2)[slots],
            hf_g_rows.transpose(1, 2)[slots],
            **TOL[torch.float32],
        )
    # where they differ: a padded query of HF's content stream sees itself (the cleared diagonal), ours does not
    hf_pad_self = theirs.attentions[0][0].diagonal(dim1=-2, dim2=-1).transpose(1, 2)[~VALID]  # (N pad, H)
    our_pad_self = mine.xlnet.attentions[0].diagonal(dim1=-2, dim2=-1).transpose(1, 2)[~VALID]
    assert (hf_pad_self > 0).all() and (our_pad_self == 0).all()
    # not vacuous: the content stream of a real token sees itself, its query stream does not
    real_self = batch.content_allowed.diagonal(dim1=-2, dim2=-1)[VALID]
    assert real_self.all() and not batch.query_allowed.diagonal(dim1=-2, dim2=-1).any()


# ---- HF -> ours: the permuted LM ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("impl", IMPLS)
def test_plm_logits_loss_and_streams_match_hf(hf_lm, impl, dtype):
    theirs_model = in_dtype(hf_lm, dtype)
    ours = ours_from(hf_lm, impl, dtype)
    _, batch = inputs(2)
    tol = TOL[dtype]
    with torch.no_grad():
        theirs = theirs_model(**hf_inputs(batch, dtype), output_hidden_states=True)
        mine = ours(**batch.model_inputs(), token_type_ids=SEGMENTS)
    assert mine.logits.dtype == theirs.logits.dtype == dtype
    torch.testing.assert_close(mine.logits, theirs.logits, **tol)  # every slot, the empty one included
    torch.testing.assert_close(mine.loss, theirs.loss, **tol)
    # Hugging Face lists (h, g) after the embedding and after every layer: h0, g0, h1, g1, h2, g2
    content, query = theirs.hidden_states[0::2], theirs.hidden_states[1::2]
    assert len(content) == len(mine.xlnet.hidden_states) == 3
    for a, b in zip(mine.xlnet.hidden_states, content):
        torch.testing.assert_close(a[VALID], b[VALID], **tol)
    torch.testing.assert_close(mine.xlnet.query_state, query[-1], **tol)
    # the order matters: another order of the same tokens gives other logits (so the comparison is not vacuous)
    other = permute_batch(batch.input_ids, VALID, k=3, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        moved = ours(**{**batch.model_inputs(), "query_allowed": other.query_allowed}, token_type_ids=SEGMENTS)
    assert (moved.logits - mine.logits).abs().max() > 1e-2


def test_gradients_match_hf(hf_lm):
    """The backward pass too: every parameter's gradient of the PLM loss, name by name (float32)."""
    ours = ours_from(hf_lm)
    theirs = copy.deepcopy(hf_lm)
    _, batch = inputs(4)
    theirs(**hf_inputs(batch)).loss.backward()
    ours(**batch.model_inputs(), token_type_ids=SEGMENTS).loss.backward()
    hf_grads = {name: p.grad for name, p in theirs.named_parameters()}
    hf_grads["lm_loss.weight"] = hf_grads.get("lm_loss.weight", hf_grads["transformer.word_embedding.weight"])
    converted, _ = hf_xlnet.state_dict_from_hf(hf_grads, ours.config, lm_head=True)  # grads in our layout
    ours_params = dict(ours.named_parameters())
    for name, param in ours_params.items():
        torch.testing.assert_close(param.grad, converted[name], rtol=1e-4, atol=1e-6, msg=name)
    assert ours_params["xlnet.mask_embedding"].grad.abs().sum() > 0  # the query stream's start is trained
    assert ours_params["xlnet.layers.0.attn.segment_embedding"].grad.abs().sum() > 0


# ---- HF -> ours: the content stream alone -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("impl", IMPLS)
def test_content_stream_matches_hf_xlnet_model(impl, dtype):
    """XLNetModel without targets — the fine-tuning encoder — with padding and two segments, no perm_mask.
    Ours gets no mask: it derives the padding from pad_id (= Hugging Face's pad_token_id)."""
    hf = hf_model("XLNetModel", seed=5)
    theirs_model, ours = in_dtype(hf, dtype), ours_from(hf, impl, dtype)
    assert ours.config.pad_id == PAD
    ids, _ = inputs(6)
    with torch.no_grad():
        theirs = theirs_model(input_ids=ids, attention_mask=VALID.long(), token_type_ids=SEGMENTS)
        mine = ours(ids, token_type_ids=SEGMENTS)
    assert mine.query_state is None
    torch.testing.assert_close(mine.last_hidden_state[VALID], theirs.last_hidden_state[VALID], **TOL[dtype])
    assert (mine.last_hidden_state[VALID] - ours(ids).last_hidden_state[VALID]).abs().max() > 1e-2  # segments matter


def test_no_segments_matches_hf_without_a_segment_term():
    """Without token_type_ids Hugging Face drops the segment term; ours scores every pair as "same segment".
    That term, (q_i + b)·s_same, is the same for every key of a row, and softmax ignores a per-row shift."""
    hf = hf_model("XLNetModel", seed=7)
    ours = ours_from(hf)
    assert ours.layers[0].attn.segment_embedding[0].abs().min() > 0  # the term is not trivially zero
    ids, _ = inputs(8)
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=VALID.long()).last_hidden_state
        mine = ours(ids, valid=VALID).last_hidden_state
    torch.testing.assert_close(mine[VALID], theirs[VALID], **TOL[torch.float32])


def test_a_fully_blocked_query_row_is_uniform_in_hf_and_zero_in_ours(hf_lm):
    """The known divergence. A target first in its order sees nothing. Hugging Face subtracts 1e30 from every
    score of that row, so softmax makes it a uniform average over *all* T keys (padding included); ours gives it
    zero weights and a zero attention output (the package's rule for rows with nothing allowed). The other
    target of the same sequence is unaffected and still matches."""
    ours = ours_from(hf_lm)
    order = torch.tensor([[4, 0, 2, 1, 3, 5, 6, 7, 8]])  # position 4 first; 7 and 8 are padding
    valid = VALID[1:2]  # length 7
    ids = torch.randint(1, V, (1, T), generator=torch.Generator().manual_seed(9)).masked_fill(~valid, PAD)
    content, query = permutation_masks(ranks_from_order(order), valid)
    mapping = torch.zeros(1, 2, T, dtype=torch.bool)
    mapping[0, 0, 4] = mapping[0, 1, 3] = True  # targets: position 4 (rank 0, sees nothing) and 3 (rank 4)
    assert not query[0, 4].any() and query[0, 3].sum() == 4
    with torch.no_grad():
        theirs = hf_lm(
            input_ids=ids,
            attention_mask=valid.long(),
            perm_mask=masks.to_hf_perm_mask(query),
            target_mapping=mapping.float(),
            output_attentions=True,
        )
        mine = ours(
            ids,
            valid=valid,
            content_allowed=content,
            query_allowed=query,
            target_mapping=mapping,
            return_attention=True,
        )
    hf_row = theirs.attentions[0][1][0, :, 4]  # layer 0, query stream, row of position 4: (H, T)
    torch.testing.assert_close(hf_row, torch.full_like(hf_row, 1 / T), rtol=0, atol=1e-7)  # uniform over all 9
    assert torch.equal(mine.xlnet.query_attentions[0][0, :, 0], torch.zeros(hf_row.shape))  # ours: nothing
    assert (mine.logits[0, 0] - theirs.logits[0, 0]).abs().max() > 1e-2  # so the predictions differ
    torch.testing.assert_close(mine.logits[0, 1], theirs.logits[0, 1], **TOL[torch.float32])


# ---- ours -> HF ----------------------------------------------------------------------------------------------------


def our_model(cls=XLNetLMHeadModel, seed: int = 10):
    config = XLNetConfig.tiny(vocab_size=V, d_ff=48, pad_id=PAD)
    torch.manual_seed(seed)
    return randomize_hf_(cls(config), seed).eval()  # every parameter away from N(0, 0.02²) and 1/0


def test_ours_to_hf_loads_strictly_gives_the_same_outputs_and_round_trips_exactly():
    ours = our_model()
    sd = hf_xlnet.state_dict_to_hf(ours.state_dict(), ours.config)
    theirs = transformers.XLNetLMHeadModel(
        transformers.XLNetConfig(**hf_xlnet.config_to_hf(ours.config), attn_implementation="eager")
    ).eval()
    assert set(sd) == set(theirs.state_dict())  # the tied head under both of HF's names
    result = theirs.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert theirs.lm_loss.weight is theirs.transformer.word_embedding.weight
    _, batch = inputs(11)
    with torch.no_grad():
        mine = ours(**batch.model_inputs(), token_type_ids=SEGMENTS)
        out = theirs(**hf_inputs(batch))
    torch.testing.assert_close(out.logits, mine.logits, **TOL[torch.float32])
    torch.testing.assert_close(out.loss, mine.loss, **TOL[torch.float32])
    # and back again: ours -> HF -> ours is the identity on every tensor
    again = XLNetLMHeadModel.from_hf(theirs)
    assert again.lm_head.decoder.weight is again.xlnet.embedding.weight
    for name, tensor in ours.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    sd["transformer.word_embedding.weight"].zero_()  # detached copies: editing the export leaves ours alone
    assert ours.xlnet.embedding.weight.abs().sum() > 0


def test_xlnet_model_export_has_hf_xlnet_model_keys():
    ours = our_model(XLNetModel, seed=12)
    theirs = transformers.XLNetModel(transformers.XLNetConfig(**hf_xlnet.config_to_hf(ours.config))).eval()
    sd = hf_xlnet.state_dict_to_hf(ours.state_dict(), ours.config)
    assert set(sd) == set(theirs.state_dict())
    theirs.load_state_dict(sd, strict=True)
    ids, _ = inputs(13)
    with torch.no_grad():
        expected = ours(ids, token_type_ids=SEGMENTS).last_hidden_state
        got = theirs(input_ids=ids, attention_mask=VALID.long(), token_type_ids=SEGMENTS).last_hidden_state
    torch.testing.assert_close(got[VALID], expected[VALID], **TOL[torch.float32])


def test_layouts_of_the_projections():
    """q, k, v, r are stored (D, H, Dh) and used input-major; o is stored (D, H, Dh) and used output-major."""
    hf = hf_model("XLNetModel", seed=14)
    state, _ = hf_xlnet.state_dict_from_hf(hf.state_dict(), hf_xlnet.config_from_hf(hf.config.to_dict()))
    attn = hf.layer[1].rel_attn
    x = torch.randn(5, 32, generator=torch.Generator().manual_seed(15))  # (N, D)
    a = torch.randn(5, 4, 8, generator=torch.Generator().manual_seed(16))  # (N, H, Dh)
    for name, ours_name in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("r", "r_proj")):
        expected = torch.einsum("ih,hnd->ind", x, getattr(attn, name)).flatten(1)  # HF: (N, H, Dh) -> (N, H·Dh)
        torch.testing.assert_close(x @ state[f"layers.1.attn.{ours_name}.weight"].T, expected, rtol=0, atol=1e-6)
    expected = torch.einsum("ind,hnd->ih", a, attn.o)  # HF's post_attention projection: (N, D)
    torch.testing.assert_close(a.flatten(1) @ state["layers.1.attn.out_proj.weight"].T, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(state["mask_embedding"], hf.mask_emb.reshape(-1), rtol=0, atol=0)


# ---- configs ------------------------------------------------------------------------------------------------------


def test_config_round_trip():
    config = XLNetConfig.base(dropout=0.05, attention_dropout=0.05, layer_norm_eps=1e-7, pad_id=5)
    hf_config = transformers.XLNetConfig(**hf_xlnet.config_to_hf(config))
    assert hf_xlnet.config_from_hf(hf_config.to_dict()) == config
    assert (hf_config.d_head, hf_config.n_layer, hf_config.d_inner, hf_config.mem_len) == (64, 12, 3072, None)
    no_pad = XLNetConfig.tiny()
    assert hf_xlnet.config_from_hf(transformers.XLNetConfig(**hf_xlnet.config_to_hf(no_pad)).to_dict()) == no_pad
    with pytest.raises(ValueError, match="one dropout rate; this config has dropout=0.1 and attention_dropout=0.0"):
        hf_xlnet.config_to_hf(XLNetConfig.tiny(dropout=0.1))
    with pytest.raises(TypeError, match="config must be an XLNetConfig, got dict"):
        hf_xlnet.config_to_hf({})


def test_base_sizes_match_hf_parameter_count():
    """XLNetConfig.base() converted to Hugging Face's config counts the same 116,750,336 parameters (meta device:
    nothing is allocated)."""
    with torch.device("meta"):
        theirs = transformers.XLNetLMHeadModel(transformers.XLNetConfig(**hf_xlnet.config_to_hf(XLNetConfig.base())))
        ours = XLNetLMHeadModel(XLNetConfig.base())
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters()) == 116_750_336


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("attn_type", "uni", "attn_type='uni'; expected 'bi'"),
        ("mem_len", 512, "mem_len=512; expected null: our XLNet has no Transformer-XL memory"),
        ("reuse_len", 256, "reuse_len=256; expected null"),
        ("bi_data", True, "bi_data=True; expected False"),
        ("clamp_len", 4, "clamp_len=4; expected ≤ 0"),
        ("ff_activation", "relu", "ff_activation='relu'; expected 'gelu'"),
        ("tie_word_embeddings", False, "tie_word_embeddings=False; expected True"),
        ("model_type", "bert", "model_type='bert'; expected 'xlnet'"),
        ("d_head", 16, "d_head=16, n_head=4, d_model=32"),
    ],
)
def test_unsupported_configs_are_refused(field, value, message):
    hf_config = {**transformers.XLNetConfig(**HF_CONFIG).to_dict(), field: value}
    with pytest.raises(ValueError, match=message):
        hf_xlnet.config_from_hf(hf_config)


def test_config_needs_the_sizes_and_accepts_what_does_not_change_the_computation():
    hf_config = transformers.XLNetConfig(**HF_CONFIG).to_dict()
    with pytest.raises(ValueError, match=r"lacks the XLNet field\(s\) \['d_inner'\]"):
        hf_xlnet.config_from_hf({k: v for k, v in hf_config.items() if k != "d_inner"})
    with pytest.raises(TypeError, match="must be a mapping"):
        hf_xlnet.config_from_hf([("d_model", 32)])
    # same_length only matters for attn_type="uni"; untie_r only in the original TensorFlow code; mem_len 0 = none
    relaxed = {**hf_config, "same_length": True, "untie_r": False, "mem_len": 0, "clamp_len": -1}
    assert hf_xlnet.config_from_hf(relaxed) == hf_xlnet.config_from_hf(hf_config)
    assert hf_xlnet.config_from_hf(hf_config) == XLNetConfig(
        vocab_size=V, d_model=32, n_heads=4, n_layers=2, d_ff=48, dropout=0.0, attention_dropout=0.0, pad_id=PAD
    )


# ---- state-dict mismatches -----------------------------------------------------------------------------------------


def test_untied_head_is_refused(hf_lm):
    sd = dict(hf_lm.state_dict())
    sd["lm_loss.weight"] = sd["lm_loss.weight"] + 1.0
    config = hf_xlnet.config_from_hf(hf_lm.config.to_dict())
    with pytest.raises(ValueError, match="lm_loss.weight differs from transformer.word_embedding.weight: .* not tied"):
        hf_xlnet.state_dict_from_hf(sd, config, lm_head=True)
    ours = XLNetLMHeadModel(config)
    state = dict(ours.state_dict())
    state["lm_head.decoder.weight"] = state["lm_head.decoder.weight"] + 1.0
    with pytest.raises(ValueError, match="lm_head.decoder.weight differs from xlnet.embedding.weight"):
        hf_xlnet.state_dict_to_hf(state, config)


def test_missing_unexpected_and_misshapen_keys_are_listed(hf_lm):
    config = hf_xlnet.config_from_hf(hf_lm.config.to_dict())
    sd = dict(hf_lm.state_dict())
    del sd["transformer.layer.1.rel_attn.seg_embed"]
    sd["transformer.layer.2.rel_attn.q"] = torch.zeros(32, 4, 8)
    with pytest.raises(ValueError, match="missing keys") as err:
        hf_xlnet.state_dict_from_hf(sd, config, lm_head=True)
    assert "missing keys (1): ['transformer.layer.1.rel_attn.seg_embed']" in str(err.value)
    assert "unexpected keys (1): ['transformer.layer.2.rel_attn.q']" in str(err.value)
    state, (missing, unexpected) = hf_xlnet.state_dict_from_hf(sd, config, lm_head=True, strict=False)
    assert missing == ["transformer.layer.1.rel_attn.seg_embed"] and unexpected == ["transformer.layer.2.rel_attn.q"]
    assert "xlnet.layers.1.attn.segment_embedding" not in state and "xlnet.layers.1.attn.q_proj.weight" in state
    wider = dataclasses.replace(config, n_heads=8)  # same D, other head split: caught by the (H, Dh) tensors
    with pytest.raises(ValueError, match=r"transformer.layer.0.rel_attn.r_w_bias \(4, 8\) -> .*content_bias \(8, 4\)"):
        hf_xlnet.state_dict_from_hf(hf_lm.state_dict(), wider, lm_head=True)
    with pytest.raises(TypeError, match="config must be an XLNetConfig, got BertConfig"):
        hf_xlnet.state_dict_from_hf(hf_lm.state_dict(), transformers.BertConfig(), lm_head=True)
    ours = XLNetLMHeadModel(config).state_dict()
    del ours["xlnet.layers.0.ff.w1.bias"]
    with pytest.raises(ValueError, match=r"lacks these keys of our XLNetLMHeadModel\(n_layers=2\): \['xlnet.layers.0"):
        hf_xlnet.state_dict_to_hf(ours, config)


def test_an_xlnet_model_loads_the_encoder_of_an_lm_checkpoint(hf_lm):
    config = hf_xlnet.config_from_hf(hf_lm.config.to_dict())
    with pytest.raises(ValueError, match=r"unexpected keys \(2\): \['lm_loss.bias', 'lm_loss.weight'\]"):
        hf_xlnet.state_dict_from_hf(hf_lm.state_dict(), config)
    state, result = hf_xlnet.state_dict_from_hf(hf_lm.state_dict(), config, strict=False)
    assert result == ([], ["lm_loss.bias", "lm_loss.weight"])
    ours = XLNetModel(config).eval()
    ours.load_state_dict(state)
    torch.testing.assert_close(ours.embedding.weight, hf_lm.transformer.word_embedding.weight, rtol=0, atol=0)


def test_key_pairs_cover_every_tensor_once():
    pairs = hf_xlnet.key_pairs(2, lm_head=True)
    theirs = transformers.XLNetLMHeadModel(transformers.XLNetConfig(**HF_CONFIG)).state_dict()
    ours = XLNetLMHeadModel(hf_xlnet.config_from_hf(transformers.XLNetConfig(**HF_CONFIG).to_dict())).state_dict()
    assert {t for t, _ in pairs} == set(theirs) - {"lm_loss.weight"}
    assert {o for _, o in pairs} == set(ours) - {"lm_head.decoder.weight"}
    assert len(pairs) == len(set(pairs)) == 2 * 17 + 3


# ---- from_pretrained (local folders) -------------------------------------------------------------------------------


def test_from_pretrained_reads_saved_hf_folders(tmp_path, hf_lm):
    hf_lm.save_pretrained(tmp_path / "lm", safe_serialization=True)
    ours = XLNetLMHeadModel.from_pretrained(tmp_path / "lm")
    assert not ours.training and ours.lm_head.decoder.weight is ours.xlnet.embedding.weight
    _, batch = inputs(17)
    with torch.no_grad():
        expected = hf_lm(**hf_inputs(batch)).logits
        got = ours(**batch.model_inputs(), token_type_ids=SEGMENTS).logits
    torch.testing.assert_close(got, expected, **TOL[torch.float32])
    hf = hf_model("XLNetModel", seed=18)
    hf.save_pretrained(tmp_path / "base", safe_serialization=True)
    encoder = XLNetModel.from_pretrained(str(tmp_path / "base"), dtype=torch.float64)
    assert encoder.embedding.weight.dtype == torch.float64
    torch.testing.assert_close(encoder.embedding.weight.float(), hf.word_embedding.weight, rtol=0, atol=0)


def test_from_pretrained_errors_are_clear(tmp_path, hf_lm):
    config = hf_lm.config.to_dict()
    tensors = {k: v.contiguous() for k, v in hf_lm.state_dict().items() if k != "lm_loss.weight"}

    def folder(name, config_json, weights=None):
        path = tmp_path / name
        path.mkdir()
        (path / "config.json").write_text(json.dumps(config_json))
        if weights is not None:
            safetensors_torch.save_file(weights, str(path / "model.safetensors"))
        return path

    pickled = folder("pickle", config)
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="only pickle weights .* are not loaded"):
        XLNetLMHeadModel.from_pretrained(pickled)
    with pytest.raises(ValueError, match="attn_type='uni'"):  # refused before the weights are read
        XLNetLMHeadModel.from_pretrained(folder("uni", {**config, "attn_type": "uni"}))
    with pytest.raises(ValueError, match=r"missing keys \(17\): \['transformer.layer.2.rel_attn.q'"):
        XLNetLMHeadModel.from_pretrained(folder("deeper", {**config, "n_layer": 3}, tensors))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        XLNetModel.from_pretrained(tmp_path / "nowhere")
