"""The smoke harness's scheduling (`run_smoke` with `jobs`), with the trainer launch replaced by a
stub that records when each arm started and ended: arms overlap up to `jobs`, an arm that resumes
another starts only after that one ended, and a failed arm's resume is skipped with the reason.
The real launches are in test_e2e_cpu.py."""

from __future__ import annotations

import threading

import pytest

import sfpo_verl.smoke as smoke


@pytest.fixture
def stub_launches(monkeypatch, tmp_path):
    """Replaces the task build, launch and checks; returns the events log and a setter for
    arms whose launch fails. A barrier makes grpo and sfpo wait for each other: it breaks
    (and fails their launches) unless both are in flight at once."""
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    failing: set[str] = set()
    both_in_flight = threading.Barrier(2, timeout=10)
    jobs_now = {"jobs": 1}

    def launch(arm, overrides, out, timeout_s=None):
        with lock:
            events.append(("start", arm.name))
        if arm.name in ("grpo", "sfpo") and jobs_now["jobs"] > 1:
            both_in_flight.wait()
        with lock:
            events.append(("end", arm.name))
        if arm.name in failing:
            raise RuntimeError(f"The {arm.name} arm failed (exit 1); see its log")
        return {1: {}}, 1.0, out / arm.name / "train.log"

    monkeypatch.setattr(smoke, "build_task", lambda *args, **kwargs: None)
    monkeypatch.setattr(smoke, "launch", launch)
    monkeypatch.setattr(smoke, "check_arm", lambda arm, steps, device: {"alpha": {"ok": True, "detail": ""}})
    monkeypatch.setattr(smoke, "check_rewards", lambda arm_dir: {"ok": True, "detail": ""})
    monkeypatch.setattr(smoke, "_mark_switch_fired", lambda checkpoint: events.append(("mark", checkpoint.parts[-3])))

    def run(jobs: int, fail: tuple[str, ...] = ()) -> dict:
        jobs_now["jobs"] = jobs
        failing.update(fail)
        return smoke.run_smoke("cpu", tmp_path / "out", "hf", jobs=jobs)

    return events, run


@pytest.mark.parametrize("jobs", [1, 2])
def test_arms_run_jobs_at_a_time_and_a_resume_starts_after_the_arm_it_resumes(stub_launches, jobs):
    events, run = stub_launches
    report = run(jobs)
    assert report["ok"] and report["arms_at_once"] == jobs
    assert list(report["arms"]) == ["grpo", "sfpo", "sfpo_offload", "sfpo_resume"]
    assert events.index(("end", "sfpo")) < events.index(("mark", "sfpo")) < events.index(("start", "sfpo_resume"))
    if jobs == 1:
        starts_and_ends = [e for e in events if e[0] != "mark"]
        assert starts_and_ends == [(what, name) for name in report["arms"] for what in ("start", "end")]
    else:  # the barrier broke unless grpo and sfpo ran at once
        assert set(events[:2]) == {("start", "grpo"), ("start", "sfpo")}


def test_a_failed_arm_skips_its_resume_and_the_others_still_run(stub_launches):
    events, run = stub_launches
    report = run(2, fail=("sfpo",))
    assert not report["ok"]
    assert "failed" in report["arms"]["sfpo"]["checks"]["launch"]["detail"]
    assert report["skipped"]["sfpo_resume"] == "the sfpo arm it resumes failed"
    assert ("start", "sfpo_resume") not in events and ("mark", "sfpo") not in events
    assert {"grpo", "sfpo_offload"} <= set(report["arms"])


def test_jobs_below_one_is_refused(capsys):
    with pytest.raises(SystemExit):
        smoke.main(["--device", "cpu", "--jobs", "0"])
    assert "--jobs 0: must be 1 or more" in capsys.readouterr().err
