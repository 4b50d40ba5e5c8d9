"""Knowledge probing (Llama 3, section 4.3.6 "factuality"): what does a model know?

Take facts whose truth is known, ask the model about each one (k times at a temperature to
probe, once greedily to evaluate), judge every reply against the truth (chatstack.judges:
correct / refused / wrong) and label the fact

    known   : at least `known_min` of the k samples are right
    unknown : at most `unknown_max` of them are right
    unsure  : in between

The refusal builder (chatstack.builders.refusals) turns the labels into answer / refusal
conversations; the refusal eval (chatstack.evaluation.refusal) asks the same kind of
questions before and after refusal training. Both take a FactsConfig, defined here.

Every step is pluggable: facts (the synthetic world, a TriviaQA-style JSONL, a datasets_cfg
name, or a list of dicts), the question generator (world templates, the question given with
the fact, an instruction model, or "module:function"), the prober (any chat model path, a
base model with `prompt_format: completion`, or a callable), the judge (chatstack.judges.JUDGES
by name, or "module:function"). Deterministic for a seed. Models generate through
chatstack.engine.

Unseen people (and, for files, questions) are split into a probe part and an eval part by a
hash of the name (question), independent of the seed, so the people the refusal evaluation
asks about never feed the builder.
"""
from __future__ import annotations

import hashlib
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

from chatstack.errors import ConfigError, DataError
from chatstack.judges import JUDGES, VERDICTS, normalize

LABELS = ("known", "unknown", "unsure")


# ------------------------------------------------------------------------------------------
# which facts to ask about: the builder's and the eval's config


@dataclass
class FactsConfig:
    """Which facts to ask about. `facts: world` uses the synthetic world; anything else is a
    JSONL/JSONL.gz/parquet path or a datasets_cfg name with `question` (or llm-foundry's
    `context`), `answer` and/or `aliases` columns."""

    facts: str = field(default="world", metadata={"help": "world | path to a QA file | datasets_cfg name"})
    world: str = field(default="tiny", metadata={"help": "world preset (facts: world)"})
    splits: list[str] = field(default_factory=lambda: ["qa_train", "unseen"],
                              metadata={"help": "world splits whose people are asked about"})
    part: str = field(default="probe", metadata={
        "help": "probe | eval | all: the hash-half of the hashed splits (world) or of the questions (files) to use"})
    hashed_splits: list[str] = field(default_factory=lambda: ["unseen"], metadata={
        "help": "world splits whose people are divided into probe and eval parts by a hash of the name"})
    probe_fraction: float = field(default=0.5, metadata={"help": "share of hashed people/questions in the probe part"})
    max_people: int | None = field(default=None, metadata={
        "help": "at most this many people per world split (seeded sample)"})
    max_facts: int | None = field(default=None, metadata={"help": "at most this many facts in all (seeded sample)"})
    recombined_people: int = field(default=0, metadata={
        "help": "world: also ask about this many made-up people, each named with one seen person's first name "
                "and another's surname (never-seen people whose names look familiar; split 'recombined')"})
    attributes: list[str] | None = field(default=None, metadata={"help": "world attributes to ask about (default all)"})
    phrasings: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "world question templates to use"})
    questions_per_fact: int | None = field(default=None, metadata={
        "help": "questions asked per fact (seeded choice among phrasings); default: one per phrasing"})
    question_generator: str = field(default="auto", metadata={
        "help": "auto | template | given | model | module:function(facts, seed) -> list[list[str]]"})
    question_model: str | None = field(default=None, metadata={
        "help": "instruction model path for question_generator: model"})
    question_prompt: str = field(
        default='Write one question whose answer is "{answer}", about this fact: {statement}',
        metadata={"help": "user message for the question model; {answer} and {statement} are filled in"})
    judge: str = field(default="alias", metadata={
        "help": "alias | exact | contains | number (chatstack.judges.JUDGES) | "
                "module:function(reply, answers) -> correct|refused|wrong"})
    prompt_format: str = field(default="chat", metadata={
        "help": "chat (a chat model) | completion ('Question: ..\\nAnswer:', a base model)"})
    completion_prompt: str = field(default="Question: {question}\nAnswer:", metadata={
        "help": "prompt_format: completion: how a base model is asked; the reply ends at the first newline"})
    system_prompt: str | None = None
    max_new_tokens: int = 32
    batch_size: int = 64
    seed: int = 0

    def check(self) -> None:
        if self.part not in ("probe", "eval", "all"):
            raise ConfigError(f"part: expected probe | eval | all, got '{self.part}'")
        if not 0.0 <= self.probe_fraction <= 1.0:
            raise ConfigError(f"probe_fraction: expected a value in [0, 1], got {self.probe_fraction}")
        if self.prompt_format not in ("chat", "completion"):
            raise ConfigError(f"prompt_format: expected chat | completion, got '{self.prompt_format}'")
        if self.recombined_people < 0 or (self.recombined_people and self.facts != "world"):
            raise ConfigError(f"recombined_people: expected >= 0 made-up people of the world (facts: world), "
                              f"got {self.recombined_people} with facts: {self.facts}")
        if self.questions_per_fact is not None and self.questions_per_fact < 1:
            raise ConfigError(f"questions_per_fact: expected >= 1, got {self.questions_per_fact}")


