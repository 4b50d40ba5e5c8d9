"""The stage skeleton (chatstack.stage) that every training stage runs on: the checkpoint it
resumes from, metrics.json written last, a config error raised before any work, and what
`speedrun --force` clears."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from transformers import TrainerState, TrainingArguments

from chatstack.checkpoints import last_checkpoint
from chatstack.stage import Trained, forget_finished_run, run_stage

STAGES = ["pretrain", "sft", "reward", "grpo", "ppo"]


def args(out, **kw) -> TrainingArguments:
    return TrainingArguments(output_dir=str(out), use_cpu=True, report_to="none", seed=3, **kw)


def checkpoint(out, step: int, complete: bool = True):
    ckpt = out / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    if complete:
        (ckpt / "trainer_state.json").write_text("{}")
    return ckpt


def test_resumes_from_the_last_complete_checkpoint(tmp_path):
    out = tmp_path / "run"
    good = checkpoint(out, 2)
    checkpoint(out, 5, complete=False)  # killed mid-save by an in-place writer: no trainer state
    (out / ".staging" / "checkpoint-7").mkdir(parents=True)  # an atomic save that a kill interrupted
    seen = []

    def fit(cfg, resume_from):
        seen.append(resume_from)
        return Trained({"loss": 1.0}, save=lambda d: None)

    metrics = run_stage(args(out), fit)
    assert seen == [str(good)] and metrics["resumed_from"] == str(good)
    assert run_stage(args(tmp_path / "fresh"), fit)["resumed_from"] is None and seen[-1] is None
    run_stage(args(tmp_path / "other", resume_from_checkpoint=str(good)), fit)  # the config's choice wins
    assert seen[-1] == str(good)


def test_metrics_json_is_written_last(tmp_path):
    out = tmp_path / "run"
    checkpoint(out, 4)
    order = []

    def save(d):
        assert not (out / "metrics.json").exists()  # the stage is not complete while it saves
        order.append("save")
        (out / "config.json").write_text("{}")

    metrics = run_stage(args(out), lambda cfg, r: Trained({"loss": 0.5}, save=save, log_history=[{"loss": 0.5}]))
    assert order == ["save"]
    assert json.loads((out / "metrics.json").read_text()) == metrics and metrics["loss"] == 0.5 and "seconds" in metrics
    assert json.loads((out / "log_history.json").read_text()) == [{"loss": 0.5}]
    assert last_checkpoint(out) is None  # checkpoints cleared before metrics.json ...
    out2 = tmp_path / "keeps"
    checkpoint(out2, 4)
    run_stage(args(out2), lambda cfg, r: Trained({}, save=lambda d: None, keep_checkpoints=True))
    assert last_checkpoint(out2).endswith("checkpoint-4")  # ... unless the stage keeps them (pretrain)


def test_a_failed_stage_writes_no_metrics(tmp_path):
    out = tmp_path / "run"

    def save(d):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        run_stage(args(out), lambda cfg, r: Trained({"loss": 1.0}, save=save))
    assert not (out / "metrics.json").exists()


def test_not_the_main_process_writes_nothing(tmp_path):
    out = tmp_path / "run"
    metrics = run_stage(args(out), lambda cfg, r: Trained({"loss": 1.0}, save=lambda d: pytest.fail("saved"),
                                                          is_main=False))
    assert metrics["loss"] == 1.0 and not (out / "metrics.json").exists()


@pytest.mark.parametrize("stage", STAGES)
def test_config_error_before_any_work(stage, tmp_path, monkeypatch, capsys):
    """A bad key, in the YAML or on the command line, stops the stage before it loads anything."""
    from importlib import import_module

    from chatstack.cli import main
    module = import_module(f"chatstack.{stage}")
    monkeypatch.setattr(module, "fit", lambda *a: pytest.fail("the stage started working"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"output_dir: {tmp_path / 'out'}\nlearning_rat: 0.1\n")
    assert main([stage, "--config", str(bad)]) == 2
    assert "learning_rate" in capsys.readouterr().err  # the nearest valid key
    assert main([stage, "--output_dir", str(tmp_path / "out"), "--no_such_key", "1"]) == 2
    assert not (tmp_path / "out").exists()


def test_grpo_unknown_reward_is_a_config_error(tmp_path):
    from chatstack.config import parse_config
    from chatstack.errors import ConfigError
    from chatstack.grpo import GRPOStageConfig
    with pytest.raises(ConfigError, match="reward_funcs"):
        parse_config(GRPOStageConfig, None, ["--reward_funcs", "correctness", "nope", "--output_dir", str(tmp_path)])


def test_ppo_checkpoints_are_found_like_the_trainers(tmp_path):
    """PPO (not a Trainer) saves checkpoint-N with a trainer_state.json written last: the skeleton
    resumes it, and write_metrics / forget_finished_run clear it, as for every other stage."""
    from chatstack.ppo import PPOTrainer

    def save_state(path):
        (tmp_path / "out" / path.split("/")[-1]).mkdir(parents=True, exist_ok=True)

    fake = SimpleNamespace(cfg=SimpleNamespace(output_dir=str(tmp_path / "out")),
                           history=[{"batch": 0, "eval_reward": -1.0}],
                           acc=SimpleNamespace(save_state=save_state, is_main_process=True))
    PPOTrainer.save_checkpoint(fake, 2, 8)
    assert last_checkpoint(tmp_path / "out").endswith("checkpoint-2")
    fake.history.append({"batch": 4, "score": 0.5})
    PPOTrainer.save_checkpoint(fake, 4, 8)
    ckpt = last_checkpoint(tmp_path / "out")
    assert ckpt.endswith("checkpoint-4") and not (tmp_path / "out" / "checkpoint-2").exists()
    state = TrainerState.load_from_json(f"{ckpt}/trainer_state.json")
    assert state.global_step == 4 and state.log_history == fake.history


def test_forget_finished_run(tmp_path):
    out = tmp_path / "run"
    checkpoint(out, 3)
    (out / "metrics.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"x")
    forget_finished_run(str(out))
    assert not (out / "metrics.json").exists() and last_checkpoint(out) is None
    assert (out / "model.safetensors").exists()  # the previous model stays until the rerun replaces it
