"""The study runner and report (sfpo_verl.cpu.study) without trainer launches: a stand-in
launcher writes verl file-logger metrics, so planning, resuming, failures and the statistics
are checked exactly. The launcher itself is the quickstart's, run for real by the quickstart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sfpo_verl.cpu.quickstart.run import DEFAULT_CONFIG, merge_overrides
from sfpo_verl.cpu.study.grid import GRIDS, arms_of
from sfpo_verl.cpu.study.report import read_run, summarize, write_report
from sfpo_verl.cpu.study.runner import DONE_FILE, plan_runs, run_all
from sfpo_verl.cpu.task.build import TaskPaths

import yaml

ROLLOUTS_PER_STEP = 128
# Held-out accuracy at steps 0, 2, 4, 6 by arm and seed; one training step takes 10 s (grpo), 20 s (sfpo).
CURVES = {
    ("grpo", 0): [0.30, 0.40, 0.50, 0.60],
    ("grpo", 1): [0.30, 0.42, 0.52, 0.58],
    ("grpo", 2): [0.30, 0.38, 0.48, 0.56],
    ("sfpo_k3_a0.8", 0): [0.30, 0.62, 0.64, 0.66],
    ("sfpo_k3_a0.8", 1): [0.30, 0.50, 0.60, 0.65],
    ("sfpo_k3_a0.8", 2): [0.30, 0.45, 0.50, 0.55],
}
STEP_SECONDS = {"grpo": 10.0, "sfpo_k3_a0.8": 20.0}


def base_overrides(*extra: str) -> list[str]:
    return merge_overrides(yaml.safe_load(DEFAULT_CONFIG.read_text())["verl"], list(extra))


def plan(tmp_path, *extra: str, seeds=(0, 1, 2)):
    return plan_runs(base_overrides(*extra), arms_of("default"), list(seeds), TaskPaths(tmp_path / "task"), tmp_path)


def fake_launch(arm: str, overrides: list[str], folder: Path, total_steps: int) -> dict:
    """Writes what verl's file logger writes for the run's curve."""
    values = dict(o.lstrip("+").split("=", 1) for o in overrides)
    seed, name = int(values["data.seed"]), values["trainer.experiment_name"].rsplit("_seed", 1)[0]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metrics.jsonl", "w") as f:
        for i, accuracy in enumerate(CURVES[(name, seed)]):
            step = 2 * i
            data = {"val-core/sfpo_arithmetic/acc/mean@4": accuracy}
            if step:
                f.write(json.dumps({"step": step - 1, "data": {"timing_s/step": STEP_SECONDS[name]}}) + "\n")
                data["timing_s/step"] = STEP_SECONDS[name]
            f.write(json.dumps({"step": step, "data": data}) + "\n")
    return {}


def test_unknown_grid_or_arm_is_named():
    with pytest.raises(ValueError, match="unknown grid 'nope'.*default, ablations"):
        arms_of("nope")
    with pytest.raises(ValueError, match="unknown arm.*sfpo_k9_a1.0.*grid 'default'"):
        arms_of("default", ["sfpo_k9_a1.0"])
    result = subprocess.run([sys.executable, "-m", "sfpo_verl.cpu.study", "--out-dir", "/tmp/x", "--grid", "nope"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unknown grid 'nope'" in result.stderr


def test_ablation_grid_is_the_papers():
    arms = GRIDS["ablations"]
    assert {(a["algorithm.sfpo.inner_steps"], a["algorithm.sfpo.alpha"]) for n, a in arms.items() if n != "grpo"} == {
        (k, alpha) for k in (3, 7) for alpha in (0.2, 0.5, 0.8, 1.0)
    }
    assert arms["sfpo_k3_a0.8_noslow"]["algorithm.sfpo.slow_correction"] is False
    assert arms_of("ablations", ["sfpo_k7_a0.2"]).keys() == {"grpo", "sfpo_k7_a0.2"}  # the baseline always runs


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


def test_a_failed_run_is_named_with_its_log_and_the_others_go_on(tmp_path):
    runs = plan(tmp_path)

    def launch(arm, overrides, folder, total_steps):
        if arm == "grpo" and "data.seed=1" in overrides:
            raise RuntimeError("The grpo arm failed (exit 1)")
        return fake_launch(arm, overrides, folder, total_steps)

    failures = run_all(runs, 6, launch)
    assert list(failures) == ["grpo seed 1"] and str(runs[2].log) in failures["grpo seed 1"]
    assert [r.done for r in runs] == [True, True, False, True, True, True]


def test_a_killed_study_continues_where_it_stopped(tmp_path):
    runs = plan(tmp_path)
    launched = []

    def interrupted(arm, overrides, folder, total_steps):
        if len(launched) == 3:
            folder.mkdir(parents=True)
            (folder / "metrics.jsonl").write_text("partial")
            raise KeyboardInterrupt
        launched.append(folder)
        return fake_launch(arm, overrides, folder, total_steps)

    with pytest.raises(KeyboardInterrupt):
        run_all(runs, 6, interrupted)
    assert sum(r.done for r in runs) == 3

    relaunched = []
    run_all(plan(tmp_path), 6, lambda *args: relaunched.append(args[2]) or fake_launch(*args))
    assert relaunched == [r.folder for r in runs[3:]]  # only the unfinished runs, the killed one from scratch
    assert all((r.folder / DONE_FILE).exists() for r in runs)


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


def test_rollouts_to_match_medians_and_bootstrap_intervals(finished):
    summary = summarize(finished)
    assert summary["target"] == pytest.approx(0.58)  # grpo's best mean accuracy (step 6: 0.60, 0.58, 0.56)
    grpo, sfpo = summary["arms"]["grpo"], summary["arms"]["sfpo_k3_a0.8"]
    assert {s: r["step"] for s, r in grpo["reached"].items()} == {0: 6, 1: 6}  # seed 2 tops out at 0.56
    assert {s: r["step"] for s, r in sfpo["reached"].items()} == {0: 2, 1: 4}  # seed 2 tops out at 0.55
    assert (grpo["seeds_reaching"], sfpo["seeds_reaching"]) == (2, 2)
    assert sfpo["median_rollouts"] == 384 and grpo["median_rollouts"] == 768
    assert sfpo["rollouts_ratio"] == pytest.approx(2.0)
    assert sfpo["seconds_ratio"] == pytest.approx(60 / 60)  # twice as fast in rollouts, twice as slow per step
    low, high = sfpo["rollouts_ratio_ci95"]
    assert low <= 2.0 <= high and (low, high) == (pytest.approx(1.5), pytest.approx(3.0))
    assert sfpo["final_acc"][0] == pytest.approx((0.66 + 0.65 + 0.55) / 3)
    assert grpo["rollouts_ratio"] == pytest.approx(1.0)


def test_report_files(finished, tmp_path):
    settings = {"grid": "default", "arms": ["grpo", "sfpo_k3_a0.8"], "seeds": [0, 1, 2], "test_freq": 2,
                "rollouts_per_validation": 256, "val_problems": 100, "val_samples": 4, "accuracy_se_at_half": 0.025,
                "overrides": []}
    report_json, report_md, png = write_report(finished, {"x seed 9": "boom (log: /l)"}, tmp_path, settings)
    data = json.loads(report_json.read_text())
    assert {(r["arm"], r["seed"]) for r in data["runs"]} == set(CURVES)
    assert all({"val_acc", "rollouts", "seconds"} <= r.keys() for r in data["runs"])
    text = report_md.read_text()
    assert "| sfpo_k3_a0.8 | 3 | 0.620 ± 0.061 |" in text and "2.00x [1.50, 3.00]" in text
    assert "x seed 9: boom (log: /l)" in text and "standard error" in text
    assert png.stat().st_size > 10_000
