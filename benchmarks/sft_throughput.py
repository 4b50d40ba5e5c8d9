"""Throughput of chatstack's SFT stage against a plain PyTorch loop on the same batches, in one process.

    python benchmarks/sft_throughput.py                    # tiny recipe, 20 timed steps, 3 rounds
    python benchmarks/sft_throughput.py --steps 40 --rounds 5 --set '--max_length 128'

The stage is TRL's SFTTrainer exactly as `chatstack.sft.build_trainer` makes it from
recipes/tiny/sft.yaml (assistant-only loss, the tiny_sft mixture through chatstack.data, the
chat template), on a randomly initialised tiny-preset GPT-2 and the tiny tokenizer (trained
here by the tokenizer stage into a temp dir unless `--tokenizer` names one). The reference is a
plain loop over the collated batches of the trainer's own dataloader (the same sequence
`trainer.train()` draws: checked), each step: forward to the logits, mean cross-entropy on the
shifted assistant-only labels, backward, grad clipping, the trainer's optimizer settings
(AdamW, fused/foreach as it builds it) and LR schedule, in the stage's precision and attention
kernel (bf16 autocast and eager attention where the CPU has native bf16:
chatstack.hardware.resolve_bf16, training_attention). Both start from the same weights; the
loss of both on the first batch is compared before any step. Rounds alternate in A B, B A
order so other load on the machine hits both alike; tokens/s counts real (unpadded) tokens,
over the steps after `--warmup`; the ratio is the median of the per-round ratios. Eval and
checkpoints are off. One compact JSON object on the last line.

A third contender, `trl_default`, is the same trainer with TRL's own choice of LM-head positions
on a CPU (every position, not only the labelled ones: chatstack.hardware.
score_labelled_positions_on_cpu), in the same rounds: the stage before and after that switch.
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
import trl.trainer.utils as trl_utils

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pretrain_throughput import StepClock  # noqa: E402 (the same per-step clock)
from transformers import AutoModelForCausalLM, AutoTokenizer, get_scheduler  # noqa: E402

from chatstack.config import parse_config  # noqa: E402
from chatstack.hardware import cpu_name, resolve_bf16, training_attention  # noqa: E402
from chatstack.model import build_model  # noqa: E402
from chatstack.sft import SFTStageConfig, build_trainer  # noqa: E402


def plain_loss(model, batch: dict) -> torch.Tensor:
    """Mean next-token cross-entropy over the assistant-only labels (-100 elsewhere), from full logits."""
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    labels = batch["labels"][:, 1:]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)


def plain_round(base: Path, cfg: SFTStageConfig, opt_defaults: dict, batches: list[dict], warmup: int) -> float:
    """The stage's training step written out in plain PyTorch, over the trainer's batches, in the
    stage's precision and attention kernel (bf16 autocast and eager where the CPU has bf16); tokens/s."""
    model = AutoModelForCausalLM.from_pretrained(base, attn_implementation=training_attention(cfg))
    model.train()
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
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cfg.bf16)):
            loss = plain_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return sum(int(b["attention_mask"].sum()) for b in batches[warmup:]) / (time.perf_counter() - start)


def stage_round(trainer, clock: StepClock, seen: list, warmup: int, every_position: bool = False) -> float:
    """One trainer.train() of max_steps; tokens/s over the steps after `warmup`. `every_position`:
    with TRL's own choice of LM-head positions on a CPU (all of them)."""
    clock.ends.clear()
    seen.clear()
    patched = trl_utils._use_triton
    if every_position:
        trl_utils._use_triton = getattr(patched, "original", patched)
    try:
        trainer.train()
    finally:
        trl_utils._use_triton = patched
    return sum(seen[warmup:]) / (clock.ends[-1] - clock.ends[warmup - 1])


def add_round_args(p: argparse.ArgumentParser) -> None:
    """The options a stage-against-plain-loop benchmark shares (this one and reward_throughput.py)."""
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: train the recipe's into a temp dir)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, i.e. OMP_NUM_THREADS)")
    p.add_argument("--set", default="", help="extra stage overrides, e.g. --set '--per_device_train_batch_size 32'")


