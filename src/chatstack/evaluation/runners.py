"""The runner of each suite section: one function per eval, (Context, section) -> figures.

Every runner returns {"evals": {key: {metric: number}}, "n": ..., plus what it wants kept in
the result's `runs` (samples, the prompt format)}; it raises Skip when it cannot run here
(reported, not an error). Generation is greedy, through chatstack.engine; answers are judged
by chatstack.judges (HumanEval's by running the code in the sandbox). A base model is asked
completion-style (world QA as "Q: ...\\nA:", arithmetic as "3 + 4 ="), a chat model in the
chat template.
"""
from __future__ import annotations

import json
import math
import random
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from chatstack.errors import ConfigError, HarnessError
from chatstack.evaluation.suite_config import (
    WORLD_SPLITS,
    ArithmeticConfig,
    ConversationsConfig,
    HumanEvalConfig,
    LmEvalConfig,
    SuiteConfig,
    ToolsConfig,
    WorldQAConfig,
)
from chatstack.judges import judge, last_number, rates

if TYPE_CHECKING:  # the engine imports torch: the suite's CLI loads it only to run a model
    from chatstack.engine import Engine

SAMPLES = 5  # replies kept per eval in the result
RATES = ("accuracy", "refusal_rate", "hallucination_rate")


@dataclass
class Context:
    """What every runner gets: the model (through its engine), its kind, the suite, the caps."""
    model_path: Path
    engine: Engine
    kind: str
    suite: SuiteConfig
    limit: int | None
    data_root: str | None
    device: str
    local_data: bool = False  # read the suite's `local` copies instead of the Hub

    def cap(self, n: int | None) -> int | None:
        """A section's size, capped by --limit."""
        if self.limit is None:
            return n
        return self.limit if n is None else min(n, self.limit)

    def local_task(self, task: str) -> str:
        """An lm-eval task, or under --local_data its chatstack twin where the suite names one."""
        return local_task(self.suite, task) if self.local_data else task

    def local_dataset(self, spec: str | dict) -> str | dict:
        """A dataset spec, or under --local_data the suite's local spec for its Hub id."""
        if not self.local_data:
            return spec
        from chatstack.data.loading import resolve_spec
        from chatstack.evaluation.harness import fill_data_root
        target = self.suite.local.get(resolve_spec(spec).get("hub") or "")
        return fill_data_root(target, self.data_root) if isinstance(target, dict) else spec


def local_task(suite: SuiteConfig, task: str) -> str:
    target = suite.local.get(task)
    return target if isinstance(target, str) else task


class Skip(Exception):
    """An eval that cannot run here, with the reason (reported, not an error)."""


