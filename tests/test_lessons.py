"""The lesson card reads the stages' metrics and judges each lesson against its goal."""
from __future__ import annotations

import pytest

from chatstack.errors import ConfigError
from chatstack.lessons import card_table, lesson_card


def stages(**metrics_by_stage):
    return {name: {"seconds": 1.0, "metrics": m} for name, m in metrics_by_stage.items()}


def test_card_reads_the_final_chat_stage_and_judges_each_goal():
    card = lesson_card(stages(
        sft={"qa_accuracy_seen": 0.5, "identity_accuracy": 0.83, "format_compliance": 0.93},
        sft_refusal={"qa_accuracy_seen": 0.62, "identity_accuracy": 0.5, "identity_samples": 12, "format_compliance": 0.97},
        eval_refusal={"hallucination_unseen_before": 0.99, "hallucination_unseen_after": 0.04, "n_unseen": 300,
                      "over_refusal_seen_after": 0.12, "n_seen": 200, "accuracy_seen_before": 0.33,
                      "accuracy_seen_after": 0.62},
        grpo={"accuracy_before": 0.40, "accuracy_after": 0.50, "eval_prompts": 54, "pass_at_8_before": 0.7},
    ))
    assert card["knowledge"] == {**card["knowledge"], "stage": "eval_refusal", "before": 0.33, "after": 0.62, "n": 200,
                                 "met": True}  # 0.62 >= 0.60, people the refusal data never named
    assert card["identity"] == {**card["identity"], "before": 0.83, "after": 0.5, "n": 12, "met": False}
    assert card["format"]["met"] is True
    assert card["hallucination"] == {**card["hallucination"], "before": 0.99, "after": 0.04, "n": 300, "met": True}
    assert card["over_refusal"]["met"] is False  # 0.12 > 0.10
    assert card["grpo"]["met"] is False and card["grpo"]["goal"] == "+0.15"  # +0.10 < +0.15
    assert card["grpo"]["pass_at_8_before"] == 0.7
    assert "rlhf" not in card  # no ppo stage in this run
    rows = card_table(card)
    assert rows[0].startswith("| lesson") and any(r.startswith("| over_refusal") and "**no**" in r for r in rows)


def test_missing_figures_are_not_judged():
    card = lesson_card(stages(ppo={"gold_test_start": 0.1, "gold_start": 0.1, "gold_best": 0.3}))
    assert card["rlhf"]["met"] is None and card["rlhf"]["after"] is None  # judged on the test prompts only


def test_rlhf_keeping_the_sft_model_is_not_a_gain():
    card = lesson_card(stages(ppo={"gold_test_start": -0.5, "gold_test_kept": -0.5, "gold_start": -0.58,
                                   "gold_best": -0.58, "best_step": 0}))
    assert card["rlhf"]["met"] is False and card["rlhf"]["best_step"] == 0


def test_rlhf_is_judged_where_no_checkpoint_was_chosen():
    """A gain on the validation prompts the checkpoint was chosen on is not the lesson: the test gold is."""
    chosen_on_val = {"gold_start": 0.60, "gold_best": 0.65, "best_step": 4, "test_prompts": 160}
    card = lesson_card(stages(ppo={**chosen_on_val, "gold_test_start": 0.62, "gold_test_kept": 0.61}))
    assert card["rlhf"]["met"] is False and card["rlhf"]["gold_best"] == 0.65 and card["rlhf"]["n"] == 160
    card = lesson_card(stages(ppo={**chosen_on_val, "gold_test_start": 0.62, "gold_test_kept": 0.66}))
    assert card["rlhf"]["met"] is True and card["rlhf"]["before"] == 0.62


def test_identity_and_format_must_hold_on_every_chat_stage_and_tools_are_read_from_the_assistant_eval():
    card = lesson_card(stages(
        sft={"identity_accuracy": 0.83, "format_compliance": 0.97},
        assistant={"identity_accuracy": 1.0, "identity_samples": 12, "format_compliance": 1.0},
        ppo={"identity_accuracy_kept": 0.92, "format_compliance_kept": 0.90},
        grpo={"identity_accuracy_after": 0.95, "format_compliance_after": 0.99},
        eval_assistant={"search_accuracy": 0.93, "search_accuracy_without_tools": 0.0, "n_per_task": 100,
                        "python_arithmetic_accuracy": 0.9, "python_arithmetic_accuracy_without_tools": 0.01,
                        "letter_counting_accuracy": 0.99, "letter_counting_accuracy_without_tools": 0.4,
                        "search_accuracy_heldout_phrasing": 0.8, "tool_error_rate": 0.01},
    ))
    assert card["identity"] == {**card["identity"], "stage": "sft", "before": 0.83, "after": 0.83, "met": False}
    assert card["format"] == {**card["format"], "stage": "ppo", "after": 0.90, "met": False}
    assert card["search"] == {**card["search"], "before": 0.0, "after": 0.93, "n": 100, "met": True,
                              "search_accuracy_heldout_phrasing": 0.8, "tool_error_rate": 0.01}
    assert card["python_arithmetic"]["met"] is False and card["letter_counting"]["met"] is True
    # asked with its tools on (as `chatstack chat` asks), the final model must still say who it is
    card = lesson_card(stages(sft={"identity_accuracy": 0.95}, eval_assistant={"identity_accuracy_with_tools": 0.25}))
    assert card["identity"] == {**card["identity"], "stage": "eval_assistant", "after": 0.25, "met": False}


