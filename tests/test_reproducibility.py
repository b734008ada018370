"""Reproducible runs (issue 8): the same config and seed give identical per-step metrics. The
two launches compared are tests/test_exact_resume.py's (shared with its resume check); here, the
pieces that make them equal, without a trainer, and what the comparison excludes.

Two launches of the same config used to differ in the last bits of most float metrics
(advantages, loss, grad_norm, entropy, ...), although they sampled the same tokens. The
causes, and what removed each:

1. verl 0.9.1's ReplayBuffer hands the trainer a step's trajectories in the order they reached
   TransferQueue, which varies from run to run. The order decides the mini-batches and the
   order of every float sum. -> The quickstart's replay buffer (sfpo_verl/cpu/quickstart/
   sampler.py) sorts each batch: groups in data order, a group's samples by response tokens.
2. verl names each prompt with a random uuid4, so the uid orders nothing. -> SFPOTrainer names
   prompts "step-position" (a patch, patches/README.md).
3. The rollout server seeds the k-th sample of a prompt, but which of the prompt's n sessions
   gets sample k depends on when each request reached the server. -> Covered by 1: within a
   group the order goes by the response tokens, not the session id.

What remains (measured, bounded below instead of compared exactly): the rollout server batches
whichever requests have arrived together, and a CPU matrix product is not batch-invariant (a
row's result depends on how many rows share the product), so the rollout's log-probs of the
same tokens vary in the last bits: up to 7e-7 per token in the runs measured, giving metric
differences up to about 2e-6 (a perplexity, the exponential of a mean log-prob). Those
log-probs feed only the rollout-vs-actor diagnostics (`rollout_corr/*`, `training/rollout_*`),
never the loss in this config (no importance weights, no bypass mode), so every other metric is
exactly equal. (A sampling draw that falls within that much of a token's boundary could flip the
token; none has in the runs compared.)
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch

pytest.importorskip("verl.trainer.ppo.v1", reason="needs verl 0.9.x: the v1 replay buffer and the CPU quickstart")
from sfpo_verl.cpu.quickstart import sampler as quickstart_sampler
from sfpo_verl.cpu.quickstart.sampler import QuickstartReplayBuffer, canonical_order

# --- the uid patch and the canonical order, without a trainer -------------------------------


def fetch_uids(trainer_cls, steps: list[int], rows: int = 3, **attributes) -> list[list[str]]:
    """The uids `trainer_cls._fetch_one_gen_batch` gives a stub trainer, one fetch per step in `steps`."""
    trainer = object.__new__(trainer_cls)
    trainer.train_dataloader = [{"raw_prompt": np.array([f"q{i}" for i in range(rows)], dtype=object)}] * len(steps)
    trainer.train_dataloader_it = None
    for name, value in attributes.items():
        setattr(trainer, name, value)
    uids = []
    for step in steps:
        trainer.global_steps = step
        uids.append(list(trainer._fetch_one_gen_batch()["uid"]))  # as verl reads them
    return uids


def test_uid_patch_is_still_needed():
    """PATCH verl==0.9.1 (patches/README.md): fails once verl stops naming prompts with random
    uuids, so that SFPOTrainer._fetch_one_gen_batch can go."""
    import verl
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    assert verl.__version__ == "0.9.1", "re-check patches/README.md against this verl version"
    [[first]], [[again]] = fetch_uids(PPOTrainerSync, [1], rows=1), fetch_uids(PPOTrainerSync, [1], rows=1)
    assert uuid.UUID(first).version == 4 and first != again, f"verl's uids are no longer random: {first}, {again}"


def test_sfpo_trainer_names_prompts_by_step_and_position():
    from sfpo_verl.core.trainer.sfpo_trainer import SFPOTrainer

    uids = fetch_uids(SFPOTrainer, [1, 1, 2], _uid_step=None, _uid_next=0)
    assert uids == [["000001-000000", "000001-000001", "000001-000002"],
                    ["000001-000003", "000001-000004", "000001-000005"],
                    ["000002-000000", "000002-000001", "000002-000002"]]
    flat = [u for fetch in uids for u in fetch]
    assert flat == sorted(flat) and len(set(flat)) == len(flat) and not any("_" in u for u in flat)


def test_canonical_order_goes_by_group_then_response_not_arrival_or_session():
    # arrival order; prompt "a" was fetched before "b"; sessions 0 and 1 drew each other's sample
    keys = ["b_1_0", "a_1_0", "b_0_0", "a_0_0"]
    responses = [[7], [5], [6], [9]]
    order = canonical_order(keys, responses)
    assert [keys[i] for i in order] == ["a_1_0", "a_0_0", "b_0_0", "b_1_0"]
    # the same samples with the session labels swapped come out in the same content order
    swapped = canonical_order(["b_0_0", "a_0_0", "b_1_0", "a_1_0"], responses)
    assert [responses[i] for i in swapped] == [responses[i] for i in order]
    # by prompt tokens when the uids are random (validation)
    prompts = [[1], [2], [1], [2]]
    assert [keys[i] for i in canonical_order(keys, responses, prompts)] == ["b_0_0", "b_1_0", "a_1_0", "a_0_0"]


def test_verl_replay_buffer_still_orders_by_arrival(monkeypatch):
    """Fails once verl's ReplayBuffer orders a batch itself: then re-check whether the
    quickstart sampler's reordering is still needed."""
    from verl.trainer.ppo.v1 import replay_buffer

    monkeypatch.setattr(replay_buffer.tq, "kv_clear", lambda **_: None)
    arrival = {"b_1_0": {"seq_len": 3}, "a_0_0": {"seq_len": 2}, "b_0_0": {"seq_len": 4}, "a_1_0": {"seq_len": 1}}
    buffer = object.__new__(replay_buffer.ReplayBuffer)
    batch = buffer._materialize_batch("train", ["a", "b"], arrival)
    assert batch.keys == list(arrival)


