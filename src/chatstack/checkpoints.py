"""Checkpoints a kill cannot corrupt, and the last complete one to resume from.

The Trainer writes `checkpoint-N/` in place, so a kill during a save leaves a half-written
folder that the next run would resume from. `AtomicCheckpoints` (mixed into a Trainer)
writes each checkpoint under `<output_dir>/.staging/` and renames it into place once every
process has written its part. `last_checkpoint` only counts a checkpoint whose state file,
written last, is there, so a partial save left by an older, in-place writer is skipped too.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

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
