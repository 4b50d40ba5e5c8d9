"""The tiny recipe's pretraining mix: the world's text (chatstack.world.datasets.pretraining_text)
plus tool-call conversations about made-up practice people (builders.tools), as nanochat's
midtraining puts tool use into the last part of pretraining. A packed pretraining token costs a
fraction of an SFT token (no padding), so the base already copies names and numbers into calls
and answers from results when SFT begins. Here, not in chatstack.world: the world knows nothing
of the tools built on it."""
from __future__ import annotations

import random

import datasets

from chatstack.builders.tools import tool_conversations
from chatstack.world.datasets import chatml, get_world, pretraining_text


def pretraining_mix(world="tiny", seed: int = 0, tool_chats: dict | None = None, **text_args) -> datasets.Dataset:
    """pretraining_text(world, seed, **text_args), plus `tool_chats` (keyword args of
    tool_conversations, e.g. {n: 150, search_k: 1, ...}) rendered as the chat template renders
    them, all shuffled with the world's seed."""
    text = pretraining_text(world, seed, **text_args)
    if not tool_chats:
        return text
    docs = text.to_list()
    for r in tool_conversations(get_world(world), **{"seed": seed + 7, **tool_chats}):
        docs.append({"text": chatml(r["messages"]), "kind": f"tool_{r['kind']}"})
    random.Random(f"{get_world(world).config.seed}-midtraining").shuffle(docs)
    return datasets.Dataset.from_list(docs)
