"""Fast CPU training paths for the Elman (tanh) and GRU recurrences.

On CPU, ``nn.LSTM`` trains through oneDNN, while ``nn.RNN`` and ``nn.GRU`` run a generic
per-step loop that records several autograd nodes per step. The functions here do the
same maths with less work per step:

* the input projections ``x @ W_ih.T + b`` are computed by the caller for the whole
  sequence (one large GEMM, differentiated by autograd as usual);
* the recurrence runs with no autograd graph, writing into preallocated time-major
  buffers with ``out=`` arguments;
* backpropagation through time is hand-written in a :class:`torch.autograd.Function`.
  Everything that does not depend on the incoming gradient is computed for the whole
  sequence at once, so each backward step is one small matrix product and two or three
  element-wise ops, and the recurrent weight gradient is a single
  ``[gates*H, L*B] @ [L*B, H]`` GEMM.

Elman layer (``a`` = pre-activation)::

    h_t = tanh(p_t + h_{t-1} @ W.T)                       p_t = x_t @ W_ih.T + b
    da_t = (g_t + da_{t+1} @ W) * (1 - h_t^2)             g_t = dLoss/dh_t from above
    dp_t = da_t,   dW = sum_t da_t.T @ h_{t-1},   dh_0 = da_1 @ W

GRU layer, exactly ``torch.nn.GRU`` (``gi = x @ W_ih.T + b_ih``, ``gh = h @ W_hh.T + b_hh``,
chunks ordered r, z, n)::

    r = sigmoid(gi_r + gh_r)     z = sigmoid(gi_z + gh_z)
    n = tanh(gi_n + r * gh_n)    h_t = (1 - z) * n + z * h_{t-1}

Double backward is not supported (the Functions are ``once_differentiable``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def fused_allowed() -> bool:
    """Whether a fused path may run now: not while tracing, compiling or exporting to ONNX."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    if torch.compiler.is_compiling():
        return False
    return not torch.onnx.is_in_onnx_export()


class ElmanRecurrence(torch.autograd.Function):
    """``h_t = tanh(proj_t + h_{t-1} @ W_hh.T)`` with a hand-written backward pass."""

    @staticmethod
    def forward(ctx: Any, proj: Tensor, h0: Tensor, weight_hh: Tensor) -> Tensor:
        """Run the recurrence.

        Args:
            ctx: autograd context.
            proj: input projections ``[B, L, H]`` (bias included).
            h0: initial state ``[B, H]``.
            weight_hh: recurrent weights ``[H, H]``.

        Returns:
            All hidden states ``[B, L, H]``.
        """
        batch, steps, hidden = proj.shape
        states = proj.new_empty(steps + 1, batch, hidden)  # [L + 1, B, H]: h_0 .. h_L
        states[0] = h0
        # Per-step views made in one call each: indexing in the loop costs more than the maths.
        p, h = proj.transpose(0, 1).unbind(0), states.unbind(0)
        w_t = weight_hh.t()
        for t in range(steps):
            torch.addmm(p[t], h[t], w_t, out=h[t + 1]).tanh_()
        ctx.save_for_backward(weight_hh, states)
        return states[1:].transpose(0, 1).contiguous()  # [B, L, H]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """BPTT: gradients for ``proj``, ``h0`` and ``weight_hh``."""
        weight_hh, states = ctx.saved_tensors
        steps, hidden = states.shape[0] - 1, states.shape[2]
        # tanh' for every step at once; overwritten in place by the pre-activation gradients.
        da = states[1:].square().neg_().add_(1.0)  # [L, B, H]
        d, g = da.unbind(0), grad_out.transpose(0, 1).unbind(0)
        dh = torch.empty_like(states[0])  # gradient at h_t, [B, H]
        torch.mul(g[steps - 1], d[steps - 1], out=d[steps - 1])
        for t in range(steps - 1, 0, -1):
            torch.addmm(g[t - 1], d[t], weight_hh, out=dh)
            torch.mul(dh, d[t - 1], out=d[t - 1])
        grad_h0 = d[0] @ weight_hh if ctx.needs_input_grad[1] else None
        grad_w = None
        if ctx.needs_input_grad[2]:
            prev = states[:-1].reshape(-1, hidden)  # [L*B, H]: h_0 .. h_{L-1}
            grad_w = da.reshape(-1, hidden).t() @ prev  # [H, H], one GEMM over the sequence
        grad_proj = da.transpose(0, 1) if ctx.needs_input_grad[0] else None  # [B, L, H]
        return grad_proj, grad_h0, grad_w


