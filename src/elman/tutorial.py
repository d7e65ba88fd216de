"""Exact reproduction of the seed system: a 6-context-neuron Elman network learning a sine.

The seed trains one point at a time: after every point it takes a gradient step by hand and
detaches the context, so gradients never flow more than one step back (truncated BPTT of
length 1). That loop is reproduced here as it was, with current PyTorch APIs.

``compare=True`` also trains the *same* network from the *same* initial weights the modern
way: the whole 20-point sequence at once, full backpropagation through time, with L-BFGS or
Adam, stopping when the one-step MSE reaches a target.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from elman.config import TutorialConfig
from elman.models.elman import Elman

log = logging.getLogger(__name__)

@dataclass
class RunResult:
    """Outcome of one training method."""

    method: str
    final_epoch_loss: float | None  # seed only: summed per-point loss of the last epoch
    one_step_mse: float
    wall_time_s: float
    steps: int  # time steps processed (seed) or optimizer steps (modern)
    steps_per_s: float
    time_to_target_s: float | None  # first time the one-step MSE was <= target (modern)
    predictions: list[float] = field(default_factory=list)


@dataclass
class TutorialResult:
    """Everything the tutorial produces: data, both runs and the naive reference."""

    config: TutorialConfig
    t: list[float]
    x: list[float]
    y: list[float]
    naive_mse: float
    seed_run: RunResult
    modern_run: RunResult | None = None

    def metrics(self) -> dict[str, object]:
        """JSON-ready summary (predictions omitted; they are in the plot)."""
        out: dict[str, object] = {
            "config": asdict(self.config),
            "naive_last_value_mse": self.naive_mse,
            "seed": _run_summary(self.seed_run),
        }
        if self.modern_run is not None:
            out["modern"] = _run_summary(self.modern_run)
        return out


def _run_summary(run: RunResult) -> dict[str, object]:
    d = asdict(run)
    d.pop("predictions")
    return d


def seed_data(n_points: int = 21) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The seed's data: ``t = linspace(2, 10, n)``, ``x = sin(t)[:-1]``, ``y = sin(t)[1:]``.

    Returns:
        ``(t [n], x [n-1, 1], y [n-1, 1])``, x and y as float32 tensors.
    """
    t = np.linspace(2, 10, n_points)
    data = np.sin(t).reshape(n_points, 1)
    x = torch.tensor(data[:-1], dtype=torch.float32)
    y = torch.tensor(data[1:], dtype=torch.float32)
    return t, x, y


