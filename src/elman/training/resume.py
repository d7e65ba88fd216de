"""Checkpoint and resume training: a Trainer's whole state in and out of a checkpoint file.

A checkpoint is taken at an epoch boundary and holds everything the next epoch depends on:

=================  ==============================================================
model              ``model.state_dict()``
optimizer          ``optimizer.state_dict()`` (moments, step counts, learning rates)
scheduler          ``scheduler.state_dict()`` (plateau counters, cosine position)
train_state        next epoch, best loss and epoch, bad epochs, divergence retries,
                   stopped early, the per-epoch history, and the best weights
rng                torch (and CUDA, when in use), numpy and Python generator states
train_config       the :class:`~elman.config.TrainConfig` the trainer runs with
data_fingerprint   :func:`data_fingerprint` of the data being fitted
=================  ==============================================================

Batch order and per-epoch sampling derive from ``(seed, epoch)`` (see
:meth:`elman.training.trainer.Trainer.fit`), so restoring this state and running the
remaining epochs gives the same weights, bit for bit, as a run that was never stopped
(same machine, same thread count).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from elman.checkpoint import (
    check_state_dict,
    decode_state,
    encode_state,
    read_checkpoint,
    write_checkpoint,
)
from elman.data.series import Series
from elman.errors import CheckpointError, DataError
from elman.files import CHECKPOINT_FILE
from elman.training.trainer import EpochRecord, Trainer, TrainState

log = logging.getLogger(__name__)

# Options that may differ between a run and its resumption: they change where and how fast
# the run computes, not what it computes (a different thread count may change the last bits).
FREE_OPTIONS = frozenset({"threads", "device", "progress"})
MOMENT_NAMES = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")


def data_fingerprint(series: Sequence[Series]) -> str:
    """``sha256:<hex>`` identifying the data, independent of where it was read from.

    Hashed, for every series in order: its id, the names of its targets, covariates and
    future covariates, its frequency, its time index (see :func:`_index_bytes`), and every
    value as a little-endian float64 in row-major order. The source path, the season and
    the configuration are not part of it.
    """
    h = hashlib.sha256()
    for s in series:
        head = [str(s.series_id), *s.targets, "|", *s.covariates, "|", *s.future_covariates]
        if s.category is not None:  # only then: fingerprints without categories stay as they were
            head.append(f"category={s.category}")
        h.update(("\0".join([*head, str(s.freq)]) + "\n").encode())
        h.update(_index_bytes(s.index))
        h.update(np.ascontiguousarray(s.values, dtype="<f8").tobytes())
    return "sha256:" + h.hexdigest()


def _index_bytes(index: pd.Index) -> bytes:
    """The index kind, then: nanoseconds since 1970 (UTC) for dates, period ordinals for
    periods, the integers for an integer index (all little-endian int64), else each stamp
    as text, one per line."""
    if isinstance(index, pd.DatetimeIndex):
        ns = index.as_unit("ns").asi8
        return f"datetime {index.tz}\n".encode() + np.asarray(ns, dtype="<i8").tobytes()
    if isinstance(index, pd.PeriodIndex):
        return f"period {index.freqstr}\n".encode() + np.asarray(index.asi8, "<i8").tobytes()
    if pd.api.types.is_integer_dtype(index.dtype):
        return b"int\n" + np.asarray(index, dtype="<i8").tobytes()
    return ("text\n" + "\n".join(str(v) for v in index)).encode()


# -- RNG states ----------------------------------------------------------------------------
def capture_rng(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Torch (CPU and, if initialised, CUDA), numpy and Python generator states."""
    tensors["rng.torch"] = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    for i, t in enumerate(cuda):
        tensors[f"rng.cuda.{i}"] = t
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    tensors["rng.python"] = torch.tensor(internal, dtype=torch.int64)
    return {
        "cuda_devices": len(cuda),
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [version, gauss_next],
    }


