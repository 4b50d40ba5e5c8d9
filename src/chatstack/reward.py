"""Stage `reward`: a reward model trained on preference pairs with TRL's RewardTrainer.

A GPT2ForSequenceClassification (one score) initialised from the SFT model learns to score
the preferred reply above the rejected one (Bradley-Terry loss). It is what PPO optimises
against, and, being learned, what RL can hack.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
from trl import RewardConfig, RewardTrainer

from chatstack.config import parse_config, split_cli
from chatstack.data import load_data
from chatstack.data.loading import require_columns
from chatstack.errors import DataError
from chatstack.hardware import resolve_bf16
from chatstack.stage import last_checkpoint, require_chat_template, write_metrics


@dataclass
class RewardStageConfig(RewardConfig):
    output_dir: str = "outputs/tiny/reward"
    model_name_or_path: str = "outputs/tiny/sft"
    dataset: str = field(default="tiny_preferences", metadata={"help": "datasets_cfg name with prompt/chosen/rejected"})
    eval_fraction: float = 0.1
    learning_rate: float = 5e-4
    max_length: int | None = 256
    bf16: bool | None = False
    gradient_checkpointing: bool = False
    lr_scheduler_type: str = "cosine"
    logging_steps: float = 10
    save_steps: float = 100
    save_total_limit: int | None = 1
    seed: int = 42


def load_reward_model(path: str):
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id  # needed to find the last token of each sequence
    return model, tokenizer


@torch.no_grad()
def score(model, tokenizer, conversations: list[list[dict]], batch_size: int = 32) -> list[float]:
    """Reward of each full conversation (prompt + reply), as the RewardTrainer saw them."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        out += model(**enc).logits[:, 0].float().tolist()
    return out


def pairwise_accuracy(model, tokenizer, ds) -> float:
    chosen = score(model, tokenizer, [r["prompt"] + r["chosen"] for r in ds])
    rejected = score(model, tokenizer, [r["prompt"] + r["rejected"] for r in ds])
    return sum(c > r for c, r in zip(chosen, rejected)) / len(ds)


def train(cfg: RewardStageConfig) -> dict:
    set_seed(cfg.seed)
    resolve_bf16(cfg)
    start = time.time()
    model, tokenizer = load_reward_model(cfg.model_name_or_path)
    require_chat_template(tokenizer, cfg.model_name_or_path)
    data = load_data(cfg.dataset, seed=cfg.seed)
    if not hasattr(data, "keys"):
        data = data.train_test_split(test_size=cfg.eval_fraction, seed=cfg.seed)
    require_columns(data["train"], ["chosen", "rejected"], f"dataset '{cfg.dataset}'")
    if len(data["test"]) == 0:
        raise DataError(f"dataset '{cfg.dataset}': no held-out pairs; raise eval_fraction")
    model.eval()
    acc_before = pairwise_accuracy(model, tokenizer, data["test"])
    trainer = RewardTrainer(model=model, args=cfg, train_dataset=data["train"], processing_class=tokenizer)
    result = trainer.train(resume_from_checkpoint=last_checkpoint(cfg.output_dir))
    model.eval()
    metrics = {"pairwise_accuracy": round(pairwise_accuracy(model, tokenizer, data["test"]), 4),
               "pairwise_accuracy_before": round(acc_before, 4), "eval_pairs": len(data["test"]),
               "train_loss": round(result.training_loss, 4)}
    if trainer.is_world_process_zero():
        trainer.save_model(cfg.output_dir)
        tokenizer.save_pretrained(cfg.output_dir)
        metrics["seconds"] = round(time.time() - start, 1)
        write_metrics(cfg.output_dir, metrics, trainer.state.log_history)
    return metrics


def main(argv: list[str]) -> int:
    config, rest = split_cli(argv)
    cfg = parse_config(RewardStageConfig, config, rest)
    print(json.dumps(train(cfg), indent=2))
    return 0
