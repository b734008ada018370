"""A study on the CPU task: a grid's arms x seeds through `python -m sfpo_verl.main`, then a
report of the grid's comparisons, paired by seed, with intervals and p-values.

    python -m sfpo_verl.cpu.study --out-dir DIR [--work-dir SCRATCH] [--seeds 3]
                                  [--grid default|ablations|epochs|stepsize] [--arms NAME,...]
                                  [--targets 0.60,0.65,0.70] [--jobs 1] [--report-only]
                                  [--config YAML] [verl overrides ...]
    bash scripts/study.sh --out-dir runs/study          # the same, in the project's .venv

Settings: the quickstart's (sfpo_verl/cpu/quickstart/quickstart.yaml, or --config, over the CPU
platform's sfpo_verl/cpu/platform/cpu_settings.yaml), then STUDY_DEFAULTS below, then the
command line's verl overrides; each arm's settings and the seed (data order and rollout
sampling) are the study's and win. `--arms` runs those arms and every baseline their
comparisons need (sfpo_verl/cpu/study/grid.py). Seeds are 0..N-1.

Where things go: each finished run's metrics.jsonl.gz and done.json under DIR/runs/ARM/seedN, and
DIR/report.md, DIR/report.json and DIR/curves.png. The pre-trained model (built
deterministically, shared by every run), verl's logs and checkpoints go under SCRATCH
(default DIR). So results committed to the repository resume from a fresh clone:
    --out-dir recipes/results/cpu_study_epochs --work-dir runs/cpu_study_epochs --grid epochs
Resumable: a run folder holding metrics.jsonl.gz and done.json is finished and never rerun, so
rerunning with more seeds runs only the new ones. Bad arguments are refused before any run.
--jobs 2 runs two at a time: one run leaves much of a 2-core machine idle (measured there: two K=7
runs at once took 2758 s each, one alone 1685 s: 1.22x the runs per hour), at twice the memory
(a run peaks near 7 GiB); a run's seeding does not change, its seconds do (the report says how
many runs shared the machine).
To stop at a run boundary: `touch SCRATCH/STOP` (the running runs finish and are kept, no
further run starts; the next study removes the file and goes on).
Runs of a seed pair only if they ran on the same kind of machine (floating-point results, and so
the pre-trained weights and every sample, differ between CPUs): see runner.py.
--report-only writes the report from the runs finished so far and runs nothing, so a study can be
read while another process runs it; the runs still missing are named at the top.
Exits 1 if a run failed (the report then covers the others and names the failed run's log).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from sfpo_verl.cpu.quickstart.run import DEFAULT_CONFIG, read_config, rollouts_per_step
from sfpo_verl.cpu.settings import merge_overrides
from sfpo_verl.cpu.study.grid import GRIDS, arms_of, comparisons
from sfpo_verl.cpu.study.report import read_run, run_time, write_report
from sfpo_verl.cpu.study.runner import STOP_FILE, machine_environment, plan_runs, run_all
from sfpo_verl.cpu.task.build import TaskPaths, TaskSettings, build_task

# Validation often enough that time to a target is finely quantized, and on more samples per
# problem than the quickstart, so one accuracy's standard error is small.
STUDY_DEFAULTS = {
    "trainer.test_freq": 2,
    "actor_rollout_ref.rollout.val_kwargs.n": 4,
}
# Accuracy targets for the CPU task, fixed before any run (its start is about 0.40).
DEFAULT_TARGETS = "0.60,0.65,0.70"  # the CPU task's, fixed from the pilot GRPO curve before the epochs study


def parse_targets(text: str) -> list[float]:
    """Comma-separated accuracies, each strictly between 0 and 1; ValueError naming a bad one."""
    targets = []
    for item in text.split(","):
        try:
            target = float(item)
        except ValueError:
            target = math.nan
        if not 0 < target < 1:
            raise ValueError(f"--targets {text}: {item!r} is not an accuracy strictly between 0 and 1")
        targets.append(target)
    return targets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True, help="results: runs' metrics and done.json, the report")
    parser.add_argument("--work-dir", type=Path, default=None, help="the task, logs, checkpoints (default: --out-dir)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--grid", default="default", help=f"one of {', '.join(GRIDS)}")
    parser.add_argument("--arms", default=None, help="comma-separated subset of the grid's arms (their baselines run too)")
    parser.add_argument("--targets", default=DEFAULT_TARGETS,
                        help="accuracy targets, fixed before the runs (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: report the runs finished so far (e.g. while another study process runs)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="quickstart-style yaml (default: %(default)s)")
    args, verl_overrides = parser.parse_known_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: at least 1")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: at least 1")
    try:
        arms = arms_of(args.grid, args.arms.split(",") if args.arms else None)
        targets = parse_targets(args.targets)
        config = read_config(args.config)
        base = merge_overrides({**config["verl"], **STUDY_DEFAULTS}, verl_overrides)
    except ValueError as error:
        parser.error(str(error))
    out_dir = args.out_dir.resolve()
    work_dir = (args.work_dir or args.out_dir).resolve()
    build_task(work_dir / "task", TaskSettings(**config["task"]))
    task = TaskPaths(work_dir / "task")

    seeds = list(range(args.seeds))
    runs = plan_runs(base, arms, seeds, task, out_dir, work_dir)
    values = dict(o.lstrip("+").split("=", 1) for o in base)
    total_steps = int(values["trainer.total_training_steps"])
    print(f"[study] grid {args.grid}: {len(arms)} arms x {len(seeds)} seeds = {len(runs)} runs into {out_dir}", flush=True)
    stop_file = work_dir / STOP_FILE
    if not args.report_only:
        stop_file.unlink(missing_ok=True)  # a stop asked of an earlier study, not of this one
        print(f"[study] to stop after the running runs, without killing them: touch {stop_file}", flush=True)
    failures = {} if args.report_only else run_all(runs, total_steps, jobs=args.jobs, stop_file=stop_file,
                                                    environment=machine_environment(task))

    per_step = rollouts_per_step(base)
    val_problems = len(pd.read_parquet(task.val))
    val_samples = int(values["actor_rollout_ref.rollout.val_kwargs.n"])
    settings = {
        "grid": args.grid,
        "arms": list(arms),
        "comparisons": comparisons(args.grid, list(arms)),
        "seeds": seeds,
        "targets": targets,
        "rollout_budget": total_steps * per_step,
        "test_freq": int(values["trainer.test_freq"]),
        "rollouts_per_validation": int(values["trainer.test_freq"]) * per_step,
        "val_problems": val_problems,
        "val_samples": val_samples,
        "accuracy_se_at_half": math.sqrt(0.25 / (val_problems * val_samples)),
        "overrides": verl_overrides,
        "unfinished": [run.name for run in runs if not run.done and run.name not in failures],
        "run_time": run_time(runs),
    }
    finished = [read_run(run, per_step) for run in runs if run.done]
    report_json, report_md, png = write_report(finished, failures, out_dir, settings)
    print(report_md.read_text())
    print(f"Report: {report_md}\nPlot: {png}\nData: {report_json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
