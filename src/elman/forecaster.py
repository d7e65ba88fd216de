"""The Forecaster: model + scalers + config, with fit / predict / save / load.

::

    f = Forecaster("lstm", horizon=12)
    f.fit("builtin:airline")
    table = f.predict()          # the next 12 months after the data, in passengers
    f.save("model_dir"); g = Forecaster.load("model_dir")
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from elman import distributed
from elman.batching import WindowRanges, epoch_batches, tbptt_lanes, windows_per_pass
from elman.calibration import Calibration, interval_columns
from elman.checkpoint import check_state_dict, load_model_files, save_model_files
from elman.config import Config
from elman.context import series_from_schema, series_schema
from elman.data.calendar import CALENDAR_PREFIX
from elman.data.scaling import Scaler
from elman.data.series import Series
from elman.errors import CheckpointError, ConfigError, DataError
from elman.evaluate import backtest, validation_calibration
from elman.forecast import Layout, TbpttTask, WindowTask, features, forecast_windows
from elman.intervals import parse_levels
from elman.models.base import SequenceModel
from elman.models.registry import build_model, model_config
from elman.prepare import (
    Sizes,
    build_panel,
    check_same_schema,
    fit_scalers,
    future_block,
    load_series,
    resolve_sizes,
    scaled_tensor,
)
from elman.resume import FitHook
from elman.runtime import choose_device, configure_threads, keep_freed_memory, seed_everything
from elman.scores import BacktestResult
from elman.train import Trainer, TrainState

log = logging.getLogger(__name__)

SINGLE = "__single__"  # scaler key of a series without an id


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
        self._online: Any = None  # elman.online.OnlineLearner, after update() or .state

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Any, hooks: Sequence[FitHook] = ()) -> Forecaster:
        """Train on ``data`` (path, ``builtin:NAME``, DataFrame, array, Series or list of them).

        The last ``val_size`` points of each series are used for early stopping; everything
        before them trains the model. ``hooks`` get the trainer before the first epoch, for
        example a :class:`~elman.resume.Checkpointer` that checkpoints or resumes the fit.
        Returns ``self``.
        """
        cfg = self.config
        series = load_series(data, cfg.data)
        check_same_schema(series)
        sizes = resolve_sizes(series, cfg.data)
        self._check_strategy(series[0])
        configure_threads(cfg.train.threads, share=distributed.local_share())
        keep_freed_memory()  # reuse activation buffers between steps
        device = choose_device(cfg.train.device)
        dist = distributed.current(device)  # None unless this is a rank of a torchrun job
        device = dist.device if dist is not None else device
        seed_everything(cfg.train.seed)
        ends = [len(s) - sizes.val_size for s in series]
        scalers = fit_scalers(series, ends, cfg.data.scaler)
        panel = build_panel(series, scalers)
        layout = panel.layout
        self.sizes = sizes
        model = self._build(layout, sizes.horizon).to(device)
        task, train_batches = self._task(panel, series, ends, sizes, device)
        val_task, val_batches = self._val_batches(panel, series, ends, sizes, device)
        trained: torch.nn.Module = model
        scorer: Any = val_task
        if dist is not None:  # DDP; each rank keeps its slice of every global batch
            trained, task, train_batches, scorer, val_batches = dist.prepare(
                model, task, train_batches, val_task, val_batches
            )
        trainer = Trainer(trained, task, cfg.train, val_task=scorer)
        self.trainer = trainer
        for hook in hooks:
            hook.attach(trainer, series)
        self.train_state = trainer.fit(train_batches, val_batches)
        self.model, self.sizes, self.layout = model.cpu().eval(), sizes, layout
        self.scalers = {_key(s): sc for s, sc in zip(series, scalers, strict=True)}
        self.series = series
        self.calibration = validation_calibration(self, series, ends)
        return self

    def _check_strategy(self, first: Series) -> None:
        cfg = self.config
        if cfg.model.strategy == "recursive" and first.covariates:
            raise ConfigError(
                "past covariates are unknown beyond the last observation, so --strategy "
                "recursive cannot feed them back; use --strategy direct or --future-covariates"
            )
        if cfg.train.tbptt and cfg.data.norm != "none":
            raise ConfigError(
                f"--tbptt ({cfg.train.tbptt}) carries the hidden state across the whole series, "
                "so there is no window to normalise; add --norm none"
            )

    def _build(self, layout: Layout, horizon: int) -> SequenceModel:
        m = self.config.model
        direct = m.strategy == "direct"
        assert self.sizes is not None
        return build_model(
            m.model,
            input_size=layout.input_size,
            output_size=layout.n_targets * (horizon if direct else 1),
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            dropout=m.dropout,
            highway=self.sizes.lookback if direct and m.highway else 0,
            highway_inputs=layout.n_targets,
        )

    def _task(
        self, panel: Any, series: list[Series], ends: list[int], sizes: Sizes, device: Any
    ) -> tuple[Any, Any]:
        cfg = self.config
        t = cfg.train
        if t.tbptt:
            return self._tbptt_task(panel, ends, sizes, device)
        task = WindowTask(
            panel,
            sizes.lookback,
            sizes.horizon,
            cfg.model.strategy,
            cfg.data.norm,
            teacher_forcing=t.teacher_forcing,
            scheduled_sampling=t.scheduled_sampling,
            epochs=t.epochs,
            seed=t.seed,
            device=device,
        )
        lo = [0] * len(series)
        ranges = WindowRanges.of(panel.offsets, sizes.lookback, sizes.horizon, lo, ends)

        def batches(epoch: int) -> list[torch.Tensor]:  # see elman.batching
            return epoch_batches(ranges, t.batch_size, t.max_batches, t.seed, epoch)

        return task, batches

    def _tbptt_task(self, panel: Any, ends: list[int], sizes: Sizes, device: Any) -> Any:
        t = self.config.train
        assert t.tbptt is not None
        lanes, lane_len = tbptt_lanes(panel.offsets, ends, t.batch_size)
        task = TbpttTask(
            panel, lanes, lane_len, t.tbptt, sizes.horizon, self.config.model.strategy, device
        )
        return task, lambda epoch: task.batches()

    def _val_batches(
        self, panel: Any, series: list[Series], ends: list[int], sizes: Sizes, device: Any
    ) -> tuple[WindowTask | None, Any]:
        """Validation windows: targets in the last ``val_size`` points, inputs may reach back."""
        if not sizes.val_size:
            return None, None
        cfg = self.config
        lens = [len(s) for s in series]
        starts = torch.from_numpy(panel.starts(sizes.lookback, sizes.horizon, ends, lens))
        if len(starts) == 0:
            return None, None
        task = WindowTask(
            panel, sizes.lookback, sizes.horizon, cfg.model.strategy, cfg.data.norm, device=device
        )
        width = max(cfg.model.hidden_size, panel.layout.input_size)
        cap = max(cfg.train.batch_size, 256)
        size = windows_per_pass(sizes.lookback + sizes.horizon, width, cap=cap)
        return task, lambda: list(starts.split(size))

    # ------------------------------------------------------------------ predicting
    def _require_fitted(self) -> tuple[SequenceModel, Sizes, Layout]:
        if self.model is None or self.sizes is None or self.layout is None:
            raise ConfigError("the forecaster is not fitted yet; call fit(data) or load(dir)")
        return self.model, self.sizes, self.layout

    def predict(
        self,
        horizon: int | None = None,
        data: Any = None,
        future: pd.DataFrame | None = None,
        intervals: Any = None,
    ) -> pd.DataFrame:
        """Forecast after the end of ``data`` (or of the training data).

        Args:
            horizon: steps ahead; default the trained horizon. Recursive models may go
                further; direct models cannot.
            data: history to continue from (same columns as in training); default the
                training data.
            future: values of non-calendar future covariates for the forecast steps.
            intervals: whole-percent levels such as ``(80, 95)`` or ``"80,95"``: adds
                split-conformal bounds ``<target>_lower_80`` / ``<target>_upper_80`` from
                :attr:`calibration` (set by :meth:`fit` from the validation windows, or by
                :meth:`backtest` from its residuals; see :mod:`elman.calibration`).

        Returns:
            One column per target (then the bounds), indexed by the future time stamps. With
            several series, a long table with the series id column first.
        """
        h = self._check_horizon(horizon)
        levels = parse_levels(intervals) if intervals is not None else ()
        if levels and self.calibration is None:
            raise ConfigError(
                "--intervals: this model has no calibration residuals (it was trained "
                "without a validation part); retrain with --val-size or run 'elman backtest'"
            )
        series = self._history(data)
        online = self._online if data is None else None
        if online is not None and online.stateful and online.model is self.model:
            preds = online.forecast(h)[None]  # [1, H, n_t], from the carried state
        else:
            preds = self.forecast_arrays(series, h, future)  # [S, H, n_t]
        table = self._table(series, preds)
        if levels and self.calibration is not None:
            n_t = preds.shape[-1]
            scales = np.stack([np.asarray(self.scaler_for(s).scale)[:n_t] for s in series])
            widths = self.calibration.halfwidths(levels, h, scales)  # level -> [S, H, n_t]
            for name, col in interval_columns(series[0].targets, widths, preds).items():
                table[name] = col
        return table

    def update(self, new_data: Any, **options: Any) -> Forecaster:
        """Keep learning from new observations that continue the series, without a refit.

        Each new point is predicted from the state before it, then learned from (truncated
        BPTT, see :mod:`elman.online`). The hidden state, the optimizer state and the
        running error carry over from call to call and are saved with the model; afterwards
        :meth:`predict` continues from the end of ``new_data``. ``options`` are fields of
        :class:`~elman.online.OnlineConfig`, e.g. ``lr=1e-3, tbptt=16, update_every=1``.
        Returns ``self``.
        """
        from elman.online_forecaster import update_forecaster

        update_forecaster(self, new_data, options)
        return self

    @property
    def state(self) -> tuple[torch.Tensor, ...]:
        """The recurrent state after the last observation, ``[num_layers, 1, H]`` tensors."""
        from elman.online_forecaster import forecaster_learner

        return forecaster_learner(self).state

    def backtest(
        self,
        data: Any,
        horizon: int | None = None,
        folds: int = 5,
        stride: int | None = None,
        refit: str | int = "never",
        intervals: Any = None,
    ) -> BacktestResult:
        """Rolling-origin backtest from ``folds`` cutoffs; see :func:`elman.evaluate.backtest`.

        Trains this forecaster in place (``refit="never"``: once, on the data before the
        first cutoff) and replaces :attr:`calibration` with one from the backtest residuals;
        ``predict()`` then continues after the end of ``data``. Returns a
        :class:`~elman.scores.BacktestResult`.
        """
        return backtest(self, data, horizon, folds, stride, refit, intervals)

    def _history(self, data: Any) -> list[Series]:
        if data is None:
            if not self.series:
                raise ConfigError("no data to continue from; pass data=")
            return self.series
        series = load_series(data, self.config.data)
        for s in series:
            if s.columns != self.series[0].columns:
                raise DataError(
                    f"{s.name} has columns {s.columns}, but the model was trained on "
                    f"{self.series[0].columns}"
                )
        return series

    def _check_horizon(self, horizon: int | None) -> int:
        _, sizes, _ = self._require_fitted()
        h = sizes.horizon if horizon is None else int(horizon)
        if h < 1:
            raise ConfigError(f"--horizon ({h}) must be >= 1")
        if h > sizes.horizon and self.config.model.strategy == "direct":
            raise ConfigError(
                f"a direct model forecasts at most its trained horizon ({sizes.horizon}), "
                f"asked for {h}; retrain with --horizon {h} or use --strategy recursive"
            )
        return h

    def scaler_for(self, series: Series) -> Scaler:
        """The stored scaler of a series; an unseen id gets one fitted on its own history."""
        key = _key(series)
        if key in self.scalers:
            return self.scalers[key]
        if len(self.scalers) == 1 and series.series_id is None:
            return next(iter(self.scalers.values()))
        log.info("series %s was not in training; scaling it by its own history", key)
        return Scaler(self.config.data.scaler).fit(series.values)

    @torch.no_grad()
    def forecast_arrays(
        self, series: list[Series], horizon: int, future: pd.DataFrame | None = None
    ) -> np.ndarray:
        """Point forecasts in real units ``[S, H, n_t]``, one batched pass over all series."""
        model, sizes, layout = self._require_fitted()
        xs, futs, scalers = [], [], []
        cal = [c for c in series[0].future_covariates if c.startswith(CALENDAR_PREFIX)]
        for s in series:
            if len(s) < sizes.lookback:
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
                scaled_tensor(s.tail(sizes.lookback), sc),
                layout,
                fut[0] if layout.n_future else None,
            )
            xs.append(x)
            futs.append(fut)
            scalers.append(sc)
        return self._run_batch(model, xs, futs, scalers, horizon, layout)

    def _run_batch(
        self,
        model: SequenceModel,
        xs: list[torch.Tensor],
        futs: list[torch.Tensor],
        scalers: list[Scaler],
        horizon: int,
        layout: Layout,
    ) -> np.ndarray:
        assert self.sizes is not None
        x = torch.stack(xs)  # [S, L, C_in]
        fut = torch.stack(futs) if layout.n_future else None
        cfg, sizes = self.config, self.sizes
        pred = forecast_windows(
            model, x, fut, cfg.model.strategy, cfg.data.norm, sizes.lookback, sizes.horizon,
            horizon, layout,
        )  # [S, H, n_t] float64  # fmt: skip
        n_t = layout.n_targets
        out = np.empty(tuple(pred.shape))
        for i, sc in enumerate(scalers):
            out[i] = sc.inverse_transform(pred[i].numpy(), columns=list(range(n_t)))
        return out

    def _table(self, series: list[Series], preds: np.ndarray) -> pd.DataFrame:
        frames = []
        for s, p in zip(series, preds, strict=True):
            idx = s.future_index(p.shape[0])
            frame = pd.DataFrame(p, index=idx, columns=s.targets)
            frame.index.name = s.index.name or self.config.data.time_col or "time"
            if s.series_id is not None:
                frame.insert(0, self.config.data.series_id or "series", s.series_id)
            frames.append(frame)
        return pd.concat(frames) if len(frames) > 1 else frames[0]

    # ------------------------------------------------------------------ files
    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` and ``model.json`` (plus ``extra`` JSON) to ``directory``."""
        model, sizes, layout = self._require_fitted()
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        contexts = []
        for i, s in enumerate(self.series):
            tail = s.tail(sizes.lookback)
            tensors[f"context.{i}"] = torch.from_numpy(np.ascontiguousarray(tail.values))
            contexts.append(series_schema(tail))
        meta = {
            "config": self.config.to_dict(),
            "model_config": model_config(model),
            "sizes": asdict(sizes),
            "layout": asdict(layout),
            "scalers": {k: v.to_dict() for k, v in self.scalers.items()},
            "series": contexts,
            "metrics": self.summary(),
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }
        if self._online is not None and self._online.model is model:
            online_tensors, meta["online"] = self._online.checkpoint()
            tensors.update({f"online.{k}": v for k, v in online_tensors.items()})
        return save_model_files(directory, tensors, {**(extra or {}), **meta})

    def export_onnx(self, path: str | Path, **options: Any) -> list[Path]:
        """Write ONNX graphs that forecast without elman: ``path`` and ``NAME.step.onnx``.

        ``path`` gets the whole forecast (a real-unit window in, the real-unit horizon out,
        the scaler inside); the step graph runs one step with its state, for streaming.
        Options (``horizon``, ``step``, ``overwrite``, ``check``, ``opset``, ``dynamo``) are
        those of :func:`elman.export.export_onnx`. Returns the paths written.
        """
        from elman.export import export_onnx  # loaded on first use, as export is optional

        return export_onnx(self, path, **options)

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
        }

    @classmethod
    def load(cls, directory: str | Path) -> Forecaster:
        """Rebuild a saved forecaster; never executes code from the files."""
        meta, tensors = load_model_files(directory)
        where = str(Path(directory))
        try:
            f = cls(config=Config.from_dict(meta["config"], source=where))
            mcfg = dict(meta["model_config"])
            with torch.device("meta"):  # shapes only: nothing is allocated before the check
                probe = build_model(**mcfg)
            sizes = Sizes(**meta["sizes"])
            layout = Layout(**meta["layout"])
            scalers = {k: Scaler.from_dict(v) for k, v in meta["scalers"].items()}
            schemas = list(meta["series"])
        except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
            raise CheckpointError(f"{where}: metadata is incomplete or invalid ({exc})") from exc
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        check_state_dict(probe.state_dict(), weights, where)
        model = build_model(**mcfg)
        model.load_state_dict(weights)
        f.model, f.sizes, f.layout, f.scalers = model.eval(), sizes, layout, scalers
        configure_threads(f.config.train.threads)  # predicting: physical cores, as fit does
        try:
            f.series = [series_from_schema(s, tensors, i, where) for i, s in enumerate(schemas)]
        except (KeyError, TypeError, ValueError, AttributeError, DataError, ConfigError) as exc:
            raise CheckpointError(f"{where}: stored series context is invalid ({exc})") from exc
        f.calibration = Calibration.from_dict(meta.get("calibration"), where)
        if meta.get("online"):
            from elman.online import OnlineLearner

            state = {k[7:]: v for k, v in tensors.items() if k.startswith("online.")}
            f._online = OnlineLearner.from_checkpoint(model, state, meta["online"], where)
        return f


def _key(series: Series) -> str:
    return SINGLE if series.series_id is None else str(series.series_id)


def _pad_future(series: Series, fut: np.ndarray) -> np.ndarray:
    """Place future-covariate values in full-width rows so the scaler can transform them."""
    width = len(series.columns)
    full = np.zeros((fut.shape[0], width))
    full[:, width - fut.shape[1] :] = fut
    return full
