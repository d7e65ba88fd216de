"""Fast CPU training paths for the Elman (tanh), GRU and LSTM recurrences.

On CPU, ``nn.LSTM`` trains through oneDNN, while ``nn.RNN`` and ``nn.GRU`` run a generic
per-step loop that records several autograd nodes per step. The functions here do the
same maths with less work per step:

* the input projections ``x @ W_ih.T + b`` are computed by the caller for the whole
  sequence (one large GEMM, differentiated by autograd as usual), except that a layer
  with at most :data:`FOLD_MAX_INPUTS` inputs lets the compiled loops project them step
  by step;
* the recurrence runs with no autograd graph, writing into preallocated time-major
  (``[L, B, ...]``) buffers;
* backpropagation through time is hand-written in a :class:`torch.autograd.Function`;
  the recurrent weight gradient is summed step by step in the compiled loops when the
  weights are small (:data:`WEIGHT_GRAD_IN_LOOP_MAX_BYTES`), else a single
  ``[gates*H, L*B] @ [L*B, H]`` GEMM;
* the step loops, forward and backward, run in C++ when :mod:`elman.models.native` is
  available. Each thread runs every step for its own block of batch rows, so the small
  per-step products run one per thread instead of split over all threads, and each
  backward step's element-wise maths is one pass over rows still in cache.
  Without the compiled loops, the Elman and GRU loops run in Python (same numbers; the
  factors that need no step loop are computed for the whole sequence at once) and the
  LSTM runs ``nn.LSTM`` (see :mod:`elman.models.recurrent`).

The Functions take and return time-major tensors; the ``*_fused`` wrappers take
batch-first ones unless ``time_major=True``. Models pass the whole layer stack
time-major, so no full-sequence copy is made between layers or for the gradients.

Elman layer (``a`` = pre-activation)::

    h_t = tanh(p_t + h_{t-1} @ W.T)                       p_t = x_t @ W_ih.T + b
    da_t = (g_t + da_{t+1} @ W) * (1 - h_t^2)             g_t = dLoss/dh_t from above
    dp_t = da_t,   dW = sum_t da_t.T @ h_{t-1},   dh_0 = da_1 @ W

GRU layer, exactly ``torch.nn.GRU`` (``gi = x @ W_ih.T + b_ih``, ``gh = h @ W_hh.T + b_hh``,
chunks ordered r, z, n)::

    r = sigmoid(gi_r + gh_r)     z = sigmoid(gi_z + gh_z)
    n = tanh(gi_n + r * gh_n)    h_t = (1 - z) * n + z * h_{t-1}

LSTM layer, exactly ``torch.nn.LSTM`` (``gi = x @ W_ih.T + b_ih + b_hh``, chunks i, f, g, o;
``tc_t = tanh(c_t)``; ``dh``, ``dc`` the total gradients at ``h_t``, ``c_t``)::

    i, f, o = sigmoid(.), g = tanh(.) of gi_t + h_{t-1} @ W_hh.T
    c_t = f * c_{t-1} + i * g,   h_t = o * tc_t
    dc_t = dc_{t+1} * f_{t+1} + dh_t * o (1 - tc_t^2)
    da_i = dc_t * g i (1 - i),  da_f = dc_t * c_{t-1} f (1 - f),  da_g = dc_t * i (1 - g^2),
    da_o = dh_t * tc_t o (1 - o),  dh_{t-1} = g_{t-1} + da_t @ W_hh

Double backward is not supported (the Functions are ``once_differentiable``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from elman.models import native

# Most input features for which the Elman, RNN, GRU and LSTM layers fold their input
# projection into the recurrence (the ``*_recurrence_fused`` functions with ``weight_ih``):
# the folded projection costs about 2 I multiply-adds per gate unit and step in the row
# passes, and saves several passes over ``[L, B, gates * H]`` arrays in memory. Measured
# with ``benchmarks/bench_step_paths.py --fold-sweep``: faster up to 8 inputs, even at 16,
# slower at 32.
FOLD_MAX_INPUTS = 8

# Whether the compiled backward loops accumulate the recurrent weight gradient step by
# step (float and double), instead of one product over the whole sequence afterwards:
# each block adds d_t.T @ h_{t-1} into its own partial sum while both are in cache, which
# saves reading the whole sequence twice more. Only for recurrent weights of at most
# WEIGHT_GRAD_IN_LOOP_MAX_BYTES: a larger partial sum and the step's packed weights no
# longer share a core's L2 cache, and the step-by-step sums measured slower (GRU and LSTM
# at H = 256) than one product afterwards. Benchmarks switch it off to measure both; the
# numbers agree to float rounding.
WEIGHT_GRAD_IN_LOOP = True
WEIGHT_GRAD_IN_LOOP_MAX_BYTES = 256 * 1024


def fused_allowed() -> bool:
    """Whether a fused path may run now: not while tracing, compiling or exporting to ONNX."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    if torch.compiler.is_compiling():
        return False
    return not torch.onnx.is_in_onnx_export()