def test_quickstart_sampler_reorders_verls_batch(monkeypatch):
    from transfer_queue import KVBatchMeta
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    keys = ["b_1_0", "a_1_0", "b_0_0", "a_0_0"]
    tokens = {"b_1_0": [7, 1], "a_1_0": [5], "b_0_0": [6], "a_0_0": [9, 9, 2]}

    def verl_sample(self, global_steps, partition_id, batch_size):
        return KVBatchMeta(partition_id=partition_id, keys=list(keys), tags=[{"key": k} for k in keys]), {"m": 1}

    def kv_batch_get(keys, partition_id, select_fields):
        assert select_fields == ["responses"]
        return {"responses": torch.nested.nested_tensor([torch.tensor(tokens[k]) for k in keys], layout=torch.jagged)}

    monkeypatch.setattr(ReplayBuffer, "sample", verl_sample)
    monkeypatch.setattr(quickstart_sampler.tq, "kv_batch_get", kv_batch_get)
    batch, metrics = object.__new__(QuickstartReplayBuffer).sample(global_steps=1, partition_id="train", batch_size=2)
    assert batch.keys == ["a_1_0", "a_0_0", "b_0_0", "b_1_0"] and metrics == {"m": 1}
    assert [t["key"] for t in batch.tags] == batch.keys


# --- two launches of the same config: compared in tests/test_exact_resume.py ------------------
# Its straight run and the run it later kills are two launches of one config and seed; every
# metric of their common steps must be equal, bar these:

# Metrics of the clock or of the process, not of the computation: wall-clock seconds of each phase
# (timing_s/, timing_per_token_ms/, sfpo/timing_s/), rates over wall-clock (perf/throughput,
# perf/time_per_step, perf/mfu/) and the process's memory (actor/perf/).
EXCLUDED_PREFIXES = ("timing_s/", "timing_per_token_ms/", "sfpo/timing_s/", "perf/throughput", "perf/time_per_step",
                     "perf/mfu/", "actor/perf/")
# Computed from the rollout's own log-probs, which vary in the last bits with the rollout
# server's batching (module docstring): compared within this absolute bound, about 5 times the
# largest difference measured.
ROLLOUT_LOG_PROB_PREFIXES = ("rollout_corr/", "training/rollout_")
ROLLOUT_LOG_PROB_ATOL = 1e-5
# A few metrics that must be among those compared exactly (so the exclusions hide nothing).
MUST_COMPARE = ("critic/advantages/mean", "actor/pg_loss", "actor/grad_norm", "actor/entropy", "actor/ppo_kl",
                "sfpo/fast_displacement_norm", "perf/total_num_tokens", "val-core/sfpo_arithmetic/acc/mean@2")


def assert_same_metrics(first: dict[int, dict], second: dict[int, dict], steps: list[int]) -> dict[str, float]:
    """Every metric of `steps` equal in both runs, bar the clock's and the process's; returns the
    rollout log-prob diagnostics' differences ({"name@step": |difference|}), bounded by the caller."""
    bounded = {}
    for step in steps:
        assert first[step].keys() == second[step].keys(), f"step {step}"
        for name, value in first[step].items():
            if name.startswith(EXCLUDED_PREFIXES):
                continue
            if name.startswith(ROLLOUT_LOG_PROB_PREFIXES):
                bounded[f"{name}@{step}"] = abs(value - second[step][name])
                continue
            assert value == second[step][name], f"step {step} {name}: {value!r} != {second[step][name]!r}"
    return bounded


def compared_metrics(metrics: dict[int, dict]) -> set[str]:
    """The names `assert_same_metrics` compares exactly, over every step of a run."""
    return {name for step in metrics.values() for name in step
            if not name.startswith(EXCLUDED_PREFIXES + ROLLOUT_LOG_PROB_PREFIXES)}
