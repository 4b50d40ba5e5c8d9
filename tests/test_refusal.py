"""The refusal builder on fake models whose answers are known: labels, conversations,
determinism, the judge, the probe/eval split, and clear errors on bad input. No model runs."""
from __future__ import annotations

import json
import random

import pytest

from chatstack.builders.refusals import REFUSALS, RefusalConfig, probe_and_build
from chatstack.errors import ConfigError, DataError
from chatstack.judges import alias_judge, is_refusal
from chatstack.probing import file_facts, in_part, label, load_facts

FACTS = [{"question": f"What is the capital of country {i}?", "answer": f"City{i}", "aliases": [f"Town{i}"],
          "subject": f"country {i}" if i % 2 else ""} for i in range(60)]
TRUTH = {f["question"]: f["answer"] for f in FACTS}


def always_right(questions, k, seed):
    return [[f"It is {TRUTH[q]}." for _ in range(k)] for q in questions]


def always_wrong(questions, k, seed):
    return [["It is Nowhere." for _ in range(k)] for q in questions]


def always_refuses(questions, k, seed):
    return [["I don't know." for _ in range(k)] for q in questions]


def coin(p=0.5):
    def prober(questions, k, seed):
        rng = random.Random(seed)
        return [[f"It is {TRUTH[q]}." if rng.random() < p else "It is Nowhere." for _ in range(k)] for q in questions]
    return prober


def build(prober, **kw):
    cfg = RefusalConfig(**{"k": 5, "seed": 0, **kw})
    return probe_and_build(cfg, facts=FACTS, prober=prober)


def test_always_right_is_known_and_answered():
    train, rows, stats = build(always_right)
    assert {r["label"] for r in rows} == {"known"} and stats["known_fraction_facts"] == 1.0
    assert all(r["judgements"] == ["correct"] * 5 and r["n_correct"] == 5 for r in rows)
    assert len(train) == 60 and all(m[1]["content"] == TRUTH[m[0]["content"]] for m in train["messages"])


@pytest.mark.parametrize("prober,verdict", [(always_wrong, "wrong"), (always_refuses, "refused")])
def test_always_wrong_or_refusing_is_unknown_and_refused(prober, verdict):
    train, rows, stats = build(prober)
    assert {r["label"] for r in rows} == {"unknown"} and stats["n_refuse"] == 60
    assert all(set(r["judgements"]) == {verdict} for r in rows)
    replies = [m[1]["content"] for m in train["messages"]]
    assert all(is_refusal(r) for r in replies) and len(set(replies)) > 2  # several phrasings
    named = [r for r in rows if r["subject"]]
    assert all("{subject}" not in r["messages"][1]["content"] for r in rows)
    assert any(r["subject"] in r["messages"][1]["content"] for r in named)


def test_random_answers_follow_the_rule_and_unsure_is_dropped():
    train, rows, stats = build(coin(0.5), known_min=0.6, unknown_max=0.2)
    for r in rows:
        share = r["n_correct"] / 5
        assert r["label"] == ("known" if share >= 0.6 else "unknown" if share <= 0.2 else "unsure")
        assert r["action"] == {"known": "answer", "unknown": "refuse", "unsure": "drop"}[r["label"]]
    assert {r["label"] for r in rows} == {"known", "unknown", "unsure"}
    assert len(train) == sum(r["label"] != "unsure" for r in rows) == stats["n_train"]
    assert set(train.column_names) >= {"messages", "question", "samples", "judgements", "label"}


@pytest.mark.parametrize("policy", ["refuse", "answer", "hedge"])
def test_unsure_policy(policy):
    train, rows, _ = build(coin(0.5), unsure_policy=policy)
    unsure = [r for r in rows if r["label"] == "unsure"]
    assert unsure and all(r["action"] == policy for r in unsure)
    for r in unsure:
        reply = r["messages"][1]["content"]
        assert (TRUTH[r["question"]] in reply) == (policy != "refuse") and is_refusal(reply) == (policy != "answer")


