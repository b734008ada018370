"""Turn a verl run into a CPU run: `trainer.device=cpu` is the one switch.

`configure_cpu_run(config)` is called by the entry point before `ray.init` and before
verl's `auto_set_device` (which would rewrite `trainer.device` to the accelerator it
detects). It checks the config for options that only work on a GPU, naming the override
that fixes each, then makes every process verl starts use the CPU platform and glibc
malloc settings that keep freed memory (allocator.py), and sizes Ray's resources so
verl's placement groups fit on a small machine. On a running Ray cluster
(`ray_kwargs.ray_init.address` or `RAY_ADDRESS`) the nodes declare the resources and only
the environment is passed on.
"""

from __future__ import annotations

import logging
import os

from omegaconf import DictConfig, OmegaConf, open_dict

from sfpo_verl.core.trainer.cluster_fit import CPUS_PER_WORKER_BUNDLE, cpus_per_node
from sfpo_verl.cpu.platform.allocator import keep_freed_memory_in_this_process, worker_env
from sfpo_verl.cpu.platform.cpu import CPU_PLATFORM_NAME, cpu_platform_selected, register, register_cpu_engine

logger = logging.getLogger(__name__)

# The rollout backends verl ships all need a GPU; `hf` is this package's CPU backend.
CPU_ROLLOUT_NAME = "hf"
GPU_ONLY_ROLLOUTS = ("vllm", "sglang", "trtllm")
CPU_ATTN_IMPLEMENTATIONS = ("eager", "sdpa")

class CPURunConfigError(ValueError):
    """A CPU run was asked for with an option that needs a GPU (or the reverse)."""


def configure_cpu_run(config: DictConfig) -> bool:
    """Prepare `config` and this process for a CPU run when `trainer.device == "cpu"`.

    Safe to call for every run: with another device it only refuses a stray
    `VERL_PLATFORM=cpu` in the environment (CPU mode is never on unless asked for)
    and returns False. Raises CPURunConfigError listing every option to change.
    """
    if config.trainer.device != CPU_PLATFORM_NAME:
        if cpu_platform_selected():
            raise CPURunConfigError(
                f"VERL_PLATFORM=cpu is set in the environment but trainer.device={config.trainer.device}. "
                "CPU mode is only turned on by trainer.device=cpu: unset VERL_PLATFORM or pass trainer.device=cpu."
            )
        return False

    problems = find_gpu_only_options(config)
    if problems:
        raise CPURunConfigError(
            "trainer.device=cpu was asked for, but these options need a GPU:\n  - " + "\n  - ".join(problems)
        )
    if _cuda_available():
        logger.warning("A CUDA GPU is present, but trainer.device=cpu was asked for: training on the CPU.")

    _select_cpu_platform_in_this_process()
    keep_freed_memory_in_this_process()
    _configure_ray(config)
    return True


