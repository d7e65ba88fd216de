"""The Forecaster: one object that fits, predicts, learns online, backtests, exports, saves.

::

    f = Forecaster("lstm", horizon=12)
    f.fit("builtin:airline")
    table = f.predict()          # the next 12 months after the data, in passengers
    f.save("model_dir"); g = Forecaster.load("model_dir")

A thin facade over the layers below: :mod:`elman.training.fit` trains, the fitted
:class:`~elman.forecasting.predictor.Predictor` (:attr:`Forecaster.predictor`) forecasts,
:mod:`elman.evaluation.backtest` backtests, :mod:`elman.online.attach` learns online,
:mod:`elman.export` writes ONNX and :mod:`elman.forecasting.saved` saves and loads.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from elman.config import Config
from elman.data.prepare import Sizes, check_same_schema, load_series
from elman.data.scaling import Scaler
from elman.data.series import Series
from elman.data.windows import Layout
from elman.errors import CheckpointError, ConfigError, DataError
from elman.evaluation.backtest import backtest
from elman.evaluation.ensemble import (
    EnsemblePredictor,
    Selection,
    ensemble_for,
    history_kept,
)
from elman.evaluation.scores import BacktestResult
from elman.files import META
from elman.forecasting.calibration import Calibration, interval_columns
from elman.forecasting.context import series_from_schema
from elman.forecasting.esrnn import make_predictor
from elman.forecasting.intervals import parse_levels
from elman.forecasting.predictor import SINGLE, Predictor
from elman.forecasting.saved import (
    ONLINE,
    check_series,
    load_predictor,
    save_predictor,
    series_contexts,
)
from elman.models.base import SequenceModel
from elman.online.attach import learn_continuation, learner_for
from elman.online.learner import OnlineLearner
from elman.online.metrics import StepLog
from elman.runtime import configure_threads
from elman.training.fit import fit_predictor
from elman.training.resume import FitHook
from elman.training.trainer import Trainer, TrainState

__all__ = ["SINGLE", "Forecaster"]


class Forecaster:
    """A recurrent forecaster for one series or many (one global model).

    Args:
        model: ``elman``, ``rnn``, ``lstm``, ``gru`` or ``tcn``.
        config: a full :class:`~elman.config.Config` to start from.
        **options: any option of DataConfig, ModelConfig or TrainConfig by name, for example
            ``horizon=12, lookback=36, hidden_size=32, epochs=100, strategy="recursive"``.
    """

    def __init__(self, model: str | None = None, config: Config | None = None, **options: Any):
        if model is not None:
            options["model"] = model
        self.config = (config or Config()).replace(**options)
        self.model: SequenceModel | None = None
        self.sizes: Sizes | None = None
        self.layout: Layout | None = None
        self.scalers: dict[str, Scaler] = {}
        self.series: list[Series] = []  # training data (or its tail, after load)
        self.train_state: TrainState | None = None
        self.trainer: Trainer | None = None
        self.calibration: Calibration | None = None  # conformal interval half-widths
        self.update_log: StepLog | None = None  # per-point log of the last update()
        self._online: OnlineLearner | None = None  # after update() or .state, or load()
        self.ensemble: Selection | None = None  # members and weights (--ensemble), if any

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Any, hooks: Sequence[FitHook] = ()) -> Forecaster:
        """Train on ``data`` (path, ``builtin:NAME``, DataFrame, array, Series or list of them).

        The last ``val_size`` points of each series are used for early stopping; everything
        before them trains the model. ``hooks`` get the trainer before the first epoch, for
        example a :class:`~elman.training.resume.Checkpointer` that checkpoints or resumes
        the fit. Returns ``self``.
        """
        series = load_series(data, self.config.data)

        def started(trainer: Trainer) -> None:
            self.trainer = trainer

        fitted = fit_predictor(series, self.config, hooks, on_trainer=started)
        p = fitted.predictor
        self.train_state = fitted.state
        self.model, self.sizes, self.layout, self.scalers = p.model, p.sizes, p.layout, p.scalers
        self.series = series
        # an interrupted fit is resumed later; its calibration would be thrown away
        interrupted = fitted.state.interrupted
        self.ensemble, chosen = None, None
        if not interrupted:
            chosen = ensemble_for(p, series, fitted.ends, self.config.model.ensemble)
        self.calibration = None
        if chosen is not None:  # intervals from the ensemble's own validation residuals
            self.ensemble = chosen.selection
            cut = chosen.calibration
            mixed = EnsemblePredictor.around(p, chosen.selection.weights).forecast_at_cutoffs(
                series, cut, form_at=chosen.form_at
            )
            self.calibration = p.calibration_at(series, cut, mixed)
        elif not interrupted:
            self.calibration = p.validation_calibration(series, fitted.ends)
        return self

    # ------------------------------------------------------------------ predicting
    @property
    def predictor(self) -> Predictor:
        """The fitted model with its sizes, layout, scalers and config, which forecasts.

        Raises:
            ConfigError: nothing is fitted or loaded yet.
        """
        if self.model is None or self.sizes is None or self.layout is None:
            raise ConfigError("the forecaster is not fitted yet; call fit(data) or load(dir)")
        p = make_predictor(self.model, self.sizes, self.layout, self.scalers, self.config)
        return p if self.ensemble is None else EnsemblePredictor.around(p, self.ensemble.weights)

    def predict(
        self,
        horizon: int | None = None,
        data: Any = None,
        future: Any = None,
        intervals: Any = None,
    ) -> pd.DataFrame:
        """Forecast after the end of ``data`` (or of the training data).

        Args:
            horizon: steps ahead; default the trained horizon. Recursive models may go
                further; direct models cannot.
            data: history to continue from (same columns as in training); default the
                training data.
            future: values of non-calendar future covariates for the forecast steps: a
                table (with the series id column for several series), a list of tables
                (one per series) or the path of a CSV or Parquet file.
            intervals: whole-percent levels such as ``(80, 95)`` or ``"80,95"``: adds
                split-conformal bounds ``<target>_lower_80`` / ``<target>_upper_80`` from
                :attr:`calibration` (set by :meth:`fit` from the validation windows, or by
                :meth:`backtest` from its residuals; see :mod:`elman.forecasting.calibration`).

        Returns:
            One column per target (then the bounds), indexed by the future time stamps. With
            several series, a long table with the series id column first.
        """
        p = self.predictor
        h = p.check_horizon(horizon)
        levels = parse_levels(intervals) if intervals is not None else ()
        if levels and self.calibration is None:
            raise ConfigError(
                "--intervals: this model has no calibration residuals (it was trained "
                "without a validation part); retrain with --val-size or run 'elman backtest'"
            )
        series = self.series_for(data)
        online = self._online if data is None else None
        if online is not None and online.stateful and online.model is self.model:
            preds = p.floor(series, online.forecast(h)[None])  # [1, H, n_t], carried state
            if isinstance(p, EnsemblePredictor):  # mixed with members refitted on the history
                preds = p.forecast_arrays(series, h, future, network=preds)
        else:
            preds = p.forecast_arrays(series, h, future)  # [S, H, n_t]
        table = p.table(series, preds)
        if levels and self.calibration is not None:
            scales = p.target_scales(series)
            widths = self.calibration.halfwidths(levels, h, scales)  # level -> [S, H, n_t]
            floor = functools.partial(p.floor, series)  # bounds floored as the forecasts are
            bounds = interval_columns(series[0].targets, widths, preds, floor)
            for name, col in bounds.items():
                table[name] = col
        return table

    def forecast_arrays(self, series: list[Series], horizon: int, future: Any = None) -> np.ndarray:
        """Point forecasts in real units ``[S, H, n_t]``; see :meth:`Predictor.forecast_arrays`."""
        return self.predictor.forecast_arrays(series, horizon, future)

    def scaler_for(self, series: Series) -> Scaler:
        """The stored scaler of a series; an unseen id gets one fitted on its own history."""
        return self.predictor.scaler_for(series)

    def series_for(self, data: Any = None, same_clock: bool = True) -> list[Series]:
        """The series a forecast continues: the stored ones, or ``data`` read as training
        read its data, with the trained columns (and, with ``same_clock``, time stamps at
        the trained frequency); :meth:`predict` takes the result as its ``data``."""
        if data is None:
            if not self.series:
                raise ConfigError("no data to continue from; pass data=")
            return self.series
        series = load_series(data, self.config.data, constant_ok=True)
        for s in series:
            if s.columns != self.series[0].columns:
                raise DataError(
                    f"{s.name} has columns {s.columns}, but the model was trained on "
                    f"{self.series[0].columns}"
                )
            if same_clock:
                _check_same_clock(s, self.series[0], self.config.data.time_col)
        return series

    # ------------------------------------------------------------------ online learning
    def update(self, new_data: Any, **options: Any) -> Forecaster:
        """Keep learning from new observations that continue the series, without a refit.

        Each new point is predicted from the state before it, then learned from (truncated
        BPTT, see :mod:`elman.online.learner`). The hidden state, the optimizer state and
        the running error carry over from call to call and are saved with the model;
        afterwards :meth:`predict` continues from the end of ``new_data``. ``options`` are
        fields of :class:`~elman.config.OnlineConfig`, e.g. ``lr=1e-3, tbptt=16,
        update_every=1``. The per-point predictions, errors and flags are in
        :attr:`update_log`. Returns ``self``.
        """
        learner = self._learner(options)
        series = self.series_for(new_data, same_clock=False)  # unstamped points continue the index
        if len(series) != 1:
            raise ConfigError(f"update() takes one series, got {len(series)}")
        assert self.sizes is not None
        keep = self.sizes.lookback  # what the network reads; an ensemble's members read more
        if self.ensemble is not None:
            keep = history_kept(keep, self.sizes.season)
        self.update_log, tail = learn_continuation(learner, self.series[0], series[0], keep)
        self.series = [tail]
        return self

    @property
    def state(self) -> tuple[torch.Tensor, ...]:
        """The recurrent state after the last observation, ``[num_layers, 1, H]`` tensors."""
        return self._learner().state

    def online_summary(self) -> dict[str, Any]:
        """Points, updates and running error of online learning so far (``{}`` before any)."""
        online = self._online
        if online is None or online.model is not self.model:
            return {}
        return online.summary()

    def _learner(self, options: dict[str, Any] | None = None) -> OnlineLearner:
        """The online learner following this model (created on first use).

        An ensemble's learner follows its network, primed on what the network reads; the
        statistical members are refitted on the stored history at each forecast.
        """
        p = self.predictor  # from_predictor checks that the network can learn online
        series = self.series
        if isinstance(p, EnsemblePredictor):
            p = p.network
            series = [p.context(s) for s in series]
        self._online = learner_for(self._online, p, series, options)
        return self._online

    # ------------------------------------------------------------------ evaluating
    def backtest(
        self,
        data: Any,
        horizon: int | None = None,
        folds: int = 5,
        stride: int | None = None,
        refit: str | int = "never",
        intervals: Any = None,
    ) -> BacktestResult:
        """Rolling-origin backtest from ``folds`` cutoffs (:mod:`elman.evaluation.backtest`).

        Trains this forecaster in place (``refit="never"``: once, on the data before the
        first cutoff) and replaces :attr:`calibration` with one from the backtest residuals;
        ``predict()`` then continues after the end of ``data``. Returns a
        :class:`~elman.evaluation.scores.BacktestResult`.
        """
        h = self.config.data.horizon if horizon is None else int(horizon)
        if h < 1:
            raise ConfigError(f"--horizon ({h}) must be >= 1")
        if h != self.config.data.horizon:
            self.config = self.config.replace(horizon=h)
        series = load_series(data, self.config.data)
        check_same_schema(series)
        result = backtest(
            lambda train: self.fit(train).predictor, series, h, folds, stride, refit,
            intervals, season=self.config.data.season, baselines=self.config.data.baselines,
        )  # fmt: skip
        self.calibration = result.calibration()
        self.series = series  # predict() continues after the end of the data
        return result

    # ------------------------------------------------------------------ files
    def export_onnx(
        self, path: str | Path, network_only: bool = False, **options: Any
    ) -> list[Path]:
        """Write ONNX graphs that forecast without elman: ``path`` and ``NAME.step.onnx``.

        ``path`` gets the whole forecast (a real-unit window in, the real-unit horizon out,
        the scaler inside); the step graph runs one step with its state, for streaming.
        Options (``horizon``, ``step``, ``overwrite``, ``check``, ``opset``, ``dynamo``) are
        those of :func:`elman.export.onnx.export_onnx`. An ensemble is refused (its
        statistical members have no graph) unless ``network_only``, which exports its
        network member, whose forecasts are the network's alone. Returns the paths written.
        """
        from elman.export.onnx import export_onnx  # loaded on first use: export is optional

        return export_onnx(self.network_member() if network_only else self, path, **options)

    def network_member(self) -> Forecaster:
        """This forecaster without its ensemble's statistical members (itself if it has
        none): the network, its scalers and the context it reads, sharing its weights. It has
        no calibration (the ensemble's residuals do not describe the network alone);
        :meth:`backtest` gives it one."""
        p = self.predictor
        if not isinstance(p, EnsemblePredictor):
            return self
        alone = copy.copy(self)
        alone.ensemble, alone.calibration = None, None
        alone.series = [p.network.context(s) for s in self.series]
        return alone

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` and ``model.json`` (plus ``extra`` JSON) to ``directory``."""
        p = self.predictor
        online = None
        if self._online is not None and self._online.model is p.model:
            online = self._online.checkpoint()
        if self.ensemble is not None:
            extra = {**(extra or {}), "ensemble": self.ensemble.to_dict()}
        return save_predictor(
            directory, p, self.series, self.calibration, self.summary(), extra, online
        )

    def learned_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """What :meth:`update` changed since the model was saved, as ``(tensors, JSON)``.

        The online learner's state (its copy of the weights, the optimizer and recurrent
        state, counters and running error) and the tail of the one series it follows. A
        model with this state loaded back by :meth:`load_learned_state` forecasts and keeps
        learning exactly as this one: a snapshot of a served series costs these few hundred
        kilobytes and not a full :meth:`save`.
        """
        online = self._online
        if online is None or online.model is not self.model or len(self.series) != 1:
            raise ConfigError("learned_state() needs a forecaster of one series after update()")
        inner, meta = online.checkpoint()
        tensors, (schema,) = series_contexts(self.predictor, self.series)
        tensors.update({f"{ONLINE}{k}": v for k, v in inner.items()})
        return tensors, {"online": meta, "series": schema}

    def load_learned_state(
        self, tensors: dict[str, torch.Tensor], doc: dict[str, Any], where: str
    ) -> Forecaster:
        """Continue from a :meth:`learned_state` of a forecaster loaded from the same files.

        Raises:
            CheckpointError: the state does not fit this model (``where`` names the file).
        """
        p = self.predictor
        try:
            tail = series_from_schema(doc["series"], tensors, 0, where)
            inner = {k[len(ONLINE) :]: v for k, v in tensors.items() if k.startswith(ONLINE)}
            online = OnlineLearner.from_checkpoint(p.model, inner, doc["online"], where)
        except (KeyError, TypeError, ValueError, AttributeError, DataError, ConfigError) as exc:
            raise CheckpointError(f"{where}: the learned state does not fit ({exc})") from exc
        check_series(Path(where), [tail], p.layout, p)
        self.series, self._online = [tail], online
        return self

    def summary(self) -> dict[str, Any]:
        """Best validation loss, epochs run and whether training stopped early."""
        st = self.train_state
        if st is None:
            return {}
        return {
            "best_loss": st.best_loss if st.best_weights is not None else None,
            "best_epoch": st.best_epoch + 1 if st.best_epoch >= 0 else None,
            "epochs_run": len(st.history),
            "stopped_early": st.stopped_early,
            "averaged": st.averaged,
            "averaged_loss": st.averaged_loss,
        }

    @classmethod
    def load(cls, directory: str | Path) -> Forecaster:
        """Rebuild a saved forecaster; never executes code from the files."""
        saved = load_predictor(directory)
        p = saved.predictor
        f = cls(config=p.config)
        f.model, f.sizes, f.layout, f.scalers = p.model, p.sizes, p.layout, p.scalers
        configure_threads(f.config.train.threads)  # predicting: physical cores, as fit does
        f.series, f.calibration = saved.series, saved.calibration
        if saved.ensemble is not None:
            f.ensemble = Selection.from_dict(saved.ensemble, str(Path(directory) / META))
        if saved.online_meta:
            where = str(Path(directory))
            f._online = OnlineLearner.from_checkpoint(
                p.model, saved.online_tensors, saved.online_meta, where
            )
        return f


def _check_same_clock(new: Series, trained: Series, time_col: str | None) -> None:
    """Refuse history whose time stamps are missing or at another frequency than training's.

    Forecasts are labelled with the continued index of the history, so a file without its
    time column would be forecast at positions, and a weekly file given to a daily model
    would get weekly stamps.
    """
    dated = isinstance(trained.index, (pd.DatetimeIndex, pd.PeriodIndex))
    if dated and not isinstance(new.index, (pd.DatetimeIndex, pd.PeriodIndex)):
        name = time_col or trained.index.name
        col = f"'{name}'" if name else "time"
        raise DataError(
            f"{new.name} has no {col} column, but the model was trained on time stamps "
            f"({trained.freq or 'dated'}); give the history with its {col} column"
        )
    if dated and trained.freq and new.freq and new.freq != trained.freq:
        raise DataError(
            f"{new.name} is at frequency {new.freq}, but the model was trained at "
            f"{trained.freq}; give history at {trained.freq} (resample it first)"
        )
