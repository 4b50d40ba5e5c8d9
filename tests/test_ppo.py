"""The hand-written PPO (chatstack.ppo): each piece of the algorithm against values computed by
hand on small tensors, the best-of-n baseline, and PPO steps on a tiny GPT-2 that move the policy
toward a reward preferring a known word, with the best-gold policy kept."""

from __future__ import annotations

import math
import random

import pytest
import torch

from chatstack import ppo

approx = lambda x: pytest.approx(x, abs=1e-4)  # noqa: E731


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_whiten():
    x, m = t([1.0, 2.0, 3.0, 9.0]), t([1.0, 1.0, 1.0, 0.0])  # the masked 9 is ignored
    s = math.sqrt(2 / 3)  # population std of 1, 2, 3
    assert ppo.whiten(x, m)[0, :3].tolist() == approx([-1 / s, 0.0, 1 / s])
    assert ppo.whiten(x, m, shift_mean=False)[0, :3].tolist() == approx([2 - 1 / s, 2.0, 2 + 1 / s])


def test_kl_penalty_rewards():
    """-kl_coef * (logp - ref) per token, the score added at the last response token, none on padding."""
    logp, ref = t([-1.0, -2.0, -0.3], [-0.5, -0.7, -0.1]), t([-1.5, -1.0, -0.2], [-0.5, -0.2, -0.1])
    mask = t([1.0, 1.0, 0.0], [1.0, 1.0, 1.0])
    rewards, kl = ppo.kl_penalty_rewards(logp, ref, torch.tensor([3.0, -1.0]), mask, kl_coef=0.1)
    assert kl.tolist() == [approx([0.5, -1.0, 0.0]), approx([0.0, -0.5, 0.0])]
    assert rewards.tolist() == [approx([-0.05, 0.1 + 3.0, 0.0]), approx([0.0, 0.05, -1.0])]


def test_gae():
    # gamma 1, lam 0.5: t=1 delta = 1 - 0.2 = 0.8, A1 = 0.8; t=0 delta = 0 + 0.2 - 0.5 = -0.3, A0 = -0.3 + 0.5 * 0.8 = 0.1
    adv, ret = ppo.gae(t([0.0, 1.0]), t([0.5, 0.2]), gamma=1.0, lam=0.5)
    assert adv.tolist() == [approx([0.1, 0.8])] and ret.tolist() == [approx([0.6, 1.0])]
    # gamma 0.9: A1 = 0.8; delta0 = 0.9 * 0.2 - 0.5 = -0.32, A0 = -0.32 + 0.9 * 0.5 * 0.8 = 0.04
    adv, _ = ppo.gae(t([0.0, 1.0]), t([0.5, 0.2]), gamma=0.9, lam=0.5)
    assert adv.tolist() == [approx([0.04, 0.8])]
    # a response that ended after one token: zero rewards and values after it add nothing
    adv, ret = ppo.gae(t([1.0, 0.0, 0.0]), t([0.3, 0.0, 0.0]), gamma=1.0, lam=0.95)
    assert adv.tolist() == [approx([0.7, 0.0, 0.0])] and ret.tolist() == [approx([1.0, 0.0, 0.0])]


def test_policy_loss_clips_the_ratio():
    # ratios 1.5, 0.5, 1.1 against advantages 1, -1, 2 (cliprange 0.2):
    # max(-1.5, -1.2) = -1.2 (clipped), max(0.5, 0.8) = 0.8 (clipped), max(-2.2, -2.2) = -2.2
    old = t([0.0, 0.0, 0.0])
    new = torch.log(t([1.5, 0.5, 1.1]))
    adv = t([1.0, -1.0, 2.0])
    loss, clipfrac = ppo.policy_loss(new, old, adv, t([1.0, 1.0, 1.0]), cliprange=0.2)
    assert loss.item() == approx((-1.2 + 0.8 - 2.2) / 3) and clipfrac.item() == approx(2 / 3)
    loss, clipfrac = ppo.policy_loss(new, old, adv, t([1.0, 1.0, 0.0]), cliprange=0.2)
    assert loss.item() == approx((-1.2 + 0.8) / 2) and clipfrac.item() == approx(1.0)


