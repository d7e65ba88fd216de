"""Evaluation (layer 3): forecasts scored against held-out data and honest baselines.

``metrics`` computes MAE, RMSE, sMAPE, MASE, coverage and pinball loss; ``baselines`` the
naive, seasonal-naive, drift and linear-AR forecasts; ``holdout`` one forecast of the last
points; ``backtest`` rolling-origin evaluation; ``scores`` the backtest's tables and files; ``m4``
the M4 competition's rules (sMAPE, MASE, the Naive2 benchmark and OWA).
"""

from elman._lazy import lazy_exports

__all__ = [
    "BacktestResult",
    "HoldoutResult",
    "baseline_forecasts",
    "compute_metrics",
    "evaluate_holdout",
    "split_holdout",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BacktestResult": "elman.evaluation.scores",
        "HoldoutResult": "elman.evaluation.holdout",
        "baseline_forecasts": "elman.evaluation.baselines",
        "compute_metrics": "elman.evaluation.metrics",
        "evaluate_holdout": "elman.evaluation.holdout",
        "split_holdout": "elman.evaluation.holdout",
    },
)
