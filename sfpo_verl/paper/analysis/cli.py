"""python -m sfpo_verl.paper.analysis: compare two or more training runs.

    python -m sfpo_verl.paper.analysis --run grpo=RUNS/qwen3_4b_grpo --run sfpo=RUNS/qwen3_4b_sfpo --out-dir analysis/

A run is a directory (searched for verl file-logger JSONL, tensorboard event files and the
Hydra config) or one file-logger JSONL file. Writes curves_{step,rollouts,hours}.png,
efficiency.png and summary.md to --out-dir, and prints the summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sfpo_verl.paper.analysis.efficiency import compare_runs, markdown_table
from sfpo_verl.paper.analysis.plots import X_AXES, plot_curves, plot_efficiency
from sfpo_verl.paper.analysis.runs import RunError, load_run


def _parse_runs(pairs: list[str]) -> dict[str, Path]:
    runs = {}
    for pair in pairs:
        label, sep, path = pair.partition("=")
        if not sep or not label or not path:
            raise RunError(f"--run {pair!r}: expected LABEL=PATH, e.g. grpo=runs/qwen3_4b_grpo")
        if label in runs:
            raise RunError(f"--run: label {label!r} given twice")
        runs[label] = Path(path).expanduser()
    if len(runs) < 2:
        raise RunError("give at least two runs (--run LABEL=PATH, repeated)")
    return runs


def _parse_rollouts(values: list[str], labels: list[str]) -> dict[str, int]:
    """`N` for every run, or `LABEL=N` for one."""
    per_run: dict[str, int] = {}
    for value in values:
        label, sep, number = value.rpartition("=")
        if not number.isdigit() or int(number) < 1:
            raise RunError(f"--rollouts-per-step {value!r}: expected N or LABEL=N with N a positive integer")
        if not sep:
            per_run.update({name: int(number) for name in labels})
        elif label not in labels:
            raise RunError(f"--rollouts-per-step {value!r}: no run labelled {label!r} (runs: {', '.join(labels)})")
        else:
            per_run[label] = int(number)
    return per_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sfpo_verl.paper.analysis", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=PATH", help="a run to compare (2 or more)")
    parser.add_argument(
        "--baseline", help="label of the run whose best validation accuracy is the target (default: first)"
    )
    parser.add_argument(
        "--rollouts-per-step",
        action="append",
        default=[],
        metavar="[LABEL=]N",
        help="rollouts per training step (train_batch_size x rollout.n), when the run has no Hydra config;"
        " pass 256 for the paper's units (its counts match prompts per step)",
    )
    parser.add_argument("--out-dir", type=Path, required=True, help="where the PNG files and summary.md go")
    args = parser.parse_args(argv)

    try:
        paths = _parse_runs(args.run)
        rollouts = _parse_rollouts(args.rollouts_per_step, list(paths))
        baseline_label = args.baseline or next(iter(paths))
        if baseline_label not in paths:
            raise RunError(f"--baseline {baseline_label!r}: no such run (runs: {', '.join(paths)})")
        runs = [load_run(label, path, rollouts.get(label)) for label, path in paths.items()]
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    baseline = next(run for run in runs if run.label == baseline_label)
    target, results = compare_runs(runs, baseline)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for x_axis in X_AXES:
        plot_curves(runs, x_axis, args.out_dir / f"curves_{x_axis}.png")
    if target is None:
        print(
            f"warning: baseline {baseline_label!r} logged no validation accuracy; no efficiency figures",
            file=sys.stderr,
        )
    else:
        plot_efficiency(runs, target, {r.label: r.reached_step for r in results}, args.out_dir / "efficiency.png")
    summary = markdown_table(target, baseline_label, results)
    (args.out_dir / "summary.md").write_text(summary + "\n")
    print(summary)
    return 0
