"""lm-eval on local data: chatstack's task YAMLs, rendered with a data root, run through
lm_eval.simple_evaluate on a tiny model, offline."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from helpers_tiny_model import build_tiny_model

pytest.importorskip("lm_eval")

from chatstack.evaluation import harness  # noqa: E402

DATA_ROOT = Path("/work/shared/data")
needs_data = pytest.mark.skipif(not (DATA_ROOT / "eval" / "arc").is_dir() or not (DATA_ROOT / "gsm8k").is_dir(),
                                reason="shared eval data not present")
TASKS = ["chatstack_arc_challenge", "chatstack_arc_easy", "chatstack_gsm8k", "chatstack_hellaswag",
         "chatstack_lambada", "chatstack_mmlu", "chatstack_triviaqa"]


def test_task_list():
    assert harness.task_names() == TASKS


@needs_data
def test_render_fills_data_root(tmp_path):
    out = harness.render_tasks(DATA_ROOT, tmp_path / "tasks")
    assert sorted(p.stem for p in out.glob("*.yaml")) == TASKS
    for p in out.glob("*.yaml"):
        text = p.read_text()
        assert "${DATA_ROOT}" not in text
        cfg = yaml.safe_load(text)
        assert cfg["dataset_path"] == "json" and cfg["task"] == p.stem and "chatstack_local" in cfg["tag"]
        for path in cfg["dataset_kwargs"]["data_files"].values():
            assert Path(path).is_file() and (Path(path).is_relative_to(DATA_ROOT) or Path(path).is_relative_to(out))
        assert "chatstack_convert" not in cfg  # chatstack's own key is gone: a plain lm-eval task
    gsm = yaml.safe_load((out / "chatstack_gsm8k.yaml").read_text())
    assert set(gsm["dataset_kwargs"]["data_files"]) == {"train", "test"}


@pytest.mark.skipif(not (DATA_ROOT / "eval" / "mmlu").is_dir(), reason="shared eval data not present")
def test_mmlu_csvs_become_cais_mmlu_rows_and_lm_eval_prompts(tmp_path):
    """The tar.gz of CSVs as cais/mmlu's rows; the prompt is lm-eval's mmlu one, subject and all."""
    import json

    from lm_eval.tasks import TaskManager

    out = harness.render_tasks(DATA_ROOT, tmp_path / "tasks", ["chatstack_mmlu"])
    files = yaml.safe_load((out / "chatstack_mmlu.yaml").read_text())["dataset_kwargs"]["data_files"]
    rows = {split: [json.loads(line) for line in open(path)] for split, path in files.items()}
    assert len(rows["test"]) == 14042 and len(rows["dev"]) == 57 * 5
    assert len({r["subject"] for r in rows["test"]}) == 57
    assert all(len(r["choices"]) == 4 and r["answer"] in range(4) for r in rows["test"])
    task = TaskManager(include_path=str(out), include_defaults=False).load(["chatstack_mmlu"])["tasks"]["chatstack_mmlu"]
    doc = next(d for d in task.test_docs() if d["subject"] == "high_school_biology")
    prompt = task.fewshot_context(doc, 0)
    assert prompt.startswith("The following are multiple choice questions (with answers) about high school biology.\n\n")
    assert prompt.endswith(f"{doc['question'].strip()}\nA. {doc['choices'][0]}\nB. {doc['choices'][1]}\n"
                           f"C. {doc['choices'][2]}\nD. {doc['choices'][3]}\nAnswer:")
    assert task.doc_to_choice(doc) == ["A", "B", "C", "D"] and task.doc_to_target(doc) == doc["answer"]
    bad = tmp_path / "bad.tar.gz"
    import tarfile
    with tarfile.open(bad, "w:gz"):
        pass
    with pytest.raises(harness.HarnessError, match="no <subject>_test.csv"):
        harness.render_tasks(DATA_ROOT, tmp_path / "t2", ["chatstack_mmlu"],
                             data_files={"chatstack_mmlu": {"test": str(bad)}})


def test_groups_report_their_own_figure_only():
    res = {"group_subtasks": {"mmlu": ["mmlu_stem", "mmlu_other"], "mmlu_stem": ["mmlu_anatomy"], "mmlu_other": []}}
    assert harness._members(res, ["mmlu", "arc_easy"]) == {"mmlu_stem", "mmlu_other", "mmlu_anatomy"}
    assert harness._members(res, ["chatstack_local"]) == set()


@needs_data
def test_render_errors_name_the_file(tmp_path):
    with pytest.raises(harness.HarnessError, match=r"chatstack_arc_easy: test data file not found: .*arc_easy.jsonl.gz"):
        harness.render_tasks(tmp_path / "nowhere", tmp_path / "t", ["chatstack_arc_easy"])
    with pytest.raises(harness.HarnessError, match="unknown chatstack lm-eval task"):
        harness.render_tasks(DATA_ROOT, tmp_path / "t", ["arc_easy"])
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"query": "Q", "choices": ["a", "b"], "gold": 0}\n')
    out = harness.render_tasks(DATA_ROOT, tmp_path / "t", ["chatstack_hellaswag"],
                               data_files={"chatstack_hellaswag": {"test": str(mine)}})
    cfg = yaml.safe_load((out / "chatstack_hellaswag.yaml").read_text())
    assert cfg["dataset_kwargs"]["data_files"]["test"] == str(mine)


@needs_data
def test_lm_eval_task_manager_sees_rendered_tasks(tmp_path):
    """What `lm_eval --include_path DIR --tasks chatstack_local` would index."""
    from lm_eval.tasks import TaskManager

    out = harness.render_tasks(DATA_ROOT, tmp_path / "tasks")
    tm = TaskManager(include_path=str(out), include_defaults=False)
    assert set(TASKS) <= set(tm.all_subtasks) and "chatstack_local" in tm.all_tags


def test_offline_sets_and_restores_flags():
    import huggingface_hub.constants as c

    before = c.HF_HUB_OFFLINE
    with harness.offline():
        import os

        assert c.HF_HUB_OFFLINE is True and os.environ["HF_HUB_OFFLINE"] == "1"
    assert c.HF_HUB_OFFLINE == before


@needs_data
def test_run_all_local_tasks_on_tiny_model(tmp_path):
    model = build_tiny_model(tmp_path / "model")
    results = harness.run_lm_eval(model, ["chatstack_local"], DATA_ROOT, limit=3, num_fewshot=0,
                                  output_path=tmp_path / "lm_eval.json")
    assert sorted(results) == TASKS
    for task in ("chatstack_arc_easy", "chatstack_arc_challenge", "chatstack_hellaswag"):
        assert set(results[task]) == {"acc", "acc_norm"} and 0 <= results[task]["acc"] <= 1
    assert set(results["chatstack_lambada"]) == {"acc", "perplexity"}
    assert results["chatstack_lambada"]["perplexity"] > 1 and math.isfinite(results["chatstack_lambada"]["perplexity"])
    assert set(results["chatstack_triviaqa"]) == {"exact_match"} and set(results["chatstack_mmlu"]) == {"acc"}
    assert set(results["chatstack_gsm8k"]) == {"exact_match_strict-match", "exact_match_flexible-extract"}
    assert (tmp_path / "lm_eval.json").is_file()


@needs_data
def test_eval_cli_write_tasks(tmp_path, capsys):
    from chatstack.cli import main

    assert main(["eval", "--write-tasks", str(tmp_path / "t"), "--data_root", str(DATA_ROOT)]) == 0
    assert (tmp_path / "t" / "chatstack_gsm8k.yaml").is_file() and "--include_path" in capsys.readouterr().out
    assert main(["eval", "--write-tasks", str(tmp_path / "t"), "--data_root", str(tmp_path)]) == 2


def test_eval_cli_options(monkeypatch, capsys):
    """`chatstack eval` without --suite: dataclass options, the flags and defaults of before."""
    from chatstack.cli import main

    seen = []
    monkeypatch.setattr(harness, "run_lm_eval", lambda model, tasks, root, limit, **kw: seen.append(
        dict(model=model, tasks=tasks, root=root, limit=limit, **kw)) or {})
    assert main(["eval", "--model", "m"]) == 0
    assert seen[-1] == dict(model="m", tasks=["chatstack_local"], root=None, limit=None, num_fewshot=None, batch_size=8,
                            device="cpu", max_gen_toks=None, apply_chat_template=False)
    assert main(["eval", "--model", "m", "--tasks", "chatstack_arc_easy, chatstack_lambada", "--limit", "0.5",
                 "--batch_size", "auto", "--apply_chat_template", "--max_gen_toks", "9", "--num_fewshot", "2"]) == 0
    assert seen[-1]["tasks"] == ["chatstack_arc_easy", "chatstack_lambada"] and seen[-1]["limit"] == 0.5
    assert (seen[-1]["batch_size"], seen[-1]["apply_chat_template"], seen[-1]["max_gen_toks"]) == ("auto", True, 9)
    assert main(["eval", "--model", "m", "--limit", "3"]) == 0 and seen[-1]["limit"] == 3
    assert isinstance(seen[-1]["limit"], int)
