"""Streaming plumbing and the generic torch kernels.

Plumbing shared by every kernel: :class:`FlatParams` (all parameters in one float32 vector,
so that one optimizer step is a dozen NumPy calls or one compiled call), :class:`Optimizer`
(SGD / Adam with plain-array state), :func:`clip_gradient` and :class:`Rings` (inputs and
targets of recent stream positions).

A kernel runs the model one stream position at a time (``push``) and computes the gradient
of the MSE at a range of positions (``learn``) into ``FlatParams.grad``.
:mod:`elman.online.cells` holds the fast kernels of one-layer LSTM / tanh RNN / Elman
models (compiled by :mod:`elman.online.jit`, or NumPy); the two here serve every model:

* :class:`TorchStateful` carries the recurrent state from point to point and keeps the
  state *before* each recent position, so that an update reruns the model over the chunk
  ``first - k + 1 .. last`` from the state at its start (recomputing the forward pass with
  the current weights) and back-propagates through it.
* :class:`TorchWindow` serves models trained on normalised windows (``norm="last"``): each
  prediction runs the model from a zero state over the last ``lookback`` inputs with the
  window's last target value subtracted, exactly as in training; an update is one batch
  of the windows ending at the trained positions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from elman.errors import ConfigError
from elman.models.base import SequenceModel

F32 = np.float32


class FlatParams:
    """All parameters of a model in one flat float32 vector, with per-name views.

    Args:
        model: the network; its parameters are copied (the model is not modified).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        named = list(model.named_parameters())
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        sizes = [int(p.numel()) for _, p in named]
        self.theta = np.concatenate(
            [p.detach().cpu().float().numpy().ravel() for _, p in named]
        ).astype(F32)
        self.grad = np.zeros_like(self.theta)
        self.views: dict[str, np.ndarray] = {}
        self.grad_views: dict[str, np.ndarray] = {}
        self.offsets: dict[str, int] = {}
        self._synced: torch.nn.Module | None = None  # the model _pairs belong to
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        offset = 0
        for name, shape, size in zip(self.names, self.shapes, sizes, strict=True):
            self.offsets[name] = offset
            self.views[name] = self.theta[offset : offset + size].reshape(shape)
            self.grad_views[name] = self.grad[offset : offset + size].reshape(shape)
            offset += size

    def index_views(self) -> dict[str, np.ndarray]:
        """Per-name positions in ``theta``, shaped like ``views`` (for gather maps)."""
        ids = np.arange(self.theta.size, dtype=np.int64)
        return {n: ids[o : o + self.views[n].size].reshape(self.views[n].shape)
                for n, o in self.offsets.items()}  # fmt: skip

    def to_model(self, model: torch.nn.Module) -> None:
        """Copy the flat values into the model's parameters."""
        if self._synced is not model:  # pair each parameter with its view once per model
            self._pairs = [(p, torch.from_numpy(self.views[name]))
                           for name, p in model.named_parameters()]  # fmt: skip
            self._synced = model
        with torch.no_grad():
            for p, view in self._pairs:
                p.copy_(view)

    def grad_from_model(self, model: torch.nn.Module) -> None:
        """Copy the model's ``.grad`` tensors into the flat gradient (missing: zero)."""
        for name, p in model.named_parameters():
            if p.grad is None:
                self.grad_views[name][...] = 0.0
            else:
                self.grad_views[name][...] = p.grad.detach().cpu().numpy()


def clip_gradient(grad: np.ndarray, max_norm: float | None) -> float:
    """Scale ``grad`` in place to norm ``max_norm`` at most (as ``clip_grad_norm_``).

    Returns:
        The norm before clipping (``inf`` or ``nan`` if the gradient is not finite).
    """
    norm = math.sqrt(float(np.dot(grad, grad)))  # inf or nan when the gradient is not finite
    if max_norm and math.isfinite(norm):
        coef = max_norm / (norm + 1e-6)
        if coef < 1.0:
            grad *= F32(coef)
    return norm


