"""Eval suites: `chatstack eval --model PATH --suite NAME [--output FILE] [--limit N]`.

One command runs chatstack's own evals on the synthetic world and lm-eval tasks on local
data, as far as the model's kind supports them, writes one JSON and prints a short table.
This module runs a suite and writes its result; the suite files are
chatstack.evaluation.suite_config's, base vs chat model_kind's, each eval a runner of
chatstack.evaluation.runners, the table chatstack.evaluation.tables'.

Output (`--output`, default <model>/eval_<suite>.json):

    {"suite": ..., "model": ..., "model_kind": "chat", "model_kind_reason": ..., "seconds": ...,
     "evals": {"world_qa_seen_train": {"accuracy": .., "refusal_rate": .., "hallucination_rate": ..},
               "world_qa_seen_heldout": {...}, "world_qa_unseen": {...}, "arithmetic": {"accuracy": ..},
               "conversations": {"format_compliance": .., "identity_accuracy": .., ...},
               "tools": {...}, "chatstack_arc_easy": {"acc": .., "acc_norm": ..}, ...},
     "runs": {"world_qa": {"status": "ok", "seconds": .., "n": {...}, "samples": [...]},
              "tools": {"status": "skipped", "reason": "..."}, ...}}

`evals` holds numbers only, in the `{"<task>": {"<metric>": value}}` shape chatstack.hub turns
into the model card's model-index. As a recipe's stage (`chatstack eval --config eval.yaml`, a
speedrun entry `{stage: eval, name: eval}`), `--output_dir DIR` writes DIR/eval_<suite>.json
and DIR/metrics.json (the figures flat, `<task>_<metric>`, which marks the stage complete).
`--local_data true` reads the suite's `local` copies instead of its Hub data (suite_config).

An eval that fails is recorded with its error, the others still run, and the command exits 1
(an eval stage then writes no metrics.json); a bad suite (unknown eval or key, missing lm-eval
data) stops before anything runs.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatstack.config import parse_cli, parse_config, split_cli
from chatstack.errors import ConfigError
from chatstack.evaluation.model_kind import KINDS, check_language_model, detect_kind
from chatstack.evaluation.runners import RUNNERS, Context, Skip, check_lm_eval, local_task
from chatstack.evaluation.suite_config import SuiteConfig, describe, load_suite, suite_names, suites_dir
from chatstack.evaluation.tables import suite_table


def run_suite(model_path: str | Path, suite: str | SuiteConfig, *, limit: int | None = None,
              only: list[str] | None = None, model_kind: str | None = None, world: str | None = None,
              data_root: str | None = None, device: str | None = None, local_data: bool = False,
              progress: Callable[[str], None] | None = None) -> dict:
    """Run a suite on a save_pretrained folder; returns the result dict (see the module docstring)."""
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
        tasks = [local_task(cfg, t) if local_data else t for t in plan["lm_eval"].tasks]
        check_lm_eval(plan["lm_eval"], data_root, tasks)
    say = progress or (lambda s: None)

    import torch

    from chatstack.engine import Engine
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    ctx = Context(model_path, Engine.from_pretrained(str(model_path), device), kind, cfg, limit, data_root, device,
                  local_data)
    result: dict[str, Any] = {"suite": cfg.name, "description": cfg.description, "model": str(model_path),
                              "model_kind": kind, "model_kind_reason": why, "world": cfg.world, "limit": limit,
                              "local_data": local_data, "evals": {}, "runs": {}}
    for name, sec in plan.items():
        if kind not in sec.kinds:
            result["runs"][name] = {"status": "skipped", "reason": f"{'/'.join(sec.kinds)} models only, this is a "
                                    f"{kind} model (--model_kind {sec.kinds[0]} runs it anyway)"}
            say(f"{name}: skipped ({kind} model)")
            continue
        say(f"{name}: running")
        t0 = time.time()
        try:
            out = RUNNERS[name](ctx, sec)
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


def flat_metrics(result: dict) -> dict:
    """A suite result as a stage's metrics.json: {"<task>_<metric>": value, ..., "seconds": s}."""
    flat = {f"{task}_{metric}": v for task, figures in result["evals"].items() for metric, v in figures.items()}
    return {**flat, "seconds": result["seconds"], "suite": result["suite"], "model": result["model"],
            "local_data": result.get("local_data", False)}


