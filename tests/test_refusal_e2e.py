"""The refusal pipeline end to end on a micro chat model (2 layers, 64 wide, random weights,
built in a second): TriviaQA / Natural Questions through the build command and the eval,
determinism of a real probe, the question-writing model, and the micro recipe's three steps
(build refusals -> sft with them mixed in -> before/after eval) run by the speedrun."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers_tiny_model import build_tiny_model  # noqa: E402

from chatstack.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A directory with outputs/micro/{pretrain,sft}: micro models with the chat template."""
    root = tmp_path_factory.mktemp("refusal")
    build_tiny_model(root / "outputs" / "micro" / "sft")
    build_tiny_model(root / "outputs" / "micro" / "pretrain", seed=1)  # sft_refusal retrains from it
    cwd = os.getcwd()
    os.chdir(root)
    yield root
    os.chdir(cwd)


def test_triviaqa_probe_and_nq_eval_end_to_end(work, shared_data):
    model = str(work / "outputs" / "micro" / "sft")
    tqa = shared_data / "eval" / "triviaqa" / "triviaqa_sm_sub.jsonl.gz"
    out = work / "tqa"
    assert main(["build", "refusals", "--facts", str(tqa), "--model_name_or_path", model, "--max_facts", "6", "--k", "2",
                 "--max_new_tokens", "8", "--output_dir", str(out)]) == 0
    probes = [json.loads(line) for line in (out / "probes.jsonl").read_text().splitlines()]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(probes) == metrics["n_questions"] == 6 - metrics["n_too_long"] > 0  # long ones skipped, and said so
    assert all(len(p["samples"]) == 2 and len(p["judgements"]) == 2 for p in probes)
    assert all(p["group"] == "triviaqa_sm_sub" and p["label"] in ("known", "unknown", "unsure") for p in probes)
    assert "unknown_fraction_triviaqa_sm_sub" in metrics
    nq = shared_data / "eval" / "natural_questions" / "natural_questions_closed.jsonl.gz"
    ev = work / "nq_eval"
    assert main(["build", "refusals_eval", "--facts", str(nq), "--before", model, "--after", model, "--probes", "",
                 "--max_facts", "6", "--max_new_tokens", "8", "--output_dir", str(ev)]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    g = "natural_questions_closed"
    assert (m[f"n_{g}"] == 6 - m["n_too_long"] > 0
            and m[f"accuracy_{g}_before"] == m[f"accuracy_{g}_after"])  # same model, greedy
    assert abs(m[f"accuracy_{g}_after"] + m[f"refusal_{g}_after"] + m[f"hallucination_{g}_after"] - 1) < 1e-6
    assert (ev / "refusal_before_after.png").read_bytes()[:4] == b"\x89PNG"


def test_a_real_probe_is_deterministic(work):
    model = str(work / "outputs" / "micro" / "sft")
    args = ["build", "refusals", "--model_name_or_path", model, "--max_people", "2", "--k", "3", "--max_new_tokens", "8",
            "--temperature", "1.0", "--unsure_policy", "refuse", "--seed", "5"]
    for d in ("a", "b"):
        assert main([*args, "--output_dir", str(work / d)]) == 0
    assert (work / "a" / "train.jsonl").read_bytes() == (work / "b" / "train.jsonl").read_bytes()
    assert (work / "a" / "probes.jsonl").read_bytes() == (work / "b" / "probes.jsonl").read_bytes()


def test_model_without_chat_template_is_refused(work, tmp_path):
    from transformers import AutoTokenizer

    from chatstack.errors import DataError
    from chatstack.probing import ModelProber
    path = build_tiny_model(tmp_path / "base")
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = None
    (path / "chat_template.jinja").unlink(missing_ok=True)
    tok.save_pretrained(path)
    with pytest.raises(DataError, match="no chat template"):
        ModelProber(str(path))
    prober = ModelProber(str(path), prompt_format="completion", max_new_tokens=4)  # a base model, on purpose
    assert len(prober(["Who wrote Hamlet?"], 2, 0)[0]) == 2


def test_questions_written_by_an_instruction_model(work, tmp_path):
    from chatstack.builders.refusals import RefusalConfig
    from chatstack.probing import make_questions, row_to_fact
    facts = [row_to_fact({"statement": f"Ada Zeller was born in Varnholt {i}.", "answer": "Varnholt"}, f"row{i}", "notes")
             for i in range(3)]
    cfg = RefusalConfig(question_generator="model", question_model=str(work / "outputs" / "micro" / "sft"))
    qs = make_questions(facts, cfg)
    assert len(qs) == 3 and all(isinstance(q, str) for qq in qs for q in qq)


def test_micro_recipe_steps_through_the_speedrun(work, monkeypatch, capsys):
    """{stage: build, name: probe_refusals} -> {stage: sft, name: sft_refusal} -> {stage: build, name: eval_refusal}."""
    from chatstack import speedrun as sr
    recipe = work / "recipe"
    recipe.mkdir()
    names = ["probe_refusals", "sft_refusal", "eval_refusal"]
    for n in names:
        (recipe / f"{n}.yaml").write_text(f"extends: {REPO / 'recipes' / 'micro' / f'{n}.yaml'}\n")
    (recipe / "speedrun.yaml").write_text(
        "output_root: outputs/micro\nreport: false\nstages:\n"
        "  - {stage: build, name: probe_refusals}\n  - {stage: sft, name: sft_refusal}\n"
        "  - {stage: build, name: eval_refusal}\n")
    summary = sr.speedrun(str(recipe))
    assert list(summary["stages"]) == names
    probe = summary["stages"]["probe_refusals"]["metrics"]
    assert probe["n_train"] > 0 and "unknown_fraction_unseen" in probe and "known_fraction_seen" in probe
    ev = summary["stages"]["eval_refusal"]["metrics"]
    assert ev["n_unseen_new_name"] + ev.get("n_unseen_familiar_name", 0) == ev["n_unseen"]
    for k in ("hallucination_unseen_before", "hallucination_unseen_after", "refusal_unseen_after",
              "accuracy_seen_before", "accuracy_seen_after", "accuracy_seen_drop"):
        assert k in ev, k
    out = work / "outputs" / "micro"
    train = [json.loads(line) for line in (out / "probe_refusals" / "train.jsonl").read_text().splitlines()]
    eval_people = {json.loads(line)["fact_id"].split("|")[0] for line in (out / "eval_refusal" / "answers.jsonl").open()}
    assert not {r["subject"] for r in train} & eval_people  # eval people never fed the builder
    assert ((out / "sft_refusal" / "model.safetensors").exists()
            and (out / "eval_refusal" / "refusal_before_after.png").exists())
    called = []
    monkeypatch.setattr(sr, "run_stage", lambda *a: called.append(a))
    sr.speedrun(str(recipe))
    assert called == []  # every step wrote metrics.json: a rerun skips them


def test_builder_named_from_datasets_cfg(work):
    from chatstack.data import load_data
    spec = {"mixture": [{"builder": "refusals", "args": {"model_name_or_path": str(work / "outputs" / "micro" / "sft"),
                                                          "splits": ["qa_train"], "max_people": 1, "k": 1,
                                                          "max_new_tokens": 4, "unsure_policy": "refuse"}},
                        {"builder": "identity", "args": {"n": 5}}]}
    ds = load_data(spec)
    assert ds.column_names == ["messages"] and len(ds) == 1 * 5 * 2 + 5
