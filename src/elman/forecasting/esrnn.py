"""Forecasting with an ES-RNN: series in, per-series smoothing state, the shared network out.

:class:`EsrnnPredictor` is a :class:`~elman.forecasting.predictor.Predictor` whose model
reads each series' history (its last ``history`` steps, see
:func:`~elman.models.esrnn.aligned_start`) instead of one window, and owns one set of
smoothing parameters per training series. :func:`make_predictor` picks the class from the
model, so the facade, saving and loading never ask which model they hold.

A series that was not in training gets its own smoothing parameters fitted with the network
frozen (:func:`fit_new_series`, :data:`NEW_SERIES_STEPS` Adam steps).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from elman.config import Config
from elman.data.prepare import Sizes
from elman.data.scaling import Scaler
from elman.data.series import Series, row_label
from elman.data.windows import Layout
from elman.errors import ConfigError, DataError
from elman.forecasting.predictor import Predictor, _checked_cutoffs, series_key
from elman.models.base import SequenceModel
from elman.models.esrnn import (
    ESRNN,
    aligned_start,
    level_wiggliness,
    pad_rows,
    pinball,
    target_mask,
)
from elman.runtime import configure_threads

log = logging.getLogger(__name__)

NEW_SERIES_STEPS = 40  # Adam steps fitting an unseen series' smoothing parameters
NEW_SERIES_LR = 0.1
ROWS_PER_PASS = 256  # (series, cutoff) rows run through the model at once


def positive_values(series: Series) -> np.ndarray:
    """The target column as float64 ``[T]``; refuses what multiplicative smoothing cannot use.

    Raises:
        ConfigError: covariates or several targets (ES-RNN forecasts one target alone).
        DataError: a value at or below zero, naming the series, column and row.
    """
    if len(series.columns) != 1:
        raise ConfigError(
            f"--model esrnn forecasts one target without covariates, but {series.name} has "
            f"columns {series.columns}; give one --target and no covariates"
        )
    values = series.values[:, 0].astype(np.float64)
    bad = np.flatnonzero(~(values > 0))
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"{series.name}, column '{series.columns[0]}': value {values[row]:g} at "
            f"{row_label(series, row)} is not positive; --model esrnn smooths multiplicatively "
            "and needs values > 0: add a constant to the column, or use another --model"
        )
    return values


def history_rows(model: ESRNN, values: list[np.ndarray], history: int | None) -> list[Tensor]:
    """The part of each series the smoothing reads (see :func:`aligned_start`)."""
    return [
        torch.from_numpy(v[aligned_start(len(v), history, model.cycle) :]).float() for v in values
    ]


def esrnn_loss(
    model: ESRNN,
    rows: list[Tensor],
    ids: Tensor,
    lo: Tensor,
    quantile: float,
    level_penalty: float,
) -> Tensor:
    """Pinball loss of every forecast whose target step ``>= lo[b]`` lies in the data, plus
    ``level_penalty`` times the mean wiggliness of the log level."""
    pinball_sum, count, wiggle_sum = esrnn_loss_sums(model, rows, ids, lo, quantile, model)
    loss = pinball_sum / count.clamp(min=1)
    if level_penalty:
        loss = loss + level_penalty * wiggle_sum / len(rows)
    return loss


def esrnn_loss_sums(
    model: ESRNN,
    rows: list[Tensor],
    ids: Tensor,
    lo: Tensor,
    quantile: float,
    forward: Callable[..., tuple[Tensor, Tensor, Tensor]],
) -> tuple[Tensor, Tensor, Tensor]:
    """The parts of :func:`esrnn_loss` as sums, so that ranks holding different series can
    add them up: the pinball loss summed over the scored forecasts, their count, and the log
    level's wiggliness summed over the rows. ``forward`` runs the model (``model`` itself,
    or a data-parallel wrapper of it)."""
    y, lengths = pad_rows(rows)
    pred, log_level, log_season = forward(y, ids, lengths)
    target = model.targets(y, log_level, log_season)
    mask = target_mask(lengths, pred.shape[1], model.window, model.output_size, lo, lengths)
    pinball_sum = (pinball(pred, target, quantile) * mask).sum()
    return pinball_sum, mask.sum(), level_wiggliness(log_level, lengths).sum()


class EsrnnPredictor(Predictor):
    """A fitted ES-RNN with the series keys of its per-series parameters (the scalers' keys)."""

    @property
    def esrnn(self) -> ESRNN:
        """The model, typed."""
        assert isinstance(self.model, ESRNN)
        return self.model

    def check_supports(self, what: str, online: bool = False) -> None:
        """ONNX export and online learning need a window network with a carried state."""
        raise ConfigError(
            f"{what} is not available for --model esrnn (its smoothing reads whole series); "
            "it supports train, forecast, backtest, intervals, info, plot, save/load, --resume "
            "and --nproc, and fits new series' smoothing instead of online updates"
        )

    def context(self, series: Series) -> Series:
        """The part of a series a saved model keeps to forecast from: what the smoothing reads."""
        start = aligned_start(len(series), self.config.model.history, self.esrnn.cycle)
        return series.slice(start, None)

    @torch.no_grad()
    def components(self, series: Series) -> tuple[np.ndarray, np.ndarray, int]:
        """The learned level and combined seasonal factor over the history the smoothing reads.

        Returns:
            ``(level [n], season [n], start)``: the steps ``start .. start + n - 1`` of the
            series.
        """
        model, ids = self._model_and_ids([series])
        values = positive_values(series)
        start = aligned_start(len(values), self.config.model.history, model.cycle)
        y, lengths = pad_rows(history_rows(model, [values], self.config.model.history))
        levels, seasons = model.smooth(y, ids, lengths)
        n = int(lengths[0])
        season = torch.ones(n, dtype=torch.float64)
        for s in seasons:
            season = season * s[0, :n].double()
        return levels[0].double().numpy(), season.numpy(), start

    def _model_and_ids(self, series: list[Series]) -> tuple[ESRNN, Tensor]:
        """The model to run and each series' parameter row; unseen series get theirs fitted."""
        keys = list(self.scalers)
        known = [series_key(s) in self.scalers for s in series]
        if len(keys) == 1 and all(s.series_id is None for s in series):
            return self.esrnn, torch.zeros(len(series), dtype=torch.long)
        if all(known):
            return self.esrnn, torch.tensor([keys.index(series_key(s)) for s in series])
        new = [s for s, k in zip(series, known, strict=True) if not k]
        log.info("%d series were not in training; fitting their smoothing parameters", len(new))
        configure_threads(self.config.train.threads or 1)  # tiny steps: threads only wait
        cats = category_index(self.esrnn, new) if self.esrnn.n_categories else None
        extended = fit_new_series(
            self.esrnn, [positive_values(s) for s in new], self.config, cats
        )
        ids, n_new = [], 0
        for s, k in zip(series, known, strict=True):
            if k:
                ids.append(keys.index(series_key(s)))
            else:
                ids.append(len(keys) + n_new)
                n_new += 1
        return extended, torch.tensor(ids)

    @torch.no_grad()
    def _forecast_rows(self, model: ESRNN, values: list[np.ndarray], ids: Tensor) -> np.ndarray:
        """Forecasts ``[B, H_trained]`` after the end of each 1-D history."""
        w = model.window
        for v in values:
            if len(v) < w:
                raise DataError(
                    f"a history of {len(v)} points is shorter than the ES-RNN's window ({w}); "
                    f"give at least {w} points"
                )
        out = []
        for lo in range(0, len(values), ROWS_PER_PASS):
            rows = history_rows(model, values[lo : lo + ROWS_PER_PASS], self.config.model.history)
            y, lengths = pad_rows(rows)
            pred, log_level, log_season = model(y, ids[lo : lo + ROWS_PER_PASS], lengths)
            out.append(model.decode(pred, log_level, log_season, lengths - 1).double())
        return torch.cat(out).numpy()

    def forecast_arrays(self, series: list[Series], horizon: int, future: Any = None) -> np.ndarray:
        """Point forecasts in real units ``[S, H, 1]`` after the end of each series."""
        values = [positive_values(s) for s in series]
        model, ids = self._model_and_ids(series)
        model.eval()
        return self._forecast_rows(model, values, ids)[:, :horizon, None]

    def forecast_at_cutoffs(
        self, series: list[Series], cutoffs: Any, horizon: int | None = None
    ) -> np.ndarray:
        """Forecasts ``[S, K, H, 1]`` from every cutoff: each one reads the history before it
        exactly as :meth:`forecast_arrays` would (rows are batched, not looped one by one)."""
        h = horizon or self.sizes.horizon
        if h > self.sizes.horizon:
            raise ConfigError(
                f"a direct model forecasts at most {self.sizes.horizon} steps, asked {h}"
            )
        cut = _checked_cutoffs(series, cutoffs, self.esrnn.window, self.esrnn.window, 0)
        values = [positive_values(s) for s in series]
        model, ids = self._model_and_ids(series)
        model.eval()
        rows = [v[: int(k)] for v, ks in zip(values, cut, strict=True) for k in ks]
        row_ids = ids.repeat_interleave(cut.shape[1])
        pred = self._forecast_rows(model, rows, row_ids)[:, :h]  # [S*K, H]
        return pred.reshape(*cut.shape, h, 1)


def category_index(model: ESRNN, series: list[Series]) -> Tensor:
    """Each series' row in ``model.categories``; a series without a category the model knows
    is refused in one line naming it and the known ones."""
    out = []
    for s in series:
        if s.category not in model.categories:
            known = ", ".join(repr(c) for c in model.categories)
            what = "has no category" if s.category is None else f"has category {s.category!r}"
            raise DataError(
                f"{s.name} {what}, but this ES-RNN was trained with the categories {known}; "
                "give the data its category column with one of them for every series"
            )
        out.append(model.categories.index(s.category))
    return torch.tensor(out, dtype=torch.long)


def fit_new_series(
    model: ESRNN, values: list[np.ndarray], config: Config, categories: Tensor | None = None
) -> ESRNN:
    """A copy of ``model`` with smoothing parameters for ``values`` appended, fitted with the
    network frozen (its weights are shared with ``model`` and never change). A model with
    categories needs ``categories``, each new series' row in ``model.categories``.

    The new parameters start where training started them and take :data:`NEW_SERIES_STEPS`
    Adam steps on the training loss over each new series' whole history.
    """
    n_old, n_new = model.n_series, len(values)
    child = copy.copy(model)  # shares the network modules
    child._parameters = dict(model._parameters)  # noqa: SLF001  # own per-series slots only
    child._buffers = dict(model._buffers)  # noqa: SLF001
    if model.n_categories:
        assert categories is not None and len(categories) == n_new
        # the new series' categories, for the fit below and (with the old ones) after it
        child._buffers["series_category"] = categories  # noqa: SLF001
    fresh = ESRNN(
        model.input_size, model.output_size, 1, 1, window=model.window, season=model.season,
        season2=model.season2, n_series=n_new,
    )  # fmt: skip
    new = {
        name: torch.nn.Parameter(getattr(fresh, name).detach().clone())
        for name in ("level_logit", "season_logit", "init_season")
    }
    rows = history_rows(model, values, config.model.history)
    ids = torch.arange(n_new)
    lo = torch.zeros(n_new, dtype=torch.long)
    frozen = [p.requires_grad for p in model.network_parameters()]
    for p in model.network_parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(list(new.values()), lr=NEW_SERIES_LR)
    try:
        for _ in range(NEW_SERIES_STEPS):
            for name, p in new.items():
                child._parameters[name] = p  # noqa: SLF001
            opt.zero_grad()
            loss = esrnn_loss(
                child, rows, ids, lo, config.train.quantile, config.train.level_penalty
            )
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    finally:
        for p, req in zip(model.network_parameters(), frozen, strict=True):
            p.requires_grad_(req)
    for name, p in new.items():
        old = getattr(model, name).detach()
        child._parameters[name] = torch.nn.Parameter(  # noqa: SLF001
            torch.cat([old, p.detach()]), requires_grad=False
        )
    if categories is not None:
        old = model.get_buffer("series_category")
        child._buffers["series_category"] = torch.cat([old, categories])  # noqa: SLF001
    child.n_series = n_old + n_new
    return child


def make_predictor(
    model: SequenceModel, sizes: Sizes, layout: Layout, scalers: dict[str, Scaler], config: Config
) -> Predictor:
    """The predictor class that fits ``model``: :class:`EsrnnPredictor` for an ES-RNN."""
    cls = EsrnnPredictor if isinstance(model, ESRNN) else Predictor
    return cls(model, sizes, layout, scalers, config)
