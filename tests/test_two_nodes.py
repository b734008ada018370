"""SFPO on a Ray cluster of two nodes: a head and a worker node started here, both on
127.0.0.1, each offering one logical GPU as CPU mode uses (Ray's own `cluster_utils.Cluster`,
torn down after the module).

- The real CPU trainer (`python -m sfpo_verl.main`, trainer.nnodes=2, n_gpus_per_node=1)
  connects to the cluster through `+ray_kwargs.ray_init.address`: each trainer rank reports
  its node and whether verl loaded this plugin there (one rank per node), and SFPO steps run
  with alpha > 0 and weight sync across both nodes. Neither the driver nor the nodes have
  VERL_PLATFORM in their environment: the run's runtime env must carry it.
- The same SFPO update of the same batch from the same weights, on two ranks placed on two
  nodes and on two ranks on one node (Ray tasks pinned with NodeAffinitySchedulingStrategy,
  verl's real FSDP2 engine on gloo): equal parameters at the two-rank test's tolerance
  (tests/test_update_equivalence.py), and a displacement norm reduced over both nodes' shards.
  Compared at the worker level because a trainer-level comparison would need two more trainer
  launches and identical rollouts; the trainer's own update is this worker's `update_actor`.
  These steps run while the trainer's launch is starting up on the same cluster.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import ray
import torch
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from torch.distributed.tensor import DTensor

from sfpo_verl.cpu.local_actor import (
    build_random_qwen2,
    compose_config,
    free_port,
    full_params,
    make_actor,
    make_batch,
    set_dist_env,
    update_batch,
    with_old_log_probs,
)
from sfpo_verl.cpu.task.build import TaskPaths, build_task
from sfpo_verl.smoke import SMOKE_TASK, STEPS, Arm, arm_overrides, check_arm, device_settings, launch

pytestmark = [pytest.mark.slow, pytest.mark.verl09(reason="end-to-end CPU runs (trainer.device=cpu)")]

LOOPBACK = "127.0.0.1"
NEAR_EXACT = dict(rtol=1e-5, atol=1e-5)  # the two-rank test's tolerance (test_update_equivalence.py)
MINI_BATCH = 4  # 8 sequences -> 2 optimizer steps per pass
ALPHA, INNER_STEPS = 0.5, 2
TRAINER_NODE_CPUS = 8  # logical; at least what the trainer's first line asks of every node (checked below)
# plus the three 1-CPU ranks that the worker-level steps run on the head node beside the trainer
NODE_CPUS = TRAINER_NODE_CPUS + 3
TRAINER_TIMEOUT_S = 300  # the run takes about 1.5 min on 2 cores
NODE_REQUIREMENT = re.compile(r"every node must offer (\d+) logical GPUs and at least (\d+) CPUs")
RANK_LINE = re.compile(
    r"\[sfpo\] (\w+) rank (\d+)/(\d+) on Ray node ([0-9a-f]+): verl loaded the sfpo_verl plugin: (yes|no); "
    r"platform: (\w+)"
)


@contextmanager
def loopback_cluster(node_cpus: list[int]):
    """A head and worker nodes on the loopback address, one logical GPU each, `node_cpus` CPUs."""
    ray_tmp = tempfile.mkdtemp(prefix="sfpo-2n-")
    with pytest.MonkeyPatch.context() as env:
        # Ray writes the cluster's address to $RAY_TMPDIR/ray/ray_current_cluster, where a plain
        # ray.init() on this machine would find and join it: keep it out of the shared /tmp/ray.
        env.setenv("RAY_TMPDIR", ray_tmp)
        # ray.init rewrites a loopback address to this host's network address unless Ray's
        # "no clusters" switch makes the host's address the loopback one: keep every driver here.
        env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # for the trainer's driver
        env.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)  # for this process (read at import)
        cluster = Cluster(shutdown_at_exit=True)
        try:
            with pytest.MonkeyPatch.context() as node_env:
                # The nodes' processes must not inherit CPU mode from this process.
                node_env.delenv("VERL_PLATFORM", raising=False)
                # Ports picked by Ray (None): other Ray instances on this machine hold the defaults.
                node = dict(node_ip_address=LOOPBACK, num_gpus=1, include_dashboard=False, dashboard_port=None,
                            dashboard_agent_listen_port=None, object_store_memory=200 * 1024**2)
                for cpus in node_cpus:
                    cluster.add_node(num_cpus=cpus, **node)
                cluster.wait_for_nodes(timeout=60)
            yield cluster
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()  # kills the processes of every node (while RAY_TMPDIR still points here)
            shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    # Ray may place the TransferQueue actors on either node: each must also have room for its
    # rank's 3-CPU bundle (a 4-CPU worker node once left verl waiting forever).
    with loopback_cluster([NODE_CPUS, NODE_CPUS]) as two_nodes:
        yield two_nodes


def node_ids(cluster) -> tuple[str, str]:
    (worker,) = cluster.worker_nodes
    return cluster.head_node.node_id, worker.node_id


# --- the same update on two nodes and on one node -------------------------------------------


def sfpo_step_on_rank(rank: int, world_size: int, port: int, model_path: str) -> dict:
    """One SFPO step on this rank's rows of the shared batch, then a step without the slow pass
    (which ends at the reposition, so its local displacement is measurable here)."""
    set_dist_env(rank, world_size, port)
    worker = make_actor(compose_config(model_path), sfpo=True)
    # interleave so that each global mini-batch holds the same rows as on one rank
    per_rank = MINI_BATCH // world_size
    rows = torch.tensor([i for start in range(0, 8, MINI_BATCH) for i in range(start + rank * per_rank,
                                                                                  start + (rank + 1) * per_rank)])
    batch = with_old_log_probs(worker, make_batch(8, seed=0)[rows])

    def update(**controls) -> dict:
        from verl.utils import tensordict_utils as tu

        output = worker.update_actor(update_batch(batch, mini_batch_size=MINI_BATCH, **controls))
        return tu.get(output, "metrics")

    step = update(sfpo_alpha=ALPHA, sfpo_inner_steps=INNER_STEPS)
    params = full_params(worker)

    shards = [p for p in worker.actor.engine.module.parameters() if p.requires_grad]
    before = [(p.to_local() if isinstance(p, DTensor) else p).detach().clone() for p in shards]
    no_slow = update(sfpo_alpha=ALPHA, sfpo_inner_steps=INNER_STEPS, sfpo_slow_correction=False)
    after = [(p.to_local() if isinstance(p, DTensor) else p).detach() for p in shards]
    # theta0 + alpha (thetaK - theta0) - theta0 = alpha (thetaK - theta0), on this rank's shard only
    local_sq = sum(((a - b) / ALPHA).double().square().sum() for a, b in zip(after, before)).item()
    torch.distributed.destroy_process_group()
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "params": params if rank == 0 else None,
        "norm": step["sfpo/fast_displacement_norm"],
        "no_slow_norm": no_slow["sfpo/fast_displacement_norm"],
        "local_sq_displacement": local_sq,
    }


@pytest.fixture(scope="module")
def worker_steps(cluster, trainer_launch, tmp_path_factory) -> dict[str, list[dict]]:
    """Both ranks' results, for ranks on two nodes and for ranks on one node (run side by side,
    and beside the trainer's launch, which `trainer_launch` has started; its tests come after
    these so that nothing waits for it before these steps have run)."""
    model_path = str(build_random_qwen2(tmp_path_factory.mktemp("tiny_qwen2") / "model"))
    head, worker = node_ids(cluster)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        # This module is not importable in Ray's workers: ship the step function by value.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        # A fresh process per rank (max_calls=1): a process group lives as long as its process.
        step = ray.remote(max_calls=1, num_cpus=1)(sfpo_step_on_rank)
        placements = {"two_nodes": (head, worker), "one_node": (head, head)}
        refs = {}
        for name, nodes in placements.items():
            port = free_port()
            refs[name] = [
                step.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
                    runtime_env={"env_vars": {"VERL_PLATFORM": "cpu"}},
                ).remote(rank, 2, port, model_path)
                for rank, node in enumerate(nodes)
            ]
        return {name: ray.get(ranks, timeout=300) for name, ranks in refs.items()}
    finally:
        ray.shutdown()


def test_the_ranks_ran_where_they_were_placed(cluster, worker_steps):
    head, worker = node_ids(cluster)
    assert [r["node_id"] for r in worker_steps["two_nodes"]] == [head, worker]
    assert [r["node_id"] for r in worker_steps["one_node"]] == [head, head]


def test_an_sfpo_update_on_two_nodes_equals_the_update_on_one_node(worker_steps):
    two, one = worker_steps["two_nodes"][0]["params"], worker_steps["one_node"][0]["params"]
    assert two.keys() == one.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], msg=lambda m, n=name: f"{n}: {m}", **NEAR_EXACT)
    max_difference = max((two[n] - one[n]).abs().max().item() for n in one)
    print(f"two nodes vs one node: max parameter difference {max_difference:.3g}")
    norms = [r["norm"] for r in worker_steps["two_nodes"] + worker_steps["one_node"]]
    assert norms == pytest.approx([norms[0]] * 4, rel=1e-5) and norms[0] > 0


def test_the_displacement_norm_is_reduced_over_both_nodes_shards(worker_steps):
    ranks = worker_steps["two_nodes"]
    local = [r["local_sq_displacement"] for r in ranks]
    reported = [r["no_slow_norm"] for r in ranks]
    print(f"reported norm {reported}, local shard norms {[s ** 0.5 for s in local]}")
    # every rank reports the norm over all shards, larger than its own shard's
    assert reported == pytest.approx([sum(local) ** 0.5] * 2, rel=1e-5)
    assert all(0 < s ** 0.5 < reported[0] * (1 - 1e-3) for s in local)


# --- the trainer on two nodes --------------------------------------------------------------


@pytest.fixture(scope="module")
def trainer_launch(cluster, tmp_path_factory):
    """The trainer's launch, running in the background from here on: the worker-level steps
    above run beside it on the same cluster (NODE_CPUS leaves room for both)."""
    out = tmp_path_factory.mktemp("two_nodes")
    build_task(out / "task", SMOKE_TASK, log=lambda *_: None)
    name = "sfpo_two_nodes"
    arm = Arm(name, "sfpo", {
        "trainer.nnodes": 2,
        "trainer.n_gpus_per_node": 1,
        "+ray_kwargs.ray_init.address": cluster.address,
        # The driver's environment does not reach a running cluster's processes: verl's file
        # logger (in the task runner) learns where launch() reads the metrics through the runtime env.
        "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH": out / name / "metrics.jsonl",
    })
    overrides = arm_overrides(arm, device_settings("cpu", "hf"), TaskPaths(out / "task"), out)
    with pytest.MonkeyPatch.context() as env, ThreadPoolExecutor(1) as pool:
        env.setenv("RAY_DEDUP_LOGS", "0")  # every rank's line reaches the driver's log
        yield arm, pool.submit(launch, arm, overrides, out, timeout_s=TRAINER_TIMEOUT_S)


@pytest.fixture(scope="module")
def trainer_run(trainer_launch):
    arm, launched = trainer_launch
    steps, _, log = launched.result()
    return arm, steps, log.read_text()


def test_every_trainer_rank_has_the_plugin_and_the_cpu_platform_on_its_own_node(cluster, trainer_run):
    _, _, log = trainer_run
    ranks = {(role, int(rank)): (node, plugin, platform)
             for role, rank, world, node, plugin, platform in RANK_LINE.findall(log) if world == "2"}
    assert {rank for _, rank in ranks} == {0, 1}, f"rank lines found: {ranks}"
    for (role, rank), (node, plugin, platform) in ranks.items():
        assert (plugin, platform) == ("yes", "cpu"), f"{role} rank {rank} on node {node}"
    actor_nodes = {rank: node for (role, rank), (node, _, _) in ranks.items() if "actor" in role}
    assert sorted(actor_nodes.values()) == sorted(node_ids(cluster)), f"ranks by node: {actor_nodes}"


def test_the_run_states_what_every_node_needs_and_the_nodes_offer_it(trainer_run):
    _, _, log = trainer_run
    (gpus, cpus), = {tuple(map(int, found)) for found in NODE_REQUIREMENT.findall(log)}
    assert gpus == 1 and cpus <= TRAINER_NODE_CPUS


def test_sfpo_steps_run_across_both_nodes(trainer_run):
    arm, steps, _ = trainer_run
    assert sorted(steps) == list(range(1, STEPS + 1))
    checks = check_arm(arm, steps, "cpu")
    for name in ("alpha", "weight_sync"):
        assert checks[name]["ok"], f"{name}: {checks[name]['detail']}"


# --- a cluster that cannot host the run -------------------------------------------------------

SHORT_NODE_CPUS = 4  # room for a rank's bundle, not for TransferQueue's actors too
REFUSAL_TIMEOUT_S = 150  # start-up and the check; the refusal itself comes before any worker exists


def test_a_cluster_with_a_short_node_is_refused_at_once_naming_the_node(tmp_path):
    with loopback_cluster([NODE_CPUS, SHORT_NODE_CPUS]) as short:
        build_task(tmp_path / "task", SMOKE_TASK, log=lambda *_: None)
        arm = Arm("short_cluster", "sfpo", {"trainer.nnodes": 2, "trainer.n_gpus_per_node": 1,
                                             "+ray_kwargs.ray_init.address": short.address})
        overrides = arm_overrides(arm, device_settings("cpu", "hf"), TaskPaths(tmp_path / "task"), tmp_path)
        with pytest.raises(RuntimeError) as failed:
            launch(arm, overrides, tmp_path, timeout_s=REFUSAL_TIMEOUT_S)
    log = (tmp_path / arm.name / "train.log").read_text()
    assert "did not finish within" not in str(failed.value), "the run waited instead of refusing"
    assert re.search(rf"sfpo_verl: node {LOOPBACK} \(\w+\) has {SHORT_NODE_CPUS} CPUs and 1 GPU, needs \d+ CPUs",
                     log), log[-3000:]
    assert "sfpo_verl: the Ray cluster has 1 node(s) that fit a trainer node" in log
