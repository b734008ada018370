"""The framework-free SFPO pieces: reposition, schedules, entropy switch, controller."""

import numpy as np
import pytest
import torch

from sfpo_verl.core.algorithm import AlphaSchedule, EntropySwitch, ParameterAnchor, SFPOController


def _params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 3, generator=gen), torch.randn(7, generator=gen)]


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 1.0])
@pytest.mark.parametrize("device", [None, "cpu"])
def test_reposition_is_theta0_plus_alpha_displacement(alpha, device):
    params = _params()
    theta0 = [p.clone() for p in params]
    anchor = ParameterAnchor(params, device=device)
    for p, d in zip(params, _params(seed=1)):
        p.add_(d)  # the fast passes
    theta_k = [p.clone() for p in params]

    sq = anchor.reposition_(alpha)

    for p, t0, tk in zip(params, theta0, theta_k):
        torch.testing.assert_close(p, t0 + alpha * (tk - t0), rtol=1e-6, atol=1e-6)
    expected = sum(((tk - t0) ** 2).sum() for t0, tk in zip(theta0, theta_k))
    torch.testing.assert_close(sq, expected)


def test_reposition_alpha_one_keeps_fast_weights_bit_exact():
    params = _params()
    anchor = ParameterAnchor(params)
    for p, d in zip(params, _params(seed=1)):
        p.mul_(1.37).add_(d)
    theta_k = [p.clone() for p in params]
    anchor.reposition_(1.0)
    for p, tk in zip(params, theta_k):
        assert torch.equal(p, tk)


def test_anchor_is_fp32_copy_of_low_precision_params_and_writes_back():
    params = [torch.randn(4, 4).to(torch.bfloat16)]
    anchor = ParameterAnchor(params)
    assert anchor.nbytes == 16 * 4
    theta0 = params[0].float().clone()
    params[0].add_(1.0)
    theta_k = params[0].float()
    anchor.reposition_(0.5)
    assert params[0].dtype == torch.bfloat16
    assert torch.equal(params[0], (theta0 + 0.5 * (theta_k - theta0)).bfloat16())


def test_anchor_release_frees_and_blocks_reuse():
    params = _params()
    anchor = ParameterAnchor(params)
    assert anchor.nbytes == sum(p.numel() * 4 for p in params)
    anchor.release()
    assert anchor.nbytes == 0
    with pytest.raises(RuntimeError, match="after release"):
        anchor.reposition_(0.5)


def test_reposition_rejects_alpha_outside_unit_interval():
    with pytest.raises(ValueError, match="alpha"):
        ParameterAnchor(_params()).reposition_(1.5)


def test_schedules():
    constant = AlphaSchedule(0.8)
    assert [constant(s) for s in (1, 100, 10_000)] == [0.8, 0.8, 0.8]
    linear = AlphaSchedule(0.8, "linear", schedule_steps=4)
    assert [linear(s) for s in range(1, 7)] == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0, 0.0])
    cutoff = AlphaSchedule(0.8, "cutoff", schedule_steps=3)
    assert [cutoff(s) for s in range(1, 6)] == [0.8, 0.8, 0.8, 0.0, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(alpha0=1.2), "alpha0"),
        (dict(alpha0=0.5, kind="cosine"), "unknown alpha schedule 'cosine'"),
        (dict(alpha0=0.5, kind="linear"), "schedule_steps"),
        (dict(alpha0=0.5, kind="cutoff", schedule_steps=0), "schedule_steps"),
    ],
)
def test_schedule_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AlphaSchedule(**kwargs)


def test_switch_waits_for_a_full_window_then_fires_on_the_authors_zscore():
    switch = EntropySwitch(window=4, threshold=1.0)
    assert not any(switch.observe(step, 1.0 + 0.01 * step) for step in range(1, 4))
    assert switch.last_zscore is None  # 3 values < window: never checked
    # 4th value: window [1.01, 1.02, 1.03, 2.0]
    window = np.array([1.01, 1.02, 1.03, 2.0])
    expected_z = (2.0 - window.mean()) / (window.std() + 1e-9)
    assert switch.observe(4, 2.0)
    assert switch.last_zscore == pytest.approx(expected_z)
    assert switch.fired and switch.fired_at_step == 4
    assert not switch.observe(5, 100.0)  # fires once and stays fired
    assert switch.fired


def test_switch_one_sided_ignores_drops_two_sided_fires_on_them():
    drop = [1.0, 1.01, 0.99, 1.0, 0.2]
    one_sided, two_sided = EntropySwitch(5, 1.0), EntropySwitch(5, 1.0, two_sided=True)
    assert not any(one_sided.observe(s, h) for s, h in enumerate(drop, 1))
    assert any(two_sided.observe(s, h) for s, h in enumerate(drop, 1))


def test_switch_keeps_only_the_last_window_values():
    switch = EntropySwitch(window=3, threshold=10.0)
    for step, h in enumerate([5.0, 1.0, 1.1, 1.2, 1.3], 1):
        switch.observe(step, h)
    assert list(switch.history) == [1.1, 1.2, 1.3]


@pytest.mark.parametrize(("window", "threshold", "match"), [(1, 1.0, "window"), (30, 0.0, "threshold")])
def test_switch_rejects_bad_input(window, threshold, match):
    with pytest.raises(ValueError, match=match):
        EntropySwitch(window, threshold)


def test_switch_state_round_trip_continues_identically():
    values = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 1.5]
    reference = EntropySwitch(window=5, threshold=1.5)
    restored = EntropySwitch(window=5, threshold=1.5)
    for step, h in enumerate(values[:5], 1):
        reference.observe(step, h)
        restored.observe(step, h)
    state = restored.state_dict()
    fresh = EntropySwitch(window=5, threshold=1.5)
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state
    for step, h in enumerate(values[5:], 6):
        assert fresh.observe(step, h) == reference.observe(step, h)
    assert fresh.state_dict() == reference.state_dict()


def test_controller_alpha_is_zero_forever_once_the_switch_fired():
    controller = SFPOController(AlphaSchedule(0.8), inner_steps=3, switch=EntropySwitch(window=2, threshold=0.5))
    assert controller.alpha(1) == 0.8
    controller.observe_entropy(1, 1.0)
    assert controller.observe_entropy(2, 2.0)
    assert [controller.alpha(s) for s in (3, 4, 400)] == [0.0, 0.0, 0.0]

    resumed = SFPOController(AlphaSchedule(0.8), inner_steps=3, switch=EntropySwitch(window=2, threshold=0.5))
    resumed.load_state_dict(controller.state_dict())
    assert resumed.switch_fired and resumed.alpha(5) == 0.0


def test_controller_rejects_negative_k():
    with pytest.raises(ValueError, match="inner_steps"):
        SFPOController(AlphaSchedule(0.8), inner_steps=-1)
