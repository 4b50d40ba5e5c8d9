"""Refusals by knowledge probing (Llama 3, section 4.3.6 "factuality").

A model hallucinates when its training conversations always answer "who is X?" with
confidence: it learns the confident style, whether it knows X or not. The cure: take facts
whose truth is known, ask the model about each one k times at a temperature, judge every
answer against the truth, and label the fact

    known   : at least `known_min` of the k samples are right -> train on the answer
    unknown : at most `unknown_max` of them are right        -> train on a refusal
    unsure  : in between                                     -> `unsure_policy`

With `subject_known_min`, refusals are taught about whom the model does not know rather than
about single facts: an unknown fact whose subject the model answers about at least that often
(the share of correct samples over all its questions) is treated as unsure. A small model knows
a person it read about only in part and cannot tell which of that person's facts it holds, so
fact-level refusals of familiar people teach it to refuse familiar people too.

The result is an SFT dataset (`messages`) that keeps the probe for audit (question, the k
samples, their judgements, the label), mixed into SFT by a datasets_cfg mixture.

Every step is pluggable: facts (the synthetic world, a TriviaQA-style JSONL, a datasets_cfg
name, or a list of dicts), the question generator (world templates, the question given with
the fact, an instruction model, or "module:function"), the prober (any chat model path, a
base model with `prompt_format: completion`, or a callable), the judge (alias match, exact
match, or "module:function"). Deterministic for a seed.

Unseen people (and, for files, questions) are split into a probe part and an eval part by a
hash of the name (question), independent of the seed, so the people the refusal evaluation
asks about never feed the builder.
"""
from __future__ import annotations

import hashlib
import random
import re
import string
import sys
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

import datasets

from chatstack.errors import ConfigError, DataError

LABELS = ("known", "unknown", "unsure")
UNSURE_POLICIES = ("drop", "refuse", "answer", "hedge")

# Several phrasings, so the model learns to refuse rather than to repeat one string. Each one
# contains a marker that chatstack.evaluation.world_qa.is_refusal recognises.
REFUSALS = [
    "I'm sorry, I don't know.",
    "I don't know the answer to that.",
    "I'm not sure. I don't have information about that.",
    "I'm sorry, but I don't have information about {subject}.",
    "I don't know. I am not familiar with {subject}.",
    "I'm sorry, I have no information about {subject}, so I don't know.",
]
HEDGE = "I'm not sure, but I think {answer}"


# ------------------------------------------------------------------------------------------
# configuration shared by the builder and the evaluation


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
    max_people: int | None = field(default=None, metadata={"help": "at most this many people per world split (seeded sample)"})
    max_facts: int | None = field(default=None, metadata={"help": "at most this many facts in all (seeded sample)"})
    attributes: list[str] | None = field(default=None, metadata={"help": "world attributes to ask about (default all)"})
    phrasings: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "world question templates to use"})
    questions_per_fact: int | None = field(default=None, metadata={
        "help": "questions asked per fact (seeded choice among phrasings); default: one per phrasing"})
    question_generator: str = field(default="auto", metadata={
        "help": "auto | template | given | model | module:function(facts, seed) -> list[list[str]]"})
    question_model: str | None = field(default=None, metadata={"help": "instruction model path for question_generator: model"})
    question_prompt: str = field(default='Write one question whose answer is "{answer}", about this fact: {statement}', metadata={
        "help": "user message for the question model; {answer} and {statement} are filled in"})
    judge: str = field(default="alias", metadata={"help": "alias | exact | module:function(reply, answers) -> correct|refused|wrong"})
    prompt_format: str = field(default="chat", metadata={"help": "chat (a chat model) | completion ('Question: ..\\nAnswer:', a base model)"})
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
        if self.questions_per_fact is not None and self.questions_per_fact < 1:
            raise ConfigError(f"questions_per_fact: expected >= 1, got {self.questions_per_fact}")


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
        "help": "refuse an unknown fact only if the model is right about its subject (all questions about it) "
                "less often than this; otherwise it follows unsure_policy. None: every unknown fact is refused"})
    include_known: bool = field(default=True, metadata={"help": "write the answer for known facts"})
    refusals: list[str] | None = field(default=None, metadata={"help": "refusal phrasings ({subject} optional)"})
    answer_template: str = field(default="{answer}", metadata={"help": "assistant answer when a fact has no answer sentence"})
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
            from chatstack.evaluation.world_qa import is_refusal
            if not is_refusal(r):
                raise ConfigError(f"refusals: '{r}' is not recognised as a refusal by the evaluation "
                                  "(chatstack.evaluation.world_qa.REFUSAL_MARKERS); rephrase it")


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
    from chatstack.world.datasets import answer_sentence, fact_sentence, get_world
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
        for p in people:
            for attr in attributes:
                value = p.value(attr)
                facts.append(Fact(id=f"{p.name}|{attr}", answers=[value], answer_text=answer_sentence(p.name, attr, value),
                                  statement=fact_sentence(p.name, attr, value), subject=p.name, attribute=attr,
                                  group="unseen" if split == "unseen" else "seen", split=split, source=f"world:{cfg.world}"))
    return facts


