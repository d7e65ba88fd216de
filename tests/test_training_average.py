"""``--average K``: the weights of the K best validation checks, averaged where that scores
better on validation than the best check alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from test_resume import SineTask, _assert_equal_state, _batches, _net

from elman.config import ConfigError, TrainConfig
from elman.training.resume import Checkpointer
from elman.training.trainer import Trainer, average_weights

X = torch.linspace(-2, 2, 96).reshape(-1, 1)


def test_average_weights_means_floats_and_keeps_counters_from_the_base() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}
    c = {"w": torch.tensor([5.0, 1.0]), "n": torch.tensor(9)}
    mean = average_weights([a, b, c], base=b)
    assert torch.allclose(mean["w"], torch.tensor([3.0, 3.0]))
    assert mean["n"].item() == 7 and mean["n"].dtype == torch.int64


class LineTask:
    """Validation loss (w - 2)^2 for a one-weight model: an oracle for what averaging keeps."""

    def start_epoch(self, epoch: int, train: bool) -> None:
        pass

    def loss(self, model: torch.nn.Module, batch: object, train: bool) -> tuple[torch.Tensor, int]:
        return (model.weight.sum() - 2.0) ** 2, 1


def _line_trainer(checks: list[float], average: int) -> Trainer:
    """A trainer whose kept checks hold the weights ``checks`` (best first)."""
    model = torch.nn.Linear(1, 1, bias=False)
    trainer = Trainer(model, LineTask(), TrainConfig(average=average, progress=False))
    st = trainer.state
    for epoch, w in enumerate(checks):
        weights = {"weight": torch.tensor([[w]])}
        st.good.append({"loss": (w - 2.0) ** 2, "epoch": epoch, "weights": weights})
    st.best_loss, st.best_weights = st.good[0]["loss"], st.good[0]["weights"]
    return trainer


def test_the_average_is_kept_when_it_scores_better_on_validation() -> None:
    trainer = _line_trainer([1.0, 3.0], average=2)  # losses 1 and 1; the mean, 2, scores 0
    trainer._average(lambda: [None])
    st = trainer.state
    assert st.averaged == 2 and st.averaged_loss == 0.0
    assert trainer.model.weight.item() == 2.0
    assert st.best_weights is not None and st.best_weights["weight"].item() == 2.0


def test_the_best_check_is_kept_when_the_average_scores_worse() -> None:
    trainer = _line_trainer([1.9, 5.0], average=2)  # mean 3.45 scores 2.1 against 0.01
    trainer._average(lambda: [None])
    st = trainer.state
    assert st.averaged == 0 and st.averaged_loss == pytest.approx(1.45**2)
    assert trainer.model.weight.item() == pytest.approx(1.9)


def test_average_off_or_one_check_changes_nothing() -> None:
    for checks, k in (([1.0, 3.0], 0), ([1.0], 3)):
        trainer = _line_trainer(checks, average=k)
        trainer.model.weight.data.fill_(float(checks[0]))
        trainer._average(lambda: [None])
        assert trainer.state.averaged_loss is None
        assert trainer.model.weight.item() == checks[0]


def _fit(average: int, hooks: list[Checkpointer] | None = None, stop_at=None) -> Trainer:
    task = SineTask(stop_at=stop_at)
    cfg = TrainConfig(epochs=8, lr=0.02, patience=8, average=average, progress=False)
    trainer = Trainer(_net(0), task, cfg)
    task.trainer = trainer
    for hook in hooks or []:
        hook.attach(trainer, [])
    trainer.fit(_batches, lambda: [torch.arange(len(X))])
    return trainer


def test_the_kept_checks_are_the_k_lowest_validation_losses_of_the_run() -> None:
    torch.manual_seed(5)
    trainer = _fit(average=3)
    st = trainer.state
    val = sorted(r.val_loss for r in st.history if r.val_loss is not None)
    assert [g["loss"] for g in st.good] == val[:3]
    assert st.good[0]["epoch"] == st.best_epoch
    assert st.averaged_loss is not None
    final = trainer.evaluate([torch.arange(len(X))])
    if st.averaged:  # the model holds the mean, and it scored as recorded
        mean = average_weights([g["weights"] for g in st.good], st.good[0]["weights"])
        for name, value in trainer.model.state_dict().items():
            assert torch.equal(value, mean[name]), name
        assert final == pytest.approx(st.averaged_loss) and final < st.best_loss
    else:
        assert final == pytest.approx(st.best_loss)


def test_kept_checks_survive_an_interrupted_and_resumed_run(tmp_path: Path) -> None:
    torch.manual_seed(5)
    ref = _fit(average=3)
    torch.manual_seed(5)
    stopped = _fit(3, [Checkpointer(tmp_path, fingerprint="d")], stop_at=(5, 2))
    assert stopped.state.interrupted and len(stopped.state.good) == 3
    torch.manual_seed(99)
    resumed = _fit(3, [Checkpointer(tmp_path, resume=True, fingerprint="d")])
    assert [g["epoch"] for g in resumed.state.good] == [g["epoch"] for g in ref.state.good]
    assert resumed.state.averaged == ref.state.averaged
    _assert_equal_state(ref.model, resumed.model)


def test_kept_checks_that_do_not_fit_the_model_are_refused_on_resume(tmp_path: Path) -> None:
    from elman.checkpoint import read_checkpoint, write_checkpoint
    from elman.errors import CheckpointError

    torch.manual_seed(5)
    ckpt = Checkpointer(tmp_path, fingerprint="d")
    _fit(3, [ckpt], stop_at=(5, 2))
    doc, tensors = read_checkpoint(ckpt.path)
    doc = {k: v for k, v in doc.items() if not k.endswith("_sha256")}  # resealed below
    broken = dict(doc, good=[{k: v for k, v in g.items() if k != "epoch"} for g in doc["good"]])
    write_checkpoint(ckpt.path, broken, tensors)  # sealed again: only the content is wrong
    with pytest.raises(CheckpointError, match=r"invalid training state \(kept checks\)"):
        _fit(3, [Checkpointer(tmp_path, resume=True, fingerprint="d")])
    first = doc["good"][0]["weights"]
    name = next(iter(first))
    tensors[first[name]["__tensor__"]] = torch.zeros(7, 7)  # a weight of another shape
    write_checkpoint(ckpt.path, doc, tensors)
    with pytest.raises(CheckpointError, match="shape"):
        _fit(3, [Checkpointer(tmp_path, resume=True, fingerprint="d")])


def test_a_negative_or_unbounded_average_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"--average \(-1\) must be >= 0"):
        TrainConfig(average=-1)
    with pytest.raises(ConfigError, match=r"--average \(51\) must be at most 50: each"):
        TrainConfig(average=51)


def test_forecaster_reports_averaging_in_its_summary_info_and_report(tmp_path: Path) -> None:
    t = np.arange(240, dtype=float)
    y = np.sin(2 * np.pi * t / 12) + 0.1 * np.cos(t / 7)
    data = tmp_path / "y.csv"
    data.write_text("y\n" + "\n".join(f"{v:.6f}" for v in y) + "\n")
    out = tmp_path / "run"
    args = ["--data", str(data), "--horizon", "6", "--season", "12", "--epochs", "6"]
    r = run_cli("train", *args, "--average", "4", "--ensemble", "none", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "best checks averaged" in r.stdout or "the best check kept" in r.stdout
    info = run_cli("info", str(out))
    assert info.returncode == 0 and "averaging" in info.stdout
    report = (out / "report.md").read_text()
    assert "best check" in report
