"""Backtest results: per-fold, aggregate and per-step scores, honest intervals, files.

Scores of one method in one fold are the metrics of :mod:`elman.evaluation.metrics` computed on each
series' window and averaged over series; the aggregate is the mean over folds. MASE scales
each window by the in-sample seasonal-naive error of its own history ``values[:k]``.

Intervals (``levels`` given). Split-conformal intervals need residuals that the scored
forecasts did not produce, so the folds are cross-fitted in two contiguous halves: the
intervals of the first half use the residuals of the second and vice versa::

    folds      0 1 2 3 | 4 5 6 7
    residuals  -> calibrate the right half, and the right half calibrates the left

Residuals are divided by the scale of the scaler in use, so many series share one set of
quantiles; each interval is scaled back by its own series. The coverage reported is the
fraction of actual values inside these cross-fitted intervals. The calibration kept for
later forecasts (:meth:`BacktestResult.calibration`) uses the residuals of every fold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from elman.data.series import Series
from elman.errors import DataError
from elman.evaluation.metrics import (
    compute_metrics,
    coverage,
    mae,
    mase_scale,
    metrics_by_step,
    pinball,
)
from elman.files import (
    FOLDS_CSV,
    FORECASTS_CSV,
    METRICS,
    METRICS_CSV,
    atomic_write_json,
    atomic_write_text,
)
from elman.forecasting.calibration import Calibration
from elman.forecasting.intervals import conformal_quantiles, min_residuals
from elman.forecasting.predictor import apply_floor

__all__ = ["MODEL", "BacktestResult", "check_interval_folds", "nanmean", "score_backtest"]

MODEL = "model"
INTERVAL_METHOD = "split-conformal, cross-fitted over two contiguous halves of the folds"


@dataclass
class BacktestResult:
    """Forecasts and scores of a rolling-origin backtest.

    Shapes: S series, K folds (cutoffs per series), H horizon steps, n_t targets.
    """

    series: list[Series]  # the data, whole (not written to files)
    horizon: int
    season: int
    stride: int
    refit: str
    cutoffs: np.ndarray  # [S, K] positions: history values[:k], targets values[k:k+H]
    forecasts: dict[str, np.ndarray]  # method -> [S, K, H, n_t], the model first
    actual: np.ndarray  # [S, K, H, n_t]
    scales: np.ndarray  # [S, K, n_t] target scale of the scaler used for each forecast
    floors: np.ndarray | None = None  # [S, K, n_t] where the model floors at 0 (bounds too)
    levels: tuple[int, ...] = ()
    fits: int = 1  # models trained
    passes: int = 1  # batched forward passes of the model over (series, cutoff) windows
    timings: dict[str, float] = field(default_factory=dict)
    bounds: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    fold_metrics: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # aggregate
    by_step: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # metric -> [H]
    coverage_by_step: dict[int, np.ndarray] = field(default_factory=dict)  # level -> [H]
    notes: list[str] = field(default_factory=list)  # baselines that fell back, one line each

    @property
    def folds(self) -> int:
        """Number of folds K."""
        return int(self.cutoffs.shape[1])

    def scaled_residuals(self) -> np.ndarray:
        """Model residuals ``actual - forecast`` in scaled units ``[S, K, H, n_t]``."""
        return (self.actual - self.forecasts[MODEL]) / self.scales[:, :, None, :]

    def calibration(self) -> Calibration:
        """Conformal calibration from the residuals of every fold (for later forecasts)."""
        r = self.scaled_residuals()
        return Calibration.from_residuals(r.reshape(-1, *r.shape[2:]), "backtest")

    def table(self) -> list[dict[str, Any]]:
        """Rows ``{"method": name, metric: value, ...}`` of the aggregate, the model first."""
        return [{"method": k, **v} for k, v in self.metrics.items()]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the forecasts, JSON-ready (the ``backtest`` entry of metrics.json)."""
        series = self.series
        return {
            "horizon": self.horizon,
            "season": self.season,
            "folds": self.folds,
            "stride": self.stride,
            "refit": self.refit,
            "fits": self.fits,
            "forecast_passes": self.passes,
            "series": [s.series_id for s in series],
            "lengths": [len(s) for s in series],
            "cutoffs": self.cutoffs.tolist(),
            "cutoff_times": [
                [str(s.index[k]) for k in ks] for s, ks in zip(series, self.cutoffs, strict=True)
            ],
            "metrics": self.metrics,
            "folds_metrics": self.fold_metrics,
            "by_step": {m: {k: v.tolist() for k, v in d.items()} for m, d in self.by_step.items()},
            "intervals": {
                "levels": list(self.levels),
                "method": INTERVAL_METHOD if self.levels else None,
                "coverage_by_step": {str(k): v.tolist() for k, v in self.coverage_by_step.items()},
            },
            "timings": self.timings,
            "notes": self.notes,
        }

    def metrics_frame(self) -> pd.DataFrame:
        """Aggregate metrics, one row per method."""
        return pd.DataFrame(self.table())

    def folds_frame(self) -> pd.DataFrame:
        """Per-fold metrics: fold, cutoff and first forecast time (of the first series)."""
        first = self.series[0]
        rows = [
            {
                "fold": j,
                "cutoff": int(self.cutoffs[0, j]),
                "time": str(first.index[self.cutoffs[0, j]]),
                "method": name,
                **folds[j],
            }
            for name, folds in self.fold_metrics.items()
            for j in range(self.folds)
        ]
        return pd.DataFrame(rows)

    def forecasts_frame(self) -> pd.DataFrame:
        """Long table: series, fold, cutoff, step, time, target, actual, every method, bounds."""
        series = self.series
        s_n, k_n, h_n, t_n = self.actual.shape
        grid = np.indices((s_n, k_n, h_n, t_n)).reshape(4, -1)  # series, fold, step, target
        i, j, h, t = grid
        pos = self.cutoffs[i, j] + h
        cols: dict[str, Any] = {
            "series": [series[a].series_id for a in i],
            "fold": j,
            "cutoff": self.cutoffs[i, j],
            "step": h + 1,
            "time": [str(series[a].index[p]) for a, p in zip(i, pos, strict=True)],
            "target": [series[0].targets[b] for b in t],
            "actual": self.actual.reshape(-1),
        }
        cols.update({name: fc.reshape(-1) for name, fc in self.forecasts.items()})
        for level, (lo, hi) in self.bounds.items():
            cols[f"{MODEL}_lower_{level}"] = lo.reshape(-1)
            cols[f"{MODEL}_upper_{level}"] = hi.reshape(-1)
        frame = pd.DataFrame(cols)
        return frame.drop(columns="series") if frame["series"].isna().all() else frame

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> list[Path]:
        """Write ``metrics.json`` and the three backtest CSV files into ``directory``."""
        out = Path(directory)
        atomic_write_json(out / METRICS, {"backtest": self.to_dict(), **(extra or {})})
        frames = {
            METRICS_CSV: self.metrics_frame(),
            FOLDS_CSV: self.folds_frame(),
            FORECASTS_CSV: self.forecasts_frame(),
        }
        for name, frame in frames.items():
            atomic_write_text(out / name, frame.to_csv(index=False))
        return [out / METRICS, *(out / name for name in frames)]


