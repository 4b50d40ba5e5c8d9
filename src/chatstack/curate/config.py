"""`chatstack curate` config: one dataclass, read by chatstack.config.parse_config.

Top-level keys are plain values (overridable as `--input_path X`); the pipeline steps, dedup and
executor options are nested mappings (overridable as one YAML string: `--dedup '{minhash: false}'`)
whose keys are checked here against the datatrove block they configure.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

import yaml

from chatstack.errors import ConfigError


class YamlDict(dict):
    """A mapping field that also accepts a YAML/JSON string from the command line."""

    def __init__(self, value: Any = None):
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError as e:
                raise ConfigError(f"expected a YAML mapping, got {value!r}: {e}") from e
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {type(value).__name__}: {value!r}")
        super().__init__(value)


# FineWeb's order (datatrove's examples/fineweb.py): URL filter, extraction, language, Gopher
# repetition + quality, C4 (terminal punctuation off), FineWeb heuristics; PII before writing.
DEFAULT_STEPS = {
    "url_filter": {},
    "extract": {},
    "language": {"backend": "py3langid", "languages": ["en"], "language_threshold": 0.65},
    "gopher_repetition": {},
    "gopher_quality": {},
    "c4_quality": {"filter_no_terminal_punct": False},
    "fineweb_quality": {},
    "pii": {},
}
DEFAULT_DEDUP = {"exact": {}, "minhash": {"n_grams": 5, "num_buckets": 14, "hashes_per_bucket": 8}}
DEFAULT_COLUMNS = ["url", "date", "language", "language_score", "word_count", "token_count"]

INPUT_FORMATS = ("jsonl", "parquet", "warc", "html", "hf_dataset")
EXECUTORS = ("local", "slurm", "ray")


@dataclass
class CurateConfig:
    """FineWeb-style curation with datatrove: read -> filter/extract/... -> dedup -> write."""

    input_path: str | None = field(default=None, metadata={"help": (
        "Where the raw data is: a folder (local, s3://, hf://datasets/<id>/<subdir>) for jsonl/parquet/"
        "warc/html, or a Hub dataset id for hf_dataset. Relative paths are relative to the current directory.")})
    input_format: str = field(default="jsonl", metadata={"help": f"one of {', '.join(INPUT_FORMATS)}"})
    input_glob: str | None = field(default=None, metadata={"help": "only read files matching this glob"})
    text_key: str = "text"
    id_key: str = "id"
    limit: int = field(default=-1, metadata={"help": "documents per task to read (-1: all); for quick runs"})
    reader_options: YamlDict = field(default_factory=YamlDict, metadata={"help": (
        "other arguments of the datatrove reader (e.g. dataset_options/streaming for hf_dataset)")})

    steps: YamlDict = field(default_factory=lambda: YamlDict(DEFAULT_STEPS), metadata={"help": (
        "ordered mapping step_name -> options (false disables a step); names: "
        "url_filter, extract, language, gopher_repetition, gopher_quality, c4_quality, fineweb_quality, "
        "c4_paragraph, pii, or any name with `class: dotted.path.To.Block`")})
    dedup: YamlDict = field(default_factory=lambda: YamlDict(DEFAULT_DEDUP), metadata={"help": (
        "exact: {} | false, minhash: {n_grams, num_buckets, hashes_per_bucket, precision, language} | false")})

    output_dir: str = field(default="outputs/curate", metadata={"help": (
        "output/ (the shards), curate_stats.json, logs/ (datatrove logs and stats per stage), work/")})
    output_format: str = field(default="jsonl", metadata={"help": "jsonl (gzip) or parquet"})
    output_columns: list[str] = field(default_factory=lambda: list(DEFAULT_COLUMNS), metadata={"help": (
        "metadata kept as columns beside text and id (null where a document lacks it)")})
    tokenizer: str | None = field(default=None, metadata={"help": (
        "count tokens of the output with this tokenizer (a tokenizer.json path, or a Hub id when online)")})
    save_excluded: bool = field(default=False, metadata={"help": "write dropped documents to excluded/<step>/"})

    executor: str = field(default="local", metadata={"help": "local, slurm or ray (datatrove executors)"})
    tasks: int = field(default=2, metadata={"help": "datatrove tasks (shards of the input files)"})
    workers: int = field(default=2, metadata={"help": "tasks run at once by the local executor"})
    executor_options: YamlDict = field(default_factory=YamlDict, metadata={"help": (
        "arguments of SlurmPipelineExecutor / RayPipelineExecutor (partition, time, cpus_per_task, ...)")})
    resume: bool = field(default=False, metadata={"help": (
        "keep completed tasks of an earlier run (datatrove skip_completed); false starts clean")})
    strict: bool = field(default=False, metadata={"help": (
        "malformed input (bad JSON line, non-UTF-8, truncated file, empty text) stops the run naming file "
        "and line, instead of being a counted drop")})
    progress: bool = field(default=True, metadata={"help": "progress bars for files and documents"})
    summary_only: bool = field(default=False, metadata={"help": (
        "only (re)write curate_stats.json from the logs of a finished run (e.g. after Slurm jobs)")})
    seed: int = 1


# --------------------------------------------------------------------------- step registry
def _datatrove(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


# step name -> (class path, options fixed by chatstack that YAML may not set)
STEPS: dict[str, str] = {
    "url_filter": "chatstack.curate.blocks.OfflineURLFilter",
    "extract": "datatrove.pipeline.extractors.Trafilatura",
    "language": "chatstack.curate.blocks.OfflineLanguageFilter",
    "gopher_repetition": "datatrove.pipeline.filters.GopherRepetitionFilter",
    "gopher_quality": "datatrove.pipeline.filters.GopherQualityFilter",
    "c4_quality": "datatrove.pipeline.filters.C4QualityFilter",
    "c4_paragraph": "datatrove.pipeline.filters.C4ParagraphFilter",
    "fineweb_quality": "datatrove.pipeline.filters.FineWebQualityFilter",
    "pii": "chatstack.curate.blocks.PIIWithPhonesFormatter",
}
# blocks that fetch data at run time: say so instead of failing inside a worker
NEEDS_NETWORK = {
    "C4BadWordsFilter": "downloads the LDNOOBW word lists from GitHub at run time",
    "FastTextClassifierFilter": "downloads its fastText model at run time unless given a local path",
}
LANGUAGE_BACKENDS = ("py3langid", "ft176", "glotlid")
LANGUAGE_KEYS = {"backend", "languages", "language_threshold", "label_only", "keep_top_pairs_threshold",
                 "restrict_to"}
INTERNAL_ARGS = {"self", "exclusion_writer", "args", "kwargs"}


def _close(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=2)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def init_args(cls) -> set[str]:
    """Constructor arguments of a block, through its base classes when it takes **kwargs."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names - INTERNAL_ARGS


