"""Season lengths, frequency kinds, calendar features and time-column guessing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from elman.data import calendar_features, freq_kind, guess_time_column, read_one, season_length
from elman.errors import ConfigError


@pytest.mark.parametrize(
    ("freq", "season"),
    [
        ("Y", 1),
        ("YS-JAN", 1),
        ("Q", 4),
        ("QS-OCT", 4),
        ("M", 12),
        ("MS", 12),
        ("ME", 12),
        ("W-SAT", 52),
        ("W", 52),
        ("2W", 26),
        ("D", 7),
        ("B", 5),
        ("h", 24),
        ("2h", 12),
        ("30min", 48),
        ("15min", 96),
        (None, 1),
    ],
)
def test_season_length(freq: str | None, season: int) -> None:
    assert season_length(freq) == season


def test_season_length_needs_two_full_seasons() -> None:
    assert season_length("M", n=30) == 12
    assert season_length("M", n=20) == 1


def test_unknown_frequency_is_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown frequency 'fortnightly'"):
        season_length("fortnightly")


@pytest.mark.parametrize(
    ("freq", "kind"),
    [
        ("Y", "year"),
        ("Q", "quarter"),
        ("M", "month"),
        ("W-SAT", "week"),
        ("D", "day"),
        ("h", "subday"),
        ("30min", "subday"),
        (None, None),
    ],
)
def test_freq_kind(freq: str | None, kind: str | None) -> None:
    assert freq_kind(freq) == kind


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["Date", "sales"], "Date"),
        (["sales", "order_date"], "order_date"),
        (["ds", "y"], "ds"),
        (["Month", "passengers"], "Month"),
        (["units_per_day", "sales"], None),
        (["a", "b"], None),
    ],
)
def test_guess_time_column(columns: list[str], expected: str | None) -> None:
    assert guess_time_column(columns) == expected


@pytest.mark.parametrize(
    ("index", "columns"),
    [
        (pd.period_range("2000Q1", periods=8, freq="Q"), ["quarter"]),
        (pd.period_range("2000-01", periods=8, freq="M"), ["month"]),
        (pd.date_range("2024-01-06", periods=8, freq="W-SAT"), ["dayofyear"]),
        (pd.date_range("2024-01-01", periods=8, freq="D"), ["dayofweek", "dayofyear"]),
        (pd.date_range("2024-01-01", periods=8, freq="h"), ["hour", "dayofweek"]),
        (pd.period_range("2000", periods=8, freq="Y"), []),
        (pd.RangeIndex(8), []),
    ],
)
def test_calendar_features_by_frequency(index: pd.Index, columns: list[str]) -> None:
    feats = calendar_features(index)
    expected = [f"cal_{c}_{part}" for c in columns for part in ("sin", "cos")]
    assert sorted(feats.columns) == sorted(expected)
    assert feats.index.equals(index)
    assert np.all(np.abs(feats.to_numpy()) <= 1.0)


def test_calendar_features_continue_on_future_index() -> None:
    series = read_one("builtin:airline", calendar=True)
    future = calendar_features(series.future_index(12), series.freq)
    np.testing.assert_allclose(future.to_numpy(), series.values[-12:, 1:])


def test_hour_of_day_cycle() -> None:
    feats = calendar_features(pd.date_range("2024-01-01", periods=48, freq="h"))
    np.testing.assert_allclose(feats["cal_hour_sin"].to_numpy()[:24], feats["cal_hour_sin"][24:])
    assert feats["cal_hour_cos"].iloc[0] == pytest.approx(1.0)
