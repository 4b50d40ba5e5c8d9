#!/usr/bin/env bash
# Multi-node pretraining on Slurm: one `accelerate launch` per node, one process per GPU.
#
#   sbatch --nodes=2 scripts/slurm_pretrain.sh recipes/gpt2-124m/pretrain.yaml [--key value ...]
#   ACCELERATE_CONFIG=accelerate_configs/fsdp.yaml sbatch scripts/slurm_pretrain.sh recipes/gpt2-350m/pretrain.yaml
#
# Resubmitting the same job resumes from the last complete checkpoint in the recipe's
# output_dir (which must be on a filesystem every node sees). The recipe's global_batch_tokens
# keeps 0.5M tokens per step whatever the number of nodes.
#SBATCH --job-name=chatstack-pretrain
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --exclusive
#SBATCH --time=24:00:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail

RECIPE=${1:?usage: sbatch scripts/slurm_pretrain.sh RECIPE.yaml [--key value ...]}
shift
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-accelerate_configs/multi_node.yaml}
GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}
NNODES=${SLURM_NNODES:?run under sbatch/srun (SLURM_NNODES is not set)}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
export NCCL_ASYNC_ERROR_HANDLING=1

# single quotes: SLURM_NODEID is expanded by each node's shell, not here
srun --kill-on-bad-exit=1 bash -c 'accelerate launch --config_file "$0" \
    --num_machines "$1" --num_processes "$2" --machine_rank "$SLURM_NODEID" \
    --main_process_ip "$3" --main_process_port "$4" --rdzv_backend c10d \
    -m chatstack.cli pretrain --config "${@:5}"' \
    "$ACCELERATE_CONFIG" "$NNODES" "$((NNODES * GPUS_PER_NODE))" "$MASTER_ADDR" "$MASTER_PORT" "$RECIPE" "$@"
