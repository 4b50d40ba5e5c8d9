"""The tool-call loop (chatstack.tools.loop): a model's own tool call is run, its result appended
as a `role: tool` message and generation continues; bad calls and failing tools become
results; the number of calls is capped; streaming; the chat session and `generate --tools`."""
from __future__ import annotations

import random

import pytest
from helpers_tool_model import ANSWER, CALL, REPLY, conversations, tool_model

from chatstack.engine import Engine
from chatstack.tools.loop import generate_with_tools, resolve_tools, split_reply, stream_with_tools, tool_turn

PARSE_ERRORS = ("Error: tool call is not valid JSON", "Error: unterminated tool call", "Error: tool call needs")


@pytest.fixture(scope="module")
def loaded():
    return Engine.from_pretrained(str(tool_model()), device="cpu").pair()


def prompts(kind: str, k: int = 3) -> list[list[dict]]:
    convs = [c for c in conversations(random.Random(0), 16) if (len(c) > 2) == (kind == "compute")]
    return [c[:1] for c in convs[:k]]


def test_a_tool_call_is_run_and_generation_continues(loaded):
    model, tok = loaded  # a 2-layer model fitted for seconds: most, not all, of its turns are as taught
    calls = []

    def python(code: str) -> str:
        """Run Python code.

        Args:
            code: the code
        """
        calls.append(code)
        return "42"

    results = generate_with_tools(Engine(model, tok), prompts("compute", 8) + prompts("plain", 8), tools=[python],
                                  max_tool_calls=2)
    for r in results:  # every call the model wrote was run once and its result appended after it
        tool_msgs = [m for m in r["messages"] if m["role"] == "tool"]
        assert r["tool_calls"] == len(tool_msgs) <= 2 and r["messages"][-1]["role"] == "assistant"
        assert all(m == {"role": "tool", "name": "python", "content": "42"} or m["content"].startswith(PARSE_ERRORS)
                   for m in tool_msgs)  # a garbled call is answered with the parse error, not run
    assert len(calls) == sum(r["tool_calls"] - r["tool_errors"] for r in results)
    called = [r for r in results[:8] if r["messages"][0].get("tool_calls") == [CALL]]
    assert len(called) >= 6 and sum(r["reply"] == ANSWER for r in called) >= 4  # called, then answered from the result
    assert all(r["messages"][1]["content"] == "42" and r["tool_calls"] >= 1 for r in called)
    assert sum(r["messages"] == [{"role": "assistant", "content": REPLY}] for r in results[8:]) >= 6  # no call needed


def test_the_real_sandboxed_python_and_schemas_in_the_prompt(loaded):
    model, tok = loaded
    for schemas in (False, True):  # the model learnt both prompt formats
        res = generate_with_tools(Engine(model, tok), prompts("compute", 8), tools="python", tool_schemas_in_prompt=schemas)
        ran = [r for r in res if r["messages"][0].get("tool_calls") == [CALL]]
        assert len(ran) >= 5 and all(r["messages"][1] == {"role": "tool", "name": "python", "content": "42"} for r in ran)


def test_failing_tools_and_timeouts_are_results_not_crashes(loaded):
    model, tok = loaded

    def python(code: str) -> str:
        """Fails.

        Args:
            code: the code
        """
        raise RuntimeError("kaput")

    res = generate_with_tools(Engine(model, tok), prompts("compute", 4), tools=[python], max_tool_calls=2)
    assert sum(r["tool_calls"] for r in res) >= 3
    for r in res:
        assert r["tool_errors"] == r["tool_calls"] and r["messages"][-1]["role"] == "assistant"
        assert all(m["content"] == "Error: python failed: RuntimeError: kaput" or m["content"].startswith(PARSE_ERRORS)
                   for m in r["messages"] if m["role"] == "tool")
    slow = resolve_tools([{"name": "python", "wall_seconds": 0.5, "cpu_seconds": 1}])
    msgs, results = tool_turn('<tool_call>{"name": "python", "arguments": {"code": "while True: pass"}}</tool_call>', slow)
    assert results[0].startswith("Error:") and ("limit" in results[0].lower() or "time" in results[0].lower()), results
    assert msgs[0]["tool_calls"][0]["function"]["name"] == "python" and msgs[1]["role"] == "tool"


