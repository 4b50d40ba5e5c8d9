"""Tool calls in the chat format: parse what the model wrote, run it, and build the messages.

The chat template (templates/chatml_tools.jinja) renders an assistant tool call as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` before `<|im_end|>`, and a tool
result as a `role: tool` message. The standard messages format is used throughout:

    {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
        "function": {"name": "python", "arguments": {"code": "print(2 ** 10)"}}}]}
    {"role": "tool", "name": "python", "content": "1024"}

Nothing here raises for what a model writes: malformed calls, unknown tools, bad arguments
and tool failures all become tool-result strings starting with "Error:".
"""
from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterable

from chatstack.tools.sandbox import ERROR_PREFIX

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
_CALL_RE = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)(?:" + re.escape(TOOL_CALL_CLOSE) + r"|$)", re.DOTALL)


def parse_tool_calls(text: str) -> list[dict]:
    """Every `<tool_call>...</tool_call>` in `text`, in order, as standard tool-call dicts
    `{"type": "function", "function": {"name": str, "arguments": dict}}`. A call that cannot
    be used (bad JSON, no name, arguments not an object, no closing tag) is kept with an
    `"error"` key, so that `run_tool_call` answers it with an error the model can read."""
    calls = []
    for m in _CALL_RE.finditer(text or ""):
        body, closed = m.group(1).strip(), m.group(0).endswith(TOOL_CALL_CLOSE)
        call = {"type": "function", "function": {"name": None, "arguments": {}}}
        if not closed:
            call["error"] = "unterminated tool call (no </tool_call>)"
            calls.append(call)
            continue
        try:
            data = json.loads(body)
        except json.JSONDecodeError as e:
            call["error"] = f"tool call is not valid JSON ({e.msg} at position {e.pos}): {body[:100]!r}"
            calls.append(call)
            continue
        if isinstance(data, dict) and isinstance(data.get("function"), dict):
            data = data["function"]  # {"type": "function", "function": {...}} written out in full
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            call["error"] = f'tool call needs {{"name": ..., "arguments": {{...}}}}, got {body[:100]!r}'
            calls.append(call)
            continue
        args = data.get("arguments", data.get("parameters", {}))
        if isinstance(args, str):  # some models write the arguments as a JSON string
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                pass
        call["function"] = {"name": data["name"], "arguments": args}
        if not isinstance(args, dict):
            call["error"] = f"tool call arguments must be a JSON object, got {type(args).__name__}"
        calls.append(call)
    return calls


def _tool_map(tools: Iterable[Callable] | dict[str, Callable]) -> dict[str, Callable]:
    if isinstance(tools, dict):
        return dict(tools)
    return {t.__name__: t for t in tools}


def run_tool_call(call: dict, tools: Iterable[Callable] | dict[str, Callable]) -> str:
    """Run one parsed call with the matching tool; always returns the tool-result text."""
    tools = _tool_map(tools)
    fn = call.get("function", call) if isinstance(call, dict) else {}
    name = fn.get("name") if isinstance(fn, dict) else None
    if isinstance(call, dict) and call.get("error"):
        return f"{ERROR_PREFIX} {call['error']}"
    if name not in tools:
        return f"{ERROR_PREFIX} unknown tool {name!r}; available tools: {', '.join(sorted(tools)) or 'none'}"
    args = fn.get("arguments") or {}
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return f"{ERROR_PREFIX} arguments of {name} are not valid JSON: {args[:100]!r}"
    if not isinstance(args, dict):
        return f"{ERROR_PREFIX} arguments of {name} must be an object, got {type(args).__name__}"
    try:
        inspect.signature(tools[name]).bind(**args)
    except TypeError as e:
        return f"{ERROR_PREFIX} bad arguments for {name}: {e}"
    except ValueError:  # no signature to check (a builtin): let the call tell
        pass
    try:
        result = tools[name](**args)
    except Exception as e:  # noqa: BLE001 - a tool failure is a result the model reads
        return f"{ERROR_PREFIX} {name} failed: {type(e).__name__}: {e}"
    return result if isinstance(result, str) else json.dumps(result, default=str)


def tool_call(name: str, **arguments) -> dict:
    """One tool call in the standard format."""
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def assistant_tool_call_message(calls: list[dict], content: str = "") -> dict:
    return {"role": "assistant", "content": content, "tool_calls": [
        {"type": "function", "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
        for c in calls]}


def tool_result_message(call: dict, result: str) -> dict:
    return {"role": "tool", "name": call["function"]["name"], "content": result}


def render_tool_call(call: dict) -> str:
    """The text the chat template writes for a call (what a model must generate)."""
    fn = call["function"]
    args = fn["arguments"] if isinstance(fn["arguments"], str) else json.dumps(fn["arguments"])
    return f'{TOOL_CALL_OPEN}{{"name": "{fn["name"]}", "arguments": {args}}}{TOOL_CALL_CLOSE}'
