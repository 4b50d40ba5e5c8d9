"""The one generation engine (nanochat's `Engine`): every script that makes a model write
text goes through it: `chatstack generate`, `chat` and `serve`, the evals, the knowledge
prober, PPO rollouts and pretraining samples; the tool loop (chatstack.tools.loop) is a
layer on top of it. No other module calls `model.generate`.

What it owns, so that nobody rebuilds it: the stop ids (a base model stops at `<|endoftext|>`,
a chat model at the end of its turn), the context limit (a prompt that fills the context gets
no reply; a reply never runs past the context), left padding for batches (the tokenizer's
padding side is restored afterwards), sampling settings (temperature 0 = greedy), eval mode
during generation, and streaming (TextIteratorStreamer, the generation in a thread).

    engine = Engine.from_pretrained("outputs/tiny/sft")
    engine.chat([[{"role": "user", "content": "Who are you?"}]])           # -> ["I am chatstack, ..."]
    engine.complete(["Q: Where was Ada Brook born?\\nA:"], max_new_tokens=16)  # base models
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from threading import Thread

import torch

from chatstack.errors import DataError

DOC_SEP = "<|endoftext|>"


class ContextFullError(DataError):
    """The prompt leaves no room in the model's context for a reply."""


@dataclass
class SamplingArgs:
    """Sampling options of the interactive commands (generate, chat, serve): one set of
    defaults. The evals, the prober and the RL stages generate greedily unless told otherwise."""
    max_new_tokens: int = field(default=128, metadata={"help": "tokens to generate per reply, at most"})
    temperature: float = field(default=0.7, metadata={"help": "0 = greedy"})
    top_k: int = field(default=50, metadata={"help": "sample among the k likeliest tokens (0 = all)"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling: the smallest set with this mass"})
    seed: int = field(default=0, metadata={"help": "torch seed for sampling"})

    def sampling(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                "top_k": self.top_k, "top_p": self.top_p}


@dataclass
class Completion:
    """One generated reply: its token ids up to the stop token, the stop token (None when the
    token budget ran out first) and the text (special tokens dropped)."""
    ids: list[int]
    stop: int | None
    text: str


def sampling_kwargs(pad_token_id, max_new_tokens: int = 64, temperature: float = 0.0, top_k: int | None = None,
                    top_p: float | None = None) -> dict:
    """`model.generate` keyword arguments; temperature 0 (or None) means greedy."""
    kw = {"max_new_tokens": max_new_tokens, "pad_token_id": pad_token_id}
    if temperature and temperature > 0:
        kw.update(do_sample=True, temperature=temperature, top_k=top_k or 0, top_p=top_p or 1.0)
    else:
        kw.update(do_sample=False, temperature=None, top_k=None, top_p=None)
    return kw


class Engine:
    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer

    @classmethod
    def from_pretrained(cls, path: str, device: str | None = None) -> Engine:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        if not Path(path).exists():
            raise DataError(f"--model {path}: not found (train it first, or give a save_pretrained folder)")
        tokenizer = AutoTokenizer.from_pretrained(path)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = AutoModelForCausalLM.from_pretrained(path).to(device)
        return cls(model.eval(), tokenizer)

    def pair(self):
        """(model, tokenizer), for code that takes them separately."""
        return self.model, self.tokenizer

    # ---- what the model allows -------------------------------------------------------------
    @property
    def context_limit(self) -> int:
        """The model's context in tokens (GPT-2 configs say n_positions, most others max_position_embeddings)."""
        cfg = self.model.config
        return int(getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or 1024)

    def token_ids(self, tokens) -> list[int]:
        vocab = self.tokenizer.get_vocab()
        return [vocab[t] for t in tokens if t in vocab]

    def stop_ids(self, chat: bool = True, also: tuple[str, ...] = ()) -> list[int]:
        """Base models stop at the document separator; chat models at the end of the turn
        (the tokenizer's eos, `<|im_end|>`) or a stray separator; `also`: more stop tokens
        (the tool loop's `</tool_call>`), where the vocabulary has them. Needs no model:
        `Engine(None, tokenizer).stop_ids()` is what a saved generation config stops at."""
        if not chat:
            return self.token_ids([DOC_SEP, *also])
        ids = [self.tokenizer.eos_token_id, *self.token_ids([DOC_SEP, *also])]
        return list(dict.fromkeys(i for i in ids if i is not None))  # the eos first, as generation configs list it

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        """The chat template up to the assistant's turn (tools: JSON schemas to render, or None)."""
        if not self.tokenizer.chat_template:
            raise DataError("this tokenizer has no chat template: chat needs a chat model (sft/ppo/grpo output)")
        return self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # ---- batched generation ----------------------------------------------------------------
    @torch.no_grad()
    def generate_batch(self, prompts: list[list[int]], stop_ids: list[int], max_new_tokens: int = 64,
                       suppress_ids: list[int] | None = None, **sampling):
        """One `model.generate` call on left-padded prompts. Returns (encoded prompts, new
        tokens): the raw tensors, for callers that need them (PPO). The reply budget is cut to
        the room the longest prompt leaves in the context."""
        model, tok = self.model, self.tokenizer
        room = self.context_limit - max(len(p) for p in prompts)
        if room <= 0:
            raise ContextFullError(f"a prompt of {max(len(p) for p in prompts)} tokens fills the model's context "
                                   f"of {self.context_limit} tokens")
        side, was_training = tok.padding_side, model.training
        tok.padding_side = "left"
        model.eval()
        try:
            enc = tok.pad({"input_ids": prompts}, return_tensors="pt").to(model.device)
            kw = sampling_kwargs(tok.pad_token_id, max_new_tokens=min(max_new_tokens, room), **sampling)
            if suppress_ids:
                kw["suppress_tokens"] = suppress_ids
            out = model.generate(**enc, eos_token_id=stop_ids, **kw)
        finally:
            tok.padding_side = side
            model.train(was_training)
        return enc, out[:, enc["input_ids"].shape[1]:]

    def generate(self, prompts: list[str | list[int]], stop_ids: list[int], max_new_tokens: int = 64,
                 batch_size: int = 32, suppress_ids: list[int] | None = None, **sampling) -> list[Completion | None]:
        """Batches of prompts in the order given. None for a prompt that alone fills the
        context; the others are batched without it."""
        ids = [self.encode(p) if isinstance(p, str) else list(p) for p in prompts]
        fits = [i for i, p in enumerate(ids) if len(p) < self.context_limit]
        out: list[Completion | None] = [None] * len(ids)
        stops = set(stop_ids)
        for b in range(0, len(fits), batch_size):
            idx = fits[b:b + batch_size]
            _, new = self.generate_batch([ids[i] for i in idx], stop_ids, max_new_tokens, suppress_ids, **sampling)
            for i, row in zip(idx, new.tolist()):
                cut = next((k for k, t in enumerate(row) if t in stops), None)
                body = row if cut is None else row[:cut]
                out[i] = Completion(body, None if cut is None else row[cut],
                                    self.tokenizer.decode(body, skip_special_tokens=True))
        return out

    def complete(self, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 32, **sampling) -> list[str]:
        """Base model: continue raw text until the document separator ('' where the prompt fills the context)."""
        done = self.generate(prompts, self.stop_ids(chat=False), max_new_tokens, batch_size, **sampling)
        return [c.text if c else "" for c in done]

    def chat(self, conversations: list[list[dict]], max_new_tokens: int = 64, batch_size: int = 32,
             tools: list[dict] | None = None, **sampling) -> list[str]:
        """Chat model: the assistant's reply to each conversation, up to its end-of-turn token."""
        texts = [self.render(c, tools) for c in conversations]
        done = self.generate(texts, self.stop_ids(chat=True), max_new_tokens, batch_size, **sampling)
        return [c.text.strip() if c else "" for c in done]

    # ---- streaming -------------------------------------------------------------------------
    def stream(self, prompt: str, stop_ids: list[int], max_new_tokens: int = 128, skip_special_tokens: bool = True,
               suppress_ids: list[int] | None = None, **sampling) -> Iterator[str]:
        """Yield the text of one reply piece by piece (TextIteratorStreamer, the generation in a
        thread); an exception in the generation is raised here, in the caller's thread.
        Raises ContextFullError when the prompt fills the context."""
        from transformers import TextIteratorStreamer
        model, tok = self.model, self.tokenizer
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        n = enc["input_ids"].shape[1]
        if n >= self.context_limit:
            raise ContextFullError(f"the conversation ({n} tokens) fills the model's context of {self.context_limit} "
                                   "tokens: /reset, or send a shorter message")
        kw = sampling_kwargs(tok.pad_token_id, max_new_tokens=min(max_new_tokens, self.context_limit - n), **sampling)
        if suppress_ids:
            kw["suppress_tokens"] = suppress_ids
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=skip_special_tokens, timeout=600)
        error: list[BaseException] = []

        def run():
            try:
                with torch.no_grad():
                    model.generate(**enc, eos_token_id=stop_ids, streamer=streamer, **kw)
            except BaseException as e:  # noqa: BLE001 - surfaced in the caller's thread
                error.append(e)
                streamer.end()

        thread = Thread(target=run, daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield piece
        thread.join()
        if error:
            raise error[0]
