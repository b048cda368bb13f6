"""XLNet (models/xlnet.py, objectives/plm.py): NumPy reference parity, the three implementations, the permuted-LM
factorization checked literally (brute force), the query stream never seeing its own token, properties (padding,
content stream independent of targets, left-to-right as a special order, any order), the parameter count of
xlnet-base-cased against Hugging Face, input errors.

torch.compile is covered in test_compile.py, the objective's statistics in test_plm_objective.py.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from helpers import randomize_
from hypothesis import given
from strategies import plm_cases

from transformer_from_scratch import XLNetConfig, XLNetLMHeadModel
from transformer_from_scratch.objectives import permutation_masks, permute_batch
from transformer_from_scratch.positional import relative_sinusoids
from transformer_from_scratch.reference import xlnet as ref

V = 23
# Small enough for the loop-based NumPy reference: D=12, H=3 (Dh=4), 2 layers, F=20.
CONFIG = XLNetConfig.tiny(vocab_size=V, d_model=12, n_heads=3, n_layers=2, d_ff=20)
IMPLS = ("plain", "kernels", "torch")


def model64(seed: int = 0, impl: str = "plain", n_layers: int = 2) -> XLNetLMHeadModel:
    """Every parameter random (LayerNorm gains/biases, u, v, b, segment vectors, mask embedding, head bias too)."""
    config = dataclasses.replace(CONFIG, impl=impl, n_layers=n_layers)
    return randomize_(XLNetLMHeadModel(config).double().eval(), seed)


@functools.cache
def shared_model() -> XLNetLMHeadModel:
    """One random float64 model for the hypothesis properties (they never train it)."""
    return model64(seed=11)


def standard_batch(k: float = 2.0, seed: int = 0):
    """B=3, T=7: row 0 full, rows 1 and 2 right-padded, two segments per row; an order from permute_batch.

    -> (PermutationBatch, token_type_ids). k=2 predicts about half the tokens, so target slots are left empty in
    the shorter rows (label -100, attending to nothing).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (3, 7), generator=g)
    valid = torch.arange(7) < torch.tensor([[7], [5], [3]])  # (B, T)
    token_type_ids = (torch.arange(7) >= torch.tensor([[4], [2], [1]])).long()  # (B, T): segments 0 then 1
    return permute_batch(ids, valid, k=k, generator=g), token_type_ids


def forward(model, batch, token_type_ids, **overrides):
    return model(**{**batch.model_inputs(), "token_type_ids": token_type_ids, **overrides})


def reference(model, batch, token_type_ids, masks: str = "order") -> ref.XLNetStreams:
    """The NumPy reference on the batch: ``masks`` "order" passes the batch's content/query masks and targets,
    "default" only its targets (the model's default masks), "none" neither (the content-stream encoder)."""
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    c = model.config
    order, targets = masks == "order", masks != "none"
    return ref.xlnet_lm(
        batch.input_ids.numpy(),
        weights,
        n_heads=c.n_heads,
        n_layers=c.n_layers,
        eps=c.layer_norm_eps,
        valid=batch.valid.numpy(),
        token_type_ids=token_type_ids.numpy(),
        content_allowed=batch.content_allowed.numpy() if order else None,
        query_allowed=batch.query_allowed.numpy() if order else None,
        target_mapping=batch.target_mapping.numpy() if targets else None,
    )


def rel_error(ours: torch.Tensor, expected: np.ndarray) -> float:
    """Largest error relative to the reference's overall scale (as verification.py measures it)."""
    return float(np.abs(ours.detach().double().numpy() - expected).max() / np.abs(expected).max())


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max())


# ---- the NumPy reference ------------------------------------------------------------------------------------


