"""HumanEval in the sandbox (chatstack.evaluation.humaneval) and the `real` suite on local copies:
a right completion passes, wrong or hostile ones fail and stay contained, a perfect model scores
1.0, and a tiny random model runs MMLU and HumanEval through `chatstack eval --config`."""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers_tiny_model import build_tiny_model

from chatstack.evaluation import humaneval as he
from chatstack.evaluation import runners as R
from chatstack.evaluation import suite_config as SC
from chatstack.tools.sandbox import SandboxLimits

DATA_ROOT = Path("/work/shared/data")
HUMANEVAL = DATA_ROOT / "eval" / "humaneval" / "HumanEval.jsonl.gz"
needs_data = pytest.mark.skipif(not HUMANEVAL.is_file() or not (DATA_ROOT / "eval" / "mmlu").is_dir(),
                                reason="shared eval data not present")
QUICK = SandboxLimits(cpu_seconds=2, wall_seconds=4, max_output_chars=1 << 20)


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    if not HUMANEVAL.is_file():
        pytest.skip("shared eval data not present")
    return he.load_problems({"files": str(HUMANEVAL)}, 3)


def test_right_code_passes_wrong_code_fails(problems):
    p = problems[0]
    assert [he.check(q, q["canonical_solution"], QUICK).passed for q in problems] == [True] * 3
    wrong = he.check(p, "    return False\n", QUICK)
    assert not wrong.passed and wrong.error == "AssertionError"
    assert not he.check(p, "    return True +\n", QUICK).passed  # a syntax error
    assert not he.check(p, "", QUICK).passed  # the stub returns None


def test_hostile_code_fails_and_is_contained(problems, tmp_path):
    p = problems[0]
    outside = tmp_path / "written-by-the-model"
    v = he.check(p, f"    open({str(outside)!r}, 'w').write('x')\n    return True\n", QUICK)
    assert not v.passed and "blocked by the sandbox" in v.error and not outside.exists()
    v = he.check(p, f"    import os\n    os.system('touch {outside}')\n    return True\n", QUICK)
    assert not v.passed and not outside.exists()
    t0 = time.time()
    v = he.check(p, "    while True:\n        pass\n", QUICK)
    assert not v.passed and ("CPU time" in v.error or "timed out" in v.error) and time.time() - t0 < 10
    # leaving before the tests run is no pass (a bare exit status 0 would read as one)
    for code in ("    import sys\n    sys.exit(0)\n", "    import os\n    os._exit(0)\n"):
        assert not he.check(p, code, QUICK).passed
    faked = "    print('chatstack-humaneval-passed-0000000000000000')\n    raise SystemExit(0)\n"
    assert not he.check(p, faked, QUICK).passed  # the token is random per run


def test_completion_and_reply_parsing():
    assert he.truncate("    return 1\n\n\ndef helper():\n    pass\n") == "    return 1\n\n"
    assert he.truncate("    return 1\nif __name__ == '__main__':\n    f()") == "    return 1"
    assert he.truncate("    x = 1  # ok\n    return x\n# trailing") == "    x = 1  # ok\n    return x"
    assert he.extract_code("Here:\n```python\ndef f():\n    return 2\n```\nDone.") == "def f():\n    return 2\n"
    assert he.extract_code("```\n    return 2\n```") == "    return 2\n"
    assert he.extract_code("    return 2") == "    return 2"


class FakeEngine:
    """A model that answers every HumanEval problem with its canonical solution."""
    context_limit = 4096

    def __init__(self, by_prompt: dict[str, str]):
        self.by_prompt = by_prompt

    def render(self, conv):
        return conv[-1]["content"]

    def encode(self, text):
        return text.split()

    def complete(self, prompts, **kw):
        return [self.by_prompt[p] + "\n\ndef unrelated():\n    raise SystemExit(1)\n" for p in prompts]

    def chat(self, convs, **kw):
        return [f"Sure.\n```python\n{c[-1]['content']}{self.by_prompt[c[-1]['content']]}```" for c in convs]


@needs_data
@pytest.mark.parametrize("kind", ["base", "chat"])
def test_a_perfect_model_scores_one(kind):
    rows = he.load_problems({"files": str(HUMANEVAL)}, 4)
    engine = FakeEngine({r["prompt"]: r["canonical_solution"] for r in rows})
    suite = SimpleNamespace(batch_size=4, local=SC.load_suite("real").local)
    ctx = R.Context(Path("m"), engine, kind, suite, 4, str(DATA_ROOT), "cpu", local_data=True)
    out = R.run_humaneval(ctx, SC.HumanEvalConfig())
    assert out["evals"] == {"humaneval": {"pass@1": 1.0}} and out["n"] == 4
    assert out["prompt"] == ("chat template" if kind == "chat" else "completion")


def test_real_suite_names_the_benchmarks_and_their_local_copies():
    from chatstack.evaluation.harness import task_names
    real = SC.load_suite("real")
    assert real.evals["lm_eval"].tasks == ["arc_easy", "arc_challenge", "hellaswag", "mmlu", "gsm8k"]
    assert all(real.local[t] in task_names() for t in real.evals["lm_eval"].tasks)
    assert real.evals["humaneval"].dataset == "humaneval" and "openai/openai_humaneval" in real.local


@needs_data
def test_tiny_random_model_runs_mmlu_and_humaneval_as_a_recipe_stage(tmp_path, capsys):
    """`chatstack eval --config` as the gpt2-124m recipe's eval stage, on the local copies."""
    from chatstack.cli import main
    model = build_tiny_model(tmp_path / "pretrain", n_positions=1024)
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"model: {model}\nsuite: real\noutput_dir: {tmp_path / 'eval'}\n")
    rc = main(["eval", "--config", str(cfg), "--local_data", "true", "--limit", "2", "--only", "lm_eval,humaneval",
               "--data_root", str(DATA_ROOT), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "eval" / "eval_real.json").read_text())
    assert res["local_data"] and {n: r["status"] for n, r in res["runs"].items()} == {"lm_eval": "ok", "humaneval": "ok"}
    assert res["runs"]["lm_eval"]["n"]["chatstack_mmlu"] == 2 and 0 <= res["evals"]["chatstack_mmlu"]["acc"] <= 1
    he_run = res["runs"]["humaneval"]
    assert he_run["n"] == 2 and he_run["prompt"] == "completion" and res["evals"]["humaneval"]["pass@1"] == 0.0
    assert all(s["error"] for s in he_run["samples"])  # random code: it ran, in the sandbox, and failed
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["humaneval_pass@1"] == 0.0 and "chatstack_mmlu_acc" in metrics and metrics["seconds"] > 0
