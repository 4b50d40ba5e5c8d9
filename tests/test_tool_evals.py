"""chatstack.evaluation.tools.tool_evals: the figures with and without tools, judged against
the world's ground truth (the signature `chatstack eval --suite` imports)."""
from __future__ import annotations

import inspect

from helpers_tool_model import tool_model

from chatstack.evaluation import tools as tool_eval


class Stub:  # a model for the patched loop: only eval()/train() are called on it
    training = False

    def eval(self):
        return self

    def train(self, mode=True):
        return self


KEYS = ("unseen_fact_accuracy", "arithmetic_accuracy", "counting_accuracy", "tool_use_rate", "tool_error_rate")


def test_signature_kept_for_the_suite():
    params = list(inspect.signature(tool_eval.tool_evals).parameters.values())[:6]
    assert [(p.name, p.default) for p in params] == [("model", inspect._empty), ("tokenizer", inspect._empty),
                                                    ("world", "tiny"), ("n", 100), ("use_tools", True), ("seed", 0)]


def test_figures_with_and_without_tools(monkeypatch):
    """An oracle that answers every other prompt right, with a tool call (one in three failing)
    only when tools are on: the figures must be exactly what it did."""
    seen = {}

    def fake_loop(engine, conversations, tools=None, **kw):
        from chatstack.builders.tools import tool_prompts
        rows = {}
        for kind in ("search", "python_arithmetic", "python_counting"):
            for r in tool_prompts("tiny", n=4, mix={kind: 1}, split="eval").to_list():
                rows[r["prompt"][-1]["content"]] = r["answer"]
        seen[bool(tools)] = [c[-1]["content"] for c in conversations]
        out = []
        for i, c in enumerate(conversations):
            right = i % 2 == 0
            reply = f"It is {rows[c[-1]['content']] if right else 'unknown 7'}."
            calls = 1 if tools else 0
            out.append({"messages": [], "reply": reply, "tool_calls": calls, "tool_errors": int(bool(tools) and i % 3 == 0),
                        "context_full": False})
        return out

    import chatstack.tools.loop as loop
    monkeypatch.setattr(loop, "generate_with_tools", fake_loop)
    out = tool_eval.tool_evals(Stub(), None, n=4)
    for suffix in ("with_tools", "without_tools"):
        assert all(f"{k}_{suffix}" in out for k in KEYS)
        for task in ("unseen_fact", "arithmetic", "counting"):
            assert out[f"{task}_accuracy_{suffix}"] == 0.5
    assert out["tool_use_rate_with_tools"] == 1.0 and out["tool_use_rate_without_tools"] == 0.0
    assert out["tool_error_rate_with_tools"] == 4 / 12 and out["tool_error_rate_without_tools"] == 0.0
    assert len(seen[True]) == 12 and seen[True] == seen[False]  # the same held-out prompts both ways
    only = tool_eval.tool_evals(Stub(), None, n=4, use_tools=False)
    assert not any(k.endswith("_with_tools") for k in only) and "arithmetic_accuracy_without_tools" in only


def test_judging():
    asked = "How many times does the letter 'r' appear in 'strawberry'?"
    assert tool_eval._judge("arithmetic", "73111 * 30643 = 2240340373.", "2240340373", "")
    assert not tool_eval._judge("arithmetic", "73111 * 30643 = 2240340372.", "2240340373", "")
    assert tool_eval._judge("counting", "The letter 'r' appears 3 times in 'strawberry'.", "3", asked)
    assert not tool_eval._judge("counting", "The letter 'a' appears 3 times in 'banana'.", "3", asked)
    assert tool_eval._judge("unseen_fact", "They work in geology.", "geology", "")
    assert not tool_eval._judge("unseen_fact", "They work in geometry.", "geology", "")


def test_runs_end_to_end_on_a_model():
    from chatstack.engine import Engine
    model, tok = Engine.from_pretrained(str(tool_model()), device="cpu").pair()
    out = tool_eval.tool_evals(model, tok, n=2, tools=["python"], max_new_tokens=24)
    assert out["n_per_task"] == 2 and out["tool_use_rate_without_tools"] == 0.0  # the call token is suppressed
    assert 0 <= out["tool_use_rate_with_tools"] <= 1 and len(out["samples_with_tools"]) == 6
