"""Running error statistics and per-point results of a stream.

The running MAE is an exponentially weighted mean of ``|error|`` that the anomaly flag
compares each new error with (see :class:`RunningError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class RunningError:
    """Running error statistics of a stream, in real units, per target column.

    ``mae`` is an exponentially weighted mean of ``|error|`` with ``alpha = 2 / (span + 1)``,
    normalised like ``pandas.Series.ewm(span=span, adjust=True).mean()`` (exact from the
    first point, no warm-up bias).
    """

    def __init__(self, n_targets: int, span: int, threshold: float, min_errors: int) -> None:
        self.decay = 1.0 - 2.0 / (span + 1.0)
        self.threshold, self.min_errors = threshold, min_errors
        self.num = [0.0] * n_targets
        self.den = 0.0
        self.count = 0
        self.anomalies = 0
        self.sum_abs = [0.0] * n_targets
        self.sum_sq = [0.0] * n_targets

    def update(self, errors: tuple[float, ...]) -> tuple[float, bool]:
        """Add one point's errors; returns ``(running MAE after it, anomaly flag)``."""
        flagged = False
        den, num, sum_abs, sum_sq = self.den, self.num, self.sum_abs, self.sum_sq
        armed = self.count >= self.min_errors and den > 0.0
        decay = self.decay
        for j, e in enumerate(errors):
            a = abs(e)
            if armed:
                limit = self.threshold * num[j] / den
                if a > limit:
                    flagged, a = True, limit
            num[j] = a + decay * num[j]
            sum_abs[j] += abs(e)
            sum_sq[j] += e * e
        self.den = den = 1.0 + decay * den
        self.count += 1
        self.anomalies += flagged
        mae = (num[0] if len(num) == 1 else sum(num) / len(num)) / den
        return mae, flagged

    @property
    def mae(self) -> float:
        """The running MAE, averaged over target columns (NaN before the first error)."""
        if self.den == 0.0:
            return math.nan
        return sum(self.num) / len(self.num) / self.den

    def summary(self) -> dict[str, Any]:
        """Totals since the start: points, MAE, RMSE, anomalies, running MAE."""
        n = max(self.count, 1)
        k = len(self.num)
        return {
            "errors": self.count,
            "mae": sum(self.sum_abs) / k / n if self.count else None,
            "rmse": math.sqrt(sum(self.sum_sq) / k / n) if self.count else None,
            "running_mae": self.mae if self.count else None,
            "anomalies": self.anomalies,
        }

    def to_dict(self) -> dict[str, Any]:
        """State for a checkpoint (floats round-trip exactly through JSON)."""
        keys = ("num", "den", "count", "anomalies", "sum_abs", "sum_sq")
        return {k: getattr(self, k) for k in keys}

    def load(self, d: dict[str, Any]) -> None:
        """Restore :meth:`to_dict`."""
        for key, value in d.items():
            setattr(self, key, list(value) if isinstance(value, list) else value)


class Step(NamedTuple):
    """What the learner reports for one point, in real units."""

    prediction: tuple[float, ...] | None  # per target, made before the point; None at first
    error: tuple[float, ...] | None  # value - prediction, per target
    running_mae: float | None  # after this point
    anomaly: bool  # |error| > threshold x running MAE (before this point)


@dataclass
class StepLog:
    """Results of :meth:`OnlineLearner.observe` over ``T`` points."""

    prediction: np.ndarray  # [T, n_targets], NaN where no prediction existed yet
    error: np.ndarray  # [T, n_targets]
    running_mae: np.ndarray  # [T]
    anomaly: np.ndarray  # [T] bool
