"""Throughput of chatstack's pretrain stage against a plain PyTorch loop, in one process.

    python benchmarks/pretrain_throughput.py                       # tiny recipe, fp32 and bf16
    python benchmarks/pretrain_throughput.py --recipe recipes/micro/pretrain.yaml --dtypes fp32
    python benchmarks/pretrain_throughput.py --dtypes bf16 --variant '--torch_compile true' \
        --variant '--cpu_allocator_tuning false' --variant '--attn_implementation eager'

Measures tokens/s of the stage (chatstack's Trainer, data pipeline and callbacks, built by
`chatstack.pretrain.build_trainer` from the recipe) and of a plain loop (same model config,
same batch, the recipe's optimizer (Muon + AdamW, or AdamW) with the Trainer's settings, grad
clipping, LR schedule, batches indexed from a tensor) in alternating rounds, their ratio, the
stage's data-wait fraction (time inside the Trainer's batch fetching / step time), minor page
faults per step, and the achieved model FLOP/s (6N + 12·L·d·T per token) of both as fractions
of the two ceilings: this machine's matmul peak and the model's own matmul shapes run alone,
measured here with the same threads. Each `--variant` is a second stage with those overrides,
measured in the same rounds: its ratio to the recipe's stage per round and the extra seconds of
its first step (torch.compile's compile time). The allocator setting is process-wide and is
switched before each round.

bf16 is measured whatever the CPU: where it has no AMX/AVX512-BF16 (chatstack then trains in
fp32 automatically) the figures show why. Eval and checkpoints are off (not throughput). Other
work on the machine moves absolute figures; the ratios come from interleaved rounds in one
process, and the load average is reported. A summary per dtype, then one compact JSON object
on the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from transformers import TrainerCallback, get_scheduler  # noqa: E402

from chatstack.config import parse_config  # noqa: E402
from chatstack.hardware import (  # noqa: E402
    cpu_has_fast_bf16,
    cpu_name,
    restore_cpu_allocator,
    training_attention,
    tune_cpu_allocator,
)
from chatstack.model import build_model, count_parameters, flops_per_token  # noqa: E402
from chatstack.optim import muon_with_adamw  # noqa: E402
from chatstack.pretrain import PretrainConfig, build_trainer  # noqa: E402


def matmul_peak(dtype: torch.dtype, n: int, reps: int) -> float:
    """Best GFLOP/s of an n x n x n matmul over `reps` tries (after one warm-up)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def shape_ceiling(config, tokens: int, dtype: torch.dtype, reps: int = 3) -> float:
    """GFLOP/s of the model's own linear-layer matmuls (forward, grad-input, grad-weight of each
    Linear/Conv1D and the LM head at M = tokens per micro-batch), run alone: what the step could
    reach if everything but these matmuls were free."""
    d, v = config.n_embd, config.vocab_size
    layers = [(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)] * config.n_layer + [(d, v)]
    shapes = [s for k, n in layers for s in ((tokens, k, n), (tokens, n, k), (k, tokens, n))]
    mats = [(torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)) for m, k, n in set(shapes)]
    index = {s: i for i, s in enumerate(set(shapes))}
    for a, b in mats:
        a @ b
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        for s in shapes:
            a, b = mats[index[s]]
            a @ b
        best = min(best, time.perf_counter() - t)
    return sum(2 * m * k * n for m, k, n in shapes) / best / 1e9