def test_reference_relative_encoding_and_masks_match_the_package():
    distances = torch.arange(-6, 7)
    table = relative_sinusoids(distances, 12).numpy()  # (13, 12)
    expected = np.stack([ref.relative_encoding(int(d), 12) for d in distances])
    np.testing.assert_allclose(table, expected, rtol=0, atol=1e-15)
    assert expected[9, 0] == pytest.approx(np.sin(3.0)) and expected[9, 6] == pytest.approx(np.cos(3.0))  # Δ=3, ω0=1
    batch, _ = standard_batch()
    rank = np.zeros((3, 7), dtype=np.int64)
    for b, k in np.ndindex(3, 7):
        rank[b, batch.order[b, k]] = k  # position order[b, k] is produced at step k
    assert np.array_equal(batch.rank.numpy(), rank)
    content, query = ref.permutation_masks(rank, batch.valid.numpy())
    assert np.array_equal(batch.content_allowed.numpy(), content)
    assert np.array_equal(batch.query_allowed.numpy(), query)


@pytest.mark.parametrize("masks", ["order", "default", "none"])
def test_matches_numpy_reference_float64(masks):
    """order: the two streams under a permutation's masks; default: targets with the default masks (no token sees
    a target but itself; a target sees every other non-target token); none: the content-stream encoder alone."""
    model = model64(seed=1)
    batch, token_type_ids = standard_batch()
    assert (batch.labels == -100).any() and (token_type_ids == 1).any()  # empty slots, two segments
    r = reference(model, batch, token_type_ids, masks)
    inputs = {"input_ids": batch.input_ids, "valid": batch.valid, "token_type_ids": token_type_ids}
    if masks == "order":
        inputs.update(content_allowed=batch.content_allowed, query_allowed=batch.query_allowed)
    if masks != "none":
        out = model(**inputs, target_mapping=batch.target_mapping, labels=batch.labels)
        assert rel_error(out.xlnet.query_state, r.query) <= 1e-10
        expected_loss = ref.plm_loss(r.logits, batch.labels.numpy())
        assert abs(out.loss.item() - expected_loss) <= 1e-10 * abs(expected_loss)
    else:  # logits from the content stream
        out = model(**inputs)
        assert out.xlnet.query_state is None and r.query is None
    assert rel_error(out.logits, r.logits) <= 1e-10
    assert rel_error(out.xlnet.last_hidden_state, r.content) <= 1e-10
    for ours, theirs in zip(out.xlnet.hidden_states, r.content_states, strict=True):
        assert rel_error(ours, theirs) <= 1e-10


def test_matches_numpy_reference_float32():
    model = randomize_(XLNetLMHeadModel(CONFIG).eval(), seed=2)
    batch, token_type_ids = standard_batch(seed=1)
    r = reference(model, batch, token_type_ids)
    out = forward(model, batch, token_type_ids)
    # float32 rounding through two blocks: measured ≤ 1.2e-6 absolute, ~1e-7 of the outputs' scale (~3); a wrong
    # term is orders of magnitude more
    for ours, theirs in (
        (out.logits, r.logits),
        (out.xlnet.query_state, r.query),
        (out.xlnet.last_hidden_state, r.content),
    ):
        torch.testing.assert_close(ours.double(), torch.from_numpy(theirs), rtol=1e-5, atol=1e-6)
    expected_loss = ref.plm_loss(r.logits, batch.labels.numpy())
    assert abs(out.loss.item() - expected_loss) <= 1e-5 * abs(expected_loss)


