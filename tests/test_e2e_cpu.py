"""End to end on the CPU: the real verl trainer (`python -m sfpo_verl.main`: Ray, agent loop,
hf rollout, reward loop, FSDP2 on gloo, checkpointing, weight sync) for both arms, a few
tiny steps each. Three trainer launches shared by all checks (~1 min of start-up each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from sfpo_verl.quickstart.run import DEFAULT_CONFIG, arm_overrides, merge_overrides
from sfpo_verl.task.build import TaskPaths, TaskSettings, build_task
from sfpo_verl.task.reward import compute_score

pytestmark = pytest.mark.slow

TINY = [
    "data.train_batch_size=4",
    "actor_rollout_ref.rollout.n=4",
    "actor_rollout_ref.actor.ppo_mini_batch_size=4",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
    # A large step, so weights visibly move between rollouts.
    "actor_rollout_ref.actor.optim.lr=1e-2",
    "trainer.val_before_train=false",
    "trainer.test_freq=-1",
]


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> TaskPaths:
    root = tmp_path_factory.mktemp("task")
    build_task(root, TaskSettings(max_operand=3, target_greedy_accuracy=0.0), log=lambda *_: None)
    return TaskPaths(root)


def train(task: TaskPaths, out: Path, arm: str, extra: list[str]) -> list[dict]:
    """One launch of the real entry point; returns verl's file-logger records."""
    verl_defaults = yaml.safe_load(DEFAULT_CONFIG.read_text())["verl"]
    overrides = arm_overrides(merge_overrides(verl_defaults, TINY + extra), arm, task, out)
    metrics = out / f"metrics_{len(list(out.glob('metrics_*')))}.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sfpo-ray-") as ray_tmp:
        env = dict(os.environ, VERL_FILE_LOGGER_PATH=str(metrics), RAY_TMPDIR=ray_tmp)
        env.pop("VERL_PLATFORM", None)  # trainer.device=cpu must turn CPU mode on by itself
        result = subprocess.run([sys.executable, "-m", "sfpo_verl.main", *overrides], env=env,
                                capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"{arm} run failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return [json.loads(line) for line in metrics.read_text().splitlines()]


def by_step(records: list[dict]) -> dict[int, dict]:
    steps: dict[int, dict] = {}
    for record in records:
        steps.setdefault(record["step"], {}).update(record["data"])
    return steps


@pytest.fixture(scope="module")
def grpo(task, tmp_path_factory):
    out = tmp_path_factory.mktemp("grpo")
    return out, by_step(train(task, out, "grpo", ["trainer.total_training_steps=2",
                                                  f"trainer.rollout_data_dir={out / 'rollouts'}"]))


@pytest.fixture(scope="module")
def sfpo(task, tmp_path_factory):
    """Two trainer ranks (FSDP2 shards, weight sync drained on both), checkpoint at step 2."""
    out = tmp_path_factory.mktemp("sfpo")
    return out, by_step(train(task, out, "sfpo", ["trainer.total_training_steps=2", "trainer.save_freq=2",
                                                  "trainer.n_gpus_per_node=2"]))


@pytest.fixture(scope="module")
def sfpo_resumed(task, sfpo):
    """Resume the SFPO run for one more step, after marking its saved switch as fired."""
    out, _ = sfpo
    state_file = out / "checkpoints" / "global_step_2" / "sfpo_state.json"
    state = json.loads(state_file.read_text())
    state["switch"]["fired"], state["switch"]["fired_at_step"] = True, 2
    state_file.write_text(json.dumps(state))
    return by_step(train(task, out, "sfpo", ["trainer.total_training_steps=3", "trainer.resume_mode=auto",
                                             "trainer.n_gpus_per_node=2"]))


def test_rewards_are_scored_from_the_generated_text(grpo):
    out, _ = grpo
    samples = [json.loads(line) for f in sorted((out / "rollouts").glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert len(samples) == 2 * 4 * 4  # steps x prompts x rollouts
    for sample in samples:
        assert sample["score"] == compute_score("sfpo_arithmetic", sample["output"], sample["gts"])
    assert any(sample["output"].strip() for sample in samples)


def test_sfpo_metrics_alpha_positive_for_sfpo_and_zero_for_grpo(grpo, sfpo):
    grpo_steps, sfpo_steps = grpo[1], sfpo[1]
    for step in (1, 2):
        assert grpo_steps[step]["sfpo/alpha"] == 0.0
        assert sfpo_steps[step]["sfpo/alpha"] > 0.0 and sfpo_steps[step]["sfpo/active"] == 1.0
        assert sfpo_steps[step]["sfpo/fast_displacement_norm"] > 0.0


def test_rollouts_after_an_update_come_from_the_updated_weights(grpo, sfpo):
    for _, steps in (grpo, sfpo):
        assert steps[1]["actor/grad_norm"] > 0  # step 1 moved the weights (lr 1e-2) ...
        # ... and step 2's rollout log-probs equal the actor's at those moved weights.
        assert steps[2]["training/rollout_probs_diff_max"] < 1e-4


def test_checkpoint_resume_continues_with_the_saved_switch_state(sfpo, sfpo_resumed):
    out, _ = sfpo
    assert (out / "checkpoints" / "global_step_2" / "sfpo_state.json").is_file()
    assert min(sfpo_resumed) == 3  # continued from the step-2 checkpoint, not from scratch
    assert sfpo_resumed[3]["sfpo/switch_fired"] == 1.0 and sfpo_resumed[3]["sfpo/alpha"] == 0.0
