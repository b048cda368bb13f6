r"""bAbI-style stories with extractive questions: the answer is a character span of the story.

    story     Mary went to the kitchen. John moved to the garden. Mary travelled to the office.
    question  Where is Mary?
    answer    office            story[answer_start : answer_end] == "office", in the 3rd sentence

The two tasks are our re-implementation of the first two of the 20 bAbI tasks — Weston, Bordes, Chopra, Rush,
van Merriënboer, Joulin and Mikolov, "Towards AI-Complete Question Answering: A Set of Prerequisite Toy Tasks"
(2015, arXiv:1502.05698). No bAbI data is used: the world, its vocabulary and the sampling are written here.

* **Task 1, single supporting fact.** People move between places ("Mary went to the kitchen."); the question
  asks where one of them is. The answer is the place of that person's *last* move, and the span points into that
  sentence — an earlier mention of the same place is not the answer.
* **Task 2, two supporting facts.** People also pick up and drop objects ("John picked up the football.",
  "John dropped the football."); the question asks where an object is. A carried object is where its carrier
  is: the supporting facts are the pick-up and the carrier's last move, whichever came first. A dropped object
  stays where it was dropped: the facts are the drop and the move that brought the carrier there.

The world: people Mary, John, Sandra, Daniel; places bathroom, bedroom, garden, hallway, kitchen, office;
objects apple, football, milk. A move goes to a place other than the current one ("went back to" only to a place
the person has been before). A person may pick up an object nobody carries if the object is unplaced or lies
where the person is; anyone may drop what they carry. The question is about a person (task 1) or an object
(task 2) whose place the story determines, chosen uniformly among those.

Data: :func:`make_stories`, :func:`make_story_splits` (distinct (story, question) pairs, so splits never share
one), committed samples ``data/qa/`` written by :func:`write_story_samples`. Randomness: ``generator=`` or
``seed=`` (default 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ._common import (
    Splits,
    bernoulli,
    check_int,
    choice,
    draw_distinct,
    draw_splits,
    make_generator,
    read_jsonl,
    write_jsonl,
)

__all__ = [
    "PEOPLE",
    "PLACES",
    "OBJECTS",
    "QAExample",
    "make_stories",
    "make_story_splits",
    "write_story_samples",
    "read_story_samples",
]

PEOPLE = ("Mary", "John", "Sandra", "Daniel")
PLACES = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
OBJECTS = ("apple", "football", "milk")
MOVES = ("went to", "moved to", "journeyed to", "travelled to")
MOVE_BACK = "went back to"  # only to a place visited before
GRABS = ("picked up", "got", "grabbed", "took")
DROPS = ("dropped", "put down", "discarded", "left")
TASKS = (1, 2)
SAMPLE_SEED = 0
SAMPLE_SIZE = 50
DEFAULT_FACTS = {1: (2, 8), 2: (3, 10)}  # (min_facts, max_facts) per task


@dataclass(frozen=True)
class QAExample:
    """A story (sentences joined by single spaces), a question and its answer as a span of the story.

    ``supporting_facts`` are the indices of the sentences that decide the answer (bAbI's supporting facts); the
    span lies in the last of the move sentences among them."""

    task: int
    sentences: tuple[str, ...]
    question: str
    answer: str
    answer_start: int
    supporting_facts: tuple[int, ...]

    @property
    def story(self) -> str:
        """The sentences joined by single spaces: character offsets refer to this string."""
        return " ".join(self.sentences)

    @property
    def answer_end(self) -> int:
        """End of the answer span (exclusive): ``story[answer_start:answer_end] == answer``."""
        return self.answer_start + len(self.answer)

    def as_row(self) -> dict:
        """A JSON-ready dict (the committed sample format)."""
        return {
            "task": self.task,
            "story": self.story,
            "question": self.question,
            "answer": self.answer,
            "answer_start": self.answer_start,
            "supporting_facts": list(self.supporting_facts),
        }


class _World:
    """The state a story builds up: where people are (and which sentence said so), who carries what."""

    def __init__(self, g: torch.Generator) -> None:
        self.g = g
        self.sentences: list[str] = []
        self.place: dict[str, tuple[str, int]] = {}  # person -> (place, index of the move sentence)
        self.visited: dict[str, set[str]] = {p: set() for p in PEOPLE}
        self.carrier: dict[str, tuple[str, int]] = {}  # object -> (person, index of the pick-up sentence)
        # object -> (place, index of the move that brought the carrier there, index of the drop sentence)
        self.dropped: dict[str, tuple[str, int, int]] = {}
        self.answer_offset: dict[int, int] = {}  # move sentence index -> offset of its place within the sentence

    def move(self) -> None:
        person = choice(self.g, PEOPLE)
        here = self.place.get(person, (None, -1))[0]
        place = choice(self.g, tuple(p for p in PLACES if p != here))
        verb = MOVE_BACK if place in self.visited[person] and bernoulli(self.g, 0.25) else choice(self.g, MOVES)
        prefix = f"{person} {verb} the "
        self.answer_offset[len(self.sentences)] = len(prefix)
        self.place[person] = (place, len(self.sentences))
        self.visited[person].add(place)
        self.sentences.append(f"{prefix}{place}.")

    def object_actions(self) -> list[tuple[str, str, str]]:
        """Possible ("grab" | "drop", person, object) actions, in a fixed order."""
        actions = []
        for obj in OBJECTS:
            if obj in self.carrier:
                actions.append(("drop", self.carrier[obj][0], obj))
                continue
            for person in PEOPLE:
                if person in self.place and (obj not in self.dropped or self.dropped[obj][0] == self.place[person][0]):
                    actions.append(("grab", person, obj))
        return actions

    def act(self, action: tuple[str, str, str]) -> None:
        kind, person, obj = action
        index = len(self.sentences)
        if kind == "grab":
            self.carrier[obj] = (person, index)
            self.dropped.pop(obj, None)
            self.sentences.append(f"{person} {choice(self.g, GRABS)} the {obj}.")
        else:
            del self.carrier[obj]
            place, move_index = self.place[person]
            self.dropped[obj] = (place, move_index, index)
            self.sentences.append(f"{person} {choice(self.g, DROPS)} the {obj}.")

    def example(self, task: int, question: str, place: str, facts: tuple[int, ...], move_index: int) -> QAExample:
        start = sum(len(s) + 1 for s in self.sentences[:move_index]) + self.answer_offset[move_index]
        return QAExample(task, tuple(self.sentences), question, place, start, tuple(sorted(facts)))


def _task1(g: torch.Generator, n_facts: int) -> QAExample:
    world = _World(g)
    for _ in range(n_facts):
        world.move()
    person = choice(g, tuple(p for p in PEOPLE if p in world.place))
    place, index = world.place[person]
    return world.example(1, f"Where is {person}?", place, (index,), index)


def _task2(g: torch.Generator, n_facts: int) -> QAExample | None:
    world = _World(g)
    world.move()  # someone must be somewhere before anything can be picked up
    while len(world.sentences) < n_facts:
        actions = world.object_actions()
        if actions and bernoulli(g, 0.5):
            world.act(choice(g, actions))
        else:
            world.move()
    placed = tuple(o for o in OBJECTS if o in world.carrier or o in world.dropped)
    if not placed:
        return None  # nothing was ever picked up: no two-fact question to ask; the caller draws again
    obj = choice(g, placed)
    if obj in world.carrier:
        person, grab_index = world.carrier[obj]
        place, move_index = world.place[person]
        facts = (grab_index, move_index)
    else:
        place, move_index, drop_index = world.dropped[obj]
        facts = (move_index, drop_index)
    return world.example(2, f"Where is the {obj}?", place, facts, move_index)


def make_stories(
    n: int,
    *,
    task: int = 1,
    min_facts: int | None = None,
    max_facts: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> list[QAExample]:
    """``n`` distinct (story, question) examples of bAbI-style ``task`` 1 or 2. A story has a number of sentences
    uniform on [min_facts, max_facts] (defaults: 2–8 for task 1, 3–10 for task 2). Same arguments, same stories."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    default_min, default_max = DEFAULT_FACTS[task]
    min_facts = default_min if min_facts is None else min_facts
    max_facts = default_max if max_facts is None else max_facts
    check_int("min_facts", min_facts, 1 if task == 1 else 2)
    check_int("max_facts", max_facts, min_facts)
    check_int("n", n, 0)
    g = make_generator(seed, generator)

    def draw() -> QAExample:
        while True:
            n_facts = int(torch.randint(min_facts, max_facts + 1, (1,), generator=g))
            example = _task1(g, n_facts) if task == 1 else _task2(g, n_facts)
            if example is not None:
                return example

    return draw_distinct(n, draw, key=lambda e: (e.story, e.question), what=f"task-{task} stories")


def make_story_splits(
    *,
    task: int = 1,
    n_train: int = 2000,
    n_validation: int = 200,
    n_test: int = 200,
    min_facts: int | None = None,
    max_facts: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Splits[QAExample]:
    """Train, validation and test examples that never share a (story, question): one :func:`make_stories`
    call, cut in that order."""
    options = dict(task=task, min_facts=min_facts, max_facts=max_facts, seed=seed, generator=generator)
    return draw_splits(lambda n: make_stories(n, **options), n_train, n_validation, n_test)


def write_story_samples(folder: str | Path, *, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED) -> list[Path]:
    """Write ``babi_task1_sample.jsonl`` and ``babi_task2_sample.jsonl`` (one :meth:`QAExample.as_row` per line)
    into ``folder``. The defaults reproduce ``data/qa/`` byte for byte."""
    folder = Path(folder)
    return [
        write_jsonl(
            folder / f"babi_task{task}_sample.jsonl", [e.as_row() for e in make_stories(n, task=task, seed=seed)]
        )
        for task in TASKS
    ]


def read_story_samples(path: str | Path) -> list[dict]:
    """Rows of a file written by :func:`write_story_samples`: dicts with task, story, question, answer,
    answer_start and supporting_facts."""
    rows = read_jsonl(path)
    keys = {"task", "story", "question", "answer", "answer_start", "supporting_facts"}
    for number, row in enumerate(rows, start=1):
        if set(row) != keys:
            raise ValueError(f"{path}:{number}: expected the keys {sorted(keys)}, got {sorted(row)}")
    return rows
