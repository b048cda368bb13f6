"""Decoding: greedy, sampling (temperature / top-k / top-p) and beam search, against small random "models".

The models here are next-token logit callables ``logits_fn(ids (N, t), rows (N,)) -> (N, V)``:
  * ``MarkovTable`` — logits looked up from a fixed random table indexed by (batch row, position, last token);
  * ``TinyGRU`` — a small random recurrent network whose logits depend on the whole prefix;
  * ``Scripted`` — hand-written next-token probabilities, to build cases where greedy is not optimal.
Sequence scores are recomputed independently (teacher forcing through the callable) and beam search is
checked against an exhaustive enumeration of every hypothesis.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from transformer_from_scratch import generation as gen_mod
from transformer_from_scratch.config import TransformerConfig
from transformer_from_scratch.generation import (
    apply_temperature,
    beam_search,
    causal_lm_logits_fn,
    encoder_decoder_logits_fn,
    greedy,
    sample,
    top_k_filter,
    top_p_filter,
)
from transformer_from_scratch.models import EncoderDecoder

# ---------------------------------------------------------------------------------------------- models


class MarkovTable:
    """logits(ids, rows) = table[row, position, last token]: depends on the batch row, so rows must be right."""

    def __init__(self, batch: int, vocab: int, max_len: int, seed: int, scale: float = 2.0, eos_bias: float = 0.0):
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(batch, max_len, vocab, vocab, generator=g, dtype=torch.float64) * scale
        self.table[..., 0] += eos_bias  # token 0 plays EOS in the tests that use eos_bias
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        self.calls.append((ids.clone(), rows.clone()))
        return self.table[rows, ids.shape[1] - 1, ids[:, -1]]  # (N, V)


class TinyGRU(nn.Module):
    """A random recurrent LM over the whole prefix, plus a per-batch-row bias (so rows matter)."""

    def __init__(self, batch: int, vocab: int, seed: int, width: int = 8):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab, width)
        self.rnn = nn.GRU(width, width, batch_first=True)
        self.out = nn.Linear(width, vocab)
        self.row_bias = nn.Parameter(torch.randn(batch, vocab))
        self.double().eval()

    def forward(self, ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            h, _ = self.rnn(self.embed(ids))  # (N, t, W)
            return 3.0 * self.out(h[:, -1]) + self.row_bias[rows]  # (N, V)


class Scripted:
    """Next-token probabilities written by hand as a function of the generated tokens (a tuple)."""

    def __init__(self, t0: int, probs):
        self.t0, self.probs = t0, probs

    def __call__(self, ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        out = [torch.tensor(self.probs(tuple(row[self.t0 :].tolist())), dtype=torch.float64).log() for row in ids]
        return torch.stack(out)  # (N, V)


def sequence_log_prob(logits_fn, row: int, tokens: list[int], t0: int) -> float:
    """Σ log p(token | history) over the generated part, by teacher forcing — independent of the decoders."""
    total = 0.0
    for i in range(t0, len(tokens)):
        logits = logits_fn(torch.tensor([tokens[:i]]), torch.tensor([row]))[0].double()
        total += float(torch.log_softmax(logits, -1)[tokens[i]])
    return total


def trim_at_eos(tokens: list[int], t0: int, eos) -> list[int]:
    """Drop the padding after the first generated EOS."""
    if eos is not None and eos in tokens[t0:]:
        return tokens[: tokens.index(eos, t0) + 1]
    return tokens


def score(log_prob: float, n: int, alpha: float) -> float:
    return log_prob / n**alpha


def enumerate_hypotheses(logits_fn, prefix: list[int], row: int, vocab: int, max_new: int, eos_id):
    """Every complete hypothesis: ends in EOS at some step ≤ max_new, or has max_new tokens and no EOS."""
    out = []  # (tokens, log_prob, finished)
    frontier = [(list(prefix), 0.0)]
    for _ in range(max_new):
        nxt = []
        for tokens, lp in frontier:
            logp = torch.log_softmax(logits_fn(torch.tensor([tokens]), torch.tensor([row]))[0].double(), -1)
            for v in range(vocab):
                if v == eos_id:
                    out.append((tokens + [v], lp + float(logp[v]), True))
                else:
                    nxt.append((tokens + [v], lp + float(logp[v])))
        frontier = nxt
    out += [(tokens, lp, False) for tokens, lp in frontier]
    return out


def n_hypotheses(vocab: int, max_new: int, eos: bool) -> int:
    if not eos:
        return vocab**max_new
    return sum((vocab - 1) ** (n - 1) for n in range(1, max_new + 1)) + (vocab - 1) ** max_new


@st.composite
def decoding_cases(draw, max_vocab=6):
    batch = draw(st.integers(2, 3))
    vocab = draw(st.integers(2, max_vocab))
    t0 = draw(st.integers(1, 3))
    max_new = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    eos = draw(st.booleans())
    return batch, vocab, t0, max_new, seed, (0 if eos else None)


def random_prefix(batch: int, t0: int, vocab: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 7)
    return torch.randint(1, vocab, (batch, t0), generator=g) if vocab > 1 else torch.zeros(batch, t0, dtype=torch.long)


# ---------------------------------------------------------------------------------------------- greedy


def test_greedy_appends_the_argmax_of_each_row():
    model = MarkovTable(batch=3, vocab=7, max_len=10, seed=0)
    prefix = torch.tensor([[1, 2], [3, 4], [5, 6]])
    out = greedy(model, prefix, max_new_tokens=4)
    assert out.shape == (3, 6) and torch.equal(out[:, :2], prefix)
    for b in range(3):  # replay by hand: position t0 + i holds argmax of table[b, t0 + i - 1, previous token]
        for t in range(2, 6):
            assert out[b, t] == model.table[b, t - 1, out[b, t - 1]].argmax()


def test_greedy_eos_pads_stops_early_and_never_extends_a_finished_row():
    # eos_bias makes EOS (token 0) likely, so rows finish at different steps
    model = MarkovTable(batch=3, vocab=5, max_len=20, seed=3, eos_bias=1.5)
    prefix = torch.tensor([[1], [2], [3]])
    out = greedy(model, prefix, max_new_tokens=15, eos_id=0, pad_id=4)
    ends = []
    for b in range(3):
        gen = out[b, 1:].tolist()
        assert 0 in gen, "the test model should finish every row"
        e = gen.index(0)
        ends.append(e)
        assert all(tok == 4 for tok in gen[e + 1 :]), "after EOS the row is padded with pad_id"
    assert len(set(ends)) > 1, "rows should finish at different steps for this test to mean something"
    assert out.shape[1] == 1 + max(ends) + 1 < 16, "decoding stops once every row has finished"
    for ids, rows in model.calls:  # the model is only asked about unfinished rows
        assert not (ids[:, 1:] == 0).any()
        assert len(set(rows.tolist())) == len(rows)
    # pad_id defaults to eos_id
    out2 = greedy(model, prefix, max_new_tokens=15, eos_id=0)
    after_eos = torch.arange(out.shape[1])[None, :] > 1 + torch.tensor(ends)[:, None]  # (B, L)
    assert torch.equal(out2, out.masked_fill(after_eos, 0))


@given(case=decoding_cases())
def test_batched_greedy_equals_rows_decoded_alone(case):
    batch, vocab, t0, max_new, seed, eos = case
    model = TinyGRU(batch, vocab, seed % 1000)
    prefix = random_prefix(batch, t0, vocab, seed)
    together = greedy(model, prefix, max_new_tokens=max_new, eos_id=eos)
    for b in range(batch):

        def alone_fn(ids, rows, b=b):  # a batch of one whose row 0 is element b
            return model(ids, torch.full_like(rows, b))

        alone = greedy(alone_fn, prefix[b : b + 1], max_new_tokens=max_new, eos_id=eos)
        assert torch.equal(together[b, : alone.shape[1]], alone[0])
        rest = together[b, alone.shape[1] :]
        assert rest.numel() == 0 or (eos is not None and (rest == eos).all())  # padding after an earlier end


# --------------------------------------------------------------------------------------------- filters


def test_top_k_filter_keeps_exactly_the_k_largest():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 9, generator=g)
    for k in (1, 3, 9, 50):
        out = top_k_filter(logits, k)
        kept = torch.isfinite(out)
        assert (kept.sum(-1) == min(k, 9)).all()
        for b in range(4):
            order = logits[b].argsort(descending=True)
            assert set(order[: min(k, 9)].tolist()) == set(kept[b].nonzero().squeeze(1).tolist())
        assert torch.equal(out[kept], logits[kept])  # survivors unchanged


def nucleus_by_hand(probs: list[float], p: float) -> set[int]:
    """Smallest set of most probable tokens with total ≥ p, written as a loop."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, total = set(), 0.0
    for i in order:
        kept.add(i)
        total += probs[i]
        if total >= p:
            break
    return kept


