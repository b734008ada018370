"""Data preparation on hand-written fixtures in each source's real schema (tests/fixtures/data)."""

import contextlib
import errno
import io
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from sfpo_verl.paper.data.prepare import DataPreparationError, main, prepare
from sfpo_verl.paper.data.prompt import DEFAULT_TEMPLATE, build_prompt
from sfpo_verl.paper.data.records import read_records
from sfpo_verl.paper.data.sources import EVAL_SOURCES, SOURCES, TRAIN_SOURCES
from sfpo_verl.paper.numbers import BENCHMARKS

FIXTURES = Path(__file__).parent / "fixtures" / "data"

# The SFPO authors' prompt, copied by hand from their released runs (not from the code under test).
PAPER_PROMPT = (
    "Please solve the following math problem: {problem}. The assistant first thinks about the reasoning "
    "process step by step and then provides the user with the answer. Return the final answer in "
    "\\boxed{{}} tags, for example \\boxed{{1}}. Let's solve this step by step. "
)
VERL_PROMPT = "{problem} Let's think step by step and output the final answer within \\boxed{{}}."


def _as_parquet(jsonl: Path, out: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(read_records(jsonl)), out)
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prepared")
    # DAPO-Math-17k ships as parquet: read it through the parquet path.
    dapo = _as_parquet(FIXTURES / "dapo_math_17k.jsonl", tmp / "dapo_math_17k.parquet")
    inputs = {"dapo_math_17k": str(dapo), "math_train": str(FIXTURES / "math_lighteval_train.jsonl")}
    inputs.update({name: str(FIXTURES / f"{name}.jsonl") for name in EVAL_SOURCES})
    out = tmp / "out"
    return prepare(inputs, out), out


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_the_six_evaluation_sources_are_the_papers_benchmarks():
    assert EVAL_SOURCES == BENCHMARKS
    assert TRAIN_SOURCES == ("dapo_math_17k", "math_train")


def test_counts_deduplication_and_overlap(prepared):
    manifest, _ = prepared
    sources = manifest["sources"]
    # DAPO fixture: one problem twice verbatim and once with different spacing, plus another problem
    assert (sources["dapo_math_17k"]["read"], sources["dapo_math_17k"]["duplicates"]) == (4, 2)
    assert sources["dapo_math_17k"]["written"] == 2
    # MATH fixture: one solution without a box is skipped, and named
    assert (sources["math_train"]["read"], sources["math_train"]["skipped"], sources["math_train"]["written"]) == (
        3,
        1,
        2,
    )
    assert "row 2" in sources["math_train"]["skipped_rows"][0]
    # the polar-coordinates problem is in both the MATH training fixture and the MATH-500 fixture
    assert sources["math500"]["also_in_training_set"] == 1
    assert sources["aime24"]["also_in_training_set"] == 0
    assert {name: sources[name]["written"] for name in EVAL_SOURCES} == {
        "math500": 3,
        "aime24": 2,
        "aime25": 2,
        "amc23": 2,
        "minerva": 2,
        "olympiadbench": 2,
    }


def test_rows_are_in_verl_schema_with_stable_names(prepared):
    manifest, out = prepared
    assert set(manifest["files"]) == {"train", *EVAL_SOURCES}
    train = _rows(out / "train.parquet")
    assert [row["data_source"] for row in train] == ["dapo_math_17k"] * 2 + ["math_train"] * 2
    for row in train:
        assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
        (message,) = row["prompt"]
        assert message["role"] == "user"
        assert message["content"] == PAPER_PROMPT.format(problem=row["extra_info"]["problem"])
        assert row["extra_info"]["split"] == "train"
        assert row["extra_info"]["template"] == "paper"
    # DAPO's "Answer:" wrapper is gone; the answer comes from reward_model.ground_truth
    assert train[0]["extra_info"]["problem"].startswith("In triangle $ABC$")
    assert "Remember to put your answer" not in train[0]["prompt"][0]["content"]
    assert train[0]["reward_model"] == {"style": "rule", "ground_truth": "34"}
    # MATH's answer is the last box of the solution
    assert train[2]["reward_model"]["ground_truth"] == "0"
    assert train[3]["reward_model"]["ground_truth"] == "\\left( 3, \\frac{\\pi}{2} \\right)"

    truths = {
        name: [r["reward_model"]["ground_truth"] for r in _rows(out / f"{name}.parquet")] for name in EVAL_SOURCES
    }
    assert truths["aime24"] == ["204", "113"]
    assert truths["amc23"] == ["27", "36"]  # float column, written as integers
    assert truths["olympiadbench"] == ["2", "2, 3"]  # final_answer lists, $ stripped
    assert truths["minerva"] == ["1.6", "4.5e33"]
    assert all(r["data_source"] == "aime25" for r in _rows(out / "aime25.parquet"))
    assert all(r["extra_info"]["template"] == "paper" for r in _rows(out / "aime25.parquet"))
    written = json.loads((out / "manifest.json").read_text())
    assert (written["template"], written["template_text"]) == ("paper", PAPER_PROMPT)


