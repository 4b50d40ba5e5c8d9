"""`chatstack chat`: streaming replies, history, system prompt, /reset, context trimming,
and the real command reading a conversation from stdin."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_chat_model import REPLY, parrot_model

from chatstack.chat import ChatSession, chat_models_under, fit_history, load_chat_model, repl, stream_reply
from chatstack.errors import DataError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def parrot():
    return parrot_model()


@pytest.fixture(scope="module")
def loaded(parrot):
    return load_chat_model(str(parrot), device="cpu")


def test_reply_streams_in_pieces(loaded):
    model, tok = loaded
    pieces = list(stream_reply(model, tok, [{"role": "user", "content": "the sun is big"}], temperature=0))
    assert len(pieces) > 3 and "".join(pieces).strip() == REPLY


def test_session_history_system_prompt_and_reset(loaded):
    model, tok = loaded
    s = ChatSession(model, tok, system="You are helpful.", max_new_tokens=32, temperature=0)
    assert "".join(s.send("hello")).strip() == REPLY
    assert "".join(s.send("and again")).strip() == REPLY
    assert [m["role"] for m in s.messages] == ["system", "user", "assistant", "user", "assistant"]
    s.reset()
    assert s.messages == [{"role": "system", "content": "You are helpful."}]
    s.reset(system="")
    assert s.messages == [] and s.system is None


def test_history_is_trimmed_to_the_context(loaded):
    model, tok = loaded  # 128 positions
    s = ChatSession(model, tok, system="Be brief.", max_new_tokens=16, temperature=0)
    for i in range(8):
        assert "".join(s.send(f"message number {i} about the water")).strip() == REPLY
    assert s.dropped > 0 and s.messages[0]["role"] == "system"
    assert s.messages[-2]["content"] == "message number 7 about the water"
    long = ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}] * 30
            + [{"role": "user", "content": "z"}])
    kept, dropped = fit_history(tok, long, limit=128, reserve=16)
    assert dropped > 0 and kept[0]["role"] == "user" and kept[-1]["content"] == "z"


def test_repl_commands(loaded):
    model, tok = loaded
    lines = iter(["hello", "/history", "/system Speak like a pirate.", "/history", "/reset", "/nope", "", "/quit", "never"])
    out = []
    s = ChatSession(model, tok, max_new_tokens=32, temperature=0)
    repl(s, read=lambda prompt: next(lines), write=out.append)
    text = "".join(out)
    assert f"assistant> {REPLY}" in text.replace(" \n", "\n")
    assert "[user] hello" in text and "(system prompt set; conversation reset)" in text
    assert "[system] Speak like a pirate." in text and "(conversation reset)" in text
    assert "unknown command /nope" in text
    assert s.messages == [{"role": "system", "content": "Speak like a pirate."}]


def test_not_a_chat_model(tmp_path, parrot):
    with pytest.raises(DataError, match="not a model folder.*chat models under it"):
        load_chat_model(str(_root_with(tmp_path, parrot)))
    with pytest.raises(DataError, match="not found"):
        load_chat_model(str(tmp_path / "missing"))
    reward = tmp_path / "reward"
    reward.mkdir()
    (reward / "config.json").write_text('{"architectures": ["GPT2ForSequenceClassification"], "model_type": "gpt2"}')
    with pytest.raises(DataError, match="not a language model to chat with"):
        load_chat_model(str(reward))


def _root_with(tmp_path: Path, parrot: Path) -> Path:
    root = tmp_path / "outputs" / "demo"
    root.mkdir(parents=True)
    (root / "sft").symlink_to(parrot)
    assert chat_models_under(root.parent) == [root / "sft"]
    return root


def test_the_command_in_a_terminal_session(parrot):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "chatstack.cli", "chat", "--model", str(parrot), "--temperature", "0",
                           "--system", "Be brief."], input="hello\n/reset\nhi again\n", capture_output=True, text=True,
                          env=env, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    replies = [line for line in proc.stdout.splitlines() if "assistant> " in line]
    assert len(replies) == 2 and all("cookie in the oven" in r for r in replies)  # the parrot, near enough
    assert "(conversation reset)" in proc.stdout
    assert "commands: /reset" in proc.stdout
