"""Forecasting strategies on tensors: windows, training losses and multi-step prediction.

Column layout. A scaled series has columns ``[targets | past covariates | future covariates]``.
The model's input at step ``t`` is ``x_t = [y_t, c_t, f_{t+1}]``: the targets and past
covariates observed at ``t``, and the known-ahead inputs of the step being predicted. The
"features" array ``F`` holds these rows; the last row of a history has ``f_T`` unknown (NaN)
until the caller supplies the future.

Windows (one series, lookback L, horizon H, window start s)::

    rows:    s ........ s+L-1 | s+L ...... s+L+H-1
    direct:  x = F[s:s+L]     | y = Y[s+L:s+L+H]          model emits H*n_t values at s+L-1
    recur.:  x = F[s:s+L+H-1] (inputs, the last H-1 fed back at prediction time)
             y = Y[s+1:s+L+H]  (one step ahead at every position)

Per-window normalisation (``norm="last"``) subtracts ``r = Y[s+L-1]``, the last observed target,
from the target part of ``x`` and from ``y``; predictions add it back. It keeps inputs in the
range seen in training when a series trends or shifts level.

Batches are gathered per batch by fancy indexing from the concatenated series, so windows are
never materialised all at once (memory: data size plus one batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from elman.batching import WindowRanges
from elman.errors import ConfigError, DataError
from elman.models.base import State


def check_counts(obj: object, minimums: dict[str, int]) -> None:
    """Raise ``ValueError`` unless each named field of ``obj`` is an integer >= its minimum.

    The dataclasses below are also rebuilt from a saved model's metadata, where a hand-edited
    (and resealed) value could be anything.
    """
    for name, low in minimums.items():
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(
                f"{type(obj).__name__}.{name} must be an integer >= {low}, got {value!r}"
            )


@dataclass(frozen=True)
class Layout:
    """Column roles of a scaled series."""

    n_targets: int
    n_covariates: int = 0
    n_future: int = 0

    def __post_init__(self) -> None:
        check_counts(self, {"n_targets": 1, "n_covariates": 0, "n_future": 0})

    @property
    def input_size(self) -> int:
        """Features per model input step."""
        return self.n_targets + self.n_covariates + self.n_future

    @property
    def n_observed(self) -> int:
        """Targets plus past covariates: the columns known up to the present."""
        return self.n_targets + self.n_covariates


def features(values: Tensor, layout: Layout, next_future: Tensor | None = None) -> Tensor:
    """Model inputs ``[T, C_in]`` from scaled values ``[T, C]``.

    Row ``t`` is ``[y_t, c_t, f_{t+1}]``. The last row needs ``f_T``: ``next_future [n_f]``
    if known, else NaN (such a row is never an input during training).
    """
    obs = values[:, : layout.n_observed]
    if layout.n_future == 0:
        return obs.contiguous()
    fut = values[1:, layout.n_observed :]
    last = (
        next_future.reshape(1, -1).to(values)
        if next_future is not None
        else torch.full((1, layout.n_future), float("nan"), dtype=values.dtype)
    )
    return torch.cat([obs, torch.cat([fut, last], 0)], 1)


class Panel:
    """Several scaled series concatenated row-wise, with their offsets.

    Args:
        arrays: scaled values ``[T_i, C]`` per series (float32).
        layout: column roles.
    """

    def __init__(self, arrays: list[Tensor], layout: Layout) -> None:
        self.layout = layout
        self.lengths = [int(a.shape[0]) for a in arrays]
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.feats = torch.cat([features(a, layout) for a in arrays], 0)  # [N, C_in]
        self.targets = torch.cat([a[:, : layout.n_targets] for a in arrays], 0)  # [N, n_t]

    def starts(self, lookback: int, horizon: int, lo: list[int], hi: list[int]) -> np.ndarray:
        """Window starts whose target rows ``[s+L, s+L+H)`` lie inside ``[lo_i, hi_i)``.

        Inputs may reach back before ``lo_i`` (into earlier parts of the same series) but
        never before the series' first row. Returns global row indices ``[K]`` (int64).
        """
        ranges = WindowRanges.of(self.offsets, lookback, horizon, lo, hi)
        return ranges.all_starts().numpy()


def gather(panel: Panel, starts: Tensor, span: int) -> tuple[Tensor, Tensor]:
    """Rows ``s .. s+span-1`` per start: ``(feats [B, span, C_in], targets [B, span, n_t])``."""
    idx = starts.reshape(-1, 1) + torch.arange(span).reshape(1, -1)  # [B, span]
    return panel.feats[idx], panel.targets[idx]


@dataclass
class WindowBatch:
    """One batch of normalised windows, ready for a model."""

    x: Tensor  # [B, L or L+H-1, C_in]
    y: Tensor  # [B, H, n_t] (direct) or [B, L+H-1, n_t] (recursive)
    ref: Tensor  # [B, n_t] the per-window reference that was subtracted


def make_batch(
    panel: Panel, starts: Tensor, lookback: int, horizon: int, strategy: str, norm: str
) -> WindowBatch:
    """Cut and normalise the windows starting at ``starts`` (see the module diagram)."""
    span = lookback + horizon
    feats, targ = gather(panel, starts, span)  # [B, L+H, C_in], [B, L+H, n_t]
    n_t = panel.layout.n_targets
    ref = targ[:, lookback - 1] if norm == "last" else torch.zeros_like(targ[:, 0])  # [B, n_t]
    if strategy == "direct":
        x = feats[:, :lookback].clone()
        y = targ[:, lookback:] - ref[:, None]
    else:
        x = feats[:, : span - 1].clone()
        y = targ[:, 1:] - ref[:, None]
    x[..., :n_t] -= ref[:, None]
    return WindowBatch(x=x, y=y, ref=ref)


def direct_forecast(model: nn.Module, x: Tensor, horizon: int, n_targets: int) -> Tensor:
    """Whole-horizon output read at the last step: ``[B, L, C_in] -> [B, H, n_t]``."""
    out, _ = model(x)  # [B, L, H*n_t]
    return out[:, -1].reshape(x.shape[0], horizon, n_targets)


def recursive_rollout(
    model: nn.Module,
    x: Tensor,
    lookback: int,
    horizon: int,
    layout: Layout,
    teacher_forcing: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Warm up on the lookback, then feed predictions back for the remaining steps.

    Args:
        x: ``[B, L+H-1, C_in]``; target columns beyond the lookback are the truth (used with
            probability ``teacher_forcing``), future-covariate columns are always used.
        teacher_forcing: probability, per sample and step, of feeding the true value.

    Returns:
        ``(warm [B, L, n_t], horizon_preds [B, H, n_t])``; ``warm[:, -1]`` is the first
        horizon step, so ``horizon_preds[:, 0] == warm[:, -1]``.
    """
    n_t = layout.n_targets
    warm, state = model(x[:, :lookback])  # [B, L, n_t]
    preds = [warm[:, -1]]
    for k in range(1, horizon):
        step = x[:, lookback - 1 + k].clone()  # [B, C_in]
        fed = preds[-1]
        if teacher_forcing > 0.0:
            keep = torch.rand(x.shape[0], 1, generator=generator) < teacher_forcing
            fed = torch.where(keep.to(x.device), step[:, :n_t], fed)
        step = torch.cat([fed, step[:, n_t:]], 1)
        out, state = model(step[:, None], state)  # [B, 1, n_t]
        preds.append(out[:, 0])
    return warm, torch.stack(preds, 1)