def test_bad_json_and_unknown_tools_come_back_to_the_model():
    tools = resolve_tools("python")
    msgs, results = tool_turn('Let me see. <tool_call>{"name": "python", "arguments": {"code": </tool_call>', tools)
    assert results[0].startswith("Error: tool call is not valid JSON")
    assert msgs[0] == {"role": "assistant",
                       "content": 'Let me see. <tool_call>{"name": "python", "arguments": {"code": </tool_call>'}
    assert msgs[1]["role"] == "tool" and msgs[1]["content"] == results[0]
    msgs, results = tool_turn('<tool_call>{"name": "web", "arguments": {"q": "x"}}</tool_call>', tools)
    assert results == ["Error: unknown tool 'web'; available tools: python"] and msgs[1]["name"] == "web"
    assert split_reply("Sure.") == ("Sure.", [])


def test_calls_are_capped_and_without_tools_the_model_must_answer(loaded):
    model, tok = loaded
    for tools, cap in ((None, 2), ("python", 0)):  # the <tool_call> token is suppressed: a direct answer
        r = generate_with_tools(Engine(model, tok), prompts("compute", 1), tools=tools, max_tool_calls=cap)[0]
        assert r["tool_calls"] == 0 and len(r["messages"]) == 1 and "<tool_call>" not in r["reply"]
    calls = []

    def python(code: str) -> str:
        """Answers with another request.

        Args:
            code: the code
        """
        calls.append(code)
        return "Error: try again"

    res = generate_with_tools(Engine(model, tok), prompts("compute", 4), tools=[python], max_tool_calls=1)
    assert len(calls) >= 3 and all(r["tool_calls"] <= 1 for r in res)
    assert all(r["messages"][-1]["role"] == "assistant" and "tool_calls" not in r["messages"][-1] for r in res)


def test_streaming_yields_text_then_the_tool_result_then_the_answer(loaded):
    model, tok = loaded
    events = list(stream_with_tools(Engine(model, tok), prompts("compute", 1)[0], tools="python", temperature=0,
                                    max_tool_calls=1))
    kinds = [e["type"] for e in events]
    assert kinds.count("tool_result") == 1 and kinds[-1] == "done" and kinds.count("text") > 3
    split = kinds.index("tool_result")
    before = "".join(e["text"] for e in events[:split] if e["type"] == "text")
    after = "".join(e["text"] for e in events[split:] if e["type"] == "text")
    assert before.startswith("<tool_call>") and before.endswith("</tool_call>") and after.strip() == ANSWER
    assert (events[-1]["messages"][1]["content"] == "42"
            and events[-1]["messages"][-1] == {"role": "assistant", "content": ANSWER})


def test_chat_session_keeps_tool_messages_in_its_history(loaded):
    from chatstack.chat import ChatSession
    model, tok = loaded
    s = ChatSession(model, tok, max_new_tokens=48, temperature=0, tools="python")
    shown = "".join(s.send(prompts("compute", 1)[0][0]["content"]))
    assert "[python -> 42]" in shown and shown.rstrip().endswith(ANSWER)
    assert [m["role"] for m in s.messages] == ["user", "assistant", "tool", "assistant"]
    assert "".join(s.send(prompts("plain", 1)[0][0]["content"])).strip() == REPLY


def test_generate_cli_with_tools(loaded, capsys):
    from chatstack.generate import main
    assert main(["--model", str(tool_model()), "--chat", "--prompt", prompts("compute", 1)[0][0]["content"],
                 "--tools", "python", "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert "[python -> 42]" in out and ANSWER in out


def test_tool_specs():
    assert resolve_tools(None) == {} and resolve_tools("") == {}
    assert list(resolve_tools("search, python")) == ["search", "python"]
    tools = resolve_tools("[{name: python, max_output_chars: 5}]")
    assert tools["python"]("print('abcdefghij')").startswith("abcde\n[... output truncated")


def test_serve_respond_runs_tools(loaded):
    from chatstack.serve import Models, make_respond
    respond = make_respond(Models({"tool/model": str(tool_model())}, device="cpu"), tools="python", max_tool_calls=1)
    replies = list(respond(prompts("compute", 1)[0][0]["content"], [], "tool/model", "", 0.0, 0, 1.0, 48))
    assert len(replies) > 3 and "[python -> 42]" in replies[-1] and replies[-1].startswith("<tool_call>")
