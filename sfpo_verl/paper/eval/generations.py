"""Reading generations to evaluate, from verl's validation dumps or from any engine's table.

verl's dump (`trainer.validation_data_dir`, one `<step>.jsonl` per validation) has one line
per response: `input`, `output`, `gts`, `score`, `step`, `uid` (`<prompt uid>_<sample>_<turn>`)
and the reward's extra info (with sfpo_verl's reward: `acc`, `pred`, `reason`, `source`).
Any other table (.parquet/.jsonl/.json) works if each row has a response (`response`, or a
list in `responses`), a ground truth and a data source (or --data-source), see FIELDS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfpo_verl.paper.data.records import RECORD_SUFFIXES, FieldError, RecordsError, field, is_unicode, read_records

# Where each value is looked for in a row, first match wins.
RESPONSE_FIELDS = ("output", "response", "responses")
GROUND_TRUTH_FIELDS = ("gts", "ground_truth", "answer", "reward_model.ground_truth")
DATA_SOURCE_FIELDS = ("source", "data_source")
PROMPT_ID_FIELDS = ("uid", "prompt_id", "extra_info.index", "index", "input", "prompt")
STORED_CORRECT_FIELD = "acc"

ROWS_LISTED = 20

# verl's per-response key in validation dumps: <prompt uuid4>_<sample index>_<turn index>.
_VERL_SAMPLE_KEY = re.compile(r"^(?P<prompt>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_\d+_\d+$")


@dataclass(frozen=True)
class Expected:
    """What a field's value must be: a test, and its description for messages."""

    accepts: Callable[[Any], bool]
    description: str


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and is_unicode(value)


def _is_answer(value: Any) -> bool:
    return _is_text(value) or (isinstance(value, (int, float)) and not isinstance(value, bool))


TEXT = Expected(_is_text, "UTF-8 text")
RESPONSE = Expected(
    lambda value: _is_text(value) or (isinstance(value, list) and all(map(_is_text, value))),
    "UTF-8 text or a list of texts",
)
GROUND_TRUTH = Expected(
    lambda value: _is_answer(value) or (isinstance(value, list) and all(map(_is_answer, value))),
    "text, a number or a list of them",
)


class GenerationsError(ValueError):
    """Generations that cannot be evaluated; the message names the file, field and rows."""


@dataclass(frozen=True)
class Generation:
    data_source: str
    prompt_id: str  # groups the k responses to one prompt
    response: Any
    ground_truth: Any
    stored_correct: float | None  # the `acc` the run's reward already gave, if any


@dataclass(frozen=True)
class GenerationSet:
    """The generations of one file; `step` is the training step of a verl dump."""

    origin: str
    step: int | None
    generations: list[Generation]


def load_generation_sets(path: Path, default_data_source: str | None = None) -> list[GenerationSet]:
    """A directory of verl dumps (`<step>.jsonl`) gives one set per step, in step order; any
    other directory is read as one set (e.g. a file per benchmark), as is a single file."""
    if path.is_file():
        return [_load_file(path, default_data_source)]
    if not path.is_dir():
        raise GenerationsError(f"{path} does not exist")
    files = sorted(p for p in path.iterdir() if p.suffix in RECORD_SUFFIXES)
    if not files:
        raise GenerationsError(f"{path} holds no {'/'.join(RECORD_SUFFIXES)} files")
    if all(file.stem.isdigit() for file in files):
        return [_load_file(file, default_data_source) for file in sorted(files, key=lambda p: int(p.stem))]
    merged = [g for file in files for g in _load_file(file, default_data_source).generations]
    return [GenerationSet(str(path), None, merged)]


def _load_file(path: Path, default_data_source: str | None) -> GenerationSet:
    try:
        rows = read_records(path)
    except RecordsError as error:
        raise GenerationsError(str(error)) from None
    problems: dict[str, list[int]] = {}  # what is wrong -> row numbers

    def checked(value: Any, index: int, what: str, expected: Expected) -> Any:
        if expected.accepts(value):
            return value
        problems.setdefault(f"a {what} that is not {expected.description}", []).append(index)
        return None

    def lookup(row: dict, index: int, names: tuple[str, ...], what: str, expected: Expected, hint: str = "") -> Any:
        try:
            return checked(field(row, names), index, what, expected)
        except FieldError:
            problems.setdefault(f"no {what}{hint} (looked for {', '.join(names)})", []).append(index)
            return None

    generations = []
    for index, row in enumerate(rows):
        response = lookup(row, index, RESPONSE_FIELDS, "response", RESPONSE)
        ground_truth = lookup(row, index, GROUND_TRUTH_FIELDS, "ground truth", GROUND_TRUTH)
        if default_data_source is None:
            data_source = lookup(row, index, DATA_SOURCE_FIELDS, "data source", TEXT, " (or pass --data-source)")
        else:
            data_source = checked(
                row.get("source") or row.get("data_source") or default_data_source, index, "data source", TEXT
            )
        if response is None or ground_truth is None or data_source is None:
            continue
        prompt_id = _prompt_id(row, index)
        if isinstance(response, list):  # one row, k responses: any stored score is not per response
            stored, responses = None, response
        else:
            stored, responses = row.get(STORED_CORRECT_FIELD), [response]
            stored = float(stored) if isinstance(stored, (int, float)) else None
        for sample in responses:
            generations.append(Generation(str(data_source), prompt_id, sample, ground_truth, stored))

    if problems:
        details = "; ".join(
            f"{len(rows_)} rows have {what}: rows {_row_list(rows_)} (0-based)" for what, rows_ in problems.items()
        )
        raise GenerationsError(f"{path}: {details}")
    step = rows[0].get("step")
    if not isinstance(step, int) or any(row.get("step") != step for row in rows):
        step = None
    return GenerationSet(str(path), step, generations)


def _prompt_id(row: dict, index: int) -> str:
    """Key shared by the responses to one prompt; a row of its own when nothing identifies it."""
    verl_key = _VERL_SAMPLE_KEY.match(str(row.get("uid", "")))
    if verl_key:  # a verl dump: the responses to one prompt share the uuid
        return verl_key.group("prompt")
    try:
        value = field(row, PROMPT_ID_FIELDS)
    except FieldError:
        return f"row-{index}"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _row_list(rows: list[int]) -> str:
    listed = ", ".join(map(str, rows[:ROWS_LISTED]))
    return listed + (f", ... ({len(rows) - ROWS_LISTED} more)" if len(rows) > ROWS_LISTED else "")
