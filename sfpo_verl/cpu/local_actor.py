"""verl actor workers in this process, for the equivalence tests and the update benchmark:
a Qwen2 with random weights built locally, verl's config composed through sfpo_trainer.yaml,
and GRPO-shaped batches fed to the real FSDP2 engine. On the CPU (the default): the CPU
platform's settings (fp32, eager attention), gloo. On CUDA: verl's defaults (bf16 compute over
fp32 master weights, nccl).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.utils.padding import left_right_2_no_padding, no_padding_2_padding

from sfpo_verl.core.trainer.config import CONFIG_DIR
from sfpo_verl.cpu.settings import cpu_overrides, merge_overrides
from sfpo_verl.cpu.task.model import ModelSize, build_model
from sfpo_verl.cpu.task.tokenizer import CHARACTERS, SPECIAL_TOKENS, build_tokenizer

PROMPT_LEN, RESPONSE_LEN = 6, 8
# The parts of the config an in-process actor worker reads.
ACTOR_SECTIONS = ("actor_rollout_ref.actor.", "actor_rollout_ref.model.")


def build_random_qwen2(path: Path, seed: int = 0, hidden_size: int = 32, num_layers: int = 2) -> Path:
    """A Qwen2 with random weights and the task's character tokenizer, saved to `path`
    (the defaults: 2 layers, hidden 32, ~27K parameters)."""
    size = ModelSize(
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers,
        max_position_embeddings=256,
    )
    tokenizer = build_tokenizer()
    build_model(tokenizer, size, seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_qwen2_shaped(path: Path, shape: dict, seed: int = 0) -> Path:
    """A Qwen2 with random weights and a real model's shape (`shape`: Qwen2Config fields, e.g.
    Qwen2.5-0.5B's), saved in bf16 beside the task's character tokenizer (ids < vocab)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    config = Qwen2Config(**shape, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # random init of 1B+ weights is slow on CPU
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return path


def compose_config(model_path: Path, overrides: list[str] = (), device: str = "cpu"):
    """sfpo_trainer config for in-process engine workers: on the CPU the CPU platform's actor and
    model settings (fp32, eager attention, no compile: sfpo_verl/cpu/platform/cpu_settings.yaml);
    on CUDA verl's defaults (bf16 mixed precision, fp32 master weights) with sdpa attention, or
    flash-attention with packed sequences when flash-attn is installed."""
    if device == "cpu":
        actor = {key: value for key, value in cpu_overrides().items() if key.lstrip("+").startswith(ACTOR_SECTIONS)}
        device_options = merge_overrides(actor, [])
    else:
        flash = _flash_attn_installed()
        device_options = [
            "actor_rollout_ref.model.enable_gradient_checkpointing=false",
            f"actor_rollout_ref.model.use_remove_padding={str(flash).lower()}",
            f"+actor_rollout_ref.model.override_config.attn_implementation={'flash_attention_2' if flash else 'sdpa'}",
            "actor_rollout_ref.actor.strategy=fsdp2",
            "actor_rollout_ref.actor.fsdp_config.use_torch_compile=false",
            "actor_rollout_ref.actor.use_torch_compile=false",
        ]
    base = [
        f"actor_rollout_ref.model.path={model_path}",
        *device_options,
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.n=2",
        "actor_rollout_ref.actor.optim.lr=1e-2",
        "actor_rollout_ref.actor.optim.total_training_steps=10",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose("sfpo_trainer", overrides=base + list(overrides))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flash_attn_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def set_dist_env(rank: int = 0, world_size: int = 1, port: int | None = None, device: str = "cpu") -> None:
    """The environment verl's Worker reads (Ray normally sets it)."""
    if device == "cpu":
        os.environ["VERL_PLATFORM"] = "cpu"
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK="0",
        LOCAL_WORLD_SIZE="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port or os.environ.get("MASTER_PORT") or free_port()),
    )


def make_actor(config, sfpo: bool, device: str = "cpu"):
    """An initialised actor-role worker: SFPO's subclass or verl's stock one."""
    from verl.workers.engine_workers import ActorRolloutRefWorker

    from sfpo_verl.core.workers import SFPOActorRolloutRefWorker
    from sfpo_verl.cpu.platform import init_cpu_process_group, register, register_cpu_engine
    from sfpo_verl.cpu.platform.allocator import keep_freed_memory_in_this_process

    if device == "cpu":
        keep_freed_memory_in_this_process()
        register()  # what the plugin does on verl 0.9.x; verl 0.8.x loads no plugin
        register_cpu_engine()
        init_cpu_process_group()
    worker_cls = SFPOActorRolloutRefWorker if sfpo else ActorRolloutRefWorker
    worker = worker_cls(config=config.actor_rollout_ref, role="actor")
    worker.init_model()
    return worker


def make_batch(
    batch_size: int = 8, seed: int = 0, prompt_len: int = PROMPT_LEN, response_len: int = RESPONSE_LEN
) -> TensorDict:
    """A GRPO-shaped padded batch (left-padded prompts, right-padded responses, advantages)."""
    gen = torch.Generator().manual_seed(seed)
    prompt_lens = torch.randint(2, prompt_len + 1, (batch_size,), generator=gen)
    response_lens = torch.randint(3, response_len + 1, (batch_size,), generator=gen)
    seq_len = prompt_len + response_len
    input_ids = torch.zeros(batch_size, seq_len, dtype=torch.long)
    attention_mask = torch.zeros(batch_size, seq_len, dtype=torch.long)
    for i in range(batch_size):
        p, r = int(prompt_lens[i]), int(response_lens[i])
        # ordinary characters only (ids after the special tokens)
        tokens = torch.randint(len(SPECIAL_TOKENS), len(SPECIAL_TOKENS) + len(CHARACTERS), (p + r,), generator=gen)
        input_ids[i, prompt_len - p : prompt_len + r] = tokens
        attention_mask[i, prompt_len - p : prompt_len + r] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    response_mask = attention_mask[:, prompt_len:].clone()
    # GRPO-like advantages: one scalar per sequence, spread over its response tokens
    advantages = torch.randn(batch_size, 1, generator=gen) * response_mask
    return TensorDict(
        {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "prompts": input_ids[:, :prompt_len].clone(),
            "responses": input_ids[:, prompt_len:].clone(),
            "response_mask": response_mask,
            "advantages": advantages.float(),
        },
        batch_size=[batch_size],
    )


def with_old_log_probs(worker, padded: TensorDict) -> TensorDict:
    """Add old_log_probs computed by the worker at its current weights (as verl's trainer does)."""
    td = left_right_2_no_padding(padded.clone())
    tu.assign_non_tensor(td, calculate_entropy=False, compute_loss=False, temperature=1.0)
    output = worker.compute_log_prob(td)
    padded = padded.clone()
    padded["old_log_probs"] = no_padding_2_padding(tu.get(output, "log_probs"), td).float()
    return padded


def update_batch(
    padded: TensorDict, *, mini_batch_size: int, epochs: int = 1, shuffle: bool = False, **sfpo_controls
) -> TensorDict:
    """The actor-update input verl's trainer builds (no-padding layout plus step controls)."""
    td = left_right_2_no_padding(padded.clone())
    tu.assign_non_tensor(
        td,
        calculate_entropy=True,
        distillation_use_topk=False,
        distillation_only=False,
        global_batch_size=mini_batch_size,
        mini_batch_size=mini_batch_size,
        epochs=epochs,
        seed=42,
        dataloader_kwargs={"shuffle": shuffle},
        compute_loss=True,
        temperature=1.0,
        **sfpo_controls,
    )
    return td


def full_params(worker) -> dict[str, torch.Tensor]:
    """The actor's full (unsharded) fp32 parameters, by name."""
    from torch.distributed.tensor import DTensor

    return {
        name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone()
        for name, p in worker.actor.engine.module.named_parameters()
    }
