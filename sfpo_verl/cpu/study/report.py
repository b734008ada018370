"""A study's report: the grid's comparisons (arm - baseline, paired by seed), the rollouts and
seconds each arm needed to reach fixed accuracy targets, whether the baselines had stopped
improving, and per-arm accuracy, with the curves (mean ± std over seeds).

Accuracy, rollouts and training seconds come from `sfpo_verl.paper.analysis` (held-out
accuracy as for the paper's runs); the statistics are its `measures` and `paired` modules.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sfpo_verl.cpu.study.runner import DONE_FILE, RunSpec  # noqa: E402
from sfpo_verl.paper.analysis.efficiency import held_out_accuracy, progress  # noqa: E402
from sfpo_verl.paper.analysis.measures import (  # noqa: E402
    LAST_VALIDATIONS,
    PAIRED_MEASURES,
    Curve,
    final,
    last_mean,
    late_change,
    paired_measures,
    time_to_target,
)
from sfpo_verl.paper.analysis.paired import BOOTSTRAP_RESAMPLES, paired_difference  # noqa: E402
from sfpo_verl.paper.analysis.runs import load_run  # noqa: E402

MEASURE_LABELS = {"auc": "AUC", "last3_mean": f"mean of last {LAST_VALIDATIONS}", "final": "final"}
# ||theta_K - theta_0|| of a step's fast passes, logged by SFPO's update: the reposition keeps
# alpha of it, so it measures an arm's step size (the stepsize grid matches arms by it).
FAST_DISPLACEMENT = "sfpo/fast_displacement_norm"


def read_run(run: RunSpec, rollouts_per_step: int) -> dict:
    """One run's per-validation accuracy (fraction), rollouts and training seconds, and its
    training seconds in all (verl's `timing_s/step` summed over every step), how many runs
    shared the machine with it (its seconds depend on that), and for SFPO the median over steps
    of the fast passes' displacement (None for GRPO, which logs none)."""
    loaded = load_run(run.name, run.metrics, rollouts_per_step)
    accuracy = held_out_accuracy(loaded.metrics)
    elapsed = progress(loaded)
    displacement = loaded.metrics.get(FAST_DISPLACEMENT, pd.Series(dtype=float)).dropna()
    return {
        "arm": run.arm,
        "seed": run.seed,
        "steps": [int(step) for step in accuracy.index],
        "val_acc": [round(value, 6) for value in accuracy],
        "rollouts": [int(elapsed.at[step, "rollouts"]) for step in accuracy.index],
        "seconds": [round(float(elapsed.at[step, "seconds"]), 2) for step in accuracy.index],
        "training_seconds": round(float(elapsed["seconds"].iloc[-1]), 2),
        "runs_at_once": json.loads((run.folder / DONE_FILE).read_text()).get("runs_at_once", 1),
        "fast_displacement": None if displacement.empty else round(float(displacement.median()), 6),
    }


def run_time(runs: list[RunSpec]) -> dict:
    """The machine time the finished `runs` took: each run's wall seconds from launch to end
    (done.json), summed, and summed by how many runs shared the machine (runs made two at a time
    overlap, so the machine was busy for about half of their sum)."""
    done = [json.loads((run.folder / DONE_FILE).read_text()) for run in runs if run.done]
    by_runs_at_once = Counter()
    for record in done:
        by_runs_at_once[record.get("runs_at_once", 1)] += record["seconds"]
    return {"runs": len(done), "seconds": round(sum(by_runs_at_once.values()), 1),
            "seconds_by_runs_at_once": {at_once: round(seconds, 1) for at_once, seconds in sorted(by_runs_at_once.items())}}


def curve_of(run: dict) -> Curve:
    return Curve(run["seed"], tuple(run["rollouts"]), tuple(run["val_acc"]), tuple(run["seconds"]))


def by_arm(runs: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for run in runs:
        grouped.setdefault(run["arm"], []).append(run)
    return grouped


def compare(arm: str, baseline: str, runs: dict[str, list[dict]], budget: int) -> dict:
    """One comparison record: per measure the paired difference arm - baseline, and the ratio
    of mean training seconds per run over the same seeds; `missing` says why there is none."""
    record = {"arm": arm, "baseline": baseline, "n_seeds": 0, "seeds": [], "missing": None, "measures": None,
              "training_seconds": None}
    absent = [name for name in (arm, baseline) if name not in runs]
    if absent:
        return {**record, "missing": f"no finished run of {' or '.join(absent)}"}
    values = {name: {run["seed"]: paired_measures(curve_of(run), budget) for run in runs[name]} for name in (arm, baseline)}
    results = {
        measure: paired_difference({s: v[measure] for s, v in values[arm].items()},
                                   {s: v[measure] for s, v in values[baseline].items()})
        for measure in PAIRED_MEASURES
    }
    if results["auc"] is None:
        return {**record, "missing": f"no seed with finished runs of both {arm} and {baseline}"}
    seeds = results["auc"].seeds
    seconds = {name: statistics.fmean(r["training_seconds"] for r in runs[name] if r["seed"] in seeds)
               for name in (arm, baseline)}
    return {
        **record,
        "n_seeds": len(seeds),
        "seeds": seeds,
        "measures": {measure: result.as_dict() for measure, result in results.items()},
        "training_seconds": {"arm": seconds[arm], "baseline": seconds[baseline],
                             "ratio": seconds[arm] / seconds[baseline] if seconds[baseline] else None},
    }


def arm_summary(arm_runs: list[dict]) -> dict:
    curves = [curve_of(run) for run in arm_runs]
    displacements = [run["fast_displacement"] for run in arm_runs]
    return {
        "seeds": len(arm_runs),
        "validations": min(len(run["val_acc"]) for run in arm_runs),
        "final_acc": _mean_std([final(curve) for curve in curves]),
        "last3_mean": _mean_std([last_mean(curve) for curve in curves]),
        "best_acc": _mean_std([max(curve.accuracy) for curve in curves]),
        "training_seconds": _mean_std([run["training_seconds"] for run in arm_runs]),
        "late_change": late_change(curves),
        "fast_displacement": None if None in displacements else _mean_std(displacements),
    }


def start_check(runs: list[dict]) -> dict:
    """Per seed, each arm's validation before training. The pre-trained model and the seed fix
    it, so it is the same in every arm of a seed; a difference means runs of that seed did not
    start alike (e.g. a task built differently in another sitting), and pairing them is unsound."""
    starts: dict[int, dict[str, float]] = {}
    for run in runs:
        if run["steps"][:1] == [0]:
            starts.setdefault(run["seed"], {})[run["arm"]] = run["val_acc"][0]
    return {"per_seed": {seed: starts[seed] for seed in sorted(starts)},
            "mismatched_seeds": [seed for seed in sorted(starts) if len(set(starts[seed].values())) > 1]}


def summarize(runs: list[dict], settings: dict) -> dict:
    """The report's statistics: `comparisons`, `start` (the start check), `targets` (per arm x
    target) and `arms`."""
    grouped = by_arm(runs)
    arms = [arm for arm in settings["arms"] if arm in grouped]
    return {
        "comparisons": [compare(arm, baseline, grouped, settings["rollout_budget"])
                        for arm, baseline in settings["comparisons"]],
        "start": start_check(runs),
        "targets": [{"arm": arm, **time_to_target([curve_of(run) for run in grouped[arm]], target)}
                    for arm in arms for target in settings["targets"]],
        "arms": {arm: arm_summary(grouped[arm]) for arm in arms},
    }


def write_report(runs: list[dict], failures: dict[str, str], out_dir: Path, settings: dict) -> tuple[Path, Path, Path]:
    """report.json, report.md and curves.png in `out_dir`."""
    settings = {**settings, "runs_at_once": dict(Counter(run["runs_at_once"] for run in runs))}
    summary = summarize(runs, settings)
    png, md, js = out_dir / "curves.png", out_dir / "report.md", out_dir / "report.json"
    plot(runs, png)
    md.write_text(markdown(summary, failures, settings, png.name))
    js.write_text(json.dumps({"settings": settings, "failures": failures, **summary, "runs": runs}, indent=2) + "\n")
    return js, md, png


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


def plot(runs: list[dict], out_png: Path) -> None:
    grouped = by_arm(runs)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for arm, arm_runs in grouped.items():
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
        if grouped:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def markdown(summary: dict, failures: dict[str, str], settings: dict, png_name: str) -> str:
    lines = [f"# Study `{settings['grid']}`", ""]
    lines += [
        f"Seeds {settings['seeds']}; a budget of {settings['rollout_budget']} rollouts per run; validation every "
        f"{settings['test_freq']} steps ({settings['rollouts_per_validation']} rollouts apart) on "
        f"{settings['val_problems']} validation problems x {settings['val_samples']} samples: the standard error of "
        f"one accuracy near 0.5 is {settings['accuracy_se_at_half']:.3f}.",
        "",
    ]
    if "run_time" in settings:
        lines += [_run_time_text(settings["run_time"]), ""]
    if failures:
        lines += ["**Failed runs** (left out below):", ""] + [f"- {name}: {error}" for name, error in failures.items()] + [""]
    unfinished = settings.get("unfinished", [])
    if unfinished:
        lines += [f"**Not in this report: {len(unfinished)} of the grid's runs at these seeds** (not run, or not "
                  f"finished yet; so an arm may have fewer seeds than the others and a comparison covers only the "
                  f"seeds both arms finished): "
                  f"{', '.join(unfinished)}.", ""]
    lines += _comparison_lines(summary["comparisons"], settings)
    lines += _start_lines(summary["start"])
    lines += _plateau_lines(summary, settings)
    lines += _target_lines(summary["targets"], settings)
    lines += _arm_lines(summary["arms"])
    lines += ["", f"![curves]({png_name})", ""]
    return "\n".join(lines)


def _run_time_text(run_time: dict) -> str:
    hours = run_time["seconds"] / 3600
    text = f"Machine time: the {run_time['runs']} runs reported took {hours:.1f} hours, each run's wall time summed"
    shared = {int(k): v for k, v in run_time["seconds_by_runs_at_once"].items() if int(k) > 1}
    if not shared:
        return text + " (one run at a time)."
    busy = sum(v for k, v in run_time["seconds_by_runs_at_once"].items() if int(k) == 1)
    busy += sum(seconds / at_once for at_once, seconds in shared.items())
    return (text + f"; runs that shared the machine overlapped, so it was busy for about {busy / 3600:.1f} hours "
            f"(each run's seconds divided by the runs at a time).")


def _runs_at_once_text(settings: dict) -> str:
    counts = settings.get("runs_at_once", {})
    if set(counts) <= {1}:
        return "each run was the only run of a study on the machine at the time (other work there is not recorded)."
    shares = ", ".join(f"{n} run{'s' if n > 1 else ''} {'alone' if at_once == 1 else f'{at_once} at a time'}"
                       for at_once, n in sorted(counts.items()))
    return (f"seconds grow with the runs sharing the machine ({shares}), so compare them only between runs "
            f"that ran alike; a run's seeding (samples, updates) does not depend on it.")


def _p_floor_text(comparisons: list[dict]) -> str:
    """The smallest sign-flip p-value each comparison's number of paired seeds allows (2 / 2^n):
    arms of one study may have run different numbers of seeds."""
    counts = sorted({c["n_seeds"] for c in comparisons if c["missing"] is None}, reverse=True)
    if not counts:
        return "with n paired seeds it cannot fall below 2 / 2^n"
    floors = ", ".join(f"{2 / 2 ** n:.2g} with {n}" for n in counts)
    return f"with n paired seeds it cannot fall below 2 / 2^n: {floors}"


def _comparison_lines(comparisons: list[dict], settings: dict) -> list[str]:
    lines = [
        "## Comparisons (arm − baseline, paired by seed)",
        "",
        f"Per seed both arms ran, the arm's measure minus the baseline's; shown: their mean, a 95% bootstrap "
        f"percentile interval ({BOOTSTRAP_RESAMPLES:,} resamples of the seeds) and the exact two-sided sign-flip "
        f"p-value ({_p_floor_text(comparisons)}; "
        f"with few seeds the percentile interval is narrower than it should be). AUC: the area under held-out "
        f"accuracy against rollouts from 0 (the validation before training included) to the budget of "
        f"{settings['rollout_budget']} rollouts, divided by the budget (the "
        f"trapezoid rule over the validations); mean of last {LAST_VALIDATIONS}: of the last {LAST_VALIDATIONS} "
        f"validations; final: the last validation. Training seconds: mean per run of verl's `timing_s/step` "
        f"summed, over the same seeds; {_runs_at_once_text(settings)}",
        "",
    ]
    if not comparisons:
        return lines + ["No comparison among the arms run.", ""]
    compared = [c for c in comparisons if c["missing"] is None]
    if compared:
        lines += [
            "| arm − baseline | seeds | " + " | ".join(MEASURE_LABELS.values()) + " | training seconds, arm/baseline |",
            "|---|---:|" + "---|" * len(MEASURE_LABELS) + "---|",
        ]
        for c in compared:
            cells = [_fmt_difference(c["measures"][measure]) for measure in MEASURE_LABELS]
            seconds = c["training_seconds"]
            ratio = "n/a" if seconds["ratio"] is None else (
                f"{seconds['ratio']:.2f}x ({seconds['arm']:.0f} s vs {seconds['baseline']:.0f} s)")
            lines.append(f"| {c['arm']} − {c['baseline']} | {c['n_seeds']} | " + " | ".join(cells) + f" | {ratio} |")
        lines += ["", "AUC difference per seed:", "",
                  "| arm − baseline | " + " | ".join(f"seed {s}" for s in settings["seeds"]) + " |",
                  "|---|" + "---:|" * len(settings["seeds"])]
        for c in compared:
            per_seed = dict(zip(c["seeds"], c["measures"]["auc"]["diffs"]))
            cells = [f"{per_seed[s]:+.3f}" if s in per_seed else "—" for s in settings["seeds"]]
            lines.append(f"| {c['arm']} − {c['baseline']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"- {c['arm']} − {c['baseline']}: not compared, {c['missing']}." for c in comparisons if c["missing"]]
    return lines + ([""] if len(compared) < len(comparisons) else [])


def _start_lines(start: dict) -> list[str]:
    lines = ["## Did the runs of each seed start alike?", ""]
    per_seed = start["per_seed"]
    if not per_seed:
        return lines + ["Not checked: no run validated before training.", ""]
    if not start["mismatched_seeds"]:
        starts = "; ".join(f"seed {seed}: {next(iter(arms.values())):.4f} in {len(arms)} arm{'s' * (len(arms) > 1)}"
                           for seed, arms in per_seed.items())
        return lines + [f"Yes: within each seed, every arm's validation before training is the same ({starts}), as "
                        "the same pre-trained model and seed must give.", ""]
    lines += ["**No**: within these seeds the validation before training differs between arms, so their runs did not "
              "start from the same model or sampling and the comparisons over them are unsound:", ""]
    for seed in start["mismatched_seeds"]:
        lines.append(f"- seed {seed}: " + ", ".join(f"{arm} {value:.4f}" for arm, value in per_seed[seed].items()))
    return lines + [""]


def _plateau_lines(summary: dict, settings: dict) -> list[str]:
    baselines = list(dict.fromkeys(c["baseline"] for c in summary["comparisons"]))
    lines = ["## Were the baselines still improving?", ""]
    for arm in (b for b in baselines if b in summary["arms"]):
        change = summary["arms"][arm]["late_change"]
        text = (f"- {arm}: accuracy changed by {change['mean']:+.3f} over its last {change['validations']} validations "
                f"(rollouts {change['from_rollouts']} to {change['to_rollouts']}), mean over {change['n']} seeds")
        if change["std"] is None:
            lines.append(text + ".")
            continue
        se = change["std"] / change["n"] ** 0.5
        verdict = ("still rising" if change["mean"] > 2 * se else "falling" if change["mean"] < -2 * se
                   else "flat within 2 standard errors over seeds")
        lines.append(text + f" (std {change['std']:.3f}, standard error {se:.3f}): {verdict}.")
    if len(lines) == 2:
        lines.append("No baseline with finished runs.")
    return lines + [""]


def _target_lines(targets: list[dict], settings: dict) -> list[str]:
    lines = [
        "## Rollouts and training seconds to fixed accuracy targets",
        "",
        f"Targets set before the runs: {', '.join(f'{t:g}' for t in settings['targets'])}. Per seed, the first "
        "validation with accuracy at or above the target; a seed that never reached it is censored (it counts as "
        "above the budget), so a median is given only where more than half the seeds reached the target, "
        "else \"> budget\".",
        "",
        "| arm | target | seeds reaching | censored | median rollouts | median training seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in targets:
        rollouts = "> budget" if t["median_rollouts"] is None else f"{t['median_rollouts']:.0f}"
        seconds = "> budget" if t["median_seconds"] is None else f"{t['median_seconds']:.0f}"
        lines.append(f"| {t['arm']} | {t['target']:g} | {t['reached']}/{t['n']} | {t['censored']} | {rollouts} | {seconds} |")
    return lines + [""]


def _arm_lines(arms: dict) -> list[str]:
    validations = min((entry["validations"] for entry in arms.values()), default=0)
    lines = [
        "## Per arm (mean ± std over seeds)",
        "",
        f"| arm | seeds | final acc | mean of last {LAST_VALIDATIONS} | best acc (optimistic: max over {validations} "
        "validations) | training seconds per run | SFPO fast displacement per step (median over steps) |",
        "|---|---:|---|---|---|---|---|",
    ]
    for arm, entry in arms.items():
        displacement = "—" if entry["fast_displacement"] is None else _fmt_ms(entry["fast_displacement"], ".4f")
        lines.append(
            f"| {arm} | {entry['seeds']} | {_fmt_ms(entry['final_acc'])} | {_fmt_ms(entry['last3_mean'])} "
            f"| {_fmt_ms(entry['best_acc'])} | {_fmt_ms(entry['training_seconds'], '.0f')} | {displacement} |"
        )
    return lines + ["", f"The fast displacement is SFPO's `{FAST_DISPLACEMENT}`, ||θ_K − θ_0|| over a step's "
                    "fast passes; the reposition keeps α of it, so without the slow correction an arm's step is "
                    "α times it, and with it the slow pass adds its own."]


def _fmt_difference(result: dict) -> str:
    low, high = result["ci95"]
    return f"{result['mean_diff']:+.3f} [{low:+.3f}, {high:+.3f}], p = {result['p_value']:.3g}"


def _mean_std(values: list[float]) -> list[float]:
    return [statistics.fmean(values), _std(values)]


def _std(values) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _fmt_ms(mean_std: list[float], spec: str = ".3f") -> str:
    return f"{format(mean_std[0], spec)} ± {format(mean_std[1], spec)}"