def test_top_p_filter_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]], dtype=torch.float64)
    logits = probs.log()
    for p, expected in [
        (1e-9, {1}),
        (0.49, {1}),
        (0.51, {1, 3}),
        (0.79, {1, 3}),
        (0.81, {1, 2, 3}),
        (1.0, {0, 1, 2, 3}),
    ]:
        kept = set(torch.isfinite(top_p_filter(logits, p))[0].nonzero().squeeze(1).tolist())
        assert kept == expected, (p, kept)
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 10, generator=g, dtype=torch.float64) * 2
    for p in (0.1, 0.5, 0.9, 0.99):
        out = top_p_filter(logits, p)
        for b in range(6):
            kept = set(torch.isfinite(out[b]).nonzero().squeeze(1).tolist())
            assert kept == nucleus_by_hand(torch.softmax(logits[b], -1).tolist(), p)


def test_temperature_sharpens_towards_the_argmax():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 7, generator=g, dtype=torch.float64)
    top = logits.argmax(-1)
    previous = None
    for t in (10.0, 2.0, 1.0, 0.5, 0.1, 0.01):
        p_top = torch.softmax(apply_temperature(logits, t), -1).gather(1, top[:, None]).squeeze(1)
        if previous is not None:
            assert (p_top > previous).all()
        previous = p_top
    assert torch.allclose(previous, torch.ones(5, dtype=torch.float64), atol=1e-12)
    # the shift keeps a tiny temperature finite: no NaN, the argmax gets probability 1
    probs = torch.softmax(apply_temperature(logits * 1e6, 1e-30), -1)
    assert not probs.isnan().any() and torch.equal(probs.argmax(-1), top)
    # and at temperature 1 the distribution is untouched
    torch.testing.assert_close(torch.softmax(apply_temperature(logits, 1.0), -1), torch.softmax(logits, -1))


