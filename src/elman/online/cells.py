"""Fast streaming cells: one-layer LSTM and tanh RNN / Elman, with hand-written BPTT.

A streaming learner runs the model once per point on a single input row. At that size a
step costs its per-call overhead, not its arithmetic: an ``nn.LSTM`` call takes tens of
microseconds, a NumPy call on 32 numbers about one. So for one-layer LSTM, tanh RNN and
Elman models the learner runs the cell here, on views of the flat parameter vector
(:class:`~elman.online.kernels.FlatParams`).

Two implementations of the same maths share the ring arrays (and so the checkpoints):
compiled kernels (:mod:`elman.online.jit`, numba), used when numba imports, one call per
step or update; and the NumPy kernels below, about a dozen NumPy calls per step, used
without numba or with ``ELMAN_NO_JIT=1`` (:func:`jit_kernels`). The notes below describe
the NumPy kernels; the compiled ones compute the same quantities, summing in another order.

Each step stores its activations in rings indexed by stream position (slot = position mod
capacity). An update back-propagates through the stored activations of the chunk, as in
Williams and Peng's online TBPTT(k, u): the forward pass is not recomputed, so activations
older than the previous update were computed with the weights of that time. The weight
gradient is one ``[G*H, L] @ [L, I+H+1]`` product over the chunk (bias included).

Memory layout. ``z[t] = [x_t, h_{t-1}, 1]``; a step writes its ``h_t`` straight into
``z[t+1]``, and the head reads ``[h_t, 1]`` from there (weights ``[W_out, b_out]``).

LSTM (``torch.nn.LSTM`` gate order i, f, g, o), with ``sigmoid(a) = (1 + tanh(a/2)) / 2``
so that one ``tanh`` call serves all four gates (raw values ``r``)::

    r = tanh(S W z)         i, f, o = (1 + r) / 2,  g = r_g      (S halves the i, f, o rows)
    c = f * c_prev + i * g  h = o * tanh(c)         y = W_out h + b_out

Backward per step, from the last (``dh`` from the output and from step t+1)::

    dc = dc_next + dh * o (1 - tanh(c)^2)        da_o = dh * tanh(c) * o (1 - o)
    da_i = dc * g i (1 - i)   da_f = dc * c_prev f (1 - f)   da_g = dc * i (1 - g^2)
    dc_next = dc * f          dh_prev = da @ W_hh + dy_prev @ W_out

``i (1 - i) = (1 - r_i^2) / 4``: the loop works with ``1 - r^2`` and the factor 1/4 sits in
the rows of the backward matrix and of the gradient, which leaves four NumPy calls per step.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch

from elman.models import switches
from elman.models.base import SequenceModel
from elman.models.elman import Elman
from elman.models.highway import Highway
from elman.models.recurrent import LSTM, RNN
from elman.online.kernels import F32, FlatParams, Rings, TorchWindow


def jit_kernels() -> Any:
    """The compiled kernels (:mod:`elman.online.jit`), or ``None`` for the NumPy ones.

    ``None`` when numba cannot be imported or the environment sets ``ELMAN_NO_JIT=1``.
    numba is imported here, on the first fast cell, not with the package.
    """
    if switches.env_flag(switches.ENV_NO_JIT):
        return None
    try:
        return importlib.import_module("elman.online.jit")
    except ImportError:
        return None


class FastCell:
    """Shared ring of ``z`` rows, outputs, head and loss of the fast cells.

    With ``jit`` (the module :mod:`elman.online.jit`) the step, the update and the rebuild
    of the derived matrices run as compiled kernels on the same ring arrays.
    """

    ring_names: tuple[str, ...] = ("z", "y_ring")  # the arrays a checkpoint holds
    gates = 1  # recurrent gates per hidden unit

    def __init__(
        self, flat: FlatParams, rings: Rings, tbptt: int, hidden: int, jit: Any = None
    ) -> None:
        self.flat, self.rings, self.tbptt, self.jit = flat, rings, tbptt, jit
        self.capacity = r = rings.capacity
        self.n_in, self.hid = rings.x.shape[1], hidden
        self.n_out = flat.views["head.weight"].shape[0]
        self.z = np.zeros((r, self.n_in + hidden + 1), F32)  # [x_t, h_{t-1}, 1]
        self.z[:, -1] = 1.0
        self.y_ring = np.zeros((r, self.n_out), F32)
        self.head = np.zeros((self.n_out, hidden + 1), F32)  # [W_out, b_out]
        self.next_pos = 0
        self.coef_upto = 0  # positions below this have cached backward coefficients
        i = self.n_in
        self._z_rows = [
            (self.z[j, :i], self.z[j], self.z[(j + 1) % r, i:-1], self.z[(j + 1) % r, i:])
            for j in range(r)
        ]  # x part, whole row, where h_t goes, [h_t, 1] for the head

    def _init_jit(self, names: list[str | None]) -> None:
        """Buffers of the compiled kernels (see :mod:`elman.online.jit`).

        ``names``: flat-parameter names of ``W_ih, W_hh, b_ih, b_hh`` (``None``: absent).
        """
        g, width = self.gates * self.hid, self.n_in + self.hid + 1
        names = [*names, "head.weight", "head.bias"]
        offsets = self.flat.offsets
        self.offs = np.array([offsets.get(n, -1) if n else -1 for n in names], np.int64)
        self.w_t = np.zeros((width, g), F32)  # S [W_ih, W_hh, b], transposed
        self.back = np.zeros((g + self.n_out, self.hid), F32)  # [Q W_hh; W_out]
        self.da = np.zeros((self.capacity, g), F32)  # gate gradients of a chunk
        self.gw = np.zeros((width, g), F32)  # their weight gradient, transposed
        self._y_rows = list(self.y_ring)

    def _refresh_head(self) -> None:
        v = self.flat.views
        self.head[:, :-1] = v["head.weight"]
        self.head[:, -1] = v.get("head.bias", 0.0)

    def learn(self, first: int, last: int) -> float:
        """Gradient of the MSE at positions ``first .. last`` into ``flat.grad``; the loss."""
        if self.jit is not None:
            return float(self._learn_jit(first, last))
        start = max(0, first - self.tbptt + 1)
        slots = self.rings.slots(start, last)
        n = last - first + 1
        dy = self.y_ring[slots[-n:]] - self.rings.targets(first, last)  # [n, O]
        flat = dy.reshape(-1)
        loss = float(np.dot(flat, flat)) / flat.size  # may overflow: the update is skipped
        dy *= F32(2.0 / flat.size)
        self.backward(start, slots, dy)
        head = dy.T @ self.z[self.rings.slots(first + 1, last + 1), self.n_in :]  # [O, H + 1]
        g = self.flat.grad_views
        g["head.weight"][...] = head[:, :-1]
        if "head.bias" in g:
            g["head.bias"][...] = head[:, -1]
        return loss

    def backward(self, start: int, slots: np.ndarray, dy: np.ndarray) -> None:
        """BPTT over positions ``start ..`` (ring ``slots``); ``dy [n, O]`` at the last n."""
        raise NotImplementedError

    def _learn_jit(self, first: int, last: int) -> float:
        """:meth:`learn` in one compiled call."""
        raise NotImplementedError

    def h_now(self) -> np.ndarray:
        """The carried hidden state (a view into the ring)."""
        return self.z[self.next_pos % self.capacity, self.n_in : -1]

    def state(self) -> tuple[torch.Tensor, ...]:
        """The carried state in the model's layout (``[1, 1, H]`` tensors, copies)."""
        return tuple(torch.from_numpy(a.copy()).reshape(1, 1, -1) for a in self._state_arrays())

    def set_state(self, state: tuple[torch.Tensor, ...]) -> None:
        """Replace the carried state (model layout, batch 1)."""
        for a, t in zip(self._state_arrays(), state, strict=True):
            a[...] = t.detach().reshape(-1).cpu().numpy()

    def _state_arrays(self) -> list[np.ndarray]:
        return [self.h_now()]

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything a checkpoint needs to continue bit for bit."""
        out = {name: getattr(self, name) for name in self.ring_names}
        out["next_pos"] = np.array([self.next_pos], np.int64)
        return out

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`arrays` (derived buffers are rebuilt)."""
        self.next_pos = int(arrays["next_pos"][0])
        self.coef_upto = 0
        for name in self.ring_names:
            getattr(self, name)[...] = arrays[name]
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the matrices derived from the parameters (after every update)."""
        raise NotImplementedError


class TanhCell(FastCell):
    """``h = tanh(W_ih x + W_hh h_prev + b)``, for ``RNN(tanh)`` and ``Elman`` (1 layer)."""

    def __init__(
        self, flat: FlatParams, rings: Rings, tbptt: int, names: dict[str, str | None],
        jit: Any = None,
    ) -> None:  # fmt: skip
        hid = flat.views[str(names["w_hh"])].shape[0]
        super().__init__(flat, rings, tbptt, hid, jit)
        self.names = names
        if jit is not None:
            self._init_jit([names.get(k) for k in ("w_ih", "w_hh", "b_ih", "b_hh")])
        r, o = self.capacity, self.n_out
        self.w = np.zeros((hid, self.n_in + hid + 1), F32)  # [W_ih, W_hh, b]
        self.w_back = np.zeros((hid + o, hid), F32)  # [W_hh; W_out]
        self.buf = np.zeros((r, hid + o), F32)  # per step: [da_t, dy_{t-1}]
        self.deriv = np.zeros((r, hid), F32)
        self._buf_rows = list(self.buf)
        self._da_rows = list(self.buf[:, :hid])
        self._d_rows = list(self.deriv)
        self.refresh()

    def refresh(self) -> None:
        if self.jit is not None:
            self.jit.tanh_refresh(self.flat.theta, self.offs, self.n_in, self.w_t, self.back,
                                  self.head)  # fmt: skip
            return
        n, v, i = self.names, self.flat.views, self.n_in
        self.w[:, :i] = v[str(n["w_ih"])]
        self.w[:, i:-1] = v[str(n["w_hh"])]
        self.w[:, -1] = 0.0
        for key in ("b_ih", "b_hh"):
            if n.get(key):
                self.w[:, -1] += v[str(n[key])]
        self.w_back[: self.hid] = v[str(n["w_hh"])]
        self.w_back[self.hid :] = v["head.weight"]
        self._refresh_head()

    def push(self, pos: int, x: np.ndarray) -> np.ndarray:
        """One step at position ``pos`` from input ``x [I]``; returns the output ``[O]``."""
        j = pos % self.capacity
        if self.jit is not None:
            self.jit.tanh_push(x, self.z, self.w_t, self.head, self.y_ring, j)
            self.next_pos = pos + 1
            return self._y_rows[j]
        zx, z, h_next, head_in = self._z_rows[j]
        zx[...] = x
        np.dot(self.w, z, out=h_next)
        np.tanh(h_next, out=h_next)
        y = self.y_ring[j]
        np.dot(self.head, head_in, out=y)
        self.next_pos = pos + 1
        return y

    def _learn_jit(self, first: int, last: int) -> float:
        r = self.rings
        return self.jit.tanh_learn(
            first, last, self.tbptt, self.z, self.y_ring, r.y, r.ahead, self.back, self.head,
            self.flat.grad, self.offs, self.da, self.gw,
        )  # fmt: skip

    def backward(self, start: int, slots: np.ndarray, dy: np.ndarray) -> None:
        n, steps, hid = dy.shape[0], len(slots), self.hid
        off = self.capacity - steps  # the buffers are used from the end
        d = self.deriv[off:]
        h_slots = self.rings.slots(start + 1, start + steps)  # h_t sits in the row of t + 1
        np.take(self.z[:, self.n_in : -1], h_slots, axis=0, out=d, mode="clip")
        np.multiply(d, d, out=d)
        np.subtract(1.0, d, out=d)  # tanh'
        buf = self.buf[off:]
        buf[:, hid:] = 0.0
        if n > 1:
            buf[steps - n + 1 :, hid:] = dy[:-1]  # step t carries the output grad of t-1
        dh = dy[-1] @ self.w_back[hid:]
        rows, da, der = self._buf_rows[off:], self._da_rows[off:], self._d_rows[off:]
        w_back = self.w_back
        for t in range(steps - 1, -1, -1):
            np.multiply(der[t], dh, out=da[t])
            np.dot(rows[t], w_back, out=dh)
        gw = buf[:, :hid].T @ self.z[slots]  # [H, I + H + 1]: W_ih, W_hh and the bias
        g, names = self.flat.grad_views, self.names
        g[str(names["w_ih"])][...] = gw[:, : self.n_in]
        g[str(names["w_hh"])][...] = gw[:, self.n_in : -1]
        for key in ("b_ih", "b_hh"):
            if names.get(key):
                g[str(names[key])][...] = gw[:, -1]


class LSTMCell(FastCell):
    """A one-layer ``torch.nn.LSTM`` and its linear head (see the module docstring)."""

    ring_names = ("z", "y_ring", "act", "c_now")
    gates = 4

    def __init__(self, flat: FlatParams, rings: Rings, tbptt: int, jit: Any = None) -> None:
        hid = flat.views["rnn.weight_hh_l0"].shape[1]
        super().__init__(flat, rings, tbptt, hid, jit)
        r, o = self.capacity, self.n_out
        # Per slot: i, f, g, o | c_{t-1} | tanh(c_t) | raw tanh outputs r_i, r_f, r_g, r_o.
        self.act = np.zeros((r, 10, hid), F32)
        self.c_now = np.zeros(hid, F32)
        half = np.full((4, hid), 0.5, F32)
        half[2] = 1.0
        self.gate_scale, self.gate_shift = half, half.copy()
        self.gate_shift[2] = 0.0
        self.quarter = np.array([0.25, 0.25, 1.0, 0.25], F32).repeat(hid)[:, None]  # i f g o
        self.w = np.zeros((4 * hid, self.n_in + hid + 1), F32)  # S [W_ih, W_hh, b]
        # Backward matrix, rows o, W_out, i, f, g (gate rows x 1/4 except g), twice side by
        # side so that one product yields dh twice: [dh, dh] meets [B, A_o] without a
        # broadcast (a broadcasting NumPy call costs twice a plain one at this size).
        self.w_back = np.zeros((4 * hid + o, 2 * hid), F32)
        q = np.ones(4 * hid + o, F32)
        q[:hid] = 0.25
        q[hid + o : 3 * hid + o] = 0.25
        self.back_scale = q[:, None]
        self.dh = np.zeros(2 * hid, F32)
        self.pre = np.zeros(4 * hid, F32)
        self.tmp = np.zeros(hid, F32)
        self._act_rows = [(a[6:], a[:4], a[0], a[1], a[2], a[3], a[4], a[5]) for a in self.act]
        # Backward coefficients of each position, computed once (chunks overlap when u < k):
        # B, A_o, C_i, C_f, C_g, f (see _coefficients). Positions < coef_upto are done.
        self.coef = np.zeros((r, 6, hid), F32)
        self.chunk = np.zeros((r, 10, hid), F32)
        self.mul = np.zeros((r, 4, hid), F32)
        self.der = np.zeros((r, 4, hid), F32)
        self.new_coef = np.zeros((r, 6, hid), F32)
        w = 6 * hid + o
        self.buf = np.zeros((r, w), F32)  # [dh*B, da_o, dy_{t-1}, da_i, da_f, da_g, dc*f]
        k = 2 * hid + o  # start of da_i
        self._coef_views = (list(self.coef[:, :2].reshape(r, 2 * hid)), list(self.coef[:, 2:]))
        self._views = (
            list(self.buf[:, : 2 * hid]), list(self.buf[:, :hid]),
            list(self.buf[:, k:].reshape(r, 4, hid)), list(self.buf[:, hid : w - hid]),
            list(self.buf[:, w - hid :]),
        )  # fmt: skip
        self._zero = np.zeros(hid, F32)
        if jit is not None:
            self._init_jit([f"rnn.{n}_l0" for n in ("weight_ih", "weight_hh", "bias_ih",
                                                    "bias_hh")])  # fmt: skip
        self.refresh()

    def _state_arrays(self) -> list[np.ndarray]:
        return [self.h_now(), self.c_now]

    def refresh(self) -> None:
        if self.jit is not None:
            self.jit.lstm_refresh(self.flat.theta, self.offs, self.n_in, self.w_t, self.back,
                                  self.head)  # fmt: skip
            return
        v, i, hid, o = self.flat.views, self.n_in, self.hid, self.n_out
        w_hh = v["rnn.weight_hh_l0"]
        self.w[:, :i] = v["rnn.weight_ih_l0"]
        self.w[:, i:-1] = w_hh
        np.add(v["rnn.bias_ih_l0"], v["rnn.bias_hh_l0"], out=self.w[:, -1])
        self.w *= self.gate_scale.reshape(-1, 1)
        back = self.w_back[:, :hid]
        back[:hid] = w_hh[3 * hid :]
        back[hid : hid + o] = v["head.weight"]
        back[hid + o :] = w_hh[: 3 * hid]
        back *= self.back_scale
        self.w_back[:, hid:] = back
        self._refresh_head()

    def push(self, pos: int, x: np.ndarray) -> np.ndarray:
        """One step at position ``pos`` from input ``x [I]``; returns the output ``[O]``."""
        j = pos % self.capacity
        if self.jit is not None:
            self.jit.lstm_push(x, self.z, self.act, self.c_now, self.w_t, self.head,
                               self.y_ring, j)  # fmt: skip
            self.next_pos = pos + 1
            return self._y_rows[j]
        zx, z, h_next, head_in = self._z_rows[j]
        raw, gates, gi, gf, gg, go, c_prev, tanh_c = self._act_rows[j]
        zx[...] = x
        np.dot(self.w, z, out=self.pre)
        np.tanh(self.pre.reshape(4, -1), out=raw)
        np.multiply(raw, self.gate_scale, out=gates)
        gates += self.gate_shift
        c = self.c_now
        c_prev[...] = c
        c *= gf
        np.multiply(gi, gg, out=self.tmp)
        c += self.tmp
        np.tanh(c, out=tanh_c)
        np.multiply(go, tanh_c, out=h_next)
        y = self.y_ring[j]
        np.dot(self.head, head_in, out=y)
        self.next_pos = pos + 1
        return y

    def _learn_jit(self, first: int, last: int) -> float:
        r = self.rings
        return self.jit.lstm_learn(
            first, last, self.tbptt, self.z, self.act, self.y_ring, r.y, r.ahead, self.back,
            self.head, self.flat.grad, self.offs, self.da, self.gw,
        )  # fmt: skip

    def _coefficients(self, first: int, last: int) -> None:
        """Backward coefficients of positions ``first .. last`` into their ring slots."""
        n = last - first + 1
        if n <= 0:
            return
        slots = self.rings.slots(first, last)
        chunk = self.chunk[:n]
        np.take(self.act, slots, axis=0, out=chunk, mode="clip")
        der = self.der[:n]
        np.take(chunk, [9, 6, 7, 8], axis=1, out=der, mode="clip")  # raw o, i, f, g
        np.multiply(der, der, out=der)
        np.subtract(1.0, der, out=der)  # 1 - r^2 (4x the sigmoid derivatives)
        mul = self.mul[:n]
        np.take(chunk, [5, 2, 4, 0], axis=1, out=mul, mode="clip")  # tanh(c), g, c_prev, i
        coef = self.new_coef[:n]
        np.multiply(mul, der, out=coef[:, 1:5])  # A_o, C_i, C_f, C_g
        coef[:, 5] = chunk[:, 1]  # f
        b = coef[:, 0]
        np.multiply(chunk[:, 5], chunk[:, 5], out=b)
        np.subtract(1.0, b, out=b)
        b *= chunk[:, 3]  # B = o (1 - tanh(c)^2)
        self.coef[slots] = coef

    def backward(self, start: int, slots: np.ndarray, dy: np.ndarray) -> None:
        n, steps, hid, o = dy.shape[0], len(slots), self.hid, self.n_out
        off = self.capacity - steps
        last = start + steps - 1
        self._coefficients(max(start, self.coef_upto), last)
        self.coef_upto = last + 1
        buf = self.buf[off:]
        buf[:, 2 * hid : 2 * hid + o] = 0.0
        if n > 1:
            buf[steps - n + 1 :, 2 * hid : 2 * hid + o] = dy[:-1]
        dh = self.dh  # [dh, dh]
        np.dot(dy[-1], self.flat.views["head.weight"], out=dh[:hid])
        dh[hid:] = dh[:hid]
        dc = np.zeros(hid, F32)
        c_ba, c_4 = self._coef_views  # per ring slot
        b_ba, b_x, b_4, b_dot, b_dcn = (v[off:] for v in self._views)
        w_back, dc_next, slot = self.w_back, self._zero, slots.tolist()
        for t in range(steps - 1, -1, -1):
            j = slot[t]
            np.multiply(c_ba[j], dh, out=b_ba[t])  # [dh * B, da_o]
            np.add(dc_next, b_x[t], out=dc)
            np.multiply(c_4[j], dc, out=b_4[t])  # [da_i, da_f, da_g, dc * f]
            np.dot(b_dot[t], w_back, out=dh)
            dc_next = b_dcn[t]
        k = 2 * hid + o
        da = np.concatenate([buf[:, k : k + 3 * hid], buf[:, hid : 2 * hid]], 1)  # [L, 4H]
        gw = da.T @ self.z[slots]  # [4H, I + H + 1]: W_ih, W_hh and the bias
        gw *= self.quarter
        gv = self.flat.grad_views
        gv["rnn.weight_ih_l0"][...] = gw[:, : self.n_in]
        gv["rnn.weight_hh_l0"][...] = gw[:, self.n_in : -1]
        gv["rnn.bias_ih_l0"][...] = gw[:, -1]
        gv["rnn.bias_hh_l0"][...] = gw[:, -1]


def fast_cell(
    model: SequenceModel, flat: FlatParams, rings: Rings, tbptt: int, jit: bool | None = None
) -> Any:
    """The fast cell for ``model``, or ``None`` when it has no fast path.

    Fast paths: one-layer LSTM, tanh RNN and Elman networks. GRU, TCN, ReLU RNN and stacked
    models run through :class:`~elman.online.kernels.TorchStateful`. ``jit``: compiled
    kernels where available (``None``, see :func:`jit_kernels`), required (``True``) or
    never (``False``: the NumPy kernels).
    """
    names: dict[str, str | None] | None = None
    if model.num_layers != 1:
        return None
    if type(model) is RNN and model.nonlinearity == "tanh":
        names = {"w_ih": "rnn.weight_ih_l0", "w_hh": "rnn.weight_hh_l0",
                 "b_ih": "rnn.bias_ih_l0", "b_hh": "rnn.bias_hh_l0"}  # fmt: skip
    elif type(model) is Elman:
        names = {"w_ih": "weight_ih.0", "w_hh": "weight_hh.0",
                 "b_ih": "bias_h.0" if model.bias else None, "b_hh": None}  # fmt: skip
    elif type(model) is not LSTM:
        return None
    kernels = None if jit is False else jit_kernels()  # numba is imported here
    if jit and kernels is None:
        raise ImportError("the compiled streaming kernels need numba (and ELMAN_NO_JIT unset)")
    if names is None:
        return LSTMCell(flat, rings, tbptt, kernels)
    return TanhCell(flat, rings, tbptt, names, kernels)


class LSTMWindow(TorchWindow):
    """A one-layer LSTM (with or without a highway) on normalised windows, compiled.

    The same windows, targets and loss as :class:`~elman.online.kernels.TorchWindow`,
    whose state and checkpoint methods it keeps; a prediction is one compiled pass over the
    window (:func:`elman.online.jit.window_push`) and an update one compiled pass forward and
    back over each window (:func:`elman.online.jit.window_learn`), on views of the flat
    parameters. The torch model is brought up to date only when it is read
    (:meth:`state`; the learner's ``sync_model``), not after every update.
    """

    def __init__(
        self,
        model: SequenceModel,
        flat: FlatParams,
        rings: Rings,
        lookback: int,
        n_targets: int,
        direct: bool,
        jit: Any,
    ) -> None:
        super().__init__(model, flat, rings, lookback, n_targets, direct)
        self.jit = jit
        highway = model if isinstance(model, Highway) else None
        prefix = "net." if highway is not None else ""
        hid = flat.views[f"{prefix}rnn.weight_hh_l0"].shape[1]
        n_in, n_out, steps = rings.x.shape[1], self.n_out, lookback
        names = [f"{prefix}rnn.{n}_l0" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        names += [f"{prefix}head.weight", f"{prefix}head.bias"]
        self.offs = np.array([flat.offsets.get(n, -1) for n in names], np.int64)
        self.hw = np.array(
            [flat.offsets["linear.weight"], flat.offsets.get("linear.bias", -1),
             highway.window, highway.n_inputs]
            if highway is not None else [-1, -1, 0, 0],
            np.int64,
        )  # fmt: skip
        width = n_in + hid + 1
        self.n_in = n_in
        self.z = np.zeros((steps + 1, width), F32)  # [x_t, h_{t-1}, 1] of one window
        self.z[:, -1] = 1.0
        self.act = np.zeros((steps, 10, hid), F32)
        self.c_now = np.zeros(hid, F32)
        self.y = np.zeros((steps, n_out), F32)
        self.w_t = np.zeros((width, 4 * hid), F32)
        self.back = np.zeros((4 * hid + n_out, hid), F32)
        self.back_t = np.zeros((hid, 4 * hid), F32)  # its gate rows, transposed
        self.head = np.zeros((n_out, hid + 1), F32)
        self.da = np.zeros((steps, 4 * hid), F32)
        self.gwt = np.zeros((width, 4 * hid), F32)
        self.out = np.zeros(n_out, F32)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the kernels' matrices from the flat parameters (after every update)."""
        self.jit.window_refresh(self.flat.theta, self.offs, self.n_in, self.w_t, self.back,
                                self.back_t, self.head)  # fmt: skip

    def push(self, pos: int, x: np.ndarray) -> np.ndarray:
        """Output at position ``pos`` in scaled units ``[O]`` (NaN before a full window)."""
        if pos < self.lookback - 1:
            return np.full(self.n_out, np.nan, F32)
        win, ref, _ = self._windows(np.array([pos]))
        self.jit.window_push(win[0], self.z, self.act, self.c_now, self.w_t, self.head, self.y,
                             self.flat.theta, self.hw, self.out)  # fmt: skip
        return self._plus_ref(self.out, ref[0])

    def learn(self, first: int, last: int) -> float | None:
        """Gradient of the MSE of the windows ending at ``first .. last``; the loss."""
        first = max(first, self.lookback - 1)
        if first > last:
            return None
        win, ref, idx = self._windows(np.arange(first, last + 1))
        target = self._targets(first, last, ref, idx)
        if self.direct:  # targets of the last step only: [n, S = 1, O]
            target = target[:, None]
        return float(
            self.jit.window_learn(
                np.ascontiguousarray(win, F32), np.ascontiguousarray(target, F32), self.z,
                self.act, self.c_now, self.w_t, self.back_t, self.head, self.y, self.flat.theta,
                self.hw, self.flat.grad, self.offs, self.da, self.gwt,
            )
        )  # fmt: skip

    def state(self, pos: int) -> tuple[torch.Tensor, ...]:
        """The recurrent state after the window ending at ``pos`` (from a zero state)."""
        self.flat.to_model(self.model)
        return super().state(pos)


def fast_window(
    model: SequenceModel, flat: FlatParams, rings: Rings, lookback: int, n_targets: int,
    direct: bool,
) -> LSTMWindow | None:  # fmt: skip
    """The compiled window kernel for ``model``, or ``None`` (then: ``TorchWindow``).

    One-layer LSTMs, with or without a highway, when the compiled kernels are available.
    """
    net = model.net if isinstance(model, Highway) else model
    if type(net) is not LSTM or net.num_layers != 1:
        return None
    kernels = jit_kernels()
    if kernels is None:
        return None
    return LSTMWindow(model, flat, rings, lookback, n_targets, direct, kernels)
