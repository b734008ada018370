"""Paired-by-seed comparison of two arms on one per-run measure: the mean difference (arm -
baseline) over the seeds both arms ran, a bootstrap 95% interval and a sign-flip p-value.

Seeds pair the runs: a seed fixes the data order and rollout sampling in both arms, so the
per-seed differences are the units. The interval is the percentile interval of the mean
difference over BOOTSTRAP_RESAMPLES resamples of those differences (seeds drawn with
replacement; every resample has a mean, none is dropped). The p-value is two-sided: the share
of sign patterns of the differences whose mean is at least as far from 0 as the observed one
(ties counted, so identical arms give p = 1), over all 2^n patterns for n <= EXACT_MAX_SEEDS,
else over MONTE_CARLO_PATTERNS random ones. Seeded: the same input gives the same output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
EXACT_MAX_SEEDS = 20
MONTE_CARLO_PATTERNS = 100_000
RNG_SEED = 0


@dataclass(frozen=True)
class PairedDifference:
    seeds: list[int]
    diffs: list[float]  # arm - baseline, per seed in `seeds`
    mean_diff: float
    ci95: tuple[float, float]
    p_value: float

    def as_dict(self) -> dict:
        return {"mean_diff": self.mean_diff, "ci95": list(self.ci95), "p_value": self.p_value, "diffs": self.diffs}


def paired_difference(arm: dict[int, float], baseline: dict[int, float]) -> PairedDifference | None:
    """`arm` and `baseline` map seed -> the measure; None when they share no seed."""
    seeds = sorted(set(arm) & set(baseline))
    if not seeds:
        return None
    diffs = np.array([arm[seed] - baseline[seed] for seed in seeds], dtype=float)
    low, high = np.percentile(bootstrap_means(diffs), [2.5, 97.5])
    return PairedDifference(seeds, diffs.tolist(), float(diffs.mean()), (float(low), float(high)), sign_flip_p_value(diffs))


def bootstrap_means(diffs: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """The mean of each of `resamples` resamples of `diffs` (drawn with replacement)."""
    rng = np.random.default_rng(RNG_SEED)
    return diffs[rng.integers(0, len(diffs), size=(resamples, len(diffs)))].mean(axis=1)


def sign_flip_p_value(diffs: np.ndarray) -> float:
    """Two-sided p-value of the mean difference under "the sign of each seed's difference is a
    coin flip" (the arms exchangeable within a seed)."""
    if len(diffs) <= EXACT_MAX_SEEDS:
        sums = np.zeros(1)
        for diff in diffs:  # every sign pattern's sum, 2^n of them
            sums = np.concatenate([sums + diff, sums - diff])
    else:
        signs = np.random.default_rng(RNG_SEED).choice([-1.0, 1.0], size=(MONTE_CARLO_PATTERNS, len(diffs)))
        sums = np.concatenate([[diffs.sum()], signs @ diffs])  # the observed pattern counts too
    observed = abs(diffs.sum())
    # The same sum added in another order may differ in the last bits: still a tie.
    return float(np.mean(np.abs(sums) >= observed - 1e-9 * max(1.0, observed)))
