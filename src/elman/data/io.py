"""Readers: CSV, Parquet, DataFrame, pandas Series, numpy array or built-in dataset -> Series.

Every problem with the data ends in one :class:`~elman.errors.DataError` (or
:class:`~elman.errors.ConfigError` for a bad option) whose message names the file, row,
column and value, and says how to fix it; no pandas or pyarrow exception escapes.

Row numbers: the header is row 1, so the first data row is row 2 — the line number in a CSV
file and the row number a spreadsheet shows. In-memory sources (DataFrame, array) are
numbered the same way, as if written to CSV with a header. In long format the numbers refer
to the whole source, not to the rows of one series.

Time column: ``time_col`` if given; otherwise the index of a DataFrame with a
``DatetimeIndex``/``PeriodIndex``; otherwise the first column named like a time column (see
:func:`elman.data.stamps.guess_time_column`: ``date``, ``time``, ``timestamp``, ``ds``,
``week``, ``month``, ``year``, ``quarter``, ``period``, ... or ``*_date``/``*_time``);
otherwise none, and the series gets an integer index ``0..T-1``.

Missing rows: stamps that lie on a regular grid with holes are placed on the full grid and
the new rows count as missing values, handled by the ``missing`` policy like empty cells.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from elman.data.series import (
    FIRST_ROW,
    MISSING_POLICIES,
    NA_TOKENS,
    RowNumbers,
    Series,
    add_calendar,
    check_cells_finite,
    check_columns_observed,
    check_no_missing,
    check_not_constant,
    fill_missing,
    parse_columns,
    place_on_grid,
    row_array,
)
from elman.data.stamps import TimeOptions, as_text, guess_time_column
from elman.data.textfile import SUFFIXES as SUFFIXES  # re-exported: the supported suffixes
from elman.data.textfile import TextOptions, clean_columns, read_file
from elman.errors import ConfigError, DataError, quote

logger = logging.getLogger(__name__)

Source = str | os.PathLike[str] | pd.DataFrame | pd.Series | np.ndarray


@dataclass
class _Roles:
    time: str | None
    targets: list[str]
    covariates: list[str]
    future: list[str]
    series_id: str | None
    category: str | None = None  # one value per series (Series.category)


@dataclass
class _Loaded:
    frame: pd.DataFrame
    name: str
    defaults: dict[str, Any]
    rows: np.ndarray | None = None  # file row of each frame row; None: 2, 3, ...
    blank: np.ndarray | None = None  # blank rows of a text file (blank lines); None: none


def read_series(
    source: Source,
    target: str | Sequence[str] | None = None,
    time_col: str | None = None,
    covariates: Iterable[str] = (),
    future_covariates: Iterable[str] = (),
    series_id: str | None = None,
    category: str | None = None,
    missing: str = "error",
    calendar: bool = False,
    season: int | None = None,
    sep: str | None = None,
    *,
    dayfirst: bool = False,
    date_format: str | None = None,
    decimal: str = ".",
    thousands: str | None = None,
    constant_ok: bool = False,
) -> list[Series]:
    """Read one or many validated series.

    Args:
        source: Path to a ``.csv``/``.txt``/``.tsv``/``.parquet``/``.pq`` file, a DataFrame,
            a pandas Series, a numpy array (1-D -> column ``y``; 2-D ``[T, N]`` -> ``y0..yN-1``,
            or ``y`` when N == 1) or ``'builtin:NAME'``.
        target: Column(s) to forecast. Default: the only numeric column left after the
            time, id and covariate columns; several candidates are an error.
        time_col: Time column; default per the module rule, else an integer index.
        covariates: Past-observed input columns.
        future_covariates: Input columns known ahead.
        series_id: Column that splits long-format data into one series per id.
        category: Column naming each series' category; it must hold one value per series
            (:attr:`Series.category`). With ``constant_ok`` (a history to continue from) the
            column may be absent: the series then have no category.
        missing: ``'error'``, ``'interpolate'``, ``'ffill'`` or ``'drop'`` (see
            :func:`elman.data.series.fill_missing`).
        calendar: Add calendar features (:func:`elman.data.calendar.calendar_features`) as
            future covariates.
        season: Season length; default from the frequency. With ``calendar`` and an integer
            index, a season > 1 adds a seasonal sine/cosine pair.
        sep: Field delimiter for text files; default from the suffix (``,`` or tab).
        dayfirst: Read ambiguous dates such as ``01/02/2023`` day first (1 February).
        date_format: ``strftime`` format of the time column (``%d/%m/%Y``); overrides
            ``dayfirst``.
        decimal: Decimal mark of numbers in text files (``,`` for ``1502,51``).
        thousands: Thousands separator of numbers in text files (``,`` for ``1,502,514.60``).
        constant_ok: accept a constant target (a history to continue from, such as three
            closed days of a shop); training data is refused, as a network cannot learn it.

    Returns:
        One :class:`Series` per id (sorted by id), or a one-element list.

    Raises:
        DataError: unreadable source, missing column, bad value, bad time stamps, missing
            values under ``missing='error'``, constant target.
        ConfigError: unknown ``missing`` policy, bad ``season``, a column given two roles.
    """
    if missing not in MISSING_POLICIES:
        raise ConfigError(
            f"missing={missing!r} is not one of {', '.join(MISSING_POLICIES)} (use --missing)"
        )
    if season is not None and (not isinstance(season, int) or season < 1):
        raise ConfigError(f"season must be a whole number >= 1, got {season!r} (use --season)")
    times = TimeOptions(dayfirst=dayfirst, date_format=date_format)
    loaded = _load(source, TextOptions(sep=sep, decimal=decimal, thousands=thousands))
    if category is not None and category not in map(str, loaded.frame.columns) and constant_ok:
        category = None  # a history to continue from: the model knows its series' categories
    roles = _resolve_roles(
        loaded, target, time_col, list(covariates), list(future_covariates), series_id, category
    )
    _blank_lines(loaded, roles, missing)
    out = []
    rows: RowNumbers
    file_rows = loaded.rows
    for sid, pos in _groups(loaded.frame, roles.series_id, loaded.name, file_rows):
        if pos is None:  # the whole frame in order, no copy of it
            part = loaded.frame
            rows = range(FIRST_ROW, FIRST_ROW + len(part)) if file_rows is None else file_rows
        else:
            part = loaded.frame.iloc[pos]
            rows = pos + FIRST_ROW if file_rows is None else file_rows[pos]
        series = _build(part, rows, roles, sid, loaded.name, missing, calendar, season, times)
        if roles.category is not None:
            series.category = _category_of(part, roles.category, rows, series.name)
        if not constant_ok:  # training data; a history to continue from may be flat
            check_not_constant(series)
        out.append(series)
    return out


def _category_of(part: pd.DataFrame, column: str, rows: RowNumbers, where: str) -> str:
    """The one category of a series: every row of ``column`` must hold the same value."""
    text = as_text(part[column]).fillna("").str.strip().to_numpy()
    blank = np.flatnonzero(text == "")
    if blank.size:
        raise DataError(
            f"{where}, column {column!r}: no category at row {row_array(rows)[blank[0]]}; "
            "give every row of a series its category"
        )
    other = np.flatnonzero(text != text[0])
    if other.size:
        at = row_array(rows)
        raise DataError(
            f"{where}, column {column!r}: category {text[other[0]]!r} at row {at[other[0]]} "
            f"differs from {text[0]!r} at row {at[0]}; a series has one category"
        )
    return str(text[0])


def _blank_lines(loaded: _Loaded, roles: _Roles, missing: str) -> None:
    """Blank lines of a file are missing values: refused under ``missing='error'``.

    Otherwise a blank line without a time column or ids stays a row of missing values (it
    keeps its place); with a time column or ids it is left out (it has no stamp or id), and
    the time grid shows any step it leaves empty as missing.
    """
    blank = loaded.blank
    if blank is None or loaded.rows is None or not blank.any():
        return
    row = int(loaded.rows[int(np.flatnonzero(blank)[0])])
    if missing == "error":
        raise DataError(
            f"row {row} of {loaded.name} is blank (an empty line or only empty cells); a "
            "blank line is a missing value: delete the line, fill in its values, or use "
            "--missing interpolate|ffill|drop"
        )
    logger.info("%s: %d blank row(s), first at row %d", loaded.name, int(blank.sum()), row)
    if roles.time is not None or roles.series_id is not None:
        loaded.frame = loaded.frame.iloc[np.flatnonzero(~blank)]
        loaded.rows = loaded.rows[~blank]


def read_one(source: Source, select: str | None = None, **kwargs: Any) -> Series:
    """Read exactly one series.

    Args:
        source: As for :func:`read_series`.
        select: The id to keep when the data holds several series (needs ``series_id``).
        **kwargs: Passed to :func:`read_series`.

    Raises:
        DataError: the data holds several series and ``select`` is not given, or ``select``
            names no series.
    """
    found = read_series(source, **kwargs)
    if select is not None:
        match = [s for s in found if s.series_id == str(select)]
        if not match:
            ids = ", ".join(str(s.series_id) for s in found)
            raise DataError(f"series {select!r} not found in {found[0].source}; ids: {ids}")
        return match[0]
    if len(found) > 1:
        ids = ", ".join(str(s.series_id) for s in found[:10])
        more = ", ..." if len(found) > 10 else ""
        raise DataError(
            f"{found[0].source} holds {len(found)} series ({ids}{more}); pick one by id "
            "or read them all with read_series"
        )
    return found[0]


# ---------------------------------------------------------------------------- sources


def _load(source: Source, opts: TextOptions) -> _Loaded:
    if isinstance(source, str) and source.startswith("builtin:"):
        from elman.data.datasets import dataset_info, load_dataset

        info = dataset_info(source.removeprefix("builtin:"))
        defaults = {"target": info.target, "time": info.time_col, "series_id": info.series_id}
        return _Loaded(load_dataset(info.name), source, defaults)
    if isinstance(source, (str, os.PathLike)):
        frame, rows, blank = read_file(Path(source), opts)
        if not blank.any() and (rows.size == 0 or rows[0] == FIRST_ROW):
            return _Loaded(frame, str(source), {})  # rows 2, 3, ...: no array needed
        return _Loaded(frame, str(source), {}, rows, blank if blank.any() else None)
    if isinstance(source, pd.DataFrame):
        return _from_frame(source, "<DataFrame>")
    if isinstance(source, pd.Series):
        name = str(source.name) if source.name is not None else "y"
        return _from_frame(source.to_frame(name=name), "<pandas Series>")
    if isinstance(source, np.ndarray):
        return _Loaded(_from_array(source), "<array>", {})
    raise DataError(
        f"cannot read data from a {type(source).__name__}; pass a file path, DataFrame, "
        "pandas Series, numpy array or 'builtin:NAME'"
    )


def _from_frame(frame: pd.DataFrame, name: str) -> _Loaded:
    if isinstance(frame.columns, pd.MultiIndex):
        raise DataError(f"{name} has multi-level column names; flatten them to one level")
    defaults: dict[str, Any] = {}
    if isinstance(frame.index, (pd.DatetimeIndex, pd.PeriodIndex)):
        label = str(frame.index.name) if frame.index.name is not None else "time"
        if label in {str(c) for c in frame.columns}:
            label = "index"
        frame = frame.rename_axis(label).reset_index()
        defaults["index_time"] = label
    else:  # a shallow copy shares the columns (reset_index copies them under pandas 2)
        frame = frame.copy(deep=False)
        frame.index = pd.RangeIndex(len(frame))
    return _Loaded(clean_columns(frame, name), name, defaults)


def _from_array(array: np.ndarray) -> pd.DataFrame:
    """A frame over the array's memory: read only, the Series gets its own copy later."""
    if array.ndim not in (1, 2) or array.size == 0:
        raise DataError(
            f"array must be 1-D or 2-D [time, columns] and not empty, got shape {array.shape}"
        )
    if array.ndim == 1 or array.shape[1] == 1:
        return pd.DataFrame({"y": array.reshape(-1)}, copy=False)
    return pd.DataFrame(array, columns=[f"y{i}" for i in range(array.shape[1])], copy=False)


