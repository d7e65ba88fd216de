"""Scoring forecasts against held-out data, beside the honest baselines.

Every evaluation scores the model and every baseline of :mod:`elman.baselines` on the same
points, so a user always sees whether the network is worth it.

* :func:`evaluate_holdout`: one forecast of the last ``test_size`` points of each series.
* :func:`backtest`: rolling-origin evaluation from K cutoffs per series. Cutoff ``k`` means
  the history ``values[:k]`` and the targets ``values[k:k + H]`` (as in
  :mod:`elman.baselines`); by default the cutoffs are the last K positions spaced by the
  stride (default: the horizon), the last one at ``T - H``::

      values  |------------- train (first fit) -------------|k0 ...|k1 ...|k2 ...  T
      fold 0                                                 [ H ]
      fold 1                                                        [ H ]
      fold 2                                                               [ H ]

  With ``refit="never"`` the model is trained once on the data before the first cutoff and
  every (series, cutoff) window is forecast in one batched forward pass
  (:func:`forecast_at_cutoffs`). With ``refit="every"`` or ``N`` it is retrained on the data
  before every (N-th) cutoff, and each group of folds sharing a model is one batched pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from elman.baselines import baseline_forecasts, baseline_forecasts_batched
from elman.batching import windows_per_pass
from elman.calibration import Calibration
from elman.data.series import Series
from elman.errors import ConfigError, DataError
from elman.forecast import Panel, forecast_windows
from elman.intervals import parse_levels
from elman.metrics import compute_metrics
from elman.prepare import build_panel, check_same_schema, load_series
from elman.scores import MODEL, BacktestResult, check_interval_folds, score_backtest

if TYPE_CHECKING:
    from elman.forecaster import Forecaster

log = logging.getLogger(__name__)


def split_holdout(series: list[Series], test_size: int) -> list[Series]:
    """Each series without its last ``test_size`` points (the part a model may see)."""
    for s in series:
        if len(s) <= test_size:
            raise DataError(
                f"{s.name} has {len(s)} points, too few to hold out the last {test_size} "
                "for testing (lower --test-size or --horizon)"
            )
    return [s.slice(0, len(s) - test_size) for s in series]


@dataclass
class HoldoutResult:
    """Forecasts and metrics of one hold-out evaluation."""

    test_size: int
    season: int
    forecasts: dict[str, np.ndarray]  # name -> [S, H, n_t] in real units
    actual: np.ndarray  # [S, H, n_t]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> metric -> value

    def table(self) -> list[dict[str, Any]]:
        """Rows ``{"method": name, metric: value, ...}``, the model first."""
        return [{"method": k, **v} for k, v in self.metrics.items()]


def evaluate_holdout(
    forecaster: Forecaster, series: list[Series], test_size: int, season: int | None = None
) -> HoldoutResult:
    """Forecast the last ``test_size`` points of every series from the points before them.

    The forecaster must have been fitted on data that ends before the hold-out (see
    :func:`split_holdout`). Metrics are averaged over series; MASE scales each series by its
    own in-sample seasonal-naive error.
    """
    history = split_holdout(series, test_size)
    m = season or int(series[0].season or 1)
    preds = {MODEL: forecaster.forecast_arrays(history, test_size)}
    actual = np.stack([s.target_values[len(s) - test_size :] for s in series])  # [S, H, n_t]
    base: dict[str, list[np.ndarray]] = {}
    for h in history:
        for name, fc in baseline_forecasts(h.target_values, test_size, m).items():
            base.setdefault(name, []).append(fc)
    preds.update({k: np.stack(v) for k, v in base.items()})
    result = HoldoutResult(test_size=test_size, season=m, forecasts=preds, actual=actual)
    for name, fc in preds.items():
        per = [
            compute_metrics(actual[i], fc[i], insample=h.target_values, season=m)
            for i, h in enumerate(history)
        ]
        result.metrics[name] = {k: float(np.nanmean([p[k] for p in per])) for k in per[0]}
    return result


# ----------------------------------------------------------------------------- cutoffs

REFIT_CHOICES = "never, every or a whole number >= 1"


def default_cutoffs(
    length: int, horizon: int, folds: int, stride: int | None = None, name: str = "the series"
) -> np.ndarray:
    """The last ``folds`` cutoffs of a series, ``stride`` apart, the last at ``length - H``.

    Args:
        length: points in the series ``T``.
        horizon: forecast steps ``H``.
        folds: number of cutoffs ``K``.
        stride: steps between cutoffs; default ``horizon`` (folds do not overlap).
        name: the series, for messages.

    Returns:
        Cutoff positions ``[K]``, ascending.
    """
    step = horizon if stride is None else stride
    if isinstance(folds, bool) or int(folds) < 1:
        raise ConfigError(f"--folds ({folds}) must be >= 1")
    if isinstance(step, bool) or int(step) < 1:
        raise ConfigError(f"--stride ({step}) must be >= 1")
    first = length - horizon - step * (folds - 1)
    if first < 1:
        raise DataError(
            f"--folds {folds} with --stride {step} and --horizon {horizon} need more than "
            f"{horizon + step * (folds - 1)} points, but {name} has {length}; "
            "lower --folds or --stride"
        )
    return first + step * np.arange(folds, dtype=np.int64)


def parse_refit(refit: str | int, folds: int) -> int:
    """Folds per fitted model: ``never`` -> ``folds``, ``every`` -> 1, ``N`` -> ``N``."""
    text = str(refit).strip().lower()
    if text == "never":
        return max(int(folds), 1)
    if text == "every":
        return 1
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1 or isinstance(refit, bool):
        raise ConfigError(f"--refit {refit!r} must be {REFIT_CHOICES}")
    return n


def targets_at(series: list[Series], cutoffs: np.ndarray, horizon: int) -> np.ndarray:
    """Actual target values after each cutoff ``[S, K, H, n_t]`` (one gather per series)."""
    steps = np.asarray(cutoffs)[..., None] + np.arange(horizon)  # [S, K, H]
    return np.stack([s.target_values[idx] for s, idx in zip(series, steps, strict=True)])


# ----------------------------------------------------------------------------- batched model


def _target_scales(forecaster: Forecaster, series: list[Series], n_t: int) -> np.ndarray:
    """Each series' scaler scale of the target columns ``[S, n_t]``."""
    return np.stack([np.asarray(forecaster.scaler_for(s).scale)[:n_t] for s in series])


