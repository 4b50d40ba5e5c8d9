"""The reward model's score pads on the right, as TRL's RewardTrainer collator does, whatever
padding side the tokenizer carries: GPT-2 counts positions from the first token, so a
left-padded batch would shift them and change the rewards (and PPO's)."""
from __future__ import annotations

import pytest
from helpers_chat_model import parrot_model

from chatstack.reward import load_reward_model, score


def test_score_does_not_depend_on_the_tokenizers_padding_side():
    model, tok = load_reward_model(str(parrot_model()))
    convs = [[{"role": "user", "content": "the sun is big and the water is big"}, {"role": "assistant", "content": "yes"}],
             [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]]
    alone = [score(model, tok, [c])[0] for c in convs]  # no padding at all
    for side in ("right", "left"):
        tok.padding_side = side
        assert score(model, tok, convs) == pytest.approx(alone, abs=1e-5), side
