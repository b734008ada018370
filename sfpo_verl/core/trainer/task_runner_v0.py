"""The Ray task runner that drives SFPOTrainer on verl 0.8.x: verl's `main_ppo.TaskRunner`
(the v0 RayPPOTrainer with the engine workers) with SFPO's worker and trainer.

The adapter is thin (verl_seams.py, seam 5): `add_actor_rollout_worker` maps the actor roles
to SFPO's hybrid worker, and `run` rebinds the trainer name verl's `run` instantiates, inside
this Ray process only, then runs verl's own `run` (datasets, resource pools, `fit`).
"""

from __future__ import annotations

import ray
from verl.trainer.main_ppo import TaskRunner

from sfpo_verl.core import verl_seams


@ray.remote(num_cpus=1)  # as verl's run_ppo starts its own TaskRunner
class SFPOTaskRunnerV0(TaskRunner):
    def add_actor_rollout_worker(self, config):
        from sfpo_verl.core.workers import SFPOActorRolloutRefWorker

        _, ray_worker_group_cls = super().add_actor_rollout_worker(config)
        for role in list(self.role_worker_mapping):
            if role.name in ("ActorRollout", "ActorRolloutRef"):
                self.role_worker_mapping[role] = ray.remote(SFPOActorRolloutRefWorker)
        return SFPOActorRolloutRefWorker, ray_worker_group_cls

    def run(self, config):
        from sfpo_verl.core.trainer.sfpo_trainer import SFPOTrainer
        from sfpo_verl.core.trainer.validation_metrics import use_vectorised_bootstrap

        use_vectorised_bootstrap()  # validation metrics are computed in this process
        verl_seams.install_v0_trainer(SFPOTrainer)
        super().run(config)
