"""Online learning: predict each point before seeing it, then learn from it.

::

    learner = OnlineLearner(build_model("lstm", 1, 1, 32), scaler, config=OnlineConfig())
    for value in stream:
        step = learner.step(np.array([value]))   # prediction made before the value, error,
        ...                                      # running MAE, anomaly flag; then it learns

Per point ``n`` (value ``v_n``):

1. the prediction for ``n`` (made after point ``n-1``) is compared with ``v_n``: error,
   running MAE, anomaly flag;
2. ``v_n`` completes the target of an earlier position; every ``u`` completed positions
   the learner takes one optimizer step on their MSE, back-propagating ``k`` steps behind
   the oldest of them (truncated BPTT over ``k + u - 1`` steps, ``k = tbptt``);
3. the model steps once from its carried state with ``v_n`` as input, which gives the
   prediction for ``n+1``.

Models trained with ``norm="last"`` (per-window normalisation, the default of
``Forecaster``) have no carried state: they predict from the last ``lookback`` points, as in
training, and learn from batches of windows (see :mod:`elman.online.kernels`).

Anomalies: a point is flagged when its absolute error exceeds ``anomaly_threshold`` times
the running MAE (an exponentially weighted mean with span ``metric_span``, taken before the
point), once ``min_errors`` errors have been seen. The error of a flagged point enters the
running MAE clipped at the threshold, so that one outlier does not mask the next.

Everything the learner holds (weights, optimizer, carried state, rings, metrics, scaler)
goes into a checkpoint of tensors and JSON metadata (:meth:`OnlineLearner.checkpoint`), from
which it continues bit for bit.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from elman.config import OnlineConfig
from elman.data.scaling import Scaler
from elman.errors import CheckpointError, ConfigError
from elman.models.base import SequenceModel
from elman.models.registry import model_config
from elman.online.cells import FastCell, LSTMWindow, fast_cell, fast_window
from elman.online.kernels import (
    F32,
    FlatParams,
    Optimizer,
    Rings,
    TorchStateful,
    TorchWindow,
    clip_gradient,
)
from elman.online.metrics import RunningError, Step, StepLog
from elman.runtime import torch_threads

log = logging.getLogger(__name__)

_FIRST = Step(None, None, None, False)  # the result of a point with no prediction yet


@contextmanager
def quiet_numerics() -> Iterator[None]:
    """One torch thread, and no NumPy overflow warnings, for a run of :meth:`step` calls.

    A point far outside the scale can overflow the loss; the learner then skips that
    update (and counts it), so the warning would only be noise. Entering this once per
    batch of points is much cheaper than once per update.
    """
    with torch_threads(1), np.errstate(over="ignore", invalid="ignore"):
        yield


class OnlineLearner:
    """Predict-then-learn over a stream of points (see the module docstring).

    Args:
        model: the network (put in eval mode; its weights follow the learner's on
            :meth:`sync_model`). Its input rows are ``[targets, past covariates]``.
        scaler: fitted scaler of the input columns; predictions are in real units.
        n_targets: target columns (the first columns of a row).
        horizon: steps a direct model emits; recursive models emit one.
        strategy: ``direct`` or ``recursive``.
        norm: ``none`` (carried state) or ``last`` (windows of ``lookback`` points).
        lookback: window length, needed with ``norm="last"``.
        config: online options.
        fast: run one-layer LSTM / tanh RNN / Elman models through the fast cells of
            :mod:`elman.online.cells`, compiled where numba is available, else NumPy, and
            one-layer LSTMs on windows (``norm="last"``, highway or not) through the
            compiled window kernel where numba is available (``False``: the generic torch
            paths, for comparison).
    """

    def __init__(
        self,
        model: SequenceModel,
        scaler: Scaler,
        n_targets: int = 1,
        horizon: int = 1,
        strategy: str = "recursive",
        norm: str = "none",
        lookback: int | None = None,
        config: OnlineConfig | None = None,
        fast: bool = True,
    ) -> None:
        self.config = cfg = config or OnlineConfig()
        self.model = model.cpu().eval()
        self.ahead = horizon if strategy == "direct" else 1
        self.n_targets, self.horizon, self.strategy = n_targets, horizon, strategy
        self.norm, self.lookback = norm, lookback
        if model.output_size != self.ahead * n_targets:
            raise ConfigError(
                f"the model emits {model.output_size} values per step, expected "
                f"{self.ahead * n_targets} ({self.ahead} steps x {n_targets} targets)"
            )
        if scaler.center is None or scaler.scale is None:
            raise ConfigError("the scaler is not fitted; fit it on the first points")
        if len(scaler.center) < model.input_size:
            raise ConfigError(
                f"the scaler has {len(scaler.center)} columns, the model reads {model.input_size}"
            )
        self.scaler = scaler
        self.center = np.asarray(scaler.center[: model.input_size], np.float64)
        self.inv_scale = 1.0 / np.asarray(scaler.scale[: model.input_size], np.float64)
        self.windowed = norm == "last"
        if self.windowed and not lookback:
            raise ConfigError("a model with norm 'last' needs its lookback to stream")
        depth = int(lookback) if self.windowed and lookback else cfg.tbptt
        self.rings = Rings(depth + cfg.update_every + self.ahead + 1, model.input_size,
                           n_targets, self.ahead)  # fmt: skip
        self.flat = FlatParams(self.model)
        self.opt = Optimizer(cfg.optimizer, self.flat.theta.size, cfg.lr)
        self.kernel: Any
        if self.windowed:
            direct = strategy == "direct"
            window = (
                fast_window(self.model, self.flat, self.rings, depth, n_targets, direct)
                if fast
                else None
            )
            self.kernel = window or TorchWindow(
                self.model, self.flat, self.rings, depth, n_targets, direct
            )
        else:
            cell = fast_cell(self.model, self.flat, self.rings, cfg.tbptt) if fast else None
            self.kernel = cell or TorchStateful(self.model, self.flat, self.rings, cfg.tbptt)
        self._jit = getattr(self.kernel, "jit", None)  # compiled kernels of a fast cell
        self.opt.jit = self._jit
        self.metrics = RunningError(n_targets, cfg.metric_span, cfg.anomaly_threshold,
                                    cfg.min_errors)  # fmt: skip
        self.position = 0  # points seen = positions the model has stepped through
        self.pending = 0  # completed positions since the last update
        self.updates = 0
        self.skipped_updates = 0  # updates dropped because the loss or gradient was not finite
        self._skip_run = 0  # consecutive skipped updates (one warning per run of them)
        self.out = np.full(model.output_size, np.nan, F32)  # output at the last position
        self.prediction: tuple[float, ...] | None = None  # real units, for the next point
        self._scratch = np.zeros(model.input_size)
        self._center0, self._inv0 = float(self.center[0]), float(self.inv_scale[0])
        self._center_t = self.center[:n_targets].tolist()
        self._scale_t = (1.0 / self.inv_scale[:n_targets]).tolist()
        self._n_in = model.input_size

    # ------------------------------------------------------------------ stepping
    @property
    def stateful(self) -> bool:
        """Whether the model carries its state from point to point (``norm="none"``)."""
        return not self.windowed

    @property
    def fast(self) -> bool:
        """Whether a fast cell (compiled or NumPy) runs the model."""
        return isinstance(self.kernel, (FastCell, LSTMWindow))

    def step(self, row: np.ndarray) -> Step:
        """Score the prediction for ``row`` (real units ``[C]``), then learn from it."""
        row = np.asarray(row, np.float64)
        pred = self.prediction
        if pred is None:
            result = _FIRST
        else:
            if len(pred) == 1 and row.shape[0]:  # one target: plain floats are cheaper
                err: tuple[float, ...] = (float(row[0]) - pred[0],)
            else:
                values = row[: self.n_targets].tolist()
                err = tuple(v - p for v, p in zip(values, pred, strict=True))
            mae, flag = self.metrics.update(err)
            result = Step(pred, err, mae, flag)
        self._advance(row, self.config.learn)
        return result

    def prime(self, rows: np.ndarray, learn: bool = False) -> None:
        """Run through known rows ``[T, C]`` (real units) without scoring them.

        With ``learn=False`` (warming the state up on a model's training context) no update
        is taken; the rows still serve as BPTT history for later updates.
        """
        with quiet_numerics():
            for row in np.asarray(rows, np.float64).reshape(len(rows), -1):
                self._advance(row, learn=learn and self.config.learn)

    def observe(self, values: np.ndarray) -> StepLog:
        """:meth:`step` over every row of ``values [T, C]``."""
        values = np.asarray(values, np.float64).reshape(len(values), -1)
        t, n_t = values.shape[0], self.n_targets
        none = (math.nan,) * n_t
        preds: list[tuple[float, ...]] = []
        errors: list[tuple[float, ...]] = []
        maes: list[float | None] = []
        flags: list[bool] = []
        step = self.step
        with quiet_numerics():
            for row in values:  # lists, turned into arrays once: cheaper than a row at a time
                s = step(row)
                if s.prediction is not None and s.error is not None:
                    preds.append(s.prediction)
                    errors.append(s.error)
                    maes.append(s.running_mae)
                    flags.append(s.anomaly)
                else:
                    preds.append(none)
                    errors.append(none)
                    maes.append(math.nan)
                    flags.append(False)
        return StepLog(
            prediction=np.array(preds, np.float64).reshape(t, n_t),
            error=np.array(errors, np.float64).reshape(t, n_t),
            running_mae=np.array(maes, np.float64).reshape(t),
            anomaly=np.array(flags, bool).reshape(t),
        )

    def _advance(self, row: np.ndarray, learn: bool) -> None:
        n_in = self._n_in
        if row.shape[0] < n_in:
            raise ConfigError(f"a point has {row.shape[0]} values, the model reads {n_in}")
        rings, pos = self.rings, self.position
        slot = pos % rings.capacity
        x = rings.x[slot]
        if n_in == 1:  # the common univariate stream: plain floats are cheaper
            x[0] = rings.y[slot, 0] = (float(row[0]) - self._center0) * self._inv0
        else:
            np.subtract(row[:n_in], self.center, out=self._scratch)
            np.multiply(self._scratch, self.inv_scale, out=x, casting="same_kind")
            rings.y[slot] = x[: self.n_targets]
        done = pos - self.ahead  # the position whose targets this row completes
        if learn and done >= 0:
            self.pending += 1
            if self.pending >= self.config.update_every:
                self._update(done - self.pending + 1, done)
                self.pending = 0
        self.out = self.kernel.push(pos, x)  # valid until the next push
        self.position = pos + 1
        self._set_prediction()

    def _set_prediction(self) -> None:
        if self.n_targets == 1:  # the common case, in plain floats
            v = float(self.out[0])
            finite = math.isfinite(v)
            self.prediction = (v * self._scale_t[0] + self._center_t[0],) if finite else None
            return
        first = self.out[: self.n_targets].tolist()
        if all(math.isfinite(v) for v in first):
            self.prediction = tuple(
                v * s + c for v, s, c in zip(first, self._scale_t, self._center_t, strict=True)
            )
        else:
            self.prediction = None

    def _update(self, first: int, last: int) -> None:
        loss = self.kernel.learn(first, last)
        if loss is None:
            return
        clip = self.config.clip
        if self._jit is not None:
            norm = float(self._jit.clip_gradient(self.flat.grad, float(clip or 0.0)))
        else:
            norm = clip_gradient(self.flat.grad, clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            self.skipped_updates += 1
            self._skip_run += 1
            if self._skip_run == 1:  # one line per run of skips, not one per update
                log.warning(
                    "online update skipped: the loss or gradient is not finite (an extreme "
                    "point in the last --tbptt points?); the updates skipped until it has "
                    "passed are counted, not repeated here"
                )
            return
        self._skip_run = 0
        self.opt.step(self.flat.theta, self.flat.grad)
        self.kernel.refresh()
        self.updates += 1

    # ------------------------------------------------------------------ results
    def sync_model(self) -> SequenceModel:
        """Copy the learned weights into ``self.model`` and return it."""
        self.flat.to_model(self.model)
        return self.model

    @property
    def state(self) -> tuple[torch.Tensor, ...]:
        """The recurrent state after the last point (model layout, batch 1, copies).

        For a windowed model, the state after running over the last window.
        """
        if self.windowed:
            self.sync_model()
            return tuple(self.kernel.state(self.position - 1))
        return tuple(self.kernel.state())

    def set_state(self, state: tuple[torch.Tensor, ...]) -> None:
        """Replace the carried state (stateful models only)."""
        if self.windowed:
            raise ConfigError("a windowed model (norm 'last') carries no state to set")
        self.kernel.set_state(state)

    def reconfigure(self, **options: Any) -> None:
        """Change options that leave the buffers as they are: lr, clip, scoring, learn.

        Raises:
            ConfigError: an option that shapes the buffers or the optimizer state
                (tbptt, update_every, optimizer, metric_span) differs.
        """
        cfg = dataclasses.replace(self.config, **options)
        for name in ("tbptt", "update_every", "optimizer", "metric_span"):
            if getattr(cfg, name) != getattr(self.config, name):
                raise ConfigError(
                    f"{name} is fixed once online learning has started "
                    f"({getattr(self.config, name)}, asked for {getattr(cfg, name)})"
                )
        self.config = cfg
        self.opt.lr = cfg.lr
        self.metrics.threshold, self.metrics.min_errors = cfg.anomaly_threshold, cfg.min_errors

    @torch.no_grad()
    def forecast(self, horizon: int) -> np.ndarray:
        """Forecast ``[horizon, n_targets]`` in real units from the carried state.

        Direct models read their whole output at the last point; recursive models feed
        their predictions back, starting from a copy of the carried state.
        """
        if self.windowed:
            raise ConfigError("a windowed model forecasts from its window; use Forecaster")
        n_t = self.n_targets
        out = torch.from_numpy(np.array(self.out, F32))
        if self.strategy == "direct":
            preds = out.reshape(self.ahead, n_t)[:horizon]
        else:
            model, state = self.sync_model(), self.kernel.state()
            steps = [out[:n_t]]
            for _ in range(1, horizon):
                y, state = model(steps[-1].reshape(1, 1, n_t), state)
                steps.append(y.reshape(-1)[:n_t])
            preds = torch.stack(steps)
        return preds.double().numpy() / self.inv_scale[:n_t] + self.center[:n_t]

    def summary(self) -> dict[str, Any]:
        """Points seen, updates taken and the running error statistics."""
        return {
            "points": self.position,
            "updates": self.updates,
            "skipped_updates": self.skipped_updates,
            **self.metrics.summary(),
        }

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything needed to continue: ``(tensors, JSON-safe metadata)``."""
        arrays = {
            "theta": self.flat.theta,
            "rings.x": self.rings.x,
            "rings.y": self.rings.y,
            "out": np.array(self.out, F32),
            **{f"opt.{k}": v for k, v in self.opt.arrays().items()},
            **{f"kernel.{k}": v for k, v in self.kernel.arrays().items()},
        }
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).clone() for k, v in arrays.items()}
        meta = {
            "config": self.config.to_dict(),
            "model_config": model_config(self.model),
            "scaler": self.scaler.to_dict(),
            "n_targets": self.n_targets,
            "horizon": self.horizon,
            "strategy": self.strategy,
            "norm": self.norm,
            "lookback": self.lookback,
            "kernel": type(self.kernel).__name__,
            "counters": {
                "position": self.position,
                "pending": self.pending,
                "updates": self.updates,
                "skipped_updates": self.skipped_updates,
                "optimizer_steps": self.opt.steps,
            },
            "metrics": self.metrics.to_dict(),
        }
        return tensors, meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], where: str) -> None:
        """Load a :meth:`checkpoint` of a learner built with the same model and options."""
        try:
            if meta["kernel"] != type(self.kernel).__name__:
                raise ValueError(f"kernel {meta['kernel']} != {type(self.kernel).__name__}")
            arrays = {k: v.numpy() for k, v in tensors.items()}
            if arrays["theta"].shape != self.flat.theta.shape:
                raise ValueError("the parameter count differs")
            floats = [a for k, a in arrays.items() if a.dtype.kind == "f" and k != "out"]
            if not all(np.isfinite(a).all() for a in floats):  # "out" is NaN before a window
                raise ValueError("it holds NaN or infinite values")
            self.flat.theta[...] = arrays["theta"]
            self.rings.x[...] = arrays["rings.x"]
            self.rings.y[...] = arrays["rings.y"]
            self.out = np.array(arrays["out"], F32)
            c = meta["counters"]
            self.opt.load({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")},
                          c["optimizer_steps"])  # fmt: skip
            self.kernel.load_arrays(
                {k[7:]: v for k, v in arrays.items() if k.startswith("kernel.")}
            )
            self.position, self.pending = c["position"], c["pending"]
            self.updates, self.skipped_updates = c["updates"], c["skipped_updates"]
            self.metrics.load(meta["metrics"])
        except (KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"{where}: the online state does not fit ({exc})") from exc
        self._set_prediction()
        self.sync_model()

    @classmethod
    def from_checkpoint(
        cls, model: SequenceModel, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
        where: str = "checkpoint",
    ) -> OnlineLearner:  # fmt: skip
        """Rebuild a learner around ``model`` (same architecture) from a checkpoint."""
        try:
            learner = cls(
                model,
                Scaler.from_dict(meta["scaler"]),
                n_targets=int(meta["n_targets"]),
                horizon=int(meta["horizon"]),
                strategy=str(meta["strategy"]),
                norm=str(meta["norm"]),
                lookback=meta["lookback"],
                config=OnlineConfig(**meta["config"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
            raise CheckpointError(f"{where}: online metadata is incomplete ({exc})") from exc
        learner.restore(tensors, meta, where)
        return learner
