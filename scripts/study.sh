#!/usr/bin/env bash
# GRPO vs SFPO over several seeds on the CPU task, with error bars: arms x seeds through
# `python -m sfpo_verl.main`, resumable, then DIR/report.md, DIR/curves.png, DIR/report.json.
# Sets up .venv on first use (the one scripts/test.sh makes). Arguments go to
# `python -m sfpo_verl.cpu.study`, e.g.
#   bash scripts/study.sh --out-dir runs/study --seeds 3
#   bash scripts/study.sh --out-dir runs/ablations --grid ablations
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec python -m sfpo_verl.cpu.study "$@"
