"""One fit, set up and run: series in, a trained :class:`~elman.forecasting.predictor.Predictor`.

:func:`fit_predictor` does what :meth:`Forecaster.fit <elman.forecaster.Forecaster.fit>`
promises: it resolves the sizes, fits one scaler per series on its training part (the
last ``val_size`` points of each series are kept for early stopping), builds the network
and the training task (windows, or stateful TBPTT lanes), wraps it for DDP when this
process is a rank of a torchrun job, and trains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from elman.config import Config
from elman.data.prepare import (
    Sizes,
    build_panel,
    check_same_schema,
    fit_scalers,
    resolve_sizes,
    window_pads,
)
from elman.data.series import Series
from elman.data.windows import (
    Layout,
    Panel,
    WindowRanges,
    epoch_batches,
    epoch_picks,
    tbptt_lanes,
    windows_per_pass,
)
from elman.errors import ConfigError
from elman.forecasting.predictor import Predictor, series_key
from elman.models.base import SequenceModel
from elman.models.registry import build_model
from elman.models.switches import ENV_FIXED_THREADS, env_flag
from elman.runtime import available_memory, choose_device, configure_threads, seed_everything
from elman.training import distributed
from elman.training.esrnn import fit_esrnn
from elman.training.memory import keep_freed_memory
from elman.training.resume import FitHook
from elman.training.tasks import TbpttTask, WindowTask
from elman.training.threads import ThreadGovernor
from elman.training.trainer import Trainer, TrainState


@dataclass
class Fitted:
    """The outcome of :func:`fit_predictor`."""

    predictor: Predictor
    state: TrainState
    trainer: Trainer
    ends: list[int]  # where each series' training part ends (its validation part starts)


def fit_predictor(
    series: list[Series],
    config: Config,
    hooks: Sequence[FitHook] = (),
    on_trainer: Callable[[Trainer], None] | None = None,
) -> Fitted:
    """Train a network on ``series`` with ``config``; see the module notes.

    Args:
        series: one or more series with the same columns.
        config: the resolved configuration.
        hooks: get the trainer before the first epoch (for example a
            :class:`~elman.training.resume.Checkpointer`).
        on_trainer: called with the trainer once it exists, before training starts.
    """
    check_same_schema(series)
    if config.data.category is not None and config.model.model != "esrnn":
        raise ConfigError(
            f"--category feeds the network of --model esrnn only; drop --category "
            f"{config.data.category} or use --model esrnn"
        )
    if config.model.model == "esrnn":  # per-series smoothing: whole series, not windows
        if config.train.loss != "mse":
            raise ConfigError(
                f"--loss {config.train.loss} applies to window networks; --model esrnn trains "
                "with its pinball loss (set its quantile with --quantile)"
            )
        esrnn, st, tr, ends_ = fit_esrnn(series, config, hooks, on_trainer)
        return Fitted(esrnn, st, tr, ends_)
    # padded windows: direct windows only (a recursive window's loss covers its inputs too,
    # which padding would fill with copies), and not truncated BPTT (whole series, no windows)
    pad = config.model.strategy == "direct" and not config.train.tbptt
    sizes = resolve_sizes(series, config.data, pad=pad)
    check_strategy(config, series[0])
    threads = configure_threads(config.train.threads, share=distributed.local_share())
    keep_freed_memory()  # reuse activation buffers between steps
    device = choose_device(config.train.device)
    dist = distributed.current(device)  # None unless this is a rank of a torchrun job
    device = dist.device if dist is not None else device
    # the thread count moves with the machine's load only when it is elman's own choice
    governor = (
        ThreadGovernor(threads)
        if config.train.threads is None
        and threads > 1
        and device.type == "cpu"
        and not env_flag(ENV_FIXED_THREADS)
        else None
    )
    seed_everything(config.train.seed)
    ends = [len(s) - sizes.val_size for s in series]
    scalers = fit_scalers(series, ends, config.data.scaler)
    panel = build_panel(series, scalers, window_pads(ends, sizes))
    layout = panel.layout
    check_network_fits(config, layout, sizes)
    model = build_network(config, layout, sizes).to(device)
    task, train_batches = _task(config, panel, ends, sizes, device)
    val_task, val_batches = _val_batches(config, panel, series, ends, sizes, device)
    trained: torch.nn.Module = model
    scorer: Any = val_task
    if dist is not None:  # DDP; each rank keeps its slice of every global batch
        trained, task, train_batches, scorer, val_batches = dist.prepare(
            model, task, train_batches, val_task, val_batches
        )
    trainer = Trainer(trained, task, config.train, val_task=scorer, governor=governor)
    if on_trainer is not None:
        on_trainer(trainer)
    for hook in hooks:
        hook.attach(trainer, series)
    state = trainer.fit(train_batches, val_batches)
    fitted = {series_key(s): sc for s, sc in zip(series, scalers, strict=True)}
    predictor = Predictor(model.cpu().eval(), sizes, layout, fitted, config)
    return Fitted(predictor, state, trainer, ends)


def check_strategy(config: Config, first: Series) -> None:
    """Refuse option combinations that cannot train on this data."""
    if config.model.strategy == "recursive" and first.covariates:
        raise ConfigError(
            "past covariates are unknown beyond the last observation, so --strategy "
            "recursive cannot feed them back; use --strategy direct or --future-covariates"
        )
    if config.train.tbptt and config.data.norm != "none":
        raise ConfigError(
            f"--tbptt ({config.train.tbptt}) carries the hidden state across the whole series, "
            "so there is no window to normalise; add --norm none"
        )


MAX_LAYERS = 32  # deeper recurrent stacks train too slowly here to be worth a run
TRAIN_BYTES_PER_PARAMETER = 16  # float32 weight, its gradient and Adam's two moments


def check_network_fits(config: Config, layout: Layout, sizes: Sizes) -> None:
    """Refuse, before allocating anything, a network this machine cannot train.

    The network is built on PyTorch's ``meta`` device (shapes only) to count its
    parameters; their weights, gradients and optimizer state must fit in the memory
    available now.
    """
    m = config.model
    if m.num_layers > MAX_LAYERS:
        raise ConfigError(
            f"--num-layers ({m.num_layers}) is above elman's limit of {MAX_LAYERS}; a few "
            "layers (1 to 3) are what recurrent forecasters use"
        )
    with torch.device("meta"):
        probe = build_network(config, layout, sizes)
    params = sum(p.numel() for p in probe.parameters())
    need = params * TRAIN_BYTES_PER_PARAMETER
    free = available_memory()
    if free is not None and need > free:
        raise ConfigError(
            f"--hidden-size {m.hidden_size} with --num-layers {m.num_layers} makes a network of "
            f"{params:,} parameters whose weights, gradients and optimizer state alone need "
            f"{need / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB available; use a "
            "smaller --hidden-size or fewer --num-layers"
        )


def build_network(config: Config, layout: Layout, sizes: Sizes) -> SequenceModel:
    """The network of ``config`` for this column layout and these sizes."""
    m = config.model
    direct = m.strategy == "direct"
    return build_model(
        m.model,
        input_size=layout.input_size,
        output_size=layout.n_targets * (sizes.horizon if direct else 1),
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        dropout=m.dropout,
        highway=sizes.lookback if direct and m.highway else 0,
        highway_inputs=layout.n_targets,
    )


def _task(
    config: Config, panel: Panel, ends: list[int], sizes: Sizes, device: Any
) -> tuple[Any, Any]:
    t = config.train
    if t.tbptt:
        lanes, lane_len = tbptt_lanes(panel.offsets, ends, t.batch_size)
        tbptt = TbpttTask(
            panel, lanes, lane_len, t.tbptt, sizes.horizon, config.model.strategy, device, t.loss
        )
        return tbptt, lambda epoch: tbptt.batches()
    task = WindowTask(
        panel,
        sizes.lookback,
        sizes.horizon,
        config.model.strategy,
        config.data.norm,
        teacher_forcing=t.teacher_forcing,
        scheduled_sampling=t.scheduled_sampling,
        epochs=t.epochs,
        seed=t.seed,
        device=device,
        loss=t.loss,
    )
    lo = [0] * len(ends)
    ranges = WindowRanges.of(panel.offsets, sizes.lookback, sizes.horizon, lo, ends, panel.pads)

    def batches(epoch: int) -> list[torch.Tensor]:  # see elman.data.windows
        return epoch_batches(ranges, t.batch_size, t.max_batches, t.seed, epoch)

    return task, batches


def _val_batches(
    config: Config, panel: Panel, series: list[Series], ends: list[int], sizes: Sizes, device: Any
) -> tuple[WindowTask | None, Any]:
    """Validation windows: targets in the last ``val_size`` points, inputs may reach back."""
    if not sizes.val_size:
        return None, None
    lens = [len(s) for s in series]
    starts = torch.from_numpy(
        validation_sample(
            panel.starts(sizes.lookback, sizes.horizon, ends, lens),
            config.train.val_windows,
            config.train.seed,
        )
    )
    if len(starts) == 0:
        return None, None
    task = WindowTask(
        panel, sizes.lookback, sizes.horizon, config.model.strategy, config.data.norm,
        device=device, loss=config.train.loss,
    )  # fmt: skip
    width = max(config.model.hidden_size, panel.layout.input_size)
    cap = max(config.train.batch_size, VAL_PASS_WINDOWS)
    size = windows_per_pass(sizes.lookback + sizes.horizon, width, cap=cap)
    return task, lambda: list(starts.split(size))


VAL_PASS_WINDOWS = 1024  # validation windows per forward pass at most (also memory-bounded)


def validation_sample(starts: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """The validation windows scored at every check: all of them, or ``cap`` of them.

    The sample is drawn once per run from the seed (the same windows at every check, so
    the early-stopping curve is not noise from redrawing) and kept in panel order.
    """
    if not cap or len(starts) <= cap:
        return starts
    # the draw an epoch of ``max_batches`` makes, with a salt in place of the epoch number
    return np.sort(starts[epoch_picks(len(starts), cap, seed, VAL_SAMPLE_SALT).numpy()])


VAL_SAMPLE_SALT = 104729
