"""The CPU quickstart's replay buffer: verl's synchronous one, with two changes.

- It polls TransferQueue every 0.05 s instead of every 2 s. verl's trainer waits for a step's
  rollouts by polling; its 2 s interval is invisible next to minutes of GPU generation, but a
  quickstart step's generation takes well under a second, and on average half an interval is
  lost per step and per validation.
- It hands the trainer each batch in a canonical order. verl's ReplayBuffer lists a step's
  trajectories in the order they reached TransferQueue, which changes from run to run; the
  order decides what each mini-batch holds and the order of every floating-point sum, so two
  runs with the same config and seed differed. Here the groups follow the order in which the
  trainer fetched their prompts (SFPOTrainer's uids are "step-position"), and a group's
  trajectories go by their response tokens: the n samples of one prompt are interchangeable,
  and which session gets which sample depends on when each request reached the rollout
  server. (Validation prompts keep verl's random uids, so there the groups go by prompt
  tokens.)

Plugged in through verl's own seam:
    trainer.v1.sampler.custom_sampler.path=pkg://sfpo_verl.cpu.quickstart.sampler
    trainer.v1.sampler.custom_sampler.name=QuickstartReplayBuffer
"""

from __future__ import annotations

import torch
import transfer_queue as tq
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

POLL_SECONDS = 0.05


def canonical_order(keys: list[str], responses: list[list[int]], prompts: list[list[int]] | None = None) -> list[int]:
    """The positions of `keys` (verl's "{uid}_{session}_{index}") sorted by group (the uid, or
    the prompt tokens when `prompts` is given), then response tokens, then session and index."""

    def rank(i: int):
        uid, session, index = keys[i].split("_")
        group = uid if prompts is None else prompts[i]
        return group, responses[i], int(session), int(index)

    return sorted(range(len(keys)), key=rank)


def _token_lists(tokens: torch.Tensor) -> list[list[int]]:
    """One token list per row of a (nested or padded) token tensor."""
    return [row.tolist() for row in tokens.unbind(0)]


class QuickstartReplayBuffer(ReplayBuffer):
    def __init__(self, **kwargs):
        super().__init__(poll_interval=POLL_SECONDS, **kwargs)

    def sample(self, global_steps: int, partition_id: str, batch_size: int):
        batch, metrics = super().sample(global_steps=global_steps, partition_id=partition_id, batch_size=batch_size)
        fields = ["responses", "prompts"] if partition_id == "val" else ["responses"]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        batch.reorder(canonical_order(batch.keys, *(_token_lists(data[field]) for field in fields)))
        return batch, metrics
