"""The Elman module equals torch.nn.RNN(tanh) plus a linear head, in values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from elman.models.elman import Elman, elman_recurrence_reference


def _pair(input_size: int, hidden: int, out: int, layers: int, bias: bool, dtype: torch.dtype):
    torch.manual_seed(0)
    net = Elman(input_size, hidden, out, num_layers=layers, bias=bias).to(dtype)
    ref = nn.RNN(
        input_size, hidden, num_layers=layers, nonlinearity="tanh", bias=bias, batch_first=True
    ).to(dtype)
    head = nn.Linear(hidden, out, bias=bias).to(dtype)
    with torch.no_grad():
        for layer in range(layers):
            getattr(ref, f"weight_ih_l{layer}").copy_(net.weight_ih[layer])
            getattr(ref, f"weight_hh_l{layer}").copy_(net.weight_hh[layer])
            if bias:
                # one bias in elman; nn.RNN splits it in two
                getattr(ref, f"bias_ih_l{layer}").copy_(net.bias_h[layer] * 0.25)
                getattr(ref, f"bias_hh_l{layer}").copy_(net.bias_h[layer] * 0.75)
        head.weight.copy_(net.head.weight)
        if bias:
            head.bias.copy_(net.head.bias)
    return net, ref, head


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_elman_equals_nn_rnn_plus_linear_values_and_gradients(bias, layers, dtype):
    net, ref, head = _pair(3, 7, 2, layers, bias, dtype)
    x = torch.randn(4, 11, 3, dtype=dtype)
    h0 = torch.randn(layers, 4, 7, dtype=dtype)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    y1, (h1,) = net(x1, (h0,))
    seq, h2 = ref(x2, h0)
    y2 = head(seq)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    assert_close(y1, y2, **tol)
    assert_close(h1, h2, **tol)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    assert_close(x1.grad, x2.grad, **tol)
    for layer in range(layers):
        assert_close(net.weight_ih[layer].grad, getattr(ref, f"weight_ih_l{layer}").grad, **tol)
        assert_close(net.weight_hh[layer].grad, getattr(ref, f"weight_hh_l{layer}").grad, **tol)
        if bias:
            assert_close(net.bias_h[layer].grad, getattr(ref, f"bias_hh_l{layer}").grad, **tol)
    assert_close(net.head.weight.grad, head.weight.grad, **tol)


def test_elman_state_carries_across_chunks():
    torch.manual_seed(1)
    net = Elman(2, 5, 1, num_layers=2)
    x = torch.randn(3, 10, 2)
    y_full, (h_full,) = net(x)
    y_a, state = net(x[:, :4])
    y_b, (h_b,) = net(x[:, 4:], state)
    assert_close(torch.cat([y_a, y_b], 1), y_full)
    assert_close(h_b, h_full)


def test_reference_recurrence_matches_rnn_cell():
    torch.manual_seed(2)
    cell = nn.RNNCell(4, 4, bias=False)
    proj_in = torch.randn(2, 6, 4)
    h0 = torch.randn(2, 4)
    out = elman_recurrence_reference(proj_in @ cell.weight_ih.t(), h0, cell.weight_hh)
    h = h0
    for t in range(6):
        h = cell(proj_in[:, t], h)
        assert_close(out[:, t], h)


def test_elman_batch_first_shapes_and_init_state():
    net = Elman(input_size=3, hidden_size=6, output_size=2, num_layers=3)
    y, (h,) = net(torch.zeros(5, 9, 3))
    assert y.shape == (5, 9, 2)
    assert h.shape == (3, 5, 6)
    (h0,) = net.init_state(5)
    assert h0.shape == (3, 5, 6) and not h0.any()
    assert net.hidden_sequence(torch.zeros(5, 9, 3)).shape == (5, 9, 6)
