#!/usr/bin/env bash
# DAPO + SFPO recipe: DeepSeek-R1-Distill-Qwen-1.5B, DAPO and DAPO+SFPO arms, 1 node x 8 GPUs.
# Settings are the paper's (arXiv 2510.04072; recipes/README.md): 256 prompts x 8 rollouts per
# step, PPO mini-batch 64, lr 1e-6 constant, prompt/response 2048/6144 tokens, K=3, alpha=0.8,
# entropy switch omega=30 tau=1.0, 400 steps, validation (avg@4) and checkpoint every 5 steps.
# Reward as in the authors' code: 1 correct, 0.1 for a wrong answer in a box, 0 without a box
# (validation reads the reward's `acc`, so it stays accuracy); the data, prepared with
# python -m sfpo_verl.paper.data, carries the authors' prompt by default.
#
# DAPO as verl 0.9.1 expresses it, on top of those settings: clip-higher (eps_high 0.28),
# token-mean loss, dynamic sampling (algorithm.filter_groups on the reward's `acc`: groups whose
# responses all agree are dropped and refilled) and overlong reward shaping (the `dapo` reward
# manager with an overlong buffer). Paper, Table 3: DAPO 49.30 -> DAPO + SFPO 50.56.
#
# Arms: ALGO=sfpo (default, DAPO + SFPO) or ALGO=grpo (plain DAPO); they differ only in algorithm.name.
# The overrides all recipes share are paper_overrides in recipes/_common.sh; this script sets what
# is this model's. Anything after the script name is a Hydra override, applied last, e.g.
#   ALGO=grpo MODEL_PATH=/models/DeepSeek-R1-Distill-Qwen-1.5B DATA_DIR=/data/sfpo bash recipes/run_dapo_deepseek_r1_distill_qwen_1.5b.sh trainer.total_training_steps=50
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

ALGO=${ALGO:-sfpo}
MODEL_PATH=${MODEL_PATH:-$HOME/models/DeepSeek-R1-Distill-Qwen-1.5B}
DATA_DIR=${DATA_DIR:-$HOME/data/sfpo}
TRAIN_FILE=${TRAIN_FILE:-$DATA_DIR/train.parquet}
VAL_FILES=${VAL_FILES:-} # space-separated; empty: $DATA_DIR/<benchmark>.parquet, each of the paper's six
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
PROJECT_NAME=${PROJECT_NAME:-sfpo_paper}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-dapo_deepseek_r1_distill_qwen_1.5b_${ALGO}}
RUN_DIR=${RUN_DIR:-$HOME/sfpo_runs/$EXPERIMENT_NAME}
LOGGERS=${LOGGERS:-'["console","file"]'}
CHECKPOINTS_KEPT=${CHECKPOINTS_KEPT:-2}

# Model-specific settings (paper).
MAX_PROMPT_LENGTH=2048
MAX_RESPONSE_LENGTH=6144
ALPHA=0.8
# Memory only (none changes the update): vLLM's share of GPU memory and the dynamic-batch
# token budget per GPU are the authors'; vLLM tensor parallelism is this project's.
ROLLOUT_TP=1
GPU_MEMORY_UTILIZATION=0.7
MAX_TOKENS_PER_GPU=24000
# Not in the paper: the overlong buffer, the last tokens before the length limit over which
# the reward falls linearly to -PENALTY (DAPO's own runs: the last 4096 of 20480 tokens).
OVERLONG_BUFFER_LENGTH=1024
OVERLONG_PENALTY=1.0

check_inputs

# DAPO on top of the shared settings: an override here replaces the shared one with its key, or
# joins the others of its section (paper_overrides in _common.sh).
paper_overrides \
    algorithm.filter_groups.enable=True \
    algorithm.filter_groups.metric=acc \
    actor_rollout_ref.actor.clip_ratio_high=0.28 \
    reward.reward_manager.name=dapo \
    +reward.reward_kwargs.max_resp_len="$MAX_RESPONSE_LENGTH" \
    +reward.reward_kwargs.overlong_buffer_cfg.enable=True \
    +reward.reward_kwargs.overlong_buffer_cfg.len="$OVERLONG_BUFFER_LENGTH" \
    +reward.reward_kwargs.overlong_buffer_cfg.penalty_factor="$OVERLONG_PENALTY" \
    +reward.reward_kwargs.overlong_buffer_cfg.log=True
sfpo_launch "$RUN_DIR" "${PAPER_OVERRIDES[@]}" "$@"
