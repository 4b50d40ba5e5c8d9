"""The builders a dataset spec can name (`builder: <name>` in datasets_cfg, `chatstack build
<name>`): name -> "module:function", imported on first use so that optional stages stay
optional. The functions live in chatstack.builders and chatstack.world; a builder takes
keyword args from the YAML (plus `seed`) and returns a `datasets.Dataset`. Add one here.

The table lives beside the loader, not in chatstack.builders, because builders load data
themselves (chatstack.data.load_data): the loader names them, it does not import them.
"""
from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from chatstack.errors import DataError

BUILDERS: dict[str, str] = {
    "world_pretraining": "chatstack.builders.midtraining:pretraining_mix",
    "world_encyclopedia": "chatstack.world.datasets:encyclopedia",
    "world_qa": "chatstack.world.datasets:qa",
    "world_conversations": "chatstack.world.datasets:conversations",
    "world_arithmetic_conversations": "chatstack.world.datasets:arithmetic_conversations",
    "world_arithmetic_prompts": "chatstack.world.datasets:arithmetic_prompts",
    "world_preferences": "chatstack.world.datasets:preferences",
    "world_questions": "chatstack.builders.ppo_prompts:questions",
    "identity": "chatstack.builders.identity:identity_conversations",
    "thinking": "chatstack.builders.thinking:thinking_conversations",
    "thinking_prompts": "chatstack.builders.thinking:thinking_prompts",
    "chat_conversations": "chatstack.builders.chat_formats:chat_conversations",
    "tool_conversations": "chatstack.builders.tools:tool_conversations",
    "tool_prompts": "chatstack.builders.tools:tool_prompts",
    "refusals": "chatstack.builders.refusals:refusal_conversations",
    "hh_preferences": "chatstack.builders.real_data:hh_preferences",
    "gsm8k_prompts": "chatstack.builders.real_data:gsm8k_prompts",
    "qa_facts": "chatstack.builders.real_data:qa_facts",
}


def get_builder(name: str, where: str = "builder") -> Callable:
    target = BUILDERS.get(name)
    if target is None:
        raise DataError(f"{where}: unknown builder '{name}'; known builders: {', '.join(sorted(BUILDERS))}")
    module, fn = target.split(":")
    return getattr(import_module(module), fn)
