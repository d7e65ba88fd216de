"""Split-conformal intervals: quantile ranks by hand, level parsing, empirical coverage."""

from __future__ import annotations

import numpy as np
import pytest

from elman.errors import ConfigError, DataError
from elman.evaluation.baselines import linear_ar_batched
from elman.evaluation.metrics import coverage
from elman.forecasting.intervals import (
    apply_intervals,
    conformal_quantiles,
    min_residuals,
    parse_levels,
)


def test_quantile_uses_finite_sample_rank() -> None:
    # n = 9 absolute residuals 1..9 (signs mixed): 80% -> rank ceil(10 * 0.8) = 8,
    # 50% -> rank ceil(10 * 0.5) = 5
    r = np.array([1, -2, 3, -4, 5, -6, 7, -8, 9], dtype=float)[:, None, None]  # [9, 1, 1]
    q = conformal_quantiles(r, levels=(50, 80))
    assert q[80].shape == (1, 1)
    assert (q[50][0, 0], q[80][0, 0]) == (5.0, 8.0)


def test_quantile_is_per_step_and_column() -> None:
    r = np.stack([np.arange(1.0, 10.0), 10 * np.arange(1.0, 10.0)], axis=1)[:, :, None]
    r = np.concatenate([r, -r], axis=2)  # [9, H=2, C=2]
    np.testing.assert_array_equal(conformal_quantiles(r, (80,))[80], [[8, 8], [80, 80]])


def test_missing_residuals_are_skipped() -> None:
    # n = 4 non-missing: 80% -> rank ceil(5 * 0.8) = 4
    r = np.array([np.nan, 4.0, 1.0, 3.0, 2.0])[:, None, None]
    assert conformal_quantiles(r, (80,))[80][0, 0] == 4.0


@pytest.mark.parametrize(("level", "need"), [(80, 4), (90, 9), (95, 19), (99, 99), (97.5, 39)])
def test_min_residuals(level: float, need: int) -> None:
    assert min_residuals(level) == need


def test_too_few_residuals_says_how_many_are_needed() -> None:
    with pytest.raises(DataError, match="95% intervals need at least 19 residuals .* got 10"):
        conformal_quantiles(np.ones((10, 2, 1)), levels=(80, 95))


def test_residuals_must_have_three_axes() -> None:
    with pytest.raises(DataError, match=r"must have shape \[N, H, C\], got \(10, 2\)"):
        conformal_quantiles(np.ones((10, 2)))


def test_apply_intervals_adds_and_subtracts_half_width() -> None:
    point = np.array([[[1.0, 2.0]], [[3.0, 4.0]]])  # [N=2, H=1, C=2]
    lower, upper = apply_intervals(point, {80: np.array([[0.5, 1.0]])})[80]
    np.testing.assert_array_equal(lower, [[[0.5, 1.0]], [[2.5, 3.0]]])
    np.testing.assert_array_equal(upper, [[[1.5, 3.0]], [[3.5, 5.0]]])


def test_apply_intervals_rejects_mismatched_shapes() -> None:
    with pytest.raises(DataError, match=r"does not end in the 80% quantile shape \(2, 1\)"):
        apply_intervals(np.zeros((3, 1)), {80: np.ones((2, 1))})


def test_parse_levels_sorts_and_deduplicates() -> None:
    assert parse_levels("80,95") == (80, 95)
    assert parse_levels(" 95, 80 ,80") == (80, 95)
    assert parse_levels([90]) == (90,)


def test_parse_levels_out_of_range_message() -> None:
    message = "--intervals: '120' must be a percentage between 0 and 100 (e.g. 80,95)"
    with pytest.raises(ConfigError) as info:
        parse_levels("80,120")
    assert str(info.value) == message


@pytest.mark.parametrize("spec", ["0", "100", "abc", "80,", "97.5"])
def test_parse_levels_rejects(spec: str) -> None:
    with pytest.raises(ConfigError, match="must be a percentage between 0 and 100"):
        parse_levels(spec)


def test_parse_levels_rejects_empty() -> None:
    with pytest.raises(ConfigError, match="must list at least one percentage"):
        parse_levels([])


def test_conformal_80_reaches_nominal_coverage_on_held_out_ar1() -> None:
    rng = np.random.default_rng(1234)
    n, phi, horizon = 3000, 0.7, 3
    y = np.zeros(n)
    noise = rng.normal(size=n)
    for t in range(1, n):
        y[t] = 2.0 + phi * y[t - 1] + noise[t]
    windows = np.lib.stride_tricks.sliding_window_view(y, horizon)  # [n-H+1, H]

    def residuals(cutoffs: np.ndarray) -> np.ndarray:
        point = linear_ar_batched(y, cutoffs, horizon, order=1)  # [K, H]
        return (windows[cutoffs] - point)[:, :, None]  # [K, H, 1]

    calibration = np.arange(200, 1500)
    test = np.arange(1500, n - horizon + 1)
    half_width = conformal_quantiles(residuals(calibration), levels=(80,))
    test_res = residuals(test)
    lower, upper = apply_intervals(np.zeros_like(test_res), half_width)[80]
    assert 0.70 <= coverage(test_res, lower, upper) <= 0.90
