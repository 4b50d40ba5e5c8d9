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
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from transformers import HfArgumentParser

from chatstack.errors import ConfigError
from chatstack.yamlfile import read_yaml  # noqa: F401 (chatstack.config.read_yaml, as callers import it)

T = TypeVar("T")


def valid_keys(cls) -> list[str]:
    return sorted(f.name for f in dataclasses.fields(cls) if f.init)


def check_keys(cls, keys, where: str) -> None:
    check_names(keys, valid_keys(cls), where, cls.__name__)


def check_names(keys, valid, where: str, what: str) -> None:
    """Unknown keys of a mapping are a ConfigError naming the nearest valid ones."""
    unknown = [k for k in keys if k not in valid]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), list(valid), n=3)
            hints.append(f"'{k}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise ConfigError(f"{where}: unknown key(s) for {what}: {'; '.join(hints)}.\n"
                          f"Valid keys: {', '.join(sorted(valid))}")


def check_nested(cfg, where: str) -> None:
    """The nested mappings of a config against what they become (peft's LoraConfig is checked by
    SFTStageConfig itself): GPT2Config overrides, the model preset, the identity to evaluate, tools."""
    model_config = getattr(cfg, "model_config", None)
    if model_config is not None:
        from transformers import GPT2Config
        if not isinstance(model_config, dict):
            raise ConfigError(f"{where}: model_config must be a mapping of GPT2Config keys, got {model_config!r}")
        check_names(model_config, GPT2Config().to_dict(), f"{where}: model_config", "GPT2Config")
    preset = getattr(cfg, "model_preset", None)
    if isinstance(preset, str):
        from chatstack.model import PRESETS
        if preset not in PRESETS:
            close = difflib.get_close_matches(preset, list(PRESETS), n=1)
            raise ConfigError(f"{where}: model_preset '{preset}' unknown" + (f" (did you mean {close[0]}?)" if close else "")
                              + f"; presets: {', '.join(PRESETS)}")
    block, positions = getattr(cfg, "block_size", None), None
    if isinstance(preset, str) and isinstance(block, int):  # pretraining builds its model: its positions are known now
        from chatstack.model import PRESETS
        positions = (model_config or {}).get("n_positions") or PRESETS[preset]["n_positions"]
        if block > positions:
            raise ConfigError(f"{where}: block_size {block} is longer than the model's context ({positions} positions "
                              f"of preset {preset}); set block_size <= {positions} or model_config: {{n_positions: ...}}")
    identity = getattr(cfg, "eval_identity", None)
    if isinstance(identity, dict):
        check_names(identity, ("name", "maker"), f"{where}: eval_identity", "the identity eval")


def parse_config(cls: type[T], config: str | Path | None = None, args: list[str] | None = None,
                 **overrides: Any) -> T:
    """Build `cls` from a YAML file, then command-line style `args`, then keyword overrides.
    Keys, types and ranges are checked here; under a CLI command (`cli_checks`) the paths too."""
    where = str(config or "command line")
    values: dict[str, Any] = {}
    if config is not None:
        values = read_yaml(config)
        check_keys(cls, values, str(config))
    check_keys(cls, overrides, "overrides")
    values.update(overrides)
    parser = _parser(cls, where)
    parser.set_defaults(**values)
    required = [a for a in parser._actions if a.required and a.dest in values]
    for action in required:  # a value given in YAML satisfies a required argument
        action.required = False
    cfg, remaining = _build(parser, where, list(args or []))
    if remaining:
        keys = [a[2:].split("=")[0] for a in remaining if a.startswith("--")]
        check_keys(cls, keys or remaining, "command line")
        raise ConfigError(f"command line: could not use {remaining}")
    check_ranges(cfg, where)
    check_nested(cfg, where)
    setup_tracking(cfg, where)
    if _CLI_CHECKS:
        check_inputs(cfg, where)
    return cfg


