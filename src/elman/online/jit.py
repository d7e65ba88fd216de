"""Compiled (numba) kernels of the fast streaming cells, the optimizer and gradient clipping.

The same maths as the NumPy kernels of :mod:`elman.online.cells` and
:mod:`elman.online.kernels`, in float32, with each step, chunk update or optimizer step one
compiled call instead of tens of NumPy calls. Results equal the NumPy kernels to float32
rounding (sums are taken in another order); the optimizer steps are the same float32
operations and equal them bit for bit. The cells keep the arrays a checkpoint holds
(``z``, ``y_ring``, ``act``, ``c_now``) exactly as the NumPy cells do, so a checkpoint
moves between the two.

Compiled without ``fastmath`` (only the gradient norm's sum may be reassociated, so that it
vectorises) and with NumPy's error model: a division by zero gives inf or NaN, as in NumPy,
rather than raising.

This module imports numba: it is imported only when a fast streaming cell is built
(:func:`elman.online.cells.jit_kernels`), never by ``import elman``. Compiled code is cached
on disk (``cache=True``: beside this file, or in numba's user cache directory when the
package directory is read-only; with neither writable it is compiled once per process).

Matrices the kernels read, rebuilt from the flat parameters after every update:

* ``w_t [I+H+1, G*H]``: ``S [W_ih, W_hh, b]`` transposed, so that a step's product runs
  along contiguous rows (``S`` halves the i, f, o rows of an LSTM, see ``online_cells``);
* ``back [G*H + O, H]``: ``[Q W_hh; W_out]`` (``Q`` quarters the i, f, o rows), whose
  product with ``[da_t, dy_{t-1}]`` is the gradient reaching ``h_{t-1}``;
* ``head [O, H+1]``: ``[W_out, b_out]``.

An update writes the gate gradients of the chunk into ``da [R, G*H]`` (one row per step,
LSTM gates i, f, o without their factor 1/4) and their weight gradient, transposed, into
``gwt [I+H+1, G*H]``, then scatters it into the flat gradient.

``offs`` holds the offsets in the flat vector of ``W_ih, W_hh, b_ih, b_hh, W_out, b_out``
(``-1`` for a parameter the model lacks).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba  # type: ignore[import-untyped]
import numpy as np

_HALF = np.float32(0.5)
_QUARTER = np.float32(0.25)
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


def _njit(**options: Any) -> Callable[[Any], Any]:
    """``numba.njit`` with an on-disk cache where one can be written, else without."""

    def wrap(fn: Any) -> Any:
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError:  # no cache locator: no writable directory for the cache
            return numba.njit(**options)(fn)

    return wrap


jit = _njit(fastmath=False, error_model="numpy", nogil=True)


# ---------------------------------------------------------------------- shared parts
# The loops index 2-D arrays directly rather than through row views: a view costs two
# reference-count updates, which at these sizes cost as much as the arithmetic.


@jit
def _check_chunk(n: int, steps: int, cap: int) -> None:
    """The kernels index without bounds checks: refuse a chunk the buffers cannot hold."""
    if n < 1 or steps > cap:
        raise ValueError("the chunk is empty or longer than the ring")


@jit
def _check_input(x: Any, z: Any, hid: int) -> int:
    """The input width, which must fill the ``x`` part of a ``z`` row."""
    n_in = z.shape[1] - hid - 1
    if x.shape[0] != n_in:
        raise ValueError("the input row does not match the model's input size")
    return n_in


@jit
def _pre_activation(x: Any, z: Any, j: int, w_t: Any) -> Any:
    """``z[j, :I] = x``; returns ``z[j] @ w_t`` (``[G*H]``)."""
    for c in range(x.shape[0]):
        z[j, c] = x[c]
    n = w_t.shape[1]
    out = np.zeros(n, np.float32)
    for c in range(z.shape[1]):
        v = z[j, c]
        for r in range(n):
            out[r] += v * w_t[c, r]
    return out


@jit
def _head(head: Any, z: Any, jn: int, n_in: int, y_ring: Any, j: int) -> None:
    """``y_ring[j] = W_out h + b_out`` from ``z[jn] = [x, h, 1]``."""
    for k in range(head.shape[0]):
        acc = _ZERO
        for c in range(head.shape[1]):
            acc += head[k, c] * z[jn, n_in + c]
        y_ring[j, k] = acc


@jit
def _output_grad(first: int, last: int, y_ring: Any, ry: Any, ahead: int, dy: Any) -> float:
    """``dy = 2 (y - target) / size`` at positions ``first .. last``; returns the MSE."""
    cap, n_t = y_ring.shape[0], ry.shape[1]
    n = last - first + 1
    acc = _ZERO  # float32, as the NumPy kernel: a huge error overflows and skips the update
    for p in range(n):
        pos = first + p
        j = pos % cap
        for a in range(ahead):
            tj = (pos + 1 + a) % cap
            for c in range(n_t):
                k = a * n_t + c
                d = y_ring[j, k] - ry[tj, c]
                dy[p, k] = d
                acc += d * d
    size = n * y_ring.shape[1]
    scale = np.float32(2.0 / size)
    for p in range(n):
        for k in range(dy.shape[1]):
            dy[p, k] *= scale
    return float(acc) / size


@jit
def _dh_from_output(dy: Any, p: int, head: Any, dh: Any) -> None:
    """``dh = dy[p] @ W_out``."""
    dh[:] = _ZERO
    for k in range(head.shape[0]):
        v = dy[p, k]
        for h in range(dh.shape[0]):
            dh[h] += v * head[k, h]


@jit
def _dh_prev(da: Any, t: int, dy: Any, p: int, back: Any, out: Any) -> None:
    """``out = [da[t], dy[p]] @ back``; ``p < 0``: no output gradient at ``t - 1``."""
    g, hid = da.shape[1], out.shape[0]
    out[:] = _ZERO
    for r in range(g):
        v = da[t, r]
        for h in range(hid):
            out[h] += v * back[r, h]
    if p >= 0:
        for k in range(dy.shape[1]):
            v = dy[p, k]
            for h in range(hid):
                out[h] += v * back[g + k, h]


@jit
def _weight_grad(da: Any, z: Any, start: int, steps: int, gwt: Any) -> None:
    """``gwt = z[slots of start ..].T @ da[:steps]`` (``[I+H+1, G*H]``)."""
    cap, g = z.shape[0], gwt.shape[1]
    gwt[:, :] = _ZERO
    for t in range(steps):
        j = (start + t) % cap
        for c in range(z.shape[1]):
            v = z[j, c]
            for r in range(g):
                gwt[c, r] += v * da[t, r]


@jit
def _scatter(gwt: Any, grad: Any, offs: Any, n_in: int, hid: int, lstm: bool) -> None:
    """``gwt`` into the flat gradient: ``W_ih``, ``W_hh`` and both biases (LSTM: x 1/4)."""
    o_ih, o_hh, o_bi, o_bh = offs[0], offs[1], offs[2], offs[3]
    last = gwt.shape[0] - 1
    for r in range(gwt.shape[1]):
        s = _QUARTER if lstm and r // hid != 2 else _ONE
        for c in range(n_in):
            grad[o_ih + r * n_in + c] = gwt[c, r] * s
        for c in range(hid):
            grad[o_hh + r * hid + c] = gwt[n_in + c, r] * s
        b = gwt[last, r] * s
        if o_bi >= 0:
            grad[o_bi + r] = b
        if o_bh >= 0:
            grad[o_bh + r] = b


@jit
def _head_grad(dy: Any, n: int, first: int, z: Any, n_in: int, grad: Any, offs: Any) -> None:
    """Gradient of ``[W_out, b_out]``: ``dy.T @ [h, 1]`` at positions ``first .. last``."""
    cap, n_out, hid = z.shape[0], dy.shape[1], z.shape[1] - n_in - 1
    acc = np.zeros((n_out, hid + 1), np.float32)
    for p in range(n):
        j = (first + 1 + p) % cap
        for k in range(n_out):
            v = dy[p, k]
            for c in range(hid + 1):
                acc[k, c] += v * z[j, n_in + c]
    _put_head_grad(acc, grad, offs)


@jit
def _put_head_grad(acc: Any, grad: Any, offs: Any) -> None:
    """``acc = [dW_out, db_out]`` (``[O, H+1]``) into the flat gradient."""
    n_out, hid = acc.shape[0], acc.shape[1] - 1
    o_w, o_b = offs[4], offs[5]
    for k in range(n_out):
        for c in range(hid):
            grad[o_w + k * hid + c] = acc[k, c]
        if o_b >= 0:
            grad[o_b + k] = acc[k, hid]


@jit
def _refresh_head(theta: Any, offs: Any, head: Any, back: Any) -> None:
    """``head = [W_out, b_out]`` and the ``W_out`` rows at the end of ``back``."""
    n_out, hid = head.shape[0], head.shape[1] - 1
    g, o_w, o_b = back.shape[0] - n_out, offs[4], offs[5]
    for k in range(n_out):
        for c in range(hid):
            w = theta[o_w + k * hid + c]
            head[k, c] = w
            back[g + k, c] = w
        head[k, hid] = theta[o_b + k] if o_b >= 0 else _ZERO


# ---------------------------------------------------------------------- tanh RNN / Elman


@jit
def tanh_push(x: Any, z: Any, w_t: Any, head: Any, y_ring: Any, j: int) -> None:
    """One step into slot ``j``: ``h = tanh(w_t.T z[j])`` into ``z[j+1]``, ``y`` into ``y_ring``."""
    hid, jn = w_t.shape[1], (j + 1) % z.shape[0]
    n_in = _check_input(x, z, hid)
    pre = _pre_activation(x, z, j, w_t)
    for h in range(hid):
        z[jn, n_in + h] = np.tanh(pre[h])
    _head(head, z, jn, n_in, y_ring, j)


@jit
def tanh_learn(
    first: int, last: int, tbptt: int, z: Any, y_ring: Any, ry: Any, ahead: int,
    back: Any, head: Any, grad: Any, offs: Any, da: Any, gwt: Any,
) -> float:  # fmt: skip
    """Gradient of the MSE at positions ``first .. last`` into ``grad``; returns the loss."""
    cap, hid = z.shape[0], back.shape[1]
    n_in = z.shape[1] - hid - 1
    start = max(0, first - tbptt + 1)
    steps, n = last - start + 1, last - first + 1
    _check_chunk(n, steps, cap)
    dy = np.empty((n, y_ring.shape[1]), np.float32)
    loss = _output_grad(first, last, y_ring, ry, ahead, dy)
    dh = np.empty(hid, np.float32)
    _dh_from_output(dy, n - 1, head, dh)
    for t in range(steps - 1, -1, -1):
        j = (start + t + 1) % cap  # h_t sits in the row of t + 1
        for h in range(hid):
            v = z[j, n_in + h]
            da[t, h] = (_ONE - v * v) * dh[h]
        if t > 0:
            _dh_prev(da, t, dy, t - 1 - (steps - n), back, dh)
    _weight_grad(da, z, start, steps, gwt)
    _scatter(gwt, grad, offs, n_in, hid, False)
    _head_grad(dy, n, first, z, n_in, grad, offs)
    return loss


@jit
def tanh_refresh(theta: Any, offs: Any, n_in: int, w_t: Any, back: Any, head: Any) -> None:
    """``w_t``, ``back`` and ``head`` from the flat parameters."""
    hid = w_t.shape[1]
    o_ih, o_hh, o_bi, o_bh = offs[0], offs[1], offs[2], offs[3]
    for r in range(hid):
        for c in range(n_in):
            w_t[c, r] = theta[o_ih + r * n_in + c]
        for c in range(hid):
            w = theta[o_hh + r * hid + c]
            w_t[n_in + c, r] = w
            back[r, c] = w
        b = _ZERO
        if o_bi >= 0:
            b += theta[o_bi + r]
        if o_bh >= 0:
            b += theta[o_bh + r]
        w_t[n_in + hid, r] = b
    _refresh_head(theta, offs, head, back)


# ---------------------------------------------------------------------- LSTM


@jit
def lstm_push(
    x: Any, z: Any, act: Any, c_now: Any, w_t: Any, head: Any, y_ring: Any, j: int
) -> None:
    """One LSTM step into slot ``j`` (activations into ``act[j]``, as the NumPy cell)."""
    hid, jn = c_now.shape[0], (j + 1) % z.shape[0]
    n_in = _check_input(x, z, hid)
    pre = _pre_activation(x, z, j, w_t)
    for q in range(4):
        for h in range(hid):
            r = np.tanh(pre[q * hid + h])
            act[j, 6 + q, h] = r
            act[j, q, h] = r if q == 2 else r * _HALF + _HALF
    for h in range(hid):
        c_prev = c_now[h]
        act[j, 4, h] = c_prev
        c = c_prev * act[j, 1, h] + act[j, 0, h] * act[j, 2, h]
        c_now[h] = c
        tc = np.tanh(c)
        act[j, 5, h] = tc
        z[jn, n_in + h] = act[j, 3, h] * tc
    _head(head, z, jn, n_in, y_ring, j)


@jit
def _lstm_step_back(act: Any, j: int, dh: Any, dc_next: Any, da: Any, t: int) -> None:
    """Gate gradients of one step into ``da[t] = [da_i, da_f, da_g, da_o]`` (i f o x 4)."""
    hid = dh.shape[0]
    for h in range(hid):
        tc = act[j, 5, h]
        dc = dc_next[h] + dh[h] * ((_ONE - tc * tc) * act[j, 3, h])
        ri, rf, rg, ro = act[j, 6, h], act[j, 7, h], act[j, 8, h], act[j, 9, h]
        da[t, h] = (act[j, 2, h] * (_ONE - ri * ri)) * dc
        da[t, hid + h] = (act[j, 4, h] * (_ONE - rf * rf)) * dc
        da[t, 2 * hid + h] = (act[j, 0, h] * (_ONE - rg * rg)) * dc
        da[t, 3 * hid + h] = dh[h] * (tc * (_ONE - ro * ro))
        dc_next[h] = act[j, 1, h] * dc


@jit
def lstm_learn(
    first: int, last: int, tbptt: int, z: Any, act: Any, y_ring: Any, ry: Any, ahead: int,
    back: Any, head: Any, grad: Any, offs: Any, da: Any, gwt: Any,
) -> float:  # fmt: skip
    """Gradient of the MSE at positions ``first .. last`` into ``grad``; returns the loss."""
    cap, hid = z.shape[0], back.shape[1]
    n_in = z.shape[1] - hid - 1
    start = max(0, first - tbptt + 1)
    steps, n = last - start + 1, last - first + 1
    _check_chunk(n, steps, cap)
    dy = np.empty((n, y_ring.shape[1]), np.float32)
    loss = _output_grad(first, last, y_ring, ry, ahead, dy)
    dh = np.empty(hid, np.float32)
    _dh_from_output(dy, n - 1, head, dh)
    dc_next = np.zeros(hid, np.float32)
    for t in range(steps - 1, -1, -1):
        _lstm_step_back(act, (start + t) % cap, dh, dc_next, da, t)
        if t > 0:
            _dh_prev(da, t, dy, t - 1 - (steps - n), back, dh)
    _weight_grad(da, z, start, steps, gwt)
    _scatter(gwt, grad, offs, n_in, hid, True)
    _head_grad(dy, n, first, z, n_in, grad, offs)
    return loss


@jit
def lstm_refresh(theta: Any, offs: Any, n_in: int, w_t: Any, back: Any, head: Any) -> None:
    """``w_t`` (gate rows i, f, o halved), ``back`` (quartered) and ``head``."""
    hid = back.shape[1]
    o_ih, o_hh, o_bi, o_bh = offs[0], offs[1], offs[2], offs[3]
    for r in range(4 * hid):
        g = r // hid
        s = _ONE if g == 2 else _HALF
        q = _ONE if g == 2 else _QUARTER
        for c in range(n_in):
            w_t[c, r] = theta[o_ih + r * n_in + c] * s
        for c in range(hid):
            w = theta[o_hh + r * hid + c]
            w_t[n_in + c, r] = w * s
            back[r, c] = w * q
        w_t[n_in + hid, r] = (theta[o_bi + r] + theta[o_bh + r]) * s
    _refresh_head(theta, offs, head, back)


# ---------------------------------------------------------------------- LSTM on windows
# Models trained on normalised windows (``norm="last"``) rerun from a zero state over each
# window: ``z [L+1, I+H+1]``, ``act [L, 10, H]`` and ``y [L, O]`` hold one window's pass
# (``lstm_push`` into slots 0 .. L-1). ``hw = [o_W, o_b, window, inputs]`` locates the
# optional highway (a linear map of the last ``window`` steps of the first ``inputs``
# columns, added to the output at the last step; ``o_W = -1``: none).


# tanh(x) ~ x P(x^2) / Q(x^2) for |x| <= 9 (beyond, float32 tanh is +-1 to 3e-8): a rational
# least-squares fit whose float32 evaluation stays within 3.2e-7 of tanh (np.tanh: 6e-8).
# Plain arithmetic, so the gate loops vectorise; a libm tanh call per value took about 70%
# of a window pass. The stateful cells keep np.tanh (their checkpoints hold activations).
_TANH_P = tuple(np.float32(c) for c in (
    0.1311799123950201, 0.0031419367627970015, 1.1552025780586698e-05,
    -2.1838594133326808e-08, 6.052425454984616e-11, -1.0464674069016005e-13,
))  # fmt: skip
_TANH_Q = tuple(np.float32(c) for c in (
    0.46451323885868195, 0.024646365310099397, 0.00026014856047566347,
))  # fmt: skip
_TANH_CLIP = np.float32(9.0)
_P1, _P2, _P3, _P4, _P5, _P6 = _TANH_P
_Q1, _Q2, _Q3 = _TANH_Q


@jit
def fast_tanh(x: Any) -> Any:
    """float32 ``tanh`` by the rational fit above (within 3.2e-7; NaN stays NaN)."""
    if x > _TANH_CLIP:
        x = _TANH_CLIP
    elif x < -_TANH_CLIP:
        x = -_TANH_CLIP
    u = x * x
    p = (((((_P6 * u + _P5) * u + _P4) * u + _P3) * u + _P2) * u + _P1) * u + _ONE
    q = ((_Q3 * u + _Q2) * u + _Q1) * u + _ONE
    return x * p / q


@jit
def _window_pass(win: Any, z: Any, act: Any, c_now: Any, w_t: Any, head: Any, y: Any) -> None:
    """The model over one window ``win [L, I]`` from a zero state (``act`` as ``lstm_push``)."""
    hid = c_now.shape[0]
    n_in = win.shape[1]
    c_now[:] = _ZERO
    for h in range(hid):
        z[0, n_in + h] = _ZERO
    for t in range(win.shape[0]):
        pre = _pre_activation(win[t], z, t, w_t)  # gate rows i, f, o halved by w_t
        for q in range(4):
            shift = _ZERO if q == 2 else _HALF
            scale = _ONE if q == 2 else _HALF
            for h in range(hid):
                r = fast_tanh(pre[q * hid + h])
                act[t, 6 + q, h] = r
                act[t, q, h] = r * scale + shift
        for h in range(hid):
            c_prev = c_now[h]
            c = c_prev * act[t, 1, h] + act[t, 0, h] * act[t, 2, h]
            tc = fast_tanh(c)
            act[t, 4, h] = c_prev
            act[t, 5, h] = tc
            c_now[h] = c
            z[t + 1, n_in + h] = act[t, 3, h] * tc
        _head(head, z, t + 1, n_in, y, t)


@jit
def _highway_term(win: Any, theta: Any, hw: Any, k: int) -> Any:
    """Output ``k``'s highway term for window ``win`` (0 without a highway or a short window)."""
    o_w, o_b, width, n_hw = hw[0], hw[1], hw[2], hw[3]
    steps = win.shape[0]
    if o_w < 0 or steps < width:
        return _ZERO
    acc = theta[o_b + k] if o_b >= 0 else _ZERO
    row = o_w + k * width * n_hw
    for t in range(width):
        for c in range(n_hw):
            acc += theta[row + t * n_hw + c] * win[steps - width + t, c]
    return acc


