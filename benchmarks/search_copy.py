"""Where the search lesson fails: the query or the answer.

    python benchmarks/search_copy.py --model outputs/tiny/final --n 100

Asks a model trained with tools (its recorded tools and system prompt, as `chatstack chat`
opens it) about never-seen people (the tool eval's held-out people) and about seen people held
out of QA, and counts, for each group: replies that called a tool, first results that hold the
true answer (the query named the right person), right replies, and right replies among those
whose result held the answer (the answer copied from the result). A third group,
`never_seen_given_result`, asks the never-seen people again with the search call already made
as the training data makes it (the question as the query, the real result: right for every
question of the tiny world) and only the answer left to the model: whether it can read an
answer out of its context at all. One compact JSON object on the last line.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chatstack.builders.tools import tool_prompts  # noqa: E402
from chatstack.chat import load_chat_model  # noqa: E402
from chatstack.engine import Engine  # noqa: E402
from chatstack.evaluation.assistant import AssistantEvalConfig  # noqa: E402
from chatstack.judges import is_correct  # noqa: E402
from chatstack.tools.calls import tool_call  # noqa: E402
from chatstack.tools.loop import generate_with_tools, resolve_tools  # noqa: E402
from chatstack.tools.record import read_record, with_system  # noqa: E402
from chatstack.world.datasets import qa  # noqa: E402


def count(model, tokenizer, record: dict, rows: list[dict]) -> dict:
    """`rows`: {prompt (conversational), answer}, asked as the assistant eval asks them."""
    ev = AssistantEvalConfig()
    done = generate_with_tools(Engine(model, tokenizer), [with_system(r["prompt"], record.get("system")) for r in rows],
                               tools=record["tools"], max_tool_calls=ev.max_tool_calls, batch_size=ev.batch_size,
                               max_new_tokens=ev.max_new_tokens)
    c = {"n": len(rows), "called": 0, "result_right": 0, "right": 0, "right_given_result": 0}
    for r, out in zip(rows, done):
        results = [m["content"] for m in out["messages"] if m["role"] == "tool"]
        right = is_correct(out["reply"], r["answer"])
        c["right"] += right
        c["called"] += bool(results)
        if results and r["answer"] in results[0]:
            c["result_right"] += 1
            c["right_given_result"] += right
    return c


def given_result(model, tokenizer, record: dict, rows: list[dict]) -> dict:
    """The search call made for the model (query = the question, the record's own search tool);
    it writes the answer only, tools off, as the assistant eval's generation does."""
    search = resolve_tools(record["tools"])["search"]
    ev = AssistantEvalConfig()
    convs, result_right = [], 0
    for r in rows:
        question = r["prompt"][-1]["content"]
        result = search(query=question)
        result_right += r["answer"] in result.split("\n")[0]
        convs.append(with_system(r["prompt"], record.get("system")) + [
            {"role": "assistant", "content": "", "tool_calls": [tool_call("search", query=question)]},
            {"role": "tool", "name": "search", "content": result}])
    done = generate_with_tools(Engine(model, tokenizer), convs, tools=None, batch_size=ev.batch_size,
                               max_new_tokens=ev.max_new_tokens)
    right = sum(is_correct(out["reply"], r["answer"]) for r, out in zip(rows, done))
    return {"n": len(rows), "result_right": result_right, "right": right,
            "samples": [{"question": r["prompt"][-1]["content"], "answer": r["answer"], "reply": out["reply"]}
                        for r, out in list(zip(rows, done))[:3]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="outputs/tiny/final")
    ap.add_argument("--world", default="tiny")
    ap.add_argument("--n", type=int, default=100)
    a = ap.parse_args()
    record = read_record(a.model)
    if record is None:
        sys.exit(f"{a.model}: records no tools (chat_tools.json)")
    model, tokenizer = load_chat_model(a.model)
    unseen = tool_prompts(a.world, n=a.n, mix={"search": 1}, split="eval", phrasings=[0, 1]).to_list()
    seen = [{"prompt": [{"role": "user", "content": r["question"]}], "answer": r["answer"]}
            for r in qa(a.world, splits=["qa_heldout"], phrasings=[0]).to_list()]
    random.Random(0).shuffle(seen)
    out = {"model": a.model, "never_seen": count(model, tokenizer, record, unseen),
           "seen_heldout": count(model, tokenizer, record, seen[: a.n]),
           "never_seen_given_result": given_result(model, tokenizer, record, unseen)}
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