def forecast_batch(
    model: nn.Module,
    x: Tensor,
    future: Tensor | None,
    strategy: str,
    lookback: int,
    horizon: int,
    layout: Layout,
) -> Tensor:
    """Forecast ``horizon`` steps for a batch of normalised inputs (no teacher forcing).

    Args:
        x: ``[B, L, C_in]``; the last row's future part must hold ``f`` of the first
            forecast step.
        future: ``[B, H, n_f]`` known-ahead inputs of the forecast steps, or ``None``.

    Returns:
        ``[B, H, n_t]`` in normalised units.
    """
    if strategy == "direct":
        return direct_forecast(model, x, horizon, layout.n_targets)
    if layout.n_covariates:
        raise ConfigError(
            "past covariates are unknown beyond the last observation, so a recursive model "
            "cannot feed them back; use --strategy direct or pass them as --future-covariates"
        )
    b = x.shape[0]
    tail = torch.zeros(b, max(horizon - 1, 0), layout.input_size, dtype=x.dtype, device=x.device)
    if layout.n_future and horizon > 1:
        if future is None:
            raise DataError("future covariates are needed for every forecast step")
        tail[..., layout.n_observed :] = future[:, 1:horizon]
    _, preds = recursive_rollout(model, torch.cat([x, tail], 1), lookback, horizon, layout)
    return preds


def forecast_windows(
    model: nn.Module,
    x: Tensor,
    future: Tensor | None,
    strategy: str,
    norm: str,
    lookback: int,
    trained_horizon: int,
    horizon: int,
    layout: Layout,
) -> Tensor:
    """Forecast ``horizon`` steps from raw (scaled, not normalised) input windows.

    Applies the per-window normalisation of ``norm``, runs :func:`forecast_batch` (a direct
    model emits its ``trained_horizon`` steps, then the first ``horizon`` are kept) and adds
    the reference back in float64, so that it adds no float32 rounding to the forecast.

    Args:
        x: ``[B, L, C_in]`` windows (changed in place).
        future: ``[B, H, n_f]`` known-ahead inputs, or ``None``.

    Returns:
        ``[B, horizon, n_t]`` float64, scaled units.
    """
    n_t = layout.n_targets
    ref = x[:, -1, :n_t].clone() if norm == "last" else torch.zeros(x.shape[0], n_t)
    x[..., :n_t] -= ref[:, None]
    steps = trained_horizon if strategy == "direct" else horizon
    model.eval()
    pred = forecast_batch(model, x, future, strategy, lookback, steps, layout)[:, :horizon]
    return pred.double() + ref.double()[:, None]


