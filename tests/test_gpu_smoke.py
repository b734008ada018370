"""The GPU smoke run (`bash scripts/gpu_smoke.sh`) on a CUDA machine: `pytest -m gpu`.
Skipped, with the reason, where torch sees no CUDA device. The same harness and checks run on
the CPU in tests/test_e2e_cpu.py."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: torch sees none"),
]

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("grpo", "sfpo", "sfpo_offload", "sfpo_fsdp1", "sfpo_resume")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("smoke_cuda")
    # vLLM is verl's GPU rollout; without it the harness runs every other check on the hf rollout.
    rollout = "vllm" if importlib.util.find_spec("vllm") else "hf"
    result = subprocess.run(["bash", "scripts/gpu_smoke.sh", "--rollout", rollout, "--out-dir", str(out)], cwd=ROOT,
                            env=dict(os.environ, PYTHON=sys.executable), capture_output=True, text=True, timeout=3600)
    report = json.loads((out / "smoke_report.json").read_text())
    report["stdout"] = result.stdout
    return report


@pytest.mark.parametrize("arm", ARMS)
def test_every_check_of_the_arm_passes(smoke, arm):
    checks = smoke["arms"][arm]["checks"]
    assert "launch" not in checks, checks.get("launch")
    failed = {name: c["detail"] for name, c in checks.items() if not c["ok"]}
    assert not failed, failed


def test_the_anchor_is_on_the_gpu_only_with_anchor_device_param(smoke):
    assert smoke["arms"]["sfpo"]["anchor_accelerator_bytes"] == smoke["arms"]["sfpo"]["anchor_bytes"] > 0
    assert smoke["arms"]["sfpo_offload"]["anchor_accelerator_bytes"] == 0
    assert all(smoke["arms"][arm]["peak_memory_allocated_gb"] > 0 for arm in ARMS)