def file_facts(source: str, part: str = "all", probe_fraction: float = 0.5) -> list[Fact]:
    """Facts from a QA file (TriviaQA / Natural Questions as llm-foundry ships them:
    `context` 'Question: ...\\nAnswer:', `answer`, `aliases`) or a datasets_cfg name."""
    from chatstack.data import load_data

    path = Path(source).expanduser()
    if path.exists():
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
        raise DataError(f"{where}: fact without a question: expected 'question', 'context' or 'statement', got {sorted(row)}")
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
        chosen = list(phrasings) if per_fact is None or per_fact >= len(phrasings) else sorted(rng.sample(list(phrasings), per_fact))
        out.append([templates[i].format(name=f.subject) for i in chosen])
    return out


class ModelQuestions:
    """Questions written by an instruction model from the fact's statement and answer."""

    def __init__(self, model_path: str, prompt: str, batch_size: int = 32, max_new_tokens: int = 48):
        self.model_path, self.prompt, self.batch_size, self.max_new_tokens = model_path, prompt, batch_size, max_new_tokens

    def __call__(self, facts: list[Fact], seed: int) -> list[list[str]]:
        import torch

        from chatstack.generate import chat
        model, tok = load_chat_model(self.model_path, "question_model")
        missing = [f.id for f in facts if not (f.statement or f.question)]
        if missing:
            raise DataError(f"question_generator: model: {len(missing)} fact(s) have no statement to ask about (e.g. {missing[0]})")
        torch.manual_seed(seed)
        convs = [[{"role": "user", "content": self.prompt.format(answer=f.answers[0], statement=f.statement or f.question)}]
                 for f in facts]
        replies = chat(model, tok, convs, batch_size=self.batch_size, max_new_tokens=self.max_new_tokens)
        return [[r.strip().splitlines()[0].strip()] if r.strip() else [] for r in replies]


# ------------------------------------------------------------------------------------------
# probing a model


def load_chat_model(path: str, what: str = "model_name_or_path", prompt_format: str = "chat"):
    from chatstack.generate import load
    if not Path(path).exists():
        raise DataError(f"{what}: model not found: {path} (a save_pretrained folder)")
    model, tok = load(path)
    if prompt_format == "chat" and not tok.chat_template:
        raise DataError(f"{what}: {path}: the tokenizer has no chat template, so the model cannot be asked questions "
                        "as a chat user; probe a chat model (the sft/ppo/grpo output), or set prompt_format: completion "
                        "to probe a base model with 'Question: ...\\nAnswer:' prompts")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