def test_three_implementations_agree_in_float64_with_gradients():
    batch, token_type_ids = standard_batch(seed=2)
    results = {}
    for impl in IMPLS:
        model = model64(seed=3, impl=impl)
        out = forward(model, batch, token_type_ids)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results[impl] = (out.logits.detach(), out.xlnet.last_hidden_state.detach(), out.loss.detach(), grads)
    logits, content, loss, grads = results["plain"]
    assert all(g.abs().max() > 0 for g in grads.values())  # every parameter takes part
    for impl in IMPLS[1:]:
        o_logits, o_content, o_loss, o_grads = results[impl]
        torch.testing.assert_close(o_logits, logits, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(o_content, content, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(o_loss, loss, rtol=1e-10, atol=0)
        for name, grad in grads.items():
            torch.testing.assert_close(o_grads[name], grad, rtol=1e-10, atol=1e-12, msg=f"{impl}: {name}")


# ---- the permuted-LM factorization, literally --------------------------------------------------------------


def hide_from(ids, valid, order, b: int, position: int, g: torch.Generator):
    """Row b with every token that does not come before ``position`` in the order z (itself included) replaced by
    another id and marked as not there: (1, T) ids and valid. Read from z itself (z_<t = order[:t]), not from the
    ranks, so an order confused with its inverse shows."""
    step = order[b].tolist().index(position)  # t with z_t = position
    hidden = torch.ones(ids.shape[1], dtype=torch.bool)
    hidden[order[b, :step]] = False  # the positions z_<t stay
    other = (ids[b] + torch.randint(1, V, ids[b].shape, generator=g)) % V  # a different id everywhere
    return torch.where(hidden, other, ids[b])[None], (valid[b] & ~hidden)[None]


@pytest.mark.parametrize("impl", IMPLS)
def test_each_prediction_depends_only_on_the_tokens_before_it_in_the_order(impl):
    """p(x_{z_t} | x_{z<t}): for every target, a run that can see *only* the tokens before it in the order (the
    rest replaced and marked as padding, one target that may see every real token but itself) gives the batched
    run's logits."""
    model = model64(seed=4, impl=impl)
    batch, token_type_ids = standard_batch(k=1, seed=3)  # K=1: every real token is a target, the first one too
    batched = forward(model, batch, token_type_ids).logits.detach()  # (B, P, V)
    g = torch.Generator().manual_seed(0)
    worst, changed_when_visible, checked = 0.0, 0, 0
    for b, p in (batch.target_mapping.any(-1)).nonzero().tolist():
        position = int(batch.target_mapping[b, p].long().argmax())
        ids, valid = hide_from(batch.input_ids, batch.valid, batch.order, b, position, g)
        mapping = torch.zeros(1, 1, ids.shape[1], dtype=torch.bool)
        mapping[0, 0, position] = True
        common = dict(
            token_type_ids=token_type_ids[b : b + 1],
            content_allowed=batch.content_allowed[b : b + 1],
            query_allowed=~torch.eye(ids.shape[1], dtype=torch.bool),  # only valid= hides tokens from the target
        )
        alone = model(ids, valid=valid, target_mapping=mapping, **common).logits[0, 0]  # (V,)
        worst = max(worst, max_abs_diff(alone, batched[b, p]) / float(batched[b, p].abs().max()))
        checked += 1
        # The replaced tokens do matter once they are visible: this test can fail.
        seen = model(ids, valid=batch.valid[b : b + 1], target_mapping=mapping, **common).logits[0, 0]
        changed_when_visible += bool(max_abs_diff(seen, batched[b, p]) > 1e-6)
    assert checked == int(batch.valid.sum())
    assert worst <= 1e-10, worst
    assert changed_when_visible >= checked - 3  # all but the last target of each row (nothing after it)


def embedding_gradients(model, logits_of, b: int, seed: int = 0) -> torch.Tensor:
    """d(r · logits_of(model)[b]) / d(embedding output) for a random r: (T, D) of row b, captured with a hook."""
    captured = []

    def keep(module, inputs, output):
        output.retain_grad()
        captured.append(output)

    handle = model.xlnet.embedding.register_forward_hook(keep)
    try:
        logits = logits_of(model)  # (V,)
    finally:
        handle.remove()
    r = torch.randn(logits.shape, generator=torch.Generator().manual_seed(seed), dtype=logits.dtype)
    (logits * r).sum().backward()
    return captured[0].grad[b]


def own_token_gradients(model, masks: str):
    """Row 0, the target 4th in its order: -> (gradient of its query-stream logits w.r.t. the embeddings (T, D),
    the same for the content-stream logits at its position, its position, the tokens it may see, those it may not).

    masks "order": a permutation's content and query masks; "default": only the target mapping, with this one
    target (the model's defaults: no token sees the target but itself, the target sees every other token).
    """
    batch, token_type_ids = standard_batch(k=1, seed=4)
    b = 0  # a full row: slot p is position p
    position = p = int(batch.order[b, 3])
    assert batch.target_mapping[b, p, position]
    inputs = dict(input_ids=batch.input_ids, valid=batch.valid, token_type_ids=token_type_ids)
    if masks == "order":
        inputs.update(content_allowed=batch.content_allowed)
        rank = batch.rank[b]
        seen, unseen = rank < rank[position], rank > rank[position]  # (T,) each: before / after it in the order
        assert seen.any() and unseen.any()  # the target sits mid-order, so both laws have something to say
    else:
        seen = torch.arange(7) != position  # every other token
        unseen = ~seen  # none
    query_allowed = batch.query_allowed if masks == "order" else None
    mapping = batch.target_mapping if masks == "order" else batch.target_mapping[:, p : p + 1]  # one slot: p
    slot = p if masks == "order" else 0
    query = embedding_gradients(
        model,
        lambda m: m(**inputs, query_allowed=query_allowed, target_mapping=mapping).logits[b, slot],
        b,
    )  # (T, D)
    content = embedding_gradients(model, lambda m: m(**inputs).logits[b, position], b)  # (T, D)
    return query, content, position, seen, unseen


@pytest.mark.parametrize(("masks", "n_layers"), [("order", 2), ("default", 1), ("default", 3)])
@pytest.mark.parametrize("impl", IMPLS)
def test_the_query_stream_never_sees_its_own_token(impl, masks, n_layers):
    """d logits(target) / d embedding(its own token) is exactly zero, while every token the target may see has a
    nonzero gradient — with a permutation's masks and with the model's default masks, at any depth."""
    model = model64(seed=5, impl=impl, n_layers=n_layers)
    grad, content, position, seen, unseen = own_token_gradients(model, masks)
    assert torch.equal(grad[position], torch.zeros_like(grad[position]))  # exactly zero: its own token
    assert torch.equal(grad[unseen], torch.zeros_like(grad[unseen]))  # and every token after it in the order
    assert (grad[seen].abs().amax(dim=-1) > 1e-6).all()  # every token before it counts
    # Sanity: the content stream at the same position does read its own token, so a leak would show.
    assert content[position].abs().max() > 1e-6


def test_the_default_masks_hide_a_target_from_the_other_tokens_content_too():
    """Hiding a target only from its own query row is not enough: from the second layer on it would read its token
    back through the other tokens' content states (HF's XLNet without a perm_mask lets it see itself outright)."""
    model = model64(seed=5, n_layers=2)
    batch, token_type_ids = standard_batch(k=1, seed=4)
    p = int(batch.order[0, 3])
    mapping = batch.target_mapping[:, p : p + 1]
    leaky = ~torch.eye(7, dtype=torch.bool)  # content sees everything, the query every token but itself
    inputs = dict(input_ids=batch.input_ids, valid=batch.valid, token_type_ids=token_type_ids, target_mapping=mapping)
    grad = embedding_gradients(
        model, lambda m: m(**inputs, content_allowed=~torch.zeros_like(leaky), query_allowed=leaky).logits[0, 0], 0
    )
    assert grad[p].abs().max() > 1e-6  # the leak these defaults exist to close
    grad = embedding_gradients(model, lambda m: m(**inputs).logits[0, 0], 0)
    assert torch.equal(grad[p], torch.zeros_like(grad[p]))


# ---- properties -----------------------------------------------------------------------------------------------


def pad_square(mask: torch.Tensor, extra: int) -> torch.Tensor:
    """(B, T, T) -> (B, T+e, T+e), the new keys *allowed* for every query: only ``valid`` says they are padding."""
    b, t, _ = mask.shape
    out = torch.ones(b, t + extra, t + extra, dtype=torch.bool)
    out[:, :t, :t] = mask
    return out


@given(case=plm_cases())
def test_extra_padding_at_the_end_changes_nothing(case):
    model = shared_model()
    ids, valid, token_type_ids = case.inputs(V)
    g = case.generator()
    batch = permute_batch(ids, valid, k=2, generator=g)
    out = forward(model, batch, token_type_ids)
    extra = int(torch.randint(1, 4, (), generator=g))
    b, t = ids.shape
    longer = dict(
        input_ids=torch.cat([ids, torch.randint(0, V, (b, extra), generator=g)], dim=1),
        valid=torch.cat([valid, torch.zeros(b, extra, dtype=torch.bool)], dim=1),
        token_type_ids=torch.cat([token_type_ids, torch.randint(0, 2, (b, extra), generator=g)], dim=1),
        content_allowed=pad_square(batch.content_allowed, extra),  # the masks allow the padding: valid must win
        query_allowed=pad_square(batch.query_allowed, extra),
        target_mapping=torch.cat(
            [batch.target_mapping, torch.zeros(b, batch.labels.shape[1], extra, dtype=torch.bool)], -1
        ),
        labels=batch.labels,
    )
    padded = model(**longer)
    torch.testing.assert_close(padded.logits, out.logits, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(padded.loss, out.loss, rtol=1e-12, atol=0)
    real = padded.xlnet.last_hidden_state[:, :t][valid]  # (N_real, D)
    torch.testing.assert_close(real, out.xlnet.last_hidden_state[valid], rtol=1e-12, atol=1e-12)


@given(case=plm_cases())
def test_the_content_stream_is_the_same_with_or_without_targets(case):
    model = shared_model()
    ids, valid, token_type_ids = case.inputs(V)
    batch = permute_batch(ids, valid, k=2, generator=case.generator())
    with_targets = forward(model, batch, token_type_ids).xlnet
    without = model(ids, valid=valid, token_type_ids=token_type_ids, content_allowed=batch.content_allowed).xlnet
    assert with_targets.query_state is not None and without.query_state is None
    for a, b in zip(with_targets.hidden_states, without.hidden_states, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


@given(case=plm_cases())
def test_the_identity_order_is_a_left_to_right_language_model(case):
    """rank = position: the content mask is causal, the query mask strictly causal, and target t is predicted
    from x_<t alone — changing tokens at t or after it never changes its prediction; changing one before does."""
    model = shared_model()
    ids, valid, token_type_ids = case.inputs(V)
    b, t = ids.shape
    valid = torch.ones_like(valid)  # no padding: every position is a target
    causal = torch.ones(t, t).tril().bool().expand(b, t, t)  # (B, T, T): key j ≤ query i
    strictly = torch.ones(t, t).tril(-1).bool().expand(b, t, t)  # key j < query i
    identity = torch.arange(t).expand(b, t)
    content, query = permutation_masks(identity, valid)
    assert torch.equal(content, causal) and torch.equal(query, strictly)
    mapping = torch.eye(t, dtype=torch.bool).expand(b, t, t)  # (B, P=T, T): target p at position p
    run = functools.partial(
        model,
        valid=valid,
        token_type_ids=token_type_ids,
        content_allowed=causal,
        query_allowed=strictly,
        target_mapping=mapping,
    )
    g = case.generator()
    cut = int(torch.randint(0, t, (), generator=g))
    later = ids.clone()
    later[:, cut:] = (later[:, cut:] + torch.randint(1, V, later[:, cut:].shape, generator=g)) % V  # ≥ cut differ
    base = run(ids).logits  # (B, T, V)
    torch.testing.assert_close(run(later).logits[:, : cut + 1], base[:, : cut + 1], rtol=0, atol=1e-12)
    if cut >= 1:  # a token before the target changes its prediction
        earlier = ids.clone()
        earlier[:, cut - 1] = (earlier[:, cut - 1] + 1) % V
        assert max_abs_diff(run(earlier).logits[:, cut], base[:, cut]) > 1e-6


@given(case=plm_cases())
def test_a_token_after_the_target_in_the_order_never_changes_its_prediction(case):
    model = shared_model()
    ids, valid, token_type_ids = case.inputs(V)
    g = case.generator()
    batch = permute_batch(ids, valid, k=1, generator=g)  # every real token is a target
    b = int(torch.randint(0, ids.shape[0], (), generator=g))
    j = int(torch.randint(0, int(valid[b].sum()), (), generator=g))  # a real position of row b
    changed = ids.clone()
    changed[b, j] = (changed[b, j] + int(torch.randint(1, V, (), generator=g))) % V
    base = forward(model, batch, token_type_ids).logits[b]  # (P, V)
    after = forward(model, batch, token_type_ids, input_ids=changed).logits[b]
    positions = batch.target_mapping[b].long().argmax(-1)  # (P,)
    filled = batch.target_mapping[b].any(-1)  # (P,)
    rank_of_target = batch.rank[b][positions]  # (P,)
    blind = filled & (rank_of_target <= batch.rank[b, j])  # j itself, and every target before j in the order
    sees = filled & (rank_of_target > batch.rank[b, j])
    torch.testing.assert_close(after[blind], base[blind], rtol=0, atol=1e-12)
    if sees.any():  # a target after j in the order reads it
        assert max_abs_diff(after[sees], base[sees]) > 1e-6


# ---- size ---------------------------------------------------------------------------------------------------


def test_xlnet_base_has_116_750_336_parameters_as_hugging_face():
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.XLNetConfig(
        vocab_size=32_000, d_model=768, n_layer=12, n_head=12, d_inner=3072, ff_activation="gelu"
    )
    with torch.device("meta"):  # shapes only, no memory
        ours = XLNetLMHeadModel(XLNetConfig.base())
        theirs = transformers.XLNetLMHeadModel(hf_config)
    count = sum(p.numel() for p in ours.parameters())  # the tied head weight is counted once
    assert count == sum(p.numel() for p in theirs.parameters()) == 116_750_336
    assert ours.lm_head.decoder.weight is ours.xlnet.embedding.weight


# ---- input errors -------------------------------------------------------------------------------------------


def _bad_inputs():
    ids = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(0))
    batch = permute_batch(ids, k=2, generator=torch.Generator().manual_seed(0))
    ok = batch.model_inputs()
    two_ones = batch.target_mapping.clone()
    two_ones[0, 0, :2] = True
    return {
        "content_allowed float": (
            TypeError,
            "content_allowed",
            {**ok, "content_allowed": ok["content_allowed"].float()},
        ),
        "content_allowed shape": (
            ValueError,
            "content_allowed",
            {**ok, "content_allowed": torch.ones(2, 5, 4, dtype=torch.bool)},
        ),
        "query_allowed int": (TypeError, "query_allowed", {**ok, "query_allowed": ok["query_allowed"].long()}),
        "query_allowed shape": (
            ValueError,
            "query_allowed",
            {**ok, "query_allowed": torch.ones(3, 5, 5, dtype=torch.bool)},
        ),
        "target_mapping two ones": (
            ValueError,
            "target_mapping must mark at most one",
            {**ok, "target_mapping": two_ones},
        ),
        "target_mapping shape": (ValueError, "target_mapping", {**ok, "target_mapping": ok["target_mapping"][..., :4]}),
        "target_mapping values": (
            ValueError,
            "target_mapping must hold 0/1",
            {**ok, "target_mapping": ok["target_mapping"].long() * 2},
        ),
        "query_allowed without target_mapping": (
            ValueError,
            "query_allowed",
            {k: v for k, v in ok.items() if k not in ("target_mapping", "labels")},
        ),
        "labels without target_mapping": (
            ValueError,
            "labels",
            {k: v for k, v in ok.items() if k not in ("target_mapping", "query_allowed")},
        ),
        "labels shape": (ValueError, "labels", {**ok, "labels": ok["labels"][:, :1].expand(2, 7)}),
        "token id too large": (ValueError, "input_ids", {**ok, "input_ids": torch.full((2, 5), V)}),
        "token id negative": (ValueError, "input_ids", {**ok, "input_ids": torch.full((2, 5), -1)}),
        "valid int": (TypeError, "valid", {**ok, "valid": ok["valid"].long()}),
        "token_type_ids shape": (
            ValueError,
            "token_type_ids",
            {**ok, "token_type_ids": torch.zeros(2, 4, dtype=torch.long)},
        ),
    }


BAD_INPUTS = _bad_inputs()


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_raise_naming_the_argument(name):
    error, argument, inputs = BAD_INPUTS[name]
    model = XLNetLMHeadModel(CONFIG)
    with pytest.raises(error, match=argument):
        model(**inputs)
