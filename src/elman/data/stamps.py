"""Time stamps: reading a time column into an index and checking its order.

Time column parsing (:func:`parse_time`) recognises, in this order:

* datetime or period dtypes (DataFrame and Parquet sources) as they are;
* integers between 1000 and 2999 as years -> yearly ``pd.PeriodIndex`` (``'Y'``);
* other integers -> an integer index (no calendar; ``freq`` is ``None``);
* ``YYYYQn`` (also ``YYYY-Qn``, ``YYYY Qn``) -> quarterly ``pd.PeriodIndex`` (``'Q'``);
* ``YYYY-MM`` (also ``YYYY/MM``) -> monthly ``pd.PeriodIndex`` (``'M'``);
* anything else is parsed as dates (ISO 8601 first, then pandas' format inference) ->
  ``pd.DatetimeIndex`` whose frequency comes from ``pd.infer_freq`` (weekly data gives
  ``'W-SAT'`` and the like, daily ``'D'``, hourly ``'h'``, half-hourly ``'30min'``).

Row numbers in messages follow the package convention: the header is row 1, so the first
data row is row 2 (the line number in a CSV file).
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd

from elman.errors import DataError

_STAMP_NAMES = frozenset({"date", "datetime", "time", "timestamp", "ds", "day", "hour"})
TIME_NAMES = _STAMP_NAMES | {"week", "month", "quarter", "year", "period"}
"""Column names (case-insensitive) taken as the time column when ``time_col`` is not given."""

_YEAR_RANGE = (1000, 2999)
_QUARTER_RE = r"(\d{4})\s*[-/ ]?\s*[Qq]([1-4])"
_MONTH_RE = r"(\d{4})[-/](\d{1,2})"
_INT_RE = r"[+-]?\d{1,18}"


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
        i = first_bad(blank)
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
            i = first_bad(frac)
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
            i = first_bad(bad)
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
        i = first_bad(bad)
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
        i = first_bad(bad)
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
