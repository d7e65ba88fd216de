"""Statistical forecasts from statsforecast: AutoETS and AutoTheta, one column at a time.

These are the classical methods a network should beat (ETS and Theta were the M3 and M4
benchmarks). They come from statsforecast (numba-compiled), imported on the first call
only, so ``import elman`` and the CLI's ``--help`` stay light:

* ``ets``: ``AutoETS(season_length=m)``, the ETS model (error, trend, season: additive,
  multiplicative or none, trend optionally damped) with the lowest AICc. statsforecast
  fits a seasonal model only when the history is longer than ``m`` and ``m <= 24``.
* ``theta``: ``AutoTheta(season_length=m)``, the best of the standard, optimised and
  dynamic Theta models; it deseasonalises (classical decomposition) when ``m >= 4``, the
  history has ``2 m`` points and the 90 % seasonality test passes.

:func:`forecast_column` forecasts one column; :mod:`elman.evaluation.baselines` wraps it as
the ``ets`` and ``theta`` baselines over ``[T, C]`` histories and over many cutoffs. Each fit
sees only its own history: one fit per series, column and cutoff. Fits are deterministic
(no random starts).

Short histories: ETS needs ``MIN_POINTS["ets"]`` points (7: its smallest model
has 2 parameters and statsforecast wants 4 more points than parameters) and Theta needs 4.
Long histories: a fit sees the last ``max(1000, 10 m)`` points (:func:`fit_window`), which
keeps one fit well under a second; the forecasts equal statsforecast's on that window.

A shorter or constant history, or one statsforecast cannot fit, gets the naive forecast
(its last value) instead; :func:`fallback_note` says so in one line for tables and reports.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "MAX_POINTS",
    "MIN_POINTS",
    "fallback_note",
    "fit_window",
    "forecast_column",
    "short_histories",
]

log = logging.getLogger(__name__)

# Fewest history points each method fits; shorter histories get the naive forecast.
MIN_POINTS = {"ets": 7, "theta": 4}
# Most history points a fit sees (the most recent), unless ten seasons are more: AutoTheta's
# cost grows faster than the length (11 s of CPU for 10,000 points, 0.08 s for 1,000), and
# a backtest fits once per cutoff. Exponential smoothing weighs old points little anyway.
MAX_POINTS = 1000
CACHE_ENTRIES = 100_000  # forecasts kept by the digest of their history (a few MB at most)
_FITTED: dict[tuple[Any, ...], np.ndarray] = {}

# What statsforecast raises on a history it cannot fit ("tiny datasets", a degenerate
# optimisation); the forecast falls back to naive rather than stopping the evaluation.
_FIT_ERRORS = (NotImplementedError, ValueError, IndexError, ZeroDivisionError, FloatingPointError)


def _model(method: str, season: int) -> Any:
    """A fresh statsforecast model (imported here: statsforecast loads numba and pandas)."""
    from statsforecast.models import AutoETS, AutoTheta

    if method == "ets":
        return AutoETS(season_length=season)
    return AutoTheta(season_length=season)


def fit_window(season: int) -> int:
    """How many of the most recent history points a fit sees: ``max(1000, 10 season)``."""
    return max(MAX_POINTS, 10 * int(season))


def forecast_column(method: str, y: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Forecasts ``[H]`` of one column ``y [T]`` by ``method`` (``ets`` or ``theta``): the
    model's, fitted on the last :func:`fit_window` points, or the naive forecast when the
    history is too short or cannot be fitted.

    A fit is deterministic, so its forecast is kept by the digest of the window it saw
    (:data:`CACHE_ENTRIES` at most): the hold-out's baselines, an ensemble's members and
    the forecast of one run fit each history once.
    """
    y = np.ascontiguousarray(y[-fit_window(season) :], np.float64)
    key = (method, horizon, season, len(y), hashlib.blake2b(y.tobytes(), digest_size=16).digest())
    hit = _FITTED.get(key)
    if hit is None:
        if len(_FITTED) >= CACHE_ENTRIES:
            _FITTED.clear()
        hit = _FITTED[key] = _fit_column(method, y, horizon, season)
    return hit.copy()


def _fit_column(method: str, y: np.ndarray, horizon: int, season: int) -> np.ndarray:
    if len(y) >= MIN_POINTS[method] and np.ptp(y) > 0:
        try:  # short histories divide by zero inside statsforecast; the result is checked
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = _model(method, season).forecast(y=y, h=horizon)["mean"]
            if np.all(np.isfinite(mean)):
                return np.asarray(mean, dtype=np.float64)
            log.warning("%s gave non-finite forecasts; using the naive forecast", method)
        except _FIT_ERRORS as exc:
            log.warning("%s could not fit %d points (%s); using naive", method, len(y), exc)
    return np.full(horizon, y[-1])


def short_histories(method: str, lengths: ArrayLike) -> int:
    """How many of the history ``lengths`` are too short for ``method`` (0 for a method
    without a minimum)."""
    need = MIN_POINTS.get(method)
    return 0 if need is None else int(np.sum(np.asarray(lengths) < need))


def fallback_note(method: str, lengths: ArrayLike, what: str = "histories") -> str | None:
    """One line saying how many ``what`` got the naive forecast in place of ``method``,
    or None when every history was long enough."""
    count = short_histories(method, lengths)
    if not count:
        return None
    total = np.asarray(lengths).size
    return (
        f"{method}: {count} of {total} {what} had fewer than {MIN_POINTS[method]} points, "
        f"too few to fit; the naive forecast stands in for {method} there"
    )
