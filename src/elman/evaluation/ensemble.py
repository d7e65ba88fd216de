"""Ensemble selection: weights for member forecasts, chosen on validation windows.

Greedy forward selection with replacement (Caruana, Niculescu-Mizil, Crew and Ksikes,
"Ensemble selection from libraries of models", ICML 2004): start from nothing; in each
round add the one member (again, if it is the best choice again) whose addition gives the
equal-weight mean of the members picked so far the lowest validation loss. A member picked
``c`` times out of ``n`` rounds gets weight ``c / n``. The first round picks the best single
member, and the weights returned are those of the round with the lowest loss, so the
ensemble can only match or beat the best single member on the validation windows; when no
mixture beats it, the result *is* that member alone (weight 1).

The loss is scale-free, so that series of different sizes count alike: the mean absolute
error of each (series, window) row divided by that row's scale, averaged over the rows
(with the in-sample MAE of the seasonal-naive forecast as the scale it is MASE). Rows with
a missing actual value ignore that value; a member with a non-finite forecast in a row
cannot be picked.

Ties go to the member listed first, so the weights are deterministic for given forecasts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from elman.errors import DataError

__all__ = ["ROUNDS", "Selection", "combine", "scaled_loss", "select"]

ROUNDS = 20  # rounds of greedy selection: weights in steps of 1/20 at the finest


@dataclass(frozen=True)
class Selection:
    """What :func:`select` chose and why.

    Attributes:
        weights: member name -> weight (summing to 1), members with weight 0 left out, in
            the order the members were given.
        member_loss: each member's own validation loss.
        loss: the loss of the weighted ensemble (at most the best member's).
        best_member: the member with the lowest loss of its own.
        trace: the ensemble's loss after each round.
    """

    weights: dict[str, float]
    member_loss: dict[str, float]
    loss: float
    best_member: str
    trace: list[float] = field(default_factory=list)

    @property
    def single(self) -> bool:
        """Whether combining did not help: one member carries all the weight."""
        return len(self.weights) == 1

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form, for ``model.json`` and reports."""
        return {
            "weights": dict(self.weights),
            "member_loss": dict(self.member_loss),
            "loss": self.loss,
            "best_member": self.best_member,
            "trace": list(self.trace),
        }


def scaled_loss(forecast: ArrayLike, actual: ArrayLike, scale: ArrayLike) -> np.ndarray:
    """Loss of each row: mean absolute error over the valid points, divided by the row's scale.

    Args:
        forecast, actual: ``[N, H]`` (``N`` rows: one per series and window).
        scale: ``[N]`` positive scales.

    Returns:
        ``[N]`` losses; ``inf`` where a forecast is not finite at a valid point.
    """
    f, y = np.asarray(forecast, np.float64), np.asarray(actual, np.float64)
    valid = np.isfinite(y)
    err = np.where(valid, np.abs(f - np.where(valid, y, 0.0)), 0.0)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = err.sum(axis=1) / count
        return np.where(np.isfinite(mae), mae, np.inf) / np.asarray(scale, np.float64)


def select(
    forecasts: Mapping[str, ArrayLike], actual: ArrayLike, scale: ArrayLike, rounds: int = ROUNDS
) -> Selection:
    """Weights for ``forecasts`` by greedy selection with replacement (see the module notes).

    Args:
        forecasts: member name -> ``[N, H]`` forecasts of the validation rows.
        actual: ``[N, H]`` actual values (NaN where missing).
        scale: ``[N]`` positive scale of each row (e.g. the series' MASE scale).
        rounds: rounds of selection (the finest weight step is ``1 / rounds``).

    Raises:
        DataError: no member, shapes that differ, no valid row, a scale that is not
            positive, or no member with finite forecasts.
    """
    names = list(forecasts)
    if not names:
        raise DataError("an ensemble needs at least one member")
    if rounds < 1:
        raise DataError(f"rounds ({rounds}) must be >= 1")
    y = np.asarray(actual, np.float64)
    stack = np.stack([np.asarray(forecasts[n], np.float64) for n in names])  # [M, N, H]
    if y.ndim != 2 or stack.shape[1:] != y.shape:
        raise DataError(
            f"member forecasts {stack.shape[1:]} and actual values {y.shape} must both be [N, H]"
        )
    s = np.asarray(scale, np.float64).reshape(-1)
    if s.shape != (y.shape[0],) or not (np.all(np.isfinite(s)) and np.all(s > 0)):
        raise DataError(f"scale must be {y.shape[0]} positive finite values, one per row")
    rows = np.isfinite(y).any(axis=1)
    if not rows.any():
        raise DataError("no validation row has an actual value")
    y, stack, s = y[rows], stack[:, rows], s[rows]
    valid = np.isfinite(y)
    usable = np.array([np.isfinite(m[valid]).all() for m in stack])
    if not usable.any():
        raise DataError("every member has non-finite forecasts on the validation windows")
    own = np.array([scaled_loss(m, y, s).mean() if ok else np.inf for m, ok in zip(
        stack, usable, strict=True)])  # fmt: skip
    counts = np.zeros(len(names), np.int64)
    total = np.zeros_like(y)
    best_loss, best_counts, trace = np.inf, counts.copy(), []
    for r in range(1, rounds + 1):
        losses = np.array([
            scaled_loss((total + m) / r, y, s).mean() if ok else np.inf
            for m, ok in zip(stack, usable, strict=True)
        ])  # fmt: skip
        pick = int(np.argmin(losses))  # the first of equal losses
        counts[pick] += 1
        total += stack[pick]
        trace.append(float(losses[pick]))
        if losses[pick] < best_loss:
            best_loss, best_counts = float(losses[pick]), counts.copy()
    weights = {n: float(c / best_counts.sum()) for n, c in zip(names, best_counts, strict=True)
               if c}  # fmt: skip
    best = names[int(np.argmin(own))]
    return Selection(weights, {n: float(v) for n, v in zip(names, own, strict=True)},
                     best_loss, best, trace)  # fmt: skip


def combine(weights: Mapping[str, float], forecasts: Mapping[str, ArrayLike]) -> np.ndarray:
    """The weighted sum of the members' forecasts (any shape, the same for every member).

    Raises:
        DataError: a weighted member has no forecast.
    """
    missing = [n for n in weights if n not in forecasts]
    if missing:
        raise DataError(f"no forecast of ensemble member(s) {', '.join(missing)}")
    out: np.ndarray | None = None
    for name, w in weights.items():
        part = w * np.asarray(forecasts[name], np.float64)
        out = part if out is None else out + part
    if out is None:
        raise DataError("an ensemble needs at least one weighted member")
    return out