def find_gpu_only_options(config: DictConfig) -> list[str]:
    """Every option of `config` that cannot run on the CPU, each with the override that fixes it."""
    problems = []
    arr = config.actor_rollout_ref

    rollout_name = OmegaConf.select(arr, "rollout.name", throw_on_missing=False)
    if rollout_name is None:
        problems.append(f"actor_rollout_ref.rollout.name is not set: pass actor_rollout_ref.rollout.name={CPU_ROLLOUT_NAME}")
    elif rollout_name in GPU_ONLY_ROLLOUTS:
        problems.append(
            f"actor_rollout_ref.rollout.name={rollout_name} needs a GPU: "
            f"pass actor_rollout_ref.rollout.name={CPU_ROLLOUT_NAME} (Hugging Face transformers on the CPU)"
        )
    elif rollout_name != CPU_ROLLOUT_NAME:
        problems.append(
            f"actor_rollout_ref.rollout.name={rollout_name} is not a rollout backend of this build: "
            f"pass actor_rollout_ref.rollout.name={CPU_ROLLOUT_NAME}"
        )

    roles = {"actor_rollout_ref.actor": arr.actor, "actor_rollout_ref.ref": arr.ref}
    if _critic_enabled(config):
        roles["critic"] = config.critic
    for prefix, role in roles.items():
        if role.strategy != "fsdp2":
            problems.append(
                f"{prefix}.strategy={role.strategy}: only FSDP2 runs on the CPU "
                f"(FSDP1 needs a GPU to sync module states): pass {prefix}.strategy=fsdp2"
            )

    for prefix, model in _model_sections(config).items():
        attn = (model.get("override_config") or {}).get("attn_implementation", "flash_attention_2")
        if attn not in CPU_ATTN_IMPLEMENTATIONS:
            problems.append(
                f"{prefix}.override_config.attn_implementation={attn} (verl's default is flash_attention_2) "
                f"needs a GPU: pass +{prefix}.override_config.attn_implementation=eager"
            )
        if model.get("use_remove_padding", False):
            problems.append(
                f"{prefix}.use_remove_padding=true packs sequences for flash-attention's varlen kernels "
                f"(eager attention would attend across them): pass {prefix}.use_remove_padding=false"
            )
        if model.get("use_liger", False):
            problems.append(f"{prefix}.use_liger=true uses Triton GPU kernels: pass {prefix}.use_liger=false")

    if _critic_enabled(config):
        # verl/utils/model.py load_valuehead_model passes attn_implementation="flash_attention_2"
        # whatever the model config says
        problems.append(
            f"algorithm.adv_estimator={config.algorithm.adv_estimator} trains a critic, and verl 0.9.1 loads the "
            "critic's value-head model with flash-attention hard-coded (no CPU kernel): pass "
            "algorithm.adv_estimator=grpo on the CPU, or run the critic on a GPU"
        )
    lora = arr.model.get("lora_rank", 0) > 0
    if _reference_needed(config) and not lora:
        # verl's FSDP2 engine gives every forward-only model CPUOffloadPolicy(pin_memory=True),
        # and pinning host memory needs an accelerator
        problems.append(
            "actor_rollout_ref.actor.use_kl_loss / algorithm.use_kl_in_reward need a reference model, which "
            "verl 0.9.1 builds in pinned host memory (needs a GPU): on the CPU use them with LoRA "
            "(actor_rollout_ref.model.lora_rank=8: the reference is the actor without its adapters), or turn them off"
        )
    if lora and not arr.model.lora.get("merge", False):
        problems.append(
            f"actor_rollout_ref.model.lora_rank={arr.model.lora_rank}: the hf rollout loads whole weights, not LoRA "
            "adapters: pass actor_rollout_ref.model.lora.merge=true (verl merges the adapters before each weight sync)"
        )
    return problems


def ray_resources_for(config: DictConfig) -> tuple[int, int]:
    """(num_cpus, num_gpus) for ray.init so verl's worker placement groups fit on any machine.

    The CPU platform reports the Ray resource "GPU" (verl's resource check counts only
    GPU/NPU), so each trainer worker claims one logical GPU; Ray accepts logical GPUs
    on a GPU-less host. CPUs are logical too: Ray does not pin threads.
    """
    n_workers = config.trainer.n_gpus_per_node * config.trainer.nnodes
    num_cpus = CPUS_PER_WORKER_BUNDLE * n_workers + _cpus_besides_workers(config)
    return num_cpus, n_workers


def _cpus_besides_workers(config: DictConfig) -> int:
    """TransferQueue's actors and the unreserved CPUs the helper actors need, beside the trainer's bundles."""
    return cpus_per_node(config) - CPUS_PER_WORKER_BUNDLE * config.trainer.n_gpus_per_node


def ray_cluster_address(ray_init: DictConfig) -> str | None:
    """The address of the running Ray cluster `ray.init(**ray_init)` connects to, or None when
    it starts its own (Ray reads RAY_ADDRESS when no address is given; "local" means a new one)."""
    address = ray_init.get("address") or os.environ.get("RAY_ADDRESS") or None
    return None if address == "local" else address


