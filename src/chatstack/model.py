"""GPT-2 networks built from a named preset: the model is `transformers`' GPT2LMHeadModel,
chatstack only names the sizes."""
from __future__ import annotations

from typing import Any

from transformers import GPT2Config, GPT2LMHeadModel

from chatstack.config import ConfigError

PRESETS: dict[str, dict[str, int]] = {
    "micro": {"n_layer": 2, "n_embd": 64, "n_head": 2, "n_positions": 128},  # tests
    "tiny": {"n_layer": 4, "n_embd": 128, "n_head": 4, "n_positions": 256},  # CPU speedrun (fp32, AVX2)
    "gpt2-124m": {"n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 1024},
    "gpt2-350m": {"n_layer": 24, "n_embd": 1024, "n_head": 16, "n_positions": 1024},
}


def gpt2_config(preset: str, tokenizer, overrides: dict[str, Any] | None = None) -> GPT2Config:
    if preset not in PRESETS:
        raise ConfigError(f"model_preset: unknown preset '{preset}'; known: {', '.join(PRESETS)}")
    kwargs = {**PRESETS[preset], **(overrides or {})}
    bad = [k for k in kwargs if not hasattr(GPT2Config(), k)]
    if bad:
        raise ConfigError(f"model_config: {bad} are not GPT2Config keys")
    return GPT2Config(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, **kwargs)


def build_model(preset: str, tokenizer, overrides: dict[str, Any] | None = None, attn_implementation: str = "sdpa"):
    return GPT2LMHeadModel._from_config(gpt2_config(preset, tokenizer, overrides), attn_implementation=attn_implementation)


def count_parameters(model) -> int:
    """Unique parameters (tied embeddings counted once, as GPT-2's 124M is)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
