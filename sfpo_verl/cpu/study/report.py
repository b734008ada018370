"""A study's report: validation accuracy against rollouts and wall-clock (mean ± std over seeds),
final and best accuracy, and what each arm needed to reach the baseline's best mean accuracy,
per seed, with medians and bootstrap intervals of the ratios.

Accuracy, rollouts and training seconds come from `sfpo_verl.paper.analysis` (the one
implementation of validation accuracy and rollouts-to-match used for the paper's runs too).
"""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sfpo_verl.cpu.study.grid import BASELINE  # noqa: E402
from sfpo_verl.cpu.study.runner import RunSpec  # noqa: E402
from sfpo_verl.paper.analysis.efficiency import first_reach, progress, validation_accuracy  # noqa: E402
from sfpo_verl.paper.analysis.runs import load_run  # noqa: E402

BOOTSTRAP_SAMPLES = 2000


def read_run(run: RunSpec, rollouts_per_step: int) -> dict:
    """One run's per-validation accuracy (fraction), rollouts and training seconds."""
    loaded = load_run(run.name, run.metrics, rollouts_per_step)
    accuracy = validation_accuracy(loaded.metrics)
    elapsed = progress(loaded)
    return {
        "arm": run.arm,
        "seed": run.seed,
        "steps": [int(step) for step in accuracy.index],
        "val_acc": [round(value / 100.0, 6) for value in accuracy],
        "rollouts": [int(elapsed.at[step, "rollouts"]) for step in accuracy.index],
        "seconds": [round(float(elapsed.at[step, "hours"]) * 3600.0, 2) for step in accuracy.index],
        "run": loaded,
    }


def summarize(runs: list[dict], seed: int = 0) -> dict:
    """Per arm: final and best accuracy (mean, std), and rollouts/seconds to the target (the
    baseline's best mean accuracy) per seed, their medians, the baseline/arm ratios of the
    medians with bootstrap 95% intervals (seeds resampled, paired across arms), seeds reaching."""
    by_arm: dict[str, list[dict]] = {}
    for run in runs:
        by_arm.setdefault(run["arm"], []).append(run)
    baseline_curve = mean_curve(by_arm[BASELINE])
    target = max(baseline_curve["mean"])
    summary = {"target": target, "arms": {}}
    for arm, arm_runs in by_arm.items():
        reach = {}
        for run in arm_runs:
            step = first_reach(run["run"], 100.0 * target)
            if step is not None:
                i = run["steps"].index(step)
                reach[run["seed"]] = {"step": step, "rollouts": run["rollouts"][i], "seconds": run["seconds"][i]}
        summary["arms"][arm] = {
            "seeds": len(arm_runs),
            "final_acc": _mean_std([run["val_acc"][-1] for run in arm_runs]),
            "best_acc": _mean_std([max(run["val_acc"]) for run in arm_runs]),
            "reached": reach,
            "seeds_reaching": len(reach),
            "median_rollouts": _median([r["rollouts"] for r in reach.values()]),
            "median_seconds": _median([r["seconds"] for r in reach.values()]),
        }
    baseline = summary["arms"][BASELINE]["reached"]
    seeds = sorted({run["seed"] for run in runs})
    rng = random.Random(seed)
    for arm, entry in summary["arms"].items():
        for measure in ("rollouts", "seconds"):
            entry[f"{measure}_ratio"] = _ratio_of_medians(baseline, entry["reached"], measure, seeds)
            entry[f"{measure}_ratio_ci95"] = _bootstrap_ratio(baseline, entry["reached"], measure, seeds, rng)
    return summary


def mean_curve(arm_runs: list[dict]) -> dict:
    """Mean and std over seeds at each validation point (seeds validate at the same steps)."""
    steps = arm_runs[0]["steps"]
    if any(run["steps"] != steps for run in arm_runs):
        raise ValueError(f"runs of {arm_runs[0]['arm']} validated at different steps: cannot average their curves")
    columns = {key: list(zip(*(run[key] for run in arm_runs))) for key in ("val_acc", "rollouts", "seconds")}
    return {
        "steps": steps,
        "mean": [statistics.fmean(values) for values in columns["val_acc"]],
        "std": [_std(values) for values in columns["val_acc"]],
        "rollouts": [statistics.fmean(values) for values in columns["rollouts"]],
        "seconds": [statistics.fmean(values) for values in columns["seconds"]],
    }


def write_report(runs: list[dict], failures: dict[str, str], out_dir: Path, settings: dict) -> tuple[Path, Path, Path]:
    """report.json, report.md and curves.png in `out_dir`."""
    summary = summarize(runs) if any(run["arm"] == BASELINE for run in runs) else None
    png, md, js = out_dir / "curves.png", out_dir / "report.md", out_dir / "report.json"
    plot(runs, png)
    md.write_text(markdown(summary, runs, failures, settings, png.name))
    js.write_text(json.dumps({
        "settings": settings,
        "failures": failures,
        "summary": summary,
        "runs": [{key: value for key, value in run.items() if key != "run"} for run in runs],
    }, indent=2) + "\n")
    return js, md, png


