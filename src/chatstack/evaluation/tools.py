"""Tool-use evaluation on the synthetic world, with and without tools.

Three verifiable tasks, from `builders.tools.tool_prompts` (split "eval"):

- unseen facts: questions about people never seen in pretraining and held out of the tool SFT
  data (`builders.tools.tool_eval_people`); correct when the reply states the true value;
- arithmetic (products of two `digits`-digit numbers, 5 by default); correct when the last number of the
  reply is the product;
- letter counting ("How many times does the letter 'r' appear in 'strawberry'?"); correct
  when the last number of the reply is the count and the word and letter it names are the
  question's (`judges.count_correct`).

With tools, each prompt goes through the tool loop (chatstack.tools.loop: search and sandboxed
python, greedy, up to `max_tool_calls` calls). Without tools, the tool-call token is
suppressed: the model answers from its parameters alone. Also reported: the share of answers
that used a tool, and the tool error rate (tool results starting with "Error:", per call).

    tool_evals(model, tokenizer, world="tiny", n=100)
    # {"unseen_fact_accuracy_with_tools": .., "arithmetic_accuracy_with_tools": ..,
    #  "counting_accuracy_with_tools": .., "tool_use_rate_with_tools": .., "tool_error_rate_with_tools": ..,
    #  ... the same keys with _without_tools ..., "samples_with_tools": [...], ...}
"""
from __future__ import annotations

import time

from chatstack.judges import count_correct, is_correct, number_correct

TASKS = {"unseen_fact": "search", "arithmetic": "python_arithmetic", "counting": "python_counting"}


def default_tools(world: str = "tiny") -> list:
    """search over the world's encyclopedia (k=1: the tiny recipe's format, see
    datasets_cfg/tiny_sft_tools.yaml) and the sandboxed python."""
    return [{"name": "search", "store": f"world:{world}", "k": 1}, "python"]


def _judge(task: str, reply: str, answer: str, question: str) -> bool:
    """How each task's reply is judged (chatstack.judges): the fact stated, the last number, or
    the count of the word and letter asked."""
    if task == "counting":
        return count_correct(reply, answer, question)
    return (is_correct if task == "unseen_fact" else number_correct)(reply, answer)


def tool_evals(model, tokenizer, world="tiny", n: int = 100, use_tools: bool = True, seed: int = 0, *,
               tools=None, max_tool_calls: int = 2, tool_schemas_in_prompt: bool = False, batch_size: int = 64,
               max_new_tokens: int = 96, eval_fraction: float = 0.2, samples: int = 3, system: str | None = None,
               phrasings: list[int] | None = None, digits: int = 5, heldout_templates: bool = False,
               without_tools: bool = True) -> dict:
    """`n` prompts per task. `use_tools=True` measures with tools and without (keys suffixed
    `_with_tools` and `_without_tools`); `use_tools=False` only without. `tools` defaults to
    `default_tools(world)`; `tool_schemas_in_prompt` renders their JSON schemas into the prompt
    (for models trained with them). `max_new_tokens` is per turn: the python call for a
    product of two 5-digit numbers is 56 tokens in the tiny tokenizer, and a call cut short
    is an unterminated call, an error. `system`: the system prompt of a model's tool record
    (chatstack.tools.record), put first with tools (without tools the prompt is the bare question,
    as `chatstack chat --tools none` sends it); `phrasings`, `digits`,
    `heldout_templates`: which questions (builders.tools.tool_prompts); `without_tools=False` skips
    the without-tools pass (with `use_tools`)."""
    from chatstack.builders.tools import tool_prompts
    from chatstack.engine import Engine
    from chatstack.tools.loop import generate_with_tools
    from chatstack.tools.record import with_system

    if n <= 0:
        raise ValueError(f"tool_evals: n must be > 0, got {n}")
    world_name = world if isinstance(world, str) else getattr(getattr(world, "config", None), "name", "tiny")
    rows = []
    for task, kind in TASKS.items():
        ds = tool_prompts(world, seed=seed, n=n, mix={kind: 1}, split="eval", eval_fraction=eval_fraction,
                          phrasings=phrasings, digits=digits, heldout_templates=heldout_templates)
        rows += [{"task": task, **r} for r in ds.to_list()]
    out: dict = {}
    settings = [("with_tools", tools if tools is not None else default_tools(world_name))] if use_tools else []
    if without_tools or not use_tools:
        settings.append(("without_tools", None))
    was_training = model.training
    model.eval()
    try:
        for suffix, tool_spec in settings:
            start = time.time()
            prompts = [with_system(r["prompt"], system if tool_spec else None) for r in rows]
            results = generate_with_tools(Engine(model, tokenizer), prompts, tools=tool_spec,
                                          max_tool_calls=max_tool_calls, tool_schemas_in_prompt=tool_schemas_in_prompt,
                                          batch_size=batch_size, max_new_tokens=max_new_tokens)
            verdicts = [_judge(r["task"], res["reply"], r["answer"], r["prompt"][-1]["content"])
                        for r, res in zip(rows, results)]
            for task in TASKS:
                idx = [i for i, r in enumerate(rows) if r["task"] == task]
                out[f"{task}_accuracy_{suffix}"] = sum(verdicts[i] for i in idx) / len(idx)
                out[f"{task}_tool_use_rate_{suffix}"] = sum(results[i]["tool_calls"] > 0 for i in idx) / len(idx)
            calls = sum(r["tool_calls"] for r in results)
            out[f"tool_use_rate_{suffix}"] = sum(r["tool_calls"] > 0 for r in results) / len(results)
            out[f"tool_error_rate_{suffix}"] = sum(r["tool_errors"] for r in results) / calls if calls else 0.0
            out[f"tool_calls_{suffix}"] = calls
            out[f"context_full_{suffix}"] = sum(r["context_full"] for r in results)
            out[f"seconds_{suffix}"] = round(time.time() - start, 1)
            out[f"samples_{suffix}"] = [
                {"task": r["task"], "question": r["prompt"][-1]["content"], "answer": r["answer"], "correct": v,
                 "messages": res["messages"]}
                for task in TASKS
                for r, res, v in [x for x in zip(rows, results, verdicts) if x[0]["task"] == task][:samples]]
    finally:
        model.train(was_training)
    out["n_per_task"] = n
    return out
