"""CurateConfig -> datatrove pipelines and executors, stage by stage (FineWeb's layout).

    filter        reader -> steps (URL filter, extraction, language, quality, PII) -> work/filtered
    exact_sigs    work/filtered -> ExactDedupSignature                       (if dedup.exact)
    exact_find    ExactFindDedups                                            (if dedup.exact)
    minhash_sigs  work/filtered -> ExactDedupFilter -> MinhashDedupSignature (if dedup.minhash)
    minhash_buckets, minhash_cluster                                         (if dedup.minhash)
    final         work/filtered -> ExactDedupFilter -> MinhashDedupFilter -> counts -> output/

The final stage re-applies the (deterministic) exact filter so MinHash document indices line
up without writing a second intermediate copy. Without dedup, `filter` writes output/ directly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from chatstack.curate import blocks
from chatstack.curate.config import CurateConfig, YamlDict, check_config, dedup_options, step_class
from chatstack.errors import ConfigError


@dataclass
class Stage:
    name: str
    pipeline: list
    tasks: int
    workers: int
    logging_dir: str


class Layout:
    """Paths under output_dir."""

    def __init__(self, output_dir: str):
        self.root = output_dir.rstrip("/")

    @property
    def output(self):
        return f"{self.root}/output"

    @property
    def staging(self):
        return f"{self.root}/.output.partial"

    @property
    def stats_file(self):
        return f"{self.root}/curate_stats.json"

    def work(self, name: str) -> str:
        return f"{self.root}/work/{name}"

    def logs(self, stage: str) -> str:
        return f"{self.root}/logs/{stage}"

    def excluded(self, step: str) -> str:
        return f"{self.root}/excluded/{step}"


def _is_remote(path: str) -> bool:
    return "://" in path


def make_reader(cfg: CurateConfig, where: str):
    opts = dict(YamlDict(cfg.reader_options))
    common = dict(limit=cfg.limit, text_key=cfg.text_key, id_key=cfg.id_key, **opts)
    fmt, path = cfg.input_format, cfg.input_path
    if fmt == "hf_dataset":
        return blocks.CountingHFDatasetReader(dataset=path, doc_progress=cfg.progress, adapter=blocks.web_adapter,
                                              strict=cfg.strict, **common)
    if not _is_remote(path) and not Path(path).exists():
        raise ConfigError(f"{where}: input_path: {path} does not exist")
    disk = dict(data_folder=path, glob_pattern=cfg.input_glob, file_progress=cfg.progress,
                doc_progress=cfg.progress, strict=cfg.strict, **common)
    if fmt == "jsonl":
        return blocks.TolerantJsonlReader(adapter=blocks.web_adapter, **disk)
    if fmt == "parquet":
        return blocks.CountingParquetReader(adapter=blocks.web_adapter, **disk)
    if fmt == "warc":
        return blocks.TolerantWarcReader(**disk)
    return blocks.HtmlFolderReader(**disk)


def _exclusion_writer(cfg: CurateConfig, layout: Layout, step: str):
    if not cfg.save_excluded:
        return None
    from datatrove.pipeline.writers import JsonlWriter

    return JsonlWriter(layout.excluded(step))


def make_step(name: str, options: dict, cfg: CurateConfig, layout: Layout, where: str):
    cls = step_class(name, options, where)
    options = {k: v for k, v in options.items() if k != "class"}
    extra = {}
    if "exclusion_writer" in _all_init_params(cls):
        extra["exclusion_writer"] = _exclusion_writer(cfg, layout, name)
    if name == "language" and cls is blocks.OfflineLanguageFilter:
        return _language_filter(options, extra, where)
    try:
        return cls(**options, **extra)
    except (TypeError, ValueError, FileNotFoundError, ImportError) as e:
        raise ConfigError(f"{where}: steps.{name} ({cls.__name__}): {e}") from e


def _all_init_params(cls) -> set[str]:
    import inspect

    names = set()
    for klass in cls.__mro__:
        if "__init__" in klass.__dict__:
            names |= set(inspect.signature(klass.__dict__["__init__"]).parameters)
    return names


def _language_filter(options: dict, extra: dict, where: str):
    options = dict(options)
    backend = options.pop("backend", "py3langid")
    restrict_to = options.pop("restrict_to", None)
    languages = options.get("languages")
    if backend == "py3langid":
        lid = blocks.Py3LangidLID(languages=[languages] if isinstance(languages, str) else languages,
                                  restrict_to=restrict_to)
        try:
            labels = set(lid.model.labels)
        except Exception as e:  # noqa: BLE001 - a broken install
            raise ConfigError(f"{where}: steps.language: py3langid cannot load its bundled model: {e}") from e
        bad = [lang for lang in (lid.languages or []) if lang not in labels]
        if bad:
            raise ConfigError(f"{where}: steps.language.languages: {bad} unknown to py3langid "
                              "(ISO 639-1 codes such as en, fr, de)")
        return blocks.OfflineLanguageFilter(lid, **options, **extra)
    # datatrove's own fastText filter: needs the fasttext package and downloads its model
    if restrict_to:
        raise ConfigError(f"{where}: steps.language.restrict_to only applies to backend py3langid")
    try:
        from datatrove.pipeline.filters import LanguageFilter

        flt = LanguageFilter(backend=backend, **options, **extra)
    except ImportError as e:
        raise ConfigError(f"{where}: steps.language.backend {backend}: {e} It also downloads its fastText "
                          "model at run time; offline, use backend: py3langid") from e
    try:
        flt.model.model  # noqa: B018 - fetch the model here, not inside every worker
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"{where}: steps.language.backend {backend}: could not get the fastText model "
                          f"({type(e).__name__}: {e}). Offline, use backend: py3langid") from e
    return flt


def _writer(cfg: CurateConfig, folder: str, flat: bool):
    from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

    adapter = blocks.flat_output_adapter(cfg.output_columns) if flat else None
    if flat and cfg.output_format == "parquet":
        return ParquetWriter(folder, adapter=adapter, schema=blocks.output_schema(cfg.output_columns))
    return JsonlWriter(folder, adapter=adapter)


def _counters(cfg: CurateConfig, where: str) -> list:
    steps = [blocks.WordCounter()]
    if cfg.tokenizer:
        from datatrove.pipeline.tokens import TokensCounter

        check_tokenizer(cfg.tokenizer, where)
        steps.append(TokensCounter(tokenizer_name_or_path=cfg.tokenizer))
    return steps


def check_tokenizer(name: str, where: str) -> None:
    from datatrove.utils.tokenization import load_tokenizer

    try:
        load_tokenizer(name)
    except Exception as e:  # noqa: BLE001 - tokenizers raises plain Exceptions offline
        raise ConfigError(f"{where}: tokenizer: cannot load '{name}' ({type(e).__name__}: {e}). Give a local "
                          "tokenizer.json path (offline), or leave it empty to count words only") from e


def build_stages(cfg: CurateConfig, where: str) -> tuple[list[Stage], Layout]:
    from datatrove.pipeline.dedup import (
        ExactDedupConfig,
        ExactDedupFilter,
        ExactDedupSignature,
        ExactFindDedups,
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.utils.hashing import HashConfig

    steps = check_config(cfg, where)
    layout = Layout(cfg.output_dir)
    exact, minhash = dedup_options(cfg, "exact"), dedup_options(cfg, "minhash")
    dedup = exact is not None or minhash is not None
    workers = min(cfg.workers, cfg.tasks)
    local = cfg.executor == "local"
    out_folder = layout.staging if local else layout.output

    reader = make_reader(cfg, where)
    filters = [make_step(name, options, cfg, layout, where) for name, options in steps.items()]
    stages = []
    if not dedup:
        stages.append(Stage("filter", [reader, *filters, *_counters(cfg, where), _writer(cfg, out_folder, True)],
                            cfg.tasks, workers, layout.logs("filter")))
        return stages, layout
    filtered = layout.work("filtered")
    stages.append(Stage("filter", [reader, *filters, _writer(cfg, filtered, False)], cfg.tasks, workers,
                        layout.logs("filter")))

    def reread():
        return JsonlReader(filtered, file_progress=False, doc_progress=False)

    exact_cfg = ExactDedupConfig(content_getter=blocks.doc_text) if exact is not None else None

    def pre() -> list:  # a fresh exact-dedup filter for each stage that re-reads work/filtered
        if exact is None:
            return []
        return [ExactDedupFilter(layout.work("exact_dups"), exact_cfg,
                                 exclusion_writer=_exclusion_writer(cfg, layout, "exact_dedup"))]

    if exact is not None:
        finders = int(exact.get("finder_workers", 1))
        stages.append(Stage("exact_sigs", [reread(), ExactDedupSignature(layout.work("exact_sigs"), exact_cfg,
                                                                          finder_workers=finders)],
                            cfg.tasks, workers, layout.logs("exact_sigs")))
        stages.append(Stage("exact_find", [ExactFindDedups(layout.work("exact_sigs"), layout.work("exact_dups"),
                                                           exact_cfg)],
                            finders, min(workers, finders), layout.logs("exact_find")))

    post = []
    if minhash is not None:
        language = minhash.pop("language", "eng")
        hash_config = HashConfig(precision=int(minhash.pop("precision", 64)), hash_fc=minhash.pop("hash_fc", "xxhash"))
        mh_cfg = MinhashConfig(hash_config=hash_config, seed=cfg.seed, **minhash)
        stages.append(Stage("minhash_sigs", [reread(), *pre(), MinhashDedupSignature(
            layout.work("minhash_sigs"), config=mh_cfg, language=language)],
            cfg.tasks, workers, layout.logs("minhash_sigs")))
        stages.append(Stage("minhash_buckets", [MinhashDedupBuckets(
            layout.work("minhash_sigs"), layout.work("minhash_buckets"), config=mh_cfg)],
            mh_cfg.num_buckets, min(workers, mh_cfg.num_buckets), layout.logs("minhash_buckets")))
        stages.append(Stage("minhash_cluster", [MinhashDedupCluster(
            layout.work("minhash_buckets"), layout.work("minhash_clusters"), config=mh_cfg)],
            1, 1, layout.logs("minhash_cluster")))
        post = [MinhashDedupFilter(layout.work("minhash_clusters"),
                                   exclusion_writer=_exclusion_writer(cfg, layout, "minhash_dedup"))]
    stages.append(Stage("final", [reread(), *pre(), *post, *_counters(cfg, where),
                                  _writer(cfg, out_folder, True)], cfg.tasks, workers, layout.logs("final")))
    return stages, layout


def make_executors(cfg: CurateConfig, stages: list[Stage], where: str) -> list:
    """One datatrove executor per stage; Slurm/Ray ones depend on the previous stage."""
    opts = dict(YamlDict(cfg.executor_options))
    skip = cfg.resume
    executors = []
    if cfg.executor == "local":
        from datatrove.executor import LocalPipelineExecutor

        allowed = {"start_method", "randomize_start_duration", "local_tasks", "local_rank_offset"}
        bad = [k for k in opts if k not in allowed]
        if bad:
            raise ConfigError(f"{where}: executor_options: {bad} not for the local executor "
                              f"(valid: {', '.join(sorted(allowed))})")
        opts.setdefault("start_method", "fork" if os.name == "posix" else "spawn")
        for st in stages:
            executors.append(LocalPipelineExecutor(pipeline=st.pipeline, tasks=st.tasks, workers=st.workers,
                                                   logging_dir=st.logging_dir, skip_completed=skip, **opts))
        return executors
    if cfg.executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor as Executor
    else:
        try:
            from datatrove.executor import RayPipelineExecutor as Executor
        except ImportError as e:
            raise ConfigError(f"{where}: executor ray: {e} (pip install 'datatrove[ray]')") from e
    from chatstack.curate.config import init_args

    valid = init_args(Executor) - {"pipeline", "tasks", "workers", "logging_dir", "depends", "skip_completed"}
    bad = [k for k in opts if k not in valid]
    if bad:
        raise ConfigError(f"{where}: executor_options: unknown key(s) {bad} for {Executor.__name__}. "
                          f"Valid keys: {', '.join(sorted(valid))}")
    previous = None
    for st in stages:
        kwargs = dict(opts)
        if cfg.executor == "slurm":
            kwargs.setdefault("job_name", f"curate_{st.name}")
        try:
            ex = Executor(pipeline=st.pipeline, tasks=st.tasks, workers=st.workers if cfg.executor == "ray" else -1,
                          logging_dir=st.logging_dir, depends=previous, skip_completed=skip, **kwargs)
        except TypeError as e:
            raise ConfigError(f"{where}: executor_options for {Executor.__name__}: {e}") from e
        executors.append(ex)
        previous = ex
    return executors
