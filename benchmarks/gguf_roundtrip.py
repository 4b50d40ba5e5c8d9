"""GGUF round trip: export a model with `chatstack export` in each dtype and compare its
logits with the original's on fixed prompts, read back by

  - transformers' own GGUF loader (`from_pretrained(dir, gguf_file=...)`), always;
  - llama.cpp itself through llama-cpp-python, when it is importable (optional: it
    compiles llama.cpp on install, which took 26 min on this 2-core machine, so it is
    not a project dependency; `pip install llama-cpp-python` to add this column).

    python benchmarks/gguf_roundtrip.py [--model outputs/tiny/sft] [--dtypes f32,f16,q8_0]

Without --model it builds the tests' tiny GPT-2 (2 layers, 64 dims, vocab 512) and fits
it for 300 steps so its logits are spread out. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROMPTS = ["The capital of France is", "Question: What is 12 plus 345?\nAnswer: 357",
           "<|im_start|>user\nWho was Ada Lovelace?<|im_end|>\n<|im_start|>assistant\n",
           "Hello  world!! 1234567 café 🙂\n\n\tdef f(x): return x"]


def hf_logits(model_dir: Path, prompts: list[str]):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for p in prompts:
            ids = tok(p)["input_ids"]
            out.append((ids, model(torch.tensor([ids])).logits[0].numpy()))
    return out


def llama_cpp_compare(gguf_file: Path, reference, f32_kv_cache: bool = False) -> dict | None:
    """llama.cpp's logits; by default with its f16 KV cache, as users run it. Its CPU GELU reads
    an f16 lookup table, so even an f32 file differs from PyTorch by about 1e-3 relative."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    kv = {"type_k": 0, "type_v": 0} if f32_kv_cache else {}  # 0 = GGML_TYPE_F32
    llm = Llama(model_path=str(gguf_file), n_ctx=max(len(ids) for ids, _ in reference) + 8, logits_all=True,
                verbose=False, n_threads=2, n_batch=512, **kv)
    max_diff, agree, n, same_ids = 0.0, 0, 0, True
    for (ids, ref), prompt in zip(reference, PROMPTS):
        got_ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        same_ids &= got_ids == ids
        llm.reset()
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)], dtype=np.float32)
        max_diff = max(max_diff, float(np.abs(got - ref).max()))
        agree += int((got.argmax(-1) == ref.argmax(-1)).sum())
        n += len(ids)
    return {"max_abs_logit_diff": max_diff, "top1_agreement": agree / n, "same_token_ids": bool(same_ids)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None)
    p.add_argument("--dtypes", default="f32,f16,q8_0")
    p.add_argument("--train_steps", type=int, default=300)
    a = p.parse_args(argv)
    from chatstack.export import export_gguf, verify_gguf

    with tempfile.TemporaryDirectory() as tmp:
        if a.model:
            model_dir = Path(a.model)
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from helpers_tiny_model import build_tiny_model

            model_dir = build_tiny_model(Path(tmp) / "tiny", train_steps=a.train_steps)
        reference = hf_logits(model_dir, PROMPTS)
        scale = max(float(np.abs(r).max()) for _, r in reference)
        report = {"model": str(a.model or f"tests' tiny GPT-2, {a.train_steps} steps"), "prompts": len(PROMPTS),
                  "tokens": sum(len(i) for i, _ in reference), "max_abs_logit": scale, "dtypes": {}}
        for dtype in a.dtypes.split(","):
            t0 = time.time()
            f = export_gguf(model_dir, Path(tmp) / f"model-{dtype}.gguf", dtype, quiet=True)
            row = {"export_s": round(time.time() - t0, 2), "bytes": f.stat().st_size,
                   "transformers_reader": {k: v for k, v in verify_gguf(model_dir, f, PROMPTS).items()
                                           if k not in ("gguf", "bytes")}}
            lc = llama_cpp_compare(f, reference)
            row["llama_cpp"] = lc if lc is not None else "not installed (pip install llama-cpp-python)"
            if lc is not None:
                row["llama_cpp_f32_kv_cache"] = llama_cpp_compare(f, reference, f32_kv_cache=True)
            report["dtypes"][dtype] = row
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
