"""RNN, LSTM and GRU wrappers against loops of torch's cells with copied weights."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from elman.models import GRU, LSTM, RNN, Elman

B, L, N_IN, N_OUT, H = 3, 6, 2, 2, 5


def _cell_loop(cell: nn.Module, x: Tensor, state):
    outs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
        outs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outs, 1), state


def _copy_layer0(cell: nn.Module, rnn: nn.RNNBase) -> None:
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(rnn, f"{name}_l0"))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_matches_rnn_cell_loop(nonlinearity: str) -> None:
    torch.manual_seed(0)
    model = RNN(N_IN, N_OUT, H, nonlinearity=nonlinearity).double()  # type: ignore[arg-type]
    cell = nn.RNNCell(N_IN, H, nonlinearity=nonlinearity).double()
    _copy_layer0(cell, model.rnn)
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    h0 = torch.randn(1, B, H, dtype=torch.float64)
    seq, h = _cell_loop(cell, x, h0[0])
    y, (h_last,) = model(x, (h0,))
    assert_close(y, model.head(seq))
    assert_close(h_last[0], h)


def test_lstm_matches_lstm_cell_loop() -> None:
    torch.manual_seed(1)
    model = LSTM(N_IN, N_OUT, H).double()
    cell = nn.LSTMCell(N_IN, H).double()
    _copy_layer0(cell, model.rnn)
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    h0, c0 = torch.randn(2, 1, B, H, dtype=torch.float64)
    seq, (h, c) = _cell_loop(cell, x, (h0[0], c0[0]))
    y, (h_last, c_last) = model(x, (h0, c0))
    assert_close(y, model.head(seq))
    assert_close(h_last[0], h)
    assert_close(c_last[0], c)


@pytest.mark.parametrize("fused", [True, False])
def test_gru_matches_gru_cell_loop(fused: bool) -> None:
    torch.manual_seed(2)
    model = GRU(N_IN, N_OUT, H, fused=fused).double()
    cell = nn.GRUCell(N_IN, H).double()
    _copy_layer0(cell, model.rnn)
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    h0 = torch.randn(1, B, H, dtype=torch.float64)
    seq, h = _cell_loop(cell, x, h0[0])
    y, (h_last,) = model(x, (h0,))
    assert_close(y, model.head(seq))
    assert_close(h_last[0], h)


@pytest.mark.parametrize("fused", [True, False])
def test_elman_matches_rnn_cell_loop(fused: bool) -> None:
    torch.manual_seed(3)
    model = Elman(N_IN, H, N_OUT, fused=fused).double()
    cell = nn.RNNCell(N_IN, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(model.weight_ih[0])
        cell.weight_hh.copy_(model.weight_hh[0])
        cell.bias_ih.copy_(model.bias_h[0])
        cell.bias_hh.zero_()
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    seq, h = _cell_loop(cell, x, torch.zeros(B, H, dtype=torch.float64))
    y, (h_last,) = model(x)
    assert_close(y, model.head(seq))
    assert_close(h_last[0], h)


def test_single_layer_dropout_is_stored_but_not_passed_to_torch() -> None:
    model = LSTM(N_IN, N_OUT, H, num_layers=1, dropout=0.2)
    assert model.dropout == 0.2
    assert model.rnn.dropout == 0.0


def test_parameter_names_follow_torch() -> None:
    names = {n for n, _ in GRU(N_IN, N_OUT, H, num_layers=2).named_parameters()}
    assert {"rnn.weight_ih_l1", "rnn.bias_hh_l1", "head.weight", "head.bias"} <= names