@jit
def window_refresh(
    theta: Any, offs: Any, n_in: int, w_t: Any, back: Any, back_t: Any, head: Any
) -> None:  # fmt: skip
    """``lstm_refresh``, and ``back_t``: the gate rows of ``back`` transposed."""
    lstm_refresh(theta, offs, n_in, w_t, back, head)
    for r in range(back_t.shape[1]):
        for c in range(back_t.shape[0]):
            back_t[c, r] = back[r, c]


@_njit(fastmath={"reassoc", "contract"}, error_model="numpy", nogil=True)
def _row_dots(mat: Any, vec: Any, out: Any) -> None:
    """``out = mat @ vec`` with reassociated (vectorised) sums."""
    for h in range(mat.shape[0]):
        acc = _ZERO
        for r in range(mat.shape[1]):
            acc += mat[h, r] * vec[r]
        out[h] = acc


@jit
def window_push(
    win: Any, z: Any, act: Any, c_now: Any, w_t: Any, head: Any, y: Any, theta: Any, hw: Any,
    out: Any,
) -> None:  # fmt: skip
    """``out`` = the model's output at the last step of window ``win`` (highway included)."""
    _window_pass(win, z, act, c_now, w_t, head, y)
    last = win.shape[0] - 1
    for k in range(out.shape[0]):
        out[k] = y[last, k] + _highway_term(win, theta, hw, k)


