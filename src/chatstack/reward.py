"""Stage `reward`: a reward model trained on preference pairs with TRL's RewardTrainer.

A GPT2ForSequenceClassification (one score) initialised from the SFT model learns to score
the preferred reply above the rejected one (Bradley-Terry loss). It is what PPO optimises
against, and, being learned, what RL can hack.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer

from chatstack.data.loading import load_splits, require_columns
from chatstack.errors import DataError
from chatstack.stage import Trained, require_chat_template, run_stage, stage_main


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
    """Reward of each full conversation (prompt + reply), as the RewardTrainer saw them: padded
    on the right, as its collator pads, whatever side the tokenizer was saved with (GPT-2's
    positions count from the first token, so left padding shifts them and changes the score)."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    context = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, padding_side="right",
                        add_special_tokens=False, truncation=True, max_length=context)  # long HH chats: cut, as the trainer
        enc = enc.to(model.device)
        out += model(**enc).logits[:, 0].float().tolist()
    return out


def pairwise_accuracy(model, tokenizer, ds) -> float:
    chosen = score(model, tokenizer, [r["prompt"] + r["chosen"] for r in ds])
    rejected = score(model, tokenizer, [r["prompt"] + r["rejected"] for r in ds])
    return sum(c > r for c, r in zip(chosen, rejected)) / len(ds)


def prepare(cfg: RewardStageConfig) -> tuple:
    """(model, tokenizer, train pairs, held-out pairs) of the stage, checked."""
    model, tokenizer = load_reward_model(cfg.model_name_or_path)
    require_chat_template(tokenizer, cfg.model_name_or_path)
    train_ds, test_ds = load_splits(cfg.dataset, seed=cfg.seed, test_size=cfg.eval_fraction)
    require_columns(train_ds, ["chosen", "rejected"], f"dataset '{cfg.dataset}'")
    if test_ds is None or len(test_ds) == 0:
        raise DataError(f"dataset '{cfg.dataset}': no held-out pairs; raise eval_fraction")
    return model, tokenizer, train_ds, test_ds


def build_trainer(cfg: RewardStageConfig, prepared: tuple | None = None) -> tuple[RewardTrainer, object]:
    """The stage's RewardTrainer on the training pairs, and the held-out pairs; `fit` trains it
    (benchmarks/reward_throughput.py measures it). `prepared`: `prepare(cfg)` already made (fit
    scores the held-out pairs with the untrained model first)."""
    model, tokenizer, train_ds, test_ds = prepared or prepare(cfg)
    return RewardTrainer(model=model, args=cfg, train_dataset=train_ds, processing_class=tokenizer), test_ds


def fit(cfg: RewardStageConfig, resume_from: str | None) -> Trained:
    prepared = prepare(cfg)
    model, tokenizer, _, test_ds = prepared
    model.eval()
    acc_before = pairwise_accuracy(model, tokenizer, test_ds)
    trainer, _ = build_trainer(cfg, prepared)
    result = trainer.train(resume_from_checkpoint=resume_from)
    model.eval()
    metrics = {"pairwise_accuracy": round(pairwise_accuracy(model, tokenizer, test_ds), 4),
               "pairwise_accuracy_before": round(acc_before, 4), "eval_pairs": len(test_ds),
               "train_loss": round(result.training_loss, 4)}

    def save(out: str) -> None:
        trainer.save_model(out)
        tokenizer.save_pretrained(out)
    return Trained(metrics, save, trainer.state.log_history, is_main=trainer.is_world_process_zero())


def train(cfg: RewardStageConfig) -> dict:
    return run_stage(cfg, fit)


def main(argv: list[str]) -> int:
    return stage_main(RewardStageConfig, train, argv)