def native_ops() -> Any:
    """The compiled step loops (``torch.ops.elman_native``), or ``None`` for the Python ones."""
    return native.ops()


class ElmanRecurrence(torch.autograd.Function):
    """``h_t = tanh(proj_t + h_{t-1} @ W_hh.T)`` with a hand-written backward pass.

    Given ``weight_ih`` and ``bias``, the first argument holds the layer inputs ``x`` and
    ``proj_t = x_t @ W_ih.T + bias`` is computed inside the recurrence: for a few input
    features that saves writing the ``[L, B, H]`` projections and reading them back, and
    reading the pre-activation gradients twice more for the gradients of ``W_ih`` and the
    bias (the compiled loops add those up step by step).
    """

    @staticmethod
    def forward(
        ctx: Any,
        inputs: Tensor,
        h0: Tensor,
        weight_hh: Tensor,
        weight_ih: Tensor | None = None,
        bias: Tensor | None = None,
    ) -> Tensor:
        """Run the recurrence.

        Args:
            ctx: autograd context.
            inputs: input projections ``[L, B, H]`` (bias included), any strides; the
                layer inputs ``x`` ``[L, B, I]`` when ``weight_ih`` is given.
            h0: initial state ``[B, H]``.
            weight_hh: recurrent weights ``[H, H]``.
            weight_ih: input weights ``[H, I]``, or ``None``.
            bias: ``[H]``, added to ``x @ W_ih.T`` (with ``weight_ih`` only; ``None`` for none).

        Returns:
            All hidden states ``[L, B, H]``.
        """
        steps, batch = inputs.shape[:2]
        _check_steps(steps)
        if weight_ih is None and bias is not None:
            raise ValueError("ElmanRecurrence: bias is the folded projection's; pass weight_ih")
        hidden = weight_hh.shape[0]
        states = inputs.new_empty(steps + 1, batch, hidden)  # [L + 1, B, H]: h_0 .. h_L
        states[0] = h0
        inputs, weight_hh = _unit_stride(inputs.detach()), weight_hh.detach()
        w_ih = None if weight_ih is None else weight_ih.detach()
        if w_ih is not None:
            bias = inputs.new_zeros(hidden) if bias is None else bias.detach()
        w_t = weight_hh.t().contiguous()  # a plain (untransposed) operand: faster products
        ops = native_ops()
        if ops is not None:
            w_in = None if w_ih is None else w_ih.t()
            ops.elman_forward(states, inputs, w_t, w_in, bias, native.MIN_BLOCK_ROWS)
        else:
            proj = inputs if w_ih is None else torch.nn.functional.linear(inputs, w_ih, bias)
            # Per-step views made in one call each: indexing in the loop costs more than the
            # maths.
            p, h = proj.unbind(0), states.unbind(0)
            for t in range(steps):
                torch.addmm(p[t], h[t], w_t, out=h[t + 1]).tanh_()
        ctx.folded = w_ih is not None
        if w_ih is not None:
            ctx.save_for_backward(weight_hh, states, inputs, w_ih)
        else:
            ctx.save_for_backward(weight_hh, states)
        return states[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """BPTT: gradients for ``inputs``, ``h0``, ``weight_hh`` (and ``weight_ih``, ``bias``)."""
        weight_hh, states, *folded = ctx.saved_tensors
        inputs = folded[0] if ctx.folded else None
        steps = states.shape[0] - 1
        want_w = ctx.needs_input_grad[2]
        partials = in_sums = None
        ops = native_ops()
        if ops is not None:
            # When nothing needs the per-step gradients afterwards (the weight gradients are
            # added up in the loop, the inputs need none), the loop keeps only the last two.
            in_loop = want_w and _weight_grad_in_loop(weight_hh)
            ring = ctx.folded and not ctx.needs_input_grad[0] and (in_loop or not want_w)
            da = states.new_empty(2 if ring else steps, *states.shape[1:])
            partials, in_sums = ops.elman_backward(
                da, states, _unit_stride(grad_out), weight_hh, in_loop, inputs,
                native.MIN_BLOCK_ROWS,
            )
        else:
            # tanh' for every step at once; overwritten by the pre-activation gradients.
            da = states[1:].square().neg_().add_(1.0)  # [L, B, H]
            d, g = da.unbind(0), grad_out.unbind(0)
            dh = torch.empty_like(states[0])  # gradient at h_t, [B, H]
            torch.mul(g[steps - 1], d[steps - 1], out=d[steps - 1])
            for t in range(steps - 1, 0, -1):
                torch.addmm(g[t - 1], d[t], weight_hh, out=dh)
                torch.mul(dh, d[t - 1], out=d[t - 1])
        grad_h0 = da[0] @ weight_hh if ctx.needs_input_grad[1] else None  # slot 0 of a ring
        grad_w = _weight_grad(da, states, partials) if want_w else None
        if not ctx.folded:
            return da, grad_h0, grad_w, None, None
        x, weight_ih = folded
        grad_x = da @ weight_ih if ctx.needs_input_grad[0] else None
        if in_sums is not None:
            sums = in_sums.sum(0).view(-1, da.shape[-1]).to(da.dtype)  # [I + 1, H]
            grad_w_ih, grad_b = sums[:-1].t(), sums[-1]
        else:
            hid = da.shape[-1]
            grad_w_ih = torch.mm(da.reshape(-1, hid).t(), x.reshape(-1, x.shape[-1]))
            grad_b = da.sum((0, 1))
        want = ctx.needs_input_grad
        return grad_x, grad_h0, grad_w, grad_w_ih if want[3] else None, grad_b if want[4] else None


class GRURecurrence(torch.autograd.Function):
    """The ``torch.nn.GRU`` recurrence given precomputed input gates, with a hand-written BPTT."""

    @staticmethod
    def forward(
        ctx: Any,
        gi: Tensor,
        h0: Tensor,
        weight_hh: Tensor,
        bias: Tensor,
        b_in: Tensor,
        weight_ih: Tensor | None = None,
    ) -> Tensor:
        """Run the recurrence.

        Args:
            ctx: autograd context.
            gi: input gates without bias, ``x @ W_ih.T``, ``[L, B, 3H]`` (chunks r, z, n);
                the layer inputs ``x`` ``[L, B, I]`` when ``weight_ih`` is given.
            h0: initial state ``[B, H]``.
            weight_hh: recurrent weights ``[3H, H]``.
            bias: ``[b_ir + b_hr, b_iz + b_hz, b_hn]``, ``[3H]``: the biases added to
                ``h @ W_hh.T``.
            b_in: ``[H]``, the input bias of the candidate, added inside ``tanh``.
            weight_ih: input weights ``[3H, I]``: the input gates are then projected
                inside the recurrence (see :class:`ElmanRecurrence`); ``None``: ``gi``
                holds them.

        Returns:
            All hidden states ``[L, B, H]``.
        """
        steps, batch, _ = gi.shape
        _check_steps(steps)
        hid = h0.shape[-1]
        gi, weight_hh, bias, b_in = gi.detach(), weight_hh.detach(), bias.detach(), b_in.detach()
        gi = _unit_stride(gi)
        w_ih = None if weight_ih is None else weight_ih.detach()
        states = gi.new_empty(steps + 1, batch, hid)  # [L + 1, B, H]: h_0 .. h_L
        states[0] = h0
        rzg = gi.new_empty(steps, batch, 3 * hid)  # r, z and h_{t-1} @ W_hn.T + b_hn
        n = gi.new_empty(steps, batch, hid)  # candidate states
        w_t = weight_hh.t().contiguous()
        ops = native_ops()
        if ops is not None:
            w_in = None if w_ih is None else w_ih.t()
            ops.gru_forward(states, rzg, n, gi, bias, b_in, w_t, w_in, native.MIN_BLOCK_ROWS)
        else:
            gates = gi if w_ih is None else torch.nn.functional.linear(gi, w_ih)
            _gru_forward_loop(states, rzg, n, gates, bias, b_in, w_t)
        ctx.folded = w_ih is not None
        if w_ih is not None:
            ctx.save_for_backward(weight_hh, states, rzg, n, gi, w_ih)
        else:
            ctx.save_for_backward(weight_hh, states, rzg, n)
        return states[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """BPTT: gradients for ``gi``, ``h0``, ``weight_hh``, ``bias`` and ``b_in``
        (and ``weight_ih``)."""
        weight_hh, states, rzg, n, *folded = ctx.saved_tensors
        hid = n.shape[-1]
        dgh = torch.empty_like(rzg)  # [L, B, 3H], gradient at gh = h @ W_hh.T + b_hh
        dh_all = torch.empty_like(n)  # [L, B, H], total gradient at each h_t
        want_w = ctx.needs_input_grad[2]
        partials = in_sums = None
        ops = native_ops()
        if ops is not None:
            # With a folded projection whose inputs need no gradient, the loop sums the
            # gradient of W_ih itself and writes no dgi.
            x = folded[0] if ctx.folded and not ctx.needs_input_grad[0] else None
            dgi = rzg.new_empty(0) if x is not None else torch.empty_like(rzg)
            block_sums, partials, in_sums = ops.gru_backward(
                dgh, dgi, dh_all, states, rzg, n, _unit_stride(grad_out), weight_hh,
                want_w and _weight_grad_in_loop(weight_hh), x, native.MIN_BLOCK_ROWS,
            )
            sums = block_sums.sum(0)  # per-block sums of [dgh, dgi_n], added in block order
        else:
            dgi = _gru_backward_loop(dgh, dh_all, states, rzg, n, grad_out, weight_hh)
            sums = torch.cat([dgh.sum((0, 1)), dgi[..., 2 * hid :].sum((0, 1))])
        z0 = rzg[0, :, hid : 2 * hid]
        grad_h0 = None
        if ctx.needs_input_grad[1]:
            grad_h0 = torch.addmm(dh_all[0] * z0, dgh[0], weight_hh)
        grad_w = _weight_grad(dgh, states, partials) if want_w else None
        grad_b = sums[: 3 * hid].to(rzg.dtype) if ctx.needs_input_grad[3] else None
        grad_b_in = sums[3 * hid :].to(rzg.dtype) if ctx.needs_input_grad[4] else None
        if not ctx.folded:
            return dgi, grad_h0, grad_w, grad_b, grad_b_in, None
        grad_x, grad_w_ih = _input_grads(ctx, dgi, in_sums, *folded)
        return grad_x, grad_h0, grad_w, grad_b, grad_b_in, grad_w_ih


class LSTMRecurrence(torch.autograd.Function):
    """The ``torch.nn.LSTM`` recurrence given precomputed input gates; compiled loops only."""

    @staticmethod
    def forward(
        ctx: Any,
        gi: Tensor,
        h0: Tensor,
        c0: Tensor,
        weight_hh: Tensor,
        bias: Tensor,
        weight_ih: Tensor | None = None,
    ) -> Any:
        """Run the recurrence.

        Args:
            ctx: autograd context.
            gi: input gates without bias, ``x @ W_ih.T``, ``[L, B, 4H]`` (chunks i, f, g, o);
                the layer inputs ``x`` ``[L, B, I]`` when ``weight_ih`` is given.
            h0: initial hidden state ``[B, H]``.
            c0: initial cell state ``[B, H]``.
            weight_hh: recurrent weights ``[4H, H]``.
            bias: ``b_ih + b_hh``, ``[4H]``.
            weight_ih: input weights ``[4H, I]``, projected inside the recurrence (see
                :class:`GRURecurrence`), or ``None``.

        Returns:
            ``(h [L, B, H], c_L [B, H])``: every hidden state and the last cell state.
        """
        ops = native_ops()
        if ops is None:
            raise RuntimeError("the fused LSTM needs the compiled recurrences")
        steps, batch, _ = gi.shape
        _check_steps(steps)
        hid = h0.shape[-1]
        gi, weight_hh, bias = _unit_stride(gi.detach()), weight_hh.detach(), bias.detach()
        w_ih = None if weight_ih is None else weight_ih.detach()
        h = gi.new_empty(steps + 1, batch, hid)  # h_0 .. h_L
        c = gi.new_empty(steps + 1, batch, hid)  # c_0 .. c_L
        h[0], c[0] = h0, c0
        act = gi.new_empty(steps, batch, 4 * hid)  # gate activations i, f, g, o
        tc = gi.new_empty(steps, batch, hid)  # tanh(c_t)
        w_t = weight_hh.t().contiguous()
        w_in = None if w_ih is None else w_ih.t()
        ops.lstm_forward(h, c, act, tc, gi, bias, w_t, w_in, native.MIN_BLOCK_ROWS)
        ctx.folded = w_ih is not None
        if w_ih is not None:
            ctx.save_for_backward(weight_hh, h, c, act, tc, gi, w_ih)
        else:
            ctx.save_for_backward(weight_hh, h, c, act, tc)
        return h[1:], c[steps].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_h: Tensor, grad_c: Tensor) -> tuple[Tensor | None, ...]:
        """BPTT: gradients for ``gi``, ``h0``, ``c0``, ``weight_hh`` and ``bias`` (and
        ``weight_ih``)."""
        weight_hh, h, c, act, tc, *folded = ctx.saved_tensors
        dgates = torch.empty_like(act)  # [L, B, 4H]
        dc0 = torch.empty_like(c[0])
        want_w = ctx.needs_input_grad[3]
        sums, partials, in_sums = native_ops().lstm_backward(
            dgates, dc0, h, c, act, tc, _unit_stride(grad_h), grad_c, weight_hh,
            want_w and _weight_grad_in_loop(weight_hh), folded[0] if ctx.folded else None,
            native.MIN_BLOCK_ROWS,
        )
        grad_h0 = dgates[0] @ weight_hh if ctx.needs_input_grad[1] else None
        grad_c0 = dc0 if ctx.needs_input_grad[2] else None
        grad_w = _weight_grad(dgates, h, partials) if want_w else None
        grad_b = sums.sum(0).to(act.dtype) if ctx.needs_input_grad[4] else None
        if not ctx.folded:
            return dgates, grad_h0, grad_c0, grad_w, grad_b, None
        grad_x, grad_w_ih = _input_grads(ctx, dgates, in_sums, *folded)
        return grad_x, grad_h0, grad_c0, grad_w, grad_b, grad_w_ih


def _check_steps(steps: int) -> None:
    """Refuse an empty sequence, as torch's recurrent modules do."""
    if steps == 0:
        raise ValueError("the fused recurrences need a sequence of at least one time step")


def _compute_dtype(x: Tensor, folded: bool) -> torch.dtype:
    """The dtype a fused recurrence runs in: that of its input gates. A folded projection
    receives the raw inputs, so under autocast it takes the dtype that ``F.linear`` would
    have produced."""
    if folded and torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _input_grads(
    ctx: Any, dgates: Tensor, in_sums: Tensor | None, x: Tensor, weight_ih: Tensor
) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of the inputs ``x`` ``[L, B, I]`` and of ``weight_ih`` ``[G*H, I]`` of an input
    projection folded into a recurrence (GRU, LSTM: inputs 0 and 5 of the Function).

    ``dgates`` ``[L, B, G*H]`` is the gradient at the projection's output (empty when the
    loop summed the weight gradient itself and ``x`` needs none); ``in_sums``
    ``[blocks, I * G*H]``, when not empty, are the compiled loop's per-block sums of
    ``x.T @ dgates``.
    """
    want = ctx.needs_input_grad
    grad_x = dgates @ weight_ih if want[0] else None
    grad_w_ih = None
    if want[5]:
        width = weight_ih.shape[0]
        if in_sums is not None and in_sums.numel():
            grad_w_ih = in_sums.sum(0).view(-1, width).t().to(x.dtype)
        else:
            grad_w_ih = torch.mm(dgates.reshape(-1, width).t(), x.reshape(-1, x.shape[-1]))
    return grad_x, grad_w_ih


def _weight_grad_in_loop(weight_hh: Tensor) -> bool:
    """Whether the compiled backward loops add up the gradient of ``weight_hh`` step by step."""
    size = weight_hh.numel() * weight_hh.element_size()
    return (
        WEIGHT_GRAD_IN_LOOP
        and weight_hh.dtype in (torch.float32, torch.float64)
        and size <= WEIGHT_GRAD_IN_LOOP_MAX_BYTES
    )


def _unit_stride(x: Tensor) -> Tensor:
    """``x``, or a contiguous copy if its last dimension is strided (the compiled step loops
    read rows element by element)."""
    return x if x.stride(-1) == 1 else x.contiguous()


def _weight_grad(dgates: Tensor, states: Tensor, partials: Tensor | None = None) -> Tensor:
    """``sum_t dgates_t.T @ h_{t-1}``, ``[G*H, H]``.

    The compiled backward loops (float and double) add each step's product to a partial
    sum per block of batch rows while both operands are in cache; ``partials``
    ``[blocks, G*H, H]`` are those sums, added here in block order. Otherwise one GEMM over
    the whole sequence: the compiled ``weight_grad`` cuts it into one slab per thread and
    adds the partial products; without the compiled loops, one ``(H_prev.T @ dgates).T``
    product (MKL runs that orientation faster than ``dgates.T @ H_prev`` here).
    """
    if partials is not None and partials.numel():
        return partials.sum(0) if partials.shape[0] > 1 else partials[0]
    hid = states.shape[-1]
    prev = states[:-1].reshape(-1, hid)  # [L*B, H]: h_0 .. h_{L-1}
    flat = dgates.reshape(-1, dgates.shape[-1])  # [L*B, G*H]
    ops = native_ops()
    if ops is not None:
        grad: Tensor = ops.weight_grad(flat, prev)
        return grad
    return (prev.t() @ flat).t()


def _gru_forward_loop(
    states: Tensor, rzg: Tensor, n: Tensor, gi: Tensor, bias: Tensor, b_in: Tensor, w_t: Tensor
) -> None:
    """The GRU forward step loop in Python (the arguments of ``gru_forward`` in C++)."""
    hid = n.shape[-1]
    # Per-step views made in one call each: indexing in the loop costs more than the maths.
    h, a, n_ = states.unbind(0), rzg.unbind(0), n.unbind(0)
    rz, r, z, ghn = (rzg[..., s].unbind(0) for s in _chunks(hid, (0, 2), (0, 1), (1, 2), (2, 3)))
    gi_rz, gi_n = gi[..., : 2 * hid].unbind(0), gi[..., 2 * hid :].unbind(0)
    for t in range(n.shape[0]):
        torch.addmm(bias, h[t], w_t, out=a[t])  # h @ W_hh.T + b_hh (+ b_ir, b_iz)
        rz[t].add_(gi_rz[t]).sigmoid_()
        torch.addcmul(gi_n[t], r[t], ghn[t], out=n_[t]).add_(b_in).tanh_()
        torch.lerp(n_[t], h[t], z[t], out=h[t + 1])  # n + z * (h - n)


def _chunks(hid: int, *spans: tuple[int, int]) -> list[slice]:
    """Slices of the gate chunks ``[a, b)`` (in units of ``hid``) of a ``[..., G*H]`` tensor."""
    return [slice(a * hid, b * hid) for a, b in spans]


def _gru_backward_loop(
    dgh: Tensor, dh_all: Tensor, states: Tensor, rzg: Tensor, n: Tensor, grad: Tensor,
    weight_hh: Tensor,
) -> Tensor:  # fmt: skip
    """The GRU backward in Python: fills ``dgh`` and ``dh_all``, returns the ``gi`` gradient.

    The factors that do not depend on the incoming gradient are computed for all steps at
    once: ``dgh = dh * c_gh`` chunk by chunk, and ``dgi_n = dh * dn_pre``.
    """
    steps, batch, hid = n.shape
    r, z, gh_n = (rzg[..., s] for s in _chunks(hid, (0, 1), (1, 2), (2, 3)))
    c_gh = torch.empty_like(rzg)
    c_r, c_z, c_n = c_gh.split(hid, -1)
    one_minus_z = 1.0 - z
    dn_pre = (1.0 - n * n).mul_(one_minus_z)  # d h_t / d (pre-activation of n)
    torch.mul(dn_pre * gh_n, r - r * r, out=c_r)
    torch.mul(states[:-1] - n, z * one_minus_z, out=c_z)
    torch.mul(dn_pre, r, out=c_n)

    dh_all[steps - 1] = grad[steps - 1]
    dh, dgh_, z_, g_ = dh_all.unbind(0), dgh.unbind(0), z.unbind(0), grad.unbind(0)
    dh3 = dh_all.unsqueeze(2).unbind(0)  # [B, 1, H], broadcast over the 3 gate chunks
    c3, dgh3 = c_gh.view(steps, batch, 3, hid).unbind(0), dgh.view(steps, batch, 3, hid)
    for t in range(steps - 1, 0, -1):
        torch.mul(c3[t], dh3[t], out=dgh3[t])
        torch.mm(dgh_[t], weight_hh, out=dh[t - 1])
        dh[t - 1].addcmul_(dh[t], z_[t]).add_(g_[t - 1])
    torch.mul(c3[0], dh3[0], out=dgh3[0])
    dgi = dgh.clone()
    torch.mul(dh_all, dn_pre, out=dgi[..., 2 * hid :])  # gi_n is not scaled by r
    return dgi


def _time_major(x: Tensor, time_major: bool) -> Tensor:
    """``x`` as ``[L, B, ...]`` (a view)."""
    return x if time_major else x.transpose(0, 1)


def elman_recurrence_fused(
    proj: Tensor,
    h0: Tensor,
    weight_hh: Tensor,
    time_major: bool = False,
    weight_ih: Tensor | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """Fused ``h_t = tanh(proj_t + h_{t-1} @ W_hh.T)``.

    Args:
        proj: input projections ``[B, L, H]`` (``[L, B, H]`` if ``time_major``), bias
            included; or, when ``weight_ih`` is given, the layer inputs ``x`` ``[B, L, I]``,
            projected inside the recurrence (``proj_t = x_t @ W_ih.T + bias``; worth it for
            a few input features, see :data:`FOLD_MAX_INPUTS`).
        h0: initial state ``[B, H]``.
        weight_hh: recurrent weights ``[H, H]``.
        time_major: inputs and outputs are ``[L, B, ...]``.
        weight_ih: input weights ``[H, I]``, or ``None`` when ``proj`` holds projections.
        bias: bias ``[H]`` of the folded projection (``None``: no bias).

    Returns:
        All hidden states, laid out as ``proj``, in the dtype of ``proj``: under autocast
        the projections come out in bfloat16, and the state and weights follow them. A
        folded projection (``weight_ih``) under autocast runs in the autocast dtype, as
        ``F.linear`` would have produced it.
    """
    # differentiable casts; no-ops (no graph nodes) when dtypes agree
    dt = _compute_dtype(proj, weight_ih is not None)
    seq = _time_major(proj, time_major).to(dt)
    if weight_ih is None:
        out = ElmanRecurrence.apply(seq, h0.to(dt), weight_hh.to(dt))
    else:
        b = None if bias is None else bias.to(dt)
        out = ElmanRecurrence.apply(seq, h0.to(dt), weight_hh.to(dt), weight_ih.to(dt), b)
    return _time_major(out, time_major)


def gru_recurrence_fused(
    gi: Tensor,
    h0: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor,
    time_major: bool = False,
    bias_ih: Tensor | None = None,
    weight_ih: Tensor | None = None,
) -> Tensor:
    """Fused GRU recurrence (``torch.nn.GRU`` equations) over precomputed input gates.

    Args:
        gi: input gates ``x @ W_ih.T + b_ih`` (``x @ W_ih.T`` when ``bias_ih`` is given),
            ``[B, L, 3H]`` (``[L, B, 3H]`` if ``time_major``), chunks r, z, n.
        h0: initial state ``[B, H]``.
        weight_hh: recurrent weights ``[3H, H]``.
        bias_hh: recurrent bias ``[3H]``.
        time_major: inputs and outputs are ``[L, B, ...]``.
        bias_ih: input bias ``[3H]``, added inside the recurrence (saves a pass over
            ``gi`` forward and backward); ``None`` when ``gi`` already holds it.
        weight_ih: input weights ``[3H, I]``: ``gi`` then holds the layer inputs ``x``
            ``[B, L, I]``, projected inside the recurrence (worth it for a few inputs, see
            :data:`FOLD_MAX_INPUTS`).

    Returns:
        All hidden states, laid out as ``gi``, in the dtype of ``gi`` (see
        :func:`elman_recurrence_fused`).
    """
    dt = _compute_dtype(gi, weight_ih is not None)
    hid = h0.shape[-1]
    b_hh = bias_hh.to(dt)
    if bias_ih is None:
        bias, b_in = b_hh, b_hh.new_zeros(hid)
    else:
        b_ih = bias_ih.to(dt)
        bias = torch.cat([b_ih[: 2 * hid] + b_hh[: 2 * hid], b_hh[2 * hid :]])
        b_in = b_ih[2 * hid :]
    seq = _time_major(gi, time_major).to(dt)
    if weight_ih is None:
        out = GRURecurrence.apply(seq, h0.to(dt), weight_hh.to(dt), bias, b_in)
    else:
        out = GRURecurrence.apply(seq, h0.to(dt), weight_hh.to(dt), bias, b_in, weight_ih.to(dt))
    return _time_major(out, time_major)


def lstm_recurrence_fused(
    gi: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    time_major: bool = False,
    bias: Tensor | None = None,
    weight_ih: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Fused LSTM recurrence (``torch.nn.LSTM`` equations) over precomputed input gates.

    Needs the compiled loops (:func:`native_ops` is not ``None``).

    Args:
        gi: input gates ``x @ W_ih.T + b_ih + b_hh`` (``x @ W_ih.T`` when ``bias`` is
            given), ``[B, L, 4H]`` (``[L, B, 4H]`` if ``time_major``), chunks i, f, g, o.
        h0: initial hidden state ``[B, H]``.
        c0: initial cell state ``[B, H]``.
        weight_hh: recurrent weights ``[4H, H]``.
        time_major: inputs and outputs are ``[L, B, ...]``.
        bias: ``b_ih + b_hh``, ``[4H]``, added inside the recurrence; ``None`` when ``gi``
            already holds it.
        weight_ih: input weights ``[4H, I]``: ``gi`` then holds the layer inputs ``x``
            ``[B, L, I]``, projected inside the recurrence.

    Returns:
        ``(h, c_L [B, H])``: every hidden state, laid out as ``gi``, and the last cell
        state, in the dtype of ``gi`` (see :func:`elman_recurrence_fused`).
    """
    dt = _compute_dtype(gi, weight_ih is not None)
    b = weight_hh.new_zeros(weight_hh.shape[0], dtype=dt) if bias is None else bias.to(dt)
    seq = _time_major(gi, time_major).to(dt)
    if weight_ih is None:
        h, c = LSTMRecurrence.apply(seq, h0.to(dt), c0.to(dt), weight_hh.to(dt), b)
    else:
        h, c = LSTMRecurrence.apply(
            seq, h0.to(dt), c0.to(dt), weight_hh.to(dt), b, weight_ih.to(dt)
        )
    return _time_major(h, time_major), c


def gru_recurrence_reference(gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
    """The same GRU recurrence step by step through autograd (the oracle for the fused one).

    Args:
        gi: input gates ``[B, L, 3H]``.
        h0: initial state ``[B, H]``.
        weight_hh: recurrent weights ``[3H, H]``.
        bias_hh: recurrent bias ``[3H]``.

    Returns:
        All hidden states ``[B, L, H]``.
    """
    h = h0
    outs = []
    for t in range(gi.shape[1]):
        i_r, i_z, i_n = gi[:, t].chunk(3, -1)
        h_r, h_z, h_n = torch.addmm(bias_hh, h, weight_hh.t()).chunk(3, -1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = (1.0 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs, 1)


__all__ = [
    "FOLD_MAX_INPUTS",
    "ElmanRecurrence",
    "GRURecurrence",
    "LSTMRecurrence",
    "elman_recurrence_fused",
    "fused_allowed",
    "gru_recurrence_fused",
    "gru_recurrence_reference",
    "lstm_recurrence_fused",
    "native_ops",
]
