"""verl's trainer with the SFPO actor update: the v1 synchronous trainer on verl 0.9.x, the
v0 RayPPOTrainer on verl 0.8.x (the base is chosen by the installed verl, verl_seams.py).

Rollout, reward, reference model, GRPO advantage and weight sync are verl's, untouched.
This subclass only (1) builds the actor with the SFPO worker, (2) decides each step's
alpha on the driver and sends it with the batch, (3) feeds the entropy switch and logs the
SFPO metrics, (4) saves/restores the switch state with every checkpoint, and (5) on 0.9.x
names each prompt by its step and position instead of a random uuid (a patch, see
`_fetch_one_gen_batch`; verl 0.8.x's trainer has no such hook and keeps its uuids).
"""

from __future__ import annotations

import json
import logging
import os

import ray
from omegaconf import open_dict
from verl.trainer.ppo.utils import Role
from verl.utils import tensordict_utils as tu
from verl.utils.metric import reduce_metrics

from sfpo_verl.atomic_file import atomic_file
from sfpo_verl.core import verl_seams
from sfpo_verl.core.algorithm import AlphaSchedule, EntropySwitch, SFPOController
from sfpo_verl.core.trainer.resume_point import keep_resume_point, restore_resume_point
from sfpo_verl.core.workers import SFPOActorRolloutRefWorker
from sfpo_verl.core.workers.sfpo_worker import ALPHA_KEY, ANCHOR_DEVICE_KEY, INNER_STEPS_KEY, SLOW_CORRECTION_KEY

logger = logging.getLogger(__name__)

STATE_FILE = "sfpo_state.json"
# The switch watches the entropy of the step's update pass, as the authors' code does.
ENTROPY_METRIC = "actor/entropy_loss"
# Roles verl builds from ActorRolloutRefWorker (a standalone ref worker needs the subclass's
# CPU process-group start too; SFPO itself only acts in the actor roles).
_HYBRID_WORKER_ROLES = (Role.Actor, Role.ActorRollout, Role.ActorRolloutRef, Role.RefPolicy)


def build_controller(algorithm_config) -> SFPOController:
    """The driver-side controller for `algorithm` (the grpo arm: alpha is always 0)."""
    sfpo = algorithm_config.sfpo
    alpha0 = float(sfpo.alpha) if algorithm_config.name == "sfpo" else 0.0
    switch_config = sfpo.entropy_switch
    switch = (
        EntropySwitch(switch_config.window, float(switch_config.threshold), switch_config.two_sided)
        if switch_config.enable and alpha0 > 0
        else None
    )
    schedule = AlphaSchedule(alpha0, sfpo.alpha_schedule, sfpo.schedule_steps)
    return SFPOController(schedule, inner_steps=int(sfpo.inner_steps), switch=switch)


