r"""Short reviews with sentiment labels, where negation and contrast decide the label.

    The food was not bad.                                   positive   (negation flips "bad")
    The food was good but overpriced.                       negative   (the part after "but" decides)
    Although the room was noisy, the staff were really helpful.   positive   (the main clause decides)
    The plot wasn't very gripping.                          negative   (an intensifier never flips)

A bag of words cannot label these: "not bad" holds a negative word and is positive; "good but overpriced"
holds one word of each and is negative. The label is computed by a **compositional rule**, stated completely:

1. *Word polarity.* Every adjective of the lexicon (:data:`LEXICON`) is positive (+1) or negative (−1), the same
   for every aspect it is used with (no word changes polarity with context here).
2. *Clause polarity.* The polarity of the clause's adjective, times −1 if the clause is negated ("not", "n't") —
   negation applies to what follows it in its clause. Intensifiers ("very", "really", "extremely") strengthen
   but never change the sign, so "not very good" is negative.
3. *Review polarity.* With a contrast — "A, but B", "A but B" (the second part sharing the first's subject),
   "Although A, B" and "A. However, B" — the part after the contrast marker decides: B. Without a contrast the
   clauses agree ("A and B" joins clauses of the same polarity only), and that polarity is the label.

:func:`label_review` applies the rule to a text by parsing it; the generator builds each review from its parts
and computes the label from them, and a test checks that the two always agree.

Sampling is symmetric: every adjective sign and every negation is drawn independently of the label, and every
template maps a flip of its first clause's sign to a flip of the label, so positive and negative are equally
likely (a test checks the balance within ±5σ). Each review carries its ``phenomena``: ``negation`` (some clause
is negated), ``negation_decides`` (the deciding clause is negated: its adjective's polarity is the opposite of
the label), ``contrast``, ``ellipsis`` ("good but overpriced") and ``intensifier``.

Data: :func:`make_reviews`, :func:`make_review_splits` (distinct texts, so splits never share a review),
committed sample ``data/sentiment/reviews_sample.tsv`` written by :func:`write_sentiment_samples`.
Randomness: ``generator=`` or ``seed=`` (default 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ._common import (
    Splits,
    bernoulli,
    check_domains,
    check_int,
    choice,
    draw_distinct,
    draw_splits,
    make_generator,
    read_tsv,
    uniform_int,
    write_tsv,
)

__all__ = [
    "LABELS",
    "LEXICON",
    "DOMAINS",
    "Review",
    "label_review",
    "make_reviews",
    "make_review_splits",
    "write_sentiment_samples",
    "read_sentiment_samples",
]

LABELS = ("negative", "positive")  # label id 0, 1
SAMPLE_SEED = 0
SAMPLE_SIZE = 100
HEADER = ("text", "label", "phenomena", "domain")
TEMPLATES = ("single", "and", "but", "although", "however", "ellipsis")
NEGATION_P = 0.35
INTENSIFIER_P = 0.3
INTENSIFIERS = ("very", "really", "extremely")
NEGATED_INTENSIFIERS = ("very", "really")  # "not extremely bad" is not idiomatic

# Generic adjectives fit every aspect. The mild ones can be negated or intensified ("not bad", "very nice"); the
# strong ones are used bare ("not superb", "very excellent" are not idiomatic).
MILD = {+1: ("good", "nice"), -1: ("bad", "poor")}
STRONG = {+1: ("great", "excellent", "superb"), -1: ("awful", "terrible", "dreadful")}

# domain -> aspects: (noun phrase, plural?, positive adjectives, negative adjectives)
DOMAINS: dict[str, tuple[tuple[str, bool, tuple[str, ...], tuple[str, ...]], ...]] = {
    "restaurant": (
        ("the food", False, ("tasty", "fresh"), ("bland", "overpriced")),
        ("the service", False, ("quick", "friendly"), ("slow", "rude")),
        ("the waiters", True, ("friendly", "attentive"), ("rude", "slow")),
        ("the dessert", False, ("delicious", "fresh"), ("stale", "overpriced")),
        ("the wine", False, ("delicious", "affordable"), ("sour", "overpriced")),
    ),
    "film": (
        ("the plot", False, ("gripping", "clever"), ("predictable", "confusing")),
        ("the acting", False, ("convincing", "moving"), ("wooden", "clumsy")),
        ("the jokes", True, ("funny", "clever"), ("stale", "lame")),
        ("the ending", False, ("moving", "satisfying"), ("predictable", "rushed")),
        ("the music", False, ("beautiful", "moving"), ("dull", "forgettable")),
    ),
    "hotel": (
        ("the room", False, ("clean", "quiet"), ("dirty", "noisy")),
        ("the staff", True, ("friendly", "helpful"), ("rude", "unhelpful")),
        ("the beds", True, ("comfortable", "clean"), ("hard", "uncomfortable")),
        ("the breakfast", False, ("delicious", "fresh"), ("cold", "overpriced")),
        ("the location", False, ("convenient", "quiet"), ("noisy", "inconvenient")),
    ),
    "phone": (
        ("the battery", False, ("reliable", "long-lasting"), ("weak", "unreliable")),
        ("the screen", False, ("sharp", "bright"), ("dim", "fragile")),
        ("the camera", False, ("sharp", "fast"), ("blurry", "slow")),
        ("the speakers", True, ("clear", "powerful"), ("tinny", "weak")),
        ("the price", False, ("fair", "reasonable"), ("steep", "outrageous")),
    ),
}


def _build_lexicon() -> dict[str, int]:
    lexicon: dict[str, int] = {}
    entries = [(w, s) for table in (MILD, STRONG) for s, words in table.items() for w in words]
    for aspects in DOMAINS.values():
        for _, _, positive, negative in aspects:
            entries += [(w, +1) for w in positive] + [(w, -1) for w in negative]
    for word, sign in entries:
        if lexicon.setdefault(word, sign) != sign:
            raise AssertionError(f"lexicon word {word!r} has both polarities")  # rule 1; checked at import
    return lexicon


LEXICON: dict[str, int] = _build_lexicon()  # word -> +1 (positive) / -1 (negative)
_NEGATIONS = frozenset({"not", "never", "wasn't", "weren't", "isn't", "aren't"})


# -------------------------------------------------------------------------------------------- the rule


def _clause_polarity(clause: str) -> int:
    words = re.findall(r"[a-z]+(?:[-'][a-z]+)*", clause.lower())
    positions = [i for i, w in enumerate(words) if w in LEXICON]
    if not positions:
        raise ValueError(f"no sentiment adjective of the lexicon in the clause {clause!r}")
    i = positions[-1]
    negated = any(w in _NEGATIONS for w in words[:i])
    return -LEXICON[words[i]] if negated else LEXICON[words[i]]


def label_review(text: str) -> str:
    """The label of a review by the compositional rule of the module docstring, from its text alone:
    "positive" or "negative". Raises a ValueError for text outside the rule (no lexicon adjective in a clause,
    or clauses of opposite polarity without a contrast marker).

    >>> label_review("The food was not bad."), label_review("The food was good but overpriced.")
    ('positive', 'negative')
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    lowered = " ".join(text.lower().split()).rstrip(".")
    if "however," in lowered:
        deciding = [lowered.rsplit("however,", 1)[1]]  # "A. However, B": B decides
    elif lowered.startswith("although ") and ", " in lowered:
        deciding = [lowered.split(", ", 1)[1]]  # "Although A, B": the main clause B decides
    elif " but " in lowered:
        deciding = [lowered.rsplit(" but ", 1)[1]]  # "A, but B" and "A but B": B decides
    else:
        deciding = lowered.split(" and ")  # no contrast: the clauses must agree
    polarities = {_clause_polarity(clause) for clause in deciding}
    if len(polarities) != 1:
        raise ValueError(f"clauses of opposite polarity without a contrast marker in {text!r}")
    return LABELS[1] if polarities.pop() > 0 else LABELS[0]


