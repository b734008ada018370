"""Run the CPU quickstart: build the task if absent, train each arm through
`python -m sfpo_verl.main` with identical settings (only `algorithm.name` differs), then
write the plot and the summary.

    python -m sfpo_verl.cpu.quickstart.run [--config YAML] [verl overrides ...]

Defaults live in quickstart.yaml beside this file, over the CPU platform's settings
(sfpo_verl/cpu/platform/cpu_settings.yaml); command-line overrides replace the value for the
same key and otherwise pass through to verl unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from sfpo_verl.cpu.quickstart.report import read_arm, write_report
from sfpo_verl.cpu.settings import cpu_overrides, merge_overrides
from sfpo_verl.cpu.task.build import TaskPaths, TaskSettings, build_task
from sfpo_verl.paper.analysis.efficiency import held_out_accuracy, held_out_columns
from sfpo_verl.paper.analysis.runs import file_logger_records

DEFAULT_CONFIG = Path(__file__).with_name("quickstart.yaml")
# The paper's math reward (last `\boxed{}`, math-verify), which the task's answers are written for.
REWARD_PATH = "pkg://sfpo_verl.paper.reward.math_reward"


def say(line: str) -> None:
    """Print one line in one write: arms and study runs that run at once print from several
    threads, and print() writes the line and its newline separately."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def read_config(path: Path = DEFAULT_CONFIG) -> dict:
    """A quickstart-style yaml, its `verl:` settings put over the CPU platform's
    (sfpo_verl/cpu/platform/cpu_settings.yaml): a key it sets replaces the platform's value."""
    config = yaml.safe_load(Path(path).read_text())
    own = config["verl"]
    replaced = {key.lstrip("+") for key in own}
    platform = {key: value for key, value in cpu_overrides().items() if key.lstrip("+") not in replaced}
    return {**config, "verl": {**platform, **own}}


def arm_overrides(base: list[str], arm: str, task: TaskPaths, arm_dir: Path) -> list[str]:
    """The per-arm settings the runner owns, ahead of the user's (which win on conflict)."""
    owned = [
        f"algorithm.name={arm}",
        f"trainer.experiment_name={arm}",
        f"trainer.default_local_dir={arm_dir / 'checkpoints'}",
        f"data.train_files={task.train}",
        f"data.val_files={task.val}",
        f"actor_rollout_ref.model.path={task.model}",
        f"reward.custom_reward_function.path={REWARD_PATH}",
        "reward.custom_reward_function.name=compute_score",
    ]
    return merge_overrides({o.split("=", 1)[0]: o.split("=", 1)[1] for o in owned}, base)


def rollouts_per_step(overrides: list[str]) -> int:
    values = dict(o.lstrip("+").split("=", 1) for o in overrides)
    return int(values["data.train_batch_size"]) * int(values["actor_rollout_ref.rollout.n"])


StartCheck = Callable[[dict[str, float]], str | None]


def run_arm(arm: str, overrides: list[str], arm_dir: Path, total_steps: int, timeout_s: float | None = None,
            memory_log: Path | None = None, check_start: StartCheck | None = None) -> dict:
    """Train one arm through `python -m sfpo_verl.main` (killed after `timeout_s`); verl's full
    output goes to train.log and its metrics to metrics.jsonl, a progress line per step to stdout,
    and with `memory_log` the resident memory and CPU seconds (user + system) of each of its processes,
    every sample, as JSON lines. `check_start` gets the validation before training (step 0's
    metrics) as soon as it is logged; a reason it returns stops the run there.
    Raises RuntimeError naming the log when the run fails or is stopped."""
    arm_dir.mkdir(parents=True, exist_ok=True)
    metrics = arm_dir / "metrics.jsonl"
    metrics.unlink(missing_ok=True)
    env = dict(os.environ, VERL_FILE_LOGGER_PATH=str(metrics), PYTHONUNBUFFERED="1")
    env.pop("VERL_PLATFORM", None)  # trainer.device picks the platform by itself
    # A private Ray temp dir: this run starts (and, on exit, stops) its own local cluster.
    ray_tmp = tempfile.mkdtemp(prefix="sfpo-ray-")
    env["RAY_TMPDIR"] = ray_tmp
    start = time.time()
    with open(arm_dir / "train.log", "w") as log:
        say(f"[{arm}] training ({total_steps} steps); verl's log: {arm_dir / 'train.log'}")
        process = subprocess.Popen([sys.executable, "-m", "sfpo_verl.main", *overrides], stdout=log,
                                   stderr=subprocess.STDOUT, env=env)
        watcher = _ProgressWatcher(arm, metrics, process.pid, total_steps, start, memory_log, check_start)
        watcher.start()
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            returncode = process.wait()
            raise RuntimeError(f"The {arm} arm did not finish within {timeout_s:.0f}s; see {arm_dir / 'train.log'}"
                               f"{_log_tail(arm_dir / 'train.log')}") from None
        finally:
            watcher.stop()
            shutil.rmtree(ray_tmp, ignore_errors=True)
    seconds = time.time() - start
    if watcher.stopped_because is not None:
        raise RuntimeError(f"The {arm} arm was stopped at its validation before training: {watcher.stopped_because}; "
                           f"see {arm_dir / 'train.log'}")
    if returncode != 0:
        raise RuntimeError(f"The {arm} arm failed (exit {returncode}); see {arm_dir / 'train.log'}"
                           f"{_log_tail(arm_dir / 'train.log')}")
    say(f"[{arm}] done in {seconds:.0f}s, peak memory of its processes {watcher.peak_rss_gb:.1f} GiB")
    return {"wall_seconds": round(seconds, 1), "peak_rss_gib": round(watcher.peak_rss_gb, 2)}


