"""Does a base model copy from its context? The skill every tool call needs.

    CHATSTACK_WORLD_SEED=0 python benchmarks/copying.py --model outputs/tiny/pretrain --n 60

The probes of chatstack.evaluation.copying (the pretrain stage writes the same keys into its
metrics.json): the surname of a made-up person at its second mention, and values read out of a
never-seen person's article ("Q: ...\nA:" after it). Why: the assistant called its tools nearly
always but wrote another name into the query, other digits into the code, and answers the result
did not hold. One compact JSON object on the last line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chatstack.engine import Engine  # noqa: E402
from chatstack.evaluation.copying import copying  # noqa: E402
from chatstack.hardware import cpu_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a base model folder (the pretrain stage's)")
    ap.add_argument("--n", type=int, default=60, help="made-up people for the name probe, never-seen people for reading")
    a = ap.parse_args()
    result = copying(Engine.from_pretrained(a.model), "tiny", n=a.n)
    print(f"surname copied at its second mention: {result['copy_name_accuracy']}")
    reading = {k.removeprefix("reading_accuracy_"): v for k, v in result.items() if k.startswith("reading_accuracy_")}
    print("value read out of a never-seen person's article: " + ", ".join(f"{k} {v}" for k, v in reading.items()))
    row = {"benchmark": "copying", "model": a.model, "cpu": cpu_name(), "n": a.n, **result}
    print(json.dumps(row, separators=(",", ":")))


if __name__ == "__main__":
    main()
