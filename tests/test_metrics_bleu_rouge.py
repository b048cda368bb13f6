"""BLEU and ROUGE: cases worked out by hand, then equality with the reference packages on seeded random cases.

The oracles are sacreBLEU (``sacrebleu.corpus_bleu`` / ``sentence_bleu`` and its 13a tokenizer) and Google's
``rouge_score.rouge_scorer.RougeScorer`` (and its tokenizer, whose stemmer is NLTK's Porter stemmer); both are
test-only dependencies (the dev extra). The random sentences mix words, inflected words, punctuation, numbers with
"." "," and "-", HTML entities, unicode words ("café", "naïve", "北京", "İstanbul"), odd white space, empty strings
and single tokens, so every branch of the tokenisers, of the smoothing and of the stemmer runs. The Porter stemmer
is also compared word by word on a few thousand words built from its own suffix tables.
"""

from __future__ import annotations

import math
import random

import pytest
import sacrebleu
from rouge_score import rouge_scorer, tokenizers
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from transformer_from_scratch.metrics import (
    corpus_bleu,
    porter_stem,
    rouge_l,
    rouge_n,
    rouge_scores,
    rouge_tokenize,
    sentence_bleu,
    tokenize_13a,
)
from transformer_from_scratch.metrics.rouge import _PORTER_EXCEPTIONS

TOL = 1e-9  # measured difference is 0.0 on every case; this only allows for a different summation order
SMOOTHINGS = ["exp", "floor", "add-k", "none"]
N_CASES = 200

_WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "runs", "The", "Cat", "x", "K", "Über", "Straße"]
_INFLECTED = ["running", "cats", "happiness", "relational", "agreed", "flies", "dying", "hopping", "Sitting", "mats"]
_ODD = ["café", "naïve", "北京", "İstanbul", "3.14", "1,000", "2-3", "$5", "e-mail", "don't", "&amp;", "&quot;"]
_PUNCT = ["(", ")", ",", ".", "!", "?", ";", "-", "<skipped>", "/", "…"]
_GAPS = [" ", " ", " ", "", "  ", "\t", "\u00a0", "\n"]


def _sentence(rng: random.Random) -> str:
    length = rng.choice([0, 0, 1, 1, 2, 3, 4, 6, 9, 14])  # empty and one-token sentences on purpose
    pool = rng.choice([_WORDS, _WORDS + _ODD + _PUNCT, _WORDS + _INFLECTED])
    return "".join(rng.choice(pool) + rng.choice(_GAPS) for _ in range(length))


def _corpus(rng: random.Random, n_refs: int = 1) -> tuple[list[str], list[list[str]]]:
    hyps = [_sentence(rng) for _ in range(rng.randint(1, 5))]
    return hyps, [[_sentence(rng) for _ in range(n_refs)] for _ in hyps]


def _bleu_difference(ours, theirs) -> float:
    assert (ours.sys_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)
    return max(
        abs(ours.score - theirs.score),
        abs(ours.bp - theirs.bp),
        *(abs(a - b) for a, b in zip(ours.precisions, theirs.precisions, strict=True)),
    )


# ------------------------------------------------------------------------------------------ BLEU by hand


def test_bleu_of_a_hypothesis_equal_to_its_reference_is_100():
    score = corpus_bleu(["the cat sat on the mat ."], ["the cat sat on the mat ."], smooth="none")
    assert score.score == pytest.approx(100.0, abs=TOL)
    assert score.bp == 1.0 and score.sys_len == score.ref_len == 7


