#!/usr/bin/env bash
# Sourced by the project's entry scripts: creates a virtual environment on first use and
# installs the project with its test extra; later runs only re-install when pyproject.toml
# (or the verl version asked for) changed.
#
# Default: .venv with the newest verl pyproject.toml allows (0.9.x).
# SFPO_VERL_VERSION=0.8.0 (what `bash scripts/test.sh --verl 0.8.0` sets): .venv-verl0.8.0
# with that verl, plus the pins verl 0.8.0 needs to import on a CPU (below).
set -euo pipefail
PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERL_VERSION="${SFPO_VERL_VERSION:-}"
if [ -n "$VERL_VERSION" ]; then
    VENV="$PROJECT_ROOT/.venv-verl$VERL_VERSION"
else
    VENV="$PROJECT_ROOT/.venv"
fi
STAMP="$VENV/.sfpo_installed"
PYTHON="${PYTHON:-python3}"

# What a given verl needs besides pyproject.toml's dependencies (pip has no environment
# marker for "the verl that was picked", so the pins live here).
VERL_PINS=()
case "$VERL_VERSION" in
    "") ;;
    0.8.*)
        # verl 0.8.0's core dependencies lack uvicorn, fastapi and cachetools (its vLLM extra
        # brings them) and pin numpy<2, while datasets 5 and pyarrow>=22 need numpy>=2 (pyarrow's
        # floor is a run-time check no resolver sees); einops: verl's pure-torch padding helpers,
        # used without flash-attn (sfpo_verl/cpu/verl_seams.py, seam 6).
        VERL_PINS=("verl==$VERL_VERSION" uvicorn fastapi cachetools "datasets<5" "pyarrow<22" einops) ;;
    *)
        VERL_PINS=("verl==$VERL_VERSION") ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

want="$(cat "$PROJECT_ROOT/pyproject.toml" <(echo "verl=$VERL_VERSION") | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "[setup] installing sfpo-verl ${VERL_VERSION:+(verl $VERL_VERSION) }and its test dependencies (first run takes a few minutes)"
    python -m pip install --quiet --upgrade pip
    # torch first and pinned: on the CPU machines this is the CPU build on disk; an
    # unpinned torch would pull a multi-GB CUDA build as a dependency of verl.
    if ! python -c "import torch" >/dev/null 2>&1; then
        python -m pip install --quiet "torch==${SFPO_TORCH_VERSION:-2.13.0}"
    fi
    python -m pip install --quiet -e "$PROJECT_ROOT[test]" ${VERL_PINS[@]+"${VERL_PINS[@]}"}
    echo "$want" > "$STAMP"
fi
