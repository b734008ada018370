"""Alpha schedules: the reposition coefficient as a function of the training step."""

from __future__ import annotations

from dataclasses import dataclass

ALPHA_SCHEDULES = ("constant", "linear", "cutoff")


@dataclass(frozen=True)
class AlphaSchedule:
    """alpha0 over training steps (verl counts steps from 1).

    - constant: alpha0 every step;
    - linear: alpha0 at step 1, decaying linearly to 0 at step 1 + schedule_steps;
    - cutoff: alpha0 up to and including step schedule_steps, then 0.
    """

    alpha0: float
    kind: str = "constant"
    schedule_steps: int | None = None

    def __post_init__(self):
        if not 0.0 <= self.alpha0 <= 1.0:
            raise ValueError(f"alpha0 must be in [0, 1], got {self.alpha0}")
        if self.kind not in ALPHA_SCHEDULES:
            raise ValueError(f"unknown alpha schedule {self.kind!r}; allowed: {', '.join(ALPHA_SCHEDULES)}")
        if self.kind != "constant" and (self.schedule_steps is None or self.schedule_steps < 1):
            raise ValueError(
                f"alpha schedule {self.kind!r} needs schedule_steps >= 1, got {self.schedule_steps}"
            )

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return self.alpha0
        if self.kind == "linear":
            return self.alpha0 * max(0.0, 1.0 - (step - 1) / self.schedule_steps)
        return self.alpha0 if step <= self.schedule_steps else 0.0
