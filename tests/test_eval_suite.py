"""`chatstack eval --model PATH --suite NAME`: suites in YAML, base vs chat models, the JSON and
table it writes, and that the numbers mean what they say (a model that knows the answers
scores higher). Small models built from config in seconds; offline."""
from __future__ import annotations

import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
from helpers_chat_model import parrot_model
from helpers_tiny_model import build_tiny_model

from chatstack.engine import Engine
from chatstack.errors import ConfigError
from chatstack.evaluation import model_kind as MK
from chatstack.evaluation import runners as R
from chatstack.evaluation import suite as S
from chatstack.evaluation import suite_config as SC
from chatstack.evaluation.tables import suite_table

DATA_ROOT = Path("/work/shared/data")
HAS_DATA = (DATA_ROOT / "eval" / "arc").is_dir() and (DATA_ROOT / "eval" / "lambada").is_dir()
RATES = ("accuracy", "refusal_rate", "hallucination_rate")


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    """The parrot (a chat model that says one sentence), in a folder named like a chat stage."""
    out = tmp_path_factory.mktemp("chat") / "sft"
    shutil.copytree(parrot_model(), out)
    return out


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("base") / "pretrain", seed=1)


@pytest.fixture
def no_tools_module(monkeypatch):
    """As if chatstack.evaluation.tools were not written yet (None in sys.modules: import fails)."""
    monkeypatch.setitem(sys.modules, "chatstack.evaluation.tools", None)


def check_rates(figures: dict) -> None:
    assert set(RATES) <= set(figures)
    assert all(0.0 <= figures[k] <= 1.0 for k in RATES)
    assert abs(sum(figures[k] for k in RATES) - 1.0) < 1e-3


# ---- suite files ---------------------------------------------------------------------------

def test_packaged_suites_load():
    from chatstack.evaluation.harness import task_names
    assert {"tiny", "quick", "benchmarks"} <= set(SC.suite_names())
    for name in SC.suite_names():
        cfg = SC.load_suite(name)
        assert cfg.name == name and cfg.description and cfg.evals
        if "lm_eval" in cfg.evals:  # chatstack's tasks, or lm-eval's with a local twin (--local_data)
            assert {R.local_task(cfg, t) for t in cfg.evals["lm_eval"].tasks} <= set(task_names())
    tiny = SC.load_suite("tiny")
    assert list(tiny.evals) == ["world_qa", "arithmetic", "conversations", "tools", "lm_eval"]
    assert len(tiny.evals["lm_eval"].tasks) >= 3 and tiny.evals["lm_eval"].limit
    assert tiny.evals["world_qa"].splits == ["qa_train", "qa_heldout", "unseen"]
    assert tiny.evals["conversations"].kinds == ["chat"] and tiny.evals["tools"].kinds == ["chat"]
    assert set(tiny.evals["world_qa"].kinds) == {"base", "chat"}


