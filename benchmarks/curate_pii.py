"""PII removal: recall on planted emails / IPs / phone numbers, false positives on real web text.

1. Recall: seeded, known PII strings (emails, public IPv4, phone numbers in US, UK, FR, DE and
   international formats) are planted inside real sentences from ../shared/data/web_text_cc; a
   string counts as removed when it no longer appears in the formatter's output.
2. False positives: the same formatter over every document of web_text_cc, where nothing was
   planted: every replacement is listed (so each can be judged by eye) and counted per MB.
3. Supplementary: on llm-foundry's enterprise PII passages (../shared/data/pii), how often the
   formatter changes passages labelled sensitive vs not (that label also covers names, keys,
   account numbers... which regexes do not aim at).

    .venv/bin/python benchmarks/curate_pii.py [--n 300] [--seed 0]
"""
from __future__ import annotations

import argparse
import gzip
import ipaddress
import json
import os
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED = Path(os.environ.get("CHATSTACK_SHARED_DATA", REPO.parent / "shared" / "data"))

FIRST = "james mary john patricia robert jennifer michael linda david elizabeth anna lukas chloe mateo yuki".split()
LAST = "smith johnson williams brown jones garcia miller davis martin bernard muller schmidt tanaka rossi".split()
WORDS = "acme northwind globex initech umbrella hooli vandelay stark wayne oceanic tyrell soylent".split()
TLDS = ["com", "org", "net", "co.uk", "de", "io", "edu", "fr", "com.au"]


def d(rng, n):
    return "".join(str(rng.randrange(10)) for _ in range(n))


def nz(rng, n):  # first digit 2-9 (NANP area / exchange codes)
    return str(rng.randrange(2, 10)) + d(rng, n - 1)


EMAIL_FORMATS = {
    "first.last@company.tld": lambda r: f"{r.choice(FIRST)}.{r.choice(LAST)}@{r.choice(WORDS)}.{r.choice(TLDS)}",
    "flast42@mail.company.tld": lambda r: (f"{r.choice(FIRST)[0]}{r.choice(LAST)}{r.randrange(100)}"
                                           f"@mail.{r.choice(WORDS)}.{r.choice(TLDS)}"),
    "first+tag@company.tld": lambda r: f"{r.choice(FIRST)}+{r.choice(WORDS)}@{r.choice(WORDS)}.{r.choice(TLDS)}",
    "First_Last@Company.TLD": lambda r: (f"{r.choice(FIRST).title()}_{r.choice(LAST).title()}"
                                         f"@{r.choice(WORDS).title()}.{r.choice(TLDS).upper()}"),
}
PHONE_FORMATS = {
    "US (415) 555-0132": lambda r: f"({nz(r, 3)}) {nz(r, 3)}-{d(r, 4)}",
    "US 415-555-0132": lambda r: f"{nz(r, 3)}-{nz(r, 3)}-{d(r, 4)}",
    "US 415.555.0132": lambda r: f"{nz(r, 3)}.{nz(r, 3)}.{d(r, 4)}",
    "US +1 415 555 0132": lambda r: f"+1 {nz(r, 3)} {nz(r, 3)} {d(r, 4)}",
    "US +1-415-555-0132": lambda r: f"+1-{nz(r, 3)}-{nz(r, 3)}-{d(r, 4)}",
    "US 1-800-555-0132": lambda r: f"1-{r.choice(['800', '888', '877'])}-{nz(r, 3)}-{d(r, 4)}",
    "UK +44 20 7946 0958": lambda r: f"+44 {nz(r, 2)} {d(r, 4)} {d(r, 4)}",
    "UK 020 7946 0958": lambda r: f"0{nz(r, 2)} {d(r, 4)} {d(r, 4)}",
    "UK +44 (0)20 7946 0958": lambda r: f"+44 (0){nz(r, 2)} {d(r, 4)} {d(r, 4)}",
    "FR +33 1 42 68 53 00": lambda r: f"+33 {r.randrange(1, 10)} " + " ".join(d(r, 2) for _ in range(4)),
    "FR 01 42 68 53 00": lambda r: f"0{r.randrange(1, 10)} " + " ".join(d(r, 2) for _ in range(4)),
    "DE +49 30 12345678": lambda r: f"+49 {nz(r, 2)} {d(r, 8)}",
    "DE 030 1234567": lambda r: f"0{nz(r, 2)} {d(r, 7)}",
    "intl +31.20.123.4567": lambda r: f"+31.{nz(r, 2)}.{d(r, 3)}.{d(r, 4)}",
}

