"""What a pretraining run will cost, computed before any data or weight is touched: the
gradient accumulation that a global batch in tokens implies, and `--dry_run true`'s report
(parameter count, memory per device for the sharding in use, tokens/s estimates at an
assumed MFU). The model is built on the meta device, so a 350M preset sizes on a laptop.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoTokenizer

from chatstack.errors import ConfigError
from chatstack.hardware import training_attention
from chatstack.model import GPT2_VOCAB, build_model, count_parameters, flops_per_token, gpu_bf16_peak, memory_per_device

if TYPE_CHECKING:
    from chatstack.pretrain import PretrainConfig


def set_accumulation(cfg: PretrainConfig, processes: int | None = None) -> None:
    """gradient_accumulation_steps from global_batch_tokens (which must divide evenly)."""
    if not cfg.global_batch_tokens:
        return
    processes = processes or cfg.world_size
    per_pass = cfg.per_device_train_batch_size * cfg.block_size * processes
    if cfg.global_batch_tokens % per_pass:
        raise ConfigError(f"global_batch_tokens {cfg.global_batch_tokens} is not a multiple of per_device_train_batch_size "
                          f"x block_size x processes = {cfg.per_device_train_batch_size} x {cfg.block_size} x "
                          f"{processes} = {per_pass}")
    cfg.gradient_accumulation_steps = cfg.global_batch_tokens // per_pass


def sharding_of(cfg: PretrainConfig) -> str:
    """none | zero2 | zero3 | fsdp, from the accelerate launch environment or the config."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" or cfg.fsdp:
        return "fsdp"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" or cfg.deepspeed:
        stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "")
        return "zero3" if stage == "3" else "zero2" if stage in ("1", "2") else "zero2"
    return "none"


def dry_run(cfg: PretrainConfig) -> dict:
    """The run's size and cost, computed without data or weights (the model is built on the meta device)."""
    tok_path = Path(cfg.tokenizer_name_or_path)
    note = None
    if tok_path.exists():
        tokenizer = AutoTokenizer.from_pretrained(tok_path)
    else:
        tokenizer = None
        note = f"tokenizer {tok_path} not found (run the tokenizer stage): sized with GPT-2's vocabulary of {GPT2_VOCAB}"
    overrides = dict(cfg.model_config or {})
    if tokenizer is None:
        overrides.setdefault("vocab_size", GPT2_VOCAB)
    world = cfg.dry_run_processes or cfg.world_size
    set_accumulation(cfg, world)
    tokens_per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world * cfg.block_size
    model = build_model(cfg.model_preset, tokenizer, overrides, training_attention(cfg),
                        cfg.pad_vocab_multiple,
                        device="meta")
    config = model.config
    n = count_parameters(model)
    unpadded = n - (config.vocab_size - (len(tokenizer) if tokenizer else overrides["vocab_size"])) * config.n_embd
    fpt = flops_per_token(config, cfg.block_size, n)
    sharding = sharding_of(cfg)
    bf16 = bool(cfg.bf16)
    mem = memory_per_device(config, n, cfg.per_device_train_batch_size, cfg.block_size, bf16, sharding, world)
    report = {
        "model_preset": cfg.model_preset, "parameters": n, "parameters_unpadded_vocab": unpadded,
        "parameters_millions": round(n / 1e6, 2), "vocab_size": config.vocab_size,
        "layers_heads_width_context": [config.n_layer, config.n_head, config.n_embd, config.n_positions],
        "flops_per_token": fpt, "precision": "bf16" if bf16 else "fp32",
        "micro_batch": cfg.per_device_train_batch_size, "block_size": cfg.block_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps, "processes": world,
        "tokens_per_step": tokens_per_step, "max_steps": cfg.max_steps,
        "total_tokens": tokens_per_step * max(cfg.max_steps, 0),
        "sharding": sharding, "memory_per_device_gib": mem,
    }
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        devices = {name: gpu_bf16_peak(name)}
    else:
        devices = {"H100 SXM (reference)": 989.0, "A100 (reference)": 312.0}
    report["tokens_per_second_estimate"] = {}
    for name, peak in devices.items():
        if peak is None:
            report["tokens_per_second_estimate"][name] = "unknown bf16 peak for this device"
            continue
        per_dev = peak * 1e12 * cfg.assumed_mfu / fpt
        total = per_dev * world
        report["tokens_per_second_estimate"][name] = {
            "bf16_peak_tflops": peak, "assumed_mfu": cfg.assumed_mfu, "per_device": round(per_dev),
            "all_processes": round(total),
            "hours_for_max_steps": round(report["total_tokens"] / total / 3600, 2) if report["total_tokens"] else None}
    if note:
        report["note"] = note
    return report
