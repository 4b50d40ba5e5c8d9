"""One end-to-end run of every stage on the micro recipe, then checks on what it wrote."""
import json
import subprocess
import sys

import pytest

STAGES = ["tokenizer", "pretrain", "sft", "probe_refusals", "assistant", "comparisons", "reward", "ppo", "grpo",
          "eval_refusal", "eval_assistant"]


def test_summary_has_every_stage_and_the_agreed_metrics(micro_outputs):
    summary = json.loads((micro_outputs / "summary.json").read_text())
    assert summary["recipe"] == "micro" and summary["total_seconds"] > 0
    assert list(summary["stages"]) == STAGES
    need = {"tokenizer": ["bytes_per_token"], "pretrain": ["eval_loss", "unigram_entropy", "tokens_per_second"],
            "sft": ["qa_accuracy_seen", "format_compliance"], "probe_refusals": ["n_train"],
            "eval_refusal": ["hallucination_unseen_before", "hallucination_unseen_after"],
            "reward": ["pairwise_accuracy"], "ppo": ["reward_start", "reward_end"],
            "grpo": ["accuracy_before", "accuracy_after"]}
    for stage, keys in need.items():
        for k in keys:
            assert k in summary["stages"][stage]["metrics"], (stage, k)


def test_training_losses_fall(micro_outputs):
    def losses(stage):
        return [h["loss"] for h in json.loads((micro_outputs / stage / "log_history.json").read_text()) if "loss" in h]

    for stage in ("pretrain", "sft"):
        assert len(losses(stage)) >= 2 and losses(stage)[-1] < losses(stage)[0], (stage, losses(stage))
    # the micro reward stage's 8 steps read 4% of an epoch from a random score head: its loss sits
    # near log 2 and moves by the draw of its batches (it rose once the identity data changed), so
    # it is checked for running here and for learning in tests/test_reward_build_trainer.py
    assert len(losses("reward")) >= 2


def test_rerun_skips_complete_stages(micro_outputs, monkeypatch, capsys):
    from chatstack import speedrun as sr
    monkeypatch.chdir(micro_outputs.parent.parent)
    called = []
    monkeypatch.setattr(sr, "run_stage", lambda *a: called.append(a))
    sr.speedrun(str(sr.REPO_ROOT / "recipes" / "micro"))
    assert called == [] and capsys.readouterr().out.count("skipped") == len(STAGES)


LOAD_WITHOUT_CHATSTACK = r"""
import sys, json
from transformers import AutoTokenizer, AutoModelForCausalLM, AutoModelForSequenceClassification, pipeline
path, kind = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(path)
if kind == "causal":
    gen = pipeline("text-generation", model=path, tokenizer=tok)
    # no tool call: an 8-step micro model may open one and write no JSON, which transformers'
    # response parser (the tokenizer's response template) refuses with a ValueError
    no_call = [[tok.convert_tokens_to_ids("<tool_call>")]]
    out = gen([{"role": "user", "content": "Where was Ivo Zeller born?"}], max_new_tokens=5, bad_words_ids=no_call)
    assert isinstance(out[0]["generated_text"], list), out
    assert tok.chat_template and "<tool_call>" in tok.get_vocab()
else:
    m = AutoModelForSequenceClassification.from_pretrained(path)
    enc = tok(["hello"], return_tensors="pt")
    print(m(**enc).logits.shape)
assert "chatstack" not in sys.modules
print("ok")
"""


@pytest.mark.parametrize("stage,kind", [("pretrain", "causal"), ("sft", "causal"), ("assistant", "causal"),
                                        ("ppo", "causal"),
                                        ("grpo", "causal"), ("reward", "seqcls")])
def test_artifacts_load_with_transformers_alone(micro_outputs, stage, kind):
    r = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_CHATSTACK, str(micro_outputs / stage), kind],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_tokenize_command_shows_tokens_and_ids(micro_outputs, capsys):
    from chatstack.cli import main
    assert main(["tokenize", "Ivo was born in 1990.", "--tokenizer", str(micro_outputs / "tokenizer"),
                 "--color", "never"]) == 0
    out = capsys.readouterr().out.splitlines()
    pieces, ids = out[0].split("|"), json.loads(out[1])
    assert "".join(pieces) == "Ivo was born in 1990." and len(pieces) == len(ids)


def test_tokenizer_special_tokens_are_single_tokens(micro_outputs):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(micro_outputs / "tokenizer")
    for t in ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]:
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t
    assert tok.eos_token == "<|im_end|>" and tok.pad_token not in (tok.eos_token, tok.bos_token)
    # GPT-4 split: digits in groups of at most 3
    assert all(len(p.strip()) <= 3 for p in tok.tokenize("1234567") if p.strip().isdigit())


