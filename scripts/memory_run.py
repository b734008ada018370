"""A long CPU run watched for memory growth: the quickstart's SFPO arm for --steps steps, a
checkpoint every --save-freq steps (verl keeps the last --keep), the resident memory (RSS) of
every process of the run sampled every 2 s and tagged with the last step logged.

    python scripts/memory_run.py                           # 300 steps, checkpoint every 25, keep 2
    python scripts/memory_run.py --steps 60 --json out.json

Per process (and for all of them together) it reports the RSS after the warm-up, the peak, and
the growth per 100 steps: the least-squares slope of the RSS at each step's last sample over the
steps after --warmup, as MiB and as a share of the RSS after the warm-up; and the CPU seconds each
process spends per step after the warm-up (where a step's time goes). Validation runs only at
the end (test_freq = steps), so every step is alike. Writes the samples and the report under
--out-dir (default runs/memory).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path

from sfpo_verl.cpu.quickstart.run import arm_overrides, read_config, run_arm
from sfpo_verl.cpu.settings import merge_overrides
from sfpo_verl.cpu.task.build import TaskPaths, TaskSettings, build_task

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20


def per_step(samples: list[dict], field: str = "rss") -> dict[str, dict[int, float]]:
    """{process: {step: `field` (rss, or cpu_seconds) at the first sample taken once that step was
    logged}}. The last step logged is left out: verl logs it after the final validation, as the
    run shuts its processes down."""
    last = max((sample["step"] for sample in samples if sample["step"] is not None), default=None)
    series: dict[str, dict[int, float]] = {}
    for sample in samples:
        if sample["step"] is None or sample["step"] == last:
            continue
        for process, value in sample[field].items():
            series.setdefault(process, {}).setdefault(sample["step"], value)
    return series


def with_total(series: dict[str, dict[int, float]], warmup: int) -> dict[str, dict[int, float]]:
    """`series` plus "all processes": per step, the sum over the processes seen at every step
    from the warm-up on (one that comes and goes, such as a restarted verifier, would make the
    sum jump; it is reported on its own)."""
    steps = sorted({step for by_step in series.values() for step in by_step if step >= warmup})
    lasting = [by_step for by_step in series.values() if all(step in by_step for step in steps)]
    return {**series, "all processes": {step: sum(by_step[step] for by_step in lasting) for step in steps}}


def cpu_seconds_per_step(by_step: dict[int, float], warmup: int) -> float | None:
    """Mean CPU seconds the process spent per step after the warm-up (None if not seen twice)."""
    points = sorted((step, cpu) for step, cpu in by_step.items() if step >= warmup)
    if len(points) < 2:
        return None
    (first_step, first_cpu), (last_step, last_cpu) = points[0], points[-1]
    return (last_cpu - first_cpu) / (last_step - first_step)


def growth(by_step: dict[int, int], warmup: int) -> dict | None:
    """RSS after the warm-up, peak, and least-squares growth per 100 steps after it (None when the
    process was not seen at two steps after the warm-up)."""
    points = sorted((step, rss) for step, rss in by_step.items() if step >= warmup)
    if len(points) < 2:
        return None
    steps, rss = zip(*points)
    mean_step, mean_rss = sum(steps) / len(steps), sum(rss) / len(rss)
    slope = sum((s - mean_step) * (r - mean_rss) for s, r in points) / sum((s - mean_step) ** 2 for s in steps)
    return {
        "steps": [steps[0], steps[-1]],
        "rss_after_warmup_mib": round(rss[0] / MIB, 1),
        "peak_mib": round(max(by_step.values()) / MIB, 1),
        "growth_mib_per_100_steps": round(slope * 100 / MIB, 2),
        "growth_pct_per_100_steps": round(100 * slope * 100 / rss[0], 2),
    }


def short_name(process: str) -> str:
    """'1234 ray::WorkerDict ...' -> 'ray::WorkerDict (1234)'; the driver by its module."""
    if process == "all processes":
        return process
    pid, _, command = process.partition(" ")
    module = re.search(r"-m (\S+)", command)
    return f"{module.group(1) if module else Path(command.split(' ')[0]).name} ({pid})"


def run(args) -> tuple[Path, float]:
    """Train the arm with memory sampling; (the samples file, the run's wall seconds)."""
    config = read_config()
    task_dir = PROJECT_ROOT / config["task_dir"]
    build_task(task_dir, TaskSettings(**config["task"]))
    base = merge_overrides(config["verl"], [
        f"trainer.total_training_steps={args.steps}", f"trainer.test_freq={args.steps}",
        f"trainer.save_freq={args.save_freq}", f"trainer.max_actor_ckpt_to_keep={args.keep}",
    ])
    arm_dir = args.out_dir / args.arm
    samples_path = args.out_dir / "memory_samples.jsonl"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    samples_path.unlink(missing_ok=True)
    result = run_arm(args.arm, arm_overrides(base, args.arm, TaskPaths(task_dir), arm_dir.resolve()), arm_dir,
                     args.steps, memory_log=samples_path)
    return samples_path, result["wall_seconds"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--save-freq", type=int, default=25)
    parser.add_argument("--keep", type=int, default=2, help="checkpoints verl keeps (max_actor_ckpt_to_keep)")
    parser.add_argument("--warmup", type=int, default=50, help="steps left out of the growth fit (default 50)")
    parser.add_argument("--arm", choices=["sfpo", "grpo"], default="sfpo")
    parser.add_argument("--out-dir", type=Path, default=PROJECT_ROOT / "runs/memory")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--samples", type=Path,
                        help="analyse this memory_samples.jsonl(.gz) of an earlier run instead of running")
    args = parser.parse_args(argv)
    for name in ("steps", "save_freq", "keep"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: at least 1")
    if not 0 <= args.warmup < args.steps - 1:
        parser.error(f"--warmup {args.warmup}: from 0 to --steps - 2")

    if args.samples is None:
        samples_path, wall_seconds = run(args)
    else:
        samples_path, wall_seconds = args.samples, None
    opened = gzip.open(samples_path, "rt") if samples_path.suffix == ".gz" else open(samples_path)
    with opened as lines:
        samples = [json.loads(line) for line in lines]
    report = {
        "arm": args.arm, "steps": args.steps, "save_freq": args.save_freq, "keep": args.keep, "warmup": args.warmup,
        "wall_seconds": wall_seconds,
        "processes": {short_name(p): g for p, series in with_total(per_step(samples), args.warmup).items()
                      if (g := growth(series, args.warmup))},
    }
    for process, series in with_total(per_step(samples, "cpu_seconds"), args.warmup).items():
        if short_name(process) in report["processes"]:
            cpu = cpu_seconds_per_step(series, args.warmup)
            report["processes"][short_name(process)]["cpu_seconds_per_step"] = None if cpu is None else round(cpu, 3)
    print(f"{'process':<48} {'RSS@warmup MiB':>14} {'peak MiB':>9} {'MiB/100 steps':>13} {'%/100 steps':>11} "
          f"{'CPU s/step':>10}")
    for name, entry in sorted(report["processes"].items(), key=lambda item: -item[1]["peak_mib"]):
        print(f"{name[:48]:<48} {entry['rss_after_warmup_mib']:>14} {entry['peak_mib']:>9} "
              f"{entry['growth_mib_per_100_steps']:>13} {entry['growth_pct_per_100_steps']:>11} "
              f"{entry.get('cpu_seconds_per_step')!s:>10}")
    (args.out_dir / "memory_report.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
