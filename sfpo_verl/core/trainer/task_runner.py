"""The Ray task runner that drives SFPOTrainer on verl 0.9.x (verl's TaskRunnerV1 with our
trainer). verl 0.8.x: task_runner_v0.py; `sfpo_verl.core.trainer.sfpo_task_runner()` picks
the one for the installed verl."""

from __future__ import annotations

from pprint import pprint

import ray
from omegaconf import DictConfig, OmegaConf
from verl.utils.logging_utils import configure_verl_logging

from sfpo_verl.core import verl_seams


@ray.remote
class SFPOTaskRunner(verl_seams.v1_task_runner_base()):
    """TaskRunnerV1 whose trainer is SFPOTrainer; the agent-loop set-up is inherited.

    verl's `run` looks the trainer up by `trainer.v1.trainer_mode`, and the sync mode's name
    also switches behaviour inside the trainer, so the trainer class is chosen here instead.
    """

    def run(self, config: DictConfig):
        import transfer_queue as tq

        from sfpo_verl.core.trainer.cluster_fit import PlacementWatchdog, check_cluster_fits
        from sfpo_verl.core.trainer.sfpo_trainer import SFPOTrainer
        from sfpo_verl.core.trainer.validation_metrics import use_vectorised_bootstrap

        configure_verl_logging()
        use_vectorised_bootstrap()  # validation metrics are computed in this process
        config.transfer_queue.enable = True
        pprint(OmegaConf.to_container(config, resolve=True))
        OmegaConf.resolve(config)
        self.config = config

        if config.cluster_check.enable:
            check_cluster_fits(config)
        tq.init(config.transfer_queue)
        succeeded = False
        try:
            with PlacementWatchdog(config.cluster_check.placement_timeout_s):  # verl places its workers here
                self.trainer = SFPOTrainer(config=config)
                self.trainer.init()
                self.init_agent_loop_manager()
            self.trainer.fit(self.agent_loop_manager)
            succeeded = True
        finally:
            try:
                tracking = getattr(self.trainer, "logger", None)
                if tracking is not None:
                    tracking.finish(exit_code=0 if succeeded else 1)
            finally:
                tq.close()
