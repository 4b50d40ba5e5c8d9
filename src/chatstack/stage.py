"""What every training stage shares: resume from the last checkpoint, save a folder that
loads with transformers alone, and write metrics.json last (its presence marks the stage
complete for the speedrun)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from transformers import GenerationConfig
from transformers.trainer_utils import get_last_checkpoint

from chatstack.errors import DataError


def last_checkpoint(output_dir: str) -> str | None:
    return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None


def require_chat_template(tokenizer, where: str) -> None:
    template = tokenizer.chat_template or ""
    if "<|im_end|>" not in tokenizer.get_vocab() or not template:
        raise DataError(f"{where}: the tokenizer has no chat template / <|im_end|> token; "
                        "train it with `chatstack tokenizer` (it adds both)")
    if "{% generation %}" not in template.replace("{%- generation %}", "{% generation %}"):
        raise DataError(f"{where}: the chat template lacks {{% generation %}} markers, needed for assistant-only loss")


def save_chat_model(model, tokenizer, output_dir: str) -> None:
    """save_pretrained with a generation config that stops at the end of the assistant turn."""
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    eos = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                     max_new_tokens=64).save_pretrained(output_dir)


def write_metrics(output_dir: str, metrics: dict, log_history: list | None = None, keep_checkpoints: bool = False) -> None:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if log_history is not None:
        (out / "log_history.json").write_text(json.dumps(log_history))
    if not keep_checkpoints:
        _remove_checkpoints(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))


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