# -------------------------------------------------------------------------------------------- sampling


def draws(logits: torch.Tensor, n: int, seed: int, **kwargs) -> torch.Tensor:
    """n independent first tokens sampled from fixed logits (V,): one batch row per draw."""

    def fn(ids, rows):
        return logits.expand(len(rows), -1)

    prefix = torch.zeros(n, 1, dtype=torch.long)
    return sample(fn, prefix, max_new_tokens=1, generator=torch.Generator().manual_seed(seed), **kwargs)[:, 1]


def assert_frequencies_match(tokens: torch.Tensor, probs: torch.Tensor):
    """Each count within ±5σ of its binomial expectation (σ² = n p (1 - p)); zero-probability tokens never."""
    n = len(tokens)
    counts = torch.bincount(tokens, minlength=len(probs)).double()
    for v, p in enumerate(probs.tolist()):
        if p == 0.0:
            assert counts[v] == 0, f"token {v} has probability 0 but was drawn {int(counts[v])} times"
        else:
            sigma = math.sqrt(n * p * (1 - p))
            assert abs(counts[v] - n * p) <= 5 * sigma, (v, float(counts[v]), n * p, sigma)


def test_sampling_frequencies_match_the_softmax():
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5, -3.0], dtype=torch.float64)
    assert_frequencies_match(draws(logits, 20000, seed=0), torch.softmax(logits, -1))
    assert_frequencies_match(draws(logits, 20000, seed=1, temperature=0.6), torch.softmax(logits / 0.6, -1))
    # top-k renormalises over the k best tokens
    probs_k = torch.softmax(logits, -1) * torch.tensor([1.0, 0, 0, 1, 1, 0], dtype=torch.float64)
    assert_frequencies_match(draws(logits, 20000, seed=2, top_k=3), probs_k / probs_k.sum())


def test_top_p_never_samples_outside_the_nucleus():
    logits = torch.tensor([0.3, 2.0, -1.0, 1.2, 0.0, 1.9, -0.5, 0.8], dtype=torch.float64)
    probs = torch.softmax(logits, -1)
    for p in (0.5, 0.7, 0.9):
        nucleus = nucleus_by_hand(probs.tolist(), p)
        assert 1 < len(nucleus) < 8
        tokens = draws(logits, 20000, seed=int(p * 10), top_p=p)
        assert set(tokens.tolist()) <= nucleus, f"top_p={p} drew {set(tokens.tolist()) - nucleus} outside"
        inside = torch.tensor([1.0 if v in nucleus else 0.0 for v in range(8)], dtype=torch.float64)
        assert_frequencies_match(tokens, probs * inside / (probs * inside).sum())


