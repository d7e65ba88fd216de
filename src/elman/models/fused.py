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
  sequence at once, the step loop holds one ``addmm`` and one or two element-wise ops,
  and the recurrent weight gradient is a single ``[H_g, L*B] @ [L*B, H]`` GEMM.

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


def _previous_states(h0: Tensor, hs: Tensor) -> Tensor:
    """``[h_0, h_1, ..., h_{L-1}]``: the state each step started from, ``[L, B, H]``."""
    return torch.cat([h0.unsqueeze(0), hs[:-1]], 0)


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
        p = proj.transpose(0, 1)  # [L, B, H] (view)
        hs = proj.new_empty(steps, batch, hidden)  # [L, B, H]
        w_t = weight_hh.t()
        h = h0
        for t in range(steps):
            h_t = hs[t]
            torch.addmm(p[t], h, w_t, out=h_t)
            h_t.tanh_()
            h = h_t
        ctx.save_for_backward(h0, weight_hh, hs)
        return hs.transpose(0, 1).contiguous()  # [B, L, H]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """BPTT: gradients for ``proj``, ``h0`` and ``weight_hh``."""
        h0, weight_hh, hs = ctx.saved_tensors
        steps = hs.shape[0]
        g = grad_out.transpose(0, 1)  # [L, B, H] (view)
        dtanh = 1.0 - hs * hs  # [L, B, H], tanh' for every step at once
        da = torch.empty_like(hs)  # [L, B, H], gradient at the pre-activations
        dh = g[steps - 1]
        buf = torch.empty_like(h0)
        for t in range(steps - 1, 0, -1):
            torch.mul(dh, dtanh[t], out=da[t])
            dh = torch.addmm(g[t - 1], da[t], weight_hh, out=buf)
        torch.mul(dh, dtanh[0], out=da[0])
        grad_h0 = da[0] @ weight_hh if ctx.needs_input_grad[1] else None
        grad_w = None
        if ctx.needs_input_grad[2]:
            hidden = hs.shape[-1]
            prev = _previous_states(h0, hs).reshape(-1, hidden)  # [L*B, H]
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
        hidden = h0.shape[-1]
        gi_rz = gi[..., : 2 * hidden].transpose(0, 1)  # [L, B, 2H] (view)
        gi_n = gi[..., 2 * hidden :].transpose(0, 1)  # [L, B, H] (view)
        gh = gi.new_empty(steps, batch, 3 * hidden)  # h @ W_hh.T + b_hh per step
        rz = gi.new_empty(steps, batch, 2 * hidden)  # sigmoid gates r, z
        n = gi.new_empty(steps, batch, hidden)  # candidate state
        hs = gi.new_empty(steps, batch, hidden)
        diff = torch.empty_like(h0)
        w_t = weight_hh.t()
        h = h0
        for t in range(steps):
            gh_t, rz_t, n_t, h_t = gh[t], rz[t], n[t], hs[t]
            torch.addmm(bias_hh, h, w_t, out=gh_t)
            torch.add(gi_rz[t], gh_t[:, : 2 * hidden], out=rz_t).sigmoid_()
            torch.addcmul(gi_n[t], rz_t[:, :hidden], gh_t[:, 2 * hidden :], out=n_t).tanh_()
            torch.sub(h, n_t, out=diff)
            torch.addcmul(n_t, rz_t[:, hidden:], diff, out=h_t)  # n + z * (h - n)
            h = h_t
        ctx.save_for_backward(h0, weight_hh, hs, rz, n, gh)
        return hs.transpose(0, 1).contiguous()  # [B, L, H]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """BPTT: gradients for ``gi``, ``h0``, ``weight_hh`` and ``bias_hh``."""
        h0, weight_hh, hs, rz, n, gh = ctx.saved_tensors
        steps, batch, hidden = hs.shape
        prev = _previous_states(h0, hs)  # [L, B, H]
        c_gh, dn_pre, z = _gru_coefficients(prev, rz, n, gh)
        g = grad_out.transpose(0, 1)  # [L, B, H] (view)
        dgh = torch.empty_like(gh)  # [L, B, 3H], gradient at gh (and at gi for r, z)
        dh_all = torch.empty_like(hs)  # [L, B, H], total gradient at each h_t
        dh_all[steps - 1] = g[steps - 1]
        carry = torch.empty_like(h0)
        for t in range(steps - 1, -1, -1):
            dh = dh_all[t]
            torch.mul(
                c_gh[t].view(batch, 3, hidden), dh.unsqueeze(1), out=dgh[t].view(batch, 3, hidden)
            )
            if t == 0:
                break
            torch.addcmul(g[t - 1], dh, z[t], out=carry)
            torch.addmm(carry, dgh[t], weight_hh, out=dh_all[t - 1])
        grad_h0 = None
        if ctx.needs_input_grad[1]:
            grad_h0 = torch.addmm(dh_all[0] * z[0], dgh[0], weight_hh)
        grad_gi = None
        if ctx.needs_input_grad[0]:
            dgi = dgh.clone()
            dgi[..., 2 * hidden :] = dh_all * dn_pre  # gi_n is not scaled by r
            grad_gi = dgi.transpose(0, 1)  # [B, L, 3H]
        grad_w = None
        if ctx.needs_input_grad[2]:
            grad_w = dgh.reshape(-1, 3 * hidden).t() @ prev.reshape(-1, hidden)  # [3H, H]
        grad_b = dgh.sum((0, 1)) if ctx.needs_input_grad[3] else None
        return grad_gi, grad_h0, grad_w, grad_b


def _gru_coefficients(
    prev: Tensor, rz: Tensor, n: Tensor, gh: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-step factors of the GRU backward that do not depend on the incoming gradient.

    With ``dh`` the gradient at ``h_t``: ``dgh = dh * c_gh`` (chunk-wise) and
    ``dgi_n = dh * dn_pre``. Computed for all steps at once.

    Returns:
        ``(c_gh [L, B, 3H], dn_pre [L, B, H], z [L, B, H])``.
    """
    hidden = n.shape[-1]
    r, z = rz[..., :hidden], rz[..., hidden:]
    gh_n = gh[..., 2 * hidden :]
    dn_pre = (1.0 - n * n) * (1.0 - z)  # d h_t / d (pre-activation of n)
    c_r = dn_pre * gh_n * r * (1.0 - r)
    c_z = (prev - n) * z * (1.0 - z)
    c_gh = torch.cat([c_r, c_z, dn_pre * r], -1)  # [L, B, 3H]
    return c_gh, dn_pre, z


def elman_recurrence_fused(proj: Tensor, h0: Tensor, weight_hh: Tensor) -> Tensor:
    """Fused ``h_t = tanh(proj_t + h_{t-1} @ W_hh.T)``.

    Args:
        proj: input projections ``[B, L, H]`` (bias included).
        h0: initial state ``[B, H]``.
        weight_hh: recurrent weights ``[H, H]``.

    Returns:
        All hidden states ``[B, L, H]``.
    """
    out: Tensor = ElmanRecurrence.apply(proj, h0, weight_hh)
    return out


def gru_recurrence_fused(gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
    """Fused GRU recurrence (``torch.nn.GRU`` equations) over precomputed input gates.

    Args:
        gi: input gates ``x @ W_ih.T + b_ih``, ``[B, L, 3H]`` (chunks r, z, n).
        h0: initial state ``[B, H]``.
        weight_hh: recurrent weights ``[3H, H]``.
        bias_hh: recurrent bias ``[3H]``.

    Returns:
        All hidden states ``[B, L, H]``.
    """
    out: Tensor = GRURecurrence.apply(gi, h0, weight_hh, bias_hh)
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
