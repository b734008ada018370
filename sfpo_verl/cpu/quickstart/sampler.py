"""verl's synchronous replay buffer, polling TransferQueue every 0.2 s instead of every 2 s.

verl's trainer waits for a step's rollouts by polling; its 2 s interval is invisible next
to minutes of GPU generation but doubles a quickstart step, whose generation takes about
a second. Plugged in through verl's own seam:
    trainer.v1.sampler.custom_sampler.path=pkg://sfpo_verl.cpu.quickstart.sampler
    trainer.v1.sampler.custom_sampler.name=FastPollReplayBuffer
"""

from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

POLL_SECONDS = 0.2


class FastPollReplayBuffer(ReplayBuffer):
    def __init__(self, **kwargs):
        super().__init__(poll_interval=POLL_SECONDS, **kwargs)
