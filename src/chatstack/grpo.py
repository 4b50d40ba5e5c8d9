"""Stage `grpo`: reinforcement learning with verifiable rewards (DeepSeek-R1 style) with
TRL's GRPOTrainer: for each prompt sample a group of answers, reward the correct ones (a
checker, not a learned model: nothing to hack) and the well-formed ones, and push the
policy toward answers better than their group's mean."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import GRPOConfig, GRPOTrainer

from chatstack.config import ConfigError, parse_config, split_cli
from chatstack.data import load_data
from chatstack.data.loading import require_columns
from chatstack.evaluation.world_qa import exact_answer_eval, last_number
from chatstack.hardware import resolve_bf16
from chatstack.stage import last_checkpoint, require_chat_template, save_chat_model, write_metrics


def _text(completion) -> str:
    """A completion is a string (standard format) or a list of messages (conversational)."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion if m.get("role") == "assistant")


def correctness_reward(completions, answer, **kwargs) -> list[float]:
    """1 when the last number of the reply is the true answer."""
    return [1.0 if last_number(_text(c)) == a else 0.0 for c, a in zip(completions, answer)]


FORMAT = re.compile(r"^\s*-?\d+ [-+*] -?\d+ = -?\d+\.?\s*$")


def format_reward(completions, **kwargs) -> list[float]:
    """0.2 for the worked form `a + b = c.` with nothing else."""
    return [0.2 if FORMAT.match(_text(c)) else 0.0 for c in completions]


REWARDS = {"correctness": correctness_reward, "format": format_reward}


@dataclass
class GRPOStageConfig(GRPOConfig):
    output_dir: str = "outputs/tiny/grpo"
    model_name_or_path: str = "outputs/tiny/sft"
    dataset: str = field(default="tiny_arithmetic_prompts", metadata={"help": "prompts with an `answer` column"})
    eval_dataset: str = field(default="tiny_arithmetic_eval", metadata={"help": "held-out prompts for accuracy before/after"})
    reward_funcs: list[str] = field(default_factory=lambda: ["correctness", "format"])
    tools: list[str] | None = field(default=None, metadata={"help": "tool names passed to GRPOTrainer(tools=...)"})
    eval_prompts: int = field(default=200, metadata={"help": "at most this many held-out prompts"})
    # GRPOConfig defaults chosen for a small model on a CPU
    learning_rate: float = 5e-5
    num_generations: int = 8
    per_device_train_batch_size: int = 16
    max_completion_length: int = 16
    temperature: float = 1.0
    beta: float = 0.0
    bf16: bool | None = False
    gradient_checkpointing: bool = False
    logging_steps: float = 5
    save_steps: float = 50
    save_total_limit: int | None = 1
    seed: int = 42


def train(cfg: GRPOStageConfig) -> dict:
    set_seed(cfg.seed)
    resolve_bf16(cfg)
    start = time.time()
    unknown = [r for r in cfg.reward_funcs if r not in REWARDS]
    if unknown:
        raise ConfigError(f"reward_funcs: unknown {unknown}; known: {sorted(REWARDS)}")
    tokenizer = AutoTokenizer.from_pretrained(cfg.model_name_or_path)
    require_chat_template(tokenizer, cfg.model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(cfg.model_name_or_path)
    train_ds = load_data(cfg.dataset, split="train", seed=cfg.seed)
    eval_rows = load_data(cfg.eval_dataset, split="train", seed=cfg.seed).to_list()[:cfg.eval_prompts]
    for ds, name in ((train_ds, cfg.dataset),):
        require_columns(ds, ["prompt", "answer"], f"dataset '{name}'")
    model.eval()
    before = exact_answer_eval(model, tokenizer, eval_rows)
    tools = None
    if cfg.tools:
        from chatstack.tools import get_tools
        tools = get_tools(cfg.tools)
    trainer = GRPOTrainer(model=model, args=cfg, train_dataset=train_ds, processing_class=tokenizer,
                          reward_funcs=[REWARDS[r] for r in cfg.reward_funcs], **({"tools": tools} if tools else {}))
    result = trainer.train(resume_from_checkpoint=last_checkpoint(cfg.output_dir))
    trainer.model.eval()
    after = exact_answer_eval(trainer.model, tokenizer, eval_rows)
    metrics = {"accuracy_before": round(before["accuracy"], 4), "accuracy_after": round(after["accuracy"], 4),
               "eval_prompts": len(eval_rows), "train_loss": round(result.training_loss, 4), "samples_after": after["samples"]}
    if trainer.is_world_process_zero():
        save_chat_model(trainer.model, tokenizer, cfg.output_dir)
        metrics["seconds"] = round(time.time() - start, 1)
        write_metrics(cfg.output_dir, metrics, trainer.state.log_history)
    return metrics


def main(argv: list[str]) -> int:
    config, rest = split_cli(argv)
    cfg = parse_config(GRPOStageConfig, config, rest)
    print(json.dumps(train(cfg), indent=2))
    return 0
