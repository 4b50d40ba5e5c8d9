"""Stage `tokenizer`: train a byte-level BPE on the recipe's pretraining text, and
`chatstack tokenize "text"` to see how text becomes tokens.

The tokenizer is trained with `tokenizers` (GPT-4-style split regex, byte-level alphabet)
and saved as a transformers fast tokenizer with the chat/tool special tokens and the
chat template, so AutoTokenizer, TRL and vLLM load it with no chatstack code.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import datasets
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from chatstack.config import parse_config, split_cli
from chatstack.data import load_data
from chatstack.data.loading import resolve_spec
from chatstack.errors import DataError

# GPT-4 (cl100k) split pattern: letters, numbers in groups of 1-3 digits, punctuation, spaces
GPT4_SPLIT = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+""")  # noqa: E501


def split_regex(max_digits: int = 3, number_space: bool = False) -> str:
    """The GPT-4 split with numbers cut into runs of at most `max_digits` digits (1: a token
    per digit, as Llama 2 and Qwen2 do). `number_space`: a number takes the space before it
    (" 7" one piece, as GPT-2's split has it), so that "7 + 3" is "7", " +", " 3" and not "7", " +",
    " ", "3": a number is then known by the token before it, as a copy by prefix match needs."""
    if max_digits < 1:
        raise ValueError(f"max_digits must be >= 1, got {max_digits}")
    digits = r"\p{N}" if max_digits == 1 else rf"\p{{N}}{{1,{max_digits}}}"
    return GPT4_SPLIT.replace(r"\p{N}{1,3}", (" ?" if number_space else "") + digits)


DOC_SEP = "<|endoftext|>"  # between pretraining documents
BOS, EOS, PAD = "<|endoftext|>", "<|im_end|>", "<|pad|>"
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
SPECIAL_TOKENS = [DOC_SEP, PAD, *CHAT_TOKENS, *TOOL_TOKENS]


# How transformers' parse_response (>= 5.13) reads an assistant turn written by the chat template
# (templates/chatml_tools.jinja): content, then `<tool_call>{json}</tool_call>` calls. TRL's
# GRPOTrainer(tools=...) parses rollouts with it; TRL sets one only for the chat templates it knows.
RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {"open": "<tool_call>", "close_pattern": r"</tool_call>\s*", "repeats": True, "content": "json",
                       "transform": {"type": "function", "function": "{content}"}},
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}


def add_response_template(tokenizer):
    """Set RESPONSE_TEMPLATE on a tokenizer with chatstack's chat template, unless it has one."""
    if getattr(tokenizer, "response_template", None) is None:
        tokenizer.response_template = RESPONSE_TEMPLATE
    return tokenizer


def default_chat_template() -> str:
    return resources.files("chatstack.templates").joinpath("chatml_tools.jinja").read_text()


@dataclass
class TokenizerConfig:
    """Train a byte-level BPE tokenizer."""

    output_dir: str = field(default="outputs/tiny/tokenizer", metadata={"help": "where to save the tokenizer"})
    dataset: str = field(default="tiny_pretrain", metadata={"help": "datasets_cfg name of the training text"})
    drop_dataset_args: list[str] = field(default_factory=list, metadata={
        "help": "builder args of `dataset` left out of the tokenizer's text where it has them (tiny: the reading "
                "documents, whose made-up names would take the vocabulary's slots from the world's words and numbers)"})
    text_column: str = "text"
    vocab_size: int = 2048
    min_frequency: int = 2
    max_digits: int = field(default=3, metadata={"help": "numbers are split into runs of at most this many digits before "
                                                         "BPE (GPT-4: 3; 1: a token per digit, as in Llama 2 and Qwen2)"})
    number_space: bool = field(default=False, metadata={"help": "a number takes the space before it (' 7', as GPT-2 "
                                                             "splits), not a token of its own (GPT-4); llama.cpp has no "
                                                             "such split: GGUF export then needs --tokenizer-pre"})
    max_documents: int | None = field(default=None, metadata={"help": "train on at most this many documents"})
    eval_documents: int = field(default=200, metadata={"help": "held-out documents for bytes_per_token"})
    model_max_length: int = 1024
    chat_template: str | None = field(default=None,
                                      metadata={"help": "path to a Jinja chat template (default: ChatML with tools)"})
    seed: int = 42


