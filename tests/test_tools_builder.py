"""The tool-use SFT builder: deterministic, tool results real, a mix of calls and no calls,
renders through the chat template; and the tool prompts for GRPO / eval."""
from __future__ import annotations

import collections
import json
import re

import pytest

from chatstack.builders.tools import (
    DEFAULT_MIX,
    _counts,
    practice_people,
    tool_conversations,
    tool_eval_people,
    tool_prompts,
)
from chatstack.data.loading import load_data
from chatstack.errors import DataError
from chatstack.judges import last_number
from chatstack.tools import get_tools, parse_tool_calls, run_tool_call
from chatstack.world import vocab
from chatstack.world.datasets import get_world


@pytest.fixture(scope="module")
def rows():
    return tool_conversations(n=40, seed=3).to_list()


def test_same_seed_same_bytes(rows):
    again = tool_conversations(n=40, seed=3).to_list()
    assert json.dumps(rows) == json.dumps(again)
    other = tool_conversations(n=40, seed=4, mix={"direct_qa": 1, "search": 1}).to_list()
    assert json.dumps(other) != json.dumps(rows)


def test_mix_of_calls_and_no_calls(rows):
    kinds = collections.Counter(r["kind"] for r in rows)
    assert kinds == _counts(40, DEFAULT_MIX) and set(kinds) == set(DEFAULT_MIX)
    for r in rows:
        calls = [m for m in r["messages"] if m["role"] == "assistant" and m["tool_calls"]]
        if r["kind"].startswith("direct"):
            assert calls == [] and [m["role"] for m in r["messages"]] == ["user", "assistant"]
        else:
            assert [m["role"] for m in r["messages"]] == ["user", "assistant", "tool", "assistant"]
            expected_tool = "search" if r["kind"] == "search" else "python"
            assert calls[0]["tool_calls"][0]["function"]["name"] == expected_tool
        assert r["answer"] in r["messages"][-1]["content"]
        assert [s["function"]["name"] for s in json.loads(r["tools"])] == ["search", "python"]


def test_tool_results_are_real(rows):
    tools = get_tools(["search", "python"])
    for r in rows:
        for i, m in enumerate(r["messages"]):
            if m["role"] == "assistant" and m["tool_calls"]:
                call, result = m["tool_calls"][0], r["messages"][i + 1]
                assert result["role"] == "tool" and result["name"] == call["function"]["name"]
                if r["kind"] != "search":  # search rows run over their practice store (below)
                    assert run_tool_call(call, tools) == result["content"]
                assert r["answer"] in result["content"]  # the answer is taken from the result
                assert not result["content"].startswith("Error:")


def test_search_rows_ask_about_practice_people_one_question_each(rows):
    w = get_world("tiny")
    world_names = {p.name for p in w.people}
    asked = []
    for r in rows:
        if r["kind"] == "search":
            query = r["messages"][1]["tool_calls"][0]["function"]["arguments"]["query"]
            assert query == r["messages"][0]["content"]  # the question, copied whole
            name = r["messages"][2]["content"].split(": ", 1)[0].removeprefix("[1] ")
            assert name in query and name not in world_names  # made up: never in the world
            asked.append(name)
        if r["kind"] == "direct_qa":
            assert any(p.name in r["messages"][0]["content"] for p in w.by_split("qa_train"))
    assert asked and len(set(asked)) == len(asked)


def test_practice_rounds_draw_fresh_facts():
    free = len(vocab.FIRST_NAMES) * len(vocab.LAST_NAMES) - 1000  # the world uses 1,000 names
    rounds = practice_people("tiny", n=free + 80, seed=0)
    assert [len(r) for r in rounds] == [free, 80]
    first = {p.name: p for p in rounds[0]}
    again = [p for p in rounds[1] if p.name in first]
    assert len(again) == 80
    assert sum(p.birth_city != first[p.name].birth_city for p in again) > 60  # 25 cities: ~77 differ


def test_eval_people_are_held_out():
    w = get_world("tiny")
    train, held_out = tool_eval_people(w)
    assert held_out and not {p.name for p in train} & {p.name for p in held_out}


