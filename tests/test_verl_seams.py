"""Every verl internal SFPO uses (sfpo_verl/core/verl_seams.py, sfpo_verl/cpu/verl_seams.py),
asserted against the installed verl: a failure here means verl changed a seam, so the module
that uses it (named in the test) must be re-checked against that verl, and its docstring's
version list and patches/README.md updated."""

from __future__ import annotations

import inspect

import pytest

from sfpo_verl.core import verl_seams
from sfpo_verl.cpu import verl_seams as cpu_seams

V0 = verl_seams.uses_v0_trainer()
only_v0 = pytest.mark.skipif(not V0, reason="a verl 0.8.x seam (installed: verl %s)" % verl_seams.installed_verl_version())
only_v1 = pytest.mark.skipif(V0, reason="a verl 0.9.x seam (installed: verl %s)" % verl_seams.installed_verl_version())


def source(obj) -> str:
    return inspect.getsource(obj)


def test_installed_verl_is_one_the_seams_were_checked_on():
    assert verl_seams.installed_verl_version() in verl_seams.CHECKED_VERSIONS, (
        "re-check every seam of sfpo_verl/core/verl_seams.py and sfpo_verl/cpu/verl_seams.py against this verl, "
        "then add it to CHECKED_VERSIONS"
    )
    verl_seams.check_supported()


@pytest.mark.parametrize("version", ["0.8.0", "0.8.1", "0.9.0", "0.9.1"])
def test_supported_versions_pass(version):
    verl_seams.check_supported(version)


@pytest.mark.parametrize("version", ["0.7.1", "0.6.0", "0.10.0.dev0", "1.0.0"])
def test_other_versions_are_refused_in_one_line_naming_both(version):
    with pytest.raises(verl_seams.UnsupportedVerlError) as error:
        verl_seams.check_supported(version)
    message = str(error.value)
    assert "\n" not in message
    assert f"verl {version} is installed" in message and verl_seams.SUPPORTED_RANGE in message
    if version == "0.7.1":
        assert "legacy" in message


def test_seam1_train_mini_batch_controls_and_lr_key():
    from verl.workers.engine_workers import TrainingWorker

    mini_batch = source(TrainingWorker.train_mini_batch)
    for key in verl_seams.PASS_CONTROL_KEYS:
        assert f'tu.pop(data, key="{key}"' in mini_batch, key
    assert f"{verl_seams.UPDATE_LR_SCHEDULER_KEY}=batch_idx == total_num_iterations - 1" in mini_batch
    assert "self.train_batch(mini_batch_td)" in mini_batch
    assert f'tu.get(data, key="{verl_seams.UPDATE_LR_SCHEDULER_KEY}", default=False)' in source(TrainingWorker.train_batch)


def test_seam2_engine_interface():
    from verl.workers.engine_workers import TrainingWorker

    mini_batch = source(TrainingWorker.train_mini_batch)
    assert "self.engine.train_mode(disable_auto_offload=disable_auto_offload)" in mini_batch
    assert "self.engine.get_data_parallel_rank()" in mini_batch
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

    assert {"train_mode", "get_data_parallel_rank", "is_mp_src_rank_with_outputs"} <= set(dir(FSDPEngine))


@only_v1
def test_seam3_actor_worker_cls():
    from verl.workers.engine_workers import ActorRolloutRefWorker, TrainingWorker

    assert verl_seams.has_actor_worker_cls()
    assert ActorRolloutRefWorker.actor_worker_cls is TrainingWorker
    assert "self.actor = self.actor_worker_cls(config=actor_training_config)" in source(ActorRolloutRefWorker.init_model)


@only_v0
def test_seam3_v0_actor_is_a_plain_training_worker_sfpo_reclasses():
    from verl.single_controller.base.decorator import MAGIC_ATTR
    from verl.workers.engine_workers import ActorRolloutRefWorker

    from sfpo_verl.core.workers import SFPOActorRolloutRefWorker, SFPOTrainingWorker

    assert not verl_seams.has_actor_worker_cls()
    assert "self.actor = TrainingWorker(config=actor_training_config)" in source(ActorRolloutRefWorker.init_model)
    # the class swap is only sound while SFPO's subclass keeps no state of its own
    assert "__init__" not in SFPOTrainingWorker.__dict__ and "__slots__" not in SFPOTrainingWorker.__dict__
    # SFPO's init_model override is exposed to Ray like verl's
    assert getattr(SFPOActorRolloutRefWorker.init_model, MAGIC_ATTR) == getattr(ActorRolloutRefWorker.init_model, MAGIC_ATTR)


def test_adopt_actor_class_swaps_only_a_base_instance():
    class Base:
        pass

    class Sub(Base):
        pass

    class Holder:
        actor = Base()

    holder = Holder()
    verl_seams.adopt_actor_class(holder, Sub)
    assert type(holder.actor) is Sub
    holder.actor = object()
    with pytest.raises(TypeError):
        verl_seams.adopt_actor_class(holder, Sub)