@jit
def window_learn(
    wins: Any, targets: Any, z: Any, act: Any, c_now: Any, w_t: Any, back_t: Any, head: Any,
    y: Any, theta: Any, hw: Any, grad: Any, offs: Any, da: Any, gwt: Any,
) -> float:  # fmt: skip
    """Gradient of the MSE over windows ``wins [n, L, I]`` into ``grad``; returns the loss.

    ``targets [n, S, O]``: the last ``S`` steps of each window carry targets (``S = 1`` for
    a direct model, ``S = L`` for a recursive one), as ``torch.nn.functional.mse_loss``
    over the same outputs. ``back_t [H, 4H]``: the rows ``Q W_hh`` of ``back``, transposed.
    """
    n, steps, n_out = wins.shape[0], wins.shape[1], head.shape[0]
    hid, n_in = c_now.shape[0], wins.shape[2]
    s_out = targets.shape[1]
    _check_chunk(n, steps, da.shape[0])
    size = n * s_out * n_out
    scale = np.float32(2.0 / size)
    o_w, o_b, width, n_hw = hw[0], hw[1], hw[2], hw[3]
    use_hw = o_w >= 0 and steps >= width
    gwt[:, :] = _ZERO
    g_head = np.zeros((n_out, hid + 1), np.float32)
    g_hw = np.zeros((n_out, max(width * n_hw, 0) + 1), np.float32)
    dy = np.empty((s_out, n_out), np.float32)
    dh = np.empty(hid, np.float32)
    dc_next = np.empty(hid, np.float32)
    loss = _ZERO  # float32, as the other kernels: a huge error overflows and skips the update
    for p in range(n):
        win = wins[p]
        _window_pass(win, z, act, c_now, w_t, head, y)
        for s in range(s_out):
            t = steps - s_out + s
            for k in range(n_out):
                v = y[t, k]
                if t == steps - 1:
                    v += _highway_term(win, theta, hw, k)
                d = v - targets[p, s, k]
                loss += d * d
                dy[s, k] = d * scale
            for k in range(n_out):  # head: dy_t [h_t, 1]
                v = dy[s, k]
                for c in range(hid):
                    g_head[k, c] += v * z[t + 1, n_in + c]
                g_head[k, hid] += v
        if use_hw:
            for k in range(n_out):
                v = dy[s_out - 1, k]
                for t in range(width):
                    for c in range(n_hw):
                        g_hw[k, t * n_hw + c] += v * win[steps - width + t, c]
                g_hw[k, width * n_hw] += v
        _dh_from_output(dy, s_out - 1, head, dh)
        dc_next[:] = _ZERO
        for t in range(steps - 1, -1, -1):
            _lstm_step_back(act, t, dh, dc_next, da, t)
            if t > 0:
                _row_dots(back_t, da[t], dh)
                q = t - 1 - (steps - s_out)  # the output gradient at step t - 1, if any
                if q >= 0:
                    for k in range(n_out):
                        v = dy[q, k]
                        for h in range(hid):
                            dh[h] += v * head[k, h]
        gwt += np.dot(np.ascontiguousarray(z[:steps].T), da[:steps])
    _scatter(gwt, grad, offs, n_in, hid, True)
    _put_head_grad(g_head, grad, offs)
    if o_w >= 0:
        for k in range(n_out):
            for c in range(width * n_hw):
                grad[o_w + k * width * n_hw + c] = g_hw[k, c]
            if o_b >= 0:
                grad[o_b + k] = g_hw[k, width * n_hw]
    return float(loss) / size


