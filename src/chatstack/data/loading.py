"""Named dataset configs (datasets_cfg/*.yaml) -> `datasets.Dataset`.

A spec is a mapping of one of four kinds, all loaded by `datasets` itself:

    hub:     {hub: HuggingFaceFW/fineweb, config: sample-10BT, split: train, streaming: true}
    files:   {files: [a.jsonl, shards/*.parquet], format: json|parquet|text, split: train}
    builder: {builder: world_conversations, args: {world: tiny}}     # chatstack.builders
    mixture: {mixture: [{spec..., weight: 0.5}, ...], seed: 0}        # alignment-handbook style

Any spec may add `columns: [..]` (keep), `rename: {old: new}`, `max_rows: N`,
`test_size: 0.05` (a held-out split made with `train_test_split`) and, for chats,
`system_prompt: {content: "...", share: 0.5}` (that share of the rows, chosen by the seed, gain
the system message where they have none: a model that sees a system prompt only on some kinds
of conversation learns the prompt as a cue for those kinds). A string names a YAML
file in datasets_cfg/ (or is a path to one).
"""
from __future__ import annotations

import glob
import gzip
import json
import math
import random
from pathlib import Path

import datasets

from chatstack.data.registry import get_builder
from chatstack.errors import DataError
from chatstack.paths import find_resource
from chatstack.yamlfile import read_yaml

KINDS = ("hub", "files", "builder", "mixture")
COMMON = {"columns", "rename", "max_rows", "test_size", "weight", "seed", "name", "description", "system_prompt"}
ALLOWED = {
    "hub": {"hub", "config", "split", "streaming", "revision", "data_files", "data_dir"},
    "files": {"files", "format", "split"},
    "builder": {"builder", "args"},
    "mixture": {"mixture"},
}


def resolve_spec(spec: str | dict, where: str = "dataset") -> dict:
    """A datasets_cfg name or path -> its spec mapping (validated)."""
    if isinstance(spec, str):
        path = find_resource(spec if spec.endswith((".yaml", ".yml")) else f"datasets_cfg/{spec}.yaml")
        if path is None:
            raise DataError(f"{where}: no dataset config named '{spec}' (looked for datasets_cfg/{spec}.yaml)")
        where, spec = str(path), read_yaml(path)
    if not isinstance(spec, dict):
        raise DataError(f"{where}: a dataset spec must be a mapping, got {type(spec).__name__}")
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise DataError(f"{where}: a dataset spec needs exactly one of {', '.join(KINDS)}; got keys {sorted(spec)}")
    unknown = set(spec) - ALLOWED[kinds[0]] - COMMON
    if unknown:
        raise DataError(f"{where}: unknown key(s) {sorted(unknown)} for a '{kinds[0]}' spec; "
                        f"valid: {sorted(ALLOWED[kinds[0]] | COMMON)}")
    return {**spec, "_where": where, "_kind": kinds[0]}


def check_spec(spec: str | dict, where: str = "dataset") -> None:
    """Everything about a spec that can be known without loading it, checked when a config is
    parsed: its keys, the files it names (globs match), a mixture's parts and weights, a
    builder's name and args (nearest valid arg suggested). Hub specs are left to `datasets`."""
    spec = resolve_spec(spec, where)
    where, kind = spec["_where"], spec["_kind"]
    weight = spec.get("weight", 1.0)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
        raise DataError(f"{where}: weight must be a number > 0, got {weight!r}")
    _system_prompt(spec)
    test_size = spec.get("test_size")
    if test_size is not None and not (isinstance(test_size, (int, float)) and 0 < test_size):
        raise DataError(f"{where}: test_size must be a fraction in (0, 1) or a row count >= 1, got {test_size!r}")
    if kind == "files":
        _file_paths(spec, where)
        if spec.get("format") not in (None, *FORMATS):
            raise DataError(f"{where}: format '{spec['format']}'; expected one of {', '.join(FORMATS)}")
    elif kind == "builder":
        check_builder_args(spec["builder"], spec.get("args") or {}, where)
    elif kind == "mixture":
        if not isinstance(spec["mixture"], list) or not spec["mixture"]:
            raise DataError(f"{where}: 'mixture' must be a non-empty list of dataset specs, got {spec['mixture']!r}")
        for i, sub in enumerate(spec["mixture"]):
            check_spec(sub, f"{where}: mixture[{i}]")


