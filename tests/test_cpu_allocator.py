"""CPU runs keep freed memory (glibc malloc settings): in every Ray process through
runtime_env, in the running process through mallopt; never on a GPU run, and off with
SFPO_MALLOC_TUNING=0."""

from __future__ import annotations

import ctypes

import pytest
from hydra import compose, initialize_config_dir

from sfpo_verl.core.trainer.config import CONFIG_DIR
from sfpo_verl.cpu.platform import allocator
from sfpo_verl.cpu.platform.allocator import SWITCH_ENV, keep_freed_memory_in_this_process
from sfpo_verl.cpu.platform.cpu_run import configure_cpu_run
from sfpo_verl.cpu.settings import cpu_overrides, merge_overrides

CPU_READY = merge_overrides(cpu_overrides(), [])  # the CPU platform's settings (their one source)
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(4 * 2**30),
    "MALLOC_TRIM_THRESHOLD_": str(64 * 2**30),
    "MALLOC_TOP_PAD_": str(2**30),
}
on_glibc = pytest.mark.skipif(allocator._glibc() is None, reason="glibc's mallopt only")


@pytest.fixture(autouse=True)
def no_malloc_env(monkeypatch):
    for name in (*MALLOC_ENV, SWITCH_ENV):
        monkeypatch.delenv(name, raising=False)


def compose_cfg(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose("sfpo_trainer", overrides=list(overrides))


def ray_env_vars(config) -> dict:
    runtime_env = config.ray_kwargs.ray_init.get("runtime_env") or {}
    return dict(runtime_env.get("env_vars") or {})


@pytest.mark.verl09(reason="trainer.device=cpu (CPU mode)")
def test_a_cpu_run_passes_the_malloc_settings_to_every_ray_process():
    config = compose_cfg(*CPU_READY)
    assert configure_cpu_run(config) is True
    env_vars = ray_env_vars(config)
    assert {name: env_vars.get(name) for name in MALLOC_ENV} == MALLOC_ENV


def test_a_gpu_run_is_left_alone(monkeypatch):
    monkeypatch.delenv("VERL_PLATFORM", raising=False)
    config = compose_cfg("trainer.device=cuda")
    assert configure_cpu_run(config) is False
    assert not set(MALLOC_ENV) & set(ray_env_vars(config))


@pytest.mark.verl09(reason="trainer.device=cpu (CPU mode)")
def test_the_switch_turns_the_settings_off(monkeypatch):
    monkeypatch.setenv(SWITCH_ENV, "0")
    config = compose_cfg(*CPU_READY)
    configure_cpu_run(config)
    assert not set(MALLOC_ENV) & set(ray_env_vars(config))
    assert keep_freed_memory_in_this_process() == {}


@pytest.mark.verl09(reason="trainer.device=cpu (CPU mode)")
def test_a_value_already_set_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_TOP_PAD_", "65536")
    config = compose_cfg(*CPU_READY, "+ray_kwargs.ray_init.runtime_env.env_vars.MALLOC_TRIM_THRESHOLD_='0'")
    configure_cpu_run(config)
    env_vars = ray_env_vars(config)
    assert env_vars["MALLOC_TOP_PAD_"] == "65536" and env_vars["MALLOC_TRIM_THRESHOLD_"] == "0"
    assert "MALLOC_TOP_PAD_" not in keep_freed_memory_in_this_process()


@on_glibc
def test_this_process_serves_large_blocks_from_its_heap_after_mallopt():
    # mallopt takes a C int: the thresholds are clamped to its maximum, never truncated.
    assert keep_freed_memory_in_this_process() == {
        "MALLOC_MMAP_THRESHOLD_": 2**31 - 1,
        "MALLOC_TRIM_THRESHOLD_": 2**31 - 1,
        "MALLOC_TOP_PAD_": 2**30,
    }
    # glibc's default would mmap a 64 MiB block (its dynamic threshold stops at 32 MiB).
    assert not _served_by_mmap(64 * 2**20)


def _served_by_mmap(size: int) -> bool:
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):  # glibc >= 2.33
        pytest.skip("mallinfo2 needs glibc 2.33")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    mmapped_before = libc.mallinfo2().hblks
    block = libc.malloc(size)
    try:
        return libc.mallinfo2().hblks > mmapped_before
    finally:
        libc.free(block)
