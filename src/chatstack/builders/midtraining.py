"""The tiny recipe's pretraining mix: the world's text (chatstack.world.datasets.pretraining_text)
plus tool-call conversations about made-up practice people (builders.tools), as nanochat's
midtraining puts tool use into the last part of pretraining. A packed pretraining token costs a
fraction of an SFT token (no padding), so the base already copies names and numbers into calls
and answers from results when SFT begins. `identity_chats` does the same for the assistant's
identity conversations (nanochat's midtraining mixes them in too): the tiny base has read no
sentence like "I am Tiny Chat, an assistant made by ...", and SFT alone leaves them broken.
`copy_drills` are lines of made-up names and numbers, each written twice: only copying the first
half predicts the second, so the base learns to copy a name it cannot know (an unseen person's,
in rare name pieces) and a number it cannot compute, as a search query and a python call need;
it had learnt neither from the tool chats alone (it wrote a seen person's question instead).
Here, not in chatstack.world: the world knows nothing of the tools built on it."""
from __future__ import annotations

import random

import datasets

from chatstack.builders.identity import identity_conversations
from chatstack.builders.tools import _operand, practice_people, tool_conversations
from chatstack.errors import DataError
from chatstack.world.datasets import chatml, get_world, pretraining_text


def copy_drill_lines(world="tiny", n: int = 600, seed: int = 0, items: tuple[int, int] = (2, 4)) -> list[str]:
    """`n` lines of 2-4 items, each a made-up full name (names the world does not use, as the
    search rows' practice people) or a 2-6 digit number (a third with a run of equal digits),
    the items twice: "Vera Norcross, 596, 4471 | Vera Norcross, 596, 4471"."""
    if n < 0:
        raise DataError(f"copy_drill_lines: n must be >= 0, got {n}")
    rng = random.Random(f"{seed}-copy-drills")
    names = [p.name for batch in practice_people(world, n * items[1], seed + 13) for p in batch]
    rng.shuffle(names)
    lines = []
    for _ in range(n):
        row = [names.pop() if rng.random() < 0.6 else str(_operand(rng, rng.randint(2, 6), 0.33))
               for _ in range(rng.randint(*items))]
        lines.append(", ".join(row) + " | " + ", ".join(row))
    return lines


def pretraining_mix(world="tiny", seed: int = 0, tool_chats: dict | None = None, identity_chats: dict | None = None,
                    copy_drills: dict | None = None, **text_args) -> datasets.Dataset:
    """pretraining_text(world, seed, **text_args), plus `tool_chats` (keyword args of
    tool_conversations, e.g. {n: 150, search_k: 1, ...}) and `identity_chats` (of
    identity_conversations: {name, maker, n, seed}) rendered as the chat template renders them,
    and `copy_drills` (of copy_drill_lines: {n}), ten lines a document, all shuffled with the world's seed."""
    text = pretraining_text(world, seed, **text_args)
    if not tool_chats and not identity_chats and not copy_drills:
        return text
    docs = text.to_list()
    for r in tool_conversations(get_world(world), **{"seed": seed + 7, **tool_chats}) if tool_chats else []:
        docs.append({"text": chatml(r["messages"]), "kind": f"tool_{r['kind']}"})
    for r in identity_conversations(**{"seed": seed + 11, **identity_chats}) if identity_chats else []:
        docs.append({"text": chatml(r["messages"]), "kind": "identity"})
    drills = copy_drill_lines(world, **{"seed": seed + 17, **copy_drills}) if copy_drills else []
    for i in range(0, len(drills), 10):
        docs.append({"text": "\n".join(drills[i:i + 10]), "kind": "copy"})
    random.Random(f"{get_world(world).config.seed}-midtraining").shuffle(docs)
    return datasets.Dataset.from_list(docs)
