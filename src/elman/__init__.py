"""elman: recurrent-network time-series forecasting.

The public API in one place::

    from elman import Forecaster, read_series, datasets

Importing ``elman`` loads no torch, pandas or NumPy: the names below are imported on first
use (PEP 562), so the command line answers ``elman --help`` at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from elman._lazy import lazy_exports
from elman._version import __version__
from elman.errors import CheckpointError, ConfigError, DataError, ElmanError

if TYPE_CHECKING:
    from elman.data import datasets
    from elman.data.io import read_one, read_series
    from elman.data.series import Series
    from elman.forecaster import Forecaster
    from elman.tuning.run import tune

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ElmanError",
    "Forecaster",
    "Series",
    "__version__",
    "datasets",
    "read_one",
    "read_series",
    "tune",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Forecaster": "elman.forecaster",
        "Series": "elman.data.series",
        "datasets": "elman.data.datasets",
        "read_one": "elman.data.io",
        "read_series": "elman.data.io",
        "tune": "elman.tuning.run",
        "distributed": "elman.training.distributed",  # compatibility: the module moved
    },
)
