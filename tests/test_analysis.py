"""Run analysis on fixture runs (tests/fixtures/runs) written in verl's file-logger format.

The fixtures, by construction: 16 rollouts per step; GRPO takes 60 s a step and peaks at
45% validation accuracy (mean of AIME24 and MATH500) at step 15; SFPO takes 75 s a step,
crashed after step 12 and resumed from step 10 (a second log file), and first passes 45%
at step 10 (46%). So SFPO needs 160 rollouts and 750 s against GRPO's 240 and 900 s:
speed-ups 1.5x (rollouts) and 1.2x (time).
"""

from pathlib import Path

import pandas as pd
import pytest

from sfpo_verl.paper.analysis.cli import main
from sfpo_verl.paper.analysis.efficiency import compare_runs, held_out_accuracy, held_out_columns, validation_accuracy
from sfpo_verl.paper.analysis.plots import PANELS, plot_curves
from sfpo_verl.paper.analysis.runs import RunError, load_run

RUNS = Path(__file__).parent / "fixtures" / "runs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs():
    return load_run("grpo", RUNS / "grpo"), load_run("sfpo", RUNS / "sfpo", rollouts_per_step=16)


def test_rollouts_per_step_come_from_the_hydra_config(runs):
    grpo, _ = runs
    assert grpo.rollouts_per_step == 4 * 4  # data.train_batch_size x actor_rollout_ref.rollout.n


def test_a_resumed_run_is_merged_with_the_later_log_winning(runs):
    _, sfpo = runs
    assert list(sfpo.metrics.index) == list(range(21))
    assert sfpo.metrics.at[11, "actor/entropy"] == pytest.approx(0.40 - 0.004 * 11)  # not the lost attempt's 9.99
    assert sfpo.metrics["timing_s/step"].sum() == pytest.approx(20 * 75.0)  # each step counted once


def test_efficiency_against_the_baseline_best(runs):
    grpo, sfpo = runs
    target, (grpo_result, sfpo_result) = compare_runs([grpo, sfpo], baseline=grpo)
    assert target == pytest.approx(45.0)
    assert (grpo_result.reached_step, grpo_result.reached_rollouts) == (15, 240)
    assert grpo_result.reached_hours == pytest.approx(900 / 3600)
    assert (sfpo_result.reached_step, sfpo_result.reached_rollouts) == (10, 160)
    assert sfpo_result.reached_hours == pytest.approx(750 / 3600)
    assert sfpo_result.rollout_speedup == pytest.approx(1.5)
    assert sfpo_result.time_speedup == pytest.approx(1.2)
    assert (sfpo_result.best_accuracy, sfpo_result.best_step) == (pytest.approx(47.0), 15)
    assert sfpo_result.total_hours == pytest.approx(20 * 75 / 3600)


def test_validation_accuracy_uses_core_acc_and_complete_steps():
    metrics = pd.DataFrame(
        {
            "val-core/aime24/acc/mean@4": [0.25, None, 0.5],
            "val-core/aime24/acc/mean@2": [0.0, None, 0.0],  # a smaller n: ignored
            "val-aux/aime24/reward/mean@4": [-1.0, None, -1.0],
            "val-core/math500/acc/mean@4": [0.75, 0.5, None],  # step 2 lacks a benchmark
            "val-core/aime24/acc/best@4/mean": [1.0, None, 1.0],
        },
        index=[0, 1, 2],
    )
    accuracy = validation_accuracy(metrics)
    assert list(accuracy.index) == [0]
    assert accuracy.iloc[0] == pytest.approx(50.0)


