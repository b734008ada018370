"""Benchmark evaluation on fixtures: verl validation dumps (tests/fixtures/val_generations, two
steps) and an engine-agnostic table (tests/fixtures/engine_generations.jsonl).

Expected numbers, worked out by hand from the fixtures:
- step 5: MATH500 2/4, AIME24 1/4, AIME25 0/4, AMC 2/4, Minerva 1/4, Olympiad 2/4 -> average 33.33
- step 10: MATH500 two prompts, 4/4 and 2/4 (75.00); AIME24 2/4, AIME25 1/4, AMC 2/4,
  Minerva 2/4, Olympiad 3/4 -> average (75+50+25+50+50+75)/6 = 54.17, the best step
"""

import contextlib
import csv
import errno
import io
import json
import os
import subprocess
import sys
import tempfile
from itertools import combinations
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfpo_verl.paper.eval.cli import main
from sfpo_verl.paper.eval.metrics import pass_at_k, reported_ks
from sfpo_verl.paper.numbers import EFFICIENCY, TABLE1, canonical_benchmark, find_paper_model

FIXTURES = Path(__file__).parent / "fixtures"
DUMPS = FIXTURES / "val_generations"


def _brute_force_pass_at_k(n, c, k):
    outcomes = [True] * c + [False] * (n - c)
    draws = list(combinations(range(n), k))
    return sum(any(outcomes[i] for i in draw) for draw in draws) / len(draws)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 0, 1), (4, 1, 1), (4, 2, 2), (4, 3, 2), (8, 3, 4), (8, 8, 8), (5, 1, 5)])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(_brute_force_pass_at_k(n, c, k))


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="n=4, c=5"):
        pass_at_k(4, 5, 1)
    assert reported_ks(4) == [1, 2, 4] and reported_ks(6) == [1, 2, 4, 6] and reported_ks(1) == [1]


