"""Split-conformal prediction intervals from backtest residuals.

Residuals ``actual - forecast`` collected on a calibration stretch (for example a rolling-
origin backtest, shape ``[N, H, C]``) give, for each horizon step and column, the
finite-sample-corrected quantile of their absolute values. Adding and subtracting that
quantile around a point forecast gives an interval that covers a new value with probability
at least ``level`` %, provided the new residual is exchangeable with the calibration ones
(Vovk et al., 2005; Lei et al., 2018)::

    q_h = the ceil((n + 1) * level / 100)-th smallest of |r_1h|, ..., |r_nh|
    interval_h = [forecast_h - q_h, forecast_h + q_h]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from elman.errors import ConfigError, DataError

__all__ = ["apply_intervals", "conformal_quantiles", "min_residuals", "parse_levels"]

_EXAMPLE = "(e.g. 80,95)"


def parse_levels(
    spec: str | int | Iterable[int | str], option: str = "--intervals"
) -> tuple[int, ...]:
    """Validate interval levels given as ``"80,95"`` or as a sequence of numbers.

    Args:
        spec: comma-separated whole percentages, one number, or an iterable of them.
        option: the option name to put in error messages.

    Returns:
        The distinct levels, ascending.

    Raises:
        ConfigError: an entry is not a whole number strictly between 0 and 100, or there
            is no entry.
    """
    items: list[Any]
    if isinstance(spec, str):
        items = spec.split(",")
    elif isinstance(spec, (int, float)):  # one level, e.g. intervals=80
        items = [spec]
    else:
        try:
            items = list(spec)
        except TypeError:
            raise ConfigError(f"{option}: {spec!r} is not a percentage {_EXAMPLE}") from None
    levels: set[int] = set()
    for item in items:
        text = str(item).strip()
        try:
            level = int(text)
        except ValueError:
            level = -1
        if not 0 < level < 100:
            raise ConfigError(
                f"{option}: {text!r} must be a percentage between 0 and 100 {_EXAMPLE}"
            )
        levels.add(level)
    if not levels:
        raise ConfigError(f"{option}: {str(spec)!r} must list at least one percentage {_EXAMPLE}")
    return tuple(sorted(levels))


def _check_level(level: float) -> Fraction:
    if isinstance(level, bool) or not 0 < float(level) < 100:
        raise ConfigError(
            f"interval level {level!r} must be a percentage between 0 and 100 {_EXAMPLE}"
        )
    return Fraction(str(level))  # exact decimal, so (n + 1) * level / 100 rounds exactly


def min_residuals(level: float) -> int:
    """Fewest residuals per step for a finite ``level`` % conformal quantile.

    That is the least n with ``ceil((n + 1) * level / 100) <= n``, i.e.
    ``ceil(level / (100 - level))``: 4 for 80 %, 19 for 95 %.
    """
    frac = _check_level(level)
    return int(-(-frac // (100 - frac)))


def conformal_quantiles(
    residuals: ArrayLike, levels: Iterable[float] = (80, 95)
) -> dict[float, np.ndarray]:
    """Finite-sample-corrected quantiles of absolute residuals per horizon step and column.

    For each step and column with n non-missing residuals, the quantile is the
    ``ceil((n + 1) * level / 100)``-th smallest absolute residual. Missing (NaN) residuals
    are skipped.

    Args:
        residuals: ``actual - forecast`` over N calibration windows, ``[N, H, C]``.
        levels: nominal coverages in percent, each strictly between 0 and 100.

    Returns:
        Level to half-width ``[H, C]``, in the order given.

    Raises:
        DataError: ``residuals`` is not ``[N, H, C]``, or some step and column has fewer
            residuals than :func:`min_residuals` of a level.
    """
    try:
        r = np.abs(np.asarray(residuals, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise DataError(f"`residuals` must be numeric: {exc}") from None
    if r.ndim != 3:
        raise DataError(f"`residuals` must have shape [N, H, C], got {r.shape}")
    n = np.sum(~np.isnan(r), axis=0)  # [H, C]
    ordered = np.sort(r, axis=0)  # NaN sorts last, so the first n entries are the data
    out: dict[float, np.ndarray] = {}
    for level in levels:
        frac = _check_level(level)
        need = min_residuals(level)
        if n.min() < need:
            raise DataError(
                f"conformal {level}% intervals need at least {need} residuals per "
                f"horizon step, got {int(n.min())}; use more backtest windows or "
                "a lower level"
            )
        # ceil((n + 1) * num / den) in integers, 1-based rank -> 0-based index
        rank = -(-(n + 1) * frac.numerator // (100 * frac.denominator))
        out[level] = np.take_along_axis(ordered, (rank - 1)[None], axis=0)[0]
    return out


def apply_intervals(
    point: ArrayLike, quantiles: Mapping[float, ArrayLike]
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Symmetric intervals ``point -/+ q`` around point forecasts.

    Args:
        point: point forecasts ``[..., H, C]``.
        quantiles: level to half-width ``[H, C]``, from :func:`conformal_quantiles`.

    Returns:
        Level to ``(lower, upper)``, each shaped like ``point``.
    """
    try:
        f = np.asarray(point, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"`point` must be numeric: {exc}") from None
    out: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for level, q in quantiles.items():
        width = np.asarray(q, dtype=np.float64)
        if f.ndim < width.ndim or f.shape[f.ndim - width.ndim :] != width.shape:
            raise DataError(
                f"`point` shape {f.shape} does not end in the {level}% quantile "
                f"shape {width.shape} ([H, C])"
            )
        out[level] = (f - width, f + width)
    return out
