"""Stage `ppo`: RLHF with PPO against the learned reward model.

Why this module exists: TRL removed its PPOTrainer after 1.12.0, and chatstack pins TRL
1.16 for SFT, reward modelling and GRPO. So this is one small, readable PPO on torch +
transformers + accelerate, shaped like TRL's old `PPOTrainer` (same config names, same
algorithm): roll out the policy, score with the reward model, penalise the KL to the frozen
SFT reference per token, estimate advantages with GAE from a value model, and optimise the
clipped policy and value losses for a few epochs over mini-batches.
"""
from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from chatstack.checkpoints import TRAINER_STATE
from chatstack.data.loading import load_splits, require_columns
from chatstack.engine import Engine
from chatstack.errors import DataError
from chatstack.reward import score
from chatstack.stage import Trained, require_chat_template, run_stage, save_chat_model, stage_main


@dataclass
class PPOConfig(TrainingArguments):
    """PPO knobs, named as in TRL's PPOConfig (<= 1.12)."""

    output_dir: str = "outputs/tiny/ppo"
    model_name_or_path: str = field(default="outputs/tiny/sft", metadata={"help": "policy and reference (SFT model)"})
    reward_model_path: str = field(default="outputs/tiny/reward", metadata={
        "help": "reward model; also initialises the value model"})
    dataset: str = field(default="tiny_questions", metadata={
        "help": "datasets_cfg name with a conversational `prompt` column"})
    eval_prompts: int = field(default=64, metadata={
        "help": "held-out prompts scored greedily before and after: the dataset's test split, else its first rows"})
    total_episodes: int = 256
    per_device_train_batch_size: int = 16  # prompts per rollout batch
    num_ppo_epochs: int = 2
    num_mini_batches: int = 2
    response_length: int = 24
    temperature: float = 0.7
    kl_coef: float = 0.05
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    whiten_rewards: bool = False
    missing_eos_penalty: float | None = 1.0
    learning_rate: float = 3e-5
    save_steps: float = 0  # rollout batches between checkpoints (0 = none)
    seed: int = 42


def _logprobs(model, ids, mask, context_len, temperature):
    """Log-probs of the response tokens (ids[:, context_len:]) under `model`."""
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, context_len - 1:-1] / temperature
    return torch.gather(F.log_softmax(logits.float(), -1), 2, ids[:, context_len:, None]).squeeze(-1)