def restore_rng(doc: Any, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Set every generator to the captured state, or raise :class:`CheckpointError`."""
    try:
        state = tensors["rng.torch"]
        if state.dtype != torch.uint8 or state.shape != torch.get_rng_state().shape:
            raise ValueError("torch generator state has the wrong shape")
        kind, pos, has_gauss, cached = doc["numpy"]
        keys = tensors["rng.numpy"].numpy()
        if keys.shape != (624,) or keys.min() < 0 or keys.max() >= 2**32:
            raise ValueError("numpy generator state is out of range")
        version, gauss_next = doc["python"]
        internal = tuple(int(v) for v in tensors["rng.python"].tolist())
        np.random.set_state((kind, keys.astype(np.uint32), pos, has_gauss, cached))
        random.setstate((version, internal, gauss_next))
        torch.set_rng_state(state)
        n_cuda = int(doc["cuda_devices"])
        if n_cuda and torch.cuda.is_available() and torch.cuda.device_count() == n_cuda:
            torch.cuda.set_rng_state_all([tensors[f"rng.cuda.{i}"] for i in range(n_cuda)])
        elif n_cuda:
            log.warning("%s: CUDA generator states not restored (different GPUs)", where)
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"{where}: invalid random generator state ({exc})") from exc


# -- the whole trainer ---------------------------------------------------------------------
def capture(trainer: Trainer) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A trainer's state as a JSON document and named tensors (see the module table)."""
    st = trainer.state
    tensors: dict[str, torch.Tensor] = {}
    sched = trainer.scheduler
    scalars = {
        f.name: getattr(st, f.name)
        for f in dataclasses.fields(st)
        if f.name not in ("best_weights", "history", "good")
    }
    doc = {
        "model": encode_state(trainer.model.state_dict(), "model", tensors),
        "optimizer_class": type(trainer.optimizer).__name__,
        "optimizer": encode_state(trainer.optimizer.state_dict(), "optimizer", tensors),
        "scheduler_class": type(sched).__name__ if sched is not None else None,
        "scheduler": encode_state(sched.state_dict(), "scheduler", tensors) if sched else None,
        "train_state": encode_state(scalars, "state", tensors),
        "history": encode_state([dataclasses.asdict(r) for r in st.history], "history", tensors),
        "best_weights": encode_state(st.best_weights, "best", tensors),
        "good": encode_state(st.good, "good", tensors),
        "rng": capture_rng(tensors),
        "train_config": dataclasses.asdict(trainer.cfg),
    }
    return doc, tensors


def restore(
    trainer: Trainer, doc: dict[str, Any], tensors: dict[str, torch.Tensor], where: str
) -> None:
    """Put a captured state back into ``trainer`` after checking it fits, part by part."""
    _check_config(doc.get("train_config"), dataclasses.asdict(trainer.cfg), where)
    used: set[str] = set()
    try:
        parts = {
            k: decode_state(doc[k], tensors, used, where)
            for k in ("model", "optimizer", "scheduler", "train_state", "history", "best_weights")
        }
        # checkpoints written before --average existed have no "good" part
        good = decode_state(doc.get("good", []), tensors, used, where)
    except KeyError as exc:
        raise CheckpointError(f"{where}: incomplete checkpoint (no '{exc.args[0]}')") from exc
    used |= {k for k in tensors if k.startswith("rng.")}
    if set(tensors) - used:
        raise CheckpointError(f"{where}: unexpected tensor '{sorted(set(tensors) - used)[0]}'")
    expected = trainer.model.state_dict()
    check_state_dict(expected, parts["model"], where)
    if parts["best_weights"] is not None:
        check_state_dict(expected, parts["best_weights"], where)
    state = _train_state(parts["train_state"], parts["history"], parts["best_weights"], where)
    state.good = _good_checks(good, expected, where)
    if state.epoch > trainer.cfg.epochs:
        raise CheckpointError(
            f"{where}: checkpoint is at epoch {state.epoch}, beyond --epochs {trainer.cfg.epochs}"
        )
    trainer.model.load_state_dict(parts["model"])
    _load_optimizer(trainer, doc.get("optimizer_class"), parts["optimizer"], where)
    _load_scheduler(trainer, doc.get("scheduler_class"), parts["scheduler"], where)
    restore_rng(doc.get("rng"), tensors, where)
    trainer.state = state


def _check_config(saved: Any, current: dict[str, Any], where: str) -> None:
    if not isinstance(saved, dict):
        raise CheckpointError(f"{where}: checkpoint has no training configuration")
    for name, value in current.items():
        if name in FREE_OPTIONS or saved.get(name, value) == value:
            continue
        flag = "--" + name.replace("_", "-")
        raise CheckpointError(
            f"{where}: the checkpoint was written with {flag} {saved.get(name)}, this run has "
            f"{flag} {value}; resume with the options of the original run"
        )


def _train_state(scalars: Any, history: Any, best: Any, where: str) -> TrainState:
    try:
        st = TrainState(**scalars, history=[EpochRecord(**r) for r in history], best_weights=best)
    except TypeError as exc:
        raise CheckpointError(f"{where}: invalid training state ({exc})") from exc
    ints = (st.epoch, st.best_epoch, st.bad_epochs, st.retries)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints) or min(ints) < -1:
        raise CheckpointError(f"{where}: invalid training state (epoch counters)")
    if not isinstance(st.best_loss, float) or len(st.history) != st.epoch:
        raise CheckpointError(f"{where}: invalid training state (history does not match epoch)")
    return st


