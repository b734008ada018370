"""The quickstart's report: curves from verl's file-logger jsonl (held-out accuracy read as the
paper's analysis reads it, also by the progress line), the plot, the summary table, the
command-line/yaml override merge and the CPU platform's settings under the quickstart's."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from sfpo_verl.cpu.quickstart.report import read_arm, summary_markdown, write_report
from sfpo_verl.cpu.quickstart.run import DEFAULT_CONFIG, _ProgressWatcher, read_config
from sfpo_verl.cpu.settings import cpu_overrides, hydra_value, merge_overrides
from sfpo_verl.paper.analysis.efficiency import validation_accuracy
from sfpo_verl.paper.analysis.runs import load_run

VAL = "val-core/sfpo_arithmetic/acc/mean@2"


def write_metrics(path, val_by_step, reward_by_step, seconds_per_step):
    """A metrics file shaped like verl's FileLogger output (step 0 holds only validation)."""
    with open(path, "w") as f:
        for step in range(max(reward_by_step) + 1):
            data = {}
            if step in reward_by_step:
                data.update({"critic/score/mean": reward_by_step[step], "timing_s/step": seconds_per_step})
            if step in val_by_step:
                data[VAL] = val_by_step[step]
            f.write(json.dumps({"step": step, "data": data}) + "\n")
    return path


@pytest.fixture
def arms(tmp_path):
    grpo = write_metrics(tmp_path / "grpo.jsonl", {0: 0.2, 2: 0.3, 4: 0.4}, {1: 0.2, 2: 0.25, 3: 0.3, 4: 0.35}, 10.0)
    sfpo = write_metrics(tmp_path / "sfpo.jsonl", {0: 0.2, 2: 0.45, 4: 0.5}, {1: 0.2, 2: 0.4, 3: 0.45, 4: 0.5}, 12.5)
    return [read_arm("grpo", grpo, rollouts_per_step=128), read_arm("sfpo", sfpo, rollouts_per_step=128)]


def test_curves_are_read_from_verls_metrics(arms):
    grpo = arms[0]
    assert grpo.val_steps == [0, 2, 4] and grpo.val_acc == [0.2, 0.3, 0.4]
    assert grpo.rollouts(grpo.val_steps) == [0, 256, 512]
    assert grpo.seconds(grpo.val_steps) == [0.0, 20.0, 40.0]
    assert grpo.train_reward == [0.2, 0.25, 0.3, 0.35]


def test_summary_reports_rollouts_and_time_to_the_baselines_best(arms):
    table = summary_markdown(arms, baseline="grpo", start_accuracy=0.2)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in table.splitlines() if line.startswith("| grpo") or line.startswith("| sfpo")}
    # grpo reaches its best (0.4) at step 4: 512 rollouts, 40 s; sfpo at step 2: 256 rollouts, 25 s.
    assert rows["grpo"] == ["0.200", "0.400", "0.400", "512", "40", "1.00×", "1.00×"]
    assert rows["sfpo"] == ["0.200", "0.500", "0.500", "256", "25", "2.00×", "1.60×"]
    assert "Starting accuracy" in table and "0.400" in table


def test_an_arm_that_never_reaches_the_target_says_so(tmp_path):
    grpo = read_arm("grpo", write_metrics(tmp_path / "g.jsonl", {0: 0.2, 2: 0.6}, {1: 0.3, 2: 0.5}, 1.0), 8)
    sfpo = read_arm("sfpo", write_metrics(tmp_path / "s.jsonl", {0: 0.2, 2: 0.4}, {1: 0.3, 2: 0.4}, 1.0), 8)
    assert "| sfpo | 0.200 | 0.400 | 0.400 | not reached | not reached | — | — |" in summary_markdown([grpo, sfpo])


def test_report_writes_a_png_and_markdown(arms, tmp_path):
    png, md = write_report(arms, tmp_path / "out")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| sfpo |" in md.read_text() and "curves.png" in md.read_text()


def test_metrics_without_validation_are_a_clear_error(tmp_path):
    path = write_metrics(tmp_path / "m.jsonl", {}, {1: 0.3}, 1.0)
    with pytest.raises(ValueError, match="test_freq"):
        read_arm("grpo", path, 8)


