"""The vectorised validation bootstrap equals verl's own, and verl still needs it (patches/README.md)."""

import inspect
import random
from functools import partial

import numpy as np
import pytest
from verl.trainer.ppo import metric_utils

from sfpo_verl.core.trainer import validation_metrics


def _validation_infos(seed: int, problems: int, samples: int) -> tuple[list, list, dict]:
    rng = random.Random(seed)
    sources, uids, infos = [], [], {"acc": [], "score": [], "pred": [], "reason": [], "length": []}
    for problem in range(problems):
        for _ in range(samples):
            sources.append("task" if problem % 3 else "other")
            uids.append(f"u{problem}")
            acc = rng.random() < 0.5
            infos["acc"].append(float(acc))
            infos["score"].append(1.0 if acc else rng.choice([0.0, 0.1]))
            infos["pred"].append(rng.choice(["1", "2", "3", ""]))  # few distinct votes: many ties
            infos["reason"].append("correct" if acc else "wrong")
            infos["length"].append(rng.randint(1, 11))  # ints
    return sources, uids, infos


@pytest.fixture(autouse=True)
def verls_own_bootstrap(monkeypatch):
    """verl's function here even when a test before these, in the same process, installed the
    patch as the trainer does (seen under pytest-xdist): else the patch is compared with itself."""
    assert validation_metrics._VERL_BOOTSTRAP.__module__ == metric_utils.__name__
    monkeypatch.setattr(metric_utils, "bootstrap_metric", validation_metrics._VERL_BOOTSTRAP)


@pytest.mark.parametrize("samples", [2, 4, 5])
def test_validation_metrics_are_bit_identical_to_verls(samples, monkeypatch):
    sources, uids, infos = _validation_infos(samples, problems=12, samples=samples)
    expected = metric_utils.process_validation_metrics(sources, uids, infos)
    monkeypatch.setattr(metric_utils, "bootstrap_metric", validation_metrics.bootstrap_metric)
    got = metric_utils.process_validation_metrics(sources, uids, infos)
    as_plain = lambda nested: {s: {v: dict(m) for v, m in d.items()} for s, d in nested.items()}  # noqa: E731
    assert as_plain(got) == as_plain(expected)  # exact float equality, every metric
    assert any("maj@" in name for name in got["task"]["acc"])


def test_each_reduce_function_matches_and_leaves_the_rng_where_verl_does():
    rng = np.random.default_rng(0)
    numbers = list(rng.integers(0, 2, size=7).astype(bool)) + [0.25, 3, np.float32(0.5)]
    votes = [{"val": float(v), "pred": p} for v, p in zip(rng.random(9), "aabbcabca")]
    majority = partial(metric_utils.calc_maj_val, vote_key="pred", val_key="val")
    cases = [(numbers, [np.max, np.min]), (votes, [majority]), (numbers, [np.mean])]  # np.mean: verl's loop
    for data, fns in cases:
        for size in (1, 3, 9):
            expected = metric_utils.bootstrap_metric(data, size, fns, n_bootstrap=300, seed=7)
            after_verl = np.random.random()
            got = validation_metrics.bootstrap_metric(data, size, fns, n_bootstrap=300, seed=7)
            assert got == expected
            assert np.random.random() == after_verl


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_nan_values_go_through_verls_loop():
    data = [1.0, float("nan"), 0.0, 2.0]
    expected = metric_utils.bootstrap_metric(data, 2, [np.max, np.min], n_bootstrap=50)
    got = validation_metrics.bootstrap_metric(data, 2, [np.max, np.min], n_bootstrap=50)
    assert np.array_equal(np.array(got), np.array(expected), equal_nan=True)


def test_verl_still_bootstraps_one_resample_at_a_time():
    """Fails once verl vectorises its own bootstrap (or changes it): then drop the patch and its entry."""
    source = inspect.getsource(metric_utils.bootstrap_metric)
    assert "for boot_idx in range(n_bootstrap)" in source, "verl changed bootstrap_metric: re-check the patch"
    assert "bootstrap_metric(" in inspect.getsource(metric_utils.process_validation_metrics)