def test_verl_dataset_reads_the_prepared_files(prepared, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    _, out = prepared
    config = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp_path)})
    dataset = RLHFDataset([str(out / "train.parquet"), str(out / "aime24.parquet")], tokenizer=None, config=config)
    assert len(dataset) == 6
    row = dataset[4]
    assert row["data_source"] == "aime24"
    assert row["reward_model"]["ground_truth"] == "204"
    assert row["raw_prompt"][0]["content"].endswith("Let's solve this step by step. ")


def test_the_paper_template_is_the_default_and_word_for_word():
    assert DEFAULT_TEMPLATE == "paper"
    problem = "What is $1+1$?"
    (message,) = build_prompt(problem, "paper")
    assert message == {"role": "user", "content": PAPER_PROMPT.format(problem=problem)}
    assert message["content"].endswith("step by step. ")  # the trailing space is the authors'
    (message,) = build_prompt(problem, "verl")
    assert message == {"role": "user", "content": VERL_PROMPT.format(problem=problem)}


def test_verl_template_from_the_command_line(tmp_path, capsys):
    aime = FIXTURES / "aime24.jsonl"
    assert main(["--out-dir", str(tmp_path), "--input", f"aime24={aime}", "--template", "verl"]) == 0
    assert "prompt template: verl" in capsys.readouterr().out
    rows = _rows(tmp_path / "aime24.parquet")
    for row in rows:
        assert row["prompt"][0]["content"] == VERL_PROMPT.format(problem=row["extra_info"]["problem"])
        assert row["extra_info"]["template"] == "verl"
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert (written["template"], written["template_text"]) == ("verl", VERL_PROMPT)


def test_every_dapo_release_gives_the_same_problems(tmp_path):
    releases = {
        "original": "dapo_math_17k.jsonl",  # BytedTsinghua-SIA/DAPO-Math-17k: wrapped chat prompt, ground_truth
        "cleaned": "dapo_math_17k_cleaned.jsonl",  # haizhongzheng/DAPO-Math-17K-cleaned: prompt, target
        "processed": "dapo_math_17k_processed.jsonl",  # open-r1/DAPO-Math-17k-Processed: prompt, solution
    }
    manifests = {
        release: prepare({"dapo_math_17k": str(FIXTURES / file)}, tmp_path / release)
        for release, file in releases.items()
    }
    assert {release: m["sources"]["dapo_math_17k"]["written"] for release, m in manifests.items()} == dict.fromkeys(
        releases, 2
    )
    original = _rows(tmp_path / "original" / "train.parquet")
    assert [row["reward_model"]["ground_truth"] for row in original] == ["34", "7"]
    assert _rows(tmp_path / "cleaned" / "train.parquet") == original
    assert _rows(tmp_path / "processed" / "train.parquet") == original


def test_json_file_and_directory_inputs(tmp_path):
    records = read_records(FIXTURES / "aime25.jsonl")
    (tmp_path / "aime25.json").write_text(json.dumps({"data": records}))
    snapshot = tmp_path / "snapshot" / "data"
    snapshot.mkdir(parents=True)
    _as_parquet(FIXTURES / "minerva.jsonl", snapshot / "test-00000-of-00001.parquet")
    manifest = prepare(
        {"aime25": str(tmp_path / "aime25.json"), "minerva": str(tmp_path / "snapshot")}, tmp_path / "out"
    )
    assert manifest["sources"]["aime25"]["written"] == 2
    assert manifest["sources"]["minerva"]["origins"] == [str(snapshot / "test-00000-of-00001.parquet")]


