"""What the machine can do fast. bf16 autocast pays only where the CPU has native bf16
(AVX512-BF16 / AMX): on an AVX2-only CPU torch emulates it and a training step is ~10-50x
slower than fp32 (README, "Measured variants")."""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import torch

log = logging.getLogger("chatstack")


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_bf16(args) -> None:
    """Turn off `bf16` on a CPU run where bf16 would be emulated, and say so."""
    on_cpu = getattr(args, "use_cpu", False) or not torch.cuda.is_available()
    if getattr(args, "bf16", False) and on_cpu and not cpu_has_fast_bf16():
        print("[chatstack] bf16 requested but this CPU has no native bf16 (no AMX/AVX512-BF16): training in fp32")
        args.bf16 = False
        if getattr(args, "mixed_precision", None) == "bf16":  # TrainingArguments resolved it in __post_init__
            args.mixed_precision = "no"
