r"""Short factual reports with one-sentence reference summaries, generated from the same facts.

    report    The Riverside Rovers hosted the Hillcrest Hawks on Saturday. Ana Silva scored 2 goals for the
              Riverside Rovers. The Riverside Rovers scored 3 goals and the Hillcrest Hawks scored 1.
              The match was watched by 12,400 fans.
    summary   The Riverside Rovers beat the Hillcrest Hawks 3-1 on Saturday.

Three domains, reports of 3–5 sentences (weather and sales: 5) holding entities and numbers, of which the
summary keeps the ones that matter and drops the rest (attendance, wind, staff numbers are distractors):

* **sports** — a match: home and away team, day, both scores, a scorer, attendance. Summary: "The W beat the L
  a-b on D." (a > b, winner first) or "The H and the A drew a-a on D."
* **weather** — a city's day: high and low temperature (°C), rain in millimetres or none, wind. Summary: "C had a
  rainy|dry D, with temperatures between L and H degrees."
* **sales** — a company's quarter: revenue (millions of dollars), change from the previous quarter (percent),
  units sold, best-selling product, staff. Summary: "Revenue at C rose|fell P percent to R million dollars in
  the Q quarter."

The first report sentence is always first; the others come in a random order, so a summarizer must find the
facts, not copy sentence positions. Every entity and number of the summary appears verbatim in the report (a
test checks it, and checks by reading the report that the summary's direction words — beat, drew, rose, fell,
rainy, dry — are right). All names are invented.

Data: :func:`make_reports`, :func:`make_report_splits` (distinct reports, so splits never share one), committed
sample ``data/reports/reports_sample.jsonl`` written by :func:`write_report_samples`. Randomness: ``generator=``
or ``seed=`` (default 0).
"""

from __future__ import annotations

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
    permutation,
    read_jsonl,
    uniform_int,
    write_jsonl,
)

__all__ = [
    "REPORT_DOMAINS",
    "Report",
    "make_reports",
    "make_report_splits",
    "write_report_samples",
    "read_report_samples",
]

REPORT_DOMAINS = ("sports", "weather", "sales")
SAMPLE_SEED = 0
SAMPLE_SIZE = 60
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TEAMS = (
    "Riverside Rovers",
    "Hillcrest Hawks",
    "Northbay Mariners",
    "Eastfield Foxes",
    "Oakridge Owls",
    "Lakeside Lions",
    "Stonebridge Bears",
    "Westport Wolves",
)
PLAYERS = ("Ana Silva", "Tom Becker", "Lena Novak", "Omar Haddad", "Mia Laurent", "Kenji Sato", "Eva Lindqvist")
CITIES = ("Lisbon", "Oslo", "Madrid", "Dublin", "Vienna", "Prague", "Helsinki", "Porto", "Krakow")
WINDS = ("north", "south", "east", "west")
COMPANIES = ("Northwind Traders", "Bluepeak Systems", "Greenleaf Foods", "Silverline Motors", "Brightwave Media")
PRODUCTS = ("Atlas blender", "Nova headphones", "Orbit kettle", "Zephyr fan", "Pixel lamp", "Summit backpack")
QUARTERS = ("first", "second", "third", "fourth")


@dataclass(frozen=True)
class Report:
    """A report (sentences joined by spaces), its one-sentence summary, and the facts the summary states, as
    (name, surface string) pairs: each surface string appears verbatim in both texts."""

    domain: str
    report: str
    summary: str
    facts: tuple[tuple[str, str], ...]

    def as_row(self) -> dict:
        """A JSON-ready dict (the committed sample format)."""
        return {"domain": self.domain, "report": self.report, "summary": self.summary, "facts": dict(self.facts)}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _assemble(g: torch.Generator, first: str, others: list[str]) -> str:
    order = permutation(g, len(others))
    return " ".join([first] + [others[i] for i in order])


def _sports(g: torch.Generator) -> Report:
    home = choice(g, TEAMS)
    away = choice(g, tuple(t for t in TEAMS if t != home))
    day = choice(g, DAYS)
    home_goals, away_goals = uniform_int(g, 0, 5), uniform_int(g, 0, 5)
    fans = uniform_int(g, 20, 450) * 100
    others = [
        f"The {home} scored {_plural(home_goals, 'goal')} and the {away} scored {away_goals}.",
        f"The match was watched by {fans:,} fans.",
    ]
    if home_goals or away_goals:
        team, goals = (home, home_goals) if home_goals >= away_goals else (away, away_goals)
        scored = uniform_int(g, 1, goals)
        others.append(f"{choice(g, PLAYERS)} scored {_plural(scored, 'goal')} for the {team}.")
    if bernoulli(g, 0.5):
        others.append(f"The referee showed {_plural(uniform_int(g, 1, 6), 'yellow card')}.")
    report = _assemble(g, f"The {home} hosted the {away} on {day}.", others)
    if home_goals == away_goals:
        summary = f"The {home} and the {away} drew {home_goals}-{away_goals} on {day}."
        facts = (("home", home), ("away", away), ("home_goals", str(home_goals)), ("away_goals", str(away_goals)))
    else:
        (winner, w), (loser, l) = sorted([(home, home_goals), (away, away_goals)], key=lambda t: -t[1])
        summary = f"The {winner} beat the {loser} {w}-{l} on {day}."
        facts = (("winner", winner), ("loser", loser), ("winner_goals", str(w)), ("loser_goals", str(l)))
    return Report("sports", report, summary, (*facts, ("day", day)))