def test_missing_field_names_the_field_and_the_row(tmp_path, capsys):
    rows = read_records(FIXTURES / "math500.jsonl")
    del rows[1]["answer"]
    bad = tmp_path / "math500.jsonl"
    bad.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataPreparationError, match=r"math500: .*math500\.jsonl: row 1: missing field 'answer'"):
        prepare({"math500": str(bad)}, tmp_path / "out")
    assert main(["--out-dir", str(tmp_path / "out"), "--input", f"math500={bad}"]) == 2
    assert "row 1: missing field 'answer'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "aime2024=x.jsonl"], "unknown source(s) aime2024"),
        (["--input", "aime24"], "expected NAME=LOCATION"),
        (["--input", "aime24=/no/such/file.jsonl"], "aime24: /no/such/file.jsonl does not exist"),
        ([], "nothing to prepare"),
        (["--input", "aime24=x.jsonl", "--template", "papr"], "unknown prompt template 'papr'; known: paper, verl"),
    ],
)
def test_bad_command_lines_are_explained(tmp_path, capsys, args, message):
    assert main(["--out-dir", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_hub_locations_reach_datasets_load_dataset(tmp_path, monkeypatch):
    calls = []

    def load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        return read_records(FIXTURES / ("olympiadbench.jsonl" if config else "aime24.jsonl"))

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    manifest = prepare(
        {"olympiadbench": "hf", "aime24": "hf:Maxwell-Jia/AIME_2024@train"},
        tmp_path,
    )
    assert calls == [  # in the order of the paper's table
        ("Maxwell-Jia/AIME_2024", None, "train"),
        ("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train"),
    ]
    assert manifest["sources"]["aime24"]["origins"] == ["hf:Maxwell-Jia/AIME_2024@train"]
    assert manifest["sources"]["olympiadbench"]["written"] == 2


def test_training_sources_default_to_the_authors_hub_datasets(tmp_path, monkeypatch):
    fixtures = {
        "haizhongzheng/DAPO-Math-17K-cleaned": "dapo_math_17k_cleaned.jsonl",
        "xDAN2099/lighteval-MATH": "math_lighteval_train.jsonl",
        "open-r1/DAPO-Math-17k-Processed": "dapo_math_17k_processed.jsonl",
    }
    calls = []

    def load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        return read_records(FIXTURES / fixtures[hub_id])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    manifest = prepare({"dapo_math_17k": "hf", "math_train": "hf"}, tmp_path / "authors")
    assert calls == [("haizhongzheng/DAPO-Math-17K-cleaned", None, "train"), ("xDAN2099/lighteval-MATH", None, "train")]
    assert {name: manifest["sources"][name]["written"] for name in TRAIN_SOURCES} == {
        "dapo_math_17k": 2,
        "math_train": 2,
    }
    # another mirror, named on the command line, still reads
    calls.clear()
    mirror = "dapo_math_17k=hf:open-r1/DAPO-Math-17k-Processed:en@train"
    assert main(["--out-dir", str(tmp_path / "mirror"), "--input", mirror]) == 0
    assert calls == [("open-r1/DAPO-Math-17k-Processed", "en", "train")]
    assert _rows(tmp_path / "mirror" / "train.parquet") == _rows(tmp_path / "authors" / "train.parquet")[:2]


def test_cli_prints_the_report(tmp_path, capsys):
    assert main(["--out-dir", str(tmp_path), "--input", f"aime24={FIXTURES / 'aime24.jsonl'}"]) == 0
    printed = capsys.readouterr().out
    assert "aime24" in printed and str(tmp_path / "aime24.parquet") in printed
    assert main(["--list-sources"]) == 0
    listing = capsys.readouterr().out
    assert all(f"{name} " in listing and SOURCES[name].hub_id in listing for name in SOURCES)
    assert "also reads hf:open-r1/DAPO-Math-17k-Processed:en@train" in listing


# --- Bad input: one line naming the file, the line, row or column, and what was expected; no
# output file written, not even a partial one.

AIME24 = FIXTURES / "aime24.jsonl"


def _jsonl(rows: list) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _aime_rows() -> list[dict]:
    return read_records(AIME24)


def _aime_with(index: int, **changes) -> bytes:
    rows = _aime_rows()
    rows[index].update(changes)
    return _jsonl(rows)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _not_utf8_string_column() -> pa.Table:
    """A parquet string column whose second value is not UTF-8 (as a buggy writer leaves it)."""
    text, offsets = b"ok\xff\xfe", np.array([0, 2, 4], dtype=np.int32).tobytes()
    column = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(offsets), pa.py_buffer(text)])
    return pa.table({"problem": column, "answer": ["1", "2"]})