def bench_tokenizer(recipe: Path, tokenizer_dir: str | None, work: Path):
    """The tokenizer folder given, or the recipe's tokenizer stage trained into `work`."""
    tok_dir = Path(tokenizer_dir) if tokenizer_dir else work / "tokenizer"
    if not tokenizer_dir:
        from chatstack.tokenizer import TokenizerConfig, train_tokenizer

        train_tokenizer(parse_config(TokenizerConfig, recipe.parent / "tokenizer.yaml", ["--output_dir", str(tok_dir)]))
    return AutoTokenizer.from_pretrained(tok_dir)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(REPO / "recipes" / "tiny" / "sft.yaml"))
    add_round_args(p)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    recipe = Path(a.recipe)
    work = Path(tempfile.mkdtemp(prefix="sft_bench_"))
    load_start = os.getloadavg()[0]

    tokenizer = bench_tokenizer(recipe, a.tokenizer, work)
    torch.manual_seed(0)
    base = work / "base"
    build_model(a.preset, tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)

    total = a.warmup + a.steps
    cfg = parse_config(SFTStageConfig, recipe, [
        "--output_dir", str(work / "stage"), "--model_name_or_path", str(base), "--max_steps", str(total),
        "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
        "--logging_steps", str(total), "--use_cpu", "true", *shlex.split(a.set)])
    resolve_bf16(cfg)  # as the stage runs: fp32 where bf16 would be emulated
    trainer, _ = build_trainer(cfg)
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
    labelled = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)

    # the loss of both on the first batch, same weights, before any step (train mode: as in training)
    trainer.model.train()
    with torch.no_grad():
        stage_loss0 = float(compute_loss(trainer.model, dict(batches[0])))
        patched = trl_utils._use_triton
        trl_utils._use_triton = getattr(patched, "original", patched)
        default_loss0 = float(compute_loss(trainer.model, dict(batches[0])))
        trl_utils._use_triton = patched
        ref = AutoModelForCausalLM.from_pretrained(
            base, attn_implementation=training_attention(cfg)).train()
        plain_loss0 = float(plain_loss(ref, batches[0]))
    del ref

    trainer.create_optimizer()
    opt_defaults = dict(getattr(trainer.optimizer, "optimizer", trainer.optimizer).defaults)
    stage, plain, default = [], [], []
    for r in range(a.rounds):  # A B C, C B A, ...
        order = ("stage", "plain", "trl_default") if r % 2 == 0 else ("trl_default", "plain", "stage")
        for who in order:
            if who == "stage":
                stage.append(stage_round(trainer, clock, seen, a.warmup))
                stage_tokens = sum(seen)
            elif who == "trl_default":
                default.append(stage_round(trainer, clock, seen, a.warmup, every_position=True))
            else:
                plain.append(plain_round(base, cfg, opt_defaults, batches, a.warmup))
    ratios = [s / q for s, q in zip(stage, plain)]
    default_ratios = [s / q for s, q in zip(default, plain)]
    result = {
        "recipe": str(recipe),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "trl": __import__("trl").__version__,
        "transformers": __import__("transformers").__version__,
        "batch": [cfg.per_device_train_batch_size, cfg.max_length],
        "steps": a.steps,
        "warmup": a.warmup,
        "rounds": a.rounds,
        "stage_tokens_per_second": round(statistics.median(stage), 1),
        "plain_loop_tokens_per_second": round(statistics.median(plain), 1),
        "stage_over_plain": round(statistics.median(ratios), 3),
        "stage_rounds": [round(x, 1) for x in stage],
        "plain_rounds": [round(x, 1) for x in plain],
        "stage_over_plain_rounds": [round(x, 3) for x in ratios],
        "trl_default_tokens_per_second": round(statistics.median(default), 1),
        "trl_default_over_plain": round(statistics.median(default_ratios), 3),
        "trl_default_over_plain_rounds": [round(x, 3) for x in default_ratios],
        "same_batches": stage_tokens == real,
        "real_token_fraction": round(real / positions, 3),
        "label_token_fraction": round(labelled / real, 3),
        "loss_step0": {"stage": round(stage_loss0, 6), "plain": round(plain_loss0, 6),
                       "trl_default": round(default_loss0, 6),
                       "abs_diff": float(f"{abs(stage_loss0 - plain_loss0):.2g}")},
        "loadavg_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }
    print(f"stage {result['stage_tokens_per_second']:,.0f} tokens/s, plain loop "
          f"{result['plain_loop_tokens_per_second']:,.0f} (stage/plain {result['stage_over_plain']}, rounds "
          f"{result['stage_over_plain_rounds']}; TRL's default LM-head positions {result['trl_default_over_plain']}); "
          f"loss at step 0 {stage_loss0:.6f} vs {plain_loss0:.6f}", flush=True)
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