@given(case=decoding_cases())
def test_top_k_one_and_tiny_temperature_are_greedy(case):
    batch, vocab, t0, max_new, seed, eos = case
    model = TinyGRU(batch, vocab, seed % 1000)
    prefix = random_prefix(batch, t0, vocab, seed)
    expected = greedy(model, prefix, max_new_tokens=max_new, eos_id=eos)
    g = torch.Generator().manual_seed(seed)
    assert torch.equal(sample(model, prefix, max_new_tokens=max_new, top_k=1, eos_id=eos, generator=g), expected)
    cold = sample(model, prefix, max_new_tokens=max_new, temperature=1e-4, eos_id=eos, generator=g)
    assert torch.equal(cold, expected)


def test_sampling_is_reproducible_with_the_same_generator_seed():
    model = TinyGRU(batch=3, vocab=9, seed=2)
    prefix = torch.tensor([[1], [2], [3]])
    kwargs = dict(max_new_tokens=12, temperature=1.5, top_k=6, top_p=0.95)
    a = sample(model, prefix, generator=torch.Generator().manual_seed(11), **kwargs)
    b = sample(model, prefix, generator=torch.Generator().manual_seed(11), **kwargs)
    c = sample(model, prefix, generator=torch.Generator().manual_seed(12), **kwargs)
    assert torch.equal(a, b)
    assert not torch.equal(a, c), "a different seed should give a different sample of 36 tokens"


# ----------------------------------------------------------------------------------------- beam search


@given(case=decoding_cases(), alpha=st.sampled_from([0.0, 0.5, 1.0, 2.0]))
def test_beam_width_one_equals_greedy(case, alpha):
    batch, vocab, t0, max_new, seed, eos = case
    if eos is not None:
        alpha = 0.0  # with EOS and α > 0 a width-1 beam may look past EOS (documented); α = 0 is greedy
    model = TinyGRU(batch, vocab, seed % 1000)
    prefix = random_prefix(batch, t0, vocab, seed)
    out = beam_search(model, prefix, beam_size=1, max_new_tokens=max_new, eos_id=eos, length_penalty=alpha)
    assert torch.equal(out.sequences, greedy(model, prefix, max_new_tokens=max_new, eos_id=eos))


@given(case=decoding_cases(max_vocab=4), alpha=st.sampled_from([0.0, 0.6, 1.0, 2.0]))
def test_exhaustive_beam_returns_every_hypothesis_in_order(case, alpha):
    batch, vocab, t0, max_new, seed, eos = case
    max_new = min(max_new, 3)
    model = MarkovTable(batch, vocab, t0 + max_new, seed)
    prefix = random_prefix(batch, t0, vocab, seed)
    k = n_hypotheses(vocab, max_new, eos is not None)  # a beam as large as the number of hypotheses
    out = beam_search(model, prefix, beam_size=k, max_new_tokens=max_new, eos_id=eos, length_penalty=alpha)
    greedy_seq = greedy(model, prefix, max_new_tokens=max_new, eos_id=eos)
    for b in range(batch):
        every = enumerate_hypotheses(model, prefix[b].tolist(), b, vocab, max_new, eos)
        assert len(every) == k
        every.sort(key=lambda h: -score(h[1], len(h[0]) - t0, alpha))
        got = out.hypotheses[b]
        assert [h.tokens.tolist() for h in got] == [h[0] for h in every]
        for h, (tokens, lp, finished) in zip(got, every):
            assert h.finished == finished
            assert math.isclose(h.log_prob, lp, rel_tol=1e-12, abs_tol=1e-12)
            assert math.isclose(h.score, score(lp, len(tokens) - t0, alpha), rel_tol=1e-12, abs_tol=1e-12)
        # so the best beam is the best sequence there is, and at least as good as greedy's
        g_tokens = trim_at_eos(greedy_seq[b].tolist(), t0, eos)
        g_score = score(sequence_log_prob(model, b, g_tokens, t0), len(g_tokens) - t0, alpha)
        assert out.scores[b] >= g_score - 1e-12
        assert out.sequences[b, : len(every[0][0])].tolist() == every[0][0]


