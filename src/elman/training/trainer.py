"""The Trainer: optimisation, schedules, clipping, early stopping and the divergence guard.

The trainer knows nothing about model types or forecasting strategies. It is given a *task*
that turns a batch into a loss (see :class:`Task`) and callables that yield batches; the
task owns everything strategy-specific, including any hidden state carried between batches
(stateful truncated BPTT).
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from elman.config import TrainConfig
from elman.errors import TrainingError
from elman.training.precision import autocast_factory, model_device
from elman.training.threads import ThreadGovernor

log = logging.getLogger(__name__)

Batch = Any
MAX_DIVERGENCE_RETRIES = 3  # default: NaN/inf losses tolerated (each halves the LR)


class Task(Protocol):
    """What the trainer needs from a forecasting strategy."""

    def start_epoch(self, epoch: int, train: bool) -> None:
        """Reset per-epoch state (carried hidden state, teacher-forcing ratio, ...)."""

    def loss(self, model: nn.Module, batch: Batch, train: bool) -> tuple[Tensor, int]:
        """Mean loss of one batch and the number of samples it covers."""
        ...


@dataclass
class EpochRecord:
    """One row of the per-epoch metrics table."""

    epoch: int
    train_loss: float
    val_loss: float | None
    lr: float
    seconds: float
    samples_per_s: float
    threads: float = 0.0  # torch threads over the epoch's steps (time-weighted mean)


@dataclass
class TrainState:
    """Everything needed to continue training exactly where it stopped."""

    epoch: int = 0  # next epoch to run
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    best_weights: dict[str, Tensor] | None = None
    history: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False
    interrupted: bool = False
    retries: int = 0  # divergence retries used so far (each halved the learning rate)
    steps: int = 0  # optimizer steps taken (the budget --max-steps counts these)
    budget_spent: bool = False  # stopped because --max-steps was reached
    # the K best validation checks (--average K): {"loss", "epoch", "weights"}, best first
    good: list[dict[str, Any]] = field(default_factory=list)
    averaged: int = 0  # weights averaged into the final model (0: the best check's alone)
    averaged_loss: float | None = None  # validation loss of that average, when it was tried


def build_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (default), SGD with momentum, or L-BFGS with a strong-Wolfe line search."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.LBFGS(params, lr=cfg.lr, max_iter=10, line_search_fn="strong_wolfe")


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """Cosine annealing over the epochs, reduce-on-plateau of the validation loss, or none."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    if cfg.scheduler == "plateau":
        patience = max(1, cfg.patience // 3)
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=patience)
    return None


def average_weights(states: list[dict[str, Tensor]], base: dict[str, Tensor]) -> dict[str, Tensor]:
    """The mean of ``states`` entry by entry; entries that are not floating point (counters)
    are taken from ``base``."""
    out = {}
    for name, value in base.items():
        if value.is_floating_point():
            out[name] = torch.stack([s[name].to(value.dtype) for s in states]).mean(0)
        else:
            out[name] = value.clone()
    return out


