"""Checkpoints a kill cannot corrupt, and the last complete one to resume from.

The Trainer writes `checkpoint-N/` in place, so a kill during a save leaves a half-written
folder that the next run would resume from. `AtomicCheckpoints` (mixed into a Trainer)
writes each checkpoint under `<output_dir>/.staging/` and renames it into place once every
process has written its part. `last_checkpoint` only counts a checkpoint whose state file,
written last, is there, so a partial save left by an older, in-place writer is skipped too.

`check_model_dir` and `check_checkpoint` read what a command will load (config, safetensors
headers, tokenizer files) before any work, so a missing, truncated or corrupt file is one
line naming it instead of a traceback from safetensors or tokenizers minutes later.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from chatstack.errors import ConfigError, DataError

STAGING = ".staging"
TRAINER_STATE = "trainer_state.json"  # the Trainer saves it after the weights, optimizer and RNG states


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete `checkpoint-N` in output_dir (its trainer state written), ignoring .staging/."""
    out = Path(output_dir)
    if not out.is_dir():
        return None
    steps = []
    for p in out.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        tail = p.name[len(PREFIX_CHECKPOINT_DIR) + 1:]
        if p.is_dir() and tail.isdigit() and (p / TRAINER_STATE).is_file():
            steps.append((int(tail), str(p)))
    return max(steps)[1] if steps else None


class AtomicCheckpoints:
    """Trainer mixin: every checkpoint is staged, then published in one rename (see the module doc)."""

    _staging = False

    def _get_output_dir(self, trial) -> str:
        out = super()._get_output_dir(trial)
        return os.path.join(out, STAGING) if self._staging else out

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = super()._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staged, final = os.path.join(run_dir, STAGING, name), os.path.join(run_dir, name)
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)  # every process writes its part under .staging/
        finally:
            self._staging = False
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            publish(staged, final)
            if self.state.best_model_checkpoint and STAGING in self.state.best_model_checkpoint:
                self.state.best_model_checkpoint = self.state.best_model_checkpoint.replace(
                    os.path.join(run_dir, STAGING), run_dir)
            rotate_checkpoints(output_dir=run_dir, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint)
        self.accelerator.wait_for_everyone()
        shutil.rmtree(os.path.join(run_dir, STAGING), ignore_errors=True)  # also on a node that does not publish


def drop_staging(output_dir: str | Path) -> None:
    """Remove what a save interrupted by a kill left under .staging/ (call on the main process)."""
    shutil.rmtree(Path(output_dir) / STAGING, ignore_errors=True)


def publish(staged: str, final: str) -> None:
    """Make a fully written checkpoint visible under its final name in one rename."""
    for root, _, files in os.walk(staged):
        for f in files:
            _fsync(os.path.join(root, f))
    if os.path.exists(final):  # the same step saved again after resuming from an older checkpoint
        old = final + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, final)
    _fsync(os.path.dirname(final), directory=True)


def _fsync(path: str, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model")  # one of these makes a loadable tokenizer


def is_hub_id(name: str) -> bool:
    """`owner/name` or `name` as the Hub spells repos; a local-looking path (./x, /x, a/b/c) is not one."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def check_model_dir(path: str | Path, where: str, weights: bool = True, tokenizer: bool = True) -> None:
    """A save_pretrained folder a command will load: its config, weights and tokenizer files
    are there and readable. A name that is not a local folder but a valid Hub id is left to
    from_pretrained (it may be downloaded)."""
    p = Path(path).expanduser()
    if not p.exists():
        if is_hub_id(str(path)):
            return
        raise ConfigError(f"{where}: {path} not found (expected a save_pretrained folder or a Hub id)")
    if p.is_file() and not weights and p.suffix == ".json":  # a bare tokenizer.json (curate counts tokens with one)
        read_json(p, where)
        return
    if not p.is_dir():
        raise ConfigError(f"{where}: {path} is a file, not a save_pretrained folder")
    if weights:
        adapter = (p / "adapter_config.json").is_file()
        if not adapter:
            read_json(p / "config.json", f"{where}: {path}")
        shards = sorted(p.glob("*.safetensors"))
        if not shards and not any((p / f).is_file() for f in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
            raise DataError(f"{where}: {path} has no weights (model.safetensors); is the stage that writes it finished?")
        for shard in shards:
            check_safetensors(shard)
    if tokenizer:
        if not any((p / f).is_file() for f in TOKENIZER_FILES):
            raise DataError(f"{where}: {path} has no tokenizer (tokenizer.json)")
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (p / name).is_file():
                read_json(p / name, where)


def check_checkpoint(path: str | Path, where: str) -> None:
    """A checkpoint to resume from: a folder with its trainer state (written last) and readable weights."""
    p = Path(path)
    if not p.is_dir():
        raise ConfigError(f"{where}: checkpoint {path} not found")
    if not (p / TRAINER_STATE).is_file():
        raise DataError(f"{where}: {path} is not a complete checkpoint (no {TRAINER_STATE}: a save was interrupted?)")
    read_json(p / TRAINER_STATE, where)
    for shard in sorted(p.glob("*.safetensors")):
        check_safetensors(shard)


def check_safetensors(path: Path) -> None:
    """Read a safetensors header: a truncated or corrupt file fails here, naming the file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy"):
            pass
    except (SafetensorError, OSError) as e:
        raise DataError(f"{path}: truncated or corrupt safetensors file ({e}); re-run the stage that wrote it") from None


def read_json(path: Path, where: str) -> dict:
    if not path.is_file():
        raise DataError(f"{where}: no {path.name} in {path.parent}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: truncated or corrupt JSON ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
