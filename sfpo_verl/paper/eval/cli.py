"""python -m sfpo_verl.paper.eval: score generations per benchmark (avg@k, pass@k), average the
paper's six benchmarks, and set them beside the paper's GRPO and SFPO numbers.

    python -m sfpo_verl.paper.eval RUN_DIR/val_generations --model Qwen3-4B-Base --stored-scores
    python -m sfpo_verl.paper.eval RUN_DIR/val_generations/400.jsonl --model /models/Qwen3-4B-Base --json out.json
    python -m sfpo_verl.paper.eval my_engine_outputs.parquet --csv out.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sfpo_verl.paper.eval.generations import GenerationsError, GenerationSet, load_generation_sets
from sfpo_verl.paper.eval.metrics import BenchmarkScore, score_benchmark
from sfpo_verl.paper.eval.report import best_summary, format_steps, format_table, summarize, write_csv, write_json
from sfpo_verl.paper.reward.math_reward import DEFAULT_TIMEOUT_S, grade_response
from sfpo_verl.paper.reward.verifier_pool import VerifierPool


def grade(generations: GenerationSet, use_stored: bool, pool: VerifierPool | None, timeout_s: float) -> list[bool]:
    """Each generation's correctness: re-graded with the math reward, or the run's stored `acc`."""
    items = generations.generations
    if use_stored:
        missing = sum(g.stored_correct is None for g in items)
        if missing:
            raise GenerationsError(
                f"{generations.origin}: {missing} of {len(items)} generations have no stored 'acc'; "
                "run without --stored-scores to grade them"
            )
        return [g.stored_correct > 0.5 for g in items]  # acc is 1.0 or 0.0
    with ThreadPoolExecutor(max_workers=pool.max_workers) as threads:
        grades = threads.map(
            lambda g: grade_response(g.response, g.ground_truth, pool=pool, timeout_s=timeout_s), items
        )
        return [g.correct for g in grades]


def score_set(generations: GenerationSet, correct: list[bool]) -> list[BenchmarkScore]:
    by_benchmark: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for generation, is_correct in zip(generations.generations, correct, strict=True):
        by_benchmark[generation.data_source][generation.prompt_id].append(is_correct)
    return [score_benchmark(name, prompts) for name, prompts in by_benchmark.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sfpo_verl.paper.eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("generations", type=Path, help="a verl validation dump (file or directory) or any table")
    parser.add_argument("--model", help="model name or path; one of the paper's five adds its Table 1 numbers")
    parser.add_argument("--data-source", help="benchmark name for rows that carry none")
    parser.add_argument("--step", type=int, help="of a dump directory, evaluate only this step")
    parser.add_argument(
        "--stored-scores",
        action="store_true",
        help="use the `acc` the run's reward stored in the dump instead of re-grading (fast for many steps)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="grading processes")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per response")
    parser.add_argument("--json", type=Path, help="write every evaluated file/step here")
    parser.add_argument("--csv", type=Path, help="write a per-benchmark CSV here")
    args = parser.parse_args(argv)

    try:
        sets = load_generation_sets(args.generations, args.data_source)
        if args.step is not None:
            sets = [s for s in sets if s.step == args.step]
            if not sets:
                raise GenerationsError(f"{args.generations}: no generations for step {args.step}")
        pool = None if args.stored_scores else VerifierPool(max_workers=max(1, args.workers))
        try:
            summaries = [
                summarize(score_set(s, grade(s, args.stored_scores, pool, args.timeout)), args.model, s.origin, s.step)
                for s in sets
            ]
        finally:
            if pool is not None:
                pool.close()
    except GenerationsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if len(summaries) > 1:
        print(format_steps(summaries) + "\n")
    print(format_table(best_summary(summaries)))
    for path, write in ((args.json, write_json), (args.csv, write_csv)):
        if path is None:
            continue
        try:
            write(summaries, path)
        except OSError as error:  # written atomically: nothing partial is left at `path`
            print(f"error: cannot write {path}: {error.strerror or error}", file=sys.stderr)
            return 2
    return 0
