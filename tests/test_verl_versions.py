"""The supported verl lines, selected by the installed verl (no flag): start-up refusals for a
verl outside the range and for 0.9-only options on 0.8.x, and the 0.8.x trainer path's adapter
(SFPO's worker in verl 0.8.0's TaskRunner, SFPOTrainer in place of its RayPPOTrainer)."""

from __future__ import annotations

import pytest
import ray
from hydra import compose, initialize_config_dir

from sfpo_verl import main as entry
from sfpo_verl.core import verl_seams
from sfpo_verl.core.trainer.config import CONFIG_DIR, SFPOConfigError, v09_only_options

V0 = verl_seams.uses_v0_trainer()
INSTALLED = verl_seams.installed_verl_version()


def compose_cfg(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose("sfpo_trainer", overrides=list(overrides))


@pytest.mark.parametrize("version", ["0.7.1", "0.10.0.dev0"])
def test_unsupported_verl_stops_start_up_with_one_line(monkeypatch, capsys, version):
    monkeypatch.setattr(verl_seams, "installed_verl_version", lambda: version)
    with pytest.raises(SystemExit) as exit_:
        entry.refuse_unsupported_verl(["algorithm.sfpo.alpha=0.5"])
    line = str(exit_.value.code)
    assert line.startswith(f"sfpo_verl: verl {version} is installed, but sfpo_verl supports verl >=0.8.0,<0.10")
    assert "\n" not in line
    with pytest.raises(verl_seams.UnsupportedVerlError):
        entry.run_sfpo(compose_cfg())


def test_supported_verl_passes_the_gate():
    entry.refuse_unsupported_verl(["algorithm.sfpo.alpha=0.5", "trainer.v1.trainer_mode=sync"] if not V0 else [])


def test_v09_only_options_are_named():
    found = v09_only_options(
        ["trainer.device=cpu", "+trainer.v1.sampler.custom_sampler.path=x", "trainer.device=cuda", "trainer.nnodes=1"]
    )
    assert found[0].startswith(f"trainer.device=cpu needs verl 0.9.x (verl {INSTALLED} is installed: ")
    assert found[1].startswith("trainer.v1.sampler.custom_sampler.path needs verl 0.9.x")
    assert len(found) == 2


@pytest.mark.skipif(not V0, reason=f"the 0.8.x refusals (installed: verl {INSTALLED})")
@pytest.mark.parametrize(
    ("override", "named"),
    [("trainer.device=cpu", "trainer.device=cpu"), ("trainer.v1.trainer_mode=sync", "trainer.v1.trainer_mode")],
)
def test_v0_refuses_a_09_only_option_on_the_command_line(override, named):
    with pytest.raises(SystemExit) as exit_:
        entry.refuse_unsupported_verl([override])
    assert str(exit_.value.code).startswith(f"sfpo_verl: {named} needs verl 0.9.x (verl {INSTALLED} is installed")


@pytest.mark.skipif(not V0, reason=f"the 0.8.x refusals (installed: verl {INSTALLED})")
@pytest.mark.parametrize("override", ["trainer.device=cpu", "actor_rollout_ref.rollout.name=hf"])
def test_v0_refuses_a_09_only_setting_in_the_config_before_ray(override):
    with pytest.raises(SFPOConfigError, match=f"^{override} needs verl 0.9.x"):
        entry.run_sfpo(compose_cfg(override))
    assert not ray.is_initialized()


@pytest.mark.skipif(not V0, reason=f"verl 0.8.x's task runner (installed: verl {INSTALLED})")
def test_v0_task_runner_uses_sfpo_worker_and_trainer(monkeypatch):
    from verl.trainer import main_ppo
    from verl.trainer.ppo.utils import Role

    from sfpo_verl.core.trainer import sfpo_task_runner
    from sfpo_verl.core.trainer.sfpo_trainer import SFPOTrainer
    from sfpo_verl.core.workers import SFPOActorRolloutRefWorker

    runner_cls = sfpo_task_runner()
    assert runner_cls.__ray_actor_class__.__mro__[1] is main_ppo.TaskRunner
    runner = runner_cls.__ray_actor_class__()
    worker_cls, _ = runner.add_actor_rollout_worker(compose_cfg())
    assert worker_cls is SFPOActorRolloutRefWorker
    assert runner.role_worker_mapping[Role.ActorRollout].__ray_actor_class__ is SFPOActorRolloutRefWorker

    monkeypatch.setattr(main_ppo, "RayPPOTrainer", main_ppo.RayPPOTrainer)  # restored afterwards
    monkeypatch.setattr(main_ppo.TaskRunner, "run", lambda self, config: main_ppo.RayPPOTrainer)
    runner.run(compose_cfg())
    assert main_ppo.RayPPOTrainer is SFPOTrainer
    assert issubclass(SFPOTrainer, verl_seams.trainer_base())


@pytest.mark.skipif(V0, reason=f"verl 0.9.x's task runner (installed: verl {INSTALLED})")
def test_v1_task_runner_is_selected():
    from sfpo_verl.core.trainer import sfpo_task_runner
    from sfpo_verl.core.trainer.task_runner import SFPOTaskRunner

    assert sfpo_task_runner() is SFPOTaskRunner
