"""The study runner and report (sfpo_verl.cpu.study) without trainer launches: a stand-in
launcher writes verl file-logger metrics, so planning, resuming, failures and the statistics
are checked exactly. The launcher itself is the quickstart's, run for real by the quickstart."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pandas as pd
import psutil
import pytest

import sfpo_verl.cpu.study.__main__ as study_cli
from sfpo_verl.cpu.quickstart.run import _ProgressWatcher, read_config
from sfpo_verl.cpu.settings import merge_overrides
from sfpo_verl.cpu.study import grid
from sfpo_verl.cpu.study.grid import GRIDS, STEPSIZE_MATCHED_LR, arms_of, comparisons
from sfpo_verl.cpu.study.report import _p_floor_text, markdown, read_run, summarize, write_report
from sfpo_verl.cpu.study.runner import DONE_FILE, STOP_FILE, RunSpec, machine_environment, plan_runs, run_all
from sfpo_verl.cpu.task.build import TaskPaths
from sfpo_verl.paper.analysis.runs import read_file_logger

ROLLOUTS_PER_STEP = 128
BUDGET = 6 * ROLLOUTS_PER_STEP
# Held-out accuracy at steps 0, 2, 4, 6 by arm and seed; one training step takes 10 s (grpo), 20 s (sfpo).
CURVES = {
    ("grpo", 0): [0.30, 0.40, 0.50, 0.60],
    ("grpo", 1): [0.30, 0.42, 0.52, 0.58],
    ("grpo", 2): [0.30, 0.38, 0.48, 0.56],
    ("grpo", 3): [0.30, 0.40, 0.45, 0.50],
    ("sfpo_k3_a0.8", 0): [0.30, 0.62, 0.64, 0.66],
    ("sfpo_k3_a0.8", 1): [0.30, 0.50, 0.60, 0.65],
    ("sfpo_k3_a0.8", 2): [0.30, 0.45, 0.50, 0.55],
    ("sfpo_k3_a0.8", 3): [0.30, 0.45, 0.50, 0.55],
}
STEP_SECONDS = {"grpo": 10.0, "sfpo_k3_a0.8": 20.0}
SETTINGS = {"grid": "default", "arms": ["grpo", "sfpo_k3_a0.8"], "comparisons": [["sfpo_k3_a0.8", "grpo"]],
            "seeds": [0, 1, 2], "targets": [0.55, 0.6, 0.65], "rollout_budget": BUDGET, "test_freq": 2,
            "rollouts_per_validation": 256, "val_problems": 100, "val_samples": 4, "accuracy_se_at_half": 0.025,
            "overrides": []}


def base_overrides(*extra: str) -> list[str]:
    return merge_overrides(read_config()["verl"], list(extra))


def plan(tmp_path, *extra: str, seeds=(0, 1, 2), grid_name="default", work_dir=None):
    return plan_runs(base_overrides(*extra), arms_of(grid_name), list(seeds), TaskPaths(tmp_path / "task"), tmp_path,
                     work_dir)


def fake_launch(arm: str, overrides: list[str], folder: Path, total_steps: int, check_start=None) -> dict:
    """Writes what verl's file logger writes for the run's curve, and a log; stops as run_arm
    does when `check_start` refuses the validation before training."""
    values = dict(o.lstrip("+").split("=", 1) for o in overrides)
    seed, name = int(values["data.seed"]), values["trainer.experiment_name"].rsplit("_seed", 1)[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.log").write_text("verl's output\n")
    with open(folder / "metrics.jsonl", "w") as f:
        for i, accuracy in enumerate(CURVES[(name, seed)]):
            step = 2 * i
            data = {"val-core/sfpo_arithmetic/acc/mean@4": accuracy}
            if step:
                between = {"timing_s/step": STEP_SECONDS[name]}
                if name.startswith("sfpo"):  # steps 1, 3, 5: median 0.3
                    between["sfpo/fast_displacement_norm"] = 0.1 * (step - 1)
                f.write(json.dumps({"step": step - 1, "data": between}) + "\n")
                data["timing_s/step"] = STEP_SECONDS[name]
            f.write(json.dumps({"step": step, "data": data}) + "\n")
            if step == 0 and check_start is not None and (reason := check_start(data)) is not None:
                raise RuntimeError(f"The {arm} arm was stopped at its validation before training: {reason}")
    return {}


def test_unknown_grid_or_arm_is_named():
    with pytest.raises(ValueError, match="unknown grid 'nope'.*default, ablations, epochs, stepsize"):
        arms_of("nope")
    with pytest.raises(ValueError, match="unknown arm.*sfpo_k9_a1.0.*grid 'default'"):
        arms_of("default", ["sfpo_k9_a1.0"])


def test_ablation_grid_is_the_papers():
    arms = GRIDS["ablations"].arms
    assert {(a["algorithm.sfpo.inner_steps"], a["algorithm.sfpo.alpha"]) for n, a in arms.items() if n != "grpo"} == {
        (k, alpha) for k in (3, 7) for alpha in (0.2, 0.5, 0.8, 1.0)
    }
    assert arms["sfpo_k3_a0.8_noslow"]["algorithm.sfpo.slow_correction"] is False
    # an arm brings its baselines: GRPO and the same K without reposition
    assert arms_of("ablations", ["sfpo_k7_a0.2"]).keys() == {"grpo", "sfpo_k7_a0.2", "sfpo_k7_a1.0"}
    assert set(comparisons("ablations", ["grpo", "sfpo_k3_a0.8", "sfpo_k3_a0.8_noslow"])) == {
        ("sfpo_k3_a0.8", "grpo"), ("sfpo_k3_a0.8_noslow", "grpo"), ("sfpo_k3_a0.8_noslow", "sfpo_k3_a0.8")}


def test_epochs_grid_matches_sfpo_passes_with_grpo_epochs():
    arms = GRIDS["epochs"].arms
    assert list(arms) == ["grpo", "grpo_e4", "sfpo_k3_a0.8", "grpo_e8", "sfpo_k7_a0.2", "sfpo_k7_a0.5", "sfpo_k7_a1.0"]
    for epochs in (4, 8):  # stock GRPO (verl's own path), K+1 passes
        assert arms[f"grpo_e{epochs}"] == {"algorithm.name": "grpo", "actor_rollout_ref.actor.ppo_epochs": epochs}
    assert comparisons("epochs") == [
        ("sfpo_k3_a0.8", "grpo"), ("sfpo_k3_a0.8", "grpo_e4"),
        ("sfpo_k7_a0.2", "grpo"), ("sfpo_k7_a0.2", "grpo_e8"), ("sfpo_k7_a0.2", "sfpo_k7_a1.0"),
        ("sfpo_k7_a0.5", "grpo"), ("sfpo_k7_a0.5", "grpo_e8"), ("sfpo_k7_a0.5", "sfpo_k7_a1.0"),
        ("sfpo_k7_a1.0", "grpo"), ("sfpo_k7_a1.0", "grpo_e8"),
    ]
    assert list(arms_of("epochs", ["sfpo_k3_a0.8"])) == ["grpo", "grpo_e4", "sfpo_k3_a0.8"]


def test_stepsize_grid_compares_at_two_learning_rates():
    arms = GRIDS["stepsize"].arms
    assert grid.sfpo_arm(3, 0.8, slow_correction=False, lr=6e-4)[0] == "sfpo_k3_a0.8_noslow_lr6e-4"
    sfpo, noslow = (grid.sfpo_arm(3, 0.8, slow, STEPSIZE_MATCHED_LR)[0] for slow in (True, False))
    assert list(arms) == ["sfpo_k3_a0.8_lr3e-4", "sfpo_k3_a0.8_noslow_lr3e-4", sfpo, noslow]
    assert arms[noslow]["actor_rollout_ref.actor.optim.lr"] == STEPSIZE_MATCHED_LR
    assert arms["sfpo_k3_a0.8_noslow_lr3e-4"]["actor_rollout_ref.actor.optim.lr"] == 3e-4
    assert arms[noslow]["algorithm.sfpo.slow_correction"] is False

    assert set(comparisons("stepsize")) == {
        ("sfpo_k3_a0.8_noslow_lr3e-4", "sfpo_k3_a0.8_lr3e-4"), (noslow, sfpo),  # without vs with, same lr
        (noslow, "sfpo_k3_a0.8_lr3e-4"),  # without vs with, same step size
        (sfpo, "sfpo_k3_a0.8_lr3e-4"), (noslow, "sfpo_k3_a0.8_noslow_lr3e-4"),  # matched vs base lr
    }


def test_study_sfpo_arms_keep_every_step_an_sfpo_step():
    # The entropy switch would turn later steps into one-pass GRPO: passes no longer matched.
    for name, declared in GRIDS.items():
        for arm, overrides in declared.arms.items():
            if overrides["algorithm.name"] == "sfpo":
                assert overrides["algorithm.sfpo.entropy_switch.enable"] is False, (name, arm)


def test_every_grid_has_the_baselines_its_comparisons_need():
    for name, declared in GRIDS.items():
        assert arms_of(name).keys() == declared.arms.keys()
        assert all(set(pair) <= declared.arms.keys() for pair in comparisons(name))


def test_a_baseline_missing_from_the_grid_is_refused(monkeypatch):
    monkeypatch.setitem(GRIDS, "broken", grid.Grid(dict([grid.sfpo_arm(3, 0.8)]), grid.compute_matched_pairs))
    with pytest.raises(ValueError, match="grid 'broken' lacks baseline arm.*sfpo_k3_a0.8 needs grpo"):
        arms_of("broken")


def test_each_run_gets_its_arm_and_seed_over_the_users_overrides(tmp_path):
    runs = plan(tmp_path, "algorithm.sfpo.alpha=0.3", "data.seed=99", "trainer.total_training_steps=7")
    assert [(r.arm, r.seed) for r in runs] == [(a, s) for s in (0, 1, 2) for a in ("grpo", "sfpo_k3_a0.8")]
    assert len({r.folder for r in runs}) == len(runs)
    for run in runs:
        values = dict(o.lstrip("+").split("=", 1) for o in run.overrides)
        assert values["data.seed"] == values["actor_rollout_ref.rollout.seed"] == str(run.seed)
        assert values["trainer.total_training_steps"] == "7"  # the user's
        assert values["trainer.default_local_dir"] == str(run.folder / "checkpoints")
        if run.arm != "grpo":
            assert values["algorithm.name"] == "sfpo" and values["algorithm.sfpo.alpha"] == "0.8"  # the arm's
        else:
            assert values["algorithm.name"] == "grpo"


def test_compute_matched_and_learning_rate_arms_get_their_settings(tmp_path):
    epochs = {r.arm: dict(o.lstrip("+").split("=", 1) for o in r.overrides) for r in plan(tmp_path, grid_name="epochs")}
    assert (epochs["grpo_e4"]["algorithm.name"], epochs["grpo_e4"]["actor_rollout_ref.actor.ppo_epochs"]) == ("grpo", "4")
    assert epochs["grpo_e8"]["actor_rollout_ref.actor.ppo_epochs"] == "8"
    stepsize = {r.arm: dict(o.lstrip("+").split("=", 1) for o in r.overrides)
                for r in plan(tmp_path, "actor_rollout_ref.actor.optim.lr=1e-5", grid_name="stepsize")}
    assert stepsize["sfpo_k3_a0.8_noslow_lr3e-4"]["actor_rollout_ref.actor.optim.lr"] == "0.0003"  # the arm's


def recording_launch(launched: list[Path], *args, **kwargs) -> dict:
    """fake_launch, noting each run's work folder."""
    launched.append(args[2])
    return fake_launch(*args, **kwargs)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failed_run_is_named_with_its_log_and_the_others_go_on(tmp_path, jobs):
    runs = plan(tmp_path)

    def launch(arm, overrides, folder, total_steps, check_start=None):
        if arm == "grpo" and "data.seed=1" in overrides:
            raise RuntimeError("The grpo arm failed (exit 1)")
        return fake_launch(arm, overrides, folder, total_steps, check_start)

    failures = run_all(runs, 6, launch, jobs)
    assert list(failures) == ["grpo seed 1"] and str(runs[2].log) in failures["grpo seed 1"]
    assert [r.done for r in runs] == [True, True, False, True, True, True]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_killed_study_continues_where_it_stopped(tmp_path, jobs):
    """The third run is interrupted (as by Ctrl-C); with two at a time the fourth is running then
    and finishes, and no further run starts. The next study runs only what is unfinished."""
    runs = plan(tmp_path)
    killed, beside = runs[2].folder, runs[3].folder
    launched, beside_started, interrupted_now = [], threading.Event(), threading.Event()

    def interrupted(arm, overrides, folder, total_steps, check_start=None):
        launched.append(folder)
        if folder == killed:
            if jobs == 2:
                assert beside_started.wait(10), "the fourth run should be running beside the third"
            folder.mkdir(parents=True)
            (folder / "metrics.jsonl").write_text("partial")
            interrupted_now.set()
            raise KeyboardInterrupt
        if folder == beside:
            beside_started.set()
            assert interrupted_now.wait(10)
            time.sleep(0.2)  # the interruption reaches the runner before this run ends
        return fake_launch(arm, overrides, folder, total_steps, check_start)

    with pytest.raises(KeyboardInterrupt):
        run_all(runs, 6, interrupted, jobs)
    expected = [r.folder for r in runs[:3 + (jobs - 1)]]
    assert sorted(launched) == sorted(expected)  # nothing started after the interruption
    assert [r.folder for r in runs if r.done] == [f for f in expected if f != killed]

    relaunched = []
    run_all(plan(tmp_path), 6, partial(recording_launch, relaunched))
    assert relaunched == [r.folder for r in runs if r.folder not in expected or r.folder == killed]
    assert all((r.folder / DONE_FILE).exists() for r in runs)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_stop_file_lets_running_runs_finish_and_starts_no_more(tmp_path, jobs):
    """Asked to stop while the second run trains: with two at a time the third has started
    beside it; both running runs finish and are kept, nothing further starts."""
    runs, stop = plan(tmp_path), tmp_path / STOP_FILE
    launched, third_started, asked_to_stop = [], threading.Event(), threading.Event()

    def stopped_during_the_second(arm, overrides, folder, total_steps, check_start=None):
        launched.append(folder)
        if folder == runs[1].folder:
            if jobs == 2:  # the third run starts beside this one (when the first ends) before the stop
                assert third_started.wait(10)
            stop.touch()
            asked_to_stop.set()
        if folder == runs[2].folder:
            third_started.set()
            assert asked_to_stop.wait(10)  # still running when the stop comes
        return fake_launch(arm, overrides, folder, total_steps, check_start)

    assert run_all(runs, 6, stopped_during_the_second, jobs, stop_file=stop) == {}
    started = [r.folder for r in runs[:2 + (jobs - 1)]]
    assert sorted(launched) == sorted(started)
    assert [r.folder for r in runs if r.done] == started