class SFPOTrainer(verl_seams.trainer_base()):
    """verl's trainer (PPOTrainerSync on 0.9.x, RayPPOTrainer on 0.8.x) whose actor update is
    SFPO's (algorithm.name=sfpo) or verl's (grpo)."""

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.sfpo = build_controller(config.algorithm)
        self._uid_step, self._uid_next = None, 0
        if self.sfpo.switch is not None:
            # the switch needs the update's entropy metric, which verl computes only on request
            with open_dict(config):
                config.actor_rollout_ref.actor.calculate_entropy = True

    def _init_resource_pool_mgr(self):
        # verl 0.9.x maps roles to worker classes here (0.8.x: in its task runner, task_runner_v0.py)
        super()._init_resource_pool_mgr()
        for role in _HYBRID_WORKER_ROLES:
            if role in self.role_worker_mapping:
                self.role_worker_mapping[role] = ray.remote(SFPOActorRolloutRefWorker)

    def _fetch_one_gen_batch(self):
        """verl's dataloader fetch, with each prompt's uid "SSSSSS-NNNNNN" (step, then position
        among the prompts fetched in that step) instead of verl's random uuid4.

        PATCH verl==0.9.1 (patches/README.md): a uid is only a group label, but a random one
        orders nothing; deterministic uids let the replay buffer put a step's trajectories in
        a canonical order (the CPU quickstart's sampler, cpu/quickstart/sampler.py), and
        uid-sorted rollout dumps follow the data order. Unique within a run; no "_" (verl splits keys on it)."""
        batch = super()._fetch_one_gen_batch()
        if self._uid_step != self.global_steps:
            self._uid_step, self._uid_next = self.global_steps, 0
        first, self._uid_next = self._uid_next, self._uid_next + len(batch)
        uids = [f"{self.global_steps:06d}-{i:06d}" for i in range(first, self._uid_next)]
        tu.assign_non_tensor_stack(batch, "uid", uids)
        return batch

    def _update_actor(self, batch, metrics: dict | None = None):
        """verl's actor update with this step's SFPO controls sent along (seam 4: 0.9.x sends
        `batch.extra_info` and fills `metrics`; 0.8.x sends `batch.meta_info` and returns the
        metrics in a DataProto, which here come back reduced, with the SFPO ones added)."""
        step = self.global_steps
        alpha = self.sfpo.alpha(step)
        controls = {
            ALPHA_KEY: alpha,
            INNER_STEPS_KEY: self.sfpo.inner_steps,
            ANCHOR_DEVICE_KEY: self.config.algorithm.sfpo.anchor_device,
            SLOW_CORRECTION_KEY: self.config.algorithm.sfpo.slow_correction,
        }
        if verl_seams.uses_v0_trainer():
            batch.meta_info.update(controls)
            output = super()._update_actor(batch)
            metrics = output.meta_info["metrics"] = reduce_metrics(output.meta_info["metrics"])
        else:
            batch.extra_info.update(controls)
            output = super()._update_actor(batch, metrics)
        self._record_sfpo_metrics(step, metrics)
        return output

    def _record_sfpo_metrics(self, step: int, metrics: dict) -> None:
        # verl prefixes every worker metric with "actor/"; SFPO's live under "sfpo/".
        for key in [k for k in metrics if k.startswith("actor/sfpo/")]:
            metrics[key.removeprefix("actor/")] = metrics.pop(key)

        if self.sfpo.switch is not None and not self.sfpo.switch_fired:
            if ENTROPY_METRIC not in metrics:
                raise RuntimeError(
                    f"the entropy switch needs the metric {ENTROPY_METRIC!r}, which the actor update did not "
                    "return; set actor_rollout_ref.actor.calculate_entropy=true"
                )
            if self.sfpo.observe_entropy(step, metrics[ENTROPY_METRIC]):
                logger.warning("SFPO entropy switch fired at step %d: plain GRPO steps from now on", step)
                print(f"[sfpo] entropy switch fired at step {step}: alpha = 0 from step {step + 1} on")
        if self.sfpo.switch is not None:
            metrics["sfpo/switch_fired"] = float(self.sfpo.switch_fired)
            if self.sfpo.switch.last_zscore is not None:
                metrics["sfpo/entropy_zscore"] = self.sfpo.switch.last_zscore

    def _save_checkpoint(self):
        # The SFPO state goes into the step's folder atomically and before verl writes its
        # tracker (latest_checkpointed_iteration.txt), which is what makes a checkpoint count:
        # a run killed at any moment resumes from a checkpoint whose state is complete. A save
        # that fails (a full disk) leaves the tracker on the last complete checkpoint and stops
        # the run with one line naming the error, the path and that checkpoint.
        root = self.config.trainer.default_local_dir
        with keep_resume_point(root, self.global_steps):
            state_path = os.path.join(root, f"global_step_{self.global_steps}", STATE_FILE)
            write_state(state_path, {"global_step": self.global_steps, **self.sfpo.state_dict()})
            super()._save_checkpoint()

    def _load_checkpoint(self):
        if self.config.trainer.resume_mode == "auto":
            restore_resume_point(self.config.trainer.default_local_dir)
        super()._load_checkpoint()
        if self.global_steps == 0:
            return
        trainer = self.config.trainer
        if trainer.resume_mode == "resume_path":
            folder = trainer.resume_from_path
        else:
            folder = os.path.join(trainer.default_local_dir, f"global_step_{self.global_steps}")
        path = os.path.abspath(os.path.join(folder, STATE_FILE))
        if not os.path.exists(path):
            # Not fatal (e.g. a checkpoint written by verl's own trainer), but never silent:
            # the switch restarts with an empty window.
            logger.warning("no SFPO state at %s: the entropy switch restarts with an empty window", path)
            print(f"[sfpo] WARNING: resuming without SFPO state ({path} missing); the entropy switch restarts")
            return
        self.sfpo.load_state_dict(read_state(path, self.global_steps))
        print(f"[sfpo] restored SFPO state from {path}: switch fired = {self.sfpo.switch_fired}")


class SFPOStateError(RuntimeError):
    """A checkpoint's SFPO state cannot be used; the message says which file and what to do."""


def write_state(path: str, state: dict) -> None:
    """Write `state` as JSON to `path` atomically: readers see the old file or the whole new one."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_file(path) as f:
        json.dump(state, f, indent=2)


def read_state(path: str, step: int) -> dict:
    """The SFPO state saved at `step`, or SFPOStateError naming the file and the way out."""
    way_out = (
        "resume from another checkpoint (trainer.resume_mode=resume_path "
        "trainer.resume_from_path=<checkpoint dir>/global_step_M), or delete that checkpoint folder"
    )
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError) as error:
        raise SFPOStateError(f"cannot read the SFPO state {path} ({error}): {way_out}") from error
    if not isinstance(state, dict) or not {"global_step", "switch"} <= state.keys():
        raise SFPOStateError(f"{path} is not an SFPO state file (no global_step/switch): {way_out}")
    if state["global_step"] != step:
        raise SFPOStateError(
            f"{path} holds the SFPO state of step {state['global_step']}, but the checkpoint is step {step}: {way_out}"
        )
    return state