def test_bleu_worked_example_and_each_smoothing_of_the_missing_four_gram():
    hyp, ref = "the cat sat on the mat", "the cat is on the mat"
    # 1-grams: the×2 cat sat on mat vs the×2 cat is on mat -> 5 of 6 match (sat does not)
    # 2-grams: the-cat cat-sat sat-on on-the the-mat -> the-cat, on-the, the-mat match: 3 of 5
    # 3-grams: the-cat-sat cat-sat-on sat-on-the on-the-mat -> only on-the-mat: 1 of 4
    # 4-grams: 3 of them, none matches; lengths 6 = 6 so BP = 1
    p1, p2, p3 = 5 / 6, 3 / 5, 1 / 4
    expected_p4 = {"none": 0.0, "exp": 1 / (2 * 3), "floor": 0.1 / 3, "add-k": (0 + 1) / (3 + 1)}
    for smooth, p4 in expected_p4.items():
        got = corpus_bleu([hyp], [ref], smooth=smooth)
        if smooth == "add-k":  # add-k adds 1 to the matches and the totals of every order n >= 2
            p2, p3 = (3 + 1) / (5 + 1), (1 + 1) / (4 + 1)
        want = 100 * math.exp((math.log(p1) + math.log(p2) + math.log(p3) + math.log(p4)) / 4) if p4 else 0.0
        assert got.score == pytest.approx(want, abs=TOL), smooth
        assert got.precisions == pytest.approx([100 * p1, 100 * p2, 100 * p3, 100 * p4], abs=TOL), smooth


def test_bleu_brevity_penalty_and_effective_order_on_a_short_hypothesis():
    # "the cat" against 6 reference tokens: p1 = 2/2, p2 = 1/1, no 3- or 4-grams at all.
    # c = 2 < r = 6, so BP = exp(1 - 6/2) = exp(-2). With effective order the mean runs over n = 1, 2 only:
    # BLEU = 100 · exp(-2) · exp((log 1 + log 1) / 2) = 100 · exp(-2) ≈ 13.53
    got = sentence_bleu("the cat", "the cat sat on the mat")
    assert got.bp == pytest.approx(math.exp(-2), abs=TOL)
    assert got.score == pytest.approx(100 * math.exp(-2), abs=TOL)
    # without effective order the unreached orders count as precision 0, so corpus BLEU is 0
    assert corpus_bleu(["the cat"], ["the cat sat on the mat"]).score == 0.0


def test_bleu_of_an_empty_hypothesis_is_zero_with_zero_brevity_penalty():
    got = corpus_bleu([""], ["a reference"])
    assert (got.score, got.bp, got.sys_len, got.ref_len) == (0.0, 0.0, 0, 2)


def test_bleu_clips_a_repeated_word_by_its_count_in_the_best_reference():
    # Papineni's example: "the the the the the the the" has 7 unigrams; "the" occurs at most 2 times in one
    # reference, so p1 = 2/7 (the maximum over references is taken per n-gram, not the sum)
    got = corpus_bleu(["the " * 7], [["the cat is on the mat", "there is a cat on the mat"]], smooth="floor")
    assert got.precisions[0] == pytest.approx(100 * 2 / 7, abs=TOL)


def test_tokenize_13a_by_hand():
    assert tokenize_13a("Hello, world! It costs $3.50 (approx.)") == "Hello , world ! It costs $ 3.50 ( approx . )"
    assert tokenize_13a("1,000 people in 2-3 days.") == "1,000 people in 2 - 3 days ."
    assert tokenize_13a("e-mail &amp; don't<skipped>") == "e-mail & don't"
    assert tokenize_13a("naïve café 北京") == "naïve café 北京"


# ------------------------------------------------------------------------------------ BLEU vs sacreBLEU


def test_tokenize_13a_equals_sacrebleu_on_random_lines():
    rng, theirs = random.Random(13), Tokenizer13a()
    for _ in range(N_CASES):
        line = _sentence(rng)
        assert tokenize_13a(line) == theirs(line), repr(line)


@pytest.mark.parametrize("smooth", SMOOTHINGS)
def test_corpus_bleu_equals_sacrebleu(smooth):
    rng, worst = random.Random(2002), 0.0
    for case in range(N_CASES):
        hyps, refs = _corpus(rng, n_refs=1 + case % 3)  # one, two or three references per hypothesis
        lowercase, tokenize = case % 2 == 1, ["13a", "13a", "none"][case % 3]
        theirs = sacrebleu.corpus_bleu(
            hyps, [list(r) for r in zip(*refs)], smooth_method=smooth, lowercase=lowercase, tokenize=tokenize
        )
        ours = corpus_bleu(hyps, refs, smooth=smooth, lowercase=lowercase, tokenize=tokenize)
        worst = max(worst, _bleu_difference(ours, theirs))
    assert worst <= TOL


