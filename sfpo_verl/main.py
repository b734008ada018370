"""Entry point: `python -m sfpo_verl.main [hydra overrides]`, verl's main_ppo with SFPO.

The config is sfpo_verl/core/trainer/config/sfpo_trainer.yaml (verl's ppo_trainer + the SFPO
section). `algorithm.name=grpo` runs the baseline arm through the same code path.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from sfpo_verl.core.preflight import RunInputError, check_run_inputs
from sfpo_verl.core.trainer.config import SFPOConfigError, validate_sfpo_config

# Where a first model folder comes from, for the message about a missing one.
MODEL_FOLDER_HINT = (
    "or build the CPU quickstart task with `python -m sfpo_verl.cpu.task.build --out DIR` "
    "and pass actor_rollout_ref.model.path=DIR/model"
)


def run_sfpo(config: DictConfig) -> None:
    """Validate, prepare the device, and train (config checks fail before Ray starts)."""
    validate_sfpo_config(config)
    check_run_inputs(config, model_hint=MODEL_FOLDER_HINT)

    # verl's trainer, Ray and the device set-up load only once the config is known to be good.
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    from sfpo_verl.cpu.platform.cpu_run import configure_cpu_run

    if not configure_cpu_run(config):  # True when trainer.device=cpu
        auto_set_device(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))

    from sfpo_verl.core.trainer.task_runner import SFPOTaskRunner

    run_ppo(config, task_runner_class=SFPOTaskRunner)


@hydra.main(config_path="core/trainer/config", config_name="sfpo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    try:
        run_sfpo(config)
    except (SFPOConfigError, RunInputError) as err:
        # A mistake in the command line: the message says what to change; a traceback would bury it.
        sys.exit(f"sfpo_verl: {err}")


if __name__ == "__main__":
    main()
