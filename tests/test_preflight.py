"""Bad input fails before any start-up: missing model folder, missing or column-less datasets."""

from __future__ import annotations

import pandas as pd
import pytest
from omegaconf import OmegaConf

from sfpo_verl.core.preflight import RunInputError, check_run_inputs
from sfpo_verl.cpu.task.arithmetic import split_problems, write_datasets
from sfpo_verl.main import MODEL_FOLDER_HINT


def run_config(model_path, train, val):
    return OmegaConf.create({
        "actor_rollout_ref": {"model": {"path": str(model_path)}},
        "data": {"train_files": str(train), "val_files": [str(val)], "prompt_key": "prompt"},
    })


@pytest.fixture
def task(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    return tmp_path, write_datasets(tmp_path / "data", split_problems(max_operand=2, val_fraction=0.2, seed=0))


def test_usable_inputs_pass(task):
    root, data = task
    check_run_inputs(run_config(root / "model", data["train"], data["val"]))


def test_missing_model_folder_names_the_option_and_the_builder(task, tmp_path):
    _, data = task
    with pytest.raises(RunInputError, match=r"actor_rollout_ref.model.path=.*sfpo_verl.cpu.task.build"):
        check_run_inputs(run_config(tmp_path / "nowhere", data["train"], data["val"]), model_hint=MODEL_FOLDER_HINT)


def test_hub_ids_are_left_to_the_hub(task):
    _, data = task
    check_run_inputs(run_config("Qwen/Qwen2.5-0.5B", data["train"], data["val"]))


def test_dataset_without_required_columns(task, tmp_path):
    root, data = task
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"question": ["1+1"], "answer": ["2"]}).to_parquet(bad)
    missing = r"lacks the column\(s\) \['prompt', 'data_source', 'reward_model'\]"
    with pytest.raises(RunInputError, match=rf"data.val_files: .*bad.parquet {missing}"):
        check_run_inputs(run_config(root / "model", data["train"], bad))


def test_missing_dataset_file(task, tmp_path):
    root, data = task
    with pytest.raises(RunInputError, match="data.train_files: .*missing.parquet does not exist"):
        check_run_inputs(run_config(root / "model", tmp_path / "missing.parquet", data["val"]))


@pytest.mark.parametrize("path", [None, 5])
def test_model_path_that_is_not_a_path(task, path):
    _, data = task
    config = run_config("unused", data["train"], data["val"])
    config.actor_rollout_ref.model.path = path
    expected = rf"actor_rollout_ref.model.path={path!r}: a local model folder or a hub id is required"
    with pytest.raises(RunInputError, match=expected):
        check_run_inputs(config)


@pytest.mark.parametrize("files", [5, [5], {"a": "b"}])
def test_dataset_option_that_is_not_a_path(task, files):
    root, data = task
    config = run_config(root / "model", data["train"], data["val"])
    config.data.train_files = files
    with pytest.raises(RunInputError, match=r"data.train_files=.*: a dataset file, or a list of them, is required"):
        check_run_inputs(config)
