"""A linear "highway" beside any network: a straight linear map of the input window.

For whole-horizon (direct) forecasting the network's output at the last step of a window is
read as the forecast. The highway adds a linear function of the window's last ``window``
values of the first ``n_inputs`` features (the targets) to that output::

    y[:, -1] = net(x)[:, -1] + W @ flatten(x[:, -window:, :n_inputs]) + b

With per-window normalisation (values relative to the last one) the highway alone is a
linear autoregression; the recurrent network only has to learn what a linear model cannot.
It starts at zero, so an untrained model equals the plain network. Sequences shorter than
``window`` (single streaming steps) get no highway term.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from elman.models.base import SequenceModel, State


class Highway(SequenceModel):
    """Wrap ``net`` with a linear map of the input window added to the last output step.

    Args:
        net: the wrapped network.
        window: how many trailing steps the linear map reads (the lookback).
        n_inputs: how many leading input features it reads (the targets).
    """

    def __init__(self, net: SequenceModel, window: int, n_inputs: int) -> None:
        super().__init__()
        self.net = net
        self.window = window
        self.n_inputs = n_inputs
        self.input_size = net.input_size
        self.output_size = net.output_size
        self.hidden_size = net.hidden_size
        self.num_layers = net.num_layers
        self.linear = nn.Linear(window * n_inputs, net.output_size)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        return self.net.init_state(batch_size, device, dtype)

    def hidden_sequence(self, x: Tensor, state: State | None = None) -> Tensor:
        return self.net.hidden_sequence(x, state)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        y, new_state = self.net(x, state)  # [B, L, O]
        if x.shape[1] < self.window:
            return y, new_state
        lin = self.linear(x[:, -self.window :, : self.n_inputs].flatten(1))  # [B, O]
        return torch.cat([y[:, :-1], (y[:, -1] + lin)[:, None]], 1), new_state
