"""A GRPO-vs-SFPO study on the CPU task: arms x seeds through `python -m sfpo_verl.main`,
then a report with error bars.

    python -m sfpo_verl.cpu.study --out-dir runs/study [--seeds 3] [--grid default|ablations]
                                  [--arms NAME,...] [--config YAML] [verl overrides ...]
    bash scripts/study.sh --out-dir runs/study          # the same, in the project's .venv

Settings: the quickstart's (sfpo_verl/cpu/quickstart/quickstart.yaml, or --config), then
STUDY_DEFAULTS below, then the command line's verl overrides; each arm's SFPO settings and the
seed (data order and rollout sampling) are the study's and win. The pre-trained model is built
once into DIR/task and shared by every run. Resumable: rerun the same command and finished
runs are skipped. Writes DIR/report.md, DIR/curves.png and DIR/report.json (per run: arm,
seed, and per validation val_acc, rollouts, seconds). Exits 1 if a run failed (the report
then covers the others and names the failed run's log).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd
import yaml

from sfpo_verl.cpu.quickstart.run import DEFAULT_CONFIG, merge_overrides, rollouts_per_step
from sfpo_verl.cpu.study.grid import GRIDS, arms_of
from sfpo_verl.cpu.study.report import read_run, write_report
from sfpo_verl.cpu.study.runner import plan_runs, run_all
from sfpo_verl.cpu.task.build import TaskPaths, TaskSettings, build_task

# Validation often enough that rollouts-to-match is finely quantized, and on more samples per
# problem than the quickstart, so one accuracy's standard error is small.
STUDY_DEFAULTS = {
    "trainer.test_freq": 2,
    "actor_rollout_ref.rollout.val_kwargs.n": 4,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--grid", default="default", help=f"one of {', '.join(GRIDS)}")
    parser.add_argument("--arms", default=None, help="comma-separated subset of the grid's arms (grpo always runs)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="quickstart-style yaml (default: %(default)s)")
    args, verl_overrides = parser.parse_known_args(argv)
    try:
        arms = arms_of(args.grid, args.arms.split(",") if args.arms else None)
        base = merge_overrides({**yaml.safe_load(args.config.read_text())["verl"], **STUDY_DEFAULTS}, verl_overrides)
    except ValueError as error:
        parser.error(str(error))
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: at least 1")
    config = yaml.safe_load(args.config.read_text())
    out_dir = args.out_dir.resolve()
    task_dir = out_dir / "task"
    build_task(task_dir, TaskSettings(**config["task"]))
    task = TaskPaths(task_dir)

    seeds = list(range(args.seeds))
    runs = plan_runs(base, arms, seeds, task, out_dir)
    values = dict(o.lstrip("+").split("=", 1) for o in base)
    print(f"[study] grid {args.grid}: {len(arms)} arms x {len(seeds)} seeds = {len(runs)} runs into {out_dir}", flush=True)
    failures = run_all(runs, int(values["trainer.total_training_steps"]))

    per_step = rollouts_per_step(base)
    val_problems = len(pd.read_parquet(task.val))
    val_samples = int(values["actor_rollout_ref.rollout.val_kwargs.n"])
    settings = {
        "grid": args.grid,
        "arms": list(arms),
        "seeds": seeds,
        "test_freq": int(values["trainer.test_freq"]),
        "rollouts_per_validation": int(values["trainer.test_freq"]) * per_step,
        "val_problems": val_problems,
        "val_samples": val_samples,
        "accuracy_se_at_half": math.sqrt(0.25 / (val_problems * val_samples)),
        "overrides": verl_overrides,
    }
    finished = [read_run(run, per_step) for run in runs if run.done]
    report_json, report_md, png = write_report(finished, failures, out_dir, settings)
    print(report_md.read_text())
    print(f"Report: {report_md}\nPlot: {png}\nData: {report_json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