class StepClock(TrainerCallback):
    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def stage_round(trainer, clock: StepClock, waits: list, warmup: int) -> tuple[float, float, float]:
    """One trainer.train(); returns (tokens/s, data-wait fraction) over the steps after `warmup`, and the
    seconds from train() to the end of the first step (torch.compile compiles there)."""
    clock.ends.clear()
    waits.clear()
    start = time.perf_counter()
    trainer.train()
    steps = len(clock.ends) - warmup
    elapsed = clock.ends[-1] - clock.ends[warmup - 1]
    wait = sum(w for t_end, w in waits if t_end > clock.ends[warmup - 1])
    return steps * trainer.args.tokens_per_step / elapsed, wait / elapsed, clock.ends[0] - start


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def plain_round(
    cfg: PretrainConfig, tokenizer, blocks: torch.Tensor, opt_defaults: dict, steps: int, warmup: int, bf16: bool
) -> tuple[float, float]:
    """The same training step written out in plain PyTorch."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model_preset, tokenizer, cfg.model_config, training_attention(cfg),
                        cfg.pad_vocab_multiple)
    model.train()
    if cfg.optimizer == "muon":  # the recipe's optimizer, so that the ratio measures the stage, not Muon
        opt = muon_with_adamw(model, cfg)
    else:
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.learning_rate,
            betas=(cfg.adam_beta1, cfg.adam_beta2),
            eps=cfg.adam_epsilon,
            foreach=opt_defaults.get("foreach"),
            fused=opt_defaults.get("fused"),
        )
    total = warmup + steps
    sched = get_scheduler(cfg.lr_scheduler_type, opt, num_warmup_steps=cfg.get_warmup_steps(total), num_training_steps=total)
    g = torch.Generator().manual_seed(cfg.seed)
    bs, accum = cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps
    wait, start = 0.0, None
    for step in range(total):
        if step == warmup:
            start, wait = time.perf_counter(), 0.0
        for _ in range(accum):
            t = time.perf_counter()
            x = blocks[torch.randint(len(blocks), (bs,), generator=g)]
            wait += time.perf_counter() - t
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(input_ids=x, labels=x).loss / accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - start
    return steps * cfg.tokens_per_step / elapsed, wait / elapsed


def build_stage(recipe: Path, tokenizer_dir: Path, out: Path, bf16: bool, steps: int, extra: list[str]):
    """The stage's Trainer from the recipe (+ overrides), its batch fetching timed."""
    cfg = parse_config(
        PretrainConfig,
        recipe,
        [
            "--output_dir",
            str(out),
            "--tokenizer_name_or_path",
            str(tokenizer_dir),
            "--max_steps",
            str(steps),
            "--eval_strategy",
            "no",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
            "--report_to",
            "none",
            "--use_cpu",
            "true",
            "--bf16",
            str(bf16).lower(),
            *extra,
        ],
    )
    cfg.sample_prompts = []
    if not cfg.cpu_allocator_tuning:
        restore_cpu_allocator()
    trainer, _ = build_trainer(cfg)  # build_trainer does not turn bf16 off: measured as asked
    clock, waits = StepClock(), []
    trainer.add_callback(clock)
    fetch = trainer.get_batch_samples

    def timed_fetch(*a, **k):
        t = time.perf_counter()
        r = fetch(*a, **k)
        waits.append((time.perf_counter(), time.perf_counter() - t))
        return r

    trainer.get_batch_samples = timed_fetch
    return cfg, trainer, clock, waits


def allocator(cfg: PretrainConfig) -> None:
    """The process-wide allocator setting this configuration trains with (toggled between rounds)."""
    if cfg.cpu_allocator_tuning:
        tune_cpu_allocator()
    else:
        restore_cpu_allocator()


