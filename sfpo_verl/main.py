"""Entry point: `python -m sfpo_verl.main [hydra overrides]`, verl's main_ppo with SFPO.

The config is sfpo_verl/core/trainer/config/sfpo_trainer.yaml (verl's ppo_trainer + the SFPO
section). `algorithm.name=grpo` runs the baseline arm through the same code path.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from sfpo_verl.core import verl_seams
from sfpo_verl.core.preflight import RunInputError, check_run_inputs
from sfpo_verl.core.trainer.config import SFPOConfigError, v09_only_options, validate_sfpo_config
from sfpo_verl.core.trainer.resume_point import CheckpointSaveError

# Where a first model folder comes from, for the message about a missing one.
MODEL_FOLDER_HINT = (
    "or build the CPU quickstart task with `python -m sfpo_verl.cpu.task.build --out DIR` "
    "and pass actor_rollout_ref.model.path=DIR/model"
)


def run_sfpo(config: DictConfig) -> None:
    """Validate, prepare the device, and train (config checks fail before Ray starts)."""
    verl_seams.check_supported()
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
    if verl_seams.uses_v0_trainer():
        config = verl_seams.prepare_v0_config(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))

    from sfpo_verl.core.trainer import sfpo_task_runner

    run_ppo(config, task_runner_class=sfpo_task_runner())


def refuse_unsupported_verl(overrides: list[str]) -> None:
    """Exit with one line when the installed verl is outside the supported range, or when a
    command-line override needs verl 0.9.x and 0.8.x is installed (before Hydra composes verl's
    config, which would fail less clearly)."""
    try:
        verl_seams.check_supported()
    except verl_seams.UnsupportedVerlError as err:
        sys.exit(f"sfpo_verl: {err}")
    if verl_seams.uses_v0_trainer():
        problems = v09_only_options([o for o in overrides if "=" in o and not o.startswith("-")])
        if problems:
            sys.exit("sfpo_verl: " + "; ".join(problems))


@hydra.main(config_path="core/trainer/config", config_name="sfpo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    try:
        run_sfpo(config)
    except (SFPOConfigError, RunInputError, verl_seams.UnsupportedVerlError) as err:
        # A mistake in the command line: the message says what to change; a traceback would bury it.
        sys.exit(f"sfpo_verl: {err}")
    except CheckpointSaveError as err:
        # Raised in Ray's task runner, it arrives as Ray's error class for it, carrying it as `cause`.
        sys.exit(f"sfpo_verl: {getattr(err, 'cause', err)}")


if __name__ == "__main__":
    refuse_unsupported_verl(sys.argv[1:])
    main()
