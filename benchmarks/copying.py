"""Does a base model copy from its context? The skill every tool call needs.

    CHATSTACK_WORLD_SEED=0 python benchmarks/copying.py --model outputs/tiny/pretrain --n 60

Two completion-style probes, greedy, on text the model cannot have learnt by heart:

- `name`: an article about a made-up person (builders.midtraining.reading_documents, a seed no
  training run uses), cut right after the second mention of the first name: is the surname written
  next? It was written once before, a few tokens back, and nowhere in training.
- `reading`: the article of a never-seen person of the world (paraphrase 0, as the search tool
  returns it), then "Q: <question>\\nA:" for each attribute: does the answer state the value
  the article holds? Chance is a lucky guess of a common value.

Why: the assistant called its tools nearly always but wrote another name into the query, other
digits into the code, and answers the result did not hold; everything else in the tiny world's
pretraining text can be recalled instead of read. One compact JSON object on the last line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from chatstack.builders.midtraining import reading_documents  # noqa: E402
from chatstack.builders.tools import practice_people  # noqa: E402
from chatstack.hardware import cpu_name  # noqa: E402
from chatstack.world.datasets import get_world  # noqa: E402
from chatstack.world.generator import ATTRIBUTES  # noqa: E402


def greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    ids = tokenizer(prompt, return_tensors="pt").input_ids[:, -model.config.n_positions + max_new_tokens:]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def name_copy(model, tokenizer, n: int) -> tuple[int, int]:
    seed = 9_999
    people = [p for batch in practice_people("tiny", n, seed) for p in batch]  # the people reading_documents writes
    hits = total = 0
    for person, doc in zip(people, reading_documents("tiny", seed=seed, n=n)):
        first, last = person.name.split(" ", 1)
        article = doc["text"].split("\n\n")[0]
        second = article.find(first + " ", article.find(first + " ") + 1)
        if second < 0:
            continue
        total += 1
        hits += greedy(model, tokenizer, article[:second + len(first)], 4).startswith(" " + last)
    return hits, total


def reading(model, tokenizer, n: int) -> dict[str, float]:
    w = get_world("tiny")
    people = w.by_split("unseen")[:n]
    out = {}
    for attribute in ATTRIBUTES:
        prompts = [(p, f"{w.article(p, 0)}\n\nQ: {w.questions(p, attribute)[0]}\nA:") for p in people]
        right = sum(p.value(attribute) in greedy(model, tokenizer, prompt, 16).split("\n")[0] for p, prompt in prompts)
        out[attribute] = round(right / len(people), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a base model folder (the pretrain stage's)")
    ap.add_argument("--n", type=int, default=60, help="articles per probe (and never-seen people)")
    a = ap.parse_args()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model).eval()
    hits, total = name_copy(model, tokenizer, a.n)
    read = reading(model, tokenizer, a.n)
    print(f"surname copied at its second mention: {hits} / {total}")
    print("value read out of a never-seen person's article: " + ", ".join(f"{k} {v}" for k, v in read.items()))
    print(json.dumps({"benchmark": "copying", "model": a.model, "cpu": cpu_name(), "name_copied": hits,
                      "name_probes": total, "reading": read, "reading_mean": round(sum(read.values()) / len(read), 3)},
                     separators=(",", ":")))


if __name__ == "__main__":
    main()
