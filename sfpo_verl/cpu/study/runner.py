"""Runs a study's arms x seeds through `python -m sfpo_verl.main`, one after another or a few at once.

A run trains in its work folder (verl's log, metrics and checkpoints); when it finishes, its
metrics (gzip-compressed: verl logs hundreds of metrics a step, about 4 kB a step as plain
JSON) and `done.json` go to its results folder (the same folder unless the study
keeps its results apart, e.g. committed to the repository). Resumable: a results folder with
both files is a finished run and is skipped next time, whoever ran it; a run without them
(killed, or failed) starts again from scratch. A failed run is reported with its log and the
other runs go on. A stop file, when given and once it exists, lets the running runs finish and
starts no further one: a way to stop at a run boundary that does not depend on how the study
was launched (a background job may have been started with SIGINT ignored).

Running two at once is worth it on a small machine: verl's loop is a pipeline of
single-threaded processes that leaves much of 2 cores idle. Sharing the machine changes a run's
seconds (`done.json` records how many ran at once), not its seeding: its samples and updates
follow its seed whatever else runs, as in any two launches (tests/test_exact_resume.py).
"""

from __future__ import annotations

import gzip
import json
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sfpo_verl.cpu.quickstart.run import arm_overrides, run_arm, say
from sfpo_verl.cpu.settings import hydra_value, merge_overrides
from sfpo_verl.cpu.task.build import TaskPaths

DONE_FILE = "done.json"
STOP_FILE = "STOP"  # the study's stop file, in its work folder
SEED_KEYS = ("data.seed", "actor_rollout_ref.rollout.seed")  # data order and rollout sampling


@dataclass(frozen=True)
class RunSpec:
    arm: str
    seed: int
    folder: Path  # results: metrics.jsonl.gz and done.json
    work_folder: Path  # verl's log, metrics and checkpoints while it trains
    overrides: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.arm} seed {self.seed}"

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.jsonl.gz"

    @property
    def log(self) -> Path:
        return self.work_folder / "train.log"

    @property
    def done(self) -> bool:
        return (self.folder / DONE_FILE).exists() and self.metrics.exists()


def plan_runs(base: list[str], arms: dict[str, dict], seeds: list[int], task: TaskPaths, out_dir: Path,
              work_dir: Path | None = None) -> list[RunSpec]:
    """Every (seed, arm) run, seeds outermost so an interrupted study has whole seeds done;
    results under `out_dir`/runs, training under `work_dir`/runs (default: `out_dir`).
    `base` holds the quickstart's verl settings with the user's overrides; each arm's settings
    and the seed are the study's and win over both."""
    runs = []
    for seed in seeds:
        for arm, settings in arms.items():
            folder, work_folder = ((root / "runs" / arm / f"seed{seed}").resolve() for root in (out_dir, work_dir or out_dir))
            owned = arm_overrides(base, settings["algorithm.name"], task, work_folder)
            study_settings = {**settings, **{key: seed for key in SEED_KEYS}, "trainer.experiment_name": f"{arm}_seed{seed}"}
            overrides = merge_overrides(dict(o.split("=", 1) for o in owned),
                                        [f"{key}={hydra_value(value)}" for key, value in study_settings.items()])
            runs.append(RunSpec(arm, seed, folder, work_folder, tuple(overrides)))
    return runs


Launcher = Callable[[str, list[str], Path, int], dict]


def run_all(runs: list[RunSpec], total_steps: int, launch: Launcher = run_arm, jobs: int = 1,
            stop_file: Path | None = None) -> dict[str, str]:
    """Run what is not done yet, up to `jobs` at a time in plan order, until `stop_file` exists;
    returns {run name: error} for the runs that failed."""
    failures = {}
    todo = []
    for index, run in enumerate(runs, 1):
        if run.done:
            say(f"[study] {index}/{len(runs)} {run.name}: done before, skipped")
        else:
            todo.append((index, run))

    stopping = threading.Event()  # a launch raised something other than a failed run: start no more

    def run_one(index: int, run: RunSpec) -> None:
        if stopping.is_set():
            return
        if stop_file is not None and stop_file.exists():
            stopping.set()
            say(f"[study] {stop_file} exists: starting no further run")
            return
        for folder in (run.folder, run.work_folder):  # a killed run's partial output
            shutil.rmtree(folder, ignore_errors=True)
        say(f"[study] {index}/{len(runs)} {run.name}")
        start = time.time()
        try:
            result = launch(run.arm, list(run.overrides), run.work_folder, total_steps)
        except RuntimeError as error:
            failures[run.name] = str(error) if str(run.log) in str(error) else f"{error} (log: {run.log})"
            say(f"[study] {run.name} FAILED: {error}; the other runs go on")
            return
        except BaseException:
            stopping.set()
            raise
        run.folder.mkdir(parents=True, exist_ok=True)
        with open(run.work_folder / "metrics.jsonl", "rb") as plain, gzip.open(run.metrics, "wb") as packed:
            shutil.copyfileobj(plain, packed)
        done = {"seconds": round(time.time() - start, 1), **result, "runs_at_once": jobs}
        (run.folder / DONE_FILE).write_text(json.dumps(done))
        say(f"[study] {index}/{len(runs)} {run.name}: done")

    pool = ThreadPoolExecutor(max_workers=jobs)  # with one worker, the runs one after another
    try:
        for finished in [pool.submit(run_one, index, run) for index, run in todo]:
            finished.result()  # re-raises what a launch raised other than a failed run
    finally:  # e.g. Ctrl-C in this thread: start no further run (those running got the signal too)
        stopping.set()
        pool.shutdown(wait=True, cancel_futures=True)
    return failures
