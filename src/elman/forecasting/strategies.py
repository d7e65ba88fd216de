"""Multi-step prediction strategies on tensors: ``direct`` and ``recursive``.

See :mod:`elman.data.windows` for the column layout and the windows. A ``direct`` model
emits the whole horizon from the last input step; a ``recursive`` one predicts one step and
is fed its own prediction back (:func:`recursive_rollout`). :func:`forecast_windows` adds
the per-window reference (``norm="last"``) back in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from elman.data.windows import Layout
from elman.errors import ConfigError, DataError


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
