"""PPO prompts about the synthetic world, with what the gold scorer needs to judge a reply
(chatstack.judges.gold_score): questions about seen and never-seen people, and identity
questions. Here and not in chatstack.world, because the identity phrasings belong to the identity
builder and the world knows no builders."""
from __future__ import annotations

import random

import datasets

from chatstack.builders.identity import QUESTIONS
from chatstack.world.datasets import _unseen_slice, get_world, qa


def questions(world="tiny", seed: int = 0, splits: list[str] | None = None, max_rows: int | None = None,
              unseen: list[int] | None = None, identity: dict | None = None, identity_prompts: int = 0,
              part: str = "all", validation_share: float = 0.2, phrasings: list[int] | None = None) -> datasets.Dataset:
    """PPO prompts (conversational `prompt`) with what the gold scorer (judges.gold_score) needs:
    `name`, `attribute`, `answer`, `seen`, and `identity` (the expected name or maker; "" for a
    world question). `unseen`: an index range of never-seen people; `identity` ({name, maker}):
    `identity_prompts` questions about the model itself in the identity builder's training
    phrasings (its eval phrasings stay unseen). `part`: `train` or `validation` splits the seen
    people and the identity phrasings (`validation_share` of each, the same draw for both parts;
    never-seen people are split by their `unseen` ranges); `all` keeps everything. `phrasings`:
    the world's question phrasings asked (default 0 and 1; the validation people in phrasing 2
    are the PPO stage's test prompts, never used to choose a checkpoint)."""
    if part not in ("all", "train", "validation"):
        raise ValueError(f"part: '{part}' is not one of all, train, validation")
    w = get_world(world)
    splits = splits or ["qa_train", "qa_heldout"]

    def keep(items: list, salt: str) -> set:
        held = set(random.Random(f"{w.config.seed}-ppo-{salt}").sample(items, round(validation_share * len(items))))
        return set(items) if part == "all" else {i for i in items if (i in held) == (part == "validation")}

    people = keep(sorted({p.name for p in w.by_split(*splits)}), "validation")
    phrasings = [0, 1] if phrasings is None else phrasings
    rows = [r for r in qa(w, seed, splits, phrasings).to_list() if r["name"] in people]
    names = {p.name for p in _unseen_slice(w, unseen)}
    rows += [r for r in qa(w, seed, ["unseen"], phrasings).to_list() if r["name"] in names]
    rows = [{"prompt": [{"role": "user", "content": r["question"]}], "name": r["name"], "attribute": r["attribute"],
             "answer": r["answer"], "seen": r["split"] != "unseen", "identity": ""} for r in rows]
    if identity and identity_prompts:
        asks = sorted(keep(sorted((q, identity["maker"] if topic == "maker" else identity["name"])
                                  for topic in ("name", "maker", "confusion") for q in QUESTIONS[topic]), "identity"))
        rng = random.Random(f"{seed}-identity-prompts")
        rows += [{"prompt": [{"role": "user", "content": q}], "name": "", "attribute": "identity", "answer": "",
                  "seen": True, "identity": expected} for q, expected in (rng.choice(asks) for _ in range(identity_prompts))]
    random.Random(f"{seed}-questions").shuffle(rows)
    return datasets.Dataset.from_list(rows[:max_rows] if max_rows else rows)