def test_subject_scope_refuses_only_about_unfamiliar_subjects():
    # Two people, four facts each: the model knows two facts of Ann and guesses one of Bob's.
    facts = [{"question": f"What is {who}'s {a}?", "answer": f"{who}-{a}", "subject": who}
             for who in ("Ann", "Bob") for a in ("city", "job", "school", "field")]
    truth = {f["question"]: f["answer"] for f in facts}
    known = {"What is Ann's city?", "What is Ann's job?", "What is Bob's city?"}

    def prober(questions, k, seed):
        return [[truth[q] if q in known else "Nowhere" for _ in range(k)] for q in questions]

    def actions(**kw):
        _, rows, _ = probe_and_build(RefusalConfig(k=4, seed=0, **kw), facts=facts, prober=prober)
        assert [r["label"] for r in rows] == ["known"] * 2 + ["unknown"] * 2 + ["known"] + ["unknown"] * 3
        return {r["question"]: r["action"] for r in rows}

    by_fact = actions()
    assert sum(a == "refuse" for a in by_fact.values()) == 5 and by_fact["What is Bob's city?"] == "answer"
    by_subject = actions(subject_known_min=0.5)  # Ann: 8 of 16 samples right -> familiar; Bob 4 of 16
    assert ([by_subject[f"What is Ann's {a}?"] for a in ("city", "job", "school", "field")]
            == ["answer", "answer", "drop", "drop"])
    # every question about Bob is refused, the lucky guess too
    assert all(by_subject[f"What is Bob's {a}?"] == "refuse" for a in ("city", "job", "school", "field"))
    assert all(a == "refuse" for a in actions(subject_known_min=0.6).values())  # 8/16 < 0.6: nobody familiar
    assert actions(subject_known_min=0.5, unsure_policy="hedge")["What is Ann's school?"] == "hedge"
    with pytest.raises(ConfigError, match="subject_known_min"):
        RefusalConfig(subject_known_min=0.0).check()


def test_label_thresholds():
    assert label(["correct"] * 3 + ["wrong"] * 2, 0.6, 0.2) == "known"
    assert label(["correct"] + ["wrong"] * 4, 0.6, 0.2) == "unknown"
    assert label(["correct"] * 2 + ["refused"] * 3, 0.6, 0.2) == "unsure"


def test_deterministic_for_a_seed(tmp_path):
    a, _, _ = build(coin(0.5), seed=3, unsure_policy="refuse")
    b, _, _ = build(coin(0.5), seed=3, unsure_policy="refuse")
    c, _, _ = build(coin(0.5), seed=4, unsure_policy="refuse")
    for name, ds in (("a", a), ("b", b), ("c", c)):
        ds.to_json(str(tmp_path / f"{name}.jsonl"))
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()


def test_max_refusal_fraction_caps_refusals():
    _, rows, stats = build(coin(0.5), max_refusal_fraction=0.25)
    assert stats["n_refuse"] <= 0.25 * stats["n_train"] + 1 and stats["n_refuse"] > 0
    with pytest.raises(DataError, match="max_refusal_fraction"):  # no answers: no refusal survives the cap
        build(always_wrong, max_refusal_fraction=0.5)


def test_alias_judge():
    assert alias_judge("I believe it was the Onion!", ["onion"]) == "correct"
    assert alias_judge("Bulb onions, surely.", ["Onion", "Bulb onions"]) == "correct"
    assert alias_judge("Onionskin", ["Onion"]) == "wrong"  # whole words only
    assert alias_judge("I'm sorry, I don't know.", ["Onion"]) == "refused"
    assert alias_judge("", ["Onion"]) == "wrong"


def test_every_refusal_phrasing_is_recognised():
    assert all(is_refusal(p.format(subject="Ada Zeller")) for p in REFUSALS)
    with pytest.raises(ConfigError, match="not recognised as a refusal"):
        RefusalConfig(refusals=["Who knows?"]).check()