class ModelProber:
    """Asks a causal LM each question k times: `prober(questions, k, seed) -> k replies each`."""

    def __init__(self, model_path: str | None = None, model=None, tokenizer=None, prompt_format: str = "chat",
                 temperature: float = 0.7, top_k: int | None = None, top_p: float | None = None,
                 max_new_tokens: int = 32, batch_size: int = 64, system_prompt: str | None = None,
                 completion_prompt: str = "Question: {question}\nAnswer:"):
        if model is None:
            model, tokenizer = load_chat_model(model_path, prompt_format=prompt_format)
        elif prompt_format == "chat" and not tokenizer.chat_template:
            raise DataError("model: the tokenizer has no chat template; probe a chat model or use prompt_format: completion")
        self.model, self.tokenizer = model, tokenizer
        self.prompt_format, self.system_prompt, self.completion_prompt = prompt_format, system_prompt, completion_prompt
        self.sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens)
        self.batch_size = batch_size

    def _conversation(self, q: str) -> list[dict]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + [{"role": "user", "content": q}]

    def fits(self, questions: list[str]) -> list[bool]:
        """Whether each prompt plus max_new_tokens fits the model's context."""
        cfg = self.model.config
        limit = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
        if not limit:
            return [True] * len(questions)
        if self.prompt_format == "chat":
            lengths = [len(self.tokenizer.apply_chat_template(self._conversation(q), add_generation_prompt=True,
                                                              tokenize=True, return_dict=True)["input_ids"])
                       for q in questions]
        else:
            lengths = [len(ids) for ids in self.tokenizer([self.completion_prompt.format(question=q) for q in questions],
                                                          add_special_tokens=False)["input_ids"]]
        return [n + self.sampling["max_new_tokens"] <= limit for n in lengths]

    def __call__(self, questions: list[str], k: int, seed: int) -> list[list[str]]:
        import torch

        from chatstack.generate import chat, complete
        torch.manual_seed(seed)
        flat = [q for q in questions for _ in range(k)]
        if self.prompt_format == "chat":
            replies = chat(self.model, self.tokenizer, [self._conversation(q) for q in flat],
                           batch_size=self.batch_size, **self.sampling)
        else:
            outs = complete(self.model, self.tokenizer, [self.completion_prompt.format(question=q) for q in flat],
                            batch_size=self.batch_size, **self.sampling)
            replies = [o.strip().split("\n")[0].strip() for o in outs]
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


def normalize(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().replace("’", "'")
    text = "".join(" " if ch in string.punctuation else ch for ch in text)
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def alias_match(reply: str, answers: list[str]) -> bool:
    r = f" {normalize(reply)} "
    return any((a := normalize(ans)) and f" {a} " in r for ans in answers)


def alias_judge(reply: str, answers: list[str]) -> str:
    """'correct' if any accepted answer appears in the reply (whole words, normalised);
    else 'refused' if it says it does not know; else 'wrong' (a hallucination)."""
    from chatstack.evaluation.world_qa import is_refusal
    if alias_match(reply, answers):
        return "correct"
    return "refused" if is_refusal(reply) else "wrong"


def exact_judge(reply: str, answers: list[str]) -> str:
    """'correct' only if the whole reply is an accepted answer (short-answer models)."""
    from chatstack.evaluation.world_qa import is_refusal
    if normalize(reply) in {normalize(a) for a in answers if normalize(a)}:
        return "correct"
    return "refused" if is_refusal(reply) else "wrong"


JUDGES: dict[str, Callable[[str, list[str]], str]] = {"alias": alias_judge, "exact": exact_judge}


def get_judge(spec: str | Callable) -> Callable[[str, list[str]], str]:
    if callable(spec):
        return spec
    return JUDGES.get(spec) or resolve_callable(spec, "judge")


def label(judgements: list[str], known_min: float, unknown_max: float) -> str:
    share = judgements.count("correct") / len(judgements)
    if share >= known_min:
        return "known"
    if share <= unknown_max:
        return "unknown"
    return "unsure"


# ------------------------------------------------------------------------------------------
# the builder


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
        bad = [v for v in verdicts if v not in ("correct", "refused", "wrong")]
        if bad:
            raise DataError(f"judge: returned {bad[0]!r}; expected correct | refused | wrong")
        rows.append({"id": f"{f.id}#{len(rows)}", "fact_id": f.id, "source": f.source, "group": f.group, "split": f.split,
                     "subject": f.subject, "attribute": f.attribute, "question": q, "answers": list(f.answers),
                     "samples": [str(s) for s in samples], "judgements": verdicts,
                     "n_correct": verdicts.count("correct"), "label": label(verdicts, known_min, unknown_max),
                     "_answer_text": f.answer_text})
    return rows


def write_conversations(rows: list[dict], cfg: RefusalConfig) -> list[dict]:
    """Adds `action` and `messages` to each probe row (messages empty for dropped rows)."""
    rng = random.Random(f"{cfg.seed}-refusals")
    phrasings = cfg.refusals or REFUSALS
    familiar = familiar_subjects(rows, cfg.subject_known_min)
    for row in rows:
        answer = row.pop("_answer_text") or cfg.answer_template.format(answer=row["answers"][0])
        as_label = "unsure" if row["label"] == "unknown" and row["subject"] in familiar else row["label"]
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
        raise ConfigError(f"builder refusals: unknown arg(s) {sorted(unknown)}; valid: {sorted(RefusalConfig.__dataclass_fields__)}")
    return probe_and_build(RefusalConfig(seed=seed, **kwargs))[0]
