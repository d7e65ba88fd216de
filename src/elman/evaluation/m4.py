"""The M4 competition's accuracy rules: sMAPE, MASE, the Naive2 benchmark and OWA.

These follow the organisers' evaluation code (``Benchmarks and Evaluation.R`` in the
Mcompetitions/M4-methods repository), so scores here compare with the published tables:

* **sMAPE** of one series: ``mean_h 200 |y_h - f_h| / (|y_h| + |f_h|)``, in percent.
* **MASE** of one series: ``mean_h |y_h - f_h|`` divided by the in-sample mean of
  ``|y_t - y_{t-m}|``, where ``m`` is the M4 *frequency* of the subset
  (:data:`M4_FREQUENCY`: 1 for yearly, weekly and daily, 4 quarterly, 12 monthly,
  24 hourly).
* **Naive2**: the naive forecast of the seasonally adjusted series, re-seasonalised. A
  series counts as seasonal when it passes the 90 % autocorrelation test
  (:func:`seasonality_test`); its seasonal indices come from a classical multiplicative
  decomposition (:func:`seasonal_indices`, as R's ``decompose``). With ``m = 1`` no
  series is seasonal and Naive2 is the naive forecast.
* **OWA** of a method: ``(sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2``, each averaged
  over all series first (:func:`owa`). Naive2 has OWA 1 by definition.

Per-series scores are in :class:`M4Scores` (from :func:`score`), so a table can average
them over any subset of the series (for example by series length).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from elman.errors import ConfigError, DataError
from elman.evaluation.metrics import mase as _mase
from elman.evaluation.metrics import smape as _smape

__all__ = [
    "M4_FREQUENCY",
    "M4Scores",
    "acf",
    "m4_frequency",
    "naive2",
    "owa",
    "score",
    "seasonal_indices",
    "seasonality_test",
]

# The M4 "frequency" of each subset: the seasonal period of its MASE scale and of the
# Naive2 seasonality test (the organisers used 1 for weekly and daily data).
M4_FREQUENCY: dict[str, int] = {
    "yearly": 1,
    "quarterly": 4,
    "monthly": 12,
    "weekly": 1,
    "daily": 1,
    "hourly": 24,
}

# One-sided 90 % critical value of the seasonality test.
_TCRIT = 1.645


def m4_frequency(subset: str) -> int:
    """The M4 frequency of a subset by name (``"Weekly"``, ``"monthly"``, ...)."""
    try:
        return M4_FREQUENCY[subset.strip().lower()]
    except KeyError:
        names = ", ".join(M4_FREQUENCY)
        raise ConfigError(f"M4 subset {subset!r} is unknown; choose one of {names}") from None


def _series(values: ArrayLike, name: str) -> np.ndarray:
    try:
        y = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"`{name}` must be numeric: {exc}") from None
    if y.ndim != 1:
        raise DataError(f"`{name}` must be one series of shape [T], got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise DataError(f"`{name}` has missing or infinite values; M4 series have none")
    return y


def _period(period: int) -> int:
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period < 1:
        raise ConfigError(f"`period` ({period!r}) must be a whole number >= 1")
    return int(period)


# ----------------------------------------------------------------------------- Naive2


def acf(values: ArrayLike, max_lag: int) -> np.ndarray:
    """Sample autocorrelations at lags ``1 .. max_lag`` (R's ``acf``).

    ``r_k = sum_{t>=k} (y_t - mean)(y_{t-k} - mean) / sum_t (y_t - mean)^2``; a constant
    series gives zeros.

    Args:
        values: one series ``[T]``.
        max_lag: the largest lag, ``>= 1``.

    Returns:
        ``[max_lag]``: ``r_1 .. r_max_lag`` (0 for lags ``>= T``).
    """
    y = _series(values, "values")
    z = y - y.mean()
    denom = float(z @ z)
    out = np.zeros(_period(max_lag))
    if denom == 0.0:
        return out
    for k in range(1, min(max_lag, len(z) - 1) + 1):
        out[k - 1] = float(z[k:] @ z[:-k]) / denom
    return out


def seasonality_test(values: ArrayLike, period: int) -> bool:
    """The M4 benchmarks' 90 % test: is the series seasonal with this period?

    Seasonal when ``|r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / T)`` (the autocorrelation
    at lag ``m`` exceeds its 90 % limit under Bartlett's formula). Never seasonal when
    ``m = 1`` or when the series has fewer than ``3 m`` values.

    Args:
        values: one series ``[T]``.
        period: the M4 frequency ``m``.

    Returns:
        Whether Naive2 should seasonally adjust the series.
    """
    y = _series(values, "values")
    m = _period(period)
    if m == 1 or len(y) < 3 * m:
        return False
    r = acf(y, m)
    limit = _TCRIT * np.sqrt((1.0 + 2.0 * float(np.sum(r[:-1] ** 2))) / len(y))
    return bool(abs(r[-1]) > limit)


def _centred_moving_average(y: np.ndarray, period: int) -> np.ndarray:
    """The trend of a classical decomposition: an m-MA (odd m) or 2xm-MA (even m), NaN at
    the ends where the window does not fit."""
    if period % 2:
        weights = np.full(period, 1.0 / period)
    else:
        weights = np.r_[0.5, np.ones(period - 1), 0.5] / period
    half = len(weights) // 2
    trend = np.full(len(y), np.nan)
    if len(y) >= len(weights):
        trend[half : len(y) - half] = np.convolve(y, weights, mode="valid")
    return trend


def seasonal_indices(values: ArrayLike, period: int) -> np.ndarray:
    """Multiplicative seasonal indices of a classical decomposition (R's ``decompose``).

    The series is divided by its centred moving average; index ``i`` is the mean of the
    ratios at positions ``i, i + m, i + 2m, ...``, and the indices are scaled to average 1.

    Args:
        values: one series ``[T]`` with ``T >= 2 m`` (positive, as M4 series are).
        period: the seasonal period ``m``.

    Returns:
        ``[m]``: the index of each position in the cycle, counted from the series' first
        value (position ``t`` has index ``[t % m]``).
    """
    y = _series(values, "values")
    m = _period(period)
    if m == 1:
        return np.ones(1)
    if len(y) < 2 * m:
        raise DataError(
            f"the series has {len(y)} values; a seasonal decomposition with period {m} "
            f"needs at least {2 * m}"
        )
    ratio = y / _centred_moving_average(y, m)
    padded = np.full(-(-len(y) // m) * m, np.nan)
    padded[: len(y)] = ratio
    figure = np.nanmean(padded.reshape(-1, m), axis=0)
    return figure / figure.mean()


def naive2(values: ArrayLike, horizon: int, period: int) -> np.ndarray:
    """The M4 Naive2 benchmark: naive on the seasonally adjusted series, re-seasonalised.

    Args:
        values: the history of one series ``[T]``.
        horizon: the number of steps to forecast.
        period: the M4 frequency ``m`` (see :data:`M4_FREQUENCY`).

    Returns:
        ``[horizon]`` forecasts. Without seasonality (``m = 1``, too short a series, or a
        failed :func:`seasonality_test`) every step is the last value.
    """
    y = _series(values, "values")
    h = _period(horizon)
    m = _period(period)
    if not seasonality_test(y, m):
        return np.full(h, y[-1])
    index = seasonal_indices(y, m)
    n = len(y)
    adjusted_last = y[-1] / index[(n - 1) % m]
    return adjusted_last * index[(n + np.arange(h)) % m]


# ----------------------------------------------------------------------------- scores


def owa(smape: float, mase: float, smape_naive2: float, mase_naive2: float) -> float:
    """Overall weighted average: ``(sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2``.

    All four arguments are averages over the same series; below 1 beats Naive2.
    """
    return 0.5 * (smape / smape_naive2 + mase / mase_naive2)


@dataclass(frozen=True)
class M4Scores:
    """Per-series M4 scores of one method.

    Attributes:
        smape: ``[S]`` sMAPE of each series, in percent.
        mase: ``[S]`` MASE of each series.
    """

    smape: np.ndarray
    mase: np.ndarray

    def mean(self, mask: ArrayLike | None = None) -> tuple[float, float]:
        """Mean sMAPE and MASE over all series, or over those where ``mask`` is true."""
        keep = slice(None) if mask is None else np.asarray(mask, dtype=bool)
        return float(np.mean(self.smape[keep])), float(np.mean(self.mase[keep]))

    def owa(self, naive2: M4Scores, mask: ArrayLike | None = None) -> float:
        """OWA against Naive2's scores on the same series (and the same ``mask``)."""
        return owa(*self.mean(mask), *naive2.mean(mask))


def score(
    insample: Sequence[ArrayLike],
    actual: Sequence[ArrayLike],
    forecast: Sequence[ArrayLike],
    period: int,
) -> M4Scores:
    """M4 sMAPE and MASE of every series.

    Args:
        insample: each series' history ``[T_s]`` (the MASE scale).
        actual: each series' held-out values ``[H]``.
        forecast: each series' forecasts ``[H]``.
        period: the M4 frequency of the MASE scale.

    Returns:
        The per-series scores, in the order given.
    """
    m = _period(period)
    if not len(insample) == len(actual) == len(forecast):
        raise DataError(
            f"{len(insample)} histories, {len(actual)} actuals and {len(forecast)} "
            "forecasts: give one of each per series"
        )
    smapes, mases = [], []
    for i, (hist, a, f) in enumerate(zip(insample, actual, forecast, strict=True)):
        y, f_ = _series(a, f"actual[{i}]"), _series(f, f"forecast[{i}]")
        if y.shape != f_.shape:
            raise DataError(f"series {i}: actual {y.shape} and forecast {f_.shape} differ")
        smapes.append(_smape(y, f_))
        mases.append(_mase(y, f_, _series(hist, f"insample[{i}]"), m))
    return M4Scores(np.asarray(smapes), np.asarray(mases))