OTHER_MACHINE = {"task_weights_sha256": "b", "cpu": "another CPU"}


def test_a_seed_that_ran_on_another_machine_gets_no_run_here(tmp_path):
    """Seed 0 finished one run on another machine: its other arm is not started here; seed 1,
    with no finished run, runs here and records this machine."""
    here = {"task_weights_sha256": "a", "cpu": "this CPU"}
    runs = plan(tmp_path, seeds=(0, 1))
    run_all(runs[:1], 6, fake_launch, environment=OTHER_MACHINE)
    launched = []
    recorded = partial(recording_launch, launched)
    assert run_all(runs, 6, recorded, environment=here) == {}
    assert launched == [runs[2].folder, runs[3].folder]
    assert [run.environment if run.done else "not run" for run in runs] == [OTHER_MACHINE, "not run", here, here]


@pytest.mark.parametrize("stops_early", [True, False])
def test_a_run_that_did_not_start_like_its_seeds_runs_is_failed_and_left_out(tmp_path, stops_early):
    """As on a machine whose numbers differ, for runs that predate the environment record: the
    validation before training gives it away, to the launcher at step 0 (run_arm stops the run
    there) or, with a launcher that does not check, to the runner once the run is over."""
    runs = plan(tmp_path, seeds=(0,))
    run_all(runs[:1], 6, fake_launch)

    def started_elsewhere(arm, overrides, folder, total_steps, check_start=None):
        result = fake_launch(arm, overrides, folder, total_steps)
        lines = (folder / "metrics.jsonl").read_text().replace('"val-core/sfpo_arithmetic/acc/mean@4": 0.3}',
                                                               '"val-core/sfpo_arithmetic/acc/mean@4": 0.31}', 1)
        (folder / "metrics.jsonl").write_text(lines)
        if stops_early and (reason := check_start(read_file_logger(folder / "metrics.jsonl")[0])) is not None:
            raise RuntimeError(f"stopped at step 0: {reason}")
        return result

    failures = run_all(runs, 6, started_elsewhere)
    assert list(failures) == ["sfpo_k3_a0.8 seed 0"] and not runs[1].done and not runs[1].metrics.exists()
    assert ("validation before training differs from grpo seed 0's (val-core/sfpo_arithmetic/acc/mean@4 0.3 there, "
            "0.31 here)") in failures["sfpo_k3_a0.8 seed 0"]
    assert failures["sfpo_k3_a0.8 seed 0"].startswith("stopped at step 0") == stops_early