@dataclass
class SuiteArgs:
    """`chatstack eval --suite`'s options (evals are greedy: no sampling options)."""
    model: str | None = field(default=None, metadata={"help": "a save_pretrained folder (outputs/<recipe>/<stage>)"})
    suite: str | None = field(default=None, metadata={"help": "a suite name (see --list-suites) or a suite YAML file"})
    output: str | None = field(default=None, metadata={"help": "result JSON (default <model>/eval_<suite>.json)"})
    output_dir: str | None = field(default=None, metadata={
        "help": "as a recipe stage: DIR/eval_<suite>.json and DIR/metrics.json (marks the stage complete)"})
    limit: int | None = field(default=None, metadata={"help": "at most N items per eval (per split, per task)"})
    only: str | None = field(default=None, metadata={"help": "comma-separated evals of the suite to run"})
    model_kind: str = field(default="auto", metadata={
        "help": "auto | base | chat. base: completion-style evals only; chat: chat evals (auto: from the folder)"})
    world: str | None = field(default=None, metadata={"help": "the synthetic world (default: the suite's)"})
    data_root: str | None = field(default=None, metadata={
        "help": "lm-eval data root (default $CHATSTACK_DATA_ROOT or ../shared/data)"})
    device: str | None = field(default=None, metadata={"help": "default: cuda if available, else cpu"})
    local_data: bool = field(default=False, metadata={
        "help": "the suite's local copies (its `local`: lm-eval twins, local specs of Hub ids) instead of the Hub"})
    list_suites: bool = field(default=False, metadata={"help": "list the packaged suites and exit"})


def main(argv: list[str]) -> int:
    config, rest = split_cli(argv)
    if config:  # a recipe's eval stage: the options in YAML, then --key value
        a = parse_config(SuiteArgs, config, rest)
    else:
        (a,) = parse_cli("chatstack eval", "Run an eval suite: chatstack's evals on the synthetic world and lm-eval "
                         "tasks on local data, as the model's stage supports.", (SuiteArgs,), argv)
    if a.list_suites:
        for n in suite_names():
            print(f"{n:<12} {describe(suites_dir() / f'{n}.yaml')}")
        return 0
    if not a.suite or not a.model:
        raise ConfigError("--model and --suite are required (--list-suites lists the suites)")
    if a.model_kind not in ("auto", *KINDS):
        raise ConfigError(f"--model_kind must be auto, base or chat, got '{a.model_kind}'")
    only = [o.strip() for o in a.only.split(",") if o.strip()] if a.only else None
    result = run_suite(a.model, a.suite, limit=a.limit, only=only, model_kind=a.model_kind, world=a.world,
                       data_root=a.data_root, device=a.device, local_data=a.local_data,
                       progress=lambda s: print(f"[eval] {s}", file=sys.stderr))
    name = f"eval_{result['suite']}.json"
    out = Path(a.output) if a.output else Path(a.output_dir or a.model) / name
    write_result(result, out)
    print(suite_table(result))
    print(f"wrote {out}")
    errors = [n for n, r in result["runs"].items() if r["status"] == "error"]
    if a.output_dir and not errors:  # a failed eval leaves the stage unfinished, to be run again
        from chatstack.stage import write_metrics
        write_metrics(a.output_dir, _json_safe(flat_metrics(result)), keep_checkpoints=True)
    if errors:
        print(f"chatstack eval: error in {', '.join(errors)} (see {out})", file=sys.stderr)
        return 1
    return 0
