"""Tools a model can call: `search` (BM25 over a document store) and `python` (a sandboxed
interpreter), the registry that names them in YAML, and the helpers that parse and run tool
calls written in the chat format.

Imports are lazy so that `chatstack.tools.sandbox` stays standard-library only.
"""
from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "python": "chatstack.tools.python_tool",
    "search": "chatstack.tools.search_tool",
    "get_tools": "chatstack.tools.registry",
    "get_tool_schemas": "chatstack.tools.registry",
    "TOOLS": "chatstack.tools.registry",
    "parse_tool_calls": "chatstack.tools.calls",
    "run_tool_call": "chatstack.tools.calls",
    "ERROR_PREFIX": "chatstack.tools.sandbox",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'chatstack.tools' has no attribute '{name}'")
