#!/usr/bin/env bash
# A study on the CPU task: a grid's arms x seeds through `python -m sfpo_verl.main`,
# resumable, then DIR/report.md (the grid's comparisons paired by seed, with bootstrap
# intervals and sign-flip p-values; times to fixed accuracy targets), DIR/curves.png and
# DIR/report.json. Sets up .venv on first use (the one scripts/test.sh makes). Arguments go to
# `python -m sfpo_verl.cpu.study` (see its --help), e.g.
#   bash scripts/study.sh --out-dir runs/study --seeds 3
#   bash scripts/study.sh --out-dir runs/ablations --grid ablations --arms sfpo_k3_a1.0
#   bash scripts/study.sh --out-dir recipes/results/cpu_study_epochs --work-dir runs/cpu_study_epochs \
#       --grid epochs --seeds 8 --targets 0.60,0.65,0.70
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec python -m sfpo_verl.cpu.study "$@"