def test_the_progress_watcher_stops_a_run_its_start_check_refuses(tmp_path):
    """run_arm's watcher: a refused validation before training kills the run's process and
    everything it started."""
    metrics = tmp_path / "metrics.jsonl"
    process = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                                "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)"])
    deadline = time.time() + 60  # a loaded machine may take seconds to start python
    while not psutil.Process(process.pid).children() and time.time() < deadline:
        time.sleep(0.1)
    child = psutil.Process(process.pid).children()[0]
    seen = []
    watcher = _ProgressWatcher("grpo", metrics, process.pid, 6, time.time(),
                               check_start=lambda data: seen.append(data) or "started elsewhere")
    watcher.start()
    metrics.write_text(json.dumps({"step": 0, "data": {"val-core/sfpo_arithmetic/acc/mean@4": 0.3}}) + "\n")
    assert process.wait(timeout=30) != 0 and psutil.wait_procs([child], timeout=30)[1] == []  # none alive
    watcher.stop()
    assert watcher.stopped_because == "started elsewhere" and seen == [{"val-core/sfpo_arithmetic/acc/mean@4": 0.3}]


def test_more_seeds_run_only_the_new_ones(tmp_path):
    run_all(plan(tmp_path, seeds=(0, 1)), 6, fake_launch)
    launched = []
    run_all(plan(tmp_path, seeds=(0, 1, 2, 3)), 6, partial(recording_launch, launched))
    assert [(folder.parent.name, folder.name) for folder in launched] == [
        ("grpo", "seed2"), ("sfpo_k3_a0.8", "seed2"), ("grpo", "seed3"), ("sfpo_k3_a0.8", "seed3")]


