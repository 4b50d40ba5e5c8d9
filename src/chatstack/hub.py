"""Model cards and `chatstack push --model PATH --repo_id ID [--private]`.

A stage's output folder (`outputs/<recipe>/<stage>/`) is a `save_pretrained` folder; this
module checks it is complete and loads with transformers alone, writes its model card
(README.md with the Hub's YAML metadata: license, datasets, base_model, tags and the eval
results as a `model-index`, built with huggingface_hub's ModelCard / ModelCardData /
EvalResult) and uploads it with `HfApi.create_repo` + `HfApi.upload_folder`.

The `evaluate` library's model-index support (`evaluate.push_to_hub`) is not used: it looks
the model and dataset up on the Hub and edits an already pushed repo's card, one metric per
call, so it needs the network; the card here is written offline before the upload. Both write
the same `model-index` (huggingface_hub's card metadata).

Trainer-based stages can push through the Trainer (`push_to_hub`, `hub_model_id`,
`hub_private_repo`); the others call `push_folder`. A real push needs a token with write
access: `hf auth login`, `HF_TOKEN=...`, or `--token`.

metrics.json, as the card reads it (any other keys are ignored by the model-index):
  {"evals": {"<task or dataset>": {"<metric>": value, ...}, ...},   # -> model-index
   "eval_loss": 2.1, ...,                                            # Trainer eval_* -> model-index
   "train_loss": 2.3, "seconds": 410, "tokens": 1.2e6, ...}          # -> "Training run" table
"""
from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from chatstack.errors import HubError

# lm-eval tasks chatstack ships (chatstack.evaluation.harness) -> the Hub dataset they copy
KNOWN_DATASETS: dict[str, dict[str, str]] = {
    "chatstack_arc_easy": {"type": "allenai/ai2_arc", "name": "ARC-Easy", "config": "ARC-Easy", "split": "test"},
    "chatstack_arc_challenge": {"type": "allenai/ai2_arc", "name": "ARC-Challenge", "config": "ARC-Challenge",
                                "split": "test"},
    "chatstack_lambada": {"type": "EleutherAI/lambada_openai", "name": "LAMBADA (OpenAI)", "config": "default",
                          "split": "test"},
    "chatstack_triviaqa": {"type": "mandarjoshi/trivia_qa", "name": "TriviaQA (3k subset)", "config": "rc.nocontext",
                           "split": "validation"},
    "chatstack_gsm8k": {"type": "openai/gsm8k", "name": "GSM8K", "config": "main", "split": "test"},
    "chatstack_hellaswag": {"type": "Rowan/hellaswag", "name": "HellaSwag", "split": "validation"},
}
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
# never uploaded: Trainer checkpoints and logs, exports, caches
IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "runs/**", "*.gguf", "__pycache__/**", ".cache/**",
                   "optimizer.pt", "scheduler.pt", "rng_state*.pth", "training_args.bin"]