def test_command_line_overrides_replace_the_yamls_and_extra_ones_pass_through():
    defaults = {"trainer.total_training_steps": 25, "+a.b": {"x": "fp32"}, "trainer.logger": ["console", "file"]}
    merged = merge_overrides(defaults, ["trainer.total_training_steps=3", "+a.b={x: bf16}", "data.seed=7"])
    assert merged == ["trainer.total_training_steps=3", "+a.b={x: bf16}", "trainer.logger=[console,file]", "data.seed=7"]
    assert hydra_value(True) == "true" and hydra_value(None) == "null"
    with pytest.raises(ValueError, match="key=value"):
        merge_overrides(defaults, ["--oops"])


def write_records(path, records):
    path.write_text("".join(json.dumps({"step": step, "data": data}) + "\n" for step, data in records))
    return path


def progress_lines(path, capsys) -> list[str]:
    watcher = _ProgressWatcher("grpo", path, pid=0, total_steps=3, start=time.time())
    watcher._print_new_steps()
    return capsys.readouterr().out.splitlines()


def test_the_report_the_progress_line_and_the_analysis_read_the_same_held_out_accuracy(tmp_path, capsys):
    # Two data sources: held-out accuracy is their mean; step 3 lacks one, so it is no validation point.
    a, b, train = "val-core/a/acc/mean@2", "val-core/b/acc/mean@2", {"critic/score/mean": 0.1, "timing_s/step": 2.0}
    path = write_records(tmp_path / "m.jsonl", [(0, {a: 0.2, b: 0.4}), (1, train), (2, {**train, a: 0.3, b: 0.5}),
                                                (3, {**train, a: 0.35})])
    arm = read_arm("grpo", path, 8)
    assert arm.val_steps == [0, 2] and arm.val_acc == pytest.approx([0.3, 0.4])
    analysis = validation_accuracy(load_run("grpo", path, 8).metrics)
    assert list(analysis.index) == arm.val_steps and list(analysis / 100) == pytest.approx(arm.val_acc)
    lines = progress_lines(path, capsys)
    assert ["val acc" in line for line in lines] == [True, False, True, False]
    assert "val acc 0.300" in lines[0] and "val acc 0.400" in lines[2]


def test_without_acc_verls_core_reward_is_the_held_out_accuracy(tmp_path, capsys):
    reward = "val-core/a/reward/mean@2"
    path = write_records(tmp_path / "m.jsonl", [(0, {reward: 0.25}), (1, {"timing_s/step": 1.0, reward: 0.5})])
    assert read_arm("grpo", path, 8).val_acc == [0.25, 0.5]
    assert [line.split("  ")[1] for line in progress_lines(path, capsys)] == ["val acc 0.250", "val acc 0.500"]


def test_the_progress_line_waits_for_a_line_verl_is_still_writing(tmp_path, capsys):
    path = write_records(tmp_path / "m.jsonl", [(1, {"critic/score/mean": 0.5})])
    with open(path, "a") as f:
        f.write('{"step": 2, "data": {"critic/sc')
    watcher = _ProgressWatcher("grpo", path, pid=0, total_steps=3, start=time.time())
    watcher._print_new_steps()
    with open(path, "a") as f:
        f.write('ore/mean": 0.75}}\n')
    watcher._print_new_steps()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[:2] for line in lines] == [["[grpo] step 1/3", "reward 0.500"], ["[grpo] step 2/3", "reward 0.750"]]


def test_the_cpu_platform_settings_are_under_the_quickstarts_and_each_key_has_one_place(tmp_path):
    own = yaml.safe_load(DEFAULT_CONFIG.read_text())["verl"]
    platform = cpu_overrides()
    assert not {key.lstrip("+") for key in own} & {key.lstrip("+") for key in platform}
    assert read_config()["verl"] == {**platform, **own}
    # a quickstart-style yaml replaces a platform value, with or without Hydra's "+"
    config = tmp_path / "q.yaml"
    config.write_text(yaml.safe_dump({"verl": {"trainer.n_gpus_per_node": 2,
                                               "actor_rollout_ref.model.override_config.attn_implementation": "sdpa"}}))
    verl = read_config(config)["verl"]
    assert verl["trainer.n_gpus_per_node"] == 2 and verl["actor_rollout_ref.model.override_config.attn_implementation"] == "sdpa"
    assert "+actor_rollout_ref.model.override_config.attn_implementation" not in verl
    assert verl["trainer.device"] == "cpu"