def test_runs_two_at_a_time_overlap_and_give_the_results_of_one_at_a_time(tmp_path):
    alone = plan(tmp_path / "alone")
    run_all(alone, 6, fake_launch)
    both_running = threading.Barrier(2)

    def overlapping(arm, overrides, folder, total_steps, check_start=None):
        both_running.wait(timeout=10)  # breaks (and fails the test) unless another run is in flight
        return fake_launch(arm, overrides, folder, total_steps, check_start)

    paired = plan(tmp_path / "paired")
    assert run_all(paired, 6, overlapping, jobs=2) == {}
    for one, two in zip(alone, paired):
        assert read_run(two, ROLLOUTS_PER_STEP) == {**read_run(one, ROLLOUTS_PER_STEP), "runs_at_once": 2}
    settings = {**SETTINGS, "seeds": [0, 1, 2]}
    _, md, _ = write_report([read_run(r, ROLLOUTS_PER_STEP) for r in paired], {}, tmp_path, settings)
    assert "6 runs 2 at a time" in md.read_text()
    _, md, _ = write_report([read_run(r, ROLLOUTS_PER_STEP) for r in alone], {}, tmp_path, settings)
    assert "each run was the only run of a study on the machine at the time" in md.read_text()


def test_a_run_is_done_only_once_its_done_marker_is_whole(tmp_path, monkeypatch):
    """With two jobs one run reads the finished runs' done.json while the other writes its own: the
    marker appears by a rename of the whole file, so it is never seen empty or half-written."""
    import sfpo_verl.atomic_file

    runs, renamed = plan(tmp_path, seeds=(0,)), []
    real_replace = sfpo_verl.atomic_file.os.replace

    def replace(source, target):
        if Path(target).name == DONE_FILE:
            run = next(r for r in runs if r.folder == Path(target).parent)
            assert not run.done and json.loads(Path(source).read_text())["runs_at_once"] == 2
            renamed.append(run.name)
        real_replace(source, target)

    monkeypatch.setattr(sfpo_verl.atomic_file.os, "replace", replace)
    assert run_all(runs, 6, fake_launch, jobs=2) == {}
    assert sorted(renamed) == sorted(run.name for run in runs) and all(run.done for run in runs)


