"""The validated time series every later stage consumes, and the checks that guard it.

Row numbers in messages: the header counts as row 1, so the first data point is row 2 (the
line number in a CSV file with a header). In-memory data is numbered the same way, as if it
were written to a CSV file; messages also give the time stamp, which is unambiguous.

The building blocks at the end (:func:`parse_columns`, :func:`place_on_grid`,
:func:`add_calendar`) turn parsed columns into a series' values with one float64 copy of
the data: rows without a time column, or whose stamps leave no hole, are used as they are.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from elman.data.calendar import (
    calendar_features,
    choose_reading,
    regular_grid,
    season_length,
    to_pandas_offset,
)
from elman.data.stamps import TimeOptions, as_text, check_order, format_stamp, read_time
from elman.data.textfile import number_hint
from elman.errors import ConfigError, DataError, quote

logger = logging.getLogger(__name__)

MISSING_POLICIES = ("error", "interpolate", "ffill", "drop")
"""Accepted values of the ``missing`` option."""

FIRST_ROW = 2
"""Row number of the first data point (the header is row 1)."""

NA_TOKENS = frozenset({"", "na", "nan", "n/a", "#n/a", "null", "none", "-nan"})
"""Cell texts (case-insensitive, trimmed) that count as a missing value."""

_FIX_MISSING = "use --missing interpolate|ffill|drop"

RowNumbers = np.ndarray | range
"""Row number of each entry (header = row 1): an array, or a ``range`` for consecutive rows
(which costs no memory on a long series)."""


def row_array(rows: RowNumbers) -> np.ndarray:
    """Row numbers as an int64 array."""
    if isinstance(rows, range):
        return np.arange(rows.start, rows.stop, rows.step, dtype=np.int64)
    return np.asarray(rows, dtype=np.int64)


@dataclass
class Series:
    """One (possibly multivariate) time series with its index and column roles.

    Attributes:
        values: ``[T, C]`` float64; columns ordered targets, covariates, future covariates.
        index: Length-T time index: ``pd.PeriodIndex`` (``'Y'``, ``'Q'``, ``'M'``),
            ``pd.DatetimeIndex`` (weekly, daily, sub-daily) or an integer index.
        targets: Names of the columns to forecast (at least one).
        covariates: Past-observed inputs (known only up to the present).
        future_covariates: Inputs known ahead, including generated calendar features.
        freq: Pandas alias (``'Y'``, ``'Q'``, ``'M'``, ``'W-SAT'``, ``'D'``, ``'h'``, ...) or
            ``None`` for an integer index.
        series_id: Identifier within a long-format source, else ``None``.
        source: Where the data came from, for messages.
        season: Season length in steps; defaults to :func:`season_length` of ``freq``.
        category: The series' category from a ``category`` column (one value per series),
            or ``None``.
    """

    values: np.ndarray
    index: pd.Index
    targets: list[str]
    covariates: list[str] = field(default_factory=list)
    future_covariates: list[str] = field(default_factory=list)
    freq: str | None = None
    series_id: str | None = None
    source: str = "<memory>"
    season: int | None = None
    category: str | None = None  # the series' category (``category`` column), if read

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim == 1:
            values = values.reshape(-1, 1)
        if values.ndim != 2:
            raise DataError(f"series values must be 2-D [time, columns], got shape {values.shape}")
        self.values = values
        self.targets = list(self.targets)
        self.covariates = list(self.covariates)
        self.future_covariates = list(self.future_covariates)
        if not isinstance(self.index, pd.Index):
            self.index = pd.Index(self.index)
        sid = self.series_id
        if not pd.api.types.is_scalar(sid):
            raise DataError(
                f"series id {sid!r} from {self.source} is a {type(sid).__name__}; "
                "a series id must be one value (a name or a number)"
            )
        self._check_structure()
        if self.season is None:
            self.season = season_length(self.freq)
        elif self.season < 1:
            raise ConfigError(f"season must be >= 1, got {self.season} (use --season)")

    def _check_structure(self) -> None:
        cols = self.columns
        if not self.targets:
            raise DataError(f"series from {self.source} has no target column (use --target)")
        if len(set(cols)) != len(cols):
            dup = sorted({c for c in cols if cols.count(c) > 1})
            raise DataError(
                f"column {dup[0]!r} is used twice in {self.source}; give each column one role"
            )
        if self.values.shape[1] != len(cols):
            raise DataError(
                f"series from {self.source} has {self.values.shape[1]} value columns but "
                f"{len(cols)} names ({', '.join(cols)})"
            )
        if len(self.index) != self.values.shape[0]:
            raise DataError(
                f"series from {self.source} has {self.values.shape[0]} rows but an index of "
                f"length {len(self.index)}"
            )

    @property
    def columns(self) -> list[str]:
        """All column names in value order: targets, covariates, future covariates."""
        return [*self.targets, *self.covariates, *self.future_covariates]

    @property
    def target_values(self) -> np.ndarray:
        """The target columns, ``[T, n_targets]`` (a view)."""
        return self.values[:, : len(self.targets)]

    @property
    def name(self) -> str:
        """Short description for messages: source plus series id."""
        if self.series_id is None:
            return self.source
        return f"{self.source} (series {self.series_id!r})"

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def future_index(self, horizon: int) -> pd.Index:
        """The next ``horizon`` stamps after the last one, at the series' frequency.

        Args:
            horizon: Number of future steps (>= 1).

        Returns:
            Length-``horizon`` index of the same kind as ``index``.

        Raises:
            ConfigError: ``horizon`` < 1.
            DataError: the series is empty, or a datetime index has no known frequency.
        """
        if horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {horizon} (use --horizon)")
        if len(self.index) == 0:
            raise DataError(f"cannot continue the time index of {self.name}: it is empty")
        last = self.index[-1]
        if isinstance(self.index, pd.PeriodIndex):
            return pd.period_range(start=last, periods=horizon + 1, freq=self.index.freq)[1:]
        if isinstance(self.index, pd.DatetimeIndex):
            freq = self.freq or self.index.freqstr
            if freq is None:
                raise DataError(
                    f"cannot continue the time index of {self.name}: its frequency is unknown"
                )
            offset = to_pandas_offset(freq)
            return pd.date_range(start=last + offset, periods=horizon, freq=offset)
        step = _int_step(self.index)
        start = int(last) + step
        return pd.RangeIndex(start, start + horizon * step, step)

    def slice(self, start: int | None = None, stop: int | None = None) -> Series:
        """Rows ``start:stop`` as a new Series sharing memory with this one (no copy)."""
        return dataclasses.replace(
            self, values=self.values[start:stop], index=self.index[start:stop]
        )

    def tail(self, n: int) -> Series:
        """The last ``n`` rows (a view)."""
        return self.slice(max(len(self) - n, 0), None)

    def to_frame(self) -> pd.DataFrame:
        """The values as a DataFrame ``[T, C]`` indexed by ``index``."""
        return pd.DataFrame(self.values, index=self.index, columns=self.columns)


def _int_step(index: pd.Index) -> int:
    if isinstance(index, pd.RangeIndex):
        return int(index.step)
    if len(index) < 2:
        return 1
    diffs = np.diff(np.asarray(index, dtype=np.int64))
    return int(diffs.min()) if diffs.min() > 0 else 1


def row_label(series: Series, position: int) -> str:
    """``'row R (stamp)'`` for a 0-based position, using the package row convention."""
    return f"row {position + FIRST_ROW} ({format_stamp(series.index[position])})"


def check_finite(series: Series) -> None:
    """Reject NaN and infinite values.

    Raises:
        DataError: names the first bad row (header = row 1) and column.
    """
    bad = ~np.isfinite(series.values)
    if not bad.any():
        return
    pos, col = (int(v[0]) for v in np.nonzero(bad))
    kind = "missing" if np.isnan(series.values[pos, col]) else "infinite"
    hint = "; use --missing interpolate|ffill|drop" if kind == "missing" else ""
    raise DataError(
        f"{kind} value in {series.name} at {row_label(series, pos)}, "
        f"column '{series.columns[col]}'{hint}"
    )


def check_not_constant(series: Series) -> None:
    """Reject a target column whose values are all equal (nothing to learn, zero scale).

    Raises:
        DataError: names the constant column and its value.
    """
    for j, name in enumerate(series.targets):
        col = series.values[:, j]
        if len(col) > 1 and np.all(col == col[0]):
            raise DataError(
                f"target column '{name}' in {series.name} is constant (every value is "
                f"{col[0]:g}); a constant series cannot be learned, pick another --target"
            )


def validate(series: Series) -> Series:
    """Run all content checks (finite values, non-constant targets) and return the series."""
    check_finite(series)
    check_not_constant(series)
    return series


def check_length(series: Series, lookback: int, horizon: int) -> None:
    """Require enough points for at least one window of ``lookback`` inputs + ``horizon`` targets.

    Raises:
        ConfigError: ``lookback`` or ``horizon`` < 1.
        DataError: says how many points are needed and how to fix it.
    """
    if lookback < 1:
        raise ConfigError(f"lookback must be >= 1, got {lookback} (use --lookback)")
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1, got {horizon} (use --horizon)")
    need = lookback + horizon
    if len(series) < need:
        who = "series" if series.series_id is None else f"series {series.series_id!r}"
        raise DataError(
            f"{who} is too short: {len(series)} points, but lookback {lookback} + horizon "
            f"{horizon} needs at least {need} (lower --lookback or --horizon)"
        )


def fill_missing(values: np.ndarray, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """Apply a missing-value policy to a regular-grid array.

    ``interpolate`` is linear in time (the rows lie on a regular grid, so linear in position);
    values before the first and after the last observation take the nearest observation.
    ``ffill`` carries the last observation forward; leading gaps are back-filled. ``drop``
    removes every row with a missing value, which leaves holes in the time index: the series
    keeps its nominal ``freq`` but is no longer evenly spaced. ``error`` leaves values as
    they are (the caller reports the first gap).

    Args:
        values: ``[T, C]`` float64 with NaN for missing values (not modified).
        policy: One of :data:`MISSING_POLICIES`.

    Returns:
        ``(filled, keep)``: the new ``[T', C]`` values and a boolean mask ``[T]`` of the rows
        kept (all ``True`` unless ``policy == 'drop'``).

    Raises:
        ConfigError: unknown policy.
    """
    if policy not in MISSING_POLICIES:
        raise ConfigError(
            f"missing={policy!r} is not one of {', '.join(MISSING_POLICIES)} (use --missing)"
        )
    keep = np.ones(values.shape[0], dtype=bool)
    nan = np.isnan(values)
    if policy == "error" or not nan.any():
        return values, keep
    if policy == "drop":
        keep = ~nan.any(axis=1)
        return values[keep], keep
    out = values.copy()
    pos = np.arange(values.shape[0], dtype=np.float64)
    for j in np.flatnonzero(nan.any(axis=0)):
        ok = ~nan[:, j]
        if not ok.any():
            continue
        if policy == "interpolate":
            out[:, j] = np.interp(pos, pos[ok], values[ok, j])
        else:
            last = np.maximum.accumulate(np.where(ok, np.arange(len(ok)), -1))
            first = int(np.flatnonzero(ok)[0])
            out[:, j] = values[np.where(last < 0, first, last), j]
    return out, keep


# ---------------------------------------------------------------------------- cells


def parse_numbers(col: pd.Series, column: str, rows: RowNumbers, where: str) -> np.ndarray:
    """Convert one value column to float64, treating :data:`NA_TOKENS` and blanks as NaN.

    A float64 column comes back without a copy (possibly a read-only view of the column);
    callers that keep or change the values copy them.

    Args:
        col: The column as read, length N (numbers, text or Python objects).
        column: Column name, for messages.
        rows: Row number of each entry (header = row 1).
        where: Source description, for messages.

    Returns:
        ``[N]`` float64 with NaN for missing cells.

    Raises:
        DataError: a non-numeric cell (names row, column and value) or a non-numeric dtype.
    """
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_complex_dtype(dtype) or not (
        pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    ):
        raise DataError(
            f"column '{column}' in {where} holds {dtype} values, not numbers; pick numeric "
            "columns with --target and --covariates"
        )
    if isinstance(dtype, np.dtype) and pd.api.types.is_numeric_dtype(dtype):
        return np.asarray(col.to_numpy(), dtype=np.float64)  # NaN is already the missing value
    if pd.api.types.is_numeric_dtype(dtype):  # nullable and Arrow dtypes: NA -> NaN
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    text = as_text(col)
    blank = text.isna() | text.str.lower().isin(NA_TOKENS)
    parsed = pd.to_numeric(text.mask(blank), errors="coerce")
    bad = (parsed.isna() & ~blank).to_numpy(dtype=bool)
    if bad.any():  # pandas 2 turns numbers beyond float64 (1e400) into NaN, not infinity
        parsed = parsed.astype(np.float64)  # also from a nullable integer dtype
        for k in np.flatnonzero(bad).tolist():
            try:
                parsed.iloc[k] = float(str(text.iloc[k]).strip())
            except ValueError:
                continue
        bad = (parsed.isna() & ~blank).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"non-numeric value {quote(col.iloc[i])} in {where} at row {rows[i]}, column "
            f"'{column}'; {number_hint(str(text.iloc[i]))}"
        )
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)


def check_cells_finite(raw: np.ndarray, rows: RowNumbers, columns: list[str], where: str) -> None:
    """Reject infinite cells in ``raw [N, C]``, naming the file row and column."""
    bad = np.isinf(raw)
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise DataError(
            f"infinite or too large value in {where} at row {rows[i]}, column "
            f"'{columns[j]}'; replace it with a finite number or leave the cell empty"
        )


def check_columns_observed(full: np.ndarray, columns: list[str], where: str) -> None:
    """Reject a column of ``full [G, C]`` that holds no value at all."""
    empty = np.isnan(full).all(axis=0)
    if empty.any():
        col = columns[int(np.flatnonzero(empty)[0])]
        raise DataError(f"column '{col}' in {where} has no values; pick another column")


def check_no_missing(
    full: np.ndarray, full_rows: RowNumbers, grid: pd.Index, columns: list[str], where: str
) -> None:
    """Report the first missing value of ``full [G, C]`` (row-major), for ``missing='error'``.

    ``full_rows [G]`` holds each grid row's file row, or -1 for a row the file lacks (a hole
    in the time grid), which is reported as a gap between the neighbouring file rows.
    """
    nan = np.isnan(full)
    if not nan.any():
        return
    i, j = (int(v[0]) for v in np.nonzero(nan))
    if full_rows[i] >= 0:
        raise DataError(
            f"missing value in {where} at row {full_rows[i]} ({format_stamp(grid[i])}), column "
            f"'{columns[j]}'; {_FIX_MISSING}"
        )
    known = row_array(full_rows)
    before = known[:i][known[:i] >= 0][-1]
    after = known[i:][known[i:] >= 0][0]
    raise DataError(
        f"no row for {format_stamp(grid[i])} in {where}: the time stamps jump from row "
        f"{before} to row {after}; {_FIX_MISSING} to fill the gap"
    )


# ---------------------------------------------------------------------------- building


def parse_columns(
    part: pd.DataFrame, columns: list[str], rows: RowNumbers, where: str
) -> np.ndarray:
    """The value columns as one new float64 array ``[N, C]``: the only copy of the values."""
    raw = np.empty((len(part), len(columns)))
    for j, col in enumerate(columns):
        raw[:, j] = parse_numbers(part[col], col, rows, where)
    return raw


def place_on_grid(
    part: pd.DataFrame,
    raw: np.ndarray,
    rows: np.ndarray,
    time: str,
    where: str,
    times: TimeOptions | None = None,
) -> tuple[pd.Index, str | None, np.ndarray, np.ndarray]:
    """Place the rows on the regular grid of their time stamps; holes become NaN rows.

    Returns ``(grid, freq, full [G, C], full_rows [G])``, ``full_rows`` holding each grid
    row's row number or -1 for a hole.
    """
    stamps, how = choose_reading(read_time(part[time], rows, time, where, times), rows, time, where)
    check_order(stamps, rows, time, where)
    grid, pos, freq = regular_grid(stamps, rows, time, where, how)
    if len(grid) == len(pos):  # no holes: the stamps are the grid, in order
        return grid, freq, raw, rows
    logger.info("%s: %d rows missing from the time grid", where, len(grid) - len(pos))
    full = np.full((len(grid), raw.shape[1]), np.nan)  # [G, C], G > N
    full[pos] = raw
    full_rows = np.full(len(grid), -1, dtype=np.int64)
    full_rows[pos] = rows
    return grid, freq, full, full_rows


def add_calendar(
    values: np.ndarray,
    index: pd.Index,
    freq: str | None,
    season: int | None,
    columns: list[str],
    future: list[str],
    where: str,
) -> tuple[np.ndarray, list[str]]:
    """Append the calendar features of ``index`` to ``values`` as future covariates.

    Returns the new values ``[T, C + F]`` and the future covariate names.

    Raises:
        DataError: a data column has the name of a calendar feature.
    """
    feats = calendar_features(index, freq, season)
    clash = [c for c in feats.columns if c in columns]
    if clash:
        raise DataError(
            f"column '{clash[0]}' in {where} has the name of a calendar feature; rename it "
            "or turn calendar features off"
        )
    if feats.shape[1] == 0:
        logger.info("%s: no calendar features for frequency %s", where, freq)
        return values, future
    added = feats.to_numpy(dtype=np.float64)  # [T, F]
    return np.concatenate([values, added], axis=1), [*future, *map(str, feats.columns)]