def bpe_untrained(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.BpeTrainer]:
    """The byte-level BPE `tokenizers` model (GPT-2's byte alphabet, the digit-aware split) and its
    trainer, before training: the stage trains it, benchmarks/tokenizer_throughput.py times it bare."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_regex(cfg.max_digits, cfg.number_space)), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, show_progress=True,
                                  special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    return tok, trainer


def tokenizer_text_spec(cfg: TokenizerConfig) -> str | dict:
    """`dataset`, less the builder args named in `drop_dataset_args`: the pretraining text as the
    builder makes it without them (the same documents, in the same order, as a mix without them)."""
    if not cfg.drop_dataset_args:
        return cfg.dataset
    spec = resolve_spec(cfg.dataset)
    args = spec.get("args") or {}
    if not any(k in args for k in cfg.drop_dataset_args):
        return cfg.dataset
    spec = {k: v for k, v in spec.items() if not k.startswith("_")}
    spec["args"] = {k: v for k, v in args.items() if k not in cfg.drop_dataset_args}
    return spec


def train_tokenizer(cfg: TokenizerConfig) -> dict:
    start = time.time()
    ds = load_data(tokenizer_text_spec(cfg), split="train", seed=cfg.seed)
    if cfg.text_column not in ds.column_names:
        raise DataError(f"dataset '{cfg.dataset}': no column '{cfg.text_column}' (has {ds.column_names}); set text_column")
    # a Dataset's column in one read (datasets 5 reads a column row by row); a streamed one as it comes
    column = ds[:][cfg.text_column] if isinstance(ds, datasets.Dataset) else ds[cfg.text_column]
    texts = [t for t in column if t]
    if len(texts) < 2:
        raise DataError(f"dataset '{cfg.dataset}': needs at least 2 non-empty documents, got {len(texts)}")
    random.Random(cfg.seed).shuffle(texts)
    n_eval = min(cfg.eval_documents, max(1, len(texts) // 10))
    eval_texts, train_texts = texts[:n_eval], texts[n_eval:][: cfg.max_documents]

    tok, trainer = bpe_untrained(cfg)
    tok.train_from_iterator(train_texts, trainer=trainer, length=len(train_texts))

    template = Path(cfg.chat_template).read_text() if cfg.chat_template else default_chat_template()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                     additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (BOS, EOS, PAD)],
                                     model_max_length=cfg.model_max_length, clean_up_tokenization_spaces=False)
    hf_tok.chat_template = template
    add_response_template(hf_tok)  # saved in tokenizer_config.json: TRL's GRPOTrainer(tools=...) parses calls with it
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf_tok.save_pretrained(out)

    loaded = AutoTokenizer.from_pretrained(out)  # measure what users will load
    n_bytes = sum(len(t.encode()) for t in eval_texts)
    n_tokens = sum(len(ids) for ids in loaded(eval_texts, add_special_tokens=False)["input_ids"])
    metrics = {"vocab_size": len(loaded), "bytes_per_token": round(n_bytes / n_tokens, 4),
               "train_documents": len(train_texts), "seconds": round(time.time() - start, 2)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv: list[str]) -> int:
    config, rest = split_cli(argv)
    cfg = parse_config(TokenizerConfig, config, rest)
    metrics = train_tokenizer(cfg)
    print(json.dumps(metrics, indent=2))
    return 0


COLOURS = [41, 42, 43, 44, 45, 46]


def tokenize_main(argv: list[str]) -> int:
    """`chatstack tokenize "text" [--tokenizer DIR]`: tokens coloured in a terminal, and their ids."""
    p = argparse.ArgumentParser(prog="chatstack tokenize")
    p.add_argument("text", nargs="+")
    p.add_argument("--tokenizer", default="outputs/tiny/tokenizer")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    a = p.parse_args(argv)
    if not Path(a.tokenizer).exists():
        raise DataError(f"--tokenizer {a.tokenizer}: not found; train one with `chatstack tokenizer`")
    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    text = " ".join(a.text)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pieces = [tok.decode([i]) for i in ids]
    colour = a.color == "always" or (a.color == "auto" and sys.stdout.isatty())
    if colour:
        print("".join(f"\x1b[{COLOURS[k % len(COLOURS)]}m{p}\x1b[0m" for k, p in enumerate(pieces)))
    else:
        print("|".join(pieces))
    print(ids)
    print(f"{len(text.encode())} bytes -> {len(ids)} tokens ({len(text.encode()) / max(1, len(ids)):.2f} bytes/token)")
    return 0
