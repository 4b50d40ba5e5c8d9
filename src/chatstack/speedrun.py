"""`chatstack speedrun --recipe tiny`: every stage of a recipe in order.

A stage whose output folder already has metrics.json is complete and is skipped, so a
rerun after an interruption continues where it stopped (and a stage cut mid-way resumes
from its own last checkpoint). Writes <output_root>/summary.json and prints a table.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from chatstack.config import parse_cli, read_yaml
from chatstack.errors import ConfigError
from chatstack.evaluation.tables import STAGE_KEY_METRICS
from chatstack.paths import REPO_ROOT
from chatstack.report import write_report
from chatstack.stage import forget_finished_run, read_metrics


@dataclass
class SpeedrunArgs:
    recipe: str = field(default="tiny", metadata={"help": "a recipe name (recipes/<recipe>/speedrun.yaml) or folder"})
    stages: str | None = field(default=None, metadata={"help": "comma-separated subset, e.g. sft,reward"})
    force: bool = field(default=False, metadata={"help": "rerun stages even if complete"})


def recipe_dir(recipe: str) -> Path:
    for base in (Path(recipe), Path("recipes") / recipe, REPO_ROOT / "recipes" / recipe):
        if (base / "speedrun.yaml").is_file():
            return base
    raise ConfigError(f"no recipe '{recipe}': expected recipes/{recipe}/speedrun.yaml")


def run_stage(stage: str, config: Path, extra: list[str]) -> None:
    from chatstack.cli import main as cli_main
    rc = cli_main([stage, "--config", str(config), *extra])
    if rc:
        raise SystemExit(f"speedrun: stage '{stage}' failed (exit {rc})")


def scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def speedrun(recipe: str, only: list[str] | None = None, force: bool = False) -> dict:
    rdir = recipe_dir(recipe)
    plan = read_yaml(rdir / "speedrun.yaml")
    stages = plan.get("stages") or []
    if not stages:
        raise ConfigError(f"{rdir / 'speedrun.yaml'}: 'stages' must list the stages to run")
    output_root = Path(plan.get("output_root", f"outputs/{rdir.name}"))
    summary_path = output_root / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"stages": {}}
    summary["recipe"] = rdir.name
    start = time.time()
    for entry in stages:
        stage, extra = (entry, []) if isinstance(entry, str) else (entry["stage"], entry.get("args", []))
        name = entry if isinstance(entry, str) else entry.get("name", stage)
        config = rdir / f"{name}.yaml"
        if only and name not in only:
            continue
        out_dir = read_yaml(config).get("output_dir") or str(output_root / name)
        done = read_metrics(out_dir)
        if done is not None and not force:
            print(f"== {name}: complete in {out_dir}, skipped")
            summary["stages"].setdefault(name, {"seconds": done.get("seconds", 0.0), "metrics": scalars(done)})
            continue
        if done is not None:
            forget_finished_run(out_dir)
        print(f"== {name}: chatstack {stage} --config {config}")
        t0 = time.time()
        run_stage(stage, config, extra)
        metrics = read_metrics(out_dir) or {}
        summary["stages"][name] = {"seconds": round(time.time() - t0, 1), "metrics": scalars(metrics)}
        output_root.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(summary, indent=2))
    summary["total_seconds"] = round(sum(s["seconds"] for s in summary["stages"].values()), 1)
    summary["wall_seconds_this_run"] = round(time.time() - start, 1)
    output_root.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2))
    print_table(summary)
    if plan.get("report", True):
        try:
            print(f"report: {write_report(output_root)}")
        except ImportError:  # matplotlib missing: the summary is written, the report card is not
            pass
    return summary


def print_table(summary: dict) -> None:
    print(f"\n{'stage':<15} {'seconds':>8}  key metrics")
    for name, s in summary["stages"].items():
        keys = STAGE_KEY_METRICS.get(name, []) or list(s["metrics"])[:4]
        shown = ", ".join(f"{k}={s['metrics'][k]}" for k in keys if k in s["metrics"])
        print(f"{name:<15} {s['seconds']:>8.1f}  {shown}")
    print(f"{'total':<15} {summary['total_seconds']:>8.1f}")


def main(argv: list[str]) -> int:
    (a,) = parse_cli("chatstack speedrun", __doc__, (SpeedrunArgs,), argv)
    speedrun(a.recipe, a.stages.split(",") if a.stages else None, a.force)
    return 0
