"""Stage `ppo`: RLHF with PPO against the learned reward model, measured against the truth.

Why this module exists: TRL removed its PPOTrainer after 1.12.0, and chatstack pins TRL
1.16 for SFT, reward modelling and GRPO. So this is one small, readable PPO on torch +
transformers + accelerate, shaped like TRL's old `PPOTrainer` (same config names, same
algorithm): roll out the policy, score with the reward model, penalise the KL to the frozen
SFT reference per token, estimate advantages with GAE from a value model, and optimise the
clipped policy and value losses for a few epochs over mini-batches. Each piece of the
algorithm is a small function (`kl_penalty_rewards`, `gae`, `whiten`, `policy_loss`,
`value_loss`), tested against hand-computed values.

The reward model is a proxy: the synthetic world knows the truth, so every `eval_every` rollout
batches the validation prompts are answered (greedily, or `eval_samples` times each) and scored
twice, by the reward model (`proxy`) and by `chatstack.judges.gold_score` (`gold`), beside the KL
to the reference. The stage keeps the policy with the best gold score (Gao et al. 2022: past some
KL the proxy keeps rising while gold falls), where that score beats the start's by more than
`keep_min_z` standard errors of the per-prompt difference (else it keeps the start: a gain of a
few validation prompts is noise, not a better policy), and scores the start and the kept policy on test
prompts no choice was made on (`test_dataset`); it measures best-of-n sampling from the SFT model
against the same reward model, the baseline whose KL is known in closed form: log n - (n-1)/n.
"""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

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
from chatstack.data.loading import load_eval_split, load_splits, require_columns
from chatstack.engine import Engine
from chatstack.errors import DataError
from chatstack.judges import GOLD_COLUMNS, gold_of
from chatstack.reward import score
from chatstack.stage import Trained, require_chat_template, run_stage, save_chat_model, stage_main

BEST_POLICY = "best_policy.pt"


@dataclass
class PPOConfig(TrainingArguments):
    """PPO knobs, named as in TRL's PPOConfig (<= 1.12), plus the gold evaluation's."""

    output_dir: str = "outputs/tiny/ppo"
    model_name_or_path: str = field(default="outputs/tiny/sft", metadata={"help": "policy and reference (SFT model)"})
    reward_model_path: str = field(
        default="outputs/tiny/reward", metadata={"help": "reward model; also initialises the value model"}
    )
    dataset: str = field(
        default="tiny_questions", metadata={"help": "datasets_cfg name with a conversational `prompt` column"}
    )
    eval_dataset: str | None = field(
        default="tiny_questions_val",
        metadata={
            "help": "validation prompts with the gold columns (answer, seen, identity); None: the dataset's test "
            "split, else its first eval_prompts rows"
        },
    )
    eval_prompts: int = field(default=64, metadata={"help": "validation prompts scored at each eval (at most)"})
    test_dataset: str | None = field(
        default=None,
        metadata={
            "help": "test prompts with the gold columns, scored at the start and for the kept policy only: the "
            "best-gold choice is made on eval_dataset, so a gain there is partly the luck of the choice; here it is not"
        },
    )
    eval_samples: int = field(
        default=0,
        metadata={
            "help": "0: the evals score greedy replies; k: k replies per prompt sampled at `temperature`, as "
            "`chatstack chat` answers and as best-of-n's n = 1 is drawn (the two curves then share a start)"
        },
    )
    eval_every: int = field(
        default=2,
        metadata={"help": "rollout batches between validation evals (proxy, gold, KL); 0: at the start and the end only"},
    )
    keep_best: bool = field(
        default=True, metadata={"help": "save the policy of the eval with the best gold score, not the last one"}
    )
    keep_min_z: float = field(
        default=0.0,
        metadata={"help": "keep_best keeps an eval's policy only where its gold beats the start's by more than this "
                  "many standard errors of the paired per-prompt difference (0: any gain)"},
    )
    best_of_n: list[int] = field(
        default_factory=lambda: [1, 2, 4, 8, 16],
        metadata={
            "help": "best-of-n baseline: n samples of the SFT model per validation prompt, the reward model picks one"
        },
    )
    best_of_n_prompts: int = field(default=0, metadata={"help": "validation prompts for best-of-n (0: all of them)"})
    kl_prompts: int = field(
        default=128, metadata={"help": "validation prompts whose sampled replies estimate the KL (0: all)"}
    )
    conversations_dataset: str | None = field(
        default="tiny_sft",
        metadata={
            "help": "SFT mixture whose identity builder names the model: identity and format compliance before/after "
            "(chatstack.evaluation.conversations); None skips them"
        },
    )
    eval_format_prompts: int = 32
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


