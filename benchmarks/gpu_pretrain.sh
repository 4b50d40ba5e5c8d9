#!/usr/bin/env bash
# GPT-2 124M recipe on this machine's GPUs: STEPS optimizer steps (0.5M tokens each) on local
# web text, eager and with torch.compile; prints tokens/s, MFU (bf16 peak of the detected GPU)
# and peak memory per GPU next to the dry-run estimate, as JSON.
#
#   bash benchmarks/gpu_pretrain.sh                      # all GPUs, 50 steps, eager then compiled
#   NGPU=1 COMPILE=false STEPS=30 bash benchmarks/gpu_pretrain.sh
#   SMOKE=1 bash benchmarks/gpu_pretrain.sh              # CPU, tiny model, 2 steps: checks the script
#
# The data is ../shared/data/web_text_cc (767 Common Crawl documents) repeated into FineWeb-shaped
# parquet shards and streamed through the recipe's own data path (hold-out, shuffle, tokenize and
# pack on the fly); the tokenizer is trained on it with the recipe's tokenizer config at a small
# vocabulary while the model keeps GPT-2's (50,257, padded to 50,304), so the model and its FLOPs
# are GPT-2 124M's. Steps before WARMUP_STEPS (compilation, first batches) are not timed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
STEPS=${STEPS:-50}
WARMUP_STEPS=${WARMUP_STEPS:-10}
COMPILE=${COMPILE:-"false true"}
MICRO_BATCH=${MICRO_BATCH:-32}
DATA=${DATA:-../shared/data/web_text_cc}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_pretrain.XXXXXX")}
SMOKE=${SMOKE:-0}
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

if [ "$SMOKE" = 1 ]; then
    NGPU=1; STEPS=3; WARMUP_STEPS=1; COMPILE=false; MICRO_BATCH=2
    EXTRA=(--model_config '{"vocab_size": 50257, "n_layer": 1, "n_embd": 64, "n_head": 2}' --block_size 128
           --global_batch_tokens 512 --bf16 false --dataloader_num_workers 0 --eval_documents 5 --per_device_eval_batch_size 4)
    LAUNCH=("$PY" -m chatstack.cli)
else
    NGPU=${NGPU:-$("$PY" -c 'import torch; print(torch.cuda.device_count())')}
    [ "$NGPU" -ge 1 ] || { echo "gpu_pretrain.sh: no CUDA GPU found (SMOKE=1 checks the script on a CPU)" >&2; exit 2; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    EXTRA=(--model_config '{"vocab_size": 50257}')
    LAUNCH=("$PY" -m accelerate.commands.launch --config_file accelerate_configs/ddp.yaml --num_processes "$NGPU"
            --main_process_port "${MASTER_PORT:-29511}" -m chatstack.cli)
fi
echo "work dir: $WORK" >&2

# 1. FineWeb-shaped parquet shards and a streamed spec over them
"$PY" - "$DATA" "$WORK" <<'PYEOF'
import gzip, json, sys
from pathlib import Path
import datasets
src, work = Path(sys.argv[1]), Path(sys.argv[2])
docs = [json.loads(l)["text"] for f in sorted(src.glob("*.jsonl.gz")) for l in gzip.open(f, "rt") if l.strip()]
docs = [d for d in docs if d.strip()]
rows = [{"text": d, "id": f"{r}-{i}", "url": f"https://example.org/{i}", "dump": "local"} for r in range(12) for i, d in enumerate(docs)]
(work / "shards").mkdir(parents=True, exist_ok=True)
for s in range(4):
    datasets.Dataset.from_list(rows[s::4]).to_parquet(str(work / "shards" / f"{s:03d}_00000.parquet"))
(work / "data.yaml").write_text(json.dumps({"hub": "parquet", "data_files": sorted(str(p) for p in (work / "shards").glob("*.parquet")),
                                            "split": "train", "streaming": True, "columns": ["text"]}))
print(f"{len(rows)} documents, {sum(len(r['text']) for r in rows) / 1e6:.1f} M characters", file=sys.stderr)
PYEOF

# 2. the recipe's tokenizer stage on that text (small vocabulary: 767 distinct documents)
"$PY" -m chatstack.cli tokenizer --config recipes/gpt2-124m/tokenizer.yaml --dataset "$WORK/data.yaml" \
    --vocab_size 8192 --max_documents 2000 --output_dir "$WORK/tokenizer" >&2

# 3. what the dry run predicts for this launch
"$PY" -m chatstack.cli pretrain --config recipes/gpt2-124m/pretrain.yaml --dry_run true --dry_run_processes "$NGPU" \
    --tokenizer_name_or_path "$WORK/tokenizer" --per_device_train_batch_size "$MICRO_BATCH" "${EXTRA[@]}" \
    --output_dir "$WORK/dry" 2>/dev/null | sed -n '/^{/,$p' > "$WORK/dry_run.json"

# 4. the runs
for c in $COMPILE; do
    "${LAUNCH[@]}" pretrain --config recipes/gpt2-124m/pretrain.yaml --dataset "$WORK/data.yaml" \
        --tokenizer_name_or_path "$WORK/tokenizer" --output_dir "$WORK/run_compile_$c" \
        --per_device_train_batch_size "$MICRO_BATCH" --max_steps "$STEPS" --logging_steps 1 \
        --eval_strategy no --save_strategy no --eval_documents 50 --shuffle_buffer 1000 \
        --torch_compile "$c" --report_to none --disable_tqdm true "${EXTRA[@]}" >&2
done

# 5. summary
"$PY" - "$WORK" "$NGPU" "$WARMUP_STEPS" "$COMPILE" <<'PYEOF'
import json, statistics, sys
from pathlib import Path
import torch
from transformers import GPT2Config
from chatstack.model import flops_per_token, gpu_bf16_peak
work, ngpu, warm, compiles = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split()
name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (smoke)"
peak = gpu_bf16_peak(name)
dry = json.loads((work / "dry_run.json").read_text())
out = {"device": name, "gpus": ngpu, "bf16_peak_tflops_per_gpu": peak, "torch": torch.__version__,
       "dry_run": {k: dry[k] for k in ("parameters", "micro_batch", "gradient_accumulation_steps", "tokens_per_step",
                                       "memory_per_device_gib")}, "runs": {}}
for c in compiles:
    run = work / f"run_compile_{c}"
    cfg = GPT2Config.from_json_file(run / "config.json")
    hist = json.loads((run / "log_history.json").read_text())
    tps = [h["tokens_per_second"] for h in hist if "tokens_per_second" in h and h["step"] > warm]
    mem = max((h.get("max_memory_gib", 0) for h in hist), default=0)
    metrics = json.loads((run / "metrics.json").read_text())
    tok_s = statistics.median(tps) if tps else metrics["tokens_per_second"]
    fpt = flops_per_token(cfg, metrics["block_size"], metrics["parameters"])
    out["runs"][f"torch_compile={c}"] = {
        "tokens_per_second": round(tok_s), "tokens_per_second_per_gpu": round(tok_s / ngpu),
        "timed_steps": len(tps), "flops_per_token": fpt,
        "mfu_bf16": round(tok_s * fpt / (peak * 1e12 * ngpu), 4) if peak else None,
        "max_memory_gib_per_gpu": mem, "train_loss": metrics["train_loss"], "parameters": metrics["parameters"]}
print(json.dumps(out, indent=2))
PYEOF
