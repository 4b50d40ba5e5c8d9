"""Evals of a chat model beyond world QA (format compliance, identity, thinking variants):
called by the sft stage after training; each returns flat metrics for metrics.json."""
from __future__ import annotations


def conversation_evals(model, tokenizer, cfg) -> dict:
    return {}
