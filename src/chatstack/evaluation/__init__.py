"""Evaluation: chatstack's own evals on the synthetic world (world QA, refusal, tools,
arithmetic, identity) and standard benchmarks through lm-evaluation-harness on local data
(`chatstack.evaluation.harness`).

`chatstack eval --suite NAME ...` runs a suite (`chatstack.evaluation.suite`);
`chatstack eval --model PATH --tasks ...` (no --suite) runs lm-eval tasks only;
`chatstack eval --write-tasks DIR` writes the lm-eval task YAMLs for the `lm_eval` CLI.
Submodules are imported only when called, so `import chatstack.evaluation` stays light.
"""
from __future__ import annotations


def main(argv: list[str]) -> int:
    if any(a == "--suite" or a.startswith("--suite=") for a in argv):
        import sys
        from importlib.util import find_spec

        if find_spec("chatstack.evaluation.suite") is None:
            print("chatstack eval: error: --suite needs chatstack.evaluation.suite, which is not written yet; "
                  "run lm-eval tasks with `chatstack eval --model PATH --tasks chatstack_local`", file=sys.stderr)
            return 2
        from chatstack.evaluation.suite import main as suite_main

        return suite_main(argv)
    from chatstack.evaluation.harness import main as harness_main

    return harness_main(argv)
