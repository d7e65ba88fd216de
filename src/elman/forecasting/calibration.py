"""Conformal calibration that travels with a model: half-widths of prediction intervals.

A :class:`Calibration` holds split-conformal quantiles (see :mod:`elman.forecasting.intervals`) of
absolute out-of-sample residuals, per horizon step and target column, for every whole
percentage level that the number of residuals supports. Residuals are measured in *scaled*
units (divided by each series' scaler scale), so one calibration serves every series of a
global model; :meth:`Calibration.halfwidths` turns them back into real units per series.

Two sources fill it:

* ``validation``: :meth:`elman.forecaster.Forecaster.fit` forecasts every window whose
  targets lie in the validation part. Those points never drove a gradient step, but they
  chose the early-stopping epoch, so the intervals can be slightly narrow.
* ``backtest``: :meth:`elman.forecaster.Forecaster.backtest` forecasts from cutoffs after
  the training data. This is the more honest source and replaces the first.

The table is stored in ``model.json`` under ``"calibration"``, so ``predict(intervals=...)``
works after :meth:`~elman.forecaster.Forecaster.load`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from elman.errors import CheckpointError, ConfigError
from elman.forecasting.intervals import conformal_quantiles, min_residuals, parse_levels

__all__ = ["Calibration", "interval_columns"]

SOURCES = ("validation", "backtest")
MAX_HALFWIDTH = float(np.finfo(np.float32).max)  # scaled units: a float32 forecast's residual


@dataclass
class Calibration:
    """Conformal half-widths in scaled units.

    Attributes:
        source: ``validation`` or ``backtest`` (see the module notes).
        windows: residual windows behind each quantile (per step and column).
        quantiles: whole-percent level to half-width ``[H, n_t]`` (scaled units).
    """

    source: str
    windows: int
    quantiles: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_residuals(cls, residuals: np.ndarray, source: str) -> Calibration:
        """Quantiles of every level 1..99 that ``residuals`` support.

        Args:
            residuals: scaled ``actual - forecast`` ``[N, H, n_t]``.
            source: where the residuals came from.
        """
        n = int(np.min(np.sum(~np.isnan(residuals), axis=0))) if residuals.size else 0
        levels = [lv for lv in range(1, 100) if n >= min_residuals(lv)]
        table = conformal_quantiles(residuals, levels) if levels else {}
        return cls(source=source, windows=n, quantiles={int(k): v for k, v in table.items()})

    @property
    def horizon(self) -> int:
        """Number of calibrated horizon steps (0 when no level is available)."""
        return next(iter(self.quantiles.values())).shape[0] if self.quantiles else 0

    def halfwidths(
        self, levels: Iterable[int], horizon: int, scales: np.ndarray
    ) -> dict[int, np.ndarray]:
        """Half-widths in real units for each series.

        Args:
            levels: whole percentages, validated by
                :func:`~elman.forecasting.intervals.parse_levels`.
            horizon: forecast steps ``H`` (at most the calibrated horizon).
            scales: each series' scaler scale of the target columns ``[S, n_t]``.

        Returns:
            Level to half-width ``[S, H, n_t]``.

        Raises:
            ConfigError: a level lacks enough residuals, or ``horizon`` is too long.
        """
        out = {}
        for level in parse_levels(list(levels)):
            if level not in self.quantiles:
                raise ConfigError(
                    f"--intervals {level}: the {self.source} calibration has {self.windows} "
                    f"residual window(s) and {level}% needs {min_residuals(level)}; run "
                    "'elman backtest' (Forecaster.backtest) with more folds or use a lower level"
                )
            if horizon > self.horizon:
                raise ConfigError(
                    f"intervals are calibrated for {self.horizon} steps, asked for {horizon}; "
                    f"use --horizon <= {self.horizon} or backtest with --horizon {horizon}"
                )
            q = self.quantiles[level][:horizon]  # [H, n_t]
            out[level] = q[None] * np.asarray(scales, dtype=np.float64)[:, None, :]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for ``model.json``."""
        return {
            "source": self.source,
            "windows": self.windows,
            "quantiles": {str(k): v.tolist() for k, v in self.quantiles.items()},
        }

    @classmethod
    def from_dict(cls, state: Any, where: str) -> Calibration | None:
        """Rebuild from :meth:`to_dict` output; ``None`` stays ``None``.

        Raises:
            CheckpointError: the entry is malformed.
        """
        if state is None:
            return None
        try:
            if not isinstance(state, dict) or not isinstance(state.get("quantiles"), dict):
                raise ValueError("expected an object with 'source', 'windows' and 'quantiles'")
            if state.get("source") not in SOURCES:
                raise ValueError(f"unknown source {state.get('source')!r}")
            windows = state.get("windows")
            if isinstance(windows, bool) or not isinstance(windows, int) or windows < 0:
                raise ValueError(f"windows {windows!r} is not a count")
            table = {int(k): np.asarray(v, dtype=np.float64) for k, v in state["quantiles"].items()}
            shapes = {v.shape for v in table.values()}
            if len(shapes) > 1 or any(
                v.ndim != 2 or not np.isfinite(v).all() or (v < 0).any() for v in table.values()
            ):
                raise ValueError("quantile tables differ in shape or hold invalid values")
            big = [k for k, v in table.items() if v.size and float(v.max()) > MAX_HALFWIDTH]
            if big:
                raise ValueError(
                    f"quantiles.{big[0]} holds {float(table[big[0]].max()):.3g}, beyond the "
                    f"{MAX_HALFWIDTH:.3g} a residual in scaled units can reach"
                )
            if any(not 0 < k < 100 for k in table):
                raise ValueError("levels must be whole percentages between 0 and 100")
            return cls(source=str(state["source"]), windows=windows, quantiles=table)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise CheckpointError(
                f"{where}: calibration metadata is invalid ({exc}); use an intact copy"
            ) from exc


def interval_columns(
    targets: list[str],
    halfwidths: dict[int, np.ndarray],
    point: np.ndarray,
    floor: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Table columns ``<target>_lower_<level>`` and ``<target>_upper_<level>``.

    Args:
        targets: target column names (``n_t`` of them).
        halfwidths: level to ``[S, H, n_t]``.
        point: point forecasts ``[S, H, n_t]``.
        floor: applied to each bound ``[S, H, n_t]`` (``--nonnegative``), if given.

    Returns:
        Column name to values ``[S * H]`` in series-major order (as the forecast table).
    """
    cols: dict[str, np.ndarray] = {}
    for level, width in halfwidths.items():
        lower, upper = point - width, point + width
        if floor is not None:
            lower, upper = floor(lower), floor(upper)
        for j, name in enumerate(targets):
            cols[f"{name}_lower_{level}"] = lower[..., j].reshape(-1)
            cols[f"{name}_upper_{level}"] = upper[..., j].reshape(-1)
    return cols
