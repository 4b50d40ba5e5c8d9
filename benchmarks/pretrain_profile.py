"""Where a pretrain step's time goes: torch.profiler over the tiny recipe's training step.

    python benchmarks/pretrain_profile.py                         # bf16 and fp32, the recipe's settings
    python benchmarks/pretrain_profile.py --dtypes bf16 --set '--attn_implementation eager'

The step is the pretrain stage's (model, batch, autocast, loss, grad clipping, the Trainer's AdamW
with its fused/foreach setting), written out as a loop so the profiler sees only the step. Each
op's self time goes to one bucket: the LM head and loss (ops on vocab-sized tensors), attention
(SDPA or the eager matmul/softmax on [batch, heads, T, *] tensors), the other matmuls, layer norm,
GELU, dtype casts (autocast), the optimizer and grad clipping, other elementwise work (residual
adds, bias-grad sums, embedding), and what no op accounts for (Python, dispatch, autograd: the
step's wall time minus the ops' self time). Figures are percentages of the step's wall time on
this process's thread; other work on the machine moves them (the load average is reported).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from chatstack.config import parse_config  # noqa: E402
from chatstack.hardware import training_attention, tune_cpu_allocator  # noqa: E402
from chatstack.model import build_model  # noqa: E402
from chatstack.pretrain import PretrainConfig  # noqa: E402

BUCKETS = [
    "matmul",
    "attention",
    "lm_head_and_loss",
    "layer_norm",
    "gelu",
    "casts",
    "optimizer",
    "grad_clip",
    "other_elementwise",
    "python_dispatch_autograd",
]


def bucket(evt, n_head: int, vocab: int) -> str:
    name = evt.name
    parents, p = set(), evt.cpu_parent
    while p is not None:
        parents.add(p.name)
        p = p.cpu_parent
    if "grad_clip" in parents:
        return "grad_clip"
    if "optimizer" in parents or name.startswith("Optimizer."):
        return "optimizer"
    shapes = [s for s in (evt.input_shapes or []) if isinstance(s, list)]
    if any(vocab in s for s in shapes) or "log_softmax" in name or "nll_loss" in name:
        return "lm_head_and_loss"
    if "scaled_dot_product" in name or "softmax" in name or any(len(s) == 4 and s[1] == n_head for s in shapes):
        return "attention"
    if name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"):
        return "matmul"
    if "layer_norm" in name:
        return "layer_norm"
    if "gelu" in name:
        return "gelu"
    if name in ("aten::copy_", "aten::_to_copy", "aten::to"):
        return "casts"
    return "other_elementwise"


def profile_step(cfg: PretrainConfig, tokenizer_dir: Path, steps: int) -> dict:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model_preset, tok, cfg.model_config, training_attention(cfg),
                        cfg.pad_vocab_multiple)
    model.train()
    opt_name = str(getattr(cfg.optim, "value", cfg.optim))
    fused = opt_name == "adamw_torch_fused"
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=fused or None)
    t0 = time.perf_counter()
    run = torch.compile(model) if cfg.torch_compile else model
    bs, T = cfg.per_device_train_batch_size, cfg.block_size
    x = torch.randint(len(tok), (bs, T), generator=torch.Generator().manual_seed(0))
    bf16 = bool(cfg.bf16)

    def step():
        with record_function("forward"), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = run(input_ids=x, labels=x).loss
        with record_function("backward"):
            loss.backward()
        with record_function("grad_clip"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        with record_function("optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)

    step()
    first = time.perf_counter() - t0
    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - t) * 1e6
    sums = defaultdict(float)
    ranges = {"forward", "backward", "grad_clip", "optimizer"}
    for evt in prof.events():
        if evt.name in ranges or evt.device_type != torch.autograd.DeviceType.CPU:
            continue
        sums[bucket(evt, model.config.n_head, model.config.vocab_size)] += evt.self_cpu_time_total
    sums["python_dispatch_autograd"] = max(0.0, wall - sum(sums.values()))
    return {
        "step_ms": round(wall / steps / 1000, 1),
        "tokens_per_second": round(bs * T * steps / wall * 1e6, 1),
        "first_step_s": round(first, 1),
        "percent": {b: round(100 * sums[b] / wall, 1) for b in BUCKETS},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(REPO / "recipes" / "tiny" / "pretrain.yaml"))
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: train the recipe's into a temp dir)")
    p.add_argument("--dtypes", default="bf16,fp32")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", default="", help="recipe overrides, e.g. --set '--attn_implementation eager'")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    recipe = Path(a.recipe)
    work = Path(tempfile.mkdtemp(prefix="pretrain_profile_"))
    tok_dir = Path(a.tokenizer) if a.tokenizer else None
    if tok_dir is None:
        from chatstack.tokenizer import TokenizerConfig, train_tokenizer

        tok_dir = work / "tokenizer"
        train_tokenizer(parse_config(TokenizerConfig, recipe.parent / "tokenizer.yaml", ["--output_dir", str(tok_dir)]))
    load = os.getloadavg()[0]
    result = {"recipe": str(recipe), "set": a.set, "threads": a.threads}
    for dtype in a.dtypes.split(","):
        cfg = parse_config(
            PretrainConfig,
            recipe,
            [
                "--output_dir",
                str(work / "out"),
                "--use_cpu",
                "true",
                "--bf16",
                str(dtype == "bf16").lower(),
                *shlex.split(a.set),
            ],
        )
        if cfg.cpu_allocator_tuning:
            tune_cpu_allocator()
        r = profile_step(cfg, tok_dir, a.steps)
        result[dtype] = r
        print(f"{dtype}: {r['step_ms']} ms/step, {r['tokens_per_second']} tokens/s")
        for b, v in r["percent"].items():
            print(f"  {b:26s} {v:5.1f} %")
    result["loadavg_start_end"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
