"""The trainer-side half of the `hf` rollout: verl's BaseRollout inside each trainer worker.

verl's naive weight sync (`ActorRolloutRefWorker.update_weights`) hands every trainer
rank the same generator of full tensors after each step. Draining it is a collective
(FSDP all-gathers each parameter), so every rank iterates it; the replica's first rank
also ships the tensors, bucket by bucket, to the replica's HFRolloutServer.
"""

from __future__ import annotations

import os
from typing import Optional

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.utils import ensure_async_iterator

from sfpo_verl.cpu.rollout.server import server_actor_name


class HFServerAdapter(BaseRollout):
    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        ranks_per_replica = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        rank = int(os.environ["RANK"])
        self.replica_rank = rank // ranks_per_replica if replica_rank == -1 else replica_rank
        self.is_sender = rank % ranks_per_replica == 0
        self.bucket_bytes = self.config.checkpoint_engine.update_weights_bucket_megabytes << 20
        self._server = None

    def _server_handle(self):
        # Looked up lazily: the server is launched after the trainer workers.
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]):
        return None  # weights and cache stay in host memory: nothing to page back in

    async def release(self):
        return None

    @torch.no_grad()
    async def update_weights(self, weights, wire_format: str = "named_tensors", global_steps: Optional[int] = None,
                             **kwargs):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"The hf rollout takes full tensors (named_tensors), not {wire_format}.")
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError("The hf rollout takes merged weights: set actor_rollout_ref.model.lora.merge=true.")
        server = self._server_handle() if self.is_sender else None
        if server is not None:
            await server.begin_weight_update.remote()
        bucket, bucket_size = [], 0
        async for name, tensor in ensure_async_iterator(weights):
            if server is None:
                continue  # still drained: each full tensor is gathered collectively
            bucket.append((name, tensor.detach().cpu()))
            bucket_size += tensor.numel() * tensor.element_size()
            if bucket_size >= self.bucket_bytes:
                await server.load_weights.remote(bucket)
                bucket, bucket_size = [], 0
        if server is not None:
            if bucket:
                await server.load_weights.remote(bucket)
            await server.finish_weight_update.remote(global_steps)
