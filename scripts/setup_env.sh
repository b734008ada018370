#!/usr/bin/env bash
# Sourced by the project's entry scripts: creates .venv on first use and installs the
# project with its test extra; later runs only re-install when pyproject.toml changed.
set -euo pipefail
PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$PROJECT_ROOT/.venv"
STAMP="$VENV/.sfpo_installed"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

want="$(sha256sum "$PROJECT_ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "[setup] installing sfpo-verl and its test dependencies (first run takes a few minutes)"
    python -m pip install --quiet --upgrade pip
    # torch first and pinned: on the CPU machines this is the CPU build on disk; an
    # unpinned torch would pull a multi-GB CUDA build as a dependency of verl.
    if ! python -c "import torch" >/dev/null 2>&1; then
        python -m pip install --quiet "torch==${SFPO_TORCH_VERSION:-2.13.0}"
    fi
    python -m pip install --quiet -e "$PROJECT_ROOT[test]"
    echo "$want" > "$STAMP"
fi
