"""The M4 rules (sMAPE, MASE, Naive2, OWA) against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.tsa.seasonal import seasonal_decompose

from elman.errors import ConfigError, DataError
from elman.evaluation import m4

# Period 2 with a trend: odd positions about 1.25 times the level, even ones about 0.75.
TRENDED = np.array([2, 4, 4, 8, 6, 12, 8, 16, 10, 20, 12, 24], dtype=float)
# Ratios of TRENDED to its 2x2 moving average (0.25, 0.5, 0.25) at t = 1 .. 10.
EVEN_RATIOS = [4 / 5, 6 / 8, 8 / 11, 10 / 14, 12 / 17]  # t = 2, 4, 6, 8, 10
ODD_RATIOS = [4 / 3.5, 8 / 6.5, 12 / 9.5, 16 / 12.5, 20 / 15.5]  # t = 1, 3, 5, 7, 9


def test_acf_by_hand() -> None:
    # y - mean = -1.5, -0.5, 0.5, 1.5; sum of squares 5
    r = m4.acf([1.0, 2.0, 3.0, 4.0], 3)
    np.testing.assert_allclose(r, [1.25 / 5, -1.5 / 5, -2.25 / 5])


def test_acf_of_a_constant_is_zero() -> None:
    np.testing.assert_array_equal(m4.acf([3.0] * 5, 2), [0.0, 0.0])


def test_seasonality_test_passes_an_alternating_series_of_twelve() -> None:
    # r1 = -11/12, r2 = 10/12; limit = 1.645 sqrt((1 + 2 (11/12)^2) / 12) = 0.7775
    limit = 1.645 * np.sqrt((1 + 2 * (11 / 12) ** 2) / 12)
    assert limit < 10 / 12
    assert m4.seasonality_test([1.0, 3.0] * 6, 2)


def test_seasonality_test_fails_the_same_pattern_over_six_values() -> None:
    # r1 = -5/6, r2 = 4/6 = 0.667; limit = 1.645 sqrt((1 + 2 (5/6)^2) / 6) = 1.038
    limit = 1.645 * np.sqrt((1 + 2 * (5 / 6) ** 2) / 6)
    assert limit > 4 / 6
    assert not m4.seasonality_test([1.0, 3.0] * 3, 2)


def test_seasonality_test_needs_three_seasons_and_a_period_above_one() -> None:
    assert not m4.seasonality_test([1.0, 3.0, 1.0, 3.0, 1.0], 2)  # 5 < 3 * 2
    assert not m4.seasonality_test([1.0, 3.0] * 20, 1)


def test_seasonal_indices_even_period_by_hand() -> None:
    even, odd = np.mean(EVEN_RATIOS), np.mean(ODD_RATIOS)
    expected = np.array([even, odd]) / ((even + odd) / 2)
    np.testing.assert_allclose(m4.seasonal_indices(TRENDED, 2), expected)


def test_seasonal_indices_odd_period_by_hand() -> None:
    # 3-MA trend at t = 1 .. 7: 3, 10/3, 4, 6, 19/3, 7, 9
    y = [1.0, 2.0, 6.0, 2.0, 4.0, 12.0, 3.0, 6.0, 18.0]
    figure = np.array(
        [
            (2 / 4 + 3 / 7) / 2,  # t = 3, 6
            (2 / 3 + 4 / 6 + 6 / 9) / 3,  # t = 1, 4, 7
            (6 / (10 / 3) + 12 / (19 / 3)) / 2,  # t = 2, 5
        ]
    )
    np.testing.assert_allclose(m4.seasonal_indices(y, 3), figure / figure.mean())


@pytest.mark.parametrize("period", [4, 7, 12])
def test_seasonal_indices_match_statsmodels_classical_decomposition(period: int) -> None:
    rng = np.random.default_rng(period)
    t = np.arange(5 * period + 3)
    y = (50 + t) * (1 + 0.3 * np.sin(2 * np.pi * t / period)) + rng.uniform(0, 2, t.size)
    seasonal = seasonal_decompose(y, model="multiplicative", period=period).seasonal
    np.testing.assert_allclose(m4.seasonal_indices(y, period), seasonal[:period])


def test_naive2_reseasonalises_the_adjusted_last_value() -> None:
    assert m4.seasonality_test(TRENDED, 2)
    even, odd = np.mean(EVEN_RATIOS), np.mean(ODD_RATIOS)
    i_even, i_odd = even / ((even + odd) / 2), odd / ((even + odd) / 2)
    level = 24 / i_odd  # the last value (t = 11, odd) seasonally adjusted
    np.testing.assert_allclose(
        m4.naive2(TRENDED, 3, 2), [level * i_even, level * i_odd, level * i_even]
    )


def test_naive2_is_naive_without_seasonality() -> None:
    np.testing.assert_array_equal(m4.naive2([1.0, 3.0] * 3, 4, 2), [3.0] * 4)
    np.testing.assert_array_equal(m4.naive2(TRENDED, 2, 1), [24.0, 24.0])


def test_smape_and_mase_by_hand() -> None:
    scores = m4.score([[1.0, 2.0, 4.0]], [[5.0, 5.0]], [[4.0, 6.0]], 1)
    # sMAPE = (200 * 1 / 9 + 200 * 1 / 11) / 2; MASE = 1 / mean(|2-1|, |4-2|) = 1 / 1.5
    np.testing.assert_allclose(scores.smape, [100 * (1 / 9 + 1 / 11)])
    np.testing.assert_allclose(scores.mase, [1 / 1.5])


def test_mase_scales_by_the_seasonal_naive_error_of_the_period() -> None:
    # m = 2: mean(|4 - 1|, |8 - 2|) = 4.5; errors 9 and 0
    scores = m4.score([[1.0, 2.0, 4.0, 8.0]], [[10.0, 10.0]], [[1.0, 10.0]], 2)
    np.testing.assert_allclose(scores.mase, [4.5 / 4.5])


def test_owa_by_hand() -> None:
    assert m4.owa(10.0, 2.0, 20.0, 4.0) == pytest.approx(0.5)
    assert m4.owa(20.0, 2.0, 20.0, 4.0) == pytest.approx(0.75)


def test_scores_average_over_a_mask_and_give_owa_against_naive2() -> None:
    method = m4.M4Scores(np.array([10.0, 30.0]), np.array([1.0, 3.0]))
    naive = m4.M4Scores(np.array([20.0, 30.0]), np.array([2.0, 3.0]))
    assert method.mean() == (20.0, 2.0)
    assert method.owa(naive) == pytest.approx((20 / 25 + 2 / 2.5) / 2)
    assert method.owa(naive, [True, False]) == pytest.approx(0.5)


def test_m4_frequency_of_each_subset() -> None:
    assert [m4.m4_frequency(s) for s in ("Weekly", "monthly", "Quarterly", "hourly")] == [
        1,
        12,
        4,
        24,
    ]
    assert m4.m4_frequency("yearly") == m4.m4_frequency("daily") == 1
    with pytest.raises(ConfigError, match="M4 subset 'fortnightly' is unknown"):
        m4.m4_frequency("fortnightly")


def test_score_rejects_mismatched_series() -> None:
    with pytest.raises(DataError, match="series 0: actual \\(2,\\) and forecast \\(3,\\)"):
        m4.score([[1.0, 2.0]], [[1.0, 2.0]], [[1.0, 2.0, 3.0]], 1)
    with pytest.raises(DataError, match="1 histories, 2 actuals and 1 forecasts"):
        m4.score([[1.0, 2.0]], [[1.0], [2.0]], [[1.0]], 1)
