"""Knowledge probing on real questions: TriviaQA (probe half) and Natural Questions, any causal
LM path. Prints one JSON object: the label distribution of the probe (known / unknown /
unsure), the sample accuracy, and greedy accuracy / refusal / hallucination on the eval half
of TriviaQA and on Natural Questions.

    python benchmarks/refusal_triviaqa.py --model outputs/tiny/sft [--n 200] [--k 5]
    python benchmarks/refusal_triviaqa.py --model gpt2 --prompt_format completion   # a base model

At tiny scale every answer is wrong (the tiny world has no trivia); the point is the path.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("CHATSTACK_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="outputs/tiny/sft")
    p.add_argument("--n", type=int, default=200, help="questions per set")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--prompt_format", default="chat")
    p.add_argument("--max_new_tokens", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    from chatstack.builders.refusals import RefusalConfig, probe_and_build
    from chatstack.evaluation.refusal import RefusalEvalConfig, evaluate

    tqa = SHARED / "eval" / "triviaqa" / "triviaqa_sm_sub.jsonl.gz"
    nq = SHARED / "eval" / "natural_questions" / "natural_questions_closed.jsonl.gz"
    common = dict(prompt_format=a.prompt_format, max_new_tokens=a.max_new_tokens, max_facts=a.n, seed=a.seed)
    t0 = time.time()
    _, rows, stats = probe_and_build(RefusalConfig(facts=str(tqa), part="probe", model_name_or_path=a.model, k=a.k,
                                                   temperature=a.temperature, unsure_policy="refuse", **common))
    probe_s = time.time() - t0
    result = {"model": a.model, "probe_triviaqa": {**stats, "seconds": round(probe_s, 1)},
              "examples": [{k: r[k] for k in ("question", "samples", "judgements", "label")} for r in rows[:3]]}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in (("triviaqa_eval_half", tqa), ("natural_questions", nq)):
            t0 = time.time()
            m = evaluate(RefusalEvalConfig(facts=str(path), part="eval" if name.startswith("triviaqa") else "all",
                                           before=a.model, after=None, probes=None, plot=False,
                                           output_dir=str(Path(tmp) / name), **common))
            result[name] = {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            result[name]["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
