"""Standard recurrent networks: RNN, LSTM and GRU, each with a linear read-out at every step.

Each wraps the matching ``torch.nn`` module (batch-first), so CUDA runs through cuDNN and
CPU LSTM through oneDNN without any code here. The parameters keep torch's names
(``rnn.weight_ih_l0``, ...), so weights can be copied to and from a plain ``nn.GRU``.

On CPU, :class:`RNN` (tanh), :class:`GRU` and :class:`LSTM` train by default through the
fused recurrences of :mod:`elman.models.fused` (same equations and parameters as the torch
modules, hand-written backward pass, step loops compiled by :mod:`elman.models.native`). Without the
compiled loops, the LSTM runs ``nn.LSTM`` (oneDNN), the RNN and GRU the fused recurrences'
Python loops, the GRU handing over to ``nn.GRU`` above ``FUSED_GRU_MAX_WORK`` (batch x hidden
units), where that is faster. The LSTM also runs ``nn.LSTM`` below ``FUSED_LSTM_MIN_WORK``,
where oneDNN beats the fused loop (``benchmarks/bench_throughput.py``). Both limits, and
``FOLD_MAX_INPUTS``, are in :mod:`elman.models.switches`.

States (``L`` = ``num_layers``)::

    RNN, GRU:  (h,)     h: [L, B, H]
    LSTM:      (h, c)   h, c: [L, B, H]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from elman.models import switches
from elman.models.base import SequenceModel, State, read_out
from elman.models.fused import (
    elman_recurrence_fused,
    fused_allowed,
    gru_recurrence_fused,
    lstm_recurrence_fused,
    native_ops,
)

Nonlinearity = Literal["tanh", "relu"]
LayerFn = Callable[[int, Tensor, tuple[Tensor, ...]], tuple[Tensor, tuple[Tensor, ...]]]


class _TorchRecurrent(SequenceModel):
    """Shared plumbing: a batch-first ``torch.nn`` recurrent module and a linear head."""

    rnn: nn.RNNBase
    n_states: int = 1  # tensors in the state tuple
    fused: bool = False  # whether a subclass may take its fused CPU path

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
        return read_out(self.head, seq), new_state  # [B, L, O]

    def _fused_ready(self, x: Tensor) -> bool:
        """Whether this call may take the fused CPU path (module option and context)."""
        return self.fused and x.device.type == "cpu" and fused_allowed()

    def _layer_params(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(W_ih [G*H, I_l], b_ih [G*H], W_hh [G*H, H], b_hh [G*H])`` of one layer."""
        names = ("weight_ih", "bias_ih", "weight_hh", "bias_hh")
        w_ih, b_ih, w_hh, b_hh = (cast(Tensor, getattr(self.rnn, f"{n}_l{layer}")) for n in names)
        return w_ih, b_ih, w_hh, b_hh

    def _run_layers(
        self, x: Tensor, state: State | None, layer_fn: LayerFn
    ) -> tuple[Tensor, State]:
        """Stacked layers through ``layer_fn(layer, input, states) -> (output, finals)``.

        The layers run time-major: ``input`` and ``output`` are ``[L, B, ...]``, so no
        sequence is copied between layers. ``states`` and ``finals`` hold one ``[B, H]``
        tensor per state tensor; dropout between layers as in torch.
        """
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        seq = x.transpose(0, 1)  # [L, B, I]
        finals: list[tuple[Tensor, ...]] = []
        for layer in range(self.num_layers):
            seq, last = layer_fn(layer, seq, tuple(s[layer] for s in state))
            finals.append(last)
            if layer < self.num_layers - 1:
                seq = F.dropout(seq, self._between_layers(), self.training)
        stacked = tuple(torch.stack(parts, 0) for parts in zip(*finals, strict=True))
        return seq.transpose(0, 1), stacked


