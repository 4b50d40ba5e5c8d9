"""Text extraction quality on the article-extraction-benchmark pages (../shared/data/web_html).

Runs trafilatura the way the curate stage runs it (datatrove's `Trafilatura` block, its sandbox
and per-page timeout, FineWeb's options: favour_precision, deduplicate, no comments) and the way
the benchmark ran it (`trafilatura.extract(html, include_comments=False)`), and scores both with
the benchmark's own metric (4-token shingles, per-page normalised, mean P/R, F1 of the means)
and with single tokens. Anchor: the benchmark README's published trafilatura row.

    .venv/bin/python benchmarks/curate_extraction.py [--timeout 1] [--limit N]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED = Path(os.environ.get("CHATSTACK_SHARED_DATA", REPO.parent / "shared" / "data"))

from chatstack.curate.metrics import aggregate, tp_fp_fn  # noqa: E402

# scrapinghub/article-extraction-benchmark README, "Result of packages added after original evaluation"
PUBLISHED = {"trafilatura": {"precision": 0.925, "recall": 0.966, "f1": 0.945, "ci95": 0.009, "metric": "4-gram"}}


def bootstrap_ci(triples, n=500, seed=0):
    rng = random.Random(seed)
    vals = {"precision": [], "recall": [], "f1": []}
    for _ in range(n):
        sample = [triples[rng.randrange(len(triples))] for _ in triples]
        m = aggregate(sample)
        for k in vals:
            vals[k].append(m[k])
    return {k: round(1.96 * statistics.stdev(v), 3) for k, v in vals.items()}


def score(truth: dict, preds: dict) -> dict:
    out = {}
    for name, n in (("shingle4", 4), ("token", 1)):
        triples = [tp_fp_fn(truth[k]["articleBody"], preds.get(k) or "", n) for k in truth]
        m = {k: round(v, 3) for k, v in aggregate(triples).items()}
        m["ci95"] = bootstrap_ci(triples)
        out[name] = m
    out["empty_pages"] = sum(1 for k in truth if not preds.get(k))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=1.0, help="datatrove's per-page timeout (FineWeb: 1s)")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()

    import trafilatura
    from datatrove.data import Document
    from datatrove.pipeline.extractors import Trafilatura

    bench = SHARED / "web_html" / "article_extraction_benchmark"
    truth = json.loads(gzip.decompress((bench / "ground-truth.json.gz").read_bytes()))
    keys = sorted(truth)[: args.limit]
    truth = {k: truth[k] for k in keys}
    html = {k: gzip.decompress((bench / "html" / f"{k}.html.gz").read_bytes()).decode("utf-8") for k in keys}

    t0 = time.time()
    block = Trafilatura(favour_precision=True, deduplicate=True, timeout=args.timeout)
    docs = [Document(text=html[k], id=k) for k in keys]
    pipeline_preds = {d.id: d.text for d in block.run(iter(docs))}
    t_pipe = time.time() - t0
    timeouts = int(block.stats["timeout"].total) if "timeout" in block.stats.stats else 0

    t0 = time.time()
    plain_preds = {k: trafilatura.extract(html[k], include_comments=False) for k in keys}
    t_plain = time.time() - t0
    t0 = time.time()
    nolimit_preds = {k: trafilatura.extract(html[k], include_comments=False, favor_precision=True,
                                            deduplicate=True) for k in keys}
    t_nolimit = time.time() - t0

    mb = sum(len(h.encode()) for h in html.values()) / 1e6
    result = {
        "benchmark": "curate_extraction",
        "data": f"{bench} ({len(keys)} pages, {mb:.1f} MB HTML)",
        "trafilatura_version": trafilatura.__version__ if hasattr(trafilatura, "__version__") else "?",
        "published_anchor": PUBLISHED,
        "curate_pipeline": {"settings": f"datatrove Trafilatura(favour_precision=True, deduplicate=True, "
                                        f"timeout={args.timeout}s)",
                            **score(truth, pipeline_preds), "timeouts": timeouts,
                            "pages_per_s": round(len(keys) / t_pipe, 1)},
        "same_options_no_timeout": {"settings": "trafilatura.extract(favor_precision=True, deduplicate=True)",
                                    **score(truth, nolimit_preds), "pages_per_s": round(len(keys) / t_nolimit, 1)},
        "benchmark_settings": {"settings": "trafilatura.extract(include_comments=False) as in run_trafilatura.py",
                               **score(truth, plain_preds), "pages_per_s": round(len(keys) / t_plain, 1)},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
