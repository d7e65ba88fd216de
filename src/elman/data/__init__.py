"""Data layer: read and validate series, synthetic and built-in datasets, scaling, windows.

``source -> read_series -> Series -> Scaler (fit on train) -> WindowDataset / chunks``
"""

from elman.data.calendar import (
    CALENDAR_PREFIX,
    calendar_features,
    freq_kind,
    guess_time_column,
    season_length,
)
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
from elman.data.synthetic import (
    drifting_sine,
    mackey_glass,
    many_series,
    noisy_sine,
    seed_sine,
    sine,
)
from elman.data.windows import (
    Split,
    WindowDataset,
    chunks,
    lanes,
    make_split,
    n_chunks,
    split_points,
    target_starts,
    window_view,
)

__all__ = [
    "CALENDAR_PREFIX",
    "MISSING_POLICIES",
    "DatasetInfo",
    "Scaler",
    "Series",
    "Split",
    "WindowDataset",
    "calendar_features",
    "check_finite",
    "check_length",
    "check_not_constant",
    "chunks",
    "dataset_info",
    "dataset_path",
    "drifting_sine",
    "fill_missing",
    "freq_kind",
    "guess_time_column",
    "lanes",
    "list_datasets",
    "load_dataset",
    "mackey_glass",
    "make_split",
    "many_series",
    "n_chunks",
    "noisy_sine",
    "read_one",
    "read_series",
    "season_length",
    "seed_sine",
    "sine",
    "split_points",
    "target_starts",
    "validate",
    "window_view",
]