class Optimizer:
    """SGD or Adam on a flat vector; the state is plain arrays, saved with a checkpoint.

    Args:
        kind: ``"sgd"`` or ``"adam"`` (``torch.optim.Adam`` defaults: betas 0.9, 0.999).
        size: number of parameters.
        lr: learning rate.

    With ``jit`` set to :mod:`elman.online.jit` (the learner does so for a compiled cell) a
    step is one compiled call that does the same float32 operations.
    """

    KINDS = ("adam", "sgd")

    def __init__(self, kind: str, size: int, lr: float) -> None:
        if kind not in self.KINDS:
            raise ConfigError(f"--optimizer '{kind}' is not one of: {', '.join(self.KINDS)}")
        self.kind, self.lr = kind, lr
        self.betas, self.eps = (0.9, 0.999), 1e-8
        self.steps = 0
        self.m = np.zeros(size, F32) if kind == "adam" else np.zeros(0, F32)
        self.v = np.zeros(size, F32) if kind == "adam" else np.zeros(0, F32)
        self._tmp = np.zeros(size, F32)
        self.jit: Any = None

    def step(self, theta: np.ndarray, grad: np.ndarray) -> None:
        """One update of ``theta`` in place from ``grad``."""
        self.steps += 1
        if self.jit is not None:
            self._step_jit(theta, grad)
            return
        tmp = self._tmp
        if self.kind == "sgd":
            np.multiply(grad, F32(-self.lr), out=tmp)
            theta += tmp
            return
        b1, b2 = self.betas
        m, v = self.m, self.v
        m *= F32(b1)
        np.multiply(grad, F32(1.0 - b1), out=tmp)
        m += tmp
        v *= F32(b2)
        np.multiply(grad, grad, out=tmp)
        tmp *= F32(1.0 - b2)
        v += tmp
        bc1 = 1.0 - b1**self.steps
        bc2 = 1.0 - b2**self.steps
        np.sqrt(v, out=tmp)
        tmp *= F32(1.0 / math.sqrt(bc2))
        tmp += F32(self.eps)
        np.divide(m, tmp, out=tmp)
        tmp *= F32(-self.lr / bc1)
        theta += tmp

    def _step_jit(self, theta: np.ndarray, grad: np.ndarray) -> None:
        if self.kind == "sgd":
            self.jit.sgd_step(theta, grad, F32(-self.lr))
            return
        b1, b2 = self.betas
        bc1, bc2 = 1.0 - b1**self.steps, 1.0 - b2**self.steps
        k = [b1, 1.0 - b1, b2, 1.0 - b2, 1.0 / math.sqrt(bc2), self.eps, -self.lr / bc1]
        self.jit.adam_step(theta, grad, self.m, self.v, np.array(k, F32))

    def arrays(self) -> dict[str, np.ndarray]:
        """State arrays for a checkpoint."""
        return {"m": self.m, "v": self.v}

    def load(self, arrays: dict[str, np.ndarray], steps: int) -> None:
        """Restore the state written by :meth:`arrays`."""
        self.m[...] = arrays["m"]
        self.v[...] = arrays["v"]
        self.steps = int(steps)


class Rings:
    """Inputs and targets of the last ``capacity`` stream positions.

    ``x[p % R]`` is the model input at position ``p`` and ``y[p % R]`` the target values
    observed at position ``p``; the output at position ``p`` predicts ``y`` at ``p+1 ..
    p+A`` (``A`` = steps ahead the model emits).
    """

    def __init__(self, capacity: int, input_size: int, n_targets: int, ahead: int) -> None:
        self.capacity, self.ahead = capacity, ahead
        self.x = np.zeros((capacity, input_size), F32)
        self.y = np.zeros((capacity, n_targets), F32)
        self._table = np.arange(2 * capacity) % capacity  # slots of any run of positions

    def slots(self, first: int, last: int) -> np.ndarray:
        """Ring slots of positions ``first .. last`` (inclusive), ``[last - first + 1]``.

        A read-only view; at most ``capacity`` positions.
        """
        start = first % self.capacity
        return self._table[start : start + last - first + 1]

    def targets(self, first: int, last: int) -> np.ndarray:
        """Targets of positions ``first .. last``: ``[n, A * n_targets]``."""
        if self.ahead == 1:
            return self.y[self.slots(first + 1, last + 1)]
        idx = np.arange(first, last + 1)[:, None] + np.arange(1, self.ahead + 1)[None]
        return self.y[idx % self.capacity].reshape(idx.shape[0], -1)