def test_generate_cli_base_and_chat(micro_outputs, capsys):
    from chatstack.cli import main
    assert main(["generate", "--model", str(micro_outputs / "pretrain"), "--prompt", "Q: Where", "--max_new_tokens", "5",
                 "--temperature", "0.9", "--top_k", "10", "--top_p", "0.9"]) == 0
    assert capsys.readouterr().out.count("Q: Where") == 1
    assert main(["generate", "--model", str(micro_outputs / "sft"), "--chat", "--prompt", "Who are you?",
                 "--max_new_tokens", "5", "--temperature", "0"]) == 0


def test_report_card_with_plots(micro_outputs):
    from chatstack.report import write_report
    report = write_report(micro_outputs)
    text = report.read_text()
    assert "| pretrain |" in text and "| grpo |" in text and "transformers" in text
    pngs = list((micro_outputs / "plots").glob("*.png"))
    assert any(p.name == "pretrain_loss.png" for p in pngs) and any(p.name == "before_after.png" for p in pngs)
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plots/{p.name}" in text


def test_force_reruns_from_scratch(tmp_path, monkeypatch):
    """--force on a finished stage must not resume at its old last checkpoint."""
    from chatstack import speedrun as sr
    recipe, out = tmp_path / "recipe", tmp_path / "out" / "pretrain"
    recipe.mkdir()
    (recipe / "speedrun.yaml").write_text(f"output_root: {tmp_path / 'out'}\nstages: [pretrain]\n")
    (recipe / "pretrain.yaml").write_text("max_steps: 1\n")
    (out / "checkpoint-360").mkdir(parents=True)
    (out / "checkpoint-360" / "trainer_state.json").write_text("{}")
    (out / "metrics.json").write_text('{"seconds": 1.0}')
    seen = []
    monkeypatch.setattr(sr, "run_stage", lambda *a: seen.append(sorted(p.name for p in out.iterdir())))
    sr.speedrun(str(recipe))
    assert seen == []  # complete: skipped
    sr.speedrun(str(recipe), force=True)
    assert seen == [[]]  # the old run's checkpoint and metrics are gone before the stage starts


# ---- the metric tables and the options (no speedrun needed) ---------------------------------

def test_metric_tables_are_defined_once(tmp_path, monkeypatch, capsys):
    """The speedrun table, the report card (stage table, before/after plot) and the suite table
    all read chatstack.evaluation.tables: nothing else defines a metric table, and a change
    there shows in all three."""
    import ast
    from pathlib import Path

    from chatstack import report
    from chatstack import speedrun as sr
    from chatstack.evaluation import tables
    src = Path(tables.__file__).resolve().parents[1]
    defined = {}
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            for t in targets:
                if isinstance(t, ast.Name) and t.id.endswith(("KEY_METRICS", "BEFORE_AFTER")):
                    defined.setdefault(t.id, []).append(path.relative_to(src).as_posix())
    assert defined == {name: ["evaluation/tables.py"] for name in ("STAGE_KEY_METRICS", "BEFORE_AFTER", "SUITE_KEY_METRICS")}

    monkeypatch.setitem(tables.STAGE_KEY_METRICS, "pretrain", ["tokens_per_second"])
    monkeypatch.setitem(tables.BEFORE_AFTER, "pretrain", ("eval loss", "eval_loss_before", "eval_loss"))
    summary = {"recipe": "t", "total_seconds": 3.0, "stages": {"pretrain": {"seconds": 3.0, "metrics": {
        "eval_loss": 2.5, "eval_loss_before": 4.0, "tokens_per_second": 1000.0}}}}
    sr.print_table(summary)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("pretrain"))
    assert row.split()[-1] == "tokens_per_second=1000.0"
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    text = report.write_report(tmp_path).read_text()
    assert "| pretrain | 3 | tokens_per_second = 1000 |" in text
    assert (tmp_path / "plots" / "before_after.png").is_file() and "before_after.png" in text

    monkeypatch.setattr(tables, "SUITE_KEY_METRICS", ("hallucination_rate",))
    result = {"suite": "s", "model": "m", "model_kind": "chat", "model_kind_reason": "r", "seconds": 1.0,
              "evals": {"world_qa_unseen": {"accuracy": 0.0, "refusal_rate": 0.0, "hallucination_rate": 1.0}},
              "runs": {"world_qa": {"status": "ok", "n": {"world_qa_unseen": 3}}}}
    assert tables.suite_table(result).splitlines()[-1].split() == ["world_qa_unseen", "3", "hallucination_rate", "1.000"]


