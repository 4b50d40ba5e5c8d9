"""`chatstack report --recipe tiny`: outputs/<recipe>/report.md, the run at a glance.

`chatstack report --runs outputs/tiny-seed0,outputs/tiny-seed1,outputs/tiny-seed2` prints the
lesson cards of several runs side by side with mean and range (a lesson holds only if it holds
on every world seed).

Environment, per-stage time, the key metrics in one table, loss curves and before/after
plots (PNG, matplotlib), and a few sample generations and conversations, all read back
from what the stages wrote (summary.json, metrics.json, log_history.json, samples.jsonl).
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from chatstack.config import parse_cli
from chatstack.errors import ConfigError
from chatstack.evaluation.tables import BEFORE_AFTER, STAGE_KEY_METRICS
from chatstack.lessons import card_table, lesson_card, seeds_table


@dataclass
class ReportArgs:
    recipe: str = field(default="tiny", metadata={"help": "the recipe whose outputs to report on"})
    output_root: str | None = field(default=None, metadata={"help": "default: outputs/<recipe>"})
    runs: str | None = field(default=None, metadata={
        "help": "comma-separated run folders (e.g. outputs/tiny-seed0,outputs/tiny-seed1,outputs/tiny-seed2): "
                "print their lesson cards side by side, with mean and range, instead of writing a report"})


def environment() -> dict:
    import importlib.metadata as md
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count()}
    from chatstack.hardware import cpu_name
    env["cpu"] = cpu_name()
    for pkg in ("torch", "transformers", "trl", "datasets", "tokenizers", "peft", "accelerate"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return env


def _plot_losses(stage_dir: Path, out: Path) -> Path | None:
    path = stage_dir / "log_history.json"
    if not path.exists():
        return None
    history = json.loads(path.read_text())
    train = [(h.get("step", h.get("batch", i)), h["loss"]) for i, h in enumerate(history) if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    scores = [(h["batch"], h["score"]) for h in history if "score" in h]  # ppo
    if not (train or scores):
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    if scores:
        ax.plot(*zip(*scores), label="reward (rollouts)")
        ax.set_xlabel("rollout batch")
    else:
        ax.plot(*zip(*train), label="train loss")
        if evals:
            ax.plot(*zip(*evals), "o-", label="eval loss")
        ax.set_xlabel("step")
    ax.set_title(stage_dir.name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _plot_grpo(stage_dir: Path, out: Path) -> Path | None:
    """DeepSeek-R1's figures in miniature: training reward, greedy held-out accuracy and mean
    completion length against the GRPO step (TRL logs the first and last, the stage the second)."""
    path = stage_dir / "log_history.json"
    if not path.exists():
        return None
    history = json.loads(path.read_text())
    curves = {"training reward": [(h["step"], h["reward"]) for h in history if "reward" in h],
              "held-out accuracy (greedy)": [(h["step"], h["heldout_accuracy"]) for h in history
                                             if "heldout_accuracy" in h],
              "completion length (tokens)": [(h["step"], h["completions/mean_length"]) for h in history
                                             if "completions/mean_length" in h]}
    if not curves["held-out accuracy (greedy)"]:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for ax, (title, points) in zip(axes, curves.items()):
        if points:
            ax.plot(*zip(*points), "o-", markersize=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("GRPO step")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _plot_ppo(stage_dir: Path, out: Path) -> Path | None:
    """Gao et al. 2022 in miniature: gold score and proxy (reward model) of greedy replies to the
    validation prompts against the KL to the SFT model, for PPO (an eval every few rollout batches)
    and for best-of-n sampling (n = 1..16 samples at the PPO temperature, KL = log n - (n-1)/n: its
    n = 1 point is a sampled reply, so it starts below PPO's greedy one); the kept policy is circled."""
    path = stage_dir / "metrics.json"
    m = json.loads(path.read_text()) if path.exists() else {}
    curve, bon = m.get("ppo_curve") or [], m.get("best_of_n") or []
    if not curve or "gold" not in curve[0]:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    kept = next((c for c in curve if c["step"] == m.get("kept_step")), None)
    for ax, key in zip(axes, ("gold", "proxy")):
        ax.plot([c["kl"] for c in curve], [c[key] for c in curve], "o-", markersize=3, label="PPO")
        if bon:
            ax.plot([b["kl"] for b in bon], [b[key] for b in bon], "s--", markersize=3, label="best-of-n")
            for b in bon:
                ax.annotate(f"n={b['n']}", (b["kl"], b[key]), fontsize=6, textcoords="offset points", xytext=(2, 2))
        if kept:
            ax.plot([kept["kl"]], [kept[key]], "o", markersize=9, fillstyle="none", color="k",
                    label=f"kept (step {kept['step']})")
        ax.set_title(("gold score" if key == "gold" else "proxy: reward model")
                     + " (PPO greedy; best-of-n sampled)", fontsize=9)
        ax.set_xlabel("KL to the SFT model (nats per reply)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _plot_before_after(stages: dict, out: Path) -> Path | None:
    bars = [(f"{s}: {label}", m[b], m[a]) for s, (label, b, a) in BEFORE_AFTER.items()
            if (m := stages.get(s, {}).get("metrics", {})) and b in m and a in m]
    if not bars:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(bars), figsize=(3.2 * len(bars), 3))
    for ax, (label, before, after) in zip(axes if len(bars) > 1 else [axes], bars):
        ax.bar(["before", "after"], [before, after], color=["#999", "#3a7"])
        ax.set_title(label, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _samples(root: Path) -> list[str]:
    lines = []
    samples = root / "pretrain" / "samples.jsonl"
    if samples.exists():
        last = json.loads(samples.read_text().splitlines()[-1])
        lines.append(f"**Base model** (step {last['step']}):\n")
        lines += [f"- `{p!r}` -> `{s[:120]!r}`" for p, s in last["samples"].items()]
    for stage, key in (("sft", "qa_samples_seen"), ("grpo", "samples_after")):
        path = root / stage / "metrics.json"
        if path.exists() and (rows := json.loads(path.read_text()).get(key)):
            lines.append(f"\n**{stage}** conversations:\n")
            for r in rows[:4]:
                q = r.get("question") or r.get("prompt")
                lines.append(f"- user: {q}  \n  assistant: {r['reply']!r} (truth: {r['answer']})")
    return lines


def write_report(output_root: str | Path) -> Path:
    root = Path(output_root)
    summary_path = root / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{summary_path}: no summary; run `chatstack speedrun` first")
    summary = json.loads(summary_path.read_text())
    plots = root / "plots"
    plots.mkdir(exist_ok=True)
    md = [f"# chatstack report: {summary.get('recipe', root.name)}", "",
          f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; "
          f"total stage time {summary.get('total_seconds', 0):.0f} s.", ""]
    card = summary.get("lessons") or lesson_card(summary["stages"])
    if card:
        md += ["## Lessons: the talk's claims, as this run measured them", "", *card_table(card), ""]
    md += ["## Stages", "", "| stage | seconds | key metrics |", "|---|---:|---|"]
    for name, s in summary["stages"].items():
        keys = ([k for k in STAGE_KEY_METRICS.get(name, []) if k in s["metrics"]]
                or [k for k in s["metrics"] if k != "seconds"][:6])
        shown = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                          for k, v in ((k, s["metrics"][k]) for k in keys))
        md.append(f"| {name} | {s['seconds']:.0f} | {shown} |")
    ba = _plot_before_after(summary["stages"], plots / "before_after.png")
    if ba:
        md += ["", "## Before / after", "", f"![before and after]({ba.relative_to(root)})"]
    refusal_plot = root / "eval_refusal" / "refusal_before_after.png"
    if refusal_plot.exists():
        md += ["", f"![refusal before and after]({refusal_plot.relative_to(root)})"]
    md += ["", "## Training curves", ""]
    for name in summary["stages"]:
        p = _plot_losses(root / name, plots / f"{name}_loss.png")
        if p:
            md.append(f"![{name}]({p.relative_to(root)})")
    grpo_plot = _plot_grpo(root / "grpo", plots / "grpo_curves.png")
    if grpo_plot:
        md += ["", "## GRPO: reward, accuracy and length per step", "", f"![grpo curves]({grpo_plot.relative_to(root)})"]
    ppo_plot = _plot_ppo(root / "ppo", plots / "ppo_proxy_gold.png")
    if ppo_plot:
        md += ["", "## RLHF: proxy and gold against KL (PPO and best-of-n)", "",
               f"![proxy and gold against KL]({ppo_plot.relative_to(root)})"]
    md += ["", "## Samples", "", *_samples(root), "", "## Environment", "", "| | |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in environment().items()]
    out = root / "report.md"
    out.write_text("\n".join(md) + "\n")
    return out


def compare_runs(roots: list[str]) -> list[str]:
    """The lesson card of each run (its summary.json), side by side: one table over seeds."""
    cards = {}
    for root in roots:
        path = Path(root) / "summary.json"
        if not path.exists():
            raise ConfigError(f"{path}: no summary; run `chatstack speedrun` there first")
        summary = json.loads(path.read_text())
        label = f"seed {summary['world_seed']}" if summary.get("world_seed") is not None else Path(root).name
        cards[label if label not in cards else str(root)] = summary.get("lessons") or lesson_card(summary["stages"])
    return seeds_table(cards)


def main(argv: list[str]) -> int:
    (a,) = parse_cli("chatstack report", __doc__, (ReportArgs,), argv)
    if a.runs:
        print("\n".join(compare_runs([r.strip() for r in a.runs.split(",") if r.strip()])))
        return 0
    print(write_report(a.output_root or f"outputs/{a.recipe}"))
    return 0
