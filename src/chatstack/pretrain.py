"""Stage `pretrain`: a GPT-2 from a config, trained from scratch on packed text with the
transformers Trainer (warmup + cosine decay, periodic eval loss, sample generations in the
log, resume from the last checkpoint).

The same code runs the tiny recipe on a CPU and GPT-2 124M on FineWeb on GPUs: only the
YAML differs (and `accelerate launch` for many processes).
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from transformers import (AutoTokenizer, DataCollatorForLanguageModeling, GenerationConfig, Trainer,
                          TrainerCallback, TrainingArguments, set_seed)
from transformers.trainer_utils import get_last_checkpoint

from chatstack.config import parse_config, split_cli
from chatstack.data import DataError, load_data
from chatstack.hardware import resolve_bf16
from chatstack.model import build_model, count_parameters
from chatstack.tokenizer import DOC_SEP


@dataclass
class PretrainConfig(TrainingArguments):
    """TrainingArguments plus what a pretraining run needs to know about data and model."""

    output_dir: str = "outputs/tiny/pretrain"
    dataset: str = field(default="tiny_pretrain", metadata={"help": "datasets_cfg name of the training text"})
    eval_dataset: str | None = field(default=None, metadata={"help": "held-out text; default: eval_fraction of dataset"})
    eval_fraction: float = 0.02
    text_column: str = "text"
    tokenizer_name_or_path: str = "outputs/tiny/tokenizer"
    model_preset: str = field(default="tiny", metadata={"help": "micro | tiny | gpt2-124m | gpt2-350m"})
    model_config: dict | str | None = field(default=None, metadata={"help": "GPT2Config overrides, e.g. {n_layer: 6}"})
    block_size: int = 128
    sample_prompts: list[str] = field(default_factory=lambda: ["Q: Where was", "12 + 7 ="])
    sample_max_new_tokens: int = 32
    # TrainingArguments defaults chosen for pretraining
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.05
    learning_rate: float = 3e-3
    weight_decay: float = 0.1
    adam_beta2: float = 0.95
    max_grad_norm: float = 1.0
    eval_strategy: str = "steps"
    eval_steps: float = 100
    logging_steps: float = 20
    save_steps: float = 100
    save_total_limit: int | None = 2
    seed: int = 42

    def __post_init__(self):
        if isinstance(self.model_config, str):
            self.model_config = json.loads(self.model_config)
        super().__post_init__()


def pack(ds, tokenizer, block_size: int, text_column: str):
    """Tokenize documents, join them with the document separator, cut fixed blocks (no padding)."""
    sep = tokenizer.convert_tokens_to_ids(DOC_SEP)

    def to_blocks(batch):
        ids = tokenizer(batch[text_column], add_special_tokens=False)["input_ids"]
        flat = [t for doc in ids for t in (*doc, sep)]
        n = len(flat) // block_size * block_size
        return {"input_ids": [flat[i:i + block_size] for i in range(0, n, block_size)]}

    cols = ds.column_names
    return ds.map(to_blocks, batched=True, batch_size=1000, remove_columns=cols)


def load_text(cfg: PretrainConfig):
    data = load_data(cfg.dataset, seed=cfg.seed)
    if isinstance(data, datasets.DatasetDict):
        train, test = data["train"], data.get("test")
    else:
        train, test = data, None
    if cfg.text_column not in (train.column_names or []):
        raise DataError(f"dataset '{cfg.dataset}': no column '{cfg.text_column}' (has {train.column_names}); set text_column")
    if cfg.eval_dataset:
        test = load_data(cfg.eval_dataset, split="test" if test is None else None, seed=cfg.seed)
    elif test is None:
        if isinstance(train, datasets.IterableDataset):
            test = train.take(max(1, int(cfg.eval_fraction * 10_000)))
            train = train.skip(max(1, int(cfg.eval_fraction * 10_000)))
        else:
            split = train.train_test_split(test_size=cfg.eval_fraction, seed=cfg.seed)
            train, test = split["train"], split["test"]
    return train, test


def unigram_entropy(blocks) -> float:
    """Entropy (nats) of the eval tokens' unigram distribution: the loss of a model that
    knows token frequencies and nothing else. A model that learned anything beats it."""
    counts = Counter(t for b in blocks for t in b)
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values())


class SampleCallback(TrainerCallback):
    """Greedy samples at fixed prompts after each evaluation, as llm.c / nanochat runs log them."""

    def __init__(self, tokenizer, prompts, max_new_tokens, path: Path):
        self.tokenizer, self.prompts, self.max_new_tokens, self.path = tokenizer, prompts, max_new_tokens, path

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or not self.prompts:
            return
        samples = sample(model, self.tokenizer, self.prompts, self.max_new_tokens)
        with self.path.open("a") as f:
            f.write(json.dumps({"step": state.global_step, "samples": samples}) + "\n")
        for p, s in samples.items():
            print(f"[step {state.global_step}] {p!r} -> {s!r}")


@torch.no_grad()
def sample(model, tokenizer, prompts, max_new_tokens) -> dict[str, str]:
    was_training = model.training
    model.eval()
    out = {}
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        gen = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.convert_tokens_to_ids(DOC_SEP))
        out[prompt] = tokenizer.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    model.train(was_training)
    return out


def train(cfg: PretrainConfig) -> dict:
    set_seed(cfg.seed)
    resolve_bf16(cfg)
    start = time.time()
    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer_name_or_path)
    model = build_model(cfg.model_preset, tokenizer, cfg.model_config)
    if cfg.block_size > model.config.n_positions:
        raise DataError(f"block_size {cfg.block_size} > the model's n_positions {model.config.n_positions}")
    train_text, eval_text = load_text(cfg)
    train_blocks = pack(train_text, tokenizer, cfg.block_size, cfg.text_column)
    eval_blocks = pack(eval_text, tokenizer, cfg.block_size, cfg.text_column)
    if not isinstance(eval_blocks, datasets.IterableDataset) and len(eval_blocks) == 0:
        raise DataError(f"dataset '{cfg.dataset}': the eval split is shorter than one block of {cfg.block_size} tokens")

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model=model, args=cfg, train_dataset=train_blocks, eval_dataset=eval_blocks,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False), processing_class=tokenizer,
                      callbacks=[SampleCallback(tokenizer, cfg.sample_prompts, cfg.sample_max_new_tokens, out / "samples.jsonl")])
    last = get_last_checkpoint(cfg.output_dir) if Path(cfg.output_dir).is_dir() else None
    result = trainer.train(resume_from_checkpoint=last)
    eval_metrics = trainer.evaluate()

    eval_list = [b["input_ids"] for b in eval_blocks]
    n_tokens = sum(len(b) for b in eval_list)
    n_bytes = sum(len(tokenizer.decode(b).encode()) for b in eval_list)
    metrics = {
        "eval_loss": round(eval_metrics["eval_loss"], 4),
        "unigram_entropy": round(unigram_entropy(eval_list), 4),
        "bits_per_byte": round(eval_metrics["eval_loss"] * n_tokens / n_bytes / math.log(2), 4),
        "train_loss": round(result.training_loss, 4),
        "tokens_per_second": round(result.metrics["train_samples_per_second"] * cfg.block_size, 1),
        "train_tokens": int(trainer.state.global_step * cfg.train_batch_size * cfg.gradient_accumulation_steps
                            * cfg.world_size * cfg.block_size),
        "parameters": count_parameters(model),
        "resumed_from": last,
        "seconds": round(time.time() - start, 1),
    }
    if trainer.is_world_process_zero():
        trainer.save_model(cfg.output_dir)
        GenerationConfig(bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(DOC_SEP)],
                         max_new_tokens=64).save_pretrained(cfg.output_dir)
        with open(out / "log_history.json", "w") as f:
            json.dump(trainer.state.log_history, f)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv: list[str]) -> int:
    config, rest = split_cli(argv)
    cfg = parse_config(PretrainConfig, config, rest)
    print(json.dumps(train(cfg), indent=2))
    return 0