def read_metrics(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise HubError(f"{path}: invalid JSON: {e}") from e
    if not isinstance(data, dict):
        raise HubError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def eval_results(metrics: dict[str, Any]) -> list[EvalResult]:
    """The model-index entries for a stage's metrics (see the module docstring)."""
    out = []
    for task, values in (metrics.get("evals") or {}).items():
        if not isinstance(values, dict):
            raise HubError(f"metrics.json: evals.{task} must map metric names to numbers, got {values!r}")
        ds = KNOWN_DATASETS.get(task, {"type": task, "name": task})
        for metric, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            out.append(EvalResult(task_type="text-generation", task_name="Text Generation", dataset_type=ds["type"],
                                  dataset_name=ds["name"], dataset_config=ds.get("config"),
                                  dataset_split=ds.get("split"), metric_type=metric, metric_name=f"{task} {metric}",
                                  metric_value=round(float(value), 6)))
    for key, value in metrics.items():
        if key.startswith("eval_") and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and not key.endswith(("_runtime", "_per_second")):
            out.append(EvalResult(task_type="text-generation", task_name="Text Generation", dataset_type="held-out",
                                  dataset_name="held-out split of the training data", metric_type=key[5:],
                                  metric_name=key, metric_value=round(float(value), 6)))
    return out


def _check_repo_ids(kind: str, ids: list[str]) -> None:
    bad = [i for i in ids if not REPO_ID.match(i)]
    if bad:
        raise HubError(f"{kind}: {bad} are not Hub repo ids (owner/name); the Hub rejects cards that name local paths")


def model_card(folder: str | Path, repo_id: str | None = None, *, license: str = "apache-2.0",
               datasets: list[str] | None = None, base_model: str | list[str] | None = None,
               tags: list[str] | None = None, stage: str | None = None, description: str | None = None,
               metrics: dict[str, Any] | None = None) -> ModelCard:
    """A model card for a stage's output folder; eval results come from its metrics.json
    (or `metrics`). `datasets` and `base_model` must be Hub ids (local data goes in `description`)."""
    folder = Path(folder)
    metrics = read_metrics(folder) if metrics is None else metrics
    datasets = list(datasets or [])
    bases = [base_model] if isinstance(base_model, str) else list(base_model or [])
    _check_repo_ids("datasets", datasets)
    _check_repo_ids("base_model", bases)
    name = (repo_id or folder.resolve().name).split("/")[-1]
    results = eval_results(metrics)
    data = ModelCardData(
        language="en", license=license, library_name="transformers", pipeline_tag="text-generation",
        tags=sorted({"chatstack", "gpt2", "text-generation", *([stage] if stage else []), *(tags or [])}),
        datasets=datasets or None, base_model=(bases[0] if len(bases) == 1 else bases) or None,
        model_name=name, eval_results=results or None)

    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    lines = [f"# {name}", "",
             description or f"A small GPT-2 trained from scratch with chatstack "
                            f"({'stage `' + stage + '`' if stage else 'one stage of its pipeline'}).", ""]
    if config:
        arch = ", ".join(f"{k}={config[k]}" for k in ("n_layer", "n_embd", "n_head", "n_positions", "vocab_size")
                         if k in config)
        lines += [f"Architecture: `{config.get('architectures', ['GPT2LMHeadModel'])[0]}` ({arch}).", ""]
    if bases:
        lines += [f"Fine-tuned from {', '.join(f'[{b}](https://huggingface.co/{b})' for b in bases)}.", ""]
    if datasets:
        lines += ["Data: " + ", ".join(f"[{d}](https://huggingface.co/datasets/{d})" for d in datasets) + ".", ""]
    lines += ["## Use", "", "```python", "from transformers import pipeline", "",
              f'chat = pipeline("text-generation", model="{repo_id or folder}")',
              'print(chat([{"role": "user", "content": "Hello!"}], max_new_tokens=64)[0]["generated_text"])',
              "```", "",
              "The tokenizer carries a ChatML chat template with tool calls (`apply_chat_template(..., tools=...)`).",
              "A GGUF for llama.cpp / LM Studio / Ollama: `chatstack export --model PATH --format gguf --dtype q8_0`.", ""]
    if results:
        lines += ["## Evaluation", "", "| task | metric | value |", "|---|---|---|"]
        lines += [f"| {r.dataset_name} | {r.metric_type} | {r.metric_value:.4g} |" for r in results]
        lines += [""]
    run = {k: v for k, v in metrics.items()
           if k != "evals" and not k.startswith("eval_") and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if run:
        lines += ["## Training run", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in run.items()]
        lines += [""]
    lines += ["## Limitations", "",
              "A tiny research model: it makes up facts, and its knowledge is what its small training data held.", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def write_model_card(folder: str | Path, repo_id: str | None = None, **kwargs) -> Path:
    """Write README.md (the model card) into `folder`; kwargs as for `model_card`."""
    path = Path(folder) / "README.md"
    model_card(folder, repo_id, **kwargs).save(path)
    return path


def check_folder(folder: str | Path, load: bool = True) -> list[str]:
    """The problems that keep `folder` from being a complete model repo (empty if none):
    config, safetensors weights, tokenizer with chat template, generation config, and (with
    `load`) that AutoTokenizer/AutoModelForCausalLM load it with transformers alone and
    the chat template renders."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder}: not a directory"]
    problems = []
    has = lambda name: (folder / name).is_file()  # noqa: E731
    if not has("config.json"):
        problems.append("config.json missing")
    elif "auto_map" in json.loads((folder / "config.json").read_text()):
        problems.append("config.json has auto_map: loading would need custom code")
    if not (has("model.safetensors") or has("model.safetensors.index.json")):
        problems.append("no safetensors weights (model.safetensors or model.safetensors.index.json)")
    if not has("tokenizer_config.json") or not (has("tokenizer.json") or has("vocab.json")):
        problems.append("tokenizer files missing (tokenizer_config.json and tokenizer.json)")
    elif (not has("chat_template.jinja")
          and "chat_template" not in json.loads((folder / "tokenizer_config.json").read_text())):
        problems.append("no chat template (chat_template.jinja or tokenizer_config.json chat_template)")
    if not has("generation_config.json"):
        problems.append("generation_config.json missing")
    if problems or not load:
        return problems
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder)
        ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits
        if logits.shape[-1] < len(tok):
            problems.append(f"model vocab {logits.shape[-1]} is smaller than the tokenizer's {len(tok)}")
    except Exception as e:  # report what a user of the repo would hit
        problems.append(f"does not load with transformers: {type(e).__name__}: {e}")
    return problems


def push_folder(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str | None = None, check: bool = True, card_kwargs: dict[str, Any] | None = None):
    """Check `folder`, write its model card if it has none, create `repo_id` (if needed) and
    upload the folder. Returns the commit info of `upload_folder`."""
    folder = Path(folder)
    if not REPO_ID.match(repo_id):
        raise HubError(f"repo_id '{repo_id}': expected owner/name")
    if check:
        problems = check_folder(folder)
        if problems:
            raise HubError(f"{folder} is not ready to push:\n  - " + "\n  - ".join(problems))
    api = HfApi(token=token)
    with _hub_errors(repo_id, token):
        api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
    if card_kwargs is not None or not (folder / "README.md").is_file():  # once the Hub took the repo: no stray card
        write_model_card(folder, repo_id, **(card_kwargs or {}))
    with _hub_errors(repo_id, token):
        return api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                 commit_message=commit_message or f"Upload {folder.name} with chatstack",
                                 ignore_patterns=IGNORE_PATTERNS)


@contextmanager
def _hub_errors(repo_id: str, token: str | None):
    """The Hub's refusals (no token, a read-only one, offline) as one HubError line, not a traceback."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        yield
    except (HfHubHTTPError, LocalTokenNotFoundError, ConnectionError, OSError) as e:
        if not (token or get_token()):
            raise HubError(f"push {repo_id}: no Hugging Face token found; log in with `hf auth login`, "
                           "set HF_TOKEN or pass --token (a token with write access)") from e
        raise HubError(f"push {repo_id}: the Hub refused: {' '.join(str(e).split())[:300]}") from e


@dataclass
class PushArgs:
    """Options of `chatstack push`."""
    model: str = field(metadata={"help": "a stage's output folder, e.g. outputs/tiny/sft"})
    repo_id: str = field(metadata={"help": "owner/name on the Hub"})
    private: bool = False
    token: str | None = None
    commit_message: str | None = None
    card: bool = field(default=False, metadata={"help": "(re)write README.md from metrics.json even if one exists"})
    license: str = "apache-2.0"
    dataset: list[str] = field(default_factory=list, metadata={
        "action": "append", "help": "a Hub dataset id the model was trained on (repeatable)"})
    base_model: str | None = field(default=None, metadata={"help": "Hub id of the model this one was fine-tuned from"})
    tag: list[str] = field(default_factory=list, metadata={"action": "append", "help": "a tag for the card (repeatable)"})
    stage: str | None = field(default=None, metadata={"help": "stage name for the card (pretrain, sft, ...)"})

    def __post_init__(self):
        # `--dataset a --dataset b c` -> [[a], [b, c]]: repeatable flags, each taking one or more values
        self.dataset = [x for v in self.dataset for x in ([v] if isinstance(v, str) else v)]
        self.tag = [x for v in self.tag for x in ([v] if isinstance(v, str) else v)]


def push_main(argv: list[str]) -> int:
    from chatstack.config import parse_cli

    (a,) = parse_cli("chatstack push", "Push a stage's output folder to the Hugging Face Hub (needs a token with write "
                     "access: `hf auth login`, HF_TOKEN or --token).", (PushArgs,), argv)
    card = None
    if a.card or not (Path(a.model) / "README.md").is_file():
        card = {"license": a.license, "datasets": a.dataset, "base_model": a.base_model, "tags": a.tag, "stage": a.stage}
    try:
        info = push_folder(a.model, a.repo_id, private=a.private, token=a.token, commit_message=a.commit_message,
                           card_kwargs=card)
    except HubError as e:
        print(f"chatstack push: error: {e}", file=sys.stderr)
        return 2
    print(f"pushed {a.model} to https://huggingface.co/{a.repo_id} ({getattr(info, 'commit_url', info)})")
    return 0


main = push_main
