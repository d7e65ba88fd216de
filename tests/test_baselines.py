"""Baselines against closed-form values, and batched forms against the single-history forms."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from elman.errors import ConfigError, DataError
from elman.evaluation.baselines import (
    BASELINES,
    baseline_forecasts,
    baseline_forecasts_batched,
    default_ar_order,
    drift,
    drift_batched,
    fit_ar,
    linear_ar,
    linear_ar_batched,
    naive,
    naive_batched,
    seasonal_naive,
    seasonal_naive_batched,
)


def _series(t: int = 120, c: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = np.arange(t)[:, None]
    return np.sin(2 * np.pi * steps / 12) * 3 + rng.normal(size=(t, c)).cumsum(axis=0)


def test_naive_repeats_last_value() -> None:
    history = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    np.testing.assert_array_equal(naive(history, 2), [[3.0, 30.0], [3.0, 30.0]])


def test_seasonal_naive_wraps_last_season() -> None:
    history = np.arange(1.0, 9.0)  # 1 .. 8, season 4 -> last season 5 6 7 8
    np.testing.assert_array_equal(seasonal_naive(history, 6, 4), [5, 6, 7, 8, 5, 6])


def test_drift_by_hand() -> None:
    # slope (7 - 1) / 2 = 3
    np.testing.assert_array_equal(drift([1.0, 2.0, 7.0], 2), [10.0, 13.0])


def test_drift_on_straight_line_is_exact() -> None:
    t = np.arange(15.0)
    line = 2.0 + 3.0 * t
    np.testing.assert_allclose(drift(line[:10], 5), line[10:], rtol=0, atol=1e-12)


def _ar1(n: int, c: float = 0.5, a: float = 0.8, y0: float = 10.0) -> np.ndarray:
    y = np.empty(n)
    y[0] = y0
    for t in range(1, n):
        y[t] = c + a * y[t - 1]
    return y


def test_fit_ar_recovers_noiseless_ar1() -> None:
    np.testing.assert_allclose(fit_ar(_ar1(30), order=1), [0.5, 0.8], rtol=1e-9)


def test_linear_ar_continues_noiseless_ar1_exactly() -> None:
    y = _ar1(40)
    np.testing.assert_allclose(linear_ar(y[:30], 10, order=1), y[30:], rtol=1e-10)


def test_linear_ar_forecasts_each_column_independently() -> None:
    y = np.stack([_ar1(40), _ar1(40, c=-1.0, a=0.3, y0=5.0)], axis=1)
    np.testing.assert_allclose(linear_ar(y[:30], 10, order=1), y[30:], rtol=1e-10)


@pytest.mark.parametrize(
    ("season", "n_obs", "expected"), [(1, 100, 2), (12, 100, 12), (12, 20, 5), (1, 3, 1)]
)
def test_default_ar_order(season: int, n_obs: int, expected: int) -> None:
    assert default_ar_order(season, n_obs) == expected


def test_one_dimensional_history_gives_one_dimensional_forecast() -> None:
    out = baseline_forecasts(_series(c=1)[:, 0], horizon=5, season=12)
    assert list(out) == list(BASELINES)
    assert list(BASELINES) == ["naive", "seasonal_naive", "drift", "linear_ar", "ets", "theta"]
    assert all(f.shape == (5,) for f in out.values())


def test_forecasts_have_shape_horizon_by_columns() -> None:
    out = baseline_forecasts(_series(c=3), horizon=7, season=12)
    assert all(f.shape == (7, 3) for f in out.values())


CUTOFFS = np.array([9, 13, 17, 40, 61, 119, 120])  # default AR orders 2, 3, 4, 10, 12, 12, 12


@pytest.mark.parametrize(
    ("batched", "single"),
    [
        (lambda v, k: naive_batched(v, k, 5), lambda y: naive(y, 5)),
        (lambda v, k: seasonal_naive_batched(v, k, 5, 4), lambda y: seasonal_naive(y, 5, 4)),
        (lambda v, k: drift_batched(v, k, 5), lambda y: drift(y, 5)),
    ],
    ids=["naive", "seasonal_naive", "drift"],
)
def test_batched_equals_loop_exactly(
    batched: Callable[[np.ndarray, np.ndarray], np.ndarray],
    single: Callable[[np.ndarray], np.ndarray],
) -> None:
    values = _series()
    expected = np.stack([single(values[:k]) for k in CUTOFFS])
    np.testing.assert_array_equal(batched(values, CUTOFFS), expected)


@pytest.mark.parametrize("order", [1, 3, None])
def test_linear_ar_batched_equals_loop(order: int | None) -> None:
    values = _series()
    expected = np.stack([linear_ar(values[:k], 6, order=order, season=12) for k in CUTOFFS])
    got = linear_ar_batched(values, CUTOFFS, 6, order=order, season=12)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_registry_batched_equals_loop() -> None:
    values = _series(c=1)[:, 0]
    batched = baseline_forecasts_batched(values, CUTOFFS, horizon=4, season=4)
    for name, got in batched.items():
        expected = np.stack([baseline_forecasts(values[:k], 4, 4)[name] for k in CUTOFFS])
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, err_msg=name)


def test_batched_uses_no_data_after_cutoff() -> None:
    values = _series()
    changed = values.copy()
    changed[50:] += 100.0
    for name, b in BASELINES.items():
        before = b.forecast_batched(values, [30, 50, 90], 5, 4)[:2]
        after = b.forecast_batched(changed, [30, 50, 90], 5, 4)[:2]
        np.testing.assert_allclose(after, before, rtol=1e-12, atol=1e-12, err_msg=name)


def test_short_history_names_the_numbers() -> None:
    with pytest.raises(DataError, match=r"needs at least 12 value\(s\) in the history, got 5"):
        seasonal_naive(np.arange(5.0), 3, 12)


def test_linear_ar_short_history_names_the_order() -> None:
    with pytest.raises(DataError, match=r"linear_ar \(order=3\) needs at least 7 value\(s\)"):
        linear_ar(np.arange(6.0), 3, order=3)


def test_batched_cutoff_too_early_names_the_cutoff() -> None:
    with pytest.raises(DataError, match=r"drift needs at least 2 .* cutoff 1 leaves only 1"):
        drift_batched(np.arange(10.0), [1, 5], 2)


def test_batched_cutoff_past_end() -> None:
    with pytest.raises(DataError, match=r"cutoff 11 is past the end of `values` \(length 10\)"):
        naive_batched(np.arange(10.0), [5, 11], 2)


def test_cutoffs_must_be_integers() -> None:
    with pytest.raises(DataError, match="`cutoffs` must be a non-empty 1-D array of integers"):
        naive_batched(np.arange(10.0), [2.5], 2)


def test_horizon_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"`horizon` \(0\) must be a whole number >= 1"):
        naive(np.arange(10.0), 0)


def test_history_with_nan_is_rejected() -> None:
    with pytest.raises(DataError, match="NaN or infinite"):
        drift([1.0, np.nan, 3.0], 2)
