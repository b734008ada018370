"""Loaded by verl in every process that imports verl (entry-point group ``verl.plugins``).

Registers what must exist in every Ray process before verl looks it up: the CPU
platform and CPU FSDP2 engine (used only when ``VERL_PLATFORM=cpu``), and the ``hf``
rollout backend (``actor_rollout_ref.rollout.name=hf``).
"""

from sfpo_verl.cpu.platform import register as _register_platform
from sfpo_verl.cpu.rollout import register as _register_rollout

_register_platform()
_register_rollout()
LOADED = True
