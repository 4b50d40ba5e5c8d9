"""Data builders: functions that write datasets (SFT conversations, preference pairs, RL
prompts) and are named from datasets_cfg by `builder: <name>`.

A builder takes keyword args from the YAML (plus `seed`) and returns a `datasets.Dataset`.
Register one with `@register("name")` or add it to BUILDERS.
"""
from __future__ import annotations

from importlib import import_module
from typing import Callable

# name -> "module:function", imported on first use so that optional stages stay optional
BUILDERS: dict[str, str] = {
    "world_pretraining": "chatstack.world.datasets:pretraining_text",
    "world_encyclopedia": "chatstack.world.datasets:encyclopedia",
    "world_qa": "chatstack.world.datasets:qa",
    "world_conversations": "chatstack.world.datasets:conversations",
    "world_arithmetic_conversations": "chatstack.world.datasets:arithmetic_conversations",
    "world_arithmetic_prompts": "chatstack.world.datasets:arithmetic_prompts",
    "world_preferences": "chatstack.world.datasets:preferences",
    "world_questions": "chatstack.world.datasets:questions",
    "identity": "chatstack.builders.identity:identity_conversations",
    "thinking": "chatstack.builders.thinking:thinking_conversations",
    "chat_conversations": "chatstack.builders.chat_formats:chat_conversations",
    "tool_conversations": "chatstack.builders.tools:tool_conversations",
    "tool_prompts": "chatstack.builders.tools:tool_prompts",
    "refusals": "chatstack.builders.refusals:refusal_conversations",
}


def register(name: str) -> Callable:
    def wrap(fn):
        BUILDERS[name] = fn
        return fn
    return wrap


def get_builder(name: str, where: str = "builder") -> Callable:
    target = BUILDERS.get(name)
    if target is None:
        from chatstack.data.loading import DataError
        raise DataError(f"{where}: unknown builder '{name}'; known builders: {', '.join(sorted(BUILDERS))}")
    if callable(target):
        return target
    module, fn = target.split(":")
    return getattr(import_module(module), fn)