@given(case=decoding_cases(), k=st.integers(2, 4), alpha=st.sampled_from([0.0, 1.0]))
def test_beam_hypotheses_are_sorted_scored_correctly_and_end_at_eos(case, k, alpha):
    batch, vocab, t0, max_new, seed, eos = case
    model = TinyGRU(batch, vocab, seed % 1000)
    prefix = random_prefix(batch, t0, vocab, seed)
    calls = []

    def spy(ids, rows):
        calls.append(ids.clone())
        return model(ids, rows)

    out = beam_search(spy, prefix, beam_size=k, max_new_tokens=max_new, eos_id=eos, length_penalty=alpha)
    for ids in calls:  # a finished hypothesis is never extended
        assert eos is None or not (ids[:, t0:] == eos).any()
    for b in range(batch):
        hyps = out.hypotheses[b]
        assert 1 <= len(hyps) <= k
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True), "best first — never the least likely hypothesis"
        assert out.scores[b] == scores[0] == max(scores)
        for h in hyps:
            tokens = h.tokens.tolist()
            generated = tokens[t0:]
            assert tokens[:t0] == prefix[b].tolist()
            assert h.finished == (eos is not None and generated[-1] == eos)
            assert eos is None or eos not in generated[:-1], "EOS ends a hypothesis"
            assert h.finished or len(generated) == max_new
            lp = sequence_log_prob(model, b, tokens, t0)
            assert math.isclose(h.log_prob, lp, rel_tol=1e-9, abs_tol=1e-9)
            assert math.isclose(h.score, score(lp, len(generated), alpha), rel_tol=1e-9, abs_tol=1e-9)
        best = hyps[0].tokens
        assert torch.equal(out.sequences[b, : len(best)], best)
        assert eos is None or (out.sequences[b, len(best) :] == eos).all()


@given(case=decoding_cases(), k=st.integers(2, 3))
def test_batched_beam_search_equals_rows_searched_alone(case, k):
    batch, vocab, t0, max_new, seed, eos = case
    model = TinyGRU(batch, vocab, seed % 1000)
    prefix = random_prefix(batch, t0, vocab, seed)
    together = beam_search(model, prefix, beam_size=k, max_new_tokens=max_new, eos_id=eos)
    for b in range(batch):

        def alone_fn(ids, rows, b=b):
            return model(ids, torch.full_like(rows, b))

        alone = beam_search(alone_fn, prefix[b : b + 1], beam_size=k, max_new_tokens=max_new, eos_id=eos)
        assert [h.tokens.tolist() for h in together.hypotheses[b]] == [h.tokens.tolist() for h in alone.hypotheses[0]]
        torch.testing.assert_close(together.scores[b : b + 1], alone.scores, rtol=1e-12, atol=1e-12)


def reference_beam_search(logits_fn, prefix: list[int], row: int, k: int, max_new: int, eos, alpha: float):
    """Beam search written plainly for one batch element, with no early stop: every step runs to max_new."""
    t0 = len(prefix)
    live, finished = [(list(prefix), 0.0)], []
    for _ in range(max_new):
        if not live:
            break
        candidates = []  # beam-major, then token order: the tie order of a stable sort
        for tokens, lp in live:
            logp = torch.log_softmax(logits_fn(torch.tensor([tokens]), torch.tensor([row]))[0].double(), -1)
            candidates += [(tokens + [v], lp + float(logp[v])) for v in range(len(logp))]
        candidates.sort(key=lambda c: -c[1])
        live = []
        for rank, (tokens, lp) in enumerate(candidates):
            if tokens[-1] == eos:
                if rank < k:
                    finished.append((tokens, lp, True))
            elif len(live) < k:
                live.append((tokens, lp))
        finished = sorted(finished, key=lambda h: -score(h[1], len(h[0]) - t0, alpha))[:k]
    every = finished + [(tokens, lp, False) for tokens, lp in live]
    return sorted(every, key=lambda h: -score(h[1], len(h[0]) - t0, alpha))[:k]


@given(
    case=decoding_cases(),
    k=st.integers(1, 4),
    alpha=st.sampled_from([-0.5, 0.0, 0.5, 1.0, 2.0]),
    eos_bias=st.sampled_from([0.0, 1.0, 2.5]),
)
def test_beam_search_matches_a_plain_reference_without_early_stopping(case, k, alpha, eos_bias):
    """The early stop is safe: stopping when no live beam can still beat the K-th finished one changes nothing."""
    batch, vocab, t0, max_new, seed, eos = case
    model = MarkovTable(batch, vocab, t0 + max_new + 2, seed, eos_bias=eos_bias)
    prefix = random_prefix(batch, t0, vocab, seed)
    out = beam_search(model, prefix, beam_size=k, max_new_tokens=max_new + 2, eos_id=eos, length_penalty=alpha)
    for b in range(batch):
        expected = reference_beam_search(model, prefix[b].tolist(), b, k, max_new + 2, eos, alpha)
        assert [h.tokens.tolist() for h in out.hypotheses[b]] == [h[0] for h in expected]
        for h, (_, lp, finished) in zip(out.hypotheses[b], expected):
            assert h.finished == finished and math.isclose(h.log_prob, lp, rel_tol=1e-12, abs_tol=1e-12)


