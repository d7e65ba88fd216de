"""Simple reference forecasts that every trained network should beat.

Each baseline forecasts ``horizon`` steps from a history ``[T, C]``, every column on its own:

* ``naive``: the last value, repeated.
* ``seasonal_naive``: the last ``season`` values, repeated (wrapping for long horizons).
* ``drift``: the line through the first and the last value of the history, extended.
* ``linear_ar``: an AR(p) model with intercept fitted by least squares, run recursively.
* ``ets`` and ``theta``: statsforecast's AutoETS and AutoTheta with the season, fitted on
  each history's last ``max(1000, 10 season)`` points (see
  :mod:`elman.evaluation.statistical`; a history too short for them gets the naive
  forecast, and :func:`baseline_notes` says so).

Each also has a batched form over many cutoffs of one series. A cutoff ``k`` means the
history is ``values[:k]`` and the targets are ``values[k:k + horizon]``::

    values   x0 x1 x2 x3 x4 x5 x6 x7 x8 x9
    k = 6    [---- history --] [target]     (horizon 3)

The batched forms use only ``values[:k]`` for cutoff ``k`` (no leakage) and return
``[K, H, C]``, equal to looping the single-history form over the cutoffs (for ``linear_ar``,
up to rounding). Naive, seasonal naive and drift are pure array indexing; ETS and Theta
fit once per cutoff. ``linear_ar``
refits per cutoff: the least-squares normal equations of every cutoff come from prefix sums
of lagged products over the series, so all K fits are solved in one batched call (see
:func:`linear_ar_batched`).

A 1-D history ``[T]`` is accepted everywhere and gives forecasts without the column axis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from elman.errors import ConfigError, DataError
from elman.evaluation import statistical

__all__ = [
    "BASELINES",
    "Baseline",
    "baseline_forecasts",
    "baseline_forecasts_batched",
    "baseline_notes",
    "default_ar_order",
    "drift",
    "drift_batched",
    "ets",
    "ets_batched",
    "fit_ar",
    "linear_ar",
    "linear_ar_batched",
    "naive",
    "naive_batched",
    "seasonal_naive",
    "seasonal_naive_batched",
    "theta",
    "theta_batched",
]

# Relative eigenvalue cutoff of the batched normal equations; rank-deficient fits (for
# example a constant or a pure sine with many lags) take the minimum-norm solution.
_GRAM_RCOND = 1e-12


# ----------------------------------------------------------------------------- checks


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"`{name}` ({value!r}) must be a whole number >= 1")
    return int(value)


def _series(values: ArrayLike, name: str) -> tuple[np.ndarray, bool]:
    """``values`` as float ``[T, C]``, and whether the input was 1-D."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"`{name}` must be numeric: {exc}") from None
    if arr.ndim not in (1, 2):
        raise DataError(f"`{name}` must have shape [T] or [T, C], got {arr.shape}")
    flat = arr.ndim == 1
    return (arr[:, None] if flat else arr), flat


def _history(history: ArrayLike, need: int, method: str) -> tuple[np.ndarray, bool]:
    y, flat = _series(history, "history")
    _check_history(y, need, method)
    return y, flat


def _check_history(y: np.ndarray, need: int, method: str) -> None:
    if y.shape[0] < need:
        raise DataError(f"{method} needs at least {need} value(s) in the history, got {y.shape[0]}")
    if not np.isfinite(y).all():
        raise DataError(f"{method}: the history contains NaN or infinite values")


