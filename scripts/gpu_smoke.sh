#!/usr/bin/env bash
# GPU smoke run: 3 steps of each arm (GRPO; SFPO with the anchor on the GPU; SFPO with the
# anchor in host memory plus param/optimizer offload; SFPO on FSDP1; a resume) through
# `python -m sfpo_verl.main`, on the task's tiny model built locally (no hub). Checks alpha,
# rollout/actor log-prob agreement after an update, the resume and the anchor's GPU bytes, and
# prints per-phase times and peak GPU memory. Run it in the environment scripts/setup_gpu.sh made.
#
#   bash scripts/gpu_smoke.sh                      # CUDA, vLLM rollout, report in runs/smoke_cuda/
#   bash scripts/gpu_smoke.sh --rollout hf         # CUDA without vLLM (host-memory rollout)
#   bash scripts/gpu_smoke.sh --cpu                # the same checks on the CPU stack (the test suite runs this)
#   bash scripts/gpu_smoke.sh --out-dir DIR
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
device=cuda
for arg in "$@"; do
    if [ "$arg" = "--cpu" ]; then device=cpu; else args+=("$arg"); fi
done
exec "${PYTHON:-python}" -m sfpo_verl.smoke --device "$device" ${args[@]+"${args[@]}"}
