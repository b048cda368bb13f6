"""Fine-tuning heads and task models (heads.py, models/bert_tasks.py, GPTForSequenceClassification): best_span
against a brute-force search, losses against torch's, mean pooling against a hand computation, padding
invariance, the last real token of a decoder, and the errors a learner meets.

Hugging Face parity of the same models is in test_interop_hf_bert_tasks.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import randomize_
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch import heads, masks
from transformer_from_scratch.config import BertConfig, GPTConfig
from transformer_from_scratch.heads import (
    SequenceClassificationHead,
    SpanQAHead,
    TokenClassificationHead,
    best_span,
    classification_loss,
    span_loss,
    token_classification_loss,
)
from transformer_from_scratch.models import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    GPTForSequenceClassification,
)

TOL64 = dict(rtol=1e-12, atol=1e-12)
LENGTHS = [9, 5, 2]
VALID = masks.padding_mask_from_lengths(LENGTHS, max_len=9)  # (3, 9), right padding


def bert64(cls, *args, seed: int = 0, **kwargs):
    """A tiny task model in float64 with every parameter randomised (no bias or norm left at 0/1), eval mode."""
    torch.manual_seed(seed)
    return randomize_(cls(BertConfig.tiny(), *args, **kwargs), seed).double().eval()


def random_ids(shape, seed: int, vocab: int = 100, low: int = 1) -> torch.Tensor:
    return torch.randint(low, vocab, shape, generator=torch.Generator().manual_seed(seed))


# ---- best_span ----------------------------------------------------------------------------------------------


def brute_force_span(start, end, allowed, max_answer_len):
    """Every (i, j) pair, one by one: the legal one with the largest start_i + end_j (first found on ties)."""
    best = None
    for i in range(len(start)):
        for j in range(i, min(len(start), i + max_answer_len)):
            if allowed is not None and not (allowed[i] and allowed[j]):
                continue
            score = float(start[i] + end[j])
            if best is None or score > best[2]:
                best = (i, j, score)
    return best


@given(
    batch=st.integers(1, 3),
    t=st.integers(1, 12),
    max_answer_len=st.integers(1, 14),
    p_allowed=st.sampled_from([None, 0.2, 0.5, 0.9]),
    seed=st.integers(0, 2**16),
)
def test_best_span_equals_brute_force(batch, t, max_answer_len, p_allowed, seed):
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(batch, t, generator=g, dtype=torch.float64)
    end = torch.randn(batch, t, generator=g, dtype=torch.float64)
    allowed = None
    if p_allowed is not None:
        allowed = torch.rand(batch, t, generator=g) < p_allowed
        allowed[torch.arange(batch), torch.randint(0, t, (batch,), generator=g)] = True  # ≥ 1 legal span per row
    span = best_span(start, end, allowed=allowed, max_answer_len=max_answer_len)
    for b in range(batch):
        i, j, score = brute_force_span(start[b], end[b], None if allowed is None else allowed[b], max_answer_len)
        assert (int(span.start[b]), int(span.end[b])) == (i, j)
        assert abs(float(span.score[b]) - score) < 1e-12


def test_best_span_is_not_the_pair_of_separate_argmaxes():
    """The best start comes after the best end: the greedy answer is illegal, the joint search finds the best pair."""
    start = torch.tensor([[0.0, 0.0, 0.0, 5.0, 0.0]])
    end = torch.tensor([[0.0, 4.0, 0.0, 0.0, 2.0]])
    span = best_span(start, end)
    assert (int(span.start), int(span.end), float(span.score)) == (3, 4, 7.0)
    span = best_span(start, end, max_answer_len=1)  # only i == j: the best of start_i + end_i
    assert (int(span.start), int(span.end), float(span.score)) == (3, 3, 5.0)
    allowed = torch.tensor([[True, True, True, False, True]])  # no start at 3 any more
    span = best_span(start, end, allowed=allowed)
    assert (int(span.start), int(span.end), float(span.score)) == (0, 1, 4.0)  # ties (1, 1): the earlier start


def test_best_span_ties_go_to_the_earliest_span_and_infinite_logits_stay_legal():
    span = best_span(torch.zeros(1, 4), torch.zeros(1, 4), allowed=torch.tensor([[False, True, True, True]]))
    assert (int(span.start), int(span.end)) == (1, 1)
    minus_inf = torch.full((1, 4), float("-inf"))
    span = best_span(minus_inf, torch.zeros(1, 4), allowed=torch.tensor([[False, False, True, True]]))
    assert (int(span.start), int(span.end)) == (2, 2)  # every score is -inf: still a legal pair, not (0, 0)


def test_best_span_errors():
    start = torch.randn(2, 5)
    no_room = torch.tensor([[True] * 5, [False] * 5])
    with pytest.raises(ValueError, match=r"no legal answer span in row\(s\) \[1\]"):
        best_span(start, start, allowed=no_room)
    with pytest.raises(ValueError, match="max_answer_len must be ≥ 1, got 0"):
        best_span(start, start, max_answer_len=0)
    with pytest.raises(ValueError, match="same shape"):
        best_span(start, start[:, :4])
    with pytest.raises(ValueError, match="allowed must be a bool tensor"):
        best_span(start, start, allowed=no_room.long())
    with pytest.raises(ValueError, match="NaN"):
        best_span(start.masked_fill(no_room, float("nan")), start)


# ---- heads and losses ---------------------------------------------------------------------------------------


def test_heads_are_dropout_then_linear():
    torch.manual_seed(0)
    pooled, h = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 6, 8, dtype=torch.float64)
    seq = randomize_(SequenceClassificationHead(8, 3, dropout=0.5), 1).double().eval()
    torch.testing.assert_close(seq(pooled), pooled @ seq.linear.weight.T + seq.linear.bias, **TOL64)
    tok = randomize_(TokenClassificationHead(8, 5), 2).double().eval()
    torch.testing.assert_close(tok(h), h @ tok.linear.weight.T + tok.linear.bias, **TOL64)
    qa = randomize_(SpanQAHead(8), 3).double()
    start, end = qa(h)
    torch.testing.assert_close(start, h @ qa.linear.weight[0] + qa.linear.bias[0], **TOL64)
    torch.testing.assert_close(end, h @ qa.linear.weight[1] + qa.linear.bias[1], **TOL64)
    seq.train()  # dropout is really there: in training, p=0.5 changes the logits
    assert not torch.allclose(seq(pooled), pooled @ seq.linear.weight.T + seq.linear.bias)
    assert SequenceClassificationHead(8, 2, bias=False).linear.bias is None


def test_classification_loss_is_cross_entropy_or_mse():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([3, -100, 0, 1, -100])
    torch.testing.assert_close(classification_loss(logits, labels), F.cross_entropy(logits, labels), **TOL64)
    scores, targets = logits[:, :1], torch.randn(5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(classification_loss(scores, targets), F.mse_loss(scores[:, 0], targets), **TOL64)


def test_classification_loss_errors():
    logits = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\), got \(3, 1\)"):
        classification_loss(logits, torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must hold class ids in \[0, 4\) or -100 \(ignored\), got 4 at index"):
        classification_loss(logits, torch.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match="got -1"):
        classification_loss(logits, torch.tensor([0, -1, 1]))
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        classification_loss(logits, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match=r"regression head \(n_labels=1\) must be a floating-point"):
        classification_loss(logits[:, :1], torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\) = \(3,\), got \(3, 1\)"):
        classification_loss(logits[:, :1], torch.zeros(3, 1))


def test_token_loss_ignores_padded_positions_whatever_their_label():
    """Deviation from HF, pinned: with -100 on the padding both agree; with real labels there, ours ignores them."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 9, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (3, 9), generator=g)
    hf_style = F.cross_entropy(logits.reshape(-1, 5), labels.masked_fill(~VALID, -100).reshape(-1))
    torch.testing.assert_close(token_classification_loss(logits, labels, VALID), hf_style, **TOL64)
    scored_padding = F.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1))
    assert abs(float(scored_padding) - float(hf_style)) > 1e-3  # the labels on the padding would have mattered
    with pytest.raises(ValueError, match=r"labels must have the shape of input_ids \(3, 9\), got \(3, 8\)"):
        token_classification_loss(logits, labels[:, :8])
    with pytest.raises(ValueError, match=r"class ids in \[0, 5\)"):
        token_classification_loss(logits, labels + 1)


