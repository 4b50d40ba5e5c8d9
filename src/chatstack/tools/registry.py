"""Tool names as YAML knows them (`tools: [search, python]`) -> the callables that TRL's
GRPOTrainer(tools=...), `apply_chat_template(tools=...)` and the generation loop take.

An entry is a name, or a mapping with options for the tool's factory:

    tools: [search, python]
    tools: [{name: search, store: docs.jsonl, text_column: body, k: 3}, {name: python, cpu_seconds: 2}]
"""
from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from chatstack.errors import ConfigError

# name -> (module:plain tool, module:factory taking the options)
TOOLS: dict[str, tuple[str, str]] = {
    "search": ("chatstack.tools.search_tool:search", "chatstack.tools.search_tool:make_search_tool"),
    "python": ("chatstack.tools.python_tool:python", "chatstack.tools.registry:_python_factory"),
}


def _resolve(target: str) -> Callable:
    module, attr = target.split(":")
    return getattr(import_module(module), attr)


def _python_factory(interpreter: str | None = None, **limits) -> Callable:
    from chatstack.tools.python_tool import make_python_tool
    from chatstack.tools.sandbox import SandboxLimits

    try:
        return make_python_tool(SandboxLimits(**limits), interpreter)
    except TypeError as e:
        from dataclasses import fields
        raise ConfigError(f"tools: python: {e}; valid options: interpreter, "
                          f"{', '.join(f.name for f in fields(SandboxLimits))}") from None


def get_tools(names: list[str | dict] | None) -> list[Callable]:
    """Callables for tool names (or {name: ..., options} mappings); unknown names are errors."""
    tools = []
    for entry in names or []:
        options: dict[str, Any] = {}
        if isinstance(entry, dict):
            options = dict(entry)
            entry = options.pop("name", None)
        if not isinstance(entry, str) or entry not in TOOLS:
            raise ConfigError(f"tools: unknown tool {entry!r}; known tools: {', '.join(sorted(TOOLS))}")
        plain, factory = TOOLS[entry]
        if not options:
            tools.append(_resolve(plain))
            continue
        try:
            tools.append(_resolve(factory)(**options))
        except TypeError as e:
            raise ConfigError(f"tools: {entry}: bad options {sorted(options)}: {e}") from None
    return tools


def get_tool_schemas(tools: list[Callable | str | dict]) -> list[dict]:
    """OpenAI-style JSON schemas, made by transformers' get_json_schema from the signatures."""
    from transformers.utils import get_json_schema

    callables = [t if callable(t) else get_tools([t])[0] for t in tools]
    return [get_json_schema(t) for t in callables]
