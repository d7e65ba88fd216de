"""The seed's Elman network ("simple recurrent network"), as a reusable batched module.

One step of one layer, with ``h`` the context neurons::

    h_t = tanh(x_t @ W_ih.T + h_{t-1} @ W_hh.T + b)
    y_t = h_t @ W_out.T + b_out              (top layer only)

The seed concatenates ``[x_t, h_{t-1}]`` and multiplies by one ``(I + H) x H`` matrix ``w1``;
that is the same map with ``W_ih = w1[:I].T`` and ``W_hh = w1[I:].T``. With ``bias=False``
this module is exactly the seed's network.

The input projection ``x @ W_ih.T`` is computed for the whole sequence at once (one large
matmul); only the ``h @ W_hh.T`` recurrence runs step by step. With ``fused=True`` (the
default) that recurrence is :func:`elman.models.fused.elman_recurrence_fused`, which runs
without an autograd graph and has a hand-written backward pass; a layer with at most
``FOLD_MAX_INPUTS`` input features (:mod:`elman.models.switches`; the first layer of a
univariate model) hands it the inputs and lets it project them step by step instead.
``fused=False`` uses the step-by-step autograd reference. All compute the same numbers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from elman.models import switches
from elman.models.base import SequenceModel, State, read_out
from elman.models.fused import elman_recurrence_fused, fused_allowed


class Elman(SequenceModel):
    """Elman network: stacked tanh recurrent layers and a linear read-out.

    Args:
        input_size: features per time step ``I``.
        hidden_size: context neurons per layer ``H`` (the seed uses 6).
        output_size: outputs per time step ``O``.
        num_layers: stacked recurrent layers.
        bias: add biases to the recurrent layers and the read-out (the seed has none).
        dropout: dropout between stacked layers (ignored for one layer).
        fused: use the fused recurrence with a hand-written backward pass (same numbers,
            faster training on CPU).
    """

    def __init__(
        self,
        input_size: int = 1,
        hidden_size: int = 6,
        output_size: int = 1,
        num_layers: int = 1,
        bias: bool = True,
        dropout: float = 0.0,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.num_layers = num_layers
        self.bias = bias
        self.dropout = dropout
        self.fused = fused
        self.weight_ih = nn.ParameterList()
        self.weight_hh = nn.ParameterList()
        self.bias_h = nn.ParameterList()
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size
            self.weight_ih.append(nn.Parameter(torch.empty(hidden_size, n_in)))
            self.weight_hh.append(nn.Parameter(torch.empty(hidden_size, hidden_size)))
            if bias:
                self.bias_h.append(nn.Parameter(torch.empty(hidden_size)))
        self.drop = nn.Dropout(dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, output_size, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)), the same rule as ``torch.nn.RNN``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in [*self.weight_ih, *self.weight_hh, *self.bias_h]:
            nn.init.uniform_(p, -bound, bound)
        self.head.reset_parameters()

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        p = self.weight_hh[0]
        h = torch.zeros(
            self.num_layers, batch_size, self.hidden_size,
            device=device or p.device, dtype=dtype or p.dtype,
        )
        return (h,)

    def _layer_bias(self, layer: int) -> Tensor | None:
        return self.bias_h[layer] if self.bias else None

    def hidden_sequence(self, x: Tensor, state: State | None = None) -> Tensor:
        return self._run(x, state)[0]

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        # x: [B, L, I]
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        (h0,) = state  # [num_layers, B, H]
        finals = []
        fused = self.fused and fused_allowed()
        # The fused path runs the layer stack time-major ([L, B, ...]): no sequence copies.
        seq = x.transpose(0, 1) if fused else x
        for layer in range(self.num_layers):
            w_ih, bias = self.weight_ih[layer], self._layer_bias(layer)
            if fused and w_ih.shape[1] <= switches.FOLD_MAX_INPUTS:  # projected in the loop
                seq = elman_recurrence(seq, h0[layer], self.weight_hh[layer], True, w_ih, bias)
                finals.append(seq[-1])
            elif fused:
                proj = F.linear(seq, w_ih, bias)
                seq = elman_recurrence(proj, h0[layer], self.weight_hh[layer], time_major=True)
                finals.append(seq[-1])
            else:
                proj = F.linear(seq, w_ih, bias)
                seq = elman_recurrence_reference(proj, h0[layer], self.weight_hh[layer])
                finals.append(seq[:, -1])
            if layer < self.num_layers - 1:
                seq = self.drop(seq)
        return (seq.transpose(0, 1) if fused else seq), (torch.stack(finals, 0),)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        seq, new_state = self._run(x, state)
        return read_out(self.head, seq), new_state  # [B, L, O]


def elman_recurrence_reference(proj: Tensor, h0: Tensor, weight_hh: Tensor) -> Tensor:
    """``h_t = tanh(proj_t + h_{t-1} @ W_hh.T)`` step by step through autograd.

    Args:
        proj: input projections ``[B, L, H]`` (bias included).
        h0: initial context ``[B, H]``.
        weight_hh: recurrent weights ``[H, H]``.

    Returns:
        All hidden states ``[B, L, H]``.
    """
    h = h0
    outs = []
    for t in range(proj.shape[1]):
        h = torch.tanh(torch.addmm(proj[:, t], h, weight_hh.t()))
        outs.append(h)
    return torch.stack(outs, 1)


# The recurrence ``Elman(fused=True)`` calls; looked up at call time, so it can be swapped.
elman_recurrence = elman_recurrence_fused
