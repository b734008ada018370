"""The `hf` rollout server: a Ray actor answering verl's token-in/token-out `generate`.

verl's agent-loop workers call `generate` once per sample, concurrently. Requests that
arrive while a batch is decoding wait and form the next batch, so the model runs one
batched decode loop at a time instead of one sequence at a time. Weights arrive from the
trainer workers through `begin/load/finish_weight_update` (verl's naive sync path, see
adapter.py) and are copied in place: the server never holds a second copy of the model.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

import torch

from sfpo_verl.cpu.rollout.generator import BatchGenerator, Generation, SamplingSettings

logger = logging.getLogger(__name__)

# How long the batcher waits for more concurrent requests before starting a batch.
_COLLECT_SECONDS = 0.02


def server_actor_name(replica_rank: int, node_rank: int = 0, name_suffix: str = "") -> str:
    """Ray actor name of a replica's server; the trainer-side adapter looks it up by this name."""
    return f"hf_server_{replica_rank}_{node_rank}{name_suffix}"


class HFRolloutServer:
    """Serves one rollout replica from a Hugging Face model held in host memory."""

    def __init__(self, config, model_config, replica_rank: int):
        from transformers import AutoModelForCausalLM
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig, RolloutConfig

        self.config: RolloutConfig = omega_conf_to_dataclass(config, dataclass_type=RolloutConfig)
        self.model_config: HFModelConfig = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank

        attn = (self.model_config.override_config or {}).get("attn_implementation", "eager")
        model = AutoModelForCausalLM.from_pretrained(
            self.model_config.local_path,
            dtype=_torch_dtype(self.config.dtype),
            attn_implementation=attn if attn in ("eager", "sdpa") else "eager",
            trust_remote_code=self.model_config.trust_remote_code,
        )
        tokenizer = self.model_config.tokenizer
        eos_ids = _as_list(self.model_config.generation_config.eos_token_id if self.model_config.generation_config else None)
        eos_ids += _as_list(tokenizer.eos_token_id)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
        self.generator = BatchGenerator(model, eos_ids, pad_id)
        self._seed = self.config.seed + replica_rank
        # How often each prompt was asked for since the weights of the current step arrived:
        # with the step, seeds its k-th sample, so what a run samples depends neither on how
        # concurrent requests happened to be batched nor on what this process served before the
        # step (a run resumed from a checkpoint samples what the uninterrupted run sampled).
        self._times_asked: dict[int, int] = {}
        self._times_asked_step: Optional[int] = None
        # Parameters by every name they answer to (tied embeddings have two).
        self._params = dict(model.named_parameters(remove_duplicate=False))
        self._received: set[int] = set()

        self.global_steps: Optional[int] = None
        self._pending: list[tuple[list[int], SamplingSettings, torch.Generator, asyncio.Future]] = []
        self._has_pending: Optional[asyncio.Event] = None
        self._batcher: Optional[asyncio.Task] = None
        self._model_lock: Optional[asyncio.Lock] = None

    # ---- generation ----

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Optional[list[Any]] = None,
        video_data: Optional[list[Any]] = None,
        **kwargs,
    ):
        from verl.workers.rollout.replica import TokenOutput

        if image_data or video_data or kwargs.get("audio_data"):
            raise NotImplementedError("The hf rollout is text-only: no image, video or audio inputs.")
        prompt_ids = [int(t) for t in prompt_ids]
        room = self.config.prompt_length + self.config.response_length - len(prompt_ids)
        settings = SamplingSettings.from_verl(
            sampling_params, default_max_new_tokens=min(self.config.response_length, room)
        )
        if settings.max_new_tokens < 1:
            raise ValueError(
                f"Prompt of {len(prompt_ids)} tokens leaves no room to generate within "
                f"prompt_length + response_length = {self.config.prompt_length + self.config.response_length}."
            )
        self._start_batcher()
        done = asyncio.get_running_loop().create_future()
        self._pending.append((prompt_ids, settings, self._request_rng(prompt_ids), done))
        self._has_pending.set()
        result: Generation = await done
        return TokenOutput(
            token_ids=result.token_ids,
            log_probs=result.log_probs,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    def _request_rng(self, prompt_ids: list[int]) -> torch.Generator:
        """The k-th request for this prompt at this step draws from seed (run seed, step, prompt, k).
        The step is the one whose weights the server holds (verl syncs them after every update and
        on resume), so it is the same in a resumed run as in an uninterrupted one."""
        if self._times_asked_step != self.global_steps:
            self._times_asked, self._times_asked_step = {}, self.global_steps
        key = hash(tuple(prompt_ids))  # ints only: the same in every process, unlike str hashes
        k = self._times_asked.get(key, 0)
        self._times_asked[key] = k + 1
        return torch.Generator().manual_seed(hash((self._seed, self.global_steps, key, k)) & 0x7FFF_FFFF_FFFF_FFFF)

    def _start_batcher(self) -> None:
        # asyncio objects must be created on the actor's event loop, i.e. inside a call.
        if self._batcher is None:
            self._has_pending = asyncio.Event()
            self._model_lock = asyncio.Lock()
            self._batcher = asyncio.get_running_loop().create_task(self._run_batches())

    async def _run_batches(self) -> None:
        while True:
            await self._has_pending.wait()
            await asyncio.sleep(_COLLECT_SECONDS)
            batch = self._pending[: self.config.max_num_seqs]
            self._pending = self._pending[len(batch) :]
            if not self._pending:
                self._has_pending.clear()
            prompts, settings, rngs, futures = zip(*batch)
            try:
                async with self._model_lock:
                    results = await asyncio.to_thread(self.generator.generate, list(prompts), list(settings), list(rngs))
            except Exception as error:  # every waiting request sees the failure
                for future in futures:
                    future.set_exception(error)
                continue
            for future, result in zip(futures, results):
                future.set_result(result)

    # ---- weight sync (called by HFServerAdapter on the replica's first trainer rank) ----

    async def begin_weight_update(self) -> None:
        self._received = set()

    async def load_weights(self, named_tensors: list[tuple[str, torch.Tensor]]) -> None:
        """Copy a bucket of full tensors into the model, in place."""
        self._start_batcher()
        async with self._model_lock:
            for name, tensor in named_tensors:
                param = self._params.get(name)
                if param is None:
                    raise KeyError(f"Weight {name!r} from the trainer matches no parameter of the rollout model.")
                param.data.copy_(tensor)
                self._received.add(id(param))

    async def finish_weight_update(self, global_steps: Optional[int] = None) -> None:
        missing = sorted(n for n, p in self._params.items() if id(p) not in self._received)
        if missing:
            raise RuntimeError(f"Weight update left parameters of the rollout model untouched: {missing[:5]} ...")
        self.global_steps = global_steps

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    async def get_global_steps(self) -> Optional[int]:
        return self.global_steps

    # ---- lifecycle calls verl fans out to every server; nothing to do in host memory ----

    async def wake_up(self, tags: Optional[list[str]] = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None  # the cache lives only inside one decode loop

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False) -> dict:
        # Sync training never aborts mid-batch; partial rollout is not supported.
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        return None

    async def start_profile(self, **kwargs) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


def _torch_dtype(name: str) -> torch.dtype:
    dtypes = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32,
              "float16": torch.float16, "fp16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"actor_rollout_ref.rollout.dtype={name} is not one of {sorted(dtypes)}")
    return dtypes[name]


def _as_list(token_ids) -> list[int]:
    if token_ids is None:
        return []
    return [int(t) for t in (token_ids if isinstance(token_ids, (list, tuple)) else [token_ids])]