def init_weights(cfg: TutorialConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``w1 [1+H, H] ~ N(0, 0.4)`` and ``w2 [H, 1] ~ N(0, 0.3)``, drawn in the seed's order."""
    torch.manual_seed(cfg.seed)
    w1 = torch.empty(1 + cfg.hidden_size, cfg.hidden_size).normal_(0.0, cfg.init_std_in)
    w2 = torch.empty(cfg.hidden_size, 1).normal_(0.0, cfg.init_std_out)
    return w1, w2


def _step(
    inp: torch.Tensor, context: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    # inp [1, 1], context [1, H] -> xh [1, 1+H] -> context [1, H] -> out [1, 1]
    xh = torch.cat((inp, context), dim=1)
    context = torch.tanh(xh @ w1)
    return context @ w2, context


def predict_one_step(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> list[float]:
    """Run over ``x`` from a zero context, one point at a time (teacher forcing)."""
    context = torch.zeros(1, w1.shape[1])
    preds = []
    with torch.no_grad():
        for j in range(x.shape[0]):
            pred, context = _step(x[j : j + 1], context, w1, w2)
            preds.append(float(pred.item()))
    return preds


def train_seed_style(
    cfg: TutorialConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[RunResult, torch.Tensor, torch.Tensor]:
    """The seed's loop: per-point loss ``sum(sq)/2``, hand SGD, context detached every point."""
    w1, w2 = init_weights(cfg)
    w1.requires_grad_(True)
    w2.requires_grad_(True)
    epoch_loss = 0.0
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        epoch_loss = 0.0
        context = torch.zeros(1, cfg.hidden_size)
        for j in range(x.shape[0]):
            pred, context = _step(x[j : j + 1], context, w1, w2)
            loss = (pred - y[j : j + 1]).pow(2).sum() / 2
            epoch_loss += float(loss.item())
            loss.backward()
            with torch.no_grad():
                assert w1.grad is not None and w2.grad is not None
                w1 -= cfg.lr * w1.grad
                w2 -= cfg.lr * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
            context = context.detach()  # truncated BPTT of length 1
        if on_epoch is not None and epoch % cfg.print_every == 0:
            on_epoch(epoch, epoch_loss)
    wall = time.perf_counter() - start
    w1, w2 = w1.detach(), w2.detach()
    preds = predict_one_step(x, w1, w2)
    steps = cfg.epochs * x.shape[0]
    run = RunResult(
        method="seed: online SGD, truncated BPTT(1)",
        final_epoch_loss=epoch_loss if cfg.epochs else None,
        one_step_mse=_mse(preds, y),
        wall_time_s=wall,
        steps=steps,
        steps_per_s=steps / wall if wall > 0 else float("inf"),
        time_to_target_s=None,
        predictions=preds,
    )
    return run, w1, w2


def seed_network(w1: torch.Tensor, w2: torch.Tensor) -> Elman:
    """The :class:`Elman` module holding the seed's weights (no biases)."""
    hidden = w1.shape[1]
    net = Elman(input_size=1, hidden_size=hidden, output_size=1, bias=False)
    with torch.no_grad():
        net.weight_ih[0].copy_(w1[:1].t())
        net.weight_hh[0].copy_(w1[1:].t())
        net.head.weight.copy_(w2.t())
    return net


def train_full_bptt(cfg: TutorialConfig, x: torch.Tensor, y: torch.Tensor) -> RunResult:
    """Same network, same initial weights, trained on the whole sequence at once."""
    w1, w2 = init_weights(cfg)
    net = seed_network(w1, w2)
    xb, yb = x.unsqueeze(0), y.unsqueeze(0)  # [1, 20, 1]
    opt: torch.optim.Optimizer
    if cfg.compare_optimizer == "lbfgs":
        opt = torch.optim.LBFGS(
            net.parameters(),
            lr=1.0,
            max_iter=20,
            history_size=20,
            line_search_fn="strong_wolfe",
        )
    else:
        opt = torch.optim.Adam(net.parameters(), lr=0.05)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.mean((net(xb)[0] - yb) ** 2)
        loss.backward()
        return loss

    start = time.perf_counter()
    hit = None
    steps = 0
    mse = float("inf")
    while steps < cfg.compare_max_steps:
        opt.step(closure)
        steps += 1
        with torch.no_grad():
            mse = float(torch.mean((net(xb)[0] - yb) ** 2))
        if mse <= cfg.compare_target:
            hit = time.perf_counter() - start
            break
    wall = time.perf_counter() - start
    with torch.no_grad():
        preds = net(xb)[0].reshape(-1).tolist()
    return RunResult(
        method=f"modern: full-sequence BPTT, {cfg.compare_optimizer}",
        final_epoch_loss=None,
        one_step_mse=mse,
        wall_time_s=wall,
        steps=steps,
        steps_per_s=steps / wall if wall > 0 else float("inf"),
        time_to_target_s=hit,
        predictions=preds,
    )


def _mse(preds: list[float], y: torch.Tensor) -> float:
    return float(np.mean((np.asarray(preds) - y.reshape(-1).numpy().astype(np.float64)) ** 2))


def run_tutorial(
    cfg: TutorialConfig, on_epoch: Callable[[int, float], None] | None = None
) -> TutorialResult:
    """Train the seed network (and optionally the modern way) and score both.

    Args:
        cfg: the tutorial's settings.
        on_epoch: called as ``on_epoch(epoch, summed_loss)`` every ``cfg.print_every`` epochs.
    """
    t, x, y = seed_data(cfg.n_points)
    seed_run, _, _ = train_seed_style(cfg, x, y, on_epoch)
    # Naive forecast: the next value equals the current one, i.e. predict y_j = x_j.
    naive = float(np.mean((x.numpy().astype(np.float64) - y.numpy()) ** 2))
    modern = train_full_bptt(cfg, x, y) if cfg.compare else None
    return TutorialResult(
        config=cfg,
        t=t.tolist(),
        x=x.reshape(-1).tolist(),
        y=y.reshape(-1).tolist(),
        naive_mse=naive,
        seed_run=seed_run,
        modern_run=modern,
    )
