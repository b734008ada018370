"""Exact resume (issue 15): a run killed with SIGKILL during step 4 and resumed from its step-3
checkpoint continues the run that was never interrupted: the same metrics at every later step
(wall-clock, throughput and memory aside; the rollout's log-prob diagnostics within the bound of
tests/test_reproducibility.py) and, at the end, bit-identical actor weights and optimizer state.

The same launches prove reproducibility (issue 8): the straight run and the run later killed are
two launches of one config and seed, so their steps up to the kill (the validation before
training, three SFPO or GRPO steps, each of two mini-batches of two micro-batches) log identical
metrics. Three launches per arm, shared by both checks; the two arms run at once.

What makes it exact: verl's checkpoint holds the model, optimizer, LR scheduler and data-loader
position; sfpo_state.json holds the entropy switch's window; prompt uids follow the step and
position; and the hf rollout seeds each sample from (run seed, the step of the weights it holds,
prompt, k-th request of that prompt at that step), which a resumed server recomputes, instead of a
counter that lived only in memory. Both arms: SFPO with the entropy switch armed (a 2-step window,
so the restored window decides the later steps), and GRPO.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from test_reproducibility import MUST_COMPARE, ROLLOUT_LOG_PROB_ATOL, assert_same_metrics, compared_metrics

STEPS, SAVE_STEP, KILLED_IN_STEP = 6, 3, 4
SETTINGS = {
    "trainer.total_training_steps": STEPS,
    "trainer.save_freq": SAVE_STEP,
    "trainer.val_before_train": True,
    "trainer.test_freq": STEPS,
    "algorithm.sfpo.entropy_switch.window": 2,
    # two mini-batches (the optimizer steps twice per pass, so its state matters) of two
    # micro-batches each: the order of the trajectories decides what each one holds
    "actor_rollout_ref.actor.ppo_mini_batch_size": 2,
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 4,
}
pytestmark = pytest.mark.verl09(reason="end-to-end CPU runs (trainer.device=cpu)")

LAUNCH_TIMEOUT_S = 600  # about a minute each on a quiet 2-core machine
RUN_MARKER = "SFPO_EXACT_RESUME_RUN"  # inherited by every process of a run: how the kill finds them


def overrides_for(arm: str, out: Path, task) -> list[str]:
    from sfpo_verl.smoke import Arm, arm_overrides, device_settings

    settings = {**SETTINGS, "trainer.resume_mode": "auto"}
    return arm_overrides(Arm(arm, arm, settings), device_settings("cpu", "hf"), task, out)


@contextmanager
def launched(overrides: list[str], metrics: Path, log: Path) -> Iterator[subprocess.Popen]:
    """A run of `python -m sfpo_verl.main` with its own Ray (a private temp dir, so two runs at
    once start two clusters); on exit every process of it is killed and the temp dir removed."""
    marker = uuid.uuid4().hex
    ray_tmp = tempfile.mkdtemp(prefix="sfpo-ray-")
    env = dict(os.environ, VERL_FILE_LOGGER_PATH=str(metrics), PYTHONUNBUFFERED="1", RAY_TMPDIR=ray_tmp,
               **{RUN_MARKER: marker})
    env.pop("VERL_PLATFORM", None)
    try:
        with open(log, "w") as out:
            yield subprocess.Popen([sys.executable, "-m", "sfpo_verl.main", *overrides], stdout=out,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    finally:
        kill_run(marker)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def logged_steps(metrics: Path) -> list[int]:
    if not metrics.exists():
        return []
    return [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.strip()]


def kill_run(marker: str) -> None:
    """SIGKILL every process of the run: the driver, Ray's daemons and workers (any session)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"{RUN_MARKER}={marker}".encode() in environ:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_to_end(overrides: list[str], folder: Path) -> dict[int, dict]:
    from sfpo_verl.paper.analysis.runs import read_file_logger

    folder.mkdir(parents=True, exist_ok=True)
    with launched(overrides, folder / "metrics.jsonl", folder / "train.log") as process:
        code = process.wait(timeout=LAUNCH_TIMEOUT_S)
    assert code == 0, (folder / "train.log").read_text()[-3000:]
    return read_file_logger(folder / "metrics.jsonl")


def run_and_kill_during_step(overrides: list[str], folder: Path, step: int) -> None:
    """Start the run, SIGKILL all of it a moment after step `step - 1` was logged (its checkpoint
    is written before its metrics), and check that step `step` never finished."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = folder / "metrics.jsonl"
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    with launched(overrides, metrics, folder / "train.log") as process:
        while step - 1 not in logged_steps(metrics):
            assert process.poll() is None, (folder / "train.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the run did not reach the kill point in time"
            time.sleep(0.1)
        time.sleep(0.5)  # inside step `step`: generation alone takes longer on 2 cores
    process.wait()
    assert step not in logged_steps(metrics), f"step {step} finished before the kill: kill earlier"


def final_state(checkpoints: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the actor's model and optimizer files in the last checkpoint."""
    folder = checkpoints / f"global_step_{STEPS}" / "actor"
    tensors = {}
    files = sorted(folder.glob("model_world_size_*.pt")) + sorted(folder.glob("optim_world_size_*.pt"))
    assert files, f"no model/optimizer files in {folder}: {sorted(p.name for p in folder.iterdir())}"
    for path in files:
        flat = _flatten(torch.load(path, map_location="cpu", weights_only=False), path.name)
        tensors.update(flat)
    return tensors


