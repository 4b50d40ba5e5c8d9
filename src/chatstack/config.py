"""YAML -> stage config dataclasses, in the style of TRL's TrlParser.

A stage config is one dataclass that extends the matching transformers/TRL config
(TrainingArguments, SFTConfig, RewardConfig, GRPOConfig), so every knob of those is
available in YAML. Values come from, in order: the dataclass defaults, the YAML file (and
the files it `extends`), then `--key value` on the command line. Unknown keys are errors
that name the file and the valid keys. This is the only config code chatstack writes:
argument parsing itself is transformers' HfArgumentParser.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from transformers import HfArgumentParser

from chatstack.errors import ConfigError

T = TypeVar("T")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; `extends: other.yaml` (relative to this file) is merged under it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    base = data.pop("extends", None)
    if base:
        merged = read_yaml(path.parent / base)
        merged.update(data)
        data = merged
    return data


def valid_keys(cls) -> list[str]:
    return sorted(f.name for f in dataclasses.fields(cls) if f.init)


def check_keys(cls, keys, where: str) -> None:
    valid = valid_keys(cls)
    unknown = [k for k in keys if k not in valid]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, valid, n=3)
            hints.append(f"'{k}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise ConfigError(f"{where}: unknown key(s) for {cls.__name__}: {'; '.join(hints)}.\n"
                          f"Valid keys: {', '.join(valid)}")


def parse_config(cls: type[T], config: str | Path | None = None, args: list[str] | None = None,
                 **overrides: Any) -> T:
    """Build `cls` from a YAML file, then command-line style `args`, then keyword overrides."""
    values: dict[str, Any] = {}
    if config is not None:
        values = read_yaml(config)
        check_keys(cls, values, str(config))
    check_keys(cls, overrides, "overrides")
    values.update(overrides)
    parser = HfArgumentParser(cls)
    parser.set_defaults(**values)
    required = [a for a in parser._actions if a.required and a.dest in values]
    for action in required:  # a value given in YAML satisfies a required argument
        action.required = False
    cfg, remaining = parser.parse_args_into_dataclasses(args=list(args or []), return_remaining_strings=True)
    if remaining:
        keys = [a[2:].split("=")[0] for a in remaining if a.startswith("--")]
        check_keys(cls, keys or remaining, "command line")
        raise ConfigError(f"command line: could not use {remaining}")
    check_ranges(cfg, str(config or "config"))
    return cfg


RANGES = {  # key: (lowest allowed, what it must be), checked on any stage config that has the key
    "learning_rate": (0.0, "> 0"), "per_device_train_batch_size": (1, ">= 1"), "per_device_eval_batch_size": (1, ">= 1"),
    "gradient_accumulation_steps": (1, ">= 1"), "num_train_epochs": (0.0, "> 0"), "warmup_ratio": (0.0, ">= 0"),
    "weight_decay": (0.0, ">= 0"), "max_grad_norm": (0.0, ">= 0"),
}


def check_ranges(cfg, where: str) -> None:
    """Values out of range are errors now, naming the key, not after the model and data have loaded."""
    out = getattr(cfg, "output_dir", None)
    if isinstance(out, str) and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"{where}: output_dir {out} is a file, not a folder")
    for key, (low, rule) in RANGES.items():
        value = getattr(cfg, key, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            strict = rule.startswith(">") and not rule.startswith(">=")
            if value < low or (strict and value <= low):
                raise ConfigError(f"{where}: {key} must be {rule}, got {value}")


def split_cli(argv: list[str]) -> tuple[str | None, list[str]]:
    """Pull `--config X` out of argv; the rest are `--key value` overrides."""
    argv = list(argv)
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise ConfigError("--config needs a path to a YAML file")
        path = argv[i + 1]
        del argv[i:i + 2]
        return path, argv
    return None, argv


def parse_cli(prog: str, description: str | None, classes: tuple[type, ...], argv: list[str]) -> tuple:
    """The options of a command that is not a Trainer stage (chat, generate, eval, ...): one
    dataclass instance per class in `classes`, from `--key value` with transformers'
    HfArgumentParser; an unknown flag is a ConfigError naming the nearest valid one."""
    import argparse
    parser = HfArgumentParser(classes, prog=prog, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    *parsed, remaining = parser.parse_args_into_dataclasses(args=list(argv), return_remaining_strings=True)
    if remaining:
        valid = sorted(a.option_strings[-1] for a in parser._actions if a.option_strings)
        first = remaining[0].split("=")[0]
        close = difflib.get_close_matches(first, valid, n=2)
        raise ConfigError(f"unknown option {first}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                          + f"; see {prog} --help")
    return tuple(parsed)
