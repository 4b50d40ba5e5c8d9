"""`chatstack build NAME --config X.yaml [--key value ...]`: run a data builder once and write
its output to output_dir (train.jsonl, plus metrics.json last, which marks the step complete
for the speedrun). NAME may also be given in the YAML as `builder: NAME`, so a speedrun entry
`{stage: build, name: probe_refusals}` needs no arguments.

    refusals        probe a model on facts with known answers and write SFT conversations:
                    the answer where it knows, a refusal where it does not (train.jsonl,
                    probes.jsonl with every probe kept for audit)
    refusals_eval   before/after evaluation of refusal training on facts the builder never saw
    assistant_eval  the tools a model records, measured as chat and serve use them
    comparisons     sample a policy k times per prompt, rank the samples by the world's truth,
                    write preference pairs for the reward model (InstructGPT's comparisons)
    <any builder>   a builder of chatstack.data.registry.BUILDERS with `args:` -> train.jsonl
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chatstack.config import parse_config, read_yaml, split_cli
from chatstack.errors import ConfigError


@dataclass
class BuildConfig:
    """Any registered builder: its keyword args, written to output_dir/train.jsonl."""

    builder: str = ""
    output_dir: str = "outputs/build"
    args: dict | str | None = field(default=None, metadata={"help": "keyword args of the builder (YAML mapping or JSON)"})
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.args, str):
            self.args = json.loads(self.args)


def write_built(output_dir: str, start: float, metrics: dict, **files) -> dict:
    """Write a build's files (`name=` a Dataset or a list of rows: name.jsonl), then metrics.json
    last, with the seconds since `start`: metrics.json is what marks the build complete."""
    from chatstack.stage import write_metrics

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        if hasattr(rows, "to_json"):  # a datasets.Dataset
            rows.to_json(str(out / f"{name}.jsonl"))
            continue
        with open(out / f"{name}.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    metrics = {**metrics, "seconds": round(time.time() - start, 1)}
    write_metrics(str(out), metrics)
    return metrics


def build_refusals(argv_config: str | None, rest: list[str]) -> dict:
    from chatstack.builders.refusals import RefusalConfig, probe_and_build

    cfg = parse_config(RefusalConfig, argv_config, rest)
    start = time.time()
    train, rows, stats = probe_and_build(cfg)
    examples = {}
    for r in rows:
        if r["label"] not in examples:
            examples[r["label"]] = {k: r[k] for k in ("question", "answers", "samples", "judgements", "label", "action")}
    metrics = {**stats, "examples": examples, "model": cfg.model_name_or_path, "config": asdict(cfg)}
    return write_built(cfg.output_dir, start, metrics, train=train, probes=rows)


def build_eval(argv_config: str | None, rest: list[str]) -> dict:
    from chatstack.evaluation.refusal import RefusalEvalConfig, evaluate
    return evaluate(parse_config(RefusalEvalConfig, argv_config, rest))


def build_assistant_eval(argv_config: str | None, rest: list[str]) -> dict:
    from chatstack.evaluation.assistant import AssistantEvalConfig, evaluate
    return evaluate(parse_config(AssistantEvalConfig, argv_config, rest))


def build_generic(name: str, argv_config: str | None, rest: list[str]) -> dict:
    from chatstack.data.registry import get_builder
    from chatstack.errors import DataError

    cfg = parse_config(BuildConfig, argv_config, rest)
    start = time.time()
    fn = get_builder(name)
    try:
        ds = fn(**{"seed": cfg.seed, **(cfg.args or {})})
    except TypeError as e:
        raise DataError(f"builder '{name}': bad args {sorted(cfg.args or {})}: {e}") from e
    if len(ds) == 0:
        raise DataError(f"builder '{name}' produced an empty dataset")
    return write_built(cfg.output_dir, start, {"builder": name, "n_rows": len(ds), "columns": ds.column_names},
                       train=ds)


def build_comparisons(argv_config: str | None, rest: list[str]) -> dict:
    from chatstack.builders.comparisons import ComparisonConfig, sample_and_rank

    cfg = parse_config(ComparisonConfig, argv_config, rest)
    start = time.time()
    rows, stats = sample_and_rank(cfg)
    metrics = {**stats, "examples": rows[:3], "model": cfg.model_name_or_path, "config": asdict(cfg)}
    return write_built(cfg.output_dir, start, metrics, train=rows)


COMMANDS = {"refusals": build_refusals, "refusals_eval": build_eval, "assistant_eval": build_assistant_eval,
            "comparisons": build_comparisons}


def main(argv: list[str]) -> int:
    argv = list(argv)
    name = argv.pop(0) if argv and not argv[0].startswith("-") else None
    config, rest = split_cli(argv)
    in_yaml = read_yaml(config).get("builder") if config else None
    if name and in_yaml and name != in_yaml:
        raise ConfigError(f"{config}: builder: {in_yaml}, but the command line asks for '{name}'")
    name = name or in_yaml
    if not name:
        from chatstack.data.registry import BUILDERS
        raise ConfigError("chatstack build: name a builder (chatstack build NAME --config X.yaml, or `builder: NAME` in "
                          f"the YAML); known: {', '.join(sorted({*COMMANDS, *BUILDERS}))}")
    if name in COMMANDS:
        metrics = COMMANDS[name](config, rest)
    else:
        rest = [*rest, "--builder", name]
        metrics = build_generic(name, config, rest)
    shown = {k: v for k, v in metrics.items() if k not in ("samples", "examples", "config")}
    print(json.dumps(shown, indent=2, default=str))
    return 0