# Hand-made cases (vocabulary {0: a, 1: b, 2: c}, no EOS, three tokens) where greedy is not optimal.


def _beam_beats_greedy(generated):
    if generated == ():
        return [0.5, 0.4, 0.1]  # greedy takes a ...
    if generated[0] == 0:
        return [0.34, 0.33, 0.33]  # ... after which everything is uncertain
    if generated[0] == 1:
        return [0.98, 0.01, 0.01]  # while b leads to a near-certain continuation
    return [1 / 3, 1 / 3, 1 / 3]


def _beam_two_loses_to_greedy(generated):
    if generated == ():
        return [0.4, 0.35, 0.25]
    if generated == (0,):
        return [0.34, 0.33, 0.33]
    if generated == (1,):
        return [0.5 - 1e-6, 0.5 - 1e-6, 2e-6]  # b·a and b·b (0.175) push a·a (0.136) out of a width-2 beam
    if generated == (0, 0):
        return [1 - 2e-6, 1e-6, 1e-6]  # but a·a leads to a near-certain third token
    return [1 / 3, 1 / 3, 1 / 3]


def _best_by_enumeration(model, prefix):
    every = enumerate_hypotheses(model, prefix[0].tolist(), 0, 3, 3, None)
    return max(every, key=lambda h: h[1])


def test_beam_search_finds_what_greedy_misses():
    prefix = torch.tensor([[1]])
    model = Scripted(1, _beam_beats_greedy)
    g = greedy(model, prefix, max_new_tokens=3)
    out = beam_search(model, prefix, beam_size=2, max_new_tokens=3, length_penalty=0.0)
    g_lp = sequence_log_prob(model, 0, g[0].tolist(), 1)
    assert g[0, 1] == 0 and out.sequences[0, 1] == 1
    assert out.scores[0] > g_lp + 0.5
    tokens, lp, _ = _best_by_enumeration(model, prefix)
    assert out.sequences[0].tolist() == tokens and math.isclose(float(out.scores[0]), lp, rel_tol=1e-12)


def test_a_narrow_beam_can_end_below_greedy():
    """Beam search is a heuristic: width 2 loses greedy's path and scores lower; width 3 keeps it."""
    prefix = torch.tensor([[1]])
    model = Scripted(1, _beam_two_loses_to_greedy)
    g = greedy(model, prefix, max_new_tokens=3)
    g_lp = sequence_log_prob(model, 0, g[0].tolist(), 1)
    tokens, lp, _ = _best_by_enumeration(model, prefix)
    assert g[0].tolist() == tokens  # here greedy happens to be optimal
    narrow = beam_search(model, prefix, beam_size=2, max_new_tokens=3, length_penalty=0.0)
    assert narrow.scores[0] < g_lp - 0.5
    wide = beam_search(model, prefix, beam_size=3, max_new_tokens=3, length_penalty=0.0)
    assert wide.sequences[0].tolist() == tokens and math.isclose(float(wide.scores[0]), lp, rel_tol=1e-12)


def test_an_eos_outside_the_top_k_is_not_a_hypothesis():
    """Only EOS extensions that rank among the K best of their step enter the beam (and finish)."""

    def probs(generated):  # EOS = 0
        if generated == ():
            return [0.05, 0.5, 0.45]  # ending at once ranks 3rd: outside a width-2 beam
        return [1e-6, 0.5, 0.5 - 1e-6]  # then a coin flip between 1 and 2, six times

    model, prefix = Scripted(1, probs), torch.tensor([[1]])
    narrow = beam_search(model, prefix, beam_size=2, max_new_tokens=6, eos_id=0, length_penalty=0.0)
    assert all(h.tokens.tolist() != [1, 0] for h in narrow.hypotheses[0])
    assert narrow.scores[0] < math.log(0.05), "a longer hypothesis wins although [1, 0] is more probable"
    wide = beam_search(model, prefix, beam_size=3, max_new_tokens=6, eos_id=0, length_penalty=0.0)
    assert wide.sequences[0].tolist()[:2] == [1, 0] and math.isclose(float(wide.scores[0]), math.log(0.05))

    def probs2(generated):  # step 2 ranks [1,0] (EOS), [1,1], [2,0] (EOS, 3rd), [1,2]: [2,0] is not in the beam
        if generated == ():
            return [0.2, 0.5, 0.3]
        if generated == (1,):
            return [0.4, 0.35, 0.25]
        if generated == (2,):
            return [0.5, 0.3, 0.2]
        return [1e-6, 0.5, 0.5 - 1e-6]

    out = beam_search(Scripted(1, probs2), prefix, beam_size=2, max_new_tokens=3, eos_id=0, length_penalty=0.0)
    got = [h.tokens.tolist() for h in out.hypotheses[0]]
    assert got[0] == [1, 1, 0] and [1, 2, 0] not in got
    second = out.hypotheses[0][1]  # a cut-off [1, 1, ·] (0.0875), below the excluded [2, 0] (0.15)
    assert second.tokens.tolist()[:3] == [1, 1, 1] and not second.finished and second.score < math.log(0.15)


