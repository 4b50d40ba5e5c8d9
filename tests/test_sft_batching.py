"""The tiny assistant's batching (recipes/tiny/assistant.yaml: `train_sampling_strategy:
batch_rebalance` with gradient accumulation): each optimizer step is a random draw of rows, cut
into micro-batches of similar length, and its gradient is that of the same rows in one batch
(the sum over labelled tokens divided by the step's count), so only the padding changes.
`group_by_length` instead makes each step's rows similar in length, which reweights the mixture
(its short rows count more per token) and broke the GRPO lesson (README, "Measured variants")."""
from __future__ import annotations

import json
import random

import torch
from helpers_tiny_model import build_tiny_model

from chatstack.config import parse_config
from chatstack.sft import SFTStageConfig, build_trainer


def _conversations(path, n: int = 24) -> None:
    rng = random.Random(0)
    words = ["cat", "river", "blue", "seven", "window", "north", "apple", "quiet"]
    with open(path, "w") as f:
        for i in range(n):
            reply = " ".join(rng.choice(words) for _ in range(1 + (i * 7) % 40))  # 1 to 40 words
            msgs = [{"role": "user", "content": f"Say something {i}."}, {"role": "assistant", "content": reply}]
            f.write(json.dumps({"messages": msgs}) + "\n")


def _merge(batches: list[dict], pad_id: int) -> dict:
    width = max(b["input_ids"].shape[1] for b in batches)
    fill = {"input_ids": pad_id, "labels": -100}
    return {k: torch.cat([torch.nn.functional.pad(b[k], (0, width - b[k].shape[1]), value=fill.get(k, 0))
                          for b in batches]) for k in batches[0]}


def test_a_step_of_length_balanced_micro_batches_has_the_gradient_of_one_batch(tmp_path):
    model_dir = build_tiny_model(tmp_path / "model")
    _conversations(tmp_path / "chats.jsonl")
    (tmp_path / "chats.yaml").write_text(f"files: [{tmp_path / 'chats.jsonl'}]\ncolumns: [messages]\n")
    cfg = parse_config(SFTStageConfig, None, [
        "--model_name_or_path", str(model_dir), "--dataset", str(tmp_path / "chats.yaml"),
        "--output_dir", str(tmp_path / "out"), "--per_device_train_batch_size", "4",
        "--gradient_accumulation_steps", "2", "--train_sampling_strategy", "batch_rebalance",
        "--max_length", "128", "--assistant_only_loss", "true", "--use_cpu", "true", "--bf16", "false",
        "--report_to", "none", "--eval_questions", "0", "--eval_conversations", "false"])
    trainer, _ = build_trainer(cfg)
    model = trainer.model
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    steps = iter(trainer.get_train_dataloader())
    micro, num_items = trainer.get_batch_samples(steps, cfg.gradient_accumulation_steps, torch.device("cpu"))
    rows = [len(b["input_ids"]) for b in micro]
    assert len(micro) == 2 and sum(rows) == 8  # one optimizer step: 8 rows in 2 micro-batches
    whole = _merge(micro, trainer.processing_class.pad_token_id)
    real = int(whole["attention_mask"].sum())
    assert sum(b["input_ids"].numel() for b in micro) < whole["input_ids"].numel()  # less padding
    assert real == sum(int(b["attention_mask"].sum()) for b in micro)

    model.zero_grad()
    for b in micro:  # the trainer's own step: each micro-batch's summed loss over the step's count
        trainer.training_step(model, b, num_items)
    stepped = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    trainer.compute_loss(model, whole).backward()  # the same rows as one batch: the mean over its tokens
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(stepped[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