class Progress:
    """Training progress on stderr: a redrawn line on a terminal, periodic lines elsewhere.

    On a terminal the line shows the epoch and, within it, the batch; it is redrawn at most
    every ``REDRAW_S`` seconds. When stderr is a pipe or a file, a line is written
    ``FIRST_LINE_S`` seconds after training starts and then every ``EVERY_S`` seconds, so a
    long epoch is never silent for long.
    """

    REDRAW_S = 0.2
    FIRST_LINE_S = 2.0
    EVERY_S = 60.0

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.start = self.last = time.perf_counter()
        self.next_line = self.start + self.FIRST_LINE_S
        self.epoch_text = ""

    def batch(self, epoch: int, done: int, batches: int, loss: float) -> None:
        """Report batch ``done`` of ``batches`` in ``epoch`` (0-based)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        where = f"epoch {epoch + 1}/{self.total}  batch {done}/{batches}  train {loss:.4g}"
        if self.tty and now - self.last >= self.REDRAW_S:
            sys.stderr.write(f"\r{where}  {self.epoch_text}   ")
            sys.stderr.flush()
            self.last = now
        elif not self.tty and now >= self.next_line:
            sys.stderr.write(f"elman: training: {where}, {now - self.start:.0f} s\n")
            sys.stderr.flush()
            self.next_line = now + self.EVERY_S

    def update(self, rec: EpochRecord) -> None:
        """Report a finished epoch."""
        if not self.enabled:
            return
        val = "-" if rec.val_loss is None else f"{rec.val_loss:.4g}"
        self.epoch_text = f"(last epoch: val {val}, {rec.samples_per_s:,.0f} samples/s)"
        if self.tty:
            sys.stderr.write(
                f"\repoch {rec.epoch + 1}/{self.total}  train {rec.train_loss:.4g}  val {val}  "
                f"{rec.samples_per_s:,.0f} samples/s   "
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


class Trainer:
    """Fits a model with a task, batches and a :class:`TrainConfig`.

    Args:
        model: any ``nn.Module``; only the task calls it.
        task: turns training batches into losses.
        cfg: optimisation settings.
        val_task: scores validation batches (default: ``task``, in eval mode).
        governor: moves the thread count while training (see
            :mod:`elman.training.threads`); None keeps it fixed.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        cfg: TrainConfig,
        val_task: Task | None = None,
        governor: ThreadGovernor | None = None,
    ) -> None:
        self.model = model
        self.governor = governor
        self.task = task
        self.val_task = val_task or task
        self.cfg = cfg
        self.optimizer = build_optimizer(model.parameters(), cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.state = TrainState()
        self.stop_requested = False  # set from a signal handler to stop after this batch
        self._progress = Progress(cfg.epochs, enabled=False)  # replaced by fit()
        self.max_retries = int(getattr(cfg, "max_retries", MAX_DIVERGENCE_RETRIES))
        # forward + loss run in this context: float32, or bfloat16 autocast (checked here)
        self.autocast = autocast_factory(getattr(cfg, "precision", "fp32"), model_device(model))
        # cb(trainer, record) after each completed epoch (the state is then at an epoch
        # boundary, as a checkpoint needs it)
        self.callbacks: list[Callable[[Trainer, EpochRecord], None]] = []
        # cb(trainer) once when the loop ends (finished, stopped early or interrupted),
        # before the best weights are loaded into the model
        self.end_callbacks: list[Callable[[Trainer], object]] = []

    # -- one epoch -----------------------------------------------------------------------
    def _step(self, batch: Batch) -> tuple[float, int]:
        if isinstance(self.optimizer, torch.optim.LBFGS):
            holder: dict[str, Any] = {}

            def closure() -> Tensor:
                self.optimizer.zero_grad(set_to_none=True)
                with self.autocast():
                    loss, n = self.task.loss(self.model, batch, True)
                loss.backward()
                holder["loss"], holder["n"] = loss, n
                return loss

            self.optimizer.step(closure)
            return float(holder["loss"].detach()), int(holder["n"])
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss, n = self.task.loss(self.model, batch, True)
        if not torch.isfinite(loss):
            return float("nan"), n
        loss.backward()
        if self.cfg.clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.optimizer.step()
        return float(loss.detach()), n

    def _run_epoch(self, epoch: int, batches: Iterable[Batch]) -> tuple[float, int]:
        self.model.train()
        self.task.start_epoch(epoch, True)
        total, count = 0.0, 0
        batches = list(batches)
        budget = self.cfg.max_steps or 0
        st = self.state
        for i, batch in enumerate(batches):
            if budget and st.steps >= budget:
                st.budget_spent = True
                break
            t0 = time.perf_counter()
            loss, n = self._step(batch)
            st.steps += 1
            if self.governor is not None:
                self.governor.record(time.perf_counter() - t0, n)
            if not math.isfinite(loss):
                return float("nan"), count
            total += loss * n
            count += n
            self._progress.batch(epoch, i + 1, len(batches), total / max(count, 1))
            if self.stop_requested:
                break
        return total / max(count, 1), count

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch]) -> float:
        """Mean loss over ``batches`` in eval mode (no dropout, no teacher forcing)."""
        self.model.eval()
        self.val_task.start_epoch(self.state.epoch, False)
        total, count = 0.0, 0
        for batch in batches:
            with self.autocast():
                loss, n = self.val_task.loss(self.model, batch, False)
            total += float(loss) * n
            count += n
        return total / max(count, 1) if count else float("nan")

    # -- the loop ------------------------------------------------------------------------
    def fit(
        self,
        train_batches: Callable[[int], Iterable[Batch]],
        val_batches: Callable[[], Iterable[Batch]] | None = None,
    ) -> TrainState:
        """Train until ``epochs``, early stopping, or a stop request.

        A trainer whose :attr:`state` was restored from a checkpoint continues at
        ``state.epoch``. A stop request ends the loop after the current batch and discards
        the unfinished epoch, so that the state (and any checkpoint of it) sits at an epoch
        boundary and a resumed run repeats that epoch whole.

        Args:
            train_batches: ``epoch -> batches``; each epoch's order must depend only on the
                epoch number and the seed, so that a resumed run sees the same batches.
            val_batches: ``() -> batches`` of the validation part, or ``None``.
        """
        st = self.state
        st.interrupted = False
        bar = self._progress = Progress(self.cfg.epochs, self.cfg.progress)
        while (
            st.epoch < self.cfg.epochs
            and not st.stopped_early
            and not st.budget_spent
            and not self.stop_requested
        ):
            snapshot = self._snapshot()
            t0 = time.perf_counter()
            steps_before = st.steps
            spent = dict(self.governor.seconds) if self.governor is not None else {}
            train_loss, n = self._run_epoch(st.epoch, train_batches(st.epoch))
            if not math.isfinite(train_loss):
                st.steps = steps_before
                self._recover(snapshot)
                continue
            if n == 0 and st.budget_spent:  # the budget ran out at the end of the last epoch
                break
            if self.stop_requested:
                st.steps = steps_before  # a resumed run repeats this epoch whole
                self._restore(snapshot)
                break
            val_loss = self.evaluate(val_batches()) if val_batches is not None else None
            seconds = time.perf_counter() - t0
            rec = EpochRecord(
                epoch=st.epoch,
                train_loss=train_loss,
                val_loss=val_loss,
                lr=self.optimizer.param_groups[0]["lr"],
                seconds=seconds,
                samples_per_s=n / seconds if seconds > 0 else 0.0,
                threads=round(
                    self.governor.mean_threads(spent)
                    if self.governor is not None
                    else torch.get_num_threads(),
                    2,
                ),
            )
            st.history.append(rec)
            self._schedule(val_loss if val_loss is not None else train_loss)
            st.stopped_early = self._early_stopping(rec)
            st.epoch += 1
            bar.update(rec)
            for cb in self.callbacks:
                cb(self, rec)
        bar.close()
        st.interrupted = self.stop_requested and st.epoch < self.cfg.epochs and not st.stopped_early
        for end in self.end_callbacks:
            end(self)
        if st.best_weights is not None:
            self.model.load_state_dict(st.best_weights)
        if val_batches is not None and not st.interrupted:
            self._average(val_batches)
        return st

    def _average(self, val_batches: Callable[[], Iterable[Batch]]) -> None:
        """Keep the mean of the best checks' weights where it beats the best on validation.

        The mean is taken over the floating-point entries of the K best checks' state
        dicts (``--average K``); other entries come from the best check. It is scored on the
        same validation batches as every check and kept only when its loss is lower than
        the best check's, so it can never make the validation score worse.
        """
        st = self.state
        if self.cfg.average < 2 or len(st.good) < 2 or st.best_weights is None:
            return
        mean = average_weights([g["weights"] for g in st.good], st.best_weights)
        self.model.load_state_dict(mean)
        loss = self.evaluate(val_batches())
        st.averaged_loss = loss
        if math.isfinite(loss) and loss < st.best_loss:
            st.averaged = len(st.good)
            st.best_weights = mean
            log.info("averaged the %d best checks: validation %.6g (best %.6g)",
                     st.averaged, loss, st.best_loss)
        else:
            self.model.load_state_dict(st.best_weights)

    def _schedule(self, monitored: float) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(monitored)
        elif self.scheduler is not None:
            self.scheduler.step()

    def _early_stopping(self, rec: EpochRecord) -> bool:
        st = self.state
        monitored = rec.val_loss if rec.val_loss is not None else rec.train_loss
        weights = None
        if monitored < st.best_loss - 1e-12:
            st.best_loss, st.best_epoch, st.bad_epochs = monitored, rec.epoch, 0
            st.best_weights = weights = self._weights()
            stop = False
        else:
            st.bad_epochs += 1
            stop = st.bad_epochs >= self.cfg.patience
        self._keep_good(monitored, rec.epoch, weights)
        return stop

    def _weights(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _keep_good(self, loss: float, epoch: int, weights: dict[str, Tensor] | None) -> None:
        """Add this check to the K best (``--average K``) when it is one of them."""
        k, good = self.cfg.average, self.state.good
        if k < 2 or not math.isfinite(loss) or (len(good) >= k and loss >= good[-1]["loss"]):
            return
        good.append({"loss": loss, "epoch": epoch, "weights": weights or self._weights()})
        good.sort(key=lambda g: g["loss"])
        del good[k:]

    # -- divergence guard ----------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        """Model, optimizer and RNG state at the start of an epoch."""
        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        }

    def _restore(self, snap: dict[str, Any]) -> None:
        self.model.load_state_dict(snap["model"])
        self.optimizer.load_state_dict(snap["optimizer"])
        torch.set_rng_state(snap["rng"])
        if snap["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(snap["cuda_rng"])

    def _recover(self, snap: dict[str, Any]) -> None:
        """Restore the epoch's start and halve the learning rate, or give up (restored)."""
        st = self.state
        self._restore(snap)
        if st.retries >= self.max_retries:
            tried = (
                f"and stayed so after {self.max_retries} retries with a halved learning rate"
                if self.max_retries
                else "(retries are off: --max-retries 0)"
            )
            raise TrainingError(
                f"the loss became NaN or infinite in epoch {st.epoch + 1} {tried}; "
                "lower --lr, keep --clip on, or check the data for extreme values"
            )
        for group in self.optimizer.param_groups:
            group["lr"] *= 0.5
        st.retries += 1
        log.info(
            "non-finite loss in epoch %d: restored the last good weights, learning rate now %g "
            "(retry %d of %d)",
            st.epoch + 1,
            self.optimizer.param_groups[0]["lr"],
            st.retries,
            self.max_retries,
        )