# ---- the algorithm, piece by piece --------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum()


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked entries (population variance); `shift_mean=False` adds
    the mean back (reward whitening rescales without moving the reward's level)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


def kl_penalty_rewards(
    logp: torch.Tensor, ref_logp: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: -kl_coef * (log pi - log ref) at every response token (the k1 estimate
    of the KL to the reference), plus the sequence's score at its last token. Returns (rewards, kl)."""
    kl = (logp - ref_logp) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(rewards)), last] += scores
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the response tokens: delta_t = r_t + gamma V_{t+1} - V_t,
    A_t = delta_t + gamma lam A_{t+1}; returns = A + V. Rewards and values must be 0 after a
    response ends, so nothing flows back from padding."""
    adv, last, steps = torch.zeros_like(rewards), torch.zeros_like(rewards[:, 0]), rewards.shape[1]
    for t in reversed(range(steps)):
        next_v = values[:, t + 1] if t + 1 < steps else torch.zeros_like(last)
        last = rewards[:, t] + gamma * next_v - values[:, t] + gamma * lam * last
        adv[:, t] = last
    return adv, adv + values


def policy_loss(
    new_logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, cliprange: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, max(-A r, -A clip(r, 1-eps, 1+eps)) with r = pi/pi_old, averaged
    over response tokens. Returns (loss, share of tokens whose ratio was clipped)."""
    ratio = torch.exp(new_logp - old_logp)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cliprange, 1 + cliprange))
    return masked_mean(pg, mask), masked_mean(((ratio - 1).abs() > cliprange).float(), mask)


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, cliprange_value: float
) -> torch.Tensor:
    """Clipped value loss: 0.5 max((V - R)^2, (V_clip - R)^2), V_clip within cliprange_value of the old value."""
    clipped = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    return masked_mean(0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)


def significant_gain(start: list[float], now: list[float], min_z: float) -> bool:
    """Whether per-prompt scores `now` beat `start` (the same prompts, in order) on average by more
    than `min_z` standard errors of the paired difference; with min_z 0, any mean gain."""
    d = [b - a for a, b in zip(start, now, strict=True)]
    mean = sum(d) / len(d)
    if min_z <= 0 or len(d) < 2:
        return mean > 0
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d))
    return mean > min_z * se if se > 0 else mean > 0


def best_of_n_kl(n: int) -> float:
    """KL of best-of-n sampling to the sampled model (Gao et al. 2022, after Stiennon et al. 2020)."""
    return math.log(n) - (n - 1) / n


def best_of_n_curve(proxy: list[list[float]], gold: list[list[float]], ns: list[int]) -> list[dict]:
    """For each n: the proxy and gold of the reply the proxy picks among n samples, averaged over
    prompts and over the N // n disjoint groups of each prompt's N samples (less noise than one group)."""
    out = []
    for n in ns:
        picked = []
        for p, g in zip(proxy, gold):
            for start in range(0, len(p) - n + 1, n):
                k = max(range(start, start + n), key=p.__getitem__)
                picked.append((p[k], g[k]))
        out.append(
            {
                "n": n,
                "proxy": round(sum(p for p, _ in picked) / len(picked), 4),
                "gold": round(sum(g for _, g in picked) / len(picked), 4),
                "kl": round(best_of_n_kl(n), 4),
            }
        )
    return out


def _logits(model, ids, mask, context_len, temperature):
    """Log-softmax of the next-token distribution at each response position."""
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, context_len - 1 : -1] / temperature
    return F.log_softmax(logits.float(), -1)


def _logprobs(model, ids, mask, context_len, temperature):
    """Log-probs of the response tokens (ids[:, context_len:]) under `model`."""
    return torch.gather(_logits(model, ids, mask, context_len, temperature), 2, ids[:, context_len:, None]).squeeze(-1)