# ------------------------------------------------------------------------------------------
# facts


@dataclass
class Fact:
    id: str
    answers: list[str]  # accepted answers, the canonical one first
    question: str = ""  # given with the fact (real data); world questions come from templates
    answer_text: str = ""  # how the assistant states it; default answer_template(answers[0])
    statement: str = ""  # the fact as a sentence (for a question-writing model)
    subject: str = ""  # who/what it is about (refusals may name it)
    attribute: str = ""
    group: str = "all"  # what the metrics are broken down by: seen | unseen | the file's name
    split: str = ""
    source: str = ""


def unit_hash(key: str) -> float:
    """A stable number in [0, 1) for a name or question (sha256; no seed, no process salt)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64


def in_part(key: str, part: str, probe_fraction: float) -> bool:
    if part == "all":
        return True
    return (unit_hash(key) < probe_fraction) == (part == "probe")


def load_facts(cfg: FactsConfig) -> list[Fact]:
    cfg.check()
    rng = random.Random(f"{cfg.seed}-facts")
    if cfg.facts == "world":
        facts = world_facts(cfg, rng)
    else:
        facts = file_facts(cfg.facts, cfg.part, cfg.probe_fraction)
    if cfg.max_facts is not None and len(facts) > cfg.max_facts:
        keep = sorted(rng.sample(range(len(facts)), cfg.max_facts))
        facts = [facts[i] for i in keep]
    if not facts:
        raise DataError(f"facts '{cfg.facts}': no facts to ask about (splits={cfg.splits}, part={cfg.part}, "
                        f"max_people={cfg.max_people}, max_facts={cfg.max_facts})")
    return facts


def world_facts(cfg: FactsConfig, rng: random.Random) -> list[Fact]:
    from chatstack.world.datasets import get_world
    from chatstack.world.generator import ATTRIBUTES, SPLITS

    world = get_world(cfg.world)
    bad = [s for s in cfg.splits if s not in SPLITS]
    if bad:
        raise ConfigError(f"splits: unknown world split(s) {bad}; known: {', '.join(SPLITS)}")
    attributes = cfg.attributes or list(ATTRIBUTES)
    bad = [a for a in attributes if a not in ATTRIBUTES]
    if bad:
        raise ConfigError(f"attributes: unknown attribute(s) {bad}; known: {', '.join(ATTRIBUTES)}")
    facts = []
    for split in cfg.splits:
        people = world.by_split(split)
        if split in cfg.hashed_splits:
            people = [p for p in people if in_part(p.name, cfg.part, cfg.probe_fraction)]
        if cfg.max_people is not None and len(people) > cfg.max_people:
            keep = sorted(rng.sample(range(len(people)), cfg.max_people))
            people = [people[i] for i in keep]
        facts += person_facts(people, attributes, split, cfg.world)
    if cfg.recombined_people:
        from chatstack.world.generator import recombined_people
        facts += person_facts(recombined_people(world, cfg.recombined_people, rng), attributes, "recombined", cfg.world)
    return facts


def person_facts(people: list, attributes: list[str], split: str, world: str) -> list[Fact]:
    """A fact per person and attribute: the probe's questions, answers and answer sentences."""
    from chatstack.world.datasets import answer_sentence, fact_sentence

    group = "seen" if split in ("qa_train", "qa_heldout") else "unseen"
    return [Fact(id=f"{p.name}|{attr}", answers=[value], answer_text=answer_sentence(p.name, attr, value),
                 statement=fact_sentence(p.name, attr, value), subject=p.name, attribute=attr,
                 group=group, split=split, source=f"world:{world}")
            for p in people for attr in attributes for value in [p.value(attr)]]


