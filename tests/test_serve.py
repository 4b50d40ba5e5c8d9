"""`chatstack serve` without a browser: model discovery over outputs/<recipe>/*, the streaming
chat function the ChatInterface calls, and the app's construction."""
from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("gradio", reason="chatstack serve needs the 'serve' extra (gradio)")

from helpers_chat_model import REPLY, parrot_model  # noqa: E402

from chatstack.errors import DataError  # noqa: E402
from chatstack.serve import Models, build_app, discover, make_respond  # noqa: E402


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """outputs/demo/{sft, grpo} are chat models; pretrain (a base model), reward (a classifier), tokenizer
    and Trainer checkpoints are not."""
    root = tmp_path_factory.mktemp("serve") / "outputs"
    parrot = parrot_model()
    for stage in ("sft", "grpo", "pretrain", "sft/checkpoint-10"):  # a base model and a checkpoint: not listed
        shutil.copytree(parrot, root / "demo" / stage)
    shutil.copytree(parrot, root / "demo" / "reward")
    cfg = json.loads((root / "demo" / "reward" / "config.json").read_text())
    cfg["architectures"] = ["GPT2ForSequenceClassification"]
    (root / "demo" / "reward" / "config.json").write_text(json.dumps(cfg))
    (root / "demo" / "tokenizer").mkdir()
    shutil.copy(parrot / "tokenizer_config.json", root / "demo" / "tokenizer")
    return root


def test_discover_chat_models(outputs):
    found = discover(outputs=str(outputs))
    assert sorted(found) == ["demo/grpo", "demo/sft"]
    assert discover(outputs=str(outputs), recipe="demo") == found
    assert list(discover([str(outputs / "demo" / "sft")])) == ["demo/sft"]
    with pytest.raises(DataError, match="not found"):
        discover(outputs=str(outputs), recipe="nope")
    with pytest.raises(DataError, match="no chat model"):
        discover([str(outputs / "demo" / "tokenizer")])


def test_respond_streams_with_history_and_system(outputs):
    respond = make_respond(Models(discover(outputs=str(outputs)), device="cpu"))
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": REPLY}]}]
    chunks = list(respond("the water is big", history, "demo/sft", "Be brief.", 0.0, 50, 0.95, 32))
    assert len(chunks) > 3 and chunks[-1].strip() == REPLY
    assert all(REPLY.startswith(c.strip()) or c.strip() == REPLY for c in chunks)  # a growing prefix
    sampled = list(respond("hello", [], "demo/grpo", "", 0.9, 20, 0.9, 8))
    assert sampled  # sampling settings pass through
    assert "error" in list(respond("hi", [], "demo/missing", "", 0, 50, 1.0, 8))[-1]


def test_app_builds(outputs):
    import gradio as gr
    app = build_app(discover(outputs=str(outputs)), device="cpu")
    assert isinstance(app, gr.ChatInterface)
    labels = [c for c in app.additional_inputs if isinstance(c, gr.Dropdown)][0]
    assert {choice[0] for choice in labels.choices} == {"demo/sft", "demo/grpo"}
