"""Base or chat model: which evals a save_pretrained folder can take.

A base model (the pretrain stage's output) was never taught chat turns, so the suite asks it
completion-style ("Q: ...\\nA:"); a chat model (sft, ppo, grpo, ...) gets the chat template.
The rule is the one `chatstack chat` / `serve` use, read from the folder alone so that the
kind is known before the model is loaded: a folder named after a base stage (a
`checkpoint-N` goes by its parent) or a tokenizer without a chat template is a base model,
any other stage's folder a chat model. `--model_kind` overrides it.
"""
from __future__ import annotations

import json
from pathlib import Path

from chatstack.errors import ConfigError, DataError

KINDS = ("base", "chat")


def detect_kind(model_path: str | Path, override: str | None = None) -> tuple[str, str]:
    """('base' | 'chat', why)."""
    from chatstack.chat import BASE_STAGES
    if override and override != "auto":
        if override not in KINDS:
            raise ConfigError(f"--model_kind must be auto, base or chat, got '{override}'")
        return override, "--model_kind"
    p = Path(model_path).resolve()
    stage = p.parent.name if p.name.startswith("checkpoint-") else p.name
    tok_cfg = p / "tokenizer_config.json"
    has_template = (p / "chat_template.jinja").is_file()
    if not has_template and tok_cfg.is_file():
        try:
            has_template = bool(json.loads(tok_cfg.read_text()).get("chat_template"))
        except ValueError:
            pass
    if not has_template:
        return "base", "its tokenizer has no chat template"
    if stage in BASE_STAGES:
        return "base", f"folder '{stage}' is a base stage's output (as `chatstack chat` reads it)"
    return "chat", f"folder '{stage}' is not a base stage ({', '.join(BASE_STAGES)}): a chat stage's output"


def check_language_model(model_path: str | Path) -> None:
    """A DataError unless the folder holds a causal LM (a reward model's folder looks alike)."""
    p = Path(model_path)
    if not (p / "config.json").is_file():
        raise DataError(f"--model {model_path}: not a save_pretrained folder (no config.json)")
    archs = json.loads((p / "config.json").read_text()).get("architectures") or []
    if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise DataError(f"--model {model_path}: a {', '.join(archs)} is not a language model "
                        "(a reward model?); evaluate a pretrain, sft, ppo or grpo output")