def _values(value_model, ids, mask, context_len):
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    hidden = value_model.transformer(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
    return value_model.score(hidden).squeeze(-1)[:, context_len - 1 : -1].float()


@dataclass
class Rollout:
    ids: torch.Tensor  # prompt + response
    mask: torch.Tensor
    rmask: torch.Tensor  # response tokens up to and with the first end of turn
    context_len: int
    replies: list[str]
    ended: list[bool]  # the turn ended (<|im_end|>, nothing special before it): the gold scorer's format check
    scores: torch.Tensor | None = None  # reward model, minus missing_eos_penalty where no <|im_end|>


class PPOTrainer:
    def __init__(
        self, cfg: PPOConfig, policy, ref_policy, reward_model, value_model, tokenizer, prompts, eval_rows, test_rows=()
    ):
        self.cfg, self.tok = cfg, tokenizer
        self.acc = Accelerator(cpu=cfg.use_cpu, mixed_precision="bf16" if cfg.bf16 else "no")
        self.policy, self.value_model = policy, value_model
        params = list(policy.parameters()) + list(value_model.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, eps=1e-5)
        self.policy, self.value_model, self.optimizer = self.acc.prepare(self.policy, self.value_model, self.optimizer)
        self.ref_policy = ref_policy.to(self.acc.device).eval()
        self.reward_model = reward_model.to(self.acc.device).eval()
        self.prompts, self.eval_rows = prompts, eval_rows  # rows: `prompt` plus the gold columns where known
        self.test_rows = list(test_rows)
        self.eos = tokenizer.eos_token_id
        vocab = tokenizer.get_vocab()
        self.stray = [vocab[t] for t in ("<|im_start|>", "<|endoftext|>") if t in vocab]
        self.history: list[dict] = []
        self.best_state: dict | None = None  # the policy of the best gold eval (keep_best)

    # ---- rollout -------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, convs: list[list[dict]], greedy: bool = False, model=None) -> Rollout:
        tok, cfg = self.tok, self.cfg
        engine = Engine(model if model is not None else self.acc.unwrap_model(self.policy), tok)
        enc, response = engine.generate_batch(
            [engine.encode(engine.render(c)) for c in convs],
            [self.eos],
            cfg.response_length,
            temperature=0.0 if greedy else cfg.temperature,
            top_k=0,
            top_p=1.0,
        )
        is_eos = response == self.eos
        after_eos = is_eos.long().cumsum(-1) - is_eos.long() > 0  # everything after the first end of turn is padding
        stray = torch.isin(response, torch.tensor(self.stray, device=response.device)) & ~after_eos
        ended = (is_eos.any(-1) & ~stray.any(-1)).tolist()
        response = response.masked_fill(after_eos, tok.pad_token_id)
        ids = torch.cat([enc["input_ids"], response], 1)
        mask = torch.cat([enc["attention_mask"], (~after_eos).long()], 1)
        replies = [r.strip() for r in tok.batch_decode(response, skip_special_tokens=True)]
        return Rollout(ids, mask, (~after_eos).float(), enc["input_ids"].shape[1], replies, ended)

    @torch.no_grad()
    def rollout(self, convs: list[list[dict]], greedy: bool = False, model=None) -> Rollout:
        """Generate and score with the reward model (the proxy PPO optimises)."""
        ro = self.generate(convs, greedy, model)
        scores = torch.tensor(
            score(
                self.reward_model, self.tok, [c + [{"role": "assistant", "content": r}] for c, r in zip(convs, ro.replies)]
            ),
            device=self.acc.device,
        )
        if self.cfg.missing_eos_penalty:
            has_eos = (ro.ids[:, ro.context_len :] == self.eos).any(-1)
            scores = torch.where(has_eos, scores, scores - self.cfg.missing_eos_penalty)
        ro.scores = scores
        return ro

    # ---- one PPO iteration ---------------------------------------------------------------
    def step(self, rows: list[dict]) -> dict:
        cfg = self.cfg
        ro = self.rollout([r["prompt"] for r in rows])
        ids, mask, rmask, ctx = ro.ids, ro.mask, ro.rmask, ro.context_len
        with torch.no_grad():
            old_logp = _logprobs(self.policy, ids, mask, ctx, cfg.temperature) * rmask
            ref_logp = _logprobs(self.ref_policy, ids, mask, ctx, cfg.temperature) * rmask
            old_values = _values(self.acc.unwrap_model(self.value_model), ids, mask, ctx) * rmask
            rewards, kl = kl_penalty_rewards(old_logp, ref_logp, ro.scores, rmask, cfg.kl_coef)
            if cfg.whiten_rewards:
                rewards = whiten(rewards, rmask, shift_mean=False) * rmask
            adv, returns = gae(rewards, old_values, cfg.gamma, cfg.lam)
            returns = returns * rmask
            adv = whiten(adv, rmask) * rmask
        n, mb = len(ids), max(1, len(ids) // cfg.num_mini_batches)
        stats = []
        for _ in range(cfg.num_ppo_epochs):
            for idx in torch.randperm(n).split(mb):
                new_logp = _logprobs(self.policy, ids[idx], mask[idx], ctx, cfg.temperature)
                values = _values(self.acc.unwrap_model(self.value_model), ids[idx], mask[idx], ctx)
                pg, clipfrac = policy_loss(new_logp, old_logp[idx], adv[idx], rmask[idx], cfg.cliprange)
                vf = value_loss(values, old_values[idx], returns[idx], rmask[idx], cfg.cliprange_value)
                loss = pg + cfg.vf_coef * vf
                self.acc.backward(loss)
                if cfg.max_grad_norm:
                    self.acc.clip_grad_norm_(
                        list(self.policy.parameters()) + list(self.value_model.parameters()), cfg.max_grad_norm
                    )
                self.optimizer.step()
                self.optimizer.zero_grad()
                stats.append({"loss": loss.item(), "clipfrac": clipfrac.item()})
        gold = [gold_of(r, rep, e) for r, rep, e in zip(rows, ro.replies, ro.ended)] if "seen" in rows[0] else []
        return {
            "score": ro.scores.mean().item(),
            "kl": kl.sum(-1).mean().item(),
            **({"train_gold": sum(gold) / len(gold)} if gold else {}),
            "loss": sum(s["loss"] for s in stats) / len(stats),
            "clipfrac": sum(s["clipfrac"] for s in stats) / len(stats),
            "response_length": rmask.sum(-1).mean().item(),
            "sample": ro.replies[0],
        }

    # ---- evaluation: proxy, gold, KL -----------------------------------------------------
    @torch.no_grad()
    def kl_to_ref(self, convs: list[list[dict]], batch_size: int = 64) -> float:
        """KL(policy || reference) per reply, both at the sampling temperature: replies sampled from
        the policy, the exact per-token KL of the two next-token distributions summed along each."""
        policy, total = self.acc.unwrap_model(self.policy), 0.0
        for i in range(0, len(convs), batch_size):
            ro = self.generate(convs[i : i + batch_size])
            lp = _logits(policy, ro.ids, ro.mask, ro.context_len, self.cfg.temperature)
            lq = _logits(self.ref_policy, ro.ids, ro.mask, ro.context_len, self.cfg.temperature)
            total += ((lp.exp() * (lp - lq)).sum(-1) * ro.rmask).sum().item()
        return total / len(convs)

    def _asked(self, rows: list[dict]) -> list[dict]:
        """The rows as the evals ask them: once (greedy) or eval_samples times (sampled)."""
        return [r for r in rows for _ in range(max(1, self.cfg.eval_samples))]

    @torch.no_grad()
    def test_gold(self, batch_size: int = 64, greedy: bool | None = None) -> float | None:
        """Mean gold of the replies to the test prompts (None without them), asked as the evals
        ask (eval_samples), or once greedily with `greedy=True`."""
        greedy = not self.cfg.eval_samples if greedy is None else greedy
        gold, rows = [], self.test_rows if greedy else self._asked(self.test_rows)
        for i in range(0, len(rows), batch_size):
            part = rows[i : i + batch_size]
            ro = self.generate([r["prompt"] for r in part], greedy=greedy)
            gold += [gold_of(r, rep, e) for r, rep, e in zip(part, ro.replies, ro.ended)]
        return sum(gold) / len(gold) if gold else None

    @torch.no_grad()
    def evaluate(self, batch_size: int = 64, at_start: bool = False) -> dict:
        """Replies to the validation prompts (greedy, or eval_samples each at the PPO temperature):
        mean proxy, mean gold (and by kind), KL (0 at the start, where the policy is the reference)."""
        rows = self._asked(self.eval_rows)
        proxy, gold, ended = [], [], []
        for i in range(0, len(rows), batch_size):
            part = rows[i : i + batch_size]
            ro = self.rollout([r["prompt"] for r in part], greedy=not self.cfg.eval_samples)
            proxy += ro.scores.tolist()
            ended += ro.ended
            gold += [gold_of(r, rep, e) for r, rep, e in zip(part, ro.replies, ro.ended)] if "seen" in part[0] else []
        out = {
            "eval_reward": sum(proxy) / len(proxy),
            "eval_ended": sum(ended) / len(ended),
            "eval_kl": 0.0
            if at_start
            else self.kl_to_ref([r["prompt"] for r in self.eval_rows[: self.cfg.kl_prompts or None]]),
        }
        if gold:
            out["eval_gold"] = sum(gold) / len(gold)
            out["eval_gold_each"] = gold  # per prompt, for keep_min_z (not written to metrics.json)
            kinds = {
                "identity": lambda r: bool(r["identity"]),
                "seen": lambda r: r["seen"] and not r["identity"],
                "unseen": lambda r: not r["seen"],
            }
            for kind, is_kind in kinds.items():
                sel = [g for r, g in zip(rows, gold) if is_kind(r)]
                if sel:
                    out[f"eval_gold_{kind}"] = sum(sel) / len(sel)
        out["eval_sample"] = ro.replies[0]
        return out

    @torch.no_grad()
    def best_of_n(self) -> list[dict]:
        """Best-of-n against the reward model from the SFT (reference) model at the PPO temperature."""
        ns = sorted(set(self.cfg.best_of_n))
        if not ns or "seen" not in self.eval_rows[0]:
            return []
        rows = self.eval_rows[: self.cfg.best_of_n_prompts or None]
        big, per = ns[-1], max(1, 64 // ns[-1])
        proxy, gold = [], []
        for i in range(0, len(rows), per):
            part = rows[i : i + per]
            ro = self.rollout([r["prompt"] for r in part for _ in range(big)], model=self.ref_policy)
            s, k = ro.scores.tolist(), 0
            for r in part:
                proxy.append(s[k : k + big])
                gold.append([gold_of(r, rep, e) for rep, e in zip(ro.replies[k : k + big], ro.ended[k : k + big])])
                k += big
        return best_of_n_curve(proxy, gold, ns)

    def conversations(self, model) -> dict:
        """Identity and format compliance, as the eval suite measures them (held-out identity phrasings)."""
        if not self.cfg.conversations_dataset:
            return {}
        from chatstack.evaluation.conversations import conversation_evals

        ns = SimpleNamespace(
            eval_conversations=True,
            seed=0,
            world="tiny",
            dataset=self.cfg.conversations_dataset,
            eval_format_prompts=self.cfg.eval_format_prompts,
            eval_thinking=0,
            eval_max_new_tokens=48,
            eval_batch_size=32,
        )
        out = conversation_evals(model, self.tok, ns)
        return {k: out[k] for k in ("format_compliance", "identity_accuracy") if k in out}

    def _eval_point(self, batch: int) -> None:
        e = {"batch": batch, **self.evaluate(at_start=batch == 0)}
        self.history.append(e)
        gold = e.get("eval_gold")
        print(
            f"[ppo eval {batch}] proxy {e['eval_reward']:.3f} gold {gold if gold is None else round(gold, 3)} "
            f"kl {e['eval_kl']:.3f} | {e['eval_sample'][:60]!r}"
        )
        if gold is not None and self._keepable(e) and gold > max(
                (h["eval_gold"] for h in self.history if h is not e and self._keepable(h)), default=-math.inf):
            policy = self.acc.unwrap_model(self.policy)
            self.best_state = {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}

    def _keepable(self, h: dict) -> bool:
        """The start, or an eval whose gold beats the start's significantly (keep_min_z)."""
        evals = [x for x in self.history if "eval_gold" in x]
        if "eval_gold" not in h or not evals or h is evals[0]:
            return "eval_gold" in h
        if "eval_gold_each" not in h or "eval_gold_each" not in evals[0]:  # a history from before keep_min_z
            return h["eval_gold"] > evals[0]["eval_gold"]
        return significant_gain(evals[0]["eval_gold_each"], h["eval_gold_each"], self.cfg.keep_min_z)

    def train(self, resume_from: str | None = None) -> dict:
        cfg = self.cfg
        n_batches = max(1, cfg.total_episodes // cfg.per_device_train_batch_size)
        start_batch = 0
        if resume_from:  # a checkpoint-N folder, as the Trainer stages' (chatstack.stage)
            self.acc.load_state(resume_from)
            state = TrainerState.load_from_json(str(Path(resume_from) / TRAINER_STATE))
            start_batch, self.history = state.global_step, state.log_history
            if (Path(resume_from) / BEST_POLICY).is_file():
                self.best_state = torch.load(Path(resume_from) / BEST_POLICY)
        conv_start = self.conversations(self.ref_policy)
        if self.test_rows and not any("test_gold_start" in h for h in self.history):
            start = {"test_gold_start": self.test_gold()}
            if cfg.eval_samples:  # the greedy figure too: sampling and greedy decoding can move apart
                start["test_gold_greedy_start"] = self.test_gold(greedy=True)
            self.history.append({"batch": 0, **start})
        if start_batch == 0:
            self._eval_point(0)
        rng = random.Random(cfg.seed)
        per_batch = cfg.per_device_train_batch_size
        order = [rng.randrange(len(self.prompts)) for _ in range(n_batches * per_batch)]
        for b in range(start_batch, n_batches):
            s = self.step([self.prompts[i] for i in order[b * per_batch : (b + 1) * per_batch]])
            s["batch"] = b + 1
            self.history.append(s)
            print(
                f"[ppo {b + 1}/{n_batches}] score {s['score']:.3f} kl {s['kl']:.3f} loss {s['loss']:.4f} "
                f"| {s['sample'][:60]!r}"
            )
            if (cfg.eval_every and (b + 1) % cfg.eval_every == 0) or b + 1 == n_batches:
                self._eval_point(b + 1)
            if cfg.save_steps and (b + 1) % int(cfg.save_steps) == 0 and b + 1 < n_batches:
                self.save_checkpoint(b + 1, n_batches)
                if self.best_state is not None and self.acc.is_main_process:
                    torch.save(self.best_state, Path(cfg.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{b + 1}" / BEST_POLICY)
        return self.summarise(n_batches, conv_start)

    def summarise(self, n_batches: int, conv_start: dict) -> dict:
        """metrics.json: proxy, gold and KL at the start, the best gold eval and the end; the kept model
        (loaded into the policy when keep_best); best-of-n; identity and format before and after."""
        evals = [h for h in self.history if "eval_reward" in h]
        start, end = evals[0], evals[-1]
        has_gold = "eval_gold" in end
        best = max(evals, key=lambda h: h["eval_gold"]) if has_gold else end
        kept = max(filter(self._keepable, evals), key=lambda h: h["eval_gold"]) if has_gold else end
        kept = kept if self.cfg.keep_best else end
        if kept is not end and self.best_state is not None:
            self.acc.unwrap_model(self.policy).load_state_dict(self.best_state)
        r = lambda x: round(x, 4)  # noqa: E731
        trains = [h for h in self.history if "score" in h]
        metrics = {
            "reward_start": r(start["eval_reward"]),
            "reward_end": r(kept["eval_reward"]),
            "proxy_start": r(start["eval_reward"]),
            "proxy_best": r(best["eval_reward"]),
            "proxy_end": r(end["eval_reward"]),
            "kl_start": r(start["eval_kl"]),
            "kl_best": r(best["eval_kl"]),
            "kl_end": r(end["eval_kl"]),
        }
        if has_gold:
            metrics.update(
                gold_start=r(start["eval_gold"]),
                gold_best=r(best["eval_gold"]),
                gold_end=r(end["eval_gold"]),
                best_step=best["batch"],
                kept_step=kept["batch"],
                **{
                    f"{k}_{when}": r(h[f"eval_{k}"])
                    for when, h in (("start", start), ("kept", kept))
                    for k in ("gold_seen", "gold_unseen", "gold_identity")
                    if f"eval_{k}" in h
                },
            )
        metrics.update(
            eval_prompts=len(self.eval_rows),
            ppo_curve=[
                {
                    "step": h["batch"],
                    "kl": r(h["eval_kl"]),
                    "proxy": r(h["eval_reward"]),
                    **({"gold": r(h["eval_gold"])} if has_gold else {}),
                }
                for h in evals
            ],
        )
        test_start = next((h["test_gold_start"] for h in self.history if "test_gold_start" in h), None)
        if test_start is not None:
            kept_test = self.test_gold()
            metrics.update(gold_test_start=r(test_start), gold_test_kept=r(kept_test), test_prompts=len(self.test_rows))
            greedy_start = next((h["test_gold_greedy_start"] for h in self.history if "test_gold_greedy_start" in h), None)
            if greedy_start is not None:
                metrics.update(gold_test_greedy_start=r(greedy_start), gold_test_greedy_kept=r(self.test_gold(greedy=True)))
        metrics["best_of_n"] = self.best_of_n()
        conv_kept = self.conversations(self.acc.unwrap_model(self.policy))
        metrics.update({f"{k}_start": v for k, v in conv_start.items()} | {f"{k}_kept": v for k, v in conv_kept.items()})
        metrics.update(
            train_score_first=r(trains[0]["score"]) if trains else None,
            train_score_last=r(trains[-1]["score"]) if trains else None,
            kl_last=r(trains[-1]["kl"]) if trains else None,
            batches=n_batches,
        )
        return metrics

    def save_checkpoint(self, batch: int, n_batches: int) -> None:
        """checkpoint-<batch>: accelerate's state (models, optimizer, RNGs), then trainer_state.json
        last, which marks it complete (chatstack.checkpoints.last_checkpoint); older ones are removed."""
        out = Path(self.cfg.output_dir)
        ckpt = out / f"{PREFIX_CHECKPOINT_DIR}-{batch}"
        self.acc.save_state(str(ckpt))
        if self.acc.is_main_process:
            TrainerState(global_step=batch, max_steps=n_batches, log_history=self.history).save_to_json(
                str(ckpt / TRAINER_STATE)
            )
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
    prompts = train_ds.to_list()
    if cfg.eval_dataset:
        val = load_eval_split(cfg.eval_dataset, seed=cfg.seed)
        require_columns(val, GOLD_COLUMNS, f"eval_dataset '{cfg.eval_dataset}'")
        held_out = val.to_list()[: cfg.eval_prompts]
    elif test_ds is not None:
        held_out = test_ds.to_list()[: cfg.eval_prompts]
    elif len(prompts) <= cfg.eval_prompts:
        raise DataError(f"dataset '{cfg.dataset}': {len(prompts)} prompts, need more than eval_prompts={cfg.eval_prompts}")
    else:  # no held-out split in the spec: its first eval_prompts prompts are held out
        prompts, held_out = prompts[cfg.eval_prompts :], prompts[: cfg.eval_prompts]
    test = []
    if cfg.test_dataset:
        test_split = load_eval_split(cfg.test_dataset, seed=cfg.seed)
        require_columns(test_split, GOLD_COLUMNS, f"test_dataset '{cfg.test_dataset}'")
        test = test_split.to_list()
    trainer = PPOTrainer(cfg, policy, ref, reward_model, value_model, tokenizer, prompts, held_out, test)
    metrics = trainer.train(resume_from)
    return Trained(
        metrics,
        lambda out: save_chat_model(trainer.acc.unwrap_model(trainer.policy), tokenizer, out),
        [{k: v for k, v in h.items() if k != "eval_gold_each"} for h in trainer.history],
        is_main=trainer.acc.is_main_process,
    )


def train(cfg: PPOConfig) -> dict:
    return run_stage(cfg, fit)


def main(argv: list[str]) -> int:
    return stage_main(PPOConfig, train, argv)
