"""The two ONNX graphs of a forecaster, as PyTorch modules that are traced on export.

::

    sequence graph (model.onnx)                      step graph (model.step.onnx)
      x       [B, L, C]    float64, real units         x          [B, 1, C_in]  float32, model units
      future  [B, H, n_f]  float64 (if n_f > 0)        state_0..  the model's state tensors
      series  [B]          int64   (if several series)
      -> y    [B, H, n_t]  float64, real units         -> y [B, K, n_t], new_state_0, ...

The sequence graph holds the whole forecast of :meth:`Forecaster.predict
<elman.forecaster.Forecaster.predict>`: scaling, the model-input layout (``x_t = [y_t, c_t,
f_{t+1}]``), per-window normalisation (``norm="last"``), the model (a recursive model is
unrolled for the ``H`` steps fixed at export time), de-normalisation and inverse scaling.
``x`` holds the last ``L`` (lookback) rows of the series in its column order (targets, past
covariates, future covariates), ``future`` the future covariates of the ``H`` forecast steps.
With several series, ``series`` picks each row's scaler (an index into ``series_ids``).

The step graph is one call of the network for streaming: it takes one model-input row in
scaled (and, with ``norm="last"``, normalised) units and the carried state, and returns the
outputs (``K = H`` values per target for a direct model, ``K = 1`` for a recursive one) and
the new state.

Float64 inputs and outputs matter: at 400 (CO2 ppm) float32 spacing is 3e-5, so real-unit
parity of 1e-5 needs the affine scaling outside float32. The network runs in float32, as in
PyTorch, and the arithmetic around it follows :meth:`Forecaster.forecast_arrays
<elman.forecaster.Forecaster.forecast_arrays>` operation by operation.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from elman.data.series import Series
from elman.data.windows import Layout
from elman.forecasting.predictor import Fitted, series_key
from elman.forecasting.strategies import forecast_batch
from elman.models.base import SequenceModel
from elman.models.highway import Highway

EXPORT_BATCH = 2  # batch of the tracing inputs; the exported batch axis is dynamic


class SequenceGraph(nn.Module):
    """The whole forecast: real-unit window in, real-unit horizon out.

    Args:
        model: the trained network (eval mode).
        layout: column roles.
        lookback: input rows ``L``.
        horizon: forecast steps ``H`` of the graph.
        trained_horizon: the horizon the model was trained for (direct models emit it).
        strategy: ``direct`` or ``recursive``.
        norm: ``last`` or ``none``.
        center: scaler centers ``[S, C]`` (one row per stored series).
        scale: scaler scales ``[S, C]``.
        floor: ``[S, n_t]``, 1 where the series' target is floored at 0 (``--nonnegative``);
            default none.
    """

    def __init__(
        self,
        model: SequenceModel,
        layout: Layout,
        lookback: int,
        horizon: int,
        trained_horizon: int,
        strategy: str,
        norm: str,
        center: np.ndarray,
        scale: np.ndarray,
        floor: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.model, self.layout = model, layout
        self.lookback, self.horizon, self.strategy, self.norm = lookback, horizon, strategy, norm
        self.steps = trained_horizon if strategy == "direct" else horizon
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float64))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float64))
        if floor is None:
            floor = np.zeros((center.shape[0], layout.n_targets))
        self.register_buffer("floor", torch.as_tensor(floor, dtype=torch.float64))
        self.has_series = center.shape[0] > 1

    def _scaler(self, series: Tensor | None) -> tuple[Tensor, Tensor]:
        center, scale = cast(Tensor, self.center), cast(Tensor, self.scale)  # [S, C]
        if series is not None:
            return center[series][:, None], scale[series][:, None]  # [B, 1, C]
        return center[:1][:, None], scale[:1][:, None]  # [1, 1, C]

    def forward(self, *inputs: Tensor) -> Tensor:
        """``(x [B, L, C], future [B, H, n_f]?, series [B]?) -> y [B, H, n_t]`` (float64)."""
        lay = self.layout
        x, rest = inputs[0], list(inputs[1:])
        future = rest.pop(0) if lay.n_future else None
        series = rest.pop(0) if self.has_series else None
        center, scale = self._scaler(series)
        floor = cast(Tensor, self.floor)  # [S, n_t]
        floor = (floor[series] if series is not None else floor[:1])[:, None]  # [B or 1, 1, n_t]
        z = ((x - center) / scale).to(torch.float32)  # [B, L, C], as Scaler.transform
        feats = z[..., : lay.n_observed]
        fut = None
        if future is not None:
            c_f, s_f = center[..., lay.n_observed :], scale[..., lay.n_observed :]
            fut = ((future - c_f) / s_f).to(torch.float32)  # [B, H, n_f]
            shifted = torch.cat([z[:, 1:, lay.n_observed :], fut[:, :1]], 1)  # f_{t+1}
            feats = torch.cat([feats, shifted], 2)  # [B, L, C_in]
        n_t = lay.n_targets
        if self.norm == "last":
            ref = feats[:, -1, :n_t]  # [B, n_t]
            feats = torch.cat([feats[..., :n_t] - ref[:, None], feats[..., n_t:]], 2)
        pred = forecast_batch(
            self.model, feats, fut, self.strategy, self.lookback, self.steps, lay
        )[:, : self.horizon]  # [B, H, n_t]
        if self.norm == "last":
            pred = pred + ref[:, None]
        y = pred.to(torch.float64) * scale[..., :n_t] + center[..., :n_t]
        # as Predictor.floor: where the series' training part and this window never went
        # below 0, max(y, 0)
        calm = (torch.amin(x[..., :n_t], dim=1, keepdim=True) >= 0).to(torch.float64)
        return y + floor * calm * (torch.relu(y) - y)  # Relu: double at every opset


class StepGraph(nn.Module):
    """One network step for streaming: ``(x [B, 1, C_in], *state) -> (y [B, K, n_t], *state)``.

    A :class:`~elman.models.highway.Highway` model reads the last ``window`` target inputs,
    so its step graph carries them as one more state tensor ``[B, window, n_t]`` (zeros at
    the start, like the other states). The output at step ``t`` is then the forecast made
    at ``t`` from the window that ends there: after a full window it equals the sequence
    forecast.

    Args:
        model: the trained network (eval mode).
        out_steps: ``K``, forecast steps per output row (``H`` direct, 1 recursive).
        n_targets: target columns ``n_t``.
    """

    def __init__(self, model: SequenceModel, out_steps: int, n_targets: int) -> None:
        super().__init__()
        self.highway = model if isinstance(model, Highway) else None
        self.net = model.net if isinstance(model, Highway) else model
        self.out_steps, self.n_targets = out_steps, n_targets

    def init_state(self, batch: int) -> tuple[Tensor, ...]:
        """The zero state: the network's tensors, then the highway window if any."""
        state = self.net.init_state(batch)
        if self.highway is None:
            return state
        return (*state, torch.zeros(batch, self.highway.window, self.highway.n_inputs))

    def forward(self, x: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """Run one step (model units throughout)."""
        hw = self.highway
        n = len(state) - (hw is not None)
        y, new_state = self.net(x, tuple(state[:n]))  # [B, 1, K * n_t]
        if hw is not None:
            window = torch.cat([state[n][:, 1:], x[..., : hw.n_inputs]], 1)  # [B, W, n_in]
            y = y + hw.linear(window.flatten(1))[:, None]
            new_state = (*new_state, window)
        return (y.reshape(-1, self.out_steps, self.n_targets), *new_state)

    def reference(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """What stepping over ``x [B, L, C_in]`` from the zero state gives, in one pass.

        Returns:
            ``(y [B, L, K * n_t], final state)``.
        """
        y, state = self.net(x)  # [B, L, O]
        hw = self.highway
        if hw is None:
            return y, state
        b, w = x.shape[0], hw.window
        padded = torch.cat([torch.zeros(b, w - 1, hw.n_inputs), x[..., : hw.n_inputs]], 1)
        windows = padded.unfold(1, w, 1).transpose(2, 3).flatten(2)  # [B, L, W * n_in]
        return y + hw.linear(windows), (*state, padded[:, -w:])


def floor_table(forecaster: Fitted, ids: list[str]) -> np.ndarray:
    """``[S, n_t]``: 1 where :meth:`Predictor.floor` floors series ``ids[s]``'s target."""
    p = forecaster.predictor
    return np.stack([p.trained_floor(p.scalers[k]) for k in ids]).astype(np.float64)


def scaler_table(forecaster: Fitted) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Stored series keys and their scalers as ``(ids, center [S, C], scale [S, C])``."""
    ids = list(forecaster.predictor.scalers)
    center = np.stack([np.asarray(forecaster.predictor.scalers[k].center) for k in ids])
    scale = np.stack([np.asarray(forecaster.predictor.scalers[k].scale) for k in ids])
    return ids, center, scale


def sequence_graph(forecaster: Fitted, horizon: int) -> SequenceGraph:
    """The sequence-graph module of a fitted forecaster (also runnable in PyTorch)."""
    p = forecaster.predictor
    model, sizes, layout = p.model, p.sizes, p.layout
    ids, center, scale = scaler_table(forecaster)
    cfg = forecaster.predictor.config
    return SequenceGraph(
        model, layout, sizes.lookback, horizon, sizes.horizon, cfg.model.strategy,
        cfg.data.norm, center, scale, floor_table(forecaster, ids),
    ).eval()  # fmt: skip


def step_graph(forecaster: Fitted) -> tuple[StepGraph, dict[str, Any]]:
    """The step-graph module and its input/output spec."""
    p = forecaster.predictor
    model, sizes, layout = p.model, p.sizes, p.layout
    k = sizes.horizon if forecaster.predictor.config.model.strategy == "direct" else 1
    graph = StepGraph(model, k, layout.n_targets).eval()
    state = graph.init_state(EXPORT_BATCH)
    axes = state_batch_axes(graph)
    names = [f"state_{i}" for i in range(len(state))]
    dyn: dict[str, dict[int, str]] = {"x": {0: "batch"}, "y": {0: "batch"}}
    for i, name in enumerate(names):
        dyn[name] = {axes[i]: "batch"}
        dyn[f"new_{name}"] = {axes[i]: "batch"}
    spec = {
        "args": (torch.zeros(EXPORT_BATCH, 1, layout.input_size), *state),
        "inputs": ["x", *names],
        "outputs": ["y", *(f"new_{n}" for n in names)],
        "dynamic": dyn,
        "fixed_args": 1,
    }
    return graph, spec


def state_batch_axes(graph: StepGraph) -> list[int]:
    """The batch axis of each state tensor (1 for ``[layers, B, H]``, 0 for buffers)."""
    one, two = graph.init_state(1), graph.init_state(2)
    return [
        next(i for i, (p, q) in enumerate(zip(a.shape, b.shape, strict=True)) if p != q)
        for a, b in zip(one, two, strict=True)
    ]


def sequence_io(forecaster: Fitted, horizon: int) -> dict[str, Any]:
    """Tracing inputs, input/output names and dynamic axes of the sequence graph."""
    p = forecaster.predictor
    sizes, layout = p.sizes, p.layout
    gen = torch.Generator().manual_seed(0)
    width = layout.input_size
    args: list[Tensor] = [torch.randn(EXPORT_BATCH, sizes.lookback, width, generator=gen).double()]
    names = ["x"]
    if layout.n_future:
        args.append(torch.randn(EXPORT_BATCH, horizon, layout.n_future, generator=gen).double())
        names.append("future")
    if len(forecaster.predictor.scalers) > 1:
        args.append(torch.zeros(EXPORT_BATCH, dtype=torch.int64))
        names.append("series")
    dyn = {n: {0: "batch"} for n in [*names, "y"]}
    return {
        "args": tuple(args),
        "inputs": names,
        "outputs": ["y"],
        "dynamic": dyn,
        "fixed_args": 0,
    }


def series_index(series: Series, ids: list[str]) -> int:
    """The row of ``series`` in the scaler table (0 for a series the model has not seen)."""

    key = series_key(series)
    return ids.index(key) if key in ids else 0
