"""The fused recurrences' fast paths agree with their plain forms and with autograd.

* the input projection folded into the Elman recurrence (few input features) against
  ``F.linear`` followed by the recurrence, and against ``nn.RNN``;
* the recurrent weight gradient added up inside the compiled backward loops against one
  product over the whole sequence afterwards;
* MKL's packed products (``ELMAN_NO_PACKED_GEMM`` off) against ``at::mm``;
* gradients that reach the recurrences with any strides (a ``sum()`` loss hands them an
  expanded one).

Like ``test_fused.py``, every test runs with the compiled and with the Python step loops.
"""

from __future__ import annotations

import pytest
import torch
from conftest import use_step_loops
from torch import Tensor, nn
from torch.autograd import gradcheck
from torch.nn import functional as F
from torch.testing import assert_close

import elman.models.elman as elman_module
from elman.models import GRU, LSTM, RNN, Elman, fused, native
from elman.models.fused import (
    ElmanRecurrence,
    elman_recurrence_fused,
    gru_recurrence_fused,
    lstm_recurrence_fused,
)

B, L, N_IN, H = 5, 9, 3, 6
TOL = {torch.float64: {"rtol": 1e-10, "atol": 1e-12}, torch.float32: {"rtol": 1e-5, "atol": 1e-5}}


