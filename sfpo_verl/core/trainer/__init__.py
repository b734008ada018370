"""The SFPO trainer, its task runner and config."""


def sfpo_task_runner():
    """The Ray task runner class for the installed verl: v1 (0.9.x) or v0 (0.8.x)."""
    from sfpo_verl.core import verl_seams

    if verl_seams.uses_v0_trainer():
        from sfpo_verl.core.trainer.task_runner_v0 import SFPOTaskRunnerV0

        return SFPOTaskRunnerV0
    from sfpo_verl.core.trainer.task_runner import SFPOTaskRunner

    return SFPOTaskRunner