def _configure_ray(config: DictConfig) -> None:
    num_cpus, num_gpus = ray_resources_for(config)
    ray_init = config.ray_kwargs.ray_init
    with open_dict(ray_init):
        asked_cpus = ray_init.get("num_cpus")
        address = ray_cluster_address(ray_init)
        if address is not None:
            # Ray refuses resource arguments when it connects to a cluster: its nodes declare them.
            if asked_cpus is not None or ray_init.get("num_gpus") is not None:
                raise CPURunConfigError(
                    f"ray_kwargs.ray_init.num_cpus/num_gpus cannot be passed when connecting to the Ray cluster at "
                    f"{address}: drop them and start each node with `ray start --num-gpus "
                    f"{config.trainer.n_gpus_per_node} --num-cpus {cpus_per_node(config)}` instead"
                )
            print(
                f"[sfpo] CPU mode on the Ray cluster at {address}: every node must offer "
                f"{config.trainer.n_gpus_per_node} logical GPUs and at least {cpus_per_node(config)} CPUs "
                f"(`ray start --num-gpus {config.trainer.n_gpus_per_node} --num-cpus {cpus_per_node(config)}`): "
                f"{CPUS_PER_WORKER_BUNDLE} per trainer rank, plus the TransferQueue actors and helpers, "
                f"which Ray may place on any node",
                flush=True,
            )
        elif asked_cpus is not None and asked_cpus < num_cpus:
            raise CPURunConfigError(
                f"ray_kwargs.ray_init.num_cpus={asked_cpus} is too small for {num_gpus} CPU trainer workers: "
                f"verl reserves {CPUS_PER_WORKER_BUNDLE} CPUs per worker and TransferQueue one per actor; pass at least "
                f"ray_kwargs.ray_init.num_cpus={num_cpus} (logical CPUs, any machine) or leave it unset"
            )
        else:
            ray_init.num_cpus = asked_cpus or num_cpus
            ray_init.num_gpus = num_gpus
            # The dashboard and its agent poll every process; on a 2-core machine that is CPU
            # time the trainer, rollout and reward processes wait for.
            if ray_init.get("include_dashboard") is None:
                ray_init.include_dashboard = False
        # Every Ray process (workers, agent-loop and reward-loop workers, servers) must
        # resolve the CPU platform before verl first asks for it. The runtime env is the
        # only way the driver's variables reach processes of a running cluster's nodes.
        if ray_init.get("runtime_env") is None:
            ray_init.runtime_env = {}
        if ray_init.runtime_env.get("env_vars") is None:
            ray_init.runtime_env.env_vars = {}
        env_vars = ray_init.runtime_env.env_vars
        env_vars.VERL_PLATFORM = CPU_PLATFORM_NAME
        # TransferQueue raises torch to 8 threads around each transfer; on a small CPU
        # machine that oversubscribes the cores the trainer and rollout processes share.
        if env_vars.get("TQ_NUM_THREADS") is None:
            env_vars.TQ_NUM_THREADS = "1"
        for name, value in worker_env().items():
            if env_vars.get(name) is None:
                env_vars[name] = value


def _select_cpu_platform_in_this_process() -> None:
    os.environ["VERL_PLATFORM"] = CPU_PLATFORM_NAME
    register()
    register_cpu_engine()
    from verl.plugin.platform import get_platform, set_platform

    from sfpo_verl.cpu.platform import cpu

    # verl resolves the platform once per process and caches it: the driver may have
    # asked before VERL_PLATFORM was set.
    if get_platform().device_name != CPU_PLATFORM_NAME:
        set_platform(cpu.PlatformCPU())


def _critic_enabled(config: DictConfig) -> bool:
    from verl.trainer.ppo.utils import need_critic

    return need_critic(config)


def _reference_needed(config: DictConfig) -> bool:
    from verl.trainer.ppo.utils import need_reference_policy

    return need_reference_policy(config)


def _model_sections(config: DictConfig) -> dict[str, DictConfig]:
    sections = {"actor_rollout_ref.model": config.actor_rollout_ref.model}
    if _critic_enabled(config):
        sections["critic.model"] = config.critic.model
    return sections


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