def _parser(classes, where: str, **kwargs) -> HfArgumentParser:
    """HfArgumentParser whose errors (a bad type or choice, a missing argument) are ConfigErrors, not usage + exit."""
    parser = HfArgumentParser(classes, allow_abbrev=False, **kwargs)  # `--max_new_token` is a typo, not a prefix

    def error(message: str):
        raise ConfigError(f"{where}: {message}")
    parser.error = error
    return parser


def _build(parser: HfArgumentParser, where: str, args: list[str]) -> list:
    """The dataclasses; a ValueError from their own checks (TrainingArguments.__post_init__) is a ConfigError."""
    try:
        return parser.parse_args_into_dataclasses(args=args, return_remaining_strings=True)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {' '.join(str(e).split())}") from e


# key: (lowest, highest, what it must be), checked on any config that has the key (None: no bound)
RANGES = {
    "learning_rate": (0.0, None, "> 0"), "per_device_train_batch_size": (1, None, ">= 1"),
    "per_device_eval_batch_size": (1, None, ">= 1"), "gradient_accumulation_steps": (1, None, ">= 1"),
    "num_train_epochs": (0.0, None, "> 0"), "warmup_ratio": (0.0, 1.0, "in [0, 1]"), "weight_decay": (0.0, None, ">= 0"),
    "max_grad_norm": (0.0, None, ">= 0"), "eval_fraction": (0.0, 1.0, "in [0, 1)"), "test_size": (0.0, 1.0, "in (0, 1)"),
    "max_length": (1, None, ">= 1"), "block_size": (1, None, ">= 1"), "max_completion_length": (1, None, ">= 1"),
    "max_new_tokens": (1, None, ">= 1"), "response_length": (1, None, ">= 1"),
    "temperature": (0.0, None, ">= 0"), "top_k": (0, None, ">= 0"), "top_p": (0.0, 1.0, "in (0, 1]"),
    "num_samples": (1, None, ">= 1"), "vocab_size": (1, None, ">= 1"), "eval_batch_size": (1, None, ">= 1"),
    "total_episodes": (1, None, ">= 1"), "max_steps": (-1, None, ">= 1, or -1 for epochs"),
    "port": (1, 65535, "in [1, 65535]"),
}


def check_ranges(cfg, where: str) -> None:
    """Values out of range are errors now, naming the key, not after the model and data have loaded."""
    out = getattr(cfg, "output_dir", None)
    if isinstance(out, str) and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"{where}: output_dir {out} is a file, not a folder")
    for key, (low, high, rule) in RANGES.items():
        value = getattr(cfg, key, None)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        strict_low = rule.startswith("> ") or rule.startswith("in (")
        strict_high = rule.endswith(")")
        bad = (value < low or (strict_low and value == low) or (high is not None and value > high)
               or (strict_high and value == high) or (key == "max_steps" and value == 0))
        if bad:
            raise ConfigError(f"{where}: {key} must be {rule}, got {value}")


TRACKERS = {"trackio": "trackio", "tensorboard": "tensorboard"}  # report_to name: the package it needs (extra: track)


def setup_tracking(cfg, where: str) -> None:
    """`report_to: trackio` / `tensorboard`, offline and local. Trackio keeps a recipe's runs in
    outputs/<recipe>/trackio (beside the stages' folders; TRACKIO_DIR overrides it, and trackio
    reads it once, when first imported), under the recipe's name as project unless `project` is
    set. TensorBoard writes <output_dir>/runs/ (transformers' default). A tracker that is not
    installed is a ConfigError now, not an ImportError when the Trainer starts."""
    import importlib.util

    report = getattr(cfg, "report_to", None)
    report = [report] if isinstance(report, str) else list(report or [])
    for name in report:
        package = TRACKERS.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"{where}: report_to {name} needs the {package} package: pip install -e '.[track]'")
    out = getattr(cfg, "output_dir", None)
    if "trackio" in report and isinstance(out, str):
        recipe_dir = Path(out).resolve().parent
        os.environ.setdefault("TRACKIO_DIR", str(recipe_dir / "trackio"))
        if getattr(cfg, "project", None) == "huggingface":  # TrainingArguments' default
            cfg.project = recipe_dir.name


_CLI_CHECKS = False