def _run(tmp_path, *args):
    out = tmp_path / "result.json"
    assert main([*map(str, args), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def _by_source(summary):
    return {row["data_source"]: row for row in summary["benchmarks"]}


def test_dump_directory_scores_every_step_and_picks_the_best(tmp_path, capsys):
    result = _run(tmp_path, DUMPS, "--model", "/models/Qwen3-4B-Base/", "--workers", "2")
    step5, step10 = result["results"]
    assert (step5["step"], step10["step"], result["best_step"]) == (5, 10, 10)
    assert step5["six_benchmark_average"] == pytest.approx(200 / 6)
    assert step10["six_benchmark_average"] == pytest.approx(325 / 6)

    math500 = _by_source(step10)["math500"]
    assert (math500["prompts"], math500["k"], math500["avg_at_k"]) == (2, 4, pytest.approx(75.0))
    # per prompt pass@2: 1 (4 of 4 correct) and 1 - C(2,2)/C(4,2) = 5/6 (2 of 4)
    assert math500["pass_at_2"] == pytest.approx(100 * (1 + 5 / 6) / 2)
    assert math500["pass_at_1"] == pytest.approx(math500["avg_at_k"])
    assert _by_source(step5)["aime25"]["pass_at_4"] == 0.0

    # the paper's Table 1 row for the model, beside ours
    assert step10["model"] == "Qwen3-4B-Base"
    assert (math500["paper_grpo"], math500["paper_sfpo"]) == (83.35, 84.30)
    assert step10["paper"] == {"base_average": 17.62, "grpo_average": 43.99, "sfpo_average": 45.59}

    printed = capsys.readouterr().out
    assert "54.17  <- best" in printed and "43.99" in printed and "45.59" in printed


def test_regrading_agrees_with_the_scores_stored_by_the_run(tmp_path):
    regraded = _run(tmp_path, DUMPS, "--workers", "2")
    stored = _run(tmp_path, DUMPS, "--stored-scores")
    assert regraded["results"] == stored["results"]


def test_single_step_and_csv(tmp_path):
    table = tmp_path / "scores.csv"
    result = _run(tmp_path, DUMPS, "--stored-scores", "--step", "5", "--csv", table)
    assert [summary["step"] for summary in result["results"]] == [5]
    rows = list(csv.DictReader(table.open()))
    assert [row["benchmark"] for row in rows] == [
        "MATH500",
        "AIME24",
        "AIME25",
        "AMC",
        "Minerva",
        "Olympiad",
        "Average (6)",
    ]
    assert float(rows[-1]["avg_at_k"]) == pytest.approx(200 / 6)
    assert main([str(DUMPS), "--stored-scores", "--step", "7"]) == 2


def test_engine_table_with_response_lists(tmp_path, capsys):
    (summary,) = _run(tmp_path, FIXTURES / "engine_generations.jsonl", "--workers", "1")["results"]
    rows = _by_source(summary)
    # AIME24: prompts with 2/3 and 1/3 correct; MATH500: 2/3 ((3, pi) is wrong)
    assert rows["aime24"]["avg_at_k"] == pytest.approx(50.0)
    assert rows["aime24"]["pass_at_2"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert rows["math500"]["avg_at_k"] == pytest.approx(200 / 3)
    assert summary["six_benchmark_average"] is None
    assert summary["missing_benchmarks"] == ["AIME25", "AMC", "Minerva", "Olympiad"]
    assert "six-benchmark average: n/a" in capsys.readouterr().out


def test_rows_without_ground_truth_are_named(tmp_path, capsys):
    rows = [json.loads(line) for line in (DUMPS / "5.jsonl").read_text().splitlines()]
    rows[1]["gts"] = None
    del rows[3]["gts"]
    bad = tmp_path / "5.jsonl"
    bad.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main([str(bad)]) == 2
    error = capsys.readouterr().err
    assert "2 rows have no ground truth" in error and "rows 1, 3 (0-based)" in error


def test_rows_without_data_source_need_the_flag(tmp_path, capsys):
    table = tmp_path / "outputs.jsonl"
    table.write_text(json.dumps({"prompt_id": 1, "response": "\\boxed{70}", "answer": "70"}) + "\n")
    assert main([str(table)]) == 2
    assert "no data source (or pass --data-source)" in capsys.readouterr().err
    (summary,) = _run(tmp_path, table, "--data-source", "aime25")["results"]
    assert _by_source(summary)["aime25"]["avg_at_k"] == 100.0


def test_paper_numbers_are_consistent():
    # Transcription check: each reported average is the mean of its six benchmarks, each
    # efficiency ratio the quotient of its two columns (to the paper's rounding).
    for result in TABLE1.values():
        assert sum(result.grpo.values()) / 6 == pytest.approx(result.grpo_average, abs=0.01), result.model
        assert sum(result.sfpo.values()) / 6 == pytest.approx(result.sfpo_average, abs=0.01), result.model
    for model, row in EFFICIENCY.items():
        assert row.grpo_rollouts_1e4 / row.sfpo_rollouts_1e4 == pytest.approx(row.rollout_ratio, abs=0.03), model
        assert row.grpo_hours / row.sfpo_hours == pytest.approx(row.hours_ratio, abs=0.03), model


def test_model_and_benchmark_names_are_recognised():
    assert find_paper_model("/models/deepseek-r1-distill-qwen-7b/") == "DeepSeek-R1-Distill-Qwen-7B"
    assert find_paper_model("Qwen/Qwen2.5-Math-1.5B") == "Qwen2.5-Math-1.5B"
    assert find_paper_model("Qwen2.5-Math-1.5B-Instruct") is None
    assert [canonical_benchmark(n) for n in ("HuggingFaceH4/MATH-500", "AIME_2024", "amc", "gsm8k")] == [
        "math500",
        "aime24",
        "amc23",
        None,
    ]


# --- Bad input and failed writes: one line naming the file, the line, rows or column, and what
# was expected; no output file left behind, not even a partial one.

STEP5 = DUMPS / "5.jsonl"


def _dump_rows() -> list[dict]:
    return [json.loads(line) for line in STEP5.read_text().splitlines()]


def _jsonl(rows: list) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _with(changes: dict, rows_changed=(1, 3)) -> bytes:
    rows = _dump_rows()
    for index in rows_changed:
        rows[index].update(changes)
    return _jsonl(rows)


def _parquet_bytes(rows: list[dict]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue().to_pybytes()


NOT_A_RESPONSE = "2 rows have a response that is not UTF-8 text or a list of texts: rows 1, 3"

# case -> (the file's suffix, its content, what the error line says after the file's name)
BAD_GENERATIONS = {
    "truncated parquet": ("parquet", _parquet_bytes(_dump_rows())[:300], "not a readable parquet file"),
    "empty jsonl": ("jsonl", b"", "holds no rows; expected at least one record"),
    "truncated jsonl": ("jsonl", STEP5.read_bytes()[:-50], "line 24 is not valid JSON"),
    "jsonl not UTF-8": ("jsonl", STEP5.read_bytes() + b'{"output": "\xff"}\n', "line 25 is not UTF-8 text (byte 0xff"),
    "jsonl line not an object": (
        "jsonl",
        STEP5.read_bytes() + b"[1, 2]\n",
        "line 25 is a JSON array; expected a JSON object",
    ),
    "misnamed response column": (
        "jsonl",
        _jsonl([{**{k: v for k, v in row.items() if k != "output"}, "text": "x"} for row in _dump_rows()]),
        "24 rows have no response (looked for output, response, responses): rows 0, 1, 2",
    ),
    "response of the wrong type": ("jsonl", _with({"output": {"text": "\\boxed{1}"}}), NOT_A_RESPONSE),
    "responses with a number": ("jsonl", _with({"output": ["\\boxed{1}", 7]}), NOT_A_RESPONSE),
    "lone surrogate": ("jsonl", _with({"output": "\\boxed{\ud800}"}), NOT_A_RESPONSE),
    "ground truth of the wrong type": (
        "jsonl",
        _with({"gts": {"answer": 1}}),
        "2 rows have a ground truth that is not text, a number or a list of them: rows 1, 3",
    ),
    "data source of the wrong type": (
        "jsonl",
        _with({"source": 5}),
        "2 rows have a data source that is not UTF-8 text: rows 1, 3",
    ),
}


@pytest.mark.parametrize("case", BAD_GENERATIONS)
def test_bad_generations_stop_with_one_line_and_write_nothing(tmp_path, capsys, case):
    suffix, content, message = BAD_GENERATIONS[case]
    bad = tmp_path / f"5.{suffix}"
    bad.write_bytes(content)
    outputs = [tmp_path / "out.json", tmp_path / "out.csv"]
    assert main([str(bad), "--stored-scores", "--json", str(outputs[0]), "--csv", str(outputs[1])]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"error: {bad}: ") and message in line, line
    assert sorted(tmp_path.iterdir()) == [bad]


def test_the_command_exits_non_zero_without_a_traceback(tmp_path):
    bad = tmp_path / "5.jsonl"
    bad.write_bytes(b"\xff\n")
    result = subprocess.run([sys.executable, "-m", "sfpo_verl.paper.eval", str(bad), "--stored-scores"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == f"error: {bad}: line 1 is not UTF-8 text (byte 0xff at column 1); expected UTF-8\n"


def test_an_output_that_cannot_be_written_is_named(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "folder" / "out.json"
    assert main([str(DUMPS), "--stored-scores", "--json", str(missing)]) == 2
    assert capsys.readouterr().err == f"error: cannot write {missing}: No such file or directory\n"
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("output", ["json", "csv"])
def test_a_failed_write_leaves_no_partial_file_and_keeps_the_earlier_one(tmp_path, capsys, monkeypatch, output):
    target = tmp_path / f"out.{output}"
    assert main([str(DUMPS), "--stored-scores", f"--{output}", str(target)]) == 0
    earlier = target.read_bytes()

    def disk_fills(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_open = open

    def open_that_fills(file, mode="r", *args, **kwargs):  # the output's writes fail half-way
        handle = real_open(file, mode, *args, **kwargs)
        if str(file).startswith(str(target)) and "w" in mode:
            handle.write("half a file")
            handle.flush()
            handle.write = disk_fills
        return handle

    monkeypatch.setattr("builtins.open", open_that_fills)
    capsys.readouterr()
    assert main([str(DUMPS), "--stored-scores", "--step", "5", f"--{output}", str(target)]) == 2
    assert capsys.readouterr().err == f"error: cannot write {target}: No space left on device\n"
    assert target.read_bytes() == earlier
    assert sorted(tmp_path.iterdir()) == [target]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(exclude_categories=())),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
dump_rows = st.lists(
    st.fixed_dictionaries(
        {"output": json_values, "gts": json_values, "source": json_values | st.sampled_from(["aime24", "amc23"])},
        optional={"acc": st.sampled_from([0.0, 1.0]), "uid": json_values, "step": json_values},
    ),
    max_size=5,
)


@given(rows=dump_rows)
def test_any_dump_gives_a_table_or_one_line(rows):
    # Anything in a dump's rows: scores and a JSON report, or one clean line and no report.
    with tempfile.TemporaryDirectory() as folder:
        dump, report = Path(folder, "7.jsonl"), Path(folder, "report.json")
        dump.write_bytes(_jsonl(rows))
        errors = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
            code = main([str(dump), "--stored-scores", "--json", str(report)])
        if code == 0:
            assert json.loads(report.read_text())["results"]
        else:
            assert code == 2 and not report.exists()
            assert errors.getvalue().startswith(f"error: {dump}") and errors.getvalue().count("\n") == 1
        assert sorted(os.listdir(folder)) == sorted(["7.jsonl"] + (["report.json"] if code == 0 else []))
