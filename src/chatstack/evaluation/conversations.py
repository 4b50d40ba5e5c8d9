"""Evals of a chat model beyond world QA, called by the sft stage after training; each
returns flat metrics for metrics.json (and so for the speedrun summary):

- format compliance: the reply ends the turn properly, i.e. generation stops at <|im_end|>
  within the token budget, before any <|endoftext|> or a new <|im_start|>; measured on every
  conversation generated here, including multi-turn ones with a system prompt;
- QA on a new phrasing: questions about seen, held-out people in the world's held-out
  question phrasing (the sft stage's own QA eval uses the training phrasings);
- identity: asked in phrasings never trained on, the reply gives the configured name / maker;
- thinking: accuracy on held-out problems of the thinking builder, in the variant trained.

What to evaluate is read from the SFT config with getattr (so any config works): the
identity name/maker and the thinking builder's arguments are found in the dataset mixture
itself (`cfg.dataset`), or given as `cfg.eval_identity` ({name, maker}). Knobs (all optional):
`eval_conversations` (False skips everything), `eval_format_prompts` (32), `eval_thinking` (100
problems, 0 skips), `eval_max_new_tokens` (48), `eval_thinking_max_new_tokens` (128),
`eval_batch_size` (32).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from chatstack.engine import Engine

ANSWER_SAMPLES = 6


@dataclass
class Case:
    group: str  # format | qa | identity_<topic> | thinking_<kind>
    messages: list[dict]
    max_new_tokens: int
    check: tuple | None = None  # (judge, expected) or None: format only
    reply: str = ""
    ended: bool = False
    meta: dict = field(default_factory=dict)


def dataset_builders(spec) -> list[tuple[str, dict]]:
    """(builder name, args) of every builder in a dataset spec, through nested mixtures."""
    from chatstack.data.loading import resolve_spec
    from chatstack.errors import DataError
    try:
        s = resolve_spec(spec)
    except DataError:
        return []
    if s["_kind"] == "builder":
        return [(s["builder"], dict(s.get("args") or {}))]
    if s["_kind"] == "mixture":
        return [b for sub in s["mixture"] for b in dataset_builders(sub)]
    return []


def generate_turns(model, tokenizer, cases: list[Case], batch_size: int = 32) -> None:
    """Greedy replies; fills case.reply and case.ended (stopped at <|im_end|> in budget)."""
    engine = Engine(model, tokenizer)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    limit = engine.context_limit
    prompts = [engine.encode(engine.render(c.messages)) for c in cases]
    lengths = [len(p) for p in prompts]
    for i, n in enumerate(lengths):
        if n >= limit:
            cases[i].reply, cases[i].ended = "", False  # the prompt alone fills the context
    # batches whose longest prompt leaves room for their largest budget: one long prompt must
    # not cut every reply in its batch short
    batches, cur = [], []
    for i in sorted((i for i, n in enumerate(lengths) if n < limit), key=lambda i: (lengths[i], cases[i].max_new_tokens)):
        cand = cur + [i]
        fits = limit - max(lengths[j] for j in cand) >= max(cases[j].max_new_tokens for j in cand)
        if cur and (len(cand) > batch_size or not fits):
            batches.append(cur)
            cand = [i]
        cur = cand
    batches += [cur] if cur else []
    for idx in batches:
        budget = max(cases[i].max_new_tokens for i in idx)
        done = engine.generate([prompts[i] for i in idx], engine.stop_ids(chat=True), budget, batch_size=len(idx))
        for i, c in zip(idx, done):
            cut = c.ids[:cases[i].max_new_tokens]
            stop = c.stop if len(c.ids) < cases[i].max_new_tokens else None
            cases[i].ended = stop == im_end and im_start not in cut
            cases[i].reply = tokenizer.decode(cut, skip_special_tokens=True).strip()


def _identity_values(cfg, builders) -> tuple[str, str] | None:
    given = getattr(cfg, "eval_identity", None)
    if isinstance(given, dict) and given.get("name") and given.get("maker"):
        return given["name"], given["maker"]
    for name, args in builders:
        if name == "identity":
            import inspect

            from chatstack.builders.identity import identity_conversations
            defaults = {k: p.default for k, p in inspect.signature(identity_conversations).parameters.items()}
            return args.get("name", defaults["name"]), args.get("maker", defaults["maker"])
    return None


def _format_cases(world: str, n: int, seed: int, max_new: int) -> list[Case]:
    """Held-out people in the held-out phrasing; every fourth is multi-turn with a system prompt."""
    from chatstack.world.datasets import answer_sentence, qa
    from chatstack.world.generator import ATTRIBUTES
    last = min(len(spec["questions"]) for spec in ATTRIBUTES.values()) - 1  # the phrasing SFT never uses
    rows = qa(world, splits=["qa_heldout"], phrasings=[last]).to_list()
    train = qa(world, splits=["qa_train"], phrasings=[0]).to_list()
    rng = random.Random(f"{seed}-format-eval")
    rng.shuffle(rows)
    cases = []
    for k, r in enumerate(rows[:n]):
        msgs = [{"role": "user", "content": r["question"]}]
        if k % 4 == 3 and train:
            t = rng.choice(train)
            msgs = [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": t["question"]},
                    {"role": "assistant", "content": answer_sentence(t["name"], t["attribute"], t["answer"])}] + msgs
        cases.append(Case("qa", msgs, max_new, ("qa", r["answer"]), meta={"answer": r["answer"]}))
    return cases


def conversation_evals(model, tokenizer, cfg) -> dict:
    if not getattr(cfg, "eval_conversations", True):
        return {}
    from chatstack.judges import is_correct

    seed = getattr(cfg, "seed", 0)
    world = getattr(cfg, "world", "tiny") or "tiny"
    max_new = int(getattr(cfg, "eval_max_new_tokens", 48))
    builders = dataset_builders(getattr(cfg, "dataset", None)) if getattr(cfg, "dataset", None) else []
    cases: list[Case] = []

    n_format = int(getattr(cfg, "eval_format_prompts", 32))
    if n_format:
        cases += _format_cases(world, n_format, seed, max_new)

    identity = _identity_values(cfg, builders)
    if identity:
        from chatstack.builders.identity import identity_eval_questions
        for q in identity_eval_questions(*identity):
            cases.append(Case(f"identity_{q['topic']}", [{"role": "user", "content": q["question"]}], max_new,
                              ("identity", q["expected"]), meta={"third_person": q["third_person"]}))

    thinking = [args for name, args in builders if name == "thinking"]
    n_thinking = int(getattr(cfg, "eval_thinking", 100))
    variant = None
    if thinking and n_thinking:
        from chatstack.builders.thinking import thinking_eval_rows
        args = thinking[0]
        variants = {a.get("variant", "work_first") for a in thinking}
        variant = variants.pop() if len(variants) == 1 else "mixed"
        keep = {k: args[k] for k in ("mix", "words_file", "min_steps", "max_steps", "max_operand") if k in args}
        rows = thinking_eval_rows(args.get("world", world), seed=seed, n=n_thinking, **keep)
        t_new = int(getattr(cfg, "eval_thinking_max_new_tokens", 128))
        for r in rows:
            cases.append(Case(f"thinking_{r['kind']}", [{"role": "user", "content": r["question"]}], t_new,
                              ("thinking", r["answer"])))
    if not cases:
        return {}

    generate_turns(model, tokenizer, cases, batch_size=int(getattr(cfg, "eval_batch_size", 32)))

    from chatstack.judges import identity_correct, thinking_correct
    judges = {"qa": is_correct, "identity": identity_correct, "thinking": thinking_correct}
    for c in cases:
        c.meta["correct"] = judges[c.check[0]](c.reply, c.check[1]) if c.check else None

    def acc(prefix: str, where=lambda c: True) -> tuple[float, int] | None:
        sel = [c for c in cases if (c.group == prefix or c.group.startswith(prefix + "_")) and where(c)]
        return (round(sum(c.meta["correct"] for c in sel) / len(sel), 4), len(sel)) if sel else None

    metrics = {"format_compliance": round(sum(c.ended for c in cases) / len(cases), 4), "format_samples": len(cases)}
    if (a := acc("qa")):
        metrics.update(qa_accuracy_new_phrasing=a[0], qa_samples_new_phrasing=a[1])
    if (a := acc("identity")):
        metrics.update(identity_accuracy=a[0], identity_samples=a[1],
                       identity_accuracy_name=acc("identity_name")[0], identity_accuracy_maker=acc("identity_maker")[0])
        metrics.update(identity_accuracy_second_person=acc("identity", lambda c: not c.meta["third_person"])[0],
                       identity_accuracy_third_person=acc("identity", lambda c: c.meta["third_person"])[0])
    if (a := acc("thinking")):
        metrics.update(thinking_accuracy=a[0], thinking_samples=a[1], thinking_variant=variant)
        for kind in sorted({c.group[len("thinking_"):] for c in cases if c.group.startswith("thinking_")}):
            metrics[f"thinking_accuracy_{kind}"] = acc(f"thinking_{kind}")[0]
    seen, samples = set(), []
    for c in cases:  # one sample per group, for metrics.json readers
        if c.group not in seen and len(samples) < ANSWER_SAMPLES * 2:
            seen.add(c.group)
            samples.append({"group": c.group, "prompt": c.messages[-1]["content"], "reply": c.reply,
                            "ended_turn": c.ended, "correct": c.meta["correct"]})
    metrics["conversation_samples"] = samples
    return metrics
