"""The tools: python (behaviour; the attacks are in test_sandbox_security.py), search, the
registry and JSON schemas, and the tool-call parse/run helpers on the chat template's format."""
from __future__ import annotations

import json

import pytest
from transformers.utils import get_json_schema

from chatstack.errors import ConfigError, DataError
from chatstack.tools import get_tool_schemas, get_tools, parse_tool_calls, python, run_tool_call, search
from chatstack.tools.calls import assistant_tool_call_message, render_tool_call, tool_call
from chatstack.tools.loop import tool_turn
from chatstack.tools.sandbox import SandboxLimits, run_sandboxed
from chatstack.tools.search_tool import BM25Store, SearchBackend, load_store, make_search_tool
from chatstack.world.datasets import encyclopedia, get_world


# ---------------------------------------------------------------------------------- python
def test_python_prints_and_shows_last_expression():
    assert python("print(48213 * 91457)") == str(48213 * 91457)
    assert python("x = 'strawberry'\nx.count('r')") == "3"
    assert python("x = 1") == "(no output)"


def test_python_errors_are_results_not_exceptions():
    out = python("def f(x):\n    return 1 / x\nf(0)")
    assert out.startswith("Error: ZeroDivisionError") and "line 2" in out and "return 1 / x" in out
    assert python("print(").startswith("Error: ") and "SyntaxError" in python("print(")
    assert python("import numpy").startswith("Error: ModuleNotFoundError")  # standard library only
    assert python("import sys\nsys.exit(3)") == "Error: exited with status 3"
    assert python("import sys\nsys.exit(0)") == "(no output)"


def test_python_output_is_truncated_and_stdlib_works():
    r = run_sandboxed("for i in range(5000):\n    print(i)", SandboxLimits(max_output_chars=100))
    assert r.ok and len(r.output) < 200 and "truncated" in r.output
    out = python("import math, json, re, collections, itertools, fractions, decimal, datetime, random\n"
                 "print(math.factorial(20), json.dumps({'a': 1}), collections.Counter('aab')['a'])")
    assert out == "2432902008176640000 {\"a\": 1} 2"
    assert python("open('f.txt', 'w').write('hi')\nprint(open('f.txt').read())") == "hi"  # its own directory


def test_python_calls_do_not_share_state():
    assert python("open('state.txt', 'w').write('x')") == "1"
    assert python("import os\nprint(os.listdir('.'))") == "[]"


def test_python_schema():
    schema = get_json_schema(python)
    assert schema["function"]["name"] == "python"
    assert schema["function"]["parameters"]["required"] == ["code"]
    assert "Security" not in json.dumps(schema)  # the docstring's security notes stay out of the prompt
    assert "does not protect against" in python.__doc__ and "protects against" in python.__doc__


# ---------------------------------------------------------------------------------- search
def test_search_finds_an_unseen_person_by_name():
    w = get_world("tiny")
    for person in w.by_split("unseen")[:20]:
        out = search(person.name)
        assert out.startswith(f"[1] {person.name}: "), out
        assert person.birth_city in out.split("\n")[0] and person.employer in out.split("\n")[0]
        question = w.questions(person, "employer")[0]
        assert search(question).startswith(f"[1] {person.name}: ")


def test_search_store_covers_the_whole_world():
    store = load_store("world:tiny")
    assert len(store) == len(get_world("tiny").people)
    assert {"unseen", "qa_train"} <= set(encyclopedia("tiny")["split"])
    assert search("the of and") == "No results."
    assert search("qqqzzzxxx") == "No results."


def test_search_over_a_jsonl_store(tmp_path):
    path = tmp_path / "docs.jsonl"
    docs = [{"title": "Zorblat", "body": "The zorblat is a purple fruit grown on Mars."},
            {"title": "Quenty", "body": "Quenty is a game played with seven stones."},
            {"title": "Mirel", "body": "Mirel is a river that flows north."}]
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    tool = make_search_tool(str(path), k=1, text_column="body")
    assert tool.__name__ == "search" and get_json_schema(tool) == get_json_schema(search)
    assert tool("which fruit is purple?") == "[1] Zorblat: The zorblat is a purple fruit grown on Mars."
    assert get_tools([{"name": "search", "store": str(path), "text_column": "body", "k": 2}])[0]("seven stones") \
        .startswith("[1] Quenty")


