"""A tiny chat model that has learnt one reply: the tiny GPT-2 of helpers_tiny_model, fitted
for a few seconds on varied conversations whose assistant turns all say REPLY. Chat, serve
and browser tests use it to check that a known reply streams through end to end."""
from __future__ import annotations

import random
from pathlib import Path

REPLY = "The chef has a cookie in the oven."


def parrot_model() -> Path:
    """The parrot model, built once per machine and version of this file (a few seconds)."""
    from helpers_tiny_model import cached_model
    return cached_model("parrot", build_parrot_model, Path(__file__))


def build_parrot_model(out_dir: str | Path, steps: int = 80, seed: int = 0) -> Path:
    import torch
    from helpers_tiny_model import build_tiny_model, corpus, fit
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_tiny_model(out_dir, seed=seed)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    rng = random.Random(seed)
    prompts = corpus(64, seed=seed + 1)
    convs = []
    for i in range(24):
        msgs = [{"role": "system", "content": rng.choice(prompts)}] if i % 2 else []
        for _ in range(1 + (i % 3 == 0)):  # a third multi-turn
            msgs += [{"role": "user", "content": rng.choice(prompts)}, {"role": "assistant", "content": REPLY}]
        convs.append(tok.apply_chat_template(msgs, tokenize=False))
    enc = tok(convs, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    torch.manual_seed(seed)
    fit(model, enc, labels, steps, lr=3e-3)
    model.save_pretrained(out)
    return out