def test_policy_loss_gradient_stops_past_the_clip():
    """Once the ratio is past 1 + eps for a positive advantage, the token gives no gradient."""
    new = torch.log(t([1.5, 1.1])).requires_grad_()
    loss, _ = ppo.policy_loss(new, t([0.0, 0.0]), t([1.0, 1.0]), t([1.0, 1.0]), cliprange=0.2)
    loss.backward()
    assert new.grad.tolist() == [approx([0.0, -1.1 / 2])]  # d(-A r)/d logp = -A r, averaged over 2 tokens


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    # token 0: (2 - 1.5)^2 = 0.25 vs clipped V 1.2: 0.09 -> 0.25; token 1: (0 - 1)^2 = 1 vs clipped 0.0: 1 -> 1
    # token 2: V = R (0), but clipped V = 0.2: 0.64 -> 0.64 (the clip keeps it from jumping)
    values, old, ret = t([2.0, 0.0, 1.0]), t([1.0, 0.1, 0.0]), t([1.5, 1.0, 1.0])
    assert ppo.value_loss(values, old, ret, t([1.0, 1.0, 1.0]), 0.2).item() == approx(0.5 * (0.25 + 1 + 0.64) / 3)
    assert ppo.value_loss(values, old, ret, t([1.0, 0.0, 0.0]), 0.2).item() == approx(0.125)


def test_best_of_n():
    assert ppo.best_of_n_kl(1) == 0.0 and ppo.best_of_n_kl(2) == approx(math.log(2) - 0.5)
    assert ppo.best_of_n_kl(16) == approx(math.log(16) - 15 / 16)
    # one prompt, four samples: n=2 picks 3 (gold -1) from [1, 3] and 2 (gold 1) from [2, 0]
    curve = ppo.best_of_n_curve([[1.0, 3.0, 2.0, 0.0]], [[0.0, -1.0, 1.0, 1.0]], [1, 2, 4])
    assert [(c["n"], c["proxy"], c["gold"]) for c in curve] == [(1, 1.5, 0.25), (2, 2.5, 0.0), (4, 3.0, -1.0)]


# ---- PPO on a tiny GPT-2 ------------------------------------------------------------------

GOOD, BAD = "river", "ocean"  # their first tokens differ in the tiny BPE


def word_reward(model, tokenizer, conversations, batch_size=32):
    """A reward that prefers a known word: +1 per GOOD, -1 per BAD in the reply."""
    return [float(c[-1]["content"].split().count(GOOD) - c[-1]["content"].split().count(BAD)) for c in conversations]


@pytest.fixture(scope="module")
def coin_model(tmp_path_factory):
    """The tiny GPT-2 fitted for a few seconds to reply with GOOD and BAD words at random: a policy
    with both words likely, so that the reward has something to choose between."""
    from helpers_tiny_model import build_tiny_model, corpus, fit
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_tiny_model(tmp_path_factory.mktemp("coin"))
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    rng = random.Random(0)
    texts = [
        tok.apply_chat_template(
            [
                {"role": "user", "content": q},
                {"role": "assistant", "content": " ".join(rng.choice([GOOD, BAD]) for _ in range(4))},
            ],
            tokenize=False,
        )
        for q in corpus(48, seed=1)
    ]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(0)
    fit(model, enc, enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100), steps=60, lr=3e-3)
    model.save_pretrained(out)
    return out


def make_trainer(path, tmp_path, monkeypatch, eval_rows=(), test_rows=(), **cfg):
    from helpers_tiny_model import corpus
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    monkeypatch.setattr(ppo, "score", word_reward)
    tok = AutoTokenizer.from_pretrained(path)
    value = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    value.config.pad_token_id = tok.pad_token_id
    config = ppo.PPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to=[],
        response_length=6,
        temperature=1.0,
        per_device_train_batch_size=16,
        learning_rate=3e-4,
        kl_coef=0.01,
        **cfg,
    )
    prompts = [{"prompt": [{"role": "user", "content": q}]} for q in corpus(32, seed=2)]
    torch.manual_seed(0)
    return ppo.PPOTrainer(
        config,
        AutoModelForCausalLM.from_pretrained(path),
        AutoModelForCausalLM.from_pretrained(path),
        torch.nn.Identity(),
        value,
        tok,
        prompts,
        list(eval_rows),
        list(test_rows),
    )


def good_vs_bad(trainer) -> float:
    """Mean log p(GOOD) - log p(BAD) at the first reply token, over the training prompts."""
    tok, engine_model = trainer.tok, trainer.acc.unwrap_model(trainer.policy)
    good, bad = tok.encode(GOOD)[0], tok.encode(BAD)[0]
    total = 0.0
    with torch.no_grad():
        for r in trainer.prompts:
            ids = tok.apply_chat_template(r["prompt"], add_generation_prompt=True, return_tensors="pt", return_dict=True)
            logp = torch.log_softmax(engine_model(**ids).logits[0, -1], -1)
            total += (logp[good] - logp[bad]).item()
    return total / len(trainer.prompts)


