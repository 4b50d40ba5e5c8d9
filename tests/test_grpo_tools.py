"""GRPO with tools: the grpo stage passes YAML `tools` to TRL's GRPOTrainer, TRL parses the
calls of each rollout with the tokenizer's response_template (chatstack.tokenizer), runs the
real sandboxed python and continues the rollout; the rewards see the full exchange."""
from __future__ import annotations

import json
import random

import pytest
from helpers_tool_model import conversations, tool_model

from chatstack import grpo
from chatstack.config import parse_config
from chatstack.errors import ConfigError


def test_grpo_rollouts_call_the_tool_and_rewards_see_the_exchange(tmp_path, monkeypatch):
    prompts = [c[:1] for c in conversations(random.Random(0), 16) if len(c) > 2][:4]
    rows = [{"prompt": p, "answer": "42"} for p in prompts]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "prompts.yaml"
    spec.write_text(f"files: [{tmp_path / 'prompts.jsonl'}]\n")
    seen = []

    def record(completions, **kwargs):
        seen.extend(completions)
        return [0.0] * len(completions)

    monkeypatch.setitem(grpo.REWARDS, "record", record)
    cfg = parse_config(grpo.GRPOStageConfig, None, [], output_dir=str(tmp_path / "out"),
                       model_name_or_path=str(tool_model()),
                       dataset=str(spec), eval_dataset=str(spec), eval_prompts=4, tools=["python"],
                       reward_funcs=["answer", "tool_errors", "record"], max_steps=1, per_device_train_batch_size=4,
                       num_generations=4, max_completion_length=96, max_tool_calling_iterations=1, temperature=0.7,
                       use_cpu=True, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True)
    metrics = grpo.train(cfg)
    with_calls = [c for c in seen if any(m.get("tool_calls") for m in c)]
    assert len(seen) == 4 and len(with_calls) >= 2, seen  # the model's own calls, during rollouts
    for c in with_calls:  # the reward reads the whole exchange: call, the tool's real output, the answer
        roles = [m["role"] for m in c]
        assert roles[:2] == ["assistant", "tool"]
        call = c[0]["tool_calls"][0]["function"]
        if call["arguments"] == {"code": "print(6 * 7)"}:
            assert c[1] == {"role": "tool", "name": "python", "content": "42"}
    assert metrics["rollout_tool_call_frequency"] and metrics["rollout_tool_call_frequency"][0] > 0
    assert metrics["tool_use_rate_before"] >= 0.5 and (tmp_path / "out" / "metrics.json").is_file()
    assert grpo.tool_error_reward([[{"role": "tool", "content": "Error: x"}, {"role": "tool", "content": "1"}]]) == [-0.25]


def test_grpo_tools_that_do_not_fit_the_context_are_a_config_error():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chatstack.tools import get_tools
    path = str(tool_model())
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    prompt = [{"role": "user", "content": "hi"}]
    grpo.check_fits(tok, model, prompt, get_tools(["python"]), 64, "here")
    with pytest.raises(ConfigError, match="with the tool schemas takes .* context of 512"):
        grpo.check_fits(tok, model, prompt, get_tools(["python", "search"]), 400, "here")
