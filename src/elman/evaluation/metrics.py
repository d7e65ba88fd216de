"""Forecast accuracy metrics over numpy arrays.

Every metric takes arrays of matching (or broadcastable) shape, typically ``[..., H, C]``
(forecast windows, horizon steps, columns), and returns one float averaged over all
entries. :func:`metrics_by_step` averages over windows and columns only, giving one value
per horizon step.

Missing values: a position where any input (actual, forecast, bound) is NaN is left out of
the average. When nothing is left, the metric is NaN and a :class:`MetricWarning` is issued.

Undefined values never crash and never give ``inf``: MAPE with a zero actual and MASE with
a zero in-sample scale give NaN, with a :class:`MetricWarning` saying why.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from elman.errors import ConfigError, DataError

__all__ = [
    "MetricWarning",
    "compute_metrics",
    "coverage",
    "interval_score",
    "level_name",
    "mae",
    "mape",
    "mase",
    "mase_scale",
    "metrics_by_step",
    "pinball",
    "rmse",
    "smape",
]

log = logging.getLogger(__name__)

Axis = int | tuple[int, ...] | None


class MetricWarning(RuntimeWarning):
    """A metric is undefined for the given data and came out as NaN."""


# ----------------------------------------------------------------------------- helpers


def _as_float(x: ArrayLike, name: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"`{name}` must be numeric: {exc}") from None


def _aligned(**arrays: ArrayLike) -> tuple[list[np.ndarray], np.ndarray]:
    """Broadcast named arrays together; also return the mask of positions with no NaN."""
    values = [_as_float(v, k) for k, v in arrays.items()]
    try:
        values = list(np.broadcast_arrays(*values))
    except ValueError:
        shapes = ", ".join(f"`{k}` {v.shape}" for k, v in zip(arrays, values, strict=True))
        raise DataError(f"shapes do not broadcast: {shapes}") from None
    valid = np.ones(values[0].shape, dtype=bool)
    for v in values:
        valid &= ~np.isnan(v)
    return values, valid


def _mean(terms: np.ndarray, valid: np.ndarray, axis: Axis, metric: str) -> np.ndarray:
    """Mean of ``terms`` over ``valid`` positions; NaN terms at valid positions propagate."""
    total = np.where(valid, terms, 0.0).sum(axis=axis)
    count = valid.sum(axis=axis)
    if np.any(count == 0):
        warnings.warn(
            f"{metric}: no non-missing values to average; result is NaN",
            MetricWarning,
            stacklevel=3,
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(count > 0, total / np.maximum(count, 1), np.nan))


def _abs_error(actual: ArrayLike, forecast: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    (a, f), valid = _aligned(actual=actual, forecast=forecast)
    return np.abs(a - f), valid


def _mae(actual: ArrayLike, forecast: ArrayLike, axis: Axis) -> np.ndarray:
    err, valid = _abs_error(actual, forecast)
    return _mean(err, valid, axis, "MAE")


def _rmse(actual: ArrayLike, forecast: ArrayLike, axis: Axis) -> np.ndarray:
    err, valid = _abs_error(actual, forecast)
    return np.sqrt(_mean(err**2, valid, axis, "RMSE"))


def _mape(actual: ArrayLike, forecast: ArrayLike, axis: Axis) -> np.ndarray:
    (a, f), valid = _aligned(actual=actual, forecast=forecast)
    zero = valid & (a == 0)
    if zero.any():
        warnings.warn(
            f"MAPE: {int(zero.sum())} actual value(s) are zero, so MAPE is undefined "
            "(NaN) there; use sMAPE or MASE for series that touch zero",
            MetricWarning,
            stacklevel=3,
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(zero, np.nan, 100.0 * np.abs(a - f) / np.abs(a))
    return _mean(terms, valid, axis, "MAPE")


def _smape(actual: ArrayLike, forecast: ArrayLike, axis: Axis) -> np.ndarray:
    (a, f), valid = _aligned(actual=actual, forecast=forecast)
    denom = np.abs(a) + np.abs(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(denom == 0, 0.0, 200.0 * np.abs(a - f) / denom)
    return _mean(terms, valid, axis, "sMAPE")


def _mase(
    actual: ArrayLike, forecast: ArrayLike, insample: ArrayLike, season: int, axis: Axis
) -> np.ndarray:
    scale = mase_scale(insample, season)
    err, valid = _abs_error(actual, forecast)
    try:
        scaled = err / scale  # scale is () or [C]: broadcasts over the last (column) axis
    except ValueError:
        raise DataError(
            f"`insample` has {scale.size} column(s) but `actual` has shape "
            f"{err.shape}; the last axes must match"
        ) from None
    return _mean(scaled, np.broadcast_to(valid, scaled.shape), axis, "MASE")


# ----------------------------------------------------------------------------- metrics


def mae(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Mean absolute error ``mean |y - f|``.

    Args:
        actual: observed values, any shape, e.g. ``[N, H, C]``.
        forecast: forecasts broadcastable to ``actual``.

    Returns:
        The mean over all non-missing positions.
    """
    return float(_mae(actual, forecast, None))


