"""The identity builder: seeded, varied, values from the recipe, multi-turn and system
prompts; the eval's phrasings are never trained on; the judge."""
from __future__ import annotations

import json
import re

import pytest

from chatstack.builders.identity import (
    EVAL_QUESTIONS,
    FOLLOW_UPS,
    GREETINGS,
    MORE_QUESTIONS,
    QUESTIONS,
    THIRD_PERSON,
    THIRD_PERSON_EVAL,
    identity_conversations,
    identity_eval_questions,
)
from chatstack.data.loading import load_data
from chatstack.errors import DataError
from chatstack.judges import identity_correct

NAME, MAKER = "Nimbus", "Cloudworks Lab"


@pytest.fixture(scope="module")
def rows():
    return identity_conversations(name=NAME, maker=MAKER, n=400, seed=7).to_list()


def _core(question: str) -> str:
    """A user turn without the surface variation (greeting, case, question mark)."""
    q = question.lower()
    for g in GREETINGS:
        if q.startswith(g.lower()):
            q = q[len(g):]
    return q.rstrip("?").strip()


def test_same_seed_same_bytes(rows):
    again = identity_conversations(name=NAME, maker=MAKER, n=400, seed=7).to_list()
    assert json.dumps(rows) == json.dumps(again)
    assert json.dumps(identity_conversations(name=NAME, maker=MAKER, n=400, seed=8).to_list()) != json.dumps(rows)


def test_values_from_the_recipe_and_varied(rows):
    answers = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert all(NAME in a for a in answers)  # every answer names the model
    assert sum(MAKER.lower() in a.lower() for a in answers) > len(answers) / 2
    assert "chatstack" not in json.dumps(rows)  # nothing of the defaults leaks
    questions = {_core(m["content"]) for r in rows for m in r["messages"] if m["role"] == "user"}
    assert len(questions) >= 40 and len(set(answers)) >= 25
    custom = identity_conversations(name=NAME, maker=MAKER, n=60, abilities=["juggle", "sing"],
                                    limits=["I cannot swim"]).to_list()
    text = json.dumps(custom)
    assert "juggle" in text and "I cannot swim" in text and "spell words" not in text


def test_multi_turn_and_system_prompts(rows):
    turns = [sum(m["role"] == "user" for m in r["messages"]) for r in rows]
    assert 0.1 < sum(t > 1 for t in turns) / len(rows) < 0.3 and max(turns) == 3
    systems = [r for r in rows if r["messages"][0]["role"] == "system"]
    assert 0.04 < len(systems) / len(rows) < 0.2
    for r in rows:
        roles = [m["role"] for m in r["messages"] if m["role"] != "system"]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
    follow = {q for qs in FOLLOW_UPS.values() for q in qs}
    assert any(r["messages"][-2]["content"] in follow for r in rows)


def test_eval_phrasings_never_trained_on(rows):
    trained = {_core(m["content"]) for r in rows for m in r["messages"] if m["role"] == "user"}
    trained |= {_core(q) for qs in [*QUESTIONS.values(), *MORE_QUESTIONS.values(), *FOLLOW_UPS.values()] for q in qs}
    held = [q["question"] for q in identity_eval_questions(NAME, MAKER)]
    assert len(held) == sum(len(v) for v in EVAL_QUESTIONS.values()) >= 10
    assert not {_core(q) for q in held} & trained
    third = [q["question"] for q in identity_eval_questions(NAME, MAKER) if q["third_person"]]
    assert sorted(third) == sorted(THIRD_PERSON_EVAL) and 0 < len(third) < len(held) / 2


def test_confusion_questions_skip_the_models_own_name():
    rows = identity_conversations(name="Claude", maker="OpenAI", n=300, seed=1).to_list()
    users = [m["content"].lower() for r in rows for m in r["messages"] if m["role"] == "user"]
    assert not any("are you claude" in u or "made by openai" in u for u in users)
    assert any("are you chatgpt" in u or "are you siri" in u for u in users)


def test_judge():
    assert identity_correct("I am Nimbus, made by Cloudworks Lab.", "Nimbus")
    assert identity_correct("the chatstack team made me", "The chatstack team")
    assert identity_correct("Chatstack team built me", "the chatstack team")
    assert not identity_correct("I am an assistant.", "Nimbus")


def test_bad_arguments_are_errors():
    with pytest.raises(DataError, match="name and maker"):
        identity_conversations(name="", maker="x")
    with pytest.raises(DataError, match="multi_turn"):
        identity_conversations(multi_turn=1.5)
    with pytest.raises(DataError, match="n must be"):
        identity_conversations(n=0)


