"""elman: recurrent-network time-series forecasting.

The public API in one place::

    from elman import Forecaster, read_series, datasets
"""

from __future__ import annotations

__version__ = "0.1.0"

from elman.data import datasets  # noqa: E402
from elman.data.io import read_one, read_series  # noqa: E402
from elman.data.series import Series  # noqa: E402
from elman.errors import CheckpointError, ConfigError, DataError, ElmanError  # noqa: E402
from elman.forecaster import Forecaster  # noqa: E402

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
]