def _values(value_model, ids, mask, context_len):
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    hidden = value_model.transformer(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
    return value_model.score(hidden).squeeze(-1)[:, context_len - 1:-1].float()


def _whiten(x, mask, shift_mean=True):
    mean = (x * mask).sum() / mask.sum()
    var = ((x - mean) ** 2 * mask).sum() / mask.sum()
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


class PPOTrainer:
    def __init__(self, cfg: PPOConfig, policy, ref_policy, reward_model, value_model, tokenizer, prompts, eval_prompts):
        self.cfg, self.tok = cfg, tokenizer
        self.acc = Accelerator(cpu=cfg.use_cpu, mixed_precision="bf16" if cfg.bf16 else "no")
        self.policy, self.value_model = policy, value_model
        params = list(policy.parameters()) + list(value_model.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, eps=1e-5)
        self.policy, self.value_model, self.optimizer = self.acc.prepare(self.policy, self.value_model, self.optimizer)
        self.ref_policy = ref_policy.to(self.acc.device).eval()
        self.reward_model = reward_model.to(self.acc.device).eval()
        self.prompts, self.eval_prompts = prompts, eval_prompts
        self.eos = tokenizer.eos_token_id
        self.history: list[dict] = []

    # ---- rollout -------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, convs: list[list[dict]], greedy: bool = False):
        tok, cfg = self.tok, self.cfg
        engine = Engine(self.acc.unwrap_model(self.policy), tok)
        enc, response = engine.generate_batch([engine.encode(engine.render(c)) for c in convs], [self.eos],
                                              cfg.response_length, temperature=0.0 if greedy else cfg.temperature,
                                              top_k=0, top_p=1.0)
        context_len = enc["input_ids"].shape[1]
        # everything after the first end-of-turn is padding
        after_eos = (response == self.eos).long().cumsum(-1) - (response == self.eos).long() > 0
        response = response.masked_fill(after_eos, tok.pad_token_id)
        resp_mask = ~after_eos
        ids = torch.cat([enc["input_ids"], response], 1)
        mask = torch.cat([enc["attention_mask"], resp_mask.long()], 1)
        replies = tok.batch_decode(response, skip_special_tokens=True)
        scores = torch.tensor(score(self.reward_model, tok, [c + [{"role": "assistant", "content": r.strip()}]
                                                             for c, r in zip(convs, replies)]), device=self.acc.device)
        ended = (response == self.eos).any(-1)
        if self.cfg.missing_eos_penalty:
            scores = torch.where(ended, scores, scores - self.cfg.missing_eos_penalty)
        return ids, mask, resp_mask.float(), context_len, scores, replies

    # ---- one PPO iteration ---------------------------------------------------------------
    def step(self, convs) -> dict:
        cfg = self.cfg
        ids, mask, rmask, ctx, scores, replies = self.rollout(convs)
        with torch.no_grad():
            old_logp = _logprobs(self.policy, ids, mask, ctx, cfg.temperature) * rmask
            ref_logp = _logprobs(self.ref_policy, ids, mask, ctx, cfg.temperature) * rmask
            old_values = _values(self.acc.unwrap_model(self.value_model), ids, mask, ctx) * rmask
            kl = old_logp - ref_logp
            rewards = -cfg.kl_coef * kl
            last = (rmask.sum(-1).long() - 1).clamp(min=0)
            rewards[torch.arange(len(ids)), last] += scores
            if cfg.whiten_rewards:
                rewards = _whiten(rewards, rmask, shift_mean=False) * rmask
            # GAE over response tokens
            adv, lastgae, T = torch.zeros_like(rewards), 0.0, rewards.shape[1]
            for t in reversed(range(T)):
                next_v = old_values[:, t + 1] if t + 1 < T else 0.0
                delta = rewards[:, t] + cfg.gamma * next_v - old_values[:, t]
                lastgae = delta + cfg.gamma * cfg.lam * lastgae
                adv[:, t] = lastgae
            returns = (adv + old_values) * rmask
            adv = _whiten(adv, rmask) * rmask
        n, mb = len(ids), max(1, len(ids) // cfg.num_mini_batches)
        stats = []
        for _ in range(cfg.num_ppo_epochs):
            for idx in torch.randperm(n).split(mb):
                new_logp = _logprobs(self.policy, ids[idx], mask[idx], ctx, cfg.temperature)
                values = _values(self.acc.unwrap_model(self.value_model), ids[idx], mask[idx], ctx)
                m = rmask[idx]
                ratio = torch.exp(new_logp - old_logp[idx])
                pg = torch.max(-adv[idx] * ratio, -adv[idx] * ratio.clamp(1 - cfg.cliprange, 1 + cfg.cliprange))
                v_clip = old_values[idx] + (values - old_values[idx]).clamp(-cfg.cliprange_value, cfg.cliprange_value)
                vf = 0.5 * torch.max((values - returns[idx]) ** 2, (v_clip - returns[idx]) ** 2)
                loss = ((pg * m).sum() + cfg.vf_coef * (vf * m).sum()) / m.sum()
                self.acc.backward(loss)
                if cfg.max_grad_norm:
                    self.acc.clip_grad_norm_(list(self.policy.parameters()) + list(self.value_model.parameters()),
                                             cfg.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
                stats.append({"loss": loss.item(), "clipfrac": ((ratio - 1).abs() > cfg.cliprange).float().mean().item()})
        return {"score": scores.mean().item(), "kl": (kl.sum(-1)).mean().item(),
                "loss": sum(s["loss"] for s in stats) / len(stats),
                "clipfrac": sum(s["clipfrac"] for s in stats) / len(stats),
                "response_length": rmask.sum(-1).mean().item(), "sample": replies[0]}

    def mean_reward(self, convs, batch_size: int = 32) -> float:
        total = 0.0
        for i in range(0, len(convs), batch_size):
            total += self.rollout(convs[i:i + batch_size], greedy=True)[4].sum().item()
        return total / len(convs)

    def train(self, resume_from: str | None = None) -> dict:
        cfg = self.cfg
        n_batches = max(1, cfg.total_episodes // cfg.per_device_train_batch_size)
        start_batch = 0
        if resume_from:  # a checkpoint-N folder, as the Trainer stages' (chatstack.stage)
            self.acc.load_state(resume_from)
            state = TrainerState.load_from_json(str(Path(resume_from) / TRAINER_STATE))
            start_batch, self.history = state.global_step, state.log_history
        reward_start = self.mean_reward(self.eval_prompts) if start_batch == 0 else self.history[0]["eval_reward"]
        if start_batch == 0:
            self.history.append({"batch": 0, "eval_reward": reward_start})
        rng = random.Random(cfg.seed)
        order = [rng.randrange(len(self.prompts)) for _ in range(n_batches * cfg.per_device_train_batch_size)]
        per_batch = cfg.per_device_train_batch_size
        for b in range(start_batch, n_batches):
            convs = [self.prompts[i] for i in order[b * per_batch:(b + 1) * per_batch]]
            s = self.step(convs)
            s["batch"] = b + 1
            self.history.append(s)
            print(f"[ppo {b + 1}/{n_batches}] score {s['score']:.3f} kl {s['kl']:.3f} loss {s['loss']:.4f} "
                  f"| {s['sample'][:60]!r}")
            if cfg.save_steps and (b + 1) % int(cfg.save_steps) == 0 and b + 1 < n_batches:
                self.save_checkpoint(b + 1, n_batches)
        reward_end = self.mean_reward(self.eval_prompts)
        return {"reward_start": round(reward_start, 4), "reward_end": round(reward_end, 4),
                "train_score_first": round(self.history[1]["score"], 4) if len(self.history) > 1 else None,
                "train_score_last": round(self.history[-1]["score"], 4),
                "kl_last": round(self.history[-1].get("kl", 0.0), 4),
                "batches": n_batches}

    def save_checkpoint(self, batch: int, n_batches: int) -> None:
        """checkpoint-<batch>: accelerate's state (models, optimizer, RNGs), then trainer_state.json
        last, which marks it complete (chatstack.checkpoints.last_checkpoint); older ones are removed."""
        out = Path(self.cfg.output_dir)
        ckpt = out / f"{PREFIX_CHECKPOINT_DIR}-{batch}"
        self.acc.save_state(str(ckpt))
        if self.acc.is_main_process:
            TrainerState(global_step=batch, max_steps=n_batches, log_history=self.history).save_to_json(
                str(ckpt / TRAINER_STATE))
            for old in out.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
                if old != ckpt:
                    shutil.rmtree(old, ignore_errors=True)


def fit(cfg: PPOConfig, resume_from: str | None) -> Trained:
    tokenizer = AutoTokenizer.from_pretrained(cfg.model_name_or_path)
    require_chat_template(tokenizer, cfg.model_name_or_path)
    policy = AutoModelForCausalLM.from_pretrained(cfg.model_name_or_path)
    ref = AutoModelForCausalLM.from_pretrained(cfg.model_name_or_path)
    reward_model = AutoModelForSequenceClassification.from_pretrained(cfg.reward_model_path, num_labels=1)
    value_model = AutoModelForSequenceClassification.from_pretrained(cfg.reward_model_path, num_labels=1)
    for m in (reward_model, value_model):
        m.config.pad_token_id = tokenizer.pad_token_id
    train_ds, test_ds = load_splits(cfg.dataset, seed=cfg.seed)
    require_columns(train_ds, ["prompt"], f"dataset '{cfg.dataset}'")
    prompts = [r["prompt"] for r in train_ds]
    if test_ds is not None:
        held_out = [r["prompt"] for r in test_ds][:cfg.eval_prompts]
    elif len(prompts) <= cfg.eval_prompts:
        raise DataError(f"dataset '{cfg.dataset}': {len(prompts)} prompts, need more than eval_prompts={cfg.eval_prompts}")
    else:  # no held-out split in the spec: its first eval_prompts prompts are held out
        prompts, held_out = prompts[cfg.eval_prompts:], prompts[:cfg.eval_prompts]
    trainer = PPOTrainer(cfg, policy, ref, reward_model, value_model, tokenizer, prompts, held_out)
    metrics = trainer.train(resume_from)
    return Trained(metrics, lambda out: save_chat_model(trainer.acc.unwrap_model(trainer.policy), tokenizer, out),
                   trainer.history, is_main=trainer.acc.is_main_process)


def train(cfg: PPOConfig) -> dict:
    return run_stage(cfg, fit)


def main(argv: list[str]) -> int:
    return stage_main(PPOConfig, train, argv)