# ---------------------------------------------------------------------------- columns


def _resolve_roles(
    loaded: _Loaded,
    target: str | Sequence[str] | None,
    time_col: str | None,
    covariates: list[str],
    future: list[str],
    series_id: str | None,
    category: str | None = None,
) -> _Roles:
    frame, name, defaults = loaded.frame, loaded.name, loaded.defaults
    cols = [str(c) for c in frame.columns]

    def need(col: str, option: str) -> str:
        if col not in cols:
            raise DataError(
                f"column {col!r} not found in {name}; available columns: {', '.join(cols)} "
                f"(use {option})"
            )
        return col

    sid = series_id if series_id is not None else defaults.get("series_id")
    if sid is not None:
        need(sid, "--series-id")
    time = time_col if time_col is not None else defaults.get("time")
    if time is not None:
        need(time, "--time-col")
    else:
        time = defaults.get("index_time") or guess_time_column([c for c in cols if c != sid])
    if category is not None:
        need(category, "--category")
    for col in covariates:
        need(col, "--covariates")
    for col in future:
        need(col, "--future-covariates")
    if target is None:
        target = defaults.get("target")
    if target is None:
        taken = {time, sid, category, *covariates, *future}
        targets = [_auto_target(frame, name, cols, taken)]
    else:
        targets = [target] if isinstance(target, str) else [str(t) for t in target]
        for col in targets:
            need(col, "--target")
    roles = _Roles(time, targets, covariates, future, sid, category)
    _check_roles(roles)
    return roles


