"""`chatstack serve`: chat with your models in the browser (Gradio ChatInterface).

    chatstack serve                          # every chat model under outputs/*/, the newest final first
    chatstack serve --recipe tiny            # the models of outputs/tiny/ (sft, ppo, grpo, ...)
    chatstack serve --model outputs/tiny/sft --port 7860

With `--tools search,python` the model may call tools (chatstack.tools.loop); each tool
result shows in the reply. The reply streams as it is generated (the same `stream_reply` as `chatstack chat`). A model
picker lists the chat models found (folders whose tokenizer has the chat template; reward
models and base models are left out); the system prompt and sampling settings sit beside
it. Local only by default (127.0.0.1, no share link, no analytics).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from chatstack.chat import chat_models_under, fit_history, is_chat_model, load_chat_model, stream_reply
from chatstack.config import parse_cli
from chatstack.engine import Engine, SamplingArgs
from chatstack.errors import DataError
from chatstack.tools.loop import ToolArgs, format_tool_result, resolve_tools, stream_with_tools
from chatstack.tools.record import latest_final, tools_and_system


def discover(models: list[str] | None = None, outputs: str = "outputs", recipe: str | None = None) -> dict[str, str]:
    """label ('recipe/stage') -> path of every chat model in `models` (folders or roots to
    scan) or else under outputs/<recipe>/ (outputs/*/ without a recipe)."""
    roots = [Path(m) for m in models] if models else [Path(outputs) / recipe] if recipe else [Path(outputs)]
    found: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            raise DataError(f"serve: {root} not found (train a recipe first, e.g. `chatstack speedrun --recipe tiny`)")
        for path in ([root] if is_chat_model(root) else chat_models_under(root)):
            label = f"{path.parent.name}/{path.name}"
            while label in found and found[label] != str(path):
                label += "'"
            found[label] = str(path)
    if not found:
        raise DataError(f"serve: no chat model under {', '.join(map(str, roots))} (an sft, ppo or grpo output)")
    return found


class Models:
    """Loads models on first use and keeps the last few."""

    def __init__(self, paths: dict[str, str], keep: int = 2, device: str | None = None):
        self.paths, self.keep, self.device = paths, keep, device
        self.loaded: dict[str, tuple] = {}
        self.lock = threading.Lock()

    def get(self, label: str):
        if label not in self.paths:
            raise DataError(f"unknown model {label!r}; choose one of {', '.join(self.paths)}")
        with self.lock:
            if label not in self.loaded:
                while len(self.loaded) >= self.keep:
                    self.loaded.pop(next(iter(self.loaded)))
                self.loaded[label] = load_chat_model(self.paths[label], self.device)
            return self.loaded[label]


def _text(content) -> str:
    """Gradio history content (a string, or a list of typed parts) -> plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return content.get("text", "") if content.get("type", "text") == "text" else ""
    if isinstance(content, (list, tuple)):
        return "".join(_text(c) for c in content)
    return ""


def make_respond(models: Models, tools=None, max_tool_calls: int = 3, tool_schemas: bool = False):
    """With `tools` (e.g. 'search,python'; default: each model's recorded tools, 'none': none)
    replies go through the tool loop: each tool result shows on a line of its own in the reply
    (chatstack.tools.loop)."""
    def respond(message, history, model_label, system, temperature, top_k, top_p, max_new_tokens):
        message = _text(message)
        try:
            model, tokenizer = models.get(model_label)
            model_tools, system = tools_and_system(models.paths[model_label], tools, system)
            model_tools = resolve_tools(model_tools)
        except (DataError, OSError) as e:
            yield f"(error: {e})"
            return
        messages = [{"role": "system", "content": system}] if system and system.strip() else []
        for m in history or []:
            if m.get("role") in ("user", "assistant") and _text(m.get("content")):
                messages.append({"role": m["role"], "content": _text(m["content"])})
        messages.append({"role": "user", "content": message})
        limit = Engine(model, tokenizer).context_limit
        messages, _ = fit_history(tokenizer, messages, limit, min(int(max_new_tokens), limit // 2))
        reply = ""
        sampling = dict(max_new_tokens=int(max_new_tokens), temperature=float(temperature), top_k=int(top_k),
                        top_p=float(top_p))
        try:
            if model_tools:
                for event in stream_with_tools(Engine(model, tokenizer), messages, tools=model_tools,
                                               max_tool_calls=max_tool_calls, tool_schemas_in_prompt=tool_schemas,
                                               **sampling):
                    if event["type"] == "text":
                        reply += event["text"]
                    elif event["type"] == "tool_result":
                        reply += "\n" + format_tool_result(event["message"]) + "\n"
                    yield reply
            else:
                for piece in stream_reply(model, tokenizer, messages, **sampling):
                    reply += piece
                    yield reply
        except DataError as e:
            yield reply + f"\n(error: {e})"
            return
        if not reply.strip():
            yield "(the model ended its turn without a word)"
    return respond


def build_app(paths: dict[str, str], default: str | None = None, device: str | None = None, temperature: float = 0.7,
              top_k: int = 50, top_p: float = 0.95, max_new_tokens: int = 128, system: str = "", tools=None,
              max_tool_calls: int = 3, tool_schemas: bool = False):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    models = Models(paths, device=device)
    labels = list(paths)
    default = default if default in paths else labels[0]
    return gr.ChatInterface(
        make_respond(models, tools=tools, max_tool_calls=max_tool_calls, tool_schemas=tool_schemas),
        title="chatstack",
        description=f"Chat with the models of this repo. {len(labels)} model(s): {', '.join(labels)}.",
        additional_inputs=[
            gr.Dropdown(labels, value=default, label="Model"),
            gr.Textbox(value=system, label="System prompt", placeholder="optional"),
            gr.Slider(0.0, 2.0, value=temperature, step=0.05, label="Temperature (0 = greedy)"),
            gr.Slider(0, 200, value=top_k, step=1, label="Top-k (0 = off)"),
            gr.Slider(0.05, 1.0, value=top_p, step=0.05, label="Top-p"),
            gr.Slider(1, 1024, value=max_new_tokens, step=1, label="Max new tokens"),
        ],
        additional_inputs_accordion=gr.Accordion("Model and sampling", open=True),
        analytics_enabled=False,
        fill_height=True,
    )


@dataclass
class ServeArgs:
    model: list[str] | None = field(default=None, metadata={
        "help": "chat model folders, or folders to scan; default: scan --outputs"})
    recipe: str | None = field(default=None, metadata={"help": "only the models of outputs/<recipe>/"})
    outputs: str = field(default="outputs", metadata={"help": "root of the recipes' outputs"})
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = field(default=False, metadata={"help": "a public Gradio share link (off by default)"})
    device: str | None = None
    system: str = field(default="", metadata={"help": "default system prompt"})


def main(argv: list[str]) -> int:
    a, s, t = parse_cli("chatstack serve", __doc__, (ServeArgs, SamplingArgs, ToolArgs), argv)
    paths = discover(a.model, a.outputs, a.recipe)
    final = latest_final(a.outputs) if not a.model else None
    default = next((label for label, path in paths.items() if final and Path(path).resolve() == final.resolve()), None)
    if t.tools and t.tools.strip().lower() != "none":
        resolve_tools(t.tools)  # unknown tools are an error now, not at the first message
    for label, path in paths.items():
        print(f"serve: {label}: {path}", flush=True)
    app = build_app(paths, default=default, device=a.device, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                    max_new_tokens=s.max_new_tokens, system=a.system, tools=t.tools, max_tool_calls=t.max_tool_calls,
                    tool_schemas=t.tool_schemas)
    app.queue().launch(server_name=a.host, server_port=a.port, share=a.share, show_error=True)
    return 0
