"""The fused Elman, GRU and LSTM recurrences against torch's own modules and autograd references.

Every test runs twice: with the compiled step loops (``native``; batches split into blocks
of one row upwards, so the per-thread blocks are exercised even at these sizes) and with
the Python loops (``python``, as when no compiler is present). The fused LSTM exists only
with the compiled loops; without them the LSTM model runs ``nn.LSTM``.
"""

from __future__ import annotations

import pytest
import torch
from conftest import use_step_loops
from torch import Tensor, nn
from torch.autograd import gradcheck
from torch.testing import assert_close

import elman.models.elman as elman_module
from elman.models import GRU, LSTM, RNN, Elman, recurrent, switches
from elman.models.base import read_out
from elman.models.elman import elman_recurrence_reference
from elman.models.fused import (
    ElmanRecurrence,
    GRURecurrence,
    LSTMRecurrence,
    elman_recurrence_fused,
    gru_recurrence_fused,
    gru_recurrence_reference,
    lstm_recurrence_fused,
)
from elman.training.precision import bf16_supported

B, L, N_IN, H, N_OUT = 3, 7, 2, 5, 2
TOL = {torch.float64: {"rtol": 1e-10, "atol": 1e-12}, torch.float32: {"rtol": 1e-5, "atol": 1e-5}}
DTYPES = [torch.float64, torch.float32]


