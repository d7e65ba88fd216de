"""Forecasting (layer 2): a fitted network turned into forecasts in real units.

``predictor`` holds the :class:`Predictor` (model, sizes, layout, scalers, config) and
forecasts after the data or from many cutoffs; ``strategies`` runs the direct and recursive
strategies on tensors; ``calibration`` and ``intervals`` give conformal intervals;
``context`` and ``saved`` write a predictor to disk and read it back.
"""

from elman._lazy import lazy_exports

__all__ = [
    "Calibration",
    "Predictor",
    "load_predictor",
    "parse_levels",
    "save_predictor",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Calibration": "elman.forecasting.calibration",
        "Predictor": "elman.forecasting.predictor",
        "load_predictor": "elman.forecasting.saved",
        "parse_levels": "elman.forecasting.intervals",
        "save_predictor": "elman.forecasting.saved",
    },
)
