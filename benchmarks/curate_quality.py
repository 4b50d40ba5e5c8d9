"""Quality filters vs human labels: DCLM's annotated web documents (../shared/data/web_quality_labels).

Builds the filter steps of a curate recipe (default: recipes/tiny-web/curate.yaml, i.e. FineWeb's
Gopher repetition + Gopher quality + C4 + FineWeb heuristics) exactly as `chatstack curate` does,
runs every labelled document through them, and compares kept/dropped with the label
(1 = high quality): precision / recall / F1 of "keep", accuracy, the keep-everything baseline,
and for each filter how many good and bad documents it drops.

    .venv/bin/python benchmarks/curate_quality.py [--recipe recipes/tiny-web/curate.yaml] [--with-language]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED = Path(os.environ.get("CHATSTACK_SHARED_DATA", REPO.parent / "shared" / "data"))

QUALITY_STEPS = ("gopher_repetition", "gopher_quality", "c4_quality", "c4_paragraph", "fineweb_quality")


def prf(keep: list[bool], labels: list[int]) -> dict:
    tp = sum(k and lab == 1 for k, lab in zip(keep, labels))
    fp = sum(k and lab == 0 for k, lab in zip(keep, labels))
    fn = sum((not k) and lab == 1 for k, lab in zip(keep, labels))
    tn = sum((not k) and lab == 0 for k, lab in zip(keep, labels))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision_keep": round(p, 3), "recall_keep": round(r, 3),
            "f1_keep": round(2 * p * r / (p + r), 3) if p + r else 0.0,
            "accuracy": round((tp + tn) / len(labels), 3), "kept": tp + fp, "dropped": fn + tn,
            "confusion": {"kept_good": tp, "kept_bad": fp, "dropped_good": fn, "dropped_bad": tn}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default=str(REPO / "recipes" / "tiny-web" / "curate.yaml"))
    ap.add_argument("--with-language", action="store_true", help="also apply the recipe's language filter")
    args = ap.parse_args()

    from datatrove.data import Document

    from chatstack.config import parse_config
    from chatstack.curate.config import CurateConfig, check_config
    from chatstack.curate.pipeline import Layout, make_step

    cfg = parse_config(CurateConfig, args.recipe, ["--input_path", str(SHARED)])
    steps = check_config(cfg, args.recipe)
    names = [n for n in steps if n in QUALITY_STEPS or (args.with_language and n == "language")]
    result = {"benchmark": "curate_quality", "recipe": args.recipe, "filters": names, "sets": {}}
    for fname in ("dclm_majority_data.jsonl.gz", "dclm_agreement_data.jsonl.gz"):
        rows = [json.loads(line) for line in gzip.open(SHARED / "web_quality_labels" / fname, "rt")]
        labels = [int(r["label"]) for r in rows]
        filters = [make_step(n, steps[n], cfg, Layout("/tmp/unused"), args.recipe) for n in names]
        alive = {str(i) for i in range(len(rows))}
        per_filter = {}
        stream = [Document(text=r["text"], id=str(i)) for i, r in enumerate(rows)]
        for name, flt in zip(names, filters):
            before = {d.id for d in stream}
            stream = list(flt.run(iter(stream)))
            after = {d.id for d in stream}
            dropped = before - after
            per_filter[name] = {"dropped_good": sum(labels[int(i)] == 1 for i in dropped),
                                "dropped_bad": sum(labels[int(i)] == 0 for i in dropped),
                                "reasons": {k.removeprefix("dropped_"): int(v.total)
                                            for k, v in flt.stats.stats.items() if k.startswith("dropped_")}}
        alive = {d.id for d in stream}
        keep = [str(i) in alive for i in range(len(rows))]
        result["sets"][fname] = {
            "documents": len(rows), "good": sum(labels), "bad": len(labels) - sum(labels),
            "pipeline": prf(keep, labels),
            "baseline_keep_all": prf([True] * len(rows), labels),
            "per_filter": per_filter,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
