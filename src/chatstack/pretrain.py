"""Stage `pretrain`: a GPT-2 from a config, trained from scratch on packed text with the
transformers Trainer (warmup + cosine decay, periodic eval loss and bits per byte, sample
generations at fixed prompts, resume from the last complete checkpoint).

The same code runs the tiny recipe on a CPU and GPT-2 124M on FineWeb on GPUs: only the
YAML differs (and `accelerate launch --config_file accelerate_configs/X.yaml -m
chatstack.cli pretrain ...` for many processes). What chatstack adds to the Trainer:

- packing on the fly: documents are tokenized, joined by <|endoftext|> and cut into blocks
  lazily (`datasets` map), for a streamed corpus as for a local one; nothing pads;
- `global_batch_tokens`: the gradient accumulation follows from the tokens per optimizer
  step and the number of processes, as llm.c's `-d 524288`;
- atomic checkpoints: each checkpoint is written to `<output_dir>/.staging/` and renamed
  into place once every process has written its part, so a kill during a save leaves the
  previous checkpoint usable (the Trainer itself writes `checkpoint-N/` in place);
- `--dry_run true`: parameter count, memory per device and tokens/s estimates, no training.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from transformers import AutoTokenizer, GenerationConfig, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from chatstack.config import parse_config, split_cli
from chatstack.data import load_data
from chatstack.engine import Engine
from chatstack.errors import ConfigError, DataError
from chatstack.hardware import resolve_bf16
from chatstack.model import (GPT2_VOCAB, build_model, count_parameters, flops_per_token, gpu_bf16_peak,
                             memory_per_device)
from chatstack.tokenizer import DOC_SEP

STAGING = ".staging"
TRAINER_STATE = "trainer_state.json"


@dataclass
class PretrainConfig(TrainingArguments):
    """TrainingArguments plus what a pretraining run needs to know about data and model."""

    output_dir: str = "outputs/tiny/pretrain"
    dataset: str = field(default="tiny_pretrain", metadata={"help": "datasets_cfg name (or YAML path) of the training text"})
    eval_dataset: str | None = field(default=None, metadata={"help": "held-out text; default: eval_fraction of dataset"})
    eval_fraction: float = 0.02
    eval_documents: int | None = field(default=None, metadata={
        "help": "streamed dataset: hold out this many documents from its head (default eval_fraction x 10,000); "
                "they are kept in memory and filtered out of the training stream by content hash"})
    shuffle_buffer: int = field(default=0, metadata={
        "help": "streamed dataset: shuffle its shards and a buffer of this many documents (0: stream order)"})
    text_column: str = "text"
    tokenizer_name_or_path: str = "outputs/tiny/tokenizer"
    model_preset: str = field(default="tiny", metadata={"help": "micro | tiny | gpt2-124m | gpt2-350m"})
    model_config: dict | str | None = field(default=None, metadata={"help": "GPT2Config overrides, e.g. {n_layer: 6}"})
    pad_vocab_multiple: int | None = field(default=None, metadata={
        "help": "pad the embedding rows to a multiple of this (llm.c: 50,257 -> 50,304 with 64)"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa | eager | flash_attention_2 | ..."})
    block_size: int = 128
    global_batch_tokens: int | None = field(default=None, metadata={
        "help": "tokens per optimizer step; sets gradient_accumulation_steps = global_batch_tokens / "
                "(per_device_train_batch_size x block_size x processes), as llm.c's -d"})
    sample_prompts: list[str] = field(default_factory=lambda: ["Q: Where was", "12 + 7 ="])
    sample_max_new_tokens: int = 32
    dry_run: bool = field(default=False, metadata={
        "help": "print parameter count, memory per device and tokens/s estimates, then stop"})
    assumed_mfu: float = field(default=0.4, metadata={"help": "dry run: model FLOPs utilisation assumed for tokens/s"})
    dry_run_processes: int | None = field(default=None, metadata={
        "help": "dry run: size the run for this many processes (GPUs), default this launch's"})
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
        if self.data_seed is None:  # the sampler's order: fixed by the seed, so a resumed run sees the same data
            self.data_seed = self.seed
        wanted_bf16 = self.bf16
        if not self.use_cpu and not _has_accelerator():
            # a GPU recipe on a machine without one: run (or size) it on the CPU, and say so
            print("[chatstack] no GPU found: use_cpu true, tf32 off" + (" (dry run: sizes the bf16 GPU run)" if self.dry_run else ""))
            self.use_cpu, self.tf32 = True, None
        super().__post_init__()
        if self.dry_run:
            self.bf16 = wanted_bf16

    @property
    def tokens_per_step(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.world_size * self.block_size


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()) or \
        torch.backends.mps.is_available()


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


# ---- data ----------------------------------------------------------------------------------

def pack(ds, tokenizer, block_size: int, text_column: str):
    """Tokenize documents, join them with the document separator, cut fixed blocks (no padding).

    Lazy for an IterableDataset (a streamed corpus is tokenized as the Trainer reads it);
    each batch of 1,000 documents drops its last partial block (< 0.1 % of the tokens of
    web documents)."""
    sep = tokenizer.convert_tokens_to_ids(DOC_SEP)

    def to_blocks(batch):
        ids = tokenizer(batch[text_column], add_special_tokens=False)["input_ids"]
        flat = [t for doc in ids for t in (*doc, sep)]
        n = len(flat) // block_size * block_size
        return {"input_ids": [flat[i:i + block_size] for i in range(0, n, block_size)]}

    cols = ds.column_names
    if cols is None:  # a stream whose features are unknown until read
        cols = list(next(iter(ds.take(1))).keys())
    return ds.map(to_blocks, batched=True, batch_size=1000, remove_columns=cols)


def _doc_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def load_text(cfg: PretrainConfig):
    """(train, eval) text. A streamed train set stays an IterableDataset; eval is always a
    small in-memory Dataset (evaluated many times, never re-streamed)."""
    data = load_data(cfg.dataset, seed=cfg.seed)
    if isinstance(data, datasets.DatasetDict):
        train, test = data["train"], data.get("test")
    else:
        train, test = data, None
    if train.column_names is not None and cfg.text_column not in train.column_names:
        raise DataError(f"dataset '{cfg.dataset}': no column '{cfg.text_column}' (has {train.column_names}); set text_column")
    streamed = isinstance(train, datasets.IterableDataset)
    if cfg.eval_dataset:
        test = load_data(cfg.eval_dataset, split="test" if test is None else None, seed=cfg.seed)
    elif test is None and streamed:
        # The head of the stream is held out; the same documents are filtered out of training by
        # content, which stays right however the stream is later sharded across processes and
        # workers (a skip(n) would not: datasets splits n across shards).
        n = cfg.eval_documents or max(1, int(cfg.eval_fraction * 10_000))
        rows = [r for r in train.take(n)]
        if not rows:
            raise DataError(f"dataset '{cfg.dataset}': the stream is empty")
        test = datasets.Dataset.from_list([{cfg.text_column: r[cfg.text_column]} for r in rows])
        held = {_doc_key(r[cfg.text_column]) for r in rows}
        col = cfg.text_column
        train = train.filter(lambda b: [_doc_key(t) not in held for t in b[col]], batched=True, batch_size=1000)
    elif test is None:
        split = train.train_test_split(test_size=cfg.eval_fraction, seed=cfg.seed)
        train, test = split["train"], split["test"]
    if isinstance(test, datasets.IterableDataset):
        limit = cfg.eval_documents or max(1, int(cfg.eval_fraction * 10_000))
        test = datasets.Dataset.from_list(list(test.take(limit)))
    if streamed and cfg.shuffle_buffer:
        train = train.shuffle(seed=cfg.seed, buffer_size=cfg.shuffle_buffer)
    return train, test


def collate_blocks(features):
    """Packed blocks are all block_size long: stack them; labels are the inputs (the model shifts).
    No attention mask, so SDPA takes its causal fast path."""
    ids = torch.tensor([f["input_ids"] for f in features], dtype=torch.long)
    return {"input_ids": ids, "labels": ids.clone()}


def unigram_entropy(blocks) -> float:
    """Entropy (nats) of the eval tokens' unigram distribution: the loss of a model that
    knows token frequencies and nothing else. A model that learned anything beats it."""
    counts = Counter(t for b in blocks for t in b)
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values())


def bytes_per_token(blocks, tokenizer) -> float:
    """UTF-8 bytes of the eval text per eval token (special tokens count no bytes), for bits per byte."""
    n_tokens = sum(len(b) for b in blocks)
    n_bytes = sum(len(tokenizer.decode(b, skip_special_tokens=True).encode()) for b in blocks)
    return n_bytes / max(1, n_tokens)


# ---- trainer -------------------------------------------------------------------------------

class PretrainTrainer(Trainer):
    """The Trainer with atomic checkpoints, bits per byte next to each eval loss and tokens/s
    in each training log line."""

    def __init__(self, *args, eval_bytes_per_token: float | None = None, tokens_per_step: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_bytes_per_token = eval_bytes_per_token
        self.tokens_per_step = tokens_per_step
        self._staging = False
        self._last_log = (None, 0)

    def _get_output_dir(self, trial) -> str:
        out = super()._get_output_dir(trial)
        return os.path.join(out, STAGING) if self._staging else out

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = super()._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staged, final = os.path.join(run_dir, STAGING, name), os.path.join(run_dir, name)
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)  # every process writes its part under .staging/
        finally:
            self._staging = False
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            publish(staged, final)
            if self.state.best_model_checkpoint and STAGING in self.state.best_model_checkpoint:
                self.state.best_model_checkpoint = self.state.best_model_checkpoint.replace(
                    os.path.join(run_dir, STAGING), run_dir)
            rotate_checkpoints(output_dir=run_dir, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint)
        self.accelerator.wait_for_everyone()
        shutil.rmtree(os.path.join(run_dir, STAGING), ignore_errors=True)  # also on a node that does not publish

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "eval_loss" in logs and self.eval_bytes_per_token:
            logs["eval_bits_per_byte"] = round(logs["eval_loss"] / math.log(2) / self.eval_bytes_per_token, 4)
        if "loss" in logs and self.tokens_per_step:
            now, step = time.perf_counter(), self.state.global_step
            last_t, last_step = self._last_log
            if last_t is not None and step > last_step:
                logs["tokens_per_second"] = round((step - last_step) * self.tokens_per_step / (now - last_t), 1)
            self._last_log = (now, step)
            if torch.cuda.is_available():
                logs["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
        elif "eval_loss" in logs:  # eval time is not training throughput
            self._last_log = (None, self.state.global_step)
        super().log(logs, start_time)

    def _save(self, output_dir=None, state_dict=None):
        super()._save(output_dir, state_dict)
        self._last_log = (None, self.state.global_step)


class StartClock(TrainerCallback):
    """Start the tokens/s clock at the first step of a (resumed) run."""

    def __init__(self, trainer: PretrainTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer._last_log[0] is None:
            self.trainer._last_log = (time.perf_counter(), state.global_step)


def publish(staged: str, final: str) -> None:
    """Make a fully written checkpoint visible under its final name in one rename."""
    for root, _, files in os.walk(staged):
        for f in files:
            _fsync(os.path.join(root, f))
    if os.path.exists(final):  # the same step saved again after resuming from an older checkpoint
        old = final + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, final)
    _fsync(os.path.dirname(final), directory=True)


def _fsync(path: str, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete checkpoint (its trainer state written last), ignoring .staging/."""
    out = Path(output_dir)
    if not out.is_dir():
        return None
    steps = []
    for p in out.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        tail = p.name[len(PREFIX_CHECKPOINT_DIR) + 1:]
        if p.is_dir() and tail.isdigit() and (p / TRAINER_STATE).is_file():
            steps.append((int(tail), str(p)))
    return max(steps)[1] if steps else None