def test_results_kept_apart_hold_only_metrics_and_done_and_resume_anywhere(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    runs = plan(results, seeds=(0,), work_dir=work)
    run_all(runs, 6, fake_launch)
    for run in runs:
        assert sorted(p.name for p in run.folder.iterdir()) == ["done.json", "metrics.jsonl.gz"]
        assert run.log.exists() and run.log.is_relative_to(work)
        values = dict(o.lstrip("+").split("=", 1) for o in run.overrides)
        assert values["trainer.default_local_dir"].startswith(str(work))
    clone = tmp_path / "clone" / "results"  # a fresh clone: the results without the work folder
    shutil.copytree(results, clone)
    assert all(run.done for run in plan(clone, seeds=(0,), work_dir=tmp_path / "clone" / "work"))


@pytest.fixture
def finished(tmp_path):
    runs = plan(tmp_path)
    run_all(runs, 6, fake_launch)
    return [read_run(run, ROLLOUTS_PER_STEP) for run in runs]


def test_report_reads_each_validation_from_verls_metrics(finished):
    first = finished[0]
    assert (first["arm"], first["seed"]) == ("grpo", 0)
    assert first["val_acc"] == CURVES[("grpo", 0)]
    assert first["rollouts"] == [0, 256, 512, 768]
    assert first["seconds"] == [0.0, 20.0, 40.0, 60.0]
    assert first["training_seconds"] == 60.0
    assert first["fast_displacement"] is None  # GRPO logs none
    assert finished[3]["arm"] == "sfpo_k3_a0.8" and finished[3]["fast_displacement"] == pytest.approx(0.3)


def test_the_committed_pilot_run_reads_as_its_report_recorded_it():
    """verl's real metrics (the epochs study's pilot, committed with its report) read again."""
    pilot = Path(__file__).resolve().parents[1] / "recipes" / "results" / "cpu_study_epochs" / "pilot"
    (recorded,) = json.loads((pilot / "report.json").read_text())["runs"]
    folder = pilot / "runs" / "grpo" / "seed0"
    run = RunSpec("grpo", 0, folder, folder, ())
    read = read_run(run, ROLLOUTS_PER_STEP)
    assert {key: read[key] for key in recorded} == recorded
    assert read["fast_displacement"] is None  # recorded before the report read it; GRPO logs none


def test_comparison_paired_by_seed(finished):
    (comparison,) = summarize(finished, SETTINGS)["comparisons"]
    assert (comparison["arm"], comparison["baseline"], comparison["n_seeds"]) == ("sfpo_k3_a0.8", "grpo", 3)
    auc = comparison["measures"]["auc"]  # (a0/2 + a1 + a2 + a3/2) / 3 per run: sfpo wins on every seed
    assert auc["diffs"] == pytest.approx([0.58 - 0.45, 0.525 - 0.46, 1.375 / 3 - 0.43])
    assert auc["p_value"] == pytest.approx(2 / 8) and auc["ci95"][0] > 0
    final = comparison["measures"]["final"]  # +0.06, +0.07, -0.01: |sum| 0.12 reached by 4 of 8 sign patterns
    assert final["mean_diff"] == pytest.approx(0.04) and final["p_value"] == pytest.approx(4 / 8)
    assert comparison["measures"]["last3_mean"]["diffs"][0] == pytest.approx((0.62 + 0.64 + 0.66 - 0.4 - 0.5 - 0.6) / 3)
    assert comparison["training_seconds"] == {"arm": 120.0, "baseline": 60.0, "ratio": 2.0}  # sfpo's step: 2x


def test_targets_count_censored_seeds(finished):
    targets = {(t["arm"], t["target"]): t for t in summarize(finished, SETTINGS)["targets"]}
    assert len(targets) == 2 * 3
    grpo = targets[("grpo", 0.6)]  # only seed 0 reaches 0.60
    assert (grpo["reached"], grpo["censored"], grpo["median_rollouts"], grpo["median_seconds"]) == (1, 2, None, None)
    sfpo = targets[("sfpo_k3_a0.8", 0.6)]  # seeds 0 and 1, at 256 and 512 rollouts (40 and 80 s); seed 2 tops out at 0.55
    assert (sfpo["reached"], sfpo["n"], sfpo["median_rollouts"], sfpo["median_seconds"]) == (2, 3, 512, 80.0)
    assert targets[("grpo", 0.55)]["median_rollouts"] == 768


def test_a_missing_baseline_is_stated(finished):
    settings = {**SETTINGS, "comparisons": [["sfpo_k3_a0.8", "grpo"], ["sfpo_k3_a0.8", "grpo_e4"]]}
    _, missing = summarize(finished, settings)["comparisons"]
    assert missing["missing"] == "no finished run of grpo_e4" and missing["measures"] is None
    text = markdown(summarize(finished, settings), {}, settings, "curves.png")
    assert "- sfpo_k3_a0.8 − grpo_e4: not compared, no finished run of grpo_e4." in text


def test_runs_of_a_seed_that_did_not_start_alike_are_flagged(finished):
    assert summarize(finished, SETTINGS)["start"] == {
        "per_seed": {seed: {"grpo": 0.30, "sfpo_k3_a0.8": 0.30} for seed in (0, 1, 2)}, "mismatched_seeds": []}
    moved = [{**run, "val_acc": [0.31, *run["val_acc"][1:]]} if (run["arm"], run["seed"]) == ("grpo", 1) else run
             for run in finished]  # as a run on a differently built task would
    start = summarize(moved, SETTINGS)["start"]
    assert start["mismatched_seeds"] == [1]
    text = markdown(summarize(moved, SETTINGS), {}, SETTINGS, "curves.png")
    assert "**No**: within these seeds" in text and "- seed 1: grpo 0.3100, sfpo_k3_a0.8 0.3000" in text


def test_the_p_value_floor_is_stated_for_each_number_of_paired_seeds():
    comparisons = [{"n_seeds": 8, "missing": None}, {"n_seeds": 5, "missing": None},
                   {"n_seeds": 8, "missing": None}, {"n_seeds": 0, "missing": "no finished run of grpo_e8"}]
    assert _p_floor_text(comparisons).endswith(": 0.0078 with 8, 0.062 with 5")


def test_report_files(finished, tmp_path):
    report_json, report_md, png = write_report(finished, {"x seed 9": "boom (log: /l)"}, tmp_path, SETTINGS)
    data = json.loads(report_json.read_text())
    assert {(r["arm"], r["seed"]) for r in data["runs"]} == {key for key in CURVES if key[1] < 3}
    assert all({"val_acc", "rollouts", "seconds", "training_seconds"} <= r.keys() for r in data["runs"])
    (comparison,) = data["comparisons"]
    for measure in ("auc", "last3_mean", "final"):
        assert comparison["measures"][measure].keys() == {"mean_diff", "ci95", "p_value", "diffs"}
    assert {"arm", "target", "reached", "n", "median_rollouts", "median_seconds", "censored"} <= data["targets"][0].keys()
    text = report_md.read_text()
    assert text.index("## Comparisons") < text.index("## Rollouts and training seconds to fixed") < text.index("## Per arm")
    assert "| sfpo_k3_a0.8 − grpo | 3 | +0.074 [" in text and "], p = 0.25 |" in text and "| 2.00x (120 s vs 60 s) |" in text
    assert "| grpo | 0.6 | 1/3 | 2 | > budget | > budget |" in text
    assert "| sfpo_k3_a0.8 | 0.6 | 2/3 | 1 | 512 | 80 |" in text
    assert "- grpo: accuracy changed by +0.180 over its last 3 validations" in text and "still rising" in text
    assert "best acc (optimistic: max over 4 validations)" in text and "| sfpo_k3_a0.8 | 3 | 0.620 ± 0.061 |" in text
    assert "| 0.3000 ± 0.0000 |" in text and text.count("| — |") == 1  # SFPO's fast displacement; GRPO has none
    assert "x seed 9: boom (log: /l)" in text and "standard error" in text
    assert "with n paired seeds it cannot fall below 2 / 2^n: 0.25 with 3;" in text
    assert "Yes: within each seed, every arm's validation before training is the same (seed 0: 0.3000 in 2 arms;" in text
    assert data["start"]["mismatched_seeds"] == []
    assert png.stat().st_size > 10_000


def write_val_parquet(task_dir: Path, settings) -> None:
    """Stands in for the task build: the study reads only the validation problem count and the
    weights' digest."""
    TaskPaths(task_dir).val.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"prompt": ["1+1"] * 200}).to_parquet(TaskPaths(task_dir).val)
    (task_dir / "task.json").write_text(json.dumps({"weights_sha256": "digest-of-the-weights"}))


