"""The fitted pieces that forecast: :class:`Predictor` (model, sizes, layout, scalers, config).

A :class:`~elman.forecaster.Forecaster` trains and stores; its :attr:`predictor
<elman.forecaster.Forecaster.predictor>` does every forecast, so evaluation, export and
online learning use this public object instead of the facade's internals:

* :meth:`Predictor.forecast_arrays`: one forecast after the end of each series, batched;
* :meth:`Predictor.forecast_at_cutoffs`: forecasts from many cutoffs of many series in one
  batched pass (backtests, interval calibration);
* :meth:`Predictor.table`: the forecast table, indexed by the continued time stamps;
* :meth:`Predictor.validation_calibration`: conformal residuals of the validation windows.

Cutoff ``k`` of a series means the history ``values[:k]`` and the targets
``values[k:k + H]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from elman.config import Config
from elman.data.calendar import CALENDAR_PREFIX
from elman.data.prepare import Sizes, build_panel, future_block, read_future, scaled_tensor
from elman.data.scaling import Scaler
from elman.data.series import Series
from elman.data.windows import Layout, Panel, features, pad_rows, windows_per_pass
from elman.errors import ConfigError, DataError
from elman.forecasting.calibration import Calibration
from elman.forecasting.strategies import forecast_windows
from elman.models.base import SequenceModel

log = logging.getLogger(__name__)

SINGLE = "__single__"  # scaler key of a series without an id


def series_key(series: Series) -> str:
    """The key of a series' scaler: its id, or :data:`SINGLE` for a series without one."""
    return SINGLE if series.series_id is None else str(series.series_id)


def targets_at(series: list[Series], cutoffs: np.ndarray, horizon: int) -> np.ndarray:
    """Actual target values after each cutoff ``[S, K, H, n_t]`` (one gather per series)."""
    steps = np.asarray(cutoffs)[..., None] + np.arange(horizon)  # [S, K, H]
    return np.stack([s.target_values[idx] for s, idx in zip(series, steps, strict=True)])


