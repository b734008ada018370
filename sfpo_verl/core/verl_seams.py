"""Every verl internal the SFPO core relies on, and which verl versions it runs on.

Checked on verl 0.8.0 and 0.9.1 (read from their installed sources; 0.7.1 from its wheel,
refused, see below). `tests/test_verl_seams.py` asserts each entry against the installed verl
and fails when verl changes one, or when the installed version is not one checked here.
patches/README.md lists the same entries.

The two supported lines drive SFPO through different verl trainers:

- **0.9.x**: the v1 synchronous trainer `verl.trainer.ppo.v1.trainer_sync.PPOTrainerSync`,
  started by `TaskRunnerV1`; the hybrid worker builds its actor from the class attribute
  `ActorRolloutRefWorker.actor_worker_cls`.
- **0.8.x**: the v0 `verl.trainer.ppo.ray_trainer.RayPPOTrainer`, started by
  `main_ppo.TaskRunner`; the hybrid worker builds its actor as a plain `TrainingWorker`
  (no `actor_worker_cls`), which `adopt_actor_class` re-classes after `init_model`.

Both lines share the SFPO update (`TrainingWorker.train_mini_batch` override) and the
driver logic; only the seams below differ.

Seams (verl name -> what SFPO does with it -> versions):

1. `TrainingWorker.train_mini_batch(data)` pops the control keys `PASS_CONTROL_KEYS` from
   its TensorDict and puts `update_lr_scheduler` on each mini-batch for `train_batch`, which
   steps the LR scheduler when it is true (`UPDATE_LR_SCHEDULER_KEY`). SFPO overrides
   `train_mini_batch` and `train_batch` and clears the key on all but the step's last pass.
   0.8.0, 0.9.1.
2. `TrainingWorker.engine` with `.module`, `.lr_scheduler`, `.train_mode(disable_auto_offload=)`,
   `.get_data_parallel_rank()`: the engine whose parameters SFPO snapshots. 0.8.0, 0.9.1.
3. `ActorRolloutRefWorker.actor_worker_cls` (0.9.1; set to SFPO's TrainingWorker), or on 0.8.0
   `ActorRolloutRefWorker.init_model` building `self.actor = TrainingWorker(config=...)`
   (`adopt_actor_class` swaps the class of that object; SFPO's subclass adds no state).
4. Trainer hooks SFPOTrainer overrides: `_update_actor`, `_save_checkpoint`, `_load_checkpoint`
   (0.8.0 `RayPPOTrainer`, 0.9.1 `PPOTrainerSync`); `_init_resource_pool_mgr` (0.9.1: where
   the trainer maps roles to worker classes) and `_fetch_one_gen_batch` (0.9.1: the uid patch).
   0.9.1's `_update_actor(batch, metrics)` sends `batch.extra_info` and fills `metrics`
   (reduced); 0.8.0's `_update_actor(batch)` sends `batch.meta_info` and returns the
   unreduced metrics in a DataProto's `meta_info["metrics"]`.
5. Task runners: 0.9.1 `main_ppo.TaskRunnerV1.__ray_actor_class__` (the class under
   `@ray.remote`), subclassed; 0.8.0 `main_ppo.TaskRunner`, whose `add_actor_rollout_worker`
   maps the actor roles to worker classes and whose `run` builds the trainer through the
   module-level name `main_ppo.RayPPOTrainer` (`install_v0_trainer` rebinds that name inside
   the task runner's own Ray process).
6. `main_ppo.run_ppo(config, task_runner_class)`: 0.8.0, 0.9.1.
7. 0.8.0's `main_ppo.main` passes the config through
   `verl.experimental.reward_loop.migrate_legacy_reward_impl` before `run_ppo`
   (`prepare_v0_config` does the same); 0.9.1's does not.

verl 0.7.1 (read from its wheel): its engine workers have seams 1-3 as 0.8.0 (same
`train_mini_batch`/`update_lr_scheduler`, `self.actor = TrainingWorker(...)`), but
`TaskRunner.add_actor_rollout_worker` and `RayPPOTrainer._update_actor` take the engine-worker
path only with `trainer.use_legacy_worker_impl=disable` (default `auto`: the legacy
`fsdp_workers`/`dp_actor` path, which has no `train_mini_batch` to override), and its
`_update_actor` computes entropy only when `entropy_coeff != 0`, ignoring
`actor.calculate_entropy`, which the entropy switch turns on. Not supported: refused at
start-up (`check_supported`).
"""

from __future__ import annotations