# ---------------------------------------------------------------------- optimizer


@jit
def adam_step(theta: Any, grad: Any, m: Any, v: Any, k: Any) -> None:
    """Adam, as ``Optimizer.step``; ``k = [b1, 1-b1, b2, 1-b2, 1/sqrt(bc2), eps, -lr/bc1]``."""
    b1, c1, b2, c2, rs, eps, step = k[0], k[1], k[2], k[3], k[4], k[5], k[6]
    for i in range(theta.shape[0]):
        g = grad[i]
        mi = m[i] * b1 + g * c1
        vi = v[i] * b2 + (g * g) * c2
        m[i] = mi
        v[i] = vi
        theta[i] += (mi / (np.sqrt(vi) * rs + eps)) * step


@jit
def sgd_step(theta: Any, grad: Any, neg_lr: Any) -> None:
    """``theta += -lr * grad``."""
    for i in range(theta.shape[0]):
        theta[i] += grad[i] * neg_lr


@_njit(fastmath={"reassoc"}, error_model="numpy", nogil=True)
def _sum_squares(grad: Any) -> float:
    """``sum(grad^2)`` in float64 (reassociated: vectorised; NaN and inf propagate)."""
    acc = 0.0
    for i in range(grad.shape[0]):
        g = np.float64(grad[i])
        acc += g * g
    return acc


@jit
def clip_gradient(grad: Any, max_norm: float) -> float:
    """As :func:`elman.online.kernels.clip_gradient` (``max_norm <= 0``: no clipping)."""
    norm = math.sqrt(np.float64(np.float32(_sum_squares(grad))))  # overflows as float32 does
    if max_norm > 0.0 and math.isfinite(norm):
        coef = max_norm / (norm + 1e-6)
        if coef < 1.0:
            c32 = np.float32(coef)
            for i in range(grad.shape[0]):
                grad[i] *= c32
    return norm
