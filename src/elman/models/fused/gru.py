"""The fused GRU recurrence; the shared design is in :mod:`elman.models.fused.common`.

GRU layer, exactly ``torch.nn.GRU`` (``gi = x @ W_ih.T + b_ih``, ``gh = h @ W_hh.T + b_hh``,
chunks ordered r, z, n)::

    r = sigmoid(gi_r + gh_r)     z = sigmoid(gi_z + gh_z)
    n = tanh(gi_n + r * gh_n)    h_t = (1 - z) * n + z * h_{t-1}
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
                inside the recurrence (see
                :class:`~elman.models.fused.elman.ElmanRecurrence`); ``None``: ``gi``
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
            ops.gru_forward(states, rzg, n, gi, bias, b_in, w_t, w_in, switches.MIN_BLOCK_ROWS)
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
                want_w and _weight_grad_in_loop(weight_hh), x, switches.MIN_BLOCK_ROWS,
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
            :data:`~elman.models.switches.FOLD_MAX_INPUTS`).

    Returns:
        All hidden states, laid out as ``gi``, in the dtype of ``gi`` (see
        :func:`~elman.models.fused.elman.elman_recurrence_fused`).
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


__all__ = ["GRURecurrence", "gru_recurrence_fused", "gru_recurrence_reference"]
