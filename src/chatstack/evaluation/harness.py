"""Standard benchmarks through lm-evaluation-harness, on local data.

chatstack ships lm-eval task YAMLs (lm_eval_tasks/) for ARC-Easy/Challenge, LAMBADA,
TriviaQA, GSM8K, MMLU and HellaSwag-format multiple choice. They read local JSONL through
lm-eval's own `dataset_path: json` + `dataset_kwargs.data_files`, with the data root
written `${DATA_ROOT}`. A YAML path is static, so `render_tasks` writes the YAMLs into a
folder with the root filled in (and checks every file exists), and `run_lm_eval` points
lm-eval's TaskManager at that folder with `include_path`. A local copy in another layout
(MMLU's CSVs in a tar.gz) is converted to JSONL beside the rendered YAMLs (a template's
`chatstack_convert`), so the rendered task is still a plain `json` one. Rendering was chosen
over lm-eval's `metadata` + `custom_dataset` hook because the rendered files stay plain
lm-eval tasks that the `lm_eval` CLI runs unchanged:

    chatstack eval --write-tasks /tmp/tasks --data_root ../shared/data
    lm_eval --model hf --model_args pretrained=outputs/tiny/sft \\
        --include_path /tmp/tasks --tasks chatstack_local

The metrics are lm-eval's built-in ones (acc, acc_norm, perplexity, exact_match): none
goes through the `evaluate` library, so a run of chatstack tasks fetches nothing from the Hub
(it runs offline). lm-eval's own tasks (arc_easy, mmlu, ...: real-scale suites) read their
Hub ids, from the network or the HF cache; each chatstack task names the one it copies.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import tarfile
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from chatstack.errors import ConfigError, HarnessError
from chatstack.paths import REPO_ROOT

PLACEHOLDER = "${DATA_ROOT}"
TAG = "chatstack_local"  # lm-eval tag naming every task below
DATA_ROOT_ENV = "CHATSTACK_DATA_ROOT"


def templates_dir() -> Path:
    return Path(str(resources.files("chatstack.evaluation").joinpath("lm_eval_tasks")))


def task_names() -> list[str]:
    return sorted(p.stem for p in templates_dir().glob("*.yaml"))


def default_data_root() -> Path:
    """$CHATSTACK_DATA_ROOT, else the shared data next to the repository (../shared/data)."""
    return Path(os.environ.get(DATA_ROOT_ENV) or REPO_ROOT.parent / "shared" / "data")


def fill_data_root(value: Any, data_root: str | Path | None = None) -> Any:
    """`value` (a string, list or mapping) with `${DATA_ROOT}` replaced by the data root."""
    return _fill(value, str(Path(data_root or default_data_root()).resolve()))


def _fill(value: Any, root: str) -> Any:
    if isinstance(value, str):
        return value.replace(PLACEHOLDER, root)
    if isinstance(value, dict):
        return {k: _fill(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, root) for v in value]
    return value


def mmlu_csv_tar(path: Path, split: str) -> list[dict]:
    """The `<split>/<subject>_<split>.csv` files of an MMLU tar.gz (question, choice0-3, answer
    index) as cais/mmlu's rows: question, subject, choices, answer."""
    rows = []
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and Path(m.name).parent.name == split
                   and m.name.endswith(f"_{split}.csv")]
        for m in sorted(members, key=lambda m: m.name):
            subject = Path(m.name).stem.removesuffix(f"_{split}")
            reader = csv.DictReader(io.TextIOWrapper(tar.extractfile(m), encoding="utf-8"))
            for i, r in enumerate(reader):
                try:
                    rows.append({"question": r["question"], "subject": subject,
                                 "choices": [r[f"choice{k}"] for k in range(4)], "answer": int(r["answer"])})
                except (KeyError, TypeError, ValueError) as e:
                    raise HarnessError(f"{path}: {m.name} row {i + 1}: expected question, choice0-3 and an answer "
                                       f"index ({type(e).__name__}: {e})") from None
    if not rows:
        raise HarnessError(f"{path}: no <subject>_{split}.csv files under a {split}/ folder")
    return rows


CONVERTERS = {"mmlu_csv_tar": mmlu_csv_tar}  # a template's `chatstack_convert`: (file, split) -> rows


