#!/usr/bin/env bash
# The gpt2-124m recipe end to end on one GPU node: every training stage under `accelerate launch`
# on N GPUs (data builders on one process), resumable (a stage with metrics.json is skipped, an
# interrupted one resumes from its last checkpoint), then `chatstack speedrun` writes the summary,
# lesson card and report from what the stages wrote.
#   bash scripts/speedrun_gpu.sh [recipe=gpt2-124m] [n_gpus=8]
# GRPO generates with vLLM in the training processes when it is installed (pip install vllm).
set -euo pipefail
RECIPE=${1:-gpt2-124m}
NGPU=${2:-8}
DIR=recipes/$RECIPE
OUT=outputs/$RECIPE
LAUNCH=(accelerate launch --config_file accelerate_configs/ddp.yaml --num_processes "$NGPU" -m chatstack.cli)
VLLM=()
python -c "import vllm" 2>/dev/null && VLLM=(--use_vllm true)

run() {  # run STAGE NAME: skip when complete
  local stage=$1 name=$2
  if [[ -f $OUT/$name/metrics.json ]]; then echo "== $name: complete, skipped"; return; fi
  echo "== $name"
  case $stage in
    tokenizer|build|eval) chatstack "$stage" --config "$DIR/$name.yaml" ;;
    grpo) "${LAUNCH[@]}" grpo --config "$DIR/$name.yaml" "${VLLM[@]}" ;;
    *) "${LAUNCH[@]}" "$stage" --config "$DIR/$name.yaml" ;;
  esac
}

run tokenizer tokenizer
run pretrain pretrain
run sft sft
run build probe_refusals
run sft sft_refusal
run build eval_refusal
run reward reward
run ppo ppo
run grpo grpo
run eval eval                             # one process: the real eval suite (lm-eval, HumanEval in the sandbox)
chatstack speedrun --recipe "$RECIPE"     # every stage complete: writes summary.json and report.md
