#!/usr/bin/env bash
# SFPO paper recipe: Qwen3-4B-Base, GRPO and SFPO arms, 1 node x 8 GPUs.
# Settings are the paper's (arXiv 2510.04072; recipes/README.md): 256 prompts x 8 rollouts per
# step, PPO mini-batch 64, lr 1e-6 constant, prompt/response 2048/6144 tokens, K=3, alpha=0.9,
# entropy switch omega=30 tau=1.0, 400 steps, validation (avg@4) and checkpoint every 5 steps.
# Reward as in the authors' code: 1 correct, 0.1 for a wrong answer in a box, 0 without a box
# (validation reads the reward's `acc`, so it stays accuracy); the data, prepared with
# python -m sfpo_verl.paper.data, carries the authors' prompt by default.
#
# Arms: ALGO=sfpo (default) or ALGO=grpo (the baseline); they differ only in algorithm.name.
# The overrides all recipes share are paper_overrides in recipes/_common.sh; this script sets what
# is this model's. Anything after the script name is a Hydra override, applied last, e.g.
#   ALGO=grpo MODEL_PATH=/models/Qwen3-4B-Base DATA_DIR=/data/sfpo bash recipes/run_qwen3_4b_base.sh trainer.total_training_steps=50
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

ALGO=${ALGO:-sfpo}
MODEL_PATH=${MODEL_PATH:-$HOME/models/Qwen3-4B-Base}
DATA_DIR=${DATA_DIR:-$HOME/data/sfpo}
TRAIN_FILE=${TRAIN_FILE:-$DATA_DIR/train.parquet}
VAL_FILES=${VAL_FILES:-} # space-separated; empty: $DATA_DIR/<benchmark>.parquet, each of the paper's six
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
PROJECT_NAME=${PROJECT_NAME:-sfpo_paper}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-qwen3_4b_base_${ALGO}}
RUN_DIR=${RUN_DIR:-$HOME/sfpo_runs/$EXPERIMENT_NAME}
LOGGERS=${LOGGERS:-'["console","file"]'}
CHECKPOINTS_KEPT=${CHECKPOINTS_KEPT:-2}

# Model-specific settings (paper).
MAX_PROMPT_LENGTH=2048
MAX_RESPONSE_LENGTH=6144
ALPHA=0.9
# Memory only (none changes the update): vLLM's share of GPU memory and the dynamic-batch
# token budget per GPU are the authors'; vLLM tensor parallelism is this project's.
ROLLOUT_TP=1
GPU_MEMORY_UTILIZATION=0.7
MAX_TOKENS_PER_GPU=24000

check_inputs

paper_overrides # the settings every recipe shares, filled in from the variables above
sfpo_launch "$RUN_DIR" "${PAPER_OVERRIDES[@]}" "$@"
