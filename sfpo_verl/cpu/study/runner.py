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

Runs of a seed are paired only if they ran alike: floating-point results depend on the machine
(CPU kernels, library versions), which changes the pre-trained weights and every sample (seen: an
AVX-512 AMD EPYC machine built other weights and drew other samples than the machines before
it). So each finished run records its machine's `environment`; a run whose seed already has
finished runs from another environment is not started there, and a run whose validation before
training differs from its seed's finished runs (the check that also covers runs from before the
record) is stopped at step 0 by `run_arm` (checked again when the run ends, for a launcher that
does not stop it), reported as failed and kept out of the results.

Running two at once is worth it on a small machine: verl's loop is a pipeline of
single-threaded processes that leaves much of 2 cores idle. Sharing the machine changes a run's
seconds (`done.json` records how many ran at once), not its seeding: its samples and updates
follow its seed whatever else runs, as in any two launches (tests/test_exact_resume.py).
"""

from __future__ import annotations

import gzip
import json
import platform
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sfpo_verl.atomic_file import atomic_file
from sfpo_verl.cpu.quickstart.run import arm_overrides, run_arm, say
from sfpo_verl.cpu.settings import hydra_value, merge_overrides
from sfpo_verl.cpu.task.build import TaskPaths
from sfpo_verl.paper.analysis.runs import read_file_logger

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

    @property
    def environment(self) -> dict | None:
        """The machine a finished run ran on (None: not recorded, a run from before the record)."""
        return json.loads((self.folder / DONE_FILE).read_text()).get("environment")


def machine_environment(task: TaskPaths) -> dict:
    """What a run's numbers depend on besides its settings and seed, on this machine."""
    import torch  # imported here: reading or planning a study does not need them
    import transformers
    import verl

    return {
        "task_weights_sha256": json.loads((task.root / "task.json").read_text())["weights_sha256"],
        "cpu": _cpu_model(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "verl": verl.__version__,
    }


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())


def validation_before_training(metrics: Path) -> dict[str, float]:
    """A finished run's headline validation metrics (verl's `val-core/`) at step 0, before any update."""
    return {key: value for key, value in read_file_logger(metrics).get(0, {}).items() if key.startswith("val-core/")}


def _differences(mine: dict, theirs: dict) -> str:
    return ", ".join(f"{key} {theirs.get(key)} there, {mine.get(key)} here"
                     for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key))


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


Launcher = Callable[..., dict]  # run_arm's (arm, overrides, work folder, total steps, check_start=...)


def run_all(runs: list[RunSpec], total_steps: int, launch: Launcher = run_arm, jobs: int = 1,
            stop_file: Path | None = None, environment: dict | None = None) -> dict[str, str]:
    """Run what is not done yet, up to `jobs` at a time in plan order, until `stop_file` exists;
    returns {run name: error} for the runs that failed. `environment` (this machine's) is recorded
    with each finished run; a run is not started where its seed's finished runs record another."""
    failures = {}
    todo = []
    for index, run in enumerate(runs, 1):
        if run.done:
            say(f"[study] {index}/{len(runs)} {run.name}: done before, skipped")
        else:
            todo.append((index, run))

    stopping = threading.Event()  # a launch raised something other than a failed run: start no more

    def finished_beside(run: RunSpec) -> list[RunSpec]:
        return [other for other in runs if other.seed == run.seed and other is not run and other.done]

    def run_one(index: int, run: RunSpec) -> None:
        if stopping.is_set():
            return
        if stop_file is not None and stop_file.exists():
            stopping.set()
            say(f"[study] {stop_file} exists: starting no further run")
            return
        elsewhere = next((other for other in finished_beside(run) if other.environment not in (None, environment)), None)
        if environment is not None and elsewhere is not None:
            say(f"[study] {index}/{len(runs)} {run.name}: not started, {elsewhere.name} ran on another machine "
                f"({_differences(environment, elsewhere.environment)}): pairs by seed need the same one")
            return
        for folder in (run.folder, run.work_folder):  # a killed run's partial output
            shutil.rmtree(folder, ignore_errors=True)
        say(f"[study] {index}/{len(runs)} {run.name}")
        def unlike_its_seed(first_metrics: dict[str, float]) -> str | None:
            """Why the run must not go on: a finished run of its seed started differently."""
            here = {key: value for key, value in first_metrics.items() if key.startswith("val-core/")}
            for other in finished_beside(run):
                there = validation_before_training(other.metrics)
                if there != here:
                    return (f"its validation before training differs from {other.name}'s ({_differences(here, there)}): "
                            f"it did not start like its seed's finished runs (another machine?), so it is not paired "
                            f"with them and not kept in the results")
            return None

        start = time.time()
        try:
            result = launch(run.arm, list(run.overrides), run.work_folder, total_steps, check_start=unlike_its_seed)
        except RuntimeError as error:
            failures[run.name] = str(error) if str(run.log) in str(error) else f"{error} (log: {run.log})"
            say(f"[study] {run.name} FAILED: {error}; the other runs go on")
            return
        except BaseException:
            stopping.set()
            raise
        unlike = unlike_its_seed(read_file_logger(run.work_folder / "metrics.jsonl").get(0, {}))
        if unlike is not None:  # a launcher that did not stop it early
            failures[run.name] = f"{unlike} (log: {run.log})"
            say(f"[study] {run.name} FAILED: {failures[run.name]}")
            return
        run.folder.mkdir(parents=True, exist_ok=True)
        with open(run.work_folder / "metrics.jsonl", "rb") as plain, gzip.open(run.metrics, "wb") as packed:
            shutil.copyfileobj(plain, packed)
        done = {"seconds": round(time.time() - start, 1), **result, "runs_at_once": jobs,
                **({"environment": environment} if environment is not None else {})}
        with atomic_file(run.folder / DONE_FILE) as marker:  # the other job reads it: never half-written
            marker.write(json.dumps(done))
        say(f"[study] {index}/{len(runs)} {run.name}: done")

    pool = ThreadPoolExecutor(max_workers=jobs)  # with one worker, the runs one after another
    try:
        for finished in [pool.submit(run_one, index, run) for index, run in todo]:
            finished.result()  # re-raises what a launch raised other than a failed run
    finally:  # e.g. Ctrl-C in this thread: start no further run (those running got the signal too)
        stopping.set()
        pool.shutdown(wait=True, cancel_futures=True)
    return failures
