"""The divergence guard: a NaN/inf loss restores the epoch's start, halves the LR and retries.

A small module that emits inf on chosen forward calls drives the real Trainer, so the test
knows exactly when the loss goes bad.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from elman.config import TrainConfig
from elman.errors import TrainingError
from elman.training.trainer import Trainer

X = torch.linspace(-1, 1, 64).reshape(-1, 1)
Y = 2 * X + 0.5


class InfOnCalls(nn.Module):
    """A linear layer whose output becomes inf on the listed training forward calls (1-based)."""

    def __init__(self, bad_calls: set[int] | None = None, bad_from: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(1, 1)
        self.bad_calls, self.bad_from = bad_calls or set(), bad_from
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        if not self.training:
            return y
        self.calls += 1
        if self.calls in self.bad_calls or (
            self.bad_from is not None and self.calls >= self.bad_from
        ):
            return y * float("inf")
        return y


class RegressionTask:
    def start_epoch(self, epoch: int, train: bool) -> None:
        pass

    def loss(self, model: nn.Module, idx: torch.Tensor, train: bool) -> tuple[torch.Tensor, int]:
        return nn.functional.mse_loss(model(X[idx]), Y[idx]), len(idx)


def _batches(epoch: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(epoch)
    return list(torch.randperm(len(X), generator=gen).split(16))  # 4 batches per epoch


def _cfg(**kw: object) -> TrainConfig:
    base: dict = dict(epochs=4, lr=0.05, scheduler="none", progress=False, clip=None)
    return TrainConfig(**{**base, **kw})


def test_inf_loss_restores_epoch_start_halves_lr_and_retries() -> None:
    # The 6th forward call is batch 2 of epoch 2 (index 1): that epoch restarts at half the LR.
    bad = InfOnCalls(bad_calls={6})
    trainer = Trainer(bad, RegressionTask(), _cfg())
    st = trainer.fit(_batches)
    assert st.retries == 1 and st.epoch == 4 and len(st.history) == 4
    assert [r.lr for r in st.history] == [0.05, 0.025, 0.025, 0.025]

    # Oracle: the same training with the LR halved by hand after epoch 1 and no inf at all.
    good = InfOnCalls()
    oracle = Trainer(good, RegressionTask(), _cfg())

    def halve_after_first(t: Trainer, rec: object) -> None:
        if t.state.epoch == 1:
            for g in t.optimizer.param_groups:
                g["lr"] *= 0.5

    oracle.callbacks.append(halve_after_first)
    oracle.fit(_batches)
    for name, p in bad.state_dict().items():
        assert torch.equal(p, good.state_dict()[name]), name


def test_retries_run_out_with_one_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    trainer = Trainer(InfOnCalls(bad_from=5), RegressionTask(), _cfg(max_retries=5))
    expected = r"epoch 2 and stayed so after 5 retries"
    with (
        caplog.at_level(logging.INFO, logger="elman.training.trainer"),
        pytest.raises(TrainingError, match=expected) as err,
    ):
        trainer.fit(_batches)
    assert "\n" not in str(err.value) and "lower --lr" in str(err.value)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 / 2**5)
    assert [r.message.split("(")[-1] for r in caplog.records] == [
        f"retry {k} of 5)" for k in range(1, 6)
    ]


def test_max_retries_zero_fails_at_the_first_inf() -> None:
    trainer = Trainer(InfOnCalls(bad_calls={2}), RegressionTask(), _cfg(max_retries=0))
    with pytest.raises(TrainingError, match=r"epoch 1 \(retries are off: --max-retries 0\)"):
        trainer.fit(_batches)


def test_weights_after_failure_are_the_last_good_ones() -> None:
    model = InfOnCalls(bad_from=6)  # epoch 2 takes one good step, then its loss is inf
    trainer = Trainer(model, RegressionTask(), _cfg(max_retries=0))
    after_first: dict[str, torch.Tensor] = {}
    trainer.callbacks.append(
        lambda t, rec: after_first.update({k: v.clone() for k, v in model.state_dict().items()})
    )
    with pytest.raises(TrainingError):
        trainer.fit(_batches)
    for name, v in model.state_dict().items():
        assert torch.equal(v, after_first[name]), name
        assert torch.isfinite(v).all()


def test_max_retries_option_is_validated() -> None:
    from elman.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--max-retries \(-1\) must be >= 0"):
        TrainConfig(max_retries=-1)
