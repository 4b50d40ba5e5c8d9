"""Per-step statistics of a curate run, from datatrove's own per-task stats files.

Every datatrove step keeps counters (`total`, `forwarded`, `dropped`, `dropped_<reason>`,
`doc_len`, ...); each task saves them to logs/<stage>/stats/<rank>.json. This module merges them
(the same way datatrove's merge_stats does, so Slurm and Ray runs summarise too), turns them into
a funnel (documents in/out, characters, words/tokens, drop reasons per step), writes it as JSON
next to the output and prints it as a table.
"""
from __future__ import annotations

import json
from pathlib import Path

PLUMBING = ("exact_sigs", "exact_find", "minhash_sigs", "minhash_buckets", "minhash_cluster")
PRETTY = {"exact-deduplication stage 3": "exact dedup", "MinHash stage 4": "MinHash dedup"}
STAGE_ORDER = ["filter", "exact_sigs", "exact_find", "minhash_sigs", "minhash_buckets", "minhash_cluster", "final"]


def _merge_stage(stage_dir: Path) -> list[dict] | None:
    from datatrove.utils.stats import PipelineStats

    files = sorted((stage_dir / "stats").glob("*.json"))
    if not files:
        return None
    total = PipelineStats()
    for f in files:
        total += PipelineStats.from_json(json.loads(f.read_text()))
    return json.loads(total.to_json())


def _value(stats: dict, key: str, field: str = "total") -> float:
    """A field of one of datatrove's saved MetricStats. datatrove leaves `n` out when it equals the
    total or is 1 (see MetricStats.to_dict), and saves a plain number when only the total is left."""
    v = stats.get(key)
    if v is None:
        return 0
    if not isinstance(v, dict):
        return v  # total; and n == total (every update added 1)
    if field == "n" and "n" not in v:
        total = v.get("total", 0) or 0
        return total if v.get("mean", 1) == 1 else (1 if total else 0)
    return v.get(field, 0) or 0


def _step_record(stage: str, step: dict) -> dict:
    name = step.get("name", "?")
    s = step.get("stats", {})
    kind = name.split(":")[0]
    rec = {"stage": stage, "step": name, "label": _label(name)}
    if "READER" in kind:
        out = int(_value(s, "doc_len", "n"))
        dropped = {k.removeprefix("dropped_"): int(_value(s, k)) for k in s if k.startswith("dropped_")}
        rec.update({"in": out + sum(dropped.values()), "out": out, "dropped": sum(dropped.values()),
                    "reasons": dropped, "input_files": int(_value(s, "input_files"))})
        if "skipped_non_html_records" in s:
            rec["counts"] = {"skipped_non_html_records": int(_value(s, "skipped_non_html_records"))}
    elif "WRITER" in kind:
        rec.update({"in": int(_value(s, "total")), "out": int(_value(s, "total"))})
    elif "COUNTER" in kind or "TOKENIZER" in kind:
        n = int(_value(s, "words", "n") or _value(s, "tokens", "n"))
        rec.update({"in": n, "out": n, "dropped": 0,
                    "counts": {k: int(_value(s, k)) for k in ("words", "tokens") if k in s}})
    else:
        total = int(_value(s, "total"))
        fwd = int(_value(s, "forwarded")) if "forwarded" in s else total - int(_value(s, "dropped"))
        reasons = {k.removeprefix("dropped_"): int(_value(s, k)) for k in s if k.startswith("dropped_")}
        # extractors count failures under their own names
        for k in ("timeout", "clean_error", "broken_process"):
            if _value(s, k):
                reasons[k] = int(_value(s, k))
        dropped = total - fwd
        if dropped and not reasons:
            reasons = {"duplicate" if "DEDUP" in kind else "dropped": dropped}
        elif dropped > sum(reasons.values()):
            reasons["empty_after_extraction" if "EXTRAC" in kind else "other"] = dropped - sum(reasons.values())
        rec.update({"in": total, "out": fwd, "dropped": dropped, "reasons": reasons})
        extra = {k: int(_value(s, k)) for k in ("emails_replaced", "ips_replaced", "phones_replaced",
                                                  "docs_with_pii", "no_url", "words", "tokens") if k in s}
        if extra:
            rec["counts"] = extra
    if "doc_len" in s:
        rec["chars_out"] = int(_value(s, "doc_len"))
    t = step.get("time_stats") or {}
    if isinstance(t, dict) and "total" in t:
        rec["time_s"] = round(float(t["total"]), 3)
    return rec


