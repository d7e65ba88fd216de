"""The fused Elman (tanh) recurrence; the shared design is in :mod:`elman.models.fused.common`.

Elman layer (``a`` = pre-activation)::

    h_t = tanh(p_t + h_{t-1} @ W.T)                       p_t = x_t @ W_ih.T + b
    da_t = (g_t + da_{t+1} @ W) * (1 - h_t^2)             g_t = dLoss/dh_t from above
    dp_t = da_t,   dW = sum_t da_t.T @ h_{t-1},   dh_0 = da_1 @ W
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
    _time_major,
    _unit_stride,
    _weight_grad,
    _weight_grad_in_loop,
    native_ops,
)


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
            ops.elman_forward(states, inputs, w_t, w_in, bias, switches.MIN_BLOCK_ROWS)
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
                switches.MIN_BLOCK_ROWS,
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
            a few input features, see :data:`~elman.models.switches.FOLD_MAX_INPUTS`).
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


__all__ = ["ElmanRecurrence", "elman_recurrence_fused"]
