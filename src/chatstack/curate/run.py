"""`chatstack curate --config recipes/<recipe>/curate.yaml [--key value ...]`."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import yaml

from chatstack.config import parse_config, split_cli
from chatstack.curate.config import CurateConfig, as_dict
from chatstack.errors import ConfigError, DataError

# what a fresh (resume: false) run removes under output_dir, and nothing else
OWNED = ("logs", "work", "output", ".output.partial", "excluded", "curate_stats.json", "curate_config.yaml")


def _clean(output_dir: Path) -> None:
    for name in OWNED:
        p = output_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _documents_read(stage_logs: Path) -> tuple[int, dict]:
    from chatstack.curate.stats import _merge_stage, _step_record

    merged = _merge_stage(stage_logs) or []
    for step in merged:
        rec = _step_record("filter", step)
        if "READER" in rec["step"]:
            return rec["out"], rec.get("reasons", {})
    return 0, {}


def _preimport() -> None:
    import importlib

    for name in ("spacy", "spacy.lang.en", "trafilatura", "py3langid.langid"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def curate(cfg: CurateConfig, where: str) -> dict | None:
    from chatstack.curate.pipeline import build_stages, make_executors
    from chatstack.curate.stats import summarize, write_summary

    root = Path(cfg.output_dir)
    if cfg.summary_only:
        summary = summarize(cfg.output_dir)
        write_summary(summary, str(root / "curate_stats.json"))
        return summary

    stages, layout = build_stages(cfg, where)        # every config error surfaces here, before any work
    executors = make_executors(cfg, stages, where)
    if cfg.executor == "slurm" and not shutil.which("sbatch"):
        raise ConfigError(f"{where}: executor slurm: no `sbatch` on this machine; run from a Slurm login node")
    if cfg.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError(f"{where}: executor ray: the `ray` package is not installed "
                          "(pip install 'datatrove[ray]'), and a cluster must be reachable (ray.init)")
    if not cfg.resume:
        _clean(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "curate_config.yaml").write_text(yaml.safe_dump(as_dict(cfg), sort_keys=False))

    if cfg.executor != "local":
        executors[-1].run()  # submits (Slurm) / runs (Ray) the chain of dependent stages
        print(f"chatstack curate: {len(stages)} {cfg.executor} stages launched; output -> {layout.output}\n"
              f"after they finish: chatstack curate --config {where} --summary_only true", file=sys.stderr)
        if cfg.executor == "slurm":
            return None
        summary = summarize(cfg.output_dir)
        write_summary(summary, layout.stats_file)
        return summary

    if any(st.workers > 1 for st in stages):
        _preimport()  # forked workers inherit the modules instead of importing them once per stage
    start = time.time()
    for i, (stage, executor) in enumerate(zip(stages, executors), 1):
        t0 = time.time()
        print(f"chatstack curate: [{i}/{len(stages)}] {stage.name} ({stage.tasks} task(s), {stage.workers} "
              f"worker(s))", file=sys.stderr, flush=True)
        try:
            executor.run()
        except Exception as e:  # noqa: BLE001 - any failure inside a task: name the stage and the logs
            # output/ is untouched; finished tasks stay in work/ and .output.partial/ for `--resume true`
            raise DataError(f"curate stage '{stage.name}' failed: {type(e).__name__}: {e}\n"
                            f"task logs: {stage.logging_dir}/logs/; nothing was written to {layout.output}") from e
        print(f"chatstack curate: [{i}/{len(stages)}] {stage.name} done in {time.time() - t0:.1f}s",
              file=sys.stderr, flush=True)
        if stage.name == "filter":
            n, reasons = _documents_read(Path(stage.logging_dir))
            if n == 0:
                raise DataError(f"{cfg.input_path}: no documents read (format {cfg.input_format}, "
                                f"glob {cfg.input_glob!r}, text_key '{cfg.text_key}'; drops: {reasons or 'none'}). "
                                f"See {stage.logging_dir}/logs/")
    # the output appears whole or not at all
    out, staging = Path(layout.output), Path(layout.staging)
    if staging.exists():
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    elif not out.exists():  # every document was filtered out: an empty output folder
        out.mkdir(parents=True)
    summary = summarize(cfg.output_dir, extra={
        "input_path": cfg.input_path, "input_format": cfg.input_format, "wall_time_s": round(time.time() - start, 2),
        "executor": cfg.executor, "tasks": cfg.tasks, "workers": cfg.workers})
    if not summary["documents_out"]:
        print(f"chatstack curate: warning: every document was filtered out; see {layout.stats_file}", file=sys.stderr)
    write_summary(summary, layout.stats_file)
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        from chatstack.curate.config import valid_help

        print(valid_help())
        return 0
    config_path, overrides = split_cli(argv)
    cfg = parse_config(CurateConfig, config_path, overrides)
    where = config_path or "command line"
    try:
        summary = curate(cfg, where)
    except json.JSONDecodeError as e:
        raise DataError(f"{cfg.output_dir}: unreadable stats file: {e}") from e
    if summary is not None:
        from chatstack.curate.stats import format_table

        print(format_table(summary))
        print(f"stats: {Path(cfg.output_dir) / 'curate_stats.json'}")
    return 0
