"""The metric tables, defined once: which of many figures lead, wherever a run is summed up.

Three places show a few figures out of the many a stage or an eval writes: the speedrun's
summary table (`chatstack speedrun`), the report card's stage table and before/after plot
(`chatstack report`), and the suite table (`chatstack eval --suite`). They all read the
tables below, so a metric renamed in a stage's metrics.json is renamed here and nowhere
else. The suite's text table is written here too.

Standard library only: speedrun and report import this without torch or transformers.
"""
from __future__ import annotations

# the real suite's lead figures (evaluation/suites/real.yaml), as the eval stage's metrics.json names them
_REAL = ["arc_easy_acc", "arc_challenge_acc_norm", "hellaswag_acc_norm", "mmlu_acc", "gsm8k_exact_match_flexible-extract"]

# stage -> the figures that lead its row in the speedrun table and the report card (every
# scalar metric is kept in summary.json; these come first)
STAGE_KEY_METRICS: dict[str, list[str]] = {
    "tokenizer": ["bytes_per_token", "vocab_size"],
    "pretrain": ["eval_loss", "unigram_entropy", "bits_per_byte", "tokens_per_second"],
    "sft": ["qa_accuracy_seen", "format_compliance", "identity_accuracy"],
    "sft_refusal": ["qa_accuracy_seen", "format_compliance"],
    "probe_refusals": ["n_answer", "n_refuse", "n_drop"],
    "eval_refusal": ["hallucination_unseen_before", "hallucination_unseen_after", "accuracy_seen_before",
                     "accuracy_seen_after", "over_refusal_seen_after"],
    "reward": ["pairwise_accuracy"],
    "ppo": ["reward_start", "reward_end"],
    "grpo": ["accuracy_before", "accuracy_after"],
    "eval": [*_REAL, *(f"chatstack_{k}" for k in _REAL), "humaneval_pass@1"],  # lm-eval's tasks or their local twins
}

# stage -> (label, before key, after key): the report card's before/after bars
BEFORE_AFTER: dict[str, tuple[str, str, str]] = {
    "reward": ("pairwise accuracy", "pairwise_accuracy_before", "pairwise_accuracy"),
    "ppo": ("mean reward (held-out prompts)", "reward_start", "reward_end"),
    "grpo": ("arithmetic accuracy (held-out)", "accuracy_before", "accuracy_after"),
    "eval_refusal": ("hallucination on unseen people", "hallucination_unseen_before", "hallucination_unseen_after"),
}

# the figures the suite table shows for an eval key, in this order, where the eval has them
SUITE_KEY_METRICS: tuple[str, ...] = (
    "accuracy", "refusal_rate", "hallucination_rate", "format_compliance", "identity_accuracy",
    "qa_accuracy_new_phrasing", "thinking_accuracy", "acc", "acc_norm", "exact_match", "perplexity", "pass@1")


def suite_table(result: dict) -> str:
    """The suite result as a short text table: one line per eval key, its main figures."""
    lines = [f"suite '{result['suite']}' on {result['model']} ({result['model_kind']} model: "
             f"{result['model_kind_reason']}), {result['seconds']} s"]
    rows = []
    owners: dict[str, str] = {}
    for name, run in result["runs"].items():
        if run["status"] == "ok":
            keys = [k for k in result["evals"] if owners.get(k) is None and _owned(k, name, run)]
            for k in keys:
                owners[k] = name
                figures = result["evals"][k]
                shown = ([m for m in SUITE_KEY_METRICS if m in figures] or [m for m in figures if "accuracy" in m][:6]
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
    """Whether eval key `key` (e.g. world_qa_unseen) came from suite eval `name` (world_qa)."""
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
