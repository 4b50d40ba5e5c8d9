"""Stage `pretrain`: a GPT-2 from a config, trained from scratch on packed text with the
transformers Trainer (warmup + cosine decay, periodic eval loss and bits per byte, sample
generations at fixed prompts, resume from the last complete checkpoint).

The same code runs the tiny recipe on a CPU and GPT-2 124M on FineWeb on GPUs: only the
YAML differs (and `accelerate launch --config_file accelerate_configs/X.yaml -m
chatstack.cli pretrain ...` for many processes). The stage runs on chatstack.stage (resume,
save, metrics.json last, the CLI entry) like every other; what pretraining adds lives in:

- chatstack.data.packing: documents tokenized, joined by <|endoftext|> and cut into blocks
  lazily, for a streamed corpus as for a local one (nothing pads); a stream's held-out head;
- chatstack.sizing: `global_batch_tokens` (the gradient accumulation follows from the tokens
  per optimizer step and the number of processes, as llm.c's `-d 524288`) and `--dry_run
  true` (parameter count, memory per device and tokens/s estimates, no training);
- chatstack.checkpoints: atomic checkpoints, so a kill during a save leaves the previous
  checkpoint usable (the Trainer itself writes `checkpoint-N/` in place);
- chatstack.optim: `optimizer: muon`, torch.optim.Muon for the blocks' weight matrices and AdamW
  for the rest (modded-nanogpt), as one optimizer the Trainer schedules, clips and checkpoints;
- chatstack.evaluation.recall: on the synthetic world, the base's recall per attribute and its
  arithmetic in metrics.json, asked as the eval suite asks a base model.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from transformers import AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

from chatstack.checkpoints import AtomicCheckpoints, drop_staging
from chatstack.data.loading import load_eval_split, load_splits, resolve_spec
from chatstack.data.packing import bytes_per_token, collate_blocks, hold_out_head, offset_collator, pack, unigram_entropy
from chatstack.engine import Engine
from chatstack.errors import ConfigError, DataError
from chatstack.hardware import training_attention, tune_cpu_allocator
from chatstack.model import build_model, count_parameters
from chatstack.optim import MUON_ADJUST_LR, MuonFactory
from chatstack.sizing import dry_run, set_accumulation
from chatstack.stage import Trained, run_stage, save_generation_config, stage_main


@dataclass
class PretrainConfig(TrainingArguments):
    """TrainingArguments plus what a pretraining run needs to know about data and model."""

    output_dir: str = "outputs/tiny/pretrain"
    dataset: str = field(default="tiny_pretrain", metadata={"help": "datasets_cfg name (or YAML path) of the training text"})
    eval_dataset: str | None = field(
        default=None,
        metadata={
            "help": "held-out text (its test split if the spec makes one); default: the dataset's own test split, "
            "else eval_fraction of it"
        },
    )
    eval_fraction: float = 0.02
    eval_documents: int | None = field(
        default=None,
        metadata={
            "help": "streamed dataset: hold out this many documents from its head (default eval_fraction x 10,000); "
            "they are kept in memory and filtered out of the training stream by content hash"
        },
    )
    shuffle_buffer: int = field(
        default=0,
        metadata={"help": "streamed dataset: shuffle its shards and a buffer of this many documents (0: stream order)"},
    )
    text_column: str = "text"
    tokenizer_name_or_path: str = "outputs/tiny/tokenizer"
    model_preset: str = field(default="tiny", metadata={"help": "micro | tiny | gpt2-124m | gpt2-350m"})
    model_config: dict | str | None = field(default=None, metadata={"help": "GPT2Config overrides, e.g. {n_layer: 6}"})
    pad_vocab_multiple: int | None = field(
        default=None, metadata={"help": "pad the embedding rows to a multiple of this (llm.c: 50,257 -> 50,304 with 64)"}
    )
    attn_implementation: str = field(default="auto", metadata={
        "help": "auto (eager for bf16 on a CPU, else sdpa: chatstack.hardware.training_attention) | sdpa | eager | "
                "flash_attention_2 | ..."})
    block_size: int = 128
    position_offsets: bool = field(default=False, metadata={
        "help": "start each training block at a random position in [0, n_positions - block_size], so that a model "
                "pretrained on short blocks has trained embeddings for all its positions (SFT rows run longer)"})
    global_batch_tokens: int | None = field(
        default=None,
        metadata={
            "help": "tokens per optimizer step; sets gradient_accumulation_steps = global_batch_tokens / "
            "(per_device_train_batch_size x block_size x processes), as llm.c's -d"
        },
    )
    sample_prompts: list[str] = field(default_factory=lambda: ["Q: Where was", "12 + 7 ="])
    sample_max_new_tokens: int = 32
    dry_run: bool = field(
        default=False, metadata={"help": "print parameter count, memory per device and tokens/s estimates, then stop"}
    )
    cpu_allocator_tuning: bool = field(
        default=True,
        metadata={
            "help": "CPU runs: keep freed tensor memory in the process (glibc mallopt) instead of page-faulting the "
            "step's working set back in every step (chatstack.hardware.tune_cpu_allocator)"
        },
    )
    optimizer: str = field(
        default="adamw",
        metadata={
            "help": "adamw: `optim` for every parameter | muon: torch.optim.Muon for the 2-D weights of the blocks, "
            "`optim` (AdamW) for embeddings, norms and biases, as modded-nanogpt (chatstack.optim)"
        },
    )
    muon_learning_rate: float = field(
        default=0.05, metadata={"help": "Muon's peak lr, under the same warmup + cosine (modded-nanogpt's 0.05)"}
    )
    muon_momentum: float = 0.95
    muon_nesterov: bool = True
    muon_weight_decay: float = 0.0
    muon_adjust_lr_fn: str = field(
        default="original",
        metadata={"help": "original: Keller Jordan's sqrt(max(1, fan_out/fan_in)) | match_rms_adamw: 0.2 sqrt(max dim)"},
    )
    max_train_seconds: float | None = field(
        default=None,
        metadata={
            "help": "a wall-clock budget (evals and saves count): the LR schedule is re-sized as training goes to end "
            "when this many seconds are spent, at most at max_steps (the plan; its warmup stays)"
        },
    )
    world_recall: bool = field(
        default=True,
        metadata={
            "help": "a dataset built from the synthetic world (world_pretraining): after training, the base's "
            "recall per attribute and arithmetic accuracy into metrics.json (chatstack.evaluation.recall)"
        },
    )
    recall_arithmetic_dataset: str = field(
        default="tiny_arithmetic_eval", metadata={"help": "world_recall: its arithmetic problems, in the pretraining world"}
    )
    assumed_mfu: float = field(default=0.4, metadata={"help": "dry run: model FLOPs utilisation assumed for tokens/s"})
    dry_run_processes: int | None = field(
        default=None, metadata={"help": "dry run: size the run for this many processes (GPUs), default this launch's"}
    )
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
        if self.optimizer not in ("adamw", "muon"):
            raise ConfigError(f"optimizer: expected adamw or muon, got '{self.optimizer}'")
        if self.muon_adjust_lr_fn not in MUON_ADJUST_LR:
            raise ConfigError(f"muon_adjust_lr_fn: expected {' or '.join(MUON_ADJUST_LR)}, got '{self.muon_adjust_lr_fn}'")
        if self.data_seed is None:  # the sampler's order: fixed by the seed, so a resumed run sees the same data
            self.data_seed = self.seed
        wanted_bf16 = self.bf16
        if not self.use_cpu and not _has_accelerator():
            # a GPU recipe on a machine without one: run (or size) it on the CPU, and say so
            note = " (dry run: sizes the bf16 GPU run)" if self.dry_run else ""
            print(f"[chatstack] no GPU found: use_cpu true, tf32 off{note}")
            self.use_cpu, self.tf32 = True, None
        super().__post_init__()
        if self.dry_run:
            self.bf16 = wanted_bf16

    @property
    def tokens_per_step(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.world_size * self.block_size


def _has_accelerator() -> bool:
    return (
        torch.cuda.is_available()
        or (hasattr(torch, "xpu") and torch.xpu.is_available())
        or torch.backends.mps.is_available()
    )


def load_text(cfg: PretrainConfig):
    """(train, eval) text. A streamed train set stays an IterableDataset; eval is always a
    small in-memory Dataset (evaluated many times, never re-streamed): eval_dataset's held-out
    split, else the dataset's own, else eval_fraction of it, else (a stream) its first documents."""
    train, test = load_splits(cfg.dataset, seed=cfg.seed, test_size=None if cfg.eval_dataset else cfg.eval_fraction)
    if train.column_names is not None and cfg.text_column not in train.column_names:
        raise DataError(
            f"dataset '{cfg.dataset}': no column '{cfg.text_column}' (has {train.column_names}); set text_column"
        )
    streamed = isinstance(train, datasets.IterableDataset)
    eval_documents = cfg.eval_documents or max(1, int(cfg.eval_fraction * 10_000))
    if cfg.eval_dataset:
        test = load_eval_split(cfg.eval_dataset, seed=cfg.seed)
    elif test is None:  # a stream: no split to draw, hold out its head
        train, test = hold_out_head(train, eval_documents, cfg.text_column, f"dataset '{cfg.dataset}'")
    if isinstance(test, datasets.IterableDataset):
        test = datasets.Dataset.from_list(list(test.take(eval_documents)))
    if streamed and cfg.shuffle_buffer:
        train = train.shuffle(seed=cfg.seed, buffer_size=cfg.shuffle_buffer)
    return train, test


