"""Resuming training: a stopped or killed run continues to the same weights, bit for bit.

In-process tests drive the Trainer and the Forecaster; the slow tests run ``elman train`` in
a real subprocess, kill it with SIGKILL (or interrupt it with SIGINT) in the middle of
training and resume it with ``elman train --resume``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file
from torch import nn

from elman.checkpoint import read_checkpoint_doc
from elman.config import TrainConfig
from elman.errors import CheckpointError, DataError
from elman.files import CHECKPOINT_DIR, CHECKPOINT_FILE
from elman.forecaster import Forecaster
from elman.training.resume import Checkpointer, data_fingerprint
from elman.training.trainer import Trainer

# ------------------------------------------------------------------ Trainer level
X = torch.linspace(-2, 2, 96).reshape(-1, 1)
Y = torch.sin(3 * X)


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 1))


class SineTask:
    """A real Task: MSE on a fixed regression; optionally asks its trainer to stop mid-epoch."""

    def __init__(self, stop_at: tuple[int, int] | None = None) -> None:
        self.stop_at = stop_at  # (epoch, batch): stop after this batch
        self.trainer: Trainer | None = None
        self.epoch, self.batch = 0, 0

    def start_epoch(self, epoch: int, train: bool) -> None:
        self.epoch, self.batch = epoch, 0

    def loss(self, model: nn.Module, idx: torch.Tensor, train: bool) -> tuple[torch.Tensor, int]:
        self.batch += 1
        if train and self.trainer is not None and (self.epoch, self.batch) == self.stop_at:
            self.trainer.stop_requested = True
        return nn.functional.mse_loss(model(X[idx]), Y[idx]), len(idx)


def _batches(epoch: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + epoch)
    return list(torch.randperm(len(X), generator=gen).split(16))


CFG = TrainConfig(epochs=6, lr=0.02, patience=3, scheduler="plateau", progress=False)


def _train(net: nn.Module, task: SineTask, hooks: list[Checkpointer]) -> Trainer:
    trainer = Trainer(net, task, CFG)
    task.trainer = trainer
    for hook in hooks:
        hook.attach(trainer, [])
    trainer.fit(_batches, lambda: [torch.arange(len(X))])
    return trainer


def _assert_equal_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_trainer_interrupted_mid_epoch_resumes_bit_identically(tmp_path: Path) -> None:
    torch.manual_seed(5)
    ref = _train(_net(0), SineTask(), [])
    torch.manual_seed(5)
    stopped = _train(_net(0), SineTask(stop_at=(3, 2)), [Checkpointer(tmp_path, fingerprint="d")])
    assert stopped.state.interrupted and stopped.state.epoch == 3  # epoch 3 discarded whole
    torch.manual_seed(99)  # a different global RNG and init: the checkpoint restores both
    resumed = _train(_net(1), SineTask(), [Checkpointer(tmp_path, resume=True, fingerprint="d")])
    assert [r.train_loss for r in resumed.state.history] == [
        r.train_loss for r in ref.state.history
    ]
    _assert_equal_state(ref.model, resumed.model)
    assert resumed.state.best_epoch == ref.state.best_epoch
    assert resumed.optimizer.param_groups[0]["lr"] == ref.optimizer.param_groups[0]["lr"]


def test_checkpoint_cadence_every_n_epochs_and_at_the_end(tmp_path: Path) -> None:
    seen: list[int | None] = []
    ckpt = Checkpointer(tmp_path, every=2, fingerprint="d")

    class Observer:
        def attach(self, trainer: Trainer, series: list) -> None:
            trainer.callbacks.append(lambda t, rec: seen.append(_epoch_on_disk(ckpt)))

    _train(_net(0), SineTask(), [ckpt, Observer()])  # type: ignore[list-item]
    assert seen == [None, 2, 2, 4, 4, 6]
    assert _epoch_on_disk(ckpt) == 6


def _epoch_on_disk(ckpt: Checkpointer) -> int | None:
    if not ckpt.path.exists():
        return None
    return int(read_checkpoint_doc(ckpt.path)["train_state"]["epoch"])


def test_resume_refuses_other_training_options(tmp_path: Path) -> None:
    _train(_net(0), SineTask(), [Checkpointer(tmp_path, fingerprint="d")])
    trainer = Trainer(_net(0), SineTask(), TrainConfig(epochs=6, lr=0.5, progress=False))
    with pytest.raises(CheckpointError, match="written with --lr 0.02, this run has --lr 0.5"):
        Checkpointer(tmp_path, resume=True, fingerprint="d").attach(trainer, [])


def test_resume_refuses_a_model_of_another_shape(tmp_path: Path) -> None:
    _train(_net(0), SineTask(), [Checkpointer(tmp_path, fingerprint="d")])
    other = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 1))
    with pytest.raises(CheckpointError, match="has shape"):
        Checkpointer(tmp_path, resume=True, fingerprint="d").attach(
            Trainer(other, SineTask(), CFG), []
        )


def test_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        Checkpointer(tmp_path, resume=True).attach(Trainer(_net(0), SineTask(), CFG), [])


# ------------------------------------------------------------------ Forecaster level
def _series(n: int = 200, shift: float = 0.0) -> np.ndarray:
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 16) + 0.3 * np.sin(t / 7.0) + shift


OPTS = dict(
    horizon=4,
    lookback=16,
    hidden_size=8,
    num_layers=2,
    dropout=0.2,
    strategy="recursive",
    teacher_forcing=0.7,
    scheduled_sampling=True,
    epochs=5,
    batch_size=16,
    progress=False,
    threads=1,
)


class StopAfter:
    """A fit hook that asks for a stop once ``epoch`` epochs are complete."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def attach(self, trainer: Trainer, series: list) -> None:
        def cb(t: Trainer, rec: object) -> None:
            if t.state.epoch == self.epoch:
                t.stop_requested = True

        trainer.callbacks.append(cb)


