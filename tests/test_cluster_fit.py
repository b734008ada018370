"""A Ray cluster that cannot host the run is refused before verl builds anything, one line per
short node; a placement group that cannot be placed stops the run after a timeout, named with
what it waits for (sfpo_verl/core/trainer/cluster_fit.py). The refusal of a real two-node loopback
cluster with a short node: tests/test_two_nodes.py."""

from __future__ import annotations

import pytest
import ray
from hydra import compose, initialize_config_dir

from sfpo_verl.core.trainer.cluster_fit import PlacementWatchdog, cpus_per_node, short_nodes
from sfpo_verl.core.trainer.config import CONFIG_DIR


def config_for(nnodes: int, gpus_per_node: int):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose("sfpo_trainer", overrides=[f"trainer.nnodes={nnodes}", f"trainer.n_gpus_per_node={gpus_per_node}"])


def node(address: str, cpus: float, gpus: float, alive: bool = True) -> dict:
    return {"NodeID": "ab" * 20, "NodeManagerAddress": address, "Alive": alive, "Resources": {"CPU": cpus, "GPU": gpus}}


def test_each_trainer_node_needs_its_bundles_and_room_for_transfer_queue_and_helpers():
    config = config_for(2, 4)
    storage_units = config.transfer_queue.backend.SimpleStorage.num_data_storage_units
    assert cpus_per_node(config) == 3 * 4 + (1 + storage_units) + 2


def test_a_cluster_that_fits_passes():
    config = config_for(2, 1)
    need = cpus_per_node(config)
    assert short_nodes(config, [node("10.0.0.1", need, 1), node("10.0.0.2", need + 8, 2)], "GPU") == []


@pytest.mark.parametrize("short", [dict(cpus=4, gpus=1), dict(cpus=64, gpus=0)], ids=["cpus", "gpus"])
def test_a_short_node_is_named_with_what_it_has_what_it_needs_and_the_fix(short):
    config = config_for(2, 1)
    need = cpus_per_node(config)
    lines = short_nodes(config, [node("10.0.0.1", need, 1), node("10.0.0.2", **short),
                                 node("10.0.0.3", need, 1, alive=False)], "GPU")
    assert len(lines) == 2, lines  # the verdict, then one line per alive short node
    assert lines[0].startswith("sfpo_verl: the Ray cluster has 1 node(s) that fit a trainer node, the run needs "
                               "trainer.nnodes=2")
    assert lines[1] == (
        f"sfpo_verl: node 10.0.0.2 (abababab) has {short['cpus']:g} CPUs and {short['gpus']:g} GPU, needs {need} CPUs "
        f"and 1 GPU: start it with `ray start ... --num-cpus {need} --num-gpus 1` (or more), or lower "
        f"trainer.n_gpus_per_node / trainer.nnodes"
    )


def test_a_placement_group_that_cannot_be_placed_is_named_and_removed_after_the_timeout(capsys):
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        group = ray.util.placement_group([{"CPU": 4}], strategy="STRICT_PACK", name="too_big")
        with PlacementWatchdog(timeout_s=1.0, poll_s=0.2) as watchdog:
            with pytest.raises(Exception) as failed:
                ray.get(group.ready(), timeout=60)  # fails once the watchdog removes the group
        assert not isinstance(failed.value, ray.exceptions.GetTimeoutError), "the watchdog did not remove the group"
        assert len(watchdog.stalled) == 1
        assert "placement group too_big (STRICT_PACK) waited 1s for bundles [{'CPU': 4.0}]" in watchdog.stalled[0]
        assert watchdog.stalled[0] in capsys.readouterr().err
    finally:
        ray.shutdown()


def test_bad_cluster_check_values_are_refused_by_name():
    from sfpo_verl.core.trainer.config import SFPOConfigError, validate_sfpo_config

    config = config_for(1, 1)
    config.cluster_check.placement_timeout_s = -5
    with pytest.raises(SFPOConfigError, match=r"cluster_check.placement_timeout_s=-5 is not allowed: a number of seconds > 0"):
        validate_sfpo_config(config)