# ----------------------------------------------------------------------------------------- the generator


@dataclass(frozen=True)
class Review:
    """A review, its label ("positive" / "negative"), its phenomena (sorted tags) and its domain."""

    text: str
    label: str
    phenomena: tuple[str, ...]
    domain: str

    @property
    def label_id(self) -> int:
        """0 for negative, 1 for positive (index in :data:`LABELS`)."""
        return LABELS.index(self.label)


@dataclass(frozen=True)
class _Clause:
    subject: str
    plural: bool
    adjective: str
    negated: bool
    intensifier: str | None
    negation_form: int  # 0: "was not", 1: "wasn't"

    @property
    def polarity(self) -> int:
        return -LEXICON[self.adjective] if self.negated else LEXICON[self.adjective]

    def predicate(self) -> str:
        """What follows the verb: "not very good", "really bad", "fresh"."""
        words = (["not"] if self.negated else []) + ([self.intensifier] if self.intensifier else [])
        return " ".join([*words, self.adjective])

    def text(self) -> str:
        verb = "were" if self.plural else "was"
        if self.negated and self.negation_form == 1:
            rest = " ".join(([self.intensifier] if self.intensifier else []) + [self.adjective])
            return f"{self.subject} {verb}n't {rest}"
        return f"{self.subject} {verb} {self.predicate()}"


