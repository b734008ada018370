"""The GPU install still resolves, pins what the GPU recipes run on, and scripts/setup_gpu.sh agrees.

`uv pip compile` resolves the `gpu` extra from package metadata alone (seconds; pip's dry run
downloads GBs of wheels), so a pin PyPI can no longer satisfy fails here, not on a user's GPU
machine. It needs the package index: unreachable, the tests fail and say so (CI has PyPI).
"""

import importlib.metadata
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.verl09(reason="the gpu extra pins verl 0.9.1")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
SETUP_GPU = ROOT / "scripts" / "setup_gpu.sh"
# The GPU machines' platform; the resolution must not depend on where the tests run.
RESOLVE_FOR = ["--python-version", "3.11", "--python-platform", "x86_64-unknown-linux-gnu"]
UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"  # the discard port: connection refused at once


def _uv() -> list[str]:
    beside_python = Path(sys.executable).with_name("uv")  # the test extra installs uv into the venv
    return [str(beside_python)] if beside_python.is_file() else [sys.executable, "-m", "uv"]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve_gpu_extra(*uv_options: str) -> dict[str, str]:
    """{distribution: version} that `pip install -e ".[gpu]"` would install, or a test failure."""
    command = [*_uv(), "pip", "compile", str(PYPROJECT), "--extra", "gpu", *RESOLVE_FOR]
    command += ["--no-header", "--no-annotate", "--quiet", *uv_options]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    except FileNotFoundError:
        pytest.fail("uv is not installed: install the test extra, pip install -e '.[test]'")
    if result.returncode != 0:
        pytest.fail(
            "uv could not resolve the gpu extra. Either the package index (PyPI) is unreachable from here, "
            "or a pin in pyproject.toml can no longer be satisfied; uv says:\n" + result.stderr[-3000:]
        )
    pins = (line.split("==", 1) for line in result.stdout.splitlines() if "==" in line and not line.startswith("#"))
    return {_normalize(name): version.split(";")[0].strip() for name, version in pins}


def setup_gpu_constant(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", SETUP_GPU.read_text(), re.MULTILINE)
    assert match, f"scripts/setup_gpu.sh sets no {name}"
    return match.group(1)


@pytest.fixture(scope="module")
def gpu_set() -> dict[str, str]:
    return resolve_gpu_extra()


def test_the_gpu_extra_resolves_to_the_stack_verl_pairs_with(gpu_set):
    assert gpu_set["verl"] == "0.9.1"
    assert gpu_set["vllm"] == "0.24.0"
    assert gpu_set["torch"] == "2.11.0"  # verl[vllm]==0.9.1 and vllm 0.24.0 both pin it


def test_flash_attn_is_not_in_the_gpu_extra(gpu_set):
    # pip builds flash-attn in an isolated environment without torch, where its build fails;
    # scripts/setup_gpu.sh installs it in a second step, without build isolation.
    declared = [r for r in importlib.metadata.requires("sfpo-verl") if r.endswith('extra == "gpu"')]
    assert declared, "sfpo-verl's installed metadata has no gpu extra: reinstall it, pip install -e '.[test]'"
    assert not [r for r in declared if _normalize(re.split(r"[\[<>=!~; ]", r)[0]) == "flash-attn"]
    assert "flash-attn" not in gpu_set


def test_setup_gpu_installs_the_torch_the_gpu_extra_resolves_to(gpu_set):
    assert setup_gpu_constant("TORCH_VERSION") == gpu_set["torch"]


def test_setup_gpu_installs_the_flash_attn_verl_pins_for_that_torch(gpu_set):
    # verl 0.9.1 names the flash-attn for its torch in an extra, flash-attn-cu<cuda>torch<major><minor>.
    assert importlib.metadata.version("verl") == gpu_set["verl"]
    major, minor = gpu_set["torch"].split(".")[:2]
    extra = re.compile(rf"flash-attn==(\S+); extra == \"flash-attn-cu\d+torch{major}{minor}\"")
    verl_pins = [m.group(1) for r in importlib.metadata.requires("verl") if (m := extra.fullmatch(r))]
    assert verl_pins, f"verl {gpu_set['verl']} pins no flash-attn for torch {major}.{minor}"
    assert setup_gpu_constant("FLASH_ATTN_VERSION") == verl_pins[0]


def test_an_unreachable_index_fails_the_resolution_with_a_clear_message(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="package index \\(PyPI\\) is unreachable"):
        resolve_gpu_extra("--index-url", UNREACHABLE_INDEX, "--cache-dir", str(tmp_path))


def test_setup_gpu_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(SETUP_GPU)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _run_setup_gpu(tmp_path: Path, path_dir: Path) -> tuple[subprocess.CompletedProcess, float]:
    # PATH holds only path_dir, so no nvidia-smi of the machine running the tests can answer.
    env = {"PATH": str(path_dir), "HOME": str(tmp_path), "SFPO_GPU_VENV": str(tmp_path / "venv")}
    start = time.monotonic()
    result = subprocess.run([shutil.which("bash"), str(SETUP_GPU)], capture_output=True, text=True, env=env, timeout=60)
    return result, time.monotonic() - start


def test_setup_gpu_without_nvidia_smi_stops_at_once_and_installs_nothing(tmp_path):
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result, seconds = _run_setup_gpu(tmp_path, empty_path)
    assert result.returncode != 0
    assert "no NVIDIA driver" in result.stderr and "nvidia-smi" in result.stderr
    assert seconds < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]  # no virtual environment


def test_setup_gpu_with_a_failing_driver_stops_at_once_and_installs_nothing(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    nvidia_smi = fake_bin / "nvidia-smi"
    nvidia_smi.write_text(
        '#!/bin/sh\necho "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."\nexit 9\n'
    )
    nvidia_smi.chmod(0o755)
    result, seconds = _run_setup_gpu(tmp_path, fake_bin)
    assert result.returncode != 0
    assert "NVIDIA driver does not answer" in result.stderr and "couldn't communicate" in result.stderr
    assert seconds < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]
