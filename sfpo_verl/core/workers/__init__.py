"""verl adapters: the SFPO actor update stage and the worker that hosts it."""

from sfpo_verl.core.workers.sfpo_worker import SFPOActorRolloutRefWorker, SFPOTrainingWorker

__all__ = ["SFPOActorRolloutRefWorker", "SFPOTrainingWorker"]
