#!/usr/bin/env bash
# CPU quickstart: GRPO vs SFPO end to end through `python -m sfpo_verl.main`, on a tiny
# model and task built locally. Sets up .venv on first use (the one scripts/test.sh makes),
# builds the task if absent, trains both arms, and writes curves.png and summary.md to
# runs/quickstart/. Defaults: sfpo_verl/cpu/quickstart/quickstart.yaml, over the CPU
# platform's settings in sfpo_verl/cpu/platform/cpu_settings.yaml. Extra arguments are verl
# overrides, e.g. `bash scripts/quickstart.sh trainer.total_training_steps=40`, or `--config my.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec python -m sfpo_verl.cpu.quickstart.run "$@"
