"""Rolling-origin backtests: forecasts from K cutoffs per series beside the baselines.

Cutoff ``k`` means the history ``values[:k]`` and the targets ``values[k:k + H]`` (as in
:mod:`elman.evaluation.baselines`); by default the cutoffs are the last K positions spaced
by the stride (default: the horizon), the last one at ``T - H``::

    values  |------------- train (first fit) -------------|k0 ...|k1 ...|k2 ...  T
    fold 0                                                 [ H ]
    fold 1                                                        [ H ]
    fold 2                                                               [ H ]

With ``refit="never"`` the model is trained once on the data before the first cutoff and
every (series, cutoff) window is forecast in one batched forward pass
(:meth:`~elman.forecasting.predictor.Predictor.forecast_at_cutoffs`). With
``refit="every"`` or ``N`` it is retrained on the data before every (N-th) cutoff, and each
group of folds sharing a model is one batched pass.

:func:`backtest` trains through the ``fit`` callable it is given and returns a
:class:`~elman.evaluation.scores.BacktestResult`; it changes nothing else.
:meth:`Forecaster.backtest <elman.forecaster.Forecaster.backtest>` applies the result (the
calibration from the backtest residuals, and the series to continue from).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np

from elman.data.series import Series
from elman.errors import ConfigError, DataError
from elman.evaluation.baselines import (
    baseline_forecasts_batched,
    baseline_notes,
    choose_baselines,
    min_history,
)
from elman.evaluation.scores import MODEL, BacktestResult, check_interval_folds, score_backtest
from elman.forecasting.intervals import parse_levels
from elman.forecasting.predictor import Predictor, targets_at

FitFn = Callable[[list[Series]], Predictor]  # trains on the series, returns what forecasts


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


def backtest(
    fit: FitFn,
    series: list[Series],
    horizon: int,
    folds: int = 5,
    stride: int | None = None,
    refit: str | int = "never",
    intervals: Iterable[int] | str | None = None,
    season: int | None = None,
    baselines: str = "auto",
) -> BacktestResult:
    """Rolling-origin backtest: train with ``fit``, forecast from every cutoff, score.

    See the module notes for the cutoffs. ``fit`` is called once (``refit="never"``, on the
    data before the first cutoff) or before every N-th cutoff.

    Args:
        fit: trains on a list of series (each cut at a cutoff) and returns the fitted
            :class:`~elman.forecasting.predictor.Predictor`.
        series: the series to backtest on (same columns).
        horizon: forecast steps ``H``.
        folds: cutoffs per series ``K``.
        stride: steps between cutoffs; default ``H``.
        refit: ``never``, ``every`` or ``N`` (retrain before every N-th cutoff).
        intervals: whole-percent levels, e.g. ``(80, 95)``: cross-fitted split-conformal
            intervals are scored on the folds (see :mod:`elman.evaluation.scores`).
        season: the seasonal period of the seasonal baselines and MASE; default the
            series' own.
        baselines: ``auto``, ``all`` or ``fast`` (see
            :func:`~elman.evaluation.baselines.choose_baselines`; a fit per cutoff).

    Returns:
        The forecasts, per-fold / aggregate / per-step metrics and interval coverage;
        ``result.calibration()`` gives the calibration from all backtest residuals.
    """
    levels = parse_levels(intervals) if intervals is not None else ()
    h = int(horizon)
    if h < 1:
        raise ConfigError(f"--horizon ({h}) must be >= 1")
    cut = np.stack([default_cutoffs(len(s), h, folds, stride, s.name) for s in series])  # [S, K]
    block = parse_refit(refit, folds)
    check_interval_folds(levels, len(series), cut.shape[1])
    season = season or int(series[0].season or 1)
    _check_first_cutoff(series, cut, season)
    clock: dict[str, float] = {}
    preds, scales, floors, fits = _model_forecasts(fit, series, cut, h, block, clock)
    t0 = time.perf_counter()
    names, skipped = choose_baselines(
        baselines, [s.target_values[: int(k[0])] for s, k in zip(series, cut, strict=True)],
        cut.size, h, season,
    )  # fmt: skip
    forecasts = {MODEL: preds, **_baselines(series, cut, h, season, names)}
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
        floors=floors,
        levels=levels,
        fits=fits,
        passes=fits,
        timings=clock,
        notes=baseline_notes(cut.ravel(), "series-cutoff histories", names)
        + ([skipped] if skipped else []),
    )
    t0 = time.perf_counter()
    score_backtest(result)
    clock["metrics_s"] = time.perf_counter() - t0
    return result


def _check_first_cutoff(series: list[Series], cut: np.ndarray, season: int) -> None:
    """Refuse, before any training, cutoffs that leave the baselines too little history."""
    need, text = min_history(season)
    i = int(np.argmin(cut[:, 0]))
    if cut[i, 0] < need:
        raise DataError(
            f"backtest: the first cutoff leaves {int(cut[i, 0])} point(s) of {series[i].name} "
            f"before it, but {text}; lower --folds or --stride, or use a lower --season"
        )


def _model_forecasts(
    fit: FitFn,
    series: list[Series],
    cut: np.ndarray,
    h: int,
    block: int,
    clock: dict[str, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Fit before every ``block``-th fold; forecast each group of folds in one pass.

    Returns:
        Forecasts ``[S, K, H, n_t]``, the target scales in use ``[S, K, n_t]``, where the
        model floors its forecasts at 0 ``[S, K, n_t]`` (``--nonnegative``) and the number
        of fits; ``clock`` gets ``fit_s`` and ``forecast_s``.
    """
    n_t = len(series[0].targets)
    preds = np.empty((*cut.shape, h, n_t))
    scales = np.empty((*cut.shape, n_t))
    floors = np.zeros((*cut.shape, n_t), bool)
    clock.update(fit_s=0.0, forecast_s=0.0)
    fits = 0
    for b in range(0, cut.shape[1], block):
        fold = slice(b, b + block)
        t0 = time.perf_counter()
        predictor = _fit_before(fit, series, cut[:, b])
        t1 = time.perf_counter()
        preds[:, fold] = predictor.forecast_at_cutoffs(series, cut[:, fold], h)
        clock["fit_s"] += t1 - t0
        clock["forecast_s"] += time.perf_counter() - t1
        scales[:, fold] = predictor.target_scales(series)[:, None]
        mask = predictor.floor_mask(series, cut[:, fold])
        if mask is not None:
            floors[:, fold] = mask
        fits += 1
    return preds, scales, floors, fits


def _baselines(
    series: list[Series], cut: np.ndarray, h: int, season: int, names: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """The baselines ``names`` at every cutoff of every series: name -> ``[S, K, H, n_t]``."""
    per_series = [
        baseline_forecasts_batched(s.target_values, k, h, season, names)
        for s, k in zip(series, cut, strict=True)
    ]
    return {name: np.stack([p[name] for p in per_series]) for name in per_series[0]}


def _fit_before(fit: FitFn, series: list[Series], cutoffs: np.ndarray) -> Predictor:
    """Train on each series up to its cutoff; a too-short history becomes one clear line."""
    train = [s.slice(0, int(k)) for s, k in zip(series, cutoffs, strict=True)]
    try:
        return fit(train)
    except DataError as exc:
        raise DataError(
            f"backtest: the data before cutoff {int(cutoffs[0])} of {series[0].name} is too "
            f"short to train on ({exc}); lower --folds or --stride"
        ) from exc