# ---- trainer -------------------------------------------------------------------------------


class PretrainTrainer(AtomicCheckpoints, Trainer):
    """The Trainer with atomic checkpoints, bits per byte next to each eval loss and tokens/s
    in each training log line."""

    def __init__(self, *args, eval_bytes_per_token: float | None = None, tokens_per_step: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_bytes_per_token = eval_bytes_per_token
        self.tokens_per_step = tokens_per_step
        self._last_log = (None, 0)

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
                logs["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
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


class TimeBudget(TrainerCallback):
    """Train for `seconds` (max_train_seconds): learning per wall-clock minute. Every `every` steps
    the LR schedule is re-sized to end at the step the budget reaches at this run's pace so far
    (at most max_steps), so the decay ends with the budget whatever the machine's load did to
    the step time; training stops there, or when the time is spent."""

    def __init__(self, seconds: float, every: int = 10):
        self.seconds, self.every = seconds, every
        self.start, self.first_step, self.end_step = 0.0, 0, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start, self.first_step, self.end_step = time.perf_counter(), state.global_step, state.max_steps

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        elapsed, done = time.perf_counter() - self.start, state.global_step - self.first_step
        if done and done % self.every == 0:
            pace = elapsed / done
            self.end_step = min(state.max_steps, state.global_step + int((self.seconds - elapsed) / pace))
            resize_schedule(lr_scheduler, self.end_step)
        if elapsed >= self.seconds or state.global_step >= self.end_step:
            control.should_training_stop = True


def resize_schedule(scheduler, total_steps: int) -> None:
    """Set the length of transformers' LambdaLR schedules (cosine, linear, ...: their lambdas are
    partials taking num_training_steps); the warmup stays as it was."""
    scheduler = getattr(scheduler, "scheduler", scheduler)  # accelerate's wrapper
    for i, fn in enumerate(getattr(scheduler, "lr_lambdas", None) or []):
        if isinstance(fn, functools.partial) and "num_training_steps" in fn.keywords:
            keywords = {**fn.keywords, "num_training_steps": total_steps}
            scheduler.lr_lambdas[i] = functools.partial(fn.func, *fn.args, **keywords)


def sample(model, tokenizer, prompts, max_new_tokens) -> dict[str, str]:
    """Greedy continuations of each prompt, one at a time (chatstack.engine)."""
    engine = Engine(model, tokenizer)
    return {p: engine.complete([p], max_new_tokens=max_new_tokens, batch_size=1)[0] for p in prompts}


# ---- the stage -----------------------------------------------------------------------------


def build_trainer(cfg: PretrainConfig):
    """Tokenizer, model, packed data and the Trainer; returns (trainer, eval_blocks)."""
    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer_name_or_path)
    if cfg.cpu_allocator_tuning and cfg.use_cpu:
        tune_cpu_allocator()
    set_accumulation(cfg)
    model = build_model(cfg.model_preset, tokenizer, cfg.model_config, training_attention(cfg),
                        cfg.pad_vocab_multiple)
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
        drop_staging(out)  # a save that a kill interrupted
    trainer = PretrainTrainer(
        model=model,
        args=cfg,
        train_dataset=train_blocks,
        eval_dataset=eval_blocks,
        data_collator=offset_collator(model.config.n_positions) if cfg.position_offsets else collate_blocks,
        processing_class=tokenizer,
        eval_bytes_per_token=bytes_per_token(eval_list, tokenizer),
        tokens_per_step=cfg.tokens_per_step,
        callbacks=[SampleCallback(tokenizer, cfg.sample_prompts, cfg.sample_max_new_tokens, out / "samples.jsonl")],
        optimizer_cls_and_kwargs=(MuonFactory, {"args": cfg}) if cfg.optimizer == "muon" else None,
    )
    trainer.add_callback(StartClock(trainer))
    if cfg.max_train_seconds:
        trainer.add_callback(TimeBudget(cfg.max_train_seconds))
    return trainer, eval_list


def fit(cfg: PretrainConfig, resume_from: str | None) -> Trained:
    trainer, eval_list = build_trainer(cfg)
    tokenizer, model = trainer.processing_class, trainer.model
    result = trainer.train(resume_from_checkpoint=resume_from)
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
        "optimizer": cfg.optimizer,
        "train_seconds": round(result.metrics["train_runtime"], 1),
    }
    world = world_of(cfg.dataset) if cfg.world_recall else None
    if world is not None:  # a few seconds on the tiny world; every process runs it, as it runs the samples
        from chatstack.evaluation.recall import base_recall
        metrics.update(base_recall(model, tokenizer, world, cfg.recall_arithmetic_dataset))
    if getattr(trainer, "is_fsdp_enabled", False):  # one loadable safetensors file, not per-rank shards
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(cfg.output_dir)  # every process: FSDP / ZeRO-3 gather the weights collectively
    return Trained(
        metrics,
        save=lambda out: save_generation_config(tokenizer, out),
        log_history=trainer.state.log_history,
        is_main=trainer.is_world_process_zero(),
        keep_checkpoints=True,
    )


def world_of(dataset: str) -> str | dict | None:
    """The synthetic world a pretraining dataset is built from (a `world_pretraining` builder's
    `world`: a preset name or WorldConfig fields), else None (web text)."""
    spec = resolve_spec(dataset)
    if spec["_kind"] != "builder" or spec["builder"] != "world_pretraining":
        return None
    return (spec.get("args") or {}).get("world", "tiny")


def train(cfg: PretrainConfig) -> dict:
    """Pretrain (chatstack.stage.run_stage), or with `dry_run` print and return the run's size."""
    if cfg.dry_run:
        report = dry_run(cfg)
        print(json.dumps(report, indent=2))
        return report
    return run_stage(cfg, fit)


def main(argv: list[str]) -> int:
    return stage_main(PretrainConfig, train, argv)