def step_class(name: str, options: dict, where: str):
    path = options.get("class") or STEPS.get(name)
    if path is None:
        raise ConfigError(f"{where}: steps: unknown step '{name}'{_close(name, STEPS)}. Valid steps: "
                          f"{', '.join(STEPS)}; or give `class: dotted.path.To.Block` for any datatrove block")
    try:
        cls = _datatrove(path)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{where}: steps.{name}: cannot import class '{path}': {e}") from e
    if cls.__name__ in NEEDS_NETWORK:
        raise ConfigError(f"{where}: steps.{name}: {cls.__name__} {NEEDS_NETWORK[cls.__name__]}, "
                          "which this offline setup cannot do")
    return cls


def check_step(name: str, options: Any, where: str) -> dict | None:
    """Validate one step's options; returns the options (None if the step is disabled)."""
    if options is False:
        return None
    if options is None or options is True:
        options = {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: steps.{name}: expected a mapping of options (or false), got {options!r}")
    cls = step_class(name, options, where)
    if name == "language" and "class" not in options:
        valid = LANGUAGE_KEYS
        backend = options.get("backend", "py3langid")
        if backend not in LANGUAGE_BACKENDS:
            raise ConfigError(f"{where}: steps.language.backend: '{backend}' is not one of "
                              f"{', '.join(LANGUAGE_BACKENDS)}")
    else:
        valid = init_args(cls) | {"class"}
    unknown = [k for k in options if k not in valid]
    if unknown:
        hints = "; ".join(f"'{k}'{_close(k, valid)}" for k in unknown)
        raise ConfigError(f"{where}: steps.{name} ({cls.__name__}): unknown key(s) {hints}. "
                          f"Valid keys: {', '.join(sorted(valid))}")
    return options


MINHASH_KEYS = {"n_grams", "num_buckets", "hashes_per_bucket", "precision", "hash_fc", "language"}
EXACT_KEYS = {"finder_workers"}


def check_config(cfg: CurateConfig, where: str) -> dict[str, dict]:
    """Validate everything parse_config cannot; returns the enabled steps in order."""
    if cfg.summary_only:
        return {}
    if not cfg.input_path:
        raise ConfigError(f"{where}: input_path is required (a folder of files, or a Hub dataset id)")
    if "://" in cfg.output_dir:
        raise ConfigError(f"{where}: output_dir must be a local or shared-filesystem path (got {cfg.output_dir}); "
                          "it holds the logs every stage reads")
    if cfg.input_format not in INPUT_FORMATS:
        raise ConfigError(f"{where}: input_format '{cfg.input_format}' is not one of {', '.join(INPUT_FORMATS)}")
    if cfg.output_format not in ("jsonl", "parquet"):
        raise ConfigError(f"{where}: output_format '{cfg.output_format}' is not one of jsonl, parquet")
    if cfg.executor not in EXECUTORS:
        raise ConfigError(f"{where}: executor '{cfg.executor}' is not one of {', '.join(EXECUTORS)}")
    if {"text", "id"} & set(cfg.output_columns):
        raise ConfigError(f"{where}: output_columns: text and id are always written; list only metadata keys")
    if cfg.tasks < 1 or cfg.workers < 1:
        raise ConfigError(f"{where}: tasks and workers must be >= 1 (got tasks={cfg.tasks}, workers={cfg.workers})")
    steps = {}
    for name, options in YamlDict(cfg.steps).items():
        checked = check_step(name, options, where)
        if checked is not None:
            steps[name] = checked
    if cfg.input_format in ("warc", "html") and "extract" not in YamlDict(cfg.steps):
        raise ConfigError(f"{where}: input_format {cfg.input_format} gives raw HTML: add `extract: {{}}` to steps "
                          "(or `extract: false` to keep the HTML, e.g. for WET files)")
    if cfg.input_format in ("jsonl", "parquet", "hf_dataset") and "extract" in steps and \
            not YamlDict(cfg.steps).get("extract"):
        # FineWeb defaults include extraction; text input does not need it
        steps.pop("extract")
    dedup = YamlDict(cfg.dedup)
    unknown = [k for k in dedup if k not in ("exact", "minhash")]
    if unknown:
        raise ConfigError(f"{where}: dedup: unknown key(s) {unknown}. Valid keys: exact, minhash")
    for kind, valid in (("exact", EXACT_KEYS), ("minhash", MINHASH_KEYS)):
        value = dedup.get(kind, False)
        if value in (None, True):
            value = {}
        if value is False:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: dedup.{kind}: expected a mapping of options or false, got {value!r}")
        bad = [k for k in value if k not in valid]
        if bad:
            raise ConfigError(f"{where}: dedup.{kind}: unknown key(s) {bad}. Valid keys: {', '.join(sorted(valid))}")
    unknown = [k for k in YamlDict(cfg.reader_options) if k in ("data_folder", "dataset", "text_key", "id_key",
                                                                 "limit", "glob_pattern")]
    if unknown:
        raise ConfigError(f"{where}: reader_options: {unknown} are top-level keys "
                          "(input_path, text_key, id_key, limit, input_glob)")
    return steps


def dedup_options(cfg: CurateConfig, kind: str) -> dict | None:
    value = YamlDict(cfg.dedup).get(kind, False)
    if value is False:
        return None
    return dict(value or {})


def as_dict(cfg: CurateConfig) -> dict:
    return {f.name: (dict(v) if isinstance(v := getattr(cfg, f.name), dict) else v)
            for f in dataclasses.fields(cfg)}


def valid_help() -> str:
    lines = ["keys (YAML or --key value):"]
    for f in dataclasses.fields(CurateConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"  {f.name} = {default!r}" + (f"\n      {f.metadata['help']}" if f.metadata.get("help") else ""))
    return "\n".join(lines)
