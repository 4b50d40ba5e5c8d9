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


def test_the_reward_model_learns_a_preference_it_can_see(tmp_path):
    """The stage's trainer learns: pairs whose chosen reply always names the capital and whose
    rejected reply never does are told apart after a few steps (loss well under log 2)."""
    import json
    import math

    rows = [{"prompt": [{"role": "user", "content": f"What is the capital of country {i}?"}],
             "chosen": [{"role": "assistant", "content": f"The capital of country {i} is Paris."}],
             "rejected": [{"role": "assistant", "content": "zzz qqq xxx"}]} for i in range(64)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "pairs.yaml"
    spec.write_text(json.dumps({"files": [str(data)]}))
    cfg = RewardStageConfig(output_dir=str(tmp_path / "rm"), model_name_or_path=str(parrot_model()),
                            dataset=str(spec), max_steps=24, per_device_train_batch_size=8, learning_rate=1e-3,
                            use_cpu=True, report_to="none", save_strategy="no", logging_steps=8,
                            disable_tqdm=True, eval_fraction=0.1)
    set_seed(cfg.seed)
    trainer, _ = build_trainer(cfg)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 3 and losses[-1] < 0.5 * math.log(2) and losses[-1] < losses[0], losses
