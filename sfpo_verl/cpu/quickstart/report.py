"""Curves, plot and summary of a GRPO-vs-SFPO comparison, read from verl's file logger.

Each arm's metrics are verl's own jsonl (`trainer.logger=[console,file]`): one line per
step, `{"step": s, "data": {metric: value}}`, read as the paper's runs are
(`sfpo_verl.paper.analysis`): validation accuracy is held-out accuracy as it defines it
(verl's `val-core/<data_source>/acc/mean@<n>`, the mean over data sources); training reward
is `critic/score/mean`; wall-clock is the cumulative `timing_s/step` (training time;
validation passes are excluded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from sfpo_verl.paper.analysis.efficiency import held_out_accuracy, progress
from sfpo_verl.paper.analysis.runs import load_run

TRAIN_REWARD = "critic/score/mean"


@dataclass
class ArmCurves:
    """One arm's curves, indexed by training step (step 0 = before any update)."""

    name: str
    rollouts_per_step: int
    val_steps: list[int] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    train_steps: list[int] = field(default_factory=list)
    train_reward: list[float] = field(default_factory=list)
    seconds_at_step: dict[int, float] = field(default_factory=lambda: {0: 0.0})

    def rollouts(self, steps: list[int]) -> list[int]:
        return [s * self.rollouts_per_step for s in steps]

    def seconds(self, steps: list[int]) -> list[float]:
        return [self.seconds_at_step[s] for s in steps]

    @property
    def best_val_acc(self) -> float:
        return max(self.val_acc)

    def first_step_reaching(self, accuracy: float) -> Optional[int]:
        for step, acc in zip(self.val_steps, self.val_acc):
            if acc >= accuracy - 1e-12:
                return step
        return None


def read_arm(name: str, metrics_file: Path, rollouts_per_step: int) -> ArmCurves:
    """Parse verl's jsonl metrics of one arm. Raises ValueError if it holds no validation."""
    run = load_run(name, Path(metrics_file), rollouts_per_step)
    accuracy = held_out_accuracy(run.metrics)
    if accuracy.empty:
        raise ValueError(f"{metrics_file} has no validation accuracy (val-core/<data source>/acc/mean@<n>): "
                         "was trainer.test_freq set and trainer.logger given 'file'?")
    reward = run.metrics.get(TRAIN_REWARD, pd.Series(dtype=float)).dropna()
    seconds = progress(run)["seconds"]
    return ArmCurves(
        name=name,
        rollouts_per_step=rollouts_per_step,
        val_steps=[int(step) for step in accuracy.index],
        val_acc=accuracy.tolist(),
        train_steps=[int(step) for step in reward.index],
        train_reward=reward.tolist(),
        seconds_at_step={0: 0.0, **{int(step): float(value) for step, value in seconds.items()}},
    )


def plot(arms: list[ArmCurves], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharey="row")
    for arm in arms:
        axes[0, 0].plot(arm.rollouts(arm.val_steps), arm.val_acc, marker="o", label=arm.name)
        axes[0, 1].plot(arm.seconds(arm.val_steps), arm.val_acc, marker="o", label=arm.name)
        axes[1, 0].plot(arm.rollouts(arm.train_steps), arm.train_reward, label=arm.name)
        axes[1, 1].plot(arm.seconds(arm.train_steps), arm.train_reward, label=arm.name)
    axes[0, 0].set_ylabel("validation accuracy")
    axes[1, 0].set_ylabel("training reward (mean)")
    axes[1, 0].set_xlabel("rollouts consumed")
    axes[1, 1].set_xlabel("training wall-clock (s)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("GRPO vs SFPO on the CPU quickstart task")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def summary_markdown(arms: list[ArmCurves], baseline: str = "grpo", start_accuracy: Optional[float] = None) -> str:
    """Final/best accuracy per arm and the rollouts and seconds each needed to reach the
    baseline's best accuracy, with the baseline-to-arm ratios."""
    by_name = {arm.name: arm for arm in arms}
    if baseline not in by_name:
        raise ValueError(f"No arm named {baseline!r} to compare against (arms: {sorted(by_name)}).")
    target = by_name[baseline].best_val_acc
    lines = []
    if start_accuracy is not None:
        lines.append(f"Starting accuracy of the pre-trained model (sampled, temperature 1): {start_accuracy:.3f}\n")
    lines += [
        f"Target: {baseline}'s best validation accuracy, {target:.3f}.\n",
        "| arm | start acc | final acc | best acc | rollouts to target | seconds to target "
        f"| rollout ratio ({baseline}/arm) | time ratio ({baseline}/arm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base_step = by_name[baseline].first_step_reaching(target)
    base_rollouts = base_step * by_name[baseline].rollouts_per_step
    base_seconds = by_name[baseline].seconds_at_step[base_step]
    for arm in arms:
        step = arm.first_step_reaching(target)
        if step is None:
            reach = ["not reached"] * 2 + ["—"] * 2
        else:
            rollouts, seconds = step * arm.rollouts_per_step, arm.seconds_at_step[step]
            reach = [str(rollouts), f"{seconds:.0f}", _ratio(base_rollouts, rollouts), _ratio(base_seconds, seconds)]
        lines.append(
            f"| {arm.name} | {arm.val_acc[0]:.3f} | {arm.val_acc[-1]:.3f} | {arm.best_val_acc:.3f} | "
            + " | ".join(reach) + " |"
        )
    return "\n".join(lines) + "\n"


def _ratio(numerator: float, denominator: float) -> str:
    if denominator == 0:
        return "—" if numerator == 0 else "∞"
    value = numerator / denominator
    return f"{value:.2f}×" if math.isfinite(value) else "—"


def write_report(arms: list[ArmCurves], out_dir: Path, baseline: str = "grpo",
                 start_accuracy: Optional[float] = None) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, md = out_dir / "curves.png", out_dir / "summary.md"
    plot(arms, png)
    md.write_text("# CPU quickstart: GRPO vs SFPO\n\n" + summary_markdown(arms, baseline, start_accuracy)
                  + f"\n![curves]({png.name})\n")
    return png, md