def no_run(*args, **kwargs):
    raise AssertionError("a bad argument must be refused before the task is built or any run starts")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "nope"], "unknown grid 'nope': choose one of default, ablations, epochs, stepsize"),
        (["--grid", "epochs", "--arms", "nope"],
         "unknown arm(s) nope in grid 'epochs': its arms are grpo, grpo_e4, sfpo_k3_a0.8, grpo_e8, sfpo_k7_a0.2, "
         "sfpo_k7_a0.5, sfpo_k7_a1.0"),
        (["--targets", "0.55,1.2"], "--targets 0.55,1.2: '1.2' is not an accuracy strictly between 0 and 1"),
        (["--targets", "0"], "--targets 0: '0' is not an accuracy strictly between 0 and 1"),
        (["--targets", "0.5,high"], "--targets 0.5,high: 'high' is not an accuracy strictly between 0 and 1"),
        (["--seeds", "0"], "--seeds 0: at least 1"),
        (["--jobs", "0"], "--jobs 0: at least 1"),
    ],
)
def test_bad_arguments_are_refused_in_one_line_before_any_run(tmp_path, monkeypatch, capsys, args, message):
    assert refusal(tmp_path, monkeypatch, capsys, args) == f"error: {message}"


def test_a_run_whose_baseline_the_grid_lacks_is_refused_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(GRIDS, "broken", grid.Grid(dict([grid.sfpo_arm(3, 0.8)]), grid.compute_matched_pairs))
    assert refusal(tmp_path, monkeypatch, capsys, ["--grid", "broken", "--arms", "sfpo_k3_a0.8"]) == (
        "error: grid 'broken' lacks baseline arm(s) its comparisons need: sfpo_k3_a0.8 needs grpo")