@dataclass
class Predictor:
    """A fitted network with everything needed to turn series into forecasts in real units.

    Args:
        model: the trained network (in eval mode).
        sizes: lookback, horizon, validation size and season of the fit.
        layout: the input column layout (targets, past and future covariates).
        scalers: one fitted scaler per series key (:func:`series_key`).
        config: the forecaster's configuration (strategy, normalisation, scaler kind).
    """

    model: SequenceModel
    sizes: Sizes
    layout: Layout
    scalers: dict[str, Scaler]
    config: Config

    @property
    def direct(self) -> bool:
        """Whether the model emits the whole horizon at once (``strategy="direct"``)."""
        return self.config.model.strategy == "direct"

    def context(self, series: Series) -> Series:
        """The part of a series a saved model keeps to forecast from: its last lookback."""
        return series.tail(self.sizes.lookback)

    def components(self, series: Series) -> tuple[np.ndarray, np.ndarray, int] | None:
        """A smoothing model's level and seasonal factor over a series, or ``None`` (a
        window network has neither); see :meth:`EsrnnPredictor.components
        <elman.forecasting.esrnn.EsrnnPredictor.components>`."""
        return None

    def check_supports(self, what: str, online: bool = False) -> None:
        """Refuse, in one line, a feature this kind of model lacks (a window network has all).

        ``online`` marks online learning (``Forecaster.update``, serve observations), which
        an ensemble allows where its network does; ``what`` names the feature.
        """

    def check_horizon(self, horizon: int | None) -> int:
        """The steps to forecast: ``horizon`` or the trained one; a direct model stops there."""
        h = self.sizes.horizon if horizon is None else int(horizon)
        if h < 1:
            raise ConfigError(f"--horizon ({h}) must be >= 1")
        if h > self.sizes.horizon and self.direct:
            raise ConfigError(
                f"a direct model forecasts at most its trained horizon ({self.sizes.horizon}), "
                f"asked for {h}; retrain with --horizon {h} or use --strategy recursive"
            )
        return h

    def scaler_for(self, series: Series) -> Scaler:
        """The stored scaler of a series; an unseen id gets one fitted on its own history."""
        key = series_key(series)
        if key in self.scalers:
            return self.scalers[key]
        if len(self.scalers) == 1 and series.series_id is None:
            return next(iter(self.scalers.values()))
        log.info("series %s was not in training; scaling it by its own history", key)
        return Scaler(self.config.data.scaler).fit(series.values)

    def target_scales(self, series: list[Series]) -> np.ndarray:
        """Each series' scaler scale of the target columns ``[S, n_t]``."""
        n_t = self.layout.n_targets
        return np.stack([np.asarray(self.scaler_for(s).scale)[:n_t] for s in series])

    # ------------------------------------------------------------ after the end of the data
    @torch.no_grad()
    def forecast_arrays(self, series: list[Series], horizon: int, future: Any = None) -> np.ndarray:
        """Point forecasts in real units ``[S, H, n_t]``, one batched pass over all series.

        ``future`` holds the values of non-calendar future covariates for the forecast
        steps: one table for every series, a long table with the series id column (one
        block of rows per series), a list of tables (one per series), or the path of a CSV
        or Parquet file holding such a table.
        """
        sizes, layout = self.sizes, self.layout
        xs, futs, scalers = [], [], []
        cal = [c for c in series[0].future_covariates if c.startswith(CALENDAR_PREFIX)]
        futures = self._futures(series, future)
        for s, future in zip(series, futures, strict=True):
            if len(s) < sizes.first_cutoff:
                raise DataError(
                    f"{s.name} has {len(s)} points; the model needs the last {sizes.lookback} "
                    "(its lookback) to forecast"
                )
            sc = self.scaler_for(s)
            fut = torch.from_numpy(
                np.asarray(
                    sc.transform(_pad_future(s, future_block(s, horizon, future, cal))),
                    dtype=np.float32,
                )[:, layout.n_observed :]
            )  # [H, n_f]
            x = features(
                pad_rows(scaled_tensor(s.tail(sizes.lookback), sc), sizes.pad_before(len(s))),
                layout,
                fut[0] if layout.n_future else None,
            )
            xs.append(x)
            futs.append(fut)
            scalers.append(sc)
        x = torch.stack(xs)  # [S, L, C_in]
        future_in = torch.stack(futs) if layout.n_future else None
        cfg = self.config
        pred = forecast_windows(
            self.model, x, future_in, cfg.model.strategy, cfg.data.norm, sizes.lookback,
            sizes.horizon, horizon, layout,
        )  # [S, H, n_t] float64  # fmt: skip
        n_t = layout.n_targets
        out = np.empty(tuple(pred.shape))
        for i, sc in enumerate(scalers):
            out[i] = sc.inverse_transform(pred[i].numpy(), columns=list(range(n_t)))
        _check_finite(out, series)
        return self.floor(series, out)

    def floor_mask(self, series: list[Series], cutoffs: Any = None) -> np.ndarray | None:
        """Where forecasts are floored at 0: ``[S, n_t]`` after the end of each series, or
        ``[S, K, n_t]`` from ``cutoffs [S, K]``; ``None`` where nothing is.

        A target is floored (``--nonnegative auto``, the default) where it never went below
        0 in the series' training part (its scaler's minimum; an unseen series' scaler is
        fitted on the history given) nor in the history the forecast starts from. A scaler
        saved before the minimum was kept floors nothing; ``--nonnegative off`` neither.
        """
        if self.config.data.nonnegative == "off":
            return None
        rows = []
        for i, s in enumerate(series):
            trained = self.trained_floor(self.scaler_for(s))
            y = s.target_values
            if cutoffs is None:
                rows.append(trained & ~(y < 0).any(axis=0))
            else:  # the history before each cutoff: a running "went negative" flag
                neg = np.logical_or.accumulate(y < 0, axis=0)  # [T, n_t]
                k = np.asarray(cutoffs, np.int64)[i]
                rows.append(trained[None] & ~neg[np.maximum(k - 1, 0)])
        mask = np.stack(rows)
        return mask if mask.any() else None

    def trained_floor(self, scaler: Scaler) -> np.ndarray:
        """``[n_t]``: the targets that ``scaler``'s training data never had below 0, which
        ``--nonnegative auto`` floors (none with ``off`` or a scaler without a minimum)."""
        n_t = self.layout.n_targets
        keep = scaler.never_negative()
        if keep is None or self.config.data.nonnegative == "off":
            return np.zeros(n_t, bool)
        return keep[:n_t]

    def floor(self, series: list[Series], values: np.ndarray, cutoffs: Any = None) -> np.ndarray:
        """``values [S, ..., n_t]`` (forecasts or interval bounds in real units) floored at 0
        where :meth:`floor_mask` says; ``[S, K, ..., n_t]`` with ``cutoffs``. A floor at 0
        cannot raise the error of a forecast whose actual value is not negative."""
        return apply_floor(values, self.floor_mask(series, cutoffs))

    def _futures(self, series: list[Series], future: Any) -> list[pd.DataFrame | None]:
        """One future-covariate table (or None) per series; see :meth:`forecast_arrays`."""
        if isinstance(future, (list, tuple)):
            if len(future) != len(series):
                raise DataError(
                    f"future: {len(future)} tables for {len(series)} series; give one per series"
                )
            return list(future)
        if isinstance(future, (str, Path)):
            future = read_future(future, self.config.data)
        key = self.config.data.series_id or "series"
        if not isinstance(future, pd.DataFrame) or key not in future.columns:
            return [future] * len(series)
        ids = future[key].astype(str)
        out: list[pd.DataFrame | None] = []
        for s in series:
            rows = future[ids == str(s.series_id)]
            if rows.empty:
                raise DataError(
                    f"future: no rows for series '{s.series_id}' in the '{key}' column; give "
                    "the future covariates of every series"
                )
            out.append(rows.reset_index(drop=True))
        return out

    def table(self, series: list[Series], preds: np.ndarray) -> pd.DataFrame:
        """Forecasts ``[S, H, n_t]`` as a table indexed by each series' future time stamps.

        One column per target; with several series, a long table with the series id first.
        """
        data = self.config.data
        frames = []
        for s, p in zip(series, preds, strict=True):
            idx = s.future_index(p.shape[0])
            frame = pd.DataFrame(p, index=idx, columns=s.targets)
            frame.index.name = s.index.name or data.time_col or "time"
            if s.series_id is not None:
                frame.insert(0, data.series_id or "series", s.series_id)
            frames.append(frame)
        return pd.concat(frames) if len(frames) > 1 else frames[0]

    # ------------------------------------------------------------ at cutoffs inside the data
    @torch.no_grad()
    def forecast_at_cutoffs(
        self, series: list[Series], cutoffs: Any, horizon: int | None = None
    ) -> np.ndarray:
        """Point forecasts from many cutoffs of many series in one batched forward pass.

        Each series is scaled with its stored scaler and laid out as a
        :class:`~elman.data.windows.Panel`; the input window of every (series, cutoff)
        pair, the ``lookback`` rows before the cutoff, is gathered and run through the model
        in batches (one for all windows unless their activations would exceed
        :data:`elman.data.windows.MAX_PASS_ELEMENTS`). No Python loop runs over cutoffs.
        Only the rows from the first input window on are scaled, so a few cutoffs near the
        end of a long series cost little memory.

        Args:
            series: S series with the training columns.
            cutoffs: ``[S, K]`` positions with ``lookback <= k <= T`` (``1 <= k`` for a
                model whose short series are padded; ``k + H <= T`` when the model has
                future covariates, whose values are read from the series).
            horizon: steps ``H``; default the trained horizon.

        Returns:
            Forecasts in real units ``[S, K, H, n_t]``.
        """
        sizes, layout = self.sizes, self.layout
        h, lookback, n_t = horizon or sizes.horizon, sizes.lookback, layout.n_targets
        if self.direct and h > sizes.horizon:
            raise ConfigError(f"a direct model forecasts at most {sizes.horizon} steps, asked {h}")
        cut = _checked_cutoffs(
            series, cutoffs, sizes.first_cutoff, lookback, h if layout.n_future else 0
        )
        scalers = [self.scaler_for(s) for s in series]  # of whole series, as in training
        skip = cut.min(axis=1) - lookback if cut.shape[1] else np.zeros(len(series), np.int64)
        pads = np.maximum(-skip, 0)  # a padded model's windows before a series' first point
        skip = np.maximum(skip, 0)
        panel = build_panel(
            [s.slice(int(k)) for s, k in zip(series, skip, strict=True)], scalers, pads
        )
        first = torch.from_numpy(panel.offsets[:-1, None] + cut - (skip + lookback)[:, None])
        first = first.reshape(-1)  # [B] row of each window's first input in the panel
        width = max(self.config.model.hidden_size, layout.input_size)
        step = windows_per_pass(lookback + h, width)
        pred = torch.cat(
            [self._forward(panel, first[lo : lo + step], h) for lo in range(0, len(first), step)]
        )  # [B, H, n_t] float64, scaled units
        scaled = pred.numpy().reshape(*cut.shape, h, n_t)
        cols = list(range(n_t))
        return self.floor(series, np.stack(
            [sc.inverse_transform(p, columns=cols) for sc, p in zip(scalers, scaled, strict=True)]
        ), cut)  # fmt: skip

    def _forward(self, panel: Panel, first: torch.Tensor, h: int) -> torch.Tensor:
        """One model pass over the windows whose inputs start at panel rows ``first [b]``."""
        layout, lookback = self.layout, self.sizes.lookback
        x = panel.feats[first[:, None] + torch.arange(lookback)]  # [b, L, C_in], a fresh gather
        fut = None
        if layout.n_future:  # row t holds f_{t+1}, so rows k-1 .. k+H-2 give f_k .. f_{k+H-1}
            fidx = (first + lookback - 1)[:, None] + torch.arange(h)
            fut = panel.feats[fidx][..., layout.n_observed :]  # [b, H, n_f]
        cfg = self.config
        return forecast_windows(
            self.model, x, fut, cfg.model.strategy, cfg.data.norm, lookback, self.sizes.horizon,
            h, layout,
        )  # fmt: skip

    def validation_calibration(self, series: list[Series], ends: list[int]) -> Calibration | None:
        """Conformal calibration from the windows whose targets lie in the validation part.

        Every such window, or, when there are more than the configuration's ``val_windows``,
        that many in all: the same number per series, evenly spaced and always including
        the last (a long series would otherwise make calibration cost as much as an epoch).

        Args:
            series: the series the model was fitted on, validation part included.
            ends: where each training part ends (validation starts).

        Returns:
            A ``validation`` :class:`~elman.forecasting.calibration.Calibration`, or ``None``
            when there is no validation window.
        """
        sizes = self.sizes
        h = sizes.horizon
        first = sizes.first_cutoff
        n = min(len(s) - h + 1 - max(e, first) for s, e in zip(series, ends, strict=True))
        if n < 1:
            return None
        offsets = np.arange(n)
        cap = self.config.train.val_windows
        if cap and n * len(series) > cap:
            per = max(1, cap // len(series))
            offsets = np.unique(np.linspace(0, n - 1, per).round().astype(np.int64))
        cut = np.stack([offsets + max(e, first) for e in ends])  # [S, k]
        return self.calibration_at(series, cut, self.forecast_at_cutoffs(series, cut))

    def calibration_at(
        self, series: list[Series], cutoffs: np.ndarray, forecasts: np.ndarray
    ) -> Calibration:
        """Conformal calibration from ``forecasts [S, K, H, n_t]`` made at ``cutoffs [S, K]``:
        their residuals in units of each series' scale."""
        h = forecasts.shape[2]
        scales = self.target_scales(series)  # [S, n_t]
        resid = (targets_at(series, cutoffs, h) - forecasts) / scales[:, None, None, :]
        return Calibration.from_residuals(resid.reshape(-1, h, self.layout.n_targets), "validation")


class Fitted(Protocol):
    """Anything that holds a fitted predictor and the series it continues (a Forecaster)."""

    @property
    def predictor(self) -> Predictor: ...  # raises ConfigError when nothing is fitted

    @property
    def series(self) -> list[Series]: ...


def apply_floor(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``values [S, (K,) ..., n_t]`` with ``max(v, 0)`` where ``mask [S, (K,) n_t]`` holds;
    the steps between (a horizon) are broadcast. ``values`` itself when ``mask`` is None."""
    if mask is None:
        return values
    m = mask.reshape(mask.shape[:-1] + (1,) * (values.ndim - mask.ndim) + mask.shape[-1:])
    return np.where(m, np.maximum(values, 0.0), values)


def forecast_at_cutoffs(
    predictor: Predictor, series: list[Series], cutoffs: Any, horizon: int | None = None
) -> np.ndarray:
    """:meth:`Predictor.forecast_at_cutoffs` as a function."""
    return predictor.forecast_at_cutoffs(series, cutoffs, horizon)


def _checked_cutoffs(
    series: list[Series], cutoffs: Any, least: int, lookback: int, after: int
) -> np.ndarray:
    """Cutoffs ``[S, K]`` that leave ``least`` points before (the lookback, or 1 for a
    padded model) and ``after`` points after."""
    cut = np.asarray(cutoffs, dtype=np.int64)
    if cut.ndim != 2 or cut.shape[0] != len(series):
        raise DataError(f"`cutoffs` must have shape [S={len(series)}, K], got {cut.shape}")
    lens = np.array([len(s) for s in series])[:, None]
    bad = (cut < least) | (cut + after > lens)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        before = f"the lookback ({lookback})" if least == lookback else f"{least}"
        raise DataError(
            f"cutoff {int(cut[i, j])} of {series[i].name} ({len(series[i])} points) leaves "
            f"fewer than {before} points before it or no room for the future "
            "covariates after it"
        )
    return cut


def _check_finite(forecasts: np.ndarray, series: list[Series]) -> None:
    """Refuse forecasts ``[S, H, n_t]`` that overflowed instead of printing inf or NaN."""
    bad = ~np.isfinite(forecasts)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise DataError(
            f"the forecast of {series[i].name} is not finite (the network's output overflowed "
            "in real units); check the history for extreme values or retrain the model"
        )


def _pad_future(series: Series, fut: np.ndarray) -> np.ndarray:
    """Place future-covariate values in full-width rows so the scaler can transform them."""
    width = len(series.columns)
    full = np.zeros((fut.shape[0], width))
    full[:, width - fut.shape[1] :] = fut
    return full
