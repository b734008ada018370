"""The paper's efficiency measures: validation accuracy over steps, rollouts and wall-clock,
and what each run needed to reach the baseline's best validation accuracy."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from sfpo_verl.paper.analysis.runs import Run

# verl's core validation metric, e.g. val-core/aime24/acc/mean@4 (reward when there is no acc).
_VAL_CORE = re.compile(r"^val-core/(?P<source>.+)/(?P<var>acc|reward)/mean@(?P<n>\d+)$")
STEP_TIME = "timing_s/step"


def held_out_columns(columns) -> list[str]:
    """The metric that is a data source's held-out accuracy, one per data source among `columns`:
    verl's core validation metric `val-core/<source>/acc/mean@<n>`, the largest n (verl marks only
    its largest as core), or `val-core/<source>/reward/mean@<n>` when the reward function reports
    no `acc` (verl then makes the reward the core metric)."""
    chosen: dict[str, tuple[tuple[bool, int], str]] = {}
    for column in columns:
        match = _VAL_CORE.match(column)
        if match:
            rank = (match["var"] == "acc", int(match["n"]))
            if match["source"] not in chosen or rank > chosen[match["source"]][0]:
                chosen[match["source"]] = (rank, column)
    return [column for _, column in chosen.values()]


def held_out_accuracy(metrics: pd.DataFrame) -> pd.Series:
    """Per validated step: held-out accuracy (a fraction), the mean over data sources of each
    one's `held_out_columns` metric. Steps where some data source was not logged are left out:
    a mean over fewer benchmarks is not comparable with the others."""
    columns = held_out_columns(metrics.columns)
    if not columns:
        return pd.Series(dtype=float, name="held_out_accuracy")
    return metrics[columns].dropna().mean(axis=1).rename("held_out_accuracy")


def validation_accuracy(metrics: pd.DataFrame) -> pd.Series:
    """Per validated step: held-out accuracy (`held_out_accuracy`) in percent."""
    return (100.0 * held_out_accuracy(metrics)).rename("val_accuracy")


def progress(run: Run) -> pd.DataFrame:
    """Per logged step: rollouts generated so far and training seconds and hours so far.

    Seconds sum verl's `timing_s/step` (the whole training step; validation runs are timed
    separately and left out, so both arms pay the same validation cost off the clock).
    """
    steps = run.metrics.index.to_series()
    step_seconds = run.metrics.get(STEP_TIME, pd.Series(0.0, index=run.metrics.index)).fillna(0.0)
    seconds = step_seconds.cumsum()
    return pd.DataFrame(
        {"step": steps, "rollouts": steps * run.rollouts_per_step, "seconds": seconds, "hours": seconds / 3600.0},
        index=run.metrics.index,
    )


@dataclass
class RunEfficiency:
    """One run against the target (the baseline's best validation accuracy); None = not reached."""

    label: str
    last_step: int
    rollouts_per_step: int
    total_hours: float
    best_accuracy: float | None
    best_step: int | None
    reached_step: int | None
    reached_rollouts: int | None
    reached_hours: float | None
    rollout_speedup: float | None  # baseline's rollouts to the target / this run's
    time_speedup: float | None  # baseline's hours to the target / this run's


def first_reach(run: Run, target: float) -> int | None:
    """The first validated step whose accuracy reaches `target` (percent), or None."""
    accuracy = validation_accuracy(run.metrics)
    reached = accuracy[accuracy >= target - 1e-9]
    return int(reached.index[0]) if len(reached) else None


def compare_runs(runs: list[Run], baseline: Run) -> tuple[float | None, list[RunEfficiency]]:
    """The target accuracy (None if the baseline has no validation) and each run's efficiency."""
    baseline_accuracy = validation_accuracy(baseline.metrics)
    target = float(baseline_accuracy.max()) if len(baseline_accuracy) else None
    baseline_step = first_reach(baseline, target) if target is not None else None
    baseline_progress = progress(baseline)

    results = []
    for run in runs:
        accuracy = validation_accuracy(run.metrics)
        run_progress = progress(run)
        reached = first_reach(run, target) if target is not None else None
        rollouts = int(run_progress.at[reached, "rollouts"]) if reached is not None else None
        hours = float(run_progress.at[reached, "hours"]) if reached is not None else None
        rollout_speedup = time_speedup = None
        if reached is not None and baseline_step is not None:
            rollout_speedup = _ratio(baseline_progress.at[baseline_step, "rollouts"], rollouts)
            time_speedup = _ratio(baseline_progress.at[baseline_step, "hours"], hours)
        results.append(
            RunEfficiency(
                label=run.label,
                last_step=int(run.metrics.index.max()),
                rollouts_per_step=run.rollouts_per_step,
                total_hours=float(run_progress["hours"].iloc[-1]),
                best_accuracy=float(accuracy.max()) if len(accuracy) else None,
                best_step=int(accuracy.idxmax()) if len(accuracy) else None,
                reached_step=reached,
                reached_rollouts=rollouts,
                reached_hours=hours,
                rollout_speedup=rollout_speedup,
                time_speedup=time_speedup,
            )
        )
    return target, results


def _ratio(numerator: float, denominator: float | None) -> float | None:
    if denominator is None or denominator == 0 or math.isnan(denominator):
        return None
    return float(numerator) / float(denominator)


def markdown_table(target: float | None, baseline_label: str, results: list[RunEfficiency]) -> str:
    """The efficiency comparison as a markdown table, as in the paper's efficiency table."""

    def fmt(value, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    header = (
        "| run | best val acc (step) | steps | rollouts/step | train hours | step reaching target "
        "| rollouts to target | hours to target | rollout speed-up (x) | time speed-up (x) |"
    )
    lines = [
        f"Target: the best validation accuracy of the baseline run `{baseline_label}`: {fmt(target, '.2f')}%"
        " (mean over the validation benchmarks).",
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for r in results:
        best = "n/a" if r.best_accuracy is None else f"{r.best_accuracy:.2f} ({r.best_step})"
        lines.append(
            f"| {r.label} | {best} | {r.last_step} | {r.rollouts_per_step} | {r.total_hours:.2f} "
            f"| {fmt(r.reached_step, 'd')} | {fmt(r.reached_rollouts, 'd')} | {fmt(r.reached_hours, '.2f')} "
            f"| {fmt(r.rollout_speedup, '.2f')} | {fmt(r.time_speedup, '.2f')} |"
        )
    return "\n".join(lines)
