"""Stage `sft`: supervised fine-tuning on conversations with TRL's SFTTrainer.

The base model is an internet-document simulator; training on conversations (world QA,
identity, arithmetic, ...) in the chat template turns it into an assistant. Loss is on
assistant tokens only (the template's generation markers). Keep it gentle: a narrow or
hot SFT erases what pretraining stored (the world-calibration notes,
../shared/notes/world-calibration). Optional LoRA via peft.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

from chatstack.config import check_keys
from chatstack.data.loading import load_splits, require_columns
from chatstack.errors import ConfigError
from chatstack.evaluation.conversations import conversation_evals
from chatstack.evaluation.world_qa import qa_eval
from chatstack.hardware import score_labelled_positions_on_cpu, training_attention
from chatstack.stage import Trained, adopt_chat_format, require_chat_template, run_stage, save_chat_model, stage_main
from chatstack.tools.record import parse_tools, write_record


@dataclass
class SFTStageConfig(SFTConfig):
    """TRL's SFTConfig plus the model, the data mixture and the evaluation."""

    output_dir: str = "outputs/tiny/sft"
    model_name_or_path: str = "outputs/tiny/pretrain"
    dataset: str = field(default="tiny_sft", metadata={"help": "datasets_cfg name of the conversation mixture"})
    world: str = field(default="tiny", metadata={"help": "world preset for the evaluation"})
    eval_questions: int = field(default=200, metadata={"help": "held-out questions about seen people (0 = skip)"})
    peft: dict | str | None = field(default=None, metadata={"help": "LoRA: peft.LoraConfig kwargs, e.g. {r: 8}"})
    merge_adapter: bool = field(default=True, metadata={"help": "with peft: save the merged full model as well"})
    # conversation evals (chatstack.evaluation.conversations), read from the mixture's builders
    eval_conversations: bool = field(default=True, metadata={"help": "run format / identity / thinking evals"})
    eval_format_prompts: int = field(default=32, metadata={"help": "prompts for format compliance (ends its turn)"})
    eval_identity: dict | str | None = field(default=None, metadata={
        "help": "{name, maker}; default: the identity builder's"})
    eval_thinking: int = field(default=100, metadata={"help": "held-out thinking problems (with a thinking builder)"})
    eval_max_new_tokens: int = 48
    eval_thinking_max_new_tokens: int = 128
    eval_batch_size: int = 32
    # the tools the data teaches (chatstack.tools.record): chat, serve and the evals then offer those
    chat_tools: str | None = field(default=None, metadata={
        "help": "tools the mixture's tool conversations call, with their options, e.g. "
                "'[{name: search, store: world:tiny, k: 1}, python]'; recorded in the model folder"})
    chat_system: str | None = field(default=None, metadata={
        "help": "the system prompt the tool conversations carry (how the model knows tools are there)"})
    attn_implementation: str = field(default="auto", metadata={
        "help": "auto (eager for bf16 on a CPU, else sdpa: chatstack.hardware.training_attention) | sdpa | eager | ..."})
    # SFTConfig defaults chosen for a small model on a CPU
    assistant_only_loss: bool = True
    learning_rate: float = 5e-4
    max_length: int | None = 256
    bf16: bool | None = False
    gradient_checkpointing: bool = False
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.05
    logging_steps: float = 10
    save_steps: float = 100
    save_total_limit: int | None = 1
    seed: int = 42

    def __post_init__(self):
        if isinstance(self.peft, str):
            try:
                self.peft = json.loads(self.peft)
            except json.JSONDecodeError as e:
                raise ConfigError(f"peft: not a JSON mapping of LoraConfig options: {self.peft!r} ({e.msg})") from None
        if self.peft:
            from peft import LoraConfig
            if not isinstance(self.peft, dict):
                raise ConfigError(f"peft: expected a mapping of LoraConfig options such as {{r: 8}}, got {self.peft!r}")
            check_keys(LoraConfig, self.peft, "peft")
        if self.chat_tools:
            parse_tools(self.chat_tools)
        if isinstance(self.eval_identity, str):
            self.eval_identity = json.loads(self.eval_identity)
        super().__post_init__()


def heldout_questions(world: str, n: int, seed: int) -> list[dict]:
    from chatstack.world.datasets import qa
    rows = qa(world, splits=["qa_heldout"], phrasings=[0, 1]).to_list()
    random.Random(seed).shuffle(rows)
    return rows[:n]


def build_trainer(cfg: SFTStageConfig) -> tuple[SFTTrainer, list[str]]:
    """The stage's SFTTrainer (model, tokenizer in the chat format, the mixture) and what
    `adopt_chat_format` changed; `fit` trains it (benchmarks/sft_throughput.py measures it)."""
    tokenizer = AutoTokenizer.from_pretrained(cfg.model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(cfg.model_name_or_path,
                                                 attn_implementation=training_attention(cfg))
    adopted = adopt_chat_format(model, tokenizer, cfg.model_name_or_path)  # any causal LM: GPT-2, Llama, Qwen, ...
    require_chat_template(tokenizer, cfg.model_name_or_path)
    train_ds, eval_ds = load_splits(cfg.dataset, seed=cfg.seed)
    require_columns(train_ds, ["messages"], f"dataset '{cfg.dataset}'")
    if cfg.chat_tools and cfg.chat_system and not any(
            m and m[0]["role"] == "system" and m[0]["content"] == cfg.chat_system for m in train_ds["messages"]):
        raise ConfigError(f"chat_system: no conversation of dataset '{cfg.dataset}' starts with this system prompt "
                          f"({cfg.chat_system!r}): the model would be opened with a signal it never trained on")
    peft_config = None
    if cfg.peft:
        from peft import LoraConfig
        peft_config = LoraConfig(task_type="CAUSAL_LM", **cfg.peft)
    score_labelled_positions_on_cpu()  # the loss of labelled tokens only, not of every position
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config)
    return trainer, adopted


def fit(cfg: SFTStageConfig, resume_from: str | None) -> Trained:
    trainer, adopted = build_trainer(cfg)
    tokenizer = trainer.processing_class
    result = trainer.train(resume_from_checkpoint=resume_from)
    model = trainer.model
    if cfg.peft:
        trainer.model.save_pretrained(f"{cfg.output_dir}/adapter")
        if cfg.merge_adapter:
            model = trainer.model.merge_and_unload()
    metrics = {"train_loss": round(result.training_loss, 4), "train_seconds": round(result.metrics["train_runtime"], 1)}
    if adopted:
        metrics["chat_format_added"] = adopted
    if cfg.eval_questions:
        report = qa_eval(model, tokenizer, heldout_questions(cfg.world, cfg.eval_questions, cfg.seed))
        metrics.update(qa_accuracy_seen=round(report["accuracy"], 4), qa_samples_seen=report["samples"])
    metrics.update(conversation_evals(model, tokenizer, cfg))

    def save(out: str) -> None:
        if not cfg.peft or cfg.merge_adapter:  # else the adapter (saved above) is the output
            save_chat_model(model, tokenizer, out)
        if cfg.chat_tools:
            write_record(out, cfg.chat_tools, cfg.chat_system)
    return Trained(metrics, save, trainer.state.log_history, is_main=trainer.is_world_process_zero())


def train(cfg: SFTStageConfig) -> dict:
    return run_stage(cfg, fit)


def main(argv: list[str]) -> int:
    return stage_main(SFTStageConfig, train, argv)
