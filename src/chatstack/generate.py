"""`chatstack generate`: sample from a base or a chat model (temperature, top-k, top-p).

A base model continues raw text; with `--chat` each prompt is a user message, rendered by
the chat template, and the reply stops at the end of the turn. With `--tools` the chat model
may call tools (chatstack.tools.loop). The generation itself is chatstack.engine's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from chatstack.config import parse_cli
from chatstack.engine import Engine, SamplingArgs
from chatstack.errors import DataError
from chatstack.tools.calls import render_tool_call
from chatstack.tools.loop import ToolArgs, format_tool_result, generate_with_tools


@dataclass
class GenerateArgs:
    model: str = field(metadata={"help": "a save_pretrained folder (any stage's output)"})
    prompt: list[str] = field(metadata={"help": "one or more prompts"})
    chat: bool = field(default=False, metadata={"help": "treat each prompt as a user message (chat models)"})
    system: str | None = field(default=None, metadata={"help": "system prompt (with --chat)"})
    num_samples: int = field(default=1, metadata={"help": "samples per prompt"})


def show_turns(messages: list[dict]) -> str:
    """The tool loop's new messages as text: calls in their markup, results as one line each."""
    return "\n".join(format_tool_result(m) if m["role"] == "tool" else
                     m["content"] + "".join(render_tool_call(c) for c in m.get("tool_calls") or [])
                     for m in messages)


def main(argv: list[str]) -> int:
    a, s, t = parse_cli("chatstack generate", __doc__, (GenerateArgs, SamplingArgs, ToolArgs), argv)
    if t.tools and not a.chat:
        raise DataError("--tools needs --chat (tool calls are a chat model's turns)")
    torch.manual_seed(s.seed)
    engine = Engine.from_pretrained(a.model)
    for prompt in a.prompt:
        conv = ([{"role": "system", "content": a.system}] if a.system else []) + [{"role": "user", "content": prompt}]
        for k in range(a.num_samples):
            if a.chat and t.tools:
                res = generate_with_tools(engine, [conv], tools=t.tools, max_tool_calls=t.max_tool_calls,
                                          tool_schemas_in_prompt=t.tool_schemas, **s.sampling())[0]
                out = show_turns(res["messages"])
            elif a.chat:
                out = engine.chat([conv], **s.sampling())[0]
            else:
                out = prompt + engine.complete([prompt], **s.sampling())[0]
            print(f"--- sample {k + 1} ---\n{out}")
    return 0
