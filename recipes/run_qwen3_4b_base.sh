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
# Anything after the script name is a Hydra override, applied last, e.g.
#   ALGO=grpo MODEL_PATH=/models/Qwen3-4B-Base DATA_DIR=/data/sfpo bash recipes/run_qwen3_4b_base.sh trainer.total_training_steps=50
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

ALGO=${ALGO:-sfpo}
MODEL_PATH=${MODEL_PATH:-$HOME/models/Qwen3-4B-Base}
DATA_DIR=${DATA_DIR:-$HOME/data/sfpo}
TRAIN_FILE=${TRAIN_FILE:-$DATA_DIR/train.parquet}
VAL_FILES=${VAL_FILES:-$(paper_val_files "$DATA_DIR")}
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

require_algo ALGO
require_model_dir MODEL_PATH
require_files TRAIN_FILE
require_files VAL_FILES

# shellcheck disable=SC2086  # VAL_FILES is a space-separated list
sfpo_launch "$RUN_DIR" \
    algorithm.name="$ALGO" \
    algorithm.adv_estimator=grpo \
    algorithm.use_kl_in_reward=False \
    algorithm.sfpo.inner_steps=3 \
    algorithm.sfpo.alpha="$ALPHA" \
    algorithm.sfpo.alpha_schedule=constant \
    algorithm.sfpo.entropy_switch.enable=True \
    algorithm.sfpo.entropy_switch.window=30 \
    algorithm.sfpo.entropy_switch.threshold=1.0 \
    data.train_files="$TRAIN_FILE" \
    data.val_files="$(hydra_list $VAL_FILES)" \
    data.train_batch_size=256 \
    data.max_prompt_length="$MAX_PROMPT_LENGTH" \
    data.max_response_length="$MAX_RESPONSE_LENGTH" \
    data.filter_overlong_prompts=True \
    data.truncation=error \
    actor_rollout_ref.model.path="$MODEL_PATH" \
    actor_rollout_ref.model.use_remove_padding=True \
    actor_rollout_ref.model.enable_gradient_checkpointing=True \
    actor_rollout_ref.actor.strategy=fsdp2 \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.optim.lr_scheduler_type=constant \
    actor_rollout_ref.actor.optim.weight_decay=0.01 \
    actor_rollout_ref.actor.optim.clip_grad=1.0 \
    actor_rollout_ref.actor.ppo_mini_batch_size=64 \
    actor_rollout_ref.actor.ppo_epochs=1 \
    actor_rollout_ref.actor.use_dynamic_bsz=True \
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$MAX_TOKENS_PER_GPU" \
    actor_rollout_ref.actor.clip_ratio_low=0.2 \
    actor_rollout_ref.actor.clip_ratio_high=0.2 \
    actor_rollout_ref.actor.loss_agg_mode=token-mean \
    actor_rollout_ref.actor.entropy_coeff=0.001 \
    actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.temperature=1.0 \
    actor_rollout_ref.rollout.top_p=1.0 \
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
    actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION" \
    actor_rollout_ref.rollout.val_kwargs.n=4 \
    actor_rollout_ref.rollout.val_kwargs.do_sample=True \
    actor_rollout_ref.rollout.val_kwargs.temperature=1.0 \
    actor_rollout_ref.rollout.val_kwargs.top_p=0.7 \
    reward.custom_reward_function.path=pkg://sfpo_verl.paper.reward.math_reward \
    reward.custom_reward_function.name=compute_score \
    +reward.custom_reward_function.reward_kwargs.format_score=0.1 \
    trainer.logger="$LOGGERS" \
    trainer.project_name="$PROJECT_NAME" \
    trainer.experiment_name="$EXPERIMENT_NAME" \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$GPUS_PER_NODE" \
    trainer.total_training_steps=400 \
    trainer.test_freq=5 \
    trainer.save_freq=5 \
    trainer.val_before_train=True \
    trainer.max_actor_ckpt_to_keep="$CHECKPOINTS_KEPT" \
    trainer.default_local_dir="$RUN_DIR/checkpoints" \
    trainer.validation_data_dir="$RUN_DIR/val_generations" \
    hydra.run.dir="$RUN_DIR" \
    "$@"