def file_facts(source: str, part: str = "all", probe_fraction: float = 0.5) -> list[Fact]:
    """Facts from a QA file (TriviaQA / Natural Questions as llm-foundry ships them:
    `context` 'Question: ...\\nAnswer:', `answer`, `aliases`) or a datasets_cfg name."""
    from chatstack.data import load_data

    path = Path(source).expanduser()
    if path.exists() and path.suffix not in (".yaml", ".yml"):  # a .yaml is a dataset spec (datasets_cfg)
        ds = load_data({"files": [str(path)]})
        name = path.name.split(".")[0]
    elif source.endswith((".jsonl", ".json", ".gz", ".parquet")):
        raise DataError(f"facts: file not found: {source}")
    else:
        ds = load_data(source)
        name = source
    rows = ds.to_list() if hasattr(ds, "to_list") else list(ds)
    facts = []
    for i, row in enumerate(rows):
        facts.append(row_to_fact(row, f"{source}:{i + 1}", name))
    return [f for f in facts if in_part(normalize(f.question or f.statement), part, probe_fraction)]


def row_to_fact(row: dict, where: str, source: str) -> Fact:
    question = row.get("question") or _strip_context(row.get("context") or "")
    answers = []
    for a in [row.get("answer")] + list(row.get("aliases") or row.get("answers") or []):
        if isinstance(a, str) and a.strip() and a.strip() not in answers:
            answers.append(a.strip())
    if not answers:
        raise DataError(f"{where}: fact without an answer: expected a non-empty 'answer' or 'aliases', got {sorted(row)}")
    statement = row.get("statement") or row.get("text") or ""
    if not question and not statement:
        raise DataError(f"{where}: fact without a question: expected 'question', 'context' or 'statement', "
                        f"got {sorted(row)}")
    fid = str(row.get("id") or row.get("question_id") or hashlib.sha256((question or statement).encode()).hexdigest()[:16])
    return Fact(id=fid, answers=answers, question=question, statement=statement, answer_text=row.get("answer_text") or "",
                subject=row.get("subject") or "", attribute=row.get("attribute") or "", group=source, source=source)


def _strip_context(context: str) -> str:
    q = context.strip()
    q = re.sub(r"^\s*(Question|Q)\s*:\s*", "", q)
    q = re.sub(r"\s*(Answer|A)\s*:\s*$", "", q)
    return q.strip()


def as_facts(facts: list[dict | Fact], where: str = "facts") -> list[Fact]:
    """Facts given as Python dicts (the API, tests): the same checks as files."""
    if not facts:
        raise DataError(f"{where}: the fact set is empty")
    return [f if isinstance(f, Fact) else row_to_fact(f, f"{where}[{i}]", f.get("source", "facts"))
            for i, f in enumerate(facts)]


# ------------------------------------------------------------------------------------------
# questions


def resolve_callable(spec: str, what: str) -> Callable:
    if ":" not in spec:
        raise ConfigError(f"{what}: '{spec}' is neither a known name nor 'module:function'")
    module, fn = spec.split(":", 1)
    try:
        return getattr(import_module(module), fn)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{what}: cannot import '{spec}': {e}") from e


def make_questions(facts: list[Fact], cfg: FactsConfig) -> list[list[str]]:
    """One list of questions per fact."""
    gen = cfg.question_generator
    if gen == "auto":
        gen = "template" if cfg.facts == "world" and all(not f.question for f in facts) else "given"
    if gen == "template":
        out = template_questions(facts, cfg.phrasings, cfg.questions_per_fact, cfg.seed)
    elif gen == "given":
        missing = [f.id for f in facts if not f.question]
        if missing:
            raise DataError(f"question_generator: given: {len(missing)} fact(s) have no question (e.g. {missing[0]}); "
                            "use question_generator: model (with question_model) or template")
        out = [[f.question] for f in facts]
    elif gen == "model":
        if not cfg.question_model:
            raise ConfigError("question_generator: model needs question_model: the path of an instruction model")
        out = ModelQuestions(cfg.question_model, cfg.question_prompt, batch_size=cfg.batch_size)(facts, cfg.seed)
    else:
        out = resolve_callable(gen, "question_generator")(facts, cfg.seed)
    if len(out) != len(facts):
        raise DataError(f"question_generator '{gen}': returned {len(out)} question lists for {len(facts)} facts")
    return out