@pytest.mark.parametrize("smooth", SMOOTHINGS)
def test_sentence_bleu_equals_sacrebleu_with_and_without_effective_order(smooth):
    rng, worst = random.Random(2014), 0.0
    for case in range(N_CASES):
        hyp, refs = _sentence(rng), [_sentence(rng) for _ in range(1 + case % 2)]
        effective = case % 4 != 3
        theirs = sacrebleu.sentence_bleu(hyp, refs, smooth_method=smooth, use_effective_order=effective)
        ours = sentence_bleu(hyp, refs, smooth=smooth, effective_order=effective)
        worst = max(worst, _bleu_difference(ours, theirs))
    assert worst <= TOL


@pytest.mark.parametrize(("smooth", "value"), [("floor", 0.01), ("add-k", 2)])
def test_bleu_smoothing_values_other_than_the_default_equal_sacrebleu(smooth, value):
    rng = random.Random(7)
    for _ in range(50):
        hyps, refs = _corpus(rng)
        theirs = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs]], smooth_method=smooth, smooth_value=value)
        assert _bleu_difference(corpus_bleu(hyps, refs, smooth=smooth, smooth_value=value), theirs) <= TOL


def test_bleu_refuses_bad_arguments_with_a_message_naming_them():
    with pytest.raises(ValueError, match="smooth"):
        corpus_bleu(["a"], ["a"], smooth="laplace")
    with pytest.raises(ValueError, match="tokenize"):
        corpus_bleu(["a"], ["a"], tokenize="intl")
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="lists"):
        corpus_bleu("a b", ["a b"])
    with pytest.raises(ValueError, match="at least one reference"):
        corpus_bleu(["a"], [[]])
    with pytest.raises(TypeError, match="str"):
        sentence_bleu(["a"], "a")


# ------------------------------------------------------------------------------------------ ROUGE by hand


def test_rouge_worked_examples():
    # tokens: pred the cat sat (3) · ref the cat sat on the mat (6)
    # ROUGE-1: overlap 3 -> P = 3/3, R = 3/6, F = 2·1·0.5 / 1.5 = 2/3
    assert rouge_n("The cat sat.", "the cat sat on the mat", 1) == pytest.approx((1.0, 0.5, 2 / 3), abs=TOL)
    # ROUGE-2: pred bigrams the-cat cat-sat (2) both in the ref's 5 -> P = 1, R = 2/5, F = 0.8 / 1.4 = 4/7
    assert rouge_n("The cat sat.", "the cat sat on the mat", 2) == pytest.approx((1.0, 0.4, 4 / 7), abs=TOL)
    # ROUGE-L: "a b c d" vs "b d a c": LCS = 2 ("b d" or "a c") -> P = R = F = 2/4
    assert rouge_l("a b c d", "b d a c") == pytest.approx((0.5, 0.5, 0.5), abs=TOL)
    # nothing in common, or an empty side: all zeros
    assert rouge_l("", "a b") == (0.0, 0.0, 0.0) and rouge_n("x", "", 1) == (0.0, 0.0, 0.0)


def test_rouge_tokenize_keeps_ascii_letters_and_digits_only():
    assert rouge_tokenize("Café au lait, 3.14 北京!") == ["caf", "au", "lait", "3", "14"]
    # stemming touches only tokens longer than 3 characters: "cats" -> "cat", "was" stays
    assert rouge_tokenize("Cats was running", use_stemmer=True) == ["cat", "was", "run"]


def test_stemming_lets_rouge_match_inflected_forms():
    # "cats running" vs "cat runs": no token in common as written; stemmed, both read "cat run" -> P = R = F = 1
    assert rouge_n("cats running", "cat runs", 1) == (0.0, 0.0, 0.0)
    assert rouge_n("cats running", "cat runs", 1, use_stemmer=True) == (1.0, 1.0, 1.0)
    # "cats ran" vs "cat runs": "ran" has 3 characters and is never stemmed, so only "cat" matches: 1/2 each
    assert rouge_n("cats ran", "cat runs", 1, use_stemmer=True) == pytest.approx((0.5, 0.5, 0.5), abs=TOL)


# ------------------------------------------------------------------------------------------ Porter stemmer


