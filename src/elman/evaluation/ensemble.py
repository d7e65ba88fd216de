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

import dataclasses
import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from elman.config import ENSEMBLE_MEMBERS, ensemble_members
from elman.data.series import Series
from elman.errors import CheckpointError, ConfigError, DataError
from elman.evaluation import statistical
from elman.evaluation.baselines import BASELINES, STATISTICAL
from elman.evaluation.folds import MAX_FOLDS
from elman.evaluation.metrics import MetricWarning, mase_scale
from elman.forecasting.predictor import Predictor, targets_at

log = logging.getLogger(__name__)

__all__ = [
    "NETWORK",
    "ROUNDS",
    "Chosen",
    "EnsemblePredictor",
    "Selection",
    "choose_ensemble",
    "combine",
    "member_forecast",
    "scaled_loss",
    "select",
]

NETWORK = "network"  # the member that is the trained network
SELECTION_PAIRS = 60  # (series, window) pairs the weights should rest on, when there is room
# (series, window) pairs behind the ensemble's conformal intervals, when the validation part
# holds them: 99 % needs 99 windows (the selection's 60 would stop at 95 %)
CALIBRATION_PAIRS = 100
# --ensemble auto leaves out a statistical member whose fits (validation and calibration
# windows, and the forecast) would take longer than this, estimated from the points each fit
# sees and the method's cost per point, shared over the fitting processes
AUTO_BUDGET_S = 600.0

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
        windows: validation windows per series the losses come from (0: not recorded).
    """

    weights: dict[str, float]
    member_loss: dict[str, float]
    loss: float
    best_member: str
    trace: list[float] = field(default_factory=list)
    windows: int = 0

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
            "windows": self.windows,
        }

    @classmethod
    def from_dict(cls, doc: Any, where: str) -> Selection:
        """Rebuild :meth:`to_dict`'s form, refusing one that is not (``where`` names the file).

        Raises:
            CheckpointError: a missing entry, an unknown member or weights that are not
                non-negative numbers summing to 1.
        """
        try:
            weights = {str(k): float(v) for k, v in doc["weights"].items()}
            losses = {str(k): float(v) for k, v in doc["member_loss"].items()}
            trace = [float(v) for v in doc.get("trace", [])]
            sel = cls(weights, losses, float(doc["loss"]), str(doc["best_member"]), trace,
                      int(doc.get("windows", 0)))  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{where}: ensemble entry is incomplete ({exc})") from exc
        unknown = sorted(set(weights) - set(ENSEMBLE_MEMBERS))
        if unknown:
            raise CheckpointError(f"{where}: ensemble member '{unknown[0]}' is unknown to elman")
        values = list(weights.values())
        if not values or min(values) < 0 or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
            raise CheckpointError(f"{where}: ensemble weights {weights} do not sum to 1")
        return sel


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
        if losses[pick] < best_loss * (1 - 1e-9):  # not by rounding: the simpler mix stays
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


# ------------------------------------------------------------------ a network with members
def member_forecast(
    name: str, history: np.ndarray, horizon: int, season: int,
    forms: list[str | None] | None = None,
) -> np.ndarray:  # fmt: skip
    """Forecast ``[H, n_t]`` of statistical member ``name`` from target history ``[T, n_t]``.

    ETS and Theta fall back to the naive forecast on histories they cannot fit (see
    :mod:`elman.evaluation.statistical`, which also keeps their forecasts by the history's
    digest, so the hold-out baselines, the ensemble and the pictures of one run fit each
    series once); ``forms`` (one per column) fixes their forms. Seasonal naive needs a full
    season and drift two points, and otherwise fall back the same way.
    """
    y = np.asarray(history, np.float64)
    if name in STATISTICAL and forms is not None:
        return np.stack([
            statistical.forecast_column(name, y[:, c], horizon, season, form)
            for c, form in enumerate(forms)
        ], axis=1)  # fmt: skip
    if name in STATISTICAL:
        return BASELINES[name].forecast(y, horizon, season)
    if name == "seasonal_naive" and len(y) >= season:
        return BASELINES[name].forecast(y, horizon, season)
    if name == "drift" and len(y) >= 2:
        return BASELINES[name].forecast(y, horizon, season)
    return BASELINES["naive"].forecast(y, horizon, season)


def prefit(
    name: str, histories: list[np.ndarray], horizon: int, season: int,
    forms: list[list[str | None]] | None = None,
) -> None:  # fmt: skip
    """Fit a statistical member to many target histories ``[T, n_t]`` at once (on several
    processes for a large panel, see :func:`elman.evaluation.statistical.prefit`), of the
    ``forms`` (one list per history, one form per column) where given."""
    if name in STATISTICAL:
        columns = [h[:, c] for h in histories for c in range(h.shape[1])]
        flat = None if forms is None else [f for per in forms for f in per]
        statistical.prefit(name, columns, horizon, season, flat)


def affordable_members(
    members: tuple[str, ...], series: list[Series], ends: list[int], sizes: Any,
    budget_s: float | None = None,
) -> tuple[tuple[str, ...], str | None]:  # fmt: skip
    """``members`` without the statistical ones whose fits would take over ``budget_s``,
    and the line that says which were left out (``None`` when none was).

    The estimate counts the points every fit sees (each series' calibration windows and
    its forecast, at most :func:`~elman.evaluation.statistical.fit_window` each) times the
    method's measured cost per point (less for the windows that reuse the first window's
    form, see :func:`member_at_cutoffs`), shared over
    :func:`~elman.evaluation.statistical.fit_workers` processes. It bounds ``auto`` on long
    or many series (minute data with a daily season sees 14,400 points per AutoETS fit);
    a member named in a list is always fitted. ``budget_s`` defaults to
    :data:`AUTO_BUDGET_S`.
    """
    budget_s = AUTO_BUDGET_S if budget_s is None else budget_s
    cut = calibration_windows(series, ends, sizes.horizon, sizes.first_cutoff)
    window = statistical.fit_window(sizes.season)
    seen = np.minimum(cut, window)  # [S, K]: the first window's fit chooses the form
    auto = float(seen[:, :1].sum() + sum(min(len(s), window) for s in series))
    fixed = float(seen[:, 1:].sum())
    workers = max(1, statistical.fit_workers())
    keep: list[tuple[str, float]] = []
    left: list[tuple[str, float]] = []
    for name in members:
        per_point = statistical.cost_per_point(name)
        cost = (auto * per_point + fixed * statistical.cost_per_point(name, True)) / workers
        (left if cost > budget_s else keep).append((name, cost))
    if not left:
        return members, None
    said = ", ".join(f"{n} (about {c / 60:.0f} min)" for n, c in left)
    note = (
        f"--ensemble auto: left out {said}, over the {budget_s / 60:.0f}-minute budget for "
        f"the statistical members' fits; name them to fit them anyway, e.g. --ensemble "
        f"{','.join(members)}"
    )
    return tuple(n for n, _ in keep), note


def history_kept(sizes_lookback: int, season: int) -> int:
    """Points of each series a saved ensemble keeps: what the network reads and what a
    statistical fit sees (:func:`elman.evaluation.statistical.fit_window`)."""
    return max(sizes_lookback, statistical.fit_window(season))


@dataclass
class EnsemblePredictor(Predictor):
    """A network's predictor whose forecasts are mixed with statistical members.

    Every forecast is ``sum_m weight_m * forecast_m``: the network's from ``net`` (a window
    network or an ES-RNN), each statistical member's fitted on the series' own target
    history up to that point (at every cutoff, in a backtest). Members with weight 0 are not
    computed. Online learning updates the network (where it can learn online: not an
    ES-RNN) and lengthens the history the statistical members are refitted on, so they
    follow the new points at the next forecast. ONNX export is refused in one line (a
    statistical member has no graph), naming ``--ensemble none``.
    """

    net: Predictor | None = None
    weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def around(cls, net: Predictor, weights: Mapping[str, float]) -> EnsemblePredictor:
        """``net`` with members weighted by ``weights`` (which name ``network`` for it)."""
        return cls(net.model, net.sizes, net.layout, net.scalers, net.config, net=net,
                   weights=dict(weights))  # fmt: skip

    @property
    def network(self) -> Predictor:
        assert self.net is not None
        return self.net

    def check_supports(self, what: str, online: bool = False) -> None:
        self.network.check_supports(what, online)  # an ES-RNN says what it supports
        if online:  # the network learns; the statistical members refit on the longer history
            return
        members = ", ".join(n for n in self.weights if n != NETWORK)
        raise ConfigError(
            f"{what} is not available for an ensemble: its statistical members ({members}) "
            "are fitted to each history, not networks; export its network alone with "
            "--network-only, or retrain with --ensemble none"
        )

    def context(self, series: Series) -> Series:
        keep = history_kept(len(self.network.context(series)), self.sizes.season)
        return series.tail(keep)

    def components(self, series: Series) -> tuple[np.ndarray, np.ndarray, int] | None:
        return self.network.components(series)

    def forecast_arrays(
        self, series: list[Series], horizon: int, future: Any = None, network: Any = None
    ) -> np.ndarray:
        """The weighted forecast ``[S, H, n_t]``; ``network`` gives the network's own part
        where the caller already has it (an online learner's forecast from its state)."""
        parts: dict[str, np.ndarray] = {}
        if network is not None:
            parts[NETWORK] = np.asarray(network, np.float64)
        else:  # even at weight 0: it checks the history and the future covariates alike
            parts[NETWORK] = self.network.forecast_arrays(series, horizon, future)
        for name in self._statistical():
            prefit(name, [s.target_values for s in series], horizon, self.sizes.season)
            parts[name] = np.stack([
                member_forecast(name, s.target_values, horizon, self.sizes.season)
                for s in series
            ])  # fmt: skip
        return self.floor(series, combine(self.weights, parts))

    def forecast_at_cutoffs(
        self, series: list[Series], cutoffs: Any, horizon: int | None = None,
        form_at: np.ndarray | None = None,
    ) -> np.ndarray:  # fmt: skip
        """The weighted forecasts ``[S, K, H, n_t]`` at ``cutoffs [S, K]``, each statistical
        member refitted at every cutoff (choosing its form once per series, before
        ``form_at [S]``, where given: see :func:`member_at_cutoffs`)."""
        h = horizon or self.sizes.horizon
        cut = np.asarray(cutoffs, np.int64)
        parts = {NETWORK: self.network.forecast_at_cutoffs(series, cut, h)}  # checks cutoffs
        for name in self._statistical():
            parts[name] = member_at_cutoffs(name, series, cut, h, self.sizes.season, form_at)
        return self.floor(series, combine(self.weights, parts), cut)

    def _statistical(self) -> list[str]:
        return [n for n, w in self.weights.items() if n != NETWORK and w]


def member_at_cutoffs(
    name: str, series: list[Series], cutoffs: np.ndarray, horizon: int, season: int,
    form_at: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """Forecasts ``[S, K, H, n_t]`` of statistical member ``name``, refitted at each cutoff.

    By default every fit chooses its own form (as a forecast does). With ``form_at [S]``,
    ETS and Theta choose each series' form once, from its history before ``form_at``, and
    the fits at later cutoffs only estimate that form's parameters (validation windows:
    about ten times faster for ETS, and nothing after ``form_at`` is seen).
    """
    forms: list[list[str | None]] | None = None
    if form_at is not None and name in STATISTICAL:
        anchors = [s.target_values[:k] for s, k in zip(series, form_at, strict=True)]
        prefit(name, anchors, horizon, season)
        forms = [
            [statistical.chosen_form(name, a[:, c], horizon, season) for c in range(a.shape[1])]
            for a in anchors
        ]

    def form(i: int, k: int) -> list[str | None] | None:  # the anchor's own fit chooses
        if forms is None or form_at is None:
            return None
        return forms[i] if k > form_at[i] else [None] * len(forms[i])

    heads = [(s.target_values[:k], form(i, k)) for i, (s, row) in enumerate(
        zip(series, cutoffs, strict=True)) for k in row]  # fmt: skip
    given = None if forms is None else [f for _, f in heads if f is not None]  # all, here
    prefit(name, [h for h, _ in heads], horizon, season, given)
    return np.stack([
        np.stack([member_forecast(name, s.target_values[:k], horizon, season, form(i, k))
                  for k in row])
        for i, (s, row) in enumerate(zip(series, cutoffs, strict=True))
    ])  # fmt: skip


def selection_windows(
    series: list[Series], ends: list[int], horizon: int, lookback: int = 1
) -> np.ndarray:
    """Cutoffs ``[S, K]`` of the validation windows an ensemble is chosen on.

    Windows whose ``horizon`` targets all lie in each series' validation part (after
    ``ends``), the network did not train on. ``K`` is about :data:`SELECTION_PAIRS` divided
    by the number of series, at least 1 and at most :data:`~elman.evaluation.folds.MAX_FOLDS`
    and what the shortest validation part holds; the windows are evenly spaced over that
    part and always include the last (they overlap when there are more than ``val / H``).
    ``K`` is 0 when a validation part is shorter than the horizon.
    """
    room = _room(series, ends, horizon, lookback)
    return _cutoffs(series, horizon, _spaced(room, SELECTION_PAIRS, len(series), MAX_FOLDS))


def calibration_windows(
    series: list[Series], ends: list[int], horizon: int, lookback: int = 1
) -> np.ndarray:
    """Cutoffs ``[S, K]`` of the windows an ensemble's intervals are calibrated on.

    The windows of :func:`selection_windows` (whose members' fits are reused) and more,
    evenly spaced the same way: about :data:`CALIBRATION_PAIRS` (series, window) pairs in
    all, up to every window the shortest validation part holds.
    """
    room = _room(series, ends, horizon, lookback)
    chosen = _spaced(room, SELECTION_PAIRS, len(series), MAX_FOLDS)
    more = _spaced(room, CALIBRATION_PAIRS, len(series), None)
    return _cutoffs(series, horizon, np.union1d(chosen, more)[::-1])


def _room(series: list[Series], ends: list[int], horizon: int, lookback: int) -> int:
    """Windows the shortest validation part holds (targets after ``ends``, inputs after
    ``lookback``)."""
    return min(len(s) - max(e, lookback) - horizon + 1 for s, e in zip(series, ends, strict=True))


def _spaced(room: int, pairs: int, n_series: int, most: int | None) -> np.ndarray:
    """About ``pairs / n_series`` (at most ``most``) offsets from the end, evenly spaced over
    ``room`` windows and always holding 0 (the last window); none when ``room < 1``."""
    k = min(room, math.ceil(pairs / n_series), most or room)
    if k < 1:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(0, room - 1, k).round().astype(np.int64))[::-1]


def _cutoffs(series: list[Series], horizon: int, back: np.ndarray) -> np.ndarray:
    """Cutoffs ``[S, K]``: each series' end less ``horizon`` less each offset of ``back``."""
    if not len(back):
        return np.zeros((len(series), 0), np.int64)
    return np.stack([len(s) - horizon - back for s in series]).astype(np.int64)


@dataclass(frozen=True)
class Chosen:
    """What :func:`choose_ensemble` found: the selection, the ensemble's own forecasts
    ``[S, K, H, n_t]`` at the validation ``cutoffs [S, K]``, and the windows its intervals
    are calibrated on (:func:`calibration_windows`, ``[S, K']``)."""

    selection: Selection
    cutoffs: np.ndarray
    forecasts: np.ndarray
    calibration: np.ndarray

    @property
    def form_at(self) -> np.ndarray:
        """``[S]``: the cutoff before which each statistical member chose its form for every
        validation and calibration window (the first calibration window)."""
        return self.calibration.min(axis=1)


def choose_ensemble(
    net: Predictor, series: list[Series], ends: list[int], members: tuple[str, ...]
) -> Chosen | None:
    """Weights for ``members`` (``network`` and statistical ones) on the validation windows.

    The network forecasts every window from its actual history, as trained (it is not
    refitted per window); each statistical member is fitted on the history before each
    window, of the form it chose before the first calibration window (see
    :func:`member_at_cutoffs`). Returns ``None`` when no validation window fits (a
    validation part shorter than the horizon).
    """
    h, season = net.sizes.horizon, net.sizes.season
    cut = selection_windows(series, ends, h, net.sizes.first_cutoff)
    if cut.shape[1] == 0:
        return None
    calibration = calibration_windows(series, ends, h, net.sizes.first_cutoff)
    form_at = calibration.min(axis=1)
    forecasts = {NETWORK: net.forecast_at_cutoffs(series, cut)}  # [S, K, H, n_t]
    for name in members:
        if name != NETWORK:
            forecasts[name] = member_at_cutoffs(name, series, cut, h, season, form_at)
    actual = targets_at(series, cut, h)
    n_t = actual.shape[-1]
    scale = np.empty(cut.shape + (n_t,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        for i, s in enumerate(series):
            for j, k in enumerate(cut[i]):
                scale[i, j] = mase_scale(s.target_values[:k], season)
    fallback = np.nanmean(np.abs(actual), axis=2)  # a flat history: the level as the scale
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, fallback)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)

    def rows(a: np.ndarray) -> np.ndarray:  # [S, K, H, n_t] -> [S * K * n_t, H]
        return np.moveaxis(a, 3, 2).reshape(-1, h)

    sel = select({n: rows(f) for n, f in forecasts.items()}, rows(actual), scale.reshape(-1))
    sel = dataclasses.replace(sel, windows=int(cut.shape[1]))
    return Chosen(sel, cut, combine(sel.weights, forecasts), calibration)


def ensemble_for(
    net: Predictor, series: list[Series], ends: list[int], spec: str, warn: bool = True
) -> Chosen | None:
    """The ensemble that ``--ensemble spec`` gives a trained network: ``auto`` without the
    statistical members over the time budget (:func:`affordable_members`), a list as named,
    weighed on the validation windows after ``ends`` (:func:`choose_ensemble`). ``None`` for
    ``none``, or when no validation window fits; ``warn`` logs why members were left out or
    no window fits."""
    members = ensemble_members(spec)
    if not members:
        return None
    if spec.strip().lower() == "auto":  # bounded; a list is fitted as named
        members, note = affordable_members(members, series, ends, net.sizes)
        if note and warn:
            log.warning(note)
    chosen = choose_ensemble(net, series, ends, members)
    if chosen is None and warn:
        log.warning(
            "--ensemble: the validation part is shorter than the horizon, so no window can "
            "weigh the members; the network forecasts alone"
        )
    return chosen
