"""Every verl internal the CPU layer (platform, CPU engine, `hf` rollout) relies on.

Checked on verl 0.9.1 (the CPU layer runs there) and, where noted, 0.8.0.
`tests/test_verl_seams.py` asserts each against the installed verl and fails when verl
changes one; patches/README.md lists them.

1. `verl.workers.engine.EngineRegistry._engines` (a private dict
   model_type -> backend -> device -> engine class): read to know whether the FSDP2 engines
   are registered for device "cpu" (`EngineRegistry.register` itself is public). 0.8.0, 0.9.1.
2. `verl.workers.rollout.base._ROLLOUT_REGISTRY` (a private dict (name, mode) -> class path,
   read by `get_rollout_class`): the `hf` adapter is added to it, there being no register
   function. 0.8.0, 0.9.1 (patches/README.md: "hf rollout adapter registry").
3. `verl.utils.distributed.initialize_global_process_group_ray` starts
   `"cpu:gloo,{device}:{ccl}"`, which is "cpu:gloo,cpu:gloo" (0.9.1) or "cpu:gloo,cpu:nccl"
   (0.8.0) on the CPU and fails; it skips its own start when a process group exists, so
   `init_cpu_process_group` starts plain gloo first. 0.8.0, 0.9.1.
4. `verl.plugin.platform` (`PlatformBase`, `PlatformRegistry`, `get_platform`, `set_platform`):
   public in 0.9.1, absent in 0.8.0 (verl 0.8.0 picks cuda/npu/cpu from torch itself and asks
   Ray for "NPU" when no CUDA GPU is present), which is why `trainer.device=cpu` needs 0.9.x.
5. `verl.utils.device.get_torch_device()` is `torch.cpu` on a host without CUDA in 0.8.0 (0.9.1:
   the platform's `device_module`), and verl's engine calls CUDA-style functions on it
   (`memory_reserved`, `empty_cache`, `manual_seed`, ...) that `torch.cpu` lacks:
   `complete_torch_cpu_module` adds the missing ones (no-ops; seeding seeds torch's CPU
   generator), in-process only (the update tests and benchmark). PATCH, 0.8.0.
6. `verl.utils.attention_utils._get_attention_functions` imports flash-attn's padding helpers
   (unpad/pad for the no-padding batch layout) unless on an NPU, in 0.8.0; 0.9.1 falls back to
   pure torch itself. Without flash-attn, `use_torch_padding_helpers` points it at verl 0.8.0's
   own pure-torch port of them (`verl.utils.npu_flash_attn_utils`). PATCH, 0.8.0.
"""

from __future__ import annotations

import importlib.util
import os


def engine_registered(model_type: str, backend: str, device: str) -> bool:
    """Seam 1: whether verl's EngineRegistry holds an engine for (model_type, backend, device)."""
    from verl.workers.engine import EngineRegistry

    return device in EngineRegistry._engines.get(model_type, {}).get(backend, {})


def register_rollout_adapter(name: str, mode: str, class_path: str) -> None:
    """Seam 2 (PATCH, patches/README.md): make `get_rollout_class(name, mode)` return `class_path`."""
    from verl.workers.rollout import base

    base._ROLLOUT_REGISTRY[(name, mode)] = class_path


def init_cpu_process_group() -> None:
    """Seam 3: start torch.distributed with plain gloo before verl's worker does (no-op when one
    exists), from the RANK / WORLD_SIZE / DIST_INIT_METHOD verl's Ray workers carry."""
    import torch

    if torch.distributed.is_initialized():
        return
    torch.distributed.init_process_group(
        backend="gloo",
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        init_method=os.environ.get("DIST_INIT_METHOD", None),
    )


def complete_torch_cpu_module(functions: dict) -> list[str]:
    """Seam 5 (PATCH, verl 0.8.x): add to `torch.cpu` the functions of `functions` it lacks
    (never replacing one torch has); returns the names added."""
    import torch

    added = [name for name in functions if not hasattr(torch.cpu, name)]
    for name in added:
        setattr(torch.cpu, name, functions[name])
    return added


def use_torch_padding_helpers() -> bool:
    """Seam 6 (PATCH, verl 0.8.x without flash-attn): verl's padding helpers from its pure-torch
    port instead of flash-attn. Returns whether it patched (no-op where verl falls back itself)."""
    from verl.utils import attention_utils

    if importlib.util.find_spec("flash_attn") is not None or hasattr(attention_utils, "_fallback_unpad_input"):
        return False
    from verl.utils import npu_flash_attn_utils as torch_port

    functions = (torch_port.index_first_axis, torch_port.pad_input, torch_port.rearrange, torch_port.unpad_input)
    attention_utils._get_attention_functions = lambda: functions
    return True


def has_platform_registry() -> bool:
    """Seam 4: whether this verl lets a plugin register a platform (verl.plugin.platform, 0.9.x)."""
    return importlib.util.find_spec("verl.plugin") is not None and (
        importlib.util.find_spec("verl.plugin.platform") is not None
    )
