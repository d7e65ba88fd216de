"""Hostile files for the reader: blank lines, dd/mm dates, decimal commas and thousands
separators, daylight-saving offsets, UTF-16, empty spreadsheet columns, huge cells.

Every file is written here, under ``tmp_path``. Each refusal is one line that says what,
where and how to fix it.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elman.cli.options import add_config_options, config_from_args
from elman.config import Config, DataConfig
from elman.data.io import read_one
from elman.errors import ConfigError, DataError

N = 61


def _values(n: int = N) -> list[str]:
    return [f"{10 + 5 * math.sin(i / 3) + 0.1 * i:.3f}" for i in range(n)]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _one_column_with_blank(tmp_path: Path, blank: str = "") -> Path:
    ys = _values()
    return _write(tmp_path / "blank.csv", ["y", *ys[:30], blank, *ys[30:]])


def _dated(tmp_path: Path, name: str = "dated.csv", blank_at: int | None = None) -> Path:
    days = pd.date_range("2023-01-01", periods=N, freq="D")
    lines = ["date,y,x"] + [
        f"{d:%Y-%m-%d},{y},{i}" for i, (d, y) in enumerate(zip(days, _values(), strict=True))
    ]
    if blank_at is not None:
        lines.insert(blank_at, "   ")
    return _write(tmp_path / name, lines)


# ---------------------------------------------------------------------------- 1 blank lines


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_blank_line_one_column_is_refused_naming_its_row(tmp_path: Path, blank: str) -> None:
    path = _one_column_with_blank(tmp_path, blank)
    with pytest.raises(DataError, match=r"^row 32 of .*blank\.csv is blank .*--missing") as err:
        read_one(path)
    assert "\n" not in str(err.value)


def test_blank_line_several_columns_is_refused_naming_its_row(tmp_path: Path) -> None:
    path = _dated(tmp_path, blank_at=31)  # after the header and 30 rows: line 32
    with pytest.raises(DataError, match=r"row 32 of .*dated\.csv is blank"):
        read_one(path, target="y")


def test_blank_line_is_a_missing_value_under_interpolate(tmp_path: Path) -> None:
    ys = np.array(_values(), dtype=float)
    series = read_one(_one_column_with_blank(tmp_path), missing="interpolate")
    assert len(series) == N + 1  # 61 values and the blank line between them
    got = series.values[:, 0]
    np.testing.assert_allclose(got[:30], ys[:30])
    np.testing.assert_allclose(got[31:], ys[30:])  # nothing moved up a step
    assert got[30] == pytest.approx((ys[29] + ys[30]) / 2)


def test_blank_line_under_ffill_and_drop(tmp_path: Path) -> None:
    ys = np.array(_values(), dtype=float)
    path = _one_column_with_blank(tmp_path)
    assert read_one(path, missing="ffill").values[30, 0] == pytest.approx(ys[29])
    dropped = read_one(path, missing="drop")
    assert len(dropped) == N
    np.testing.assert_allclose(dropped.values[:, 0], ys)


def test_blank_line_with_a_time_column_leaves_no_hole(tmp_path: Path) -> None:
    series = read_one(_dated(tmp_path, blank_at=31), target="y", missing="interpolate")
    assert len(series) == N
    assert series.index[0] == pd.Timestamp("2023-01-01")


def test_row_numbers_after_a_blank_line_are_file_lines(tmp_path: Path) -> None:
    ys = _values()
    path = _write(tmp_path / "late.csv", ["y", *ys[:10], "", *ys[10:40], "oops", *ys[40:]])
    # header = line 1, 10 values, the blank line 12, 30 values: 'oops' is line 43
    with pytest.raises(DataError, match=r"'oops' in .* at row 43, column 'y'"):
        read_one(path, missing="interpolate")


def test_trailing_blank_lines_are_not_rows(tmp_path: Path) -> None:
    path = tmp_path / "tail.csv"
    path.write_text("y\n" + "\n".join(_values()) + "\n\n\n  \n")
    assert len(read_one(path)) == N


def test_stream_counts_a_blank_line_as_a_bad_point(cli, tmp_path: Path) -> None:
    path = _one_column_with_blank(tmp_path)
    path.write_text(path.read_text().split("\n", 1)[1])  # numbers only, no header
    done = cli("stream", "--model-type", "elman", "--hidden-size", "4", "--warmup", "8",
               "--input", str(path), "--output", str(tmp_path / "out.csv"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "line 31: the line is blank (a missing value); point skipped" in done.stderr
    assert "1 bad skipped" in done.stderr
    stopped = cli("stream", "--model-type", "elman", "--hidden-size", "4", "--warmup", "8",
                  "--input", str(path), "--output", str(tmp_path / "out2.csv"),
                  "--on-bad", "error")  # fmt: skip
    assert stopped.returncode == 2
    assert stopped.stderr.startswith("elman: error: ") and "line 31: the line is blank" in (
        stopped.stderr
    )


# ---------------------------------------------------------------------------- 2 dd/mm dates


def _monthly_ddmm(tmp_path: Path, years: tuple[int, ...] = (2023,)) -> Path:
    ys = _values()
    lines = ["date,y"] + [
        f"01/{m:02d}/{yr},{ys[k]}"
        for k, (yr, m) in enumerate((yr, m) for yr in years for m in range(1, 13))
    ]
    return _write(tmp_path / "ddmm.csv", lines)


@pytest.mark.parametrize("years", [(2023,), (2021, 2022, 2023)])
def test_ambiguous_ddmm_dates_are_refused_naming_both_readings(
    tmp_path: Path, years: tuple[int, ...]
) -> None:
    with pytest.raises(DataError) as err:
        read_one(_monthly_ddmm(tmp_path, years))
    text = str(err.value)
    assert "read two ways: month first (%m/%d/%Y), row 3 is" in text
    assert "day first (%d/%m/%Y), it is" in text and "monthly (MS, season 12)" in text
    assert "--dayfirst or --date-format %d/%m/%Y" in text
    assert "\n" not in text


def test_dayfirst_and_date_format_read_monthly_ddmm(tmp_path: Path) -> None:
    path = _monthly_ddmm(tmp_path, (2022, 2023))
    for kwargs in ({"dayfirst": True}, {"date_format": "%d/%m/%Y"}):
        series = read_one(path, **kwargs)
        assert len(series) == 24 and series.season == 12
        assert series.index[1] == pd.Timestamp("2022-02-01")


def test_us_monthly_dates_stay_month_first(tmp_path: Path) -> None:
    ys = _values()
    path = _write(
        tmp_path / "us.csv", ["date,y"] + [f"{m:02d}/01/2023,{ys[m]}" for m in range(1, 13)]
    )
    series = read_one(path)
    assert series.index[1] == pd.Timestamp("2023-02-01") and series.season == 12


def test_date_format_mismatch_names_row_and_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'01/01/2023' .* at row 2, column 'date' does not "
                       r"match --date-format %Y-%m-%d"):  # fmt: skip
        read_one(_monthly_ddmm(tmp_path), date_format="%Y-%m-%d")


def test_too_sparse_says_how_the_dates_were_read(tmp_path: Path) -> None:
    days = [*pd.date_range("2023-01-01", periods=5, freq="D"), pd.Timestamp("2026-01-01")]
    path = _write(
        tmp_path / "sparse.csv", ["date,y"] + [f"{d:%Y-%m-%d},{i % 3}" for i, d in enumerate(days)]
    )
    with pytest.raises(
        DataError, match=r"too sparse.*\(dates read as ISO 8601 dates\).*--dayfirst"
    ):
        read_one(path)


def test_dayfirst_and_date_format_options_reach_the_config_and_toml(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_config_options(parser, ("data",))
    args = parser.parse_args(
        ["--dayfirst", "--date-format", "%d/%m/%Y", "--decimal", ",", "--thousands", " ",
         "--sep", ";"]
    )  # fmt: skip
    cfg = config_from_args(args, Config())
    assert (cfg.data.dayfirst, cfg.data.date_format) == (True, "%d/%m/%Y")
    assert (cfg.data.decimal, cfg.data.thousands) == (",", " ")
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml())
    assert Config.from_toml(path).data == cfg.data


# ---------------------------------------------------------------------------- 3 numbers


def _decimal_comma(tmp_path: Path) -> Path:
    days = pd.date_range("2023-01-01", periods=N, freq="D")
    lines = ["date;y"] + [
        f"{d:%Y-%m-%d};{y.replace('.', ',')}" for d, y in zip(days, _values(), strict=True)
    ]
    return _write(tmp_path / "comma.csv", lines)


def _thousands(tmp_path: Path) -> Path:
    days = pd.date_range("2023-01-01", periods=N, freq="D")
    lines = ["date,y"] + [
        f'{d:%Y-%m-%d},"{float(y) * 150_000:,.2f}"' for d, y in zip(days, _values(), strict=True)
    ]
    return _write(tmp_path / "thousands.csv", lines)


def test_decimal_comma_is_refused_naming_column_row_and_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'10,000' in .* at row 2, column 'y'; .*--decimal ','"):
        read_one(_decimal_comma(tmp_path), sep=";")


def test_decimal_option_reads_a_decimal_comma(tmp_path: Path) -> None:
    series = read_one(_decimal_comma(tmp_path), sep=";", decimal=",")
    np.testing.assert_allclose(series.values[:, 0], np.array(_values(), dtype=float))


def test_thousands_separators_are_refused_then_read(tmp_path: Path) -> None:
    path = _thousands(tmp_path)
    expected = (
        r"'1,500,000.00' in .* at row 2, column 'y'; it looks like a number with thousands "
        r"separators: read it with --thousands ','"
    )
    with pytest.raises(DataError, match=expected):
        read_one(path)
    series = read_one(path, thousands=",")
    assert series.values[0, 0] == pytest.approx(1_500_000.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decimal": ",", "sep": ","}, r"--decimal ',' is also --sep"),
        ({"decimal": ",", "thousands": ","}, r"--thousands ',' is also --decimal"),
        ({"decimal": "ab"}, r"--decimal 'ab' must be one punctuation"),
        ({"date_format": "dd/mm/yyyy"}, r"--date-format 'dd/mm/yyyy' has no % directive"),
    ],
)
def test_bad_reading_options_are_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DataConfig(**kwargs)


# ---------------------------------------------------------------------------- 4 offsets


def test_daylight_saving_offsets_are_converted_to_utc(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stamps = pd.date_range("2023-03-25 12:00", periods=48, freq="h", tz="Europe/Paris")
    frame = pd.DataFrame({"y": np.sin(np.arange(48) / 4.0)}, index=stamps.rename("time"))
    path = tmp_path / "dst.csv"
    frame.to_csv(path)
    assert "+01:00" in path.read_text() and "+02:00" in path.read_text()
    with caplog.at_level(logging.INFO, logger="elman"):
        series = read_one(path)
    assert len(series) == 48 and series.freq == "h"
    assert str(series.index.tz) == "UTC"
    assert series.index[0] == pd.Timestamp("2023-03-25 11:00", tz="UTC")
    assert any("converted them to UTC" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------- 5 files


def _dated_text() -> str:
    days = pd.date_range("2023-01-01", periods=N, freq="D")
    return "date,y\n" + "".join(f"{d:%Y-%m-%d},{y}\n" for d, y in zip(days, _values(), strict=True))


def test_utf16_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "utf16.csv"
    path.write_bytes(_dated_text().encode("utf-16"))
    assert len(read_one(path)) == N


def test_utf16_without_a_byte_order_mark_says_how_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "utf16le.csv"
    path.write_bytes(_dated_text().encode("utf-16-le"))
    with pytest.raises(DataError, match=r"looks like UTF-16 text .*save it as UTF-8 .*iconv"):
        read_one(path)


def test_empty_unnamed_spreadsheet_columns_are_dropped(tmp_path: Path) -> None:
    lines = _dated_text().splitlines()
    path = _write(tmp_path / "sheet.csv", [lines[0] + ",,", *(line + ",," for line in lines[1:])])
    series = read_one(path)  # 'y' is the only candidate left
    assert series.targets == ["y"] and len(series) == N


def test_a_huge_cell_is_quoted_short(tmp_path: Path) -> None:
    ys = _values()
    path = _write(tmp_path / "huge.csv", ["y", *ys[:20], "x" * 1_000_000, *ys[20:]])
    with pytest.raises(DataError) as err:
        read_one(path)
    text = str(err.value)
    assert len(text) < 400, len(text)
    assert "... (1000000 characters) in" in text and "at row 22, column 'y'" in text


def test_quote_caps_values() -> None:
    from elman.errors import quote

    assert quote("abc") == "'abc'"
    assert quote("y" * 500) == repr("y" * 80) + "... (500 characters)"


def test_stream_quotes_a_huge_value_short(cli, tmp_path: Path) -> None:
    ys = _values()
    path = _write(tmp_path / "in.txt", [*ys[:20], "z" * 100_000, *ys[20:]])
    done = cli("stream", "--model-type", "elman", "--hidden-size", "4", "--warmup", "8",
               "--input", str(path), "--output", str(tmp_path / "out.csv"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    warning = next(line for line in done.stderr.splitlines() if "line 21" in line)
    assert len(warning) < 300 and "(100000 characters) is not a number" in warning


# ---------------------------------------------------------------------------- the commands


def _prepare_passes_reading_options() -> bool:
    from elman.data import prepare

    return "dayfirst" in inspect.getsource(prepare.load_series)


@pytest.mark.skipif(
    not _prepare_passes_reading_options(),
    reason="data/prepare.load_series does not pass the reading options on yet",
)
def test_train_and_forecast_read_with_the_stored_options(cli, tmp_path: Path) -> None:
    path = _thousands(tmp_path)
    refused = cli("train", "--data", str(path), "--epochs", "1", "--out", str(tmp_path / "r0"))
    assert refused.returncode == 2 and "--thousands ','" in refused.stderr
    run = tmp_path / "run"
    done = cli("train", "--data", str(path), "--thousands", ",", "--epochs", "1",
               "--hidden-size", "4", "--out", str(run))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert 'thousands = ","' in (run / "config.toml").read_text()
    table = cli("forecast", str(run), "--data", str(path))
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("date,y")


def test_commands_accept_the_reading_options() -> None:
    from elman.cli import build_parser

    parser = build_parser()
    for command in ("train", "backtest"):
        args = parser.parse_args(
            [command, "--data", "x.csv", "--out", "o", "--dayfirst", "--decimal", ","]
        )
        assert args.dayfirst is True and args.decimal == ","
    args = parser.parse_args(["stream", "--model-type", "elman", "--input", "-",
                              "--decimal", ",", "--date-format", "%d/%m/%Y"])  # fmt: skip
    assert (args.decimal, args.date_format) == (",", "%d/%m/%Y")
