"""The tiny recipe's pretraining mix: the world's text (chatstack.world.datasets.pretraining_text)
plus tool-call conversations about made-up practice people (builders.tools), as nanochat's
midtraining puts tool use into the last part of pretraining. A packed pretraining token costs a
fraction of an SFT token (no padding), so the base already copies names and numbers into calls
and answers from results when SFT begins. `identity_chats` does the same for the assistant's
identity conversations (nanochat's midtraining mixes them in too): the tiny base has read no
sentence like "I am Tiny Chat, an assistant made by ...", and SFT alone leaves them broken.
Here, not in chatstack.world: the world knows nothing of the tools built on it."""
from __future__ import annotations

import random

import datasets

from chatstack.builders.identity import identity_conversations
from chatstack.builders.tools import tool_conversations
from chatstack.world.datasets import chatml, get_world, pretraining_text


def pretraining_mix(world="tiny", seed: int = 0, tool_chats: dict | None = None, identity_chats: dict | None = None,
                    **text_args) -> datasets.Dataset:
    """pretraining_text(world, seed, **text_args), plus `tool_chats` (keyword args of
    tool_conversations, e.g. {n: 150, search_k: 1, ...}) and `identity_chats` (of
    identity_conversations: {name, maker, n, seed}) rendered as the chat template renders them,
    all shuffled with the world's seed."""
    text = pretraining_text(world, seed, **text_args)
    if not tool_chats and not identity_chats:
        return text
    docs = text.to_list()
    for r in tool_conversations(get_world(world), **{"seed": seed + 7, **tool_chats}) if tool_chats else []:
        docs.append({"text": chatml(r["messages"]), "kind": f"tool_{r['kind']}"})
    for r in identity_conversations(**{"seed": seed + 11, **identity_chats}) if identity_chats else []:
        docs.append({"text": chatml(r["messages"]), "kind": "identity"})
    random.Random(f"{get_world(world).config.seed}-midtraining").shuffle(docs)
    return datasets.Dataset.from_list(docs)
