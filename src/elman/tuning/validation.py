r"""The honest split of a search: K rolling validation windows, then one untouched window.

::

    each series  |----------- training (every trial) -----------|k0 |k1 |..|kK-1| final |
                                                                 [H] [H]    [H]   [  H  ]
                 \________________ what a trial sees (seen) ___________________/

A trial trains once on each series up to its first cutoff ``k0`` (early stopping on the
last part of that, as ``elman train`` does) and forecasts the K windows in one batched
pass (:meth:`~elman.forecasting.predictor.Predictor.forecast_at_cutoffs`); it never
refits per window. With ``--ensemble``, the trial is the ensemble that ``elman train``
would deploy: its weights come from the training part's own validation windows, and each
statistical member is refitted at every window from the history before it. Each window's
score is the mean absolute error over the series and steps, each series divided by the
in-sample seasonal-naive error of its training part (MASE), so that series of different
scales weigh the same. The final H points of every
series are cut off before any trial starts (:attr:`Split.seen` ends before them): only
:func:`untouched_score`, after the search, looks at them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from elman.config import Config
from elman.data.series import Series
from elman.errors import DataError
from elman.evaluation.backtest import default_cutoffs
from elman.evaluation.ensemble import EnsemblePredictor, ensemble_for
from elman.evaluation.folds import validation_folds
from elman.evaluation.holdout import check_holdout, evaluate_holdout, split_holdout
from elman.evaluation.metrics import MetricWarning, mase_scale
from elman.evaluation.scores import MODEL
from elman.forecaster import Forecaster
from elman.forecasting.predictor import Predictor, targets_at
from elman.training.fit import fit_predictor


@dataclass
class Split:
    """Where the validation windows and the untouched window lie.

    Attributes:
        series: the full series (final window included).
        seen: each series without its final ``horizon`` points: all a trial may read.
        horizon: points per window ``H``.
        season: the seasonal period of the MASE scale.
        cutoffs: ``[S, K]`` window starts in ``seen``, the last at ``len - H``.
        scales: ``[S, n_t]`` seasonal-naive MAE of each series' training part.
    """

    series: list[Series]
    seen: list[Series]
    horizon: int
    season: int
    cutoffs: np.ndarray
    scales: np.ndarray

    @property
    def folds(self) -> int:
        """The number of validation windows per series, ``K``."""
        return int(self.cutoffs.shape[1])

    def training(self) -> list[Series]:
        """Each series up to its first validation window: what a trial trains on."""
        return [s.slice(0, int(k)) for s, k in zip(self.seen, self.cutoffs[:, 0], strict=True)]


def make_split(
    series: list[Series], horizon: int, season: int, folds: int | None = None
) -> Split:
    """The validation windows and the untouched window of ``series``.

    Args:
        series: the data (same columns).
        horizon: ``H``, the length of every window.
        season: the seasonal period (MASE scale, baselines).
        folds: ``K``; default :func:`~elman.evaluation.folds.validation_folds`.
    """
    check_holdout(series, horizon, season)
    seen = split_holdout(series, horizon)
    shortest = min(len(s) for s in seen)
    k = folds if folds is not None else validation_folds(len(seen), shortest, horizon)
    cut = np.stack([default_cutoffs(len(s), horizon, k, None, s.name) for s in seen])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        scales = np.stack(
            [
                np.atleast_1d(mase_scale(s.target_values[: int(c)], season))
                for s, c in zip(seen, cut[:, 0], strict=True)
            ]
        )
    if not np.all(np.isfinite(scales)):
        i = int(np.argwhere(~np.isfinite(scales))[0][0])
        raise DataError(
            f"{seen[i].name} is constant before its validation windows, so no error can be "
            "scaled against it; drop the series or give more history"
        )
    return Split(series, seen, horizon, season, cut, scales)


def fit_trial(config: Config, split: Split) -> Predictor:
    """Train ``config`` once on the training part of every series (before window 0), and
    weigh its ensemble (``--ensemble``) on that part's validation windows, as ``elman
    train`` does; without interval calibration, which no score reads."""
    training = split.training()
    fitted = fit_predictor(training, config)
    chosen = ensemble_for(fitted.predictor, training, fitted.ends, config.model.ensemble, False)
    if chosen is None:
        return fitted.predictor
    return EnsemblePredictor.around(fitted.predictor, chosen.selection.weights)


def window_scores(predictor: Predictor, split: Split) -> np.ndarray:
    """Scaled MAE of each validation window ``[K]``, averaged over series, steps, targets.

    Raises:
        DataError: a forecast is not finite (the network diverged in real units).
    """
    if isinstance(predictor, EnsemblePredictor):  # each member's form chosen before window 0
        pred = predictor.forecast_at_cutoffs(
            split.seen, split.cutoffs, split.horizon, form_at=split.cutoffs[:, 0]
        )
    else:
        pred = predictor.forecast_at_cutoffs(split.seen, split.cutoffs, split.horizon)
    actual = targets_at(split.seen, split.cutoffs, split.horizon)  # [S, K, H, n_t]
    if not np.all(np.isfinite(pred)):
        raise DataError("the network's forecasts are not finite (it diverged)")
    err = np.abs(actual - pred) / split.scales[:, None, None, :]
    return np.asarray(np.nanmean(err, axis=(0, 2, 3)))


def untouched_score(config: Config, split: Split) -> float:
    """MASE of ``config`` on the untouched final window, trained as ``elman train`` does.

    The network trains on every series without its last H points and forecasts them; this
    is the hold-out of ``elman train --config`` with ``--test-size`` H, so the two agree
    for the same seed and data.
    """
    f = Forecaster(config=config).fit(split.seen)
    result = evaluate_holdout(f.predictor, split.series, split.horizon, split.season)
    return float(result.metrics[MODEL]["mase"])
