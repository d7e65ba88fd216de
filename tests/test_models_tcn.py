"""TCN: causality, receptive field and streaming in chunks."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from elman.models import TCN

B, N_IN, N_OUT, H = 2, 3, 2, 6


def _tcn(num_layers: int = 3, kernel_size: int = 3) -> TCN:
    torch.manual_seed(0)
    return TCN(N_IN, N_OUT, H, num_layers=num_layers, kernel_size=kernel_size).double().eval()


@pytest.mark.parametrize(("num_layers", "kernel_size", "field"), [(1, 3, 5), (3, 3, 29), (2, 2, 7)])
def test_receptive_field_formula(num_layers: int, kernel_size: int, field: int) -> None:
    assert _tcn(num_layers, kernel_size).receptive_field == field


def test_output_at_step_t_ignores_later_inputs() -> None:
    model = _tcn()
    x = torch.randn(B, 20, N_IN, dtype=torch.float64)
    y, _ = model(x)
    x2 = x.clone()
    x2[:, 10:] += 1.0
    y2, _ = model(x2)
    assert_close(y2[:, :10], y[:, :10])
    assert not torch.allclose(y2[:, 10], y[:, 10])


def test_output_depends_on_exactly_receptive_field_inputs() -> None:
    model = _tcn(num_layers=2)
    field = model.receptive_field
    x = torch.randn(B, 2 * field, N_IN, dtype=torch.float64, requires_grad=True)
    y, _ = model(x)
    t = 2 * field - 1
    (grad,) = torch.autograd.grad(y[:, t].sum(), x)
    touched = grad.abs().sum((0, 2)) > 0  # [L]
    assert touched[t - field + 1 : t + 1].all()
    assert not touched[: t - field + 1].any()


def test_state_holds_the_most_recent_inputs() -> None:
    model = _tcn(num_layers=1)
    x = torch.randn(B, 9, N_IN, dtype=torch.float64)
    _, (buf,) = model(x)
    assert_close(buf, x[:, -(model.receptive_field - 1) :])


def test_streaming_one_step_at_a_time_equals_whole_run() -> None:
    model = _tcn()
    x = torch.randn(B, 40, N_IN, dtype=torch.float64)
    y_whole, _ = model(x)
    state = None
    steps = []
    for t in range(x.shape[1]):
        y, state = model(x[:, t : t + 1], state)
        steps.append(y)
    assert_close(torch.cat(steps, 1), y_whole)


def test_dropout_is_active_only_in_training() -> None:
    torch.manual_seed(0)
    model = TCN(N_IN, N_OUT, H, num_layers=2, dropout=0.5)
    x = torch.randn(B, 10, N_IN)
    assert not torch.allclose(model.train()(x)[0], model.eval()(x)[0])
    assert torch.equal(model(x)[0], model(x)[0])