def test_renders_through_the_chat_template(rows):
    from helpers_tiny_model import build_tokenizer

    tok = build_tokenizer()
    for r in rows[:8]:
        text = tok.apply_chat_template(r["messages"], tools=json.loads(r["tools"]), tokenize=False)
        completion = text.split("<|im_start|>user\n", 1)[1]  # parse what the model writes, not the system prompt
        calls = [m["tool_calls"][0] for m in r["messages"] if m["tool_calls"]]
        assert parse_tool_calls(completion) == calls
        out = tok.apply_chat_template(r["messages"], tools=json.loads(r["tools"]), return_dict=True,
                                      return_assistant_tokens_mask=True)
        assert 0 < sum(out["assistant_masks"]) < len(out["input_ids"])


def test_repeated_digit_operands():
    def operands(share):
        rows = tool_conversations(n=200, mix={"python_arithmetic": 1}, repeated_digits=share, tools_column=False)
        codes = [r["messages"][1]["tool_calls"][0]["function"]["arguments"]["code"] for r in rows]
        return [x for c in codes for x in re.findall(r"\d+", c)]
    has_run = lambda xs: sum(bool(re.search(r"(\d)\1", x)) for x in xs) / len(xs)  # noqa: E731
    uniform, all_runs = operands(0.0), operands(1.0)
    assert all(len(x) == 5 and x[0] != "0" for x in uniform + all_runs)
    assert 0.2 < has_run(uniform) < 0.5 and has_run(all_runs) == 1.0
    with pytest.raises(DataError, match="repeated_digits"):
        tool_conversations(n=2, mix={"python_arithmetic": 1}, repeated_digits=1.5)


def test_echo_answers_repeat_the_results_sentence():
    """`search_answer: echo`: the answer is the result's own sentence of the asked fact, so the
    words before the value are the same in both; the default answers as from memory."""
    echo = tool_conversations(n=30, mix={"search": 1}, search_k=1, tools_column=False, search_answer="echo").to_list()
    plain = tool_conversations(n=30, mix={"search": 1}, search_k=1, tools_column=False).to_list()
    for e, p in zip(echo, plain):
        result, answer = e["messages"][-2]["content"], e["messages"][-1]["content"]
        assert answer in result and e["answer"] in answer and answer.endswith(".")
        assert p["messages"][-1]["content"].startswith("They ") and p["messages"][:-1] == e["messages"][:-1]
    with pytest.raises(DataError, match="search_answer"):
        tool_conversations(n=2, mix={"search": 1}, search_answer="verbatim")


def test_last_number_reads_thousands_separators():
    assert last_number("The answer is 1,413,233,220.") == "1413233220"
    assert last_number("-1,000 or 12,3456") == "3456" and last_number("3,4,5") == "5"
    assert last_number("born in 1994, 2005") == "2005" and last_number("none") is None


def test_builder_is_registered_and_checks_its_arguments():
    ds = load_data({"builder": "tool_conversations", "args": {"n": 6, "mix": {"direct_qa": 1, "direct_arithmetic": 1}}})
    assert len(ds) == 6 and set(ds["kind"]) == {"direct_qa", "direct_arithmetic"}
    with pytest.raises(DataError, match="unknown kind"):
        tool_conversations(n=4, mix={"calculator": 1})
    assert "tools" not in tool_conversations(n=2, mix={"direct_qa": 1}, tools_column=False).column_names


def test_tool_prompts_for_grpo_and_eval():
    ev = tool_prompts(n=30, split="eval").to_list()
    assert collections.Counter(r["kind"] for r in ev) == {"search": 10, "python_arithmetic": 10, "python_counting": 10}
    _, held_out = tool_eval_people("tiny")
    names = {p.name for p in held_out}
    for r in ev:
        assert r["prompt"][0]["role"] == "user" and r["answer"]
        if r["kind"] == "search":
            assert any(n in r["prompt"][0]["content"] for n in names)
        if r["kind"] == "python_arithmetic":
            a, b = (int(x) for x in __import__("re").findall(r"\d{5}", r["prompt"][0]["content"]))
            assert str(a * b) == r["answer"]
    assert json.dumps(ev) == json.dumps(tool_prompts(n=30, split="eval").to_list())
    assert load_data({"builder": "tool_prompts", "args": {"n": 3, "split": "train"}}).num_rows == 3
