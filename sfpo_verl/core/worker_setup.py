"""Set-up a device layer needs in each SFPO worker process before verl's worker starts.

The core names no device layer: a layer registers its set-up here (the CPU platform starts a
plain gloo process group, see cpu/verl_seams.py), and the SFPO worker runs every
registered set-up first thing in its constructor. Registration happens where the layer is
loaded in that process (verl 0.9.x: the `verl.plugins` entry point; verl 0.8.x:
`VERL_USE_EXTERNAL_MODULES`). Imports nothing heavy.
"""

from __future__ import annotations

from typing import Callable

_SETUPS: list[Callable[[], None]] = []


def register_worker_setup(setup: Callable[[], None]) -> None:
    """Run `setup()` in every SFPO worker before verl's worker starts (idempotent)."""
    if setup not in _SETUPS:
        _SETUPS.append(setup)


def run_worker_setup() -> None:
    for setup in _SETUPS:
        setup()
