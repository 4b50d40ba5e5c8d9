"""What the machine can do fast. bf16 autocast pays only where the CPU has native bf16
(AVX512-BF16 / AMX): on an AVX2-only CPU torch emulates it and a training step is ~10-50x
slower than fp32 (README, "Measured variants")."""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

import torch

log = logging.getLogger("chatstack")


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), as the figures name their machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown"


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


# oneDNN JIT-compiles a bf16 kernel per op and tensor shape and keeps the last 1,024 by default. SFT
# micro-batches of 20-250 tokens make thousands, and with the default cache a bf16 step recompiles
# all the time, slower than fp32 (`python benchmarks/training_attention.py --varied 240`, with and
# without ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024; README, "Measured variants").
ONEDNN_CACHE_CAPACITY = "16384"


def resolve_bf16(args) -> None:
    """Turn off `bf16` on a CPU run where bf16 would be emulated, and say so; where it stays on,
    give oneDNN's kernel cache room for every shape of the run (unless the environment sets it)."""
    on_cpu = getattr(args, "use_cpu", False) or not torch.cuda.is_available()
    if getattr(args, "bf16", False) and on_cpu and not cpu_has_fast_bf16():
        print("[chatstack] bf16 requested but this CPU has no native bf16 (no AMX/AVX512-BF16): training in fp32")
        args.bf16 = False
        if getattr(args, "mixed_precision", None) == "bf16":  # TrainingArguments resolved it in __post_init__
            args.mixed_precision = "no"
    if getattr(args, "bf16", False) and on_cpu:
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)  # read at oneDNN's first kernel


def training_attention(args) -> str:
    """The attention kernel for a training step: the config's `attn_implementation` unless it is
    "auto"; then eager (plain matmuls and softmax) where a CPU trains under bf16 autocast, sdpa
    elsewhere. On an AMX Xeon torch's SDPA CPU kernels in bf16 make a tiny step slower than eager;
    in fp32 eager is no faster, and on GPUs sdpa runs flash attention (benchmarks/
    training_attention.py; README, "Measured variants"). Generation keeps sdpa, which decodes
    faster: no model folder records the training kernel."""
    requested = getattr(args, "attn_implementation", "auto")
    if requested != "auto":
        return requested
    on_cpu = getattr(args, "use_cpu", False) or not torch.cuda.is_available()
    return "eager" if on_cpu and getattr(args, "bf16", False) else "sdpa"


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2)


@lru_cache(maxsize=1)
def tune_cpu_allocator(trim_threshold: int = 1 << 30) -> bool:
    """Keep freed CPU tensor memory in the process instead of handing it back to the kernel.

    glibc serves large allocations (activations, logits, their grads) with mmap and returns them
    on free, so every training step page-faults its whole working set back in; with the thresholds
    raised it faults none (README, "Measured variants"; benchmarks/pretrain_throughput.py measures the
    step with and without). Allocations up to 32 MiB then come from the heap and freed memory
    up to `trim_threshold` stays mapped (the process keeps its peak footprint). Returns whether
    it applied (glibc only; a no-op elsewhere)."""
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
        return libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1 and ok
    except (OSError, AttributeError):
        return False


def restore_cpu_allocator() -> None:
    """glibc's default thresholds back (128 KiB; benchmarks toggle the tuning between rounds).
    Note: an explicit threshold turns glibc's dynamic threshold adjustment off."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt(M_MMAP_THRESHOLD, 128 << 10)
    libc.mallopt(M_TRIM_THRESHOLD, 128 << 10)
    tune_cpu_allocator.cache_clear()


def score_labelled_positions_on_cpu() -> bool:
    """Make TRL's fused LM head score only the positions that carry a label on a CPU too.

    TRL 1.16 (trl.trainer.utils.add_fused_lm_head, used by SFTTrainer, DPO and GRPO) projects
    only the labelled positions through the LM head on Triton devices, and every position
    elsewhere, so that compiled devices (Neuron) keep fixed tile shapes. A CPU runs eagerly, where
    a varying count costs nothing, and the tiny recipe's SFT batches label ~20% of positions (55%
    padding, prompts unlabelled): scoring them all, in its forward and again in its backward, made
    the SFT stage 0.76x a plain loop on the same batches (benchmarks/sft_throughput.py). The same
    log-probabilities come out either way, so losses and gradients are unchanged (tests/
    test_cpu_lm_head.py). The SFT and GRPO stages switch it on; it holds for the whole process.
    Returns whether it is on (False on a TRL without that decision)."""
    import trl.trainer.utils as trl_utils

    decide = getattr(trl_utils, "_use_triton", None)
    if decide is None:
        return False
    if getattr(decide, "keeps_cpu_compact", False):
        return True

    def compact(device: torch.device) -> bool:
        return device.type == "cpu" or decide(device)

    compact.keeps_cpu_compact = True
    compact.original = decide  # benchmarks/sft_throughput.py times TRL's own choice against it
    trl_utils._use_triton = compact
    return True
