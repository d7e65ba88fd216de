"""Temporal convolutional network: causal dilated 1-D convolutions with residual blocks.

Block ``i`` (dilation ``d = 2**i``, kernel ``k``)::

    x ──conv(k, d)─ReLU─dropout──conv(k, d)─ReLU─dropout──(+)──ReLU──> out
    └───────────── identity, or 1x1 conv when channels change ─┘

Every convolution is "valid" (unpadded), so a block shortens its input by
``2 * (k - 1) * d`` steps, and the whole stack by ``receptive_field - 1``::

    receptive_field = 1 + 2 * (k - 1) * (2**num_layers - 1)

Causality and streaming come from one rule: the stack always sees the ``receptive_field - 1``
inputs that came before the chunk, taken from the state ``(buf,)``, ``buf:
[B, receptive_field - 1, I]``. The zero state means "the series was preceded by zeros".
Because the output at step ``t`` is computed from exactly the inputs
``t - receptive_field + 1 .. t``, a sequence run in chunks with the state carried gives the
same outputs as one run over the whole sequence.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from elman.models.base import SequenceModel, State


class CausalBlock(nn.Module):
    """Residual block of two dilated valid convolutions.

    Args:
        in_channels: channels in.
        channels: channels out.
        kernel_size: convolution width ``k``.
        dilation: spacing ``d`` between kernel taps.
        dropout: dropout after each convolution.
    """

    def __init__(
        self, in_channels: int, channels: int, kernel_size: int, dilation: int, dropout: float
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, channels, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv1d(in_channels, channels, 1) if in_channels != channels else None
        self.shrink = 2 * (kernel_size - 1) * dilation  # steps lost to the two convolutions

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[B, C_in, T]`` to ``[B, C, T - shrink]``."""
        y = self.drop(F.relu(self.conv1(x)))  # [B, C, T - shrink / 2]
        y = self.drop(F.relu(self.conv2(y)))  # [B, C, T - shrink]
        res = x[..., self.shrink :]  # the inputs aligned with the surviving outputs
        if self.skip is not None:
            res = self.skip(res)
        return F.relu(y + res)


class TCN(SequenceModel):
    """Causal dilated convnet with a linear read-out at every step.

    Args:
        input_size: features per time step ``I``.
        output_size: outputs per time step ``O``.
        hidden_size: channels of every block ``H``.
        num_layers: residual blocks, with dilations 1, 2, 4, ...
        dropout: dropout after each convolution.
        kernel_size: convolution width (>= 2).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.kernel_size = kernel_size
        self.blocks = nn.ModuleList(
            CausalBlock(input_size if i == 0 else hidden_size, hidden_size, kernel_size, 2**i,
                        dropout)
            for i in range(num_layers)
        )  # fmt: skip
        self.head = nn.Linear(hidden_size, output_size)

    @property
    def receptive_field(self) -> int:
        """Inputs that one output depends on (the current step included)."""
        return 1 + 2 * (self.kernel_size - 1) * (2**self.num_layers - 1)

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        p = self.head.weight
        buf = torch.zeros(
            batch_size, self.receptive_field - 1, self.input_size,
            device=device or p.device, dtype=dtype or p.dtype,
        )  # fmt: skip
        return (buf,)

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        # x: [B, L, I]
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        (buf,) = state  # [B, R - 1, I]
        full = torch.cat([buf, x], 1)  # [B, R - 1 + L, I]
        h = full.transpose(1, 2)  # [B, I, R - 1 + L]
        for block in self.blocks:
            h = block(h)
        seq = h.transpose(1, 2)  # [B, L, H]
        return seq, (full[:, full.shape[1] - buf.shape[1] :],)  # [B, R - 1, I]

    def hidden_sequence(self, x: Tensor, state: State | None = None) -> Tensor:
        return self._run(x, state)[0]

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        seq, new_state = self._run(x, state)
        return self.head(seq), new_state  # [B, L, O]