def measure(
    recipe: Path,
    tokenizer_dir: Path,
    out: Path,
    bf16: bool,
    steps: int,
    warmup: int,
    rounds: int,
    extra: list[str],
    variants: list[str],
) -> dict:
    cfg, trainer, clock, waits = build_stage(recipe, tokenizer_dir, out / "stage", bf16, warmup + steps, extra)
    trainer.create_optimizer()
    opt = trainer.optimizer
    opt_defaults = dict(getattr(opt, "optimizer", opt).defaults)
    blocks = torch.tensor(trainer.train_dataset["input_ids"])
    tokenizer = trainer.processing_class
    others = {
        v: build_stage(recipe, tokenizer_dir, out / f"variant{i}", bf16, warmup + steps, [*extra, *shlex.split(v)])
        for i, v in enumerate(variants)
    }

    stage, plain, stage_wait, plain_wait, faults = [], [], [], [], []
    var = {v: {"rounds": [], "first_step_s": []} for v in variants}
    for _ in range(rounds):  # alternate, so load changes hit all alike
        allocator(cfg)
        p, pw = plain_round(cfg, tokenizer, blocks, opt_defaults, steps, warmup, bf16)
        f0 = minor_faults()
        s, sw, _first = stage_round(trainer, clock, waits, warmup)
        faults.append((minor_faults() - f0) / (warmup + steps))
        plain.append(p), plain_wait.append(pw), stage.append(s), stage_wait.append(sw)
        for v, (vcfg, vtrainer, vclock, vwaits) in others.items():
            allocator(vcfg)
            f0 = minor_faults()
            vs, _, first = stage_round(vtrainer, vclock, vwaits, warmup)
            var[v]["rounds"].append(vs)
            var[v]["first_step_s"].append(first)
            var[v].setdefault("faults", []).append((minor_faults() - f0) / (warmup + steps))
    allocator(cfg)
    model = trainer.model
    fpt = flops_per_token(model.config, cfg.block_size, count_parameters(model))
    s_med, p_med = statistics.median(stage), statistics.median(plain)
    step_s = cfg.tokens_per_step / s_med
    variants_out = {}
    for v, r in var.items():
        med = statistics.median(r["rounds"])
        ratios = [a / b for a, b in zip(r["rounds"], stage)]
        variants_out[v] = {
            "tokens_per_second": round(med, 1),
            "over_stage": round(statistics.median(ratios), 3),
            "rounds_over_stage": [round(x, 3) for x in ratios],
            # the first step of the first round minus a steady step: compile time (torch_compile)
            "first_step_extra_s": round(r["first_step_s"][0] - cfg.tokens_per_step / med, 1),
            "minor_faults_per_step": round(statistics.median(r["faults"])),
        }
    return {
        "stage_tokens_per_second": round(s_med, 1),
        "plain_loop_tokens_per_second": round(p_med, 1),
        "stage_over_plain": round(s_med / p_med, 3),
        "stage_rounds": [round(x, 1) for x in stage],
        "plain_rounds": [round(x, 1) for x in plain],
        "stage_over_plain_rounds": [round(a / b, 3) for a, b in zip(stage, plain)],
        "stage_step_ms": round(step_s * 1000, 1),
        "stage_data_wait_fraction": round(statistics.median(stage_wait), 4),
        "plain_data_wait_fraction": round(statistics.median(plain_wait), 4),
        "stage_minor_faults_per_step": round(statistics.median(faults)),
        "stage_achieved_gflops": round(s_med * fpt / 1e9, 2),
        "plain_achieved_gflops": round(p_med * fpt / 1e9, 2),
        "optimizer": {
            "class": type(getattr(opt, "optimizer", opt)).__name__,
            "fused": opt_defaults.get("fused"),
            "foreach": opt_defaults.get("foreach"),
        },
        "settings": {
            "attn_implementation": training_attention(cfg),
            "torch_compile": cfg.torch_compile,
            "cpu_allocator_tuning": cfg.cpu_allocator_tuning,
            "optim": str(getattr(cfg.optim, "value", cfg.optim)),
        },
        "variants": variants_out,
        "_fpt": fpt,
        "_cfg": cfg,
        "_vocab": model.config.vocab_size,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(REPO / "recipes" / "tiny" / "pretrain.yaml"))
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: train the recipe's into a temp dir)")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--steps", type=int, default=12, help="timed steps per round (fp32)")
    p.add_argument("--bf16_steps", type=int, default=6, help="timed steps per round (bf16)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--bf16_rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the tiny recipe's machine has 2 cores)")
    p.add_argument("--set", default="", help="extra recipe overrides, e.g. --set '--per_device_train_batch_size 64'")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help=(
            "overrides of a second stage measured in the same rounds against the recipe's, repeatable: "
            "--variant '--torch_compile true' --variant '--cpu_allocator_tuning false' "
            "--variant '--attn_implementation eager'"
        ),
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    recipe = Path(a.recipe)
    work = Path(tempfile.mkdtemp(prefix="pretrain_bench_"))
    load_start = os.getloadavg()

    tok_dir = Path(a.tokenizer) if a.tokenizer else None
    if tok_dir is None:
        from chatstack.tokenizer import TokenizerConfig, train_tokenizer

        tok_dir = work / "tokenizer"
        train_tokenizer(parse_config(TokenizerConfig, recipe.parent / "tokenizer.yaml", ["--output_dir", str(tok_dir)]))

    threads = torch.get_num_threads()
    peaks = {"fp32": round(max(matmul_peak(torch.float32, n, 5) for n in (512, 1024, 2048)), 1)}
    if "bf16" in a.dtypes:
        peaks["bf16"] = round(matmul_peak(torch.bfloat16, 1024 if cpu_has_fast_bf16() else 512, 3), 1)

    result = {
        "recipe": str(recipe),
        "torch": torch.__version__,
        "threads": threads,
        "cpu": cpu_name(),
        "native_bf16": cpu_has_fast_bf16(),
        "matmul_peak_gflops": peaks,
    }
    for dtype in a.dtypes.split(","):
        bf16 = dtype == "bf16"
        r = measure(
            recipe,
            tok_dir,
            work / dtype,
            bf16,
            a.bf16_steps if bf16 else a.steps,
            1 if bf16 else a.warmup,
            a.bf16_rounds if bf16 else a.rounds,
            shlex.split(a.set),
            a.variant,
        )
        cfg, fpt = r.pop("_cfg"), r.pop("_fpt")
        result.setdefault(
            "model",
            {
                "preset": cfg.model_preset,
                "flops_per_token": fpt,
                "vocab_size": r.pop("_vocab"),
                "batch": [cfg.per_device_train_batch_size, cfg.block_size],
                "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
                "tokens_per_step": cfg.tokens_per_step,
            },
        )
        r.pop("_vocab", None)
        tokens = cfg.per_device_train_batch_size * cfg.block_size
        from chatstack.model import gpt2_config

        conf = gpt2_config(
            cfg.model_preset, None, cfg.model_config, cfg.pad_vocab_multiple, vocab_size=result["model"].get("vocab_size")
        )
        ceiling = shape_ceiling(conf, tokens, torch.bfloat16 if bf16 else torch.float32, 3)
        r["model_matmul_shapes_gflops"] = round(ceiling, 1)
        peak = peaks["bf16" if bf16 else "fp32"]
        for who in ("stage", "plain"):
            r[f"{who}_fraction_of_{dtype}_matmul_peak"] = round(r[f"{who}_achieved_gflops"] / peak, 3)
            r[f"{who}_fraction_of_model_matmul_shapes"] = round(r[f"{who}_achieved_gflops"] / ceiling, 3)
        if bf16 and not cpu_has_fast_bf16():
            r["note"] = (
                "no AMX/AVX512-BF16: bf16 matmuls are emulated (slower than fp32), so chatstack trains in "
                "fp32 here; the bf16 'peak' is the emulated matmul, which the model's non-matmul work "
                "can exceed"
            )
        result[dtype] = r
        print(
            f"{dtype}: stage {r['stage_tokens_per_second']:,.0f} tokens/s, plain loop "
            f"{r['plain_loop_tokens_per_second']:,.0f} (stage/plain {r['stage_over_plain']}); stage "
            f"{r[f'stage_fraction_of_{dtype}_matmul_peak']:.0%} of the {dtype} matmul peak ({peak:,.0f} GFLOP/s), "
            f"{r['stage_fraction_of_model_matmul_shapes']:.0%} of the model's matmul shapes ({ceiling:,.0f}); plain "
            f"{r[f'plain_fraction_of_{dtype}_matmul_peak']:.0%} / {r['plain_fraction_of_model_matmul_shapes']:.0%}",
            flush=True,
        )
        for v, vr in r["variants"].items():
            print(
                f"  variant {v!r}: {vr['over_stage']}x the recipe's stage (rounds {vr['rounds_over_stage']}), "
                f"first step +{vr['first_step_extra_s']} s, {vr['minor_faults_per_step']:,} minor faults/step "
                f"(recipe {r['stage_minor_faults_per_step']:,})",
                flush=True,
            )
    result["loadavg_start_end"] = [round(x, 2) for x in (*load_start[:1], os.getloadavg()[0])]
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
