"""Every reader error is one clean DataError/ConfigError whose message says what, where, how."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elman.data import read_one, read_series
from elman.errors import ConfigError, DataError


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = "date,units,price\n2024-01-01,1,5\n2024-01-02,2,6\n2024-01-03,3,7\n2024-01-04,5,8\n"


# ---------------------------------------------------------------- files


def test_file_not_found_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"file not found: .*nope\.csv"):
        read_series(tmp_path / "nope.csv")


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory, not a data file"):
        read_series(tmp_path)


def test_unknown_suffix_lists_supported_ones(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, "data.xlsx")
    with pytest.raises(DataError, match=r"suffix '\.xlsx' is not one of \.csv, \.txt"):
        read_series(path)


@pytest.mark.parametrize("text", ["", "   \n\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(DataError, match="data.csv is empty"):
        read_series(write(tmp_path, text))


def test_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has a header but no data rows"):
        read_series(write(tmp_path, "date,value\n"))


def test_binary_junk(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="looks like a binary file"):
        read_series(path)


def test_parquet_named_csv(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    pd.DataFrame({"y": [1.0, 2.0, 3.0]}).to_parquet(path)
    with pytest.raises(DataError, match="is a Parquet file; rename it to end in .parquet"):
        read_series(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes("y,name\n1,caf\xe9\n2,b\n".encode("latin-1"))
    with pytest.raises(DataError, match="is not UTF-8 text"):
        read_series(path, target="y")


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"cannot read .*data\.parquet as Parquet"):
        read_series(path)


def test_semicolon_file_read_as_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "date;sales\n2024-01-01;1\n2024-01-02;2\n")
    with pytest.raises(DataError, match=r"looks like ';'-separated; .*--sep ';'"):
        read_series(path)


def test_tab_file_read_as_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "date\tsales\n2024-01-01\t1\n2024-01-02\t2\n")
    with pytest.raises(DataError, match=r"looks like '\\t'-separated"):
        read_series(path)


def test_semicolon_file_reads_with_sep(tmp_path: Path) -> None:
    path = write(tmp_path, "date;sales\n2024-01-01;1\n2024-01-02;2\n2024-01-03;4\n")
    assert read_one(path, sep=";").targets == ["sales"]


def test_header_that_looks_like_data(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="looks like data, not a header"):
        read_series(write(tmp_path, "1.5\n2.5\n3.5\n"))


def test_ragged_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"cannot parse .*Expected 2 fields in line 3, saw 3"):
        read_series(path)


# ---------------------------------------------------------------- columns


def test_target_not_found_lists_columns(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    with pytest.raises(
        DataError,
        match=r"column 'sales' not found in .*data\.csv; available columns: date, units, "
        r"price \(use --target\)",
    ):
        read_series(path, target="sales")


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"time_col": "when"}, "--time-col"),
        ({"covariates": ["x"]}, "--covariates"),
        ({"future_covariates": ["x"]}, "--future-covariates"),
        ({"series_id": "store"}, "--series-id"),
    ],
)
def test_other_missing_columns_name_the_option(tmp_path: Path, kwargs: dict, option: str) -> None:
    with pytest.raises(DataError, match=f"not found in .*\\(use {option}\\)"):
        read_series(write(tmp_path, GOOD), target="units", **kwargs)


def test_ambiguous_target_asks_for_target(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot tell which column .*units, price .*--target"):
        read_series(write(tmp_path, GOOD))


def test_no_column_left(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has no column left to forecast"):
        read_series(write(tmp_path, "date\n2024-01-01\n"))


def test_column_with_two_roles_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"column 'units' is given two roles \(target and "):
        read_series(write(tmp_path, GOOD), target="units", covariates=["units"])


def test_duplicate_column_names_in_frame() -> None:
    frame = pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], columns=["y", " y"])
    with pytest.raises(DataError, match="column name 'y' appears twice"):
        read_series(frame)


def test_date_column_as_target(tmp_path: Path) -> None:
    frame = pd.DataFrame({"when": pd.date_range("2024", periods=3), "y": [1.0, 2, 3]})
    with pytest.raises(DataError, match="column 'when' in <DataFrame> holds datetime64"):
        read_series(frame, target=["y", "when"])


# ---------------------------------------------------------------- values


def test_non_numeric_value_names_row_column_value(tmp_path: Path) -> None:
    text = "date,units\n" + "".join(f"2024-01-{d:02d},{d}\n" for d in range(1, 16))
    text += "2024-01-16,abc\n"
    with pytest.raises(
        DataError, match=r"non-numeric value 'abc' in .*data\.csv at row 17, column 'units'"
    ):
        read_series(write(tmp_path, text))


def test_thousands_separator_is_non_numeric(tmp_path: Path) -> None:
    text = 'date,units\n2024-01-01,1\n2024-01-02,"1,234"\n'
    with pytest.raises(DataError, match=r"non-numeric value '1,234' .* at row 3"):
        read_series(write(tmp_path, text))


@pytest.mark.parametrize("cell", ["inf", "-inf", "1e400"])
def test_infinite_value(tmp_path: Path, cell: str) -> None:
    text = f"date,units\n2024-01-01,1\n2024-01-02,{cell}\n2024-01-03,2\n"
    with pytest.raises(DataError, match=r"infinite or too large value in .* at row 3, column"):
        read_series(write(tmp_path, text))


def test_missing_value_names_row_and_policy(tmp_path: Path) -> None:
    text = "date,units\n2024-01-01,1\n2024-01-02,\n2024-01-03,2\n"
    with pytest.raises(
        DataError,
        match=r"missing value in .* at row 3 \(2024-01-02\), column 'units'; "
        r"use --missing interpolate\|ffill\|drop",
    ):
        read_series(write(tmp_path, text))


def test_missing_row_in_grid_names_the_gap(tmp_path: Path) -> None:
    text = "date,units\n2024-01-01,1\n2024-01-02,2\n2024-01-04,4\n2024-01-05,5\n"
    with pytest.raises(
        DataError, match=r"no row for 2024-01-03 in .*: the time stamps jump from row 3 to row 4"
    ):
        read_series(write(tmp_path, text))


def test_column_without_values(tmp_path: Path) -> None:
    text = "date,units,extra\n2024-01-01,1,\n2024-01-02,2,\n"
    with pytest.raises(DataError, match="column 'extra' in .* has no values"):
        read_series(write(tmp_path, text), target="units", covariates=["extra"])


def test_constant_target(tmp_path: Path) -> None:
    text = "date,units\n2024-01-01,5\n2024-01-02,5\n2024-01-03,5\n"
    with pytest.raises(DataError, match=r"target column 'units' in .* is constant \(every value"):
        read_series(write(tmp_path, text))


def test_drop_everything(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan], "b": [np.nan, 2.0]})
    with pytest.raises(DataError, match="no rows left in <DataFrame> after dropping"):
        read_series(frame, target="a", covariates=["b"], missing="drop")


# ---------------------------------------------------------------- time stamps


def test_duplicate_stamp_names_both_rows(tmp_path: Path) -> None:
    text = "date,y\n2024-01-01,1\n2024-01-02,2\n2024-01-02,3\n"
    with pytest.raises(
        DataError, match=r"duplicate time stamp 2024-01-02 in .* at row 4, .*\(same as row 3\)"
    ):
        read_series(write(tmp_path, text))


def test_unsorted_stamps_name_the_row(tmp_path: Path) -> None:
    text = "date,y\n2024-01-01,1\n2024-01-03,2\n2024-01-02,3\n"
    with pytest.raises(
        DataError,
        match=r"not in increasing order .*: row 4 \(2024-01-02\) comes after row 3 "
        r"\(2024-01-03\); sort the data by 'date'",
    ):
        read_series(write(tmp_path, text))


def test_irregular_stamps_name_the_first_bad_row(tmp_path: Path) -> None:
    text = "t,y\n0,1\n10,2\n20,3\n27,4\n40,5\n"
    with pytest.raises(DataError, match=r"irregular time stamps in .*: row 5, column 't'"):
        read_series(write(tmp_path, text), time_col="t")


def test_irregular_dates(tmp_path: Path) -> None:
    stamps = ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00", "2024-01-01 02:25"]
    text = "time,y\n" + "".join(f"{s},{i}\n" for i, s in enumerate(stamps))
    with pytest.raises(DataError, match="irregular time stamps"):
        read_series(write(tmp_path, text))


def test_too_sparse_stamps(tmp_path: Path) -> None:
    text = "t,y\n0,1\n1,2\n2,3\n1000000,4\n"
    with pytest.raises(DataError, match="too sparse: the gap between row 4 and row 5"):
        read_series(write(tmp_path, text), time_col="t")


def test_unreadable_stamp(tmp_path: Path) -> None:
    text = "date,y\n2024-01-01,1\nsoon,2\n"
    with pytest.raises(
        DataError, match=r"cannot read time stamp 'soon' in .* at row 3, column 'date'"
    ):
        read_series(write(tmp_path, text))


def test_missing_stamp(tmp_path: Path) -> None:
    text = "date,y\n2024-01-01,1\n,2\n2024-01-03,3\n"
    with pytest.raises(DataError, match="missing time stamp in .* at row 3, column 'date'"):
        read_series(write(tmp_path, text))


def test_invalid_month(tmp_path: Path) -> None:
    text = "month,y\n1949-11,1\n1949-12,2\n1949-13,3\n"
    with pytest.raises(DataError, match=r"month '1949-13' in .* at row 4, .*not a valid YYYY-MM"):
        read_series(write(tmp_path, text))


def test_fractional_time_stamp() -> None:
    frame = pd.DataFrame({"t": [0.0, 0.5, 1.0], "y": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match=r"time stamp 0\.5 in <DataFrame> at row 3"):
        read_series(frame, time_col="t")


# ---------------------------------------------------------------- options and sources


def test_unknown_missing_policy_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"missing='zero' is not one of error, interpolate"):
        read_series(np.arange(5.0), missing="zero")


def test_bad_season_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"season must be a whole number >= 1, got 0"):
        read_series(np.arange(5.0), season=0)


def test_unsupported_source_type() -> None:
    with pytest.raises(DataError, match="cannot read data from a dict"):
        read_series({"y": [1, 2]})  # type: ignore[arg-type]


def test_array_with_three_dimensions() -> None:
    with pytest.raises(DataError, match=r"array must be 1-D or 2-D .*got shape \(2, 2, 2\)"):
        read_series(np.zeros((2, 2, 2)))


def test_unknown_builtin_lists_names() -> None:
    with pytest.raises(DataError, match=r"unknown built-in dataset 'nope'; valid names: sine, "):
        read_series("builtin:nope")


def test_missing_series_id_value(tmp_path: Path) -> None:
    text = "store,date,y\na,2024-01-01,1\n,2024-01-02,2\n"
    with pytest.raises(DataError, match="missing series id in .* at row 3, column 'store'"):
        read_series(write(tmp_path, text), series_id="store")


def test_error_in_one_series_names_its_id(tmp_path: Path) -> None:
    text = "store,date,y\na,2024-01-01,1\nb,2024-01-01,1\na,2024-01-02,x\nb,2024-01-02,2\n"
    with pytest.raises(
        DataError, match=r"non-numeric value 'x' in .* \(series 'a'\) at row 4, column 'y'"
    ):
        read_series(write(tmp_path, text), series_id="store")


def test_read_one_refuses_several_series() -> None:
    with pytest.raises(DataError, match=r"holds 12 series \(cpi, infl, .*pick one by id"):
        read_one("builtin:us_macro")


def test_read_one_unknown_selection() -> None:
    with pytest.raises(DataError, match="series 'gdp' not found in builtin:us_macro; ids: cpi"):
        read_one("builtin:us_macro", select="gdp")


def test_mixed_stamp_formats_name_the_odd_row(tmp_path: Path) -> None:
    text = "quarter,y\n1959Q1,1\n1959Q2,2\n1959-07,3\n"
    with pytest.raises(
        DataError, match=r"time stamp '1959-07' in .* at row 4, .*is not YYYYQn like the first row"
    ):
        read_series(write(tmp_path, text))
