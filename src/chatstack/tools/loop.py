"""The tool-call loop, a layer over chatstack.engine (which never imports back): generate the
assistant's turn; when it writes a tool call (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`,
as the chat template renders one), run the tool, append the assistant `tool_calls` message and
the `role: tool` result in the standard messages format, and generate again, up to
`max_tool_calls` calls; then the model must answer (the `<tool_call>` token is suppressed on
its last turn).

Nothing the model writes crashes the loop: bad JSON, unknown tools, bad arguments, tool
exceptions and python timeouts all come back to the model as a tool result starting with
"Error:" (chatstack.tools.calls), and the model continues from it.

    results = generate_with_tools(Engine(model, tokenizer), [[{"role": "user", "content": "What is 48213 * 91457?"}]],
                                  tools="search,python")
    results[0]["reply"], results[0]["messages"]      # the answer; the new messages (calls, results, answer)

`generate_with_tools` is batched (evaluation); `stream_with_tools` streams one conversation
(`chatstack chat`, `chatstack serve`). With no tools (`tools=None`/`{}`) `generate_with_tools`
suppresses the tool-call token: the model has to answer from its parameters ("without tools").

`tool_schemas=True` renders the tools' JSON schemas into the prompt (`apply_chat_template(tools=...)`),
as models trained with schemas expect. The tiny recipe trains without them: the two schemas take
~460 tokens of a 256-token context.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chatstack.engine import ContextFullError, Engine
from chatstack.tools.calls import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    assistant_tool_call_message,
    parse_tool_calls,
    run_tool_call,
    tool_result_message,
)
from chatstack.tools.sandbox import ERROR_PREFIX

DEFAULT_MAX_TOOL_CALLS = 3
HIDDEN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|pad|>")


# ------------------------------------------------------------------------------ tools
@dataclass
class ToolArgs:
    tools: str | None = field(default=None, metadata={
        "help": "tools the model may call: 'search,python', or YAML such as "
                "'[{name: search, k: 1}, {name: python, interpreter: /usr/bin/python3}]', or 'none' "
                "(default: the tools the model folder records, chatstack.tools.record; none if it records none)"})
    max_tool_calls: int = field(default=3, metadata={"help": "tool calls per reply, at most"})
    tool_schemas: bool = field(default=False, metadata={
        "help": "render the tools' JSON schemas into the prompt (models trained with them; the tiny recipe is not)"})


def resolve_tools(tools) -> dict[str, Callable]:
    """None, '', [] -> {}; 'search,python'; a YAML list '[search, {name: python, interpreter: /usr/bin/python3}]';
    a list of names, option mappings (chatstack.tools.registry) or callables; or a name -> callable dict."""
    if not tools:
        return {}
    if isinstance(tools, dict) and all(callable(v) for v in tools.values()):
        return dict(tools)
    if isinstance(tools, str):
        text = tools.strip()
        if text.startswith(("[", "{")):
            import yaml
            entries = yaml.safe_load(text)
            entries = [entries] if isinstance(entries, dict) else entries
        else:
            entries = [t.strip() for t in text.split(",") if t.strip()]
    elif isinstance(tools, dict):
        entries = [tools]
    else:
        entries = list(tools)
    from chatstack.tools.registry import get_tools
    out = {}
    for entry in entries:
        fn = entry if callable(entry) else get_tools([entry])[0]
        out[fn.__name__] = fn
    return out


def tool_schemas(tools: dict[str, Callable]) -> list[dict] | None:
    from transformers.utils import get_json_schema
    return [get_json_schema(fn) for fn in tools.values()] or None


# ------------------------------------------------------------------------------ one turn
def split_reply(text: str) -> tuple[str, list[dict]]:
    """(content before any tool call, parsed tool calls) of one generated assistant turn."""
    i = text.find(TOOL_CALL_OPEN)
    if i < 0:
        return text.strip(), []
    return text[:i].strip(), parse_tool_calls(text[i:])


def tool_turn(text: str, tools: dict[str, Callable]) -> tuple[list[dict], list[str]]:
    """The messages for a generated turn that holds tool calls: the assistant message (a
    standard `tool_calls` message; for a call that could not be parsed, the raw text as
    content) then one `role: tool` message per call with its result. Never raises."""
    content, calls = split_reply(text)
    results = [run_tool_call(c, tools) for c in calls]
    if any(c.get("error") for c in calls):
        assistant = {"role": "assistant", "content": text.strip()}
    else:
        assistant = assistant_tool_call_message(calls, content)
    tool_msgs = [tool_result_message(c, r) if c["function"]["name"] else {"role": "tool", "name": "unknown", "content": r}
                 for c, r in zip(calls, results)]
    return [assistant, *tool_msgs], results


def _clean(text: str) -> str:
    for t in HIDDEN_TOKENS:
        text = text.replace(t, "")
    return text


def _turn_options(engine: Engine, allow_calls: bool, suppress_calls: bool) -> tuple[list[int], list[int] | None]:
    """(stop ids, suppressed ids) of a turn: it may end right after `</tool_call>` when calls are
    allowed; `suppress_calls` forbids the `<tool_call>` token (the model must answer now)."""
    stops = engine.stop_ids(chat=True, also=(TOOL_CALL_CLOSE,) if allow_calls else ())
    return stops, (engine.token_ids([TOOL_CALL_OPEN]) or None) if suppress_calls else None


# ------------------------------------------------------------------------------ batched
def _generate_turns(engine: Engine, texts: list[str], allow_calls: bool, batch_size: int, max_new_tokens: int,
                    sampling: dict) -> list[str | None]:
    """One assistant turn per prompt, as text with the tool-call markup kept; a turn stops at
    the end-of-turn token or right after `</tool_call>`. None where the prompt fills the context.
    Prompts are batched by length (less padding)."""
    stops, suppress = _turn_options(engine, allow_calls, suppress_calls=not allow_calls)
    close = set(engine.token_ids([TOOL_CALL_CLOSE]))
    ids = [engine.encode(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    done = engine.generate([ids[i] for i in order], stops, max_new_tokens, batch_size, suppress, **sampling)
    out: list[str | None] = [None] * len(texts)
    for i, c in zip(order, done):
        if c is not None:
            row = c.ids + [c.stop] if c.stop in close else c.ids
            out[i] = _clean(engine.tokenizer.decode(row, skip_special_tokens=False))
    return out


def generate_with_tools(engine: Engine, conversations: list[list[dict]], tools=None,
                        max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS, tool_schemas_in_prompt: bool = False,
                        batch_size: int = 32, max_new_tokens: int = 64, workers: int = 4, temperature: float = 0.0,
                        top_k: int | None = None, top_p: float | None = None) -> list[dict]:
    """Run the tool loop on each conversation (batched, greedy by default). Returns, per
    conversation: `messages` (the new messages: assistant tool calls, tool results, the final
    assistant message), `reply` (the final answer), `tool_calls`, `tool_errors` (results
    starting with "Error:") and `context_full` (the conversation outgrew the model's context)."""
    tools = resolve_tools(tools)
    if max_tool_calls < 0:
        raise ValueError(f"max_tool_calls must be >= 0, got {max_tool_calls}")
    schemas = tool_schemas(tools) if tool_schemas_in_prompt else None
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    states = [{"messages": [], "reply": "", "tool_calls": 0, "tool_errors": 0, "context_full": False, "done": False}
              for _ in conversations]
    pool = ThreadPoolExecutor(max(1, workers)) if tools else None
    try:
        while not all(s["done"] for s in states):
            # rows that may still call a tool, then rows that must answer now (no tools, or no calls left)
            for allow in (True, False):
                rows = [i for i, s in enumerate(states) if not s["done"]
                        and (bool(tools) and s["tool_calls"] < max_tool_calls) == allow]
                if not rows:
                    continue
                texts = [engine.render(conversations[i] + states[i]["messages"], schemas) for i in rows]
                turns = _generate_turns(engine, texts, allow, batch_size, max_new_tokens, sampling)
                calling = []
                for i, text in zip(rows, turns):
                    s = states[i]
                    if text is None:
                        s.update(done=True, context_full=True)
                    elif allow and TOOL_CALL_OPEN in text:
                        calling.append((i, text))
                    else:
                        s["messages"].append({"role": "assistant", "content": text.strip()})
                        s.update(done=True, reply=text.strip())
                for i, (msgs, results) in zip([i for i, _ in calling],
                                              pool.map(lambda it: tool_turn(it[1], tools), calling) if calling else []):
                    s = states[i]
                    s["messages"] += msgs
                    s["tool_calls"] += len(results)
                    s["tool_errors"] += sum(r.startswith(ERROR_PREFIX) for r in results)
    finally:
        if pool:
            pool.shutdown()
    for s in states:
        del s["done"]
    return states


# ------------------------------------------------------------------------------ streaming
def stream_with_tools(engine: Engine, messages: list[dict], tools=None, max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS,
                      tool_schemas_in_prompt: bool = False, max_new_tokens: int = 128, temperature: float = 0.7,
                      top_k: int | None = 50, top_p: float | None = 0.95) -> Iterator[dict]:
    """Stream one conversation through the tool loop. Yields events:
    {"type": "text", "text": piece} as the model writes (tool-call markup included),
    {"type": "tool_result", "message": {...role: tool...}} after each call,
    and last {"type": "done", "messages": [...the new messages...]}.
    Raises chatstack.engine.ContextFullError when the conversation fills the model's context."""
    tools = resolve_tools(tools)
    schemas = tool_schemas(tools) if tool_schemas_in_prompt else None
    new: list[dict] = []
    calls = 0
    while True:
        allow = bool(tools) and calls < max_tool_calls
        stops, suppress = _turn_options(engine, allow, suppress_calls=bool(tools) and not allow)
        text = ""
        try:
            for piece in engine.stream(engine.render(messages + new, schemas), stops, max_new_tokens,
                                       skip_special_tokens=False, suppress_ids=suppress,
                                       temperature=temperature, top_k=top_k, top_p=top_p):
                piece = _clean(piece)
                if piece:
                    text += piece
                    yield {"type": "text", "text": piece}
        except ContextFullError:
            if not new:
                raise
            # a tool result filled the context: end the turn with what we have
            new.append({"role": "assistant", "content": "(the tool result filled the model's context)"})
            yield {"type": "text", "text": new[-1]["content"]}
            break
        if allow and TOOL_CALL_OPEN in text:
            msgs, results = tool_turn(text, tools)
            calls += len(results)
            new += msgs
            for m in msgs[1:]:
                yield {"type": "tool_result", "message": m}
            continue
        new.append({"role": "assistant", "content": text.strip()})
        break
    yield {"type": "done", "messages": new}


def format_tool_result(message: dict, max_chars: int = 300) -> str:
    """A tool result as one display line for the terminal and the browser."""
    content = message.get("content") or ""
    if len(content) > max_chars:
        content = content[:max_chars] + " ..."
    return f"[{message.get('name', 'tool')} -> {content}]"