import functools
from importlib import metadata

# The verl releases SFPO runs on: the range pyproject.toml requires, and the releases checked.
SUPPORTED_RANGE = ">=0.8.0,<0.10"
SUPPORTED_SERIES = ((0, 8), (0, 9))
CHECKED_VERSIONS = ("0.8.0", "0.9.1")

# Seam 1: the per-mini-batch key verl's train_batch reads to step the LR scheduler.
UPDATE_LR_SCHEDULER_KEY = "update_lr_scheduler"
# Seam 1: control keys verl's train_mini_batch pops from the batch (SFPO sets them per pass).
PASS_CONTROL_KEYS = ("disable_auto_offload", "dataloader_kwargs", "epochs", "seed")


_WHY_UNSUPPORTED = {
    (0, 7): " (verl 0.7 trains through its legacy fsdp_workers by default and ignores actor.calculate_entropy)",
}


class UnsupportedVerlError(RuntimeError):
    """The installed verl is outside the supported range; the message says which and what to do."""


@functools.cache
def installed_verl_version() -> str:
    return metadata.version("verl")


def series(version: str | None = None) -> tuple[int, int]:
    """(major, minor) of `version` (default: the installed verl)."""
    from packaging.version import Version

    release = Version(version or installed_verl_version()).release
    return (release[0], release[1] if len(release) > 1 else 0)


def check_supported(version: str | None = None) -> None:
    """Raise UnsupportedVerlError (one line) unless `version` (default: installed) is supported."""
    version = version or installed_verl_version()
    if series(version) not in SUPPORTED_SERIES:
        why = _WHY_UNSUPPORTED.get(series(version), "")
        raise UnsupportedVerlError(
            f"verl {version} is installed, but sfpo_verl supports verl {SUPPORTED_RANGE} "
            f"(0.8.x and 0.9.x; checked on {' and '.join(CHECKED_VERSIONS)}){why}: "
            f"pip install 'verl[verl-core]{SUPPORTED_RANGE}'"
        )


def uses_v0_trainer(version: str | None = None) -> bool:
    """True on verl 0.8.x (v0 RayPPOTrainer + main_ppo.TaskRunner), False on 0.9.x (v1 trainer)."""
    return series(version) == (0, 8)


def has_actor_worker_cls() -> bool:
    """Seam 3: whether verl's hybrid worker builds its actor from `actor_worker_cls` (0.9.x)."""
    from verl.workers.engine_workers import ActorRolloutRefWorker

    return hasattr(ActorRolloutRefWorker, "actor_worker_cls")


def adopt_actor_class(hybrid_worker, actor_cls: type) -> None:
    """Seam 3 on 0.8.x: make the actor verl's `init_model` built as a plain TrainingWorker an
    `actor_cls` (a TrainingWorker subclass without state of its own). No-op when it already is."""
    actor = getattr(hybrid_worker, "actor", None)
    if actor is None or isinstance(actor, actor_cls):
        return
    if not issubclass(actor_cls, type(actor)):
        raise TypeError(f"{actor_cls.__name__} does not extend the actor's class {type(actor).__name__}")
    actor.__class__ = actor_cls


def trainer_base() -> type:
    """Seam 4: the verl trainer SFPOTrainer extends (PPOTrainerSync on 0.9.x, RayPPOTrainer on 0.8.x)."""
    if uses_v0_trainer():
        from verl.trainer.ppo.ray_trainer import RayPPOTrainer

        return RayPPOTrainer
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    return PPOTrainerSync


def v1_task_runner_base() -> type:
    """Seam 5 (0.9.x): the plain class under verl's `@ray.remote` TaskRunnerV1."""
    from verl.trainer.main_ppo import TaskRunnerV1

    return TaskRunnerV1.__ray_actor_class__


def install_v0_trainer(trainer_cls: type) -> None:
    """Seam 5 (0.8.x): `main_ppo.TaskRunner.run` builds `RayPPOTrainer(...)` by its module-level
    name; rebind it to `trainer_cls` (a RayPPOTrainer subclass). Called only inside the task
    runner's own Ray process."""
    from verl.trainer import main_ppo

    main_ppo.RayPPOTrainer = trainer_cls


def prepare_v0_config(config):
    """Seam 7 (0.8.x): what verl's own main does to the config before run_ppo (besides
    auto_set_device): move the legacy reward settings to where its trainer reads them."""
    from verl.experimental.reward_loop import migrate_legacy_reward_impl

    return migrate_legacy_reward_impl(config)
