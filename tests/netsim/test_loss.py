"""Loss models: empirical statistics match the analytic loss rate and mean burst length.

Tolerances are 5 standard errors, estimated by batch means (the losses of a Gilbert-Elliott
channel are correlated, so the binomial formula would understate the error).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from netsim.loss import (
    BernoulliLoss,
    ExplicitLoss,
    GilbertElliottLoss,
    LossModel,
    LossWindow,
    NoLoss,
    gilbert_parameters,
)
from netsim.stats import LossStatistics, loss_runs

PACKETS = 100_000
BATCHES = 20


def draw(model: LossModel, count: int = PACKETS) -> list[bool]:
    return [model.drops(frame_index=i // 10, scale=2, fragment_index=i % 10) for i in range(count)]


def assert_matches_analytic(model: LossModel, lost: list[bool]) -> None:
    """Loss rate and mean burst within 5 batch-means standard errors of the analytic values."""
    size = len(lost) // BATCHES
    batches = [LossStatistics.of(lost[i * size : (i + 1) * size]) for i in range(BATCHES)]
    overall = LossStatistics.of(lost)
    for name, analytic in (
        ("loss_rate", model.analytic_loss_rate()),
        ("mean_burst_packets", model.analytic_mean_burst_packets()),
    ):
        values = np.array([getattr(b, name) for b in batches])
        standard_error = values.std(ddof=1) / math.sqrt(BATCHES)
        assert abs(getattr(overall, name) - analytic) < 5 * standard_error + 1e-12, name


def test_bernoulli_losses_are_nested_across_loss_rates_for_one_seed() -> None:
    """Common random numbers: what is lost at a low rate is also lost at a higher one."""
    rates = (0.2, 0.4, 0.6, 0.8)
    lost = [draw(BernoulliLoss(rate, np.random.default_rng(7)), 5000) for rate in rates]
    for lower, higher in zip(lost, lost[1:], strict=False):
        assert all(h for low, h in zip(lower, higher, strict=True) if low)
        assert sum(higher) > sum(lower)


@pytest.mark.parametrize("loss_rate", [0.05, 0.3, 0.8])
def test_bernoulli_statistics_match_analytic_values(loss_rate: float) -> None:
    model = BernoulliLoss(loss_rate, np.random.default_rng(1))
    assert model.analytic_mean_burst_packets() == pytest.approx(1 / (1 - loss_rate))
    assert_matches_analytic(model, draw(model))


@pytest.mark.parametrize(("loss_rate", "mean_burst"), [(0.1, 4.0), (0.3, 2.0), (0.02, 1.5)])
def test_simple_gilbert_statistics_match_loss_rate_and_burst_length(
    loss_rate: float, mean_burst: float
) -> None:
    model = GilbertElliottLoss.from_loss_rate(loss_rate, mean_burst, np.random.default_rng(2))
    assert model.analytic_loss_rate() == pytest.approx(loss_rate)
    assert model.analytic_mean_burst_packets() == pytest.approx(mean_burst)
    assert_matches_analytic(model, draw(model))


def test_general_gilbert_elliott_statistics_match_analytic_values() -> None:
    model = GilbertElliottLoss(
        0.05, 0.3, np.random.default_rng(3), loss_in_bad=0.7, loss_in_good=0.02
    )
    bad = 0.05 / 0.35
    assert model.analytic_loss_rate() == pytest.approx(bad * 0.7 + (1 - bad) * 0.02)
    assert_matches_analytic(model, draw(model))


def test_gilbert_elliott_with_memoryless_states_reduces_to_bernoulli() -> None:
    # p + r = 1: the next state does not depend on the current one, so losses are independent.
    model = GilbertElliottLoss(0.3, 0.7, np.random.default_rng(4), loss_in_bad=0.5)
    assert model.analytic_loss_rate() == pytest.approx(0.15)
    assert model.analytic_mean_burst_packets() == pytest.approx(1 / 0.85)


def test_gilbert_parameters_invert_the_simple_model() -> None:
    p, r = gilbert_parameters(0.1, 4.0)
    assert r == pytest.approx(0.25) and p / (p + r) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        gilbert_parameters(0.9, 2.0)  # would need p > 1
    with pytest.raises(ValueError):
        gilbert_parameters(0.1, 0.5)


def test_window_and_exempt_scales_protect_packets_and_do_not_advance_the_model() -> None:
    window = LossWindow(first_frame=4, last_frame=28, exempt_scales=frozenset({1}))
    model = BernoulliLoss(1.0, np.random.default_rng(5), window)
    assert not model.drops(3, 2) and not model.drops(29, 4) and not model.drops(10, 1)
    assert model.drops(4, 2) and model.drops(28, 4)
    reference = BernoulliLoss(0.5, np.random.default_rng(6))
    exempt_1 = LossWindow(exempt_scales=frozenset({1}))
    windowed = BernoulliLoss(0.5, np.random.default_rng(6), exempt_1)
    expected = [reference.drops(0, 2) for _ in range(50)]
    mixed = []
    for _ in range(50):
        assert not windowed.drops(0, 1)
        mixed.append(windowed.drops(0, 2))
    assert mixed == expected


def test_explicit_loss_drops_exactly_the_listed_packets() -> None:
    model = ExplicitLoss([(5, 4, None), (6, 2, 1)])
    assert model.drops(5, 4, 0) and model.drops(5, 4, 3)
    assert model.drops(6, 2, 1) and not model.drops(6, 2, 0)
    assert not model.drops(5, 3, 0)
    assert model.analytic_loss_rate() is None


def test_no_loss_never_drops() -> None:
    model = NoLoss()
    assert not any(draw(model, 1000))
    assert model.analytic_loss_rate() == 0.0


def test_loss_runs_counts_consecutive_losses() -> None:
    assert loss_runs([True, True, False, True, False, False, True, True, True]) == [2, 1, 3]
    assert loss_runs([]) == []
    stats = LossStatistics.of([False, True, True, False])
    assert (stats.loss_rate, stats.mean_burst_packets, stats.bursts) == (0.5, 2.0, 1)
