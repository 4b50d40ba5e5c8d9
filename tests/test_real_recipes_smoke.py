"""`chatstack speedrun --recipe gpt2-124m --smoke`: every real-scale YAML, unchanged but for its
smoke.yaml (toy sizes, Hub ids mapped to ../shared/data through the same specs), runs on CPU, so
a renamed TRL key or a missing column fails here and not on a GPU bill."""

import json
import os

import pytest

from chatstack import speedrun as sr
from chatstack.config import read_yaml

STAGES = ["tokenizer", "pretrain", "sft", "probe_refusals", "sft_refusal", "eval_refusal", "reward", "ppo", "grpo"]


def test_hub_ids_map_to_local_specs_keeping_columns_and_weights(monkeypatch):
    monkeypatch.setenv("CHATSTACK_SHARED_DATA", "/data")
    edit = sr.hub_mapper({"a/b": {"hub": "json", "data_files": "{shared_data}/x.jsonl"}, "c/d:test": {"files": "t.jsonl"}})
    assert edit({"hub": "a/b", "config": "x", "split": "train", "streaming": True, "columns": ["text"]}) == {
        "split": "train",
        "streaming": True,
        "columns": ["text"],
        "hub": "json",
        "data_files": "/data/x.jsonl",
    }
    assert edit({"hub": "c/d", "split": "test", "weight": 0.5}) == {"weight": 0.5, "files": "t.jsonl"}
    assert edit({"hub": "c/d", "split": "train"}) == {"hub": "c/d", "split": "train"}  # not mapped: unchanged


def test_every_hub_id_of_the_recipe_has_a_local_copy(shared_data):
    """Each Hub dataset the real stages name is mapped by smoke.yaml (else the smoke run would download)."""
    rdir = sr.recipe_dir("gpt2-124m")
    mapping = read_yaml(rdir / "smoke.yaml")["hub"]
    seen = []

    def collect(spec):
        if "hub" in spec:
            seen.append(spec["hub"])
        return spec

    for name in STAGES:
        for key, value in read_yaml(rdir / f"{name}.yaml").items():
            if key in ("dataset", "eval_dataset", "facts", "conversations_dataset") and isinstance(value, str):
                sr.rewrite_spec(value, collect)
    assert seen and all(h in mapping or any(k.startswith(h + ":") for k in mapping) for h in seen), seen


@pytest.mark.timeout(900)
def test_gpt2_124m_smoke_speedrun(shared_data, tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        summary = sr.speedrun("gpt2-124m", smoke=True)
    finally:
        os.chdir(cwd)
    root = tmp_path / "outputs" / "gpt2-124m-smoke"
    assert list(summary["stages"]) == STAGES and json.loads((root / "summary.json").read_text())["recipe"] == "gpt2-124m"
    for name in STAGES:
        assert (root / name / "metrics.json").is_file(), name
    assert {"accuracy_before", "accuracy_after"} <= set(summary["stages"]["grpo"]["metrics"])
    assert "pairwise_accuracy" in summary["stages"]["reward"]["metrics"]
    grpo = json.loads((root / "grpo" / "metrics.json").read_text())
    assert grpo["eval_prompts"] == 4 and "boxed" in json.dumps(read_yaml(sr.recipe_dir("gpt2-124m") / "grpo.yaml"))
