"""verl loads this package through its `verl.plugins` entry points in every process that
imports verl, and swallows load failures at DEBUG level: check that it really happened."""

import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

pytestmark = pytest.mark.verl09(reason="the verl.plugins entry point")


def test_entry_point_is_declared():
    (entry,) = [ep for ep in entry_points(group="verl.plugins") if ep.name == "sfpo_verl"]
    assert entry.value == "sfpo_verl.plugin"


def test_importing_verl_alone_loads_the_plugin_and_registers_the_cpu_platform():
    code = (
        "import sys, verl\n"
        "from verl.plugin.platform import PlatformRegistry\n"
        "from verl.workers.engine import EngineRegistry\n"
        "assert 'sfpo_verl.plugin' in sys.modules, 'plugin not loaded'\n"
        "assert PlatformRegistry.get('cpu') is not None, 'cpu platform not registered'\n"
        "assert 'cpu' in EngineRegistry._engines['language_model']['fsdp2'], 'cpu engine not registered'\n"
        "from verl.utils.device import get_device_name\n"
        "assert get_device_name() == 'cpu', get_device_name()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "VERL_PLATFORM": "cpu"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
