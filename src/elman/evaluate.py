"""Kept for compatibility: ``elman.evaluate`` moved to :mod:`elman.evaluation`.

The hold-out evaluation is :mod:`elman.evaluation.holdout`, the backtest
:mod:`elman.evaluation.backtest` (which now returns its result: use
:meth:`Forecaster.backtest <elman.forecaster.Forecaster.backtest>` to apply it), and
forecasting from many cutoffs :meth:`Predictor.forecast_at_cutoffs
<elman.forecasting.predictor.Predictor.forecast_at_cutoffs>`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from elman.data.series import Series
from elman.evaluation.backtest import default_cutoffs, parse_refit
from elman.evaluation.holdout import HoldoutResult, evaluate_holdout, split_holdout
from elman.evaluation.scores import MODEL
from elman.forecaster import Forecaster
from elman.forecasting.predictor import targets_at

__all__ = [
    "MODEL",
    "HoldoutResult",
    "default_cutoffs",
    "evaluate_holdout",
    "forecast_at_cutoffs",
    "parse_refit",
    "split_holdout",
    "targets_at",
]


def forecast_at_cutoffs(
    forecaster: Forecaster, series: list[Series], cutoffs: Any, horizon: int | None = None
) -> np.ndarray:
    """``forecaster.predictor.forecast_at_cutoffs(series, cutoffs, horizon)``."""
    return forecaster.predictor.forecast_at_cutoffs(series, cutoffs, horizon)
