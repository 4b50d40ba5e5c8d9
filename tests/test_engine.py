"""The one generation engine (chatstack.engine): stop ids, the context limit, left padding
that is put back, batched replies equal to one-by-one replies, streaming equal to batched,
and no other module of src/chatstack calling `model.generate`."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers_chat_model import REPLY, parrot_model

from chatstack.engine import ContextFullError, Engine

SRC = Path(__file__).resolve().parents[1] / "src" / "chatstack"


@pytest.fixture(scope="module")
def engine():
    return Engine.from_pretrained(str(parrot_model()), device="cpu")


def conv(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_stop_ids(engine):
    vocab = engine.tokenizer.get_vocab()
    assert engine.stop_ids(chat=False) == [vocab["<|endoftext|>"]]
    assert set(engine.stop_ids(chat=True)) == {vocab["<|im_end|>"], vocab["<|endoftext|>"]}
    assert engine.stop_ids(chat=True, also=("</tool_call>",)) == engine.stop_ids(chat=True)  # not in this vocabulary


def test_tool_turns_stop_after_the_call():
    from helpers_tool_model import tool_model
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tool_model())
    close = tok.convert_tokens_to_ids("</tool_call>")
    engine = Engine(None, tok)
    assert close in engine.stop_ids(chat=True, also=("</tool_call>",)) and close not in engine.stop_ids(chat=True)


def test_chat_replies_and_padding_side_restored(engine):
    engine.tokenizer.padding_side = "right"
    engine.model.train()
    prompts = [conv("the sun is big"), conv("a"), conv("where is the water and the city of Paris")]
    batched = engine.chat(prompts, max_new_tokens=24, batch_size=3)
    assert engine.tokenizer.padding_side == "right" and engine.model.training  # both put back
    single = [engine.chat([c], max_new_tokens=24)[0] for c in prompts]
    assert batched == single  # left padding does not change greedy replies
    assert batched.count(REPLY) >= 2


def test_budget_and_stop(engine):
    done = engine.generate([engine.render(conv("the sun is big"))], engine.stop_ids(), max_new_tokens=3)[0]
    assert len(done.ids) == 3 and done.stop is None  # the budget ran out first
    done = engine.generate([engine.render(conv("the sun is big"))], engine.stop_ids(), max_new_tokens=40)[0]
    assert done.stop == engine.tokenizer.convert_tokens_to_ids("<|im_end|>") and done.text == REPLY


def test_context_limit(engine):
    limit = engine.context_limit
    assert limit == engine.model.config.n_positions
    fits = engine.encode(engine.render(conv("the sun is big")))
    too_long = fits * (limit // len(fits) + 1)
    out = engine.generate([too_long, fits], engine.stop_ids(), max_new_tokens=8)
    assert out[0] is None and out[1] is not None  # the overfull prompt gets no reply, the other does
    near = [fits[0]] * (limit - 4) + fits[-2:]  # room for 2 tokens
    assert len(engine.generate([near], engine.stop_ids(), max_new_tokens=50)[0].ids) <= 2  # never past the context
    with pytest.raises(ContextFullError):
        list(engine.stream(engine.tokenizer.decode(too_long), engine.stop_ids()))


def test_stream_equals_batched(engine):
    text = engine.render(conv("the water is big"))
    streamed = "".join(engine.stream(text, engine.stop_ids(), max_new_tokens=24, temperature=0))
    assert streamed.strip() == engine.chat([conv("the water is big")], max_new_tokens=24)[0]


def test_sampling_is_seeded(engine):
    import torch
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(engine.complete(["the sun"], max_new_tokens=12, temperature=1.0, top_k=0, top_p=1.0))
    assert runs[0] == runs[1]


def test_only_the_engine_calls_model_generate():
    """`X.generate(...)` where X is not an engine (`engine`, `self.engine`, or the Engine's own
    `self`): only chatstack/engine.py may do it."""
    calls = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "generate":
                owner = node.func.value
                through_engine = (isinstance(owner, ast.Name) and owner.id in ("engine", "self")
                                  or isinstance(owner, ast.Attribute) and owner.attr == "engine")
                if not through_engine:
                    calls.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert calls and all(c.startswith("engine.py:") for c in calls), calls