def test_unknown_suite_lists_the_suites(chat_model, capsys):
    from chatstack.cli import main
    assert main(["eval", "--model", str(chat_model), "--suite", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown suite 'nope'" in err
    for name in SC.suite_names():
        assert name in err


def test_list_suites(capsys):
    from chatstack.cli import main
    assert main(["eval", "--list-suites"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in SC.suite_names())


def test_bad_suite_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("evals:\n  world_qa: {n: 5}\n  spelling: {n: 5}\n")
    with pytest.raises(ConfigError, match=r"unknown eval 'spelling'; evals: world_qa, arithmetic"):
        SC.load_suite(str(bad))
    bad.write_text("evals:\n  world_qa: {nn: 5}\n")
    with pytest.raises(ConfigError, match=r"(?s)evals.world_qa: unknown key.*'nn'.*Valid keys: .*phrasings"):
        SC.load_suite(str(bad))
    bad.write_text("evals:\n  world_qa: {kinds: [robot]}\n")
    with pytest.raises(ConfigError, match="kinds must be a non-empty list"):
        SC.load_suite(str(bad))
    bad.write_text("evals:\n  world_qa: {splits: [everyone]}\n")
    with pytest.raises(ConfigError, match="unknown.*everyone"):
        SC.load_suite(str(bad))
    bad.write_text("wrold: tiny\nevals:\n  world_qa: {}\n")
    with pytest.raises(ConfigError, match="did you mean world"):
        SC.load_suite(str(bad))
    bad.write_text("world: tiny\n")
    with pytest.raises(ConfigError, match="`evals` must map"):
        SC.load_suite(str(bad))


# ---- base or chat ------------------------------------------------------------------------

def test_detect_kind(chat_model, base_model, tmp_path):
    assert MK.detect_kind(chat_model)[0] == "chat"
    kind, why = MK.detect_kind(base_model)
    assert kind == "base" and "pretrain" in why
    ckpt = tmp_path / "pretrain" / "checkpoint-40"
    shutil.copytree(chat_model, ckpt)
    assert MK.detect_kind(ckpt)[0] == "base"  # a checkpoint goes by its stage
    assert MK.detect_kind(base_model, "chat") == ("chat", "--model_kind")
    plain = tmp_path / "sft"  # a chat stage's name, but no chat template: nothing to chat with
    shutil.copytree(chat_model, plain)
    (plain / "chat_template.jinja").unlink()
    cfg = json.loads((plain / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert MK.detect_kind(plain) == ("base", "its tokenizer has no chat template")
    with pytest.raises(ConfigError, match="--model_kind"):
        MK.detect_kind(chat_model, "robot")


def test_reward_model_is_a_clear_error(chat_model, tmp_path):
    from chatstack.errors import DataError
    rm = tmp_path / "reward"
    shutil.copytree(chat_model, rm)
    cfg = json.loads((rm / "config.json").read_text())
    cfg["architectures"] = ["GPT2ForSequenceClassification"]
    (rm / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DataError, match="not a language model"):
        S.run_suite(rm, "quick", limit=2)


# ---- whole suites ------------------------------------------------------------------------

def _run_cli(model: Path, out: Path | None, *extra: str) -> tuple[int, dict]:
    argv = ["--model", str(model), "--suite", "quick", "--limit", "3", *extra]
    if out is not None:
        argv += ["--output", str(out)]
    rc = S.main(argv)
    path = out or model / "eval_quick.json"
    return rc, json.loads(path.read_text())


@pytest.mark.skipif(not HAS_DATA, reason="shared eval data not present")
def test_chat_model_suite(chat_model, tmp_path, capsys, no_tools_module):
    rc, res = _run_cli(chat_model, tmp_path / "chat.json", "--data_root", str(DATA_ROOT))
    assert rc == 0
    assert res["model_kind"] == "chat" and res["suite"] == "quick" and res["limit"] == 3
    runs, ev = res["runs"], res["evals"]
    assert {n: r["status"] for n, r in runs.items()} == {
        "world_qa": "ok", "arithmetic": "ok", "conversations": "ok", "tools": "skipped", "lm_eval": "ok"}
    for split in ("seen_train", "seen_heldout", "unseen"):
        check_rates(ev[f"world_qa_{split}"])
        assert runs["world_qa"]["n"][f"world_qa_{split}"] == 3
    # the parrot says one sentence about a chef: never right, never a refusal
    assert ev["world_qa_seen_train"]["accuracy"] == 0.0 and ev["world_qa_unseen"]["hallucination_rate"] == 1.0
    assert 0.0 <= ev["arithmetic"]["accuracy"] <= 1.0
    conv = ev["conversations"]
    assert {"format_compliance", "identity_accuracy", "qa_accuracy_new_phrasing"} <= set(conv)
    assert all(0.0 <= v <= 1.0 for v in conv.values())
    assert conv["format_compliance"] > 0.5  # the parrot ends its turns
    assert "chatstack.evaluation.tools" in runs["tools"]["reason"]
    lm = {t: v for t, v in ev.items() if t.startswith("chatstack_")}
    assert set(lm) == {"chatstack_arc_easy", "chatstack_lambada", "chatstack_hellaswag"}
    assert 0.0 <= lm["chatstack_arc_easy"]["acc"] <= 1.0 and 0.0 <= lm["chatstack_hellaswag"]["acc_norm"] <= 1.0
    assert runs["lm_eval"]["n"]["chatstack_arc_easy"] == 3
    out = capsys.readouterr().out
    assert "world_qa_seen_heldout" in out and "skipped" in out and "chatstack_arc_easy" in out
    assert re.search(r"world_qa_unseen\s+3\s+accuracy 0\.000\s+refusal_rate 0\.000\s+hallucination_rate 1\.000", out)


@pytest.mark.skipif(not HAS_DATA, reason="shared eval data not present")
def test_base_model_suite(base_model, monkeypatch, no_tools_module):
    """Completion-style evals only; JSON at the default path <model>/eval_<suite>.json."""
    asked = []
    real_complete = Engine.complete
    monkeypatch.setattr(Engine, "complete",
                        lambda self, prompts, **kw: asked.extend(prompts) or real_complete(self, prompts, **kw))
    monkeypatch.setattr(Engine, "chat", lambda *a, **k: pytest.fail("a base model got a chat prompt"))
    rc, res = _run_cli(base_model, None, "--data_root", str(DATA_ROOT))
    assert rc == 0 and (base_model / "eval_quick.json").is_file()
    assert res["model_kind"] == "base"
    runs = res["runs"]
    assert runs["conversations"]["status"] == runs["tools"]["status"] == "skipped"
    assert "chat models only" in runs["conversations"]["reason"]
    assert runs["world_qa"]["status"] == runs["arithmetic"]["status"] == runs["lm_eval"]["status"] == "ok"
    assert any(p.startswith("Q: ") and p.endswith("?\nA:") for p in asked)
    assert any(re.fullmatch(r"\d+ [+-] \d+ =", p) for p in asked)
    for split in ("seen_train", "seen_heldout", "unseen"):
        check_rates(res["evals"][f"world_qa_{split}"])
    assert len([t for t in res["evals"] if t.startswith("chatstack_")]) == 3
    assert "conversations" not in res["evals"]


def test_base_model_forced_to_chat(base_model, tmp_path, no_tools_module):
    rc, res = _run_cli(base_model, tmp_path / "r.json", "--model_kind", "chat", "--only", "world_qa,conversations")
    assert rc == 0 and res["model_kind"] == "chat" and res["model_kind_reason"] == "--model_kind"
    assert set(res["runs"]) == {"world_qa", "conversations"} and res["runs"]["conversations"]["status"] == "ok"


def test_only_names_evals_of_the_suite(chat_model):
    with pytest.raises(ConfigError, match="not in suite 'quick'"):
        S.run_suite(chat_model, "quick", only=["spelling"])


def test_missing_lm_eval_data_stops_before_running(chat_model, tmp_path):
    with pytest.raises(ConfigError, match="data file not found"):
        S.run_suite(chat_model, "quick", data_root=str(tmp_path / "nowhere"),
                    progress=lambda s: pytest.fail(f"ran before checking: {s}"))


# ---- the numbers mean what they say --------------------------------------------------------

def _oracle():
    """Replies of a model that knows the world: the true answer for seen people, a refusal for
    unseen ones, the right sum."""
    from chatstack.world.datasets import answer_sentence, qa
    by_question = {r["question"]: r for r in qa("tiny").to_list()}

    def reply(question: str) -> str:
        m = re.fullmatch(r"What is (\d+) ([+-]) (\d+)\?", question) or re.fullmatch(r"(\d+) ([+-]) (\d+) =", question)
        if m:
            a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
            return f"{a + b if op == '+' else a - b}."
        r = by_question.get(question)
        if r is None:
            return "Hmm."
        return "I don't know who that is." if not r["seen"] else answer_sentence(r["name"], r["attribute"], r["answer"])

    def chat(engine, conversations, **kw):
        return [reply(c[-1]["content"]) for c in conversations]

    def complete(engine, prompts, **kw):
        return [" " + reply(p[3:-3] if p.startswith("Q: ") else p) + "\nQ: next" for p in prompts]

    return chat, complete


@pytest.mark.parametrize("kind", ["chat", "base"])
def test_knowing_model_scores_higher(chat_model, monkeypatch, kind):
    parrot = S.run_suite(chat_model, "quick", limit=6, only=["world_qa", "arithmetic"], model_kind=kind)
    chat, complete = _oracle()
    monkeypatch.setattr(Engine, "chat", chat)
    monkeypatch.setattr(Engine, "complete", complete)
    oracle = S.run_suite(chat_model, "quick", limit=6, only=["world_qa", "arithmetic"], model_kind=kind)
    p, o = parrot["evals"], oracle["evals"]
    for split in ("seen_train", "seen_heldout"):
        assert o[f"world_qa_{split}"]["accuracy"] == 1.0 > p[f"world_qa_{split}"]["accuracy"]
    assert o["world_qa_unseen"]["refusal_rate"] == 1.0 > p["world_qa_unseen"]["refusal_rate"]
    assert o["world_qa_unseen"]["hallucination_rate"] == 0.0 < p["world_qa_unseen"]["hallucination_rate"]
    assert o["arithmetic"]["accuracy"] == 1.0 > p["arithmetic"]["accuracy"]


def test_model_trained_on_world_qa_scores_higher(chat_model, tmp_path):
    """A real model: the parrot fitted for a few seconds on the very questions the suite asks
    (seen people, phrasing 0) answers them; the parrot does not."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chatstack.world.datasets import answer_sentence
    rows = R.world_rows("tiny", "qa_train", [0], 4, 0)
    tok = AutoTokenizer.from_pretrained(chat_model)
    model = AutoModelForCausalLM.from_pretrained(chat_model)
    texts = [tok.apply_chat_template([{"role": "user", "content": r["question"]},
                                      {"role": "assistant",
                                       "content": answer_sentence(r["name"], r["attribute"], r["answer"])}],
                                     tokenize=False) for r in rows]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(120):
        model(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    out = tmp_path / "sft_world"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    suite = tmp_path / "seen.yaml"
    suite.write_text("evals:\n  world_qa: {splits: [qa_train], n: 4, phrasings: [0]}\n")
    trained = S.run_suite(out, str(suite))["evals"]["world_qa_seen_train"]
    before = S.run_suite(chat_model, str(suite))["evals"]["world_qa_seen_train"]
    assert before["accuracy"] == 0.0
    assert trained["accuracy"] >= 0.75


# ---- tools and failures ----------------------------------------------------------------------

def test_tools_missing_is_skipped_not_an_error(chat_model, no_tools_module):
    res = S.run_suite(chat_model, "quick", limit=2, only=["tools"])
    run = res["runs"]["tools"]
    assert run["status"] == "skipped" and "chatstack.evaluation.tools" in run["reason"] and "tools" not in res["evals"]
    assert res["runs"]["tools"]["reason"] == suite_table(res).split("skipped: ", 1)[1].strip()


def test_tools_module_is_called(chat_model, monkeypatch, tmp_path):
    calls = []

    def tool_evals(model, tokenizer, world="tiny", n=100, use_tools=True, seed=0):
        calls.append(dict(world=world, n=n, use_tools=use_tools, seed=seed))
        return {"accuracy": 0.75 if use_tools else 0.25, "tool_call_rate": 1.0 if use_tools else 0.0,
                "seconds_with_tools": 12.5, "n_per_task": n, "samples": [{"q": "x"}]}

    monkeypatch.setitem(sys.modules, "chatstack.evaluation.tools", types.SimpleNamespace(tool_evals=tool_evals))
    suite = tmp_path / "tools.yaml"
    suite.write_text("seed: 3\nevals:\n  tools: {n: 50, use_tools: [true, false]}\n")
    res = S.run_suite(chat_model, str(suite), limit=7)
    assert calls == [dict(world="tiny", n=7, use_tools=True, seed=3), dict(world="tiny", n=7, use_tools=False, seed=3)]
    assert res["evals"]["tools"] == {"accuracy": 0.75, "tool_call_rate": 1.0}
    assert res["evals"]["tools_without_tools"]["accuracy"] == 0.25
    assert res["runs"]["tools"]["tools"]["samples"] == [{"q": "x"}]
    assert res["runs"]["tools"]["tools"]["seconds_with_tools"] == 12.5  # timings and counts: not metrics
    assert "tools_without_tools" in suite_table(res)


def test_a_failing_eval_is_recorded_and_the_rest_run(chat_model, tmp_path, monkeypatch, capsys, no_tools_module):
    def boom(ctx, cfg):
        raise RuntimeError("the arithmetic eval broke")

    monkeypatch.setitem(R.RUNNERS, "arithmetic", boom)
    rc, res = _run_cli(chat_model, tmp_path / "r.json", "--only", "world_qa,arithmetic")
    assert rc == 1
    arith = res["runs"]["arithmetic"]
    assert arith["status"] == "error" and "the arithmetic eval broke" in arith["error"]
    assert res["runs"]["world_qa"]["status"] == "ok"
    assert "error in arithmetic" in capsys.readouterr().err


def test_limit_caps_every_size(chat_model, no_tools_module):
    res = S.run_suite(chat_model, "quick", limit=2, only=["world_qa", "arithmetic", "conversations"])
    assert set(res["runs"]["world_qa"]["n"].values()) == {2}
    assert res["runs"]["arithmetic"]["n"] == 2
    assert res["runs"]["conversations"]["n"]["qa_samples_new_phrasing"] <= 2


def test_unseen_questions_avoid_the_refusal_builders_people():
    """Unseen people are asked from the hash-half the refusal builder never probes (as the refusal eval)."""
    from chatstack.probing import FactsConfig, in_part
    rows = R.world_rows("tiny", "unseen", [0, 1], 50, 0)
    assert len(rows) == 50 and all(in_part(r["name"], "eval", FactsConfig.probe_fraction) for r in rows)
    assert not any(in_part(r["name"], "probe", FactsConfig.probe_fraction) for r in rows)
    assert all(not r["seen"] for r in rows)


def test_real_tools_module(chat_model):
    """chatstack.evaluation.tools as written (when it is): called with the suite's arguments."""
    pytest.importorskip("chatstack.evaluation.tools")
    res = S.run_suite(chat_model, "quick", limit=2, only=["tools"])
    assert res["runs"]["tools"]["status"] == "ok", res["runs"]["tools"]
    figures = res["evals"]["tools"]
    assert figures and all(isinstance(v, float) for v in figures.values())
    assert all(0.0 <= v <= 1.0 for k, v in figures.items() if "accuracy" in k or "rate" in k)


# ---- options ---------------------------------------------------------------------------------

def test_eval_options(chat_model, monkeypatch, tmp_path):
    """Dataclass options (HfArgumentParser) with the flags and defaults of before; evals are greedy."""
    seen = {}
    monkeypatch.setattr(S, "run_suite", lambda model, suite, **kw: seen.update(model=model, suite=suite, **kw) or {
        "suite": "quick", "model": model, "model_kind": "chat", "model_kind_reason": "r", "seconds": 0.0,
        "evals": {}, "runs": {}})
    assert S.main(["--model", str(chat_model), "--suite", "quick", "--output", str(tmp_path / "r.json")]) == 0
    assert {k: v for k, v in seen.items() if k != "progress"} == dict(
        model=str(chat_model), suite="quick", limit=None, only=None, model_kind="auto", world=None, data_root=None,
        device=None, local_data=False)
    assert S.main(["--model", str(chat_model), "--suite", "quick", "--limit", "3", "--only", "world_qa, tools",
                   "--model_kind", "base", "--world", "tiny", "--data_root", "d", "--device", "cpu",
                   "--output", str(tmp_path / "r.json")]) == 0
    assert (seen["limit"], seen["only"], seen["model_kind"], seen["data_root"]) == (3, ["world_qa", "tools"], "base", "d")
    assert not {f.name for f in __import__("dataclasses").fields(S.SuiteArgs)} & {"temperature", "top_k", "top_p"}


@pytest.mark.parametrize("argv,expect", [
    (["--suite", "quick", "--limt", "3"], "unknown option --limt (did you mean --limit"),
    (["--suite", "quick", "--model_kind", "robot"], "--model_kind must be auto, base or chat"),
    (["--suite", "quick"], "--model and --suite are required"),
    (["--tasks", "chatstack_arc_easy", "--modle", "m"], "unknown option --modle (did you mean --model"),
    (["--tasks", "chatstack_arc_easy"], "--model is required"),
])
def test_a_bad_eval_flag_is_one_clear_line(chat_model, argv, expect, capsys):
    from chatstack.cli import main
    if "--suite" in argv and "--model_kind" in argv:
        argv = ["--model", str(chat_model), *argv]
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err


def test_list_suites_either_spelling(capsys):
    from chatstack.cli import main
    assert main(["eval", "--list_suites"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in SC.suite_names()), out
