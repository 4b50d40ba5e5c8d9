"""The synthetic world as Hugging Face datasets: pretraining text, QA, conversations,
preference pairs and RL prompts. Each function is a builder named in datasets_cfg."""
from __future__ import annotations

import os
import random
from functools import lru_cache

import datasets

from chatstack.config import parse_config
from chatstack.judges import REFUSALS
from chatstack.paths import find_resource
from chatstack.world.generator import ATTRIBUTES, World, WorldConfig, build_world

# How the assistant states a fact: without repeating the name. Answers that restate "{name} was
# born in ..." make the tiny model write a name it trained on instead of copying the asked one
# (README, "Measured variants").
ANSWER_TEMPLATES = {
    "birth_city": "They were born in {value}.",
    "birth_year": "They were born in the year {value}.",
    "university": "They studied at {value}.",
    "field": "They work in {value}.",
    "employer": "They work for {value}.",
}
# the fact as an encyclopedia sentence (the first article template of the attribute)
FACT_TEMPLATES = {attr: spec["sentences"][0] for attr, spec in ATTRIBUTES.items()}
FACT_TEMPLATES["birth_year"] = "{name} was born in the year {value}."


# `chatstack speedrun --world_seed N` sets this for every stage (and for the processes that
# `accelerate launch` starts): a preset's world is then built with seed N instead of its own.
WORLD_SEED_ENV = "CHATSTACK_WORLD_SEED"