def test_held_out_accuracy_is_the_core_reward_of_a_data_source_without_acc():
    # verl makes `reward` the core validation variable when the reward function reports no `acc`
    metrics = pd.DataFrame(
        {
            "val-core/a/reward/mean@2": [0.5, 0.25],
            "val-core/b/reward/mean@2": [0.0, 0.0],  # b reports acc too: its acc is read
            "val-core/b/acc/mean@2": [1.0, 0.5],
        },
        index=[0, 2],
    )
    assert held_out_columns(metrics.columns) == ["val-core/a/reward/mean@2", "val-core/b/acc/mean@2"]
    assert held_out_accuracy(metrics).to_dict() == {0: 0.75, 2: 0.375}


def test_tensorboard_events_read_like_the_file_logger(runs, tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    _, sfpo = runs
    writer = SummaryWriter(str(tmp_path / "tensorboard_log" / "sfpo_paper" / "sfpo"))  # verl's layout
    for step, row in sfpo.metrics.iterrows():
        for name, value in row.dropna().items():
            writer.add_scalar(name, value, step)
    writer.close()
    from_events = load_run("sfpo", tmp_path, rollouts_per_step=16)
    columns = ["val-core/aime24/acc/mean@4", "timing_s/step", "sfpo/alpha", "actor/entropy"]
    pd.testing.assert_frame_equal(from_events.metrics[columns], sfpo.metrics[columns], check_exact=False, atol=1e-6)


def test_panels_drawn_follow_what_each_run_logged(runs, tmp_path):
    grpo, sfpo = runs
    assert plot_curves([grpo, sfpo], "hours", tmp_path / "both.png") == [title for title, _ in PANELS]
    grpo_only = plot_curves([grpo], "step", tmp_path / "grpo.png")
    assert "SFPO alpha" not in grpo_only and "policy entropy" in grpo_only
    assert (tmp_path / "grpo.png").read_bytes().startswith(PNG_MAGIC)


def test_cli_writes_figures_and_summary(tmp_path, capsys):
    out = tmp_path / "analysis"
    code = main(
        [
            "--run",
            f"grpo={RUNS / 'grpo'}",
            "--run",
            f"sfpo={RUNS / 'sfpo'}",
            "--rollouts-per-step",
            "sfpo=16",
            "--out-dir",
            str(out),
        ]
    )
    assert code == 0
    for name in ("curves_step.png", "curves_rollouts.png", "curves_hours.png", "efficiency.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC), name
    summary = (out / "summary.md").read_text()
    assert "| sfpo | 47.00 (15) | 20 | 16 | 0.42 | 10 | 160 | 0.21 | 1.50 | 1.20 |" in summary
    assert summary.strip() == capsys.readouterr().out.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", f"grpo={RUNS / 'grpo'}"], "at least two runs"),
        (["--run", f"grpo={RUNS / 'grpo'}", "--run", "sfpo"], "expected LABEL=PATH"),
        (
            ["--run", f"grpo={RUNS / 'grpo'}", "--run", f"sfpo={RUNS / 'sfpo'}"],
            "run 'sfpo': cannot tell rollouts per step",
        ),
        (
            ["--run", f"a={RUNS / 'grpo'}", "--run", "b=/no/such/run", "--rollouts-per-step", "16"],
            "run 'b': /no/such/run does not exist",
        ),
        (
            ["--run", f"a={RUNS / 'grpo'}", "--run", f"b={RUNS / 'grpo'}", "--baseline", "c"],
            "--baseline 'c': no such run",
        ),
        (
            ["--run", f"a={RUNS / 'grpo'}", "--run", f"b={RUNS / 'grpo'}", "--rollouts-per-step", "c=4"],
            "no run labelled 'c'",
        ),
    ],
)
def test_bad_arguments_are_explained(tmp_path, capsys, args, message):
    assert main([*args, "--out-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_a_directory_without_metrics_is_an_error(tmp_path):
    (tmp_path / "val_generations").mkdir()
    (tmp_path / "val_generations" / "5.jsonl").write_text('{"input": "q", "output": "a", "gts": "1", "step": 5}\n')
    with pytest.raises(RunError, match="no metrics under"):
        load_run("x", tmp_path, rollouts_per_step=8)
