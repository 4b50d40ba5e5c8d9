"""Eval suites: `chatstack eval --model PATH --suite NAME [--output FILE] [--limit N]`.

One command runs chatstack's own evals on the synthetic world and lm-eval tasks on local
data, as far as the model's stage supports them, writes one JSON and prints a short table.

A suite is a YAML file: the packaged ones (`evaluation/suites/<name>.yaml`: `tiny`, `quick`,
`benchmarks`; `--list-suites` shows them) or any path to a YAML file. It names the world, a seed
and which evals run at which sizes:

    world: tiny
    evals:
      world_qa:      {n: 200}                   # per split: seen (qa_train), held-out (qa_heldout), unseen
                                                #   (unseen: the refusal builder's eval half of them)
      arithmetic:    {dataset: tiny_arithmetic_eval, n: 200}
      conversations: {dataset: tiny_sft}        # format compliance, identity, QA in a new phrasing, thinking
      tools:         {n: 50}                    # chatstack.evaluation.tools.tool_evals (skipped if absent)
      lm_eval:       {tasks: [chatstack_arc_easy, chatstack_lambada, chatstack_hellaswag], limit: 100}

Suites live with the package, not in recipes/: what to measure depends on the world and the
scale, not on one recipe (tiny, tiny-thinking and tiny-web models all answer about world
`tiny`), and `--suite NAME` then works from any directory or install; a recipe that needs its
own passes a path.

Base or chat model. A base model (the pretrain stage's output) was never taught chat turns,
so it gets completion-style evals (world QA as "Q: ...\\nA:", arithmetic as "3 + 4 =", lm-eval
loglikelihood tasks) and the chat-only ones (conversations, tools) are reported as skipped. A
chat model (sft, ppo, grpo, ...) gets everything in the chat template. Which one a folder is
comes from `--model_kind`, else the same rule `chatstack chat` / `serve` use: a folder named
after a base stage (`pretrain`; a `checkpoint-N` goes by its parent) or a tokenizer without a
chat template is a base model, any other stage's folder a chat model. Each eval says in YAML
which kinds it applies to (`kinds: [base, chat]`); the defaults are above.

Output (`--output`, default <model>/eval_<suite>.json):

    {"suite": ..., "model": ..., "model_kind": "chat", "model_kind_reason": ..., "seconds": ...,
     "evals": {"world_qa_seen_train": {"accuracy": .., "refusal_rate": .., "hallucination_rate": ..},
               "world_qa_seen_heldout": {...}, "world_qa_unseen": {...}, "arithmetic": {"accuracy": ..},
               "conversations": {"format_compliance": .., "identity_accuracy": .., ...},
               "tools": {...}, "chatstack_arc_easy": {"acc": .., "acc_norm": ..}, ...},
     "runs": {"world_qa": {"status": "ok", "seconds": .., "n": {...}, "samples": [...]},
              "tools": {"status": "skipped", "reason": "..."}, ...}}

`evals` holds numbers only, in the `{"<task>": {"<metric>": value}}` shape chatstack.hub turns
into the model card's model-index. An eval that fails is recorded with its error, the others
still run, and the command exits 1; a bad suite (unknown eval or key, missing lm-eval data)
stops before anything runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from chatstack.config import check_keys, read_yaml
from chatstack.errors import ConfigError

KINDS = ("base", "chat")
WORLD_SPLITS = {"qa_train": "seen_train", "qa_heldout": "seen_heldout", "unseen": "unseen"}
SAMPLES = 5


# ---- suite files -------------------------------------------------------------------------

def suites_dir() -> Path:
    return Path(str(resources.files("chatstack.evaluation").joinpath("suites")))


def suite_names() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*.yaml"))


def suite_path(name: str) -> Path:
    """A packaged suite by name, or a path to a YAML file; else a ConfigError listing the suites."""
    packaged = suites_dir() / f"{name}.yaml"
    if packaged.is_file():
        return packaged
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return Path(name)
    listing = "; ".join(f"{n} ({describe(suites_dir() / f'{n}.yaml')})" for n in suite_names())
    raise ConfigError(f"unknown suite '{name}': not a packaged suite nor a YAML file. "
                      f"Suites: {listing}. Or give a path to a suite YAML file.")


def describe(path: Path) -> str:
    try:
        return str((yaml.safe_load(path.read_text()) or {}).get("description", "")).strip().split("\n")[0]
    except (OSError, yaml.YAMLError):
        return ""


@dataclass
class EvalSection:
    kinds: list[str] = field(default_factory=lambda: list(KINDS))


@dataclass
class WorldQAConfig(EvalSection):
    """Questions about the world's people: seen (QA trained), held-out (seen in articles only), unseen."""
    splits: list[str] = field(default_factory=lambda: list(WORLD_SPLITS))
    n: int = 200  # questions per split
    phrasings: list[int] = field(default_factory=lambda: [0, 1])
    max_new_tokens: int = 32
    completion_prompt: str = "Q: {question}\nA:"  # base models: as the QA text in pretraining
    completion_max_new_tokens: int = 16  # a base model does not stop at the answer: it writes the next Q:
    # unseen people: the refusal builder's hash-half it never probes (eval), as the refusal eval
    # asks; `all` asks about any unseen person (also those a refusal SFT was trained to refuse)
    unseen_part: str = "eval"


