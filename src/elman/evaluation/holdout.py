"""Hold-out evaluation: forecast the last points of every series beside the baselines.

Every evaluation scores the model and every baseline of :mod:`elman.evaluation.baselines`
on the same points, so a user always sees whether the network is worth it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from elman.data.calendar import CALENDAR_PREFIX
from elman.data.series import Series
from elman.errors import DataError
from elman.evaluation.baselines import (
    baseline_forecasts,
    baseline_notes,
    choose_baselines,
    min_history,
)
from elman.evaluation.metrics import compute_metrics
from elman.evaluation.scores import MODEL, nanmean
from elman.forecasting.predictor import Predictor


def check_holdout(series: list[Series], test_size: int, season: int) -> None:
    """Refuse, before any training, a hold-out the baselines cannot be scored on.

    Every baseline forecasts from the points before the hold-out; seasonal-naive needs a
    full season of them and the linear AR baseline at least three.
    """
    _check_longer(series, test_size)
    need, text = min_history(season)
    for s in series:
        have = len(s) - test_size
        if have < need:
            raise DataError(
                f"{s.name} has {have} point(s) before its hold-out of {test_size}, but "
                f"{text}; give more data, a lower --season, or --test-size 0 to skip the "
                "hold-out"
            )


def split_holdout(series: list[Series], test_size: int) -> list[Series]:
    """Each series without its last ``test_size`` points (the part a model may see)."""
    _check_longer(series, test_size)
    return [s.slice(0, len(s) - test_size) for s in series]


def _check_longer(series: list[Series], test_size: int) -> None:
    """Every series has points left before its last ``test_size``."""
    for s in series:
        if len(s) <= test_size:
            raise DataError(
                f"{s.name} has {len(s)} points, too few to hold out the last {test_size} "
                "for testing (lower --test-size or --horizon)"
            )


@dataclass
class HoldoutResult:
    """Forecasts and metrics of one hold-out evaluation."""

    test_size: int
    season: int
    forecasts: dict[str, np.ndarray]  # name -> [S, H, n_t] in real units
    actual: np.ndarray  # [S, H, n_t]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> metric -> value
    notes: list[str] = field(default_factory=list)  # baselines that fell back, one line each

    def table(self) -> list[dict[str, Any]]:
        """Rows ``{"method": name, metric: value, ...}``, the model first."""
        return [{"method": k, **v} for k, v in self.metrics.items()]


def known_future(series: Series, steps: int) -> pd.DataFrame | None:
    """The non-calendar future covariates of the last ``steps`` rows, as a table.

    They are in the data already: a hold-out forecast uses them as ``future`` values, as a
    forecast of the real future would use the values the user supplies.
    """
    names = [c for c in series.future_covariates if not c.startswith(CALENDAR_PREFIX)]
    if not names:
        return None
    cols = [series.columns.index(c) for c in names]
    return pd.DataFrame(series.values[len(series) - steps :, cols], columns=names)


def evaluate_holdout(
    predictor: Predictor,
    series: list[Series],
    test_size: int,
    season: int | None = None,
    baselines: str = "auto",
) -> HoldoutResult:
    """Forecast the last ``test_size`` points of every series from the points before them.

    The predictor must have been fitted on data that ends before the hold-out (see
    :func:`split_holdout`). Metrics are averaged over series; MASE scales each series by its
    own in-sample seasonal-naive error. ``baselines``: ``auto``, ``all`` or ``fast``
    (:func:`~elman.evaluation.baselines.choose_baselines`).
    """
    history = split_holdout(series, test_size)
    m = season or int(series[0].season or 1)
    known = [known_future(s, test_size) for s in series]  # future covariates of the hold-out
    preds = {MODEL: predictor.forecast_arrays(history, test_size, known)}
    actual = np.stack([s.target_values[len(s) - test_size :] for s in series])  # [S, H, n_t]
    names, skipped = choose_baselines(
        baselines, [h.target_values for h in history], len(history), test_size, m
    )
    base: dict[str, list[np.ndarray]] = {}
    for h in history:
        for name, fc in baseline_forecasts(h.target_values, test_size, m, names).items():
            base.setdefault(name, []).append(fc)
    preds.update({k: np.stack(v) for k, v in base.items()})
    result = HoldoutResult(test_size=test_size, season=m, forecasts=preds, actual=actual)
    result.notes = baseline_notes([len(h) for h in history], "series", names)
    if skipped:
        result.notes.append(skipped)
    for name, fc in preds.items():
        per = [
            compute_metrics(actual[i], fc[i], insample=h.target_values, season=m)
            for i, h in enumerate(history)
        ]
        result.metrics[name] = {k: nanmean([p[k] for p in per]) for k in per[0]}
    return result
