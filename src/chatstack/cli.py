"""`chatstack <stage> --config recipes/<recipe>/<stage>.yaml [--key value ...]`.

Each stage is a module with `main(argv) -> int | None`, imported only when called, so a
stage's heavy or optional dependencies never slow the others. An error in the input
(chatstack.errors: a config, data, a folder to export or push) prints as one line and
exits 2; `--debug` anywhere on the command line (or CHATSTACK_DEBUG=1) shows its traceback
instead, for a bug report. While a command runs, configs are also checked for the paths
they name (chatstack.config.cli_checks). Works the same under `accelerate launch -m
chatstack.cli <stage> --config ...`.
"""
from __future__ import annotations

import os
import sys
from importlib import import_module

from chatstack.errors import ChatstackError

STAGES: dict[str, tuple[str, str]] = {
    # name: (module, one-line help)
    "speedrun": ("chatstack.speedrun", "run every stage of a recipe in order, resuming where it stopped"),
    "world": ("chatstack.world.cli", "write the synthetic world (people, QA, articles) to JSONL"),
    "curate": ("chatstack.curate", "FineWeb-style curation of web text with datatrove"),
    "tokenizer": ("chatstack.tokenizer", "train a byte-level BPE tokenizer with a chat template"),
    "tokenize": ("chatstack.tokenizer", "show how text becomes tokens"),
    "pretrain": ("chatstack.pretrain", "pretrain a GPT-2 from scratch on packed text"),
    "generate": ("chatstack.generate", "sample from a base or chat model"),
    "sft": ("chatstack.sft", "supervised fine-tuning on conversations (TRL SFTTrainer)"),
    "build": ("chatstack.build", "run a data builder (e.g. refusals by knowledge probing)"),
    "reward": ("chatstack.reward", "train a reward model on preference pairs (TRL RewardTrainer)"),
    "ppo": ("chatstack.ppo", "RLHF with PPO against the reward model"),
    "grpo": ("chatstack.grpo", "GRPO with verifiable rewards (TRL GRPOTrainer)"),
    "eval": ("chatstack.evaluation", "evaluate a model: chatstack evals and lm-eval tasks"),
    "chat": ("chatstack.chat", "chat with a model in the terminal"),
    "serve": ("chatstack.serve", "chat with a model in the browser (Gradio)"),
    "report": ("chatstack.report", "write outputs/<recipe>/report.md with plots"),
    "export": ("chatstack.export", "export a model (GGUF)"),
    "push": ("chatstack.hub", "push a stage's output to the Hugging Face Hub"),
}


def usage() -> str:
    width = max(map(len, STAGES))
    lines = ["usage: chatstack <command> [--config FILE.yaml] [--key value ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in STAGES.items()]
    return "\n".join(lines)


DEBUG_ENV = "CHATSTACK_DEBUG"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in STAGES:
        print(f"chatstack: unknown command '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    from chatstack.config import cli_checks

    try:
        module = import_module(STAGES[name][0])
        entry = getattr(module, f"{name}_main", None) or module.main
        with cli_checks():
            return int(entry(rest) or 0)
    except ChatstackError as e:  # ConfigError, DataError, ExportError, HubError, HarnessError
        if debug:
            raise
        print(f"chatstack {name}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # an optional dependency of this command (an extra) is not installed
        if debug or not e.name or e.name.split(".")[0] == "chatstack":
            raise
        print(f"chatstack {name}: error: needs the '{e.name}' package, not installed; "
              f"pip install -e '.[data,eval,serve,track]' installs every command's extras", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
