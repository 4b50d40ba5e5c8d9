"""Scores for the curate benchmarks and tests.

`shingle_prf` is the article-extraction-benchmark's metric (scrapinghub, evaluate.py): texts are
cut into `\\w+` tokens, compared as bags of 4-token shingles, and tp/fp/fn are normalised per
document so long pages do not weigh more. `token_prf` is the same with single tokens (n=1).
"""
from __future__ import annotations

import re
import statistics
from collections import Counter

_TOKEN_RE = re.compile(r"\w+", re.UNICODE | re.MULTILINE | re.IGNORECASE | re.DOTALL)


def _shingles(text: str, n: int) -> Counter:
    tokens = _TOKEN_RE.findall(text or "")
    return Counter(tuple(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i:i + n])


def tp_fp_fn(true: str, pred: str, n: int = 4) -> tuple[float, float, float]:
    t, p = _shingles(true, n), _shingles(pred, n)
    tp = sum(min(t[k], p[k]) for k in t.keys() | p.keys())
    fp = sum(max(0, p[k] - t[k]) for k in p)
    fn = sum(max(0, t[k] - p[k]) for k in t)
    s = tp + fp + fn
    return (tp / s, fp / s, fn / s) if s else (0.0, 0.0, 0.0)


def _precision(tp, fp, fn):
    if fp == fn == 0:
        return 1.0
    return 0.0 if tp == fp == 0 else tp / (tp + fp)


def _recall(tp, fp, fn):
    if fp == fn == 0:
        return 1.0
    return 0.0 if tp == fn == 0 else tp / (tp + fn)


def aggregate(triples: list[tuple[float, float, float]]) -> dict:
    """Mean per-document precision and recall, F1 of the means (the benchmark's definition)."""
    precision = statistics.mean([_precision(*x) for x in triples if x[0] + x[1] > 0] or [0.0])
    recall = statistics.mean([_recall(*x) for x in triples if x[0] + x[2] > 0] or [0.0])
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def shingle_prf(true: str, pred: str, n: int = 4) -> tuple[float, float, float]:
    """(precision, recall, F1) of one document."""
    m = aggregate([tp_fp_fn(true, pred, n)])
    return m["precision"], m["recall"], m["f1"]
