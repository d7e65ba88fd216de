"""What the fused CPU recurrences share: when they may run, the compiled loops, helpers.

On CPU, ``nn.LSTM`` trains through oneDNN, while ``nn.RNN`` and ``nn.GRU`` run a generic
per-step loop that records several autograd nodes per step. The fused recurrences
(:mod:`elman.models.fused.elman`, :mod:`~elman.models.fused.gru`,
:mod:`~elman.models.fused.lstm`) do the same maths with less work per step:

* the input projections ``x @ W_ih.T + b`` are computed by the caller for the whole
  sequence (one large GEMM, differentiated by autograd as usual), except that a layer
  with at most :data:`~elman.models.switches.FOLD_MAX_INPUTS` inputs lets the compiled
  loops project them step by step;
* the recurrence runs with no autograd graph, writing into preallocated time-major
  (``[L, B, ...]``) buffers;
* backpropagation through time is hand-written in a :class:`torch.autograd.Function`;
  the recurrent weight gradient is summed step by step in the compiled loops when the
  weights are small (:data:`~elman.models.switches.WEIGHT_GRAD_IN_LOOP_MAX_BYTES`), else a
  single ``[gates*H, L*B] @ [L*B, H]`` GEMM;
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

Double backward is not supported (the Functions are ``once_differentiable``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from elman.models import native, switches


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
        switches.WEIGHT_GRAD_IN_LOOP
        and weight_hh.dtype in (torch.float32, torch.float64)
        and size <= switches.WEIGHT_GRAD_IN_LOOP_MAX_BYTES
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


def _time_major(x: Tensor, time_major: bool) -> Tensor:
    """``x`` as ``[L, B, ...]`` (a view)."""
    return x if time_major else x.transpose(0, 1)


__all__ = ["fused_allowed", "native_ops"]
