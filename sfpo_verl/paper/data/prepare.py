"""Prepare the paper's training and evaluation data as verl parquet files.

    python -m sfpo_verl.paper.data --out-dir ~/data/sfpo \\
        --input dapo_math_17k=/path/to/dapo.parquet --input math_train=hf --input aime24=/path/aime.jsonl ...
    python -m sfpo_verl.paper.data --out-dir ~/data/sfpo --all-from-hub
    python -m sfpo_verl.paper.data --out-dir ~/data/sfpo_verl_prompt --all-from-hub --template verl
    python -m sfpo_verl.paper.data --list-sources

Writes train.parquet (every training source given, combined) and one <name>.parquet per
evaluation set, each row in verl's RL schema with `data_source` = the source name and the
problem wrapped in a prompt template (sfpo_verl.paper.data.prompt: `paper`, the default, or
`verl`), plus manifest.json with the template and the counts. Problems are deduplicated
(whitespace-insensitive) within the training set and within each evaluation set; training
problems that also appear in an evaluation set are counted, not removed (the paper does
not decontaminate).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from sfpo_verl.atomic_file import atomic_file
from sfpo_verl.paper.data.prompt import DEFAULT_TEMPLATE, TEMPLATES, build_prompt
from sfpo_verl.paper.data.records import RECORD_SUFFIXES, FieldError, RecordsError, read_records
from sfpo_verl.paper.data.sources import EVAL_SOURCES, SOURCES, TRAIN_SOURCES, Source, UnusableRow
from sfpo_verl.paper.reward.answer_extraction import normalize_answer

HUB = "hf"
TRAIN_FILE = "train.parquet"
MANIFEST_FILE = "manifest.json"
SKIPPED_ROWS_LISTED = 5


class DataPreparationError(ValueError):
    """Bad input to data preparation; the message says which source, file, row and field."""


@dataclass
class Example:
    source: str
    problem: str
    answer: str


@dataclass
class SourceReport:
    """Counts for one source; `written` = read - skipped - duplicates."""

    name: str
    origins: list[str]
    read: int = 0
    skipped: int = 0
    skipped_rows: list[str] = field(default_factory=list)
    duplicates: int = 0
    conflicting_duplicates: int = 0
    written: int = 0
    also_in_training_set: int | None = None


def load_rows(source: Source, location: str) -> list[tuple[str, list[dict]]]:
    """The raw rows of `source` from `location`, as (origin, rows) per file read.

    `location`: a .parquet/.jsonl/.json file, a directory holding such files (e.g. a hub
    snapshot), `hf` for the source's default hub dataset, or `hf:ORG/NAME[:CONFIG][@SPLIT]`.
    """
    if location == HUB or location.startswith(HUB + ":"):
        return [_load_from_hub(source, location[len(HUB) + 1 :])]
    path = Path(location).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in RECORD_SUFFIXES)
        if not files:
            raise DataPreparationError(f"{source.name}: {path} holds no {'/'.join(RECORD_SUFFIXES)} files")
    elif path.is_file():
        files = [path]
    else:
        raise DataPreparationError(f"{source.name}: {path} does not exist")
    try:
        return [(str(f), read_records(f)) for f in files]
    except RecordsError as error:
        raise DataPreparationError(f"{source.name}: {error}") from None


def _load_from_hub(source: Source, spec: str) -> tuple[str, list[dict]]:
    """`spec` is "" (the source's default) or ORG/NAME[:CONFIG][@SPLIT]."""
    hub_id, config, split = source.hub_id, source.hub_config, source.hub_split
    if spec:
        spec, _, split_given = spec.partition("@")
        hub_id, _, config_given = spec.partition(":")
        config, split = config_given or None, split_given or split
    import datasets  # only users with hub access need it

    rows = [dict(row) for row in datasets.load_dataset(hub_id, config, split=split)]
    return f"hf:{hub_id}{':' + config if config else ''}@{split}", rows


def read_source(source: Source, location: str) -> tuple[list[Example], SourceReport]:
    """Read and convert every row; a missing field is an error naming it and the row."""
    tables = load_rows(source, location)
    report = SourceReport(name=source.name, origins=[origin for origin, _ in tables])
    examples = []
    for origin, rows in tables:
        for index, row in enumerate(rows):
            report.read += 1
            try:
                problem, answer = source.read_row(row)
            except FieldError as error:
                raise DataPreparationError(
                    f"{source.name}: {origin}: row {index}: {error}; expected fields: {source.fields}"
                ) from None
            except UnusableRow as why:
                report.skipped += 1
                if len(report.skipped_rows) < SKIPPED_ROWS_LISTED:
                    report.skipped_rows.append(f"{origin}: row {index}: {why}")
                continue
            examples.append(Example(source.name, problem.strip(), answer.strip()))
    return examples, report


def problem_key(problem: str) -> str:
    """Two problems are duplicates when they differ only in whitespace."""
    return re.sub(r"\s+", " ", problem).strip()


def deduplicate(examples: list[Example], reports: dict[str, SourceReport]) -> list[Example]:
    """Keep the first occurrence of each problem; count drops (and answer conflicts) per source."""
    first_answer: dict[str, str] = {}
    kept = []
    for example in examples:
        key = problem_key(example.problem)
        if key in first_answer:
            reports[example.source].duplicates += 1
            if normalize_answer(first_answer[key]) != normalize_answer(example.answer):
                reports[example.source].conflicting_duplicates += 1
            continue
        first_answer[key] = example.answer
        kept.append(example)
    return kept


def to_verl_rows(examples: list[Example], split: str, template: str) -> list[dict]:
    """verl's RL dataset schema (verl.utils.dataset.rl_dataset)."""
    return [
        {
            "data_source": example.source,
            "prompt": build_prompt(example.problem, template),
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": example.answer},
            "extra_info": {"split": split, "index": index, "problem": example.problem, "template": template},
        }
        for index, example in enumerate(examples)
    ]


def prepare(inputs: dict[str, str], out_dir: Path, template: str = DEFAULT_TEMPLATE) -> dict:
    """Convert every source in `inputs` (name -> location), each problem wrapped in the prompt
    template named `template`; write the parquet files, return the manifest.

    Every input is read and checked before anything is written, and each file is written
    atomically: bad input leaves no output file behind, and a failed write no partial one."""
    unknown = sorted(set(inputs) - set(SOURCES))
    if unknown:
        raise DataPreparationError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    if template not in TEMPLATES:
        raise DataPreparationError(f"unknown prompt template {template!r}; known: {', '.join(TEMPLATES)}")
    reports: dict[str, SourceReport] = {}
    outputs: dict[str, tuple[Path, list[dict]]] = {}  # name in the manifest -> (file, rows)

    train_examples = []
    for name in TRAIN_SOURCES:
        if name in inputs:
            examples, reports[name] = read_source(SOURCES[name], inputs[name])
            train_examples += examples
    train_examples = deduplicate(train_examples, reports)
    train_keys = {problem_key(example.problem) for example in train_examples}
    if train_examples:
        outputs["train"] = (out_dir / TRAIN_FILE, to_verl_rows(train_examples, "train", template))
    for example in train_examples:
        reports[example.source].written += 1

    for name in EVAL_SOURCES:
        if name in inputs:
            examples, report = read_source(SOURCES[name], inputs[name])
            reports[name] = report
            examples = deduplicate(examples, reports)
            report.written = len(examples)
            report.also_in_training_set = sum(problem_key(e.problem) in train_keys for e in examples)
            outputs[name] = (out_dir / f"{name}.parquet", to_verl_rows(examples, "test", template))

    manifest = {
        "template": template,
        "template_text": TEMPLATES[template],
        "files": {name: str(path) for name, (path, _) in outputs.items()},
        "sources": {name: asdict(report) for name, report in reports.items()},
    }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataPreparationError(f"cannot create the output folder {out_dir}: {error.strerror or error}") from None
    for path, rows in outputs.values():
        _write_output(path, lambda out: pq.write_table(pa.Table.from_pylist(rows), out), mode="wb")
    manifest_text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    _write_output(out_dir / MANIFEST_FILE, lambda out: out.write(manifest_text), mode="w", encoding="utf-8")
    return manifest


def _write_output(path: Path, write: Callable[[IO], object], **open_kwargs) -> None:
    """Write one output file atomically (`write` fills the open file); a failure names the file."""
    try:
        with atomic_file(path, **open_kwargs) as out:
            write(out)
    except (OSError, pa.ArrowException) as error:
        raise DataPreparationError(f"cannot write {path}: {getattr(error, 'strerror', None) or error}") from None


def format_report(manifest: dict) -> str:
    header = f"{'source':<15}{'read':>9}{'skipped':>9}{'dupes':>9}{'conflicts':>11}{'written':>9}{'in train':>10}"
    lines = [f"prompt template: {manifest['template']}", header, "-" * len(header)]
    for name, report in manifest["sources"].items():
        overlap = report["also_in_training_set"]
        lines.append(
            f"{name:<15}{report['read']:>9}{report['skipped']:>9}{report['duplicates']:>9}"
            f"{report['conflicting_duplicates']:>11}{report['written']:>9}{'-' if overlap is None else overlap:>10}"
        )
        lines += [f"  skipped {row}" for row in report["skipped_rows"]]
    lines.append("")
    lines += [f"{name}: {path}" for name, path in manifest["files"].items()]
    return "\n".join(lines)


def format_sources() -> str:
    lines = []
    for source in SOURCES.values():
        hub = source.hub_id + (f":{source.hub_config}" if source.hub_config else "") + f"@{source.hub_split}"
        lines.append(f"{source.name:<15}{source.role:<7}{hub:<55}{source.fields}")
        lines += [f"{'':<22}also reads hf:{mirror}" for mirror in source.mirrors]
    return "\n".join(lines)


def parse_inputs(pairs: list[str], all_from_hub: bool) -> dict[str, str]:
    inputs = {name: HUB for name in SOURCES} if all_from_hub else {}
    for pair in pairs:
        name, sep, location = pair.partition("=")
        if not sep or not location:
            raise DataPreparationError(f"--input {pair!r}: expected NAME=LOCATION, e.g. aime24=/data/aime24.jsonl")
        inputs[name] = location
    if not inputs:
        raise DataPreparationError("nothing to prepare: give --input NAME=LOCATION (repeatable) or --all-from-hub")
    return inputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sfpo_verl.paper.data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out-dir", type=Path, help="where train.parquet, <benchmark>.parquet and manifest.json go")
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=LOCATION",
        help="a source and where to read it: a file, a directory, 'hf' or 'hf:ORG/NAME[:CONFIG][@SPLIT]'",
    )
    parser.add_argument("--all-from-hub", action="store_true", help="every source from its default hub dataset")
    parser.add_argument(
        "--template",
        default=DEFAULT_TEMPLATE,
        metavar="|".join(TEMPLATES),
        help=f"the prompt each problem is wrapped in (default: {DEFAULT_TEMPLATE}, the SFPO authors' own)",
    )
    parser.add_argument("--list-sources", action="store_true", help="print the known sources and exit")
    args = parser.parse_args(argv)
    if args.list_sources:
        print(format_sources())
        return 0
    if args.out_dir is None:
        parser.error("--out-dir is required")
    try:
        manifest = prepare(parse_inputs(args.input, args.all_from_hub), args.out_dir.expanduser(), args.template)
    except DataPreparationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(manifest))
    return 0
