"""The reward stage trains the trainer `chatstack.reward.build_trainer` makes (what
benchmarks/reward_throughput.py measures): from the same seed, two steps of that trainer and of
the stage's `fit` give the same loss, and the trainer holds the training pairs, tokenized."""
from __future__ import annotations

from helpers_chat_model import parrot_model
from transformers import set_seed
from trl import RewardTrainer

from chatstack.reward import RewardStageConfig, build_trainer, fit


def config(out) -> RewardStageConfig:
    return RewardStageConfig(output_dir=str(out), model_name_or_path=str(parrot_model()), max_steps=2,
                             per_device_train_batch_size=4, use_cpu=True, report_to="none", save_strategy="no",
                             logging_steps=1, disable_tqdm=True, eval_fraction=0.05)


def test_fit_trains_the_trainer_build_trainer_makes(tmp_path):
    cfg = config(tmp_path / "a")
    set_seed(cfg.seed)  # as run_stage seeds before fit: the score head is drawn when the model loads
    trainer, held_out = build_trainer(cfg)
    assert isinstance(trainer, RewardTrainer) and trainer.args is cfg
    assert {"chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names) and len(held_out) > 0
    loss = trainer.train().training_loss

    cfg = config(tmp_path / "b")
    set_seed(cfg.seed)
    metrics = fit(cfg, None).metrics
    assert metrics["train_loss"] == round(loss, 4)
