"""Reading series: sources, column roles, time index and frequency, gaps and missing values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elman.data import dataset_path, read_one, read_series
from elman.errors import DataError


def write_frame(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv") -> Path:
    path = tmp_path / name
    if path.suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if path.suffix == ".tsv" else ",")
    return path


def wave(n: int) -> np.ndarray:
    return np.sin(np.arange(n) / 3.0) + np.arange(n) * 0.01


# ---------------------------------------------------------------- frequency inference


@pytest.mark.parametrize(
    ("stamps", "freq", "index_type"),
    [
        (pd.date_range("2024-01-01", periods=40, freq="D").strftime("%Y-%m-%d"), "D", "dt"),
        (pd.date_range("2024-01-01", periods=40, freq="h").astype(str), "h", "dt"),
        (pd.date_range("2024-01-01", periods=40, freq="30min").astype(str), "30min", "dt"),
        (pd.date_range("2024-01-06", periods=40, freq="W-SAT").strftime("%Y-%m-%d"), "W-SAT", "dt"),
        (pd.date_range("2024-01-07", periods=40, freq="W-SUN").strftime("%Y-%m-%d"), "W-SUN", "dt"),
        (pd.date_range("2000-01-01", periods=40, freq="MS").strftime("%Y-%m-%d"), "MS", "dt"),
        (pd.period_range("2000-01", periods=40, freq="M").astype(str), "M", "period"),
        ([f"{1990 + i // 4}Q{i % 4 + 1}" for i in range(40)], "Q", "period"),
        ([str(1900 + i) for i in range(40)], "Y", "period"),
        ([str(i) for i in range(40)], None, "range"),
    ],
)
def test_frequency_inferred_from_csv(tmp_path: Path, stamps, freq, index_type) -> None:
    path = write_frame(tmp_path, pd.DataFrame({"time": list(stamps), "value": wave(40)}))
    series = read_one(path)
    assert series.freq == freq
    expected = {"dt": pd.DatetimeIndex, "period": pd.PeriodIndex, "range": pd.RangeIndex}
    assert isinstance(series.index, expected[index_type])
    assert len(series) == 40
    np.testing.assert_allclose(series.target_values[:, 0], wave(40))


def test_integer_time_column_gives_range_index(tmp_path: Path) -> None:
    frame = pd.DataFrame({"t": np.arange(5, 45), "value": wave(40)})
    series = read_one(write_frame(tmp_path, frame), time_col="t")
    assert isinstance(series.index, pd.RangeIndex)
    assert series.index[0] == 5 and series.freq is None


def test_quarter_spellings(tmp_path: Path) -> None:
    stamps = ["1959Q1", "1959-Q2", "1959 Q3", "1959q4", "1960Q1"]
    series = read_one(write_frame(tmp_path, pd.DataFrame({"quarter": stamps, "y": wave(5)})))
    assert series.freq == "Q"
    assert series.index[-1] == pd.Period("1960Q1", freq="Q")


def test_frame_with_datetime_index_uses_it() -> None:
    index = pd.date_range("2024-01-01", periods=30, freq="h", name="when")
    series = read_one(pd.DataFrame({"load": wave(30)}, index=index))
    assert series.freq == "h"
    assert series.index.equals(index)


def test_pandas_series_source() -> None:
    index = pd.period_range("2000-01", periods=24, freq="M")
    series = read_one(pd.Series(wave(24), index=index, name="sales"))
    assert series.targets == ["sales"] and series.freq == "M" and series.season == 12


def test_numpy_sources() -> None:
    one = read_one(wave(30))
    assert one.targets == ["y"] and isinstance(one.index, pd.RangeIndex)
    many = read_one(np.stack([wave(30), wave(30) * 2], axis=1), target=["y0", "y1"])
    assert many.targets == ["y0", "y1"] and many.values.shape == (30, 2)


@pytest.mark.parametrize("name", ["data.tsv", "data.parquet", "data.pq", "data.txt"])
def test_other_file_formats(tmp_path: Path, name: str) -> None:
    frame = pd.DataFrame({"date": pd.date_range("2024", periods=20, freq="D"), "y": wave(20)})
    if not name.endswith(("parquet", "pq")):
        frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    series = read_one(write_frame(tmp_path, frame, name))
    assert series.freq == "D" and len(series) == 20


def test_auto_target_skips_text_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "date": ["2024-01-01", "2024-01-02", "2024-01-03"],
            "store": ["a", "b", "c"],
            "sales": [1.0, 2.0, 4.0],
        }
    )
    assert read_one(write_frame(tmp_path, frame)).targets == ["sales"]


def test_roles_and_column_order(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2024", periods=10).strftime("%Y-%m-%d"),
            "promo": np.arange(10) % 2,
            "price": wave(10),
            "sales": wave(10) * 3,
        }
    )
    series = read_one(
        write_frame(tmp_path, frame),
        target="sales",
        covariates=["price"],
        future_covariates=["promo"],
    )
    assert series.columns == ["sales", "price", "promo"]
    np.testing.assert_allclose(series.values[:, 2], np.arange(10) % 2)


def test_na_tokens_and_blanks_are_missing(tmp_path: Path) -> None:
    text = "date,y\n2024-01-01,1\n2024-01-02, NA \n2024-01-03,null\n2024-01-04,4\n"
    path = tmp_path / "d.csv"
    path.write_text(text)
    series = read_one(path, missing="interpolate")
    np.testing.assert_allclose(series.values[:, 0], [1, 2, 3, 4])


# ---------------------------------------------------------------- gaps and missing policies


def co2_text(drop_rows: tuple[int, ...] = ()) -> str:
    lines = Path(dataset_path("co2")).read_text().splitlines()
    return "\n".join(line for i, line in enumerate(lines) if i not in drop_rows) + "\n"


def test_co2_gaps_are_empty_cells_not_missing_rows() -> None:
    raw = pd.read_csv(dataset_path("co2"))
    assert raw["co2"].isna().sum() == 59
    steps = pd.to_datetime(raw["week"]).diff().dropna()
    assert (steps == pd.Timedelta(days=7)).all()


def test_co2_error_policy_names_first_gap() -> None:
    with pytest.raises(DataError, match=r"missing value in .* at row 8 \(1958-05-10\), column"):
        read_series("builtin:co2")


def test_co2_interpolate_is_linear_in_time() -> None:
    series = read_one("builtin:co2", missing="interpolate")
    raw = pd.read_csv(dataset_path("co2"))["co2"].to_numpy()
    assert len(series) == 2284 and np.isfinite(series.values).all()
    # row 8 (position 6) lies between positions 5 and 7, both observed
    assert series.values[6, 0] == pytest.approx((raw[5] + raw[7]) / 2)
    np.testing.assert_array_equal(series.values[~np.isnan(raw), 0], raw[~np.isnan(raw)])


def test_co2_ffill_repeats_last_value() -> None:
    series = read_one("builtin:co2", missing="ffill")
    raw = pd.read_csv(dataset_path("co2"))["co2"].to_numpy()
    assert series.values[6, 0] == raw[5]
    assert series.values[9, 0] == series.values[10, 0] == raw[8]


def test_co2_drop_keeps_frequency_but_leaves_holes() -> None:
    series = read_one("builtin:co2", missing="drop")
    assert len(series) == 2284 - 59
    assert series.freq == "W-SAT"
    assert series.future_index(1)[0] == pd.Timestamp("2002-01-05")


def test_co2_missing_rows_are_reindexed_onto_the_grid(tmp_path: Path) -> None:
    path = tmp_path / "co2.csv"
    path.write_text(co2_text(drop_rows=(3, 4, 100)))  # file lines 4, 5 and 101 removed
    with pytest.raises(DataError, match=r"no row for 1958-04-12 .*jump from row 3 to row 4"):
        read_series(path)
    series = read_one(path, missing="interpolate")
    assert len(series) == 2284 and series.freq == "W-SAT"
    assert series.index.equals(pd.date_range("1958-03-29", periods=2284, freq="W-SAT"))
    observed = pd.read_csv(path)["co2"].notna().sum()
    assert len(read_one(path, missing="drop")) == observed


def test_missing_rows_each_policy(tmp_path: Path) -> None:
    days = pd.date_range("2024-01-01", periods=10, freq="D")
    keep = [0, 1, 2, 5, 6, 7, 8, 9]  # 2024-01-04 and 01-05 have no rows
    frame = pd.DataFrame({"date": days[keep].strftime("%Y-%m-%d"), "y": np.arange(10.0)[keep]})
    path = write_frame(tmp_path, frame)
    interp = read_one(path, missing="interpolate")
    assert interp.freq == "D" and len(interp) == 10
    np.testing.assert_allclose(interp.values[:, 0], np.arange(10.0))
    ffill = read_one(path, missing="ffill")
    np.testing.assert_allclose(ffill.values[3:5, 0], [2.0, 2.0])
    dropped = read_one(path, missing="drop")
    assert len(dropped) == 8 and dropped.freq == "D"


def test_leading_and_trailing_gaps_are_filled() -> None:
    frame = pd.DataFrame({"y": [np.nan, np.nan, 1.0, 3.0, np.nan]})
    np.testing.assert_allclose(read_one(frame, missing="interpolate").values[:, 0], [1, 1, 1, 3, 3])
    np.testing.assert_allclose(read_one(frame, missing="ffill").values[:, 0], [1, 1, 1, 3, 3])


# ---------------------------------------------------------------- long format


def test_long_format_one_series_per_sorted_id() -> None:
    found = read_series("builtin:us_macro")
    ids = [s.series_id for s in found]
    assert ids == sorted(ids) and len(ids) == 12
    for series in found:
        assert len(series) == 203 and series.freq == "Q"
        assert series.index[0] == pd.Period("1959Q1", freq="Q")


def test_long_format_keeps_file_values(tmp_path: Path) -> None:
    text = "store,date,y\nb,2024-01-01,10\na,2024-01-01,1\nb,2024-01-02,20\na,2024-01-02,2\n"
    path = tmp_path / "long.csv"
    path.write_text(text)
    a, b = read_series(path, series_id="store")
    assert (a.series_id, b.series_id) == ("a", "b")
    np.testing.assert_allclose(b.values[:, 0], [10, 20])


def test_read_one_selects_an_id() -> None:
    series = read_one("builtin:us_macro", select="unemp")
    assert series.series_id == "unemp" and series.targets == ["value"]


# ---------------------------------------------------------------- calendar features


def test_calendar_columns_are_future_covariates() -> None:
    series = read_one("builtin:airline", calendar=True)
    assert series.future_covariates == ["cal_month_sin", "cal_month_cos"]
    np.testing.assert_allclose(series.values[12:24, 1:], series.values[:12, 1:])


def test_calendar_on_yearly_adds_nothing() -> None:
    series = read_one("builtin:nile", calendar=True)
    assert series.future_covariates == []


def test_calendar_with_season_on_integer_index() -> None:
    series = read_one(np.sin(np.arange(48) / 2.0), calendar=True, season=12)
    assert series.future_covariates == ["cal_season_sin", "cal_season_cos"]
    assert series.season == 12


def test_quarterly_every_second_quarter_with_a_hole() -> None:
    stamps = pd.period_range("2000Q1", periods=10, freq="2Q")
    frame = pd.DataFrame({"quarter": stamps, "y": np.arange(10.0)}).drop(index=3)
    series = read_one(frame, missing="interpolate")
    assert series.freq == "2Q" and len(series) == 10 and series.season == 2
    np.testing.assert_allclose(series.values[:, 0], np.arange(10.0))


def test_nanosecond_jitter_is_not_filled_onto_a_huge_grid() -> None:
    stamps = pd.to_datetime(
        ["2024-01-01", "2024-01-01 00:00:00.000000001", "2030-01-01"], format="ISO8601"
    )
    with pytest.raises(DataError, match="too sparse"):
        read_series(pd.DataFrame({"time": stamps, "y": [1.0, 2.0, 3.0]}))