@only_v1
def test_seam4_v1_trainer_hooks():
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    assert verl_seams.trainer_base() is PPOTrainerSync
    assert list(inspect.signature(PPOTrainerSync._update_actor).parameters) == ["self", "batch", "metrics"]
    for hook in ("_save_checkpoint", "_load_checkpoint", "_init_resource_pool_mgr", "_fetch_one_gen_batch"):
        assert list(inspect.signature(getattr(PPOTrainerSync, hook)).parameters) == ["self"], hook
    update = source(PPOTrainerSync._update_actor)
    assert "batch.extra_info.update(extra_info)" in update and "metrics.update(actor_metrics)" in update
    assert "self.role_worker_mapping" in source(PPOTrainerSync._init_resource_pool_mgr)


@only_v0
def test_seam4_v0_trainer_hooks():
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    assert verl_seams.trainer_base() is RayPPOTrainer
    assert list(inspect.signature(RayPPOTrainer._update_actor).parameters) == ["self", "batch"]
    for hook in ("_save_checkpoint", "_load_checkpoint"):
        assert list(inspect.signature(getattr(RayPPOTrainer, hook)).parameters) == ["self"], hook
    update = source(RayPPOTrainer._update_actor)
    assert "batch_td = batch.to_tensordict()" in update  # meta_info travels as non-tensor data
    assert 'DataProto.from_single_dict(data={}, meta_info={"metrics": actor_output})' in update
    fit = source(RayPPOTrainer.fit)
    assert "actor_output = self._update_actor(batch)" in fit
    assert 'reduce_metrics(actor_output.meta_info["metrics"])' in fit
    assert "self._load_checkpoint()" in fit and "self._save_checkpoint()" in fit
    save = source(RayPPOTrainer._save_checkpoint)
    assert 'f"global_step_{self.global_steps}"' in save and "latest_checkpointed_iteration.txt" in save


@only_v1
def test_seam5_v1_task_runner():
    from verl.trainer.main_ppo import TaskRunnerV1

    assert isinstance(verl_seams.v1_task_runner_base(), type)
    assert verl_seams.v1_task_runner_base() is TaskRunnerV1.__ray_actor_class__


@only_v0
def test_seam5_v0_task_runner():
    from verl.trainer import main_ppo

    run = source(main_ppo.TaskRunner.run)
    assert "trainer = RayPPOTrainer(" in run and "self.add_actor_rollout_worker(config)" in run
    assert "self.role_worker_mapping[role] = ray.remote(actor_rollout_cls)" in source(
        main_ppo.TaskRunner.add_actor_rollout_worker
    )
    assert hasattr(main_ppo, "RayPPOTrainer")


def test_seam6_run_ppo_takes_a_task_runner_class():
    from verl.trainer.main_ppo import run_ppo

    assert "task_runner_class" in inspect.signature(run_ppo).parameters


@only_v0
def test_seam7_v0_main_migrates_legacy_reward_settings():
    from verl.trainer import main_ppo

    assert "config = migrate_legacy_reward_impl(config)" in source(main_ppo.main)


# --- the CPU layer's seams (sfpo_verl/cpu/verl_seams.py) ---


def test_cpu_seam1_engine_registry_shape():
    from verl.workers.engine import EngineRegistry

    assert isinstance(EngineRegistry._engines, dict)
    assert "fsdp2" in EngineRegistry._engines["language_model"]
    assert "cuda" in EngineRegistry._engines["language_model"]["fsdp2"]
    assert cpu_seams.engine_registered("language_model", "fsdp2", "cuda")
    assert "device" in inspect.signature(EngineRegistry.register).parameters


def test_cpu_seam2_rollout_registry_is_a_private_dict_read_by_get_rollout_class():
    from verl.workers.rollout import base

    assert isinstance(base._ROLLOUT_REGISTRY, dict)
    assert "_ROLLOUT_REGISTRY[(rollout_name, mode)]" in source(base.get_rollout_class)


def test_cpu_seam3_verl_starts_a_two_backend_group_unless_one_exists():
    from verl.utils import distributed

    start = source(distributed.initialize_global_process_group_ray)
    assert 'f"cpu:gloo,{get_device_name()}:{get_nccl_backend()}"' in start
    assert "if not torch.distributed.is_initialized():" in start


def test_cpu_seam4_platform_registry_only_on_v1():
    assert cpu_seams.has_platform_registry() is (not V0)


@only_v0
def test_cpu_seam5_v0_device_module_is_torch_cpu():
    from verl.utils import device

    assert "getattr(torch, device_name)" in source(device.get_torch_device)
    assert 'device = "cpu"' in source(device.get_device_name)


@only_v0
def test_cpu_seam6_v0_padding_helpers_need_flash_attn():
    from verl.utils import attention_utils, npu_flash_attn_utils

    assert "from flash_attn.bert_padding import" in source(attention_utils)  # the file, as verl ships it
    assert not hasattr(attention_utils, "_fallback_unpad_input")
    assert {"index_first_axis", "pad_input", "rearrange", "unpad_input"} <= set(dir(npu_flash_attn_utils))
