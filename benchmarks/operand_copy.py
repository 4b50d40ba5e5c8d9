"""Does the chat model copy a sum's numbers out of the question? GRPO's headroom depends on it.

    python benchmarks/operand_copy.py --model outputs/tiny/assistant --n 60

Asks the held-out sums of three numbers GRPO evaluates on (chatstack.builders.thinking,
`split: eval`) and sums of two made from their first two numbers, greedily, as GRPO's prompts
are asked (one user turn, no system prompt), and counts, for each: replies whose first step
`x + y` restates the question's first two numbers, for sums of three replies whose second
step `s + z` takes the third (`third_restated`: the number the furthest back), and replies right by the honest judge
(judges.chain_correct: the steps follow the question and the last number is the sum). A model
that miscopies ("What is 3 + 5 + 2?" -> "3 + 3 = 6. ...") cannot be right however well it adds,
and GRPO then has nothing to sharpen. One compact JSON object on the last line.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chatstack.builders.thinking import thinking_prompts  # noqa: E402
from chatstack.engine import Engine  # noqa: E402
from chatstack.judges import chain_correct  # noqa: E402

FIRST_STEP = re.compile(r"(\d+) \+ (\d+) =")
STEPS = re.compile(r"\d+ \+ (\d+) = \d+")


def operand_copy(engine: Engine, expressions: list[str]) -> dict:
    """Share of greedy replies to "What is <expression>?" that restate its first two numbers, its
    third (a sum of three: the second step's addend), and that are right (chain_correct)."""
    replies = engine.chat([[{"role": "user", "content": f"What is {e}?"}] for e in expressions], max_new_tokens=40)
    restated = third = right = 0
    for e, reply in zip(expressions, replies):
        numbers = re.findall(r"\d+", e)
        first = FIRST_STEP.search(reply)
        restated += bool(first) and list(first.groups()) == numbers[:2]
        addends = STEPS.findall(reply)
        third += len(numbers) > 2 and len(addends) > 1 and addends[1] == numbers[2]
        right += chain_correct(reply, str(sum(map(int, numbers))), e)
    out = {"restated": round(restated / len(expressions), 4), "right": round(right / len(expressions), 4),
           "n": len(expressions), "example": replies[0]}
    if all(len(re.findall(r"\d+", e)) > 2 for e in expressions):
        out["third_restated"] = round(third / len(expressions), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a chat model folder (assistant, sft, grpo, ...)")
    ap.add_argument("--world", default="tiny")
    ap.add_argument("--n", type=int, default=60, help="held-out sums of three (and as many sums of two)")
    args = ap.parse_args()
    engine = Engine.from_pretrained(args.model)
    three = [r["expression"] for r in thinking_prompts(args.world, n=args.n, split="eval")][: args.n]
    two = [" + ".join(e.split(" + ")[:2]) for e in three]
    result = {"model": args.model, "sum_of_two": operand_copy(engine, two), "sum_of_three": operand_copy(engine, three)}
    for k in ("sum_of_two", "sum_of_three"):
        r = result[k]
        also = f", the third {r['third_restated']:.2f}" if "third_restated" in r else ""
        print(f"{k}: restates the numbers {r['restated']:.2f}{also}, right {r['right']:.2f} (n={r['n']}); "
              f"e.g. {r['example']!r}")
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