def _log_tail(log: Path, lines: int = 30) -> str:
    """The log's last lines, for an error raised where the log itself may not survive (CI)."""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "".join(f"\n  | {line}" for line in [f"last {len(tail)} lines of the log:", *tail])


class _ProgressWatcher(threading.Thread):
    """Prints each new step of verl's metrics file, and samples the run's total memory (and each
    process's, into `memory_log`, tagged with the last step logged)."""

    def __init__(self, arm: str, metrics: Path, pid: int, total_steps: int, start: float,
                 memory_log: Path | None = None, check_start: StartCheck | None = None):
        super().__init__(daemon=True)
        self.arm, self.metrics, self.pid, self.total, self.start_time = arm, metrics, pid, total_steps, start
        self.memory_log, self.check_start = memory_log, check_start
        self.stopped_because: str | None = None
        self.peak_rss_gb = 0.0
        self._last_step = None
        self._stopping = threading.Event()
        self._lines_seen = 0
        self._validations: dict[int, dict[str, float]] = {}  # held-out metrics read so far, by step

    def run(self):
        while not self._stopping.wait(2.0):
            self._sample_memory()
            self._print_new_steps()
        self._print_new_steps()

    def stop(self):
        self._stopping.set()
        self.join()

    def _print_new_steps(self):
        if not self.metrics.exists():
            return
        lines = self.metrics.read_text().split("\n")[:-1]  # whole lines: verl may be writing the last
        for step, data in file_logger_records(lines[self._lines_seen:], self.metrics, self._lines_seen + 1):
            self._last_step = step
            if step == 0 and self.check_start is not None and self.stopped_because is None:
                self.stopped_because = self.check_start(data)
                if self.stopped_because is not None:
                    _kill_tree(self.pid)
            held_out = {column: data[column] for column in held_out_columns(data)}
            if held_out:
                self._validations.setdefault(step, {}).update(held_out)
            parts = [f"[{self.arm}] step {step}/{self.total}"]
            if "critic/score/mean" in data:
                parts.append(f"reward {data['critic/score/mean']:.3f}")
            # held-out accuracy as the report reads it, over the validations so far (all data sources)
            accuracy = held_out_accuracy(pd.DataFrame.from_dict(self._validations, orient="index"))
            if held_out and step in accuracy.index:
                parts.append(f"val acc {accuracy[step]:.3f}")
            if "sfpo/alpha" in data:
                parts.append(f"alpha {data['sfpo/alpha']:.2f}")
            parts.append(f"({time.time() - self.start_time:.0f}s)")
            say("  ".join(parts))
        self._lines_seen = len(lines)

    def _sample_memory(self):
        import psutil

        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
            names = {p: f"{p.pid} {_process_name(p.cmdline())}" for p in processes if p.is_running()}
            rss = {name: p.memory_info().rss for p, name in names.items()}
            cpu = {name: round(sum(p.cpu_times()[:2]), 3) for p, name in names.items()} if self.memory_log else {}
        except psutil.Error:
            return
        self.peak_rss_gb = max(self.peak_rss_gb, sum(rss.values()) / 2**30)
        if self.memory_log is not None:
            record = {"seconds": round(time.time() - self.start_time, 1), "step": self._last_step, "rss": rss,
                      "cpu_seconds": cpu}
            with open(self.memory_log, "a") as log:
                log.write(json.dumps(record) + "\n")


def _kill_tree(pid: int) -> None:
    """Kill a run's process and everything it started (its Ray cluster's processes included)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            pass


def _process_name(cmdline: list[str]) -> str:
    """A process's command line, shortened; a Ray actor by its class (Ray renames the process
    after the method it runs: "ray::WorkerDict.actor_rollout_update_actor")."""
    if cmdline and cmdline[0].startswith("ray::"):
        return cmdline[0].split(".")[0]
    return " ".join(cmdline)[:80]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="quickstart yaml (default: %(default)s)")
    args, verl_overrides = parser.parse_known_args(argv)
    config = read_config(args.config)

    out_dir = Path(config["output_dir"])
    start = time.time()
    manifest = build_task(Path(config["task_dir"]), TaskSettings(**config["task"]))
    task = TaskPaths(Path(config["task_dir"]))
    base = merge_overrides(config["verl"], verl_overrides)
    total_steps = int(dict(o.lstrip("+").split("=", 1) for o in base)["trainer.total_training_steps"])

    runs, arms = {}, []
    for arm in config["arms"]:
        arm_dir = out_dir / arm
        overrides = arm_overrides(base, arm, task, arm_dir.resolve())
        runs[arm] = run_arm(arm, overrides, arm_dir, total_steps)
        arms.append(read_arm(arm, arm_dir / "metrics.jsonl", rollouts_per_step(overrides)))
    png, md = write_report(arms, out_dir, config["baseline"], start_accuracy=manifest["start_accuracy"])
    runs["total_wall_seconds"] = round(time.time() - start, 1)
    (out_dir / "runs.json").write_text(json.dumps(runs, indent=2))
    print(md.read_text())
    print(f"Plot: {png}\nSummary: {md}\nTotal time: {runs['total_wall_seconds']:.0f}s")


if __name__ == "__main__":
    main()