def _good_checks(good: Any, expected: dict[str, torch.Tensor], where: str) -> list[dict[str, Any]]:
    """The kept best checks of ``--average``, each checked against the model's weights."""
    if not isinstance(good, list):
        raise CheckpointError(f"{where}: invalid training state (kept checks)")
    for g in good:
        if (
            not isinstance(g, dict)
            or set(g) != {"loss", "epoch", "weights"}
            or not isinstance(g["weights"], dict)
        ):
            raise CheckpointError(f"{where}: invalid training state (kept checks)")
        check_state_dict(expected, g["weights"], where)
    return good


def _load_optimizer(trainer: Trainer, kind: Any, state: Any, where: str) -> None:
    opt = trainer.optimizer
    if kind != type(opt).__name__:
        raise CheckpointError(
            f"{where}: checkpoint optimizer is {kind}, expected {type(opt).__name__}"
        )
    try:
        opt.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        raise CheckpointError(f"{where}: optimizer state does not fit the model ({exc})") from exc
    for group in opt.param_groups:
        for p in group["params"]:
            for name, value in opt.state.get(p, {}).items():
                if not isinstance(value, torch.Tensor):
                    continue
                if name in MOMENT_NAMES and value.shape != p.shape:
                    raise CheckpointError(f"{where}: optimizer state '{name}' has the wrong shape")
                if value.is_floating_point() and not torch.isfinite(value).all():
                    raise CheckpointError(f"{where}: optimizer state '{name}' is not finite")


def _load_scheduler(trainer: Trainer, kind: Any, state: Any, where: str) -> None:
    sched = trainer.scheduler
    expected = type(sched).__name__ if sched is not None else None
    if kind != expected:
        raise CheckpointError(f"{where}: checkpoint scheduler is {kind}, expected {expected}")
    if sched is None:
        return
    try:
        sched.load_state_dict(state)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{where}: invalid scheduler state ({exc})") from exc


# -- checkpointing a fit -------------------------------------------------------------------
class FitHook(Protocol):
    """Something :meth:`elman.forecaster.Forecaster.fit` hands its trainer before training."""

    def attach(self, trainer: Trainer, series: list[Series]) -> None:
        """Register callbacks on ``trainer`` (or restore its state) before the first epoch."""


class Checkpointer:
    """Checkpoints a fit every ``every`` epochs and when it ends; optionally resumes one.

    ::

        ckpt = Checkpointer("run/checkpoint", every=5)
        Forecaster("lstm", horizon=12).fit(data, hooks=[ckpt])             # a new run
        Forecaster("lstm", horizon=12).fit(data, hooks=[Checkpointer("run/checkpoint",
                                                        resume=True)])   # continue it

    Args:
        directory: where ``state.safetensors`` goes (created if needed).
        every: epochs between checkpoints; 0 checkpoints only when training ends.
        resume: restore the trainer from the checkpoint in ``directory`` before training.
        fingerprint: data identity to record and check (default: that of the fitted data).
        extra: more JSON to record in each checkpoint (for example the full config).
    """

    def __init__(
        self,
        directory: str | Path,
        every: int = 1,
        resume: bool = False,
        fingerprint: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(directory) / CHECKPOINT_FILE
        self.every = max(0, int(every))
        self.resume = resume
        self.fingerprint = fingerprint
        self.extra = dict(extra or {})
        self.trainer: Trainer | None = None
        self.resumed_from: int | None = None  # the epoch a resumed fit continued at

    def attach(self, trainer: Trainer, series: list[Series]) -> None:
        """Restore ``trainer`` (when resuming) and register the checkpoint callbacks."""
        if self.fingerprint is None:
            self.fingerprint = data_fingerprint(series)
        if self.resume:
            doc, tensors = read_checkpoint(self.path)
            if doc.get("data_fingerprint") != self.fingerprint:
                raise DataError(
                    f"the data differs from the data the run in {self.path.parent.parent} "
                    "started with (its fingerprint changed); resume with the same --data, "
                    "or start a new run with --out"
                )
            restore(trainer, doc, tensors, str(self.path))
            self.resumed_from = trainer.state.epoch
            log.info("resumed from %s at epoch %d", self.path, trainer.state.epoch)
        self.trainer = trainer
        trainer.callbacks.append(self._on_epoch)
        trainer.end_callbacks.append(self.save)

    def _on_epoch(self, trainer: Trainer, rec: EpochRecord) -> None:
        if self.every and trainer.state.epoch % self.every == 0:
            self.save(trainer)

    def save(self, trainer: Trainer) -> Path:
        """Write the trainer's state now (atomically: a temp file renamed into place)."""
        state, tensors = capture(trainer)
        doc = {**self.extra, **state, "data_fingerprint": self.fingerprint}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint(self.path, doc, tensors)
        log.debug("checkpoint at epoch %d: %s", trainer.state.epoch, self.path)
        return self.path
