"""End to end on the CPU: the real verl trainer (`python -m sfpo_verl.main`: Ray, agent loop,
hf rollout, reward loop, FSDP2 on gloo, checkpointing, weight sync), run through the smoke
harness that the GPU smoke run uses (`bash scripts/gpu_smoke.sh --cpu`): the same arms and the
same checks on either device. Four trainer launches (~1 min of start-up each, two at a time),
shared by all tests here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sfpo_verl.smoke import STEPS

pytestmark = [pytest.mark.slow, pytest.mark.verl09(reason="end-to-end CPU runs (trainer.device=cpu)")]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("smoke_cpu")
    env = dict(os.environ, PYTHON=sys.executable)
    result = subprocess.run(["bash", "scripts/gpu_smoke.sh", "--cpu", "--out-dir", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=1500)
    report_file = out / "smoke_report.json"
    if not report_file.exists():
        raise AssertionError(f"the smoke run wrote no report:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    report = json.loads(report_file.read_text())
    report["exit_code"], report["stdout"] = result.returncode, result.stdout
    return report


def check(report: dict, arm: str, name: str) -> str:
    entry = report["arms"][arm]
    launch = entry["checks"].get("launch")
    assert launch is None, launch["detail"]
    result = entry["checks"][name]
    assert result["ok"], f"{arm}/{name}: {result['detail']}"
    return result["detail"]


def test_the_smoke_script_passes_on_the_cpu_and_says_what_it_skipped(smoke):
    assert smoke["exit_code"] == 0 and smoke["ok"], smoke["stdout"][-4000:]
    assert set(smoke["arms"]) == {"grpo", "sfpo", "sfpo_offload", "sfpo_resume"}
    assert "FSDP1" in smoke["skipped"]["sfpo_fsdp1"]
    for line in ("PASS  sfpo/alpha", "all checks passed", "| sfpo_offload |"):
        assert line in smoke["stdout"]


def test_rewards_are_scored_from_the_generated_text(smoke):
    check(smoke, "grpo", "rewards")


@pytest.mark.parametrize("arm", ["grpo", "sfpo", "sfpo_offload"])
def test_alpha_is_positive_for_sfpo_and_zero_for_grpo(smoke, arm):
    check(smoke, arm, "alpha")


@pytest.mark.parametrize("arm", ["grpo", "sfpo", "sfpo_offload"])
def test_rollouts_after_an_update_come_from_the_updated_weights(smoke, arm):
    check(smoke, arm, "weight_sync")


@pytest.mark.parametrize("arm", ["sfpo", "sfpo_offload"])
def test_anchor_is_one_copy_and_never_in_accelerator_memory_on_the_cpu(smoke, arm):
    check(smoke, arm, "anchor_bytes")


def test_each_of_two_ranks_anchors_only_its_own_shard(smoke):
    # sfpo runs two FSDP2 ranks, sfpo_offload one: a rank's anchor is its local shard, not the model
    assert smoke["arms"]["sfpo"]["anchor_bytes"] < smoke["arms"]["sfpo_offload"]["anchor_bytes"]


def test_checkpoint_resume_continues_with_the_saved_switch_state(smoke):
    check(smoke, "sfpo_resume", "resume")
    check(smoke, "sfpo_resume", "switch_state_restored")


def test_every_arm_reports_its_phase_times(smoke):
    for arm, entry in smoke["arms"].items():
        assert entry["phases_s"]["timing_s/step"] > 0, arm
    for arm in ("sfpo", "sfpo_offload"):
        phases = smoke["arms"][arm]["phases_s"]
        assert all(phases[f"sfpo/timing_s/{p}"] > 0 for p in ("snapshot", "fast", "reposition", "slow")), arm
    assert smoke["steps"] == STEPS
