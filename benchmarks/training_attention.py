"""Which attention kernel a tiny training step runs fastest with, per precision, in one process.

    python benchmarks/training_attention.py                 # the tiny preset, fp32 and bf16
    python benchmarks/training_attention.py --shapes 4x64,4x128,4x250,32x128 --rounds 3
    python benchmarks/training_attention.py --varied 240      # SFT-like: every micro-batch another length
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 python benchmarks/training_attention.py --varied 240   # oneDNN's default

A fresh model of the preset (random weights: speed does not depend on them) does forward +
backward (labels = inputs) on each batch shape with sdpa and with eager attention, in fp32 and
under bf16 autocast, the four in alternating rounds (best of `--reps` per round, median over
rounds). `--varied N`: N micro-batches of 4 rows, each of another length (20-250 tokens, as an
SFT stage's), two passes; in the second, oneDNN has compiled each shape's bf16 kernels where its
cache holds them all (ONEDNN_PRIMITIVE_CACHE_CAPACITY: set here as chatstack.hardware.resolve_bf16
sets it for bf16 stages, unless the environment names it). Then greedy generation (KV cache)
with both kernels. `chatstack.hardware.training_attention` ("auto") picks eager for bf16
training on a CPU and sdpa otherwise from what this prints. bf16 on a CPU without native bf16
is emulated (slow): skipped there unless asked with `--dtypes`. One compact JSON object on the
last line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chatstack.hardware import ONEDNN_CACHE_CAPACITY, cpu_has_fast_bf16, cpu_name  # noqa: E402
from chatstack.model import build_model  # noqa: E402

KERNELS = ("sdpa", "eager")


def step_ms(model, x: torch.Tensor, bf16: bool, reps: int) -> float:
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    step()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


@torch.no_grad()
def generate_s(model, prompts: torch.Tensor, new: int, bf16: bool) -> float:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        t = time.perf_counter()
        model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new, min_new_tokens=new,
                       do_sample=False, pad_token_id=0)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--shapes", default="4x64,4x128,4x250,32x128", help="batch x tokens, comma-separated")
    p.add_argument("--dtypes", default=None, help="fp32,bf16 (default: bf16 only where the CPU has it natively)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--varied", type=int, default=0, help="micro-batches of varied length (0: skip)")
    p.add_argument("--generate", default="64x40+48", help="prompts x prompt tokens + new tokens ('' to skip)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)  # as the stages set it (bf16)
    dtypes = a.dtypes.split(",") if a.dtypes else ["fp32", "bf16"] if cpu_has_fast_bf16() else ["fp32"]
    torch.manual_seed(0)
    models = {k: build_model(a.preset, None, {"vocab_size": a.vocab}, attn_implementation=k) for k in KERNELS}
    models["eager"].load_state_dict(models["sdpa"].state_dict())
    out: dict = {"cpu": cpu_name(), "native_bf16": cpu_has_fast_bf16(), "threads": a.threads, "preset": a.preset,
                 "train_ms": {}, "eager_speedup": {}}
    for shape in a.shapes.split(","):
        b, t = (int(v) for v in shape.split("x"))
        x = torch.randint(a.vocab, (b, t), generator=torch.Generator().manual_seed(0))
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(a.rounds):
            for dtype in dtypes:
                for k in KERNELS:
                    times.setdefault((dtype, k), []).append(step_ms(models[k], x, dtype == "bf16", a.reps))
        for dtype in dtypes:
            med = {k: statistics.median(times[(dtype, k)]) for k in KERNELS}
            out["train_ms"][f"{dtype}/{shape}"] = {k: round(v, 1) for k, v in med.items()}
            out["eager_speedup"][f"{dtype}/{shape}"] = round(med["sdpa"] / med["eager"], 3)
            print(f"train {dtype} {shape}: sdpa {med['sdpa']:.1f} ms, eager {med['eager']:.1f} ms "
                  f"(eager {med['sdpa'] / med['eager']:.2f}x)")
    if a.varied:
        rng = torch.Generator().manual_seed(2)
        lengths = torch.randint(20, 251, (a.varied,), generator=rng).tolist()
        batches = [torch.randint(a.vocab, (4, t), generator=rng) for t in lengths]
        out["onednn_primitive_cache_capacity"] = os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"]
        out["varied_s"] = {}
        for dtype in dtypes:
            for k in KERNELS:
                passes = []
                for _ in range(2):
                    t = time.perf_counter()
                    for x in batches:
                        step_ms(models[k], x, dtype == "bf16", 0)
                    passes.append(time.perf_counter() - t)
                out["varied_s"][f"{dtype}/{k}"] = [round(v, 2) for v in passes]
                print(f"varied {dtype} {k}: first pass {passes[0]:.2f} s, second {passes[1]:.2f} s "
                      f"({a.varied} micro-batches; oneDNN cache {out['onednn_primitive_cache_capacity']})")
    if a.generate:
        n, rest = a.generate.split("x")
        prompt_len, new = (int(v) for v in rest.split("+"))
        prompts = torch.randint(a.vocab, (int(n), prompt_len), generator=torch.Generator().manual_seed(1))
        for m in models.values():
            m.eval()
        gen: dict[str, list[float]] = {}
        for _ in range(a.rounds):
            for k in KERNELS:
                gen.setdefault(k, []).append(generate_s(models[k], prompts, new, "bf16" in dtypes))
        out["generate_s"] = {k: round(statistics.median(v), 3) for k, v in gen.items()}
        print(f"generate {a.generate} ({'bf16' if 'bf16' in dtypes else 'fp32'}): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in out["generate_s"].items()))
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