# formats written after the phone pattern was settled, never used to tune it
HELD_OUT_PHONE_FORMATS = {
    "US 415 555 0132": lambda r: f"{nz(r, 3)} {nz(r, 3)} {d(r, 4)}",
    "AU +61 2 9374 4000": lambda r: f"+61 {r.randrange(2, 9)} {d(r, 4)} {d(r, 4)}",
    "AU (02) 9374 4000": lambda r: f"(0{r.randrange(2, 9)}) {d(r, 4)} {d(r, 4)}",
    "JP +81 3-1234-5678": lambda r: f"+81 {r.randrange(1, 10)}-{d(r, 4)}-{d(r, 4)}",
    "RU +7 (495) 123-45-67": lambda r: f"+7 ({nz(r, 3)}) {d(r, 3)}-{d(r, 2)}-{d(r, 2)}",
    "IN +91 98765 43210": lambda r: f"+91 {nz(r, 5)} {d(r, 5)}",
    "US local 555-0132": lambda r: f"{nz(r, 3)}-{d(r, 4)}",
}


def public_ip(r):
    while True:
        ip = ".".join(str(r.randrange(1, 255)) for _ in range(4))
        if ipaddress.ip_address(ip).is_global:
            return ip


TEMPLATES = ["Contact {} for details.", "You can reach the office at {} during business hours.",
             "Questions? {}", "Logged request from {} at noon.", "Send your CV to {} before Friday.",
             "Call {} (mention this ad).", "Server {} answered the ping.", "- phone: {}\n"]


def sentences(n, rng):
    docs = [json.loads(line)["text"] for f in sorted((SHARED / "web_text_cc").glob("olmo_c4-*.jsonl.gz"))
            for line in gzip.open(f, "rt")]
    sents = [s.strip() for t in docs for s in re.split(r"(?<=[.!?])\s+", t) if 40 < len(s.strip()) < 200]
    return [rng.choice(sents) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="planted strings per format")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from chatstack.curate.blocks import PIIWithPhonesFormatter

    rng = random.Random(args.seed)
    pii = PIIWithPhonesFormatter()
    context = sentences(args.n * 4, rng)
    kinds = {**{f"email {k}": v for k, v in EMAIL_FORMATS.items()}, "ipv4 public": public_ip,
             **{f"phone {k}": v for k, v in PHONE_FORMATS.items()},
             **{f"held-out phone {k}": v for k, v in HELD_OUT_PHONE_FORMATS.items()}}
    recall, misses = {}, defaultdict(list)
    for name, make in kinds.items():
        removed = 0
        for i in range(args.n):
            secret = make(rng)
            text = f"{context[i]} {rng.choice(TEMPLATES).format(secret)} {context[-i - 1]}"
            out = pii.format(text)
            if secret not in out:
                removed += 1
            elif len(misses[name]) < 3:
                misses[name].append(secret)
        recall[name] = round(removed / args.n, 3)
    by_kind = defaultdict(list)
    for name, r in recall.items():
        by_kind["held-out phone" if name.startswith("held-out") else name.split()[0]].append(r)

    # false positives on web text where nothing was planted
    fp_pii = PIIWithPhonesFormatter()
    matches = defaultdict(Counter)
    n_docs = n_chars = changed = 0
    for f in sorted((SHARED / "web_text_cc").glob("*.jsonl.gz")):
        for line in gzip.open(f, "rt"):
            text = json.loads(line).get("text") or ""
            n_docs += 1
            n_chars += len(text)
            for label, rep in (("email", fp_pii.emails_replacer), ("ip", fp_pii.ip_replacer),
                               ("phone", fp_pii.phone_replacer)):
                for m in rep.regex.finditer(text):
                    if rep.validator is None or rep.validator(m.group(0)):
                        ctx = text[max(0, m.start() - 30): m.end() + 15].replace("\n", " ")
                        matches[label][f"{m.group(0)}  | ...{ctx}..."] += 1
            if fp_pii.format(text) != text:
                changed += 1

    # enterprise PII passages
    ent = [json.loads(line) for line in gzip.open(SHARED / "pii" / "enterprise_pii_classification.jsonl.gz", "rt")]
    flagged = Counter()
    totals = Counter()
    for row in ent:
        passage = row["query"].split("Passage: '''", 1)[-1].rsplit("'''", 1)[0]
        label = row["choices"][row["gold"]]
        totals[label] += 1
        if PIIWithPhonesFormatter().format(passage) != passage:
            flagged[label] += 1

    result = {
        "benchmark": "curate_pii",
        "formatter": "datatrove PIIFormatter (emails, public IPv4) + chatstack phone regex",
        "recall_planted": {"per_format": recall, "n_per_format": args.n,
                           "mean_by_kind": {k: round(sum(v) / len(v), 3) for k, v in by_kind.items()},
                           "missed_examples": dict(misses)},
        "web_text_cc_matches": {
            "documents": n_docs, "mb_text": round(n_chars / 1e6, 2), "documents_changed": changed,
            "matches": {k: sum(v.values()) for k, v in matches.items()},
            "matches_per_mb": {k: round(sum(v.values()) / (n_chars / 1e6), 2) for k, v in matches.items()},
            "all_matches": {k: dict(v) for k, v in matches.items()},
        },
        "enterprise_pii_passages": {"changed_rate_by_gold": {k: round(flagged[k] / totals[k], 3) for k in totals},
                                    "passages": dict(totals)},
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