@contextmanager
def cli_checks():
    """While a `chatstack` command runs, parse_config and parse_cli also check the paths a
    config names (check_inputs); library callers and tests may build configs for paths to come."""
    global _CLI_CHECKS
    before, _CLI_CHECKS = _CLI_CHECKS, True
    try:
        yield
    finally:
        _CLI_CHECKS = before


MODEL_KEYS = ("model_name_or_path", "reward_model_path", "model")  # a save_pretrained folder (or a Hub id)
TOKENIZER_KEYS = ("tokenizer_name_or_path", "tokenizer")
DATASET_KEYS = ("dataset", "eval_dataset")  # datasets_cfg names or spec files
FILE_KEYS = ("chat_template",)  # files that must exist
OUTPUT_FILE_KEYS = ("output",)  # a file to write: not a folder, its folder creatable


def check_inputs(cfg, where: str) -> None:
    """What a config points at, checked before any work: input models, tokenizers, datasets
    and files exist and are readable; outputs are folders (or files) that can be created.
    A dry run reads nothing but the sizes, so only its output is checked."""
    from chatstack.checkpoints import check_checkpoint, check_model_dir

    values = {f.name: getattr(cfg, f.name, None) for f in dataclasses.fields(cfg)}
    for key, value in values.items():
        if not isinstance(value, str) or not value or getattr(cfg, "dry_run", False) and key != "output_dir":
            continue
        at = f"{where}: {key}"
        if key in MODEL_KEYS:
            check_model_dir(value, at)
        elif key in TOKENIZER_KEYS:
            check_model_dir(value, at, weights=False)
        elif key in DATASET_KEYS:
            from chatstack.data.loading import check_spec
            check_spec(value, at)
        elif key in FILE_KEYS and not Path(value).is_file():
            raise ConfigError(f"{at}: file not found: {value}")
        elif key == "resume_from_checkpoint" and value.lower() not in ("true", "false"):
            check_checkpoint(value, at)
        elif key == "output_dir":
            check_creatable(value, at, folder=True)
        elif key in OUTPUT_FILE_KEYS:
            check_creatable(value, at, folder=False)
    check_context(cfg, where)


def check_context(cfg, where: str) -> None:
    """A max_length past the model's positions would index out of its position embedding mid-training."""
    length, model = getattr(cfg, "max_length", None), getattr(cfg, "model_name_or_path", None)
    config = Path(model or "") / "config.json"
    if not isinstance(length, int) or not isinstance(model, str) or not config.is_file():
        return
    import json
    values = json.loads(config.read_text())
    positions = values.get("n_positions") or values.get("max_position_embeddings")
    if isinstance(positions, int) and length > positions:
        raise ConfigError(f"{where}: max_length {length} is longer than the context of {model} ({positions} positions); "
                          f"set max_length <= {positions}")


def check_creatable(path: str, where: str, folder: bool) -> None:
    """An output: an existing folder (or file), or one that can be created under a writable folder."""
    p = Path(path).expanduser()
    if p.exists():
        if folder != p.is_dir():
            want, got = ("folder", "file") if folder else ("file", "folder")
            raise ConfigError(f"{where}: {path} is a {got}, not a {want}")
        return
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{where}: cannot create {path}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: cannot create {path}: {parent} is not writable")


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
    HfArgumentParser; an unknown flag is a ConfigError naming the nearest valid one; a bad
    value or a missing model folder is one too (under a CLI command)."""
    import argparse
    where = "command line"  # the CLI's error line already names the command
    parser = _parser(classes, where, prog=prog, description=description,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    *parsed, remaining = _build(parser, where, list(argv))
    if remaining:
        valid = sorted(a.option_strings[0] for a in parser._actions if a.option_strings)
        first = remaining[0].split("=")[0]
        close = difflib.get_close_matches(first, valid, n=2)
        raise ConfigError(f"unknown option {first}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                          + f"; see {prog} --help")
    for options in parsed:
        check_ranges(options, where)
        if _CLI_CHECKS:
            check_inputs(options, where)
    return tuple(parsed)
