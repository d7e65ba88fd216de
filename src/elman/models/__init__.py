"""Forecasting networks. Each maps ``[B, L, input_size]`` to ``[B, L, output_size]``.

Build one by name with :func:`build_model`; :func:`model_config` gives the arguments that
rebuild it. See :mod:`elman.models.base` for the interface and the state layouts.
"""

from elman.models.base import SequenceModel, State
from elman.models.elman import Elman
from elman.models.recurrent import GRU, LSTM, RNN
from elman.models.registry import MODELS, available, build_model, model_config, model_name
from elman.models.tcn import TCN

__all__ = [
    "GRU",
    "LSTM",
    "MODELS",
    "RNN",
    "TCN",
    "Elman",
    "SequenceModel",
    "State",
    "available",
    "build_model",
    "model_config",
    "model_name",
]
