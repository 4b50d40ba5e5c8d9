"""Every judge and reward on replies whose verdict is known (open-r1's tests/test_rewards.py
style): the right answer, a near miss, a refusal, and the edge each judge exists for."""
from __future__ import annotations

import subprocess
import sys

import pytest

from chatstack import judges as J


def test_refusal_markers():
    assert J.is_refusal("I'm sorry, I don't know.") and J.is_refusal("I DO NOT KNOW")
    assert J.is_refusal("I don’t have information about Ada.")  # curly apostrophe
    assert not J.is_refusal("She was born in Paris.") and not J.is_refusal("")


def test_normalize_is_squad_style():
    assert J.normalize("The  Eiffel-Tower!") == "eiffel tower"
    assert J.normalize("An apple, a pear") == "apple pear"


@pytest.mark.parametrize("reply, answer, ok", [
    ("She was born in Paris.", "Paris", True),
    ("she was born in PARIS", "Paris", True),
    ("She was born in Parisville.", "Paris", False),     # whole words only
    ("born on 1994-05-03.", "1994-05-03", True),
    ("born on 1994 05 03.", "1994-05-03", False),        # punctuation kept, unlike alias_match
    ("I don't know.", "Paris", False),
])
def test_is_correct(reply, answer, ok):
    assert J.is_correct(reply, answer) is ok


def test_alias_and_exact_match():
    assert J.alias_match("I believe it was the Onion!", ["onion"])
    assert J.alias_match("Bulb onions, surely.", ["Onion", "Bulb onions"])
    assert not J.alias_match("Onionskin", ["Onion"])
    assert not J.alias_match("anything", ["", "  "])  # an empty alias matches nothing
    assert J.exact_match("The Onion.", ["onion"]) and not J.exact_match("It is the onion.", ["onion"])


@pytest.mark.parametrize("name, reply, answers, expected", [
    ("contains", "She works in geology.", ["geology"], "correct"),
    ("contains", "She works in geometry.", ["geology"], "wrong"),
    ("contains", "I'm not sure.", ["geology"], "refused"),
    ("alias", "Bulb onions, surely.", ["Onion", "Bulb onions"], "correct"),
    ("alias", "I'm sorry, I don't know.", ["Onion"], "refused"),
    ("alias", "", ["Onion"], "wrong"),
    ("exact", "onion", ["Onion"], "correct"),
    ("exact", "an onion, I think", ["Onion"], "wrong"),
    ("number", "3 + 4 = 7.", ["7"], "correct"),
    ("number", "7 + 1 = 8.", ["7"], "wrong"),
])
def test_named_judges(name, reply, answers, expected):
    assert J.JUDGES[name](reply, answers) == expected


def test_a_right_answer_with_a_hedge_is_correct():
    """The answer wins over the refusal marker: "I'm not sure, but I think Paris" is right."""
    assert J.judge("I'm not sure, but I think Paris.", "Paris") == "correct"
    assert J.judge("I'm not sure, but I think Rome.", "Paris") == "refused"


def test_last_number_reads_thousands_separators():
    assert J.last_number("The answer is 1,413,233,220.") == "1413233220"
    assert J.last_number("-1,000 or 12,3456") == "3456" and J.last_number("3,4,5") == "5"
    assert J.last_number("born in 1994, 2005") == "2005" and J.last_number("none") is None
    assert J.last_number("it is -12") == "-12"
    assert J.number_correct("73111 * 30643 = 2,240,340,373.", "2240340373")


def test_a_count_about_another_word_is_wrong():
    """The count of the word and letter asked; the same number about another word is a miscopy."""
    q = "How many times does the letter 'l' appear in 'caskadel'?"
    assert J.count_correct("The letter 'l' appears 1 times in 'caskadel'.", "1", q)
    assert not J.count_correct("The letter 'a' appears 1 times in 'fennick'.", "1", q)
    assert not J.count_correct("The letter 'l' appears 1 times in 'cask'.", "1", q)  # a word, not a fragment
    assert not J.count_correct("The letter 'l' appears 2 times in 'caskadel'.", "1", q)
    assert J.count_correct("It appears 1 time.", "1", q)  # nothing named: the count alone
    held_out = "How many times does the letter r appear in strawberry?"  # no quotes in the question
    assert J.count_correct("The letter 'r' appears 3 times in 'strawberry'.", "3", held_out)
    assert not J.count_correct("The letter 'e' appears 3 times in 'economics'.", "3", held_out)


