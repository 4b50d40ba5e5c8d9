"""Suite files: where suites live, their YAML schema, and loading one with clear errors.

A suite is a YAML file: the packaged ones (`evaluation/suites/<name>.yaml`: `tiny`, `quick`,
`benchmarks`; `chatstack eval --list-suites` shows them) or any path to a YAML file. It names
the world, a seed and which evals run at which sizes:

    world: tiny
    evals:
      world_qa:      {n: 200}                   # per split: seen (qa_train), held-out (qa_heldout), unseen
                                                #   (unseen: the refusal builder's eval half of them)
      arithmetic:    {dataset: tiny_arithmetic_eval, n: 200}
      conversations: {dataset: tiny_sft}        # format compliance, identity, QA in a new phrasing, thinking
      tools:         {n: 50}                    # chatstack.evaluation.tools.tool_evals (skipped if absent)
      lm_eval:       {tasks: [chatstack_arc_easy, chatstack_lambada, chatstack_hellaswag], limit: 100}
      humaneval:     {dataset: humaneval}       # pass@1, the code run in the sandbox (chatstack.evaluation.humaneval)

A real-scale suite names Hub data (lm-eval's own tasks, datasets_cfg specs of Hub ids) and says
in `local` what to read instead under `--local_data` (tests, the smoke run, a machine offline):
an lm-eval task -> its chatstack twin on ../shared/data (same prompt and metric), a Hub dataset
id -> a local dataset spec (`${DATA_ROOT}` filled in), read by the same loaders.

Suites live with the package, not in recipes/: what to measure depends on the world and the
scale, not on one recipe (tiny, tiny-thinking and tiny-web models all answer about world
`tiny`), and `--suite NAME` then works from any directory or install; a recipe that needs its
own passes a path.

Each section is a dataclass below, so an unknown key is an error naming the nearest valid
one (chatstack.config.check_keys), before anything runs. Each says which model kinds it
applies to (`kinds: [base, chat]`, chatstack.evaluation.model_kind).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from chatstack.config import check_keys, read_yaml
from chatstack.errors import ConfigError
from chatstack.evaluation.model_kind import KINDS

# world QA split -> the suffix of its eval key (world_qa_seen_train, ...)
WORLD_SPLITS = {"qa_train": "seen_train", "qa_heldout": "seen_heldout", "unseen": "unseen"}


def suites_dir() -> Path:
    return Path(str(resources.files("chatstack.evaluation").joinpath("suites")))


def suite_names() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*.yaml"))


def suite_path(name: str) -> Path:
    """A packaged suite by name, or a path to a YAML file; else a ConfigError listing the suites."""
    packaged = suites_dir() / f"{name}.yaml"
    if packaged.is_file():
        return packaged
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return Path(name)
    listing = "; ".join(f"{n} ({describe(suites_dir() / f'{n}.yaml')})" for n in suite_names())
    raise ConfigError(f"unknown suite '{name}': not a packaged suite nor a YAML file. "
                      f"Suites: {listing}. Or give a path to a suite YAML file.")


def describe(path: Path) -> str:
    """The first line of a suite's `description` ('' if it has none or does not parse)."""
    try:
        return str((yaml.safe_load(path.read_text()) or {}).get("description", "")).strip().split("\n")[0]
    except (OSError, yaml.YAMLError):
        return ""


@dataclass
class EvalSection:
    kinds: list[str] = field(default_factory=lambda: list(KINDS))


@dataclass
class WorldQAConfig(EvalSection):
    """Questions about the world's people: seen (QA trained), held-out (seen in articles only), unseen."""
    splits: list[str] = field(default_factory=lambda: list(WORLD_SPLITS))
    n: int = 200  # questions per split
    phrasings: list[int] = field(default_factory=lambda: [0, 1])
    max_new_tokens: int = 32
    completion_prompt: str = "Q: {question}\nA:"  # base models: as the QA text in pretraining
    completion_max_new_tokens: int = 16  # a base model does not stop at the answer: it writes the next Q:
    # unseen people: the refusal builder's hash-half it never probes (eval), as the refusal eval
    # asks; `all` asks about any unseen person (also those a refusal SFT was trained to refuse)
    unseen_part: str = "eval"


@dataclass
class ArithmeticConfig(EvalSection):
    dataset: str = "tiny_arithmetic_eval"  # datasets_cfg name: rows of `prompt` (messages) + `answer`
    n: int = 200
    max_new_tokens: int = 24
    completion_prompt: str = "{expression} ="  # base models: as the exercises in pretraining
    completion_max_new_tokens: int = 8