def test_length_penalty_changes_the_ranking_as_documented():
    # EOS = 0. Ending at once: log 0.5 = -0.69. Continuing with b, then EOS: log 0.5 + log 0.9 = -0.80.
    # Ranked by the sum (α = 0) the short one wins; by the mean per token (α = 1, -0.40 vs -0.69) the long one.
    def probs(generated):
        if generated == ():
            return [0.5, 0.5 - 1e-12, 1e-12]
        if generated == (1,):
            return [0.9, 0.05, 0.05]
        return [1.0 - 2e-12, 1e-12, 1e-12]

    model, prefix = Scripted(1, probs), torch.tensor([[1]])
    short, long_ = math.log(0.5), math.log(0.5) + math.log(0.9)
    by_sum = beam_search(model, prefix, beam_size=3, max_new_tokens=4, eos_id=0, length_penalty=0.0)
    assert by_sum.sequences[0].tolist()[:2] == [1, 0] and math.isclose(float(by_sum.scores[0]), short, rel_tol=1e-9)
    by_mean = beam_search(model, prefix, beam_size=3, max_new_tokens=4, eos_id=0, length_penalty=1.0)
    assert by_mean.sequences[0].tolist()[:3] == [1, 1, 0]
    assert math.isclose(float(by_mean.scores[0]), long_ / 2, rel_tol=1e-9)
    assert any(
        h.tokens.tolist() == [1, 0] and math.isclose(h.score, short, rel_tol=1e-9) for h in by_mean.hypotheses[0]
    )


# ------------------------------------------------------------------------------------------- adapters


class FakeEncoderDecoder:
    """Records calls; the 'memory' is the source ids, and the logits reveal which memory row was used."""

    def __init__(self, vocab: int):
        self.vocab, self.encodes = vocab, 0

    def encode(self, src_ids, src_valid):
        self.encodes += 1
        return src_ids[:, :, None].double()  # (B, S, 1)

    def decode(self, tgt_ids, memory, src_valid=None, tgt_valid=None):
        assert tgt_valid is not None and tgt_valid.all() and tgt_valid.shape == tgt_ids.shape
        assert memory.shape[0] == tgt_ids.shape[0] == src_valid.shape[0], "one memory row per hypothesis"
        weight = memory[:, :, 0] * (1.0 if src_valid is None else src_valid.double())  # (N, S)
        first = weight.sum(1)  # (N,): sum of the real source ids of the right row
        logits = torch.zeros(tgt_ids.shape[0], tgt_ids.shape[1], self.vocab, dtype=torch.float64)
        logits[torch.arange(len(first)), -1, first.long() % self.vocab] = 1.0  # next token = Σ source mod V
        return logits


def test_encoder_decoder_adapter_encodes_once_and_follows_rows():
    model = FakeEncoderDecoder(vocab=50)
    src = torch.tensor([[3, 4, 9], [5, 9, 9], [7, 1, 2]])
    valid = torch.tensor([[True, True, False], [True, False, False], [True, True, True]])
    fn = encoder_decoder_logits_fn(model, src, valid)
    out = greedy(fn, torch.ones(3, 1, dtype=torch.long), max_new_tokens=3)
    assert model.encodes == 1
    assert out[:, 1].tolist() == [7, 5, 10]  # Σ of the *real* source ids of each row
    direct = fn(torch.ones(4, 2, dtype=torch.long), torch.tensor([2, 0, 2, 1]))  # hypotheses of rows 2, 0, 2, 1
    assert direct.argmax(-1).tolist() == [10, 7, 10, 5]
    beams = beam_search(fn, torch.ones(3, 1, dtype=torch.long), beam_size=3, max_new_tokens=2)
    assert beams.sequences[:, 1].tolist() == [7, 5, 10] and model.encodes == 1