def plot(runs: list[dict], out_png: Path) -> None:
    by_arm: dict[str, list[dict]] = {}
    for run in runs:
        by_arm.setdefault(run["arm"], []).append(run)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for arm, arm_runs in by_arm.items():
        curve = mean_curve(arm_runs)
        low = [m - s for m, s in zip(curve["mean"], curve["std"])]
        high = [m + s for m, s in zip(curve["mean"], curve["std"])]
        for ax, x in ((axes[0], curve["rollouts"]), (axes[1], curve["seconds"])):
            (line,) = ax.plot(x, curve["mean"], marker="o", markersize=3, label=f"{arm} (n={len(arm_runs)})")
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
    axes[0].set_xlabel("rollouts consumed")
    axes[1].set_xlabel("training wall-clock (s, mean over seeds)")
    axes[0].set_ylabel("validation accuracy (mean ± std over seeds)")
    for ax in axes:
        ax.grid(alpha=0.3)
        if by_arm:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def markdown(summary: dict | None, runs: list[dict], failures: dict[str, str], settings: dict, png_name: str) -> str:
    lines = ["# GRPO vs SFPO study", ""]
    lines.append(
        f"Grid `{settings['grid']}`, seeds {settings['seeds']}; validation every {settings['test_freq']} steps "
        f"({settings['rollouts_per_validation']} rollouts apart) on {settings['val_problems']} validation problems x "
        f"{settings['val_samples']} samples: the standard error of one accuracy near 0.5 is "
        f"{settings['accuracy_se_at_half']:.3f}."
    )
    lines.append("")
    if failures:
        lines += ["**Failed runs** (left out below):", ""] + [f"- {name}: {error}" for name, error in failures.items()] + [""]
    if summary is None:
        lines.append(f"No finished `{BASELINE}` run: no comparison.")
        return "\n".join(lines) + "\n"
    lines += [
        f"Target: the best mean accuracy of `{BASELINE}` over its seeds, {summary['target']:.3f}.",
        "",
        "| arm | seeds | final acc | best acc | seeds reaching target | median rollouts to target "
        f"| rollout ratio {BASELINE}/arm [95% CI] | median seconds to target | time ratio {BASELINE}/arm [95% CI] |",
        "|---|---:|---|---|---:|---:|---|---:|---|",
    ]
    for arm, entry in summary["arms"].items():
        lines.append(
            f"| {arm} | {entry['seeds']} | {_fmt_ms(entry['final_acc'])} | {_fmt_ms(entry['best_acc'])} "
            f"| {entry['seeds_reaching']}/{entry['seeds']} | {_fmt(entry['median_rollouts'], '.0f')} "
            f"| {_fmt_ratio(entry['rollouts_ratio'], entry['rollouts_ratio_ci95'])} "
            f"| {_fmt(entry['median_seconds'], '.0f')} | {_fmt_ratio(entry['seconds_ratio'], entry['seconds_ratio_ci95'])} |"
        )
    lines += ["", "Per seed, rollouts (seconds) to the target:", "",
              "| arm | " + " | ".join(f"seed {s}" for s in settings["seeds"]) + " |",
              "|---|" + "---:|" * len(settings["seeds"])]
    for arm, entry in summary["arms"].items():
        cells = []
        for seed in settings["seeds"]:
            reached = entry["reached"].get(seed)
            cells.append("not reached" if reached is None else f"{reached['rollouts']} ({reached['seconds']:.0f})")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", f"![curves]({png_name})", ""]
    return "\n".join(lines)


def _ratio_of_medians(baseline: dict, arm: dict, measure: str, seeds: list) -> float | None:
    base = [baseline[s][measure] for s in seeds if s in baseline]
    mine = [arm[s][measure] for s in seeds if s in arm]
    if not base or not mine or statistics.median(mine) == 0:
        return None
    return statistics.median(base) / statistics.median(mine)


def _bootstrap_ratio(baseline: dict, arm: dict, measure: str, seeds: list, rng: random.Random) -> list[float] | None:
    ratios = []
    for _ in range(BOOTSTRAP_SAMPLES):
        sample = [rng.choice(seeds) for _ in seeds]
        ratio = _ratio_of_medians(baseline, arm, measure, sample)
        if ratio is not None:
            ratios.append(ratio)
    if len(ratios) < BOOTSTRAP_SAMPLES // 2:  # most resamples hold no seed that reached: no interval
        return None
    ratios.sort()
    return [ratios[int(0.025 * len(ratios))], ratios[int(0.975 * len(ratios)) - 1]]


def _mean_std(values: list[float]) -> list[float]:
    return [statistics.fmean(values), _std(values)]


def _std(values) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _fmt_ms(mean_std: list[float]) -> str:
    return f"{mean_std[0]:.3f} ± {mean_std[1]:.3f}"


def _fmt_ratio(ratio: float | None, interval: list[float] | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "n/a"
    return f"{ratio:.2f}x" + ("" if interval is None else f" [{interval[0]:.2f}, {interval[1]:.2f}]")