@dataclass
class ArithmeticConfig(EvalSection):
    dataset: str = "tiny_arithmetic_eval"  # datasets_cfg name: rows of `prompt` (messages) + `answer`
    n: int = 200
    max_new_tokens: int = 24
    completion_prompt: str = "{expression} ="  # base models: as the exercises in pretraining
    completion_max_new_tokens: int = 8


@dataclass
class ConversationsConfig(EvalSection):
    """chatstack.evaluation.conversations.conversation_evals: format compliance, QA in a new phrasing,
    identity, thinking. Identity and thinking are read from `dataset` (the SFT mixture the model was
    trained on) or `identity` ({name, maker})."""
    kinds: list[str] = field(default_factory=lambda: ["chat"])
    dataset: str | None = None
    identity: dict | None = None
    format_prompts: int = 32
    thinking: int = 100  # held-out problems, when `dataset` has a thinking builder
    max_new_tokens: int = 48
    thinking_max_new_tokens: int = 128


@dataclass
class ToolsConfig(EvalSection):
    """chatstack.evaluation.tools.tool_evals: `n` prompts per task (unseen facts, arithmetic, counting);
    use_tools true measures with tools and without (keys `*_with_tools`, `*_without_tools`), false
    only without. A list runs it once per value."""
    kinds: list[str] = field(default_factory=lambda: ["chat"])
    n: int = 100
    use_tools: list[bool] = field(default_factory=lambda: [True])


@dataclass
class LmEvalConfig(EvalSection):
    tasks: list[str] = field(default_factory=lambda: ["chatstack_arc_easy", "chatstack_arc_challenge",
                                                      "chatstack_lambada", "chatstack_hellaswag"])
    limit: int | None = 100  # examples per task (None: all)
    num_fewshot: int = 0
    batch_size: int = 32
    max_gen_toks: int | None = None


@dataclass
class SuiteConfig:
    name: str = ""
    description: str = ""
    world: str = "tiny"
    seed: int = 0
    batch_size: int = 64  # generation batch for chatstack's evals
    evals: dict = field(default_factory=dict)  # eval name -> its section config


