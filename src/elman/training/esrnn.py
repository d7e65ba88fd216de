"""Training an ES-RNN with the generic :class:`~elman.training.trainer.Trainer`.

A batch is a set of series (their indices); :class:`EsrnnTask` runs the smoothing over each
one's history and scores the forecasts from every origin whose targets lie in the training
part with the pinball loss, plus the level-wiggliness penalty
(:func:`~elman.forecasting.esrnn.esrnn_loss`). Validation scores the forecasts whose
targets lie in the last ``val_size`` points. Early stopping, clipping, the schedules, the
divergence guard and checkpoints (``--resume``) are the trainer's, as for any model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from elman.config import Config
from elman.data.prepare import Sizes, fit_scalers, layout_of, resolve_sizes
from elman.data.series import Series
from elman.errors import ConfigError
from elman.forecasting.esrnn import (
    EsrnnPredictor,
    category_index,
    esrnn_loss,
    esrnn_loss_sums,
    history_rows,
    positive_values,
)
from elman.forecasting.predictor import series_key
from elman.models.esrnn import ESRNN, aligned_start
from elman.models.registry import build_model
from elman.runtime import choose_device, configure_threads, seed_everything
from elman.training import distributed
from elman.training.resume import FitHook
from elman.training.trainer import Trainer, TrainState

ESRNN_THREADS = 1  # threads when --threads is not given (10 s against 97 s on 2 busy cores)


def default_window(horizon: int, season: int, room: int | None = None) -> int:
    """The input window when ``--lookback`` is not given: two horizons, at most a season.

    ``room``, given for a panel, is the longest window its shortest series holds (its
    points less the validation part and one horizon). A panel's window grows towards a
    whole season within that room: one global network learns from every series' origins,
    and on M4 Weekly's validation hold-out the longer window scored better (docs/models.md),
    while on single series it scored worse.
    """
    base = max(horizon, min(2 * horizon, season)) if season > 1 else max(horizon, 12)
    if room is not None and season > 1:
        return max(base, min(season, room))
    return base


class EsrnnTask:
    """The loss of a batch of series (see the module notes).

    Args:
        rows: the history each series' smoothing reads, 1-D float32 tensors.
        first: per series, the first step whose target counts ``[S]``.
        quantile: the pinball loss's quantile.
        level_penalty: weight of the log level's wiggliness (training only).
    """

    def __init__(
        self, rows: list[Tensor], first: Tensor, quantile: float, level_penalty: float
    ) -> None:
        self.rows, self.first = rows, first
        self.quantile, self.level_penalty = quantile, level_penalty
        self.dist: distributed.Distributed | None = None  # set when training on ranks

    def start_epoch(self, epoch: int, train: bool) -> None:
        """Nothing carries between epochs."""

    def to(self, device: torch.device) -> None:
        """Move the histories to ``device`` (a rank's GPU)."""
        self.rows = [r.to(device) for r in self.rows]
        self.first = self.first.to(device)

    def loss(self, model: nn.Module, batch: Any, train: bool) -> tuple[Tensor, int]:
        """Mean loss of the series ``batch`` (indices), or of a rank's
        :class:`~elman.training.distributed.Shard` of them (see :meth:`_sharded`)."""
        if isinstance(batch, distributed.Shard):
            return self._sharded(model, batch, train)
        assert isinstance(model, ESRNN)
        rows = [self.rows[int(i)] for i in batch]
        penalty = self.level_penalty if train else 0.0
        ids = batch.to(self.first.device)
        return esrnn_loss(model, rows, ids, self.first[ids], self.quantile, penalty), len(batch)

    def _sharded(
        self, model: nn.Module, shard: distributed.Shard, train: bool
    ) -> tuple[Tensor, int]:
        """The whole batch's loss, from this rank's series and the others' sums.

        The pinball loss is a mean over the scored forecasts of the whole batch, whose
        count differs between series, so the ranks add up sums and counts (one all-reduce)
        instead of averaging their means. The value returned is the whole batch's loss on
        every rank; its gradient is ``world_size`` times this rank's share, so that DDP's
        average over ranks is the whole batch's gradient, for the per-series parameters and
        the network alike. A rank without series runs one borrowed series with weight 0.
        """
        assert self.dist is not None
        inner = distributed.unwrap(model)
        assert isinstance(inner, ESRNN)
        work, weight = shard.work
        ids = work.to(self.first.device)
        rows = [self.rows[int(i)] for i in ids]
        lo = self.first[ids]
        pin, count, wiggle = esrnn_loss_sums(inner, rows, ids, lo, self.quantile, model)
        local = torch.stack([pin, count.to(pin.dtype), wiggle]) * weight
        sums = self.dist.all_reduce(local.detach().double().clone())  # [pinball, count, wiggle]
        penalty = self.level_penalty if train else 0.0
        total = sums[1].clamp(min=1).to(pin.dtype)
        mine = local[0] / total + penalty * local[2] / shard.total
        whole = (sums[0] / sums[1].clamp(min=1) + penalty * sums[2] / shard.total).to(pin.dtype)
        return distributed.with_value(mine * self.dist.world_size, whole), shard.total


def fit_esrnn(
    series: list[Series],
    config: Config,
    hooks: Sequence[FitHook] = (),
    on_trainer: Callable[[Trainer], None] | None = None,
) -> tuple[EsrnnPredictor, TrainState, Trainer, list[int]]:
    """Train an ES-RNN on ``series``; returns the predictor, the training state, the trainer
    and where each series' training part ends."""
    values = [positive_values(s) for s in series]
    if config.model.strategy != "direct":
        raise ConfigError(
            "--model esrnn forecasts the whole horizon at once; use --strategy direct"
        )
    sizes = _sizes(series, config)
    # the smoothing is thousands of tiny steps: extra threads only wait on each other
    configure_threads(config.train.threads or ESRNN_THREADS)
    device = choose_device(config.train.device)
    # data-parallel: each rank scores its slice of every batch of series; every rank holds
    # every series' parameters, and averaging the ranks' gradients gives the gradient of
    # the global batch's mean loss for per-series and shared parameters alike
    dist = distributed.current(device)
    seed_everything(config.train.seed)
    model = build_model(
        "esrnn", input_size=1, output_size=sizes.horizon, hidden_size=config.model.hidden_size,
        num_layers=config.model.num_layers, dropout=config.model.dropout, window=sizes.lookback,
        season=sizes.season, season2=config.model.season2, n_series=len(series),
        categories=category_names(series, config),
    )  # fmt: skip
    assert isinstance(model, ESRNN)
    if model.n_categories:
        model.get_buffer("series_category").copy_(category_index(model, series))
    ends = [len(s) - sizes.val_size for s in series]
    history, t = config.model.history, config.train
    train = EsrnnTask(
        history_rows(model, [v[:e] for v, e in zip(values, ends, strict=True)], history),
        torch.zeros(len(series), dtype=torch.long), t.quantile, t.level_penalty,
    )  # fmt: skip
    val_task, val_batches = None, None
    if sizes.val_size:
        full = history_rows(model, values, history)
        first = torch.tensor(
            [
                e - aligned_start(len(v), history, model.cycle)
                for v, e in zip(values, ends, strict=True)
            ]
        )
        val_task = EsrnnTask(full, first, t.quantile, 0.0)
        everything = torch.arange(len(series))
        val_batches = lambda: list(everything.split(max(t.batch_size, 256)))  # noqa: E731
    trained: nn.Module = model
    batches: Any = _batches(len(series), t.batch_size, t.seed)
    if dist is not None:  # DDP; each rank scores its slice of every batch of series
        model.to(dist.device)
        for task in (train, val_task):
            if task is not None:
                task.to(dist.device)
                task.dist = dist
        trained, batches = dist.wrap(model), dist.shard(batches)
        val_batches = dist.shard(val_batches) if val_batches is not None else None
    trainer = Trainer(trained, train, t, val_task=val_task)
    if on_trainer is not None:
        on_trainer(trainer)
    for hook in hooks:
        hook.attach(trainer, series)
    state = trainer.fit(batches, val_batches)
    scalers = fit_scalers(series, ends, config.data.scaler)  # interval widths' units
    keyed = {series_key(s): sc for s, sc in zip(series, scalers, strict=True)}
    layout = layout_of(series[0])
    predictor = EsrnnPredictor(model.cpu().eval(), sizes, layout, keyed, config)
    return predictor, state, trainer, ends


def category_names(series: list[Series], config: Config) -> list[str]:
    """The categories of ``--category``, sorted (none without the option)."""
    if config.data.category is None:
        return []
    return sorted({str(s.category) for s in series})


def _sizes(series: list[Series], config: Config) -> Sizes:
    data = config.data
    if len({series_key(s) for s in series}) != len(series):
        raise ConfigError("--model esrnn needs a distinct id for every series (--series-id)")
    season = data.season or int(series[0].season or 1)
    if data.lookback is not None:
        return resolve_sizes(series, data)
    base = resolve_sizes(series, replace(data, lookback=default_window(data.horizon, season)))
    if len(series) < 2:
        return base
    room = min(len(s) for s in series) - base.val_size - base.horizon
    window = default_window(data.horizon, season, room)
    if window == base.lookback:
        return base
    return resolve_sizes(series, replace(data, lookback=window))


def _batches(n: int, size: int, seed: int) -> Callable[[int], Any]:
    """Each epoch, the series in an order fixed by the seed and the epoch, ``size`` at a time."""

    def batches(epoch: int) -> list[Tensor]:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        return list(torch.randperm(n, generator=gen).split(size))

    return batches
