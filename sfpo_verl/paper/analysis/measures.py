"""Per-run measures of a held-out accuracy curve, and per-arm times to fixed accuracy targets.

A curve is one run's validations in order: rollouts consumed, accuracy (a fraction) and
training seconds so far (verl's `timing_s/step` summed; validation is off the clock). The
first validation is the one before training (rollouts 0, `trainer.val_before_train`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

LAST_VALIDATIONS = 3


@dataclass(frozen=True)
class Curve:
    seed: int
    rollouts: tuple[int, ...]
    accuracy: tuple[float, ...]
    seconds: tuple[float, ...]


def normalised_auc(curve: Curve, budget: int) -> float:
    """Area under accuracy against rollouts from 0 to `budget`, divided by `budget`: the mean
    accuracy over the budget, by the trapezoid rule over the validations (the one before
    training included). The curve must start at 0 rollouts and reach the budget; a validation
    past the budget counts only up to it (interpolated)."""
    if curve.rollouts[0] != 0 or curve.rollouts[-1] < budget:
        raise ValueError(
            f"seed {curve.seed}: validations cover rollouts {curve.rollouts[0]}..{curve.rollouts[-1]}, "
            f"not 0..{budget}: no area under the curve"
        )
    area = 0.0
    points = list(zip(curve.rollouts, curve.accuracy))
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 >= budget:
            break
        if x1 > budget:
            y1, x1 = y0 + (y1 - y0) * (budget - x0) / (x1 - x0), budget
        area += (x1 - x0) * (y0 + y1) / 2
    return area / budget


def last_mean(curve: Curve, count: int = LAST_VALIDATIONS) -> float:
    return statistics.fmean(curve.accuracy[-count:])


def final(curve: Curve) -> float:
    return curve.accuracy[-1]


def first_reaching(curve: Curve, target: float) -> int | None:
    """The index of the first validation with accuracy >= `target`, or None."""
    return next((i for i, accuracy in enumerate(curve.accuracy) if accuracy >= target - 1e-12), None)


def time_to_target(curves: list[Curve], target: float) -> dict:
    """How many of an arm's seeds reached `target`, and the medians of rollouts and training
    seconds to the first validation reaching it. A seed that never did is censored: counted as
    not reaching it within the budget, above every seed that did; so a median is given only
    where more than half the seeds reached the target (it is then theirs), else None."""
    per_seed = {}
    for curve in curves:
        i = first_reaching(curve, target)
        per_seed[curve.seed] = None if i is None else {"rollouts": curve.rollouts[i], "seconds": curve.seconds[i]}
    reached = [value for value in per_seed.values() if value is not None]
    medians = {}
    for measure in ("rollouts", "seconds"):
        ranked = sorted(value[measure] for value in reached) + [float("inf")] * (len(curves) - len(reached))
        medians[f"median_{measure}"] = statistics.median(ranked) if 2 * len(reached) > len(curves) else None
    return {"target": target, "reached": len(reached), "n": len(curves), "censored": len(curves) - len(reached),
            **medians, "per_seed": per_seed}


def late_change(curves: list[Curve], count: int = LAST_VALIDATIONS) -> dict:
    """Whether an arm was still improving at the end: per seed, the last accuracy minus the one
    `count` - 1 validations earlier; their mean and standard deviation over seeds."""
    changes = [curve.accuracy[-1] - curve.accuracy[-count] for curve in curves]
    return {
        "validations": count,
        "from_rollouts": min(curve.rollouts[-count] for curve in curves),
        "to_rollouts": max(curve.rollouts[-1] for curve in curves),
        "mean": statistics.fmean(changes),
        "std": statistics.stdev(changes) if len(changes) > 1 else None,
        "n": len(changes),
    }


# The measures compared between arms, paired by seed: name -> what it is.
PAIRED_MEASURES = {
    "auc": "area under accuracy vs rollouts from 0 to the budget, divided by the budget",
    "last3_mean": f"mean accuracy of the last {LAST_VALIDATIONS} validations",
    "final": "accuracy at the last validation",
}


def paired_measures(curve: Curve, budget: int) -> dict[str, float]:
    return {"auc": normalised_auc(curve, budget), "last3_mean": last_mean(curve), "final": final(curve)}
