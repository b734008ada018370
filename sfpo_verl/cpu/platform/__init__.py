"""CPU as a verl device, for tests and laptop runs (verl 0.9.1 has no CPU platform).

Selected with ``VERL_PLATFORM=cpu`` in every process (the variable is inherited by Ray
workers); never auto-detected, so a GPU machine is unaffected.
"""

from sfpo_verl.cpu.platform.cpu import (
    CPU_PLATFORM_NAME,
    cpu_platform_selected,
    init_cpu_process_group,
    register,
    register_cpu_engine,
)

__all__ = [
    "CPU_PLATFORM_NAME",
    "cpu_platform_selected",
    "init_cpu_process_group",
    "register",
    "register_cpu_engine",
]