def _cutoffs(
    values: ArrayLike, cutoffs: ArrayLike, need: int, method: str
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validated ``values [T, C]``, integer ``cutoffs [K]`` and the 1-D flag."""
    y, flat = _series(values, "values")
    k = np.asarray(cutoffs)
    if k.ndim != 1 or k.size == 0 or not np.issubdtype(k.dtype, np.integer):
        raise DataError(f"`cutoffs` must be a non-empty 1-D array of integers, got {k!r}")
    k = k.astype(np.intp)
    if k.min() < need:
        raise DataError(
            f"{method} needs at least {need} value(s) in the history, but cutoff "
            f"{int(k.min())} leaves only {int(k.min())}"
        )
    if k.max() > y.shape[0]:
        raise DataError(f"cutoff {int(k.max())} is past the end of `values` (length {y.shape[0]})")
    if not np.isfinite(y[: k.max()]).all():
        raise DataError(f"{method}: `values` before the last cutoff contain NaN or infinite values")
    return y, k, flat


def _out(forecast: np.ndarray, flat: bool) -> np.ndarray:
    return forecast[..., 0] if flat else forecast


# ----------------------------------------------------------------------------- naive


def naive(history: ArrayLike, horizon: int) -> np.ndarray:
    """Repeat the last value.

    Args:
        history: past values ``[T, C]`` (or ``[T]``), ``T >= 1``.
        horizon: number of steps ``H`` to forecast.

    Returns:
        Forecasts ``[H, C]`` (or ``[H]``).
    """
    h = _positive_int(horizon, "horizon")
    y, flat = _history(history, 1, "naive")
    return _out(np.repeat(y[-1:], h, axis=0), flat)


def naive_batched(values: ArrayLike, cutoffs: ArrayLike, horizon: int) -> np.ndarray:
    """:func:`naive` from every cutoff ``k`` (history ``values[:k]``).

    Args:
        values: the whole series ``[T, C]`` (or ``[T]``).
        cutoffs: cutoff indices ``[K]``, each in ``1..T``.
        horizon: number of steps ``H`` to forecast.

    Returns:
        Forecasts ``[K, H, C]`` (or ``[K, H]``).
    """
    h = _positive_int(horizon, "horizon")
    y, k, flat = _cutoffs(values, cutoffs, 1, "naive")
    return _out(np.repeat(y[k - 1][:, None], h, axis=1), flat)  # [K, H, C]


def seasonal_naive(history: ArrayLike, horizon: int, season: int) -> np.ndarray:
    """Repeat the last ``season`` values: step ``h`` (1-based) is ``y[T - m + (h-1) % m]``.

    Args:
        history: past values ``[T, C]`` (or ``[T]``), ``T >= season``.
        horizon: number of steps ``H`` to forecast.
        season: seasonal period ``m``.

    Returns:
        Forecasts ``[H, C]`` (or ``[H]``).
    """
    h = _positive_int(horizon, "horizon")
    m = _positive_int(season, "season")
    y, flat = _history(history, m, f"seasonal_naive (season={m})")
    idx = y.shape[0] - m + np.arange(h) % m
    return _out(y[idx], flat)


def seasonal_naive_batched(
    values: ArrayLike, cutoffs: ArrayLike, horizon: int, season: int
) -> np.ndarray:
    """:func:`seasonal_naive` from every cutoff; arguments as in :func:`naive_batched`.

    Returns:
        Forecasts ``[K, H, C]`` (or ``[K, H]``).
    """
    h = _positive_int(horizon, "horizon")
    m = _positive_int(season, "season")
    y, k, flat = _cutoffs(values, cutoffs, m, f"seasonal_naive (season={m})")
    idx = k[:, None] - m + np.arange(h)[None, :] % m  # [K, H]
    return _out(y[idx], flat)


def drift(history: ArrayLike, horizon: int) -> np.ndarray:
    """Extend the line through the first and last values: ``y_T + h * (y_T - y_1) / (T - 1)``.

    Args:
        history: past values ``[T, C]`` (or ``[T]``), ``T >= 2``.
        horizon: number of steps ``H`` to forecast.

    Returns:
        Forecasts ``[H, C]`` (or ``[H]``).
    """
    h = _positive_int(horizon, "horizon")
    y, flat = _history(history, 2, "drift")
    slope = (y[-1] - y[0]) / (y.shape[0] - 1)  # [C]
    steps = np.arange(1, h + 1, dtype=np.float64)[:, None]
    return _out(y[-1] + steps * slope, flat)


def drift_batched(values: ArrayLike, cutoffs: ArrayLike, horizon: int) -> np.ndarray:
    """:func:`drift` from every cutoff; arguments as in :func:`naive_batched`.

    Returns:
        Forecasts ``[K, H, C]`` (or ``[K, H]``).
    """
    h = _positive_int(horizon, "horizon")
    y, k, flat = _cutoffs(values, cutoffs, 2, "drift")
    last = y[k - 1]  # [K, C]
    slope = (last - y[0]) / (k - 1)[:, None]
    steps = np.arange(1, h + 1, dtype=np.float64)[None, :, None]
    return _out(last[:, None] + steps * slope[:, None], flat)


# ----------------------------------------------------------------------------- linear AR


def default_ar_order(season: int, n_obs: int) -> int:
    """Default AR order: ``max(season, 2)``, capped at ``n_obs // 4``, at least 1.

    ``season`` lags let the model reach last season's value; two lags can already follow
    a trend or an oscillation. The cap keeps at least about three rows per coefficient.
    """
    return max(1, min(max(int(season), 2), int(n_obs) // 4))


def min_history(season: int) -> tuple[int, str]:
    """The fewest history points every baseline can forecast from (a full season for
    seasonal-naive, three for the smallest linear AR), and that need as message text."""
    need = max(int(season), _ar_need(1))
    why = f"seasonal-naive needs one season, {season}" if season >= need else "linear AR needs 3"
    return need, f"the baselines need {need} ({why})"


def _ar_need(order: int) -> int:
    # p + 1 coefficients need p + 1 rows of (p lags, target): T - p >= p + 1.
    return 2 * order + 1


def _recurse(coef: np.ndarray, window: np.ndarray, horizon: int) -> np.ndarray:
    """Run AR forecasts recursively.

    Args:
        coef: ``[..., p + 1]``: intercept, then lag 1, ..., lag p.
        window: the last p values ``[..., p]``, oldest first.
        horizon: number of steps.

    Returns:
        Forecasts ``[..., H]``.
    """
    p = window.shape[-1]
    buf = np.concatenate([window, np.zeros((*window.shape[:-1], horizon))], axis=-1)
    lags_first = coef[..., :0:-1]  # lag p, ..., lag 1: lines up with buf oldest-first
    for step in range(horizon):
        past = buf[..., step : step + p]
        buf[..., p + step] = coef[..., 0] + np.sum(lags_first * past, axis=-1)
    return buf[..., p:]


AR_MAX_ELEMENTS = 2**23  # values in one AR design matrix (64 MiB in float64)
AR_MIN_ROWS_PER_COEF = 4  # the row cap never leaves fewer rows than this per coefficient


def fit_ar(history: ArrayLike, order: int) -> np.ndarray:
    """Least-squares AR(p) coefficients with intercept, per column, by ``numpy.linalg.lstsq``.

    The model is ``y_t = c + a_1 y_{t-1} + ... + a_p y_{t-p}``, fitted on all ``T - p``
    rows the history allows, or on the most recent rows when the design matrix would hold
    more than :data:`AR_MAX_ELEMENTS` values (a 200,000-point series with p = 1,440 would
    need 2.3 GB); rank-deficient fits take the minimum-norm solution.

    Args:
        history: past values ``[T, C]`` (or ``[T]``), ``T >= 2p + 1``.
        order: the number of lags p.

    Returns:
        Coefficients ``[C, p + 1]`` (or ``[p + 1]``): intercept, then lag 1 .. lag p.
    """
    p = _positive_int(order, "order")
    y, flat = _history(history, _ar_need(p), f"linear_ar (order={p})")
    rows = max(AR_MIN_ROWS_PER_COEF * (p + 1), AR_MAX_ELEMENTS // (p + 1))
    y = y[max(0, y.shape[0] - p - rows) :]  # the last `rows` design rows at most
    t = y.shape[0]
    coef = np.empty((y.shape[1], p + 1))
    for col, z in enumerate(y.T):
        # design row for target z[t]: [1, z[t-1], ..., z[t-p]]
        lags = np.stack([z[p - i : t - i] for i in range(1, p + 1)], axis=1)
        design = np.concatenate([np.ones((t - p, 1)), lags], axis=1)
        coef[col] = np.linalg.lstsq(design, z[p:], rcond=None)[0]
    return coef[0] if flat else coef


def linear_ar(
    history: ArrayLike, horizon: int, order: int | None = None, season: int = 1
) -> np.ndarray:
    """AR(p) with intercept (see :func:`fit_ar`), forecast recursively.

    Args:
        history: past values ``[T, C]`` (or ``[T]``), ``T >= 2p + 1``.
        horizon: number of steps ``H`` to forecast.
        order: the number of lags p; ``None`` means ``default_ar_order(season, T)``.
        season: seasonal period, used only by the default order.

    Returns:
        Forecasts ``[H, C]`` (or ``[H]``).
    """
    h = _positive_int(horizon, "horizon")
    m = _positive_int(season, "season")
    y, flat = _series(history, "history")
    p = default_ar_order(m, y.shape[0]) if order is None else _positive_int(order, "order")
    coef = fit_ar(y, p)  # [C, p+1]
    path = _recurse(coef, y[y.shape[0] - p :].T, h)  # [C, H]
    return _out(path.T, flat)


def _lagged_prefix_sums(z: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums for the normal equations.

    Returns:
        ``s [T + 1, C]`` with ``s[n] = sum_{u < n} z_u`` and ``q [p + 1, T + 1, C]`` with
        ``q[d, n] = sum_{u < n} z_u z_{u + d}`` (defined for ``n <= T - d``).
    """
    t, c = z.shape
    s = np.zeros((t + 1, c))
    np.cumsum(z, axis=0, out=s[1:])
    q = np.zeros((p + 1, t + 1, c))
    for d in range(p + 1):
        np.cumsum(z[: t - d] * z[d:], axis=0, out=q[d, 1 : t - d + 1])
    return s, q


def _ar_fit_batched(z: np.ndarray, k: np.ndarray, p: int) -> np.ndarray:
    """Least-squares AR(p) coefficients ``[K, C, p + 1]`` on ``z[:k]`` for every cutoff.

    Rows are the targets ``t = p .. k-1``. With lag 0 meaning ``z_t`` itself, every entry
    ``sum_t z_{t-i} z_{t-j}`` is a difference of ``q[|i-j|]`` at ``k - max(i, j)`` and
    ``p - max(i, j)``, so the Gram matrix and right-hand side of all cutoffs are gathers.
    """
    s, q = _lagged_prefix_sums(z, p)
    lag = np.arange(p + 1)
    d = np.abs(lag[:, None] - lag[None, :])  # [p+1, p+1]
    top = np.maximum(lag[:, None], lag[None, :])
    cross = q[d, k[:, None, None] - top] - q[d, p - top]  # [K, p+1, p+1, C]
    sums = s[k[:, None] - lag] - s[p - lag]  # [K, p+1, C]: sum_t z_{t-i}
    kk, c = k.shape[0], z.shape[1]
    gram = np.empty((kk, c, p + 1, p + 1))
    gram[:, :, 0, 0] = (k - p)[:, None]
    gram[:, :, 0, 1:] = gram[:, :, 1:, 0] = np.moveaxis(sums[:, 1:], 1, 2)
    gram[:, :, 1:, 1:] = np.moveaxis(cross[:, 1:, 1:], 3, 1)
    rhs = np.concatenate([sums[:, :1], cross[:, 1:, 0]], axis=1)  # [K, p+1, C]
    rhs = np.moveaxis(rhs, 2, 1)[..., None]  # [K, C, p+1, 1]
    return (np.linalg.pinv(gram, rcond=_GRAM_RCOND, hermitian=True) @ rhs)[..., 0]


def linear_ar_batched(
    values: ArrayLike,
    cutoffs: ArrayLike,
    horizon: int,
    order: int | None = None,
    season: int = 1,
) -> np.ndarray:
    """:func:`linear_ar` refitted at every cutoff on ``values[:k]`` only.

    All K fits are solved at once from the normal equations (built from prefix sums of
    lagged products, then a batched pseudo-inverse). Before fitting, the series is centred
    and scaled by the mean and standard deviation of ``values[:min(cutoffs)]``, which every
    history contains; this changes no forecast (the model has an intercept) but keeps the
    normal equations well conditioned. Forecasts agree with the per-cutoff ``lstsq`` fit to
    about 1e-10 relative on well-conditioned data; when the lags are nearly collinear
    (say, a nearly noiseless sine with many lags) both are valid least-squares fits and
    may differ by more. With ``order=None`` each cutoff gets
    ``default_ar_order(season, k)``; cutoffs sharing an order are fitted together.

    Args:
        values: the whole series ``[T, C]`` (or ``[T]``).
        cutoffs: cutoff indices ``[K]``; each needs ``k >= 2p + 1``.
        horizon: number of steps ``H`` to forecast.
        order: the number of lags p; ``None`` means :func:`default_ar_order` per cutoff.
        season: seasonal period, used only by the default order.

    Returns:
        Forecasts ``[K, H, C]`` (or ``[K, H]``).
    """
    h = _positive_int(horizon, "horizon")
    m = _positive_int(season, "season")
    p_fixed = None if order is None else _positive_int(order, "order")
    y, k_all, flat = _cutoffs(values, cutoffs, 1, "linear_ar")
    if p_fixed is None:
        orders = np.array([default_ar_order(m, int(k)) for k in k_all], dtype=np.intp)
    else:
        orders = np.full(k_all.size, p_fixed, dtype=np.intp)
    short = np.flatnonzero(k_all < 2 * orders + 1)
    if short.size:
        k0, p0 = int(k_all[short[0]]), int(orders[short[0]])
        raise DataError(
            f"linear_ar (order={p0}) needs at least {_ar_need(p0)} value(s) in "
            f"the history, but cutoff {k0} leaves only {k0}"
        )
    first = y[: k_all.min()]
    spread = first.std(axis=0)
    mean, scale = first.mean(axis=0), np.where(spread > 0, spread, 1.0)
    z = (y[: k_all.max()] - mean) / scale
    out = np.empty((k_all.size, h, y.shape[1]))
    for p in np.unique(orders):  # one batched fit per distinct order
        sel = np.flatnonzero(orders == p)
        k = k_all[sel]
        coef = _ar_fit_batched(z, k, int(p))  # [K', C, p+1]
        window = z[k[:, None] - p + np.arange(p)]  # [K', p, C], oldest first
        path = _recurse(coef, np.moveaxis(window, 1, 2), h)  # [K', C, H]
        out[sel] = np.moveaxis(path, 1, 2) * scale + mean
    return _out(out, flat)


# ----------------------------------------------------------------------------- ETS, Theta


def _statistical(method: str, history: ArrayLike, horizon: int, season: int) -> np.ndarray:
    h = _positive_int(horizon, "horizon")
    m = _positive_int(season, "season")
    y, flat = _history(history, 1, method)
    cols = [statistical.forecast_column(method, y[:, c], h, m) for c in range(y.shape[1])]
    return _out(np.stack(cols, axis=1), flat)


def _statistical_batched(
    method: str, values: ArrayLike, cutoffs: ArrayLike, horizon: int, season: int
) -> np.ndarray:
    h = _positive_int(horizon, "horizon")
    m = _positive_int(season, "season")
    y, k, flat = _cutoffs(values, cutoffs, 1, method)
    out = np.empty((k.size, h, y.shape[1]))
    for i, cut in enumerate(k):
        for c in range(y.shape[1]):
            out[i, :, c] = statistical.forecast_column(method, y[:cut, c], h, m)
    return _out(out, flat)


def ets(history: ArrayLike, horizon: int, season: int = 1) -> np.ndarray:
    """statsforecast's AutoETS with ``season_length=season``, every column on its own.

    Args:
        history: past values ``[T, C]`` (or ``[T]``), ``T >= 1``; a column shorter than
            ``statistical.MIN_POINTS["ets"]`` (7) gets the naive forecast.
        horizon: number of steps ``H`` to forecast.
        season: seasonal period ``m``.

    Returns:
        Forecasts ``[H, C]`` (or ``[H]``).
    """
    return _statistical("ets", history, horizon, season)


def ets_batched(values: ArrayLike, cutoffs: ArrayLike, horizon: int, season: int = 1) -> np.ndarray:
    """:func:`ets` refitted at every cutoff; arguments as in :func:`naive_batched`.

    Returns:
        Forecasts ``[K, H, C]`` (or ``[K, H]``).
    """
    return _statistical_batched("ets", values, cutoffs, horizon, season)


def theta(history: ArrayLike, horizon: int, season: int = 1) -> np.ndarray:
    """statsforecast's AutoTheta with ``season_length=season``; as :func:`ets`, with a
    minimum of ``statistical.MIN_POINTS["theta"]`` (4) points."""
    return _statistical("theta", history, horizon, season)


def theta_batched(
    values: ArrayLike, cutoffs: ArrayLike, horizon: int, season: int = 1
) -> np.ndarray:
    """:func:`theta` refitted at every cutoff; shapes as in :func:`ets_batched`."""
    return _statistical_batched("theta", values, cutoffs, horizon, season)


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Baseline:
    """A registered baseline with a uniform call signature.

    Attributes:
        name: registry key.
        description: one line for reports.
        forecast: ``(history [T, C], horizon, season) -> [H, C]``.
        forecast_batched: ``(values [T, C], cutoffs [K], horizon, season) -> [K, H, C]``.
    """

    name: str
    description: str
    forecast: Callable[[ArrayLike, int, int], np.ndarray]
    forecast_batched: Callable[[ArrayLike, ArrayLike, int, int], np.ndarray]


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline(
            "naive",
            "last value repeated",
            lambda y, h, m: naive(y, h),
            lambda v, k, h, m: naive_batched(v, k, h),
        ),
        Baseline(
            "seasonal_naive",
            "last season repeated",
            lambda y, h, m: seasonal_naive(y, h, m),
            lambda v, k, h, m: seasonal_naive_batched(v, k, h, m),
        ),
        Baseline(
            "drift",
            "line through the first and last values",
            lambda y, h, m: drift(y, h),
            lambda v, k, h, m: drift_batched(v, k, h),
        ),
        Baseline(
            "linear_ar",
            "least-squares AR(p) with intercept, p = default_ar_order",
            lambda y, h, m: linear_ar(y, h, season=m),
            lambda v, k, h, m: linear_ar_batched(v, k, h, season=m),
        ),
        Baseline("ets", "statsforecast AutoETS (lowest-AICc ETS model)", ets, ets_batched),
        Baseline("theta", "statsforecast AutoTheta (best Theta model)", theta, theta_batched),
    )
}