def check_builder_args(name: str, args, where: str) -> None:
    """A builder's args against its signature, before it runs (a typo would be a TypeError inside it)."""
    import difflib
    import inspect

    if not isinstance(args, dict):
        raise DataError(f"{where}: args of builder '{name}' must be a mapping, got {args!r}")
    params = inspect.signature(get_builder(name, where)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # the builder checks its own options (e.g. refusals against RefusalConfig)
    for key in args:
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=2)
            raise DataError(f"{where}: builder '{name}' has no arg '{key}'"
                            + (f" (did you mean {', '.join(close)}?)" if close else "") + f"; args: {', '.join(params)}")


def load_data(spec: str | dict, split: str | None = None, seed: int = 0) -> datasets.Dataset | datasets.DatasetDict:
    """Load a spec. With `test_size`, or from a builder that holds out its own split, returns a
    DatasetDict (train/test) unless `split` picks one; else the one dataset (whatever `split`
    says). Training stages use `load_splits`."""
    spec = resolve_spec(spec)
    ds = _load_kind(spec, seed)
    ds = _postprocess(ds, spec)
    if isinstance(ds, datasets.DatasetDict):
        if spec.get("test_size"):
            raise DataError(f"{spec['_where']}: test_size: the builder holds out its own test split; drop test_size")
        return ds[split] if split else ds
    if spec.get("test_size"):
        if isinstance(ds, datasets.IterableDataset):
            raise DataError(f"{spec['_where']}: test_size needs a map-style dataset (streaming: false)")
        ds = ds.train_test_split(test_size=spec["test_size"], seed=spec.get("seed", seed))
        return ds[split] if split else ds
    return ds


def load_splits(spec: str | dict, seed: int = 0, test_size: float | None = None) -> tuple:
    """(train, test) the same way for every training stage: the spec's own `test_size` split
    when it has one; else, given `test_size`, that fraction held out here (train_test_split,
    `seed`); else test is None (and always for a stream, which has no split to draw: the
    stage holds out what it needs, e.g. the head of the stream)."""
    data = load_data(spec, seed=seed)
    if isinstance(data, datasets.DatasetDict):
        return data["train"], data["test"]
    if test_size and not isinstance(data, datasets.IterableDataset):
        split = data.train_test_split(test_size=test_size, seed=seed)
        return split["train"], split["test"]
    return data, None


def load_eval_split(spec: str | dict, seed: int = 0):
    """A dataset named for evaluation only: its held-out split when the spec makes one, else all of it."""
    train, test = load_splits(spec, seed=seed)
    return train if test is None else test


def _load_kind(spec: dict, seed: int):
    kind, where = spec["_kind"], spec["_where"]
    if kind == "hub":
        return datasets.load_dataset(spec["hub"], spec.get("config"), split=spec.get("split", "train"),
                                     streaming=spec.get("streaming", False), revision=spec.get("revision"),
                                     data_files=spec.get("data_files"), data_dir=spec.get("data_dir"))
    if kind == "files":
        return _load_files(spec, where)
    if kind == "builder":
        builder = get_builder(spec["builder"], where)
        args = dict(spec.get("args") or {})
        args.setdefault("seed", seed)
        try:
            ds = builder(**args)
        except TypeError as e:
            raise DataError(f"{where}: bad args for builder '{spec['builder']}': {e}") from e
        if len(ds) == 0:
            raise DataError(f"{where}: builder '{spec['builder']}' produced an empty dataset")
        return ds
    return _load_mixture(spec, seed)


FORMATS = ("json", "parquet", "text", "csv")