def template_questions(facts: list[Fact], phrasings: list[int], per_fact: int | None, seed: int) -> list[list[str]]:
    from chatstack.world.generator import ATTRIBUTES

    rng = random.Random(f"{seed}-questions")
    out = []
    for f in facts:
        if f.attribute not in ATTRIBUTES:
            raise DataError(f"fact {f.id}: question_generator: template needs a world attribute, got '{f.attribute}'")
        templates = ATTRIBUTES[f.attribute]["questions"]
        bad = [i for i in phrasings if not 0 <= i < len(templates)]
        if bad:
            raise ConfigError(f"phrasings: {bad} out of range 0..{len(templates) - 1}")
        every = per_fact is None or per_fact >= len(phrasings)
        chosen = list(phrasings) if every else sorted(rng.sample(list(phrasings), per_fact))
        out.append([templates[i].format(name=f.subject) for i in chosen])
    return out


class ModelQuestions:
    """Questions written by an instruction model from the fact's statement and answer."""

    def __init__(self, model_path: str, prompt: str, batch_size: int = 32, max_new_tokens: int = 48):
        self.model_path, self.prompt, self.batch_size, self.max_new_tokens = model_path, prompt, batch_size, max_new_tokens

    def __call__(self, facts: list[Fact], seed: int) -> list[list[str]]:
        import torch

        engine = load_chat_model(self.model_path, "question_model")
        missing = [f.id for f in facts if not (f.statement or f.question)]
        if missing:
            raise DataError(f"question_generator: model: {len(missing)} fact(s) have no statement to ask about "
                            f"(e.g. {missing[0]})")
        torch.manual_seed(seed)
        convs = [[{"role": "user", "content": self.prompt.format(answer=f.answers[0], statement=f.statement or f.question)}]
                 for f in facts]
        replies = engine.chat(convs, batch_size=self.batch_size, max_new_tokens=self.max_new_tokens)
        return [[r.strip().splitlines()[0].strip()] if r.strip() else [] for r in replies]


# ------------------------------------------------------------------------------------------
# probing a model


def load_chat_model(path: str, what: str = "model_name_or_path", prompt_format: str = "chat"):
    """The Engine of a model folder that can be asked questions in `prompt_format`."""
    from chatstack.engine import Engine
    if not Path(path).exists():
        raise DataError(f"{what}: model not found: {path} (a save_pretrained folder)")
    engine = Engine.from_pretrained(path)
    tok = engine.tokenizer
    if prompt_format == "chat" and not tok.chat_template:
        raise DataError(f"{what}: {path}: the tokenizer has no chat template, so the model cannot be asked questions "
                        "as a chat user; probe a chat model (the sft/ppo/grpo output), or set prompt_format: completion "
                        "to probe a base model with 'Question: ...\\nAnswer:' prompts")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return engine