@pytest.fixture(autouse=True, params=["native", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the compiled step loops, then with the Python ones."""
    return use_step_loops(request, monkeypatch)


def _folded_args(dtype: torch.dtype, bias: bool = True) -> tuple[Tensor | None, ...]:
    """Time-major ``x [L, B, I]``, ``h0``, ``W_hh``, ``W_ih`` and the bias, all leaves."""
    x = torch.randn(L, B, N_IN, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, H, dtype=dtype, requires_grad=True)
    w_hh = (0.5 * torch.randn(H, H, dtype=dtype)).requires_grad_()
    w_ih = torch.randn(H, N_IN, dtype=dtype, requires_grad=True)
    b = torch.randn(H, dtype=dtype, requires_grad=True) if bias else None
    return x, h0, w_hh, w_ih, b


def _leaves(args: tuple[Tensor | None, ...]) -> list[Tensor]:
    return [a for a in args if a is not None]


# -------------------------------------------------------- folded input projection (Elman)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_folded_projection_equals_linear_then_recurrence(dtype: torch.dtype, bias: bool) -> None:
    torch.manual_seed(31)
    x, h0, w_hh, w_ih, b = args = _folded_args(dtype, bias)
    y = elman_recurrence_fused(x, h0, w_hh, True, w_ih, b)
    y_ref = elman_recurrence_fused(F.linear(x, w_ih, b), h0, w_hh, time_major=True)
    assert_close(y, y_ref, **TOL[dtype])
    w = torch.randn_like(y)
    grads = torch.autograd.grad((y * w).sum(), _leaves(args))
    grads_ref = torch.autograd.grad((y_ref * w).sum(), _leaves(args))
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_close(g, g_ref, **TOL[dtype])


@pytest.mark.parametrize("needs", ["x", "h0", "w_hh", "w_ih", "bias"])
def test_folded_projection_gradient_for_each_input_alone(needs: str) -> None:
    """Each gradient on its own (the loop keeps two steps of ``da`` when only weights need
    them) equals the one computed with every gradient wanted."""
    torch.manual_seed(32)
    args = _folded_args(torch.float64)
    full = torch.autograd.grad(elman_recurrence_fused(*args[:3], True, *args[3:]).square().sum(),
                               _leaves(args))  # fmt: skip
    k = ["x", "h0", "w_hh", "w_ih", "bias"].index(needs)
    some = [a if j == k else a.detach() for j, a in enumerate(args)]
    (g,) = torch.autograd.grad(
        elman_recurrence_fused(*some[:3], True, *some[3:]).square().sum(), [args[k]]
    )
    assert_close(g, full[k], rtol=1e-12, atol=1e-12)


def test_folded_projection_gradcheck_in_float64() -> None:
    torch.manual_seed(33)
    assert gradcheck(ElmanRecurrence.apply, _folded_args(torch.float64))


@pytest.mark.parametrize("layers", [1, 2])
def test_elman_model_folds_few_inputs_and_matches_nn_rnn(
    layers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Layers with at most FOLD_MAX_INPUTS inputs take the folded path; the numbers equal
    ``nn.RNN`` plus a linear head, values and gradients, whichever path a layer takes."""
    torch.manual_seed(34)
    calls: list[bool] = []
    real = elman_module.elman_recurrence

    def spy(*args, **kwargs):  # records whether each layer folded its projection
        calls.append(len(args) > 4 or "weight_ih" in kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(elman_module, "elman_recurrence", spy)
    n_in = fused.FOLD_MAX_INPUTS + 1  # the first layer projects as usual, a second folds
    rnn = nn.RNN(n_in, H, layers, batch_first=True).double()
    head = nn.Linear(H, 1).double()
    model = Elman(n_in, H, 1, layers).double()
    with torch.no_grad():
        for k in range(layers):
            model.weight_ih[k].copy_(getattr(rnn, f"weight_ih_l{k}"))
            model.weight_hh[k].copy_(getattr(rnn, f"weight_hh_l{k}"))
            model.bias_h[k].copy_(getattr(rnn, f"bias_ih_l{k}") + getattr(rnn, f"bias_hh_l{k}"))
        model.head.load_state_dict(head.state_dict())
    x = torch.randn(B, L, n_in, dtype=torch.float64, requires_grad=True)
    y, _ = model(x)
    y_ref = head(rnn(x)[0])
    assert calls == [False, True][:layers]
    assert_close(y, y_ref, **TOL[torch.float64])
    (gx,) = torch.autograd.grad(y.square().sum(), [x])
    (gx_ref,) = torch.autograd.grad(y_ref.square().sum(), [x])
    assert_close(gx, gx_ref, **TOL[torch.float64])


def test_rnn_model_with_folded_projection_matches_nn_rnn() -> None:
    torch.manual_seed(35)
    model = RNN(N_IN, 1, H).double()
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    y, _ = model(x)
    y.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    y_ref = model.head(model.rnn(x)[0])  # nn.RNN on the same weights
    y_ref.square().sum().backward()
    assert_close(y, y_ref, **TOL[torch.float64])
    for p, g in zip(model.parameters(), grads, strict=True):
        assert_close(g, p.grad, **TOL[torch.float64])


# ------------------------------------------- weight gradients added up inside the loop


@pytest.mark.parametrize("cls", [Elman, GRU, LSTM])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_weight_gradient_in_the_loop_equals_one_product_after(
    cls: type, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(36)
    model = cls(input_size=N_IN, output_size=2, hidden_size=H).to(dtype)
    x = torch.randn(B, L, N_IN, dtype=dtype)
    state = tuple(torch.randn_like(s) for s in model.init_state(B))  # h_0 counts too
    results = []
    for in_loop in (True, False):
        monkeypatch.setattr(fused, "WEIGHT_GRAD_IN_LOOP", in_loop)
        model.zero_grad()
        model(x, state)[0].square().sum().backward()
        results.append([p.grad.clone() for p in model.parameters()])
    for got, want in zip(*results, strict=True):
        assert_close(got, want, **TOL[dtype])


def test_weight_gradient_in_the_loop_only_for_small_weights(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above WEIGHT_GRAD_IN_LOOP_MAX_BYTES the loop leaves the weight gradient to one
    product afterwards (it sees weight_grad=False)."""
    if path == "python":
        pytest.skip("the Python loops have no in-loop weight gradient")
    seen: list[bool] = []
    ops = native.ops()

    class Spy:
        def __getattr__(self, name: str):
            real = getattr(ops, name)
            if name != "gru_backward":
                return real

            def call(*args):
                seen.append(bool(args[8]))
                return real(*args)

            return call

    monkeypatch.setattr(fused, "native_ops", lambda: Spy())
    model = GRU(input_size=N_IN, output_size=1, hidden_size=H).double()
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    for limit in (10**9, 3 * H * H * 8 - 1):
        monkeypatch.setattr(fused, "WEIGHT_GRAD_IN_LOOP_MAX_BYTES", limit)
        model(x)[0].sum().backward()
    assert seen == [True, False]


# ------------------------------------------------------------------ packed products


@pytest.mark.parametrize("cls", [Elman, GRU, LSTM])
def test_packed_products_equal_plain_ones(
    path: str, cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float32 (MKL's packed products where torch links MKL) against ELMAN_NO_PACKED_GEMM=1."""
    if path == "python":
        pytest.skip("the Python loops call torch's products")
    torch.manual_seed(37)
    model = cls(input_size=N_IN, output_size=1, hidden_size=32)
    x = torch.randn(B, L, N_IN)
    results = []
    for off in ("", "1"):
        monkeypatch.setenv("ELMAN_NO_PACKED_GEMM", off)
        model.zero_grad()
        y, _ = model(x)
        y.square().sum().backward()
        results.append([y.detach(), *(p.grad.clone() for p in model.parameters())])
    for got, want in zip(*results, strict=True):
        assert_close(got, want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ gradients of any strides


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_expanded_and_strided_output_gradients(path: str, cell: str) -> None:
    """``y.sum()`` hands back a gradient expanded from one number (stride 0); every other
    column of a wider gradient is strided. Both equal a contiguous gradient."""
    if cell == "lstm" and path == "python":
        pytest.skip("the fused LSTM runs only with the compiled step loops")
    torch.manual_seed(38)
    gates = {"elman": 1, "gru": 3, "lstm": 4}[cell]
    gi = torch.randn(B, L, gates * H, dtype=torch.float64, requires_grad=True)
    h0 = torch.zeros(B, H, dtype=torch.float64)
    w = (0.5 * torch.randn(gates * H, H, dtype=torch.float64)).requires_grad_()

    def run() -> Tensor:
        if cell == "elman":
            return elman_recurrence_fused(gi, h0, w)
        if cell == "gru":
            return gru_recurrence_fused(gi, h0, w, torch.zeros(3 * H, dtype=torch.float64))
        return lstm_recurrence_fused(gi, h0, h0, w)[0]

    expanded = torch.autograd.grad(run().sum(), [gi, w])
    ones = torch.autograd.grad(run(), [gi, w], torch.ones(B, L, H, dtype=torch.float64))
    wide = torch.randn(B, L, 2 * H, dtype=torch.float64)
    strided = torch.autograd.grad(run(), [gi, w], wide[..., ::2])
    dense = torch.autograd.grad(run(), [gi, w], wide[..., ::2].contiguous())
    for a, b in zip(expanded + strided, ones + dense, strict=True):
        assert_close(a, b, rtol=1e-12, atol=1e-12)
