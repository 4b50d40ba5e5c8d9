"""The skeleton every training stage runs on: pretrain, sft, reward, grpo and ppo.

A stage module defines its config (a dataclass extending a transformers/TRL config) and
`fit(cfg, resume_from) -> Trained`, which builds the model, data and trainer and trains.
Everything else is done here, the same way for every stage:

- `stage_main(Config, train, argv)`, the CLI entry: `--config X.yaml` plus `--key value`
  overrides through chatstack.config.parse_config, so a bad key or value is a ConfigError
  before anything is loaded;
- `run_stage(cfg, fit)`: seed, precision (chatstack.hardware), the checkpoint to resume
  from (`resume_from_checkpoint`, else the last complete one in output_dir), `fit`; then,
  on the main process, the save_pretrained folder (it loads with transformers alone),
  log_history.json, the tool record of the model it started from (chatstack.tools.record)
  and metrics.json, written last: its presence marks the stage complete
  for the speedrun. The checkpoints are removed just before it unless the stage keeps them;
- `forget_finished_run`: what `speedrun --force` clears before it reruns a finished stage.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from transformers import GenerationConfig, set_seed

from chatstack.checkpoints import last_checkpoint
from chatstack.config import parse_config, split_cli
from chatstack.engine import Engine
from chatstack.errors import DataError
from chatstack.hardware import resolve_bf16

__all__ = ["Trained", "forget_finished_run", "last_checkpoint", "read_metrics", "require_chat_template", "run_stage",
           "save_chat_model", "save_generation_config", "stage_main", "write_metrics"]

Config = TypeVar("Config")


@dataclass
class Trained:
    """What a stage's `fit` hands back: its metrics, how to save the model, the training log."""

    metrics: dict
    save: Callable[[str], None] = field(repr=False)  # writes the model folder; called on the main process only
    log_history: list = field(default_factory=list, repr=False)
    is_main: bool = True  # this process writes the outputs (the first of a distributed run)
    keep_checkpoints: bool = False  # pretraining keeps its (atomic) checkpoints; the other stages clear them


def stage_main(cfg_cls: type[Config], train: Callable[[Config], dict], argv: list[str]) -> int:
    """`chatstack <stage> [--config X.yaml] [--key value ...]`: parse the whole config, then train."""
    config, rest = split_cli(argv)
    train(parse_config(cfg_cls, config, rest))
    return 0


def run_stage(cfg, fit: Callable[..., Trained]) -> dict:
    """Train a stage: seed, precision, resume point, `fit(cfg, resume_from)`, then the model
    folder and metrics.json last (main process). Returns (and prints) the metrics."""
    set_seed(cfg.seed)
    resolve_bf16(cfg)
    start = time.time()
    resume_from = cfg.resume_from_checkpoint or last_checkpoint(cfg.output_dir)
    done = fit(cfg, resume_from)
    if done.is_main:
        done.save(cfg.output_dir)
        from chatstack.tools.record import carry_record
        if getattr(cfg, "model_name_or_path", None):  # the tools a model was trained with go where it goes
            carry_record(cfg.model_name_or_path, cfg.output_dir)
    metrics = {**done.metrics, "resumed_from": resume_from, "seconds": round(time.time() - start, 1)}
    if done.is_main:
        write_metrics(cfg.output_dir, metrics, done.log_history, keep_checkpoints=done.keep_checkpoints)
        print(json.dumps(metrics, indent=2))
    return metrics


def require_chat_template(tokenizer, where: str) -> None:
    template = tokenizer.chat_template or ""
    if "<|im_end|>" not in tokenizer.get_vocab() or not template:
        raise DataError(f"{where}: the tokenizer has no chat template / <|im_end|> token; "
                        "train it with `chatstack tokenizer` (it adds both)")
    if "{% generation %}" not in template.replace("{%- generation %}", "{% generation %}"):
        raise DataError(f"{where}: the chat template lacks {{% generation %}} markers, needed for assistant-only loss")


def adopt_chat_format(model, tokenizer, where: str) -> list[str]:
    """Make any causal LM's tokenizer speak the project's chat format, so a post-training stage takes
    GPT-2, Llama, Qwen or SmolLM checkpoints as they come: the chat and tool special tokens when the
    vocabulary lacks them (the embeddings resized, new rows at the mean of the old ones), a pad
    token, <|im_end|> as the end of a turn, and the project's template when the tokenizer has none
    or one without the {% generation %} markers that assistant-only loss needs. Returns (and prints)
    what it changed; nothing for a chatstack tokenizer."""
    from chatstack.tokenizer import CHAT_TOKENS, EOS, PAD, TOOL_TOKENS, default_chat_template

    changes = []
    vocab = tokenizer.get_vocab()
    # a tokenizer that already speaks ChatML keeps its vocabulary (a resize would make PEFT save whole
    # embedding matrices with every adapter); one that does not gets the tool tokens with the chat ones
    missing = [t for t in CHAT_TOKENS if t not in vocab]
    missing += [t for t in TOOL_TOKENS if t not in vocab] if missing else []
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)
        changes.append(f"added special tokens {missing}")
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD})
        changes.append(f"added pad token {PAD}")
    if tokenizer.eos_token != EOS:
        changes.append(f"eos token {tokenizer.eos_token!r} -> {EOS!r} (the end of an assistant turn)")
        tokenizer.eos_token = EOS
    template = (tokenizer.chat_template or "").replace("{%- generation %}", "{% generation %}")
    if "{% generation %}" not in template:
        tokenizer.chat_template = default_chat_template()
        changes.append("chat template set to chatstack's (ChatML with tools and generation markers)"
                       + (", replacing one without generation markers" if template else ""))
    n_embed = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > n_embed:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        changes.append(f"token embeddings resized {n_embed} -> {len(tokenizer)}")
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    for change in changes:
        print(f"{where}: {change}")
    return changes


def save_generation_config(tokenizer, output_dir: str) -> None:
    """generation_config.json: generate() stops at the end of a turn or of a document, after
    64 new tokens by default."""
    eos = Engine(None, tokenizer).stop_ids(chat=True)
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                     max_new_tokens=64).save_pretrained(output_dir)


def save_chat_model(model, tokenizer, output_dir: str) -> None:
    """save_pretrained with a generation config that stops at the end of the assistant turn."""
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    save_generation_config(tokenizer, output_dir)


def write_metrics(output_dir: str, metrics: dict, log_history: list | None = None, keep_checkpoints: bool = False) -> None:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if log_history is not None:
        (out / "log_history.json").write_text(json.dumps(log_history))
    if not keep_checkpoints:
        _remove_checkpoints(out)
    tmp = out / "metrics.json.partial"  # renamed into place: a kill mid-write leaves no metrics.json to mark the stage done
    tmp.write_text(json.dumps(metrics, indent=2))
    tmp.replace(out / "metrics.json")


def forget_finished_run(output_dir: str) -> None:
    """Before a forced rerun of a finished stage: drop its metrics.json and checkpoints, or
    the trainer resumes at the old run's last step (a no-op, or a shape error when the
    tokenizer changed). An interrupted rerun still resumes: metrics.json is gone by then."""
    out = Path(output_dir)
    (out / "metrics.json").unlink(missing_ok=True)
    _remove_checkpoints(out)


def _remove_checkpoints(out: Path) -> None:
    for ckpt in out.glob("checkpoint-*"):
        shutil.rmtree(ckpt, ignore_errors=True)


def read_metrics(output_dir: str) -> dict | None:
    path = Path(output_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None
