"""Throughput of chatstack's tokenizer training and of the pretrain stage's tokenize-and-pack path,
each against the `tokenizers` library called directly on the same text, in one process; MB/s per core.

    python benchmarks/tokenizer_throughput.py                  # tiny recipes, 3 rounds, one thread
    python benchmarks/tokenizer_throughput.py --rounds 5 --threads 2

Training: the stage is `chatstack.tokenizer.train_tokenizer` from recipes/tiny/tokenizer.yaml,
whole (shuffle and held-out split, BPE training, the transformers wrapper with the chat template,
save, reload, bytes_per_token on the held-out documents), on the tiny_pretrain text, which is
built once here and handed to the stage (building it is the dataset builder's time, reported
apart as data_build_seconds). Its training phase alone (from the call to the moment the trained
tokenizer is wrapped for transformers) is timed too. The reference is `tokenizers`' BpeTrainer
with the same settings (split regex, byte-level alphabet, special tokens, vocab_size,
min_frequency) on the same training documents; the stage's vocabulary and merges are checked
equal to the reference's. MB/s counts UTF-8 bytes of the training documents.

Tokenizing: the stage is `chatstack.data.packing.pack` (a `datasets` map, 1,000 documents a
batch: encode, join with <|endoftext|>, cut block_size blocks) on the pretrain stage's own
training text (`chatstack.pretrain.load_text` of recipes/tiny/pretrain.yaml) with the trained
fast tokenizer; the reference is `tokenizer(texts, add_special_tokens=False)`, one batch
encoding of the same documents (no joining, no blocks); the stage's blocks are checked equal to
the reference's ids joined and cut the same way. MB/s counts UTF-8 bytes of those documents.

Threads: `--threads N` lets `tokenizers` use N threads (RAYON_NUM_THREADS; with 1,
TOKENIZERS_PARALLELISM=false, so it runs serially); per-core figures divide by N, the threads
allowed (not a measured core count). Rounds alternate in A B, B A order so other load on the
machine hits both alike; ratios are medians of the per-round ratios. One compact JSON object on
the last line.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(REPO / "recipes" / "tiny" / "tokenizer.yaml"))
    p.add_argument("--pretrain_recipe", default=str(REPO / "recipes" / "tiny" / "pretrain.yaml"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="threads `tokenizers` may use (default 1: serial)")
    a = p.parse_args()
    # before `tokenizers` builds its thread pool (lazily, on first parallel work)
    os.environ["RAYON_NUM_THREADS"] = os.environ["RAYON_RS_NUM_CPUS"] = str(a.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if a.threads > 1 else "false"

    import random

    import datasets
    import tokenizers
    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    import chatstack.tokenizer as stage_mod
    from chatstack.config import parse_config
    from chatstack.data import load_data
    from chatstack.data.packing import pack
    from chatstack.engine import DOC_SEP
    from chatstack.hardware import cpu_name
    from chatstack.pretrain import PretrainConfig, load_text
    from chatstack.tokenizer import TokenizerConfig, bpe_untrained, train_tokenizer

    load_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="tokenizer_bench_"))
    cfg = parse_config(TokenizerConfig, Path(a.recipe), ["--output_dir", str(work / "stage")])

    t = time.perf_counter()
    ds = load_data(cfg.dataset, split="train", seed=cfg.seed)
    data_build_s = time.perf_counter() - t
    # the training documents, as train_tokenizer draws them
    texts = [x for x in ds[cfg.text_column] if x]
    random.Random(cfg.seed).shuffle(texts)
    n_eval = min(cfg.eval_documents, max(1, len(texts) // 10))
    train_texts = texts[n_eval:][: cfg.max_documents]
    train_mb = sum(len(x.encode()) for x in train_texts) / 1e6

    stage_mod.load_data = lambda *args, **kwargs: ds  # the stage gets the text built above
    wrapped = stage_mod.PreTrainedTokenizerFast
    marks: list[float] = []

    def marked(*args, **kwargs):  # the stage wraps the trained tokenizer: its training phase ends here
        marks.append(time.perf_counter())
        return wrapped(*args, **kwargs)

    stage_mod.PreTrainedTokenizerFast = marked

    def stage_train() -> tuple[float, float, dict]:
        marks.clear()
        t0 = time.perf_counter()
        metrics = train_tokenizer(cfg)
        return time.perf_counter() - t0, marks[0] - t0, metrics

    def reference_train() -> tuple[float, Tokenizer]:
        t0 = time.perf_counter()
        tok, trainer = bpe_untrained(cfg)
        tok.train_from_iterator(train_texts, trainer=trainer, length=len(train_texts))
        return time.perf_counter() - t0, tok

    stage_s, stage_train_s, ref_s = [], [], []
    for r in range(a.rounds):  # A B, B A, ...
        for who in (("stage", "reference") if r % 2 == 0 else ("reference", "stage")):
            if who == "stage":
                whole, part, metrics = stage_train()
                stage_s.append(whole)
                stage_train_s.append(part)
            else:
                s, ref_tok = reference_train()
                ref_s.append(s)
    saved = json.loads((Path(cfg.output_dir) / "tokenizer.json").read_text())["model"]
    reference = json.loads(ref_tok.to_str())["model"]
    same_vocab = saved["vocab"] == reference["vocab"] and saved["merges"] == reference["merges"]

    # ---- tokenize to blocks: the pretrain stage's pack() against one batch encoding ----
    tokenizer = AutoTokenizer.from_pretrained(cfg.output_dir)
    pcfg = parse_config(PretrainConfig, Path(a.pretrain_recipe), [
        "--output_dir", str(work / "pretrain"), "--tokenizer_name_or_path", cfg.output_dir, "--use_cpu", "true",
        "--bf16", "false", "--report_to", "none"])
    train_text, _ = load_text(pcfg)
    if not isinstance(train_text, datasets.Dataset):
        raise SystemExit("the pretrain recipe's text is streamed: pack() would be lazy; use an in-memory dataset")
    docs = list(train_text[pcfg.text_column])
    docs_mb = sum(len(x.encode()) for x in docs) / 1e6

    def stage_pack() -> tuple[float, list]:
        t0 = time.perf_counter()
        blocks = pack(train_text, tokenizer, pcfg.block_size, pcfg.text_column)
        return time.perf_counter() - t0, blocks

    def reference_encode() -> tuple[float, list]:
        t0 = time.perf_counter()
        ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
        return time.perf_counter() - t0, ids

    pack_s, enc_s = [], []
    for r in range(a.rounds):
        for who in (("stage", "reference") if r % 2 == 0 else ("reference", "stage")):
            if who == "stage":
                s, blocks = stage_pack()
                pack_s.append(s)
            else:
                s, ids = reference_encode()
                enc_s.append(s)
    sep, bs = tokenizer.convert_tokens_to_ids(DOC_SEP), pcfg.block_size
    expected = []
    for i in range(0, len(ids), 1000):  # pack's map batches of 1,000 documents, each dropping its partial block
        flat = [t for doc in ids[i:i + 1000] for t in (*doc, sep)]
        expected += [flat[j:j + bs] for j in range(0, len(flat) // bs * bs, bs)]
    same_tokens = list(blocks["input_ids"]) == expected

    n = a.threads

    def rate(mb: float, seconds: list[float]) -> dict:
        med = statistics.median(mb / s for s in seconds)
        return {"mb_per_s": round(med, 3), "mb_per_s_per_core": round(med / n, 3),
                "rounds_mb_per_s": [round(mb / s, 3) for s in seconds]}

    def ratio(stage_secs: list[float], ref_secs: list[float]) -> tuple[float, list[float]]:
        rs = [r / s for s, r in zip(stage_secs, ref_secs)]  # the stage's MB/s over the reference's
        return round(statistics.median(rs), 3), [round(x, 3) for x in rs]

    train_ratio, train_rounds = ratio(stage_train_s, ref_s)
    whole_ratio, whole_rounds = ratio(stage_s, ref_s)
    pack_ratio, pack_rounds = ratio(pack_s, enc_s)
    result = {
        "recipe": a.recipe,
        "pretrain_recipe": a.pretrain_recipe,
        "cpu": cpu_name(),
        "threads": n,
        "per_core_divisor": f"{n} tokenizers thread(s) allowed (RAYON_NUM_THREADS={n}, "
                            f"TOKENIZERS_PARALLELISM={os.environ['TOKENIZERS_PARALLELISM']})",
        "torch": torch.__version__,
        "trl": __import__("trl").__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "datasets": datasets.__version__,
        "rounds": a.rounds,
        "data_build_seconds": round(data_build_s, 2),
        "train": {
            "documents": len(train_texts), "mb": round(train_mb, 4), "vocab_size": cfg.vocab_size,
            "stage_whole": rate(train_mb, stage_s),
            "stage_training_phase": rate(train_mb, stage_train_s),
            "reference": rate(train_mb, ref_s),
            "stage_training_phase_over_reference": train_ratio,
            "stage_training_phase_over_reference_rounds": train_rounds,
            "stage_whole_over_reference": whole_ratio,
            "stage_whole_over_reference_rounds": whole_rounds,
            "same_vocab_and_merges": same_vocab,
            "stage_documents": metrics["train_documents"],
        },
        "tokenize": {
            "documents": len(docs), "mb": round(docs_mb, 4), "block_size": bs, "blocks": len(expected),
            "stage_pack": rate(docs_mb, pack_s),
            "reference_batch_encode": rate(docs_mb, enc_s),
            "stage_over_reference": pack_ratio,
            "stage_over_reference_rounds": pack_rounds,
            "same_tokens": same_tokens,
        },
        "loadavg_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }
    tr, tk = result["train"], result["tokenize"]
    print(f"tokenizer training: stage {tr['stage_training_phase']['mb_per_s_per_core']} MB/s/core in its training phase "
          f"({tr['stage_whole']['mb_per_s_per_core']} whole), reference {tr['reference']['mb_per_s_per_core']} "
          f"(training phase/reference {train_ratio}, whole/reference {whole_ratio}, same merges {same_vocab}); "
          f"tokenize to blocks: pack {tk['stage_pack']['mb_per_s_per_core']} MB/s/core, batch encode "
          f"{tk['reference_batch_encode']['mb_per_s_per_core']} (pack/encode {pack_ratio}, same tokens {same_tokens}); "
          f"{n} thread(s)", flush=True)
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
