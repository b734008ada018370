"""Evaluation results as a machine-readable summary, a printed table and a CSV, next to the
paper's Table 1 numbers when the model is one of the paper's."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sfpo_verl.atomic_file import atomic_file
from sfpo_verl.paper.eval.metrics import BenchmarkScore
from sfpo_verl.paper.numbers import BENCHMARK_LABELS, BENCHMARKS, TABLE1, canonical_benchmark, find_paper_model


def summarize(scores: list[BenchmarkScore], model: str | None, origin: str, step: int | None) -> dict:
    """JSON-ready summary: per-benchmark scores (paper's six first), the six-benchmark average
    (None unless all six are present) and, for a paper model, the paper's GRPO and SFPO numbers."""
    paper_model = find_paper_model(model)
    paper = TABLE1.get(paper_model) if paper_model else None
    order = {name: index for index, name in enumerate(BENCHMARKS)}

    def sort_key(score: BenchmarkScore) -> tuple:
        return (order.get(canonical_benchmark(score.benchmark), len(order)), score.benchmark)

    rows, six = [], {}
    for score in sorted(scores, key=sort_key):
        benchmark = canonical_benchmark(score.benchmark)
        row = {
            "data_source": score.benchmark,
            "benchmark": BENCHMARK_LABELS.get(benchmark, score.benchmark),
            "prompts": score.prompts,
            "k": score.samples_per_prompt,
            "avg_at_k": score.avg_at_k,
            **{f"pass_at_{k}": value for k, value in score.pass_at.items()},
        }
        if paper and benchmark:
            row["paper_grpo"] = paper.grpo[benchmark]
            row["paper_sfpo"] = paper.sfpo[benchmark]
        if benchmark:
            six.setdefault(benchmark, score.avg_at_k)
        rows.append(row)

    summary = {
        "origin": origin,
        "step": step,
        "model": paper_model or model,
        "benchmarks": rows,
        "six_benchmark_average": sum(six.values()) / len(six) if len(six) == len(BENCHMARKS) else None,
        "missing_benchmarks": [BENCHMARK_LABELS[b] for b in BENCHMARKS if b not in six],
    }
    if paper:
        summary["paper"] = {
            "base_average": paper.base_average,
            "grpo_average": paper.grpo_average,
            "sfpo_average": paper.sfpo_average,
        }
    return summary


def format_table(summary: dict) -> str:
    """The summary as an aligned text table (accuracies in percent)."""
    has_paper = "paper" in summary
    header = f"{'benchmark':<12}{'data_source':<18}{'prompts':>8}{'k':>4}{'avg@k':>9}{'pass@k':>9}"
    if has_paper:
        header += f"{'paper GRPO':>12}{'paper SFPO':>12}"
    title = f"{summary['origin']}" + (f" (step {summary['step']})" if summary["step"] is not None else "")
    if summary["model"]:
        title += f" | model: {summary['model']}"
    lines = [title, header, "-" * len(header)]
    for row in summary["benchmarks"]:
        k = row["k"]
        line = (
            f"{row['benchmark']:<12}{row['data_source']:<18}{row['prompts']:>8}{k:>4}"
            f"{row['avg_at_k']:>9.2f}{row[f'pass_at_{k}']:>9.2f}"
        )
        if "paper_grpo" in row:
            line += f"{row['paper_grpo']:>12.2f}{row['paper_sfpo']:>12.2f}"
        lines.append(line)
    lines.append("-" * len(header))
    average = summary["six_benchmark_average"]
    if average is None:
        lines.append(f"six-benchmark average: n/a (missing {', '.join(summary['missing_benchmarks'])})")
    else:
        line = f"{'Average (6)':<42}{average:>9.2f}{'':>9}"
        if has_paper:
            line += f"{summary['paper']['grpo_average']:>12.2f}{summary['paper']['sfpo_average']:>12.2f}"
        lines.append(line)
    return "\n".join(lines)


def format_steps(summaries: list[dict]) -> str:
    """One line per evaluated step: the six-benchmark average, and which step is best."""
    best = best_summary(summaries)
    lines = [f"{'step':>6}{'six-benchmark avg@k':>22}"]
    for summary in summaries:
        average = summary["six_benchmark_average"]
        mark = "  <- best" if summary is best else ""
        lines.append(f"{str(summary['step']):>6}{'n/a' if average is None else f'{average:.2f}':>22}{mark}")
    return "\n".join(lines)


def best_summary(summaries: list[dict]) -> dict:
    """The step the paper would report: best six-benchmark average (the last step if none has one)."""
    scored = [s for s in summaries if s["six_benchmark_average"] is not None]
    return max(scored, key=lambda s: s["six_benchmark_average"]) if scored else summaries[-1]


def write_json(summaries: list[dict], path: Path) -> None:
    """Every evaluated file/step and which step is best."""
    with atomic_file(path, encoding="utf-8") as out:
        json.dump({"best_step": best_summary(summaries)["step"], "results": summaries}, out, indent=2)
        out.write("\n")


def write_csv(summaries: list[dict], path: Path) -> None:
    """One row per (file/step, benchmark), plus one six-benchmark average row per file/step."""
    rows = []
    for summary in summaries:
        context = {"origin": summary["origin"], "step": summary["step"], "model": summary["model"]}
        rows += [{**context, **row} for row in summary["benchmarks"]]
        average = {**context, "benchmark": "Average (6)", "avg_at_k": summary["six_benchmark_average"]}
        if "paper" in summary:
            average.update(paper_grpo=summary["paper"]["grpo_average"], paper_sfpo=summary["paper"]["sfpo_average"])
        rows.append(average)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_file(path, newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