def test_span_loss_is_the_mean_of_two_cross_entropies_and_refuses_out_of_range_positions():
    g = torch.Generator().manual_seed(2)
    start, end = (
        torch.randn(3, 7, generator=g, dtype=torch.float64),
        torch.randn(3, 7, generator=g, dtype=torch.float64),
    )
    s, e = torch.tensor([1, 0, 6]), torch.tensor([2, 0, 6])
    expected = (F.cross_entropy(start, s) + F.cross_entropy(end, e)) / 2
    torch.testing.assert_close(span_loss(start, end, s, e), expected, **TOL64)
    with pytest.raises(
        ValueError, match=r"start_positions must hold token positions in \[0, 7\), got 7 at index \(2,\)"
    ):
        span_loss(start, end, torch.tensor([1, 0, 7]), e)
    with pytest.raises(ValueError, match=r"end_positions must have shape \(3,\)"):
        span_loss(start, end, s, e[:2])


# ---- BERT task models ---------------------------------------------------------------------------------------


def test_bert_model_without_pooler_and_the_valid_mask_it_reports():
    ids = random_ids((3, 9), 3)
    model = BertModel(BertConfig.tiny(), with_pooler=False).eval()
    out = model(ids, valid=VALID)
    assert out.pooled is None and model.pooler is None and torch.equal(out.valid, VALID)
    assert torch.equal(model(ids, attention_mask=VALID.long()).valid, VALID)
    assert model(ids).valid is None  # no pad_id, no mask: every token real
    padded = BertModel(BertConfig.tiny(pad_id=0)).eval()
    assert torch.equal(padded(ids.masked_fill(~VALID, 0)).valid, VALID)