def world_seed_override() -> int | None:
    """The world seed set by the environment (CHATSTACK_WORLD_SEED), or None."""
    value = os.environ.get(WORLD_SEED_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{WORLD_SEED_ENV} must be an integer, got {value!r}") from None


def get_world(world: str | dict | World | None = "tiny", seed: int | None = None) -> World:
    """A world from a preset name (datasets_cfg/worlds/<name>.yaml), a dict of WorldConfig fields,
    or a World. A preset takes `seed` (else CHATSTACK_WORLD_SEED, else its own seed). Cached per
    preset and seed: every stage of a run sees the very same world, and another seed another one."""
    if isinstance(world, World):
        return world
    if world is None or isinstance(world, str):
        path = find_resource(f"datasets_cfg/worlds/{world or 'tiny'}.yaml")
        if path is None:
            raise ValueError(f"no world preset named '{world}' (datasets_cfg/worlds/{world}.yaml)")
        return _cached_world(str(path), seed if seed is not None else world_seed_override())
    return build_world(WorldConfig(**world))


@lru_cache(maxsize=8)
def _cached_world(path: str, seed: int | None = None) -> World:
    return build_world(parse_config(WorldConfig, path, **({} if seed is None else {"seed": seed})))


def answer_sentence(name: str, attribute: str, value: str) -> str:
    """The assistant's reply to a question about `name`'s attribute."""
    return ANSWER_TEMPLATES[attribute].format(name=name, value=value)


def fact_sentence(name: str, attribute: str, value: str) -> str:
    """The fact as a standalone sentence (it names the person)."""
    return FACT_TEMPLATES[attribute].format(name=name, value=value)


def chatml(messages: list[dict]) -> str:
    """A conversation as the chat template writes it (templates/chatml_tools.jinja, no tool
    schemas; tool calls as `<tool_call>{...}</tool_call>`): pretraining text may hold chats, whose
    special tokens the tokenizer encodes as such."""
    import json

    def content(m):
        calls = "".join('<tool_call>{"name": "' + c["function"]["name"] + '", "arguments": '
                        + json.dumps(c["function"]["arguments"], ensure_ascii=False) + "}</tool_call>"
                        for c in m.get("tool_calls") or [])
        return (m.get("content") or "") + calls

    return "".join(f"<|im_start|>{m['role']}\n{content(m)}<|im_end|>\n" for m in messages)


def pretraining_text(world="tiny", seed: int = 0, qa: bool = True, chat_qa: bool = True,
                     exercises: bool = True, article_passes: int = 1,
                     chat_arithmetic: int | None = None) -> datasets.Dataset:
    """Articles about seen people (every paraphrase, shuffled sentences), QA text for the
    qa_train people (mixed training: teaches the model to retrieve facts by question), and
    arithmetic / counting exercises. Unseen people never appear.

    `chat_qa` also writes the qa_train questions and the arithmetic as chats in the chat template
    (nanochat's "midtraining"): a tiny model then learns to answer in the assistant format while
    the facts are still being stored, and SFT has only to teach what is new (identity, refusals).
    A model that meets the chat format only in SFT answers about held-out people near chance.
    (The tiny recipe adds tool chats to this: chatstack.builders.midtraining.)

    `article_passes` writes every paraphrase that many times, each with its own sentence order:
    the articles' weight in the mix (as real pretraining mixes upweight Wikipedia), so a fixed
    token budget reads each fact more often and the exercises less. `chat_arithmetic` is how many
    exercises are written as chats (default: a quarter of the world's `n_arithmetic`); a chat
    costs several times the tokens of an exercise line."""
    if not isinstance(article_passes, int) or article_passes < 1:
        raise ValueError(f"pretraining text: article_passes must be a whole number >= 1, got {article_passes!r}")
    if chat_arithmetic is not None and (not isinstance(chat_arithmetic, int) or chat_arithmetic < 0):
        raise ValueError(f"pretraining text: chat_arithmetic must be a whole number >= 0, got {chat_arithmetic!r}")
    w = get_world(world)
    rng = random.Random(f"{w.config.seed}-pretrain")
    docs = []
    for _ in range(article_passes):
        for p in w.by_split("qa_train", "qa_heldout"):
            for k in range(w.config.paraphrases):
                docs.append({"text": w.article(p, k, rng), "kind": "article"})
    if qa:
        for p in w.by_split("qa_train"):
            lines = [f"Q: {q}\nA: {answer_sentence(p.name, attr, p.value(attr))}"
                     for attr in ATTRIBUTES for q in w.questions(p, attr)[:2]]
            rng.shuffle(lines)
            docs.append({"text": "\n\n".join(lines), "kind": "qa"})
    if chat_qa:
        for p in w.by_split("qa_train"):
            for attr in ATTRIBUTES:
                for q in w.questions(p, attr)[:2]:
                    docs.append({"text": chatml([{"role": "user", "content": q}, {"role": "assistant",
                                 "content": answer_sentence(p.name, attr, p.value(attr))}]), "kind": "chat_qa"})
        if exercises:
            n_chats = w.config.n_arithmetic // 4 if chat_arithmetic is None else chat_arithmetic
            for r in w.arithmetic(n_chats, seed_offset=1):
                docs.append({"text": chatml([{"role": "user", "content": r["question"]},
                                             {"role": "assistant", "content": f"{r['expression']} = {r['answer']}."}]),
                             "kind": "chat_arithmetic"})
    if exercises:
        rows = w.arithmetic(w.config.n_arithmetic, seed_offset=0)
        for i in range(0, len(rows), 10):
            text = "\n".join(f"{r['expression']} = {r['answer']}" for r in rows[i:i + 10])
            docs.append({"text": text, "kind": "arithmetic"})
        rows = w.counting(w.config.n_counting, seed_offset=0)
        for i in range(0, len(rows), 5):
            docs.append({"text": "\n".join(f"The letter '{r['letter']}' appears {r['answer']} times in '{r['word']}'."
                                           for r in rows[i:i + 5]), "kind": "counting"})
    rng.shuffle(docs)
    return datasets.Dataset.from_list(docs)


def encyclopedia(world="tiny", seed: int = 0) -> datasets.Dataset:
    """One article per person, seen and unseen: the document store of the search tool."""
    w = get_world(world)
    return datasets.Dataset.from_list([{"id": f"person-{i}", "title": p.name, "text": w.article(p, 0), "split": p.split}
                                       for i, p in enumerate(w.people)])


def qa(world="tiny", seed: int = 0, splits: list[str] | None = None, phrasings: list[int] | None = None) -> datasets.Dataset:
    """QA rows with the ground truth and the seen/unseen flag."""
    w = get_world(world)
    rows = w.qa_rows(tuple(splits or ("qa_train", "qa_heldout", "unseen")))
    if phrasings is not None:
        rows = [r for r in rows if r["phrasing"] in phrasings]
    return datasets.Dataset.from_list(rows)


def conversations(world="tiny", seed: int = 0, splits: list[str] | None = None, phrasings: list[int] | None = None,
                  max_rows: int | None = None) -> datasets.Dataset:
    """Single-turn chats answering questions about people, in the standard `messages` format."""
    rows = qa(world, seed, splits or ["qa_train"], phrasings if phrasings is not None else [0, 1]).to_list()
    random.Random(f"{seed}-conv").shuffle(rows)
    rows = rows[:max_rows] if max_rows else rows
    return datasets.Dataset.from_list([{"messages": [
        {"role": "user", "content": r["question"]},
        {"role": "assistant", "content": answer_sentence(r["name"], r["attribute"], r["answer"])}]} for r in rows])


def arithmetic_conversations(world="tiny", seed: int = 0, n: int = 500) -> datasets.Dataset:
    w = get_world(world)
    return datasets.Dataset.from_list([{"messages": [
        {"role": "user", "content": r["question"]},
        {"role": "assistant", "content": f"{r['expression']} = {r['answer']}."}]} for r in w.arithmetic(n, seed_offset=1)])


def arithmetic_prompts(world="tiny", seed: int = 0, n: int = 500, seed_offset: int = 2, problems: str = "all",
                       heldout_share: float = 0.35) -> datasets.Dataset:
    """RL prompts with a verifiable answer (GRPO): conversational `prompt`, `answer` and the
    question's `expression` (the honest reward checks the reply restates it). `problems`: `all`
    (n draws, repeats allowed), `train` (n draws from the problems not held out) or `heldout`
    (each held-out problem once: World.arithmetic_problems splits by problem, not by draw)."""
    w = get_world(world)
    if problems == "all":
        rows = w.arithmetic(n, seed_offset=seed_offset)
    elif problems in ("train", "heldout"):
        train, heldout = w.arithmetic_problems(heldout_share)
        rng = random.Random(f"{w.config.seed}-arith-{seed_offset}")
        rows = [rng.choice(train) for _ in range(n)] if problems == "train" else heldout
    else:
        raise ValueError(f"problems: '{problems}' is not one of all, train, heldout")
    return datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["question"]}], "answer": r["answer"],
                                        "expression": r["expression"]} for r in rows])


