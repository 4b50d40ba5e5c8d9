"""Learning per CPU minute of the tiny base: the pretrain stage under competing settings, each
trained for the same wall-clock budget or the same number of steps, then compared on eval loss
and on what the base knows (recall per attribute of held-out and QA-trained people, arithmetic).

    python benchmarks/learning_per_minute.py --steps 360                  # the default variants
    python benchmarks/learning_per_minute.py --budget_s 300 --variant adamw '--optimizer adamw' \
        --variant muon '--optimizer muon --muon_learning_rate 0.05' \
        --variant muon_wide '--optimizer muon --model_config {"n_embd":384,"n_head":6}' \
        --variant more_people '--optimizer muon --world {"n_seen":120}'

Each variant is the real stage (chatstack.pretrain.train) on the recipe plus its overrides, in a
temporary folder, with one tokenizer for all (trained once from the recipe's tokenizer.yaml, or
--tokenizer). `--world JSON` in a variant: WorldConfig fields over the recipe's world, written as
a temporary copy of the recipe's `builder: world_pretraining` dataset; the stage's recall (chatstack.evaluation.recall,
the figures metrics.json carries) is then measured on that same world. Periodic evals,
checkpoints and samples are off (they are not learning); the final eval loss and the recall run
after training, outside the budget.

Budget mode (`--budget_s`), kept honest: the cosine schedule must end where training ends, and
on a shared machine a short timed warm-up mispredicts the steps a budget reaches (runs here were
12-40% slower, or 7x faster when the warm-up met a burst of other work). So each variant's warm-up
of its own stage (`--calibrate_steps`, not counted) only plans it: from budget / its seconds per
step, the LR warmup (the recipe's ratio of that estimate) and a loose cap (10x); the stage's
`max_train_seconds` then re-sizes the decay every 10 steps to end at the step the budget reaches
at the run's own pace, and stops it there (chatstack.pretrain.TimeBudget).
A variant giving its own `--max_steps` skips the warm-up; the budget still stops it. `--steps N`
(fixed tokens at a fixed batch, default) is the comparison the load cannot move; its tokens/s can
(read `loadavg` beside each row; benchmarks/pretrain_throughput.py --variant interleaves step
speed). A table, then one compact JSON object on the last line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pretrain_throughput import StepClock  # noqa: E402 (the same per-step clock)

from chatstack.config import parse_config  # noqa: E402
from chatstack.evaluation.recall import in_world  # noqa: E402
from chatstack.hardware import cpu_name, resolve_bf16  # noqa: E402
from chatstack.pretrain import PretrainConfig, build_trainer, train, world_of  # noqa: E402
from chatstack.world.datasets import get_world  # noqa: E402
from chatstack.world.generator import ATTRIBUTES  # noqa: E402

DEFAULT_VARIANTS = [  # AdamW everywhere (the recipe before issue 17) against Muon at the best lr of a sweep
    ("adamw", "--optimizer adamw"),
    ("muon", "--optimizer muon --muon_learning_rate 0.05"),
]
QUIET = ["--eval_strategy", "no", "--save_strategy", "no", "--disable_tqdm", "true", "--report_to", "none",
         "--use_cpu", "true"]


def split_world(overrides: str) -> tuple[list[str], dict | None]:
    """A variant's CLI overrides of the pretrain config, and its `--world JSON` (or None). A {...}
    (flat JSON: --world, --model_config) is kept whole, its quotes with it; the rest is shlex-split."""
    args, world = [], None
    for braces, rest in re.findall(r"(\{[^{}]*\})|([^{}]+)", overrides):
        args += [braces] if braces else shlex.split(rest)
    if "--world" in args:
        i = args.index("--world")
        world = json.loads(args[i + 1])
        del args[i:i + 2]
    return args, world


def config(a, name: str, overrides: list[str], world: dict | None, work: Path, tokenizer: Path) -> PretrainConfig:
    out = work / name
    base = ["--output_dir", str(out / "pretrain"), "--tokenizer_name_or_path", str(tokenizer), *QUIET,
            *shlex.split(a.set)]
    cfg = parse_config(PretrainConfig, a.recipe, base + overrides)
    if world is not None:  # WorldConfig fields over the recipe's world, as a dataset of its own
        recipe_world = world_of(cfg.dataset)
        if recipe_world is None:
            raise SystemExit(f"variant {name}: --world needs a world dataset, the recipe's is '{cfg.dataset}'")
        fields = {**dataclasses.asdict(get_world(recipe_world).config), **world}
        out.mkdir(parents=True, exist_ok=True)
        (out / "data.yaml").write_text(yaml.safe_dump(in_world(cfg.dataset, fields)))  # its other args kept
        cfg = parse_config(PretrainConfig, a.recipe, base + overrides + ["--dataset", str(out / "data.yaml")])
    cfg.sample_prompts = []
    return cfg


def seconds_per_step(cfg: PretrainConfig) -> float:
    """The variant's own step time: a short run of its stage's Trainer, the first 2 steps left out."""
    resolve_bf16(cfg)  # as the stage will train (fp32 where bf16 is emulated)
    trainer, _ = build_trainer(cfg)
    clock = StepClock()
    trainer.add_callback(clock)
    trainer.train()
    return (clock.ends[-1] - clock.ends[1]) / (len(clock.ends) - 2)


def run_variant(a, name: str, overrides: str, work: Path, tokenizer: Path) -> dict:
    args, world = split_world(overrides)
    own_steps = "--max_steps" in args
    row: dict = {"overrides": overrides}
    if a.budget_s and not own_steps:
        calibrate = config(a, f"{name}_calibrate", [*args, "--max_steps", str(max(3, a.calibrate_steps))],
                           world, work, tokenizer)
        step_s = seconds_per_step(calibrate)
        steps = a.budget_s / step_s
        if 0 < calibrate.warmup_steps < 1:  # a ratio: of the estimate, not of the cap
            args += ["--warmup_steps", str(max(1, round(calibrate.warmup_steps * steps)))]
        args += ["--max_steps", str(max(1, int(10 * steps)))]  # only a bound: the stage sizes the decay
        row["calibrated_step_s"] = round(step_s, 3)
    elif not own_steps:
        args += ["--max_steps", str(a.steps)]
    if a.budget_s:
        args += ["--max_train_seconds", str(a.budget_s)]
    cfg = config(a, name, args, world, work, tokenizer)
    load = os.getloadavg()[0]
    m = train(cfg)
    steps = m["train_tokens"] // m["tokens_per_step"]
    row.update(steps=steps, planned_steps=cfg.max_steps, tokens=m["train_tokens"], seconds=m["train_seconds"],
               tokens_per_s=round(m["train_tokens"] / m["train_seconds"], 1), eval_loss=m["eval_loss"],
               parameters=m["parameters"], loadavg=[round(load, 2), round(os.getloadavg()[0], 2)])
    for w in ("heldout", "trained"):
        per = {attr: m.get(f"recall_{w}_{attr}") for attr in ATTRIBUTES}
        row[f"recall_{w}"] = per
        if None not in per.values():
            row[f"recall_{w}_mean"] = round(statistics.mean(per.values()), 4)
    row["arithmetic_accuracy"] = m.get("arithmetic_accuracy")
    return row


def table(rows: dict) -> str:
    short = {"birth_city": "city", "birth_year": "year", "university": "uni", "field": "field", "employer": "empl"}
    head = ["variant", "steps", "tokens", "s", "tok/s", "eval", "held", "trained", "arith"] + \
        [f"h.{short.get(a, a)}" for a in ATTRIBUTES]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for name, r in rows.items():
        def pct(x):
            return "-" if x is None else f"{x:.0%}"
        cells = [name, str(r["steps"]), f"{r['tokens']:,}", f"{r['seconds']:.0f}", f"{r['tokens_per_s']:,.0f}",
                 f"{r['eval_loss']:.3f}", pct(r.get("recall_heldout_mean")), pct(r.get("recall_trained_mean")),
                 pct(r["arithmetic_accuracy"])] + [pct(r["recall_heldout"][a]) for a in ATTRIBUTES]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(REPO / "recipes" / "tiny" / "pretrain.yaml"))
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: train the recipe's into a temp dir)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--budget_s", type=float, default=None, help="train each variant for this many seconds")
    mode.add_argument("--steps", type=int, default=360, help="train each variant for this many steps (default mode)")
    p.add_argument("--calibrate_steps", type=int, default=8, help="budget mode: timed warm-up steps per variant")
    p.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "OVERRIDES"), default=None,
                   help="a name and its pretrain overrides (plus --world JSON), repeatable; default: "
                   + "; ".join(f"{n} '{o}'" for n, o in DEFAULT_VARIANTS))
    p.add_argument("--set", default="", help="overrides for every variant, e.g. --set '--seed 1'")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, OMP_NUM_THREADS)")
    p.add_argument("--keep", default=None, help="write the variants' outputs here instead of a temp dir")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(a.keep or tempfile.mkdtemp(prefix="learning_per_minute_"))
    tokenizer = Path(a.tokenizer) if a.tokenizer else work / "tokenizer"
    if not a.tokenizer:
        from chatstack.tokenizer import TokenizerConfig, train_tokenizer
        train_tokenizer(parse_config(TokenizerConfig, Path(a.recipe).parent / "tokenizer.yaml",
                                     ["--output_dir", str(tokenizer)]))
    start = time.time()
    rows = {}
    for name, overrides in a.variant or DEFAULT_VARIANTS:
        rows[name] = run_variant(a, name, overrides, work, tokenizer)
        print(f"[learning_per_minute] {name}: {json.dumps(rows[name])}", flush=True)
    result = {"recipe": a.recipe, "mode": {"budget_s": a.budget_s} if a.budget_s else {"steps": a.steps},
              "cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "seconds": round(time.time() - start, 1), "variants": rows}
    print(table(rows), flush=True)
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
