"""Generation through chatstack's Engine against a plain greedy loop with a KV cache, in one process.

    python benchmarks/generation_throughput.py                         # tiny preset, the stages' batch sizes
    python benchmarks/generation_throughput.py --model outputs/tiny/sft --batch_sizes 64,128

The Engine is called as the evals (`Engine.generate`, batch 64, 32 new tokens), the knowledge
prober (batch 128, 20 new tokens) and GRPO (greedy batch 64, sampled rollouts batch 128) call it:
left-padded prompts of mixed length, greedy decoding. The reference is the same model written out
as a plain loop: one prefill forward over the left-padded batch (attention mask, position ids
from the mask), then one forward per token on the KV cache (transformers' DynamicCache), argmax,
no stopping (the random-initialised default model never stops early either; with `--model` the
Engine may stop early, which only flatters it). Rounds alternate Engine / loop in A B, B A order, so
other load on the machine hits both alike; the ratio is the median of the per-round ratios, and the greedy
tokens of both are compared. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from chatstack.engine import Engine  # noqa: E402


@torch.no_grad()
def plain_greedy(model, prompts: list[list[int]], pad_id: int, new_tokens: int) -> torch.Tensor:
    """Left-padded prefill, then one cached forward per token; returns the new tokens [batch, new_tokens]."""
    from transformers import DynamicCache

    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
    tok = out.logits[:, -1].argmax(-1, keepdim=True)
    new = [tok]
    for _ in range(new_tokens - 1):
        mask = torch.cat([mask, mask.new_ones(len(prompts), 1)], dim=1)
        pos = pos[:, -1:] + 1
        out = model(input_ids=tok, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        new.append(tok)
    return torch.cat(new, dim=1)


def make_model(args, work: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.model:
        return AutoModelForCausalLM.from_pretrained(args.model).eval(), AutoTokenizer.from_pretrained(args.model)
    from chatstack.config import parse_config
    from chatstack.model import build_model
    from chatstack.tokenizer import TokenizerConfig, train_tokenizer

    tok_dir = Path(args.tokenizer) if args.tokenizer else work / "tokenizer"
    if not args.tokenizer:
        train_tokenizer(
            parse_config(TokenizerConfig, REPO / "recipes" / "tiny" / "tokenizer.yaml", ["--output_dir", str(tok_dir)])
        )
    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(0)
    return build_model(args.preset, tok).eval(), tok


def prompts_for(tok, n: int, seed: int) -> list[list[int]]:
    """Question-shaped prompts of mixed lengths (10-40 tokens), as the evals and the prober send."""
    g = torch.Generator().manual_seed(seed)
    base = tok(
        "Q: In what year was Ada Brook, who studied at the University of Elmridge and works for Norcrest, "
        "born? Answer with the year only.\nA:",
        add_special_tokens=False,
    )["input_ids"]
    lengths = torch.randint(10, min(40, len(base)) + 1, (n,), generator=g).tolist()
    return [base[-k:] for k in lengths]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="a save_pretrained folder (default: a fresh tiny-preset model)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder for the fresh model (default: train the tiny one)")
    p.add_argument(
        "--cases",
        default="evals:64:32,prober:128:20,grpo_greedy:64:32,grpo_rollouts:128:32",
        help="name:batch:new_tokens, comma-separated (the stages' settings)",
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_start = os.getloadavg()[0]
    model, tok = make_model(a, Path(tempfile.mkdtemp(prefix="gen_bench_")))
    engine = Engine(model, tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    never = [len(tok) + 10]  # a stop id no model emits: both sides generate every token
    result = {"model": a.model or f"fresh {a.preset}", "threads": a.threads, "torch": torch.__version__, "cases": {}}
    for case in a.cases.split(","):
        name, bs, new = case.split(":")
        bs, new = int(bs), int(new)
        prompts = prompts_for(tok, bs, seed=len(result["cases"]))
        engine.generate_batch(prompts, never, new)  # warm-up
        plain_greedy(model, prompts, pad, new)
        eng, ref, same = [], [], None
        for k in range(a.rounds):  # A B, B A, ...: neither side always runs first
            for side in ("engine", "plain") if k % 2 == 0 else ("plain", "engine"):
                t = time.perf_counter()
                if side == "engine":
                    _, got = engine.generate_batch(prompts, never, new)
                    eng.append(bs * got.shape[1] / (time.perf_counter() - t))
                else:
                    want = plain_greedy(model, prompts, pad, new)
                    ref.append(bs * new / (time.perf_counter() - t))
            same = bool(got.shape == want.shape and (got == want).float().mean() > 0.99)
        ratios = [e / r for e, r in zip(eng, ref)]
        r = {
            "batch": bs,
            "new_tokens": new,
            "engine_tokens_per_second": round(statistics.median(eng), 1),
            "plain_loop_tokens_per_second": round(statistics.median(ref), 1),
            "engine_over_plain": round(statistics.median(ratios), 3),
            "rounds": [round(x, 3) for x in ratios],
            "same_greedy_tokens": same,
        }
        result["cases"][name] = r
        print(
            f"{name}: batch {bs}, {new} new tokens: Engine {r['engine_tokens_per_second']:,.0f} tokens/s, plain "
            f"loop {r['plain_loop_tokens_per_second']:,.0f} -> {r['engine_over_plain']}x (rounds {r['rounds']}); "
            f"same tokens: {same}",
            flush=True,
        )
    result["min_engine_over_plain"] = min(c["engine_over_plain"] for c in result["cases"].values())
    result["loadavg_start_end"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