class GRURecurrence(torch.autograd.Function):
    """The ``torch.nn.GRU`` recurrence given precomputed input gates, with a hand-written BPTT."""

    @staticmethod
    def forward(ctx: Any, gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
        """Run the recurrence.

        Args:
            ctx: autograd context.
            gi: input gates ``x @ W_ih.T + b_ih``, ``[B, L, 3H]`` (chunks r, z, n).
            h0: initial state ``[B, H]``.
            weight_hh: recurrent weights ``[3H, H]``.
            bias_hh: recurrent bias ``[3H]``.

        Returns:
            All hidden states ``[B, L, H]``.
        """
        batch, steps, _ = gi.shape
        hid = h0.shape[-1]
        # Time-major copies make every per-step operand contiguous. b_hr and b_hz only ever
        # add to gi_r and gi_z, so they are added here once for the whole sequence.
        gi_t = gi.transpose(0, 1)  # [L, B, 3H] (view)
        gi_rz = torch.add(
            gi_t[..., : 2 * hid], bias_hh[: 2 * hid], out=gi.new_empty(steps, batch, 2 * hid)
        ).unbind(0)
        gi_n = gi_t[..., 2 * hid :].contiguous().unbind(0)  # [B, H] each
        b_n = bias_hh[2 * hid :]
        states = gi.new_empty(steps + 1, batch, hid)  # [L + 1, B, H]: h_0 .. h_L
        states[0] = h0
        rz = gi.new_empty(steps, batch, 2 * hid)  # gates r, z
        n = gi.new_empty(steps, batch, hid)  # candidate states
        gh_n = gi.new_empty(steps, batch, hid)  # h_{t-1} @ W_hn.T + b_hn
        gh = gi.new_empty(batch, 3 * hid)  # h_{t-1} @ W_hh.T, reused every step
        gh_rz, gh_new = gh[:, : 2 * hid], gh[:, 2 * hid :]
        h, rz_, n_, ghn = states.unbind(0), rz.unbind(0), n.unbind(0), gh_n.unbind(0)
        r, z = rz[..., :hid].unbind(0), rz[..., hid:].unbind(0)
        w_t = weight_hh.t()
        for t in range(steps):
            torch.mm(h[t], w_t, out=gh)
            torch.add(gi_rz[t], gh_rz, out=rz_[t]).sigmoid_()
            torch.add(gh_new, b_n, out=ghn[t])
            torch.addcmul(gi_n[t], r[t], ghn[t], out=n_[t]).tanh_()
            torch.lerp(n_[t], h[t], z[t], out=h[t + 1])  # n + z * (h - n)
        ctx.save_for_backward(weight_hh, states, rz, n, gh_n)
        return states[1:].transpose(0, 1).contiguous()  # [B, L, H]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """BPTT: gradients for ``gi``, ``h0``, ``weight_hh`` and ``bias_hh``."""
        weight_hh, states, rz, n, gh_n = ctx.saved_tensors
        steps, batch, hid = n.shape
        prev = states[:-1]  # [L, B, H]: h_0 .. h_{L-1}
        c_gh, dn_pre = _gru_coefficients(prev, rz, n, gh_n)
        dgh = torch.empty_like(c_gh)  # [L, B, 3H], gradient at gh (and at gi for r, z)
        dh_all = torch.empty_like(n)  # [L, B, H], total gradient at each h_t
        dh_all[steps - 1] = grad_out[:, steps - 1]
        g, z = grad_out.transpose(0, 1).unbind(0), rz[..., hid:].unbind(0)
        dh, dgh_ = dh_all.unbind(0), dgh.unbind(0)
        dh3 = dh_all.unsqueeze(2).unbind(0)  # [B, 1, H], broadcast over the 3 gate chunks
        c3, dgh3 = c_gh.view(steps, batch, 3, hid).unbind(0), dgh.view(steps, batch, 3, hid)
        for t in range(steps - 1, 0, -1):
            torch.mul(c3[t], dh3[t], out=dgh3[t])
            torch.mm(dgh_[t], weight_hh, out=dh[t - 1])
            dh[t - 1].addcmul_(dh[t], z[t]).add_(g[t - 1])
        torch.mul(c3[0], dh3[0], out=dgh3[0])
        grad_h0 = None
        if ctx.needs_input_grad[1]:
            grad_h0 = torch.addmm(dh[0] * z[0], dgh[0], weight_hh)
        grad_gi = None
        if ctx.needs_input_grad[0]:
            dgi = dgh.clone()
            torch.mul(dh_all, dn_pre, out=dgi[..., 2 * hid :])  # gi_n is not scaled by r
            grad_gi = dgi.transpose(0, 1)  # [B, L, 3H]
        grad_w = None
        if ctx.needs_input_grad[2]:
            grad_w = dgh.reshape(-1, 3 * hid).t() @ prev.reshape(-1, hid)  # [3H, H], one GEMM
        grad_b = dgh.sum((0, 1)) if ctx.needs_input_grad[3] else None
        return grad_gi, grad_h0, grad_w, grad_b


def _gru_coefficients(prev: Tensor, rz: Tensor, n: Tensor, gh_n: Tensor) -> tuple[Tensor, Tensor]:
    """Per-step factors of the GRU backward that do not depend on the incoming gradient.

    With ``dh`` the gradient at ``h_t``: ``dgh = dh * c_gh`` chunk by chunk, and
    ``dgi_n = dh * dn_pre``. Computed for all steps at once.

    Args:
        prev: states the steps started from ``[L, B, H]``.
        rz: gates r, z ``[L, B, 2H]``.
        n: candidate states ``[L, B, H]``.
        gh_n: ``h_{t-1} @ W_hn.T + b_hn``, ``[L, B, H]``.

    Returns:
        ``(c_gh [L, B, 3H], dn_pre [L, B, H])``.
    """
    hid = n.shape[-1]
    r, z = rz[..., :hid], rz[..., hid:]
    c_gh = rz.new_empty(*n.shape[:2], 3 * hid)
    c_r, c_z, c_n = c_gh.split(hid, -1)
    one_minus_z = 1.0 - z
    dn_pre = (1.0 - n * n).mul_(one_minus_z)  # d h_t / d (pre-activation of n)
    torch.mul(dn_pre * gh_n, r - r * r, out=c_r)
    torch.mul(prev - n, z * one_minus_z, out=c_z)
    torch.mul(dn_pre, r, out=c_n)
    return c_gh, dn_pre


def elman_recurrence_fused(proj: Tensor, h0: Tensor, weight_hh: Tensor) -> Tensor:
    """Fused ``h_t = tanh(proj_t + h_{t-1} @ W_hh.T)``.

    Args:
        proj: input projections ``[B, L, H]`` (bias included).
        h0: initial state ``[B, H]``.
        weight_hh: recurrent weights ``[H, H]``.

    Returns:
        All hidden states ``[B, L, H]``, in the dtype of ``proj``: under autocast the
        projections come out in bfloat16, and the state and weights follow them.
    """
    dt = proj.dtype  # differentiable casts; no-ops (no graph nodes) when dtypes agree
    out: Tensor = ElmanRecurrence.apply(proj, h0.to(dt), weight_hh.to(dt))
    return out


def gru_recurrence_fused(gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
    """Fused GRU recurrence (``torch.nn.GRU`` equations) over precomputed input gates.

    Args:
        gi: input gates ``x @ W_ih.T + b_ih``, ``[B, L, 3H]`` (chunks r, z, n).
        h0: initial state ``[B, H]``.
        weight_hh: recurrent weights ``[3H, H]``.
        bias_hh: recurrent bias ``[3H]``.

    Returns:
        All hidden states ``[B, L, H]``, in the dtype of ``gi`` (see
        :func:`elman_recurrence_fused`).
    """
    dt = gi.dtype
    out: Tensor = GRURecurrence.apply(gi, h0.to(dt), weight_hh.to(dt), bias_hh.to(dt))
    return out


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
    "ElmanRecurrence",
    "GRURecurrence",
    "elman_recurrence_fused",
    "fused_allowed",
    "gru_recurrence_fused",
    "gru_recurrence_reference",
]