def load_suite(name_or_path: str, world: str | None = None) -> SuiteConfig:
    path = suite_path(name_or_path)
    data = read_yaml(path)
    check_keys(SuiteConfig, [k for k in data if k != "name"], str(path))
    evals = data.pop("evals", None) or {}
    if not isinstance(evals, dict) or not evals:
        raise ConfigError(f"{path}: `evals` must map eval names to their settings; evals: {', '.join(EVALS)}")
    sections = {}
    for key, values in evals.items():
        if key not in EVALS:
            raise ConfigError(f"{path}: unknown eval '{key}'; evals: {', '.join(EVALS)}")
        values = values or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: evals.{key} must be a mapping of settings, got {values!r}")
        cls = EVALS[key][0]
        check_keys(cls, values, f"{path}: evals.{key}")
        sec = cls(**values)
        bad = [k for k in sec.kinds if k not in KINDS]
        if bad or not sec.kinds:
            raise ConfigError(f"{path}: evals.{key}.kinds must be a non-empty list of {list(KINDS)}, got {sec.kinds}")
        if isinstance(sec, WorldQAConfig) and (unknown := [s for s in sec.splits if s not in WORLD_SPLITS]):
            raise ConfigError(f"{path}: evals.world_qa.splits: unknown {unknown}; splits: {', '.join(WORLD_SPLITS)}")
        if isinstance(sec, WorldQAConfig) and sec.unseen_part not in ("eval", "probe", "all"):
            raise ConfigError(f"{path}: evals.world_qa.unseen_part: expected eval | probe | all, got '{sec.unseen_part}'")
        sections[key] = sec
    cfg = SuiteConfig(name=path.stem, **{k: v for k, v in data.items() if k != "name"})
    cfg.evals = sections
    if world:
        cfg.world = world
    return cfg


# ---- base or chat ------------------------------------------------------------------------

def detect_kind(model_path: str | Path, override: str | None = None) -> tuple[str, str]:
    """('base' | 'chat', why)."""
    from chatstack.chat import BASE_STAGES
    if override and override != "auto":
        if override not in KINDS:
            raise ConfigError(f"--model_kind must be auto, base or chat, got '{override}'")
        return override, "--model_kind"
    p = Path(model_path).resolve()
    stage = p.parent.name if p.name.startswith("checkpoint-") else p.name
    tok_cfg = p / "tokenizer_config.json"
    has_template = (p / "chat_template.jinja").is_file()
    if not has_template and tok_cfg.is_file():
        try:
            has_template = bool(json.loads(tok_cfg.read_text()).get("chat_template"))
        except ValueError:
            pass
    if not has_template:
        return "base", "its tokenizer has no chat template"
    if stage in BASE_STAGES:
        return "base", f"folder '{stage}' is a base stage's output (as `chatstack chat` reads it)"
    return "chat", f"folder '{stage}' is not a base stage ({', '.join(BASE_STAGES)}): a chat stage's output"


def check_language_model(model_path: str | Path) -> None:
    from chatstack.errors import DataError
    p = Path(model_path)
    if not (p / "config.json").is_file():
        raise DataError(f"--model {model_path}: not a save_pretrained folder (no config.json)")
    archs = json.loads((p / "config.json").read_text()).get("architectures") or []
    if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise DataError(f"--model {model_path}: a {', '.join(archs)} is not a language model "
                        "(a reward model?); evaluate a pretrain, sft, ppo or grpo output")


# ---- the evals ---------------------------------------------------------------------------

@dataclass
class Context:
    model_path: Path
    model: Any
    tokenizer: Any
    kind: str
    suite: SuiteConfig
    limit: int | None
    data_root: str | None
    device: str

    def cap(self, n: int | None) -> int | None:
        if self.limit is None:
            return n
        return self.limit if n is None else min(n, self.limit)


class Skip(Exception):
    """An eval that cannot run here, with the reason (reported, not an error)."""


def _budget(ctx: Context, texts: list[str], max_new_tokens: int) -> int:
    """max_new_tokens, less what the longest prompt leaves of the model's context."""
    from chatstack.generate import context_limit
    longest = max(len(ids) for ids in ctx.tokenizer(texts, add_special_tokens=False)["input_ids"])
    room = context_limit(ctx.model) - longest
    if room < 1:
        raise ValueError(f"a prompt of {longest} tokens fills the model's {context_limit(ctx.model)} positions")
    return min(max_new_tokens, room)


