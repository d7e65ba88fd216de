"""Data layer: read and validate series, synthetic and built-in datasets, and scaling.

``source -> read_series -> Series -> Scaler (fit on train) -> windows.Panel -> batches``

Names are imported on first use (PEP 562): ``import elman.data`` loads no pandas or torch.
"""

from elman._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CALENDAR_PREFIX": "elman.data.calendar",
        "DatasetInfo": "elman.data.datasets",
        "MISSING_POLICIES": "elman.data.series",
        "Scaler": "elman.data.scaling",
        "Series": "elman.data.series",
        "calendar_features": "elman.data.calendar",
        "check_finite": "elman.data.series",
        "check_length": "elman.data.series",
        "check_not_constant": "elman.data.series",
        "dataset_info": "elman.data.datasets",
        "dataset_path": "elman.data.datasets",
        "drifting_sine": "elman.data.synthetic",
        "fill_missing": "elman.data.series",
        "freq_kind": "elman.data.calendar",
        "guess_time_column": "elman.data.stamps",
        "list_datasets": "elman.data.datasets",
        "load_dataset": "elman.data.datasets",
        "mackey_glass": "elman.data.synthetic",
        "many_series": "elman.data.synthetic",
        "noisy_sine": "elman.data.synthetic",
        "read_one": "elman.data.io",
        "read_series": "elman.data.io",
        "season_length": "elman.data.calendar",
        "seed_sine": "elman.data.synthetic",
        "sine": "elman.data.synthetic",
        "validate": "elman.data.series",
    },
)