class WindowTask:
    """Training losses for the ``direct`` and ``recursive`` strategies over windows."""

    def __init__(
        self,
        panel: Panel,
        lookback: int,
        horizon: int,
        strategy: str,
        norm: str,
        teacher_forcing: float = 1.0,
        scheduled_sampling: bool = False,
        epochs: int = 1,
        seed: int = 0,
        device: torch.device | None = None,
    ) -> None:
        self.panel, self.lookback, self.horizon = panel, lookback, horizon
        self.strategy, self.norm = strategy, norm
        self.base_tf, self.scheduled, self.epochs = teacher_forcing, scheduled_sampling, epochs
        self.tf = teacher_forcing
        self.seed = seed
        self.device = device or torch.device("cpu")
        self.gen = torch.Generator().manual_seed(seed)

    def start_epoch(self, epoch: int, train: bool) -> None:
        """Set this epoch's teacher-forcing ratio (linear decay with scheduled sampling)."""
        if self.scheduled:
            self.tf = self.base_tf * max(0.0, 1.0 - epoch / max(1, self.epochs - 1))
        self.gen.manual_seed(self.seed * 1_000_003 + epoch)

    def loss(self, model: nn.Module, starts: Tensor, train: bool) -> tuple[Tensor, int]:
        """MSE of one batch of windows (``starts``: global row indices)."""
        b = make_batch(self.panel, starts, self.lookback, self.horizon, self.strategy, self.norm)
        x, y = b.x.to(self.device), b.y.to(self.device)
        if self.strategy == "direct":
            pred = direct_forecast(model, x, self.horizon, self.panel.layout.n_targets)
            return F.mse_loss(pred, y), int(x.shape[0])
        layout = self.panel.layout
        if train and self.tf >= 1.0:
            out, _ = model(x)  # teacher forcing throughout: one pass over L+H-1 steps
            return F.mse_loss(out, y), int(x.shape[0])
        tf = self.tf if train else 0.0
        warm, preds = recursive_rollout(model, x, self.lookback, self.horizon, layout, tf, self.gen)
        if not train:  # validation: the free-running horizon only
            return F.mse_loss(preds, y[:, self.lookback - 1 :]), int(x.shape[0])
        full = torch.cat([warm, preds[:, 1:]], 1)  # [B, L+H-1, n_t]
        return F.mse_loss(full, y), int(x.shape[0])


class TbpttTask:
    """Stateful truncated BPTT: B contiguous lanes walked forward in chunks of ``k`` steps.

    ::

        series (train part):  |--- lane 0 ---|--- lane 1 ---| ... |--- lane B-1 ---|
        batch j of an epoch:  rows [lane_b + j*k, lane_b + (j+1)*k) for every lane b
        the hidden state of lane b at the end of chunk j starts chunk j+1 (detached)

    Each step predicts the next value (recursive) or the next H values (direct).
    Requires ``norm="none"``: a carried state has no window to normalise against.
    """

    def __init__(
        self,
        panel: Panel,
        lanes: np.ndarray,
        lane_len: int,
        chunk: int,
        horizon: int,
        strategy: str,
        device: torch.device | None = None,
    ) -> None:
        self.panel, self.lanes, self.lane_len = panel, torch.as_tensor(lanes), lane_len
        self.chunk, self.horizon, self.strategy = chunk, horizon, strategy
        self.device = device or torch.device("cpu")
        self.state: State | None = None
        self.ahead = horizon if strategy == "direct" else 1
        self.n_chunks = max(0, (lane_len - self.ahead) // chunk)

    def start_epoch(self, epoch: int, train: bool) -> None:
        """Every epoch starts the lanes from a zero state."""
        self.state = None

    def batches(self) -> list[int]:
        """Chunk numbers of one epoch, in order (the order matters: state is carried)."""
        return list(range(self.n_chunks))

    def loss(self, model: nn.Module, j: int, train: bool) -> tuple[Tensor, int]:
        """One-step (or H-step) loss over chunk ``j`` of every lane."""
        k, n_t = self.chunk, self.panel.layout.n_targets
        starts = self.lanes + j * k  # [B]
        idx = starts[:, None] + torch.arange(k)[None]  # [B, k]
        x = self.panel.feats[idx].to(self.device)  # [B, k, C_in]
        ahead = idx[..., None] + torch.arange(1, self.ahead + 1)  # [B, k, A]
        y = self.panel.targets[ahead].to(self.device)  # [B, k, A, n_t]
        out, state = model(x, self.state)  # [B, k, A*n_t]
        self.state = tuple(s.detach() for s in state)
        pred = out.reshape(*out.shape[:2], self.ahead, n_t)
        return F.mse_loss(pred, y), int(x.shape[0] * k)