def test_porter_stem_on_the_papers_examples():
    # Porter (1980), steps 1a-5b, plus NLTK's extensions (a 4-letter "ies" word -> "ie", irregular "dying")
    examples = {
        "caresses": "caress", "ponies": "poni", "cats": "cat", "feed": "feed", "agreed": "agre",
        "plastered": "plaster", "motoring": "motor", "sing": "sing", "conflated": "conflat", "hopping": "hop",
        "falling": "fall", "filing": "file", "happy": "happi", "relational": "relat", "conditional": "condit",
        "triplicate": "triplic", "goodness": "good", "adjustment": "adjust", "adoption": "adopt",
        "controlling": "control", "rate": "rate", "ties": "tie", "dying": "die", "sky": "sky",
        "generalization": "gener",
    }  # fmt: skip
    assert {w: porter_stem(w) for w in examples} == examples


def test_porter_stem_equals_the_stemmer_inside_rouge_score():
    # words built to reach every rule: a random short stem and up to three suffixes from the rule tables
    # the suffixes of Porter's rules and of NLTK's additions, written out here (not read from the module's tables,
    # so that a rule missing there still shows up), plus a few chains that only a second pass of step 2 reaches
    suffixes = """s sses ies ss ied eed ed ing at bl iz y ational tional enci anci izer abli bli alli entli eli ousli
        ization ation ator alism iveness fulness ousness aliti iviti biliti fulli logi icate ative alize iciti ical ful
        ness al ance ence er ic able ible ant ement ment ent ion ou ism ate iti ous ive ize e ll ationalli tionalli
        """.split()
    rng, theirs = random.Random(1980), tokenizers.DefaultTokenizer(use_stemmer=True)
    words = {"".join(rng.choice("aeiouybcdlstrnmwxz") for _ in range(rng.randint(1, 5))) for _ in range(500)}
    words |= {w + "".join(rng.choice(suffixes) for _ in range(rng.randint(1, 3))) for w in list(words) * 8}
    words |= set(_PORTER_EXCEPTIONS)
    long_words = sorted(w for w in words if len(w) > 3)  # rouge-score stems only these
    assert len(long_words) > 2000
    mismatches = [(w, porter_stem(w), theirs.tokenize(w)) for w in long_words if [porter_stem(w)] != theirs.tokenize(w)]
    assert mismatches == []


# ------------------------------------------------------------------------------------ ROUGE vs rouge-score


@pytest.mark.parametrize("stem", [False, True])
def test_rouge_1_2_l_equal_rouge_score_on_random_pairs(stem):
    rng, scorer = random.Random(2004), rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem)
    ours_of = {
        "rouge1": lambda p, r: rouge_n(p, r, 1, use_stemmer=stem),
        "rouge2": lambda p, r: rouge_n(p, r, 2, use_stemmer=stem),
        "rougeL": lambda p, r: rouge_l(p, r, use_stemmer=stem),
    }
    worst = dict.fromkeys(ours_of, 0.0)
    for _ in range(N_CASES):
        prediction, reference = _sentence(rng), _sentence(rng)
        theirs = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        for name, ours in ours_of.items():
            got = ours(prediction, reference)
            worst[name] = max(worst[name], *(abs(a - b) for a, b in zip(got, theirs[name], strict=True)))
    assert max(worst.values()) <= TOL, worst


@pytest.mark.parametrize("stem", [False, True])
def test_rouge_scores_is_the_mean_of_rouge_score_over_pairs(stem):
    rng, scorer = random.Random(5), rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem)
    predictions, references = [_sentence(rng) for _ in range(40)], [_sentence(rng) for _ in range(40)]
    per_pair = [scorer.score(r, p) for p, r in zip(predictions, references)]
    got = rouge_scores(predictions, references, use_stemmer=stem)
    for name in ("rouge1", "rouge2", "rougeL"):
        for field in ("precision", "recall", "fmeasure"):
            want = sum(getattr(s[name], field) for s in per_pair) / len(per_pair)
            assert getattr(got[name], field) == pytest.approx(want, abs=TOL), (name, field)


def test_rouge_refuses_bad_arguments():
    with pytest.raises(ValueError, match="n must be"):
        rouge_n("a", "a", 0)
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        rouge_scores(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="lists"):
        rouge_scores("a", ["a"])
