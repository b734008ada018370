"""Decides each training step's alpha on the driver: schedule, then the entropy switch."""

from __future__ import annotations

from sfpo_verl.core.algorithm.entropy_switch import EntropySwitch
from sfpo_verl.core.algorithm.schedule import AlphaSchedule


class SFPOController:
    """alpha for step s = 0 once the switch has fired, else schedule(s).

    Lives on the driver so every rank takes the same branch and the state is in one place,
    where checkpoints find it.
    """

    def __init__(self, schedule: AlphaSchedule, inner_steps: int, switch: EntropySwitch | None = None):
        if inner_steps < 0:
            raise ValueError(f"inner_steps (K) must be >= 0, got {inner_steps}")
        self.schedule = schedule
        self.inner_steps = inner_steps
        self.switch = switch

    @property
    def switch_fired(self) -> bool:
        return self.switch is not None and self.switch.fired

    def alpha(self, step: int) -> float:
        return 0.0 if self.switch_fired else self.schedule(step)

    def observe_entropy(self, step: int, entropy: float) -> bool:
        """Feed the entropy measured in `step`'s update; True if the switch fired now."""
        return self.switch is not None and self.switch.observe(step, entropy)

    def state_dict(self) -> dict:
        return {"switch": self.switch.state_dict() if self.switch is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if self.switch is not None and state.get("switch") is not None:
            self.switch.load_state_dict(state["switch"])
