"""Evaluation: chatstack's own evals on the synthetic world (world QA, refusal, tools,
arithmetic, identity) and standard benchmarks through lm-evaluation-harness on local data
(`chatstack.evaluation.harness`).

`chatstack eval --model PATH --suite NAME` runs a suite (`chatstack eval --list-suites` lists
them; `chatstack eval --config recipes/<recipe>/eval.yaml` one named in a recipe): `suite`
runs one and writes its result, `suite_config` reads the suite files, `model_kind` tells base
from chat models, `runners` holds each eval's runner (`humaneval`: code run in the sandbox),
`tables` the metric tables (also the speedrun's and the report's);
`chatstack eval --model PATH --tasks ...` (no --suite) runs lm-eval tasks only;
`chatstack eval --write-tasks DIR` writes the lm-eval task YAMLs for the `lm_eval` CLI.
Submodules are imported only when called, so `import chatstack.evaluation` stays light.
"""
from __future__ import annotations


def main(argv: list[str]) -> int:
    if any(a in ("--suite", "--list-suites", "--list_suites", "--config") or a.startswith("--suite=") for a in argv):
        from chatstack.evaluation.suite import main as suite_main

        return suite_main(argv)
    from chatstack.evaluation.harness import main as harness_main

    return harness_main(argv)
