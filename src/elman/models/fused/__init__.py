"""Fast CPU training paths for the Elman (tanh), GRU and LSTM recurrences.

One module per cell (:mod:`~elman.models.fused.elman`, :mod:`~elman.models.fused.gru`,
:mod:`~elman.models.fused.lstm`) and what they share (:mod:`~elman.models.fused.common`,
which describes the design). Their tunables live in :mod:`elman.models.switches`.
"""

from elman.models.fused.common import fused_allowed, native_ops
from elman.models.fused.elman import ElmanRecurrence, elman_recurrence_fused
from elman.models.fused.gru import GRURecurrence, gru_recurrence_fused, gru_recurrence_reference
from elman.models.fused.lstm import LSTMRecurrence, lstm_recurrence_fused

__all__ = [
    "ElmanRecurrence",
    "GRURecurrence",
    "LSTMRecurrence",
    "elman_recurrence_fused",
    "fused_allowed",
    "gru_recurrence_fused",
    "gru_recurrence_reference",
    "lstm_recurrence_fused",
    "native_ops",
]
