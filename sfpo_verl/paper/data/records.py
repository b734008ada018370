"""Reading record files (parquet, JSON lines, JSON) and looking fields up in their rows.

Shared by data preparation and evaluation, so both accept the same files and name a
missing or mistyped field the same way. Every error is one line naming the file and the
line, row or column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

RECORD_SUFFIXES = (".parquet", ".jsonl", ".json")


class RecordsError(ValueError):
    """A record file that cannot be read; the message names the file (and line, row or column)."""


class FieldError(ValueError):
    """A row lacks a needed field or holds a value of the wrong type; the message names the field."""


def read_records(path: Path) -> list[dict]:
    """All rows of a .parquet, .jsonl or .json file (a list of records, or an object holding one).

    A file that is truncated, not UTF-8, not JSON, empty, or holds a row that is not a record
    raises RecordsError."""
    readers = {".parquet": _read_parquet, ".jsonl": _read_json_lines, ".json": _read_json}
    if path.suffix not in readers:
        raise RecordsError(f"{path}: unsupported file type (use {', '.join(RECORD_SUFFIXES)})")
    try:
        rows = readers[path.suffix](path)
    except OSError as error:  # unreadable: permissions, a folder named like a file, ...
        raise RecordsError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not rows:
        raise RecordsError(f"{path}: holds no rows; expected at least one record")
    return rows


def _read_parquet(path: Path) -> list[dict]:
    if path.stat().st_size == 0:  # said here: pyarrow's own wording for it differs between its versions
        raise RecordsError(f"{path}: is an empty file (0 bytes); expected a parquet file")
    try:
        table = pq.read_table(path)
    except pa.ArrowException as error:  # truncated, or not parquet at all
        raise RecordsError(f"{path}: not a readable parquet file ({_one_line(error)})") from None
    try:
        return table.to_pylist()
    except UnicodeDecodeError:
        raise RecordsError(f"{path}: {_undecodable_cell(table)} is not UTF-8 text; expected UTF-8") from None


def _undecodable_cell(table: pa.Table) -> str:
    """Where a table's first string that is not UTF-8 sits, as "column 'x', row N"."""
    for name in table.column_names:
        for index, cell in enumerate(table.column(name)):
            try:
                cell.as_py()
            except UnicodeDecodeError:
                return f"column {name!r}, row {index}"
    return "a cell"


def _read_json_lines(path: Path) -> list[dict]:
    rows = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise RecordsError(
                    f"{path}: line {number} is not UTF-8 text (byte {raw[error.start]:#04x} at column "
                    f"{error.start + 1}); expected UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as error:  # also an integer or a nesting too deep to read
                raise RecordsError(f"{path}: line {number} is not valid JSON: {error}") from None
            if not isinstance(row, dict):
                raise RecordsError(
                    f"{path}: line {number} is {_json_kind(row)}; expected a JSON object (one record per line)"
                )
            rows.append(row)
    return rows


def _read_json(path: Path) -> list[dict]:
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise RecordsError(
            f"{path}: not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start}); expected UTF-8"
        ) from None
    except (ValueError, RecursionError) as error:
        raise RecordsError(f"{path}: not valid JSON: {error}") from None
    if isinstance(data, dict):  # {"data": [...]} and similar wrappers
        lists = [value for value in data.values() if isinstance(value, list)]
        data = lists[0] if len(lists) == 1 else None
    if not isinstance(data, list):
        raise RecordsError(f"{path}: expected a list of records (or an object holding one)")
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise RecordsError(f"{path}: record {index} is {_json_kind(row)}; expected a JSON object")
    return data


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _json_kind(value: Any) -> str:
    """What a parsed JSON value was written as, for messages: "a JSON array", ..."""
    return "a JSON " + _JSON_KINDS.get(type(value), "object")


def type_name(value: Any) -> str:
    """The Python type of a field's value, for messages."""
    return type(value).__name__


def find_field(row: dict, names: tuple[str, ...]) -> tuple[str, Any]:
    """The name and value of the first of `names` present and non-empty in `row`; dotted
    names reach into dicts."""
    for name in names:
        value: Any = row
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not (isinstance(value, (str, list)) and len(value) == 0):
            return name, value
    wanted = " or ".join(repr(name) for name in names)
    raise FieldError(f"missing field {wanted} (the row has fields {sorted(row)})")


def field(row: dict, names: tuple[str, ...]) -> Any:
    """The value of the first of `names` present and non-empty in `row` (see find_field)."""
    return find_field(row, names)[1]


def text_field(row: dict, names: tuple[str, ...]) -> str:
    """A field that must hold text (see checked_text)."""
    name, value = find_field(row, names)
    return checked_text(value, f"field {name!r}")


def checked_text(value: Any, what: str) -> str:
    """`value` if it is a str that can be written as UTF-8, else FieldError naming `what`."""
    if not isinstance(value, str):
        raise FieldError(f"{what} is of type {type_name(value)}; expected text")
    if not is_unicode(value):
        raise FieldError(f"{what} holds a lone surrogate (not Unicode text); expected UTF-8 text")
    return value


def is_unicode(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (a lone surrogate, e.g. from a JSON "\\ud800", cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
