"""The assistant's tools, measured as a user meets them (`chatstack build assistant_eval`).

The model is opened with the tools its folder records (chatstack.tools.record: the search
store and result count, the sandboxed python, the system prompt of its training data), the
way `chatstack chat` and `serve` open it, and asked, greedily through the same tool loop:

- search: questions about people it never read about and never saw in SFT (the eval share of
  builders.tools.tool_eval_people), with tools and without (`before`: it can only refuse or
  guess); in the trained phrasings and in the held-out one;
- python_arithmetic: products of two `digits`-digit numbers;
- letter_counting: "How many times does the letter 'r' appear in 'strawberry'?", and the
  held-out phrasing without quotes;
- and where no tool is needed, the same way (tools on, the system prompt first): its identity
  in the held-out phrasings and facts about people it read about. A model that saw the system
  prompt only on tool conversations calls a tool for "Who are you?".

metrics.json: `<task>_accuracy`, `<task>_accuracy_without_tools`, `<task>_accuracy_heldout_phrasing`,
their tool-use rates, `tool_error_rate` (results starting with "Error:", per call),
`identity_accuracy_with_tools`, `seen_qa_accuracy_with_tools` (and their tool-use rates) and samples.
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chatstack.errors import DataError

# tools.tool_evals' task names -> the lesson card's
TASKS = {"unseen_fact": "search", "arithmetic": "python_arithmetic", "counting": "letter_counting"}


@dataclass
class AssistantEvalConfig:
    builder: str = field(default="assistant_eval", metadata={"help": "the command this config is for"})
    output_dir: str = "outputs/tiny/eval_assistant"
    model: str = field(default="outputs/tiny/final", metadata={"help": "a chat model folder with a tool record"})
    world: str = "tiny"
    n: int = field(default=100, metadata={"help": "prompts per task and phrasing"})
    digits: int = field(default=3, metadata={"help": "digits of each factor of the products"})
    trained_phrasings: list[int] = field(default_factory=lambda: [0, 1])
    heldout_phrasings: list[int] = field(default_factory=lambda: [2])
    max_tool_calls: int = 2
    identity: list[str] = field(default_factory=lambda: ["Tiny Chat", "the chatstack team"],
                                metadata={"help": "the name and maker its identity data taught"})
    seen_people: int = field(default=50, metadata={"help": "questions about people it read about (0: none)"})
    max_new_tokens: int = 64
    batch_size: int = 64
    seed: int = 0


def evaluate(cfg: AssistantEvalConfig) -> dict:
    from chatstack.chat import load_chat_model
    from chatstack.evaluation.tools import tool_evals
    from chatstack.stage import write_metrics
    from chatstack.tools.record import read_record

    record = read_record(cfg.model)
    if record is None:
        raise DataError(f"assistant_eval: {cfg.model} records no tools (chat_tools.json); train it with an SFT "
                        "stage that sets chat_tools")
    start = time.time()
    model, tokenizer = load_chat_model(cfg.model)
    common = dict(world=cfg.world, n=cfg.n, seed=cfg.seed, tools=record["tools"], system=record.get("system"),
                  max_tool_calls=cfg.max_tool_calls, batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens,
                  digits=cfg.digits)
    trained = tool_evals(model, tokenizer, phrasings=cfg.trained_phrasings, **common)
    heldout = tool_evals(model, tokenizer, phrasings=cfg.heldout_phrasings, heldout_templates=True,
                         without_tools=False, **common)
    metrics: dict = {}
    for task, name in TASKS.items():
        metrics[f"{name}_accuracy"] = round(trained[f"{task}_accuracy_with_tools"], 4)
        metrics[f"{name}_accuracy_without_tools"] = round(trained[f"{task}_accuracy_without_tools"], 4)
        metrics[f"{name}_accuracy_heldout_phrasing"] = round(heldout[f"{task}_accuracy_with_tools"], 4)
        metrics[f"{name}_tool_use_rate"] = round(trained[f"{task}_tool_use_rate_with_tools"], 4)
        metrics[f"{name}_tool_use_rate_without_tools"] = round(trained[f"{task}_tool_use_rate_without_tools"], 4)
    metrics.update(no_tool_needed(model, tokenizer, cfg, record))
    calls = trained["tool_calls_with_tools"] + heldout["tool_calls_with_tools"]
    errors = (trained["tool_error_rate_with_tools"] * trained["tool_calls_with_tools"]
              + heldout["tool_error_rate_with_tools"] * heldout["tool_calls_with_tools"])
    metrics.update(tool_error_rate=round(errors / calls, 4) if calls else 0.0, tool_calls=calls,
                   context_full=trained["context_full_with_tools"] + heldout["context_full_with_tools"],
                   n_per_task=cfg.n, model=str(Path(cfg.model).resolve()), tools=record["tools"],
                   system=record.get("system"), samples=trained["samples_with_tools"],
                   samples_heldout_phrasing=heldout["samples_with_tools"], config=asdict(cfg),
                   seconds=round(time.time() - start, 1))
    write_metrics(cfg.output_dir, metrics)
    return metrics


def no_tool_needed(model, tokenizer, cfg: AssistantEvalConfig, record: dict) -> dict:
    """Identity (held-out phrasings) and facts about seen people, asked with the tools on and the
    record's system prompt, as `chatstack chat` asks them: right answers and how often a tool was
    called (a lookup of a seen person is allowed: the store holds everyone)."""
    from chatstack.builders.identity import identity_eval_questions
    from chatstack.engine import Engine
    from chatstack.judges import identity_correct, is_correct
    from chatstack.tools.loop import generate_with_tools
    from chatstack.tools.record import with_system
    from chatstack.world.datasets import qa

    cases = [("identity", q["question"], q["expected"], identity_correct) for q in identity_eval_questions(*cfg.identity)]
    seen = qa(cfg.world, splits=["qa_train", "qa_heldout"], phrasings=cfg.trained_phrasings[:1]).to_list()
    random.Random(f"{cfg.seed}-assistant-seen").shuffle(seen)
    cases += [("seen_qa", r["question"], r["answer"], is_correct) for r in seen[:cfg.seen_people]]
    prompts = [with_system([{"role": "user", "content": q}], record.get("system")) for _, q, _, _ in cases]
    results = generate_with_tools(Engine(model, tokenizer), prompts, tools=record["tools"],
                                  max_tool_calls=cfg.max_tool_calls, batch_size=cfg.batch_size,
                                  max_new_tokens=cfg.max_new_tokens)
    out: dict = {}
    for task in ("identity", "seen_qa"):
        rows = [(c, r) for c, r in zip(cases, results) if c[0] == task]
        if rows:
            out[f"{task}_accuracy_with_tools"] = round(sum(judge(r["reply"], want) for (_, _, want, judge), r in rows)
                                                       / len(rows), 4)
            out[f"{task}_tool_use_rate"] = round(sum(r["tool_calls"] > 0 for _, r in rows) / len(rows), 4)
            out[f"{task}_samples_with_tools"] = [{"question": q, "answer": want, "messages": r["messages"]}
                                                 for (_, q, want, _), r in rows[:3]]
    return out
