"""Every `chatstack` command, given broken input (issue 21): configs, data files, model
folders and arguments. Each case must exit 2 with one clear line that names what is wrong
(a second line may list the valid keys), print no traceback, and write nothing: no file
appears in the working folder, so no later stage could take a half-written output for a
finished one. Nothing trains: every error comes before (or instead of) the work.

The commands run in-process through `chatstack.cli.main`, as `chatstack` runs them (an
exception that escaped would fail the test with its traceback); two cases run the real
console entry in a subprocess, with and without `--debug`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_tiny_model import build_tiny_model

from chatstack.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A valid chat model folder (2-layer GPT-2, tokenizer with the chat template): the good input each case breaks."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def copy(tiny: Path, tmp: Path, name: str = "model") -> Path:
    out = tmp / name
    shutil.copytree(tiny, out)
    return out


def truncated_weights(tmp, tiny):
    m = copy(tiny, tmp)
    data = (m / "model.safetensors").read_bytes()
    (m / "model.safetensors").write_bytes(data[: len(data) // 2])
    return m


def corrupt_tokenizer(tmp, tiny):
    m = copy(tiny, tmp)
    text = (m / "tokenizer.json").read_text()
    (m / "tokenizer.json").write_text(text[: len(text) // 3])
    return m


def without(tmp, tiny, *names):
    m = copy(tiny, tmp)
    for n in names:
        (m / n).unlink()
    return m


def no_chat_template(tmp, tiny):
    m = copy(tiny, tmp)
    cfg = json.loads((m / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (m / "tokenizer_config.json").write_text(json.dumps(cfg))
    (m / "chat_template.jinja").unlink(missing_ok=True)
    return m


def write(tmp: Path, name: str, text: str | bytes) -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def spec(tmp: Path, body: str) -> str:
    return str(write(tmp, "spec.yaml", body))


def jsonl_spec(tmp: Path, name: str, data: bytes) -> str:
    write(tmp, name, data)
    return spec(tmp, f"files: {name}\n")


def checkpoint_without_state(tmp, tiny):
    ckpt = copy(tiny, tmp, "out/checkpoint-5")
    return str(ckpt)


# (id, argv built from (tmp, tiny), what the error line must say)
CASES = [
    # --- stage configs: YAML, keys, nested mappings, types, ranges -------------------------------------------
    ("config-file-missing", lambda t, m: ["sft", "--config", "nope.yaml"], "config file not found: nope.yaml"),
    ("config-needs-path", lambda t, m: ["reward", "--config"], "--config needs a path"),
    ("yaml-invalid", lambda t, m: ["sft", "--config", str(write(t, "c.yaml", "a: [1,\n"))], "invalid YAML"),
    (
        "yaml-not-mapping",
        lambda t, m: ["pretrain", "--config", str(write(t, "c.yaml", "- 1\n- 2\n"))],
        "expected a mapping of key: value, got list",
    ),
    (
        "yaml-key-typo",
        lambda t, m: ["sft", "--config", str(write(t, "c.yaml", "learning_rat: 1e-3\n"))],
        "'learning_rat' (did you mean learning_rate",
    ),
    (
        "yaml-extends-missing",
        lambda t, m: ["sft", "--config", str(write(t, "c.yaml", "extends: base.yaml\n"))],
        "config file not found",
    ),
    ("override-typo", lambda t, m: ["grpo", "--num_generation", "4"], "'num_generation' (did you mean num_generations"),
    ("string-for-number-cli", lambda t, m: ["sft", "--learning_rate", "fast"], "invalid float value: 'fast'"),
    (
        "string-for-number-yaml",
        lambda t, m: ["reward", "--config", str(write(t, "c.yaml", "num_train_epochs: many\n"))],
        "--num_train_epochs/--num-train-epochs: invalid float value: 'many'",
    ),
    ("bad-choice", lambda t, m: ["sft", "--lr_scheduler_type", "cosin"], "cosin is not a valid SchedulerType"),
    ("peft-typo", lambda t, m: ["sft", "--peft", '{"rr": 8}'], "'rr' (did you mean r"),
    ("peft-not-json", lambda t, m: ["sft", "--peft", "{r: 8"], "peft: not a JSON mapping"),
    (
        "model-config-typo",
        lambda t, m: ["pretrain", "--model_config", '{"n_layr": 2}'],
        "model_config: unknown key(s) for GPT2Config: 'n_layr' (did you mean n_layer",
    ),
    (
        "model-preset-unknown",
        lambda t, m: ["pretrain", "--model_preset", "tinyy"],
        "model_preset 'tinyy' unknown (did you mean tiny",
    ),
    (
        "eval-identity-typo",
        lambda t, m: ["sft", "--eval_identity", '{"name": "x", "makr": "y"}'],
        "'makr' (did you mean maker",
    ),
    ("grpo-unknown-reward", lambda t, m: ["grpo", "--reward_funcs", "correctnes"], "reward_funcs: unknown ['correctnes']"),
    ("grpo-unknown-tool", lambda t, m: ["grpo", "--tools", "calculator"], "tools: unknown tool 'calculator'"),
    ("negative-lr", lambda t, m: ["sft", "--learning_rate=-1e-3"], "learning_rate must be > 0, got -0.001"),
    (
        "batch-zero",
        lambda t, m: ["reward", "--per_device_train_batch_size", "0"],
        "per_device_train_batch_size must be >= 1",
    ),
    ("epochs-zero", lambda t, m: ["pretrain", "--num_train_epochs", "0"], "num_train_epochs must be > 0"),
    ("fraction-above-one", lambda t, m: ["reward", "--eval_fraction", "1.5"], "eval_fraction must be in [0, 1), got 1.5"),
    (
        "grpo-one-generation",
        lambda t, m: ["grpo", "--num_generations", "1"],
        "GRPO requires at least 2 generations per prompt",
    ),
    ("max-length-zero", lambda t, m: ["sft", "--max_length", "0"], "max_length must be >= 1"),
    ("tokenizer-vocab-zero", lambda t, m: ["tokenizer", "--vocab_size", "0"], "vocab_size must be >= 1"),
    # --- paths a config names -------------------------------------------------------------------------------
    ("output-dir-is-file", lambda t, m: ["reward", "--output_dir", str(write(t, "out", "keep"))], "is a file, not a folder"),
    (
        "output-dir-under-file",
        lambda t, m: ["sft", "--model_name_or_path", str(m), "--output_dir", str(write(t, "f", "x")) + "/out"],
        "cannot create",
    ),
    (
        "model-folder-missing",
        lambda t, m: ["sft", "--model_name_or_path", "outputs/none/pretrain"],
        "model_name_or_path: outputs/none/pretrain not found",
    ),
    (
        "reward-model-missing",
        lambda t, m: ["ppo", "--model_name_or_path", str(m), "--reward_model_path", "runs/a/reward"],
        "reward_model_path: runs/a/reward not found",
    ),
    (
        "tokenizer-folder-missing",
        lambda t, m: ["pretrain", "--tokenizer_name_or_path", "outputs/x/tokenizer"],
        "tokenizer_name_or_path: outputs/x/tokenizer not found",
    ),
    (
        "chat-template-missing",
        lambda t, m: ["tokenizer", "--chat_template", "templates/none.jinja"],
        "chat_template: file not found",
    ),
    (
        "resume-missing",
        lambda t, m: ["reward", "--model_name_or_path", str(m), "--resume_from_checkpoint", "out/checkpoint-9"],
        "checkpoint out/checkpoint-9 not found",
    ),
    (
        "resume-incomplete",
        lambda t, m: ["reward", "--model_name_or_path", str(m), "--resume_from_checkpoint", checkpoint_without_state(t, m)],
        "not a complete checkpoint (no trainer_state.json",
    ),
    (
        "max-length-past-context",
        lambda t, m: ["sft", "--model_name_or_path", str(m), "--max_length", "256"],
        "max_length 256 is longer than the context of",
    ),
    (
        "block-size-past-context",
        lambda t, m: ["pretrain", "--model_preset", "micro", "--block_size", "512"],
        "block_size 512 is longer than the model's context (128 positions",
    ),
    # --- dataset specs and data files -----------------------------------------------------------------------
    (
        "dataset-name-unknown",
        lambda t, m: ["sft", "--model_name_or_path", str(m), "--dataset", "tiny_sfft"],
        "no dataset config named 'tiny_sfft'",
    ),
    (
        "mixture-empty",
        lambda t, m: ["sft", "--model_name_or_path", str(m), "--dataset", spec(t, "mixture: []\n")],
        "'mixture' must be a non-empty list",
    ),
    (
        "spec-key-typo",
        lambda t, m: [
            "sft",
            "--model_name_or_path",
            str(m),
            "--dataset",
            spec(t, "mixture:\n  - builder: identity\n    weigth: 0.5\n"),
        ],
        "unknown key(s) ['weigth']",
    ),
    (
        "spec-two-kinds",
        lambda t, m: ["tokenizer", "--dataset", spec(t, "files: a.jsonl\nbuilder: identity\n")],
        "needs exactly one of hub, files, builder, mixture",
    ),
    (
        "weight-zero",
        lambda t, m: [
            "sft",
            "--model_name_or_path",
            str(m),
            "--dataset",
            spec(t, "mixture:\n  - builder: identity\n    weight: 0\n"),
        ],
        "weight must be a number > 0",
    ),
    (
        "builder-unknown",
        lambda t, m: ["tokenizer", "--dataset", spec(t, "builder: world_pretrain\n")],
        "unknown builder 'world_pretrain'",
    ),
    (
        "builder-arg-typo",
        lambda t, m: ["tokenizer", "--dataset", spec(t, "builder: world_qa\nargs: {phrasing: [0]}\n")],
        "builder 'world_qa' has no arg 'phrasing' (did you mean phrasings",
    ),
    (
        "data-file-missing",
        lambda t, m: ["tokenizer", "--dataset", spec(t, "files: gone.jsonl\n")],
        "data file not found: gone.jsonl",
    ),
    (
        "data-glob-empty",
        lambda t, m: ["tokenizer", "--dataset", spec(t, "files: shards/*.parquet\n")],
        "no data file matches shards/*.parquet",
    ),
    (
        "data-format-unknown",
        lambda t, m: ["tokenizer", "--dataset", spec(t, "files: spec.yaml\nformat: xml\n")],
        "format 'xml'; expected one of json, parquet, text, csv",
    ),
    (
        "jsonl-malformed-line",
        lambda t, m: ["tokenizer", "--dataset", jsonl_spec(t, "d.jsonl", b'{"text": "a"}\r\n{"text": \n')],
        "d.jsonl:2: malformed JSON line",
    ),
    (
        "jsonl-not-object",
        lambda t, m: ["tokenizer", "--dataset", jsonl_spec(t, "d.jsonl", b'{"text": "a"}\n["b"]\n')],
        "d.jsonl:2: expected a JSON object per line, got list",
    ),
    (
        "jsonl-not-utf8",
        lambda t, m: ["tokenizer", "--dataset", jsonl_spec(t, "d.jsonl", b'{"text": "caf\xe9"}\n')],
        "d.jsonl: not valid UTF-8 near line 1",
    ),
    (
        "jsonl-gzip-truncated",
        lambda t, m: [
            "tokenizer",
            "--dataset",
            jsonl_spec(t, "d.jsonl.gz", gzip.compress(b"".join(b'{"text": "%d"}\n' % i for i in range(2000)))[:-300]),
        ],
        "d.jsonl.gz: truncated or corrupt gzip",
    ),
    ("jsonl-empty", lambda t, m: ["tokenizer", "--dataset", jsonl_spec(t, "d.jsonl", b"\n\r\n")], "d.jsonl holds no rows"),
    (
        "parquet-corrupt",
        lambda t, m: ["tokenizer", "--dataset", jsonl_spec(t, "d.parquet", b"PAR1 not really parquet")],
        "d.parquet: not a readable parquet file",
    ),
    (
        "text-column-missing",
        lambda t, m: [
            "tokenizer",
            "--text_column",
            "body",
            "--dataset",
            jsonl_spec(t, "d.jsonl", b'{"text": "a b"}\n{"text": "c d"}\n'),
        ],
        "no column 'body'",
    ),
    # --- model folders ----------------------------------------------------------------------------------------
    (
        "weights-truncated",
        lambda t, m: ["sft", "--model_name_or_path", str(truncated_weights(t, m))],
        "model.safetensors: truncated or corrupt safetensors file",
    ),
    (
        "tokenizer-json-corrupt",
        lambda t, m: ["reward", "--model_name_or_path", str(corrupt_tokenizer(t, m))],
        "tokenizer.json: truncated or corrupt JSON",
    ),
    (
        "no-config-json",
        lambda t, m: ["grpo", "--model_name_or_path", str(without(t, m, "config.json"))],
        "no config.json in",
    ),
    (
        "no-weights",
        lambda t, m: ["ppo", "--model_name_or_path", str(without(t, m, "model.safetensors"))],
        "has no weights (model.safetensors)",
    ),
    ("no-tokenizer", lambda t, m: ["sft", "--model_name_or_path", str(without(t, m, "tokenizer.json"))], "has no tokenizer"),
    (
        "model-is-a-file",
        lambda t, m: ["sft", "--model_name_or_path", str(m / "config.json")],
        "is a file, not a save_pretrained",
    ),
    (
        "no-chat-template",
        lambda t, m: ["grpo", "--model_name_or_path", str(no_chat_template(t, m))],
        "the tokenizer has no chat template",
    ),
    # --- build, curate ------------------------------------------------------------------------------------------
    ("build-unknown-builder", lambda t, m: ["build", "identiti"], "unknown builder 'identiti'"),
    (
        "build-refusals-no-model",
        lambda t, m: ["build", "refusals", "--model_name_or_path", "outputs/none/sft"],
        "outputs/none/sft not found",
    ),
    (
        "curate-no-input",
        lambda t, m: ["curate", "--config", str(write(t, "c.yaml", "output_dir: out\n"))],
        "input_path is required",
    ),
    # --- chat / serve / generate / eval arguments ------------------------------------------------------------------
    ("chat-model-missing", lambda t, m: ["chat", "--model", "outputs/tiny/none"], "outputs/tiny/none not found"),
    ("chat-top-p", lambda t, m: ["chat", "--model", str(m), "--top_p", "1.5"], "top_p must be in (0, 1], got 1.5"),
    (
        "chat-weights-truncated",
        lambda t, m: ["chat", "--model", str(truncated_weights(t, m))],
        "truncated or corrupt safetensors",
    ),
    ("generate-no-prompt", lambda t, m: ["generate", "--model", str(m)], "the following arguments are required: --prompt"),
    (
        "generate-temperature",
        lambda t, m: ["generate", "--model", str(m), "--prompt", "hi", "--temperature", "-1"],
        "temperature must be >= 0",
    ),
    (
        "generate-flag-typo",
        lambda t, m: ["generate", "--model", str(m), "--prompt", "hi", "--max_new_token", "3"],
        "unknown option --max_new_token (did you mean --max_new_tokens",
    ),
    ("serve-port", lambda t, m: ["serve", "--model", str(m), "--port", "0"], "port must be in [1, 65535]"),
    ("eval-unknown-suite", lambda t, m: ["eval", "--model", str(m), "--suite", "nope"], "nope"),
    (
        "eval-model-missing",
        lambda t, m: ["eval", "--model", "outputs/tiny/nothing", "--suite", "tiny"],
        "outputs/tiny/nothing not found",
    ),
    # --- export, push -------------------------------------------------------------------------------------------------
    ("export-dtype", lambda t, m: ["export", "--model", str(m), "--dtype", "q4_k"], "invalid choice: 'q4_k'"),
    (
        "export-weights-truncated",
        lambda t, m: ["export", "--model", str(truncated_weights(t, m))],
        "truncated or corrupt safetensors",
    ),
    ("export-output-is-folder", lambda t, m: ["export", "--model", str(m), "--output", str(t)], "is a folder, not a file"),
    (
        "push-no-token",
        lambda t, m: ["push", "--model", str(copy(m, t, "sft")), "--repo_id", "alice/tiny-sft"],
        "no Hugging Face token found",
    ),
    ("push-bad-repo-id", lambda t, m: ["push", "--model", str(m), "--repo_id", "not a repo"], "expected owner/name"),
]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


PROGRESS = re.compile(r"(it|examples)/s\]")  # tqdm bars of work done before the error (loading a dataset or weights)


def message_lines(err: str) -> list[str]:
    """stderr without progress bars: what the user reads as the message."""
    return [line for line in err.strip().splitlines() if line.strip() and not PROGRESS.search(line)]


@pytest.mark.parametrize("make_argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(make_argv, expected, tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path.parent / "hf_home_without_token"))  # no stored token either
    monkeypatch.delenv("CHATSTACK_DEBUG", raising=False)
    argv = make_argv(tmp_path, tiny)
    before = files_under(tmp_path)
    rc = main(argv)
    err = capsys.readouterr().err
    lines = message_lines(err)
    assert rc == 2, err
    assert lines and lines[0].startswith(f"chatstack {argv[0]}: error: ") and expected in lines[0], err
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("Valid keys: ")), err
    assert "Traceback" not in err
    assert files_under(tmp_path) == before, sorted(map(str, files_under(tmp_path) - before))


def test_at_least_forty_cases_cover_every_command():
    """Each case's argv starts with its command: the lambdas' first string constant."""
    names = [c[0] for c in CASES]
    assert len(CASES) >= 40 and len(set(names)) == len(names)

    def command(make):  # a constant list display compiles to a tuple constant
        first = next(c for c in make.__code__.co_consts if isinstance(c, (str, tuple)))
        return first[0] if isinstance(first, tuple) else first

    commands = {command(make) for _, make, _ in CASES}
    assert commands >= {
        "pretrain",
        "sft",
        "reward",
        "grpo",
        "ppo",
        "tokenizer",
        "build",
        "curate",
        "chat",
        "serve",
        "generate",
        "eval",
        "export",
        "push",
    }


def run_cli(*argv, env=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "chatstack.cli", *argv], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


def test_the_console_exits_2_without_a_traceback_and_debug_shows_it():
    plain = run_cli("tokenizer", "--vocab_size", "0")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == "chatstack tokenizer: error: command line: vocab_size must be >= 1, got 0"
    debug = run_cli("tokenizer", "--vocab_size", "0", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError: command line: vocab_size" in debug.stderr
    env = run_cli("tokenizer", "--vocab_size", "0", env={"CHATSTACK_DEBUG": "1"})
    assert "Traceback" in env.stderr


def test_an_unknown_command_is_rc_2():
    assert main(["sfft"]) == 2
