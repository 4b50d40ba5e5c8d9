"""`chatstack speedrun --world_seed N`: the world's seed reaches every stage and every path of
the lineage moves to the run's own output root."""

import json
import os

import pytest

from chatstack import speedrun as sr
from chatstack.config import read_yaml

STAGES = ["tokenizer", "pretrain", "sft", "probe_refusals", "assistant", "comparisons", "reward", "ppo", "grpo",
          "eval_refusal", "eval_assistant"]


def test_reroot_moves_only_paths_under_the_root():
    assert sr.reroot("outputs/tiny/sft", "outputs/tiny", "outputs/tiny-seed1") == "outputs/tiny-seed1/sft"
    assert sr.reroot("outputs/tiny", "outputs/tiny", "x/y") == "x/y"
    assert sr.reroot("outputs/tiny-web/curate", "outputs/tiny", "o") == "outputs/tiny-web/curate"
    assert sr.reroot({"a": ["outputs/tiny/p/train.jsonl", 3]}, "outputs/tiny", "o") == {"a": ["o/p/train.jsonl", 3]}


def test_every_micro_stage_reads_and_writes_under_the_new_root(tmp_path):
    """Each stage config, with the speedrun's overrides applied, holds no path of the old root,
    and the dataset spec that names the probe's output is a rewritten copy."""
    rdir = sr.recipe_dir(str(sr.REPO_ROOT / "recipes" / "micro"))
    new = str(tmp_path / "run")

    def edit(value):
        return sr.reroot(value, "outputs/micro", new)

    for name in STAGES:
        values = read_yaml(rdir / f"{name}.yaml")
        args = sr.stage_overrides(values, edit, lambda d: {k: edit(v) for k, v in d.items()}, tmp_path / "ds", name)
        given = dict(zip(args[::2], args[1::2], strict=True))
        merged = {**values, **{k[2:]: v for k, v in given.items()}}
        stale = [k for k, v in merged.items() if isinstance(v, str) and v.startswith("outputs/micro")]
        assert stale == [], (name, stale)
        assert merged["output_dir"] == f"{new}/{name}"
        if name == "assistant":
            spec = json.loads(open(merged["dataset"]).read())
            assert spec["mixture"][0] == "tiny_sft" and spec["mixture"][1]["files"] == [f"{new}/probe_refusals/train.jsonl"]
        if name == "reward":
            spec = json.loads(open(merged["dataset"]).read())
            assert spec["mixture"][1]["files"] == [f"{new}/comparisons/train.jsonl"]
    assert read_yaml(rdir / "ppo.yaml")["reward_model_path"] == "outputs/micro/reward"  # the recipe itself is untouched


def test_world_seed_builds_another_world_and_caches_per_seed(monkeypatch):
    from chatstack.tools.search_tool import load_store
    from chatstack.world.datasets import WORLD_SEED_ENV, encyclopedia, get_world

    monkeypatch.delenv(WORLD_SEED_ENV, raising=False)
    w0 = get_world("tiny")
    names0 = [p.name for p in w0.people]
    monkeypatch.setenv(WORLD_SEED_ENV, "1")
    w1 = get_world("tiny")
    assert w1.config.seed == 1 and [p.name for p in w1.people] != names0
    assert get_world("tiny") is w1 and [p.name for p in get_world("tiny", seed=0).people] == names0
    assert encyclopedia("tiny")["title"] == [p.name for p in w1.people]
    store = load_store("world:tiny")
    assert len(store) == len(w1.people) and store.search(w1.people[0].name, k=1)[0]["title"] == w1.people[0].name
    monkeypatch.setenv(WORLD_SEED_ENV, "one")
    with pytest.raises(ValueError, match=WORLD_SEED_ENV):
        get_world("tiny")


def test_a_root_of_another_seed_is_not_resumed(tmp_path, monkeypatch):
    from chatstack.errors import ConfigError

    root = tmp_path / "run"
    root.mkdir()
    (root / "summary.json").write_text(json.dumps({"world_seed": 0, "stages": {"tokenizer": {"seconds": 1, "metrics": {}}}}))
    with pytest.raises(ConfigError, match="world seed 0, not 2"):
        sr.speedrun(str(sr.REPO_ROOT / "recipes" / "micro"), world_seed=2, output_root=str(root))


@pytest.fixture(scope="module")
def micro_seed1(tmp_path_factory):
    """The micro recipe end to end on world seed 1 (every stage, toy sizes)."""
    work = tmp_path_factory.mktemp("micro_seed1")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        sr.speedrun(str(sr.REPO_ROOT / "recipes" / "micro"), world_seed=1)
    finally:
        os.chdir(cwd)
    return work / "outputs" / "micro-seed1"


def test_micro_speedrun_on_two_world_seeds(micro_outputs, micro_seed1):
    """Seed 0 (the shared micro run) and seed 1 each run every stage in their own root, and each
    probes the people of its own world."""
    from chatstack.world.datasets import get_world

    s1 = json.loads((micro_seed1 / "summary.json").read_text())
    assert s1["world_seed"] == 1 and list(s1["stages"]) == STAGES
    assert all((micro_seed1 / name / "metrics.json").is_file() for name in STAGES)
    for root, seed in ((micro_outputs, 0), (micro_seed1, 1)):
        people = {p.name for p in get_world("tiny", seed=seed).people}
        probed = {json.loads(line)["subject"] for line in (root / "probe_refusals" / "probes.jsonl").open()}
        assert probed and probed <= people, seed
    cfg = json.loads((micro_seed1 / "probe_refusals" / "metrics.json").read_text())["config"]
    assert cfg["model_name_or_path"] == "outputs/micro-seed1/sft"
    assert not (micro_outputs.parent / "micro-seed1").exists()  # seed 0 wrote nothing of seed 1's
