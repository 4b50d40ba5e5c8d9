"""Named dataset configs (datasets_cfg/*.yaml) -> `datasets.Dataset`.

A spec is a mapping of one of four kinds, all loaded by `datasets` itself:

    hub:     {hub: HuggingFaceFW/fineweb, config: sample-10BT, split: train, streaming: true}
    files:   {files: [a.jsonl, shards/*.parquet], format: json|parquet|text, split: train}
    builder: {builder: world_conversations, args: {world: tiny}}     # chatstack.builders
    mixture: {mixture: [{spec..., weight: 0.5}, ...], seed: 0}        # alignment-handbook style

Any spec may add `columns: [..]` (keep), `rename: {old: new}`, `max_rows: N` and
`test_size: 0.05` (a held-out split made with `train_test_split`). A string names a YAML
file in datasets_cfg/ (or is a path to one).
"""
from __future__ import annotations

import glob
import gzip
import json
import math
from pathlib import Path

import datasets

from chatstack.config import read_yaml
from chatstack.data.registry import get_builder
from chatstack.errors import DataError
from chatstack.paths import find_resource

KINDS = ("hub", "files", "builder", "mixture")
COMMON = {"columns", "rename", "max_rows", "test_size", "weight", "seed", "name", "description"}
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


def load_data(spec: str | dict, split: str | None = None, seed: int = 0) -> datasets.Dataset | datasets.DatasetDict:
    """Load a spec. With `test_size`, returns a DatasetDict (train/test) unless `split` picks one;
    without, the one dataset (whatever `split` says). Training stages use `load_splits`."""
    spec = resolve_spec(spec)
    ds = _load_kind(spec, seed)
    ds = _postprocess(ds, spec)
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


def _load_files(spec: dict, where: str):
    files = spec["files"] if isinstance(spec["files"], list) else [spec["files"]]
    base = Path(where).parent if where.endswith((".yaml", ".yml")) else Path(".")
    paths = []
    for f in files:
        p = Path(f).expanduser()
        p = p if p.is_absolute() or p.exists() else base / p
        if glob.has_magic(str(p)):
            matches = sorted(glob.glob(str(p), recursive=True))
            if not matches:
                raise DataError(f"{where}: no data file matches {f}")
            paths.extend(matches)
            continue
        if not p.exists():
            raise DataError(f"{where}: data file not found: {f}")
        paths.append(str(p))
    fmt = spec.get("format") or _guess_format(paths[0])
    if fmt == "json":
        for p in paths:
            if not _check_jsonl(p):
                raise DataError(f"{where}: {p} holds no rows")
    ds = datasets.load_dataset(fmt, data_files=paths, split=spec.get("split", "train"))
    if len(ds) == 0:
        raise DataError(f"{where}: {', '.join(paths)} hold no rows")
    return ds


def _guess_format(path: str) -> str:
    name = path.removesuffix(".gz")
    for ext, fmt in ((".jsonl", "json"), (".json", "json"), (".parquet", "parquet"), (".txt", "text"), (".csv", "csv")):
        if name.endswith(ext):
            return fmt
    raise DataError(f"cannot tell the format of {path}; set format: json|parquet|text|csv")


def _check_jsonl(path: str) -> int:
    """Find a malformed line before pyarrow does, so the error names the file and line.
    Returns the number of rows (a .json file counts as one)."""
    if path.removesuffix(".gz").endswith(".json"):
        return 1
    rows = 0
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="strict") as f:  # a byte-order mark is fine, as for datasets
        try:
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
            raise DataError(f"{path}: not valid UTF-8 near line {rows + 1}: {e}") from None
    return rows


def _load_mixture(spec: dict, seed: int):
    if not isinstance(spec["mixture"], list) or not spec["mixture"]:
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
    return ds


def require_columns(ds, columns: list[str], where: str) -> None:
    missing = [c for c in columns if c not in (ds.column_names or [])]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; the data has {ds.column_names}")


