"""Online learning for a fitted :class:`~elman.forecaster.Forecaster`: ``update`` and ``state``.

The forecaster keeps one :class:`~elman.online.OnlineLearner` (created on first use); it
shares the forecaster's model and starts from the end of the stored training context.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from elman.errors import ConfigError
from elman.online import OnlineConfig, OnlineLearner
from elman.online_metrics import StepLog


def from_forecaster(forecaster: Any, config: OnlineConfig | None = None) -> OnlineLearner:
    """A learner continuing a fitted :class:`~elman.forecaster.Forecaster` of one series.

    The model runs through the stored context (the last ``lookback`` points of its data)
    first, so that the first streamed point is predicted from the state at the end of it.
    The learner shares ``forecaster.model``; :meth:`OnlineLearner.sync_model` writes the
    learned weights into it.

    Raises:
        ConfigError: the forecaster is not fitted, holds several series, or its model needs
            future covariates (unknown until the next point arrives).
    """
    model, sizes, layout = forecaster.model, forecaster.sizes, forecaster.layout
    if model is None or sizes is None or layout is None:
        raise ConfigError("the forecaster is not fitted yet; call fit(data) or load(dir)")
    series = forecaster.series
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
    cfg = forecaster.config
    learner = OnlineLearner(
        model,
        forecaster.scaler_for(series[0]),
        n_targets=layout.n_targets,
        horizon=sizes.horizon,
        strategy=cfg.model.strategy,
        norm=cfg.data.norm,
        lookback=sizes.lookback,
        config=config,
    )
    learner.prime(series[0].values[:, : layout.n_observed])
    return learner


def forecaster_learner(forecaster: Any, options: dict[str, Any] | None = None) -> OnlineLearner:
    """The learner attached to ``forecaster`` (created on first use, see :func:`from_forecaster`).

    A refit replaces the model, which retires the old learner.
    """
    learner = getattr(forecaster, "_online", None)
    if learner is None or learner.model is not forecaster.model:
        try:
            config = OnlineConfig(**(options or {}))
        except TypeError as exc:
            raise ConfigError(f"update(): {exc}") from exc
        learner = from_forecaster(forecaster, config)
        forecaster._online = learner
    elif options:
        learner.reconfigure(**options)
    return learner


def update_forecaster(forecaster: Any, new_data: Any, options: dict[str, Any]) -> StepLog:
    """Predict-then-learn over ``new_data``, which continues the forecaster's series.

    Afterwards ``forecaster.model`` holds the learned weights and ``forecaster.series`` ends
    with ``new_data``, so that forecasts continue from its last point.
    """
    learner = forecaster_learner(forecaster, options)
    series = forecaster._history(new_data)
    if len(series) != 1:
        raise ConfigError(f"update() takes one series, got {len(series)}")
    new, old = series[0], forecaster.series[0]
    if not _comes_after(new.index, old.index):  # e.g. an array: number it on from the old end
        new = dataclasses.replace(new, index=old.future_index(len(new)))
    log_ = learner.observe(new.values[:, : learner.model.input_size])
    learner.sync_model()
    keep = max(forecaster.sizes.lookback, 1)
    if len(new) >= keep:
        forecaster.series = [new.tail(keep)]
    else:
        values = np.concatenate([old.values, new.values])[-keep:]
        index = old.index.append(new.index)[-keep:]
        forecaster.series = [dataclasses.replace(new, values=values, index=index)]
    return log_


def _comes_after(new: pd.Index, old: pd.Index) -> bool:
    """Whether ``new`` is a time index of the same kind that starts after ``old`` ends."""
    if type(new) is not type(old) or not len(new) or not len(old):
        return isinstance(new, (pd.DatetimeIndex, pd.PeriodIndex)) and len(new) > 0
    try:
        return bool(new[0] > old[-1])
    except TypeError:
        return False
