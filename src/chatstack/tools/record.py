"""Which tools a model was trained to call, kept in its folder (`chat_tools.json`).

A tiny model learns its tools from demonstrations, without schemas in the prompt, so the tools
it is given at inference must be exactly the ones of its training data: the same search store
and result count (`k`: two results where training showed one fill a 256-token context), and the
same short system prompt that told it, in training, that tools were there (without it the
assistant answers from memory or refuses). The SFT stage writes the record (`chat_tools`,
`chat_system`); the stages that continue from a model copy it (chatstack.stage.run_stage);
`chatstack chat` / `serve` and the assistant eval read it, so every figure and every user
conversation goes through the same tools with the same options.

    {"tools": [{"name": "search", "store": "world:tiny:0", "k": 1}, "python"],
     "system": "You can use the tools search and python."}
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from chatstack.errors import DataError

RECORD = "chat_tools.json"


def pin_world_seed(tools: list) -> list:
    """A `world:<preset>` search store pinned to the world seed of this run (`world:<preset>:<seed>`):
    the record then searches the same world wherever it is opened."""
    from chatstack.world.datasets import get_world

    pinned = []
    for entry in tools:
        if isinstance(entry, dict) and str(entry.get("store", "")).count(":") == 1 and entry["store"].startswith("world:"):
            preset = entry["store"].split(":", 1)[1] or "tiny"
            entry = {**entry, "store": f"world:{preset}:{get_world(preset).config.seed}"}
        pinned.append(entry)
    return pinned


def parse_tools(tools) -> list:
    """Tool entries from YAML text ('[{name: search, k: 1}, python]', 'search,python') or a list;
    unknown tools or options are a ConfigError here, before any training."""
    if isinstance(tools, str):
        import yaml
        text = tools.strip()
        tools = yaml.safe_load(text) if text.startswith("[") else [t.strip() for t in text.split(",") if t.strip()]
    from chatstack.tools.registry import get_tools
    get_tools([{k: v for k, v in t.items() if k != "store"} if isinstance(t, dict) else t for t in tools])
    return list(tools)


def write_record(model_dir: str | Path, tools, system: str | None) -> dict:
    """Write the record (tools as `parse_tools` takes them)."""
    record = {"tools": pin_world_seed(parse_tools(tools)), "system": system or None}
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    (Path(model_dir) / RECORD).write_text(json.dumps(record, indent=2))
    return record


def read_record(model_dir: str | Path) -> dict | None:
    """The record of a model folder, or None (a model trained without tools)."""
    path = Path(model_dir) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("tools"), list):
        raise DataError(f"{path}: expected {{\"tools\": [...], \"system\": ...}}")
    return record


def carry_record(source_dir: str | Path, output_dir: str | Path) -> bool:
    """Copy the record from the model a stage started from, unless the stage wrote its own."""
    src, dst = Path(source_dir) / RECORD, Path(output_dir) / RECORD
    if not src.is_file() or dst.exists() or not Path(output_dir).is_dir():
        return False
    shutil.copyfile(src, dst)
    return True


def with_system(conversation: list[dict], system: str | None) -> list[dict]:
    """The conversation with the record's system prompt first (unless it has one)."""
    if not system or (conversation and conversation[0]["role"] == "system"):
        return conversation
    return [{"role": "system", "content": system}, *conversation]


def tools_and_system(model_dir: str | Path, tools: str | None = None, system: str | None = None):
    """(tools, system) for talking to a model: `tools` as given ('none' turns them off), else the
    model's record with its system prompt (an explicit `system` wins), else no tools."""
    if tools is not None and tools.strip().lower() in ("none", ""):
        return None, system
    if tools:
        return tools, system
    record = read_record(model_dir)
    if record is None:
        return None, system
    return record["tools"], system or record.get("system")


def latest_final(outputs: str | Path = "outputs") -> Path | None:
    """The newest `outputs/<recipe>/final` (the speedrun's final model), or None."""
    finals = [p for p in Path(outputs).glob("*/final") if p.exists()]
    return max(finals, key=lambda p: p.lstat().st_mtime) if finals else None
