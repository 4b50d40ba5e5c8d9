"""The RLHF gold scorer (chatstack.judges.gold_score) on replies whose score is known, one case a
row (open-r1's tests/test_rewards.py style), and the PPO prompt rows that carry what it needs."""

from __future__ import annotations

import re

import pytest

from chatstack.judges import GOLD, gold_score

KNOWN = {"answer": "Paris", "seen": True}
NEVER_SEEN = {"answer": "Oslo", "seen": False}
NAME = {"identity": "Tiny Chat"}
MAKER = {"identity": "the chatstack team"}


@pytest.mark.parametrize(
    "reply, ended, row, expected",
    [
        ("Ada was born in Paris.", True, KNOWN, 1.0),  # the right fact about a known person
        ("Ada was born in Rome.", True, KNOWN, -1.0),  # made up: a confident wrong answer
        ("I'm sorry, I don't know who that is.", True, KNOWN, -0.5),  # refusing a person it knows
        ("", True, KNOWN, -1.0),  # an empty turn states nothing true
        ("Ada was born in Paris.", False, KNOWN, 0.0),  # right, but the turn never ended
        ("Ada was born in Rome. Ada was born in", False, KNOWN, -2.0),  # wrong and runaway
        ("I'm sorry, I don't know who that is.", True, NEVER_SEEN, 1.0),  # refusal about a never-seen person
        ("Bo was born in Rome.", True, NEVER_SEEN, -1.0),  # a made-up fact about a never-seen person
        ("Bo was born in Oslo.", True, NEVER_SEEN, 0.0),  # a lucky guess: not made up, not known
        ("I do not know.", False, NEVER_SEEN, 0.0),  # refusal, but the turn never ended
        ("I am Tiny Chat, an AI assistant.", True, NAME, 1.0),  # the configured identity
        ("i am tiny chat", True, NAME, 1.0),  # case-insensitive
        ("The cat, and an nam, and an nat.", True, NAME, -1.0),  # the broken identity of issue 19
        ("I am ChatGPT, made by OpenAI.", True, NAME, -1.0),  # another model's identity
        ("I was built by the chatstack team.", True, MAKER, 1.0),
        ("Chatstack team made me.", True, MAKER, 1.0),  # a leading 'the' is optional
        ("I was built by the chatstack team.", False, MAKER, 0.0),
    ],
)
def test_gold_score(reply, ended, row, expected):
    assert gold_score(reply, ended, **row) == expected


def test_gold_bounds():
    """The best reply scores GOLD's maximum, the worst its minimum: the scale the plots read."""
    best, worst = max(GOLD.values()), min(GOLD.values()) + GOLD["not_ended"]
    assert gold_score("Paris.", True, **KNOWN) == best and gold_score("Rome.", False, **KNOWN) == worst


def test_ppo_prompt_rows_carry_the_gold_columns():
    """Train and validation parts share no seen person and no identity phrasing; never-seen people
    come from the given ranges; every row scores with gold_score."""
    from chatstack.builders.ppo_prompts import questions

    ident = {"name": "Tiny Chat", "maker": "the chatstack team"}
    train = questions(unseen=[100, 110], identity=ident, identity_prompts=30, part="train").to_list()
    val = questions(unseen=[110, 114], identity=ident, identity_prompts=10, part="validation").to_list()
    for rows in (train, val):
        assert {"prompt", "name", "attribute", "answer", "seen", "identity"} <= set(rows[0])
        assert {r["seen"] for r in rows} == {True, False} and any(r["identity"] for r in rows)
        for r in rows:
            assert bool(r["identity"]) != bool(r["answer"])  # a world question or an identity one
            assert gold_score(r["answer"] or r["identity"], True, r["answer"], r["seen"], r["identity"]) == (
                1.0 if r["seen"] else 0.0
            )
    seen = lambda rows: {r["name"] for r in rows if r["seen"] and r["name"]}  # noqa: E731
    assert seen(train) and seen(val) and not seen(train) & seen(val)
    asks = lambda rows: {r["prompt"][0]["content"] for r in rows if r["identity"]}  # noqa: E731
    assert asks(train) and asks(val) and not asks(train) & asks(val)
    unseen = lambda rows: {r["name"] for r in rows if not r["seen"]}  # noqa: E731
    assert len(unseen(train)) == 10 and len(unseen(val)) == 4 and not unseen(train) & unseen(val)
    everything = questions(unseen=[100, 110]).to_list()
    assert len({r["name"] for r in everything if r["seen"]}) == len(seen(train) | seen(val))


def test_hand_written_preferences_agree_with_the_gold_scorer():
    """Every pair of world_preferences has the higher gold score chosen, and the seen people's
    pairs hold every kind of loser: a wrong fact, an evasion and a refusal (a reward model that
    never sees a refusal lose prefers "I don't know" everywhere, and PPO learns to refuse)."""
    from chatstack.judges import REFUSALS, is_refusal
    from chatstack.world.datasets import preferences, qa

    truth = {r["question"]: (r["answer"], r["split"] != "unseen") for r in qa("tiny").to_list()}
    rows = preferences("tiny", splits=["qa_train", "qa_heldout"], unseen=[0, 20]).to_list()
    losers, refusals = set(), {True: set(), False: set()}
    for r in rows:
        answer, seen = truth[r["prompt"][0]["content"]]
        chosen, rejected = r["chosen"][0]["content"], r["rejected"][0]["content"]
        assert gold_score(chosen, True, answer, seen) > gold_score(rejected, True, answer, seen), r
        if seen:
            losers.add("refusal" if is_refusal(rejected) else "wrong" if gold_score(rejected, True, answer) == -1 else "?")
        for text in (rejected,) if seen else (chosen,):
            refusals[seen] |= {p for p in REFUSALS if re.fullmatch(re.escape(p).replace(r"\{subject\}", ".+"), text)}
    assert losers == {"refusal", "wrong"}  # evasions score as wrong: they state nothing true
    # every phrasing the refusal SFT writes, on both sides: one string taught the reward model that
    # only that string is wrong about a seen person, and another outscored the truth
    assert refusals[True] == refusals[False] == set(REFUSALS)

