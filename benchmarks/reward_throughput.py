"""Throughput of chatstack's reward-model stage against a plain PyTorch loop on the same batches, in one process.

    python benchmarks/reward_throughput.py                    # tiny recipe, 20 timed steps, 3 rounds
    python benchmarks/reward_throughput.py --steps 40 --rounds 5 --set '--per_device_train_batch_size 32'

The stage is TRL's RewardTrainer exactly as `chatstack.reward.build_trainer` makes it from
recipes/tiny/reward.yaml (the tiny_preferences pairs through chatstack.data, the chat template,
pairs longer than max_length dropped), on a sequence-classification head (one score) over a
randomly initialised tiny-preset GPT-2 and the tiny tokenizer (trained here by the tokenizer
stage into a temp dir unless `--tokenizer` names one); the head is drawn once and saved, so both
load the same weights. The reference is a plain loop over the collated batches of the trainer's
own dataloader (the same sequence `trainer.train()` draws: checked), each step: chosen and
rejected forward together through the same model (as the collator stacks them), the loss TRL's
RewardTrainer.compute_loss computes (-logsigmoid(r_chosen - r_rejected [- margin]).mean(), plus
center_rewards_coefficient * mean((r_chosen + r_rejected)^2) when set), backward, grad clipping,
the trainer's optimizer settings (AdamW, fused/foreach as it builds it) and LR schedule, dropout
off where the trainer turns it off (disable_dropout). Both start from the same weights; the loss
of both on the first batch is compared before any step. Rounds alternate in A B, B A order so
other load on the machine hits both alike; tokens/s counts real (unpadded) tokens of chosen +
rejected, over the steps after `--warmup`; the ratio is the median of the per-round ratios.
Eval and checkpoints are off. One compact JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pretrain_throughput import StepClock  # noqa: E402 (the same per-step clock)
from sft_throughput import add_round_args, bench_tokenizer, stage_round  # noqa: E402 (the same tokenizer and stage round)
from transformers import AutoModelForSequenceClassification, get_scheduler  # noqa: E402

from chatstack.config import parse_config  # noqa: E402
from chatstack.hardware import cpu_name  # noqa: E402
from chatstack.model import build_model  # noqa: E402
from chatstack.reward import RewardStageConfig, build_trainer, load_reward_model  # noqa: E402


def plain_loss(model, batch: dict, center: float | None) -> torch.Tensor:
    """The Bradley-Terry loss of RewardTrainer.compute_loss: the batch holds the chosen rows, then the rejected."""
    rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    chosen, rejected = torch.chunk(rewards.squeeze(-1), chunks=2)
    margin = batch["margin"] if "margin" in batch else 0.0
    loss = -F.logsigmoid(chosen - rejected - margin).mean()
    if center is not None:
        loss = loss + center * torch.mean((chosen + rejected) ** 2)
    return loss


def plain_model(base: Path, pad_token_id: int, no_dropout: bool):
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.config.pad_token_id = pad_token_id  # the last non-pad token of each row is scored
    if no_dropout:  # as the RewardTrainer does (disable_dropout)
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    return model.train()


def plain_round(base: Path, cfg: RewardStageConfig, pad_id: int, opt_defaults: dict, batches: list[dict],
                warmup: int) -> float:
    """The stage's training step written out in plain PyTorch, over the trainer's batches; tokens/s."""
    model = plain_model(base, pad_id, cfg.disable_dropout)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon,
        foreach=opt_defaults.get("foreach"), fused=opt_defaults.get("fused"),
    )
    total = len(batches)
    sched = get_scheduler(cfg.lr_scheduler_type, opt, num_warmup_steps=cfg.get_warmup_steps(total),
                          num_training_steps=total)
    start = None
    for step, batch in enumerate(batches):
        if step == warmup:
            start = time.perf_counter()
        plain_loss(model, batch, cfg.center_rewards_coefficient).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return sum(int(b["attention_mask"].sum()) for b in batches[warmup:]) / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(REPO / "recipes" / "tiny" / "reward.yaml"))
    add_round_args(p)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    recipe = Path(a.recipe)
    work = Path(tempfile.mkdtemp(prefix="reward_bench_"))
    load_start = os.getloadavg()[0]

    tokenizer = bench_tokenizer(recipe, a.tokenizer, work)
    torch.manual_seed(0)
    lm = work / "lm"
    build_model(a.preset, tokenizer).save_pretrained(lm)
    tokenizer.save_pretrained(lm)
    # the score head is drawn once here and saved: the stage and the plain loop load the same weights
    base = work / "base"
    rm, rm_tok = load_reward_model(str(lm))
    rm.save_pretrained(base)
    rm_tok.save_pretrained(base)
    del rm

    total = a.warmup + a.steps
    cfg = parse_config(RewardStageConfig, recipe, [
        "--output_dir", str(work / "stage"), "--model_name_or_path", str(base), "--max_steps", str(total),
        "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
        "--logging_steps", str(total), "--use_cpu", "true", *shlex.split(a.set)])
    trainer, _ = build_trainer(cfg)
    pad_id = trainer.processing_class.pad_token_id
    clock, seen = StepClock(), []
    trainer.add_callback(clock)
    compute_loss = trainer.compute_loss

    def counted(model, inputs, *args, **kwargs):
        if model.training:
            seen.append(int(inputs["attention_mask"].sum()))
        return compute_loss(model, inputs, *args, **kwargs)

    trainer.compute_loss = counted
    it = iter(trainer.get_train_dataloader())
    batches = [next(it) for _ in range(total)]
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    positions = sum(b["input_ids"].numel() for b in batches)

    # the loss of both on the first batch, same weights, before any step (train mode: as in training)
    trainer.model.train()
    with torch.no_grad():
        stage_loss0 = float(compute_loss(trainer.model, dict(batches[0])))
        ref = plain_model(base, pad_id, cfg.disable_dropout)
        plain_loss0 = float(plain_loss(ref, batches[0], cfg.center_rewards_coefficient))
    same_weights = all(torch.equal(x, y) for x, y in zip(trainer.model.state_dict().values(), ref.state_dict().values()))
    del ref

    trainer.create_optimizer()
    opt_defaults = dict(getattr(trainer.optimizer, "optimizer", trainer.optimizer).defaults)
    stage, plain = [], []
    stage_tokens = None
    for r in range(a.rounds):  # A B, B A, ...
        for who in (("stage", "plain") if r % 2 == 0 else ("plain", "stage")):
            if who == "stage":
                stage.append(stage_round(trainer, clock, seen, a.warmup))
                stage_tokens = sum(seen)
            else:
                plain.append(plain_round(base, cfg, pad_id, opt_defaults, batches, a.warmup))
    ratios = [s / q for s, q in zip(stage, plain)]
    result = {
        "recipe": str(recipe),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "trl": __import__("trl").__version__,
        "transformers": __import__("transformers").__version__,
        "batch_pairs": cfg.per_device_train_batch_size,
        "max_length": cfg.max_length,
        "train_pairs": len(trainer.train_dataset),
        "steps": a.steps,
        "warmup": a.warmup,
        "rounds": a.rounds,
        "stage_tokens_per_second": round(statistics.median(stage), 1),
        "plain_loop_tokens_per_second": round(statistics.median(plain), 1),
        "stage_over_plain": round(statistics.median(ratios), 3),
        "stage_rounds": [round(x, 1) for x in stage],
        "plain_rounds": [round(x, 1) for x in plain],
        "stage_over_plain_rounds": [round(x, 3) for x in ratios],
        "same_batches": stage_tokens == real,
        "same_weights_at_start": same_weights,
        "real_token_fraction": round(real / positions, 3),
        "padded_length_mean": round(statistics.mean(b["input_ids"].shape[1] for b in batches), 1),
        "loss_step0": {"stage": round(stage_loss0, 6), "plain": round(plain_loss0, 6),
                       "abs_diff": float(f"{abs(stage_loss0 - plain_loss0):.2g}")},
        "center_rewards_coefficient": cfg.center_rewards_coefficient,
        "margin_column": "margin" in batches[0],
        "loadavg_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }
    print(f"stage {result['stage_tokens_per_second']:,.0f} tokens/s, plain loop "
          f"{result['plain_loop_tokens_per_second']:,.0f} (stage/plain {result['stage_over_plain']}, rounds "
          f"{result['stage_over_plain_rounds']}); loss at step 0 {stage_loss0:.6f} vs {plain_loss0:.6f}", flush=True)
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