# ----------------------------------------------------------------------------- intervals


def check_interval_folds(levels: tuple[int, ...], n_series: int, folds: int) -> None:
    """Enough residual windows in each half of the folds for every level, or one clear line."""
    if not levels:
        return
    need = min_residuals(max(levels))
    have = n_series * (folds // 2)
    if have < need:
        k = 2 * math.ceil(need / n_series)
        raise DataError(
            f"--intervals {max(levels)}: coverage is measured by calibrating each half of the "
            f"folds on the other, and {max(levels)}% needs {need} residual windows per half; "
            f"with {n_series} series use --folds >= {k} (got {folds}) or a lower level"
        )


def cross_fit_bounds(result: BacktestResult) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Interval bounds ``[S, K, H, n_t]`` per level, each half calibrated on the other."""
    resid = result.scaled_residuals()
    point = result.forecasts[MODEL]
    half = result.folds // 2
    parts = ((slice(half, None), slice(0, half)), (slice(0, half), slice(half, None)))
    out = {lv: (np.empty_like(point), np.empty_like(point)) for lv in result.levels}
    for cal, tgt in parts:
        r = resid[:, cal]
        q = conformal_quantiles(r.reshape(-1, *r.shape[2:]), result.levels)  # level -> [H, n_t]
        for lv in result.levels:
            width = q[lv][None, None] * result.scales[:, tgt, None, :]  # [S, K', H, n_t]
            out[lv][0][:, tgt] = point[:, tgt] - width
            out[lv][1][:, tgt] = point[:, tgt] + width
    if result.floors is not None and result.floors.any():  # floored as the forecasts are
        out = {lv: (apply_floor(lo, result.floors), apply_floor(hi, result.floors))
               for lv, (lo, hi) in out.items()}  # fmt: skip
    return out


def _pinball_pair(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: int) -> float:
    """Mean pinball loss of the two bounds as the ``a/2`` and ``1 - a/2`` quantiles."""
    alpha = 1.0 - level / 100.0
    return 0.5 * (pinball(actual, lo, alpha / 2) + pinball(actual, hi, 1.0 - alpha / 2))


# ----------------------------------------------------------------------------- scores


def nanmean(values: list[float]) -> float:
    """Mean of the values that are not NaN; NaN (and no warning) when none is."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr[~np.isnan(arr)].mean()) if np.any(~np.isnan(arr)) else float("nan")


def _mase_scales(series: list[Series], cutoffs: np.ndarray, season: int) -> np.ndarray:
    """In-sample seasonal-naive MAE of every history ``values[:k]`` ``[S, K, n_t]``."""
    return np.stack(
        [
            [mase_scale(s.target_values[: int(k)], season) for k in ks]
            for s, ks in zip(series, cutoffs, strict=True)
        ]
    )


def _window_metrics(
    result: BacktestResult, name: str, i: int, j: int, mscale: np.ndarray
) -> dict[str, float]:
    a, f = result.actual[i, j], result.forecasts[name][i, j]  # [H, n_t]
    bounds = result.bounds if name == MODEL else {}
    bands: dict[float, tuple[Any, Any]] = {
        lv: (lo[i, j], hi[i, j]) for lv, (lo, hi) in bounds.items()
    }
    scores = compute_metrics(a, f, intervals=bands)
    out = {k: scores[k] for k in ("mae", "rmse", "mape", "smape")}
    out["mase"] = mae(a / mscale[i, j], f / mscale[i, j])
    for lv, (lo, hi) in bounds.items():
        out[f"coverage_{lv}"] = scores[f"coverage_{lv}"]
        out[f"interval_score_{lv}"] = scores[f"interval_score_{lv}"]
        out[f"pinball_{lv}"] = _pinball_pair(a, lo[i, j], hi[i, j], lv)
    return out


def score_backtest(result: BacktestResult) -> None:
    """Fill the bounds, per-fold, aggregate and per-step scores of ``result`` in place."""
    series = result.series
    if result.levels:
        result.bounds = cross_fit_bounds(result)
    mscale = _mase_scales(series, result.cutoffs, result.season)
    s_n, k_n = result.cutoffs.shape
    for name in result.forecasts:
        folds = []
        for j in range(k_n):
            per = [_window_metrics(result, name, i, j, mscale) for i in range(s_n)]
            folds.append({k: nanmean([p[k] for p in per]) for k in per[0]})
        result.fold_metrics[name] = folds
        result.metrics[name] = {k: nanmean([f[k] for f in folds]) for k in folds[0]}
        result.by_step[name] = _by_step(result, name, mscale)
    flat = result.actual.reshape(-1, *result.actual.shape[2:])
    for lv, (lo, hi) in result.bounds.items():
        lo_f, hi_f = lo.reshape(flat.shape), hi.reshape(flat.shape)
        steps = range(result.horizon)
        result.coverage_by_step[lv] = np.array(
            [coverage(flat[:, h], lo_f[:, h], hi_f[:, h]) for h in steps]
        )


def _by_step(result: BacktestResult, name: str, mscale: np.ndarray) -> dict[str, np.ndarray]:
    """MAE, RMSE, MAPE, sMAPE and MASE per horizon step, pooled over series and folds."""
    shape = (-1, *result.actual.shape[2:])  # [S*K, H, n_t]
    a, f = result.actual.reshape(shape), result.forecasts[name].reshape(shape)
    out = metrics_by_step(a, f)
    sc = mscale.reshape(-1, 1, mscale.shape[-1])  # [S*K, 1, n_t]
    out["mase"] = metrics_by_step(a / sc, f / sc)["mae"]
    return out
