"""Per-benchmark accuracy from graded responses: avg@k and the unbiased pass@k."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k responses drawn without replacement from n
    (c of them correct) is correct: 1 - C(n-c, k) / C(n, k) (Chen et al., 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def reported_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks = []
    k = 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


@dataclass
class BenchmarkScore:
    """Accuracies in percent. `avg_at_k` is the mean correctness over all k responses of every
    prompt (the paper's pass@1 "avg@4"); `pass_at` maps k to the unbiased pass@k."""

    benchmark: str
    prompts: int
    samples_per_prompt: int  # k: the fewest responses any prompt has
    avg_at_k: float
    pass_at: dict[int, float] = field(default_factory=dict)


def score_benchmark(benchmark: str, correct_by_prompt: dict[str, list[bool]]) -> BenchmarkScore:
    """Score one benchmark from each prompt's list of per-response correctness."""
    if not correct_by_prompt:
        raise ValueError(f"{benchmark}: no prompts to score")
    k_max = min(len(results) for results in correct_by_prompt.values())
    prompts = len(correct_by_prompt)
    avg = sum(sum(results) / len(results) for results in correct_by_prompt.values()) / prompts
    pass_at = {
        k: 100.0 * sum(pass_at_k(len(r), sum(r), k) for r in correct_by_prompt.values()) / prompts
        for k in reported_ks(k_max)
    }
    return BenchmarkScore(benchmark, prompts, k_max, 100.0 * avg, pass_at)