def _file_paths(spec: dict, where: str) -> list[str]:
    """The files a `files` spec names (relative to its YAML), every glob matched and every file there."""
    files = spec["files"] if isinstance(spec["files"], list) else [spec["files"]]
    base = Path(where).parent if where.endswith((".yaml", ".yml")) else Path(".")
    paths = []
    for f in files:
        p = Path(str(f)).expanduser()
        p = p if p.is_absolute() or p.exists() else base / p
        if glob.has_magic(str(p)):
            matches = sorted(glob.glob(str(p), recursive=True))
            if not matches:
                raise DataError(f"{where}: no data file matches {f}")
            paths.extend(matches)
            continue
        if not p.is_file():
            raise DataError(f"{where}: data file not found: {f}" + (" (a folder)" if p.is_dir() else ""))
        paths.append(str(p))
    return paths


def _load_files(spec: dict, where: str):
    paths = _file_paths(spec, where)
    fmt = spec.get("format") or _guess_format(paths[0])
    if fmt == "json":
        for p in paths:
            if not _check_jsonl(p):
                raise DataError(f"{where}: {p} holds no rows")
    if fmt == "parquet":
        for p in paths:
            _check_parquet(p)
    try:
        ds = datasets.load_dataset(fmt, data_files=paths, split=spec.get("split", "train"))
    except (datasets.exceptions.DatasetGenerationError, ValueError, OSError) as e:
        cause = e.__cause__ or e  # DatasetGenerationError wraps pyarrow's message
        why = " ".join(str(cause).split())[:300]
        raise DataError(f"{where}: {fmt} files {', '.join(paths)} could not be read: {why}") from e
    if len(ds) == 0:
        raise DataError(f"{where}: {', '.join(paths)} hold no rows")
    return ds


def _guess_format(path: str) -> str:
    name = path.removesuffix(".gz")
    for ext, fmt in ((".jsonl", "json"), (".json", "json"), (".parquet", "parquet"), (".txt", "text"), (".csv", "csv")):
        if name.endswith(ext):
            return fmt
    raise DataError(f"cannot tell the format of {path}; set format: json|parquet|text|csv")


def _open_text(path: str):
    """Text of a plain or gzip file, told apart by its magic bytes rather than its name; a
    byte-order mark is dropped (utf-8-sig), as `datasets` reads it."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return (gzip.open if gz else open)(path, "rt", encoding="utf-8-sig", errors="strict")


def _check_jsonl(path: str) -> int:
    """Find a malformed line before pyarrow does, so the error names the file and line. CRLF
    line ends, blank lines and a last line without a newline are fine. Returns the number of
    rows (a .json file counts as one)."""
    if path.removesuffix(".gz").endswith(".json"):
        return 1
    rows, lineno = 0, 0
    try:
        with _open_text(path) as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{lineno}: malformed JSON line ({e.msg}): {line[:80]!r}") from None
                    if not isinstance(row, dict):
                        raise DataError(f"{path}:{lineno}: expected a JSON object per line, got {type(row).__name__}")
                    rows += 1
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 near line {lineno + 1}: {e}") from None
    except (EOFError, gzip.BadGzipFile, OSError) as e:  # a truncated or corrupt gzip stream
        raise DataError(f"{path}: truncated or corrupt gzip file near line {lineno + 1} ({e})") from None
    return rows


def _check_parquet(path: str) -> None:
    """Read a parquet footer: a truncated or foreign file is named here, not logged by pyarrow inside datasets."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable parquet file ({' '.join(str(e).split())})") from None


def _load_mixture(spec: dict, seed: int):
    if not isinstance(spec["mixture"], list) or not spec["mixture"]:  # also in check_spec; load_data may come first
        raise DataError(f"{spec['_where']}: 'mixture' must be a non-empty list of dataset specs, "
                        f"got {spec['mixture']!r}")
    parts = []
    for i, sub in enumerate(spec["mixture"]):
        sub = resolve_spec(sub, f"{spec['_where']}: mixture[{i}]")
        ds = _postprocess(_load_kind(sub, seed), sub)
        if isinstance(ds, datasets.IterableDataset):
            raise DataError(f"{sub['_where']}: mixtures of streaming datasets: "
                            "use datasets.interleave_datasets via a hub spec")
        weight = float(sub.get("weight", 1.0))
        if weight <= 0:
            raise DataError(f"{sub['_where']}: weight must be > 0, got {weight}")
        # weight = fraction of the source's rows (>1 repeats it), as in alignment-handbook mixtures
        n = math.floor(weight * len(ds))
        idx = [j % len(ds) for j in range(n)] if weight > 1 else range(n)
        parts.append(ds.shuffle(seed=seed).select(idx) if weight < 1 else ds.select(idx))
    return datasets.concatenate_datasets(_align(parts, spec["_where"])).shuffle(seed=spec.get("seed", seed))