def _check_roles(roles: _Roles) -> None:
    named = [("time column", roles.time), ("series id", roles.series_id)]
    named += [("target", c) for c in roles.targets]
    named += [("covariate", c) for c in roles.covariates]
    named += [("future covariate", c) for c in roles.future]
    named.append(("category", roles.category))
    seen: dict[str, str] = {}
    for role, col in named:
        if col is None:
            continue
        if col in seen:
            raise ConfigError(
                f"column {col!r} is given two roles ({seen[col]} and {role}); each column "
                "can have only one"
            )
        seen[col] = role
    if not roles.targets:
        raise ConfigError("no target column given (use --target)")


def _auto_target(frame: pd.DataFrame, name: str, cols: list[str], taken: set[Any]) -> str:
    rest = [c for c in cols if c not in taken]
    numeric = [c for c in rest if _looks_numeric(frame[c])]
    if len(numeric) == 1:
        return numeric[0]
    if len(rest) == 1:
        return rest[0]
    if not rest:
        raise DataError(
            f"{name} has no column left to forecast (columns: {', '.join(cols)}); choose "
            "one with --target"
        )
    raise DataError(
        f"cannot tell which column of {name} to forecast: {', '.join(numeric or rest)} are "
        f"candidates (columns: {', '.join(cols)}); choose one with --target"
    )