GOOD_PARQUET = _parquet_bytes(pa.Table.from_pylist(read_records(AIME24)))
NO_ROWS = "holds no rows; expected at least one record"
BAD_ANSWER = "expected text, a finite number or a list of them"

# case -> (the file's suffix, its content, what the error line says after the file's name)
BAD_INPUTS = {
    "truncated parquet": ("parquet", GOOD_PARQUET[: len(GOOD_PARQUET) // 2], "not a readable parquet file"),
    "empty parquet": ("parquet", b"", "is an empty file (0 bytes); expected a parquet file"),
    "parquet without rows": ("parquet", _parquet_bytes(pa.table({"problem": pa.array([], pa.string())})), NO_ROWS),
    "parquet not UTF-8": (
        "parquet",
        _parquet_bytes(_not_utf8_string_column()),
        "column 'problem', row 1 is not UTF-8 text; expected UTF-8",
    ),
    "parquet binary column": (
        "parquet",
        _parquet_bytes(pa.table({"problem": [b"\xff"], "answer": ["1"]})),
        "row 0: field 'problem' is of type bytes; expected text",
    ),
    "empty jsonl": ("jsonl", b"", NO_ROWS),
    "blank jsonl": ("jsonl", b"\n \n", NO_ROWS),
    "truncated jsonl": ("jsonl", AIME24.read_bytes()[:-40], "line 2 is not valid JSON"),
    "jsonl not UTF-8": (
        "jsonl",
        AIME24.read_bytes() + b'{"problem": "caf\xe9", "answer": "1"}\n',
        "line 3 is not UTF-8 text (byte 0xe9 at column 17); expected UTF-8",
    ),
    "jsonl line not an object": (
        "jsonl",
        _jsonl([_aime_rows()[0], ["1", "2"]]),
        "line 2 is a JSON array; expected a JSON object (one record per line)",
    ),
    "jsonl number too long": (
        "jsonl",
        b'{"problem": "p", "answer": ' + b"9" * 5000 + b"}\n",
        "line 1 is not valid JSON: Exceeds the limit",
    ),
    "jsonl nested too deep": ("jsonl", b'{"problem": ' + b"[" * 100_000 + b"\n", "line 1 is not valid JSON"),
    "truncated json": ("json", json.dumps(_aime_rows()).encode()[:-30], "not valid JSON"),
    "json not UTF-8": ("json", b'[{"problem": "\xff"}]', "not UTF-8 text (byte 0xff at offset 14); expected UTF-8"),
    "json record not an object": (
        "json",
        b'[{"problem": "p", "answer": "1"}, 7]',
        "record 1 is a JSON number; expected a JSON object",
    ),
    "missing column": (
        "jsonl",
        _jsonl([{k: v for k, v in row.items() if k != "answer"} for row in _aime_rows()]),
        "row 0: missing field 'answer' or 'Answer'",
    ),
    "misnamed column": (
        "jsonl",
        _jsonl([{"Question": row["problem"], "answer": row["answer"]} for row in _aime_rows()]),
        "row 0: missing field 'problem' or 'Problem' (the row has fields ['Question', 'answer'])",
    ),
    "problem of the wrong type": (
        "jsonl",
        _aime_with(1, problem=17),
        "row 1: field 'problem' is of type int; expected text",
    ),
    "answer of the wrong type": (
        "jsonl",
        _aime_with(1, answer={"value": 3}),
        f"row 1: field 'answer' is of type dict; {BAD_ANSWER}",
    ),
    "answer not a number": ("jsonl", _aime_with(0, answer=float("nan")), f"field 'answer' is nan; {BAD_ANSWER}"),
    "answer of booleans": ("jsonl", _aime_with(0, answer=[True]), f"field 'answer' is of type bool; {BAD_ANSWER}"),
    "lone surrogate": (
        "jsonl",
        _aime_with(1, problem="x \ud800"),
        "row 1: field 'problem' holds a lone surrogate (not Unicode text); expected UTF-8 text",
    ),
}


def _assert_no_output(out: Path) -> None:
    assert not out.exists() or not list(out.iterdir()), sorted(out.iterdir())


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_stops_with_one_line_and_writes_nothing(tmp_path, capsys, case):
    suffix, content, message = BAD_INPUTS[case]
    bad = tmp_path / f"aime24.{suffix}"
    bad.write_bytes(content)
    good = FIXTURES / "dapo_math_17k.jsonl"  # read (and fine) before the bad file: still nothing written
    out = tmp_path / "out"
    assert main(["--out-dir", str(out), "--input", f"dapo_math_17k={good}", "--input", f"aime24={bad}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"error: aime24: {bad}: ") and message in line, line
    _assert_no_output(out)


def test_bad_dapo_prompt_type_is_named(tmp_path, capsys):
    bad = tmp_path / "dapo.jsonl"
    bad.write_bytes(_jsonl([{"prompt": 5, "target": "1"}]))
    assert main(["--out-dir", str(tmp_path / "out"), "--input", f"dapo_math_17k={bad}"]) == 2
    assert "row 0: field 'prompt' is of type int; expected text or a list of chat messages" in capsys.readouterr().err
    _assert_no_output(tmp_path / "out")


def test_the_command_exits_non_zero_without_a_traceback(tmp_path):
    bad = tmp_path / "aime24.parquet"
    bad.write_bytes(GOOD_PARQUET[:100])
    result = subprocess.run(
        [sys.executable, "-m", "sfpo_verl.paper.data", "--out-dir", str(tmp_path / "out"), "--input", f"aime24={bad}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: aime24: {bad}: not a readable parquet file")
    assert result.stderr.count("\n") == 1  # one line: no traceback
    _assert_no_output(tmp_path / "out")


def test_a_failed_write_leaves_no_partial_file_and_keeps_the_earlier_one(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(["--out-dir", str(out), "--input", f"aime24={AIME24}"]) == 0
    earlier = (out / "aime24.parquet").read_bytes()

    def disk_fills(table, where):
        where.write(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq, "write_table", disk_fills)
    capsys.readouterr()
    assert main(["--out-dir", str(out), "--input", f"aime24={AIME24}", "--template", "verl"]) == 2
    assert capsys.readouterr().err == f"error: cannot write {out / 'aime24.parquet'}: No space left on device\n"
    assert (out / "aime24.parquet").read_bytes() == earlier
    assert sorted(path.name for path in out.iterdir()) == ["aime24.parquet", "manifest.json"]


# Anything at all in an input file: a report or one clean line, never a traceback or a partial file.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(exclude_categories=())),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
records = st.lists(
    st.fixed_dictionaries({"problem": json_values, "answer": json_values})
    | st.dictionaries(st.sampled_from(["problem", "Problem", "answer", "Answer", "question", "x"]), json_values),
    max_size=4,
)


def _prepare_quietly(content: bytes, suffix: str) -> tuple[int, str, list[str]]:
    with tempfile.TemporaryDirectory() as folder:
        bad = Path(folder) / f"aime24.{suffix}"
        bad.write_bytes(content)
        errors = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
            code = main(["--out-dir", f"{folder}/out", "--input", f"aime24={bad}"])
        written = sorted(p.name for p in Path(folder, "out").iterdir()) if Path(folder, "out").exists() else []
    return code, errors.getvalue(), written


def _assert_report_or_one_line(code: int, errors: str, written: list[str]) -> None:
    if code == 0:
        assert written == ["aime24.parquet", "manifest.json"]
    else:
        assert code == 2 and written == []
        assert errors.startswith("error: aime24: ") and errors.count("\n") == 1, errors


@given(rows=records, suffix=st.sampled_from(["jsonl", "json", "parquet"]))
def test_any_records_give_a_report_or_one_line(rows, suffix):
    if suffix == "parquet":
        try:
            content = _parquet_bytes(pa.Table.from_pylist(rows))
        except (pa.ArrowException, UnicodeEncodeError, OverflowError):
            reject()  # rows parquet cannot hold at all
    else:
        content = _jsonl(rows) if suffix == "jsonl" else json.dumps(rows).encode()
    _assert_report_or_one_line(*_prepare_quietly(content, suffix))


@given(content=st.binary(max_size=200) | st.builds(lambda cut: GOOD_PARQUET[:cut], st.integers(0, len(GOOD_PARQUET))),
       suffix=st.sampled_from(["jsonl", "json", "parquet"]))
def test_any_bytes_give_a_report_or_one_line(content, suffix):
    _assert_report_or_one_line(*_prepare_quietly(content, suffix))