def test_mean_pooling_classifier_equals_masked_mean_then_linear():
    model = bert64(BertForSequenceClassification, 3, pooling="mean")
    ids = random_ids((3, 9), 4)
    out = model(ids, valid=VALID)
    h = out.bert.last_hidden_state  # (B, T, D)
    by_hand = torch.stack([h[b, :n].mean(dim=0) for b, n in enumerate(LENGTHS)])  # real tokens only
    torch.testing.assert_close(out.pooled, by_hand, **TOL64)
    torch.testing.assert_close(out.logits, by_hand @ model.head.linear.weight.T + model.head.linear.bias, **TOL64)
    averaged_padding = h.mean(dim=1)  # the classic bug — would differ for the padded rows
    assert (out.pooled[1:] - averaged_padding[1:]).abs().max() > 1e-3
    assert model.bert.pooler is None


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_sequence_classifier_is_padding_invariant(pooling):
    """Each row alone, unpadded, gives the logits it gets in the padded batch."""
    model = bert64(BertForSequenceClassification, 4, pooling=pooling, seed=5)
    ids = random_ids((3, 9), 6)
    segments = (torch.arange(9) >= 1).long().expand(3, 9)
    batched = model(ids, token_type_ids=segments, valid=VALID).logits
    for b, n in enumerate(LENGTHS):
        alone = model(ids[b : b + 1, :n], token_type_ids=segments[b : b + 1, :n]).logits
        torch.testing.assert_close(batched[b : b + 1], alone, **TOL64)
    junk = ids.masked_fill(~VALID, 7)  # other ids in the padding: nothing changes
    torch.testing.assert_close(model(junk, token_type_ids=segments, valid=VALID).logits, batched, **TOL64)


def test_cls_pooling_uses_berts_tanh_pooler():
    model = bert64(BertForSequenceClassification, 2, seed=7)
    out = model(random_ids((3, 9), 8), valid=VALID)
    dense = model.bert.pooler.dense
    torch.testing.assert_close(out.pooled, torch.tanh(dense(out.bert.last_hidden_state[:, 0])), **TOL64)
    assert out.hidden_states is out.bert.hidden_states and len(out.hidden_states) == 3


def test_regression_model_trains_on_float_labels():
    model = bert64(BertForSequenceClassification, 1, seed=9)
    ids, targets = random_ids((3, 9), 10), torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    out = model(ids, valid=VALID, labels=targets)
    torch.testing.assert_close(out.loss, ((out.logits[:, 0] - targets) ** 2).mean(), **TOL64)
    out.loss.backward()
    assert model.head.linear.weight.grad.abs().sum() > 0 and model.bert.pooler.dense.weight.grad.abs().sum() > 0


def test_predict_spans_never_answers_in_the_padding_and_equals_best_span():
    model = bert64(BertForQuestionAnswering, seed=11)
    ids = random_ids((3, 9), 12)
    spans = model.predict_spans(ids, valid=VALID, max_answer_len=4)
    with torch.no_grad():
        out = model(ids, valid=VALID)
    for b, n in enumerate(LENGTHS):
        i, j, score = brute_force_span(out.start_logits[b], out.end_logits[b], VALID[b], 4)
        assert (int(spans.start[b]), int(spans.end[b])) == (i, j) and j < n
        assert abs(float(spans.score[b]) - score) < 1e-12
    context = VALID & (torch.arange(9) >= 1)  # not [CLS]
    spans = model.predict_spans(ids, valid=VALID, allowed=context)
    assert bool((spans.start >= 1).all())


def test_token_classifier_loss_through_the_model_ignores_padding():
    model = bert64(BertForTokenClassification, 5, seed=13)
    ids = random_ids((3, 9), 14)
    labels = torch.randint(0, 5, (3, 9), generator=torch.Generator().manual_seed(15))
    out = model(ids, valid=VALID, labels=labels)
    expected = F.cross_entropy(out.logits[VALID], labels[VALID])
    torch.testing.assert_close(out.loss, expected, **TOL64)


