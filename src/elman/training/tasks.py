"""Training tasks: the loss of one batch, for window training and for stateful TBPTT.

:class:`WindowTask` scores windows gathered from a :class:`~elman.data.windows.Panel`
(``direct`` or ``recursive``, with teacher forcing or scheduled sampling);
:class:`TbpttTask` walks contiguous lanes and carries the hidden state between chunks.
The :class:`~elman.training.trainer.Trainer` calls ``start_epoch`` and ``loss``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from elman.data.windows import Panel, make_batch
from elman.forecasting.strategies import direct_forecast, recursive_rollout
from elman.models.base import State

LossFn = Callable[[Tensor, Tensor], Tensor]


def loss_function(name: str) -> LossFn:
    """The batch loss ``--loss`` names, on scaled values: ``mse`` (the default), ``mae``
    (its gradient does not grow with the error, so outliers pull less) or ``huber``
    (squared within 1 scale unit of the target, absolute beyond)."""
    if name == "mae":
        return F.l1_loss
    if name == "huber":
        return F.huber_loss  # delta 1.0: one unit of the scaled series
    return F.mse_loss


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
        loss: str = "mse",
    ) -> None:
        self.panel, self.lookback, self.horizon = panel, lookback, horizon
        self.loss_fn = loss_function(loss)
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
        """The loss (``--loss``) of one batch of windows (``starts``: global row indices)."""
        b = make_batch(self.panel, starts, self.lookback, self.horizon, self.strategy, self.norm)
        x, y = b.x.to(self.device), b.y.to(self.device)
        lf = self.loss_fn
        if self.strategy == "direct":
            pred = direct_forecast(model, x, self.horizon, self.panel.layout.n_targets)
            return lf(pred, y), int(x.shape[0])
        layout = self.panel.layout
        if train and self.tf >= 1.0:
            out, _ = model(x)  # teacher forcing throughout: one pass over L+H-1 steps
            return lf(out, y), int(x.shape[0])
        tf = self.tf if train else 0.0
        warm, preds = recursive_rollout(model, x, self.lookback, self.horizon, layout, tf, self.gen)
        if not train:  # validation: the free-running horizon only
            return lf(preds, y[:, self.lookback - 1 :]), int(x.shape[0])
        full = torch.cat([warm, preds[:, 1:]], 1)  # [B, L+H-1, n_t]
        return lf(full, y), int(x.shape[0])


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
        loss: str = "mse",
    ) -> None:
        self.panel, self.lanes, self.lane_len = panel, torch.as_tensor(lanes), lane_len
        self.loss_fn = loss_function(loss)
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
        return self.loss_fn(pred, y), int(x.shape[0] * k)
