"""Deduplication with injected near-duplicates on real web text (../shared/data/web_text_cc).

Every document of web_text_cc goes in once; for each edit level below, 50 other documents get
a modified copy injected (exact copy, whitespace/case changes, 1-30% of words replaced, a
paragraph appended, the last 10% cut). `chatstack curate` then runs exact + MinHash dedup
(datatrove's, FineWeb's settings: 5-grams, 14 buckets x 8 hashes) with no filters. Reported:
copies removed per edit level (beside the word-5-gram Jaccard of the pair and MinHash's
theoretical catch probability 1-(1-J^8)^14), distinct documents lost (an original and its copy
both gone with no near-duplicate of them kept: must be 0), and original documents removed as
duplicates of each other (natural duplicates, listed for inspection).

    .venv/bin/python benchmarks/curate_dedup.py [--per-level 50] [--seed 0]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED = Path(os.environ.get("CHATSTACK_SHARED_DATA", REPO.parent / "shared" / "data"))

FILLER = "data system people world report local news market water energy city music health garden".split()


def replace_words(text: str, frac: float, rng: random.Random) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, int(len(words) * frac))):
        words[i] = rng.choice(FILLER)
    return " ".join(words)


EDITS = {
    "exact copy": lambda t, r: t,
    "whitespace+case": lambda t, r: re.sub(r"[ ]+", "  ", t).upper(),
    "replace 1% words": lambda t, r: replace_words(t, 0.01, r),
    "replace 3% words": lambda t, r: replace_words(t, 0.03, r),
    "replace 5% words": lambda t, r: replace_words(t, 0.05, r),
    "replace 10% words": lambda t, r: replace_words(t, 0.10, r),
    "replace 20% words": lambda t, r: replace_words(t, 0.20, r),
    "replace 30% words": lambda t, r: replace_words(t, 0.30, r),
    "append paragraph": lambda t, r: t + "\n\nSubscribe to our newsletter for weekly updates on local news, "
                                         "events and offers. Follow us on social media.",
    "cut last 10%": lambda t, r: t[: int(len(t) * 0.9)],
}


def jaccard5(a: str, b: str) -> float:
    def grams(t):
        w = re.findall(r"\w+", t.lower())
        return {tuple(w[i:i + 5]) for i in range(max(1, len(w) - 4))}
    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb) if ga | gb else 1.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-level", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", type=int, default=2)
    args = ap.parse_args()
    from chatstack.config import parse_config
    from chatstack.curate import CurateConfig, curate

    rng = random.Random(args.seed)
    base = []
    for f in sorted((SHARED / "web_text_cc").glob("*.jsonl.gz")):
        for i, line in enumerate(gzip.open(f, "rt")):
            text = json.loads(line).get("text") or ""
            if text.strip():
                base.append({"id": f"{f.name}:{i}", "text": text})
    eligible = [d for d in base if len(d["text"].split()) >= 100]
    picks = rng.sample(eligible, args.per_level * len(EDITS))
    injected, groups = [], {}
    for k, (level, edit) in enumerate(EDITS.items()):
        for j, orig in enumerate(picks[k * args.per_level:(k + 1) * args.per_level]):
            copy = {"id": f"inj:{level}:{j}", "text": edit(orig["text"], rng)}
            injected.append(copy)
            groups[copy["id"]] = (level, orig["id"], jaccard5(orig["text"], copy["text"]))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        docs = base + injected
        rng.shuffle(docs)
        for part in range(4):
            with gzip.open(src / f"part{part}.jsonl.gz", "wt") as fh:
                fh.writelines(json.dumps(d) + "\n" for d in docs[part::4])
        cfg = parse_config(CurateConfig, None, [], input_path=str(src), output_dir=str(Path(tmp) / "out"),
                           steps={}, tasks=args.tasks, workers=min(2, args.tasks), progress=False,
                           dedup={"exact": {}, "minhash": {"n_grams": 5, "num_buckets": 14, "hashes_per_bucket": 8}})
        t0 = time.time()
        summary = curate(cfg, "curate_dedup")
        elapsed = time.time() - t0
        kept = set()
        for f in (Path(tmp) / "out" / "output").glob("*.jsonl.gz"):
            kept |= {json.loads(line)["id"] for line in gzip.open(f, "rt")}

    by_id = {d["id"]: d["text"] for d in base}
    per_level = defaultdict(lambda: {"injected": 0, "removed": 0, "jaccard": []})
    lost_groups = 0
    lost_examples = []
    injected_origs = set()
    for cid, (level, oid, jac) in groups.items():
        injected_origs.add(oid)
        row = per_level[level]
        row["injected"] += 1
        row["jaccard"].append(jac)
        survivors = (cid in kept) + (oid in kept)
        row["removed"] += survivors == 1
        if survivors == 0:
            lost_groups += 1
            lost_examples.append({"edit": level, "original": oid})
    natural = [d["id"] for d in base if d["id"] not in kept and d["id"] not in injected_origs]
    table = {}
    for level, row in per_level.items():
        j = sum(row["jaccard"]) / len(row["jaccard"])
        table[level] = {"injected": row["injected"], "removed": row["removed"],
                        "removed_rate": round(row["removed"] / row["injected"], 3),
                        "mean_word5_jaccard": round(j, 3),
                        "minhash_theory_at_mean_jaccard": round(1 - (1 - j ** 8) ** 14, 3)}
    dedup_rows = {r["label"]: {"in": r["in"], "dropped": r["dropped"]} for r in summary["funnel"]
                  if "dedup" in r["label"]}
    lost = [{**x, "text": by_id[x["original"]][:120],
             "kept_near_duplicates": [i for i in kept if i in by_id and i != x["original"]
                                      and jaccard5(by_id[i], by_id[x["original"]]) > 0.5][:3]}
            for x in lost_examples]
    print(json.dumps({
        "benchmark": "curate_dedup",
        "documents": {"original": len(base), "injected": len(injected), "output": len(kept)},
        "per_edit": table,
        "distinct_documents_lost": sum(not g["kept_near_duplicates"] for g in lost),
        "groups_without_survivor": lost_groups,
        "lost_groups": lost,
        "natural_duplicates_removed": {"count": len(natural),
                                       "examples": {i: by_id[i][:100] for i in natural[:20]}},
        "stages": dedup_rows, "wall_time_s": round(elapsed, 1),
        "settings": "exact (xxhash64 of text) then MinHash 5-gram words, 14 buckets x 8 hashes, datatrove",
    }, indent=2))


if __name__ == "__main__":
    main()