def refusal(tmp_path, monkeypatch, capsys, args: list[str]) -> str:
    """The study command's error line for `args`; fails if it got as far as building the task or running."""
    monkeypatch.setattr(study_cli, "build_task", no_run)
    monkeypatch.setattr(study_cli, "run_all", no_run)
    with pytest.raises(SystemExit) as exit_info:
        study_cli.main(["--out-dir", str(tmp_path), *args])
    assert exit_info.value.code == 2
    return capsys.readouterr().err.splitlines()[-1].split(": ", 1)[1]


def test_the_command_resumes_committed_results_from_a_fresh_clone(tmp_path, monkeypatch, capsys):
    results = tmp_path / "recipes" / "results" / "cpu_study"
    monkeypatch.setattr(study_cli, "build_task", write_val_parquet)
    monkeypatch.setattr(study_cli, "run_all", partial(run_all, launch=fake_launch))
    argv = ["--out-dir", str(results), "--seeds", "2", "trainer.total_training_steps=6"]
    old_stop = tmp_path / "work" / STOP_FILE  # left by an earlier study that was stopped: not this one's
    old_stop.parent.mkdir()
    old_stop.touch()
    assert study_cli.main([*argv, "--work-dir", str(tmp_path / "work")]) == 0
    assert not old_stop.exists() and f"touch {old_stop}" in capsys.readouterr().out
    environment = json.loads((results / "runs" / "grpo" / "seed0" / DONE_FILE).read_text())["environment"]
    assert environment == machine_environment(TaskPaths(tmp_path / "work" / "task"))
    assert environment["task_weights_sha256"] == "digest-of-the-weights" and environment["cpu"]
    assert sorted(str(p.relative_to(results)) for p in results.rglob("*") if p.is_file()) == sorted(
        ["curves.png", "report.json", "report.md"]
        + [f"runs/{arm}/seed{seed}/{name}" for arm in ("grpo", "sfpo_k3_a0.8") for seed in (0, 1)
           for name in ("done.json", "metrics.jsonl.gz")])
    first_report = json.loads((results / "report.json").read_text())
    assert first_report["settings"]["rollout_budget"] == BUDGET
    assert first_report["settings"]["comparisons"] == [["sfpo_k3_a0.8", "grpo"]]

    shutil.rmtree(tmp_path / "work")  # a fresh clone: the committed results, no task, logs or checkpoints
    monkeypatch.setattr(study_cli, "run_all", partial(run_all, launch=no_run))
    assert study_cli.main([*argv, "--work-dir", str(tmp_path / "elsewhere")]) == 0
    assert json.loads((results / "report.json").read_text())["comparisons"] == first_report["comparisons"]


