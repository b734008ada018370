"""verl's validation bootstrap, vectorised: the same numbers, without a Python call per resample.

verl 0.9.1's `process_validation_metrics` computes best@n / worst@n / maj@n for every
validation problem, every numeric reward field and every n with `bootstrap_metric`, which
calls the reduce function once per resample (1000 per metric) in a Python loop. For 200
problems x 4 samples that is millions of calls, several seconds per validation on any
device, most of a CPU run's validation time. `bootstrap_metric` below draws the same
resample indices from the same seeded global RNG and reduces them with numpy over all
resamples at once: for `np.max`, `np.min` and verl's `calc_maj_val` the results are
bit-identical to verl's; any other reduce function (or data it cannot vectorise, e.g. NaN or
non-numeric values) goes through verl's own loop. Installed on the driver by
`use_vectorised_bootstrap()`; tests/test_validation_metrics.py checks equality against verl's
function and that verl still has the per-resample loop (patches/README.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from verl.trainer.ppo import metric_utils

_VERL_BOOTSTRAP = metric_utils.bootstrap_metric


def bootstrap_metric(
    data: list[Any],
    subset_size: int,
    reduce_fns: list[Callable[[np.ndarray], float]],
    n_bootstrap: int = 1000,
    seed: int = 42,
) -> list[tuple[float, float]]:
    """verl's `bootstrap_metric` (same signature, same RNG draws, same results)."""
    np.random.seed(seed)
    indices = np.random.choice(len(data), size=(n_bootstrap, subset_size), replace=True)
    results = []
    for reduce_fn in reduce_fns:
        per_resample = _vectorised(reduce_fn, data, indices)
        if per_resample is None:  # verl's loop, on the same indices (it reseeds and redraws them)
            [result] = _VERL_BOOTSTRAP(data, subset_size, [reduce_fn], n_bootstrap, seed)
            results.append(result)
        else:
            results.append((float(np.mean(per_resample)), float(np.std(per_resample))))
    return results


def _vectorised(reduce_fn, data: list[Any], indices: np.ndarray) -> np.ndarray | None:
    """The reduce function's value for every resample (rows of `indices`), or None."""
    if reduce_fn is np.max or reduce_fn is np.min:
        values = _numbers(data)
        if values is None:
            return None
        picked = values[indices]
        return picked.max(axis=1) if reduce_fn is np.max else picked.min(axis=1)
    if (
        isinstance(reduce_fn, functools.partial)
        and reduce_fn.func is metric_utils.calc_maj_val
        and not reduce_fn.args
        and set(reduce_fn.keywords) == {"vote_key", "val_key"}
    ):
        return _majority_values(data, indices, **reduce_fn.keywords)
    return None


def _numbers(values: list[Any]) -> np.ndarray | None:
    """float64 copies of plain numbers (bool, int, float), or None if any is something else or NaN."""
    if not all(isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)) for v in values):
        return None
    array = np.asarray(values, dtype=np.float64)
    return None if np.isnan(array).any() else array


def _majority_values(data: list[dict], indices: np.ndarray, vote_key: str, val_key: str) -> np.ndarray | None:
    """`calc_maj_val` per resample: the value of the first sample whose vote is the most
    common one, ties going to the vote seen first (dict insertion order, as in verl)."""
    try:
        votes = [d[vote_key] for d in data]
        codes = {}
        vote_codes = np.array([codes.setdefault(vote, len(codes)) for vote in votes], dtype=np.int64)
    except (KeyError, TypeError):  # a missing key or an unhashable vote: verl's loop decides
        return None
    values = _numbers([d[val_key] for d in data])
    if values is None:
        return None
    drawn = vote_codes[indices]  # (resamples, n)
    same = drawn[:, :, None] == drawn[:, None, :]
    counts = same.sum(axis=2)
    earlier = np.tril(np.ones(same.shape[1:], dtype=bool), k=-1)  # [j, i]: i comes before j
    first_of_its_vote = ~(same & earlier).any(axis=2)
    # Among first occurrences, the largest count; argmax takes the earliest on ties.
    winner = np.where(first_of_its_vote, counts, -1).argmax(axis=1)
    return values[indices[np.arange(len(indices)), winner]]


def use_vectorised_bootstrap() -> None:
    """Make verl's validation metrics use `bootstrap_metric` above (this process only)."""
    metric_utils.bootstrap_metric = bootstrap_metric