def test_ppo_steps_move_the_policy_toward_the_rewarded_word(coin_model, tmp_path, monkeypatch):
    trainer = make_trainer(coin_model, tmp_path, monkeypatch)
    before = good_vs_bad(trainer)
    scores = [trainer.step(trainer.prompts[i * 16 : (i + 1) * 16])["score"] for i in range(2) for _ in range(2)]
    after = good_vs_bad(trainer)
    assert after > before + 0.5, (before, after, scores)


def test_train_keeps_the_best_gold_policy(coin_model, tmp_path, monkeypatch):
    """Gold here is the opposite of the proxy (a 'known' fact that is BAD): the proxy rises, gold
    falls, and the saved policy is the start's, with the curve and best-of-n in the metrics."""
    rows = [
        {"prompt": [{"role": "user", "content": f"Say a word, {i}."}], "answer": BAD, "seen": True, "identity": ""}
        for i in range(8)
    ]
    trainer = make_trainer(
        coin_model,
        tmp_path,
        monkeypatch,
        rows,
        rows[:4],
        total_episodes=64,
        eval_every=2,
        best_of_n=[1, 2, 4],
        conversations_dataset=None,
    )
    start = {k: v.clone() for k, v in trainer.acc.unwrap_model(trainer.policy).state_dict().items()}
    m = trainer.train()
    curve = m["ppo_curve"]
    assert [c["step"] for c in curve] == [0, 2, 4] and curve[0]["kl"] == 0.0 and curve[-1]["kl"] > 0
    assert m["proxy_end"] > m["proxy_start"] and m["gold_best"] == max(c["gold"] for c in curve)
    best = max(curve, key=lambda c: c["gold"])  # the first of equals, as the trainer keeps it
    assert m["best_step"] == best["step"] and m["kl_best"] == best["kl"] and m["gold_end"] == curve[-1]["gold"]
    assert trainer.evaluate()["eval_gold"] == approx(m["gold_best"])  # the policy in hand is the kept one
    assert m["test_prompts"] == 4 and m["gold_test_kept"] == approx(trainer.test_gold())  # the kept policy, on test
    if m["best_step"] == 0:
        kept = trainer.acc.unwrap_model(trainer.policy).state_dict()
        assert all(torch.equal(kept[k], v) for k, v in start.items())
        assert m["gold_test_kept"] == m["gold_test_start"]
    assert [b["n"] for b in m["best_of_n"]] == [1, 2, 4] and m["best_of_n"][0]["kl"] == 0.0
    assert m["best_of_n"][-1]["proxy"] >= m["best_of_n"][0]["proxy"]  # the reward model picks its favourite


def test_significant_gain_against_hand_computed_standard_errors():
    # differences [1, 0, 0, 0]: mean 0.25, sample sd 0.5, standard error 0.25, so z = 1
    assert ppo.significant_gain([0, 0, 0, 0], [1, 0, 0, 0], min_z=0.9)
    assert not ppo.significant_gain([0, 0, 0, 0], [1, 0, 0, 0], min_z=1.1)
    assert ppo.significant_gain([0, 0, 0, 0], [1, 0, 0, 0], min_z=0)  # any mean gain
    assert ppo.significant_gain([0, 0], [1, 1], min_z=5)  # every prompt better: no spread, a sure gain
    assert not ppo.significant_gain([1, 0, 1], [1, 0, 1], min_z=0)
    assert not ppo.significant_gain([0, 1, 0, 0], [1, 0, 0, 0], min_z=0)  # a swap is no gain