def _clause(
    g: torch.Generator, aspect, *, polarity: int | None = None, allow_negation: bool = True, generic: bool = True
) -> _Clause:
    """A clause about ``aspect``; with ``polarity`` given, the adjective's sign is chosen to reach it. The adjective
    is uniform among the aspect's own, the mild generic ones and — when neither negated nor intensified — the
    strong generic ones (``generic=False``: the aspect's own only)."""
    subject, plural, positive, negative = aspect
    negated = allow_negation and bernoulli(g, NEGATION_P)
    intensified = bernoulli(g, INTENSIFIER_P)
    sign = (1 if bernoulli(g, 0.5) else -1) if polarity is None else (-polarity if negated else polarity)
    words = positive if sign > 0 else negative
    if generic:
        words = words + MILD[sign] + (() if negated or intensified else STRONG[sign])
    adjective = choice(g, words)
    intensifier = choice(g, NEGATED_INTENSIFIERS if negated else INTENSIFIERS) if intensified else None
    return _Clause(subject, plural, adjective, negated, intensifier, uniform_int(g, 0, 1))


def _review(g: torch.Generator, domains: tuple[str, ...]) -> Review:
    domain = choice(g, domains)
    aspects = DOMAINS[domain]
    template = choice(g, TEMPLATES)
    first_index = uniform_int(g, 0, len(aspects) - 1)
    second_index = choice(g, tuple(i for i in range(len(aspects)) if i != first_index))
    first_aspect, second_aspect = aspects[first_index], aspects[second_index]
    if template == "ellipsis":  # "The food was good but overpriced": same subject, the second part decides
        first = _clause(g, first_aspect, allow_negation=False)  # "was not A but B" would read as "B instead of A"
        second = _clause(g, first_aspect, polarity=-first.polarity, generic=False)  # not "good but not nice"
        clauses = (first, second)
        text = f"{first.text()} but {second.predicate()}."
    elif template == "single":
        clauses = (_clause(g, first_aspect),)
        text = f"{clauses[0].text()}."
    else:
        first = _clause(g, first_aspect)
        same = template == "and"
        second = _clause(g, second_aspect, polarity=first.polarity if same else -first.polarity)
        clauses = (first, second)
        if template == "and":
            text = f"{first.text()} and {second.text()}."
        elif template == "but":
            text = f"{first.text()}, but {second.text()}."
        elif template == "although":
            text = f"Although {first.text()}, {second.text()}."
        else:
            text = f"{first.text()}. However, {second.text()}."
    deciding = clauses[-1]  # rule 3: the part after the contrast marker, or (agreeing clauses) any of them
    tags = set()
    if any(c.negated for c in clauses):
        tags.add("negation")
    if deciding.negated:
        tags.add("negation_decides")
    if template in ("but", "although", "however", "ellipsis"):
        tags.add("contrast")
    if template == "ellipsis":
        tags.add("ellipsis")
    if any(c.intensifier for c in clauses):
        tags.add("intensifier")
    label = LABELS[1] if deciding.polarity > 0 else LABELS[0]
    text = text[0].upper() + text[1:]
    return Review(text, label, tuple(sorted(tags)), domain)


def make_reviews(
    n: int,
    *,
    domains: tuple[str, ...] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> list[Review]:
    """``n`` distinct short reviews with labels and phenomena. Domain, template (single clause, "and", "but",
    "although", "however", elliptical "but") and aspects are uniform; negation has probability 0.35 per clause
    (never in the first part of an elliptical review), an intensifier 0.3. ``domains``: a subset of
    :data:`DOMAINS` (default all). Same arguments, same reviews."""
    check_int("n", n, 0)
    domains = check_domains(domains, tuple(DOMAINS))
    g = make_generator(seed, generator)
    return draw_distinct(n, lambda: _review(g, domains), key=lambda r: r.text, what="reviews")


def make_review_splits(
    *,
    n_train: int = 2000,
    n_validation: int = 200,
    n_test: int = 200,
    domains: tuple[str, ...] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Splits[Review]:
    """Train, validation and test reviews that never share a text: one :func:`make_reviews` call, cut."""
    options = dict(domains=domains, seed=seed, generator=generator)
    return draw_splits(lambda n: make_reviews(n, **options), n_train, n_validation, n_test)


def write_sentiment_samples(folder: str | Path, *, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED) -> list[Path]:
    """Write ``reviews_sample.tsv`` (header ``text<TAB>label<TAB>phenomena<TAB>domain``; phenomena joined by
    commas, ``-`` for none) into ``folder``. The defaults reproduce ``data/sentiment/`` byte for byte."""
    rows = [(r.text, r.label, ",".join(r.phenomena) or "-", r.domain) for r in make_reviews(n, seed=seed)]
    return [write_tsv(Path(folder) / "reviews_sample.tsv", HEADER, rows)]


def read_sentiment_samples(path: str | Path) -> list[Review]:
    """The reviews of a file written by :func:`write_sentiment_samples`."""
    return [
        Review(text, label, tuple(tags.split(",")) if tags != "-" else (), domain)
        for text, label, tags, domain in read_tsv(path, HEADER)
    ]
