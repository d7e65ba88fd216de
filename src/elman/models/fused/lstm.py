"""The fused LSTM recurrence (compiled loops only); the shared design is in
:mod:`elman.models.fused.common`.

LSTM layer, exactly ``torch.nn.LSTM`` (``gi = x @ W_ih.T + b_ih + b_hh``, chunks i, f, g, o;
``tc_t = tanh(c_t)``; ``dh``, ``dc`` the total gradients at ``h_t``, ``c_t``)::

    i, f, o = sigmoid(.), g = tanh(.) of gi_t + h_{t-1} @ W_hh.T
    c_t = f * c_{t-1} + i * g,   h_t = o * tc_t
    dc_t = dc_{t+1} * f_{t+1} + dh_t * o (1 - tc_t^2)
    da_i = dc_t * g i (1 - i),  da_f = dc_t * c_{t-1} f (1 - f),  da_g = dc_t * i (1 - g^2),
    da_o = dh_t * tc_t o (1 - o),  dh_{t-1} = g_{t-1} + da_t @ W_hh
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from elman.models import switches
from elman.models.fused.common import (
    _check_steps,
    _compute_dtype,
    _input_grads,
    _time_major,
    _unit_stride,
    _weight_grad,
    _weight_grad_in_loop,
    native_ops,
)


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
                :class:`~elman.models.fused.gru.GRURecurrence`), or ``None``.

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
        ops.lstm_forward(h, c, act, tc, gi, bias, w_t, w_in, switches.MIN_BLOCK_ROWS)
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
            switches.MIN_BLOCK_ROWS,
        )
        grad_h0 = dgates[0] @ weight_hh if ctx.needs_input_grad[1] else None
        grad_c0 = dc0 if ctx.needs_input_grad[2] else None
        grad_w = _weight_grad(dgates, h, partials) if want_w else None
        grad_b = sums.sum(0).to(act.dtype) if ctx.needs_input_grad[4] else None
        if not ctx.folded:
            return dgates, grad_h0, grad_c0, grad_w, grad_b, None
        grad_x, grad_w_ih = _input_grads(ctx, dgates, in_sums, *folded)
        return grad_x, grad_h0, grad_c0, grad_w, grad_b, grad_w_ih


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

    Needs the compiled loops (:func:`~elman.models.fused.common.native_ops` is not ``None``).

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
        state, in the dtype of ``gi`` (see
        :func:`~elman.models.fused.elman.elman_recurrence_fused`).
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


__all__ = ["LSTMRecurrence", "lstm_recurrence_fused"]
