"""`chatstack chat --model outputs/<recipe>/<stage>`: talk to a chat model in the terminal.

Streams the reply token by token (chatstack.engine), keeps the conversation history, takes a
system prompt and sampling options. Commands while chatting: /reset (forget the conversation),
/system TEXT (set the system prompt and reset), /history, /help, /quit (or Ctrl-D).

With no `--model` it opens the newest speedrun's final model (outputs/<recipe>/final). A model
trained with tools gets them, as its folder records them (chatstack.tools.record: the same
search store, result count and system prompt as its training data); `--tools search,python`
chooses others, `--tools none` none. The model may call a tool (chatstack.tools.loop): each
call is run (python in the sandbox), its result shown and appended, and the reply continues.

Works for any chat stage's output (sft, ppo, grpo: a save_pretrained folder whose tokenizer
has the chat template). The history is trimmed from its oldest turns when it no longer fits
the model's context with room for the reply: small models have short contexts.
`stream_reply` is what `chatstack serve` uses too.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from chatstack.config import parse_cli
from chatstack.engine import Engine, SamplingArgs
from chatstack.errors import DataError
from chatstack.tools.loop import ToolArgs, format_tool_result, resolve_tools, stream_with_tools
from chatstack.tools.record import latest_final, tools_and_system

HELP = "commands: /reset  /system TEXT  /history  /help  /quit"


BASE_STAGES = ("pretrain",)  # base models: their tokenizer has the template, but they were never taught to chat


def chat_models_under(path: str | Path) -> list[Path]:
    """Folders under `path` (one or two levels) holding a causal LM with a chat template;
    base models (pretrain) and Trainer checkpoints are left out."""
    root = Path(path)
    found = []
    for cand in sorted([root, *root.glob("*"), *root.glob("*/*")]):
        if cand.name in BASE_STAGES or cand.name.startswith("checkpoint-"):
            continue
        if is_chat_model(cand):
            found.append(cand)
    return found


def is_chat_model(path: Path) -> bool:
    import json
    cfg, tok = path / "config.json", path / "tokenizer_config.json"
    if not (cfg.is_file() and tok.is_file()):
        return False
    try:
        archs = json.loads(cfg.read_text()).get("architectures") or []
        has_template = (path / "chat_template.jinja").is_file() or "chat_template" in json.loads(tok.read_text())
    except (OSError, ValueError):
        return False
    return has_template and any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs)


def load_chat_model(path: str, device: str | None = None):
    """load(path) with a clear error for a folder that is not a chat model."""
    p = Path(path)
    if p.is_dir() and not (p / "config.json").is_file():
        options = chat_models_under(p)
        hint = f"; chat models under it: {', '.join(map(str, options))}" if options else ""
        raise DataError(f"--model {path}: not a model folder (no config.json){hint}")
    if p.is_dir() and not is_chat_model(p) and (p / "config.json").is_file():
        import json
        archs = json.loads((p / "config.json").read_text()).get("architectures") or []
        if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
            raise DataError(f"--model {path}: a {', '.join(archs)} is not a language model to chat with "
                            "(a reward model?); use an sft, ppo or grpo output")
    model, tokenizer = Engine.from_pretrained(path, device).pair()
    if not tokenizer.chat_template or "<|im_end|>" not in tokenizer.get_vocab():
        raise DataError(f"--model {path}: this is not a chat model (its tokenizer has no chat template); "
                        "use an sft, ppo or grpo output")
    return model, tokenizer


def fit_history(tokenizer, messages: list[dict], limit: int, reserve: int) -> tuple[list[dict], int]:
    """Drop the oldest user/assistant exchanges (never the system prompt nor the last user
    turn) until the prompt leaves `reserve` tokens of room. Returns (messages, dropped turns)."""
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system):]
    dropped = 0

    def length(ms):
        text = tokenizer.apply_chat_template(system + ms, tokenize=False, add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    while len(turns) > 1 and length(turns) + reserve > limit:
        cut = next((i for i in range(1, len(turns)) if turns[i]["role"] == "user"), len(turns) - 1)
        turns, dropped = turns[cut:], dropped + cut
    return system + turns, dropped


def stream_reply(model, tokenizer, messages: list[dict], max_new_tokens: int = 128, temperature: float = 0.7,
                 top_k: int | None = 50, top_p: float | None = 0.95, tools=None) -> Iterator[str]:
    """Yield the assistant's reply to `messages` piece by piece as it is generated; stops at the
    end-of-turn token. The prompt plus the reply are kept inside the model's context."""
    engine = Engine(model, tokenizer)
    yield from engine.stream(engine.render(messages, tools), engine.stop_ids(chat=True), max_new_tokens,
                             temperature=temperature, top_k=top_k, top_p=top_p)


