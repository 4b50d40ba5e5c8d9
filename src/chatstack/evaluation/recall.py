"""A base model's recall of the synthetic world, per attribute: what the pretrain stage writes
into metrics.json when it trained on the world, and benchmarks/learning_per_minute.py compares.

Measured by the eval suite's own runners (chatstack.evaluation.runners: completion-style
"Q: <question>\\nA:", greedy through chatstack.engine, cut at the line end, judged by
chatstack.judges), on every person of qa_heldout (read only in articles) and qa_train (their QA
was in pretraining) in the training phrasings 0 and 1, and on the held-out arithmetic problems
as "3 + 4 =": the figures `chatstack eval --suite tiny` gives a base model, on all the people.
And whether it copies from its context (chatstack.evaluation.copying), which the tools need.
"""
from __future__ import annotations

from pathlib import Path

from chatstack.data.loading import resolve_spec
from chatstack.engine import Engine
from chatstack.evaluation.runners import Context, run_arithmetic, run_world_qa
from chatstack.evaluation.suite_config import WORLD_SPLITS, ArithmeticConfig, SuiteConfig, WorldQAConfig

SPLITS = {"qa_heldout": "heldout", "qa_train": "trained"}  # world split -> the key's word


def in_world(dataset: str | dict, world: str | dict) -> dict:
    """A builder dataset spec (e.g. tiny_arithmetic_eval) built from `world` instead of its own."""
    spec = {k: v for k, v in resolve_spec(dataset).items() if not k.startswith("_")}
    if "builder" not in spec:
        raise ValueError(f"recall: dataset '{dataset}' is not a world builder (no `builder`)")
    return {**spec, "args": {**(spec.get("args") or {}), "world": world}}


def base_recall(model, tokenizer, world: str | dict, arithmetic_dataset: str | dict = "tiny_arithmetic_eval",
                batch_size: int = 64) -> dict[str, float]:
    """{recall_heldout_<attribute>, recall_trained_<attribute>: accuracy, arithmetic_accuracy,
    copy_name_accuracy, reading_accuracy[_<attribute>]}."""
    from chatstack.evaluation.copying import copying

    suite = SuiteConfig(name="pretrain_recall", world=world, batch_size=batch_size)
    ctx = Context(Path("."), Engine(model, tokenizer), "base", suite, None, None, str(model.device))
    qa = run_world_qa(ctx, WorldQAConfig(splits=list(SPLITS), n=None, phrasings=[0, 1]))
    out = {f"recall_{word}_{attr}": acc for split, word in SPLITS.items()
           for attr, acc in qa["by_attribute"][f"world_qa_{WORLD_SPLITS[split]}"].items()}
    arithmetic = run_arithmetic(ctx, ArithmeticConfig(dataset=in_world(arithmetic_dataset, world), n=None))
    out["arithmetic_accuracy"] = arithmetic["evals"]["arithmetic"]["accuracy"]
    out.update(copying(ctx.engine, world, batch_size=batch_size))
    return out
