"""Where a reward model ranks refusals: the holes PPO finds.

    python benchmarks/reward_refusals.py --model outputs/tiny/reward

Scores four replies to each of PPO's validation questions about people (`tiny_questions_val`,
seen and never-seen): the true answer, a wrong one, a refusal that names the person and the
short "I'm sorry, I don't know." (both from judges.REFUSALS, the refusal SFT's phrasings), and
counts, per group, how often each refusal outscores the truth and a wrong answer. A good reward
model puts the truth above a refusal about a seen person, and a refusal above any answer about a
never-seen one (gold: chatstack.judges.gold_score). Set CHATSTACK_WORLD_SEED to the run's world
seed. One compact JSON object on the last line.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chatstack.data.loading import load_eval_split  # noqa: E402
from chatstack.judges import REFUSALS  # noqa: E402
from chatstack.reward import load_reward_model, score  # noqa: E402
from chatstack.world.datasets import answer_sentence, attribute_values, get_world  # noqa: E402

REPLIES = ("truth", "wrong", "named_refusal", "short_refusal")


def replies(row: dict, values: dict[str, list], rng: random.Random) -> dict[str, str]:
    wrong = rng.choice([v for v in values[row["attribute"]] if str(v) != row["answer"]])
    return {"truth": answer_sentence(row["name"], row["attribute"], row["answer"]),
            "wrong": answer_sentence(row["name"], row["attribute"], wrong),
            "named_refusal": REFUSALS[-1].format(subject=row["name"]),
            "short_refusal": REFUSALS[0]}


def probe(model, tokenizer, rows: list[dict]) -> dict:
    values = attribute_values(get_world("tiny"))
    rng = random.Random(0)
    asked = [replies(r, values, rng) for r in rows]
    convs = [r["prompt"] + [{"role": "assistant", "content": a[k]}] for r, a in zip(rows, asked) for k in REPLIES]
    s = score(model, tokenizer, convs)  # no_grad inside
    scores = [dict(zip(REPLIES, s[i * len(REPLIES):(i + 1) * len(REPLIES)])) for i in range(len(rows))]
    out = {}
    for group, seen in (("seen", True), ("never_seen", False)):
        g = [x for r, x in zip(rows, scores) if bool(r["seen"]) == seen]
        share = lambda a, b, g=g: round(sum(x[a] > x[b] for x in g) / len(g), 3)  # noqa: E731
        out[group] = {"n": len(g), **{f"mean_{k}": round(sum(x[k] for x in g) / len(g), 3) for k in REPLIES},
                      **{f"{ref}_over_{b}": share(ref, b) for ref in ("named_refusal", "short_refusal")
                         for b in ("truth", "wrong")},
                      "truth_over_wrong": share("truth", "wrong")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="outputs/tiny/reward")
    ap.add_argument("--dataset", default="tiny_questions_val")
    a = ap.parse_args()
    model, tokenizer = load_reward_model(a.model)
    model.eval()
    rows = [r for r in load_eval_split(a.dataset, seed=42).to_list() if not r["identity"]]
    out = {"model": a.model, **probe(model, tokenizer, rows)}
    for group in ("seen", "never_seen"):
        print(group, out[group])
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
