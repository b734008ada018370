"""Loading a training run's logged metrics: verl's file logger and tensorboard event files.

verl's `file` logger (verl.utils.tracking.FileLogger) writes one JSON line per step,
{"step": N, "data": {metric: value}}, to $VERL_FILE_LOGGER_PATH or
./<project>/<experiment>.jsonl; it truncates that file when a run restarts, so the recipes
give every launch its own file. A run directory may therefore hold several such files:
they are merged in name order, a later file's value winning for the same step and metric.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

TENSORBOARD_GLOB = "events.out.tfevents.*"
HYDRA_CONFIG = Path(".hydra") / "config.yaml"


class RunError(ValueError):
    """A run that cannot be analysed; the message names the run and what is missing."""


@dataclass
class Run:
    """`metrics`: one row per logged step (index `step`), one column per metric."""

    label: str
    path: Path
    metrics: pd.DataFrame
    rollouts_per_step: int


def load_run(label: str, path: Path, rollouts_per_step: int | None = None) -> Run:
    """Read every file-logger JSONL and tensorboard event file at or under `path`.

    Rollouts per step is `rollouts_per_step` if given, else data.train_batch_size x
    actor_rollout_ref.rollout.n from the run's Hydra config (.hydra/config.yaml under `path`).
    """
    if not path.exists():
        raise RunError(f"run {label!r}: {path} does not exist")
    by_step: dict[int, dict[str, float]] = {}
    logger_files = [path] if path.is_file() else sorted(p for p in path.rglob("*.jsonl") if _is_file_logger(p))
    for file in logger_files:
        _merge(by_step, read_file_logger(file))
    event_dirs = sorted({p.parent for p in ([] if path.is_file() else path.rglob(TENSORBOARD_GLOB))})
    for directory in event_dirs:
        _merge(by_step, _read_tensorboard(directory))
    if not by_step:
        raise RunError(
            f"run {label!r}: no metrics under {path} (looked for verl file-logger *.jsonl and {TENSORBOARD_GLOB})"
        )
    metrics = pd.DataFrame.from_dict(by_step, orient="index").sort_index()
    metrics.index.name = "step"

    if rollouts_per_step is None:
        rollouts_per_step = _rollouts_from_hydra_config(path)
    if rollouts_per_step is None:
        raise RunError(
            f"run {label!r}: cannot tell rollouts per step (no {HYDRA_CONFIG} under {path}); "
            f"pass --rollouts-per-step {label}=<train_batch_size x rollout.n>"
        )
    return Run(label, path, metrics, rollouts_per_step)


def _is_file_logger(path: Path) -> bool:
    """verl's validation dumps are JSONL too; a file-logger line is exactly {"step", "data"}."""
    with path.open(encoding="utf-8") as lines:
        first = lines.readline()
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(record, dict) and set(record) == {"step", "data"}


def read_file_logger(path: Path) -> dict[int, dict[str, float]]:
    """A verl file-logger JSONL (or a gzip-compressed one, *.gz) as {step: {metric: value}} (numeric
    values only)."""
    by_step: dict[int, dict[str, float]] = {}
    opened = gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")
    with opened as lines:
        for step, data in file_logger_records(lines, path):
            by_step.setdefault(step, {}).update(data)
    return by_step


def file_logger_records(lines: Iterable[str], path: Path, first_line: int = 1) -> Iterator[tuple[int, dict[str, float]]]:
    """(step, numeric metrics) of each verl file-logger line of `lines` (blank ones skipped), read
    from `path` from line `first_line` on (for the error message)."""
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            step, data = int(record["step"]), record["data"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise RunError(f"{path}: line {number} is not a verl file-logger record") from None
        yield step, _scalars(data)


def _read_tensorboard(directory: Path) -> dict[int, dict[str, float]]:
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    events = EventAccumulator(str(directory), size_guidance={SCALARS: 0})
    events.Reload()
    by_step: dict[int, dict[str, float]] = {}
    for tag in events.Tags()[SCALARS]:
        for event in events.Scalars(tag):
            by_step.setdefault(event.step, {})[tag] = event.value
    return by_step


def _scalars(data: dict) -> dict[str, float]:
    """Numeric values only (None -> NaN); verl also logs the odd list or string."""
    values = {}
    for key, value in data.items():
        if value is None:
            values[key] = math.nan
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values[key] = float(value)
    return values


def _merge(into: dict[int, dict[str, float]], new: dict[int, dict[str, float]]) -> None:
    for step, values in new.items():
        into.setdefault(step, {}).update(values)


def _rollouts_from_hydra_config(path: Path) -> int | None:
    configs = [path.parent / HYDRA_CONFIG] if path.is_file() else sorted(path.rglob(str(HYDRA_CONFIG)))
    for config_path in configs:
        if config_path.is_file():
            config = yaml.safe_load(config_path.read_text())
            try:
                return int(config["data"]["train_batch_size"]) * int(config["actor_rollout_ref"]["rollout"]["n"])
            except (KeyError, TypeError, ValueError):
                raise RunError(f"{config_path}: no data.train_batch_size or actor_rollout_ref.rollout.n") from None
    return None