def test_speedrun_and_report_options(monkeypatch):
    """Dataclass options (HfArgumentParser), the same flags and defaults as before."""
    from chatstack import report
    from chatstack import speedrun as sr
    calls = []
    monkeypatch.setattr(sr, "speedrun", lambda *a, **options: calls.append(a))
    monkeypatch.setattr(report, "write_report", lambda root: calls.append(root) or root)
    assert sr.main([]) == 0 and sr.main(["--recipe", "micro", "--stages", "sft,reward", "--force"]) == 0
    assert report.main([]) == 0 and report.main(["--recipe", "micro"]) == 0 and report.main(["--output_root", "x"]) == 0
    assert calls == [("tiny", None, False), ("micro", ["sft", "reward"], True), "outputs/tiny", "outputs/micro", "x"]


@pytest.mark.parametrize("argv,hint", [(["speedrun", "--recipes", "tiny"], "--recipe"),
                                       (["speedrun", "--forse"], "--force"),
                                       (["report", "--output-rot", "x"], "--output-root")])
def test_a_bad_flag_is_one_clear_line(argv, hint, capsys):
    from chatstack.cli import main
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    spelled = (hint, "--" + hint[2:].replace("-", "_"))  # the suggestion may use the field's own spelling
    assert len(err.splitlines()) == 1 and "unknown option" in err and any(h in err for h in spelled), err


# ---- one lineage: the final model and the tools it records ---------------------------------

def test_final_model_is_linked_and_records_its_tools(micro_outputs):
    """`final` points at the lineage's final chat model; the assistant's tool record (search
    store pinned to the run's world seed, k, system prompt) travels to the RL stages; the
    assistant eval measured it and the lesson card has its three lessons."""
    summary = json.loads((micro_outputs / "summary.json").read_text())
    final = summary["final_model"]
    assert final["stage"] in ("assistant", "ppo", "grpo") and (micro_outputs / "final").is_symlink()
    assert (micro_outputs / "final").resolve() == (micro_outputs / final["stage"]).resolve()
    record = json.loads((micro_outputs / "assistant" / "chat_tools.json").read_text())
    assert record["tools"][0] == {"name": "search", "store": "world:tiny:0", "k": 1}
    assert record["system"] == "You can use the tools search and python."
    for stage in ("ppo", "grpo"):
        assert json.loads((micro_outputs / stage / "chat_tools.json").read_text()) == record
    assert not (micro_outputs / "sft" / "chat_tools.json").exists()  # trained without tools
    evals = summary["stages"]["eval_assistant"]["metrics"]
    for task in ("search", "python_arithmetic", "letter_counting"):
        assert 0 <= evals[f"{task}_accuracy"] <= 1 and f"{task}_accuracy_without_tools" in evals
        entry = summary["lessons"][task]
        assert entry["after"] == evals[f"{task}_accuracy"] and entry["before"] == evals[f"{task}_accuracy_without_tools"]
    assert json.loads((micro_outputs / "eval_assistant" / "metrics.json").read_text())["model"] == str(
        (micro_outputs / "final").resolve())
    # with the tools on, who it is and what it read about: asked through the same loop
    written = json.loads((micro_outputs / "eval_assistant" / "metrics.json").read_text())
    for task in ("identity", "seen_qa"):
        assert 0 <= evals[f"{task}_accuracy_with_tools"] <= 1 and 0 <= evals[f"{task}_tool_use_rate"] <= 1
        assert len(written[f"{task}_samples_with_tools"]) == 3
    assert summary["lessons"]["identity"]["after"] <= evals["identity_accuracy_with_tools"]


def test_chat_without_model_opens_the_final_model_with_its_tools(micro_outputs, monkeypatch, capsys):
    from chatstack import chat

    monkeypatch.chdir(micro_outputs.parent.parent)  # outputs/micro/final is the newest final here
    sessions = []
    monkeypatch.setattr(chat, "repl", sessions.append)
    assert chat.main([]) == 0
    banner = capsys.readouterr().out
    assert "outputs/micro/final" in banner and "tools: python, search" in banner
    assert sessions[0].system == "You can use the tools search and python."
    assert chat.main(["--tools", "none"]) == 0
    assert "tools: none" in capsys.readouterr().out and sessions[1].system is None and not sessions[1].tools


def test_choose_final_takes_the_last_stage_whose_lesson_holds():
    from chatstack.speedrun import choose_final
    order = ["sft", "assistant", "reward", "ppo", "grpo"]
    stages = {k: {} for k in order}
    assert choose_final(order, stages, {})[0] == "assistant"
    assert choose_final(order, stages, {"rlhf": {"met": True}, "grpo": {"met": False}})[0] == "ppo"
    name, why = choose_final(order, stages, {"rlhf": {"met": False}, "grpo": {"met": True}})
    assert name == "grpo" and "grpo" in why
    name, why = choose_final(order, {"sft": {}, "assistant": {}, "ppo": {}}, {"rlhf": {"met": None}})
    assert name == "assistant" and "ppo did not replace it" in why
    assert choose_final(["tokenizer", "pretrain"], {"tokenizer": {}, "pretrain": {}}, {}) is None
