"""Crash-safe SFPO state: a run killed (SIGKILL) at any moment of checkpointing resumes with the
switch state of the checkpoint it resumes from, or stops with a clear message; never a crash on a
truncated file, never a silent restart of the switch.

The killed run is a child process (this file run as a script) driving SFPOTrainer's real
`_save_checkpoint` with verl's part replaced by a stand-in that writes what verl writes, in verl's
order (model files, then the tracker `latest_checkpointed_iteration.txt`). The resume uses
verl's own tracker reader (`find_latest_ckpt_path`) and SFPOTrainer's real `_load_checkpoint`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
pytest.importorskip("verl.trainer.ppo.v1", reason="needs verl 0.9.x: SFPOTrainer on the v1 trainer's checkpoint path")
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

from sfpo_verl.core.trainer.config import CONFIG_DIR
from sfpo_verl.core.trainer.sfpo_trainer import STATE_FILE, SFPOStateError, SFPOTrainer, build_controller

# The entropies the child feeds its switch (window 3): it fires at step 5, after the last save.
ENTROPIES = [1.0, 1.01, 0.99, 1.0, 3.0]
SAVE_STEPS = (2, 4)
# Where the child kills itself while saving the step-4 checkpoint, and the step a resume lands on.
FAULTS = {
    "state_temp_file_written": 2,  # the new state is a temporary file, not yet renamed
    "state_written": 2,  # the state is in place, verl has saved nothing yet
    "model_saved": 2,  # verl saved the model but not its tracker
    "tracker_written": 4,  # verl's tracker names step 4: the checkpoint is complete
}


def make_trainer(checkpoints: Path) -> SFPOTrainer:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        config = compose("sfpo_trainer", overrides=[f"trainer.default_local_dir={checkpoints}",
                                                    "algorithm.sfpo.entropy_switch.window=3"])
    trainer = SFPOTrainer.__new__(SFPOTrainer)  # verl's set-up (workers) is not needed here
    trainer.config = config
    trainer.sfpo = build_controller(config.algorithm)
    return trainer


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def verl_save(fault: str | None):
    """What verl's _save_checkpoint writes, in its order, with a kill point between the writes."""

    def save(self):
        root = self.config.trainer.default_local_dir
        folder = Path(root) / f"global_step_{self.global_steps}"
        if fault == "state_written":
            kill_self()
        (folder / "actor").mkdir(parents=True, exist_ok=True)
        (folder / "actor" / "model.pt").write_bytes(b"weights")
        if fault == "model_saved":
            kill_self()
        (Path(root) / "latest_checkpointed_iteration.txt").write_text(str(self.global_steps))
        if fault == "tracker_written":
            kill_self()

    return save


def verl_load(self):
    """What verl's _load_checkpoint decides: the step its tracker names (0 without one)."""
    folder = find_latest_ckpt_path(self.config.trainer.default_local_dir)
    self.global_steps = 0 if folder is None else int(folder.split("global_step_")[-1])


def train_and_checkpoint(checkpoints: Path, fault: str | None) -> None:
    """The child: feed the switch step by step, checkpoint at SAVE_STEPS, killed at `fault` in
    the last save. Without a fault it records the state each checkpoint holds."""
    PPOTrainerSync._save_checkpoint = lambda self: None  # replaced per save below
    trainer = make_trainer(checkpoints)
    states = {}
    real_replace = os.replace
    for step, entropy in enumerate(ENTROPIES, 1):
        trainer.global_steps = step
        trainer.sfpo.observe_entropy(step, entropy)
        if step in SAVE_STEPS:
            last = step == SAVE_STEPS[-1]
            PPOTrainerSync._save_checkpoint = verl_save(fault if last else None)
            if last and fault == "state_temp_file_written":
                os.replace = lambda *args: kill_self()
            trainer._save_checkpoint()
            os.replace = real_replace
            states[step] = trainer.sfpo.state_dict()
    (checkpoints / "states.json").write_text(json.dumps(states))


def run_child(checkpoints: Path, fault: str | None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, __file__, str(checkpoints), fault or ""], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def saved_states(tmp_path_factory) -> dict[int, dict]:
    """The switch state each checkpoint holds, from a run that is not killed."""
    checkpoints = tmp_path_factory.mktemp("reference")
    result = run_child(checkpoints, None)
    assert result.returncode == 0, result.stderr[-3000:]
    return {int(step): state for step, state in json.loads((checkpoints / "states.json").read_text()).items()}


def resume(checkpoints: Path, monkeypatch) -> SFPOTrainer:
    monkeypatch.setattr(PPOTrainerSync, "_load_checkpoint", verl_load)
    trainer = make_trainer(checkpoints)
    trainer._load_checkpoint()
    return trainer


@pytest.mark.parametrize("fault", FAULTS)
def test_a_run_killed_while_checkpointing_resumes_with_that_checkpoints_switch_state(
    tmp_path, monkeypatch, saved_states, fault
):
    result = run_child(tmp_path, fault)
    assert result.returncode == -signal.SIGKILL, f"the child was not killed at {fault}: {result.stderr[-3000:]}"

    trainer = resume(tmp_path, monkeypatch)
    assert trainer.global_steps == FAULTS[fault]
    assert trainer.sfpo.state_dict() == saved_states[FAULTS[fault]]
    assert not list(tmp_path.glob(f"global_step_{FAULTS[fault]}/*.tmp"))  # a complete checkpoint holds no temp file


def test_the_reference_states_differ_between_checkpoints(saved_states):
    # Otherwise the test above could not tell the two checkpoints' states apart.
    assert saved_states[2] != saved_states[4]


@pytest.mark.parametrize("content", ["", '{"global_step": 4, "sw', "[]", '{"global_step": 4}'])
def test_an_unreadable_state_file_stops_the_resume_with_a_clear_message(tmp_path, monkeypatch, content):
    folder = tmp_path / "global_step_4"
    folder.mkdir()
    (folder / STATE_FILE).write_text(content)
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("4")
    with pytest.raises(SFPOStateError, match=rf"{STATE_FILE}.*resume_from_path"):
        resume(tmp_path, monkeypatch)


def test_a_state_file_of_another_step_stops_the_resume(tmp_path, monkeypatch, saved_states):
    folder = tmp_path / "global_step_4"
    folder.mkdir()
    (folder / STATE_FILE).write_text(json.dumps({"global_step": 2, **saved_states[2]}))
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("4")
    with pytest.raises(SFPOStateError, match="step 2"):
        resume(tmp_path, monkeypatch)


if __name__ == "__main__":
    train_and_checkpoint(Path(sys.argv[1]), sys.argv[2] or None)
