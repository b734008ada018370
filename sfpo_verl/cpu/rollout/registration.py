"""Make `actor_rollout_ref.rollout.name=hf` resolve in verl (run in every process, via the plugin).

verl looks a backend up in two places: the replica (driver side) through the public
`RolloutReplicaRegistry`, and the trainer-side adapter through `get_rollout_class`,
which reads the private dict `_ROLLOUT_REGISTRY` (verl 0.9.1 has no register function
for it; see patches/README.md and the test that checks the patch is still needed).
"""

from __future__ import annotations

ROLLOUT_NAME = "hf"
ADAPTER_CLASS = "sfpo_verl.cpu.rollout.adapter.HFServerAdapter"


def _load_replica():
    from sfpo_verl.cpu.rollout.replica import HFRolloutReplica

    return HFRolloutReplica


def register() -> None:
    """Register the `hf` replica and adapter with verl (idempotent, imports nothing heavy)."""
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    from sfpo_verl.cpu.verl_seams import register_rollout_adapter

    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_replica)
    # PATCH verl==0.9.1 (patches/README.md): no public seam for the adapter registry.
    register_rollout_adapter(ROLLOUT_NAME, "async", ADAPTER_CLASS)


def registered() -> bool:
    """Whether this process can resolve the `hf` backend on both sides."""
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    try:
        RolloutReplicaRegistry.get(ROLLOUT_NAME)
        get_rollout_class(ROLLOUT_NAME, "async")
    except (AssertionError, ValueError):
        return False
    return True