OPTIONAL = {"tools"}  # kept when only some sources have it: the others get "no tools"


def _align(parts: list, where: str) -> list:
    """Shared columns, plus an optional `tools` column filled in where a source lacks it; a
    column whose features differ (chats with and without tool calls) is cast to the widest."""
    cols = set.intersection(*(set(p.column_names) for p in parts))
    if not cols:
        raise DataError(f"{where}: the mixture's sources share no column; use columns/rename to align them")
    for col in OPTIONAL & set.union(*(set(p.column_names) for p in parts)) - cols:
        feature = next(p.features[col] for p in parts if col in p.column_names)
        fill = "null" if feature == datasets.Value("string") else None  # TRL json-decodes a string `tools`
        parts = [p if col in p.column_names else p.add_column(col, [fill] * len(p), feature=feature) for p in parts]
        cols.add(col)
    parts = [p.select_columns(sorted(cols)) for p in parts]
    for col in sorted(cols):
        features = [p.features[col] for p in parts]
        if all(f == features[0] for f in features):
            continue
        widest = max(features, key=lambda f: len(str(f)))
        try:
            parts = [p if p.features[col] == widest else p.cast_column(col, widest) for p in parts]
        except (ValueError, TypeError) as e:
            raise DataError(f"{where}: column '{col}' has different types across the mixture's sources "
                            f"({'; '.join(sorted({str(f) for f in features}))}): {e}") from None
    return parts


def _postprocess(ds, spec: dict):
    where = spec["_where"]
    for old, new in (spec.get("rename") or {}).items():
        if old not in ds.column_names:
            raise DataError(f"{where}: rename: column '{old}' not in {ds.column_names}")
        ds = ds.rename_column(old, new)
    if spec.get("columns"):
        missing = [c for c in spec["columns"] if c not in (ds.column_names or [])]
        if missing:
            raise DataError(f"{where}: missing column(s) {missing}; the data has {ds.column_names}")
        ds = ds.select_columns(spec["columns"])
    if spec.get("max_rows"):
        n = spec["max_rows"]
        ds = ds.take(n) if isinstance(ds, datasets.IterableDataset) else ds.select(range(min(len(ds), n)))
    if spec.get("system_prompt"):
        ds = _add_system_prompt(ds, *_system_prompt(spec), seed=spec.get("seed", 0), where=where)
    return ds


def _system_prompt(spec: dict) -> tuple[str, float] | None:
    """`system_prompt: {content, share}` -> (content, share), or a DataError naming the key."""
    value = spec.get("system_prompt")
    if value is None:
        return None
    if not (isinstance(value, dict) and set(value) <= {"content", "share"} and isinstance(value.get("content"), str)
            and value["content"].strip() and isinstance(value.get("share", 1.0), (int, float))
            and 0 < value.get("share", 1.0) <= 1):
        raise DataError(f"{spec['_where']}: system_prompt must be {{content: <non-empty text>, share: <(0, 1]>}}, "
                        f"got {value!r}")
    return value["content"], float(value.get("share", 1.0))


def _add_system_prompt(ds, content: str, share: float, seed: int, where: str):
    if "messages" not in (ds.column_names or []):
        raise DataError(f"{where}: system_prompt needs a `messages` column; the data has {ds.column_names}")
    rng = random.Random(f"{seed}-system-prompt")
    chosen = {i for i in range(len(ds)) if rng.random() < share}

    def add(row, i):
        messages = row["messages"]
        if i in chosen and (not messages or messages[0]["role"] != "system"):
            messages = [{**{k: None for k in messages[0]}, "role": "system", "content": content}, *messages]
        return {"messages": messages}

    return ds.map(add, with_indices=True)


def require_columns(ds, columns: list[str], where: str) -> None:
    missing = [c for c in columns if c not in (ds.column_names or [])]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; the data has {ds.column_names}")


