"""The entropy trigger that turns SFPO off for good once the policy entropy jumps."""

from __future__ import annotations

from collections import deque

import numpy as np


class EntropySwitch:
    """Keeps the last `window` entropies; fires once the newest one's z-score reaches the threshold.

    z = (H - mean(window)) / (std(window) + eps), with the newest H inside the window and
    numpy's population std, as in the authors' released code. Checks start once the
    window is full. One-sided (z >= threshold, the released code) by default; two-sided
    (|z| >= threshold) is the paper's Algorithm 1. Once fired it stays fired.
    """

    EPS = 1e-9

    def __init__(self, window: int = 30, threshold: float = 1.0, two_sided: bool = False):
        if window < 2:
            raise ValueError(f"entropy switch window must be >= 2, got {window}")
        if threshold <= 0:
            raise ValueError(f"entropy switch threshold must be > 0, got {threshold}")
        self.window = window
        self.threshold = threshold
        self.two_sided = two_sided
        self.history: deque[float] = deque(maxlen=window)
        self.fired = False
        self.fired_at_step: int | None = None
        self.last_zscore: float | None = None

    def observe(self, step: int, entropy: float) -> bool:
        """Record the entropy measured at `step`; return True if the switch fires now."""
        if self.fired:
            return False
        self.history.append(float(entropy))
        if len(self.history) < self.window:
            self.last_zscore = None
            return False
        values = np.asarray(self.history, dtype=np.float64)
        z = float((values[-1] - values.mean()) / (values.std() + self.EPS))
        self.last_zscore = z
        if (abs(z) if self.two_sided else z) >= self.threshold:
            self.fired = True
            self.fired_at_step = step
            return True
        return False

    def state_dict(self) -> dict:
        return {
            "window": self.window,
            "threshold": self.threshold,
            "two_sided": self.two_sided,
            "history": list(self.history),
            "fired": self.fired,
            "fired_at_step": self.fired_at_step,
            "last_zscore": self.last_zscore,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the buffer and fired flag; the window/threshold stay those of this run."""
        self.history = deque(state["history"], maxlen=self.window)
        self.fired = bool(state["fired"])
        self.fired_at_step = state["fired_at_step"]
        self.last_zscore = state["last_zscore"]