def summarize(output_dir: str, output_files: list[str] | None = None, extra: dict | None = None) -> dict:
    root = Path(output_dir)
    stages = {}
    for stage in STAGE_ORDER:
        merged = _merge_stage(root / "logs" / stage)
        if merged is not None:
            stages[stage] = merged
    if not stages:
        from chatstack.errors import DataError

        raise DataError(f"{root}/logs: no stats found (has the run finished?)")
    funnel = []
    for stage, steps in stages.items():
        for step in steps:
            rec = _step_record(stage, step)
            # the re-read of work/filtered and the dedup-only stages are plumbing, not funnel steps
            if stage in PLUMBING or (stage == "final" and "READER" in rec["step"]):
                continue
            if stage == "filter" and "WRITER" in rec["step"] and "final" in stages:
                continue
            funnel.append(rec)
    out_dir = root / "output"
    files = output_files if output_files is not None else sorted(str(p) for p in out_dir.glob("*") if p.is_file())
    last = stages.get("final") or stages.get("filter")
    counters = {}
    for step in last:
        s = step.get("stats", {})
        for key in ("words", "tokens", "chars"):
            if key in s:
                counters[key] = int(_value(s, key))
    reader = next((r for r in funnel if "READER" in r["step"]), None)
    writer = [r for r in funnel if "WRITER" in r["step"]][-1:]
    summary = {
        "documents_in": reader["in"] if reader else None,
        "documents_out": writer[0]["out"] if writer else None,
        "chars_out": counters.get("chars"),
        "words_out": counters.get("words"),
        "tokens_out": counters.get("tokens"),
        "output_files": files,
        "output_bytes": sum(Path(f).stat().st_size for f in files if Path(f).exists()),
        "funnel": funnel,
        "stage_time_s": {st: round(sum(float((s.get("time_stats") or {}).get("total", 0)) for s in steps), 3)
                         for st, steps in stages.items()},
    }
    if extra:
        summary.update(extra)
    return summary


def write_summary(summary: dict, path: str) -> None:
    Path(path).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def _label(name: str) -> str:
    kind, _, label = name.partition(":")
    label = label.strip().encode("ascii", "ignore").decode().strip() or name
    kind = kind.encode("ascii", "ignore").decode().strip(" -").lower()
    if kind in ("reader", "writer"):
        return f"{kind} ({label.lower()})"
    return PRETTY.get(label, label)


def format_table(summary: dict) -> str:
    rows = [("step", "in", "out", "dropped", "chars out", "why dropped / counts")]
    for r in summary["funnel"]:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(r.get("reasons", {}).items(), key=lambda kv: -kv[1]) if v)
        counts = ", ".join(f"{k}: {v}" for k, v in r.get("counts", {}).items())
        rows.append((r["label"], str(r.get("in", "")), str(r.get("out", "")),
                     str(r.get("dropped", "") if r.get("dropped") is not None else ""),
                     str(r.get("chars_out", "")), "; ".join(x for x in (why, counts) if x)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row[:5], widths)))
             + "  " + row[5] for row in rows]
    tail = (f"output: {summary['documents_out']} documents, {summary['chars_out']} chars, "
            f"{summary['words_out']} words" + (f", {summary['tokens_out']} tokens" if summary.get("tokens_out") else "")
            + f", {len(summary['output_files'])} file(s), {summary['output_bytes'] / 1e6:.2f} MB")
    return "\n".join(lines + [tail])
