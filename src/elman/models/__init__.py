"""Forecasting networks. Each maps ``[B, L, input_size]`` to ``[B, L, output_size]``.

Build one by name with :func:`build_model`; :func:`model_config` gives the arguments that
rebuild it. See :mod:`elman.models.base` for the interface and the state layouts, and
:mod:`elman.models.switches` for every fast-path switch and environment variable. Names are
imported on first use (PEP 562), so ``import elman.models.switches`` loads no torch.
"""

from elman._lazy import lazy_exports

__all__ = [
    "GRU",
    "LSTM",
    "MODELS",
    "RNN",
    "TCN",
    "ESRNN",
    "Elman",
    "SequenceModel",
    "State",
    "available",
    "build_model",
    "model_config",
    "model_name",
    "window_models",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ESRNN": "elman.models.esrnn",
        "Elman": "elman.models.elman",
        "GRU": "elman.models.recurrent",
        "LSTM": "elman.models.recurrent",
        "MODELS": "elman.models.registry",
        "RNN": "elman.models.recurrent",
        "SequenceModel": "elman.models.base",
        "State": "elman.models.base",
        "TCN": "elman.models.tcn",
        "available": "elman.models.registry",
        "build_model": "elman.models.registry",
        "model_config": "elman.models.registry",
        "model_name": "elman.models.registry",
        "window_models": "elman.models.registry",
    },
)
