"""Did refusal training cure hallucination? Before/after, on facts the builder never saw.

Each model answers greedily; each reply is judged correct / refused / wrong (a confident
wrong answer: a hallucination) against the truth. Per group of facts (the synthetic world:
`seen` = held-out seen people, `unseen` = the eval half of the unseen people; a QA file:
its name):

    accuracy_<g>_<before|after>        share answered correctly
    refusal_<g>_<before|after>         share refused
    hallucination_<g>_<before|after>   share answered with a wrong fact
    over_refusal_<g>_after             share refused after among those answered correctly before
    accuracy_<g>_drop                  accuracy before - accuracy after

For the world, the unseen people are also split by name: `unseen_familiar_name` (first and
last name both occur among the seen people: "Ada Barlow" when "Ada Drake" and "Cato Barlow"
were read) and `unseen_new_name` (the rest), because a small model judges familiarity by the
parts of a name rather than by the whole.

`probes` names the builder's probes.jsonl: an eval fact or person found there is an error,
so the eval people never fed the builder. Writes metrics.json, answers.jsonl (every reply
and verdict) and refusal_before_after.png into output_dir.

    chatstack build refusals_eval --config recipes/tiny/eval_refusal.yaml
    python -m chatstack.evaluation.refusal --config recipes/tiny/eval_refusal.yaml
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatstack.errors import DataError
from chatstack.judges import rates
from chatstack.probing import FactsConfig, ModelProber, get_judge, keep_fitting, load_chat_model, load_facts, make_questions

GOALS = {  # the targets for the tiny recipe: (metric, max)
    "hallucination_unseen_after": 0.10,
    "accuracy_seen_drop": 0.05,
    "over_refusal_seen_after": 0.10,
}


@dataclass
class RefusalEvalConfig(FactsConfig):
    builder: str = field(default="refusals_eval", metadata={"help": "the command this config is for"})
    output_dir: str = "outputs/tiny/eval_refusal"
    before: str = field(default="outputs/tiny/sft", metadata={"help": "the model before refusal training"})
    after: str | None = field(default="outputs/tiny/sft_refusal", metadata={"help": "the model after (none: one model)"})
    probes: str | None = field(default="outputs/tiny/probe_refusals/probes.jsonl", metadata={
        "help": "the builder's probes.jsonl: eval facts must not be in it (none: no check)"})
    plot: bool = True
    # FactsConfig, with the eval's defaults: held-out seen people and the eval half of the unseen
    splits: list[str] = field(default_factory=lambda: ["qa_heldout", "unseen"])
    part: str = "eval"
    phrasings: list[int] = field(default_factory=lambda: [0, 1, 2])
    max_people: int | None = 100


def greedy_prober(model_path_or_pair, cfg: FactsConfig) -> ModelProber:
    """The prober of one model (a path or a (model, tokenizer) pair), answering greedily."""
    if isinstance(model_path_or_pair, tuple):
        engine = None
        model, tok = model_path_or_pair
    else:
        engine, model, tok = load_chat_model(model_path_or_pair, prompt_format=cfg.prompt_format), None, None
    return ModelProber(model=model, tokenizer=tok, engine=engine, prompt_format=cfg.prompt_format, temperature=0.0,
                       max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, system_prompt=cfg.system_prompt,
                       completion_prompt=cfg.completion_prompt)


def ask(prober: ModelProber, questions: list[str], seed: int) -> list[str]:
    return [r[0] for r in prober(questions, 1, seed)]


def group_rates(verdicts: list[str], group: str, when: str | None = None) -> dict[str, float]:
    """chatstack.judges.rates flattened into this eval's keys: `<rate>_<group>[_<when>]`,
    with the rate's `_rate` dropped (accuracy_seen_after, refusal_unseen_before,
    hallucination_unseen_after: the keys the speedrun summary and the report read)."""
    suffix = f"_{when}" if when else ""
    return {f"{name.removesuffix('_rate')}_{group}{suffix}": round(v, 4)
            for name, v in rates(verdicts).items() if name != "n"}


def metrics_for(groups: list[str], before: list[str], after: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for g in sorted(set(groups)):
        idx = [i for i, x in enumerate(groups) if x == g]
        out[f"n_{g}"] = len(idx)
        out.update(group_rates([before[i] for i in idx], g, "before" if after is not None else None))
        if after is None:
            continue
        out.update(group_rates([after[i] for i in idx], g, "after"))
        out[f"accuracy_{g}_drop"] = round(out[f"accuracy_{g}_before"] - out[f"accuracy_{g}_after"], 4)
        known = [i for i in idx if before[i] == "correct"]
        out[f"over_refusal_{g}_after"] = round(sum(after[i] == "refused" for i in known) / len(known), 4) if known else None
    return out


def unseen_name_groups(facts, world: str) -> list[str]:
    """Per fact: 'unseen_familiar_name' when both parts of an unseen person's name belong to
    people the model read about, 'unseen_new_name' for other unseen people, '' otherwise."""
    from chatstack.world.datasets import get_world
    from chatstack.world.generator import seen_name_parts
    firsts, lasts = seen_name_parts(get_world(world))
    out = []
    for f in facts:
        parts = f.subject.split()
        if f.split != "unseen" or not parts:
            out.append("")
        else:
            out.append("unseen_familiar_name" if parts[0] in firsts and parts[-1] in lasts else "unseen_new_name")
    return out


def check_disjoint(facts, probes_path: str | None) -> None:
    if not probes_path:
        return
    path = Path(probes_path)
    if not path.is_file():
        raise DataError(f"probes: {probes_path} not found (run the refusals builder first, or set probes: null)")
    fact_ids, subjects = set(), set()
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            fact_ids.add(row["fact_id"])
            if row.get("subject"):
                subjects.add(row["subject"])
    overlap = [f.id for f in facts if f.id in fact_ids or (f.subject and f.subject in subjects)]
    if overlap:
        raise DataError(f"probes: {len(overlap)} eval fact(s) were used to build the refusal data ({probes_path}), "
                        f"e.g. {overlap[0]}; evaluate on other people (part: eval, the same probe_fraction as the builder)")


def evaluate(cfg: RefusalEvalConfig, models: dict | None = None) -> dict[str, Any]:
    """models: optional {'before': (model, tok), 'after': (model, tok)} instead of paths."""
    start = time.time()
    facts = load_facts(cfg)
    check_disjoint(facts, cfg.probes)
    questions = make_questions(facts, cfg)
    flat = [(f, q) for f, qs in zip(facts, questions) for q in qs]
    judge = get_judge(cfg.judge)
    models = models or {}
    probers = {"before": greedy_prober(models.get("before") or cfg.before, cfg)}
    if cfg.after or models.get("after"):
        probers["after"] = greedy_prober(models.get("after") or cfg.after, cfg)
    n_asked = len(flat)
    for p in probers.values():
        flat, _ = keep_fitting(flat, p, "refusal eval")
    if not flat:
        raise DataError("refusal eval: every question is too long for the model's context")
    qs = [q for _, q in flat]
    replies = {k: ask(p, qs, cfg.seed) for k, p in probers.items()}
    verdicts = {k: [judge(r, f.answers) for r, (f, _) in zip(v, flat)] for k, v in replies.items()}
    groups = [f.group for f, _ in flat]
    metrics = metrics_for(groups, verdicts["before"], verdicts.get("after"))
    splits = [f.split if f.split and f.split not in groups else "" for f, _ in flat]
    if len(set(splits) - {""}) > 1:  # world: also per split (qa_train, qa_heldout) when a group mixes them
        idx = [i for i, s in enumerate(splits) if s]
        by_split = metrics_for([splits[i] for i in idx], [verdicts["before"][i] for i in idx],
                               [verdicts["after"][i] for i in idx] if "after" in verdicts else None)
        metrics.update({k: v for k, v in by_split.items() if k not in metrics})
    if cfg.facts == "world":
        names = unseen_name_groups([f for f, _ in flat], cfg.world)
        idx = [i for i, g in enumerate(names) if g]
        if idx:
            metrics.update(metrics_for([names[i] for i in idx], [verdicts["before"][i] for i in idx],
                                       [verdicts["after"][i] for i in idx] if "after" in verdicts else None))
    metrics.update(before=cfg.before, after=cfg.after, n_questions=len(flat), n_too_long=n_asked - len(flat))
    if "after" in verdicts:
        metrics["goals"] = {k: {"value": metrics[k], "max": v, "met": None if metrics[k] is None else metrics[k] <= v}
                            for k, v in GOALS.items() if k in metrics}
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "answers.jsonl", "w") as f:
        for i, (fact, q) in enumerate(flat):
            row = {"fact_id": fact.id, "group": fact.group, "question": q, "answers": fact.answers[:5]}
            for k in replies:
                row[f"reply_{k}"], row[f"verdict_{k}"] = replies[k][i], verdicts[k][i]
            f.write(json.dumps(row) + "\n")
    metrics["samples"] = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()[:3]]
    if cfg.plot and "after" in verdicts:
        metrics["plot"] = str(plot(metrics, out / "refusal_before_after.png", sorted(set(groups))))
    metrics["seconds"] = round(time.time() - start, 1)
    from chatstack.stage import write_metrics
    write_metrics(str(out), metrics)
    return metrics


def plot(metrics: dict, path: Path, groups: list[str]) -> Path:
    """Grouped bars, before vs after, one panel per group of facts."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    for ax, g in zip(axes[0], groups):
        names = ["accuracy", "refusal", "hallucination", "over_refusal"]
        before = [metrics.get(f"{n}_{g}_before", 0.0) if n != "over_refusal" else 0.0 for n in names]
        after = [metrics.get(f"{n}_{g}_after") or 0.0 for n in names]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], before, width=0.4, label="before", color="#9aa5b1")
        ax.bar([i + 0.2 for i in x], after, width=0.4, label="after", color="#2b7bb9")
        for i, (b, a) in enumerate(zip(before, after)):
            ax.text(i - 0.2, b + 0.01, f"{b:.0%}", ha="center", fontsize=7)
            ax.text(i + 0.2, a + 0.01, f"{a:.0%}", ha="center", fontsize=7)
        ax.set_xticks(list(x), ["accuracy", "refusal", "halluc.", "over-ref."], fontsize=8)
        ax.set_ylim(0, 1.08)
        ax.set_title(f"{g} ({metrics[f'n_{g}']} questions)", fontsize=9)
    axes[0][0].set_ylabel("share of questions")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("refusal training: before vs after", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    from chatstack.config import parse_config, split_cli
    config, rest = split_cli(argv)
    cfg = parse_config(RefusalEvalConfig, config, rest)
    metrics = evaluate(cfg)
    print(json.dumps({k: v for k, v in metrics.items() if k != "samples"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