class SampleCallback(TrainerCallback):
    """Greedy samples at fixed prompts after each evaluation, as llm.c / nanochat runs log them.
    Every process generates (under FSDP / ZeRO-3 each forward needs all of them); the first writes."""

    def __init__(self, tokenizer, prompts, max_new_tokens, path: Path):
        self.tokenizer, self.prompts, self.max_new_tokens, self.path = tokenizer, prompts, max_new_tokens, path
        self.done_steps: set[int] = set()

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not self.prompts or state.global_step in self.done_steps:
            return
        self.done_steps.add(state.global_step)
        samples = sample(model, self.tokenizer, self.prompts, self.max_new_tokens)
        if not state.is_world_process_zero:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": state.global_step, "samples": samples}) + "\n")
        for p, s in samples.items():
            print(f"[step {state.global_step}] {p!r} -> {s!r}")


def sample(model, tokenizer, prompts, max_new_tokens) -> dict[str, str]:
    """Greedy continuations of each prompt, one at a time (chatstack.engine)."""
    engine = Engine(model, tokenizer)
    return {p: engine.complete([p], max_new_tokens=max_new_tokens, batch_size=1)[0] for p in prompts}


# ---- the stage -----------------------------------------------------------------------------

def build_trainer(cfg: PretrainConfig):
    """Tokenizer, model, packed data and the Trainer; returns (trainer, eval_blocks)."""
    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer_name_or_path)
    set_accumulation(cfg)
    model = build_model(cfg.model_preset, tokenizer, cfg.model_config, cfg.attn_implementation, cfg.pad_vocab_multiple)
    if cfg.block_size > model.config.n_positions:
        raise DataError(f"block_size {cfg.block_size} > the model's n_positions {model.config.n_positions}")
    train_text, eval_text = load_text(cfg)
    train_blocks = pack(train_text, tokenizer, cfg.block_size, cfg.text_column)
    eval_blocks = pack(eval_text, tokenizer, cfg.block_size, cfg.text_column)
    if len(eval_blocks) == 0:
        raise DataError(f"dataset '{cfg.dataset}': the eval split is shorter than one block of {cfg.block_size} tokens")
    if cfg.world_size > 1:
        # Several processes: accelerate completes a short last eval batch with repeated blocks,
        # which biases the eval loss; evaluate a whole number of batches on every process instead.
        bs = min(cfg.per_device_eval_batch_size, max(1, len(eval_blocks) // cfg.world_size))
        keep = len(eval_blocks) // (bs * cfg.world_size) * (bs * cfg.world_size)
        if keep == 0:
            raise DataError(f"dataset '{cfg.dataset}': {len(eval_blocks)} eval blocks for {cfg.world_size} processes")
        cfg.per_device_eval_batch_size = bs
        eval_blocks = eval_blocks.select(range(keep))
    if isinstance(train_blocks, datasets.IterableDataset) and cfg.max_steps <= 0:
        raise ConfigError(f"dataset '{cfg.dataset}' is streamed: set max_steps (an epoch has no known length)")
    eval_list = list(eval_blocks["input_ids"])

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.process_index == 0:
        shutil.rmtree(out / STAGING, ignore_errors=True)  # a save that a kill interrupted
    trainer = PretrainTrainer(
        model=model, args=cfg, train_dataset=train_blocks, eval_dataset=eval_blocks, data_collator=collate_blocks,
        processing_class=tokenizer, eval_bytes_per_token=bytes_per_token(eval_list, tokenizer),
        tokens_per_step=cfg.tokens_per_step,
        callbacks=[SampleCallback(tokenizer, cfg.sample_prompts, cfg.sample_max_new_tokens, out / "samples.jsonl")])
    trainer.add_callback(StartClock(trainer))
    return trainer, eval_list


def train(cfg: PretrainConfig) -> dict:
    if cfg.dry_run:
        report = dry_run(cfg)
        print(json.dumps(report, indent=2))
        return report
    set_seed(cfg.seed)
    resolve_bf16(cfg)
    start = time.time()
    trainer, eval_list = build_trainer(cfg)
    tokenizer, model = trainer.processing_class, trainer.model
    last = cfg.resume_from_checkpoint or last_checkpoint(cfg.output_dir)
    result = trainer.train(resume_from_checkpoint=last)
    final = [h for h in trainer.state.log_history if "eval_loss" in h and h.get("step") == trainer.state.global_step]
    eval_metrics = final[-1] if final else trainer.evaluate()

    bpt = trainer.eval_bytes_per_token
    metrics = {
        "eval_loss": round(eval_metrics["eval_loss"], 4),
        "unigram_entropy": round(unigram_entropy(eval_list), 4),
        "bits_per_byte": round(eval_metrics["eval_loss"] / math.log(2) / bpt, 4),
        "train_loss": round(result.training_loss, 4),
        "tokens_per_second": round(result.metrics.get("train_samples_per_second", 0.0) * cfg.block_size, 1),
        "train_tokens": int(trainer.state.global_step * cfg.tokens_per_step),
        "tokens_per_step": cfg.tokens_per_step,
        "block_size": cfg.block_size,
        "parameters": count_parameters(model),
        "resumed_from": last,
        "seconds": round(time.time() - start, 1),
    }
    if getattr(trainer, "is_fsdp_enabled", False):  # one loadable safetensors file, not per-rank shards
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(cfg.output_dir)  # every process: FSDP / ZeRO-3 gather the weights collectively
    if trainer.is_world_process_zero():
        out = Path(cfg.output_dir)
        GenerationConfig(bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(DOC_SEP)],
                         max_new_tokens=64).save_pretrained(cfg.output_dir)
        with open(out / "log_history.json", "w") as f:
            json.dump(trainer.state.log_history, f)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))  # last: marks the stage complete
    return metrics


# ---- dry run -------------------------------------------------------------------------------

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
    model = build_model(cfg.model_preset, tokenizer, overrides, cfg.attn_implementation, cfg.pad_vocab_multiple,
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


def main(argv: list[str]) -> int:
    config, rest = split_cli(argv)
    cfg = parse_config(PretrainConfig, config, rest)
    metrics = train(cfg)
    if not cfg.dry_run and cfg.process_index == 0:
        print(json.dumps(metrics, indent=2))
    return 0
