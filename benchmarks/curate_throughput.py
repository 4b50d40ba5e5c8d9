"""Throughput and peak memory of the whole curate pipeline (the tiny-web recipe) on this machine.

Input 1x = the 8 files of ../shared/data/web_text_cc (767 docs); kx = k copies of each file
(ids suffixed; the copies are exact duplicates, removed by the dedup stage, which is also
measured). Each run is `chatstack curate` in a subprocess; a sampler sums the PSS (proportional
set size) of its whole process tree every 0.1 s. Reported per run: wall time, documents/s and MB/s (uncompressed JSONL)
in total and per core (workers), peak memory (tree total and the largest process), and the time
spent per pipeline step (datatrove's own timers). Memory must stay flat from 1x to 4x.

    .venv/bin/python benchmarks/curate_throughput.py [--scales 1 4] [--workers 1 2] [--no-url-lists]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHATSTACK_SHARED_DATA", REPO.parent / "shared" / "data"))
RECIPE = REPO / "recipes" / "tiny-web" / "curate.yaml"


def make_input(folder: Path, scale: int) -> tuple[int, int]:
    folder.mkdir(parents=True)
    docs = nbytes = 0
    for f in sorted((SHARED / "web_text_cc").glob("*.jsonl.gz")):
        lines = [ln for ln in gzip.open(f, "rt", encoding="utf-8").read().split("\n") if ln.strip()]
        for k in range(scale):
            out = []
            for i, line in enumerate(lines):
                row = json.loads(line)
                row["id"] = f"{row.get('id', i)}#{k}"
                out.append(json.dumps(row))
            data = "\n".join(out) + "\n"
            nbytes += len(data.encode())
            docs += len(out)
            with gzip.open(folder / f"{f.name.removesuffix('.jsonl.gz')}-{k}.jsonl.gz", "wt") as fh:
                fh.write(data)
    return docs, nbytes


def run(input_dir: Path, out_dir: Path, workers: int, steps_override: dict | None) -> dict:
    cmd = [str(REPO / ".venv" / "bin" / "chatstack"), "curate", "--config", str(RECIPE), "--input_path",
           str(input_dir), "--output_dir", str(out_dir), "--tasks", str(workers), "--workers", str(workers),
           "--progress", "false"]
    if steps_override is not None:
        cmd += ["--steps", json.dumps(steps_override)]
    peak = {"total": 0, "largest": 0}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample():
        p = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [p, *p.children(recursive=True)]
                # PSS: pages shared after fork (the parent's block lists) are counted once, not per process
                rss = [q.memory_full_info().pss for q in procs if q.is_running()]
                peak["total"] = max(peak["total"], sum(rss))
                peak["largest"] = max(peak["largest"], max(rss))
            except psutil.Error:
                pass
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t0 = time.time()
    t.start()
    stdout, stderr = proc.communicate()
    wall = time.time() - t0
    done.set()
    if proc.returncode != 0:
        raise SystemExit(f"curate failed ({proc.returncode}):\n{stderr[-3000:]}")
    stats = json.loads((out_dir / "curate_stats.json").read_text())
    return {"wall_s": round(wall, 1), "peak_pss_total_mb": round(peak["total"] / 2**20),
            "peak_pss_largest_process_mb": round(peak["largest"] / 2**20), "stats": stats}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-url-lists", action="store_true",
                    help="URL filter without datatrove's 5M-domain block list (its load costs ~15 s and ~1 GB a task)")
    args = ap.parse_args()
    steps = None
    if args.no_url_lists:
        steps = yaml.safe_load(RECIPE.read_text())["steps"]
        steps["url_filter"] = {"use_integrated_lists": False}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            inp = Path(tmp) / f"in{scale}"
            docs, nbytes = make_input(inp, scale)
            for workers in args.workers:
                r = run(inp, Path(tmp) / f"out{scale}_{workers}", workers, steps)
                s = r.pop("stats")
                step_time = {}
                for row in s["funnel"]:
                    if "time_s" in row:
                        step_time[row["label"]] = round(step_time.get(row["label"], 0) + row["time_s"], 1)
                results.append({
                    "scale": scale, "workers": workers, "documents": docs, "input_mb": round(nbytes / 1e6, 2),
                    **r,
                    "docs_per_s": round(docs / r["wall_s"], 1),
                    "docs_per_s_per_core": round(docs / r["wall_s"] / workers, 1),
                    "mb_per_s_per_core": round(nbytes / 1e6 / r["wall_s"] / workers, 3),
                    "documents_out": s["documents_out"],
                    "stage_time_s": s["stage_time_s"],
                    "step_cpu_time_s": step_time,
                })
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "curate_throughput", "recipe": str(RECIPE.relative_to(REPO)),
                      "url_block_lists": not args.no_url_lists, "cpu": os.cpu_count(),
                      "load_avg_at_end": os.getloadavg(), "runs": results}, indent=2))


if __name__ == "__main__":
    main()