@pytest.mark.parametrize("min_z,kept_step", [(2.0, 0), (0.5, 2)])
def test_train_keeps_a_gold_gain_only_where_it_is_significant(coin_model, tmp_path, monkeypatch, min_z, kept_step):
    """Scripted validation golds: one prompt of 8 better at step 2 (z = 1), none at step 4. With
    keep_min_z 2 the stage keeps and saves the start's policy; with 0.5, step 2's."""
    rows = [
        {"prompt": [{"role": "user", "content": f"Say a word, {i}."}], "answer": BAD, "seen": True, "identity": ""}
        for i in range(8)
    ]
    trainer = make_trainer(coin_model, tmp_path, monkeypatch, rows, rows[:4], total_episodes=64, eval_every=2,
                           best_of_n=[], conversations_dataset=None, keep_min_z=min_z)
    golds = iter([[0.0] * 8, [1.0] + [0.0] * 7, [0.0] * 8])
    policies = []

    def scripted(batch_size=64, at_start=False):
        each = next(golds)
        policies.append({k: v.clone() for k, v in trainer.acc.unwrap_model(trainer.policy).state_dict().items()})
        return {"eval_reward": 0.0, "eval_ended": 1.0, "eval_kl": 0.0, "eval_sample": "", "eval_gold": sum(each) / 8,
                "eval_gold_each": each}

    monkeypatch.setattr(trainer, "evaluate", scripted)
    m = trainer.train()
    assert [c["gold"] for c in m["ppo_curve"]] == [0.0, 0.125, 0.0] and m["best_step"] == 2
    assert m["kept_step"] == kept_step
    kept = trainer.acc.unwrap_model(trainer.policy).state_dict()
    want = policies[kept_step // 2]
    assert all(torch.equal(kept[k], v) for k, v in want.items())
    assert not all(torch.equal(policies[0][k], v) for k, v in policies[1].items())  # the policies differ
    if kept_step == 0:
        assert m["gold_test_kept"] == m["gold_test_start"]


def test_report_draws_the_proxy_gold_figure(tmp_path):
    """`chatstack report` draws gold and proxy against KL from the ppo stage's metrics.json, and
    nothing for a run without gold."""
    import json

    from chatstack.report import _plot_ppo

    curve = [{"step": 0, "kl": 0.0, "proxy": -3.0, "gold": -0.6}, {"step": 4, "kl": 4.2, "proxy": -2.5, "gold": -0.9}]
    bon = [{"n": n, "proxy": -3 + n / 8, "gold": -0.8, "kl": ppo.best_of_n_kl(n)} for n in (1, 2, 4)]
    (tmp_path / "metrics.json").write_text(json.dumps({"ppo_curve": curve, "best_of_n": bon, "kept_step": 0}))
    out = _plot_ppo(tmp_path, tmp_path / "ppo.png")
    assert out and out.stat().st_size > 1000
    (tmp_path / "metrics.json").write_text(json.dumps({"ppo_curve": [{"step": 0, "kl": 0.0, "proxy": -3.0}]}))
    assert _plot_ppo(tmp_path, tmp_path / "none.png") is None


def test_sampled_evals_ask_each_prompt_eval_samples_times(coin_model, tmp_path, monkeypatch):
    rows = [
        {"prompt": [{"role": "user", "content": f"Say a word, {i}."}], "answer": GOOD, "seen": True, "identity": ""}
        for i in range(3)
    ]
    trainer = make_trainer(coin_model, tmp_path, monkeypatch, rows, rows[:2], eval_samples=4, conversations_dataset=None)
    asked, generate = [], trainer.generate

    def spy(convs, greedy=False, model=None):
        asked.append((len(convs), greedy))
        return generate(convs, greedy, model)

    monkeypatch.setattr(trainer, "generate", spy)
    trainer.test_gold()
    trainer.evaluate(at_start=True)
    assert asked == [(8, False), (12, False)]  # 2 test and 3 validation prompts, 4 samples each, at the temperature
    asked.clear()
    trainer.test_gold(greedy=True)
    assert asked == [(2, True)]  # the greedy test figure: each test prompt once
    trainer.cfg.eval_samples = 0
    asked.clear()
    trainer.evaluate(at_start=True)
    assert asked == [(3, True)]


def test_sampled_evals_also_report_the_greedy_test_gold(coin_model, tmp_path, monkeypatch):
    """With eval_samples, the metrics carry the test gold both ways, sampled (the kept-model
    choice and the lesson) and greedy, at the start and for the kept policy."""
    rows = [
        {"prompt": [{"role": "user", "content": f"Say a word, {i}."}], "answer": GOOD, "seen": True, "identity": ""}
        for i in range(4)
    ]
    trainer = make_trainer(coin_model, tmp_path, monkeypatch, rows, rows[:2], total_episodes=16, eval_every=0,
                           eval_samples=2, best_of_n=[], conversations_dataset=None)
    before = trainer.test_gold(greedy=True)  # greedy: the same replies whenever asked
    m = trainer.train()
    assert m["gold_test_greedy_start"] == approx(before)
    assert m["gold_test_greedy_kept"] == approx(trainer.test_gold(greedy=True))  # the policy in hand is the kept one
    assert {"gold_test_start", "gold_test_kept"} <= set(m)
