"""The GRPO stage's rewards, one row per case (as open-r1's tests/test_rewards.py), the split of
the arithmetic problems, and the position fix for TRL's log-prob pass on left-padded prompts."""
from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from chatstack import grpo
from chatstack.world.datasets import arithmetic_prompts, get_world


@pytest.mark.parametrize("reply, answer, expression, paid", [
    ("7 + 6 = 13.", "13", "7 + 6", 1.0),       # worked form, right
    ("13.", "13", "7 + 6", 1.0),               # bare answer, right
    ("7 + 7 = 13.", "13", "7 + 6", 0.0),       # miscopied operand, right last number: not paid
    ("2 + 10 = 11.", "11", "2 + 9", 0.0),      # the gamed reply of the lenient reward
    ("7 + 6 = 14.", "13", "7 + 6", 0.0),       # wrong sum
    ("9 - 4 = 5.", "5", "9 - 4", 1.0),
    ("9 + 4 = 5.", "5", "9 - 4", 0.0),         # wrong operator
    ("The answer is 13", "13", "7 + 6", 1.0),
    ("", "13", "7 + 6", 0.0),
    # three numbers: the partial sums must be true and follow the question
    ("7 + 5 = 12. 12 + 9 = 21. The answer is 21.", "21", "7 + 5 + 9", 1.0),
    ("The answer is 21.", "21", "7 + 5 + 9", 1.0),                      # no steps written: nothing to check
    ("7 + 6 = 12. 12 + 9 = 21. The answer is 21.", "21", "7 + 5 + 9", 0.0),  # miscopied operand
    ("7 + 5 = 12. 12 + 8 = 21. The answer is 21.", "21", "7 + 5 + 9", 0.0),  # false step
    ("5 + 7 = 12. 12 + 9 = 21. The answer is 21.", "21", "7 + 5 + 9", 0.0),  # not the question's order
    ("7 + 5 = 12. 13 + 8 = 21. The answer is 21.", "21", "7 + 5 + 9", 0.0),  # drops the running sum
    ("7 + 5 = 12. 12 + 9 = 21. The answer is 22.", "21", "7 + 5 + 9", 0.0),
    ("The answer is 22. 7 + 5 = 12. 12 + 9 = 21.", "21", "7 + 5 + 9", 0.0),  # answer-first, wrong answer
    ("The answer is 21. 7 + 5 = 12. 12 + 9 = 21.", "21", "7 + 5 + 9", 1.0),
])
def test_correctness_reward_is_honest(reply, answer, expression, paid):
    assert grpo.correctness_reward([reply], answer=[answer], expression=[expression]) == [paid]
    conversational = [[{"role": "assistant", "content": reply}]]
    assert grpo.correctness_reward(conversational, answer=[answer], expression=[expression]) == [paid]


def test_correctness_reward_without_expression_reads_the_last_number():
    assert grpo.correctness_reward(["2 + 10 = 11.", "12"], answer=["11", "11"]) == [1.0, 0.0]


@pytest.mark.parametrize("reply, paid", [("7 + 6 = 13.", 0.2), ("13.", 0.0), ("7 + 6 = 13. And more", 0.0),
                                         ("10 - 3 = 7", 0.2)])
def test_format_reward(reply, paid):
    assert grpo.format_reward([reply]) == [paid]


@pytest.mark.parametrize("reply, answer, paid", [("They work for Acme.", "Acme", 1.0), ("Acmes", "Acme", 0.0)])
def test_answer_reward(reply, answer, paid):
    assert grpo.answer_reward([reply], answer=[answer]) == [paid]


def test_tool_error_reward_is_the_share_of_failed_calls():
    from chatstack.tools.sandbox import ERROR_PREFIX
    exchange = [{"role": "assistant", "content": ""}, {"role": "tool", "content": f"{ERROR_PREFIX} bad"},
                {"role": "tool", "content": "42"}, {"role": "assistant", "content": "42"}]
    assert grpo.tool_error_reward([exchange, "plain text"]) == [-0.25, 0.0]


def test_arithmetic_problems_split_by_problem_disjoint_and_seeded():
    world = get_world("tiny")
    train, heldout = world.arithmetic_problems(0.35)
    keys = lambda rows: {r["expression"] for r in rows}  # noqa: E731
    assert len(train) + len(heldout) == 155 and not keys(train) & keys(heldout)
    assert len(heldout) == round(155 * 0.35)
    assert world.arithmetic_problems(0.35) == (train, heldout)  # deterministic
    prompts = arithmetic_prompts("tiny", n=300, problems="train").to_list()
    evals = arithmetic_prompts("tiny", problems="heldout").to_list()
    assert {r["expression"] for r in prompts} <= keys(train)
    assert [r["expression"] for r in evals] == [r["expression"] for r in heldout]
    assert all(r["prompt"][0]["content"] == f"What is {r['expression']}?" for r in prompts[:20])
    with pytest.raises(ValueError, match="problems"):
        arithmetic_prompts("tiny", problems="test")


def test_positions_from_mask_scores_left_padded_rows_as_generate_samples_them():
    """TRL's log-prob pass gives GPT-2 no position ids: a left-padded row is scored at shifted
    positions. With the hook, a padded row's logits equal the unpadded row's."""
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=32, n_embd=32, n_layer=2, n_head=2)).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[0, 0, 5, 6, 7, 8]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    with torch.no_grad():
        alone = model(input_ids=ids).logits[0]
        shifted = model(input_ids=padded, attention_mask=mask).logits[0, 2:]
        grpo.positions_from_mask(model)
        fixed = model(input_ids=padded, attention_mask=mask).logits[0, 2:]
    assert not torch.allclose(alone, shifted, atol=1e-4)  # the defect: other positions, other model
    assert torch.allclose(alone, fixed, atol=1e-5)


def test_sum3_prompts_hold_out_their_eval_triples():
    from chatstack.builders.thinking import thinking_prompts

    train, held = thinking_prompts(n=400), thinking_prompts(n=400, split="eval")
    assert not {r["expression"] for r in train} & {r["expression"] for r in held}
    assert len({r["expression"] for r in held}) == len(held)  # each held-out problem once
    r = held[0]
    assert r["prompt"][0]["content"] == f"What is {r['expression']}?"
    assert str(sum(map(int, r["expression"].split(" + ")))) == r["answer"]


@pytest.mark.parametrize("text, form", [
    ("7 + 5 = 12. 12 + 9 = 21. The answer is 21.", "work_first"),
    ("The answer is 21. 7 + 5 = 12. 12 + 9 = 21.", "answer_first"),
    ("The answer is 21.", "answer_first"),
    ("21.", "bare"),
    ("7 + 5 = 12.", "work_first"),
])
def test_answer_form(text, form):
    assert grpo.answer_form(text) == form