def _chat_texts(tokenizer, conversations: list[list[dict]]) -> list[str]:
    return [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def _complete(ctx: Context, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy base-model continuations, cut at the end of the line (the next Q:/exercise follows)."""
    from chatstack.generate import complete
    budget = _budget(ctx, prompts, max_new_tokens)
    return [_first_line(o) for o in complete(ctx.model, ctx.tokenizer, prompts, batch_size=ctx.suite.batch_size,
                                             max_new_tokens=budget, temperature=0.0)]


def _rates(verdicts: list[str]) -> dict[str, float]:
    n = len(verdicts)
    return {"accuracy": round(verdicts.count("correct") / n, 4), "refusal_rate": round(verdicts.count("refused") / n, 4),
            "hallucination_rate": round(verdicts.count("wrong") / n, 4)}


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


def run_world_qa(ctx: Context, cfg: WorldQAConfig) -> dict:
    from chatstack.evaluation import world_qa
    from chatstack.judges import judge
    evals, n, samples = {}, {}, []
    for split in cfg.splits:
        rows = world_rows(ctx.suite.world, split, cfg.phrasings, ctx.cap(cfg.n), ctx.suite.seed, cfg.unseen_part)
        if not rows:
            raise ValueError(f"world '{ctx.suite.world}' has no {split} questions in phrasings {cfg.phrasings}")
        if ctx.kind == "chat":
            convs = [[{"role": "user", "content": r["question"]}] for r in rows]
            budget = _budget(ctx, _chat_texts(ctx.tokenizer, convs), cfg.max_new_tokens)
            rep = world_qa.qa_eval(ctx.model, ctx.tokenizer, rows, batch_size=ctx.suite.batch_size, max_new_tokens=budget)
            metrics = {k: round(rep[k], 4) for k in ("accuracy", "refusal_rate", "hallucination_rate")}
            split_samples = rep["samples"][:2]
        else:
            replies = _complete(ctx, [cfg.completion_prompt.format(question=r["question"]) for r in rows],
                                cfg.completion_max_new_tokens)
            verdicts = [judge(rep, r["answer"]) for rep, r in zip(replies, rows)]
            metrics = _rates(verdicts)
            split_samples = [{"question": r["question"], "answer": r["answer"], "reply": rep, "verdict": v}
                             for r, rep, v in list(zip(rows, replies, verdicts))[:2]]
        key = f"world_qa_{WORLD_SPLITS[split]}"
        evals[key], n[key] = metrics, len(rows)
        samples += [{"split": split, **s} for s in split_samples]
    return {"evals": evals, "n": n, "samples": samples,
            "prompt": "chat template" if ctx.kind == "chat" else cfg.completion_prompt}


def run_arithmetic(ctx: Context, cfg: ArithmeticConfig) -> dict:
    from chatstack.data import load_data
    from chatstack.evaluation.world_qa import exact_answer_eval
    from chatstack.judges import last_number
    rows = load_data(cfg.dataset, split="train", seed=ctx.suite.seed).to_list()[:ctx.cap(cfg.n)]
    if not rows or "prompt" not in rows[0] or "answer" not in rows[0]:
        raise ValueError(f"arithmetic dataset '{cfg.dataset}': expected rows with `prompt` and `answer`")
    if ctx.kind == "chat":
        budget = _budget(ctx, _chat_texts(ctx.tokenizer, [r["prompt"] for r in rows]), cfg.max_new_tokens)
        rep = exact_answer_eval(ctx.model, ctx.tokenizer, rows, batch_size=ctx.suite.batch_size, max_new_tokens=budget)
        return {"evals": {"arithmetic": {"accuracy": round(rep["accuracy"], 4)}}, "n": rep["n"],
                "samples": rep["samples"], "prompt": "chat template"}
    prompts = []
    for r in rows:
        m = re.fullmatch(r"What is (.+?)\?", r["prompt"][-1]["content"].strip())
        if not m:
            raise ValueError(f"arithmetic dataset '{cfg.dataset}': cannot write {r['prompt'][-1]['content']!r} "
                             "as a completion (expected 'What is <expression>?')")
        prompts.append(cfg.completion_prompt.format(expression=m.group(1)))
    replies = _complete(ctx, prompts, cfg.completion_max_new_tokens)
    correct = [last_number(rep) == r["answer"] for rep, r in zip(replies, rows)]
    return {"evals": {"arithmetic": {"accuracy": round(sum(correct) / len(rows), 4)}}, "n": len(rows),
            "samples": [{"prompt": p, "answer": r["answer"], "reply": rep} for p, r, rep in list(zip(prompts, rows, replies))[:SAMPLES]],
            "prompt": cfg.completion_prompt}


def run_conversations(ctx: Context, cfg: ConversationsConfig) -> dict:
    from types import SimpleNamespace

    from chatstack.evaluation.conversations import conversation_evals
    ns = SimpleNamespace(eval_conversations=True, seed=ctx.suite.seed, world=ctx.suite.world, dataset=cfg.dataset,
                         eval_identity=cfg.identity, eval_format_prompts=ctx.cap(cfg.format_prompts),
                         eval_thinking=ctx.cap(cfg.thinking), eval_max_new_tokens=cfg.max_new_tokens,
                         eval_thinking_max_new_tokens=cfg.thinking_max_new_tokens, eval_batch_size=ctx.suite.batch_size)
    out = conversation_evals(ctx.model, ctx.tokenizer, ns)
    if not out:
        raise Skip("nothing to evaluate: no format prompts, identity or thinking builder given")
    numbers, rest = _split_metrics(out)
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
        out = tool_evals(ctx.model, ctx.tokenizer, world=ctx.suite.world, n=ctx.cap(cfg.n), use_tools=bool(use),
                         seed=ctx.suite.seed)
        if not isinstance(out, dict):
            raise TypeError(f"tool_evals returned {type(out).__name__}, expected a dict")
        evals[key], details[key] = _split_metrics(out)
    return {"evals": evals, "n": ctx.cap(cfg.n), **details}


def run_lm_eval(ctx: Context, cfg: LmEvalConfig) -> dict:
    from chatstack.evaluation import harness
    limit = ctx.cap(cfg.limit)
    with tempfile.TemporaryDirectory(prefix="chatstack-suite-") as tmp:
        full = Path(tmp) / "lm_eval.json"
        res = harness.run_lm_eval(ctx.model_path, cfg.tasks, ctx.data_root, limit, num_fewshot=cfg.num_fewshot,
                                  batch_size=cfg.batch_size, device=ctx.device, max_gen_toks=cfg.max_gen_toks,
                                  output_path=full, seed=ctx.suite.seed)
        counts = json.loads(full.read_text()).get("n-samples", {}) if full.is_file() else {}
    evals = {t: {m: (round(v, 4) if math.isfinite(v) else None) for m, v in metrics.items()} for t, metrics in res.items()}
    n = {t: (counts.get(t) or {}).get("effective", limit) for t in res}
    return {"evals": evals, "n": n, "tasks": list(res), "num_fewshot": cfg.num_fewshot}


def check_lm_eval(cfg: LmEvalConfig, data_root: str | None) -> None:
    """Before anything runs: the tasks exist and their data files are there."""
    from chatstack.evaluation import harness
    ours = [t for t in cfg.tasks if t in harness.task_names()]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            harness.render_tasks(data_root, tmp, ours)
        except harness.HarnessError as e:
            raise ConfigError(f"evals.lm_eval: {e}") from e


def _bookkeeping(key: str) -> bool:
    """Counts and timings an eval reports beside its metrics (kept out of `evals`)."""
    return "_samples" in key or key.startswith(("seconds", "n_")) or key.endswith(("_seconds", "_n"))


def _split_metrics(out: dict) -> tuple[dict, dict]:
    """(metrics: numbers for `evals`, the rest: counts, timings, samples)."""
    numbers = {k: round(float(v), 4) for k, v in out.items() if _is_number(v) and not _bookkeeping(k)}
    return numbers, {k: v for k, v in out.items() if k not in numbers}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# name -> (section config, runner); the order is the order they run in
EVALS: dict[str, tuple[type, Callable[[Context, Any], dict]]] = {
    "world_qa": (WorldQAConfig, run_world_qa),
    "arithmetic": (ArithmeticConfig, run_arithmetic),
    "conversations": (ConversationsConfig, run_conversations),
    "tools": (ToolsConfig, run_tools),
    "lm_eval": (LmEvalConfig, run_lm_eval),
}


# ---- running a suite ---------------------------------------------------------------------

def run_suite(model_path: str | Path, suite: str | SuiteConfig, *, limit: int | None = None,
              only: list[str] | None = None, model_kind: str | None = None, world: str | None = None,
              data_root: str | None = None, device: str | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Run a suite on a save_pretrained folder; returns the result dict (see the module docstring)."""
    import torch

    from chatstack.generate import load

    start = time.time()
    cfg = suite if isinstance(suite, SuiteConfig) else load_suite(suite, world)
    if isinstance(suite, SuiteConfig) and world:
        cfg = dataclasses.replace(cfg, world=world)
    if only:
        unknown = [o for o in only if o not in cfg.evals]
        if unknown:
            raise ConfigError(f"--only {','.join(unknown)}: not in suite '{cfg.name}' (its evals: {', '.join(cfg.evals)})")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    model_path = Path(model_path)
    check_language_model(model_path)
    kind, why = detect_kind(model_path, model_kind)
    plan = {name: sec for name, sec in cfg.evals.items() if not only or name in only}
    if "lm_eval" in plan and kind in plan["lm_eval"].kinds:
        check_lm_eval(plan["lm_eval"], data_root)
    say = progress or (lambda s: None)

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    model, tokenizer = load(str(model_path), device)
    ctx = Context(model_path, model, tokenizer, kind, cfg, limit, data_root, device)
    result: dict[str, Any] = {"suite": cfg.name, "description": cfg.description, "model": str(model_path),
                              "model_kind": kind, "model_kind_reason": why, "world": cfg.world, "limit": limit,
                              "evals": {}, "runs": {}}
    for name, sec in plan.items():
        if kind not in sec.kinds:
            result["runs"][name] = {"status": "skipped", "reason": f"{'/'.join(sec.kinds)} models only, this is a "
                                    f"{kind} model (--model_kind {sec.kinds[0]} runs it anyway)"}
            say(f"{name}: skipped ({kind} model)")
            continue
        say(f"{name}: running")
        t0 = time.time()
        try:
            out = EVALS[name][1](ctx, sec)
        except Skip as e:
            result["runs"][name] = {"status": "skipped", "reason": str(e)}
            say(f"{name}: skipped ({e})")
            continue
        except Exception as e:  # noqa: BLE001 - recorded, reported, and the exit status says so
            result["runs"][name] = {"status": "error", "error": f"{type(e).__name__}: {e}",
                                    "traceback": traceback.format_exc(limit=8), "seconds": round(time.time() - t0, 1)}
            say(f"{name}: ERROR {type(e).__name__}: {e}")
            continue
        result["evals"].update(out.pop("evals"))
        result["runs"][name] = {"status": "ok", "seconds": round(time.time() - t0, 1), **out}
        say(f"{name}: done in {time.time() - t0:.1f} s")
    result["seconds"] = round(time.time() - start, 1)
    return result


# ---- output ------------------------------------------------------------------------------

KEY_METRICS = ("accuracy", "refusal_rate", "hallucination_rate", "format_compliance", "identity_accuracy",
               "qa_accuracy_new_phrasing", "thinking_accuracy", "acc", "acc_norm", "exact_match", "perplexity")


def table(result: dict) -> str:
    """A short text table: one line per eval key, its main figures."""
    lines = [f"suite '{result['suite']}' on {result['model']} ({result['model_kind']} model: "
             f"{result['model_kind_reason']}), {result['seconds']} s"]
    rows = []
    owners = {}
    for name, run in result["runs"].items():
        if run["status"] == "ok":
            keys = [k for k in result["evals"] if owners.get(k) is None and _owned(k, name, run)]
            for k in keys:
                owners[k] = name
                figures = result["evals"][k]
                shown = ([m for m in KEY_METRICS if m in figures] or [m for m in figures if "accuracy" in m][:6]
                         or list(figures)[:4])
                n = run.get("n")
                n = n.get(k, "") if isinstance(n, dict) else n
                rows.append((k, str(n if n is not None else ""), "  ".join(_fmt(m, figures[m]) for m in shown)))
        else:
            rows.append((name, "", f"{run['status']}: {run.get('reason') or run.get('error')}"))
    w = max([len(r[0]) for r in rows] + [4])
    lines.append(f"  {'eval':<{w}}  {'n':>4}  figures")
    lines += [f"  {k:<{w}}  {n:>4}  {f}" for k, n, f in rows]
    return "\n".join(lines)


def _owned(key: str, name: str, run: dict) -> bool:
    if name == "world_qa":
        return key.startswith("world_qa_")
    if name == "tools":
        return key.startswith("tools")
    if name == "lm_eval":
        return key in run.get("tasks", [])
    return key == name


def _fmt(metric: str, value) -> str:
    if value is None:
        return f"{metric} n/a"
    if metric == "perplexity":
        return f"{metric} {value:.4g}"
    return f"{metric} {value:.3f}"


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_result(result: dict, path: str | Path) -> Path:
    """The result as strict JSON (a non-finite number, e.g. an overflowing perplexity, as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n")
    return path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="chatstack eval", description="Run an eval suite: chatstack's evals on the "
                                "synthetic world and lm-eval tasks on local data, as the model's stage supports.")
    p.add_argument("--model", help="a save_pretrained folder (outputs/<recipe>/<stage>)")
    p.add_argument("--suite", help=f"a suite name ({', '.join(suite_names())}) or a suite YAML file")
    p.add_argument("--output", default=None, help="result JSON (default <model>/eval_<suite>.json)")
    p.add_argument("--limit", type=int, default=None, help="at most N items per eval (per split, per task)")
    p.add_argument("--only", default=None, help="comma-separated evals of the suite to run")
    p.add_argument("--model_kind", default="auto", choices=["auto", *KINDS],
                   help="base: completion-style evals only; chat: chat evals (default: from the folder, see --help)")
    p.add_argument("--world", default=None, help="the synthetic world (default: the suite's)")
    p.add_argument("--data_root", default=None, help="lm-eval data root (default $CHATSTACK_DATA_ROOT or ../shared/data)")
    p.add_argument("--device", default=None)
    p.add_argument("--list-suites", action="store_true", help="list the packaged suites and exit")
    if "--list-suites" in argv:
        for n in suite_names():
            print(f"{n:<12} {describe(suites_dir() / f'{n}.yaml')}")
        return 0
    a = p.parse_args(argv)
    if not a.suite or not a.model:
        p.error("--model and --suite are required (--list-suites lists the suites)")
    only = [o.strip() for o in a.only.split(",") if o.strip()] if a.only else None
    result = run_suite(a.model, a.suite, limit=a.limit, only=only, model_kind=a.model_kind, world=a.world,
                       data_root=a.data_root, device=a.device, progress=lambda s: print(f"[eval] {s}", file=sys.stderr))
    out = Path(a.output) if a.output else Path(a.model) / f"eval_{result['suite']}.json"
    write_result(result, out)
    print(table(result))
    print(f"wrote {out}")
    errors = [n for n, r in result["runs"].items() if r["status"] == "error"]
    if errors:
        print(f"chatstack eval: error in {', '.join(errors)} (see {out})", file=sys.stderr)
        return 1
    return 0