def _weather(g: torch.Generator) -> Report:
    city, day = choice(g, CITIES), choice(g, DAYS)
    low = uniform_int(g, -5, 20)
    high = low + uniform_int(g, 3, 12)
    rain = uniform_int(g, 1, 30) if bernoulli(g, 0.5) else 0
    wind = uniform_int(g, 5, 60)
    others = [
        f"Temperatures in {city} rose to a high of {high} degrees.",
        f"The lowest temperature, {low} degrees, was measured before dawn.",
        f"A {choice(g, WINDS)} wind blew at {wind} kilometres per hour.",
    ]
    if rain:
        others.append(f"Rain fell for most of the afternoon, {_plural(rain, 'millimetre')} in total.")
    else:
        others.append("No rain fell all day.")
    report = _assemble(g, f"Here is the weather report for {city} on {day}.", others)
    kind = "rainy" if rain else "dry"
    summary = f"{city} had a {kind} {day}, with temperatures between {low} and {high} degrees."
    facts = (("city", city), ("day", day), ("low", str(low)), ("high", str(high)))
    return Report("weather", report, summary, facts)


def _sales(g: torch.Generator) -> Report:
    company, quarter = choice(g, COMPANIES), choice(g, QUARTERS)
    revenue = f"{uniform_int(g, 11, 99) / 10:.1f}"
    change = uniform_int(g, 1, 30) * (1 if bernoulli(g, 0.5) else -1)
    units, staff = uniform_int(g, 10, 900) * 100, uniform_int(g, 20, 400)
    direction = "more" if change > 0 else "less"
    others = [
        f"That is {abs(change)} percent {direction} than in the previous quarter.",
        f"The company sold {units:,} units.",
        f"Its best-selling product was the {choice(g, PRODUCTS)}.",
        f"{company} employs {staff} people.",
    ]
    first = f"{company} reported revenue of {revenue} million dollars for the {quarter} quarter."
    # "That is …" refers to the revenue: it stays right after the first sentence; the rest are shuffled
    report = _assemble(g, f"{first} {others[0]}", others[1:])
    verb = "rose" if change > 0 else "fell"
    summary = (
        f"Revenue at {company} {verb} {abs(change)} percent to {revenue} million dollars in the {quarter} quarter."
    )
    facts = (("company", company), ("quarter", quarter), ("change_percent", str(abs(change))), ("revenue", revenue))
    return Report("sales", report, summary, facts)


_MAKERS = {"sports": _sports, "weather": _weather, "sales": _sales}


def make_reports(
    n: int,
    *,
    domains: tuple[str, ...] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> list[Report]:
    """``n`` distinct reports with summaries; the domain of each is uniform over ``domains`` (default all of
    :data:`REPORT_DOMAINS`). Same arguments, same reports."""
    check_int("n", n, 0)
    domains = check_domains(domains, REPORT_DOMAINS)
    g = make_generator(seed, generator)
    return draw_distinct(n, lambda: _MAKERS[choice(g, domains)](g), key=lambda r: r.report, what="reports")


def make_report_splits(
    *,
    n_train: int = 2000,
    n_validation: int = 200,
    n_test: int = 200,
    domains: tuple[str, ...] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Splits[Report]:
    """Train, validation and test reports that never share a text: one :func:`make_reports` call, cut."""
    options = dict(domains=domains, seed=seed, generator=generator)
    return draw_splits(lambda n: make_reports(n, **options), n_train, n_validation, n_test)


def write_report_samples(folder: str | Path, *, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED) -> list[Path]:
    """Write ``reports_sample.jsonl`` (one :meth:`Report.as_row` per line) into ``folder``. The defaults
    reproduce ``data/reports/`` byte for byte."""
    return [write_jsonl(Path(folder) / "reports_sample.jsonl", [r.as_row() for r in make_reports(n, seed=seed)])]


def read_report_samples(path: str | Path) -> list[Report]:
    """The reports of a file written by :func:`write_report_samples`."""
    reports = []
    for number, row in enumerate(read_jsonl(path), start=1):
        if set(row) != {"domain", "report", "summary", "facts"}:
            raise ValueError(f"{path}:{number}: expected the keys domain, report, summary, facts; got {sorted(row)}")
        reports.append(Report(row["domain"], row["report"], row["summary"], tuple(row["facts"].items())))
    return reports
