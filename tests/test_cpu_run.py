"""`trainer.device=cpu`: GPU-only options are refused by name, Ray is sized to fit, and
CPU mode is never on unless asked for."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from sfpo_verl.core.trainer.config import CONFIG_DIR
from sfpo_verl.cpu.platform.cpu_run import (
    CPURunConfigError,
    configure_cpu_run,
    cpus_per_node,
    find_gpu_only_options,
    ray_resources_for,
)
from sfpo_verl.cpu.settings import cpu_overrides, hydra_value, merge_overrides

pytestmark = pytest.mark.verl09(reason="trainer.device=cpu (CPU mode)")


def cpu_ready(*changes: str) -> list[str]:
    """The CPU platform's settings (their one source) with two trainer ranks, each of `changes`
    replacing the value of its key (or added)."""
    return merge_overrides(cpu_overrides(), ["trainer.n_gpus_per_node=2", *changes])


def compose_cfg(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose("sfpo_trainer", overrides=list(overrides))


def test_a_cpu_ready_config_has_no_gpu_only_option():
    assert find_gpu_only_options(compose_cfg(*cpu_ready())) == []


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.name=hf"),
        ("actor_rollout_ref.rollout.name=sglang", "actor_rollout_ref.rollout.name=hf"),
        ("actor_rollout_ref.rollout.name=nonesuch", "not a rollout backend of this build"),
        ("actor_rollout_ref.actor.strategy=fsdp", "actor_rollout_ref.actor.strategy=fsdp2"),
        ("actor_rollout_ref.model.use_remove_padding=true", "actor_rollout_ref.model.use_remove_padding=false"),
        ("+actor_rollout_ref.model.override_config.attn_implementation=flash_attention_2",
         "attn_implementation=eager"),
        ("actor_rollout_ref.model.use_liger=true", "actor_rollout_ref.model.use_liger=false"),
        ("algorithm.adv_estimator=gae", "flash-attention hard-coded.*algorithm.adv_estimator=grpo"),
        ("actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.lora.merge=true"),
        ("actor_rollout_ref.actor.use_kl_loss=true", "reference model.*lora_rank=8"),
    ],
)
def test_each_gpu_only_option_is_named_with_its_fix(override, names):
    config = compose_cfg(*cpu_ready(override))
    with pytest.raises(CPURunConfigError, match=names.replace("[", r"\[").replace("+", r"\+")):
        configure_cpu_run(config)


def test_kl_loss_with_merged_lora_runs_on_the_cpu():
    # with LoRA the reference is the actor without its adapters: no separate reference model
    config = compose_cfg(*cpu_ready("actor_rollout_ref.actor.use_kl_loss=true", "actor_rollout_ref.model.lora_rank=8",
                                    "actor_rollout_ref.model.lora.merge=true"))
    assert find_gpu_only_options(config) == []


def test_verls_gpu_defaults_are_all_reported_at_once_each_fixed_by_the_cpu_settings():
    problems = find_gpu_only_options(compose_cfg("trainer.device=cpu"))
    joined = "\n".join(problems)
    for key in ("actor_rollout_ref.rollout.name", "actor_rollout_ref.actor.strategy",
                "actor_rollout_ref.model.use_remove_padding", "+actor_rollout_ref.model.override_config.attn_implementation"):
        assert f"pass {key}={hydra_value(cpu_overrides()[key])}" in joined


def test_ray_is_sized_for_verls_placement_groups_and_transfer_queue():
    config = compose_cfg(*cpu_ready("transfer_queue.backend.SimpleStorage.num_data_storage_units=2"))
    num_cpus, num_gpus = ray_resources_for(config)
    # 2 workers x 3 CPUs per bundle + TransferQueue controller and 2 storage units + 2 unreserved
    assert (num_cpus, num_gpus) == (11, 2)


def test_every_node_of_a_running_cluster_has_room_for_the_actors_ray_may_place_on_it():
    config = compose_cfg(*cpu_ready("trainer.nnodes=2", "trainer.n_gpus_per_node=1",
                                    "transfer_queue.backend.SimpleStorage.num_data_storage_units=1"))
    # its rank's 3-CPU bundle + TransferQueue controller and 1 storage unit + 2 unreserved
    assert cpus_per_node(config) == 7


def test_configure_sets_ray_resources_and_platform_env_for_every_process(monkeypatch):
    monkeypatch.delenv("VERL_PLATFORM", raising=False)
    config = compose_cfg(*cpu_ready())
    assert configure_cpu_run(config) is True
    ray_init = config.ray_kwargs.ray_init
    assert (ray_init.num_cpus, ray_init.num_gpus) == ray_resources_for(config)
    assert ray_init.runtime_env.env_vars.VERL_PLATFORM == "cpu"
    import os

    from verl.plugin.platform import get_platform

    assert os.environ["VERL_PLATFORM"] == "cpu" and get_platform().device_name == "cpu"


def test_too_few_cpus_asked_for_is_an_error():
    config = compose_cfg(*cpu_ready("ray_kwargs.ray_init.num_cpus=2"))
    with pytest.raises(CPURunConfigError, match="ray_kwargs.ray_init.num_cpus="):
        configure_cpu_run(config)


def test_cpu_mode_is_never_on_unless_asked_for(monkeypatch):
    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    with pytest.raises(CPURunConfigError, match="trainer.device=cpu"):
        configure_cpu_run(compose_cfg("trainer.device=cuda"))
    monkeypatch.delenv("VERL_PLATFORM")
    config = compose_cfg("trainer.device=cuda")
    assert configure_cpu_run(config) is False
    assert config.ray_kwargs.ray_init.get("num_gpus") is None


@pytest.mark.parametrize("how", ["config", "RAY_ADDRESS"])
def test_on_a_running_cluster_only_the_environment_is_passed_on(monkeypatch, how):
    # Ray refuses num_cpus/num_gpus when it connects to a cluster: the nodes declare them.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    overrides = cpu_ready()
    if how == "config":
        overrides.append("+ray_kwargs.ray_init.address=127.0.0.1:6379")
    else:
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    config = compose_cfg(*overrides)
    assert configure_cpu_run(config) is True
    ray_init = config.ray_kwargs.ray_init
    assert ray_init.get("num_cpus") is None and ray_init.get("num_gpus") is None
    assert ray_init.runtime_env.env_vars.VERL_PLATFORM == "cpu"


def test_resources_asked_for_on_a_running_cluster_are_an_error(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    config = compose_cfg(*cpu_ready("+ray_kwargs.ray_init.address=127.0.0.1:6379", "ray_kwargs.ray_init.num_cpus=16"))
    # 2 ranks x 3 + TransferQueue controller and the CPU settings' 1 storage unit + 2 unreserved
    with pytest.raises(CPURunConfigError, match="ray start --num-gpus 2 --num-cpus 10"):
        configure_cpu_run(config)


def test_address_local_starts_a_new_cluster(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    config = compose_cfg(*cpu_ready("+ray_kwargs.ray_init.address=local"))
    configure_cpu_run(config)
    assert (config.ray_kwargs.ray_init.num_cpus, config.ray_kwargs.ray_init.num_gpus) == ray_resources_for(config)
