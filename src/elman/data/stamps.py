"""Time stamps: reading a time column into an index and checking its order.

Time column parsing (:func:`parse_time`) recognises, in this order:

* datetime or period dtypes (DataFrame and Parquet sources) as they are;
* integers between 1000 and 2999 as years -> yearly ``pd.PeriodIndex`` (``'Y'``);
* other integers -> an integer index (no calendar; ``freq`` is ``None``);
* ``YYYYQn`` (also ``YYYY-Qn``, ``YYYY Qn``) -> quarterly ``pd.PeriodIndex`` (``'Q'``);
* ``YYYY-MM`` (also ``YYYY/MM``) -> monthly ``pd.PeriodIndex`` (``'M'``);
* anything else is parsed as dates (``--date-format`` when given; else ISO 8601 first, then
  pandas' format inference, month first unless ``--dayfirst``) -> ``pd.DatetimeIndex``
  whose frequency comes from ``pd.infer_freq`` (weekly data gives ``'W-SAT'`` and the like,
  daily ``'D'``, hourly ``'h'``, half-hourly ``'30min'``).

Stamps with different UTC offsets (``+01:00`` then ``+02:00`` across a daylight-saving
change, as pandas writes them) are converted to UTC, which is logged at INFO level. Dates
like ``01/02/2023`` that read both month first and day first come back with both readings
(:class:`TimeReading`); the caller picks one by the regularity of each, or refuses.

Row numbers in messages follow the package convention: the header is row 1, so the first
data row is row 2 (the line number in a CSV file).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from elman.errors import ConfigError, DataError, quote

logger = logging.getLogger(__name__)

_STAMP_NAMES = frozenset({"date", "datetime", "time", "timestamp", "ds", "day", "hour"})
TIME_NAMES = _STAMP_NAMES | {"week", "month", "quarter", "year", "period"}
"""Column names (case-insensitive) taken as the time column when ``time_col`` is not given."""

_YEAR_RANGE = (1000, 2999)
_QUARTER_RE = r"(\d{4})\s*[-/ ]?\s*[Qq]([1-4])"
_MONTH_RE = r"(\d{4})[-/](\d{1,2})"
_INT_RE = r"[+-]?\d{1,18}"
_SLASH_RE = r"(\d{1,2})([/.])(\d{1,2})[/.](\d{4}|\d{2})"
_OFFSET_RE = r".*\d(?:Z|[+-]\d{2}:?\d{2})"


@dataclass(frozen=True)
class TimeOptions:
    """How to read dates (see ``--dayfirst`` and ``--date-format``)."""

    dayfirst: bool = False  # 01/02/2023 is 1 February
    date_format: str | None = None  # strftime format, e.g. %d/%m/%Y; overrides dayfirst


@dataclass
class TimeReading:
    """Parsed stamps, how dates were read (for messages) and, for ambiguous dates, the other
    reading."""

    stamps: pd.Index
    how: str | None = None  # e.g. "month first (mm/dd/yyyy)"; None when not dates
    day_first: pd.Index | None = None  # ambiguous slash dates: the day-first reading
    day_first_how: str | None = None


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


def first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def parse_time(
    raw: pd.Series, rows: np.ndarray, column: str, where: str, opts: TimeOptions | None = None
) -> pd.Index:
    """Parse a time column into stamps: :func:`read_time`'s stamps (month first if ambiguous)."""
    return read_time(raw, rows, column, where, opts).stamps