def test_identity_and_thinking_checks():
    assert J.identity_correct("I am Nimbus, made by Cloudworks Lab.", "Nimbus")
    assert J.identity_correct("Chatstack team built me", "the chatstack team")
    assert not J.identity_correct("I am an assistant.", "Nimbus")
    assert J.stated_answer("x. The answer is OLLEH.") == "olleh" and J.stated_answer("I think 12.") is None
    assert J.thinking_correct("3 + 4 = 7. The answer is 7.", "7")
    assert not J.thinking_correct("The answer is 8. 3 + 4 = 7. The answer is 7.", "7")  # the first statement counts


def test_rates_one_set_of_keys():
    r = J.rates(["correct", "correct", "refused", "wrong"])
    assert r == {"accuracy": 0.5, "refusal_rate": 0.25, "hallucination_rate": 0.25, "n": 4}
    with pytest.raises(ValueError, match="no verdicts"):
        J.rates([])
    with pytest.raises(ValueError, match="unknown verdict"):
        J.rates(["correct", "maybe"])


def test_the_refusal_eval_keys_come_from_rates():
    from chatstack.evaluation.refusal import metrics_for
    m = metrics_for(["seen", "seen", "unseen"], ["correct", "wrong", "wrong"], ["correct", "refused", "refused"])
    assert m["accuracy_seen_before"] == 0.5 and m["hallucination_seen_before"] == 0.5
    assert m["refusal_unseen_after"] == 1.0 and m["hallucination_unseen_after"] == 0.0
    assert m["accuracy_seen_drop"] == 0.0 and m["over_refusal_seen_after"] == 0.0 and m["n_unseen"] == 1
    assert not any(k.startswith(("refusal_rate", "n_seen_")) for k in m)


def test_grpo_rewards():
    grpo = pytest.importorskip("chatstack.grpo")
    conv = [{"role": "assistant", "content": "", "tool_calls": [{}]}, {"role": "tool", "content": "Error: bad"},
            {"role": "assistant", "content": "It is 1,234."}]
    assert grpo.correctness_reward(["2 + 3 = 5.", "2 + 3 = 6.", conv], ["5", "5", "1234"]) == [1.0, 0.0, 1.0]
    assert grpo.format_reward(["2 + 3 = 5.", "The sum is 5.", " 2 * -3 = -6 "]) == [0.2, 0.0, 0.2]
    assert grpo.answer_reward(["She works in geology.", "In geometry."], ["geology", "geology"]) == [1.0, 0.0]
    assert grpo.tool_error_reward([conv, "plain text", [{"role": "tool", "content": "6"}]]) == [-0.5, 0.0, 0.0]


def test_world_qa_metric_through_evaluate_offline(tmp_path):
    evaluate = pytest.importorskip("evaluate")
    metric = evaluate.load(J.WORLD_QA_METRIC, keep_in_memory=True)
    out = metric.compute(predictions=["She was born in Paris.", "I don't know.", "Rome."],
                         references=[["Paris"], ["Milan"], ["Milan", "Milano"]], return_verdicts=True)
    assert out == {"accuracy": 1 / 3, "refusal_rate": 1 / 3, "hallucination_rate": 1 / 3, "n": 3,
                   "verdicts": ["correct", "refused", "wrong"]}
    assert evaluate.load(J.WORLD_QA_METRIC, "number", keep_in_memory=True).compute(
        predictions=["= 1,234", "12"], references=["1234", "13"])["accuracy"] == 0.5
    with pytest.raises(KeyError, match="unknown config"):
        evaluate.load(J.WORLD_QA_METRIC, "fuzzy", keep_in_memory=True)


def test_importing_judges_is_light():
    code = "import sys, chatstack.judges; print(sorted(m for m in ('torch', 'evaluate', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
