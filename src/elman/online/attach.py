"""Online learning that continues a fitted predictor: the learner and each update.

:meth:`Forecaster.update <elman.forecaster.Forecaster.update>` keeps one
:class:`~elman.online.learner.OnlineLearner` (:func:`learner_for`); it shares the
predictor's model and starts from the end of the stored training context, and
:func:`learn_continuation` predicts-then-learns over new points that continue the series.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from elman.config import OnlineConfig
from elman.data.prepare import scaled_tensor
from elman.data.series import Series
from elman.errors import ConfigError
from elman.forecasting.predictor import Predictor
from elman.online.learner import OnlineLearner
from elman.online.metrics import StepLog


def from_predictor(
    predictor: Predictor, series: list[Series], config: OnlineConfig | None = None
) -> OnlineLearner:
    """A learner continuing a fitted predictor of one series.

    The model runs through the stored context (the last ``lookback`` points of ``series``)
    first, so that the first streamed point is predicted from the state at the end of it.
    The learner shares ``predictor.model``; :meth:`OnlineLearner.sync_model` writes the
    learned weights into it.

    Raises:
        ConfigError: ``series`` holds several series (a global model), or the model needs
            future covariates (unknown until the next point arrives).
    """
    predictor.check_supports("online learning (Forecaster.update, elman stream)", online=True)
    sizes, layout = predictor.sizes, predictor.layout
    if len(series) != 1:
        raise ConfigError(
            f"online learning follows one series; this model holds {len(series)} "
            "(a global model over several series)"
        )
    if layout.n_future:
        raise ConfigError(
            "this model reads future covariates, which a stream does not know before the "
            "next point arrives; stream a model trained without --future-covariates/--calendar"
        )
    cfg = predictor.config
    learner = OnlineLearner(
        predictor.model,
        predictor.scaler_for(series[0]),
        n_targets=layout.n_targets,
        horizon=sizes.horizon,
        strategy=cfg.model.strategy,
        norm=cfg.data.norm,
        lookback=sizes.lookback,
        config=config,
    )
    learner.prime(series[0].values[:, : layout.n_observed])
    return learner


def learner_for(
    current: OnlineLearner | None,
    predictor: Predictor,
    series: list[Series],
    options: dict[str, Any] | None = None,
) -> OnlineLearner:
    """``current`` if it follows ``predictor``'s model (with ``options`` applied), else a new one.

    A refit replaces the model, which retires the old learner.
    """
    if current is None or current.model is not predictor.model:
        try:
            config = OnlineConfig(**(options or {}))
        except TypeError as exc:
            raise ConfigError(f"update(): {exc}") from exc
        return from_predictor(predictor, series, config)
    if options:
        current.reconfigure(**options)
    return current


def learn_continuation(
    learner: OnlineLearner, old: Series, new: Series, keep: int
) -> tuple[StepLog, Series]:
    """Predict-then-learn over ``new``, which continues ``old``.

    Afterwards the learner's model holds the learned weights. Returns the per-point log and
    the series to continue from: the last ``keep`` points of ``old`` followed by ``new``.
    """
    if not _comes_after(new.index, old.index):  # e.g. an array: number it on from the old end
        new = dataclasses.replace(new, index=old.future_index(len(new)))
    scaled_tensor(new, learner.scaler)  # refuses a point the network could never forecast past
    log_ = learner.observe(new.values[:, : learner.model.input_size])
    learner.sync_model()
    keep = max(keep, 1)
    if len(new) >= keep:
        return log_, new.tail(keep)
    values = np.concatenate([old.values, new.values])[-keep:]
    index = old.index.append(new.index)[-keep:]
    return log_, dataclasses.replace(new, values=values, index=index)


def _comes_after(new: pd.Index, old: pd.Index) -> bool:
    """Whether ``new`` is a time index of the same kind that starts after ``old`` ends."""
    if type(new) is not type(old) or not len(new) or not len(old):
        return isinstance(new, (pd.DatetimeIndex, pd.PeriodIndex)) and len(new) > 0
    try:
        return bool(new[0] > old[-1])
    except TypeError:
        return False
