"""Reading record files (parquet, JSON lines, JSON) and looking fields up in their rows.

Shared by data preparation and evaluation, so both accept the same files and name a
missing field the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

RECORD_SUFFIXES = (".parquet", ".jsonl", ".json")


class RecordsError(ValueError):
    """A record file that cannot be read; the message names the file (and line)."""


class MissingFieldError(ValueError):
    """A row lacks a needed field; the message names the field(s) looked for."""


def read_records(path: Path) -> list[dict]:
    """All rows of a .parquet, .jsonl or .json file (a list of records, or an object holding one)."""
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise RecordsError(f"{path}: line {number} is not valid JSON: {error}") from None
        return rows
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):  # {"data": [...]} and similar wrappers
            lists = [value for value in data.values() if isinstance(value, list)]
            data = lists[0] if len(lists) == 1 else None
        if not isinstance(data, list):
            raise RecordsError(f"{path}: expected a list of records (or an object holding one)")
        return data
    raise RecordsError(f"{path}: unsupported file type (use {', '.join(RECORD_SUFFIXES)})")


def field(row: dict, names: tuple[str, ...]) -> Any:
    """The value of the first of `names` present and non-empty in `row`; dotted names reach into dicts."""
    for name in names:
        value: Any = row
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not (isinstance(value, (str, list)) and len(value) == 0):
            return value
    wanted = " or ".join(repr(name) for name in names)
    raise MissingFieldError(f"missing field {wanted} (the row has fields {sorted(row)})")
