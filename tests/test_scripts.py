"""The measuring scripts: their analysis on synthetic data, and one-line refusals of bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
MIB = 2**20


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_memory_growth_is_the_slope_after_the_warm_up():
    memory_run = load("memory_run")
    rising = {step: (500 + (step if step >= 10 else 5 * step)) * MIB for step in range(1, 61)}
    entry = memory_run.growth(rising, warmup=10)
    assert entry["growth_mib_per_100_steps"] == pytest.approx(100.0)
    assert entry["rss_after_warmup_mib"] == 510.0 and entry["peak_mib"] == 560.0
    assert entry["growth_pct_per_100_steps"] == pytest.approx(100 * 100 / 510, abs=0.01)
    flat = memory_run.growth({step: 700 * MIB for step in range(1, 61)}, warmup=10)
    assert flat["growth_mib_per_100_steps"] == 0.0
    assert memory_run.growth({5: MIB, 70: MIB}, warmup=10) is None  # one point after the warm-up


def test_samples_are_grouped_by_process_and_step_with_a_total():
    memory_run = load("memory_run")
    samples = [{"step": None, "rss": {"1 a": 1}}, {"step": 1, "rss": {"1 a": 2, "2 b": 3}},
               {"step": 1, "rss": {"1 a": 4, "2 b": 3}}, {"step": 2, "rss": {"1 a": 5}},
               {"step": 3, "rss": {"1 a": 6}}]  # the last step logged: the run shutting down, left out
    series = memory_run.per_step(samples)
    assert series == {"1 a": {1: 2, 2: 5}, "2 b": {1: 3}}  # the first sample once a step is logged
    assert memory_run.with_total(series, warmup=1)["all processes"] == {1: 2, 2: 5}  # "2 b" left: not in the sum
    cpu = memory_run.per_step([{"step": 1, "cpu_seconds": {"1 a": 2.0}}, {"step": 4, "cpu_seconds": {"1 a": 3.5}},
                               {"step": 5, "cpu_seconds": {}}], "cpu_seconds")
    assert memory_run.cpu_seconds_per_step(cpu["1 a"], warmup=0) == 0.5
    assert memory_run.short_name("77 /venv/bin/python -m sfpo_verl.main algorithm.name=sfpo") == "sfpo_verl.main (77)"
    assert memory_run.short_name("78 ray::WorkerDict") == "ray::WorkerDict (78)"


@pytest.mark.parametrize(("script", "argv", "message"), [
    ("memory_run", ["--steps", "0"], "--steps 0: at least 1"),
    ("memory_run", ["--warmup", "400"], "--warmup 400: from 0 to --steps - 2"),
    ("memory_run", ["--arm", "ppo"], "argument --arm: invalid choice: 'ppo'"),
    ("benchmark_rollout", ["--repeats", "0"], "--repeats 0: at least 1"),
    ("benchmark_rollout", ["--size", "huge"], "unrecognized arguments: --size huge"),
    ("benchmark_rollout", ["--config", "nope.yaml"], "--config nope.yaml: no such file"),
])
def test_bad_arguments_stop_with_one_line_naming_them(script, argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        load(script).main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_step_displacement_adds_the_ranks_shards_and_pairs_consecutive_steps(tmp_path):
    import json

    import torch

    step_displacement = load("step_displacement")
    run = tmp_path / "run"
    weights = {1: [[0.0, 0.0], [0.0]], 2: [[3.0, 0.0], [4.0]], 3: [[3.0, 1.0], [4.0]], 5: [[0.0, 0.0], [0.0]]}
    for step, shards in weights.items():
        actor = run / "checkpoints" / f"global_step_{step}" / "actor"
        actor.mkdir(parents=True)
        for rank, shard in enumerate(shards):
            torch.save({"w": torch.tensor(shard)}, actor / f"model_world_size_2_rank_{rank}.pt")
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": step, "data": {"sfpo/fast_displacement_norm": 2.0 * step}}) + "\n" for step in (2, 3)))
    report = step_displacement.run_report(run)
    # step 2: sqrt(3^2 + 4^2) across the two ranks; step 3: 1; steps 3 -> 5 are not consecutive
    assert report["steps"] == [{"step": 2, "step_displacement": 5.0, "fast_displacement_norm": 4.0},
                               {"step": 3, "step_displacement": 1.0, "fast_displacement_norm": 6.0}]
    assert report["median_step_displacement"] == 3.0


def test_step_displacement_needs_two_consecutive_checkpoints(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        load("step_displacement").main([str(tmp_path)])
    assert stopped.value.code == 2
    expected = f"error: {tmp_path}: 0 saved actor checkpoint(s); need two consecutive (trainer.save_freq=1)"
    assert capsys.readouterr().err.strip() == expected
