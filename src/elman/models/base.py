"""The one interface every forecasting network implements.

A model maps an input sequence to an output sequence and carries a recurrent state::

    y, state = model(x, state)      # x: [B, L, input_size] -> y: [B, L, output_size]

``state`` is always a tuple of tensors (possibly empty), so that trainers, forecasters,
the streaming learner and the ONNX exporter never special-case a model type:

* Elman / RNN / GRU: ``(h,)`` with ``h: [num_layers, B, hidden_size]``
* LSTM:             ``(h, c)``, both ``[num_layers, B, hidden_size]``
* TCN:              ``(buf,)`` with ``buf: [B, receptive_field - 1, input_size]``,
  the most recent inputs, which is all a causal convnet needs to continue a sequence.

``state=None`` means "start from zeros" (``init_state``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]


class SequenceModel(nn.Module):
    """Base class: subclasses set the size attributes and implement ``forward``."""

    input_size: int
    output_size: int
    hidden_size: int
    num_layers: int

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Zero state for ``batch_size`` sequences."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run over a sequence.

        Args:
            x: inputs ``[B, L, input_size]``.
            state: carried state, or ``None`` for zeros.

        Returns:
            ``(y, state)`` with ``y: [B, L, output_size]``.
        """
        raise NotImplementedError

    def hidden_sequence(self, x: Tensor, state: State | None = None) -> Tensor:
        """Top-layer hidden activity ``[B, L, hidden_size]``, for the context-neuron heatmap."""
        raise NotImplementedError


def read_out(head: nn.Module, seq: Tensor) -> Tensor:
    """``head`` applied at every step of ``seq`` ``[B, L, H]``, returning ``[B, L, O]``.

    The fused recurrences hand back a batch-first *view* of time-major memory. Applying the
    head to that memory in its own order, and transposing the small ``[L, B, O]`` result,
    saves copying the whole hidden sequence forward and backward.
    """
    time_major = seq.transpose(0, 1)
    if not seq.is_contiguous() and time_major.is_contiguous():
        out: Tensor = head(time_major).transpose(0, 1).contiguous()
        return out
    result: Tensor = head(seq)
    return result