@dataclass
class ConversationsConfig(EvalSection):
    """chatstack.evaluation.conversations.conversation_evals: format compliance, QA in a new phrasing,
    identity, thinking. Identity and thinking are read from `dataset` (the SFT mixture the model was
    trained on) or `identity` ({name, maker})."""
    kinds: list[str] = field(default_factory=lambda: ["chat"])
    dataset: str | None = None
    identity: dict | None = None
    format_prompts: int = 32
    thinking: int = 100  # held-out problems, when `dataset` has a thinking builder
    max_new_tokens: int = 48
    thinking_max_new_tokens: int = 128


@dataclass
class ToolsConfig(EvalSection):
    """chatstack.evaluation.tools.tool_evals: `n` prompts per task (unseen facts, arithmetic, counting);
    use_tools true measures with tools and without (keys `*_with_tools`, `*_without_tools`), false
    only without. A list runs it once per value."""
    kinds: list[str] = field(default_factory=lambda: ["chat"])
    n: int = 100
    use_tools: list[bool] = field(default_factory=lambda: [True])


@dataclass
class LmEvalConfig(EvalSection):
    tasks: list[str] = field(default_factory=lambda: ["chatstack_arc_easy", "chatstack_arc_challenge",
                                                      "chatstack_lambada", "chatstack_hellaswag"])
    limit: int | None = 100  # examples per task (None: all)
    num_fewshot: int | None = 0  # None: each task's own (lm-eval's gsm8k: 5)
    batch_size: int = 32
    max_gen_toks: int | None = None


@dataclass
class HumanEvalConfig(EvalSection):
    """chatstack.evaluation.humaneval: greedy code for `n` problems (None: all), pass@1 in the sandbox.
    A base model continues the prompt (cut at the Codex stop sequences); a chat model gets the
    prompt as its user turn and its first code block is taken (nanochat's HumanEval)."""
    dataset: str | dict = "humaneval"  # datasets_cfg/humaneval.yaml: openai/openai_humaneval
    n: int | None = None
    max_new_tokens: int = 512
    cpu_seconds: int = 5  # per program, as the sandbox's python tool
    wall_seconds: float = 10.0


# eval name -> its section; the order is the order they run in (chatstack.evaluation.runners.RUNNERS)
SECTIONS: dict[str, type[EvalSection]] = {
    "world_qa": WorldQAConfig,
    "arithmetic": ArithmeticConfig,
    "conversations": ConversationsConfig,
    "tools": ToolsConfig,
    "lm_eval": LmEvalConfig,
    "humaneval": HumanEvalConfig,
}


@dataclass
class SuiteConfig:
    name: str = ""
    description: str = ""
    world: str = "tiny"
    seed: int = 0
    batch_size: int = 64  # generation batch for chatstack's evals
    evals: dict = field(default_factory=dict)  # eval name -> its section config
    local: dict = field(default_factory=dict)  # --local_data: lm-eval task -> twin, Hub id -> local spec


def load_suite(name_or_path: str, world: str | None = None) -> SuiteConfig:
    """A suite by name or path, every section checked; `world` overrides the suite's."""
    path = suite_path(name_or_path)
    data = read_yaml(path)
    check_keys(SuiteConfig, [k for k in data if k != "name"], str(path))
    evals = data.pop("evals", None) or {}
    names = ", ".join(SECTIONS)
    if not isinstance(evals, dict) or not evals:
        raise ConfigError(f"{path}: `evals` must map eval names to their settings; evals: {names}")
    sections = {}
    for key, values in evals.items():
        if key not in SECTIONS:
            raise ConfigError(f"{path}: unknown eval '{key}'; evals: {names}")
        values = values or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: evals.{key} must be a mapping of settings, got {values!r}")
        cls = SECTIONS[key]
        check_keys(cls, values, f"{path}: evals.{key}")
        sec = cls(**values)
        bad = [k for k in sec.kinds if k not in KINDS]
        if bad or not sec.kinds:
            raise ConfigError(f"{path}: evals.{key}.kinds must be a non-empty list of {list(KINDS)}, got {sec.kinds}")
        if isinstance(sec, WorldQAConfig) and (unknown := [s for s in sec.splits if s not in WORLD_SPLITS]):
            raise ConfigError(f"{path}: evals.world_qa.splits: unknown {unknown}; splits: {', '.join(WORLD_SPLITS)}")
        if isinstance(sec, WorldQAConfig) and sec.unseen_part not in ("eval", "probe", "all"):
            raise ConfigError(f"{path}: evals.world_qa.unseen_part: expected eval | probe | all, got '{sec.unseen_part}'")
        sections[key] = sec
    local = data.get("local") or {}
    if not isinstance(local, dict) or not all(isinstance(v, (str, dict)) for v in local.values()):
        raise ConfigError(f"{path}: `local` must map lm-eval task names to chatstack tasks and Hub ids to "
                          f"dataset specs, got {local!r}")
    cfg = SuiteConfig(name=path.stem, **{k: v for k, v in data.items() if k != "name"})
    cfg.evals = sections
    if world:
        cfg.world = world
    return cfg
