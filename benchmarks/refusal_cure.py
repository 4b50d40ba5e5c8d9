"""The hallucination cure, measured: run a recipe's refusal steps on its SFT model and print
the figures beside the issue's goals (one JSON object).

    python benchmarks/refusal_cure.py [--recipe tiny] [--sft outputs/tiny/sft] [--pretrain outputs/tiny/pretrain]

Steps, each the recipe's own YAML (recipes/<recipe>/{probe_refusals,sft_refusal,eval_refusal}.yaml):
  1. chatstack build refusals       probe the SFT model, write refusal conversations
  2. chatstack sft                  SFT again with them mixed into the SFT mixture
  3. chatstack build refusals_eval  before/after on held-out seen and eval-half unseen people
Run from the directory that holds outputs/ (the steps skip nothing: outputs are rewritten).
Extra `--key value` pairs after `--` go to every step that knows the key (e.g. `-- --seed 1`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOALS = {"hallucination_unseen_after": ("<=", 0.10), "accuracy_seen_drop": ("<=", 0.05),
         "over_refusal_seen_after": ("<=", 0.10), "hallucination_unseen_before": ("near", 1.0)}


def known_args(extra: list[str], name: str) -> list[str]:
    """The `--key value` pairs of `extra` that this step's config has."""
    import dataclasses
    if name == "sft_refusal":
        from chatstack.sft import SFTStageConfig as cls
    elif name == "probe_refusals":
        from chatstack.builders.refusals import RefusalConfig as cls
    else:
        from chatstack.evaluation.refusal import RefusalEvalConfig as cls
    fields = {f.name for f in dataclasses.fields(cls)}
    out, i = [], 0
    while i < len(extra):
        j = i + 1
        while j < len(extra) and not extra[j].startswith("--"):
            j += 1
        if extra[i].lstrip("-").split("=")[0] in fields:
            out += extra[i:j]
        i = j
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="tiny")
    p.add_argument("--sft", default=None, help="the SFT model (default: the recipe's probe model)")
    p.add_argument("--keep", action="store_true", help="reuse step outputs that exist")
    a, extra = p.parse_known_args()
    extra = [x for x in extra if x != "--"]
    from chatstack.cli import main as cli
    from chatstack.config import read_yaml
    rdir = REPO / "recipes" / a.recipe
    steps = [("build", "probe_refusals"), ("sft", "sft_refusal"), ("build", "eval_refusal")]
    sft_args = ["--model_name_or_path", a.sft] if a.sft else []
    figures, seconds = {}, {}
    for stage, name in steps:
        cfg = rdir / f"{name}.yaml"
        out = Path(read_yaml(cfg)["output_dir"])
        if out.exists() and not a.keep:
            shutil.rmtree(out)
        args = known_args(extra, name)
        if a.sft and name == "probe_refusals":
            args += sft_args
        if a.sft and name == "eval_refusal":
            args += ["--before", a.sft]
        t0 = time.time()
        if not (a.keep and (out / "metrics.json").exists()):
            with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the final JSON
                rc = cli([stage, "--config", str(cfg), *args])
            if rc:
                print(json.dumps({"error": f"{stage} {name} failed (exit {rc})"}))
                return rc
        seconds[name] = round(time.time() - t0, 1)
        figures[name] = json.loads((out / "metrics.json").read_text())
    ev, probe = figures["eval_refusal"], figures["probe_refusals"]
    result = {
        "recipe": a.recipe,
        "probe": {k: v for k, v in probe.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
        "sft_refusal": {k: figures["sft_refusal"].get(k) for k in ("train_loss", "qa_accuracy_seen", "seconds")},
        "eval": {k: v for k, v in ev.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
        "goals": {k: {"value": ev.get(k), "goal": f"{op} {t}",
                      "met": None if ev.get(k) is None else (ev[k] <= t if op == "<=" else ev[k] >= 0.9)}
                  for k, (op, t) in GOALS.items()},
        "plot": ev.get("plot"),
        "seconds": seconds,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
