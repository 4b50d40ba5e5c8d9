"""Models need tokens to think: SFT one base model twice, on the same problems answered
work-first and answer-first, and compare accuracy on held-out problems (JSON on stdout).

    python benchmarks/thinking_compare.py --base outputs/tiny/pretrain --steps 300

Each variant runs the real sft stage (chatstack.sft.train: TRL SFTTrainer, assistant-only
loss) on `builder: thinking` data of that variant; the stage's conversation eval then asks
the same held-out problems (`thinking_eval_rows`, never in training) and reads the first
"The answer is X" of each reply. Everything else (data rows, seed, steps, learning rate)
is identical between the variants. A figure, not an assert: small models and few steps are noisy.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import yaml


def run_variant(args, variant: str) -> dict:
    from chatstack.config import parse_config
    from chatstack.sft import SFTStageConfig, train

    out = Path(args.out) / variant
    out.mkdir(parents=True, exist_ok=True)
    thinking = {"builder": "thinking", "args": {"world": args.world, "n": args.n_train, "variant": variant,
                                                "mix": args.mix, "min_steps": args.min_steps, "max_steps": args.max_steps,
                                                **({"words_file": args.words_file} if args.words_file else {})}}
    spec = {"mixture": [{**thinking, "weight": 1.0}, {"mixture": [args.with_mixture], "weight": args.mixture_weight}]} \
        if args.with_mixture else thinking
    data = out / "data.yaml"
    data.write_text(yaml.safe_dump(spec, sort_keys=False))
    cfg = parse_config(SFTStageConfig, None, [], output_dir=str(out / "model"), model_name_or_path=args.base,
                       dataset=str(data), world=args.world, max_steps=args.steps, num_train_epochs=1,
                       per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
                       max_length=args.max_length, eval_questions=0, use_cpu=not args.gpu, report_to="none",
                       logging_steps=max(1, args.steps // 10), save_strategy="no", seed=args.seed,
                       disable_tqdm=True)
    # read by chatstack.evaluation.conversations through getattr (not SFTStageConfig fields)
    cfg.eval_thinking = args.n_eval
    cfg.eval_thinking_max_new_tokens = args.max_new_tokens
    cfg.eval_format_prompts = args.format_prompts
    t0 = time.time()
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer's log lines; stdout keeps the JSON alone
        metrics = train(cfg)
    keep = {k: v for k, v in metrics.items() if k.startswith(("thinking_", "format_", "train_loss"))}
    keep["seconds"] = round(time.time() - t0, 1)
    keep["samples"] = [s for s in metrics.get("conversation_samples", []) if s["group"].startswith("thinking_")]
    return keep


def majority_baseline(args) -> dict:
    """Accuracy of always answering each kind's most common held-out answer: the floor that a
    model guessing without reading the problem reaches (e.g. most letter counts are 1)."""
    from collections import Counter

    from chatstack.builders.thinking import thinking_eval_rows
    rows = thinking_eval_rows(args.world, seed=args.seed, n=args.n_eval, mix=args.mix, min_steps=args.min_steps,
                              max_steps=args.max_steps, **({"words_file": args.words_file} if args.words_file else {}))
    out = {}
    for kind in sorted({r["kind"] for r in rows}):
        answers = Counter(r["answer"] for r in rows if r["kind"] == kind)
        out[kind] = round(answers.most_common(1)[0][1] / sum(answers.values()), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="a pretrained base model with the chat tokenizer (pretrain output)")
    p.add_argument("--out", default="outputs/thinking-compare")
    p.add_argument("--world", default="tiny")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--max_length", type=int, default=256)
    p.add_argument("--n_train", type=int, default=4000, help="training problems per variant (the same problems)")
    p.add_argument("--n_eval", type=int, default=200, help="held-out problems")
    p.add_argument("--max_new_tokens", type=int, default=128)
    p.add_argument("--format_prompts", type=int, default=0, help="world QA prompts for format compliance (0 = none)")
    p.add_argument("--mix", type=json.loads, default={"word_problem": 0.6, "count_letters": 0.25, "spell_backwards": 0.15},
                   help='JSON, e.g. \'{"word_problem": 1}\'')
    p.add_argument("--min_steps", type=int, default=2, help="operations per word problem, at least")
    p.add_argument("--max_steps", type=int, default=3, help="operations per word problem, at most")
    p.add_argument("--words_file", default=None, help="word list for the spelling kinds (default: packaged list)")
    p.add_argument("--with_mixture", default=None, help="also train on this datasets_cfg mixture (e.g. tiny_sft)")
    p.add_argument("--mixture_weight", type=float, default=1.0)
    p.add_argument("--variants", nargs="+", default=["work_first", "answer_first"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--gpu", action="store_true", help="train on the GPU (default: CPU, fp32)")
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results = {"base": args.base, "steps": args.steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
               "n_train": args.n_train, "n_eval": args.n_eval, "mix": args.mix,
               "word_problem_steps": [args.min_steps, args.max_steps], "with_mixture": args.with_mixture,
               "variants": {}}
    for v in args.variants:
        print(f"== {v}", file=sys.stderr, flush=True)
        results["variants"][v] = run_variant(args, v)
    results["majority_baseline"] = majority_baseline(args)
    accs = {v: r.get("thinking_accuracy") for v, r in results["variants"].items()}
    results["accuracy"] = accs
    if {"work_first", "answer_first"} <= set(accs):
        results["work_first_minus_answer_first"] = round(accs["work_first"] - accs["answer_first"], 4)
    print(json.dumps(results, indent=2))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
