"""Refusals by knowledge probing (Llama 3, section 4.3.6 "factuality"): the builder.

A model hallucinates when its training conversations always answer "who is X?" with
confidence: it learns the confident style, whether it knows X or not. The cure: probe what
the model knows (chatstack.probing: facts, questions, k samples at a temperature, each judged
by chatstack.judges, a label per question) and write

    known   -> the answer
    unknown -> a refusal
    unsure  -> `unsure_policy` (drop, refuse, answer or hedge)

With `subject_known_min`, refusals are taught about whom the model does not know rather than
about single facts. A subject the model answers about at least that often (the share of correct
samples over all its questions) is familiar: its unknown facts are treated as unsure. A small
model knows a person it read about only in part and cannot tell which of that person's facts it
holds, so fact-level refusals of familiar people teach it to refuse familiar people too. Every
question about a subject below the share is refused, its known and unsure facts too: right
answers about a person the model does not know are lucky guesses of common values, and training
on them teaches it to answer about people it never read of.

The result is an SFT dataset (`messages`) that keeps the probe for audit (question, the k
samples, their judgements, the label), mixed into SFT by a datasets_cfg mixture.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import datasets

from chatstack.errors import ConfigError, DataError
from chatstack.judges import REFUSALS, is_refusal
from chatstack.probing import (
    LABELS,
    Fact,
    FactsConfig,
    ModelProber,
    as_facts,
    get_judge,
    load_facts,
    make_questions,
    probe_facts,
)

UNSURE_POLICIES = ("drop", "refuse", "answer", "hedge")

HEDGE = "I'm not sure, but I think {answer}"


@dataclass
class RefusalConfig(FactsConfig):
    """`chatstack build refusals`: probe a model and write SFT conversations."""

    builder: str = field(default="refusals", metadata={"help": "the builder this config is for"})
    output_dir: str = "outputs/tiny/probe_refusals"
    model_name_or_path: str = field(default="outputs/tiny/sft", metadata={"help": "the model to probe"})
    k: int = field(default=5, metadata={"help": "samples per question"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature of the probe (> 0)"})
    top_k: int | None = None
    top_p: float | None = None
    known_min: float = field(default=0.6, metadata={"help": "known when at least this share of samples is correct"})
    unknown_max: float = field(default=0.2, metadata={"help": "unknown when at most this share of samples is correct"})
    unsure_policy: str = field(default="drop", metadata={"help": "drop | refuse | answer | hedge, for unsure facts"})
    subject_known_min: float | None = field(default=None, metadata={
        "help": "refuse every fact of a subject the model is right about (all questions about it) less often "
                "than this; a familiar subject's unknown facts follow unsure_policy. None: labels per fact"})
    include_known: bool = field(default=True, metadata={"help": "write the answer for known facts"})
    refusals: list[str] | None = field(default=None, metadata={"help": "refusal phrasings ({subject} optional)"})
    answer_template: str = field(default="{answer}", metadata={
        "help": "assistant answer when a fact has no answer sentence"})
    max_refusal_fraction: float | None = field(default=None, metadata={
        "help": "cap refusals at this share of the written conversations (seeded subsample)"})

    def check(self) -> None:
        super().check()
        if self.k < 1:
            raise ConfigError(f"k: expected >= 1 samples per question, got {self.k}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature: probing samples the model; expected > 0, got {self.temperature}")
        if not 0.0 <= self.unknown_max < self.known_min <= 1.0:
            raise ConfigError(f"expected 0 <= unknown_max ({self.unknown_max}) < known_min ({self.known_min}) <= 1")
        if self.unsure_policy not in UNSURE_POLICIES:
            raise ConfigError(f"unsure_policy: expected one of {', '.join(UNSURE_POLICIES)}, got '{self.unsure_policy}'")
        if self.subject_known_min is not None and not 0.0 < self.subject_known_min <= 1.0:
            raise ConfigError(f"subject_known_min: expected a value in (0, 1], got {self.subject_known_min}")
        if self.max_refusal_fraction is not None and not 0.0 < self.max_refusal_fraction <= 1.0:
            raise ConfigError(f"max_refusal_fraction: expected a value in (0, 1], got {self.max_refusal_fraction}")
        for r in self.refusals or []:
            if not is_refusal(r):
                raise ConfigError(f"refusals: '{r}' is not recognised as a refusal by the evaluation "
                                  "(chatstack.judges.REFUSAL_MARKERS); rephrase it")


def write_conversations(rows: list[dict], cfg: RefusalConfig) -> list[dict]:
    """Adds `action` and `messages` to each probe row (messages empty for dropped rows)."""
    rng = random.Random(f"{cfg.seed}-refusals")
    phrasings = cfg.refusals or REFUSALS
    familiar = familiar_subjects(rows, cfg.subject_known_min)
    for row in rows:
        answer = row.pop("_answer_text") or cfg.answer_template.format(answer=row["answers"][0])
        as_label = row["label"]
        if cfg.subject_known_min is not None and row["subject"]:
            if row["subject"] not in familiar:
                as_label = "unknown"  # a person the model does not know: every question refused
            elif as_label == "unknown":
                as_label = "unsure"
        action = {"known": "answer" if cfg.include_known else "drop", "unknown": "refuse"}.get(as_label, cfg.unsure_policy)
        if action == "answer":
            reply = answer
        elif action == "hedge":
            reply = HEDGE.format(answer=answer)
        elif action == "refuse":
            usable = [p for p in phrasings if "{subject}" not in p or row["subject"]]
            reply = rng.choice(usable).format(subject=row["subject"])
        else:
            reply = None
        row["action"] = action if reply is not None else "drop"
        row["messages"] = [] if reply is None else [{"role": "user", "content": row["question"]},
                                                     {"role": "assistant", "content": reply}]
    if cfg.max_refusal_fraction is not None:
        refused = [r for r in rows if r["action"] == "refuse"]
        answered = sum(r["action"] in ("answer", "hedge") for r in rows)
        f = cfg.max_refusal_fraction
        cap = len(refused) if f >= 1 else int(f * answered / (1 - f))
        if len(refused) > cap:
            keep = set(id(r) for r in rng.sample(refused, cap))
            for r in refused:
                if id(r) not in keep:
                    r["action"], r["messages"] = "drop", []
    return rows


def familiar_subjects(rows: list[dict], known_min: float | None) -> set[str]:
    """Subjects the model is right about in at least `known_min` of all samples (None: none)."""
    if known_min is None:
        return set()
    correct: dict[str, int] = {}
    total: dict[str, int] = {}
    for r in rows:
        if r["subject"]:
            correct[r["subject"]] = correct.get(r["subject"], 0) + r["n_correct"]
            total[r["subject"]] = total.get(r["subject"], 0) + len(r["judgements"])
    return {s for s in total if correct[s] / total[s] >= known_min}


def probe_and_build(cfg: RefusalConfig, facts: list[Fact | dict] | None = None,
                    prober: Callable | None = None) -> tuple[datasets.Dataset, list[dict], dict]:
    """-> (SFT dataset with the probe kept, every probe row (dropped ones too), stats)."""
    cfg.check()
    facts = as_facts(facts, "facts") if facts is not None else load_facts(cfg)
    questions = make_questions(facts, cfg)
    if prober is None:
        prober = ModelProber(cfg.model_name_or_path, prompt_format=cfg.prompt_format, temperature=cfg.temperature,
                             top_k=cfg.top_k, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                             batch_size=cfg.batch_size, system_prompt=cfg.system_prompt,
                             completion_prompt=cfg.completion_prompt)
    rows = probe_facts(facts, questions, prober, get_judge(cfg.judge), cfg.k, cfg.known_min, cfg.unknown_max, cfg.seed)
    rows = write_conversations(rows, cfg)
    train = [r for r in rows if r["messages"]]
    if not train:
        raise DataError("refusals: every probed question was dropped (all unsure with unsure_policy: drop, "
                        "include_known: false with only known facts, or max_refusal_fraction with no answer "
                        "to balance the refusals against); nothing to train on")
    stats = probe_stats(rows, len(facts))
    stats["n_too_long"] = sum(len(q) for q in questions) - len(rows)
    return datasets.Dataset.from_list(train), rows, stats


def probe_stats(rows: list[dict], n_facts: int) -> dict[str, Any]:
    stats: dict[str, Any] = {"n_facts": n_facts, "n_questions": len(rows),
                             "n_train": sum(bool(r["messages"]) for r in rows)}
    for action in ("answer", "refuse", "hedge", "drop"):
        stats[f"n_{action}"] = sum(r["action"] == action for r in rows)
    groups = sorted({r["group"] for r in rows})
    splits = sorted({r["split"] for r in rows if r["split"] and r["split"] not in groups})
    for group in groups + splits:
        g = [r for r in rows if r["group"] == group or (group in splits and r["split"] == group)]
        stats[f"n_questions_{group}"] = len(g)
        for lab in LABELS:
            stats[f"{lab}_fraction_{group}"] = round(sum(r["label"] == lab for r in g) / len(g), 4)
        n_samples = sum(len(r["judgements"]) for r in g)
        stats[f"sample_accuracy_{group}"] = round(sum(r["n_correct"] for r in g) / n_samples, 4)
    return stats


def refusal_conversations(seed: int = 0, **kwargs) -> datasets.Dataset:
    """The `refusals` builder for datasets_cfg: `builder: refusals, args: {model_name_or_path: ..}`.
    Probes at load time; `chatstack build refusals` writes the same data to files once."""
    unknown = set(kwargs) - {f for f in RefusalConfig.__dataclass_fields__}
    if unknown:
        raise ConfigError(f"builder refusals: unknown arg(s) {sorted(unknown)}; "
                          f"valid: {sorted(RefusalConfig.__dataclass_fields__)}")
    return probe_and_build(RefusalConfig(seed=seed, **kwargs))[0]
