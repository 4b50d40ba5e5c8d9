"""GPT-2 networks built from a named preset: the model is `transformers`' GPT2LMHeadModel,
chatstack only names the sizes, and estimates what a size costs (FLOPs, memory).

All presets use `gelu_pytorch_tanh`: the same function as GPT-2's `gelu_new` (tanh
approximation), computed by one fused torch kernel instead of six elementwise ones. No preset
uses dropout, as llm.c, nanoGPT and nanochat pretrain: besides the masks themselves, attention
dropout keeps SDPA off its fused (flash) kernel on CPU, so the tiny recipe trains slower and
ends at a higher loss with it (README, "Measured variants"). `model_config: {resid_pdrop: 0.1,
...}` brings it back.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from chatstack.errors import ConfigError

NO_DROPOUT = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
PRESETS: dict[str, dict[str, Any]] = {
    "micro": {"n_layer": 2, "n_embd": 64, "n_head": 2, "n_positions": 128, **NO_DROPOUT},  # tests
    "tiny": {"n_layer": 4, "n_embd": 256, "n_head": 4, "n_positions": 256, **NO_DROPOUT},  # CPU speedrun (fp32, AVX2)
    "gpt2-124m": {"n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 1024, **NO_DROPOUT},
    "gpt2-350m": {"n_layer": 24, "n_embd": 1024, "n_head": 16, "n_positions": 1024, **NO_DROPOUT},
}
ACTIVATION = "gelu_pytorch_tanh"
GPT2_VOCAB = 50257  # GPT-2's BPE; 124,439,808 parameters at 12x768 with tied embeddings


def padded_vocab(n: int, multiple: int | None) -> int:
    """llm.c pads 50,257 to 50,304 (a multiple of 64/128) so the LM-head matmul tiles evenly."""
    return n if not multiple else math.ceil(n / multiple) * multiple


def gpt2_config(preset: str, tokenizer=None, overrides: dict[str, Any] | None = None,
                pad_vocab_multiple: int | None = None, vocab_size: int | None = None) -> GPT2Config:
    """The GPT2Config of a preset for a tokenizer (or a bare `vocab_size`); `overrides` win,
    `vocab_size` included (e.g. to size a benchmark model without its tokenizer)."""
    if preset not in PRESETS:
        raise ConfigError(f"model_preset: unknown preset '{preset}'; known: {', '.join(PRESETS)}")
    kwargs: dict[str, Any] = {"activation_function": ACTIVATION, **PRESETS[preset], **(overrides or {})}
    bad = [k for k in kwargs if not hasattr(GPT2Config(), k)]
    if bad:
        raise ConfigError(f"model_config: {bad} are not GPT2Config keys")
    if tokenizer is not None:
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
        vocab_size = len(tokenizer)
    vocab = kwargs.pop("vocab_size", None) or vocab_size
    if tokenizer is None:  # GPT2Config's default ids (50256) only exist in GPT-2's vocabulary
        ids = {} if vocab and vocab > 50256 else {"bos_token_id": None, "eos_token_id": None}
    if vocab is None:
        raise ConfigError("gpt2_config: needs a tokenizer or a vocab_size")
    if kwargs["n_embd"] % kwargs["n_head"]:
        raise ConfigError(f"model_config: n_embd {kwargs['n_embd']} is not a multiple of n_head {kwargs['n_head']}")
    return GPT2Config(vocab_size=padded_vocab(vocab, pad_vocab_multiple), tie_word_embeddings=True, **ids, **kwargs)


def build_model(preset: str, tokenizer, overrides: dict[str, Any] | None = None, attn_implementation: str = "sdpa",
                pad_vocab_multiple: int | None = None, device: str | torch.device | None = None):
    """A freshly initialised GPT2LMHeadModel. `device="meta"` builds it without memory (sizes only)."""
    config = gpt2_config(preset, tokenizer, overrides, pad_vocab_multiple)
    if device is None:
        return GPT2LMHeadModel._from_config(config, attn_implementation=attn_implementation)
    with torch.device(device):
        return GPT2LMHeadModel._from_config(config, attn_implementation=attn_implementation)


def count_parameters(model) -> int:
    """Unique parameters (tied embeddings counted once, as GPT-2's 124M is)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def flops_per_token(config: GPT2Config, seq_len: int, n_params: int | None = None) -> float:
    """Training FLOPs per token (forward + backward): 6N + 12·L·d·T, as in the PaLM paper's MFU
    and nanoGPT/llm.c. N counts the tied token embedding once (it is the LM-head matmul) and
    leaves out the position embedding (a lookup)."""
    if n_params is None:
        d, L, V, P = config.n_embd, config.n_layer, config.vocab_size, config.n_positions
        n_params = V * d + P * d + L * (12 * d * d + 13 * d) + 2 * d
    n = n_params - config.n_positions * config.n_embd
    return 6.0 * n + 12.0 * config.n_layer * config.n_embd * seq_len


def memory_per_device(config: GPT2Config, n_params: int, micro_batch: int, seq_len: int, bf16: bool,
                      sharding: str = "none", world_size: int = 1) -> dict[str, float]:
    """A rough estimate (GiB) of one device's training memory, by term.

    Weights, grads and Adam state are fp32 (16 bytes/parameter; autocast keeps fp32 masters),
    divided by `world_size` for what the sharding shards (zero2: grads + optimizer; zero3/fsdp:
    all). Activations per layer: about 34·b·T·d bytes in half precision (Korthikanti et al.
    2022, flash/SDPA attention so no T² term), doubled in fp32. Logits: HF's GPT-2 loss keeps
    the b·T·V logits in the compute dtype, an fp32 upcast, its log-softmax and their grads
    (about 14 bytes per logit in bf16, 16 in fp32): at b=16, T=1024, V=50,304 that is 11 GiB,
    the largest single term at 124M. Allocator overhead and the CUDA context (~1-2 GiB) are
    not counted.
    """
    gib = 1024 ** 3
    shard = max(1, world_size)
    weights, grads, optim = 4.0 * n_params, 4.0 * n_params, 8.0 * n_params
    if sharding == "zero2":
        grads, optim = grads / shard, optim / shard
    elif sharding in ("zero3", "fsdp"):
        weights, grads, optim = weights / shard, grads / shard, optim / shard
    act_bytes = 34.0 * micro_batch * seq_len * config.n_embd * config.n_layer * (1 if bf16 else 2)
    logits = micro_batch * seq_len * config.vocab_size * (14.0 if bf16 else 16.0)
    out = {"weights": weights / gib, "grads": grads / gib, "optimizer": optim / gib,
           "activations": act_bytes / gib, "logits_and_loss": logits / gib}
    out["total"] = sum(out.values())
    return {k: round(v, 2) for k, v in out.items()}


# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, matched on the
# device name torch reports; used for MFU and the dry-run estimate.
GPU_BF16_PEAK_TFLOPS = {
    "H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0,
    "H100": 756.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
}


def gpu_bf16_peak(name: str) -> float | None:
    """TFLOP/s for a device name such as 'NVIDIA H100 80GB HBM3', or None if unknown."""
    for key, tflops in GPU_BF16_PEAK_TFLOPS.items():  # most specific first
        if key in name:
            return tflops
    return None