def read_time(
    raw: pd.Series, rows: np.ndarray, column: str, where: str, opts: TimeOptions | None = None
) -> TimeReading:
    """Parse a time column into stamps (not yet checked for order or regularity).

    Args:
        raw: The column as read, length N.
        rows: Row number of each entry, length N (header = row 1).
        column: Column name, for messages.
        where: Source description for messages (file name, series id).
        opts: ``--dayfirst`` and ``--date-format``.

    Returns:
        The stamps (``pd.PeriodIndex``, ``pd.DatetimeIndex`` or an ``int64`` ``pd.Index``,
        length N), how dates were read, and the day-first reading of ambiguous dates.

    Raises:
        DataError: a missing or unparseable stamp (names row, column and value).
    """
    blank = raw.isna().to_numpy().copy()
    if pd.api.types.is_object_dtype(raw.dtype) or pd.api.types.is_string_dtype(raw.dtype):
        text = as_text(raw)
        blank |= (text == "").fillna(True).to_numpy(dtype=bool)
    if blank.any():
        i = first_bad(blank)
        raise DataError(
            f"missing time stamp in {where} at row {rows[i]}, column '{column}'; "
            "every row needs a time stamp"
        )
    opts = opts or TimeOptions()
    if isinstance(raw.dtype, pd.PeriodDtype):
        return TimeReading(pd.PeriodIndex(raw))
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return TimeReading(pd.DatetimeIndex(raw), "as date-times")
    if opts.date_format is not None:
        return _with_format(as_text(raw), rows, column, where, opts.date_format)
    if pd.api.types.is_integer_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        return TimeReading(_from_ints(raw.to_numpy(dtype=np.int64)))
    if pd.api.types.is_float_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64)
        frac = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) > 1e15)
        if frac.any():
            i = first_bad(frac)
            raise DataError(
                f"time stamp {values[i]:g} in {where} at row {rows[i]}, column '{column}' is not "
                "a whole number, date or period; use integer steps, years, YYYY-MM, YYYYQn or "
                "dates (or pick another column with --time-col)"
            )
        return TimeReading(_from_ints(values.astype(np.int64)))
    return _parse_text(as_text(raw), rows, column, where, opts)


def _from_ints(values: np.ndarray) -> pd.Index:
    lo, hi = _YEAR_RANGE
    if values.size and values.min() >= lo and values.max() <= hi:
        return pd.PeriodIndex([str(int(v)) for v in values], freq="Y")
    return pd.Index(values, dtype=np.int64)


def _parse_text(
    text: pd.Series, rows: np.ndarray, column: str, where: str, opts: TimeOptions
) -> TimeReading:
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
            i = first_bad(bad)
            raise DataError(
                f"time stamp {quote(text.iloc[i])} in {where} at row {rows[i]}, column "
                f"'{column}' is not {label} like the first row ({quote(first)}); use one format"
            )
        if parts is None:
            return TimeReading(_from_ints(text.astype("int64").to_numpy()))
        if pattern == _QUARTER_RE:
            return TimeReading(pd.PeriodIndex((parts[0] + "Q" + parts[1]).tolist(), freq="Q"))
        return TimeReading(_months(parts, text, rows, column, where))
    return _parse_dates(text, rows, column, where, opts)


def _months(
    parts: pd.DataFrame, text: pd.Series, rows: np.ndarray, column: str, where: str
) -> pd.Index:
    months = parts[1].astype(int).to_numpy()
    bad = (months < 1) | (months > 12)
    if bad.any():
        i = first_bad(bad)
        raise DataError(
            f"month {quote(text.iloc[i])} in {where} at row {rows[i]}, column '{column}' is "
            "not a valid YYYY-MM month"
        )
    labels = parts[0].astype(str) + "-" + parts[1].astype(int).map("{:02d}".format)
    return pd.PeriodIndex(labels.tolist(), freq="M")