class TorchStateful:
    """Carried-state kernel for any :class:`~elman.models.base.SequenceModel`."""

    def __init__(self, model: SequenceModel, flat: FlatParams, rings: Rings, tbptt: int) -> None:
        self.model, self.flat, self.rings, self.tbptt = model, flat, rings, tbptt
        zero = model.init_state(1)
        self.state_now = tuple(s.clone() for s in zero)
        self.ring = tuple(torch.zeros((rings.capacity, *s.shape)) for s in zero)

    def refresh(self) -> None:
        """Copy the flat parameters into the model (after every update)."""
        self.flat.to_model(self.model)

    @torch.no_grad()
    def push(self, pos: int, x: np.ndarray) -> np.ndarray:
        """One step at position ``pos`` from input ``x [I]``; returns the output ``[O]``."""
        slot = pos % self.rings.capacity
        for ring, s in zip(self.ring, self.state_now, strict=True):
            ring[slot].copy_(s)
        out, self.state_now = self.model(torch.from_numpy(x).reshape(1, 1, -1), self.state_now)
        return out.reshape(-1).numpy()

    def learn(self, first: int, last: int) -> float:
        """Gradient of the MSE at positions ``first .. last``; returns the loss."""
        start = max(0, first - self.tbptt + 1)
        slots = self.rings.slots(start, last)
        x = torch.from_numpy(self.rings.x[slots])[None]  # [1, L, I]
        state = tuple(r[int(slots[0])] for r in self.ring)
        n = last - first + 1
        self.model.zero_grad(set_to_none=True)
        out, _ = self.model(x, state)  # [1, L, O]
        target = torch.from_numpy(self.rings.targets(first, last))  # [n, O]
        loss = F.mse_loss(out[0, -n:], target)
        loss.backward()
        self.flat.grad_from_model(self.model)
        return float(loss.detach())

    def state(self) -> tuple[torch.Tensor, ...]:
        """The carried state (copies, model layout, batch 1)."""
        return tuple(s.clone() for s in self.state_now)

    def set_state(self, state: tuple[torch.Tensor, ...]) -> None:
        """Replace the carried state."""
        self.state_now = tuple(s.detach().clone().reshape(r.shape[1:]) for s, r in
                               zip(state, self.ring, strict=True))  # fmt: skip

    def arrays(self) -> dict[str, np.ndarray]:
        """Carried state and the ring of earlier states, for a checkpoint."""
        out = {f"state{i}": s.numpy() for i, s in enumerate(self.state_now)}
        out.update({f"ring{i}": r.numpy() for i, r in enumerate(self.ring)})
        return out

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`arrays`."""
        self.state_now = tuple(
            torch.from_numpy(np.array(arrays[f"state{i}"])) for i in range(len(self.ring))
        )
        for i, r in enumerate(self.ring):
            r.copy_(torch.from_numpy(np.array(arrays[f"ring{i}"])))
        self.refresh()


class TorchWindow:
    """Sliding-window kernel for models trained with per-window normalisation.

    Args:
        model: the network; direct models emit ``horizon * n_targets`` values at the last
            step, recursive models one step ahead at every step.
        flat: flat parameters.
        rings: inputs and targets; the capacity must exceed ``lookback + u + ahead``.
        lookback: window length ``L``.
        n_targets: target columns (the first columns of every input row).
        direct: the model's strategy is ``direct``.
    """

    def __init__(
        self,
        model: SequenceModel,
        flat: FlatParams,
        rings: Rings,
        lookback: int,
        n_targets: int,
        direct: bool,
    ) -> None:
        self.model, self.flat, self.rings = model, flat, rings
        self.lookback, self.n_targets, self.direct = lookback, n_targets, direct
        self.n_out = model.output_size

    def refresh(self) -> None:
        """Copy the flat parameters into the model (after every update)."""
        self.flat.to_model(self.model)

    def _windows(self, last_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised windows ``[n, L, I]``, their references ``[n, n_t]`` and positions."""
        idx = last_positions[:, None] + np.arange(1 - self.lookback, 1)[None]  # [n, L]
        win = self.rings.x[idx % self.rings.capacity]  # a copy
        ref = win[:, -1, : self.n_targets].copy()
        win[..., : self.n_targets] -= ref[:, None]
        return win, ref, idx

    @torch.no_grad()
    def push(self, pos: int, x: np.ndarray) -> np.ndarray:
        """Output at position ``pos`` in scaled units ``[O]`` (NaN before a full window)."""
        if pos < self.lookback - 1:
            return np.full(self.n_out, np.nan, F32)
        win, ref, _ = self._windows(np.array([pos]))
        out, _ = self.model(torch.from_numpy(win))  # [1, L, O]
        return self._plus_ref(out[0, -1].numpy(), ref[0])

    def _plus_ref(self, out: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """An output ``[O]`` (``n_t`` values per step) back from the window's last values."""
        return (out.reshape(-1, self.n_targets) + ref).reshape(-1)

    def _targets(self, first: int, last: int, ref: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """What the windows ending at ``first .. last`` learn, less their last values:
        direct ``[n, A * n_t]`` (the steps after each window), recursive ``[n, L, n_t]`` (one
        step ahead at every window position, as in training)."""
        if self.direct:
            n = len(ref)
            ahead = self.rings.targets(first, last).reshape(n, -1, self.n_targets)
            return (ahead - ref[:, None]).reshape(n, -1)
        return self.rings.y[(idx + 1) % self.rings.capacity] - ref[:, None]

    def learn(self, first: int, last: int) -> float | None:
        """Gradient of the MSE of the windows ending at ``first .. last``; the loss."""
        first = max(first, self.lookback - 1)
        if first > last:
            return None
        win, ref, idx = self._windows(np.arange(first, last + 1))
        self.model.zero_grad(set_to_none=True)
        out, _ = self.model(torch.from_numpy(win))  # [n, L, O]
        target = torch.from_numpy(self._targets(first, last, ref, idx))
        loss = F.mse_loss(out[:, -1] if self.direct else out, target)
        loss.backward()
        self.flat.grad_from_model(self.model)
        return float(loss.detach())

    @torch.no_grad()
    def state(self, pos: int) -> tuple[torch.Tensor, ...]:
        """The recurrent state after the window ending at ``pos`` (from a zero state)."""
        win, _, _ = self._windows(np.array([pos]))
        return tuple(s.clone() for s in self.model(torch.from_numpy(win))[1])

    def arrays(self) -> dict[str, np.ndarray]:
        """Nothing beyond the rings: a window kernel carries no state."""
        return {}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the parameters into the model."""
        self.refresh()