def test_encoder_decoder_adapter_matches_full_recompute_on_the_real_model():
    torch.manual_seed(0)
    model = EncoderDecoder(TransformerConfig.tiny(src_vocab_size=11, tgt_vocab_size=13, pad_id=0)).double().eval()
    src = torch.tensor([[4, 5, 6, 7, 0, 0], [3, 3, 8, 9, 10, 2], [5, 0, 0, 0, 0, 0]])
    prefix = torch.ones(3, 1, dtype=torch.long)
    out = greedy(encoder_decoder_logits_fn(model, src), prefix, max_new_tokens=6, eos_id=2)
    for b in range(3):  # reference: the model's own forward on the unpadded source, re-run at every step
        real = src[b : b + 1, : int((src[b] != 0).sum())]
        ids = prefix[b : b + 1]
        with torch.no_grad():
            for _ in range(6):
                nxt = model(real, ids).logits[:, -1].argmax(-1, keepdim=True)
                ids = torch.cat([ids, nxt], 1)
                if nxt.item() == 2:
                    break
        assert out[b, : ids.shape[1]].tolist() == ids[0].tolist()


def test_causal_lm_adapter_takes_the_last_position():
    table = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))

    def lm(ids):  # (N, t) -> (N, t, V)
        return table[ids] + torch.arange(ids.shape[1])[None, :, None]

    fn = causal_lm_logits_fn(lm)
    ids = torch.tensor([[1, 2, 3], [3, 0, 1]])
    torch.testing.assert_close(fn(ids, torch.arange(2)), table[ids[:, -1]] + 2)


# ----------------------------------------------------------------------------------------- validation


def _model(ids, rows):
    return torch.zeros(len(rows), 5)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: greedy(_model, torch.ones(2, 1), max_new_tokens=2), TypeError, "LongTensor"),
        (lambda: greedy(_model, torch.ones(3, dtype=torch.long), max_new_tokens=2), ValueError, "2-D"),
        (lambda: greedy(_model, torch.ones(2, 0, dtype=torch.long), max_new_tokens=2), ValueError, "t0 ≥ 1"),
        (lambda: greedy(_model, torch.ones(2, 1, dtype=torch.long), max_new_tokens=0), ValueError, "max_new_tokens"),
        (lambda: greedy(_model, torch.ones(2, 1, dtype=torch.long), max_new_tokens=2, eos_id=7), ValueError, "eos_id"),
        (
            lambda: greedy(lambda i, r: torch.zeros(1, 5), torch.ones(2, 1, dtype=torch.long), max_new_tokens=2),
            ValueError,
            r"\(N, V\)",
        ),
        (
            lambda: sample(_model, torch.ones(2, 1, dtype=torch.long), max_new_tokens=2, temperature=0.0),
            ValueError,
            "temperature",
        ),
        (
            lambda: sample(_model, torch.ones(2, 1, dtype=torch.long), max_new_tokens=2, temperature=-1.0),
            ValueError,
            "temperature",
        ),
        (lambda: sample(_model, torch.ones(2, 1, dtype=torch.long), max_new_tokens=2, top_k=0), ValueError, "top_k"),
        (lambda: sample(_model, torch.ones(2, 1, dtype=torch.long), max_new_tokens=2, top_p=0.0), ValueError, "top_p"),
        (lambda: sample(_model, torch.ones(2, 1, dtype=torch.long), max_new_tokens=2, top_p=1.5), ValueError, "top_p"),
        (
            lambda: beam_search(_model, torch.ones(2, 1, dtype=torch.long), beam_size=0, max_new_tokens=2),
            ValueError,
            "beam_size",
        ),
        (lambda: beam_search(_model, torch.ones(2, 1).int(), beam_size=2, max_new_tokens=2), TypeError, "LongTensor"),
        (lambda: top_k_filter(torch.zeros(3), 0), ValueError, "top_k"),
        (lambda: top_p_filter(torch.zeros(3), -0.1), ValueError, "top_p"),
        (lambda: apply_temperature(torch.zeros(3), float("inf")), ValueError, "temperature"),
    ],
)
def test_invalid_arguments_raise_actionable_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_module_exports_exist():
    for name in gen_mod.__all__:
        assert hasattr(gen_mod, name), name