def test_world_facts_and_the_probe_eval_split():
    probe = load_facts(RefusalConfig(splits=["unseen"], part="probe", attributes=["birth_city"]))
    evals = load_facts(RefusalConfig(splits=["unseen"], part="eval", attributes=["birth_city"], seed=7))
    allp = load_facts(RefusalConfig(splits=["unseen"], part="all", attributes=["birth_city"]))
    p, e = {f.subject for f in probe}, {f.subject for f in evals}
    assert p and e and not p & e and p | e == {f.subject for f in allp}
    assert all(in_part(s, "probe", 0.5) for s in p)
    seen = load_facts(RefusalConfig(splits=["qa_train"], part="eval"))  # qa_train is not hashed
    assert {f.group for f in seen} == {"seen"} and len(seen) == 5 * len({f.subject for f in seen})
    capped = load_facts(RefusalConfig(splits=["unseen"], max_people=3))
    assert len({f.subject for f in capped}) == 3


def test_world_questions_from_templates():
    truth = {}
    from chatstack.world.datasets import get_world
    for r in get_world("tiny").qa_rows(("qa_train",)):
        truth[r["question"]] = r["answer"]

    def knows(questions, k, seed):
        return [[f"The answer is {truth[q]}." for _ in range(k)] for q in questions]

    train, rows, stats = probe_and_build(RefusalConfig(splits=["qa_train"], max_people=2, k=2), prober=knows)
    assert stats["n_questions"] == 2 * 5 * 2 and stats["known_fraction_seen"] == 1.0
    from chatstack.world.datasets import answer_sentence
    assert all(m[1]["content"] == answer_sentence(r["subject"], r["attribute"], r["answers"][0])  # answer sentences
               for m, r in zip(train["messages"], rows))


def test_triviaqa_and_nq_files_parse(shared_data):
    tqa = shared_data / "eval" / "triviaqa" / "triviaqa_sm_sub.jsonl.gz"
    facts = file_facts(str(tqa))
    assert len(facts) == 3000 and facts[0].question.endswith("?") and not facts[0].question.startswith("Question")
    assert "Onion" in facts[0].answers and len(facts[0].answers) > 5
    probe, evals = file_facts(str(tqa), "probe"), file_facts(str(tqa), "eval")
    assert len(probe) + len(evals) == 3000 and not {f.id for f in probe} & {f.id for f in evals}
    nq = file_facts(str(shared_data / "eval" / "natural_questions" / "natural_questions_closed.jsonl.gz"))
    assert len(nq) == 824 and all(f.answers for f in nq)


# ---- bad input ---------------------------------------------------------------------------


def test_fact_without_answer_names_the_line(tmp_path):
    path = tmp_path / "facts.jsonl"
    path.write_text(json.dumps({"question": "Q1?", "answer": "A"}) + "\n"
                    + json.dumps({"question": "Q2?", "aliases": []}) + "\n")
    with pytest.raises(DataError, match=r"facts.jsonl:2: fact without an answer"):
        file_facts(str(path))
    with pytest.raises(DataError, match=r"facts\[1\]: fact without an answer"):
        probe_and_build(RefusalConfig(), facts=[{"question": "Q?", "answer": "A"}, {"question": "Q?"}], prober=always_right)


def test_empty_fact_set():
    with pytest.raises(DataError, match="empty"):
        probe_and_build(RefusalConfig(), facts=[], prober=always_right)
    with pytest.raises(DataError, match="no facts to ask about"):
        load_facts(RefusalConfig(splits=["qa_train"], max_people=0))