def test_base_knowledge_is_its_worst_attribute_and_thinking_compares_the_two_orders():
    recall = {f"recall_heldout_{a}": v for a, v in
              zip(("birth_city", "birth_year", "university", "field", "employer"), (0.9, 0.6, 0.95, 0.85, 0.9))}
    card = lesson_card(stages(pretrain={**recall, "arithmetic_accuracy": 0.2},
                              grpo={"sample_accuracy_answer_first_before": 0.2, "sample_accuracy_work_first_before": 0.4,
                                    "samples_work_first_before": 300, "samples_answer_first_before": 500}))
    assert card["knowledge_base"] == {**card["knowledge_base"], "after": 0.6, "met": False, "arithmetic_accuracy": 0.2}
    assert card["thinking"] == {**card["thinking"], "before": 0.2, "after": 0.4, "n": 300, "met": True}


def test_seeds_table_shows_each_run_with_mean_and_range(tmp_path, capsys):
    import json

    from chatstack.report import main as report_main

    for seed, (before, after) in enumerate([(0.30, 0.75), (0.20, 0.44), (0.40, 0.84)]):
        run = tmp_path / f"tiny-seed{seed}"
        run.mkdir()
        summary = {"world_seed": seed, "stages": stages(
            grpo={"accuracy_before": before, "accuracy_after": after, "eval_prompts": 54},
            eval_refusal={"hallucination_unseen_after": 0.1 + seed / 10, "n_unseen": 300})}
        (run / "summary.json").write_text(json.dumps(summary))
    runs = ",".join(str(tmp_path / f"tiny-seed{s}") for s in range(3))
    assert report_main(["--runs", runs]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "| lesson | measured | goal | seed 0 | seed 1 | seed 2 | mean after (range) |"
    grpo = next(r for r in rows if r.startswith("| grpo"))
    assert "0.3 -> 0.75 (yes)" in grpo and "0.2 -> 0.44 (yes)" in grpo and "0.677 (0.440-0.840)" in grpo
    hallucination = next(r for r in rows if r.startswith("| hallucination"))
    assert "0.1 (yes)" in hallucination and "0.3 (no)" in hallucination and "0.200 (0.100-0.300)" in hallucination
    with pytest.raises(ConfigError, match="nowhere/summary.json: no summary"):
        report_main(["--runs", str(tmp_path / "nowhere")])


def test_an_rl_lesson_does_not_hold_where_the_stage_broke_identity_or_format():
    ppo = {"gold_test_start": 0.647, "gold_test_kept": 0.659, "identity_accuracy_start": 0.9722,
           "identity_accuracy_kept": 0.8611, "format_compliance_start": 1.0, "format_compliance_kept": 1.0}
    card = lesson_card(stages(ppo=ppo))
    assert card["rlhf"]["met"] is False and card["rlhf"]["broke"] == ["identity_accuracy 0.972 -> 0.861"]
    assert any("broke identity_accuracy" in r for r in card_table(card))
    card = lesson_card(stages(ppo={**ppo, "identity_accuracy_kept": 0.9444}))  # one reply of 36: within 3 points
    assert card["rlhf"]["met"] is True and "broke" not in card["rlhf"]
    grpo = {"accuracy_before": 0.4, "accuracy_after": 0.8, "identity_accuracy_before": 0.9, "identity_accuracy_after": 0.9,
            "format_compliance_before": 1.0, "format_compliance_after": 0.9}
    card = lesson_card(stages(grpo=grpo))
    assert card["grpo"]["met"] is False and card["grpo"]["broke"] == ["format_compliance 1 -> 0.9"]
    assert lesson_card(stages(grpo={**grpo, "format_compliance_after": 0.98}))["grpo"]["met"] is True