def test_report_only_reports_the_finished_runs_names_the_rest_and_runs_nothing(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    monkeypatch.setattr(study_cli, "build_task", write_val_parquet)
    monkeypatch.setattr(study_cli, "run_all", partial(run_all, launch=fake_launch))
    argv = ["--out-dir", str(results), "--work-dir", str(tmp_path / "work"), "trainer.total_training_steps=6"]
    assert study_cli.main([*argv, "--seeds", "2"]) == 0

    for (arm, seed), seconds, at_once in ((("grpo", 0), 3600, 2), (("grpo", 1), 7200, 2),
                                         (("sfpo_k3_a0.8", 0), 1800, 1), (("sfpo_k3_a0.8", 1), 1800, 1)):
        done = results / "runs" / arm / f"seed{seed}" / DONE_FILE
        done.write_text(json.dumps({**json.loads(done.read_text()), "seconds": seconds, "runs_at_once": at_once}))

    monkeypatch.setattr(study_cli, "run_all", no_run)
    assert study_cli.main([*argv, "--seeds", "3", "--report-only"]) == 0
    report = json.loads((results / "report.json").read_text())
    assert report["settings"]["run_time"] == {"runs": 4, "seconds": 14400.0,
                                              "seconds_by_runs_at_once": {"1": 3600.0, "2": 10800.0}}
    assert ("Machine time: the 4 runs reported took 4.0 hours, each run's wall time summed; runs that shared the "
            "machine overlapped, so it was busy for about 2.5 hours") in (results / "report.md").read_text()
    assert report["settings"]["unfinished"] == ["grpo seed 2", "sfpo_k3_a0.8 seed 2"]
    assert sorted({(run["arm"], run["seed"]) for run in report["runs"]}) == [
        (arm, seed) for arm in ("grpo", "sfpo_k3_a0.8") for seed in (0, 1)]
    assert report["comparisons"][0]["seeds"] == [0, 1]
    assert "Not in this report: 2 of the grid's runs at these seeds" in (results / "report.md").read_text()
