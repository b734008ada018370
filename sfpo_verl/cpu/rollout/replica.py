"""verl's RolloutReplica for the `hf` backend: one server actor per replica, next to its trainers."""

from __future__ import annotations

import ray
from verl.workers.rollout.replica import RolloutMode, RolloutReplica

from sfpo_verl.cpu.rollout.server import HFRolloutServer, server_actor_name


class HFRolloutReplica(RolloutReplica):
    """Launches the replica's HFRolloutServer on the node of its trainer workers.

    Only the hybrid mode (rollout colocated with the trainer, weights synced by verl's
    naive checkpoint engine) is served: that is the mode of verl's synchronous trainer.
    """

    async def launch_servers(self):
        if self.rollout_mode != RolloutMode.HYBRID:
            raise NotImplementedError(
                f"The hf rollout serves only the hybrid mode (synchronous trainer), not {self.rollout_mode}: "
                "keep trainer.v1.trainer_mode=sync and use hf for the actor rollout only."
            )
        node_id = await self.workers[0].__ray_call__.remote(lambda worker: ray.get_runtime_context().get_node_id())
        server = (
            ray.remote(HFRolloutServer)
            .options(
                name=server_actor_name(self.replica_rank, name_suffix=self.name_suffix),
                # Holds no CPU reservation: it decodes only while the trainers wait for rollouts.
                num_cpus=0,
                max_concurrency=self.max_concurrency,
                scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                    node_id=node_id, soft=False
                ),
            )
            .remote(
                config=self.config,
                model_config=self.model_config,
                replica_rank=self.replica_rank,
            )
        )
        await server.get_global_steps.remote()  # surfaces a failed model load here, not at first generate
        self.servers = [server]
        self._server_handle = server
        # Only a router key: the hf server speaks Ray calls, not HTTP.
        self._server_address = server_actor_name(self.replica_rank, name_suffix=self.name_suffix)

    def rollout_worker_use_gpu(self) -> bool:
        return False
