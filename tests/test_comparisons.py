"""The reward model's comparison data (chatstack.builders.comparisons): pairs of the policy's own
samples ranked by the world's truth, InstructGPT-style."""
from __future__ import annotations

import json
import random

import pytest

from chatstack.builders.comparisons import ComparisonConfig, ranked_pairs
from chatstack.errors import ConfigError


def test_ranked_pairs_widest_gap_first_distinct_texts_no_ties():
    samples = [("right", 1.0), ("wrong", -1.0), ("right", 1.0), ("refused", -0.5), ("runaway", -2.0), ("also wrong", -1.0)]
    pairs = ranked_pairs(samples, max_pairs=10, rng=random.Random(0))
    assert pairs[0] == ("right", "runaway", 1.0, -2.0)  # the widest gap first
    assert all(sa > sb for _, _, sa, sb in pairs)  # equal scores make no pair
    assert ("wrong", "also wrong", -1.0, -1.0) not in pairs
    assert len(pairs) == len(set((a, b) for a, b, *_ in pairs)) == 9  # 5 distinct texts, 4 scores: 10 - 1 tie
    assert [p[2] - p[3] for p in pairs] == sorted((p[2] - p[3] for p in pairs), reverse=True)
    assert len(ranked_pairs(samples, max_pairs=3, rng=random.Random(0))) == 3
    assert ranked_pairs([("a", 1.0), ("b", 1.0)], max_pairs=3, rng=random.Random(0)) == []


@pytest.mark.parametrize("bad", [{"k": 1}, {"temperature": 0.0}, {"max_pairs_per_prompt": 0}])
def test_config_refuses_what_cannot_make_a_pair(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        ComparisonConfig(**bad)


def test_micro_run_ranks_the_assistants_samples_and_the_reward_model_reads_them(micro_outputs, monkeypatch):
    from chatstack.data.loading import load_data

    out = micro_outputs / "comparisons"
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert metrics["pairs"] == len(rows) > 0 and metrics["samples"] == metrics["prompts"] * 4
    for r in rows:
        assert r["chosen_gold"] > r["rejected_gold"] and r["chosen"] != r["rejected"]
        assert r["prompt"][0]["role"] == "user" and r["chosen"][0]["role"] == "assistant"
    # the reward stage's mixture holds them, read from the run's folder as the stage reads it
    monkeypatch.chdir(micro_outputs.parent.parent)
    mixed = load_data("micro_reward")
    texts = {(json.dumps(r["chosen"]), json.dumps(r["rejected"])) for r in mixed.to_list()}
    assert all((json.dumps(r["chosen"]), json.dumps(r["rejected"])) in texts for r in rows)
