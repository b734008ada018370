#!/usr/bin/env bash
# Runs the test suite. Does its own set-up on a machine with nothing installed:
# a virtual environment in .venv (ignored by git), the project with its test extra.
# `--verl 0.8.0` first runs it against that verl instead, in .venv-verl0.8.0 (tests that need
# verl 0.9.x are skipped there, each with its reason).
# Extra arguments go to pytest (both phases below), e.g. `bash scripts/test.sh -k reposition`.
#
# Two phases, one exit status. First the tests that launch no trainer, on two pytest workers
# (pytest-xdist; a module stays on one worker, so its fixtures run once): one at a time, they
# leave the second core idle much of the time. Then the trainer launches (marked slow), one
# module at a time: each module runs its own launches two at once, which fills both cores, and a
# third launch beside them can miss Ray's fixed 30 s start-up window.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--verl" ]; then
    export SFPO_VERL_VERSION="${2:?--verl needs a version, e.g. --verl 0.8.0}"
    shift 2
fi
source scripts/setup_env.sh
set +e
python -m pytest -n 2 --dist loadfile --phase fast "$@"
fast=$?
[ "$fast" -eq 2 ] && exit 2  # interrupted (Ctrl-C): stop here
python -m pytest --phase slow "$@"
slow=$?
# 5 is pytest's "no tests collected": fine for one phase (a selection may hold only one kind)
if [ "$fast" -eq 5 ] && [ "$slow" -eq 5 ]; then exit 5; fi
for code in "$fast" "$slow"; do
    if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then exit "$code"; fi
done
exit 0
