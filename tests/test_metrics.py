"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from elman.errors import ConfigError, DataError
from elman.evaluation.metrics import (
    MetricWarning,
    compute_metrics,
    coverage,
    interval_score,
    level_name,
    mae,
    mape,
    mase,
    mase_scale,
    metrics_by_step,
    pinball,
    rmse,
    smape,
)

# errors |y - f| = 1, 0, 2
ACTUAL = [1.0, 2.0, 3.0]
FORECAST = [2.0, 2.0, 5.0]


def test_mae_by_hand() -> None:
    assert mae(ACTUAL, FORECAST) == pytest.approx(1.0)  # (1 + 0 + 2) / 3


def test_rmse_by_hand() -> None:
    assert rmse(ACTUAL, FORECAST) == pytest.approx(math.sqrt(5 / 3))  # (1 + 0 + 4) / 3


def test_mape_by_hand() -> None:
    # 100 * (1/1 + 0/2 + 2/3) / 3
    assert mape(ACTUAL, FORECAST) == pytest.approx(500 / 9)


def test_smape_by_hand() -> None:
    # 200 * (1/3 + 0/4 + 2/8) / 3 = (200/3 + 0 + 50) / 3
    assert smape(ACTUAL, FORECAST) == pytest.approx(350 / 9)


def test_smape_zero_over_zero_counts_as_zero() -> None:
    # terms: 0/0 -> 0 and 200 * 2 / (1 + 3) = 100
    assert smape([0.0, 1.0], [0.0, 3.0]) == pytest.approx(50.0)


def test_mape_with_zero_actual_is_nan_and_warns() -> None:
    with pytest.warns(MetricWarning, match="zero"):
        value = mape([0.0, 2.0], [1.0, 2.0])
    assert math.isnan(value)


def test_mase_with_season_by_hand() -> None:
    # seasonal differences (m=2) of [1, 3, 2, 5, 3, 7]: 1, 2, 1, 2 -> scale 1.5
    # errors 1 and 3 -> MAE 2 -> MASE 2 / 1.5
    insample = [1.0, 3.0, 2.0, 5.0, 3.0, 7.0]
    assert mase_scale(insample, season=2) == pytest.approx(1.5)
    assert mase([4.0, 8.0], [3.0, 5.0], insample, season=2) == pytest.approx(4 / 3)


def test_mase_falls_back_to_lag_one_for_short_history() -> None:
    # 2 values < season + 1 = 4, so m = 1: scale |4 - 1| = 3; error 3 -> MASE 1
    assert mase([2.0], [5.0], [1.0, 4.0], season=3) == pytest.approx(1.0)


def test_mase_scales_each_column_by_its_own_history() -> None:
    # column scales: mean(1, 2) = 1.5 and mean(4, 2) = 3; scaled errors 3/1.5 = 2 and 3/3 = 1
    insample = [[1.0, 10.0], [2.0, 14.0], [4.0, 16.0]]
    assert mase([[0.0, 0.0]], [[3.0, 3.0]], insample) == pytest.approx(1.5)


def test_mase_with_zero_scale_is_nan_and_warns() -> None:
    with pytest.warns(MetricWarning, match="zero or undefined"):
        value = mase([1.0], [2.0], [2.0, 2.0, 2.0])
    assert math.isnan(value)


def test_mase_rejects_one_value_history() -> None:
    with pytest.raises(DataError, match="`insample` has 1 value"):
        mase([1.0], [2.0], [2.0])


def test_coverage_by_hand_bounds_inclusive() -> None:
    # 1 in [0, 1] yes, 2 in [2, 3] yes, 3 in [4, 5] no, 4 in [0, 3] no
    value = coverage([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 4.0, 0.0], [1.0, 3.0, 5.0, 3.0])
    assert value == pytest.approx(0.5)


def test_coverage_rejects_crossed_bounds() -> None:
    with pytest.raises(DataError, match="`lower` exceeds `upper` at 1 position"):
        coverage([1.0, 2.0], [0.0, 3.0], [2.0, 2.5])


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # differences y - f are 2 and -1
        (0.1, (0.1 * 2 + 0.9 * 1) / 2),  # 0.55
        (0.5, (0.5 * 2 + 0.5 * 1) / 2),  # 0.75
        (0.9, (0.9 * 2 + 0.1 * 1) / 2),  # 0.95
    ],
)
def test_pinball_by_hand(q: float, expected: float) -> None:
    assert pinball([10.0, 10.0], [8.0, 11.0], q) == pytest.approx(expected)