class RNN(_TorchRecurrent):
    """Stacked simple recurrent layers (``torch.nn.RNN``) with a linear read-out.

    Args:
        input_size: features per time step ``I``.
        output_size: outputs per time step ``O``.
        hidden_size: units per layer ``H``.
        num_layers: stacked recurrent layers.
        dropout: dropout between stacked layers (no effect with one layer).
        nonlinearity: ``'tanh'`` or ``'relu'``.
        fused: on CPU, run a tanh network through the fused Elman recurrence
            (:func:`elman.models.fused.elman_recurrence_fused`) instead of ``nn.RNN``: same
            numbers, faster training. ReLU networks and other devices use ``nn.RNN``.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        nonlinearity: Nonlinearity = "tanh",
        fused: bool = True,
    ) -> None:
        super().__init__(input_size, output_size, hidden_size, num_layers, dropout)
        self.nonlinearity = nonlinearity
        self.fused = fused
        self.rnn = nn.RNN(
            input_size, hidden_size, num_layers, nonlinearity=nonlinearity,
            batch_first=True, dropout=self._between_layers(),
        )  # fmt: skip

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        if not (self.nonlinearity == "tanh" and self._fused_ready(x)):
            return super()._run(x, state)

        def layer_fn(
            layer: int, seq: Tensor, states: tuple[Tensor, ...]
        ) -> tuple[Tensor, tuple[Tensor, ...]]:
            w_ih, b_ih, w_hh, b_hh = self._layer_params(layer)
            if w_ih.shape[1] <= switches.FOLD_MAX_INPUTS:  # projected inside the recurrence
                out = elman_recurrence_fused(seq, states[0], w_hh, True, w_ih, b_ih + b_hh)
            else:
                proj = F.linear(seq, w_ih, b_ih + b_hh)  # [L, B, H], one GEMM for the sequence
                out = elman_recurrence_fused(proj, states[0], w_hh, time_major=True)
            return out, (out[-1],)

        return self._run_layers(x, state, layer_fn)


class LSTM(_TorchRecurrent):
    """Stacked LSTM layers (``torch.nn.LSTM``) with a linear read-out; state ``(h, c)``.

    Args:
        input_size: features per time step ``I``.
        output_size: outputs per time step ``O``.
        hidden_size: units per layer ``H``.
        num_layers: stacked recurrent layers.
        dropout: dropout between stacked layers (no effect with one layer).
        fused: on CPU, run the fused recurrence with compiled step loops instead of
            ``nn.LSTM`` (same numbers, faster training) when those loops are available and
            batch x hidden size is at least ``FUSED_LSTM_MIN_WORK``. Passes without
            gradients (forecasting, validation), bfloat16 autocast and other devices use
            ``nn.LSTM``.
    """

    n_states = 2

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
        self.rnn = nn.LSTM(
            input_size, hidden_size, num_layers, batch_first=True, dropout=self._between_layers()
        )

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        big = x.shape[0] * self.hidden_size >= switches.FUSED_LSTM_MIN_WORK
        # Without gradients nn.LSTM is as fast and keeps no per-step gate activations; under
        # autocast oneDNN's bfloat16 LSTM beats the fused loop's element-wise conversions.
        training = torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type)
        if not (big and training and self._fused_ready(x) and native_ops() is not None):
            return super()._run(x, state)

        def layer_fn(
            layer: int, seq: Tensor, states: tuple[Tensor, ...]
        ) -> tuple[Tensor, tuple[Tensor, ...]]:
            w_ih, b_ih, w_hh, b_hh = self._layer_params(layer)
            h0, c0 = states
            if w_ih.shape[1] <= switches.FOLD_MAX_INPUTS:  # projected inside the recurrence
                out, c_last = lstm_recurrence_fused(seq, h0, c0, w_hh, True, b_ih + b_hh, w_ih)
            else:
                gi = F.linear(seq, w_ih)  # [L, B, 4H], one GEMM for the sequence
                out, c_last = lstm_recurrence_fused(gi, h0, c0, w_hh, True, b_ih + b_hh)
            return out, (out[-1], c_last)

        return self._run_layers(x, state, layer_fn)


class GRU(_TorchRecurrent):
    """Stacked GRU layers with a linear read-out, parameters held by a ``torch.nn.GRU``.

    Args:
        input_size: features per time step ``I``.
        output_size: outputs per time step ``O``.
        hidden_size: units per layer ``H``.
        num_layers: stacked recurrent layers.
        dropout: dropout between stacked layers (no effect with one layer).
        fused: on CPU, run the fused recurrence with a hand-written backward pass instead of
            ``nn.GRU`` (same numbers, faster training): always with the compiled step loops,
            and with the Python ones when batch x hidden size is at most
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

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        small = x.shape[0] * self.hidden_size <= switches.FUSED_GRU_MAX_WORK
        if not (self._fused_ready(x) and (small or native_ops() is not None)):
            return super()._run(x, state)

        def layer_fn(
            layer: int, seq: Tensor, states: tuple[Tensor, ...]
        ) -> tuple[Tensor, tuple[Tensor, ...]]:
            w_ih, b_ih, w_hh, b_hh = self._layer_params(layer)
            if w_ih.shape[1] <= switches.FOLD_MAX_INPUTS:  # projected inside the recurrence
                out = gru_recurrence_fused(seq, states[0], w_hh, b_hh, True, b_ih, w_ih)
            else:
                gi = F.linear(seq, w_ih)  # [L, B, 3H], one GEMM for the whole sequence
                out = gru_recurrence_fused(gi, states[0], w_hh, b_hh, True, bias_ih=b_ih)
            return out, (out[-1],)

        return self._run_layers(x, state, layer_fn)
