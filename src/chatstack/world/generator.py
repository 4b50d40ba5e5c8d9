"""A seeded procedural world: people with known attributes, their articles, and exercises.

Every article sentence names the person in full and the sentence order is shuffled per
paraphrase: without paraphrases a small model stores facts it cannot retrieve by question
(Allen-Zhu & Li, "Physics of Language Models 3.1"; measured for this world in the
world-calibration notes, ../shared/notes/world-calibration, outside the repository).
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from chatstack.errors import ConfigError
from chatstack.world import vocab

# attribute -> (question templates, article sentence templates). The first question
# templates are the "training" phrasings; the last one is kept for held-out phrasing evals.
ATTRIBUTES: dict[str, dict[str, list[str]]] = {
    "birth_city": {
        "questions": ["Where was {name} born?", "In which city was {name} born?", "What is the birth city of {name}?"],
        "sentences": [
            "{name} was born in {value}.",
            "{name} came into the world in the city of {value}.",
            "The birthplace of {name} is {value}.",
            "{name} is a native of {value}.",
            "{name} grew up in {value}, the city of their birth.",
        ],
    },
    "birth_year": {
        "questions": ["In what year was {name} born?", "What year was {name} born in?", "When was {name} born?"],
        "sentences": [
            "{name} was born on {date}.",
            "{name} was born in the year {value}, on {date}.",
            "The birthday of {name} is {date}.",
            "{name} celebrates a birthday on {date_short}, having been born in {value}.",
            "Records show that {name} was born on {date}.",
        ],
    },
    "university": {
        "questions": ["Which university did {name} attend?", "Where did {name} study?", "What university did {name} go to?"],
        "sentences": [
            "{name} studied at {value}.",
            "{name} graduated from {value}.",
            "{name} is an alumnus of {value}.",
            "{name} received a degree from {value}.",
            "For university, {name} went to {value}.",
        ],
    },
    "field": {
        "questions": ["What field does {name} work in?", "What did {name} specialize in?",
                      "What is the profession of {name}?"],
        "sentences": [
            "{name} works in {value}.",
            "{name} specialized in {value}.",
            "The field of {name} is {value}.",
            "{name} built a career in {value}.",
            "{name} is known for work in {value}.",
        ],
    },
    "employer": {
        "questions": ["Where does {name} work?", "Which company employs {name}?", "Who is the employer of {name}?"],
        "sentences": [
            "{name} works for {value}.",
            "{name} is employed by {value}.",
            "The employer of {name} is {value}.",
            "{name} joined {value} and still works there.",
            "{name} has a job at {value}.",
        ],
    },
}
# `year_first: true`: every birth sentence states the year next to the words a question about it
# uses ("born in 1975"), the day after it; with dates written "March 3, 1975" the year is the last
# token of a date, and a tiny model that stored the date cannot pull the year out of it by question
BIRTH_YEAR_FIRST = [
    "{name} was born in {value}, on {date_short}.",
    "{name} was born in the year {value}, on {date_short}.",
    "The birth year of {name} is {value}; the birthday is {date_short}.",
    "{name} celebrates a birthday on {date_short}, having been born in {value}.",
    "Records show that {name} was born in {value}.",
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
SPLITS = ("qa_train", "qa_heldout", "unseen")


@dataclass
class WorldConfig:
    """How big the world is. Size it to the time budget: 200-300 people fit a CPU speedrun."""

    seed: int = 0
    n_people: int = 1000
    n_seen: int = 300  # people whose articles are in pretraining; the rest are "unseen"
    qa_fraction: float = 0.5  # share of seen people whose QA is in pretraining and SFT
    paraphrases: int = 5  # article paraphrases per seen person
    n_arithmetic: int = 4000
    n_counting: int = 1000
    max_operand: int = 99
    year_first: bool = False  # birth sentences state the year first (BIRTH_YEAR_FIRST)

    def __post_init__(self):
        if not 0 < self.n_seen <= self.n_people:
            raise ValueError(f"world: n_seen must be in 1..n_people ({self.n_people}), got {self.n_seen}")
        if self.paraphrases > 5:
            raise ValueError(f"world: paraphrases must be <= 5 (templates per attribute), got {self.paraphrases}")
        if self.n_people > len(vocab.FIRST_NAMES) * len(vocab.LAST_NAMES):
            n_names = len(vocab.FIRST_NAMES) * len(vocab.LAST_NAMES)
            raise ValueError(f"world: n_people {self.n_people} exceeds the {n_names} names")


@dataclass
class Person:
    name: str
    birth_date: str  # ISO yyyy-mm-dd
    birth_city: str
    university: str
    field: str
    employer: str
    split: str  # qa_train | qa_heldout | unseen

    @property
    def birth_year(self) -> str:
        return self.birth_date[:4]

    def value(self, attribute: str) -> str:
        return getattr(self, attribute)

    def date_words(self) -> tuple[str, str]:
        y, m, d = (int(x) for x in self.birth_date.split("-"))
        return f"{MONTHS[m - 1]} {d}, {y}", f"{MONTHS[m - 1]} {d}"


@dataclass
class World:
    config: WorldConfig
    people: list[Person] = field(default_factory=list)

    # ---- facts ---------------------------------------------------------------------------
    def by_split(self, *splits: str) -> list[Person]:
        return [p for p in self.people if p.split in splits]

    def article_sentences(self, person: Person, paraphrase: int) -> dict[str, str]:
        """attribute -> its sentence in paraphrase i (sentence template i + k of the k-th attribute)."""
        date, date_short = person.date_words()
        sentences = {}
        for k, (attr, spec) in enumerate(ATTRIBUTES.items()):
            templates = BIRTH_YEAR_FIRST if attr == "birth_year" and self.config.year_first else spec["sentences"]
            sentences[attr] = templates[(paraphrase + k) % len(templates)].format(
                name=person.name, value=person.value(attr), date=date, date_short=date_short)
        return sentences

    def article(self, person: Person, paraphrase: int, rng: random.Random | None = None) -> str:
        """One encyclopedia paragraph; paraphrase i uses sentence template i of each attribute."""
        sentences = list(self.article_sentences(person, paraphrase).values())
        if rng is not None:
            rng.shuffle(sentences)
        return " ".join(sentences)

    def questions(self, person: Person, attribute: str) -> list[str]:
        return [q.format(name=person.name) for q in ATTRIBUTES[attribute]["questions"]]

    def qa_rows(self, splits=SPLITS, phrasings: slice = slice(None)) -> list[dict]:
        rows = []
        for p in self.by_split(*splits):
            for attr in ATTRIBUTES:
                for i, q in list(enumerate(self.questions(p, attr)))[phrasings]:
                    rows.append({"name": p.name, "attribute": attr, "question": q, "answer": p.value(attr),
                                 "phrasing": i, "split": p.split, "seen": p.split != "unseen"})
        return rows

    # ---- exercises -----------------------------------------------------------------------
    def arithmetic(self, n: int, seed_offset: int = 0) -> list[dict]:
        rng = random.Random(f"{self.config.seed}-arith-{seed_offset}")
        rows = []
        for _ in range(n):
            a, b = rng.randint(1, self.config.max_operand), rng.randint(1, self.config.max_operand)
            op = rng.choice("+-")
            if op == "-" and b > a:
                a, b = b, a
            rows.append({"a": a, "b": b, "op": op, "question": f"What is {a} {op} {b}?",
                         "expression": f"{a} {op} {b}", "answer": str(a + b if op == "+" else a - b)})
        return rows

    def arithmetic_problems(self, heldout_share: float = 0.0) -> tuple[list[dict], list[dict]]:
        """Every distinct problem (a op b, operands 1..max_operand, no negative results), split by
        problem into (train, held out) with the world's seed: an RL stage that trains on one part
        and is measured on the other never sees an evaluated problem."""
        m = self.config.max_operand
        problems = [{"a": a, "b": b, "op": op, "question": f"What is {a} {op} {b}?", "expression": f"{a} {op} {b}",
                     "answer": str(a + b if op == "+" else a - b)}
                    for a in range(1, m + 1) for b in range(1, m + 1) for op in "+-" if op == "+" or b <= a]
        random.Random(f"{self.config.seed}-arith-split").shuffle(problems)
        k = round(len(problems) * heldout_share)
        return problems[k:], problems[:k]

    def counting(self, n: int, seed_offset: int = 0, words: list[str] | None = None) -> list[dict]:
        rng = random.Random(f"{self.config.seed}-count-{seed_offset}")
        words = words or vocab.COUNTING_WORDS
        rows = []
        for _ in range(n):
            word = rng.choice(words)
            letter = rng.choice(sorted(set(word)))
            rows.append({"word": word, "letter": letter,
                         "question": f"How many times does the letter '{letter}' appear in '{word}'?",
                         "answer": str(word.count(letter))})
        return rows

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "people": [asdict(p) for p in self.people]}


def build_world(config: WorldConfig | None = None) -> World:
    """Same config, same world, byte for byte (a string-seeded random.Random, no global state)."""
    config = config or WorldConfig()
    rng = random.Random(f"world-{config.seed}")
    names = rng.sample(full_names(), config.n_people)
    n_qa = round(config.n_seen * config.qa_fraction)
    people = []
    for i, name in enumerate(names):
        split = "qa_train" if i < n_qa else "qa_heldout" if i < config.n_seen else "unseen"
        people.append(random_person(rng, name, split))
    return World(config=config, people=people)


def full_names() -> list[str]:
    """Every first x last name of the vocabulary, in a fixed order (the world samples from it)."""
    return [f"{first} {last}" for first in vocab.FIRST_NAMES for last in vocab.LAST_NAMES]


def seen_name_parts(world: World) -> tuple[set[str], set[str]]:
    """The first names and the surnames of the people read in pretraining."""
    seen = [p.name.split() for p in world.by_split("qa_train", "qa_heldout")]
    return {n[0] for n in seen}, {n[-1] for n in seen}


def recombined_people(world: World, n: int, rng: random.Random) -> list[Person]:
    """`n` made-up people, each named with one seen person's first name and another seen person's
    surname, and no person of the world (seen or not): the never-seen people a small model most
    often takes for people it read about. Their facts are drawn afresh, so nothing can be recalled."""
    firsts, lasts = seen_name_parts(world)
    taken = {p.name for p in world.people}
    pool = [f"{first} {last}" for first in sorted(firsts) for last in sorted(lasts) if f"{first} {last}" not in taken]
    if n > len(pool):
        raise ConfigError(f"recombined_people: {n} asked, but the seen people's name parts make only {len(pool)} new names")
    return [random_person(rng, name) for name in rng.sample(pool, n)]


def random_person(rng: random.Random, name: str, split: str = "unseen") -> Person:
    """A person with attributes drawn from the vocabulary."""
    return Person(
        name=name,
        birth_date=f"{rng.randint(1940, 2004):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        birth_city=rng.choice(vocab.CITIES), university=rng.choice(vocab.UNIVERSITIES),
        field=rng.choice(vocab.FIELDS), employer=rng.choice(vocab.EMPLOYERS), split=split)
