"""The lesson card: for each lesson of the talk, what this run measured and whether it holds.

`lesson_card(stages)` reads the stages' metrics (summary.json's `stages`, as the speedrun
writes it) and returns `{lesson: {"claim", "metric", "stage", "before", "after", "n", "goal",
"met"}}`; a lesson whose stage is not in the run is left out. The speedrun stores it as
`summary["lessons"]`, prints it as its last table and the report card opens with it.

A goal is a bound on `after` (`min` / `max`) or on the change (`gain`: after - before >= goal).
The RL lessons hold only where the stage kept the identity and the turn's end within 3 points
(`holds`); what broke is listed under `broke`.
Standard library only.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lesson:
    claim: str
    metric: str  # what is measured, in words
    stages: tuple[str, ...]  # the first of these the run has is read (the final chat model first)
    after: str
    before: str | None = None  # a key of the same stage, or "<stage>:<key>"
    n: str | None = None
    goal: float = 0.0
    kind: str = "min"  # min | max | gain
    extra: tuple[str, ...] = ()
    # "<stage>:<key>" of every chat stage: `after` is the worst of those the run has (a lesson
    # that must hold on every stage, not only on the one it was taught in)
    worst_of: tuple[str, ...] = ()
    # (before, after) keys of the same stage that must not fall by more than HOLD_WITHIN for the
    # lesson to hold: an RL stage that gains its goal by breaking the identity or the turn's end
    # does not teach it (the RL issue's terms: within 3 points of the model it starts from)
    holds: tuple[tuple[str, str], ...] = ()


HOLD_WITHIN = 0.03


CHAT_STAGES = ("assistant", "sft_refusal", "sft")
# each chat stage's key for a conversation check (PPO reports the model it kept, GRPO the model after;
# eval_assistant asks the final model with its tools on, as `chatstack chat` does)
EVERY_CHAT_STAGE = {"identity_accuracy": ("sft:identity_accuracy", "sft_refusal:identity_accuracy",
                                          "assistant:identity_accuracy", "ppo:identity_accuracy_kept",
                                          "grpo:identity_accuracy_after", "eval_assistant:identity_accuracy_with_tools"),
                    "format_compliance": ("assistant:format_compliance", "sft_refusal:format_compliance",
                                          "ppo:format_compliance_kept", "grpo:format_compliance_after")}
LESSONS: dict[str, Lesson] = {
    # eval_refusal asks about held-out seen people the refusal data never named (the SFT stages'
    # qa_accuracy_seen is not held out after refusal SFT: its answer conversations name such people)
    "knowledge_base": Lesson("pretraining stores what it reads, and a base model retrieves it by question",
                             "base recall on held-out seen people: worst attribute", ("pretrain",),
                             "recall_heldout_birth_year", goal=0.80,
                             worst_of=tuple(f"pretrain:recall_heldout_{a}" for a in
                                            ("birth_city", "birth_year", "university", "field", "employer")),
                             extra=("recall_trained_birth_year", "arithmetic_accuracy")),
    "knowledge": Lesson("the model knows what it read in pretraining, asked about people it never saw QA for",
                        "accuracy on held-out seen people", ("eval_refusal",), "accuracy_seen_after",
                        "accuracy_seen_before", "n_seen", goal=0.60),
    "hallucination": Lesson("refusal data from knowledge probing (Llama 3) stops made-up answers",
                            "hallucination on never-seen people", ("eval_refusal",), "hallucination_unseen_after",
                            "hallucination_unseen_before", "n_unseen", goal=0.10, kind="max"),
    "over_refusal": Lesson("... without refusing what it knows", "refusals of facts the model knew before",
                           ("eval_refusal",), "over_refusal_seen_after", n="n_seen", goal=0.10, kind="max"),
    "identity": Lesson("the assistant's identity is SFT data", "name and maker, new phrasings: worst chat stage",
                       CHAT_STAGES, "identity_accuracy", "sft:identity_accuracy", "identity_samples", goal=0.90,
                       worst_of=EVERY_CHAT_STAGE["identity_accuracy"]),
    "format": Lesson("a chat model ends its turn", "replies that end their turn: worst chat stage", CHAT_STAGES,
                     "format_compliance", "sft:format_compliance", "format_samples", goal=0.95,
                     worst_of=EVERY_CHAT_STAGE["format_compliance"]),
    # the final model's tools, through its recorded tools (chatstack.evaluation.assistant); before = no tools
    "search": Lesson("a model looks up what it does not know (search tool)",
                     "never-seen people, with search", ("eval_assistant",), "search_accuracy",
                     "search_accuracy_without_tools", "n_per_task", goal=0.90,
                     extra=("search_accuracy_heldout_phrasing", "tool_error_rate")),
    "python_arithmetic": Lesson("mental arithmetic fails where code does not (python tool)",
                                "3-digit products, with python", ("eval_assistant",), "python_arithmetic_accuracy",
                                "python_arithmetic_accuracy_without_tools", "n_per_task", goal=0.95,
                                extra=("python_arithmetic_accuracy_heldout_phrasing", "tool_error_rate")),
    "letter_counting": Lesson("models cannot see letters in tokens; code can count them",
                              "letter counts, with python", ("eval_assistant",), "letter_counting_accuracy",
                              "letter_counting_accuracy_without_tools", "n_per_task", goal=0.95,
                              extra=("letter_counting_accuracy_heldout_phrasing", "tool_error_rate")),
    # the same model's samples on held-out sums, worked first or answered first (the assistant learnt both)
    "thinking": Lesson("models need tokens to think: work before the answer beats the answer first",
                       "held-out sums of three, sample accuracy: answer first -> work first", ("grpo",),
                       "sample_accuracy_work_first_before", "sample_accuracy_answer_first_before",
                       "samples_work_first_before", goal=0.05, kind="gain", extra=("samples_answer_first_before",)),
    "grpo": Lesson("RL on verifiable answers turns pass@k into pass@1 (DeepSeek-R1)",
                   "held-out sums of three numbers (greedy, honest judge)", ("grpo",), "accuracy_after",
                   "accuracy_before", "eval_prompts", goal=0.15, kind="gain",
                   extra=("pass_at_8_before", "pass_at_8_after", "length_before", "length_after"),
                   holds=(("identity_accuracy_before", "identity_accuracy_after"),
                          ("format_compliance_before", "format_compliance_after"))),
    # chosen by gold on the validation prompts, judged on test prompts no choice was made on
    "rlhf": Lesson("a learned reward is gamed: stop where the truth (gold) peaks (Gao et al. 2022)",
                   "gold score of the kept PPO model on test prompts", ("ppo",), "gold_test_kept", "gold_test_start",
                   "test_prompts", goal=0.01, kind="gain",
                   extra=("gold_start", "gold_best", "gold_end", "proxy_start", "proxy_end", "kl_best", "best_step"),
                   holds=(("identity_accuracy_start", "identity_accuracy_kept"),
                          ("format_compliance_start", "format_compliance_kept"))),
}


GOAL_SIGN = {"min": ">= ", "max": "<= ", "gain": "+"}


def _value(stages: dict, stage: str, key: str | None):
    if key is None:
        return None
    if ":" in key:
        stage, key = key.split(":", 1)
    return stages.get(stage, {}).get("metrics", {}).get(key)


def met(lesson: Lesson, before, after) -> bool | None:
    if after is None:
        return None
    if lesson.kind == "gain":
        return None if before is None else after - before >= lesson.goal
    return after >= lesson.goal if lesson.kind == "min" else after <= lesson.goal


def lesson_card(stages: dict) -> dict[str, dict]:
    card = {}
    for name, lesson in LESSONS.items():
        stage = next((s for s in lesson.stages if s in stages), None)
        if stage is None:
            continue
        before, after = _value(stages, stage, lesson.before), _value(stages, stage, lesson.after)
        worst = [(v, key.split(":")[0]) for key in lesson.worst_of if (v := _value(stages, stage, key)) is not None]
        if worst:
            after, stage = min(worst)
        entry = {"claim": lesson.claim, "metric": lesson.metric, "stage": stage, "before": before, "after": after,
                 "n": _value(stages, stage, lesson.n), "goal": f"{GOAL_SIGN[lesson.kind]}{lesson.goal:g}",
                 "met": met(lesson, before, after)}
        entry.update({k: v for k in lesson.extra if (v := _value(stages, stage, k)) is not None})
        broke = [f"{b_key.rsplit('_', 1)[0]} {b:.3g} -> {a:.3g}" for b_key, a_key in lesson.holds
                 if (b := _value(stages, stage, b_key)) is not None and (a := _value(stages, stage, a_key)) is not None
                 and a < b - HOLD_WITHIN]
        if broke:
            entry.update(broke=broke, met=False if entry["met"] is not None else None)
        card[name] = entry
    return card


def _fmt(v) -> str:
    return "" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def _broke(entry: dict) -> str:
    return f": broke {', '.join(entry['broke'])}" if entry.get("broke") else ""


def card_table(card: dict[str, dict]) -> list[str]:
    """The card as markdown table rows (the speedrun prints it, the report opens with it)."""
    rows = ["| lesson | measured | before | after | goal | met |", "|---|---|---:|---:|---|---|"]
    for name, e in card.items():
        verdict = {True: "yes", False: "**no**", None: "n/a"}[e["met"]] + _broke(e)
        rows.append(f"| {name} | {e['metric']} ({e['stage']}) | {_fmt(e['before'])} | {_fmt(e['after'])} | "
                    f"{e['goal']} | {verdict} |")
    return rows


def seeds_table(cards: dict[str, dict[str, dict]]) -> list[str]:
    """Lesson x run as markdown rows: before -> after (met) per run, then the mean of `after` and
    its range (the README's card over world seeds 0, 1, 2). `cards`: {run label: lesson card}."""
    labels = list(cards)
    rows = ["| lesson | measured | goal | " + " | ".join(labels) + " | mean after (range) |",
            "|---|---|---|" + "---|" * len(labels) + "---|"]
    names = [n for n in LESSONS if any(n in c for c in cards.values())]
    for name in names:
        entries = [cards[label].get(name) for label in labels]
        first = next(e for e in entries if e)
        cells, afters = [], []
        for e in entries:
            if not e:
                cells.append("")
                continue
            verdict = {True: "yes", False: "no", None: "n/a"}[e["met"]] + _broke(e)
            change = f"{_fmt(e['before'])} -> {_fmt(e['after'])}" if e["before"] is not None else _fmt(e["after"])
            cells.append(f"{change} ({verdict})")
            if isinstance(e["after"], (int, float)):
                afters.append(e["after"])
        spread = (f"{sum(afters) / len(afters):.3f} ({min(afters):.3f}-{max(afters):.3f})" if afters else "")
        rows.append(f"| {name} | {first['metric']} ({first['stage']}) | {first['goal']} | " + " | ".join(cells)
                    + f" | {spread} |")
    return rows