@torch.no_grad()
def forecast_at_cutoffs(
    forecaster: Forecaster, series: list[Series], cutoffs: Any, horizon: int | None = None
) -> np.ndarray:
    """Point forecasts from many cutoffs of many series in one batched forward pass.

    Each series is scaled with its stored scaler and laid out as a
    :class:`~elman.forecast.Panel`; the input window of every (series, cutoff) pair, the
    ``lookback`` rows before the cutoff, is gathered and run through the model in batches
    (one for all windows unless their activations would exceed
    :data:`elman.batching.MAX_PASS_ELEMENTS`). No Python loop runs over cutoffs. Only the
    rows from the first input window on are scaled, so a few cutoffs near the end of a long
    series cost little memory.

    Args:
        forecaster: a fitted forecaster.
        series: S series with the training columns.
        cutoffs: ``[S, K]`` positions with ``lookback <= k <= T`` (``k + H <= T`` when the
            model has future covariates, whose values are read from the series).
        horizon: steps ``H``; default the trained horizon.

    Returns:
        Forecasts in real units ``[S, K, H, n_t]``.
    """
    model, sizes, layout = forecaster.model, forecaster.sizes, forecaster.layout
    if model is None or sizes is None or layout is None:
        raise ConfigError("the forecaster is not fitted yet; call fit(data) or load(dir)")
    h, lookback, n_t = horizon or sizes.horizon, sizes.lookback, layout.n_targets
    direct = forecaster.config.model.strategy == "direct"
    if direct and h > sizes.horizon:
        raise ConfigError(f"a direct model forecasts at most {sizes.horizon} steps, asked {h}")
    cut = _checked_cutoffs(series, cutoffs, lookback, h if layout.n_future else 0)
    scalers = [forecaster.scaler_for(s) for s in series]  # of whole series, as in training
    skip = cut.min(axis=1) - lookback if cut.shape[1] else np.zeros(len(series), np.int64)
    panel = build_panel([s.slice(int(k)) for s, k in zip(series, skip, strict=True)], scalers)
    first = torch.from_numpy(panel.offsets[:-1, None] + cut - (skip + lookback)[:, None])
    first = first.reshape(-1)  # [B] row of each window's first input in the panel
    width = max(forecaster.config.model.hidden_size, layout.input_size)
    step = windows_per_pass(lookback + h, width)
    pred = torch.cat(
        [_forward(forecaster, panel, first[lo : lo + step], h) for lo in range(0, len(first), step)]
    )  # [B, H, n_t] float64, scaled units
    scaled = pred.numpy().reshape(*cut.shape, h, n_t)
    cols = list(range(n_t))
    return np.stack(
        [sc.inverse_transform(p, columns=cols) for sc, p in zip(scalers, scaled, strict=True)]
    )


