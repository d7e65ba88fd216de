"""Series: structure, views, future index, validation and missing-value filling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from elman.data import Series, check_finite, check_length, fill_missing, validate
from elman.errors import ConfigError, DataError


def make(n: int = 10, index: pd.Index | None = None, freq: str | None = None) -> Series:
    values = np.column_stack([np.arange(n, dtype=float), np.ones(n), np.zeros(n)])
    return Series(
        values,
        index if index is not None else pd.RangeIndex(n),
        ["y"],
        ["past"],
        ["known"],
        freq=freq,
    )


def test_columns_and_target_values() -> None:
    series = make()
    assert series.columns == ["y", "past", "known"]
    assert series.target_values.shape == (10, 1)
    assert len(series) == 10


def test_one_dimensional_values_become_a_column() -> None:
    series = Series(np.arange(4.0), pd.RangeIndex(4), ["y"])
    assert series.values.shape == (4, 1) and series.values.dtype == np.float64


def test_slice_and_tail_share_memory() -> None:
    series = make()
    part = series.slice(2, 6)
    assert np.shares_memory(part.values, series.values)
    assert list(part.index) == [2, 3, 4, 5]
    assert series.tail(3).values[0, 0] == 7.0


def test_structure_errors() -> None:
    with pytest.raises(DataError, match="has 3 value columns but 2 names"):
        Series(np.zeros((4, 3)), pd.RangeIndex(4), ["a", "b"])
    with pytest.raises(DataError, match="has 4 rows but an index of length 3"):
        Series(np.zeros((4, 1)), pd.RangeIndex(3), ["a"])
    with pytest.raises(DataError, match="column 'a' is used twice"):
        Series(np.zeros((4, 2)), pd.RangeIndex(4), ["a"], ["a"])
    with pytest.raises(DataError, match="has no target column"):
        Series(np.zeros((4, 0)), pd.RangeIndex(4), [])


@pytest.mark.parametrize(
    ("index", "freq", "expected"),
    [
        (
            pd.period_range("1949-01", periods=5, freq="M"),
            "M",
            pd.period_range("1949-06", periods=3, freq="M"),
        ),
        (
            pd.period_range("2000", periods=5, freq="Y"),
            "Y",
            pd.period_range("2005", periods=3, freq="Y"),
        ),
        (
            pd.period_range("2000Q1", periods=5, freq="Q"),
            "Q",
            pd.period_range("2001Q2", periods=3, freq="Q"),
        ),
        (
            pd.date_range("2024-01-06", periods=5, freq="W-SAT"),
            "W-SAT",
            pd.date_range("2024-02-10", periods=3, freq="W-SAT"),
        ),
        (
            pd.date_range("2024-01-01", periods=5, freq="30min"),
            "30min",
            pd.date_range("2024-01-01 02:30", periods=3, freq="30min"),
        ),
        (pd.RangeIndex(0, 10, 2), None, pd.RangeIndex(10, 16, 2)),
    ],
)
def test_future_index_continues_at_frequency(index, freq, expected) -> None:
    series = Series(np.arange(5.0), index, ["y"], freq=freq)
    result = series.future_index(3)
    assert list(result) == list(expected)
    assert type(result) is type(expected)


def test_future_index_needs_positive_horizon() -> None:
    with pytest.raises(ConfigError, match="horizon must be >= 1, got 0"):
        make().future_index(0)


def test_future_index_of_datetime_without_frequency() -> None:
    index = pd.DatetimeIndex(["2024-01-01", "2024-01-03", "2024-01-04"])
    with pytest.raises(DataError, match="its frequency is unknown"):
        Series(np.arange(3.0), index, ["y"]).future_index(2)


def test_season_defaults_from_frequency() -> None:
    index = pd.period_range("2000-01", periods=10, freq="M")
    assert Series(np.arange(10.0), index, ["y"], freq="M").season == 12
    assert make().season == 1


def test_check_length_message() -> None:
    series = Series(np.arange(30.0), pd.RangeIndex(30), ["y"])
    with pytest.raises(
        DataError,
        match=r"series is too short: 30 points, but lookback 24 \+ horizon 12 needs at least 36 "
        r"\(lower --lookback or --horizon\)",
    ):
        check_length(series, 24, 12)
    check_length(series, 20, 10)


def test_check_length_names_series_id() -> None:
    series = Series(np.arange(5.0), pd.RangeIndex(5), ["y"], series_id="cpi")
    with pytest.raises(DataError, match="series 'cpi' is too short: 5 points"):
        check_length(series, 4, 2)


@pytest.mark.parametrize(("lookback", "horizon", "option"), [(0, 1, "lookback"), (1, 0, "horizon")])
def test_check_length_rejects_bad_sizes(lookback: int, horizon: int, option: str) -> None:
    with pytest.raises(ConfigError, match=f"{option} must be >= 1"):
        check_length(make(), lookback, horizon)


def test_check_finite_names_row_and_column() -> None:
    series = make(index=pd.date_range("2024-01-01", periods=10, freq="D"), freq="D")
    series.values[3, 1] = np.inf
    with pytest.raises(
        DataError,
        match=r"infinite value in <memory> at row 5 \(2024-01-04\), "
        r"column 'past'",
    ):
        check_finite(series)
    series.values[3, 1] = np.nan
    with pytest.raises(DataError, match="missing value .*use --missing"):
        check_finite(series)


def test_validate_rejects_constant_target() -> None:
    series = Series(np.full(5, 2.0), pd.RangeIndex(5), ["flat"])
    with pytest.raises(DataError, match=r"target column 'flat' in <memory> is constant"):
        validate(series)


def test_fill_missing_policies() -> None:
    values = np.array([[np.nan], [1.0], [np.nan], [3.0], [np.nan]])
    interp, keep = fill_missing(values, "interpolate")
    np.testing.assert_allclose(interp[:, 0], [1, 1, 2, 3, 3])
    assert keep.all()
    ffill, _ = fill_missing(values, "ffill")
    np.testing.assert_allclose(ffill[:, 0], [1, 1, 1, 3, 3])
    dropped, keep = fill_missing(values, "drop")
    np.testing.assert_allclose(dropped[:, 0], [1, 3])
    assert keep.tolist() == [False, True, False, True, False]
    assert np.isnan(values[0, 0])  # input untouched


def test_fill_missing_unknown_policy() -> None:
    with pytest.raises(ConfigError, match="missing='mean' is not one of"):
        fill_missing(np.zeros((2, 1)), "mean")


def test_to_frame() -> None:
    frame = make().to_frame()
    assert list(frame.columns) == ["y", "past", "known"] and frame.shape == (10, 3)