def _flatten(value, prefix: str) -> dict:
    if isinstance(value, torch.Tensor):
        return {prefix: value.to_local() if hasattr(value, "to_local") else value}
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}.{key}").items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}.{i}").items()}
    return {prefix: value}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    from sfpo_verl.cpu.task.build import TaskPaths, build_task
    from sfpo_verl.smoke import SMOKE_TASK

    out = tmp_path_factory.mktemp("exact_resume_task")
    build_task(out, SMOKE_TASK, log=lambda *_: None)
    return TaskPaths(out)


@dataclass
class Launches:
    arm: str
    straight: dict[int, dict]  # step -> metrics of the run never interrupted
    killed: dict[int, dict]  # the same config, killed during step KILLED_IN_STEP
    resumed: dict[int, dict]  # the killed run, resumed from its step-SAVE_STEP checkpoint
    straight_checkpoints: Path
    resumed_checkpoints: Path


ARMS = ("sfpo", "grpo")


def launch_arm(arm: str, task, root: Path) -> Launches:
    """The arm's three launches, one after another: straight; then killed and resumed."""
    from sfpo_verl.paper.analysis.runs import read_file_logger

    straight = run_to_end(overrides_for(arm, root / "straight", task), root / "straight" / arm)
    interrupted = overrides_for(arm, root / "interrupted", task)
    killed_folder = root / "interrupted" / arm / "killed"
    run_and_kill_during_step(interrupted, killed_folder, KILLED_IN_STEP)
    killed = read_file_logger(killed_folder / "metrics.jsonl")
    resumed = run_to_end(interrupted, root / "interrupted" / arm)  # resume_mode=auto: from step 3
    return Launches(arm, straight, killed, resumed, root / "straight" / arm / "checkpoints",
                    root / "interrupted" / arm / "checkpoints")


@pytest.fixture(scope="module")
def launches_by_arm(task, tmp_path_factory) -> dict[str, Future]:
    """Both arms' launches, the two arms at once: a launch keeps about one of two cores busy."""
    roots = {arm: tmp_path_factory.mktemp(f"exact_resume_{arm}") for arm in ARMS}
    with ThreadPoolExecutor(len(ARMS)) as pool:
        return {arm: pool.submit(launch_arm, arm, task, roots[arm]) for arm in ARMS}


@pytest.fixture(params=ARMS)
def launches(request, launches_by_arm) -> Launches:
    return launches_by_arm[request.param].result()  # an arm's failure fails only that arm's tests


@pytest.mark.slow
def test_two_launches_of_the_same_config_and_seed_give_identical_metrics(launches):
    first, second = launches.straight, launches.killed
    assert sorted(second) == list(range(KILLED_IN_STEP))  # step 0: the validation before training
    bounded = assert_same_metrics(first, second, steps=sorted(second))
    sfpo_only = {"sfpo/fast_displacement_norm"}
    assert set(MUST_COMPARE) - (sfpo_only if launches.arm == "grpo" else set()) <= compared_metrics(second)
    worst = max(bounded, key=bounded.get)
    print(f"rollout log-prob diagnostics: largest difference {bounded[worst]:.3g} ({worst})")
    too_far = {name: d for name, d in bounded.items() if d > ROLLOUT_LOG_PROB_ATOL}
    assert not too_far, too_far


@pytest.mark.slow
def test_a_run_killed_during_a_step_and_resumed_continues_the_same_run(launches):
    straight, resumed = launches.straight, launches.resumed
    assert min(resumed) == SAVE_STEP and max(resumed) == STEPS, sorted(resumed)  # step 3: validation on resume
    if launches.arm == "sfpo":
        assert all(straight[s]["sfpo/alpha"] > 0 for s in range(1, SAVE_STEP + 1)), "expected SFPO steps"
        assert "sfpo/entropy_zscore" in straight[STEPS], "the switch must be checking by the later steps"
    bounded = assert_same_metrics(straight, resumed, steps=list(range(SAVE_STEP + 1, STEPS + 1)))
    assert all(d <= ROLLOUT_LOG_PROB_ATOL for d in bounded.values()), bounded

    expected = final_state(launches.straight_checkpoints)
    got = final_state(launches.resumed_checkpoints)
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        if isinstance(tensor, torch.Tensor):
            assert torch.equal(tensor, got[name]), f"{name} differs after the resume"
        else:
            assert tensor == got[name], f"{name}: {tensor!r} != {got[name]!r}"
