"""Data layer: read and validate series, synthetic and built-in datasets, and scaling.

``source -> read_series -> Series -> Scaler (fit on train) -> forecast.Panel``
"""

from elman.data.calendar import CALENDAR_PREFIX, calendar_features, freq_kind, season_length
from elman.data.datasets import (
    DatasetInfo,
    dataset_info,
    dataset_path,
    list_datasets,
    load_dataset,
)
from elman.data.io import read_one, read_series
from elman.data.scaling import Scaler
from elman.data.series import (
    MISSING_POLICIES,
    Series,
    check_finite,
    check_length,
    check_not_constant,
    fill_missing,
    validate,
)
from elman.data.stamps import guess_time_column
from elman.data.synthetic import (
    drifting_sine,
    mackey_glass,
    many_series,
    noisy_sine,
    seed_sine,
    sine,
)

__all__ = [
    "CALENDAR_PREFIX",
    "MISSING_POLICIES",
    "DatasetInfo",
    "Scaler",
    "Series",
    "calendar_features",
    "check_finite",
    "check_length",
    "check_not_constant",
    "dataset_info",
    "dataset_path",
    "drifting_sine",
    "fill_missing",
    "freq_kind",
    "guess_time_column",
    "list_datasets",
    "load_dataset",
    "mackey_glass",
    "many_series",
    "noisy_sine",
    "read_one",
    "read_series",
    "season_length",
    "seed_sine",
    "sine",
    "validate",
]
