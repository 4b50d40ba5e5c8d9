"""HumanEval (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"): 164 Python
functions to write from a signature and docstring, each checked by its unit tests; pass@1 of
the greedy answer.

The problems load through chatstack.data (`openai/openai_humaneval` by Hub id, or the local
copy of the same file, e.g. ../shared/data/eval/humaneval). Model-written code is untrusted:
every program (the prompt, the model's code, the problem's tests and `check(entry_point)`)
runs only in chatstack.tools.sandbox, a fresh contained process with no network, no files
outside its own directory and CPU, wall-clock and memory limits; never in this process.

A program passes when it exits cleanly *and* prints, last, a random token written after the
tests: code that exits early (`exit(0)`) before the tests run does not pass.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from chatstack.errors import DataError
from chatstack.tools.sandbox import SandboxLimits, run_sandboxed

COLUMNS = ("task_id", "prompt", "test", "entry_point")
# the Codex paper's stop sequences: top-level code after the function ends the completion
STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S)


@dataclass
class Verdict:
    task_id: str
    passed: bool
    error: str | None  # why it failed: the sandbox's one line (an exception, a timeout, a blocked action)


def load_problems(spec, n: int | None = None) -> list[dict]:
    """HumanEval rows from a dataset spec (a datasets_cfg name or mapping), the first `n`."""
    from chatstack.data.loading import load_data
    rows = load_data(spec).to_list()
    if not rows:
        raise DataError(f"humaneval: dataset {spec!r} holds no problems")
    missing = [c for c in COLUMNS if c not in rows[0]]
    if missing:
        raise DataError(f"humaneval: dataset {spec!r} lacks column(s) {missing}; has {sorted(rows[0])}")
    return rows[:n] if n else rows


def truncate(completion: str) -> str:
    """A base model's continuation of the prompt, cut where top-level code starts."""
    cuts = [i for i in (completion.find(s) for s in STOP) if i >= 0]
    return completion[:min(cuts)] if cuts else completion


def extract_code(reply: str) -> str:
    """A chat model's code: its first fenced block, else the whole reply (as nanochat reads it)."""
    m = FENCE.search(reply)
    return m.group(1) if m else reply


def program(problem: dict, code: str, token: str = "") -> str:
    """The prompt (its imports and helpers; a stub that `code` may redefine), the code, the tests."""
    tail = f"\nprint({token!r})\n" if token else ""
    return f"{problem['prompt']}{code}\n\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n{tail}"


def check(problem: dict, code: str, limits: SandboxLimits | None = None) -> Verdict:
    """Run one program in the sandbox: passed if the tests ran to the end without an error."""
    token = f"chatstack-humaneval-passed-{secrets.token_hex(8)}"
    limits = limits or SandboxLimits(max_output_chars=1 << 20)
    res = run_sandboxed(program(problem, code, token), limits)
    last = res.output.rstrip().rsplit("\n", 1)[-1] if res.output else ""
    passed = res.ok and last == token
    error = None if passed else (res.error or "exited before the tests ran to the end")
    return Verdict(problem["task_id"], passed, error)
