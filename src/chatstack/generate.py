"""Sampling from base and chat models (temperature, top-k, top-p), batched.

Base models continue raw text; chat models get the conversation rendered by the chat
template and stop at the end-of-turn token. Everything here is `model.generate`; chatstack
only batches, renders and decodes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from threading import Thread
from typing import Iterator

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

from chatstack.data import DataError


def load(model_path: str, device: str | None = None):
    if not Path(model_path).exists():
        raise DataError(f"--model {model_path}: not found (train it first, or give a save_pretrained folder)")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.eval()
    return model, tokenizer


def context_limit(model) -> int:
    """The model's context in tokens (GPT-2 configs say n_positions, most others max_position_embeddings)."""
    cfg = model.config
    return int(getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or 1024)


def stream_generate(model, tokenizer, enc, eos: list[int], skip_special_tokens: bool = True, **kw) -> Iterator[str]:
    """Yield the text of one `model.generate` call piece by piece (TextIteratorStreamer, the
    generation in a thread); an exception in the generation is raised here, in the caller's thread."""
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=skip_special_tokens, timeout=600)
    error: list[BaseException] = []

    def run():
        try:
            with torch.no_grad():
                model.generate(**enc, eos_token_id=eos, streamer=streamer, **kw)
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


def sampling_kwargs(tokenizer, max_new_tokens=64, temperature=0.0, top_k=None, top_p=None) -> dict:
    kw = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    if temperature and temperature > 0:
        kw.update(do_sample=True, temperature=temperature, top_k=top_k or 0, top_p=top_p or 1.0)
    else:
        kw.update(do_sample=False, temperature=None, top_k=None, top_p=None)
    return kw


@torch.no_grad()
def _generate(model, tokenizer, texts: list[str], batch_size: int, eos: list[int], **kw) -> list[str]:
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outs = []
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            gen = model.generate(**enc, eos_token_id=eos, **kw)
            outs += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return outs


def complete(model, tokenizer, prompts: list[str], batch_size: int = 32, **sampling) -> list[str]:
    """Base model: continue raw text until the document separator."""
    eos = [tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    return _generate(model, tokenizer, prompts, batch_size, eos, **sampling_kwargs(tokenizer, **sampling))


def chat(model, tokenizer, conversations: list[list[dict]], batch_size: int = 32, tools=None, **sampling) -> list[str]:
    """Chat model: the assistant's reply to each conversation, up to its end-of-turn token."""
    if not tokenizer.chat_template:
        raise DataError("this tokenizer has no chat template: chat needs a chat model (sft/ppo/grpo output)")
    texts = [tokenizer.apply_chat_template(c, tools=tools, tokenize=False, add_generation_prompt=True) for c in conversations]
    eos = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    return [o.strip() for o in _generate(model, tokenizer, texts, batch_size, eos, **sampling_kwargs(tokenizer, **sampling))]


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top_k", type=int, default=50)
    p.add_argument("--top_p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)


def add_tool_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tools", default=None,
                   help="tools the model may call: 'search,python', or YAML such as "
                        "'[{name: search, k: 1}, {name: python, interpreter: /usr/bin/python3}]' (default: none)")
    p.add_argument("--max_tool_calls", type=int, default=3, help="tool calls per reply, at most")
    p.add_argument("--tool_schemas", action="store_true",
                   help="render the tools' JSON schemas into the prompt (models trained with them; the tiny recipe is not)")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="chatstack generate", description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    p.add_argument("--chat", action="store_true", help="treat each prompt as a user message (chat models)")
    p.add_argument("--system", default=None)
    p.add_argument("--num_samples", type=int, default=1)
    add_sampling_args(p)
    add_tool_args(p)
    a = p.parse_args(argv)
    if a.tools and not a.chat:
        raise DataError("--tools needs --chat (tool calls are a chat model's turns)")
    torch.manual_seed(a.seed)
    model, tokenizer = load(a.model)
    sampling = dict(max_new_tokens=a.max_new_tokens, temperature=a.temperature, top_k=a.top_k, top_p=a.top_p)
    for prompt in a.prompt:
        for k in range(a.num_samples):
            if a.chat and a.tools:
                from chatstack.tools.loop import format_tool_result, generate_with_tools
                conv = ([{"role": "system", "content": a.system}] if a.system else []) + [{"role": "user", "content": prompt}]
                res = generate_with_tools(model, tokenizer, [conv], tools=a.tools, max_tool_calls=a.max_tool_calls,
                                          tool_schemas_in_prompt=a.tool_schemas, **sampling)[0]
                out = "\n".join(format_tool_result(m) if m["role"] == "tool" else
                                 (m["content"] + "".join(f'<tool_call>{{"name": "{c["function"]["name"]}", "arguments": '
                                                         f'{json.dumps(c["function"]["arguments"])}}}</tool_call>'
                                                         for c in m.get("tool_calls") or []))
                                 for m in res["messages"])
            elif a.chat:
                conv = ([{"role": "system", "content": a.system}] if a.system else []) + [{"role": "user", "content": prompt}]
                out = chat(model, tokenizer, [conv], **sampling)[0]
            else:
                out = prompt + complete(model, tokenizer, [prompt], **sampling)[0]
            print(f"--- sample {k + 1} ---\n{out}")
    return 0