def _looks_numeric(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col.dtype):
        return False
    if pd.api.types.is_numeric_dtype(col.dtype):
        return not pd.api.types.is_complex_dtype(col.dtype)
    if not (pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype)):
        return False
    text = as_text(col.iloc[:1000])
    text = text[text.notna() & ~text.str.lower().isin(NA_TOKENS)]
    if text.empty:
        return False
    parsed = pd.to_numeric(text, errors="coerce")
    return bool(parsed.notna().mean() > 0.5)


# ---------------------------------------------------------------------------- series


def _groups(
    frame: pd.DataFrame, series_id: str | None, name: str, rows: np.ndarray | None
) -> list[tuple[str | None, np.ndarray | None]]:
    """Row positions of each series, ids sorted; ``[(None, None)]`` (all rows) without an id."""
    if series_id is None:
        return [(None, None)]
    ids = frame[series_id]
    blank = ids.isna().to_numpy().copy()
    if pd.api.types.is_object_dtype(ids.dtype) or pd.api.types.is_string_dtype(ids.dtype):
        blank |= (as_text(ids) == "").fillna(True).to_numpy(dtype=bool)
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        row = i + FIRST_ROW if rows is None else int(rows[i])
        raise DataError(f"missing series id in {name} at row {row}, column '{series_id}'")
    codes, uniques = pd.factorize(ids, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1]
    parts = np.split(order, bounds)
    return [(str(u), p) for u, p in zip(uniques, parts, strict=True)]


def _build(
    part: pd.DataFrame,
    rows: RowNumbers,
    roles: _Roles,
    sid: str | None,
    name: str,
    missing: str,
    calendar: bool,
    season: int | None,
    times: TimeOptions,
) -> Series:
    where = name if sid is None else f"{name} (series {quote(sid)})"
    columns = [*roles.targets, *roles.covariates, *roles.future]
    raw = parse_columns(part, columns, rows, where)  # [N, C]
    check_cells_finite(raw, rows, columns, where)
    grid: pd.Index
    freq: str | None
    full_rows: RowNumbers
    if roles.time is None:  # rows in order, already regular: no grid to fill, no copy
        grid, freq, full, full_rows = pd.RangeIndex(len(part)), None, raw, rows
    else:
        grid, freq, full, full_rows = place_on_grid(
            part, raw, row_array(rows), roles.time, where, times
        )
    check_columns_observed(full, columns, where)
    if missing == "error":
        check_no_missing(full, full_rows, grid, columns, where)
    values, keep = fill_missing(full, missing)
    index = grid if keep.all() else grid[keep]
    index = index.rename(roles.time)  # the time column's name travels with the series
    if len(index) == 0:
        raise DataError(f"no rows left in {where} after dropping rows with missing values")
    future = list(roles.future)
    if calendar:
        values, future = add_calendar(values, index, freq, season, columns, future, where)
    series = Series(
        values,
        index,
        targets=list(roles.targets),
        covariates=list(roles.covariates),
        future_covariates=future,
        freq=freq,
        series_id=sid,
        source=name,
        season=season,
    )
    return series
