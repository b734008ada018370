"""The SFPO paper's reported numbers (arXiv 2510.04072), as data, for side-by-side comparisons.

Source: Table 1 (per-benchmark pass@1 as avg@4, and the six-benchmark average), the
efficiency table (rollouts and hours to reach GRPO's best validation accuracy) and Table 3
(DAPO as the base algorithm), transcribed from the paper. Accuracies in percent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

# The six evaluation benchmarks, by the data_source names sfpo_verl.paper.data writes.
BENCHMARKS = ("math500", "aime24", "aime25", "amc23", "minerva", "olympiadbench")

BENCHMARK_LABELS = {
    "math500": "MATH500",
    "aime24": "AIME24",
    "aime25": "AIME25",
    "amc23": "AMC",
    "minerva": "Minerva",
    "olympiadbench": "Olympiad",
}

# Other spellings of the benchmark names found in datasets and dumps (compared lower-case,
# letters and digits only, after any "org/" prefix).
_BENCHMARK_ALIASES = {
    "math500": "math500",
    "aime24": "aime24",
    "aime2024": "aime24",
    "aime25": "aime25",
    "aime2025": "aime25",
    "amc23": "amc23",
    "amc2023": "amc23",
    "amc": "amc23",
    "minerva": "minerva",
    "minervamath": "minerva",
    "olympiadbench": "olympiadbench",
    "olympiad": "olympiadbench",
}


@dataclass(frozen=True)
class PaperResult:
    """One model's Table 1 row: base-model average, and per-benchmark GRPO and SFPO accuracies."""

    model: str
    base_average: float
    grpo: dict[str, float]
    sfpo: dict[str, float]
    grpo_average: float
    sfpo_average: float


@dataclass(frozen=True)
class PaperEfficiency:
    """Rollouts (x10^4) and hours each arm needed to reach GRPO's best validation accuracy."""

    grpo_rollouts_1e4: float
    sfpo_rollouts_1e4: float
    rollout_ratio: float
    grpo_hours: float
    sfpo_hours: float
    hours_ratio: float


def _scores(values: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(BENCHMARKS, values, strict=True))


TABLE1 = {
    result.model: result
    for result in (
        PaperResult(
            "Qwen2.5-Math-1.5B",
            25.73,
            _scores((77.15, 16.67, 11.67, 53.31, 31.89, 39.42)),
            _scores((78.35, 20.00, 15.00, 56.02, 32.07, 39.72)),
            38.35,
            40.19,
        ),
        PaperResult(
            "Qwen2.5-Math-7B",
            36.94,
            _scores((82.50, 34.20, 20.83, 71.08, 36.76, 44.80)),
            _scores((82.30, 35.00, 20.83, 74.49, 36.94, 45.59)),
            48.36,
            49.19,
        ),
        PaperResult(
            "DeepSeek-R1-Distill-Qwen-1.5B",
            37.27,
            _scores((84.65, 30.00, 23.33, 66.86, 31.71, 49.85)),
            _scores((86.10, 32.50, 30.83, 70.28, 32.81, 50.67)),
            47.73,
            50.53,
        ),
        PaperResult(
            "DeepSeek-R1-Distill-Qwen-7B",
            48.21,
            _scores((91.70, 50.00, 35.83, 80.42, 43.65, 61.24)),
            _scores((92.60, 54.17, 37.50, 83.75, 44.49, 65.73)),
            60.47,
            63.04,
        ),
        PaperResult(
            "Qwen3-4B-Base",
            17.62,
            _scores((83.35, 16.67, 17.50, 59.03, 38.78, 48.59)),
            _scores((84.30, 21.67, 20.83, 57.23, 40.81, 48.67)),
            43.99,
            45.59,
        ),
    )
}

EFFICIENCY = {
    "DeepSeek-R1-Distill-Qwen-1.5B": PaperEfficiency(4.93, 1.54, 3.21, 32.8, 12.5, 2.62),
    "Qwen3-4B-Base": PaperEfficiency(4.48, 1.28, 3.50, 13.7, 5.2, 2.65),
    "DeepSeek-R1-Distill-Qwen-7B": PaperEfficiency(4.74, 0.96, 4.93, 45.3, 10.8, 4.19),
}

# Table 3: six-benchmark averages with DAPO as the base algorithm, (DAPO, DAPO + SFPO).
DAPO_TABLE3 = {
    "DeepSeek-R1-Distill-Qwen-1.5B": (49.30, 50.56),
    "Qwen3-4B-Base": (46.48, 47.87),
}


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_paper_model(name_or_path: str | None) -> str | None:
    """The paper's model name for a name or a local path ending in it (case and punctuation ignored)."""
    if not name_or_path:
        return None
    wanted = _squash(PurePath(name_or_path.rstrip("/")).name)
    return next((model for model in TABLE1 if _squash(model) == wanted), None)


def canonical_benchmark(data_source: str) -> str | None:
    """The benchmark key (one of BENCHMARKS) for a data_source name, or None if it is not one of the six."""
    return _BENCHMARK_ALIASES.get(_squash(data_source.rsplit("/", 1)[-1]))