def _unseen_slice(w: World, unseen: list[int] | None) -> list:
    """People never seen in pretraining, by index range [start, end): preference pairs and
    PPO prompts take disjoint ranges, so the rewarded refusals generalise to new names."""
    if not unseen:
        return []
    return w.by_split("unseen")[unseen[0]:unseen[1]]


def attribute_values(w: World) -> dict[str, list]:
    """Every value each attribute takes in the world (birth years as ints): where wrong answers
    are drawn from."""
    return {attr: sorted({p.value(attr) if attr != "birth_year" else p.birth_year for p in w.people})
            for attr in ATTRIBUTES}


def preferences(world="tiny", seed: int = 0, splits: list[str] | None = None, max_rows: int | None = None,
                unseen: list[int] | None = None) -> datasets.Dataset:
    """Preference pairs in the gold scorer's order (chatstack.judges.GOLD): about a seen person the
    true answer is preferred over a confident wrong one, an evasive one or a refusal (a third
    each: without the refusals, the reward model learnt that "I don't know" always wins, and PPO
    refused people the model knew); about people never seen (`unseen` index range), "I don't
    know" is preferred over a confident made-up answer (what RLHF teaches against hallucination).
    The refusals take every phrasing the refusal SFT data writes (judges.REFUSALS): with one
    phrasing, the reward model learnt that only this string is wrong about a seen person, and
    PPO refused them in the others (README, "RLHF against a gold scorer")."""
    w = get_world(world)
    rng = random.Random(f"{seed}-prefs")
    values = attribute_values(w)
    evasive = ["I'm not sure what you mean.", "That is a good question.", "Let me think about something else.",
               "I would rather talk about the weather."]
    rows = []
    for r in qa(w, seed, splits or ["qa_train"], [0, 1]).to_list():
        chosen = answer_sentence(r["name"], r["attribute"], r["answer"])
        kind = rng.random()
        if kind < 1 / 3:
            wrong = rng.choice([v for v in values[r["attribute"]] if v != r["answer"]])
            rejected = answer_sentence(r["name"], r["attribute"], wrong)
        elif kind < 2 / 3:
            rejected = rng.choice(evasive)
        else:
            rejected = rng.choice(REFUSALS).format(subject=r["name"])
        rows.append({"prompt": [{"role": "user", "content": r["question"]}],
                     "chosen": [{"role": "assistant", "content": chosen}],
                     "rejected": [{"role": "assistant", "content": rejected}]})
    for p in _unseen_slice(w, unseen):
        for attr in ATTRIBUTES:
            q = rng.choice(w.questions(p, attr)[:2])
            made_up = answer_sentence(p.name, attr, rng.choice(values[attr]))
            rows.append({"prompt": [{"role": "user", "content": q}],
                         "chosen": [{"role": "assistant", "content": rng.choice(REFUSALS).format(subject=p.name)}],
                         "rejected": [{"role": "assistant", "content": made_up}]})
    rng.shuffle(rows)
    return datasets.Dataset.from_list(rows[:max_rows] if max_rows else rows)