@pytest.fixture(autouse=True, params=["native", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the compiled step loops, then with the Python ones."""
    return use_step_loops(request, monkeypatch)


def _grads(loss: Tensor, tensors: list[Tensor]) -> tuple[Tensor, ...]:
    return torch.autograd.grad(loss, tensors)


def _inputs(dtype: torch.dtype, layers: int = 1) -> tuple[Tensor, Tensor]:
    x = torch.randn(B, L, N_IN, dtype=dtype, requires_grad=True)
    h0 = torch.randn(layers, B, H, dtype=dtype, requires_grad=True)
    return x, h0


def _elman_like_rnn(rnn: nn.RNN, head: nn.Linear) -> Elman:
    """An Elman network holding the weights of ``rnn`` and ``head``."""
    model = Elman(rnn.input_size, rnn.hidden_size, head.out_features, rnn.num_layers)
    model = model.to(head.weight.dtype)
    with torch.no_grad():
        for layer in range(rnn.num_layers):
            model.weight_ih[layer].copy_(getattr(rnn, f"weight_ih_l{layer}"))
            model.weight_hh[layer].copy_(getattr(rnn, f"weight_hh_l{layer}"))
            b = getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}")
            model.bias_h[layer].copy_(b)
        model.head.load_state_dict(head.state_dict())
    return model


def _matching_rnn_grads(rnn: nn.RNN, head: nn.Linear, model: Elman) -> list[tuple[Tensor, ...]]:
    """Pairs (torch gradient, Elman gradient) for every weight."""
    pairs = []
    for layer in range(rnn.num_layers):
        g_ih = getattr(rnn, f"weight_ih_l{layer}").grad
        g_hh = getattr(rnn, f"weight_hh_l{layer}").grad
        # b_ih and b_hh enter as a sum, so each gets the gradient of the Elman bias.
        g_bi = getattr(rnn, f"bias_ih_l{layer}").grad
        g_bh = getattr(rnn, f"bias_hh_l{layer}").grad
        pairs += [(g_ih, model.weight_ih[layer].grad), (g_hh, model.weight_hh[layer].grad)]
        pairs += [(g_bi, model.bias_h[layer].grad), (g_bh, model.bias_h[layer].grad)]
    pairs += [(head.weight.grad, model.head.weight.grad), (head.bias.grad, model.head.bias.grad)]
    return pairs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [1, 2])
def test_fused_elman_matches_nn_rnn_values_and_gradients(dtype: torch.dtype, layers: int) -> None:
    torch.manual_seed(0)
    rnn = nn.RNN(N_IN, H, layers, batch_first=True).to(dtype)
    head = nn.Linear(H, N_OUT).to(dtype)
    model = _elman_like_rnn(rnn, head)
    x, h0 = _inputs(dtype, layers)
    x2, h02 = x.detach().clone().requires_grad_(), h0.detach().clone().requires_grad_()
    seq, hn = rnn(x, h0)
    y_ref = head(seq)
    y, (h_last,) = model(x2, (h02,))
    assert_close(y, y_ref, **TOL[dtype])
    assert_close(h_last, hn, **TOL[dtype])
    w = torch.randn_like(y)
    ((y_ref * w).sum() + hn.sum()).backward()
    ((y * w).sum() + h_last.sum()).backward()
    assert_close(x2.grad, x.grad, **TOL[dtype])
    assert_close(h02.grad, h0.grad, **TOL[dtype])
    for ref, got in _matching_rnn_grads(rnn, head, model):
        assert_close(got, ref, **TOL[dtype])


def _gru_copy(gru: nn.GRU, head: nn.Linear) -> GRU:
    model = GRU(gru.input_size, head.out_features, gru.hidden_size, gru.num_layers, fused=True)
    model = model.to(head.weight.dtype)
    model.rnn.load_state_dict(gru.state_dict())
    model.head.load_state_dict(head.state_dict())
    return model


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [1, 2])
def test_fused_gru_matches_nn_gru_values_and_gradients(dtype: torch.dtype, layers: int) -> None:
    torch.manual_seed(1)
    gru = nn.GRU(N_IN, H, layers, batch_first=True).to(dtype)
    head = nn.Linear(H, N_OUT).to(dtype)
    model = _gru_copy(gru, head)
    x, h0 = _inputs(dtype, layers)
    x2, h02 = x.detach().clone().requires_grad_(), h0.detach().clone().requires_grad_()
    seq, hn = gru(x, h0)
    y_ref = head(seq)
    y, (h_last,) = model(x2, (h02,))
    assert_close(y, y_ref, **TOL[dtype])
    assert_close(h_last, hn, **TOL[dtype])
    w = torch.randn_like(y)
    ((y_ref * w).sum() + hn.sum()).backward()
    ((y * w).sum() + h_last.sum()).backward()
    assert_close(x2.grad, x.grad, **TOL[dtype])
    assert_close(h02.grad, h0.grad, **TOL[dtype])
    for (name, p_ref), p in zip(gru.named_parameters(), model.rnn.parameters(), strict=True):
        assert p.grad is not None and p_ref.grad is not None, name
        assert_close(p.grad, p_ref.grad, **TOL[dtype])
    assert_close(model.head.weight.grad, head.weight.grad, **TOL[dtype])


def _elman_args(dtype: torch.dtype) -> tuple[Tensor, ...]:
    proj = torch.randn(B, L, H, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, H, dtype=dtype, requires_grad=True)
    w = (0.5 * torch.randn(H, H, dtype=dtype)).requires_grad_()
    return proj, h0, w


def _gru_args(dtype: torch.dtype) -> tuple[Tensor, ...]:
    gi = torch.randn(B, L, 3 * H, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, H, dtype=dtype, requires_grad=True)
    w = (0.5 * torch.randn(3 * H, H, dtype=dtype)).requires_grad_()
    b = torch.randn(3 * H, dtype=dtype, requires_grad=True)
    return gi, h0, w, b


CASES = [
    (elman_recurrence_fused, elman_recurrence_reference, _elman_args),
    (gru_recurrence_fused, gru_recurrence_reference, _gru_args),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("fused", "reference", "make_args"), CASES, ids=["elman", "gru"])
def test_fused_matches_autograd_reference(dtype, fused, reference, make_args) -> None:
    torch.manual_seed(2)
    args = make_args(dtype)
    y = fused(*args)
    y_ref = reference(*args)
    assert_close(y, y_ref, **TOL[dtype])
    w = torch.randn_like(y)
    grads = _grads((y * w).sum(), list(args))
    grads_ref = _grads((y_ref * w).sum(), list(args))
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_close(g, g_ref, **TOL[dtype])


def _time_major(args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Leaf copies of ``args`` with the sequence ``[B, L, ...]`` made ``[L, B, ...]``."""
    seq = args[0].detach().transpose(0, 1).contiguous().requires_grad_()
    return (seq, *args[1:])


def _gru_function_args(dtype: torch.dtype) -> tuple[Tensor, ...]:
    """Arguments of ``GRURecurrence``: gates without bias, then both bias parts."""
    gi, h0, w, _ = _gru_args(dtype)
    bias = torch.randn(3 * H, dtype=dtype, requires_grad=True)
    b_in = torch.randn(H, dtype=dtype, requires_grad=True)
    return gi, h0, w, bias, b_in


@pytest.mark.parametrize(
    ("function", "make_args"),
    [(ElmanRecurrence, _elman_args), (GRURecurrence, _gru_function_args)],
    ids=["elman", "gru"],
)
def test_gradcheck_in_float64(function, make_args) -> None:
    torch.manual_seed(3)
    assert gradcheck(function.apply, _time_major(make_args(torch.float64)))


def test_gru_gates_with_any_strides() -> None:
    """Input gates that are a strided view (every other column) give the same numbers."""
    torch.manual_seed(24)
    gi, h0, w, b = _gru_args(torch.float64)
    wide = torch.randn(B, L, 6 * H, dtype=torch.float64)
    wide[..., ::2] = gi.detach()
    strided = wide[..., ::2].requires_grad_()  # stride 2 along the gates
    y = gru_recurrence_fused(strided, h0, w, b)
    y_ref = gru_recurrence_reference(gi, h0, w, b)
    assert_close(y, y_ref)
    (g,) = _grads(y.square().sum(), [strided])
    (g_ref,) = _grads(y_ref.square().sum(), [gi])
    assert_close(g, g_ref)


def test_gru_input_bias_inside_or_in_the_gates_agree() -> None:
    """``bias_ih`` given separately equals ``bias_ih`` folded into ``gi``: values, gradients."""
    torch.manual_seed(20)
    gi, h0, w, b_hh = _gru_args(torch.float64)
    b_ih = torch.randn(3 * H, dtype=torch.float64, requires_grad=True)
    y = gru_recurrence_fused(gi, h0, w, b_hh, bias_ih=b_ih)
    y_ref = gru_recurrence_reference(gi + b_ih, h0, w, b_hh)
    assert_close(y, y_ref)
    wts = torch.randn_like(y)
    grads = _grads((y * wts).sum(), [gi, h0, w, b_hh, b_ih])
    grads_ref = _grads((y_ref * wts).sum(), [gi, h0, w, b_hh, b_ih])
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_close(g, g_ref)


def test_time_major_and_batch_first_agree() -> None:
    torch.manual_seed(13)
    args = _gru_args(torch.float64)
    y = gru_recurrence_fused(*args)
    y_tm = gru_recurrence_fused(*_time_major(args), time_major=True)
    assert_close(y_tm, y.transpose(0, 1))


@pytest.mark.parametrize(("fused", "make_args"), [(c[0], c[2]) for c in CASES], ids=["e", "g"])
def test_gradient_only_for_some_inputs(fused, make_args) -> None:
    torch.manual_seed(4)
    args = make_args(torch.float64)
    full = _grads(fused(*args).square().sum(), list(args))
    for k, arg in enumerate(args):
        partial_args = [a if j == k else a.detach() for j, a in enumerate(args)]
        (g,) = _grads(fused(*partial_args).square().sum(), [arg])
        assert_close(g, full[k])


@pytest.mark.parametrize(("fused", "reference", "make_args"), CASES, ids=["elman", "gru"])
def test_fused_runs_under_no_grad(fused, reference, make_args) -> None:
    torch.manual_seed(5)
    args = make_args(torch.float32)
    with torch.no_grad():
        y = fused(*args)
    assert not y.requires_grad
    assert_close(y, reference(*args).detach(), **TOL[torch.float32])


def test_one_elman_step_matches_rnn_cell() -> None:
    torch.manual_seed(6)
    cell = nn.RNNCell(N_IN, H).double()
    x = torch.randn(B, 1, N_IN, dtype=torch.float64)
    h0 = torch.randn(B, H, dtype=torch.float64)
    proj = x @ cell.weight_ih.T + cell.bias_ih + cell.bias_hh
    h = elman_recurrence_fused(proj, h0, cell.weight_hh)
    assert_close(h[:, 0], cell(x[:, 0], h0))


def test_one_gru_step_matches_gru_cell() -> None:
    torch.manual_seed(7)
    cell = nn.GRUCell(N_IN, H).double()
    x = torch.randn(B, 1, N_IN, dtype=torch.float64)
    h0 = torch.randn(B, H, dtype=torch.float64)
    gi = x @ cell.weight_ih.T + cell.bias_ih
    h = gru_recurrence_fused(gi, h0, cell.weight_hh, cell.bias_hh)
    assert_close(h[:, 0], cell(x[:, 0], h0))


def test_gru_cell_loop_matches_fused_sequence() -> None:
    torch.manual_seed(8)
    cell = nn.GRUCell(N_IN, H).double()
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    h = torch.zeros(B, H, dtype=torch.float64)
    steps = []
    for t in range(L):
        h = cell(x[:, t], h)
        steps.append(h)
    gi = x @ cell.weight_ih.T + cell.bias_ih
    fused = gru_recurrence_fused(gi, torch.zeros(B, H, dtype=torch.float64), cell.weight_hh,
                                 cell.bias_hh)  # fmt: skip
    assert_close(fused, torch.stack(steps, 1))


def test_elman_hook_is_the_fused_recurrence() -> None:
    assert elman_module.elman_recurrence is elman_recurrence_fused


# ---------------------------------------------------------------------------------- RNN


@pytest.mark.parametrize("layers", [1, 2])
def test_rnn_model_fused_matches_nn_rnn(layers: int) -> None:
    torch.manual_seed(14)
    model = RNN(N_IN, N_OUT, H, num_layers=layers).double()
    plain = RNN(N_IN, N_OUT, H, num_layers=layers, fused=False).double()
    plain.load_state_dict(model.state_dict())
    x, h0 = _inputs(torch.float64, layers)
    y, (h,) = model(x, (h0,))
    y_ref, (h_ref,) = plain(x, (h0,))
    assert_close(y, y_ref)
    assert_close(h, h_ref)
    w = torch.randn_like(y)
    grads = _grads((y * w).sum() + h.sum(), [x, h0, *model.parameters()])
    grads_ref = _grads((y_ref * w).sum() + h_ref.sum(), [x, h0, *plain.parameters()])
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_close(g, g_ref)


# --------------------------------------------------------------------------------- LSTM


def _lstm_args(dtype: torch.dtype) -> tuple[Tensor, ...]:
    gi = torch.randn(B, L, 4 * H, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, H, dtype=dtype, requires_grad=True)
    c0 = torch.randn(B, H, dtype=dtype, requires_grad=True)
    w = (0.5 * torch.randn(4 * H, H, dtype=dtype)).requires_grad_()
    return gi, h0, c0, w


def lstm_recurrence_reference(
    gi: Tensor, h0: Tensor, c0: Tensor, weight_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """The LSTM recurrence step by step through autograd (``torch.nn.LSTM`` equations)."""
    h, c, outs = h0, c0, []
    for t in range(gi.shape[1]):
        i, f, g, o = (gi[:, t] + h @ weight_hh.T).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1), c


@pytest.fixture
def lstm_fused(path: str) -> None:
    if path == "python":
        pytest.skip("the fused LSTM runs only with the compiled step loops")


@pytest.mark.usefixtures("lstm_fused")
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_lstm_matches_autograd_reference(dtype: torch.dtype) -> None:
    torch.manual_seed(15)
    args = _lstm_args(dtype)
    h, c = lstm_recurrence_fused(*args)
    h_ref, c_ref = lstm_recurrence_reference(*args)
    assert_close(h, h_ref, **TOL[dtype])
    assert_close(c, c_ref, **TOL[dtype])
    w = torch.randn_like(h)
    grads = _grads((h * w).sum() + (c * c).sum(), list(args))
    grads_ref = _grads((h_ref * w).sum() + (c_ref * c_ref).sum(), list(args))
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_close(g, g_ref, **TOL[dtype])


@pytest.mark.usefixtures("lstm_fused")
def test_fused_lstm_gradcheck_in_float64() -> None:
    torch.manual_seed(16)
    bias = torch.randn(4 * H, dtype=torch.float64, requires_grad=True)
    args = (*_time_major(_lstm_args(torch.float64)), bias)
    assert gradcheck(LSTMRecurrence.apply, args)


@pytest.mark.usefixtures("lstm_fused")
def test_fused_lstm_bias_inside_or_in_the_gates_agree() -> None:
    torch.manual_seed(21)
    gi, h0, c0, w = _lstm_args(torch.float64)
    bias = torch.randn(4 * H, dtype=torch.float64, requires_grad=True)
    h, c = lstm_recurrence_fused(gi, h0, c0, w, bias=bias)
    h_ref, c_ref = lstm_recurrence_reference(gi + bias, h0, c0, w)
    assert_close(h, h_ref)
    assert_close(c, c_ref)
    grads = _grads(h.square().sum() + c.sum(), [gi, h0, c0, w, bias])
    grads_ref = _grads(h_ref.square().sum() + c_ref.sum(), [gi, h0, c0, w, bias])
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_close(g, g_ref)


@pytest.mark.usefixtures("lstm_fused")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [1, 2])
def test_fused_lstm_model_matches_nn_lstm(dtype: torch.dtype, layers: int) -> None:
    torch.manual_seed(17)
    model = LSTM(N_IN, N_OUT, H, num_layers=layers).to(dtype)
    plain = LSTM(N_IN, N_OUT, H, num_layers=layers, fused=False).to(dtype)
    plain.load_state_dict(model.state_dict())
    x, h0 = _inputs(dtype, layers)
    c0 = torch.randn_like(h0).requires_grad_()
    y, (h, c) = model(x, (h0, c0))
    y_ref, (h_ref, c_ref) = plain(x, (h0, c0))
    for got, want in ((y, y_ref), (h, h_ref), (c, c_ref)):
        assert_close(got, want, **TOL[dtype])
    w = torch.randn_like(y)
    grads = _grads((y * w).sum() + h.sum() + (c * c).sum(), [x, h0, c0, *model.parameters()])
    grads_ref = _grads(
        (y_ref * w).sum() + h_ref.sum() + (c_ref * c_ref).sum(), [x, h0, c0, *plain.parameters()]
    )
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_close(g, g_ref, **TOL[dtype])


@pytest.mark.usefixtures("lstm_fused")
def test_fused_lstm_gradient_only_for_some_inputs() -> None:
    torch.manual_seed(18)
    args = _lstm_args(torch.float64)

    def loss(a: list[Tensor]) -> Tensor:
        h, c = lstm_recurrence_fused(*a)
        return h.square().sum() + c.sum()

    full = _grads(loss(list(args)), list(args))
    for k, arg in enumerate(args):
        (g,) = _grads(loss([a if j == k else a.detach() for j, a in enumerate(args)]), [arg])
        assert_close(g, full[k])


def _count_fused_lstm_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Batch sizes of the fused LSTM recurrence's calls, with the limit at batch 4."""
    calls: list[int] = []
    real = recurrent.lstm_recurrence_fused

    def counting(gi: Tensor, *args: Tensor, **kw: bool) -> tuple[Tensor, Tensor]:
        calls.append(gi.shape[1])
        return real(gi, *args, **kw)

    monkeypatch.setattr(recurrent, "lstm_recurrence_fused", counting)
    monkeypatch.setattr(switches, "FUSED_LSTM_MIN_WORK", 4 * H)
    return calls


def test_lstm_model_path(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The LSTM trains fused with the compiled loops from FUSED_LSTM_MIN_WORK up, else nn.LSTM."""
    calls = _count_fused_lstm_calls(monkeypatch)
    model = LSTM(N_IN, N_OUT, H).double()
    reference = LSTM(N_IN, N_OUT, H, fused=False).double()
    reference.load_state_dict(model.state_dict())
    for batch in (3, 4):  # below the limit: nn.LSTM; at it: fused (compiled loops only)
        x = torch.randn(batch, L, N_IN, dtype=torch.float64)
        out, (h, c) = model(x)
        want, (h_ref, c_ref) = reference(x)
        for got, exp in ((out, want), (h, h_ref), (c, c_ref)):
            assert_close(got, exp)
    assert calls == ([4] if path == "native" else [])
    with torch.no_grad():  # forecasting keeps no gate activations: nn.LSTM
        model(torch.randn(4, L, N_IN, dtype=torch.float64))
    assert calls == ([4] if path == "native" else [])


@pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="CPU without native bfloat16")
def test_lstm_under_bf16_autocast_runs_onednn(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under bfloat16 autocast the LSTM trains through oneDNN's nn.LSTM, even above the limit."""
    calls = _count_fused_lstm_calls(monkeypatch)
    model = LSTM(N_IN, N_OUT, H)
    x = torch.randn(4, L, N_IN)
    model(x)
    assert calls == ([4] if path == "native" else [])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = model(x)
    assert out.dtype == torch.bfloat16
    assert calls == ([4] if path == "native" else [])


# ----------------------------------------------------------- threads and block splitting


@pytest.mark.parametrize("cls", [Elman, GRU, LSTM])
def test_any_block_split_gives_the_same_numbers(
    path: str, cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Odd batch sizes over 1 and 2 threads, with and without blocks, agree in float64."""
    if path == "python":
        pytest.skip("blocks exist only in the compiled loops")
    torch.manual_seed(19)
    kw = {"input_size": N_IN, "output_size": N_OUT, "hidden_size": H}
    model = cls(**kw).double()
    x = torch.randn(37, L, N_IN, dtype=torch.float64)
    results = []
    for threads, min_rows in ((1, 1), (2, 1), (2, 64)):
        torch.set_num_threads(threads)
        monkeypatch.setattr(switches, "MIN_BLOCK_ROWS", min_rows)
        model.zero_grad()
        y, _ = model(x)
        y.square().sum().backward()
        results.append([y.detach(), *(p.grad.clone() for p in model.parameters())])
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model_cls", [Elman, GRU], ids=["elman", "gru"])
def test_fused_and_unfused_models_agree(model_cls) -> None:
    torch.manual_seed(9)
    kw = {"input_size": N_IN, "output_size": N_OUT, "hidden_size": H, "num_layers": 2}
    fused = model_cls(**kw, fused=True).double()
    plain = model_cls(**kw, fused=False).double()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    y, (h,) = fused(x)
    y_ref, (h_ref,) = plain(x)
    assert_close(y, y_ref)
    assert_close(h, h_ref)


def test_fused_gru_dropout_sits_between_layers() -> None:
    torch.manual_seed(10)
    model = GRU(N_IN, N_OUT, H, num_layers=2, dropout=0.5, fused=True).double().train()
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    torch.manual_seed(11)
    y, _ = model(x)
    torch.manual_seed(11)
    h0 = torch.zeros(B, H, dtype=torch.float64)
    seq = x
    for layer in range(2):
        w_ih, b_ih, w_hh, b_hh = model._layer_params(layer)
        seq = gru_recurrence_reference(seq @ w_ih.T + b_ih, h0, w_hh, b_hh)
        if layer == 0:  # the fused layers run time-major, and draw the mask that way
            seq_t = seq.transpose(0, 1).contiguous()
            seq = nn.functional.dropout(seq_t, 0.5, training=True).transpose(0, 1)
    assert_close(y, model.head(seq))


def test_fused_elman_dropout_changes_training_output_only() -> None:
    torch.manual_seed(12)
    model = Elman(N_IN, H, N_OUT, num_layers=2, dropout=0.5).double()
    x = torch.randn(B, L, N_IN, dtype=torch.float64)
    y_train, _ = model.train()(x)
    y_eval, _ = model.eval()(x)
    plain = Elman(N_IN, H, N_OUT, num_layers=2, dropout=0.0).double()
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(y_train, y_eval)
    assert_close(y_eval, plain(x)[0])


def test_gru_hands_large_batches_to_nn_gru(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the Python loops hand large batches to nn.GRU; the compiled ones run them all."""
    calls: list[int] = []
    real = recurrent.gru_recurrence_fused

    def counting(gi: Tensor, *args: Tensor, **kw: bool) -> Tensor:
        calls.append(gi.shape[1])  # time-major: [L, B, 3H]
        return real(gi, *args, **kw)

    monkeypatch.setattr(recurrent, "gru_recurrence_fused", counting)
    torch.manual_seed(0)
    model = GRU(2, 1, hidden_size=16).double()
    reference = GRU(2, 1, hidden_size=16, fused=False).double()
    reference.load_state_dict(model.state_dict())
    limit = switches.FUSED_GRU_MAX_WORK // 16  # the largest batch still fused at H = 16
    for batch in (limit, limit + 1):
        x = torch.randn(batch, 5, 2, dtype=torch.float64)
        out, (h,) = model(x)
        want, (h_ref,) = reference(x)
        assert_close(out, want)
        assert_close(h, h_ref)
    # Python loops: the batch above the limit ran nn.GRU
    assert calls == ([limit, limit + 1] if path == "native" else [limit])


def test_read_out_of_a_time_major_view_equals_the_head() -> None:
    """The head runs in the hidden sequence's own memory order, with the same results."""
    torch.manual_seed(22)
    head = nn.Linear(H, N_OUT).double()
    memory = torch.randn(L, B, H, dtype=torch.float64, requires_grad=True)  # time-major
    seq = memory.transpose(0, 1)  # what the fused layers return: [B, L, H], a view
    assert not seq.is_contiguous()
    out = read_out(head, seq)
    want = head(seq.contiguous())
    assert out.is_contiguous() and out.shape == (B, L, N_OUT)
    assert_close(out, want)
    w = torch.randn_like(out)
    (g,) = _grads((out * w).sum(), [memory])
    (g_ref,) = _grads((want * w).sum(), [memory])
    assert_close(g, g_ref)
    plain = torch.randn(B, L, H, dtype=torch.float64)  # contiguous input: the head as is
    assert torch.equal(read_out(head, plain), head(plain))


@pytest.mark.usefixtures("lstm_fused")
def test_fused_lstm_in_bfloat16_tracks_float32() -> None:
    """The compiled loops' bfloat16 path (run directly; the model uses oneDNN under autocast)."""
    torch.manual_seed(23)
    args = [a.detach().float() for a in _lstm_args(torch.float32)]
    h_ref, c_ref = lstm_recurrence_fused(*args)
    low = [a.to(torch.bfloat16).requires_grad_() for a in args]
    h, c = lstm_recurrence_fused(*low)
    assert h.dtype == torch.bfloat16
    assert_close(h.float(), h_ref, atol=3e-2, rtol=3e-2)
    assert_close(c.float(), c_ref, atol=5e-2, rtol=5e-2)
    (g,) = _grads(h.float().square().sum(), [low[3]])
    ref_w = args[3].clone().requires_grad_()
    (g_ref,) = _grads(lstm_recurrence_fused(args[0], args[1], args[2], ref_w)[0].square().sum(),
                      [ref_w])  # fmt: skip
    assert float((g.float() - g_ref).norm() / g_ref.norm()) < 5e-2
