"""The curves users compare runs on, against steps, rollouts and wall-clock, as PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training nodes
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sfpo_verl.paper.analysis.efficiency import progress, validation_accuracy  # noqa: E402
from sfpo_verl.paper.analysis.runs import Run  # noqa: E402

# (panel title, metric names to try in order); validation accuracy is computed, not logged.
VALIDATION_PANEL = "validation accuracy (%)"
PANELS = (
    (VALIDATION_PANEL, ()),
    ("reward (mean score)", ("critic/score/mean", "critic/rewards/mean")),
    ("policy entropy", ("actor/entropy",)),
    ("response length (tokens)", ("response_length/mean",)),
    ("SFPO alpha", ("sfpo/alpha",)),
    ("SFPO fast displacement norm", ("sfpo/fast_displacement_norm",)),
    ("SFPO fast last-pass PPO KL", ("sfpo/fast_last_ppo_kl",)),
    ("SFPO fast last-pass pg loss", ("sfpo/fast_last_pg_loss",)),
)
X_AXES = {"step": "training step", "rollouts": "rollouts generated", "hours": "training wall-clock (hours)"}


def panel_series(run: Run, title: str, metric_names: tuple[str, ...]) -> pd.Series | None:
    """The run's values for one panel, indexed by step, or None if it logged none of them."""
    if title == VALIDATION_PANEL:
        accuracy = validation_accuracy(run.metrics)
        return accuracy if len(accuracy) else None
    for name in metric_names:
        if name in run.metrics and run.metrics[name].notna().any():
            return run.metrics[name].dropna()
    return None


def plot_curves(runs: list[Run], x_axis: str, path: Path) -> list[str]:
    """One PNG with a panel per curve, a line per run; returns the panels drawn (with data)."""
    figure, axes = plt.subplots(2, 4, figsize=(20, 8.5))
    drawn = []
    for axis, (title, names) in zip(axes.flat, PANELS, strict=True):
        has_data = False
        for run in runs:
            series = panel_series(run, title, names)
            if series is None:
                continue
            x = progress(run).loc[series.index, x_axis]
            axis.plot(
                x, series.values, marker="o" if title == VALIDATION_PANEL else None, markersize=3, label=run.label
            )
            has_data = True
        axis.set_title(title)
        axis.set_xlabel(X_AXES[x_axis])
        axis.grid(alpha=0.3)
        if has_data:
            axis.legend()
            drawn.append(title)
        else:
            axis.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axis.transAxes, color="gray")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return drawn


def plot_efficiency(runs: list[Run], target: float, reached: dict[str, int | None], path: Path) -> None:
    """Validation accuracy against rollouts and against hours, the target line, and where each run reaches it."""
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for axis, x_axis in zip(axes, ("rollouts", "hours"), strict=True):
        for run in runs:
            accuracy = validation_accuracy(run.metrics)
            if not len(accuracy):
                continue
            x = progress(run).loc[accuracy.index, x_axis]
            (line,) = axis.plot(x, accuracy.values, marker="o", markersize=3, label=run.label)
            step = reached.get(run.label)
            if step is not None:
                axis.scatter(
                    [progress(run).at[step, x_axis]], [accuracy.at[step]], s=90, color=line.get_color(), zorder=3
                )
        axis.axhline(target, color="gray", linestyle="--", label=f"baseline best {target:.2f}%")
        axis.set_xlabel(X_AXES[x_axis])
        axis.set_ylabel("validation accuracy (%)")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
