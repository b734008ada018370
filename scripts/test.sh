#!/usr/bin/env bash
# Runs the test suite. Does its own set-up on a machine with nothing installed:
# a virtual environment in .venv (ignored by git), the project with its test extra.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k reposition`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec python -m pytest "$@"
