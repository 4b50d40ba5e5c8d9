"""`chatstack speedrun --recipe tiny`: every stage of a recipe in order.

A stage whose output folder already has metrics.json is complete and is skipped, so a
rerun after an interruption continues where it stopped (and a stage cut mid-way resumes
from its own last checkpoint). Writes <output_root>/summary.json and prints a table.

`--world_seed N` builds the synthetic world with seed N in every stage (through
CHATSTACK_WORLD_SEED, so processes started by `accelerate launch` see it too) and writes to
`<output_root>-seedN/`; `--output_root DIR` moves the run. The stage YAMLs name their
inputs and outputs under the recipe's output_root (outputs/tiny/sft, the reward model, the
probe's train.jsonl in a dataset spec): every such path is re-rooted and passed to the stage
as an override, a dataset spec holding one as a rewritten copy under <root>/_datasets/, so
each stage reads what the previous one of the same run wrote.

After each stage `<output_root>/final` points at the final model (`choose_final`): the last
chat stage whose lesson holds (an RL stage replaces the model it started from only if it
taught its lesson); `chatstack chat` and `serve` open it when no model is named.

`--smoke` runs a recipe's YAMLs unchanged but for the overrides of its smoke.yaml: toy sizes
per stage and its Hub ids mapped to local copies, through the same dataset specs (rewritten
copies, as above), writing to `<output_root>-smoke/`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from chatstack.config import parse_cli, read_yaml
from chatstack.errors import ConfigError
from chatstack.evaluation.tables import STAGE_KEY_METRICS
from chatstack.lessons import card_table, lesson_card
from chatstack.paths import REPO_ROOT, find_resource
from chatstack.report import write_report
from chatstack.stage import forget_finished_run, read_metrics


@dataclass
class SpeedrunArgs:
    recipe: str = field(default="tiny", metadata={"help": "a recipe name (recipes/<recipe>/speedrun.yaml) or folder"})
    stages: str | None = field(default=None, metadata={"help": "comma-separated subset, e.g. sft,reward"})
    force: bool = field(default=False, metadata={"help": "rerun stages even if complete"})
    world_seed: int | None = field(
        default=None,
        metadata={"help": "seed of the synthetic world for every stage; writes to <output_root>-seed<N> by default"},
    )
    output_root: str | None = field(default=None, metadata={"help": "where the run writes (default: the recipe's)"})
    smoke: bool = field(
        default=False,
        metadata={"help": "the recipe's YAMLs at toy sizes on local data (its smoke.yaml); writes to <output_root>-smoke"},
    )


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


def reroot(value, old: str, new: str):
    """`value` with every path under `old` moved under `new` (in strings, lists and mappings)."""
    if isinstance(value, str):
        return new + value[len(old) :] if value == old or value.startswith(old.rstrip("/") + "/") else value
    if isinstance(value, list):
        return [reroot(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: reroot(v, old, new) for k, v in value.items()}
    return value


def _spec_file(name: str) -> Path | None:
    return find_resource(name if name.endswith((".yaml", ".yml")) else f"datasets_cfg/{name}.yaml")


def _anchor_files(spec: dict, base: Path) -> dict:
    """Relative `files` of a spec read from `base`/x.yaml, made absolute, so that a rewritten
    copy written elsewhere still finds them (as loading does: the current directory first)."""
    if "files" not in spec:
        return spec
    files = spec["files"] if isinstance(spec["files"], list) else [spec["files"]]
    out = []
    for f in files:
        p = Path(f).expanduser()
        if not p.is_absolute() and not p.exists() and not list(Path().glob(str(p))):
            for cand in (base / p, REPO_ROOT / p):
                if cand.exists() or list(cand.parent.glob(cand.name)):
                    p = cand.resolve()
                    break
        out.append(str(p))
    return {**spec, "files": out}


def rewrite_spec(spec, edit, base: Path = REPO_ROOT):
    """A dataset spec (datasets_cfg name, path or mapping) with `edit(mapping) -> mapping` applied
    to it and to every spec inside it (mixture parts, a builder's `source`); names are read
    from datasets_cfg. Returns `spec` itself when nothing changed."""
    if isinstance(spec, str):
        path = _spec_file(spec)
        if path is None:
            return spec  # not a dataset name: the stage says what is wrong with it
        data = read_yaml(path)
        new = rewrite_spec(data, edit, path.parent)
        return spec if new == data else new
    if not isinstance(spec, dict):
        return spec
    out = dict(spec)
    if isinstance(out.get("mixture"), list):
        out["mixture"] = [rewrite_spec(part, edit, base) for part in out["mixture"]]
    if isinstance(out.get("args"), dict) and "source" in out["args"]:
        out["args"] = {**out["args"], "source": rewrite_spec(out["args"]["source"], edit, base)}
    out = edit(out)
    return spec if out == spec else _anchor_files(out, base)


HUB_ONLY = ("hub", "config", "split", "streaming", "revision", "data_files", "data_dir")


def shared_data() -> str:
    return os.environ.get("CHATSTACK_SHARED_DATA") or str((REPO_ROOT.parent / "shared" / "data").resolve())


def hub_mapper(mapping: dict):
    """An edit for rewrite_spec: a `hub` spec whose id (or id:split) is in `mapping` becomes the
    mapped spec ({shared_data} filled in), keeping its columns, rename, max_rows, weight, ...; a
    mapped `hub` spec (e.g. {hub: json, data_files: ...}) also keeps the split and streaming."""

    def fill(value):
        if isinstance(value, str):
            return value.replace("{shared_data}", shared_data())
        if isinstance(value, list):
            return [fill(v) for v in value]
        return {k: fill(v) for k, v in value.items()} if isinstance(value, dict) else value

    def edit(spec: dict) -> dict:
        if "hub" not in spec:
            return spec
        key = f"{spec['hub']}:{spec.get('split', 'train')}"
        target = mapping.get(key, mapping.get(spec["hub"]))
        if target is None:
            return spec
        kept = ("split", "streaming") if "hub" in target else ()
        rest = {k: v for k, v in spec.items() if k not in HUB_ONLY or k in kept}
        return {**rest, **fill(target)}

    return edit


def cli_value(value) -> list[str]:
    if isinstance(value, bool):
        return [str(value).lower()]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [json.dumps(value)] if isinstance(value, dict) else [str(value)]


def stage_overrides(config: dict, edit_path, edit_spec, spec_dir: Path, name: str) -> list[str]:
    """`--key value` overrides for a stage config: each string (or list of strings) changed by
    `edit_path`, and each dataset name whose spec `edit_spec` changes, as a rewritten copy."""
    args: list[str] = []
    for key, value in config.items():
        new = edit_path(value)
        if isinstance(value, str) and new == value and _spec_file(value) is not None:
            spec = rewrite_spec(value, edit_spec)
            if spec != value:
                spec_dir.mkdir(parents=True, exist_ok=True)
                new = str(spec_dir / f"{name}.{key}.yaml")
                Path(new).write_text(json.dumps(spec, indent=2))  # JSON is YAML
        if new == value:
            continue
        if isinstance(new, str):
            args += [f"--{key}", new]
        elif isinstance(new, list) and all(isinstance(v, str) for v in new):
            args += [f"--{key}", *new]
        else:
            raise ConfigError(f"{name}: cannot pass the re-rooted value of '{key}' on the command line: {new!r}")
    return args


def speedrun(
    recipe: str,
    only: list[str] | None = None,
    force: bool = False,
    world_seed: int | None = None,
    output_root: str | None = None,
    smoke: bool = False,
) -> dict:
    from chatstack.world.datasets import WORLD_SEED_ENV, world_seed_override

    rdir = recipe_dir(recipe)
    plan = read_yaml(rdir / "speedrun.yaml")
    stages = plan.get("stages") or []
    if not stages:
        raise ConfigError(f"{rdir / 'speedrun.yaml'}: 'stages' must list the stages to run")
    world_seed = world_seed if world_seed is not None else world_seed_override()
    recipe_root = str(plan.get("output_root", f"outputs/{rdir.name}"))
    suffix = (f"-seed{world_seed}" if world_seed is not None else "") + ("-smoke" if smoke else "")
    root = output_root or f"{recipe_root.rstrip('/')}{suffix}"
    smoke_plan = {}
    if smoke:
        if not (rdir / "smoke.yaml").is_file():
            raise ConfigError(f"--smoke: {rdir / 'smoke.yaml'} not found (the recipe's toy sizes and local data)")
        smoke_plan = read_yaml(rdir / "smoke.yaml")
    output_root = Path(root)
    summary_path = output_root / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"stages": {}}
    if summary.get("world_seed") != world_seed and summary["stages"] and not force:
        raise ConfigError(
            f"{output_root} holds a run on world seed {summary.get('world_seed')}, not {world_seed}: "
            "pick another --output_root or pass --force"
        )
    summary["recipe"] = rdir.name
    summary["world_seed"] = world_seed

    def edit_path(value):
        return reroot(value, recipe_root, root)

    map_hub = hub_mapper(smoke_plan.get("hub") or {})

    def edit_spec(spec: dict) -> dict:
        return map_hub({k: edit_path(v) for k, v in spec.items()})

    saved_env = os.environ.get(WORLD_SEED_ENV)
    if world_seed is not None:
        os.environ[WORLD_SEED_ENV] = str(world_seed)
    try:
        _run_stages(rdir, stages, only, force, output_root, summary, edit_path, edit_spec, smoke_plan.get("stages") or {})
    finally:
        if saved_env is None:
            os.environ.pop(WORLD_SEED_ENV, None)
        else:
            os.environ[WORLD_SEED_ENV] = saved_env
    print_table(summary)
    if plan.get("report", True):
        try:
            print(f"report: {write_report(output_root)}")
        except ImportError:  # matplotlib missing: the summary is written, the report card is not
            pass
    return summary


def _run_stages(
    rdir: Path, stages: list, only, force: bool, output_root: Path, summary: dict, edit_path, edit_spec, shrink: dict
) -> None:
    summary_path = output_root / "summary.json"
    start = time.time()
    order = [e if isinstance(e, str) else e.get("name", e["stage"]) for e in stages]
    for entry in stages:
        stage, extra = (entry, []) if isinstance(entry, str) else (entry["stage"], entry.get("args", []))
        name = entry if isinstance(entry, str) else entry.get("name", stage)
        config = rdir / f"{name}.yaml"
        if only and name not in only:
            continue
        values = read_yaml(config)
        out_dir = edit_path(values.get("output_dir") or str(output_root / name))
        overrides = stage_overrides(values, edit_path, edit_spec, output_root / "_datasets", name)
        if "--output_dir" not in overrides:
            overrides += ["--output_dir", out_dir]
        for key, value in (shrink.get(name) or {}).items():
            overrides += [f"--{key}", *cli_value(value)]
        done = read_metrics(out_dir)
        if done is not None and not force:
            print(f"== {name}: complete in {out_dir}, skipped")
            summary["stages"].setdefault(name, {"seconds": done.get("seconds", 0.0), "metrics": scalars(done),
                                                "output_dir": out_dir})
            link_final(output_root, summary, order)
            continue
        if done is not None:
            forget_finished_run(out_dir)
        print(f"== {name}: chatstack {stage} --config {config} {' '.join(overrides)}".rstrip())
        t0 = time.time()
        run_stage(stage, config, [*extra, *overrides])
        metrics = read_metrics(out_dir) or {}
        summary["stages"][name] = {"seconds": round(time.time() - t0, 1), "metrics": scalars(metrics),
                                   "output_dir": out_dir}
        output_root.mkdir(parents=True, exist_ok=True)
        link_final(output_root, summary, order)  # after each stage: the next stage may open `final`
        summary_path.write_text(json.dumps(summary, indent=2))
    summary["total_seconds"] = round(sum(s["seconds"] for s in summary["stages"].values()), 1)
    summary["wall_seconds_this_run"] = round(time.time() - start, 1)
    summary["lessons"] = lesson_card(summary["stages"])
    output_root.mkdir(parents=True, exist_ok=True)
    link_final(output_root, summary, order)
    summary_path.write_text(json.dumps(summary, indent=2))


# chat stages that may be the final model, and the lesson an RL stage must hold to replace the
# model it started from (a stage that did not teach its lesson is not what a user should talk to)
FINAL_STAGES = ("sft", "sft_refusal", "assistant", "ppo", "grpo")
FINAL_GATES = {"ppo": "rlhf", "grpo": "grpo"}


def choose_final(order: list[str], stages: dict, card: dict) -> tuple[str, str] | None:
    """(stage, why) of the final model: the last chat stage of the run, in the recipe's order,
    whose lesson holds (an SFT stage needs none)."""
    final = None
    for name in order:
        if name not in FINAL_STAGES or name not in stages:
            continue
        gate = FINAL_GATES.get(name)
        if gate is None:
            final = (name, "the last SFT stage of the lineage")
        elif card.get(gate, {}).get("met"):
            final = (name, f"its lesson '{gate}' holds")
        elif final:
            final = (final[0], f"{final[1]}; {name} did not replace it: its lesson '{gate}' does not hold")
    return final


def link_final(output_root: Path, summary: dict, order: list[str]) -> None:
    """Point <output_root>/final at the final model (a relative symlink) and name it in the summary."""
    chosen = choose_final(order, summary["stages"], lesson_card(summary["stages"]))
    if chosen is None:
        return
    name, why = chosen
    target = Path(summary["stages"][name].get("output_dir") or output_root / name)
    link = output_root / "final"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(target.resolve(), output_root.resolve()), target_is_directory=True)
    summary["final_model"] = {"stage": name, "path": str(link), "target": str(target), "why": why}


def print_table(summary: dict) -> None:
    print(f"\n{'stage':<15} {'seconds':>8}  key metrics")
    for name, s in summary["stages"].items():
        keys = STAGE_KEY_METRICS.get(name, []) or list(s["metrics"])[:4]
        shown = ", ".join(f"{k}={s['metrics'][k]}" for k in keys if k in s["metrics"])
        print(f"{name:<15} {s['seconds']:>8.1f}  {shown}")
    print(f"{'total':<15} {summary['total_seconds']:>8.1f}")
    if summary.get("final_model"):
        f = summary["final_model"]
        print(f"\nfinal model: {f['path']} -> {f['target']} ({f['why']}); talk to it: chatstack chat")
    if summary.get("lessons"):
        print("\nlessons (the talk's claims, as this run measured them):")
        print("\n".join(card_table(summary["lessons"])))


def main(argv: list[str]) -> int:
    (a,) = parse_cli("chatstack speedrun", __doc__, (SpeedrunArgs,), argv)
    only = a.stages.split(",") if a.stages else None
    speedrun(a.recipe, only, a.force, world_seed=a.world_seed, output_root=a.output_root, smoke=a.smoke)
    return 0