class ChatSession:
    """A conversation with history; `send` streams the reply and records it."""

    def __init__(self, model, tokenizer, system: str | None = None, tools=None, max_tool_calls: int = 3,
                 tool_schemas: bool = False, **sampling):
        self.model, self.tokenizer, self.sampling = model, tokenizer, sampling
        self.engine = Engine(model, tokenizer)
        self.tools, self.max_tool_calls, self.tool_schemas = resolve_tools(tools), max_tool_calls, tool_schemas
        self.system = system
        self.messages: list[dict] = []
        self.dropped = 0
        self.reset()

    def reset(self, system: str | None = ...) -> None:  # type: ignore[assignment]
        if system is not ...:
            self.system = system or None
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def send(self, text: str) -> Iterator[str]:
        self.messages.append({"role": "user", "content": text})
        limit = self.engine.context_limit
        reserve = min(int(self.sampling.get("max_new_tokens", 128)), limit // 2)
        self.messages, self.dropped = fit_history(self.tokenizer, self.messages, limit, reserve)
        pieces = []
        try:
            if self.tools:
                yield from self._send_with_tools()
                return
            for piece in stream_reply(self.model, self.tokenizer, self.messages, **self.sampling):
                pieces.append(piece)
                yield piece
        except BaseException:
            self.messages.pop()  # the turn failed or was interrupted: forget the question
            raise
        self.messages.append({"role": "assistant", "content": "".join(pieces).strip()})

    def _send_with_tools(self) -> Iterator[str]:
        """The tool loop (chatstack.tools.loop): the model's text streams, each tool result is
        shown on a line of its own, and the calls and results join the history."""
        for event in stream_with_tools(self.engine, self.messages, tools=self.tools,
                                       max_tool_calls=self.max_tool_calls, tool_schemas_in_prompt=self.tool_schemas,
                                       **self.sampling):
            if event["type"] == "text":
                yield event["text"]
            elif event["type"] == "tool_result":
                yield "\n" + format_tool_result(event["message"]) + "\n"
            elif event["type"] == "done":
                self.messages.extend(event["messages"])


def repl(session: ChatSession, read=input, write=None) -> None:
    write = write or (lambda s: (sys.stdout.write(s), sys.stdout.flush()))
    while True:
        try:
            line = read("you> ")
        except (EOFError, KeyboardInterrupt):
            write("\n")
            return
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            return
        if text == "/help":
            write(HELP + "\n")
        elif text == "/reset":
            session.reset()
            write("(conversation reset)\n")
        elif text.startswith("/system"):
            session.reset(text[len("/system"):].strip())
            write(f"(system prompt {'set' if session.system else 'cleared'}; conversation reset)\n")
        elif text == "/history":
            for m in session.messages:
                calls = "".join(f" <tool_call {c['function']['name']} {c['function']['arguments']}>"
                                for c in m.get("tool_calls") or [])
                write(f"[{m['role']}] {m['content']}{calls}\n")
        elif text.startswith("/"):
            write(f"unknown command {text.split()[0]}; {HELP}\n")
        else:
            write("assistant> ")
            try:
                for piece in session.send(text):
                    write(piece)
            except KeyboardInterrupt:
                write("\n(interrupted)")
            except DataError as e:
                write(f"\n(error: {e})")
            write("\n")
            if session.dropped:
                write(f"(history trimmed: the {session.dropped} oldest messages no longer fit the context)\n")


@dataclass
class ChatArgs:
    model: str | None = field(default=None, metadata={
        "help": "a chat model folder, e.g. outputs/tiny/assistant; default: the newest outputs/<recipe>/final"})
    system: str | None = field(default=None, metadata={"help": "system prompt"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})


def main(argv: list[str]) -> int:
    a, s, t = parse_cli("chatstack chat", __doc__, (ChatArgs, SamplingArgs, ToolArgs), argv)
    torch.manual_seed(s.seed)
    path = a.model or latest_final()
    if path is None:
        raise DataError("chatstack chat: no --model and no outputs/<recipe>/final; run `make speedrun` first "
                        "or name a model folder")
    tools, system = tools_and_system(path, t.tools, a.system)
    model, tokenizer = load_chat_model(str(path), a.device)
    session = ChatSession(model, tokenizer, system=system, tools=tools, max_tool_calls=t.max_tool_calls,
                          tool_schemas=t.tool_schemas, **s.sampling())
    shown = ", ".join(sorted(session.tools)) if session.tools else "none (--tools search,python to add)"
    print(f"chatstack chat: {path} ({sum(p.numel() for p in model.parameters()):,} parameters, "
          f"context {session.engine.context_limit} tokens, tools: {shown}). {HELP}", flush=True)
    repl(session)
    return 0
