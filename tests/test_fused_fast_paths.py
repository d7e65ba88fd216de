"""The fused recurrences' fast paths agree with their plain forms and with autograd.

* the input projection folded into the Elman, GRU and LSTM recurrences (few input
  features) against ``F.linear`` followed by the recurrence, and against ``nn.RNN``,
  ``nn.GRU`` and ``nn.LSTM``;
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
from elman.models import GRU, LSTM, RNN, Elman, native, switches
from elman.models.fused import (
    ElmanRecurrence,
    GRURecurrence,
    LSTMRecurrence,
    elman_recurrence_fused,
    gru_recurrence_fused,
    lstm_recurrence_fused,
)
from elman.models.fused import gru as fused_gru

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


def _assert_same_values_and_grads(y: Tensor, y_ref: Tensor, leaves: list[Tensor], tol) -> None:
    """``y`` equals ``y_ref``, and so do the gradients of a random weighting of each."""
    assert_close(y, y_ref, **tol)
    w = torch.randn_like(y)
    grads = torch.autograd.grad((y * w).sum(), leaves)
    grads_ref = torch.autograd.grad((y_ref * w).sum(), leaves)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_close(g, g_ref, **tol)


# -------------------------------------------------------- folded input projection (Elman)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_folded_projection_equals_linear_then_recurrence(dtype: torch.dtype, bias: bool) -> None:
    torch.manual_seed(31)
    x, h0, w_hh, w_ih, b = args = _folded_args(dtype, bias)
    y = elman_recurrence_fused(x, h0, w_hh, True, w_ih, b)
    y_ref = elman_recurrence_fused(F.linear(x, w_ih, b), h0, w_hh, time_major=True)
    _assert_same_values_and_grads(y, y_ref, _leaves(args), TOL[dtype])


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
    n_in = switches.FOLD_MAX_INPUTS + 1  # the first layer projects as usual, a second folds
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


def _gated_args(cell: str, dtype: torch.dtype) -> tuple[Tensor, ...]:
    """Time-major ``x``, ``h0``, ``W_hh``, the bias (GRU: ``b_ih``, ``b_hh``; LSTM: one) and
    ``W_ih`` of one GRU or LSTM layer, all leaves."""
    gates = 3 if cell == "gru" else 4
    x = torch.randn(L, B, N_IN, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, H, dtype=dtype, requires_grad=True)
    w_hh = (0.5 * torch.randn(gates * H, H, dtype=dtype)).requires_grad_()
    biases = [torch.randn(gates * H, dtype=dtype, requires_grad=True) for _ in range(2)]
    w_ih = torch.randn(gates * H, N_IN, dtype=dtype, requires_grad=True)
    n_biases = 2 if cell == "gru" else 1  # GRU: b_ih and b_hh apart; LSTM: their sum
    return (x, h0, w_hh, *biases[:n_biases], w_ih)


def _run_gated(cell: str, args: tuple[Tensor, ...], folded: bool) -> Tensor:
    """The layer's hidden states (the LSTM's with ``c0 = h0``), projected inside or before."""
    x, h0, w_hh, *rest = args
    w_ih = rest[-1]
    seq, w = (x, w_ih) if folded else (F.linear(x, w_ih), None)
    if cell == "gru":
        b_ih, b_hh = rest[0], rest[1]
        return gru_recurrence_fused(seq, h0, w_hh, b_hh, True, b_ih, w)
    return lstm_recurrence_fused(seq, h0, h0, w_hh, True, rest[0], w)[0]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_folded_gates_equal_linear_then_recurrence(path: str, cell: str, dtype) -> None:
    if cell == "lstm" and path == "python":
        pytest.skip("the fused LSTM runs only with the compiled step loops")
    torch.manual_seed(41)
    args = _gated_args(cell, dtype)
    y, y_ref = _run_gated(cell, args, True), _run_gated(cell, args, False)
    _assert_same_values_and_grads(y, y_ref, list(args), TOL[dtype])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_folded_gates_gradient_for_each_input_alone(path: str, cell: str) -> None:
    """Without a gradient for x the loop sums the gradient of W_ih itself (and the GRU
    writes no dgi); every gradient alone equals the one computed with all of them."""
    if cell == "lstm" and path == "python":
        pytest.skip("the fused LSTM runs only with the compiled step loops")
    torch.manual_seed(42)
    args = _gated_args(cell, torch.float64)
    full = torch.autograd.grad(_run_gated(cell, args, True).square().sum(), list(args))
    for k, arg in enumerate(args):
        some = tuple(a if j == k else a.detach() for j, a in enumerate(args))
        (g,) = torch.autograd.grad(_run_gated(cell, some, True).square().sum(), [arg])
        assert_close(g, full[k], rtol=1e-12, atol=1e-12)


def test_folded_gates_gradcheck_in_float64(path: str) -> None:
    torch.manual_seed(43)
    x, h0, w_hh, b_ih, b_hh, w_ih = _gated_args("gru", torch.float64)
    b_in = torch.randn(H, dtype=torch.float64, requires_grad=True)
    assert gradcheck(GRURecurrence.apply, (x, h0, w_hh, b_hh, b_in, w_ih))
    if path == "native":
        x, h0, w_hh, b, w_ih = _gated_args("lstm", torch.float64)
        c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
        assert gradcheck(LSTMRecurrence.apply, (x, h0, c0, w_hh, b, w_ih))


@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_gated_models_fold_few_inputs_and_match_torch(path: str, cls: type) -> None:
    """Two layers over more than FOLD_MAX_INPUTS inputs: the first projects before its
    recurrence, the second (H inputs) inside it; both equal torch's module, values and
    gradients of the inputs and every weight."""
    if cls is LSTM and path == "python":
        pytest.skip("the fused LSTM runs only with the compiled step loops")
    torch.manual_seed(44)
    n_in = switches.FOLD_MAX_INPUTS + 1
    model = cls(input_size=n_in, output_size=1, hidden_size=H, num_layers=2).double()
    x = torch.randn(B, L, n_in, dtype=torch.float64, requires_grad=True)
    y, _ = model(x)
    grads = torch.autograd.grad(y.square().sum(), [x, *model.parameters()])
    y_ref = model.head(model.rnn(x)[0])  # torch's module on the same weights
    grads_ref = torch.autograd.grad(y_ref.square().sum(), [x, *model.parameters()])
    assert_close(y, y_ref, **TOL[torch.float64])
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_close(g, g_ref, **TOL[torch.float64])


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
        monkeypatch.setattr(switches, "WEIGHT_GRAD_IN_LOOP", in_loop)
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

    monkeypatch.setattr(fused_gru, "native_ops", lambda: Spy())
    model = GRU(input_size=N_IN, output_size=1, hidden_size=H).double()
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    for limit in (10**9, 3 * H * H * 8 - 1):
        monkeypatch.setattr(switches, "WEIGHT_GRAD_IN_LOOP_MAX_BYTES", limit)
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
        monkeypatch.setenv(switches.ENV_NO_PACKED_GEMM, off)
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


# ------------------------------------------------------------------- awkward shapes


@pytest.mark.parametrize("cls", [Elman, GRU, LSTM])
def test_hidden_size_one_in_float32(path: str, cls: type) -> None:
    """A [1, G] weight is one row, whose row stride torch may leave at 1: the packed
    product must still read it right (MKL refuses such a leading dimension)."""
    if cls is LSTM and path == "python":
        pytest.skip("the fused LSTM runs only with the compiled step loops")
    torch.manual_seed(45)
    model = cls(input_size=1, output_size=1, hidden_size=1)
    reference = cls(input_size=1, output_size=1, hidden_size=1, fused=False)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(4, L, 1)
    y, y_ref = model(x)[0], reference(x)[0]
    assert_close(y, y_ref, **TOL[torch.float32])
    y.square().sum().backward()
    y_ref.square().sum().backward()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert_close(p.grad, q.grad, **TOL[torch.float32])


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_expanded_recurrent_weights(path: str, cell: str) -> None:
    """Recurrent weights with a zero stride (expanded from one row) equal a dense copy."""
    if cell == "lstm" and path == "python":
        pytest.skip("the fused LSTM runs only with the compiled step loops")
    torch.manual_seed(46)
    gates = {"elman": 1, "gru": 3, "lstm": 4}[cell]
    gi = torch.randn(B, L, gates * H)
    h0 = torch.randn(B, H)
    row = (0.3 * torch.randn(1, H)).requires_grad_()
    results = []
    for dense in (False, True):
        w = row.expand(gates * H, H)
        w = w.contiguous() if dense else w
        if cell == "elman":
            y = elman_recurrence_fused(gi, h0, w)
        elif cell == "gru":
            y = gru_recurrence_fused(gi, h0, w, torch.zeros(3 * H))
        else:
            y = lstm_recurrence_fused(gi, h0, h0, w)[0]
        results.append([y.detach(), *torch.autograd.grad(y.square().sum(), [row])])
    for got, want in zip(*results, strict=True):
        assert_close(got, want, **TOL[torch.float32])


@pytest.mark.parametrize("cls", [Elman, GRU, LSTM])
def test_empty_batch_with_a_sum_loss(path: str, cls: type) -> None:
    """A batch of no rows hands back an expanded empty gradient; training is a no-op."""
    model = cls(input_size=1, output_size=1, hidden_size=H)
    y, _ = model(torch.randn(0, L, 1))
    y.sum().backward()
    assert all(torch.all(p.grad == 0) for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("cell", ["elman", "gru"])
def test_no_time_steps_is_refused(cell: str) -> None:
    x, h0 = torch.randn(B, 0, H), torch.zeros(B, H)
    with pytest.raises(ValueError, match="at least one time step"):
        if cell == "elman":
            elman_recurrence_fused(x, h0, torch.randn(H, H))
        else:
            gru_recurrence_fused(torch.randn(B, 0, 3 * H), h0, torch.randn(3 * H, H),
                                 torch.zeros(3 * H))  # fmt: skip


def test_a_bias_needs_the_folded_projection() -> None:
    with pytest.raises(ValueError, match="pass weight_ih"):
        ElmanRecurrence.apply(torch.randn(L, B, H), torch.zeros(B, H), torch.randn(H, H),
                              None, torch.zeros(H))  # fmt: skip


@pytest.mark.parametrize("cell", ["elman", "gru"])
def test_folded_projection_under_autocast_runs_in_bfloat16(cell: str) -> None:
    """As ``F.linear`` would have handed the recurrence bfloat16 gates under autocast."""
    torch.manual_seed(47)
    x = torch.randn(L, B, N_IN)
    h0 = torch.zeros(B, H)
    gates = 1 if cell == "elman" else 3
    w_hh, w_ih = 0.3 * torch.randn(gates * H, H), torch.randn(gates * H, N_IN)
    b = torch.zeros(gates * H)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if cell == "elman":
            y = elman_recurrence_fused(x, h0, w_hh, True, w_ih, b)
            y_ref = elman_recurrence_fused(F.linear(x, w_ih, b), h0, w_hh, time_major=True)
        else:
            y = gru_recurrence_fused(x, h0, w_hh, b, True, b, w_ih)
            y_ref = gru_recurrence_fused(F.linear(x, w_ih), h0, w_hh, b, True, b)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    assert_close(y.float(), y_ref.float(), rtol=0.05, atol=0.05)
