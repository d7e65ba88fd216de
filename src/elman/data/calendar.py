"""Time stamps: parsing a time column, finding its frequency, season lengths, calendar features.

Time column parsing (:func:`parse_time`) recognises, in this order:

* datetime or period dtypes (DataFrame and Parquet sources) as they are;
* integers between 1000 and 2999 as years -> yearly ``pd.PeriodIndex`` (``'Y'``);
* other integers -> an integer index (no calendar; ``freq`` is ``None``);
* ``YYYYQn`` (also ``YYYY-Qn``, ``YYYY Qn``) -> quarterly ``pd.PeriodIndex`` (``'Q'``);
* ``YYYY-MM`` (also ``YYYY/MM``) -> monthly ``pd.PeriodIndex`` (``'M'``);
* anything else is parsed as dates (ISO 8601 first, then pandas' format inference) ->
  ``pd.DatetimeIndex`` whose frequency comes from ``pd.infer_freq`` (weekly data gives
  ``'W-SAT'`` and the like, daily ``'D'``, hourly ``'h'``, half-hourly ``'30min'``).

:func:`regular_grid` then places the stamps on a regular grid. Missing rows (holes in an
otherwise regular series) are allowed: the caller reindexes onto the full grid and treats the
new rows as missing values. Stamps that fit no grid are an error naming the first bad row.

Row numbers in messages follow the package convention: the header is row 1, so the first
data row is row 2 (the line number in a CSV file).
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset

from elman.errors import ConfigError, DataError

CALENDAR_PREFIX = "cal_"
"""Generated calendar feature columns start with this prefix."""

_STAMP_NAMES = frozenset({"date", "datetime", "time", "timestamp", "ds", "day", "hour"})
TIME_NAMES = _STAMP_NAMES | {"week", "month", "quarter", "year", "period"}
"""Column names (case-insensitive) taken as the time column when ``time_col`` is not given."""

_YEAR_RANGE = (1000, 2999)
_QUARTER_RE = r"(\d{4})\s*[-/ ]?\s*[Qq]([1-4])"
_MONTH_RE = r"(\d{4})[-/](\d{1,2})"
_INT_RE = r"[+-]?\d{1,18}"
_MAX_GRID_FILL = 10  # a grid may hold at most this many times the stamps (plus slack)


def guess_time_column(columns: list[str]) -> str | None:
    """Pick the time column by name.

    Rule: the first column whose lower-cased name (spaces and hyphens read as ``_``) is one of
    :data:`TIME_NAMES`, or ends in ``_date``/``_time``/``_timestamp``/``_datetime``, or starts
    with ``date_``/``time_``.

    Args:
        columns: Column names in file order.

    Returns:
        The column name, or ``None`` when no name looks like a time column.
    """
    for name in columns:
        key = re.sub(r"[\s\-]+", "_", name.strip().lower())
        if key in TIME_NAMES or key.endswith(("_date", "_time", "_timestamp", "_datetime")):
            return name
        if key.startswith(("date_", "time_")):
            return name
    return None


def format_stamp(stamp: object) -> str:
    """A time stamp as users write it: ``1958-05-10`` rather than ``1958-05-10 00:00:00``."""
    text = str(stamp)
    if isinstance(stamp, pd.Timestamp) and text.endswith(" 00:00:00"):
        return text[: -len(" 00:00:00")]
    return text


def as_text(col: pd.Series) -> pd.Series:
    """The entries as trimmed strings (missing entries stay missing), whatever they hold.

    Object columns may hold any Python object (bytes, lists, dates); each becomes its text.
    """
    if pd.api.types.is_string_dtype(col.dtype) and not pd.api.types.is_object_dtype(col.dtype):
        return col.astype("string").str.strip()

    def one(value: object) -> str | None:
        if value is None or value is pd.NA or value is pd.NaT:
            return None
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace").strip()
        return str(value).strip()

    return pd.Series([one(v) for v in col], index=col.index, dtype="string")


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def parse_time(raw: pd.Series, rows: np.ndarray, column: str, where: str) -> pd.Index:
    """Parse a time column into stamps (not yet checked for order or regularity).

    Args:
        raw: The column as read, length N.
        rows: Row number of each entry, length N (header = row 1).
        column: Column name, for messages.
        where: Source description for messages (file name, series id).

    Returns:
        ``pd.PeriodIndex``, ``pd.DatetimeIndex`` or an ``int64`` ``pd.Index``, length N.

    Raises:
        DataError: a missing or unparseable stamp (names row, column and value).
    """
    blank = raw.isna().to_numpy().copy()
    if pd.api.types.is_object_dtype(raw.dtype) or pd.api.types.is_string_dtype(raw.dtype):
        text = as_text(raw)
        blank |= (text == "").fillna(True).to_numpy(dtype=bool)
    if blank.any():
        i = _first_bad(blank)
        raise DataError(
            f"missing time stamp in {where} at row {rows[i]}, column '{column}'; "
            "every row needs a time stamp"
        )
    if isinstance(raw.dtype, pd.PeriodDtype):
        return pd.PeriodIndex(raw)
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return pd.DatetimeIndex(raw)
    if pd.api.types.is_integer_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        return _from_ints(raw.to_numpy(dtype=np.int64))
    if pd.api.types.is_float_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64)
        frac = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) > 1e15)
        if frac.any():
            i = _first_bad(frac)
            raise DataError(
                f"time stamp {values[i]:g} in {where} at row {rows[i]}, column '{column}' is not "
                "a whole number, date or period; use integer steps, years, YYYY-MM, YYYYQn or "
                "dates (or pick another column with --time-col)"
            )
        return _from_ints(values.astype(np.int64))
    return _parse_text(as_text(raw), rows, column, where)


def _from_ints(values: np.ndarray) -> pd.Index:
    lo, hi = _YEAR_RANGE
    if values.size and values.min() >= lo and values.max() <= hi:
        return pd.PeriodIndex([str(int(v)) for v in values], freq="Y")
    return pd.Index(values, dtype=np.int64)


def _parse_text(text: pd.Series, rows: np.ndarray, column: str, where: str) -> pd.Index:
    """Pick the stamp format from the first entry, then require it of every entry."""
    first = str(text.iloc[0])
    for pattern, label in (
        (_INT_RE, "a whole number"),
        (_QUARTER_RE, "YYYYQn"),
        (_MONTH_RE, "YYYY-MM"),
    ):
        if re.fullmatch(pattern, first) is None:
            continue
        parts = text.str.extract(f"^{pattern}$") if pattern != _INT_RE else None
        ok = text.str.fullmatch(pattern) if parts is None else parts.notna().all(axis=1)
        bad = ~ok.to_numpy(dtype=bool, na_value=False)
        if bad.any():
            i = _first_bad(bad)
            raise DataError(
                f"time stamp {str(text.iloc[i])!r} in {where} at row {rows[i]}, column "
                f"'{column}' is not {label} like the first row ({first!r}); use one format"
            )
        if parts is None:
            return _from_ints(text.astype("int64").to_numpy())
        if pattern == _QUARTER_RE:
            return pd.PeriodIndex((parts[0] + "Q" + parts[1]).tolist(), freq="Q")
        return _months(parts, text, rows, column, where)
    return _parse_dates(text, rows, column, where)


def _months(
    parts: pd.DataFrame, text: pd.Series, rows: np.ndarray, column: str, where: str
) -> pd.Index:
    months = parts[1].astype(int).to_numpy()
    bad = (months < 1) | (months > 12)
    if bad.any():
        i = _first_bad(bad)
        raise DataError(
            f"month {text.iloc[i]!r} in {where} at row {rows[i]}, column '{column}' is "
            "not a valid YYYY-MM month"
        )
    labels = parts[0].astype(str) + "-" + parts[1].astype(int).map("{:02d}".format)
    return pd.PeriodIndex(labels.tolist(), freq="M")


def _parse_dates(text: pd.Series, rows: np.ndarray, column: str, where: str) -> pd.Index:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            stamps = pd.to_datetime(text, format="ISO8601", errors="coerce")
        except (ValueError, TypeError, OverflowError):
            stamps = pd.Series(pd.NaT, index=text.index)
        if stamps.isna().any():
            try:
                stamps = pd.to_datetime(text, errors="coerce")
            except (ValueError, TypeError, OverflowError):
                stamps = pd.Series(pd.NaT, index=text.index)
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = _first_bad(bad)
        raise DataError(
            f"cannot read time stamp {str(text.iloc[i])!r} in {where} at row {rows[i]}, column "
            f"'{column}'; use dates like 2024-01-31, integer steps, years, YYYY-MM or YYYYQn "
            "(or pick another column with --time-col)"
        )
    return pd.DatetimeIndex(stamps)


def check_order(stamps: pd.Index, rows: np.ndarray, column: str, where: str) -> None:
    """Require strictly increasing stamps.

    Args:
        stamps: Parsed stamps, length N.
        rows: Row number of each stamp (header = row 1).
        column: Time column name, for messages.
        where: Source description, for messages.

    Raises:
        DataError: a duplicate stamp (names both rows) or a stamp earlier than its predecessor.
    """
    if len(stamps) < 2:
        return
    keys = _ordinals(stamps)
    dup = np.asarray(pd.Index(keys).duplicated(), dtype=bool)
    if dup.any():
        i = _first_bad(dup)
        j = _first_bad(keys == keys[i])
        raise DataError(
            f"duplicate time stamp {format_stamp(stamps[i])} in {where} at row {rows[i]}, "
            f"column '{column}' (same as row {rows[j]}); remove or aggregate the duplicate rows "
            "(or, for several series in one file, name the id column with --series-id)"
        )
    bad = np.diff(keys) < 0
    if bad.any():
        i = _first_bad(bad) + 1
        raise DataError(
            f"time stamps are not in increasing order in {where}: row {rows[i]} "
            f"({format_stamp(stamps[i])}) comes after row {rows[i - 1]} "
            f"({format_stamp(stamps[i - 1])}); sort the data by '{column}'"
        )


def _ordinals(stamps: pd.Index) -> np.ndarray:
    if isinstance(stamps, pd.PeriodIndex):
        return np.asarray(stamps.asi8, dtype=np.int64)
    if isinstance(stamps, pd.DatetimeIndex):
        return np.asarray(stamps.asi8, dtype=np.int64)
    return np.asarray(stamps, dtype=np.int64)


def _infer_freq(stamps: pd.DatetimeIndex) -> str | None:
    if len(stamps) < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            found = pd.infer_freq(stamps)
        except (ValueError, TypeError):
            return None
    if found is None:
        return None
    return found if isinstance(found, str) else str(getattr(found, "freqstr", found))


def regular_grid(
    stamps: pd.Index, rows: np.ndarray, column: str, where: str
) -> tuple[pd.Index, np.ndarray, str | None]:
    """Find the regular grid that holds all stamps (sorted, unique).

    Args:
        stamps: Increasing stamps, length N.
        rows: Row number of each stamp (header = row 1).
        column: Time column name, for messages.
        where: Source description, for messages.

    Returns:
        ``(grid, positions, freq)``: the full grid (length G >= N, with ``freq`` set for
        datetime grids), the position of each stamp in it (length N) and the pandas alias
        (``None`` for an integer index).

    Raises:
        DataError: the stamps fit no regular grid; names the first row off the grid.
    """
    if isinstance(stamps, pd.DatetimeIndex):
        grid, freq = _datetime_grid(stamps, rows, column, where)
    else:
        grid, freq = _step_grid(stamps, rows, column, where)
    positions = np.asarray(grid.get_indexer(stamps), dtype=np.int64)
    if (positions < 0).any():
        i = _first_bad(positions < 0)
        raise DataError(
            f"irregular time stamps in {where}: row {rows[i]}, column '{column}' is off the "
            f"regular {freq or 'integer'} grid; resample the data to a regular frequency"
        )
    return grid, positions, freq


def _step_from_keys(keys: np.ndarray, rows: np.ndarray, column: str, where: str) -> int:
    if keys.size < 2:
        return 1
    diffs = np.diff(keys)
    values, counts = np.unique(diffs, return_counts=True)
    step = int(values[np.argmax(counts)])  # the most common step; ties -> the smallest
    off = diffs % step != 0
    if off.any():
        i = _first_bad(off) + 1
        raise DataError(
            f"irregular time stamps in {where}: row {rows[i]}, column '{column}' is off the "
            f"regular step set by the other rows; resample the data to a regular frequency"
        )
    _check_fill(int((keys[-1] - keys[0]) // step) + 1, diffs // step, rows, where)
    return step


def _check_fill(grid_len: int, gaps: np.ndarray, rows: np.ndarray, where: str) -> None:
    n = gaps.size + 1
    if grid_len > _MAX_GRID_FILL * n + 100:
        i = int(np.argmax(gaps)) + 1
        raise DataError(
            f"time stamps in {where} are too sparse: the gap between row {rows[i - 1]} and row "
            f"{rows[i]} spans {int(gaps[i - 1])} steps, and filling all gaps would need "
            f"{grid_len} rows for {n} stamps; check the time column"
        )


def _step_grid(
    stamps: pd.Index, rows: np.ndarray, column: str, where: str
) -> tuple[pd.Index, str | None]:
    keys = _ordinals(stamps)
    step = _step_from_keys(keys, rows, column, where)
    count = int((keys[-1] - keys[0]) // step) + 1 if keys.size else 0
    if isinstance(stamps, pd.PeriodIndex):
        base = _period_alias(stamps)
        freq = base if step == 1 else f"{step}{base}"
        return pd.period_range(start=stamps[0], periods=count, freq=freq), freq
    if keys.size and step == 1:
        return pd.RangeIndex(int(keys[0]), int(keys[-1]) + 1), None
    start = int(keys[0]) if keys.size else 0
    return pd.RangeIndex(start, start + count * step, step), None


def _period_alias(stamps: pd.PeriodIndex) -> str:
    code = re.sub(
        r"^\d+", "", str(stamps.freqstr)
    )  # '2Q-DEC' -> 'Q-DEC'; ordinals count base units
    return {"Y-DEC": "Y", "Q-DEC": "Q"}.get(code, code)


def _datetime_grid(
    stamps: pd.DatetimeIndex, rows: np.ndarray, column: str, where: str
) -> tuple[pd.Index, str | None]:
    found = _infer_freq(stamps)
    if found is not None:
        return pd.DatetimeIndex(stamps, freq=found), found
    if len(stamps) == 1:
        return pd.DatetimeIndex(stamps), None
    span = (stamps[-1] - stamps[0]).total_seconds()
    for cand in _candidates(stamps):
        if span / _shortest_step(cand) > _MAX_GRID_FILL * len(stamps) + 100:
            continue  # the grid would be mostly holes; never build it
        grid = pd.date_range(start=stamps[0], end=stamps[-1], freq=cand)
        if len(grid) and grid[0] == stamps[0] and bool(stamps.isin(grid).all()):
            _check_fill(len(grid), np.diff(grid.get_indexer(stamps)), rows, where)
            return grid, str(grid.freqstr)
    keys = _ordinals(stamps)
    _step_from_keys(keys, rows, column, where)  # raises with the first off-grid row
    raise DataError(f"irregular time stamps in {where}, column '{column}'; resample the data")


def _shortest_step(freq: str) -> float:
    """Seconds per step of a fixed frequency, else one day (a lower bound for calendar ones)."""
    try:
        return max(to_offset(freq).nanos, 1) / 1e9
    except ValueError:
        return 86_400.0


def _candidates(stamps: pd.DatetimeIndex) -> list[str]:
    """Frequencies seen in short runs of stamps, most common first, then the smallest step."""
    seen: dict[str, int] = {}
    limit = min(len(stamps) - 2, 200)
    for i in range(max(limit, 0)):
        found = _infer_freq(stamps[i : i + 3])
        if found is not None:
            seen[found] = seen.get(found, 0) + 1
    ordered = sorted(seen, key=lambda k: -seen[k])
    gaps = pd.Series(stamps[1:] - stamps[:-1])
    for step in (gaps.mode().min(), gaps.min()):
        step = pd.Timedelta(step)
        if step % pd.Timedelta(days=1) == pd.Timedelta(0):
            alias = f"{step.days}D"
        else:
            alias = str(to_offset(step).freqstr)
        if alias not in ordered:
            ordered.append(alias)
    return ordered


def to_pandas_offset(freq: str) -> BaseOffset:
    """Turn a pandas alias (``'M'``, ``'Q'``, ``'Y'`` as periods, or any offset) into an offset.

    Raises:
        ConfigError: the alias is unknown.
    """
    try:
        return to_offset(freq)
    except (ValueError, TypeError):
        pass
    try:
        return pd.Period("2000-01-01", freq=freq).freq
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"unknown frequency {freq!r}; use a pandas alias such as 'Y', 'Q', 'M', 'W-SUN', "
            "'D', 'h' or '30min'"
        ) from err


_DAY_NS = 86_400 * 10**9


def freq_kind(freq: str | None) -> str | None:
    """Classify a frequency: ``'year'``, ``'quarter'``, ``'month'``, ``'week'``, ``'day'``,
    ``'subday'``, or ``None`` (integer index or an unusual offset)."""
    if freq is None:
        return None
    off = to_pandas_offset(freq)
    o = pd.offsets
    kinds: list[tuple[tuple[type, ...], str]] = [
        ((o.YearBegin, o.YearEnd, o.BYearBegin, o.BYearEnd), "year"),
        ((o.QuarterBegin, o.QuarterEnd, o.BQuarterBegin, o.BQuarterEnd), "quarter"),
        (
            (
                o.MonthBegin,
                o.MonthEnd,
                o.BusinessMonthBegin,
                o.BusinessMonthEnd,
                o.SemiMonthBegin,
                o.SemiMonthEnd,
            ),
            "month",
        ),
        ((o.Week,), "week"),
        ((o.Day, o.BusinessDay), "day"),
        ((o.Tick,), "subday"),
    ]
    for types, kind in kinds:
        if isinstance(off, types):
            return kind
    return None


def season_length(freq: str | None, n: int | None = None) -> int:
    """Season length implied by a frequency.

    ``'Y'`` -> 1, ``'Q'`` -> 4, ``'M'`` -> 12, ``'W-*'`` -> 52, ``'D'`` -> 7, ``'B'`` -> 5,
    sub-daily -> steps per day (``'h'`` -> 24, ``'30min'`` -> 48); multiples divide the base
    season when they can (``'2h'`` -> 12) and give 1 otherwise. ``None`` -> 1.

    Args:
        freq: A pandas alias, or ``None`` for an integer index.
        n: Series length. When given and shorter than two full seasons, the season cannot be
            used and 1 is returned.

    Returns:
        The number of steps in one season (>= 1).
    """
    kind = freq_kind(freq)
    if kind is None or freq is None:
        return 1
    off = to_pandas_offset(freq)
    mult = abs(int(getattr(off, "n", 1))) or 1
    if kind == "subday":
        nanos = int(off.nanos)
        season = _DAY_NS // nanos if _DAY_NS % nanos == 0 else max(round(_DAY_NS / nanos), 1)
    else:
        base = {"year": 1, "quarter": 4, "month": 12, "week": 52, "day": 7}[kind]
        if isinstance(off, pd.offsets.BusinessDay):
            base = 5
        elif isinstance(off, (pd.offsets.SemiMonthBegin, pd.offsets.SemiMonthEnd)):
            base = 24
        season = base // mult if base % mult == 0 else 1
    if n is not None and season * 2 > n:
        return 1
    return max(int(season), 1)


def _cycle(name: str, phase: np.ndarray, period: float) -> dict[str, np.ndarray]:
    angle = 2.0 * math.pi * np.asarray(phase, dtype=np.float64) / period
    return {
        f"{CALENDAR_PREFIX}{name}_sin": np.sin(angle),
        f"{CALENDAR_PREFIX}{name}_cos": np.cos(angle),
    }


def calendar_features(
    index: pd.Index, freq: str | None = None, season: int | None = None
) -> pd.DataFrame:
    """Sine/cosine calendar features for a time index (future covariates known ahead).

    quarterly: quarter of year; monthly: month of year; weekly: time of year; daily: day of
    week and time of year; sub-daily: time of day and day of week; yearly: none. An integer
    index gets a ``season`` cycle when ``season`` > 1, else none. The same call on
    ``Series.future_index(h)`` gives the matching rows for forecasting.

    Args:
        index: Length-N time index (``PeriodIndex``, ``DatetimeIndex`` or integers).
        freq: Frequency alias; defaults to the index's own frequency.
        season: Season length for an integer index.

    Returns:
        A DataFrame ``[N, F]`` (F may be 0) indexed by ``index``; columns start with
        :data:`CALENDAR_PREFIX`.
    """
    if freq is None and isinstance(index, (pd.PeriodIndex, pd.DatetimeIndex)):
        freq = index.freqstr
    kind = freq_kind(freq) if isinstance(index, (pd.PeriodIndex, pd.DatetimeIndex)) else None
    cols: dict[str, np.ndarray] = {}
    if isinstance(index, (pd.PeriodIndex, pd.DatetimeIndex)) and kind is not None:
        month = np.asarray(index.month, dtype=np.float64)
        if kind == "quarter":
            cols.update(_cycle("quarter", np.asarray(index.quarter) - 1.0, 4.0))
        elif kind == "month":
            cols.update(_cycle("month", month - 1.0, 12.0))
        elif kind in ("week", "day", "subday"):
            dow = np.asarray(index.day_of_week, dtype=np.float64)
            doy = np.asarray(index.day_of_year, dtype=np.float64) - 1.0
            if kind == "subday":
                hours = np.asarray(index.hour) + np.asarray(index.minute) / 60.0
                cols.update(_cycle("hour", hours + np.asarray(index.second) / 3600.0, 24.0))
            if kind in ("day", "subday"):
                cols.update(_cycle("dayofweek", dow, 7.0))
            if kind in ("week", "day"):
                cols.update(_cycle("dayofyear", doy, 365.25))
    elif (
        season is not None
        and season > 1
        and not isinstance(index, pd.DatetimeIndex | pd.PeriodIndex)
    ):
        steps = np.asarray(index, dtype=np.float64)
        cols.update(_cycle("season", np.mod(steps, season), float(season)))
    return pd.DataFrame(cols, index=index)
