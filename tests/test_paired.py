"""The study statistics in sfpo_verl.paper.analysis (measures, paired) on synthetic curves and
differences whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sfpo_verl.paper.analysis.measures import Curve, late_change, normalised_auc, time_to_target
from sfpo_verl.paper.analysis.paired import (
    BOOTSTRAP_RESAMPLES,
    EXACT_MAX_SEEDS,
    bootstrap_means,
    paired_difference,
    sign_flip_p_value,
)


def curve(seed: int, accuracy: list[float], step_seconds: float = 10.0) -> Curve:
    """Validations every 256 rollouts from 0, each `step_seconds` x 2 steps apart."""
    n = len(accuracy)
    return Curve(seed, tuple(256 * i for i in range(n)), tuple(accuracy), tuple(2 * step_seconds * i for i in range(n)))


def test_auc_is_the_trapezoid_mean_accuracy_over_the_budget():
    run = curve(0, [0.4, 0.6, 0.6])
    assert normalised_auc(run, 512) == pytest.approx((256 * 0.5 + 256 * 0.6) / 512)
    # a budget between validations: the segment is cut there, its end interpolated (0.6)
    assert normalised_auc(run, 384) == pytest.approx((256 * 0.5 + 128 * 0.6) / 384)
    with pytest.raises(ValueError, match="not 0..1024"):
        normalised_auc(run, 1024)
    with pytest.raises(ValueError, match="validations cover rollouts 256..512"):
        normalised_auc(Curve(0, (256, 512), (0.5, 0.6), (0.0, 1.0)), 512)


def test_identical_arms_differ_by_zero_with_p_one():
    values = {0: 0.51, 1: 0.47, 2: 0.62, 3: 0.55}
    result = paired_difference(values, dict(values))
    assert (result.mean_diff, result.ci95, result.p_value) == (0.0, (0.0, 0.0), 1.0)
    assert result.diffs == [0.0] * 4


def test_a_clear_win_has_the_smallest_p_and_an_interval_above_zero():
    baseline = {seed: 0.5 for seed in range(5)}
    arm = {seed: 0.5 + 0.01 * (seed + 1) for seed in range(5)}
    result = paired_difference(arm, baseline)
    assert result.p_value == pytest.approx(2 / 2**5)  # only all-plus and all-minus reach |mean| 0.03
    assert result.mean_diff == pytest.approx(0.03)
    assert 0 < result.ci95[0] < 0.03 < result.ci95[1] <= 0.05
    assert paired_difference(baseline, arm).p_value == result.p_value  # two-sided


def test_ties_count_toward_the_p_value():
    # one seed with no difference: its sign flips nothing, so half the patterns tie the observed
    assert sign_flip_p_value(np.array([0.05, 0.0, 0.05])) == pytest.approx(4 / 8)
    assert sign_flip_p_value(np.array([0.1, -0.1])) == 1.0  # observed mean 0: every pattern ties


def test_only_seeds_both_arms_ran_are_paired():
    result = paired_difference({0: 0.9, 1: 0.6, 2: 0.7}, {1: 0.5, 2: 0.5, 3: 0.1})
    assert result.seeds == [1, 2] and result.diffs == pytest.approx([0.1, 0.2])
    assert paired_difference({0: 0.9}, {1: 0.5}) is None


def test_bootstrap_keeps_every_resample_and_is_deterministic():
    diffs = np.array([0.02, -0.01, 0.04])
    means = bootstrap_means(diffs)
    assert BOOTSTRAP_RESAMPLES >= 10_000 and len(means) == BOOTSTRAP_RESAMPLES and np.isfinite(means).all()
    np.testing.assert_array_equal(means, bootstrap_means(diffs))
    one = paired_difference({0: 0.7}, {0: 0.5})
    assert one.ci95 == pytest.approx((0.2, 0.2)) and one.p_value == 1.0  # one seed: every resample is it


def test_many_seeds_fall_back_to_random_sign_patterns():
    n = EXACT_MAX_SEEDS + 1
    assert sign_flip_p_value(np.full(n, 0.01)) < 1e-3
    assert sign_flip_p_value(np.zeros(n)) == 1.0


def test_censored_seeds_and_medians_to_a_target():
    arm = [curve(0, [0.3, 0.62, 0.66]), curve(1, [0.3, 0.5, 0.6]), curve(2, [0.3, 0.45, 0.55])]
    two_of_three = time_to_target(arm, 0.6)
    assert (two_of_three["reached"], two_of_three["n"], two_of_three["censored"]) == (2, 3, 1)
    assert two_of_three["median_rollouts"] == 512 and two_of_three["median_seconds"] == 40.0  # seeds 0 and 1
    assert two_of_three["per_seed"] == {0: {"rollouts": 256, "seconds": 20.0}, 1: {"rollouts": 512, "seconds": 40.0},
                                        2: None}
    one_of_three = time_to_target(arm, 0.65)
    assert (one_of_three["reached"], one_of_three["censored"]) == (1, 2)
    assert one_of_three["median_rollouts"] is None and one_of_three["median_seconds"] is None
    half = time_to_target(arm + [curve(3, [0.3, 0.3, 0.3])], 0.6)
    assert (half["reached"], half["n"], half["median_rollouts"]) == (2, 4, None)  # half is not more than half


def test_late_change_shows_whether_a_curve_still_rose():
    change = late_change([curve(0, [0.3, 0.4, 0.5, 0.6]), curve(1, [0.3, 0.5, 0.5, 0.5])])
    assert change["mean"] == pytest.approx(0.1) and change["std"] == pytest.approx(0.02**0.5)  # changes 0.2 and 0
    assert (change["from_rollouts"], change["to_rollouts"], change["n"]) == (256, 768, 2)