def test_task_model_errors():
    config = BertConfig.tiny()
    with pytest.raises(ValueError, match="n_labels must be ≥ 1, got 0"):
        BertForSequenceClassification(config, 0)
    with pytest.raises(ValueError, match="n_labels must be ≥ 1, got 0"):
        BertForTokenClassification(config, 0)
    with pytest.raises(TypeError, match="n_labels must be an int"):
        BertForSequenceClassification(config, 2.0)
    with pytest.raises(ValueError, match=r"pooling must be one of \('cls', 'mean'\), got 'max'"):
        BertForSequenceClassification(config, 2, pooling="max")
    with pytest.raises(ValueError, match=r"classifier_dropout must be in \[0, 1\), got 1.5"):
        BertForSequenceClassification(config, 2, classifier_dropout=1.5)
    model = BertForSequenceClassification(config, 3).eval()
    ids = random_ids((3, 9), 16)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\), got \(3, 9\)"):
        model(ids, labels=torch.zeros(3, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must hold class ids in \[0, 3\)"):
        model(ids, labels=torch.tensor([0, 1, 3]))
    qa = BertForQuestionAnswering(config).eval()
    with pytest.raises(ValueError, match=r"start_positions must hold token positions in \[0, 9\), got 9"):
        qa(ids, start_positions=torch.tensor([0, 9, 1]), end_positions=torch.tensor([0, 1, 1]))


# ---- GPT: the last real token -------------------------------------------------------------------------------

GPT_CONFIG = GPTConfig.tiny(vocab_size=23, d_model=12, n_heads=3, n_layers=2, d_ff=20, max_len=16)


@pytest.fixture(scope="module")
def gpt_classifier():
    torch.manual_seed(0)
    return randomize_(GPTForSequenceClassification(GPT_CONFIG, 3), 0).double().eval()


@given(lengths=st.lists(st.integers(1, 8), min_size=2, max_size=3), extra=st.integers(1, 5), seed=st.integers(0, 999))
def test_gpt_classifier_ignores_right_padding_and_everything_after_the_last_real_token(
    gpt_classifier, lengths, extra, seed
):
    t = max(lengths)
    valid = masks.padding_mask_from_lengths(lengths, max_len=t)
    ids = random_ids((len(lengths), t), seed, vocab=23)
    logits = gpt_classifier(ids, valid=valid).logits
    # more padding on the right: the same logits
    longer_ids = torch.cat([ids, random_ids((len(lengths), extra), seed + 1, vocab=23)], dim=1)
    longer_valid = torch.cat([valid, torch.zeros(len(lengths), extra, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(gpt_classifier(longer_ids, valid=longer_valid).logits, logits, **TOL64)
    # every token after each row's last real token changed: nothing changes
    changed = torch.where(valid, ids, (ids + 1) % 23)
    torch.testing.assert_close(gpt_classifier(changed, valid=valid).logits, logits, **TOL64)
    # the last real token itself changed: the logits of that row change (the test can fail)
    last = torch.tensor(lengths) - 1
    bumped = ids.clone()
    bumped[torch.arange(len(lengths)), last] = (ids[torch.arange(len(lengths)), last] + 1) % 23
    moved = (gpt_classifier(bumped, valid=valid).logits - logits).abs().amax(dim=1)
    assert bool((moved > 1e-9).all())


def test_gpt_classifier_scores_the_final_norm_state_of_the_last_real_token(gpt_classifier):
    ids = random_ids((3, 9), 17, vocab=23)
    out = gpt_classifier(ids, valid=VALID)
    assert out.last_index.tolist() == [8, 4, 1]
    lm = gpt_classifier.gpt(ids, valid=VALID, return_hidden_states=True)
    final = gpt_classifier.gpt.decoder.final_norm(lm.hidden_states[-1])  # (B, T, D)
    expected = final[torch.arange(3), torch.tensor([8, 4, 1])] @ gpt_classifier.head.linear.weight.T
    torch.testing.assert_close(out.logits, expected, **TOL64)
    # left padding: the same logits as right padding (positions count real tokens)
    left_ids = torch.stack([torch.cat([ids[b, n:], ids[b, :n]]) for b, n in enumerate(LENGTHS)])
    torch.testing.assert_close(gpt_classifier(left_ids, valid=VALID.flip(1)).logits, out.logits, **TOL64)


def test_gpt_classifier_errors(gpt_classifier):
    with pytest.raises(ValueError, match="n_labels must be ≥ 1, got 0"):
        GPTForSequenceClassification(GPT_CONFIG, 0)
    ids = random_ids((3, 9), 18, vocab=23)
    no_real = VALID.clone()
    no_real[1] = False
    with pytest.raises(ValueError, match=r"row\(s\) \[1\] of input_ids hold no real token"):
        gpt_classifier(ids, valid=no_real)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        gpt_classifier(ids, valid=VALID, labels=torch.zeros(2, dtype=torch.long))


def test_heads_module_exports_the_new_names():
    for name in ("SequenceClassificationHead", "TokenClassificationHead", "SpanQAHead", "best_span", "span_loss"):
        assert name in heads.__all__ and hasattr(heads, name)
