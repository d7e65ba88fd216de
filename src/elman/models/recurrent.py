"""Standard recurrent networks: RNN, LSTM and GRU, each with a linear read-out at every step.

Each wraps the matching ``torch.nn`` module (batch-first), so CUDA runs through cuDNN and
CPU LSTM through oneDNN without any code here. The parameters keep torch's names
(``rnn.weight_ih_l0``, ...), so weights can be copied to and from a plain ``nn.GRU``.

On CPU, :class:`GRU` trains by default through the fused recurrence of
:mod:`elman.models.fused` (same equations and parameters as ``nn.GRU``, hand-written
backward pass), because ``nn.GRU`` has no fast CPU kernel. Above
``FUSED_GRU_MAX_WORK`` (batch x hidden units) it hands over to ``nn.GRU``, which is faster
there (``benchmarks/bench_throughput.py``).

States (``L`` = ``num_layers``)::

    RNN, GRU:  (h,)     h: [L, B, H]
    LSTM:      (h, c)   h, c: [L, B, H]
"""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from elman.models.base import SequenceModel, State
from elman.models.fused import fused_allowed, gru_recurrence_fused

Nonlinearity = Literal["tanh", "relu"]

# Largest batch x hidden size the fused GRU runs; above it nn.GRU is faster on CPU. Measured
# (2-core Xeon, 100 steps, fused vs nn.GRU): 64 x 64 1.77x, 128 x 64 1.41x, 256 x 64 1.08x,
# 64 x 256 1.29x; 128 x 256 0.90x, 256 x 256 0.88x.
FUSED_GRU_MAX_WORK = 16_384


class _TorchRecurrent(SequenceModel):
    """Shared plumbing: a batch-first ``torch.nn`` recurrent module and a linear head."""

    rnn: nn.RNNBase
    n_states: int = 1  # tensors in the state tuple

    def __init__(
        self, input_size: int, output_size: int, hidden_size: int, num_layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.head = nn.Linear(hidden_size, output_size)

    def _between_layers(self) -> float:
        """Dropout handed to torch, which only applies it between stacked layers."""
        return self.dropout if self.num_layers > 1 else 0.0

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        p = self.head.weight
        shape = (self.num_layers, batch_size, self.hidden_size)
        dev, dt = device or p.device, dtype or p.dtype
        return tuple(torch.zeros(shape, device=dev, dtype=dt) for _ in range(self.n_states))

    def _hx(self, state: State | None) -> Tensor | tuple[Tensor, Tensor] | None:
        if state is None:
            return None
        if self.n_states == 2:
            return state[0], state[1]
        return state[0]

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        # x: [B, L, I] -> seq: [B, L, H]
        seq, hn = self.rnn(x, self._hx(state))
        new_state = tuple(hn) if isinstance(hn, tuple) else (hn,)
        return seq, new_state

    def hidden_sequence(self, x: Tensor, state: State | None = None) -> Tensor:
        return self._run(x, state)[0]

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        seq, new_state = self._run(x, state)
        return self.head(seq), new_state  # [B, L, O]


class RNN(_TorchRecurrent):
    """Stacked simple recurrent layers (``torch.nn.RNN``) with a linear read-out.

    Args:
        input_size: features per time step ``I``.
        output_size: outputs per time step ``O``.
        hidden_size: units per layer ``H``.
        num_layers: stacked recurrent layers.
        dropout: dropout between stacked layers (no effect with one layer).
        nonlinearity: ``'tanh'`` or ``'relu'``.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        nonlinearity: Nonlinearity = "tanh",
    ) -> None:
        super().__init__(input_size, output_size, hidden_size, num_layers, dropout)
        self.nonlinearity = nonlinearity
        self.rnn = nn.RNN(
            input_size, hidden_size, num_layers, nonlinearity=nonlinearity,
            batch_first=True, dropout=self._between_layers(),
        )  # fmt: skip


class LSTM(_TorchRecurrent):
    """Stacked LSTM layers (``torch.nn.LSTM``) with a linear read-out; state ``(h, c)``.

    Args:
        input_size: features per time step ``I``.
        output_size: outputs per time step ``O``.
        hidden_size: units per layer ``H``.
        num_layers: stacked recurrent layers.
        dropout: dropout between stacked layers (no effect with one layer).
    """

    n_states = 2

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(input_size, output_size, hidden_size, num_layers, dropout)
        self.rnn = nn.LSTM(
            input_size, hidden_size, num_layers, batch_first=True, dropout=self._between_layers()
        )


class GRU(_TorchRecurrent):
    """Stacked GRU layers with a linear read-out, parameters held by a ``torch.nn.GRU``.

    Args:
        input_size: features per time step ``I``.
        output_size: outputs per time step ``O``.
        hidden_size: units per layer ``H``.
        num_layers: stacked recurrent layers.
        dropout: dropout between stacked layers (no effect with one layer).
        fused: on CPU, run the fused recurrence with a hand-written backward pass instead of
            ``nn.GRU`` (same numbers, faster training) when batch x hidden size is at most
            ``FUSED_GRU_MAX_WORK``. Other devices always use ``nn.GRU``.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        fused: bool = True,
    ) -> None:
        super().__init__(input_size, output_size, hidden_size, num_layers, dropout)
        self.fused = fused
        self.rnn = nn.GRU(
            input_size, hidden_size, num_layers, batch_first=True, dropout=self._between_layers()
        )

    def _layer_params(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(W_ih [3H, I_l], b_ih [3H], W_hh [3H, H], b_hh [3H])`` of one layer."""
        names = ("weight_ih", "bias_ih", "weight_hh", "bias_hh")
        w_ih, b_ih, w_hh, b_hh = (cast(Tensor, getattr(self.rnn, f"{n}_l{layer}")) for n in names)
        return w_ih, b_ih, w_hh, b_hh

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        small = x.shape[0] * self.hidden_size <= FUSED_GRU_MAX_WORK
        if not (self.fused and small and x.device.type == "cpu" and fused_allowed()):
            return super()._run(x, state)
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        (h0,) = state  # [num_layers, B, H]
        seq = x
        finals = []
        for layer in range(self.num_layers):
            w_ih, b_ih, w_hh, b_hh = self._layer_params(layer)
            gi = F.linear(seq, w_ih, b_ih)  # [B, L, 3H], one GEMM for the whole sequence
            seq = gru_recurrence_fused(gi, h0[layer], w_hh, b_hh)  # [B, L, H]
            finals.append(seq[:, -1])
            if layer < self.num_layers - 1:
                seq = F.dropout(seq, self._between_layers(), self.training)
        return seq, (torch.stack(finals, 0),)
