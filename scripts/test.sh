#!/usr/bin/env bash
# Runs the test suite. Does its own set-up on a machine with nothing installed:
# a virtual environment in .venv (ignored by git), the project with its test extra.
# `--verl 0.8.0` first runs it against that verl instead, in .venv-verl0.8.0 (tests that need
# verl 0.9.x are skipped there, each with its reason).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k reposition`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--verl" ]; then
    export SFPO_VERL_VERSION="${2:?--verl needs a version, e.g. --verl 0.8.0}"
    shift 2
fi
source scripts/setup_env.sh
exec python -m pytest "$@"
