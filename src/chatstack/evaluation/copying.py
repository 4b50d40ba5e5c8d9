"""Does a base model copy from its context? The skill every tool call needs: the question's name
or operands into the call, the result's value into the answer.

Two completion-style probes, greedy through chatstack.engine, on text no training run holds:

- `copy_name_accuracy`: an article about a made-up person (builders.midtraining.reading_documents
  with a seed of its own), cut right after the second mention of the first name: is the surname
  written next? It was written once, a few tokens back, and never in training.
- `reading_accuracy_<attribute>`: the article of a never-seen person of the world (paraphrase 0,
  as the search tool returns it), then "Q: <question>\\nA:": does the answer line state the value
  the article holds? Without copying it is a lucky guess of a common value.

Everything else in the tiny world's pretraining text can be recalled instead of read, so nothing
else in it asks the base to copy (what it measured: README, "Copying").
"""
from __future__ import annotations

from chatstack.world.datasets import get_world
from chatstack.world.generator import ATTRIBUTES

PROBE_SEED = 9_999  # the made-up people of the name probe: no recipe draws reading documents with it


def name_prompts(world="tiny", n: int = 60) -> list[tuple[str, str]]:
    """(article cut after the first name's second mention, the surname that should follow)."""
    from chatstack.builders.midtraining import reading_documents
    from chatstack.builders.tools import practice_people

    people = [p for batch in practice_people(world, n, PROBE_SEED) for p in batch]  # those reading_documents writes
    out = []
    for person, doc in zip(people, reading_documents(world, seed=PROBE_SEED, n=n)):
        first, last = person.name.split(" ", 1)
        article = doc["text"].split("\n\n")[0]
        second = article.find(first + " ", article.find(first + " ") + 1)
        if second >= 0:
            out.append((article[:second + len(first)], last))
    return out


def reading_prompts(world="tiny", n: int = 60) -> list[tuple[str, str, str]]:
    """(attribute, never-seen person's article + question, the value the article holds)."""
    w = get_world(world)
    return [(attr, f"{w.article(p, 0)}\n\nQ: {w.questions(p, attr)[0]}\nA:", p.value(attr))
            for attr in ATTRIBUTES for p in w.by_split("unseen")[:n]]


def copying(engine, world="tiny", n: int = 60, batch_size: int = 64) -> dict[str, float]:
    """{copy_name_accuracy, reading_accuracy, reading_accuracy_<attribute>} of a base model's Engine."""
    names = name_prompts(world, n)
    replies = engine.complete([p for p, _ in names], max_new_tokens=4, batch_size=batch_size)
    out = {"copy_name_accuracy": round(sum(r.startswith(" " + last) for r, (_, last) in zip(replies, names))
                                       / max(1, len(names)), 4)}
    reads = reading_prompts(world, n)
    replies = engine.complete([p for _, p, _ in reads], max_new_tokens=16, batch_size=batch_size)
    for attr in ATTRIBUTES:
        rows = [value in reply.split("\n")[0] for (a, _, value), reply in zip(reads, replies) if a == attr]
        out[f"reading_accuracy_{attr}"] = round(sum(rows) / max(1, len(rows)), 4)
    out["reading_accuracy"] = round(sum(out[f"reading_accuracy_{a}"] for a in ATTRIBUTES) / len(ATTRIBUTES), 4)
    return out
