"""Resume after `kill -9`: a pretrain subprocess is SIGKILLed while it writes a checkpoint,
the previous checkpoint stays usable, and the resumed run ends where an uninterrupted run
ends (loss within 1e-4; on one machine it is bit-for-bit the same).

The kill lands inside the save deterministically: the killed process runs with torch.save
wrapped to announce and then stall while writing the optimizer state of checkpoint-8, after
the model weights of that checkpoint are already on disk (what a slow disk or a big model
makes likely in real runs)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatstack.checkpoints import last_checkpoint
from chatstack.config import parse_config
from chatstack.pretrain import PretrainConfig, train

REPO = Path(__file__).resolve().parents[1]
MICRO = REPO / "recipes" / "micro"
STEPS, SAVE = 12, 4
ARGS = ["--max_steps", str(STEPS), "--save_steps", str(SAVE), "--eval_steps", str(SAVE), "--logging_steps", "1",
        "--save_total_limit", "2", "--sample_max_new_tokens", "2", "--disable_tqdm", "true"]

STALL_IN_SAVE = r"""
import os, sys, time, torch
flag, stall_at = sys.argv[1], sys.argv[2]
real_save = torch.save
def save(obj, f, *a, **k):
    path = str(f)
    if stall_at in path and path.endswith("optimizer.pt"):
        open(flag, "w").write(path)
        time.sleep(600)          # SIGKILLed here, mid-checkpoint
    return real_save(obj, f, *a, **k)
torch.save = save
from chatstack.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def micro_tokenizer(tmp_path_factory) -> Path:
    from chatstack.tokenizer import TokenizerConfig, train_tokenizer
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(parse_config(TokenizerConfig, MICRO / "tokenizer.yaml", ["--output_dir", str(out)]))
    return out


def pretrain_args(tok: Path, out: Path) -> list[str]:
    return ["pretrain", "--config", str(MICRO / "pretrain.yaml"), "--tokenizer_name_or_path", str(tok),
            "--output_dir", str(out), *ARGS]


def losses(out: Path) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in json.loads((out / "log_history.json").read_text()) if "loss" in h}


def test_sigkill_during_save_then_resume_matches_uninterrupted_run(micro_tokenizer, tmp_path):
    ref_out, out = tmp_path / "reference", tmp_path / "killed"
    ref = train(parse_config(PretrainConfig, MICRO / "pretrain.yaml", pretrain_args(micro_tokenizer, ref_out)[3:]))

    flag = tmp_path / "in_save"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", STALL_IN_SAVE, str(flag), f"checkpoint-{2 * SAVE}",
                             *pretrain_args(micro_tokenizer, out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not flag.exists():
        if proc.poll() is not None:
            pytest.fail(f"pretrain exited ({proc.returncode}) before checkpoint-{2 * SAVE}: {proc.stderr.read()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail("pretrain did not reach its second checkpoint in 120 s")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # the interrupted save is invisible; the previous checkpoint is complete and is what resumes
    staged = out / ".staging" / f"checkpoint-{2 * SAVE}"
    assert (staged / "model.safetensors").exists() and not (staged / "optimizer.pt").exists()
    assert not (out / f"checkpoint-{2 * SAVE}").exists()
    assert last_checkpoint(out) == str(out / f"checkpoint-{SAVE}")
    assert not (out / "metrics.json").exists()

    resumed = train(parse_config(PretrainConfig, MICRO / "pretrain.yaml", pretrain_args(micro_tokenizer, out)[3:]))
    assert resumed["resumed_from"] == str(out / f"checkpoint-{SAVE}")
    assert not (out / ".staging").exists()
    ref_losses, got = losses(ref_out), losses(out)
    assert sorted(got) == list(range(1, STEPS + 1))  # the curve continues where it stopped
    for step in range(SAVE + 1, STEPS + 1):
        assert got[step] == pytest.approx(ref_losses[step], abs=1e-4), step
    assert resumed["eval_loss"] == pytest.approx(ref["eval_loss"], abs=1e-4)
    assert {p.name for p in out.glob("checkpoint-*")} == {f"checkpoint-{2 * SAVE}", f"checkpoint-{STEPS}"}
    print("max |loss difference| after resume:", max(abs(got[s] - ref_losses[s]) for s in range(SAVE + 1, STEPS + 1)),
          "eval:", abs(resumed["eval_loss"] - ref["eval_loss"]))