def reply_budget(engine: Engine, texts: list[str], max_new_tokens: int) -> int:
    """max_new_tokens, less what the longest prompt of the whole eval leaves of the model's
    context: one budget for every batch, so a reply does not depend on its batch."""
    longest = max(len(ids) for ids in engine.tokenizer(texts, add_special_tokens=False)["input_ids"])
    room = engine.context_limit - longest
    if room < 1:
        raise ValueError(f"a prompt of {longest} tokens fills the model's {engine.context_limit} positions")
    return min(max_new_tokens, room)


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def complete_lines(ctx: Context, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy base-model continuations, cut at the end of the line (the next Q:/exercise follows)."""
    budget = reply_budget(ctx.engine, prompts, max_new_tokens)
    return [_first_line(o) for o in ctx.engine.complete(prompts, max_new_tokens=budget, temperature=0.0,
                                                        batch_size=ctx.suite.batch_size)]


def chat_budget(ctx: Context, conversations: list[list[dict]], max_new_tokens: int) -> int:
    return reply_budget(ctx.engine, [ctx.engine.render(c) for c in conversations], max_new_tokens)


def world_rows(world: str, split: str, phrasings: list[int], n: int | None, seed: int,
               unseen_part: str = "eval") -> list[dict]:
    """`n` shuffled questions of a split (unseen: of the people in `unseen_part`)."""
    from chatstack.probing import FactsConfig, in_part
    from chatstack.world.datasets import qa
    rows = qa(world, splits=[split], phrasings=phrasings).to_list()
    if split == "unseen":
        fraction = FactsConfig.probe_fraction
        rows = [r for r in rows if in_part(r["name"], unseen_part, fraction)]
    random.Random(f"{seed}-suite-{split}").shuffle(rows)
    return rows[:n] if n else rows


def attribute_accuracy(rows: list[dict], verdicts: list[str]) -> dict[str, float]:
    """Accuracy per attribute (birth_year, employer, ...): which facts a model holds."""
    by: dict[str, list[str]] = {}
    for r, v in zip(rows, verdicts):
        by.setdefault(r["attribute"], []).append(v)
    return {attr: round(rates(vs)["accuracy"], 4) for attr, vs in sorted(by.items())}


def run_world_qa(ctx: Context, cfg: WorldQAConfig) -> dict:
    from chatstack.evaluation import world_qa
    evals, n, samples, by_attribute = {}, {}, [], {}
    for split in cfg.splits:
        rows = world_rows(ctx.suite.world, split, cfg.phrasings, ctx.cap(cfg.n), ctx.suite.seed, cfg.unseen_part)
        if not rows:
            raise ValueError(f"world '{ctx.suite.world}' has no {split} questions in phrasings {cfg.phrasings}")
        if ctx.kind == "chat":
            budget = chat_budget(ctx, [[{"role": "user", "content": r["question"]}] for r in rows], cfg.max_new_tokens)
            rep = world_qa.qa_eval(ctx.engine.model, ctx.engine.tokenizer, rows, batch_size=ctx.suite.batch_size,
                                   max_new_tokens=budget)
            metrics = {k: round(rep[k], 4) for k in RATES}
            split_samples, verdicts = rep["samples"][:2], rep["verdicts"]
        else:
            replies = complete_lines(ctx, [cfg.completion_prompt.format(question=r["question"]) for r in rows],
                                     cfg.completion_max_new_tokens)
            verdicts = [judge(rep, r["answer"]) for rep, r in zip(replies, rows)]
            figures = rates(verdicts)
            metrics = {k: round(figures[k], 4) for k in RATES}
            split_samples = [{"question": r["question"], "answer": r["answer"], "reply": rep, "verdict": v}
                             for r, rep, v in list(zip(rows, replies, verdicts))[:2]]
        key = f"world_qa_{WORLD_SPLITS[split]}"
        evals[key], n[key], by_attribute[key] = metrics, len(rows), attribute_accuracy(rows, verdicts)
        samples += [{"split": split, **s} for s in split_samples]
    return {"evals": evals, "n": n, "samples": samples, "by_attribute": by_attribute,
            "prompt": "chat template" if ctx.kind == "chat" else cfg.completion_prompt}


def run_arithmetic(ctx: Context, cfg: ArithmeticConfig) -> dict:
    from chatstack.data import load_data
    from chatstack.evaluation.world_qa import exact_answer_eval
    rows = load_data(cfg.dataset, split="train", seed=ctx.suite.seed).to_list()[:ctx.cap(cfg.n)]
    if not rows or "prompt" not in rows[0] or "answer" not in rows[0]:
        raise ValueError(f"arithmetic dataset '{cfg.dataset}': expected rows with `prompt` and `answer`")
    if ctx.kind == "chat":
        budget = chat_budget(ctx, [r["prompt"] for r in rows], cfg.max_new_tokens)
        rep = exact_answer_eval(ctx.engine.model, ctx.engine.tokenizer, rows, batch_size=ctx.suite.batch_size,
                                max_new_tokens=budget)
        return {"evals": {"arithmetic": {"accuracy": round(rep["accuracy"], 4)}}, "n": rep["n"],
                "samples": rep["samples"], "prompt": "chat template"}
    prompts = []
    for r in rows:
        m = re.fullmatch(r"What is (.+?)\?", r["prompt"][-1]["content"].strip())
        if not m:
            raise ValueError(f"arithmetic dataset '{cfg.dataset}': cannot write {r['prompt'][-1]['content']!r} "
                             "as a completion (expected 'What is <expression>?')")
        prompts.append(cfg.completion_prompt.format(expression=m.group(1)))
    replies = complete_lines(ctx, prompts, cfg.completion_max_new_tokens)
    correct = [last_number(rep) == r["answer"] for rep, r in zip(replies, rows)]
    return {"evals": {"arithmetic": {"accuracy": round(sum(correct) / len(rows), 4)}}, "n": len(rows),
            "samples": [{"prompt": p, "answer": r["answer"], "reply": rep}
                        for p, r, rep in list(zip(prompts, rows, replies))[:SAMPLES]],
            "prompt": cfg.completion_prompt}


def run_conversations(ctx: Context, cfg: ConversationsConfig) -> dict:
    from chatstack.evaluation.conversations import conversation_evals
    ns = SimpleNamespace(eval_conversations=True, seed=ctx.suite.seed, world=ctx.suite.world, dataset=cfg.dataset,
                         eval_identity=cfg.identity, eval_format_prompts=ctx.cap(cfg.format_prompts),
                         eval_thinking=ctx.cap(cfg.thinking), eval_max_new_tokens=cfg.max_new_tokens,
                         eval_thinking_max_new_tokens=cfg.thinking_max_new_tokens, eval_batch_size=ctx.suite.batch_size)
    out = conversation_evals(ctx.engine.model, ctx.engine.tokenizer, ns)
    if not out:
        raise Skip("nothing to evaluate: no format prompts, identity or thinking builder given")
    numbers, rest = split_metrics(out)
    counts = {k: rest.pop(k) for k in list(rest) if _is_number(rest[k])}
    return {"evals": {"conversations": numbers}, "n": counts, **rest}


def run_tools(ctx: Context, cfg: ToolsConfig) -> dict:
    try:
        from chatstack.evaluation.tools import tool_evals
    except ModuleNotFoundError as e:
        if e.name != "chatstack.evaluation.tools":
            raise
        raise Skip(f"chatstack.evaluation.tools is not available ({e})") from None
    evals, details = {}, {}
    for use in cfg.use_tools:
        key = "tools" if use else "tools_without_tools"
        out = tool_evals(ctx.engine.model, ctx.engine.tokenizer, world=ctx.suite.world, n=ctx.cap(cfg.n),
                         use_tools=bool(use), seed=ctx.suite.seed)
        if not isinstance(out, dict):
            raise TypeError(f"tool_evals returned {type(out).__name__}, expected a dict")
        evals[key], details[key] = split_metrics(out)
    return {"evals": evals, "n": ctx.cap(cfg.n), **details}


def run_lm_eval(ctx: Context, cfg: LmEvalConfig) -> dict:
    from chatstack.evaluation import harness
    limit = ctx.cap(cfg.limit)
    tasks = [ctx.local_task(t) for t in cfg.tasks]
    with tempfile.TemporaryDirectory(prefix="chatstack-suite-") as tmp:
        full = Path(tmp) / "lm_eval.json"
        res = harness.run_lm_eval(ctx.model_path, tasks, ctx.data_root, limit, num_fewshot=cfg.num_fewshot,
                                  batch_size=cfg.batch_size, device=ctx.device, max_gen_toks=cfg.max_gen_toks,
                                  output_path=full, seed=ctx.suite.seed)
        counts = json.loads(full.read_text()).get("n-samples", {}) if full.is_file() else {}
    evals = {t: {m: (round(v, 4) if math.isfinite(v) else None) for m, v in metrics.items()} for t, metrics in res.items()}
    n = {t: (counts.get(t) or {}).get("effective", limit) for t in res}
    return {"evals": evals, "n": n, "tasks": list(res), "num_fewshot": cfg.num_fewshot}


def check_lm_eval(cfg: LmEvalConfig, data_root: str | None, tasks: list[str] | None = None) -> None:
    """Before anything runs: the tasks (default the section's) exist and their data files are there."""
    from chatstack.evaluation import harness
    ours = [t for t in (cfg.tasks if tasks is None else tasks) if t in harness.task_names()]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            harness.render_tasks(data_root, tmp, ours)
        except HarnessError as e:
            raise ConfigError(f"evals.lm_eval: {e}") from e


def run_humaneval(ctx: Context, cfg: HumanEvalConfig) -> dict:
    from chatstack.evaluation import humaneval as he
    from chatstack.tools.sandbox import SandboxLimits
    problems = he.load_problems(ctx.local_dataset(cfg.dataset), ctx.cap(cfg.n))
    chat = ctx.kind == "chat"
    convs = [[{"role": "user", "content": p["prompt"]}] for p in problems]
    texts = [ctx.engine.render(c) for c in convs] if chat else [p["prompt"] for p in problems]
    lengths = [len(ctx.engine.encode(t)) for t in texts]
    fits = [n for n in lengths if n < ctx.engine.context_limit]  # one that alone fills it gets "" (fails)
    budget = max(1, min(cfg.max_new_tokens, ctx.engine.context_limit - max(fits, default=0)))
    if chat:
        codes = [he.extract_code(r) for r in ctx.engine.chat(convs, max_new_tokens=budget, temperature=0.0,
                                                              batch_size=ctx.suite.batch_size)]
    else:
        codes = [he.truncate(c) for c in ctx.engine.complete(texts, max_new_tokens=budget, temperature=0.0,
                                                             batch_size=ctx.suite.batch_size)]
    limits = SandboxLimits(cpu_seconds=cfg.cpu_seconds, wall_seconds=cfg.wall_seconds, max_output_chars=1 << 20)
    verdicts = [he.check(p, code, limits) for p, code in zip(problems, codes)]
    passed = sum(v.passed for v in verdicts)
    return {"evals": {"humaneval": {"pass@1": round(passed / len(problems), 4)}}, "n": len(problems),
            "passed": passed, "max_new_tokens": budget, "prompt": "chat template" if chat else "completion",
            "samples": [{"task_id": v.task_id, "code": code[:400], "passed": v.passed, "error": v.error}
                        for v, code in list(zip(verdicts, codes))[:SAMPLES]]}


def _bookkeeping(key: str) -> bool:
    """Counts and timings an eval reports beside its metrics (kept out of `evals`)."""
    return "_samples" in key or key.startswith(("seconds", "n_")) or key.endswith(("_seconds", "_n"))


def split_metrics(out: dict) -> tuple[dict, dict]:
    """(metrics: numbers for `evals`, the rest: counts, timings, samples)."""
    numbers = {k: round(float(v), 4) for k, v in out.items() if _is_number(v) and not _bookkeeping(k)}
    return numbers, {k: v for k, v in out.items() if k not in numbers}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# eval name -> its runner; the names and their order are suite_config.SECTIONS'
RUNNERS: dict[str, Callable[[Context, Any], dict]] = {
    "world_qa": run_world_qa,
    "arithmetic": run_arithmetic,
    "conversations": run_conversations,
    "tools": run_tools,
    "lm_eval": run_lm_eval,
    "humaneval": run_humaneval,
}