def test_forecaster_stopped_and_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    ref = Forecaster("lstm", **OPTS).fit(_series())
    first = Forecaster("lstm", **OPTS).fit(_series(), hooks=[Checkpointer(tmp_path), StopAfter(2)])
    assert first.train_state is not None and first.train_state.interrupted
    again = Forecaster("lstm", **OPTS).fit(_series(), hooks=[Checkpointer(tmp_path, resume=True)])
    assert again.model is not None and ref.model is not None
    _assert_equal_state(ref.model, again.model)
    np.testing.assert_array_equal(ref.predict().to_numpy(), again.predict().to_numpy())


def test_resume_on_changed_data_is_refused(tmp_path: Path) -> None:
    Forecaster("gru", **OPTS).fit(_series(), hooks=[Checkpointer(tmp_path), StopAfter(1)])
    with pytest.raises(DataError, match="fingerprint changed"):
        Forecaster("gru", **OPTS).fit(
            _series(shift=1e-9), hooks=[Checkpointer(tmp_path, resume=True)]
        )


def test_data_fingerprint_ignores_the_source_but_not_values_or_stamps() -> None:
    from elman.config import DataConfig
    from elman.data.prepare import load_series

    a = load_series(_series(), DataConfig())
    b = load_series(_series(), DataConfig())
    b[0].source = "elsewhere.csv"
    assert data_fingerprint(a) == data_fingerprint(b)
    c = load_series(_series(shift=1e-12), DataConfig())
    assert data_fingerprint(a) != data_fingerprint(c)
    d = load_series(_series(), DataConfig())
    d[0].index = d[0].index + 1
    assert data_fingerprint(a) != data_fingerprint(d)


# ------------------------------------------------------------------ real processes
def _write_data(path: Path) -> Path:
    t = np.arange(1200)
    y = np.sin(2 * np.pi * t / 40) + 0.2 * np.sin(t / 9.0)
    path.write_text("t,y\n" + "".join(f"{i},{v:.6f}\n" for i, v in zip(t, y, strict=True)))
    return path


def _train_args(data: Path, out: Path) -> list[str]:
    return [
        "train", "--data", str(data), "--target", "y", "--time-col", "t",
        "--horizon", "4", "--lookback", "24", "--model", "lstm", "--hidden-size", "16",
        "--num-layers", "2", "--dropout", "0.2", "--batch-size", "16", "--epochs", "12",
        "--patience", "4", "--threads", "1", "--seed", "7", "--no-progress-bar",
        "--out", str(out),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The data file and an uninterrupted run on it."""
    root = tmp_path_factory.mktemp("resume")
    data = _write_data(root / "data.csv")
    done = run_cli(*_train_args(data, root / "reference"))
    assert done.returncode == 0, done.stderr
    return data, root / "reference"


def _start_and_stop(data: Path, out: Path, sig: int, after_epoch: int) -> subprocess.Popen:
    """Start a run, wait until a checkpoint at ``after_epoch`` exists, then send ``sig``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    args = [sys.executable, "-m", "elman", *_train_args(data, out)]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    path = out / CHECKPOINT_DIR / CHECKPOINT_FILE
    while proc.poll() is None:
        if path.exists() and read_checkpoint_doc(path)["train_state"]["epoch"] >= after_epoch:
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    proc.wait(timeout=300)
    return proc


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.mark.slow
def test_kill_9_mid_training_then_resume_gives_identical_weights(reference, tmp_path) -> None:
    data, ref = reference
    out = tmp_path / "killed"
    proc = _start_and_stop(data, out, signal.SIGKILL, after_epoch=2)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "model.safetensors").exists()
    done = run_cli("train", "--resume", str(out))
    assert done.returncode == 0, done.stderr
    assert "resumed at epoch" in done.stdout
    _assert_same_weights(ref, out)
    assert (ref / "history.csv").read_text().count("\n") == (out / "history.csv").read_text().count(
        "\n"
    )


@pytest.mark.slow
def test_ctrl_c_checkpoints_exits_130_and_resumes_identically(reference, tmp_path) -> None:
    data, ref = reference
    out = tmp_path / "interrupted"
    proc = _start_and_stop(data, out, signal.SIGINT, after_epoch=2)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 130, stderr
    assert stderr.splitlines() == [
        f"elman: interrupted; checkpoint saved to {out} (resume with: elman train --resume {out})"
    ]
    assert "Traceback" not in stderr
    done = run_cli("train", "--resume", str(out))
    assert done.returncode == 0, done.stderr
    _assert_same_weights(ref, out)


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_resumes_identically(reference, tmp_path) -> None:
    """kill (or a scheduler's stop) used to end the run at once, without a checkpoint."""
    data, ref = reference
    out = tmp_path / "terminated"
    proc = _start_and_stop(data, out, signal.SIGTERM, after_epoch=2)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 130, stderr
    assert "checkpoint saved" in stderr and "Traceback" not in stderr
    done = run_cli("train", "--resume", str(out))
    assert done.returncode == 0, done.stderr
    _assert_same_weights(ref, out)
