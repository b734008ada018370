"""Does the Ray cluster fit the run? Checked before verl builds its worker groups.

verl asks Ray for one placement group per trainer node: `trainer.n_gpus_per_node` bundles of
{CPU: 3, <accelerator>: 1}, packed on one node. TransferQueue's controller and storage units
(1 CPU each, held for life) and the unreserved CPU that Ray wants for each CPU-less helper
actor may land on any node, before the placement groups exist. A node short of any of that
leaves verl waiting in `ray.get(pg.ready())` forever, without a word. So:

- `check_cluster_fits` compares what each trainer node needs with `ray.nodes()` and stops
  with one line per short node (its address, what it has, what the run needs, the fix);
- `PlacementWatchdog` bounds the wait for shapes the check cannot predict: a placement group
  still pending after the timeout is named with the bundles it waits for and removed, so
  verl's wait fails instead of hanging.
"""

from __future__ import annotations

import sys
import threading
import time

import ray
from omegaconf import DictConfig
from ray.util.placement_group import PlacementGroup, remove_placement_group

# verl's FSDP resource pools (ResourcePoolManager, max_colocate_count=3): CPUs per bundle.
CPUS_PER_WORKER_BUNDLE = 3
# TransferQueue's controller and each SimpleStorage unit hold one CPU each (@ray.remote(num_cpus=1)).
CPUS_PER_TRANSFER_QUEUE_ACTOR = 1
# Actors created without a CPU request (task runner, agent-loop and reward-loop workers, load
# balancer, rollout servers) hold no CPU once running, but Ray schedules each only where at
# least one CPU is unreserved.
UNRESERVED_CPUS = 2


class ClusterTooSmall(RuntimeError):
    """The cluster cannot host the run's placement groups; the message says which nodes and the fix."""


def cpus_per_node(config: DictConfig) -> int:
    """The CPUs each trainer node must offer: its ranks' bundles, plus room for the TransferQueue
    actors and the unreserved CPUs, which Ray may place on any node."""
    backend = config.transfer_queue.backend
    storage_units = backend.SimpleStorage.num_data_storage_units if backend.storage_backend == "SimpleStorage" else 0
    besides_workers = CPUS_PER_TRANSFER_QUEUE_ACTOR * (1 + storage_units) + UNRESERVED_CPUS
    return CPUS_PER_WORKER_BUNDLE * config.trainer.n_gpus_per_node + besides_workers


def short_nodes(config: DictConfig, nodes: list[dict], accelerator: str) -> list[str]:
    """One line per alive node that cannot host a trainer node's share of the run, when fewer
    than `trainer.nnodes` nodes can; [] when the cluster fits. `nodes`: `ray.nodes()`."""
    need_cpus, need_accel = cpus_per_node(config), int(config.trainer.n_gpus_per_node)
    alive = [node for node in nodes if node.get("Alive", node.get("alive", False))]
    fits = [n for n in alive if _has(n, "CPU") >= need_cpus and _has(n, accelerator) >= need_accel]
    if len(fits) >= config.trainer.nnodes:
        return []
    lines = [
        f"sfpo_verl: the Ray cluster has {len(fits)} node(s) that fit a trainer node, the run needs "
        f"trainer.nnodes={config.trainer.nnodes}; each needs {need_cpus} CPUs and {need_accel} {accelerator} "
        f"({CPUS_PER_WORKER_BUNDLE} CPUs per trainer rank, plus TransferQueue's actors and helpers, which Ray may "
        f"place on any node)"
    ]
    for node in alive:
        if node in fits:
            continue
        lines.append(
            f"sfpo_verl: node {node.get('NodeManagerAddress', '?')} ({node.get('NodeID', '?')[:8]}) has "
            f"{_has(node, 'CPU'):g} CPUs and {_has(node, accelerator):g} {accelerator}, needs {need_cpus} CPUs and "
            f"{need_accel} {accelerator}: start it with `ray start ... --num-cpus {need_cpus}"
            f"{f' --num-gpus {need_accel}' if accelerator == 'GPU' else ''}` (or more), or lower "
            f"trainer.n_gpus_per_node / trainer.nnodes"
        )
    return lines


def check_cluster_fits(config: DictConfig) -> None:
    """Raise ClusterTooSmall, its message one line per short node, unless the running cluster fits."""
    from verl.plugin.platform import get_platform

    lines = short_nodes(config, ray.nodes(), get_platform().ray_resource_name())
    if lines:
        raise ClusterTooSmall("\n".join(lines))


def _has(node: dict, resource: str) -> float:
    return float(node.get("Resources", {}).get(resource, 0.0))


class PlacementWatchdog:
    """While active, removes any placement group that stays pending longer than `timeout_s`,
    after printing its name, its bundles and what each node has free: verl's wait for it then
    fails with Ray's error instead of hanging."""

    def __init__(self, timeout_s: float | None, poll_s: float = 2.0):
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.stalled: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sfpo-placement-watchdog", daemon=True)

    def __enter__(self) -> "PlacementWatchdog":
        if self.timeout_s is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        first_seen: dict[str, float] = {}
        while not self._stop.wait(self.poll_s):
            for pg_id, entry in ray.util.placement_group_table().items():
                if entry.get("state") != "PENDING":
                    continue
                since = first_seen.setdefault(pg_id, time.monotonic())
                if time.monotonic() - since >= self.timeout_s:
                    self._give_up(pg_id, entry)

    def _give_up(self, pg_id: str, entry: dict) -> None:
        bundles = list(entry.get("bundles", {}).values())
        free = {node["NodeManagerAddress"]: node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")}
        line = (
            f"sfpo_verl: placement group {entry.get('name') or pg_id} ({entry.get('strategy')}) waited "
            f"{self.timeout_s:g}s for bundles {bundles}; the nodes declare {free}: give a node room for all of "
            f"them (see the run's first line), or raise cluster_check.placement_timeout_s"
        )
        self.stalled.append(line)
        print(line, file=sys.stderr, flush=True)
        remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(pg_id))))
