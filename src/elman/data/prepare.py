"""From validated series to what the trainer and forecaster need: sizes, splits, scaling.

Nothing here touches a model. The functions decide the lookback and the validation size when
the user left them open, fit one scaler per series on its training part only, and build the
concatenated :class:`~elman.data.windows.Panel`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import torch

from elman.config import DataConfig
from elman.data.calendar import calendar_features
from elman.data.io import read_series
from elman.data.scaling import MAX_MAGNITUDE, Scaler
from elman.data.series import Series, check_length, row_label
from elman.data.textfile import TextOptions, read_file
from elman.data.windows import Layout, Panel, check_counts
from elman.errors import ConfigError, DataError

log = logging.getLogger(__name__)

MIN_TRAIN_WINDOWS = 8  # the automatic lookback keeps at least this many training windows
MIN_VAL_WINDOWS = 10  # the automatic validation part holds this many windows if it can
MAX_AUTO_LOOKBACK = 512  # the automatic lookback stops here (minute data: 3 days = 4,320)


def load_series(data: Any, cfg: DataConfig, constant_ok: bool = False) -> list[Series]:
    """Anything a user may pass (path, ``builtin:NAME``, DataFrame, array, Series) as series.

    ``constant_ok`` accepts a constant target: right for a history to continue from, wrong
    for training data.
    """
    if isinstance(data, Series):
        return [data]
    if isinstance(data, (list, tuple)) and data and all(isinstance(s, Series) for s in data):
        return list(data)
    if data is None:
        raise ConfigError("no data given: pass a file path, builtin:NAME, a DataFrame or an array")
    return read_series(
        data,
        target=list(cfg.target) or None,
        time_col=cfg.time_col,
        covariates=cfg.covariates,
        future_covariates=cfg.future_covariates,
        series_id=cfg.series_id,
        category=cfg.category,
        missing=cfg.missing,
        calendar=cfg.calendar,
        season=cfg.season,
        sep=cfg.sep,
        dayfirst=cfg.dayfirst,
        date_format=cfg.date_format,
        decimal=cfg.decimal,
        thousands=cfg.thousands,
        constant_ok=constant_ok,
    )


def read_future(path: str | Path, cfg: DataConfig) -> pd.DataFrame:
    """A CSV or Parquet table of future-covariate values (``elman forecast --future``).

    Columns: the future covariates by name, plus the series id column for several series;
    rows: the forecast steps in order.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--future {path}: file not found; check the path")
    opts = TextOptions(sep=cfg.sep, decimal=cfg.decimal, thousands=cfg.thousands)
    return read_file(path, opts)[0]  # read as the training data was


def layout_of(series: Series) -> Layout:
    """Column roles of a series."""
    return Layout(len(series.targets), len(series.covariates), len(series.future_covariates))


def check_same_schema(series: Sequence[Series]) -> None:
    """One global model needs the same columns in every series."""
    first = series[0]
    for s in series[1:]:
        if s.columns != first.columns:
            raise DataError(
                f"series {s.series_id!r} has columns {s.columns}, but series "
                f"{first.series_id!r} has {first.columns}; all series need the same columns"
            )


@dataclass(frozen=True)
class Sizes:
    """The resolved window and split sizes of a fit.

    ``padded``: series shorter than the lookback are padded at the start (their first row
    repeated, see :func:`window_pads`), in training and when forecasting; otherwise a
    series needs ``lookback`` points before any point it is forecast from.
    """

    lookback: int
    horizon: int
    val_size: int
    season: int
    padded: bool = False

    def __post_init__(self) -> None:
        check_counts(self, {"lookback": 1, "horizon": 1, "val_size": 0, "season": 1})
        if not isinstance(self.padded, bool):
            raise ConfigError(f"sizes.padded must be true or false, got {self.padded!r}")

    @property
    def first_cutoff(self) -> int:
        """The earliest point a series can be forecast from: after its first point when
        short series are padded, else after a whole lookback."""
        return 1 if self.padded else self.lookback

    def pad_before(self, points: int) -> int:
        """Padded rows a window ending after ``points`` real points needs (0 or more)."""
        return max(0, self.lookback - points) if self.padded else 0


