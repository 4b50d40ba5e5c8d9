"""Model card and push, offline: HfApi is replaced by a recorder."""
from __future__ import annotations

import json
import shutil

import pytest
from helpers_tiny_model import build_tiny_model
from huggingface_hub import ModelCard

from chatstack import hub

METRICS = {"evals": {"chatstack_arc_easy": {"acc": 0.31, "acc_norm": 0.29}, "world_qa_seen": {"accuracy": 0.9}},
           "eval_loss": 2.13, "eval_runtime": 3.2, "train_loss": 2.4, "seconds": 410.2, "tokens": 1200000}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("hub") / "sft")
    (path / "metrics.json").write_text(json.dumps(METRICS))
    return path


@pytest.fixture
def fake_api(monkeypatch):
    calls = []

    class FakeHfApi:
        def __init__(self, token=None):
            calls.append(("init", {"token": token}))

        def create_repo(self, **kw):
            calls.append(("create_repo", kw))
            return f"https://huggingface.co/{kw['repo_id']}"

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw))
            return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kw['repo_id']}/commit/abc"})()

    monkeypatch.setattr(hub, "HfApi", FakeHfApi)
    return calls


def test_card_metadata_and_model_index(model_dir):
    card = hub.model_card(model_dir, "alice/tiny-sft", stage="sft", datasets=["HuggingFaceFW/fineweb-edu"],
                          base_model="alice/tiny-base", tags=["tiny"])
    data = ModelCard(card.content).data  # parse back what the Hub would read
    assert data.license == "apache-2.0" and data.library_name == "transformers"
    assert data.pipeline_tag == "text-generation"
    assert data.datasets == ["HuggingFaceFW/fineweb-edu"] and data.base_model == "alice/tiny-base"
    assert {"chatstack", "gpt2", "sft", "tiny"} <= set(data.tags)
    assert data.model_name == "tiny-sft"
    got = {(r.dataset_type, r.metric_type): r.metric_value for r in data.eval_results}
    assert got == {("allenai/ai2_arc", "acc"): 0.31, ("allenai/ai2_arc", "acc_norm"): 0.29,
                   ("world_qa_seen", "accuracy"): 0.9, ("held-out", "loss"): 2.13}  # no eval_runtime
    arc = next(r for r in data.eval_results if r.metric_type == "acc")
    assert (arc.dataset_config, arc.dataset_split, arc.task_type) == ("ARC-Easy", "test", "text-generation")
    body = card.text
    assert "| ARC-Easy | acc | 0.31 |" in body and "| tokens | 1200000 |" in body
    assert 'pipeline("text-generation", model="alice/tiny-sft")' in body


def test_card_rejects_local_paths_as_hub_ids(model_dir):
    with pytest.raises(hub.HubError, match="base_model"):
        hub.model_card(model_dir, base_model="outputs/tiny/pretrain")
    with pytest.raises(hub.HubError, match="datasets"):
        hub.model_card(model_dir, datasets=["/work/shared/data/gsm8k"])


def test_folder_complete_and_loads(model_dir):
    assert hub.check_folder(model_dir) == []


@pytest.mark.parametrize("remove, expected", [
    ("generation_config.json", "generation_config.json missing"),
    ("model.safetensors", "no safetensors weights"),
    ("chat_template.jinja", "no chat template"),
    ("tokenizer.json", "tokenizer files missing"),
])
def test_incomplete_folder_is_named(model_dir, tmp_path, remove, expected):
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    (bad / remove).unlink()
    problems = hub.check_folder(bad, load=False)
    assert any(expected in p for p in problems), problems


def test_push_folder_calls_hub(model_dir, tmp_path, fake_api):
    folder = tmp_path / "sft"
    shutil.copytree(model_dir, folder)
    info = hub.push_folder(folder, "alice/tiny-sft", private=True, token="hf_xxx",
                           card_kwargs={"stage": "sft", "base_model": "alice/tiny-base"})
    assert info.commit_url.endswith("/commit/abc")
    names = [c[0] for c in fake_api]
    assert names == ["init", "create_repo", "upload_folder"]
    assert fake_api[0][1] == {"token": "hf_xxx"}
    assert fake_api[1][1] == {"repo_id": "alice/tiny-sft", "private": True, "exist_ok": True, "repo_type": "model"}
    up = fake_api[2][1]
    assert up["repo_id"] == "alice/tiny-sft" and up["folder_path"] == str(folder) and up["repo_type"] == "model"
    assert "checkpoint-*" in up["ignore_patterns"]
    card = ModelCard.load(folder / "README.md")  # the card was written before the upload
    assert card.data.base_model == "alice/tiny-base" and card.data.eval_results


def test_push_refuses_incomplete_folder(model_dir, tmp_path, fake_api):
    folder = tmp_path / "sft"
    shutil.copytree(model_dir, folder)
    (folder / "generation_config.json").unlink()
    with pytest.raises(hub.HubError, match="generation_config.json"):
        hub.push_folder(folder, "alice/tiny-sft")
    assert fake_api == []


def test_push_cli(model_dir, tmp_path, fake_api, capsys):
    folder = tmp_path / "sft"
    shutil.copytree(model_dir, folder)
    assert hub.push_main(["--model", str(folder), "--repo_id", "alice/tiny-sft", "--private", "--stage", "sft"]) == 0
    assert fake_api[1][1]["private"] is True and fake_api[2][1]["repo_id"] == "alice/tiny-sft"
    assert "huggingface.co/alice/tiny-sft" in capsys.readouterr().out
    assert "sft" in ModelCard.load(folder / "README.md").data.tags
    assert hub.push_main(["--model", str(folder), "--repo_id", "not a repo"]) == 2


def test_cli_dispatches_push(model_dir, tmp_path, fake_api):
    from chatstack.cli import main

    folder = tmp_path / "sft"
    shutil.copytree(model_dir, folder)
    assert main(["push", "--model", str(folder), "--repo_id", "alice/tiny-sft"]) == 0
    assert fake_api[1][1]["private"] is False