def test_loads_through_datasets_cfg_and_renders(tmp_path):
    spec = {"builder": "identity", "args": {"name": NAME, "maker": MAKER, "n": 30}}
    ds = load_data(spec, seed=3)
    assert ds.column_names == ["messages"] and len(ds) == 30
    from helpers_tiny_model import build_tokenizer
    tok = build_tokenizer()
    for r in ds:
        out = tok.apply_chat_template(r["messages"], return_dict=True, return_assistant_tokens_mask=True)
        assert sum(out["assistant_masks"]) > 0  # assistant turns carry the loss
        assert re.search(r"<\|im_start\|>assistant\n", tok.decode(out["input_ids"]))


def test_more_phrasings_ask_name_and_maker_in_new_words_only_when_asked():
    plain = identity_conversations(name=NAME, maker=MAKER, n=400, seed=3).to_list()
    wide = identity_conversations(name=NAME, maker=MAKER, n=400, seed=3, more_phrasings=True).to_list()
    asked = lambda rows: {_core(m["content"]) for r in rows for m in r["messages"] if m["role"] == "user"}  # noqa: E731
    more = {_core(q) for qs in MORE_QUESTIONS.values() for q in qs}
    assert not asked(plain) & more and len(asked(wide) & more) >= 20


def test_full_introduction_names_the_maker_in_every_answer_only_when_asked():
    def answers(**kw):
        rows = identity_conversations(name=NAME, maker=MAKER, n=300, seed=5, **kw).to_list()
        return [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]

    plain, full = answers(), answers(full_introduction=True)
    assert all(NAME in a for a in plain + full)
    assert any(MAKER.lower() not in a.lower() for a in plain)  # abilities and limits answers name no maker
    assert all(MAKER.lower() in a.lower() for a in full)
    assert len(set(full)) > 50


def test_third_person_sets_the_share_of_questions_about_this_assistant():
    third = {_core(q) for qs in THIRD_PERSON.values() for q in qs}

    def share(**kw):
        rows = identity_conversations(name=NAME, maker=MAKER, n=600, seed=2, multi_turn=0, more_phrasings=True, **kw)
        return sum(_core(r["messages"][-2]["content"]) in third for r in rows.to_list()) / 600

    natural, boosted = share(), share(third_person=0.5)
    assert 0.03 < natural < 0.15 and boosted > natural + 0.15  # name and maker are 6 of 11 topic draws
    with pytest.raises(DataError, match="third_person"):
        identity_conversations(name=NAME, maker=MAKER, third_person=1.5)


def test_composed_phrasings_are_new_ways_to_ask_in_the_training_words_never_the_evals():
    from chatstack.builders.identity import composed_questions

    composed = composed_questions()
    norm = lambda q: q.lower().replace("what's", "what is").rstrip("?.").strip()  # noqa: E731
    held = {norm(q["question"]) for q in identity_eval_questions(NAME, MAKER)}
    every = [q for qs in composed.values() for q in qs]
    assert len(composed["name"]) >= 60 and len(composed["maker"]) >= 200
    assert not {norm(q) for q in every} & held  # "What's this assistant called?" is composed and dropped
    words = lambda qs: {w.removesuffix("'s") for q in qs for w in re.findall(r"[\w']+", q.lower())}  # noqa: E731
    trained = words([q for qs in [*QUESTIONS.values(), *MORE_QUESTIONS.values(), *FOLLOW_UPS.values()] for q in qs])
    assert words(every) <= trained  # no word the hand-written training phrasings lack
    assert words([q["question"] for q in identity_eval_questions(NAME, MAKER)]) - trained  # the eval still has new words

    plain = identity_conversations(name=NAME, maker=MAKER, n=400, seed=3, more_phrasings=True).to_list()
    wide = identity_conversations(name=NAME, maker=MAKER, n=400, seed=3, more_phrasings=True,
                                  composed_phrasings=True).to_list()
    asked = lambda rows: {_core(m["content"]) for r in rows for m in r["messages"] if m["role"] == "user"}  # noqa: E731
    hand = {_core(q) for qs in [*QUESTIONS.values(), *MORE_QUESTIONS.values()] for q in qs}
    only_composed = {_core(q) for q in every} - hand
    assert not asked(plain) & only_composed and len(asked(wide) & only_composed) >= 60
    assert not asked(wide) & {_core(q) for q in held}
    # the composed half is half "you", half "this assistant" (not five in six about "this ...")
    composed_asked = [_core(m["content"]) for r in wide for m in r["messages"]
                      if m["role"] == "user" and _core(m["content"]) in only_composed]
    about_you = sum(("you" in q.split() or "your" in q.split()) for q in composed_asked) / len(composed_asked)
    assert 0.3 < about_you < 0.7