def _checked_cutoffs(series: list[Series], cutoffs: Any, lookback: int, after: int) -> np.ndarray:
    """Cutoffs ``[S, K]`` that leave ``lookback`` points before and ``after`` points after."""
    cut = np.asarray(cutoffs, dtype=np.int64)
    if cut.ndim != 2 or cut.shape[0] != len(series):
        raise DataError(f"`cutoffs` must have shape [S={len(series)}, K], got {cut.shape}")
    lens = np.array([len(s) for s in series])[:, None]
    bad = (cut < lookback) | (cut + after > lens)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"cutoff {int(cut[i, j])} of {series[i].name} ({len(series[i])} points) leaves "
            f"fewer than the lookback ({lookback}) points before it or no room for the future "
            "covariates after it"
        )
    return cut


def _forward(forecaster: Forecaster, panel: Panel, first: torch.Tensor, h: int) -> torch.Tensor:
    """One model pass over the windows whose inputs start at panel rows ``first [b]``."""
    model, sizes, layout = forecaster.model, forecaster.sizes, forecaster.layout
    assert model is not None and sizes is not None and layout is not None
    lookback = sizes.lookback
    x = panel.feats[first[:, None] + torch.arange(lookback)]  # [b, L, C_in], a fresh gather
    fut = None
    if layout.n_future:  # row t holds f_{t+1}, so rows k-1 .. k+H-2 give f_k .. f_{k+H-1}
        fidx = (first + lookback - 1)[:, None] + torch.arange(h)
        fut = panel.feats[fidx][..., layout.n_observed :]  # [b, H, n_f]
    cfg = forecaster.config
    return forecast_windows(
        model, x, fut, cfg.model.strategy, cfg.data.norm, lookback, sizes.horizon, h, layout
    )


def validation_calibration(
    forecaster: Forecaster, series: list[Series], ends: list[int]
) -> Calibration | None:
    """Conformal calibration from every window whose targets lie in the validation part.

    Args:
        forecaster: fitted on ``series[i][:ends[i]]``.
        series: the series it was given, validation part included.
        ends: where each training part ends (validation starts).

    Returns:
        A ``validation`` :class:`~elman.calibration.Calibration`, or ``None`` when there is
        no validation window.
    """
    sizes, layout = forecaster.sizes, forecaster.layout
    if sizes is None or layout is None:
        return None
    h = sizes.horizon
    n = min(len(s) - h + 1 - max(e, sizes.lookback) for s, e in zip(series, ends, strict=True))
    if n < 1:
        return None
    cut = np.stack([np.arange(n) + max(e, sizes.lookback) for e in ends])  # [S, n]
    pred = forecast_at_cutoffs(forecaster, series, cut)  # [S, n, H, n_t]
    scales = _target_scales(forecaster, series, layout.n_targets)  # [S, n_t]
    resid = (targets_at(series, cut, h) - pred) / scales[:, None, None, :]
    return Calibration.from_residuals(resid.reshape(-1, h, layout.n_targets), "validation")


# ----------------------------------------------------------------------------- backtest