def test_missing_file_and_model(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_facts(RefusalConfig(facts=str(tmp_path / "nope.jsonl")))
    with pytest.raises(DataError, match="model not found"):
        probe_and_build(RefusalConfig(model_name_or_path=str(tmp_path / "no-model")), facts=FACTS[:2])


def test_bad_config_values():
    for kw, msg in [({"k": 0}, "k:"), ({"temperature": 0.0}, "temperature"),
                    ({"known_min": 0.1, "unknown_max": 0.2}, "unknown_max"),
                    ({"unsure_policy": "guess"}, "unsure_policy"), ({"part": "train"}, "part"),
                    ({"splits": ["nobody"]}, "unknown world split")]:
        with pytest.raises(ConfigError, match=msg):
            load_facts(RefusalConfig(**kw)) if "splits" in kw else RefusalConfig(**kw).check()
    with pytest.raises(ConfigError, match="judge"):
        build(always_right, judge="no_such_judge")
    with pytest.raises(ConfigError, match="unknown arg"):
        from chatstack.builders.refusals import refusal_conversations
        refusal_conversations(model="x")


def test_the_cli_rejects_unknown_keys_and_missing_names(tmp_path):
    from chatstack.cli import main
    cfg = tmp_path / "c.yaml"
    cfg.write_text("builder: refusals\nmodle_name_or_path: x\n")
    assert main(["build", "--config", str(cfg)]) == 2
    assert main(["build", "--output_dir", str(tmp_path)]) == 2
    assert main(["build", "refusals_eval", "--config", str(cfg)]) == 2  # name disagrees with the YAML


def test_judge_and_questions_are_pluggable():
    train, rows, _ = build(always_wrong, judge=f"{__name__}:lenient_judge",
                           question_generator=f"{__name__}:shouted_questions")
    assert all(r["question"].isupper() and r["label"] == "known" for r in rows)


def lenient_judge(reply, answers):
    return "correct"


def shouted_questions(facts, seed):
    return [[f.question.upper()] for f in facts]


def test_unseen_people_are_split_by_whether_their_name_parts_were_read():
    from chatstack.evaluation.refusal import unseen_name_groups
    from chatstack.world.datasets import get_world

    world = get_world("tiny")
    seen = [p.name.split() for p in world.by_split("qa_train", "qa_heldout")]
    facts = load_facts(RefusalConfig(splits=["qa_heldout", "unseen"], part="all", max_people=None))
    groups = unseen_name_groups(facts, "tiny")
    assert all(g == "" for f, g in zip(facts, groups) if f.split != "unseen")
    familiar = {f.subject for f, g in zip(facts, groups) if g == "unseen_familiar_name"}
    new = {f.subject for f, g in zip(facts, groups) if g == "unseen_new_name"}
    assert familiar and new and not familiar & new
    assert all(any(n.split()[0] == s[0] for s in seen) and any(n.split()[-1] == s[-1] for s in seen) for n in familiar)
    assert all(not any(n.split()[0] == s[0] for s in seen) or not any(n.split()[-1] == s[-1] for s in seen) for n in new)


def test_recombined_people_have_seen_name_parts_and_are_no_one_of_the_world():
    from chatstack.world.datasets import get_world

    world = get_world("tiny")
    seen = [p.name.split() for p in world.by_split("qa_train", "qa_heldout")]
    firsts, lasts = {s[0] for s in seen}, {s[-1] for s in seen}
    facts = load_facts(RefusalConfig(splits=["unseen"], recombined_people=12))
    made_up = [f for f in facts if f.split == "recombined"]
    names = {f.subject for f in made_up}
    assert len(names) == 12 and len(made_up) == 12 * 5  # every attribute of each
    assert {f.group for f in made_up} == {"unseen"}
    assert not names & {p.name for p in world.people}
    assert all(n.split()[0] in firsts and n.split()[-1] in lasts for n in names)
    again = load_facts(RefusalConfig(splits=["unseen"], recombined_people=12))
    assert [f.id for f in again if f.split == "recombined"] == [f.id for f in made_up]  # seeded
    assert not [f for f in load_facts(RefusalConfig(splits=["unseen"])) if f.split == "recombined"]
    with pytest.raises(ConfigError, match="recombined_people"):
        load_facts(RefusalConfig(splits=["unseen"], recombined_people=10 ** 6))
    with pytest.raises(ConfigError, match="recombined_people"):
        RefusalConfig(recombined_people=-1).check()
