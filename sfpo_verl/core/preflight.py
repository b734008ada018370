"""Checks of a run's inputs that verl would otherwise fail on only after minutes of start-up:
the model folder and the dataset files. Called by the entry point before Ray starts."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, ListConfig

# What verl's RL dataset and reward loop read from every row (besides the prompt column).
REQUIRED_DATA_COLUMNS = ("data_source", "reward_model")


class RunInputError(ValueError):
    """A model folder or dataset the run cannot use."""


def check_run_inputs(config: DictConfig, model_hint: str = "") -> None:
    """Raise RunInputError naming the option to change when a local model folder or a
    dataset file is missing, a dataset lacks the columns verl reads, or either option is
    not a path at all. `model_hint` ends the message about a missing model folder (the entry
    point names where a first model folder comes from)."""
    problems = _model_problems(config.actor_rollout_ref.model.path, model_hint)
    prompt_key = config.data.get("prompt_key", "prompt")
    for key in ("train_files", "val_files"):
        option, files = f"data.{key}", config.data.get(key)
        paths = _dataset_paths(files)
        if paths is None:
            problems.append(f"{option}={files!r}: a dataset file, or a list of them, is required")
            continue
        for path in paths:
            problems += _dataset_problems(option, path, (prompt_key, *REQUIRED_DATA_COLUMNS))
    if problems:
        raise RunInputError("The run's inputs are not usable:\n  - " + "\n  - ".join(problems))


def _dataset_paths(files) -> list[str] | None:
    """The paths a data.*_files value names (one path or a list), or None for anything else."""
    if files is None:
        return []
    if isinstance(files, str):
        return [files]
    if isinstance(files, (list, ListConfig)) and all(isinstance(path, str) for path in files):
        return list(files)
    return None


def _looks_local(path: str) -> bool:
    # A hub id is "org/name"; anything absolute, relative with ./ ../ ~, or deeper is a folder.
    return path.startswith(("/", ".", "~")) or path.count("/") >= 2 or os.path.exists(path)


def _model_problems(path, hint: str = "") -> list[str]:
    if not isinstance(path, str):
        return [f"actor_rollout_ref.model.path={path!r}: a local model folder or a hub id is required"]
    if not _looks_local(path):
        return []
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        return [
            f"actor_rollout_ref.model.path={path}: no Hugging Face model folder there (config.json missing). "
            f"Point it at a local model folder{', ' + hint if hint else ''}"
        ]
    return []


def _dataset_problems(option: str, path: str, required: tuple[str, ...]) -> list[str]:
    if not _looks_local(path):
        return []
    file = Path(path).expanduser()
    if not file.is_file():
        return [f"{option}: {path} does not exist"]
    if file.suffix != ".parquet":
        return []  # verl also reads json/jsonl; their columns are only known after loading
    import pyarrow.parquet as pq

    columns = set(pq.read_schema(file).names)
    missing = [c for c in required if c not in columns]
    if missing:
        return [
            f"{option}: {path} lacks the column(s) {missing} that verl reads (it has {sorted(columns)}); "
            "rows need data_source, the prompt as chat messages (data.prompt_key), and reward_model.ground_truth"
        ]
    return []