def resolve_sizes(series: Sequence[Series], cfg: DataConfig, pad: bool = False) -> Sizes:
    """Pick lookback and validation size where the config leaves them open.

    Lookback: three seasons, two horizons or 12 steps, whichever is longest, but at most
    ``MAX_AUTO_LOOKBACK`` steps (each step of every window is a step of the recurrence, so
    minute data with a daily season would otherwise read 4,320 steps per window), and capped
    so that the shortest series keeps at least ``MIN_TRAIN_WINDOWS`` training windows. Validation:
    10% of the shortest series but at least ``MIN_VAL_WINDOWS`` windows (early stopping on a
    single window is noise); one window, or none, when the series is too short for that.

    With ``pad`` (window networks), a panel whose median series holds the lookback is not
    held back by its short series: the cap comes from the median series, and the series
    too short for it are padded (:func:`window_pads`; ``Sizes.padded``). The validation
    size still comes from the shortest series, which must hold it and one training window.
    """
    h = cfg.horizon
    season = cfg.season or int(series[0].season or 1)
    n = min(len(s) for s in series)
    val = cfg.val_size
    if val is None:
        val = max(h + MIN_VAL_WINDOWS - 1, math.ceil(0.1 * n))
        if n - val < 2 * h + MIN_TRAIN_WINDOWS:
            val = h if n - h >= 2 * h + MIN_TRAIN_WINDOWS else 0
    elif val and val < h:
        raise ConfigError(f"--val-size ({val}) must be 0 or >= --horizon ({h})")
    lookback = cfg.lookback
    least = 1 if pad and len(series) > 1 else lookback or 1  # inputs a window needs at least
    if cfg.val_size is not None and val and n - val < least + h:
        short = min(series, key=len)
        raise DataError(
            f"--val-size {val} leaves {max(n - val, 0)} of the {n} points of {short.name} for "
            f"training, fewer than one window (lookback {least} + horizon {h}); lower "
            f"--val-size (at most {max(n - least - h, 0)} here) or use --val-size 0"
        )
    # the lookback the median series holds with MIN_TRAIN_WINDOWS windows (padding's limit)
    median = sorted(len(s) for s in series)[(len(series) - 1) // 2]
    roomy = median - val - h - MIN_TRAIN_WINDOWS + 1 if pad and len(series) > 1 else 0
    padded = False
    if lookback is None:
        base = min(max(3 * season if season > 1 else 0, 2 * h, 12), MAX_AUTO_LOOKBACK)
        cap = n - val - h - MIN_TRAIN_WINDOWS + 1
        lookback = max(1, min(base, cap))
        if lookback < base and roomy > lookback:
            lookback, padded = min(base, roomy), True
        elif lookback < base and len(series) > 1:
            short = min(series, key=len)
            longer = sum(len(s) > n for s in series)
            log.warning(
                "the automatic lookback is %d, not %d: %s has only %d points, and one "
                "lookback serves all %d series (%d of them longer); give --lookback to "
                "choose it, or train the short series apart",
                lookback, base, short.name, n, len(series), longer,
            )  # fmt: skip
    else:  # a given lookback: padded only where a series could not hold one window of it
        padded = roomy >= lookback and n - val < lookback + h
    sizes = Sizes(lookback=lookback, horizon=h, val_size=val, season=season, padded=padded)
    for s in series:
        check_length(s.slice(0, len(s) - val), 1 if padded else lookback, h)
    if padded:
        pads = window_pads([len(s) - val for s in series], sizes)
        count = sum(p > 0 for p in pads)
        log.warning(
            "lookback %d: %d of the %d series %s too short for %d training windows of it "
            "(the shortest, %s, has %d points), so their windows are padded at the start "
            "with their first value; give --lookback to choose another",
            lookback, count, len(series), "is" if count == 1 else "are", MIN_TRAIN_WINDOWS,
            min(series, key=len).name, n,
        )  # fmt: skip
    return sizes


def window_values(series: Series, sizes: Sizes) -> np.ndarray:
    """The last ``lookback`` rows of ``series`` in real units ``[L, C]``, a padded model's
    short series padded in front with copies of its first row (what the network reads)."""
    values = np.asarray(series.tail(sizes.lookback).values, np.float64)
    pad = sizes.pad_before(len(values))
    return np.concatenate([np.repeat(values[:1], pad, axis=0), values]) if pad else values


def window_pads(train_points: Sequence[int], sizes: Sizes) -> list[int]:
    """Padded rows in front of each series for training, from its training points.

    A series whose training part holds fewer than ``MIN_TRAIN_WINDOWS`` whole windows gets
    ``lookback - 1`` rows (a window for every horizon of targets after its first point);
    the others, and every series of a fit that is not ``padded``, get none.
    """
    if not sizes.padded:
        return [0] * len(train_points)
    need = sizes.lookback + sizes.horizon + MIN_TRAIN_WINDOWS - 1
    return [sizes.lookback - 1 if n < need else 0 for n in train_points]


def fit_scalers(series: Sequence[Series], train_ends: Sequence[int], kind: str) -> list[Scaler]:
    """One scaler per series, fitted on rows before that series' training end.

    Raises:
        DataError: values too large to scale, naming the series, column and row of the
            largest one and the fix.
    """
    out = []
    for s, end in zip(series, train_ends, strict=True):
        try:
            out.append(Scaler(kind).fit(s.values[:end]))
        except DataError as exc:
            part = np.abs(np.nan_to_num(s.values[:end], nan=0.0, posinf=np.inf))
            if not part.size:
                raise
            row, col = (int(v) for v in np.unravel_index(int(np.argmax(part)), part.shape))
            raise DataError(
                f"{s.name}, column '{s.columns[col]}': values up to {s.values[row, col]:.3g} (at "
                f"{row_label(s, row)}) are too large to scale (elman scales values up to "
                f"{MAX_MAGNITUDE:.0e}); divide the column by a power of ten, or remove the outlier"
            ) from exc
    return out


MAX_SCALED = 1e18  # beyond this a float32 network's squared errors overflow to inf
SCALE_ROWS = 1 << 18  # rows scaled per step: bounds the float64 temporaries of a long series


def scaled_tensor(series: Series, scaler: Scaler) -> torch.Tensor:
    """Scaled values as float32 ``[T, C]``; refuses values a float32 network cannot use.

    Scaled in float64 blocks of ``SCALE_ROWS`` rows, so a long series needs no float64
    temporary of its size (the values are the same as scaling it whole).
    """
    values = series.values
    out = np.empty(values.shape, dtype=np.float32)
    for lo in range(0, len(values), SCALE_ROWS):
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            block = np.asarray(scaler.transform(values[lo : lo + SCALE_ROWS]), dtype=np.float64)
        bad = ~(np.abs(block) <= MAX_SCALED)
        if bad.any():
            row, col = (int(v[0]) for v in np.nonzero(bad))
            _refuse_scaled(series, lo + row, col, float(block[row, col]))
        out[lo : lo + len(block)] = block
    return torch.from_numpy(out)


def _refuse_scaled(series: Series, row: int, col: int, scaled: float) -> NoReturn:
    raise DataError(
        f"value {series.values[row, col]:g} in {series.name} at {row_label(series, row)}, "
        f"column '{series.columns[col]}' is {scaled:.3g} scale units from the "
        "training part, too far for the network; check the units or remove the outlier"
    )


def build_panel(
    series: Sequence[Series], scalers: Sequence[Scaler], pads: Sequence[int] | None = None
) -> Panel:
    """Scaled series concatenated for window gathering (each after ``pads[i]`` copies of
    its first row, if given)."""
    arrays = [scaled_tensor(s, sc) for s, sc in zip(series, scalers, strict=True)]
    return Panel(arrays, layout_of(series[0]), pads)


def future_block(
    series: Series, horizon: int, future: pd.DataFrame | None, calendar_cols: Sequence[str]
) -> np.ndarray:
    """Known-ahead inputs of the next ``horizon`` steps ``[H, n_f]`` in series column order.

    Calendar columns are generated from the continued time index; other future covariates
    come from ``future`` (first ``horizon`` rows, matched by column name).
    """
    names = series.future_covariates
    if not names:
        return np.zeros((horizon, 0))
    idx = series.future_index(horizon)
    cal = calendar_features(idx, series.freq, series.season) if calendar_cols else None
    out = np.empty((horizon, len(names)))
    for j, name in enumerate(names):
        if cal is not None and name in cal.columns:
            out[:, j] = cal[name].to_numpy()
            continue
        if future is None or name not in future.columns:
            raise DataError(
                f"future covariate '{name}' is needed for the {horizon} forecast steps of "
                f"{series.name}; pass it with future= (a table with a '{name}' column) or "
                "'elman forecast --future FILE'"
            )
        col = pd.to_numeric(future[name], errors="coerce").to_numpy()[:horizon]
        if len(col) < horizon or not np.isfinite(col).all():
            raise DataError(
                f"future covariate '{name}' needs {horizon} finite values, got {len(col)} "
                f"({int(np.isfinite(col).sum())} finite)"
            )
        out[:, j] = col
    return out