def test_pinball_rejects_quantile_outside_unit_interval() -> None:
    with pytest.raises(ConfigError, match=r"`q` \(1.5\) must be strictly between 0 and 1"):
        pinball([1.0], [1.0], 1.5)


def test_interval_score_by_hand() -> None:
    # level 80 -> alpha 0.2 -> penalty factor 10; width 2 everywhere
    # y=1 inside: 2; y=5 above by 3: 2 + 30; y=-1 below by 1: 2 + 10
    value = interval_score([1.0, 5.0, -1.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0], level=80)
    assert value == pytest.approx(46 / 3)


def test_missing_pairs_are_skipped() -> None:
    # only the first pair is complete: |1 - 2| = 1
    assert mae([1.0, np.nan, 3.0], [2.0, 5.0, np.nan]) == pytest.approx(1.0)


def test_all_missing_gives_nan_and_warns() -> None:
    with pytest.warns(MetricWarning, match="no non-missing values"):
        value = rmse([np.nan], [1.0])
    assert math.isnan(value)


def test_metrics_broadcast_forecast_over_windows() -> None:
    actual = np.array([[[1.0], [2.0]], [[3.0], [4.0]]])  # [N=2, H=2, C=1]
    assert mae(actual, 2.0) == pytest.approx((1 + 0 + 1 + 2) / 4)


def test_mismatched_shapes_raise_data_error() -> None:
    with pytest.raises(DataError, match=r"shapes do not broadcast: `actual` \(3,\)"):
        mae([1.0, 2.0, 3.0], [1.0, 2.0])


def test_compute_metrics_names_and_values() -> None:
    insample = [1.0, 3.0, 2.0, 5.0, 3.0, 7.0]
    out = compute_metrics(
        [4.0, 8.0],
        [3.0, 5.0],
        insample=insample,
        season=2,
        lower=[3.0, 6.0],
        upper=[5.0, 7.0],
        level=80,
    )
    assert list(out) == ["mae", "rmse", "mape", "smape", "mase", "coverage_80", "interval_score_80"]
    assert out["mae"] == pytest.approx(2.0)
    assert out["mase"] == pytest.approx(4 / 3)
    assert out["coverage_80"] == pytest.approx(0.5)  # 4 in [3, 5]; 8 above [6, 7]
    assert out["interval_score_80"] == pytest.approx((2 + 1 + 10 * 1) / 2)


def test_compute_metrics_accepts_several_intervals() -> None:
    out = compute_metrics([1.0], [1.0], intervals={95: ([0.0], [2.0]), 80: ([1.5], [2.0])})
    assert list(out)[4:] == ["coverage_80", "interval_score_80", "coverage_95", "interval_score_95"]
    assert out["coverage_80"] == 0.0
    assert out["coverage_95"] == 1.0


def test_compute_metrics_needs_lower_upper_and_level_together() -> None:
    with pytest.raises(ConfigError, match="`lower`, `upper` and `level` must be given together"):
        compute_metrics([1.0], [1.0], lower=[0.0], upper=[2.0])


def test_level_name_keeps_fractions() -> None:
    assert (level_name(80), level_name(97.5)) == ("80", "97.5")


def test_metrics_by_step_by_hand() -> None:
    actual = np.array([[[1.0], [2.0]], [[3.0], [4.0]]])  # [N=2, H=2, C=1]
    forecast = np.array([[[2.0], [2.0]], [[3.0], [6.0]]])
    # step 0 errors 1, 0; step 1 errors 0, 2
    out = metrics_by_step(actual, forecast)
    np.testing.assert_allclose(out["mae"], [0.5, 1.0])
    np.testing.assert_allclose(out["rmse"], [math.sqrt(0.5), math.sqrt(2.0)])
    np.testing.assert_allclose(out["mape"], [100 * (1 / 1) / 2, 100 * (2 / 4) / 2])
    assert set(out) == {"mae", "rmse", "mape", "smape"}


def test_metrics_by_step_adds_mase_with_insample() -> None:
    actual = np.ones((2, 3, 1))
    forecast = np.full((2, 3, 1), 2.0)
    out = metrics_by_step(actual, forecast, insample=[0.0, 2.0, 4.0])  # scale 2
    np.testing.assert_allclose(out["mase"], [0.5, 0.5, 0.5])


def test_metrics_by_step_requires_three_axes() -> None:
    with pytest.raises(DataError, match=r"must both have shape \[N, H, C\]"):
        metrics_by_step(np.zeros((2, 3)), np.zeros((2, 3)))


def test_season_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"`season` \(0\) must be a whole number >= 1"):
        mase([1.0], [1.0], [1.0, 2.0], season=0)