def backtest(
    forecaster: Forecaster,
    data: Any,
    horizon: int | None = None,
    folds: int = 5,
    stride: int | None = None,
    refit: str | int = "never",
    intervals: Iterable[int] | str | None = None,
) -> BacktestResult:
    """Rolling-origin backtest of ``forecaster``'s configuration on ``data``.

    See the module notes for the cutoffs. The forecaster is trained in place (with
    ``refit="never"`` once, on the data before the first cutoff; otherwise before every
    N-th cutoff), so it ends fitted on the data before its last refit point. Its interval
    calibration is replaced by one from all backtest residuals, and ``predict()`` then
    continues after the end of ``data``.

    Args:
        forecaster: supplies the configuration; its model is (re)trained here.
        data: anything :meth:`~elman.forecaster.Forecaster.fit` accepts.
        horizon: forecast steps ``H``; default the configured horizon.
        folds: cutoffs per series ``K``.
        stride: steps between cutoffs; default ``H``.
        refit: ``never``, ``every`` or ``N`` (retrain before every N-th cutoff).
        intervals: whole-percent levels, e.g. ``(80, 95)``: cross-fitted split-conformal
            intervals are scored on the folds (see :mod:`elman.scores`).

    Returns:
        The forecasts, per-fold / aggregate / per-step metrics and interval coverage.
    """
    levels = parse_levels(intervals) if intervals is not None else ()
    h = forecaster.config.data.horizon if horizon is None else int(horizon)
    if h < 1:
        raise ConfigError(f"--horizon ({h}) must be >= 1")
    if h != forecaster.config.data.horizon:
        forecaster.config = forecaster.config.replace(horizon=h)
    series = load_series(data, forecaster.config.data)
    check_same_schema(series)
    cut = np.stack([default_cutoffs(len(s), h, folds, stride, s.name) for s in series])  # [S, K]
    block = parse_refit(refit, folds)
    check_interval_folds(levels, len(series), cut.shape[1])
    season = forecaster.config.data.season or int(series[0].season or 1)
    clock: dict[str, float] = {}
    preds, scales, fits = _model_forecasts(forecaster, series, cut, h, block, clock)
    t0 = time.perf_counter()
    forecasts = {MODEL: preds, **_baselines(series, cut, h, season)}
    clock["baselines_s"] = time.perf_counter() - t0
    result = BacktestResult(
        series=series,
        horizon=h,
        season=season,
        stride=int(cut[0, 1] - cut[0, 0]) if cut.shape[1] > 1 else (stride or h),
        refit=str(refit),
        cutoffs=cut,
        forecasts=forecasts,
        actual=targets_at(series, cut, h),
        scales=scales,
        levels=levels,
        fits=fits,
        passes=fits,
        timings=clock,
    )
    t0 = time.perf_counter()
    score_backtest(result)
    clock["metrics_s"] = time.perf_counter() - t0
    forecaster.calibration = result.calibration()
    forecaster.series = series  # predict() continues after the end of the data
    return result


def _model_forecasts(
    forecaster: Forecaster,
    series: list[Series],
    cut: np.ndarray,
    h: int,
    block: int,
    clock: dict[str, float],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Fit before every ``block``-th fold; forecast each group of folds in one pass.

    Returns:
        Forecasts ``[S, K, H, n_t]``, the target scales in use ``[S, K, n_t]`` and the
        number of fits; ``clock`` gets ``fit_s`` and ``forecast_s``.
    """
    n_t = len(series[0].targets)
    preds = np.empty((*cut.shape, h, n_t))
    scales = np.empty((*cut.shape, n_t))
    clock.update(fit_s=0.0, forecast_s=0.0)
    fits = 0
    for b in range(0, cut.shape[1], block):
        fold = slice(b, b + block)
        t0 = time.perf_counter()
        _fit_before(forecaster, series, cut[:, b])
        t1 = time.perf_counter()
        preds[:, fold] = forecast_at_cutoffs(forecaster, series, cut[:, fold], h)
        clock["fit_s"] += t1 - t0
        clock["forecast_s"] += time.perf_counter() - t1
        scales[:, fold] = _target_scales(forecaster, series, n_t)[:, None]
        fits += 1
    return preds, scales, fits


def _baselines(series: list[Series], cut: np.ndarray, h: int, season: int) -> dict[str, np.ndarray]:
    """Every baseline at every cutoff of every series: name -> ``[S, K, H, n_t]``."""
    per_series = [
        baseline_forecasts_batched(s.target_values, k, h, season)
        for s, k in zip(series, cut, strict=True)
    ]
    return {name: np.stack([p[name] for p in per_series]) for name in per_series[0]}


def _fit_before(forecaster: Forecaster, series: list[Series], cutoffs: np.ndarray) -> None:
    """Train on each series up to its cutoff; a too-short history becomes one clear line."""
    train = [s.slice(0, int(k)) for s, k in zip(series, cutoffs, strict=True)]
    try:
        forecaster.fit(train)
    except DataError as exc:
        raise DataError(
            f"backtest: the data before cutoff {int(cutoffs[0])} of {series[0].name} is too "
            f"short to train on ({exc}); lower --folds or --stride"
        ) from exc