def rmse(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Root mean squared error ``sqrt(mean (y - f)^2)``; shapes as in :func:`mae`."""
    return float(_rmse(actual, forecast, None))


def mape(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Mean absolute percentage error ``100 * mean |y - f| / |y|``, in percent.

    Shapes as in :func:`mae`. A zero actual makes the result NaN and issues a
    :class:`MetricWarning`.
    """
    return float(_mape(actual, forecast, None))


def smape(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Symmetric MAPE ``mean 200 * |y - f| / (|y| + |f|)``, in percent (0 to 200).

    Shapes as in :func:`mae`. A term with ``y == f == 0`` counts as 0.
    """
    return float(_smape(actual, forecast, None))


def mase_scale(insample: ArrayLike, season: int = 1) -> np.ndarray:
    """In-sample MAE of the seasonal-naive forecast, ``mean_t |y_t - y_{t-m}|``.

    ``m`` is ``season``, or 1 when the history has fewer than ``season + 1`` values.
    Missing values are skipped.

    Args:
        insample: the training history, ``[T]`` or ``[T, C]``.
        season: seasonal period ``m >= 1``.

    Returns:
        The scale, shape ``()`` for ``[T]`` input or ``[C]`` for ``[T, C]``. A zero or
        undefined scale is NaN, with a :class:`MetricWarning`.
    """
    _check_season(season)
    y = _as_float(insample, "insample")
    if y.ndim not in (1, 2):
        raise DataError(f"`insample` must have shape [T] or [T, C], got {y.shape}")
    if y.shape[0] < 2:
        raise DataError(f"`insample` has {y.shape[0]} value(s); MASE needs at least 2")
    m = season if y.shape[0] > season else 1
    if m != season:
        log.debug(
            "MASE: history of %d values is shorter than season %d + 1; using m=1",
            y.shape[0],
            season,
        )
    diff = np.abs(y[m:] - y[:-m])
    valid = ~np.isnan(diff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        scale = _mean(diff, valid, 0, "MASE scale")
    bad = ~(scale > 0)
    if np.any(bad):
        warnings.warn(
            f"MASE: the in-sample seasonal-naive error (m={m}) is zero or undefined "
            f"for {int(bad.sum())} column(s); MASE is NaN there",
            MetricWarning,
            stacklevel=2,
        )
    return np.where(bad, np.nan, scale)


def mase(actual: ArrayLike, forecast: ArrayLike, insample: ArrayLike, season: int = 1) -> float:
    """Mean absolute scaled error: ``|y - f|`` divided by :func:`mase_scale`, averaged.

    Args:
        actual: observed values ``[..., C]`` (or ``[...]`` with a 1-D ``insample``).
        forecast: forecasts broadcastable to ``actual``.
        insample: the history the forecasts were made from, ``[T]`` or ``[T, C]``;
            each column is scaled by its own in-sample error.
        season: seasonal period of the naive reference forecast.

    Returns:
        The MASE; below 1 means better than the in-sample seasonal-naive forecast.
    """
    return float(_mase(actual, forecast, insample, season, None))


def coverage(actual: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Fraction of actual values inside ``[lower, upper]`` (bounds included).

    Args:
        actual: observed values, any shape.
        lower: lower bounds broadcastable to ``actual``.
        upper: upper bounds broadcastable to ``actual``.

    Returns:
        A fraction between 0 and 1.
    """
    (a, lo, hi), valid = _aligned(actual=actual, lower=lower, upper=upper)
    _check_bounds(lo, hi, valid)
    inside = ((lo <= a) & (a <= hi)).astype(np.float64)
    return float(_mean(inside, valid, None, "coverage"))


def pinball(actual: ArrayLike, quantile_forecast: ArrayLike, q: float) -> float:
    """Mean pinball (quantile) loss ``max(q * (y - f), (q - 1) * (y - f))``.

    Args:
        actual: observed values, any shape.
        quantile_forecast: forecasts of the ``q`` quantile, broadcastable to ``actual``.
        q: the quantile, strictly between 0 and 1.

    Returns:
        The mean loss.
    """
    if not 0.0 < q < 1.0:
        raise ConfigError(f"`q` ({q}) must be strictly between 0 and 1")
    (a, f), valid = _aligned(actual=actual, quantile_forecast=quantile_forecast)
    diff = a - f
    return float(_mean(np.maximum(q * diff, (q - 1.0) * diff), valid, None, "pinball"))


def interval_score(actual: ArrayLike, lower: ArrayLike, upper: ArrayLike, level: float) -> float:
    """Mean interval (Winkler) score of central ``level`` % intervals; lower is better.

    Each term is ``(u - l) + (2 / a) * (l - y) * [y < l] + (2 / a) * (y - u) * [y > u]``
    with ``a = 1 - level / 100`` (Gneiting and Raftery, 2007).

    Args:
        actual: observed values, any shape.
        lower: lower bounds broadcastable to ``actual``.
        upper: upper bounds broadcastable to ``actual``.
        level: nominal coverage in percent, strictly between 0 and 100.

    Returns:
        The mean score, in the units of the data.
    """
    alpha = 1.0 - _check_level(level) / 100.0
    (a, lo, hi), valid = _aligned(actual=actual, lower=lower, upper=upper)
    _check_bounds(lo, hi, valid)
    penalty = (2.0 / alpha) * (np.maximum(lo - a, 0.0) + np.maximum(a - hi, 0.0))
    return float(_mean(hi - lo + penalty, valid, None, "interval score"))


# ----------------------------------------------------------------------------- tables


def level_name(level: float) -> str:
    """Key suffix of a level: ``80 -> "80"``, ``97.5 -> "97.5"``."""
    return f"{float(level):g}"


def compute_metrics(
    actual: ArrayLike,
    forecast: ArrayLike,
    insample: ArrayLike | None = None,
    season: int = 1,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
    level: float | None = None,
    *,
    intervals: Mapping[float, tuple[ArrayLike, ArrayLike]] | None = None,
) -> dict[str, float]:
    """Every applicable metric, under stable names.

    Always ``mae``, ``rmse``, ``mape``, ``smape``; ``mase`` when ``insample`` is given;
    ``coverage_<level>`` and ``interval_score_<level>`` for each interval given, either as
    ``lower``/``upper``/``level`` or as ``intervals`` (``{level: (lower, upper)}``, the
    output of :func:`elman.forecasting.intervals.apply_intervals`), e.g. ``coverage_80``.

    Args:
        actual: observed values ``[..., H, C]``.
        forecast: point forecasts broadcastable to ``actual``.
        insample: history for the MASE scale, ``[T]`` or ``[T, C]``.
        season: seasonal period for MASE.
        lower: lower interval bounds broadcastable to ``actual``.
        upper: upper interval bounds broadcastable to ``actual``.
        level: nominal coverage of ``lower``/``upper``, in percent.
        intervals: more intervals, keyed by level.

    Returns:
        Metric name to value, in a fixed order.
    """
    out = {
        "mae": mae(actual, forecast),
        "rmse": rmse(actual, forecast),
        "mape": mape(actual, forecast),
        "smape": smape(actual, forecast),
    }
    if insample is not None:
        out["mase"] = mase(actual, forecast, insample, season)
    bands = dict(intervals or {})
    if lower is not None or upper is not None or level is not None:
        if lower is None or upper is None or level is None:
            raise ConfigError(
                "`lower`, `upper` and `level` must be given together "
                f"(got lower={_given(lower)}, upper={_given(upper)}, "
                f"level={level})"
            )
        bands[level] = (lower, upper)
    for lvl in sorted(bands):
        lo, hi = bands[lvl]
        name = level_name(_check_level(lvl))
        out[f"coverage_{name}"] = coverage(actual, lo, hi)
        out[f"interval_score_{name}"] = interval_score(actual, lo, hi, lvl)
    return out


def metrics_by_step(
    actual: ArrayLike, forecast: ArrayLike, insample: ArrayLike | None = None, season: int = 1
) -> dict[str, np.ndarray]:
    """Metrics per horizon step, averaged over windows and columns.

    Args:
        actual: observed values ``[N, H, C]`` (N forecast windows).
        forecast: point forecasts ``[N, H, C]``.
        insample: history for the MASE scale, ``[T]`` or ``[T, C]``; adds ``mase``.
        season: seasonal period for MASE.

    Returns:
        ``mae``, ``rmse``, ``mape``, ``smape`` (and ``mase``), each an array ``[H]``.
    """
    a = _as_float(actual, "actual")
    f = _as_float(forecast, "forecast")
    if a.ndim != 3 or a.shape != f.shape:
        raise DataError(
            f"`actual` {a.shape} and `forecast` {f.shape} must both have shape [N, H, C]"
        )
    axis = (0, 2)
    out = {
        "mae": _mae(a, f, axis),
        "rmse": _rmse(a, f, axis),
        "mape": _mape(a, f, axis),
        "smape": _smape(a, f, axis),
    }
    if insample is not None:
        out["mase"] = _mase(a, f, insample, season, axis)
    return out


# ----------------------------------------------------------------------------- checks


def _check_season(season: int) -> None:
    if isinstance(season, bool) or not isinstance(season, int | np.integer) or season < 1:
        raise ConfigError(f"`season` ({season!r}) must be a whole number >= 1")


def _check_level(level: float) -> float:
    if not 0.0 < float(level) < 100.0:
        raise ConfigError(f"interval `level` ({level}) must be a percentage between 0 and 100")
    return float(level)


def _check_bounds(lower: np.ndarray, upper: np.ndarray, valid: np.ndarray) -> None:
    crossed = valid & (lower > upper)
    if crossed.any():
        raise DataError(
            f"`lower` exceeds `upper` at {int(crossed.sum())} position(s); "
            "bounds must satisfy lower <= upper"
        )


def _given(x: object) -> str:
    return "None" if x is None else "given"
