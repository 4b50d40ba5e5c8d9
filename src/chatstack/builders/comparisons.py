"""`chatstack build comparisons`: the reward model's comparison data as InstructGPT collects it
(Ouyang et al. 2022, section 3.5): k samples of the policy for each prompt, ranked by a labeller,
and a preference pair for each two samples of different rank. The labeller here is the synthetic
world's truth (chatstack.judges.gold_score), standing in for the people who rank the samples.

Why: hand-written pairs (world_preferences) teach the reward model about mistakes someone thought
of; PPO then finds the ones nobody did (the identity reply broken into "I am Tiny nat, the chat")
and the reward model scores them high. Ranked samples of the model that PPO starts from show the
reward model the mistakes that model makes, which is where PPO begins its search.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from chatstack.data.loading import load_splits, require_columns
from chatstack.engine import Engine
from chatstack.errors import ConfigError, DataError
from chatstack.judges import GOLD_COLUMNS, gold_of


@dataclass
class ComparisonConfig:
    builder: str = field(default="comparisons", metadata={"help": "the builder this config is for"})
    output_dir: str = "outputs/tiny/comparisons"
    model_name_or_path: str = field(default="outputs/tiny/assistant", metadata={"help": "the policy to sample"})
    prompts: str = field(default="tiny_questions", metadata={
        "help": "datasets_cfg name of prompts with the gold columns (answer, seen, identity): PPO's training prompts"})
    max_prompts: int = field(default=400, metadata={"help": "prompts sampled (seeded draw; 0: all)"})
    k: int = field(default=4, metadata={"help": "samples per prompt"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature (PPO's)"})
    max_new_tokens: int = field(default=48, metadata={"help": "reply budget (PPO's response_length)"})
    max_pairs_per_prompt: int = field(default=3, metadata={"help": "pairs kept per prompt, widest gold gap first"})
    batch_size: int = 64
    seed: int = 42

    def __post_init__(self) -> None:  # before any sampling
        if self.k < 2:
            raise ConfigError(f"k: a comparison needs at least 2 samples per prompt, got {self.k}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature: the samples must differ; expected > 0, got {self.temperature}")
        if self.max_pairs_per_prompt < 1:
            raise ConfigError(f"max_pairs_per_prompt: expected >= 1, got {self.max_pairs_per_prompt}")


def ranked_pairs(samples: list[tuple[str, float]], max_pairs: int, rng: random.Random) -> list[tuple]:
    """(chosen, rejected, chosen score, rejected score) for samples of different score, distinct
    texts only, the widest score gaps first (equal gaps in a seeded order); at most `max_pairs`."""
    scored = dict(samples)  # one score per text: the same reply scores the same
    pairs = [(a, b, sa, sb) for a, sa in scored.items() for b, sb in scored.items() if sa > sb]
    rng.shuffle(pairs)
    pairs.sort(key=lambda p: p[3] - p[2])
    return pairs[:max_pairs]


def sample_and_rank(cfg: ComparisonConfig) -> tuple[list[dict], dict]:
    """Preference rows ({prompt, chosen, rejected} conversational, plus both gold scores for audit:
    a mixture keeps only the columns its sources share) and what the samples scored."""
    train, _ = load_splits(cfg.prompts, seed=cfg.seed)
    require_columns(train, GOLD_COLUMNS, f"prompts '{cfg.prompts}'")
    rows = train.to_list()
    rng = random.Random(f"{cfg.seed}-comparisons")
    if cfg.max_prompts and len(rows) > cfg.max_prompts:
        rows = rng.sample(rows, cfg.max_prompts)
    engine = Engine.from_pretrained(cfg.model_name_or_path)
    eos = engine.tokenizer.eos_token_id
    stops = engine.stop_ids(chat=True, also=("<|im_start|>",))
    texts = [engine.render(r["prompt"]) for r in rows for _ in range(cfg.k)]
    done = engine.generate(texts, stops, cfg.max_new_tokens, cfg.batch_size, temperature=cfg.temperature)
    out, golds, with_pair = [], [], 0
    for i, r in enumerate(rows):
        samples = []
        for c in done[i * cfg.k : (i + 1) * cfg.k]:
            reply, ended = (c.text.strip(), c.stop == eos) if c else ("", False)
            samples.append((reply, gold_of(r, reply, ended)))
        golds += [s for _, s in samples]
        pairs = ranked_pairs(samples, cfg.max_pairs_per_prompt, rng)
        with_pair += bool(pairs)
        out += [{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": a}],
                 "rejected": [{"role": "assistant", "content": b}], "chosen_gold": sa, "rejected_gold": sb}
                for a, b, sa, sb in pairs]
    if not out:
        raise DataError(f"{cfg.model_name_or_path}: no two of its {cfg.k} samples per prompt differ in gold score "
                        f"({len(rows)} prompts): raise k or temperature")
    stats = {"prompts": len(rows), "samples": len(golds), "pairs": len(out),
             "prompts_with_a_pair": round(with_pair / max(1, len(rows)), 4),
             "sample_gold_mean": round(sum(golds) / max(1, len(golds)), 4)}
    return out, stats

