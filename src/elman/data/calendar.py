"""Frequencies, regular grids, season lengths and calendar features of a parsed time index.

Parsing a time column lives in :mod:`elman.data.stamps`.

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

from elman.data.stamps import TimeReading, check_order, first_bad, format_stamp, ordinals
from elman.errors import ConfigError, DataError

CALENDAR_PREFIX = "cal_"
"""Generated calendar feature columns start with this prefix."""

_MAX_GRID_FILL = 10  # a grid may hold at most this many times the stamps (plus slack)


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
    stamps: pd.Index, rows: np.ndarray, column: str, where: str, how: str | None = None
) -> tuple[pd.Index, np.ndarray, str | None]:
    """Find the regular grid that holds all stamps (sorted, unique).

    Args:
        stamps: Increasing stamps, length N.
        rows: Row number of each stamp (header = row 1).
        column: Time column name, for messages.
        where: Source description, for messages.
        how: How the dates were read (``"month first (%m/%d/%Y)"``), for messages.

    Returns:
        ``(grid, positions, freq)``: the full grid (length G >= N, with ``freq`` set for
        datetime grids), the position of each stamp in it (length N) and the pandas alias
        (``None`` for an integer index).

    Raises:
        DataError: the stamps fit no regular grid; names the first row off the grid.
    """
    read = f" (dates read {how})" if how else ""
    if isinstance(stamps, pd.DatetimeIndex):
        grid, freq = _datetime_grid(stamps, rows, column, where, read)
    else:
        grid, freq = _step_grid(stamps, rows, column, where)
    positions = np.asarray(grid.get_indexer(stamps), dtype=np.int64)
    if (positions < 0).any():
        i = first_bad(positions < 0)
        raise DataError(
            f"irregular time stamps in {where}: row {rows[i]}, column '{column}' is off the "
            f"regular {freq or 'integer'} grid; resample the data to a regular frequency"
        )
    return grid, positions, freq


def choose_reading(
    reading: TimeReading, rows: np.ndarray, column: str, where: str
) -> tuple[pd.Index, str | None]:
    """The stamps of a reading, and how they were read; refuses a silent bad guess.

    Dates such as ``01/02/2023`` read month first unless that reading is much less regular
    than the day-first one (off any grid or mostly holes, or daily where day first gives a
    monthly, quarterly or yearly series): then neither is guessed.

    Raises:
        DataError: names both readings and the options that choose one.
    """
    other = reading.day_first
    if other is None:
        return reading.stamps, reading.how
    month = _quality(reading.stamps, rows, column, where)
    day = _quality(other, rows, column, where)
    coarse = ("month", "quarter", "year")
    worse = day[0] > 0 and (
        month[0] < 0.5 * day[0]
        or (month[0] >= day[0] and month[1] not in coarse and day[1] in coarse)
    )
    if not worse:
        return reading.stamps, reading.how
    i = first_bad(np.asarray(reading.stamps != other, dtype=bool))
    raise DataError(
        f"the dates in {where}, column '{column}' read two ways: {reading.how}, row {rows[i]} "
        f"is {format_stamp(reading.stamps[i])} and the dates are {month[2]}; "
        f"{reading.day_first_how}, it is {format_stamp(other[i])} and they are {day[2]}; say "
        f"which with --dayfirst or --date-format {_fmt(reading.day_first_how)} (or "
        f"--date-format {_fmt(reading.how)} for month first)"
    )


def _fmt(how: str | None) -> str:
    return str(how).split("(")[-1].rstrip(")")


def _quality(
    stamps: pd.Index, rows: np.ndarray, column: str, where: str
) -> tuple[float, str | None, str]:
    """``(share of the grid the stamps fill, frequency kind, description)`` of a reading."""
    try:
        check_order(stamps, rows, column, where)
        grid, _, freq = regular_grid(stamps, rows, column, where)
    except DataError:
        return 0.0, None, "not in order or not on any regular grid"
    fill = len(stamps) / max(len(grid), 1)
    kind = freq_kind(freq)
    adjective = {"day": "daily", "subday": "sub-daily"}.get(str(kind), f"{kind}ly")
    text = f"{adjective if kind else 'regular'} ({freq}, season {season_length(freq)})"
    if fill < 1.0:
        text += f" with {len(grid) - len(stamps)} of {len(grid)} steps missing"
    return fill, kind, text


def _step_from_keys(
    keys: np.ndarray, rows: np.ndarray, column: str, where: str, read: str = ""
) -> int:
    if keys.size < 2:
        return 1
    diffs = np.diff(keys)
    values, counts = np.unique(diffs, return_counts=True)
    step = int(values[np.argmax(counts)])  # the most common step; ties -> the smallest
    off = diffs % step != 0
    if off.any():
        i = first_bad(off) + 1
        raise DataError(
            f"irregular time stamps in {where}: row {rows[i]}, column '{column}' is off the "
            f"regular step set by the other rows; resample the data to a regular frequency"
        )
    _check_fill(int((keys[-1] - keys[0]) // step) + 1, diffs // step, rows, where, read)
    return step


def _check_fill(
    grid_len: int, gaps: np.ndarray, rows: np.ndarray, where: str, read: str = ""
) -> None:
    n = gaps.size + 1
    if grid_len > _MAX_GRID_FILL * n + 100:
        i = int(np.argmax(gaps)) + 1
        raise DataError(
            f"time stamps in {where} are too sparse: the gap between row {rows[i - 1]} and row "
            f"{rows[i]} spans {int(gaps[i - 1])} steps, and filling all gaps would need "
            f"{grid_len} rows for {n} stamps{read}; check the time column (and how its dates "
            "are read: --dayfirst, --date-format)"
        )


def _step_grid(
    stamps: pd.Index, rows: np.ndarray, column: str, where: str
) -> tuple[pd.Index, str | None]:
    keys = ordinals(stamps)
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
    stamps: pd.DatetimeIndex, rows: np.ndarray, column: str, where: str, read: str
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
            _check_fill(len(grid), np.diff(grid.get_indexer(stamps)), rows, where, read)
            return grid, str(grid.freqstr)
    keys = ordinals(stamps)
    _step_from_keys(keys, rows, column, where, read)  # raises with the first off-grid row
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
        with warnings.catch_warnings():  # pandas 2.2+ warns that 'M' means 'ME' here
            warnings.simplefilter("ignore", FutureWarning)
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
