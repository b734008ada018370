"""Child processes started together: a child that imports verl spends about ten seconds of one
core doing so, and the suite's machine has two, so independent children overlap instead of
queueing."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Hashable, Sequence
from typing import Any


def run_at_once(commands: dict[Hashable, Sequence[str]], timeout_s: float, envs: dict[Hashable, dict] | None = None,
                **popen: Any) -> dict[Hashable, subprocess.CompletedProcess]:
    """Start every command, then wait for each (text output captured; `envs` holds the
    environments of the commands that need their own, `popen` goes to every Popen). Children
    still running `timeout_s` after the start are killed and TimeoutExpired is raised: a child
    killed here must not pass for one that killed itself (test_checkpoint_faults.py)."""
    started = {key: subprocess.Popen(list(args), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=(envs or {}).get(key), **popen)
               for key, args in commands.items()}
    deadline = time.monotonic() + timeout_s
    finished = {}
    try:
        for key, child in started.items():
            stdout, stderr = child.communicate(timeout=max(0.0, deadline - time.monotonic()))
            finished[key] = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    finally:
        for child in started.values():
            if child.poll() is None:
                child.kill()
                child.communicate()
    return finished
