"""Reading a YAML config file: its own module so that data loading reads dataset specs without
importing chatstack.config (which checks dataset specs with chatstack.data.loading)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chatstack.errors import ConfigError


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; `extends: other.yaml` (relative to this file) is merged under it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:  # one line: file:line:column and the problem
        mark = getattr(e, "problem_mark", None)
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        why = " ".join(f"{getattr(e, 'context', '') or ''} {getattr(e, 'problem', '') or e}".split())
        raise ConfigError(f"{at}: invalid YAML: {why}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    base = data.pop("extends", None)
    if base:
        merged = read_yaml(path.parent / base)
        merged.update(data)
        data = merged
    return data