class ModelProber:
    """Asks a causal LM each question k times: `prober(questions, k, seed) -> k replies each`.
    The model is a path, a (model, tokenizer) pair or an Engine; it generates through the Engine."""

    def __init__(self, model_path: str | None = None, model=None, tokenizer=None, prompt_format: str = "chat",
                 temperature: float = 0.7, top_k: int | None = None, top_p: float | None = None,
                 max_new_tokens: int = 32, batch_size: int = 64, system_prompt: str | None = None,
                 completion_prompt: str = "Question: {question}\nAnswer:", engine=None):
        from chatstack.engine import Engine
        if engine is None and model is None:
            engine = load_chat_model(model_path, prompt_format=prompt_format)
        elif engine is None:
            engine = Engine(model, tokenizer)
        if prompt_format == "chat" and not engine.tokenizer.chat_template:
            raise DataError("model: the tokenizer has no chat template; probe a chat model or use prompt_format: completion")
        self.engine, self.model, self.tokenizer = engine, engine.model, engine.tokenizer
        self.prompt_format, self.system_prompt, self.completion_prompt = prompt_format, system_prompt, completion_prompt
        self.sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens)
        self.batch_size = batch_size

    def _conversation(self, q: str) -> list[dict]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + [{"role": "user", "content": q}]

    def _prompt(self, q: str) -> str:
        if self.prompt_format == "chat":
            return self.engine.render(self._conversation(q))
        return self.completion_prompt.format(question=q)

    def fits(self, questions: list[str]) -> list[bool]:
        """Whether each prompt plus max_new_tokens fits the model's context."""
        limit = self.engine.context_limit
        return [len(self.engine.encode(self._prompt(q))) + self.sampling["max_new_tokens"] <= limit for q in questions]

    def __call__(self, questions: list[str], k: int, seed: int) -> list[list[str]]:
        import torch

        torch.manual_seed(seed)
        prompts = [self._prompt(q) for q in questions for _ in range(k)]
        if self.prompt_format == "chat":
            done = self.engine.generate(prompts, self.engine.stop_ids(chat=True), batch_size=self.batch_size,
                                        **self.sampling)
            replies = [c.text.strip() if c else "" for c in done]
        else:
            replies = [o.strip().split("\n")[0].strip()
                       for o in self.engine.complete(prompts, batch_size=self.batch_size, **self.sampling)]
        return [replies[i * k:(i + 1) * k] for i in range(len(questions))]


def keep_fitting(flat: list, prober, where: str) -> tuple[list, int]:
    """Drop (fact, question) pairs too long for the model's context, and say how many."""
    if not hasattr(prober, "fits"):
        return flat, 0
    ok = prober.fits([q for _, q in flat])
    kept = [x for x, fit in zip(flat, ok) if fit]
    skipped = len(flat) - len(kept)
    if skipped:
        print(f"{where}: skipped {skipped} of {len(flat)} questions too long for the model's context", file=sys.stderr)
    return kept, skipped


# ------------------------------------------------------------------------------------------
# judging


def get_judge(spec: str | Callable) -> Callable[[str, list[str]], str]:
    """A judge by name (chatstack.judges.JUDGES), "module:function", or the callable itself."""
    if callable(spec):
        return spec
    return JUDGES.get(spec) or resolve_callable(spec, "judge")


def label(judgements: list[str], known_min: float, unknown_max: float) -> str:
    """known / unknown / unsure from the share of correct samples."""
    share = judgements.count("correct") / len(judgements)
    if share >= known_min:
        return "known"
    if share <= unknown_max:
        return "unknown"
    return "unsure"


# ------------------------------------------------------------------------------------------
# probing


def probe_facts(facts: list[Fact], questions: list[list[str]], prober: Callable, judge: Callable,
                k: int, known_min: float, unknown_max: float, seed: int) -> list[dict]:
    """One row per question: the k samples, their judgements and the label."""
    flat = [(f, q) for f, qs in zip(facts, questions) for q in qs]
    if not flat:
        raise DataError("probe: the question generator produced no questions")
    flat, _ = keep_fitting(flat, prober, "probe")
    if not flat:
        raise DataError("probe: every question is too long for the model's context (n_positions - max_new_tokens)")
    replies = prober([q for _, q in flat], k, seed)
    if len(replies) != len(flat) or any(len(r) != k for r in replies):
        raise DataError(f"probe: the prober returned {len(replies)} reply lists for {len(flat)} questions "
                        f"(expected {k} replies each)")
    rows = []
    for (f, q), samples in zip(flat, replies):
        verdicts = [judge(s, f.answers) for s in samples]
        bad = [v for v in verdicts if v not in VERDICTS]
        if bad:
            raise DataError(f"judge: returned {bad[0]!r}; expected {' | '.join(VERDICTS)}")
        rows.append({"id": f"{f.id}#{len(rows)}", "fact_id": f.id, "source": f.source, "group": f.group, "split": f.split,
                     "subject": f.subject, "attribute": f.attribute, "question": q, "answers": list(f.answers),
                     "samples": [str(s) for s in samples], "judgements": verdicts,
                     "n_correct": verdicts.count("correct"), "label": label(verdicts, known_min, unknown_max),
                     "_answer_text": f.answer_text})
    return rows

