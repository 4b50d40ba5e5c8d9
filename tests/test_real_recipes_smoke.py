"""`chatstack speedrun --recipe gpt2-124m --smoke`: every real-scale YAML, unchanged but for its
smoke.yaml (toy sizes, Hub ids mapped to ../shared/data through the same specs), runs on CPU, so
a renamed TRL key or a missing column fails here and not on a GPU bill."""

import dataclasses
import importlib
import json
import os

import pytest

from chatstack import speedrun as sr
from chatstack.config import parse_config, read_yaml

STAGES = ["tokenizer", "pretrain", "sft", "probe_refusals", "sft_refusal", "eval_refusal", "reward", "ppo", "grpo",
          "eval"]
RECIPES = ["gpt2-124m", "gpt2-350m"]
CONFIGS = {  # stage (a build stage: its builder) -> the config class its YAML becomes
    "tokenizer": "chatstack.tokenizer:TokenizerConfig", "pretrain": "chatstack.pretrain:PretrainConfig",
    "sft": "chatstack.sft:SFTStageConfig", "reward": "chatstack.reward:RewardStageConfig",
    "ppo": "chatstack.ppo:PPOConfig", "grpo": "chatstack.grpo:GRPOStageConfig",
    "refusals": "chatstack.builders.refusals:RefusalConfig",
    "refusals_eval": "chatstack.evaluation.refusal:RefusalEvalConfig", "eval": "chatstack.evaluation.suite:SuiteArgs"}
DATASET_KEYS = ("dataset", "eval_dataset", "facts", "conversations_dataset")


def stage_entries(recipe: str) -> list[tuple[str, str]]:
    """(stage, name) of each entry of a recipe's speedrun.yaml."""
    entries = read_yaml(sr.recipe_dir(recipe) / "speedrun.yaml")["stages"]
    return [(e, e) if isinstance(e, str) else (e["stage"], e.get("name", e["stage"])) for e in entries]


def spec_files(found: list[str]):
    """An edit for rewrite_spec that collects the outputs/ files a spec reads."""
    def edit(spec: dict) -> dict:
        files = spec.get("files")
        found.extend(f for f in ([files] if isinstance(files, str) else files or []) if str(f).startswith("outputs/"))
        return spec
    return edit


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_stage_yaml_parses_into_its_config(recipe):
    """Every YAML of the real recipes becomes its stage's config (keys, types, TRL's own checks; on a
    GPU-less machine with use_cpu and no tf32), reads and writes only under its own output_root,
    and names a suite that loads."""
    from chatstack.evaluation.suite_config import load_suite

    rdir = sr.recipe_dir(recipe)
    root = read_yaml(rdir / "speedrun.yaml")["output_root"]
    assert [n for _, n in stage_entries(recipe)] == STAGES
    for stage, name in stage_entries(recipe):
        values = read_yaml(rdir / f"{name}.yaml")
        module, cls = CONFIGS[values["builder"] if stage == "build" else stage].split(":")
        cls = getattr(importlib.import_module(module), cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        cpu = (["--use_cpu", "true"] if "use_cpu" in fields else []) + (["--tf32", "false"] if "tf32" in fields else [])
        cfg = parse_config(cls, rdir / f"{name}.yaml", cpu)
        paths = [v for v in values.values() if isinstance(v, str) and v.startswith("outputs/")]
        for key in DATASET_KEYS:  # files a dataset spec reads, e.g. the probe's train.jsonl
            if isinstance(values.get(key), str):
                sr.rewrite_spec(values[key], spec_files(paths))
        assert paths and all(p.startswith(root + "/") for p in paths), (name, paths)
        if stage == "eval":
            assert load_suite(cfg.suite).evals


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


def test_350m_writes_only_what_the_size_changes():
    """Each 350m stage YAML extends its 124m twin (or its own sft.yaml) and says why in a comment."""
    small, medium = sr.recipe_dir("gpt2-124m"), sr.recipe_dir("gpt2-350m")
    for _, name in stage_entries("gpt2-350m"):
        text = (medium / f"{name}.yaml").read_text()
        assert text.startswith("#") and ("extends: ../gpt2-124m/" in text or "extends: sft.yaml" in text), name
    sft, sft_124m = read_yaml(medium / "sft.yaml"), read_yaml(small / "sft.yaml")
    assert sft["learning_rate"] < sft_124m["learning_rate"] and sft["max_length"] == 1024
    assert (sft["per_device_train_batch_size"] * sft["gradient_accumulation_steps"]
            == sft_124m["per_device_train_batch_size"] * sft_124m["gradient_accumulation_steps"])
    assert read_yaml(medium / "grpo.yaml")["learning_rate"] < read_yaml(small / "grpo.yaml")["learning_rate"]
    assert read_yaml(medium / "smoke.yaml") == read_yaml(small / "smoke.yaml")


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_hub_id_of_the_recipe_has_a_local_copy(shared_data, recipe):
    """Each Hub dataset the real stages name is mapped by smoke.yaml (else the smoke run would download)."""
    rdir = sr.recipe_dir(recipe)
    mapping = read_yaml(rdir / "smoke.yaml")["hub"]
    seen = []

    def collect(spec):
        if "hub" in spec:
            seen.append(spec["hub"])
        return spec

    for name in STAGES:
        for key, value in read_yaml(rdir / f"{name}.yaml").items():
            if key in DATASET_KEYS and isinstance(value, str):
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
    # the real eval suite on the GRPO model, its Hub tasks read from their local copies
    ev = summary["stages"]["eval"]["metrics"]
    assert {"chatstack_arc_easy_acc", "chatstack_hellaswag_acc_norm", "chatstack_mmlu_acc", "humaneval_pass@1"} <= set(ev)
    assert json.loads((root / "eval" / "eval_real.json").read_text())["runs"]["humaneval"]["n"] == 2