def render_tasks(data_root: str | Path | None, out_dir: str | Path, tasks: list[str] | None = None,
                 data_files: dict[str, dict[str, str]] | None = None) -> Path:
    """Write the task YAMLs into `out_dir` with `${DATA_ROOT}` replaced by `data_root`.

    `data_files` overrides the files of a task, e.g. {"chatstack_hellaswag": {"test": "my.jsonl"}}.
    Raises HarnessError naming the task and file when a data file does not exist."""
    root = str(Path(data_root or default_data_root()).resolve())
    known = task_names()
    wanted = known if tasks is None else tasks
    unknown = sorted(set(wanted) - set(known)) + sorted(set(data_files or {}) - set(known))
    if unknown:
        raise HarnessError(f"unknown chatstack lm-eval task(s) {unknown}; known: {', '.join(known)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        cfg = yaml.safe_load((templates_dir() / f"{name}.yaml").read_text())
        cfg = _fill(cfg, root)
        convert = CONVERTERS[cfg.pop("chatstack_convert")] if "chatstack_convert" in cfg else None
        files = cfg["dataset_kwargs"]["data_files"]
        files.update({k: str(Path(v).resolve()) for k, v in (data_files or {}).get(name, {}).items()})
        for split, path in files.items():
            if not Path(path).is_file():
                raise HarnessError(f"task {name}: {split} data file not found: {path} "
                                   f"(set --data_root or ${DATA_ROOT_ENV}; expected layout <root>/eval/..., "
                                   "<root>/gsm8k/...)")
            if convert and tarfile.is_tarfile(path):  # a JSONL given in data_files is read as it is
                jsonl = out / "data" / f"{name}.{split}.jsonl"
                jsonl.parent.mkdir(exist_ok=True)
                jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in convert(Path(path), split)))
                files[split] = str(jsonl)
        (out / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return out


@contextmanager
def offline():
    """HF_HUB_OFFLINE=1 for this process: the env var (for what reads it later) and the flags
    huggingface_hub and datasets already read at import time."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    import datasets.config
    import huggingface_hub.constants as hub_constants

    flags = [(hub_constants, "HF_HUB_OFFLINE"), (datasets.config, "HF_HUB_OFFLINE"),
             (datasets.config, "HF_DATASETS_OFFLINE")]
    old = [(m, a, getattr(m, a)) for m, a in flags if hasattr(m, a)]
    for m, a, _ in old:
        setattr(m, a, True)
    try:
        yield
    finally:
        for m, a, v in old:
            setattr(m, a, v)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _simplify(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """lm-eval's {"task": {"acc,none": x, "acc_stderr,none": s, "alias": ...}} ->
    {"task": {"acc": x}}; with several filters, {"exact_match_strict-match": x, ...}."""
    out = {}
    for task, values in results.items():
        keys = [k for k in values if "," in k and "_stderr" not in k]
        filters = {k.split(",", 1)[1] for k in keys}
        row = {}
        for k in keys:
            metric, filt = k.split(",", 1)
            v = values[k]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                row[metric if len(filters) == 1 else f"{metric}_{filt}"] = float(v)
        out[task] = row
    return out


def load_lm(model_path: str | Path, batch_size: int | str = 8, device: str = "cpu"):
    """lm-eval's HFLM on a save_pretrained folder, as `--model hf --model_args pretrained=PATH`
    builds it, except that a `max_new_tokens` in the model's generation_config.json is cleared
    (in memory): transformers lets it override the `max_length` lm-eval bounds generation with,
    which cuts answers short or runs past a small model's position table."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(device).eval()
    model.generation_config.max_new_tokens = None
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def run_lm_eval(model_path: str | Path, tasks: list[str] | None = None, data_root: str | Path | None = None,
                limit: int | float | None = None, *, num_fewshot: int | None = None, batch_size: int | str = 8,
                device: str = "cpu", max_gen_toks: int | None = None, apply_chat_template: bool = False,
                data_files: dict[str, dict[str, str]] | None = None, output_path: str | Path | None = None,
                seed: int = 1234) -> dict[str, dict[str, float]]:
    """Run lm-eval tasks on a save_pretrained model folder, offline; returns {task: {metric: value}}.

    `tasks` are chatstack's local tasks (default: all of them, `chatstack_local`) and may also
    name lm-eval's built-in tasks (their Hub data, downloaded or cached: such a run is not held
    offline; a group such as `mmlu` reports its own figure only). `max_gen_toks`
    caps generation for every generative task; by default each task's own limit applies, except
    for a model with under 1024 positions (a quarter of its context, so the prompt is not
    truncated away). `output_path` gets lm-eval's full results JSON."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    tasks = list(tasks or [TAG])
    ours = set(task_names())
    local = [t for t in tasks if t in ours]
    if TAG in tasks:
        local = sorted(ours)
    builtin = [t for t in tasks if t not in ours and t != TAG]
    with tempfile.TemporaryDirectory(prefix="chatstack-lm-eval-") as tmp, (nullcontext() if builtin else offline()):
        include = render_tasks(data_root, Path(tmp) / "tasks", local, data_files) if local else None
        lm = load_lm(model_path, batch_size, device)
        if max_gen_toks is None and lm.max_length < 1024:
            max_gen_toks = max(8, lm.max_length // 4)
        gen_kwargs = {"max_gen_toks": int(max_gen_toks)} if max_gen_toks is not None else None
        manager = TaskManager(include_path=str(include) if include else None, include_defaults=bool(builtin))
        res = lm_eval.simple_evaluate(
            model=lm, tasks=tasks, num_fewshot=num_fewshot, limit=limit, task_manager=manager,
            gen_kwargs=gen_kwargs, apply_chat_template=apply_chat_template, log_samples=False,
            bootstrap_iters=0, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
            fewshot_random_seed=seed)
    if res is None:  # not rank 0
        return {}
    if output_path:
        Path(output_path).parent.mkdir(parents=True, exist_ok=True)
        Path(output_path).write_text(json.dumps({k: res[k] for k in ("results", "configs", "versions", "n-samples")
                                                 if k in res}, indent=2, default=str))
    return _simplify({t: v for t, v in res["results"].items() if t != TAG and t not in _members(res, tasks)})


def _members(res: dict, tasks: list[str]) -> set[str]:
    """The subtasks and subgroups of the groups asked for (lm-eval's `mmlu`: 4 groups, 57
    subjects): the group's own figure is kept, theirs are in the full results JSON."""
    tree, out, todo = res.get("group_subtasks") or {}, set(), [t for t in tasks if t != TAG]
    while todo:
        for sub in tree.get(todo.pop(), []):
            if sub not in out:
                out.add(sub)
                todo.append(sub)
    return out


@dataclass
class HarnessArgs:
    """`chatstack eval` without --suite: lm-eval tasks only (or --write-tasks)."""
    model: str | None = field(default=None, metadata={"help": "a save_pretrained folder"})
    tasks: str = field(default=TAG, metadata={"help": f"comma-separated; default {TAG} = all chatstack tasks"})
    data_root: str | None = field(default=None, metadata={"help": f"default ${DATA_ROOT_ENV} or ../shared/data"})
    limit: float | None = field(default=None, metadata={"help": "examples per task (or a fraction if < 1)"})
    num_fewshot: int | None = None
    batch_size: str = field(default="8", metadata={"help": "a number, or auto"})
    device: str = "cpu"
    max_gen_toks: int | None = None
    apply_chat_template: bool = False
    output: str | None = field(default=None, metadata={"help": "write {task: {metric: value}} here (JSON)"})
    write_tasks: str | None = field(default=None, metadata={"help": "only write the rendered YAMLs to DIR"})


def main(argv: list[str]) -> int:
    """`chatstack eval --model PATH --tasks a,b [--limit N]` (lm-eval tasks only), or
    `chatstack eval --write-tasks DIR` to write the task YAMLs for the lm_eval CLI."""
    from chatstack.config import parse_cli
    (a,) = parse_cli("chatstack eval", "lm-evaluation-harness tasks on local data.", (HarnessArgs,), argv)
    try:
        if a.write_tasks:
            out = render_tasks(a.data_root, a.write_tasks)
            print(f"wrote {len(task_names())} tasks to {out}; run: lm_eval --model hf --model_args pretrained=PATH "
                  f"--include_path {out} --tasks {TAG}")
            return 0
        if not a.model:
            raise ConfigError("--model is required (or --write-tasks DIR)")
        limit = int(a.limit) if a.limit is not None and a.limit >= 1 else a.limit
        bs = int(a.batch_size) if a.batch_size.isdigit() else a.batch_size
        results = run_lm_eval(a.model, [t.strip() for t in a.tasks.split(",") if t.strip()], a.data_root, limit,
                              num_fewshot=a.num_fewshot, batch_size=bs, device=a.device, max_gen_toks=a.max_gen_toks,
                              apply_chat_template=a.apply_chat_template)
    except HarnessError as e:
        print(f"chatstack eval: error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(results, indent=2)
    print(text)
    if a.output:
        Path(a.output).write_text(text + "\n")
    return 0