STATISTICAL = ("ets", "theta")  # fitted per series (and per cutoff) by statsforecast
FAST = tuple(name for name in BASELINES if name not in STATISTICAL)
STATISTICAL_BUDGET_S = 30.0  # "auto" leaves ETS and Theta out when they would take longer


def baseline_forecasts(
    history: ArrayLike, horizon: int, season: int = 1, names: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """The registered baselines (all, or ``names``) from one history.

    Args:
        history: past values ``[T, C]`` (or ``[T]``).
        horizon: number of steps ``H`` to forecast.
        season: seasonal period (``seasonal_naive`` equals ``naive`` when it is 1).
        names: which baselines (default: every one).

    Returns:
        Baseline name to forecasts ``[H, C]`` (or ``[H]``), in registry order.
    """
    return {n: b.forecast(history, horizon, season) for n, b in _chosen(names)}


def baseline_forecasts_batched(
    values: ArrayLike,
    cutoffs: ArrayLike,
    horizon: int,
    season: int = 1,
    names: Iterable[str] | None = None,
) -> dict[str, np.ndarray]:
    """The registered baselines (all, or ``names``) from every cutoff (history ``values[:k]``).

    Args:
        values: the whole series ``[T, C]`` (or ``[T]``).
        cutoffs: cutoff indices ``[K]``.
        horizon: number of steps ``H`` to forecast.
        season: seasonal period.
        names: which baselines (default: every one).

    Returns:
        Baseline name to forecasts ``[K, H, C]`` (or ``[K, H]``), in registry order.
    """
    return {n: b.forecast_batched(values, cutoffs, horizon, season) for n, b in _chosen(names)}


def _chosen(names: Iterable[str] | None) -> list[tuple[str, Baseline]]:
    """The registered baselines named in ``names`` (all when ``None``), in registry order."""
    keep = set(BASELINES if names is None else names)
    return [(n, b) for n, b in BASELINES.items() if n in keep]


def choose_baselines(
    choice: str, histories: list[np.ndarray], fits: int, horizon: int, season: int
) -> tuple[tuple[str, ...], str | None]:
    """The baselines an evaluation scores, and a note when ``auto`` leaves some out.

    ``all``: every baseline; ``fast``: all but ETS and Theta; ``auto``: all, unless fitting
    ETS and Theta ``fits`` times (series x cutoffs) would take more than
    ``STATISTICAL_BUDGET_S``, estimated from the faster of the first two ``histories``
    (the first fit in a process may include compiling). Then the note says so.
    """
    if choice == "all" or (choice == "auto" and fits <= 2):
        return tuple(BASELINES), None
    if choice == "fast":
        return FAST, None
    took = []
    for history in histories[:2]:
        t0 = time.perf_counter()
        for name in STATISTICAL:
            BASELINES[name].forecast(history, horizon, season)
        took.append(time.perf_counter() - t0)
    estimate = min(took) * fits
    if estimate <= STATISTICAL_BUDGET_S:
        return tuple(BASELINES), None
    return FAST, (
        f"ets and theta were not fitted: {fits:,} fits would take about "
        f"{max(1, round(estimate / 60))} min here (timed on the first series); "
        "--baselines all fits them, --baselines fast skips them without timing"
    )


def baseline_notes(
    lengths: ArrayLike, what: str = "histories", names: Iterable[str] | None = None
) -> list[str]:
    """Lines saying where a baseline forecast differently than its name says: for each
    statistical baseline (of ``names``, default all), how many of the histories (of these
    ``lengths``) were too short and got the naive forecast. Empty when none was."""
    notes = [statistical.fallback_note(name, lengths, what) for name, _ in _chosen(names)]
    return [n for n in notes if n]
