"""`report_to: trackio` and `report_to: tensorboard` offline (issue 21): a Trainer stage run by
the real CLI, with the network off, logs its training loss to a local trackio project
(outputs/<recipe>/trackio, project = the recipe's folder name) and to TensorBoard event files
in <output_dir>/runs/. Two SFT steps on a 2-layer model: seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_tiny_model import build_tiny_model

pytest.importorskip("trackio")
pytest.importorskip("tensorboard")

REPO = Path(__file__).resolve().parents[1]
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TRACKIO_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("track")
    model = build_tiny_model(tmp / "model")
    chats = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ]
        }
        for i in range(8)
    ]
    (tmp / "chats.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    (tmp / "chats.yaml").write_text("files: chats.jsonl\n")
    (tmp / "sft.yaml").write_text("report_to: [trackio, tensorboard]\n")  # as in a recipe
    out = tmp / "myrecipe" / "sft"
    env = {k: v for k, v in os.environ.items() if k not in ("TRACKIO_DIR", "TENSORBOARD_LOGGING_DIR")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatstack.cli",
            "sft",
            "--config",
            str(tmp / "sft.yaml"),
            "--model_name_or_path",
            str(model),
            "--dataset",
            str(tmp / "chats.yaml"),
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
            "--logging_steps",
            "1",
            "--max_length",
            "128",
            "--per_device_train_batch_size",
            "4",
            "--eval_questions",
            "0",
            "--eval_conversations",
            "false",
            "--use_cpu",
            "true",
        ],
        capture_output=True,
        text=True,
        env={**env, **OFFLINE},
        cwd=tmp,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def test_trackio_logs_to_a_local_project(tracked_run):
    trackio_dir = tracked_run.parent / "trackio"
    assert trackio_dir.is_dir(), "trackio should log beside the recipe's stages"
    read = (
        "import json; from trackio.sqlite_storage import SQLiteStorage as S; "
        "runs = S.get_runs('myrecipe'); print(json.dumps([S.get_logs('myrecipe', r) for r in runs], default=str))"
    )
    got = subprocess.run(
        [sys.executable, "-c", read],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **OFFLINE, "TRACKIO_DIR": str(trackio_dir)},
    )
    assert got.returncode == 0, got.stderr[-2000:]
    logs = json.loads(got.stdout.strip().splitlines()[-1])
    assert len(logs) == 1, "one run in project 'myrecipe'"
    losses = [row["train/loss"] for row in logs[0] if "train/loss" in row]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)


def test_tensorboard_writes_event_files(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = list((tracked_run / "runs").iterdir())
    assert len(runs) == 1
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    assert len(events.Scalars("train/loss")) == 2
    assert (tracked_run / "metrics.json").is_file()  # the stage finished as usual, metrics.json last


def test_a_tracker_that_is_not_installed_is_one_line(monkeypatch, capsys):
    import importlib.util

    from chatstack.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trackio" else real(name, *a))
    assert main(["sft", "--report_to", "trackio"]) == 2
    assert "report_to trackio needs the trackio package" in capsys.readouterr().err
