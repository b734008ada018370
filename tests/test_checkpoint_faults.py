"""Crash-safe SFPO state: a run killed (SIGKILL) at any moment of checkpointing resumes with the
switch state of the checkpoint it resumes from, or stops with a clear message; never a crash on a
truncated file, never a silent restart of the switch.

The killed run is a child process (this file run as a script) driving SFPOTrainer's real
`_save_checkpoint` with verl's part replaced by a stand-in that writes what verl writes, in verl's
order (model files, then the tracker `latest_checkpointed_iteration.txt`). The resume uses
verl's own tracker reader (`find_latest_ckpt_path`) and SFPOTrainer's real `_load_checkpoint`.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from processes import run_at_once
from ray.exceptions import RayTaskError

pytest.importorskip("verl.trainer.ppo.v1", reason="needs verl 0.9.x: SFPOTrainer on the v1 trainer's checkpoint path")
from verl.trainer.ppo.checkpoint_callback import build_checkpoint_callback  # noqa: E402
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync  # noqa: E402
from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path  # noqa: E402

from sfpo_verl import main as sfpo_main  # noqa: E402
from sfpo_verl.core.trainer.config import CONFIG_DIR  # noqa: E402
from sfpo_verl.core.trainer.resume_point import TRACKER_FILE, CheckpointSaveError  # noqa: E402
from sfpo_verl.core.trainer.sfpo_trainer import STATE_FILE, SFPOStateError, SFPOTrainer, build_controller  # noqa: E402

# The entropies the child feeds its switch (window 3): it fires at step 5, after the last save.
ENTROPIES = [1.0, 1.01, 0.99, 1.0, 3.0]
SAVE_STEPS = (2, 4)
# Where the child kills itself while saving the step-4 checkpoint, and the step a resume lands on.
FAULTS = {
    "state_temp_file_written": 2,  # the new state is a temporary file, not yet renamed
    "state_written": 2,  # the state is in place, verl has saved nothing yet
    "model_saved": 2,  # verl saved the model but not its tracker
    "tracker_emptied": 2,  # verl opened its tracker for writing (emptying it), wrote nothing yet
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
        with open(Path(root) / "latest_checkpointed_iteration.txt", "w") as tracker:
            if fault == "tracker_emptied":
                kill_self()
            tracker.write(str(self.global_steps))
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


@pytest.fixture(scope="module")
def children(tmp_path_factory) -> dict[str | None, tuple[Path, subprocess.CompletedProcess]]:
    """Every child, by fault (None: the run not killed), with its checkpoint folder; all at once."""
    folders = {fault: tmp_path_factory.mktemp(fault or "reference") for fault in [None, *FAULTS]}
    results = run_at_once({fault: [sys.executable, __file__, str(folder), fault or ""]
                           for fault, folder in folders.items()}, timeout_s=300)
    return {fault: (folders[fault], results[fault]) for fault in folders}


@pytest.fixture(scope="module")
def saved_states(children) -> dict[int, dict]:
    """The switch state each checkpoint holds, from a run that is not killed."""
    checkpoints, result = children[None]
    assert result.returncode == 0, result.stderr[-3000:]
    return {int(step): state for step, state in json.loads((checkpoints / "states.json").read_text()).items()}


def resume(checkpoints: Path, monkeypatch) -> SFPOTrainer:
    monkeypatch.setattr(PPOTrainerSync, "_load_checkpoint", verl_load)
    trainer = make_trainer(checkpoints)
    trainer._load_checkpoint()
    return trainer


@pytest.mark.parametrize("fault", FAULTS)
def test_a_run_killed_while_checkpointing_resumes_with_that_checkpoints_switch_state(
    children, monkeypatch, saved_states, fault
):
    checkpoints, result = children[fault]
    assert result.returncode == -signal.SIGKILL, f"the child was not killed at {fault}: {result.stderr[-3000:]}"

    trainer = resume(checkpoints, monkeypatch)
    assert trainer.global_steps == FAULTS[fault]
    assert trainer.sfpo.state_dict() == saved_states[FAULTS[fault]]
    assert not list(checkpoints.glob(f"global_step_{FAULTS[fault]}/*.tmp"))  # a complete checkpoint holds no temp file
    assert not list(checkpoints.glob("*.before_save"))  # the copy from before the save: put back, or stale and gone


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


# --- Write failures: a disk that fills while saving step 4 leaves step 2 the resume point and
# stops the run with one line. The save is verl's own _save_checkpoint, on stand-ins for the actor
# workers (Ray) and the dataloader.

def no_space(path: str | None = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([path] if path else []))


def torch_no_space() -> RuntimeError:
    """What torch.save raises when the disk fills (its zip writer), found by saving to /dev/full."""
    return RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


class ActorWorkers:
    """verl's actor worker group as the driver sees it: save_checkpoint writes the model files, or
    fails the way a worker's error reaches the driver (Ray's error class carrying it as `cause`)."""

    def __init__(self):
        self.failure: Exception | None = None

    def save_checkpoint(self, local_path, hdfs_path, global_step, max_ckpt_to_keep=None):
        os.makedirs(local_path, exist_ok=True)
        Path(local_path, "model_world_size_1_rank_0.pt").write_bytes(b"weights")
        if self.failure is not None:
            raise RayTaskError("save_checkpoint", "Traceback (in the worker)", self.failure).as_instanceof_cause()


class Dataloader:
    def state_dict(self):
        return {"epoch": 0}


def saving_trainer(checkpoints: Path) -> SFPOTrainer:
    trainer = make_trainer(checkpoints)
    trainer.actor_rollout_wg = ActorWorkers()
    trainer.train_dataloader = Dataloader()
    trainer.use_critic = False
    trainer.trainer_mode = "sync"
    trainer.checkpoint_callback = build_checkpoint_callback(trainer.config)
    return trainer


def fill_disk_on(monkeypatch, name: str) -> None:
    """Writes to files named `name` fail as on a full disk; opening one for writing still empties it."""
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if os.path.basename(str(file)) == name and "w" in mode:
            handle.write = lambda *_: (_ for _ in ()).throw(no_space())
        return handle

    monkeypatch.setattr(builtins, "open", open_)


def torch_save_fills_disk(obj, path):
    Path(path).write_bytes(b"PK half a file")
    raise torch_no_space()


def callback_fails(**kwargs):
    raise no_space("/remote/copy/global_step_4")


def fail_model_save(failure: Exception):
    return lambda trainer, monkeypatch: setattr(trainer.actor_rollout_wg, "failure", failure)


# fault -> (its set-up, the error and path the message names, the checkpoint a resume then loads)
WRITE_FAULTS = {
    "sfpo state": (lambda trainer, monkeypatch: fill_disk_on(monkeypatch, f"{STATE_FILE}.tmp"),
                   "OSError(28, 'No space left on device') writing {root}/global_step_4/sfpo_state.json", 2),
    "model (Ray worker)": (fail_model_save(no_space("/ckpt/global_step_4/actor/optim.pt")),
                           "OSError(28, 'No space left on device') writing /ckpt/global_step_4/actor/optim.pt", 2),
    "model (torch in a Ray worker)": (fail_model_save(torch_no_space()),
                                      f"{torch_no_space()!r} writing {{root}}/global_step_4", 2),
    "dataloader state": (lambda trainer, monkeypatch: monkeypatch.setattr(torch, "save", torch_save_fills_disk),
                         f"{torch_no_space()!r} writing {{root}}/global_step_4", 2),
    "tracker": (lambda trainer, monkeypatch: fill_disk_on(monkeypatch, TRACKER_FILE),
                "OSError(28, 'No space left on device') writing {root}/latest_checkpointed_iteration.txt", 2),
    "after the tracker (verl's callback)": (
        lambda trainer, monkeypatch: monkeypatch.setattr(trainer.checkpoint_callback, "on_save", callback_fails),
        "OSError(28, 'No space left on device') writing /remote/copy/global_step_4", 4),
}


def train_until_the_step_4_save(trainer: SFPOTrainer, fault, monkeypatch) -> None:
    """Steps 1-4 of ENTROPIES, saving at 2 and 4 (as the killed child does), with `fault` set up
    for the step-4 save."""
    for step, entropy in enumerate(ENTROPIES[:4], 1):
        trainer.global_steps = step
        trainer.sfpo.observe_entropy(step, entropy)
        if step in SAVE_STEPS:
            if step == SAVE_STEPS[-1]:
                fault(trainer, monkeypatch)
            trainer._save_checkpoint()


@pytest.mark.parametrize("fault", WRITE_FAULTS)
def test_a_save_that_fails_keeps_the_last_complete_checkpoint(tmp_path, monkeypatch, saved_states, fault):
    set_up, error, resume_step = WRITE_FAULTS[fault]
    trainer = saving_trainer(tmp_path)
    with pytest.raises(CheckpointSaveError) as failure:
        train_until_the_step_4_save(trainer, set_up, monkeypatch)
    monkeypatch.undo()  # the disk has room again

    expected = f"saving checkpoint global_step_4 failed: {error.format(root=tmp_path)}; "
    assert str(failure.value) == expected + f"the last complete checkpoint is global_step_{resume_step}"
    assert (tmp_path / TRACKER_FILE).read_text() == str(resume_step)
    assert find_latest_ckpt_path(str(tmp_path)) == str(tmp_path / f"global_step_{resume_step}")
    resumed = resume(tmp_path, monkeypatch)
    assert resumed.global_steps == resume_step
    assert resumed.sfpo.state_dict() == saved_states[resume_step]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".before_save"))]


def test_a_first_save_that_fails_leaves_no_checkpoint(tmp_path, monkeypatch):
    trainer = saving_trainer(tmp_path)
    trainer.global_steps = 2
    fill_disk_on(monkeypatch, TRACKER_FILE)
    with pytest.raises(CheckpointSaveError, match="; no checkpoint is complete yet$"):
        trainer._save_checkpoint()
    assert not (tmp_path / TRACKER_FILE).exists()  # an emptied tracker would stop verl's resume
    assert find_latest_ckpt_path(str(tmp_path)) is None


def test_the_run_stops_with_the_message_alone(monkeypatch):
    # The trainer runs in Ray's task runner: its error reaches the entry point wrapped by Ray.
    message = "saving checkpoint global_step_4 failed: OSError(28, 'No space left on device') writing /x; ..."

    def run_sfpo(config):
        raise RayTaskError("run", "Traceback (in the task runner)", CheckpointSaveError(message)).as_instanceof_cause()

    monkeypatch.setattr(sfpo_main, "run_sfpo", run_sfpo)
    with pytest.raises(SystemExit) as stop:
        sfpo_main.main.__wrapped__(None)
    assert stop.value.code == f"sfpo_verl: {message}"


if __name__ == "__main__":
    train_and_checkpoint(Path(sys.argv[1]), sys.argv[2] or None)
