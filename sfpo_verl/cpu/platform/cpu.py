"""A verl platform for the CPU and the registration of verl's FSDP2 engine on it."""

from __future__ import annotations

import contextlib
import os
import types

import torch

from sfpo_verl.core.worker_setup import register_worker_setup
from sfpo_verl.cpu.verl_seams import (
    complete_torch_cpu_module,
    engine_registered,
    has_platform_registry,
    init_cpu_process_group,
    use_torch_padding_helpers,
)

CPU_PLATFORM_NAME = "cpu"


def _noop(*args, **kwargs):
    return None


def _zero(*args, **kwargs):
    return 0


# verl calls CUDA-style device-module functions (memory stats, cache, seeding) through
# `get_torch_device()`; `torch.cpu` lacks most of them. On the CPU they are no-ops,
# except seeding, which must seed the one (CPU) generator.
_cpu_device_module = types.SimpleNamespace(
    **{name: getattr(torch.cpu, name) for name in ("is_available", "synchronize", "device_count", "Stream")},
    current_device=lambda: "cpu",
    set_device=_noop,
    manual_seed=torch.manual_seed,
    manual_seed_all=torch.manual_seed,
    # Checkpoint resume restores the device RNG under the device name, "cpu": torch's own.
    get_rng_state=torch.get_rng_state,
    set_rng_state=torch.set_rng_state,
    empty_cache=_noop,
    memory_allocated=_zero,
    memory_reserved=_zero,
    max_memory_allocated=_zero,
    max_memory_reserved=_zero,
    reset_peak_memory_stats=_noop,
    mem_get_info=lambda *a, **k: (0, 0),
    get_device_name=lambda *a, **k: "cpu",
)


def _platform_class():
    from verl.plugin.platform import PlatformBase

    class PlatformCPU(PlatformBase):
        """verl's device abstraction answered for the CPU (torch device "cpu", gloo collectives)."""

        @property
        def device_name(self) -> str:
            return "cpu"

        @property
        def vendor_name(self) -> str:
            return "cpu"

        @property
        def device_module(self):
            return _cpu_device_module

        def is_available(self) -> bool:
            return True

        def is_platform_available(self, use_smi_check=False) -> bool:
            # Never auto-detected: CPU mode is asked for with VERL_PLATFORM=cpu.
            return False

        def current_device(self):
            # verl moves modules with `.to(get_device_id())`: it must be a valid torch device.
            return "cpu"

        def device_count(self) -> int:
            return 1

        def set_device(self, device_index) -> None:
            return None

        def synchronize(self, device_index=None) -> None:
            return None

        def manual_seed(self, seed: int) -> None:
            torch.manual_seed(seed)

        def manual_seed_all(self, seed: int) -> None:
            torch.manual_seed(seed)

        def set_allocator_settings(self, settings: str) -> None:
            return None

        def empty_cache(self) -> None:
            return None

        def get_device_capability(self, device_index: int = 0):
            return (None, None)

        def communication_backend_name(self) -> str:
            return "gloo"

        def visible_devices_envvar(self) -> str:
            return "SFPO_VISIBLE_CPUS"

        def nvtx_range(self, msg: str):
            return contextlib.nullcontext()

        def profiler_start(self) -> None:
            return None

        def profiler_stop(self) -> None:
            return None

        def ray_resource_name(self) -> str:
            # verl's resource check (single_controller/ray/base.py) counts only "GPU"/"NPU"
            # and its placement bundles already hold a "CPU" entry, so each CPU worker
            # claims one *logical* Ray GPU (ray.init(num_gpus=N) on a GPU-less host).
            return "GPU"

        def ray_noset_envvars(self) -> list[str]:
            return []

        def is_ipc_supported(self) -> bool:
            return False

        def cudart(self):
            return None

    return PlatformCPU


PlatformCPU = None  # the registered class, set by register(): building it needs verl


def cpu_platform_selected() -> bool:
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == CPU_PLATFORM_NAME


def _start_process_group_on_cpu() -> None:
    """The SFPO worker's set-up in CPU mode: verl would start "cpu:gloo,cpu:gloo", which fails."""
    if cpu_platform_selected():
        init_cpu_process_group()


def register() -> None:
    """Register the CPU platform with verl, and the CPU FSDP2 engine when CPU mode is on.

    Idempotent. The platform goes first: importing verl's engine modules already asks for
    the platform, which verl resolves once per process and caches. On a verl without a
    platform registry (0.8.x, which uses torch.cpu as the device module on a CPU host) the
    worker set-up is registered and torch.cpu gets the device functions verl calls.
    """
    global PlatformCPU
    register_worker_setup(_start_process_group_on_cpu)
    if not has_platform_registry():
        complete_torch_cpu_module(vars(_cpu_device_module))
        use_torch_padding_helpers()
        if cpu_platform_selected():
            register_cpu_engine()
        return
    from verl.plugin.platform import PlatformRegistry

    if PlatformRegistry.get(CPU_PLATFORM_NAME) is None:
        PlatformRegistry.register(platform=CPU_PLATFORM_NAME)(_platform_class())
    PlatformCPU = PlatformRegistry.get(CPU_PLATFORM_NAME)
    if cpu_platform_selected():
        register_cpu_engine()


def register_cpu_engine() -> None:
    """Make verl's FSDP2 engines available on device "cpu" (idempotent): the language-model
    engine (actor, reference) and the value-model engine (critic).

    FSDP1 is not registered: its sync_module_states needs an accelerator.
    """
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

    for model_type, engine_cls in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        if not engine_registered(model_type, "fsdp2", CPU_PLATFORM_NAME):
            EngineRegistry.register(model_type=model_type, backend="fsdp2", device=CPU_PLATFORM_NAME)(engine_cls)