def _to_datetime(
    text: pd.Series, where: str, column: str, fmt: str | None = None, dayfirst: bool = False
) -> pd.Series:
    """``pd.to_datetime`` with unreadable entries as NaT; mixed UTC offsets become UTC."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = pd.to_datetime(text, errors="coerce", format=fmt, dayfirst=dayfirst)
            if out.dtype != object:  # pandas 2 gives objects for mixed offsets; 3 raises
                return out
        except (ValueError, TypeError, OverflowError) as err:
            text_err = str(err).lower()  # pandas 3 speaks of offsets, pandas 2 of tz-aware
            if not any(k in text_err for k in ("timezone", "offset", "tz-aware", "utc=true")):
                return pd.Series(pd.NaT, index=text.index)
        aware = text.str.fullmatch(_OFFSET_RE).to_numpy(dtype=bool, na_value=False)
        if not aware.all():
            return pd.Series(pd.NaT, index=text.index)  # naive and aware stamps: unreadable
        try:
            stamps = pd.to_datetime(text, errors="coerce", utc=True, format=fmt, dayfirst=dayfirst)
        except (ValueError, TypeError, OverflowError):
            return pd.Series(pd.NaT, index=text.index)
    logger.info(
        "%s: the time stamps in column '%s' have different UTC offsets (daylight saving?); "
        "converted them to UTC",
        where,
        column,
    )
    return stamps


def _with_format(
    text: pd.Series, rows: np.ndarray, column: str, where: str, fmt: str
) -> TimeReading:
    try:
        stamps = _to_datetime(text, where, column, fmt=fmt)
    except ValueError as err:  # a format pandas cannot use at all
        raise ConfigError(f"--date-format {quote(fmt)} is not a usable format: {err}") from err
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = first_bad(bad)
        raise DataError(
            f"time stamp {quote(text.iloc[i])} in {where} at row {rows[i]}, column "
            f"'{column}' does not match --date-format {fmt}; correct the stamp or the format"
        )
    return TimeReading(pd.DatetimeIndex(stamps), f"with --date-format {fmt}")


def _slash_formats(text: pd.Series) -> tuple[str, str] | None:
    """``(month-first, day-first)`` formats when every entry is a date like ``01/02/2023``."""
    parts = text.str.extract(f"^{_SLASH_RE}$")
    if parts.isna().any(axis=None):
        return None
    mark, year = str(parts.iloc[0, 1]), "%Y" if len(str(parts.iloc[0, 3])) == 4 else "%y"
    return f"%m{mark}%d{mark}{year}", f"%d{mark}%m{mark}{year}"


def _parse_dates(
    text: pd.Series, rows: np.ndarray, column: str, where: str, opts: TimeOptions
) -> TimeReading:
    stamps = _to_datetime(text, where, column, fmt="ISO8601")
    how = "as ISO 8601 dates"
    formats = None
    if stamps.isna().any():
        formats = _slash_formats(text)
        if formats is None:
            stamps = _to_datetime(text, where, column, dayfirst=opts.dayfirst)
            how = "day first" if opts.dayfirst else "month first where ambiguous"
        else:
            month_fmt, day_fmt = formats
            stamps = _to_datetime(text, where, column, fmt=month_fmt)
            how = f"month first ({month_fmt})"
            other = _to_datetime(text, where, column, fmt=day_fmt)
            if opts.dayfirst or (stamps.isna().any() and not other.isna().any()):
                stamps, other, how = other, stamps, f"day first ({day_fmt})"
            both = not stamps.isna().any() and not other.isna().any()
            if not opts.dayfirst and both and not bool((stamps == other).all()):
                return TimeReading(
                    pd.DatetimeIndex(stamps), how, pd.DatetimeIndex(other),
                    f"day first ({day_fmt})",
                )  # fmt: skip
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = first_bad(bad)
        read = f"; dates are read {how}" if formats is not None else ""
        raise DataError(
            f"cannot read time stamp {quote(text.iloc[i])} in {where} at row {rows[i]}, column "
            f"'{column}'{read}; use dates like 2024-01-31, integer steps, years, YYYY-MM or "
            "YYYYQn, or give the format with --date-format (or pick another column with "
            "--time-col)"
        )
    return TimeReading(pd.DatetimeIndex(stamps), how)


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
    keys = ordinals(stamps)
    dup = np.asarray(pd.Index(keys).duplicated(), dtype=bool)
    if dup.any():
        i = first_bad(dup)
        j = first_bad(keys == keys[i])
        raise DataError(
            f"duplicate time stamp {format_stamp(stamps[i])} in {where} at row {rows[i]}, "
            f"column '{column}' (same as row {rows[j]}); remove or aggregate the duplicate rows "
            "(or, for several series in one file, name the id column with --series-id)"
        )
    bad = np.diff(keys) < 0
    if bad.any():
        i = first_bad(bad) + 1
        raise DataError(
            f"time stamps are not in increasing order in {where}: row {rows[i]} "
            f"({format_stamp(stamps[i])}) comes after row {rows[i - 1]} "
            f"({format_stamp(stamps[i - 1])}); sort the data by '{column}'"
        )


def ordinals(stamps: pd.Index) -> np.ndarray:
    if isinstance(stamps, pd.PeriodIndex):
        return np.asarray(stamps.asi8, dtype=np.int64)
    if isinstance(stamps, pd.DatetimeIndex):
        return np.asarray(stamps.asi8, dtype=np.int64)
    return np.asarray(stamps, dtype=np.int64)
