"""Tool figures, printed as JSON: the python sandbox's cost per call next to a bare interpreter
start (the reference), layer by layer; BM25 search's index time, latency and retrieval
accuracy on questions about unseen people (the ceiling of "unseen-fact accuracy with
search"); and the tool-use builder's speed.

    .venv/bin/python benchmarks/tools_bench.py [--calls 20] [--rows 200]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def per_call(fn, n: int) -> dict:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_ms": round(1000 * statistics.median(times), 1), "min_ms": round(1000 * min(times), 1),
            "max_ms": round(1000 * max(times), 1), "calls": n}


def world_readable_python() -> str | None:
    for cand in (os.path.realpath(sys.executable), "/usr/bin/python3"):
        try:
            if subprocess.run([cand, "-c", "pass"], user=65534, group=65534, extra_groups=[], cwd="/",
                              capture_output=True).returncode == 0:
                return cand
        except OSError:
            pass
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--rows", type=int, default=200)
    args = ap.parse_args()
    from chatstack.tools.sandbox import run_sandboxed, sandbox_layers

    python = os.path.realpath(sys.executable)
    out = {"machine": {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0], "uid": os.getuid()},
           "sandbox_layers": sandbox_layers()}
    sand = {"reference_bare_interpreter": per_call(
        lambda: subprocess.run([python, "-I", "-S", "-c", "print(1)"], capture_output=True, env={}), args.calls)}
    for name, kw in (("full", {}), ("no_audit_hook", {"audit_hook": False})):
        assert run_sandboxed("print(1)", **kw).output == "1"
        sand[name] = per_call(lambda kw=kw: run_sandboxed("print(1)", **kw), args.calls)
    if os.getuid() != 0 or world_readable_python():
        kw = {"namespaces": False, "python": world_readable_python() if os.getuid() == 0 else None}
        sand["no_namespaces"] = per_call(lambda: run_sandboxed("print(1)", **kw), args.calls)
    sand["full_5digit_multiplication"] = per_call(lambda: run_sandboxed("print(48213 * 91457)"), args.calls)
    out["python_sandbox"] = sand

    from chatstack.tools.search_tool import BM25Store
    from chatstack.world.datasets import encyclopedia, get_world

    t0 = time.perf_counter()
    store = BM25Store(encyclopedia("tiny"), where="world:tiny")
    index_s = time.perf_counter() - t0
    w = get_world("tiny")
    queries = [(q, p.name) for p in w.by_split("unseen") for attr in ("birth_city", "employer")
               for q in w.questions(p, attr)]
    t0 = time.perf_counter()
    top1 = sum(bool(h) and h[0]["title"] == name for q, name in queries for h in [store.search(q, 2)])
    query_ms = 1000 * (time.perf_counter() - t0) / len(queries)
    by_name = sum(store.search(p.name, 1)[0]["title"] == p.name for p in w.by_split("unseen"))
    out["search"] = {"documents": len(store), "index_seconds": round(index_s, 2), "query_ms": round(query_ms, 2),
                     "top1_question_unseen": round(top1 / len(queries), 4), "questions": len(queries),
                     "top1_name_unseen": round(by_name / len(w.by_split("unseen")), 4)}

    from chatstack.builders.tools import tool_conversations

    t0 = time.perf_counter()
    ds = tool_conversations(n=args.rows, seed=0)
    secs = time.perf_counter() - t0
    calls = sum(1 for r in ds["kind"] if r.startswith("python"))
    out["builder"] = {"rows": len(ds), "python_calls": calls, "seconds": round(secs, 1),
                      "rows_per_second": round(len(ds) / secs, 1)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