def test_bad_stores_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.jsonl"):
        load_store(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{not json\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        load_store(str(bad))
    nocol = tmp_path / "nocol.jsonl"
    nocol.write_text('{"body": "x"}\n')
    with pytest.raises(DataError, match=r"nocol.jsonl.*no text column 'text'.*body"):
        load_store(str(nocol))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.jsonl"):
        load_store(str(empty))


def test_a_custom_backend_fits_the_interface():
    class Canned:
        def search(self, query: str, k: int) -> list[dict]:
            return [{"title": "Web", "text": f"result for {query}"}][:k]

    assert isinstance(Canned(), SearchBackend)
    assert make_search_tool(Canned(), k=1)("cats") == "[1] Web: result for cats"
    assert isinstance(load_store(encyclopedia("tiny").select(range(5))), BM25Store)


# ---------------------------------------------------------------------------------- registry
def test_registry_names_and_schemas():
    tools = get_tools(["search", "python"])
    assert [t.__name__ for t in tools] == ["search", "python"]
    schemas = get_tool_schemas(["search", "python"])
    assert [s["function"]["name"] for s in schemas] == ["search", "python"]
    with pytest.raises(ConfigError, match="known tools: python, search"):
        get_tools(["calculator"])
    with pytest.raises(ConfigError, match="valid options: interpreter, cpu_seconds"):
        get_tools([{"name": "python", "cpu_secs": 1}])
    fast = get_tools([{"name": "python", "cpu_seconds": 1, "max_output_chars": 10}])[0]
    assert fast.__name__ == "python" and fast("print('y' * 50)").startswith("y" * 10 + "\n[... output truncated")


# ---------------------------------------------------------------------------------- calls
def test_parse_and_run_a_call_as_the_template_writes_it():
    call = tool_call("python", code="print(2 ** 10)")
    text = render_tool_call(call) + "<|im_end|>"
    assert text == '<tool_call>{"name": "python", "arguments": {"code": "print(2 ** 10)"}}</tool_call><|im_end|>'
    parsed = parse_tool_calls(text)
    assert parsed == [call]
    assert run_tool_call(parsed[0], get_tools(["python"])) == "1024"
    assert assistant_tool_call_message(parsed)["tool_calls"][0]["function"]["arguments"] == {"code": "print(2 ** 10)"}


def test_parse_several_calls_and_variants():
    text = ('Let me check. <tool_call>{"name": "search", "arguments": {"query": "Ada"}}</tool_call>'
            '<tool_call>\n{"name": "python", "arguments": "{\\"code\\": \\"1+1\\"}"}\n</tool_call>'
            '<tool_call>{"type": "function", "function": {"name": "search", "arguments": {"query": "B"}}}</tool_call>')
    calls = parse_tool_calls(text)
    assert [c["function"]["name"] for c in calls] == ["search", "python", "search"]
    assert calls[1]["function"]["arguments"] == {"code": "1+1"}
    assert parse_tool_calls("no call here") == []


@pytest.mark.parametrize("text, expected", [
    ('<tool_call>{"name": "nope", "arguments": {}}</tool_call>',
     "Error: unknown tool 'nope'; available tools: python, search"),
    ("<tool_call>{bad json</tool_call>", "Error: tool call is not valid JSON"),
    ('<tool_call>{"name": "python", "arguments": {"code": "1"', "Error: unterminated tool call"),
    ('<tool_call>{"name": "python", "arguments": {"cod": "1"}}</tool_call>', "Error: bad arguments for python"),
    ('<tool_call>{"name": "python", "arguments": [1]}</tool_call>', "Error: tool call arguments must be a JSON object"),
    ('<tool_call>["python"]</tool_call>', 'Error: tool call needs {"name"'),
])
def test_bad_calls_become_error_results(text, expected):
    msgs = tool_turn(text, {t.__name__: t for t in get_tools(["python", "search"])})[0][1:]
    assert len(msgs) == 1 and msgs[0]["role"] == "tool" and msgs[0]["content"].startswith(expected), msgs


def test_a_failing_tool_is_a_result():
    def boom(x: int) -> str:
        """Fails.

        Args:
            x: anything
        """
        raise RuntimeError("kaput")

    assert run_tool_call(tool_call("boom", x=1), [boom]) == "Error: boom failed: RuntimeError: kaput"
    assert run_tool_call(tool_call("boom", x=1), {"boom": lambda x: {"n": x}}) == '{"n": 1}'
