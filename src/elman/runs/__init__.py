"""Runs (layer 5): the run directory, its report and pictures, and whole runs in one call.

``directory`` reads and writes a run's files (``elman info``); ``report`` and
``report_text`` write ``report.md``; ``pictures`` draws the PNGs; ``workflows`` holds
:func:`train_run` and :func:`backtest_run`, what ``elman train`` and ``elman backtest`` do.
"""

from elman._lazy import lazy_exports

__all__ = [
    "BacktestRun",
    "TrainRun",
    "backtest_run",
    "describe",
    "render_run",
    "resume_config",
    "train_run",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BacktestRun": "elman.runs.workflows",
        "TrainRun": "elman.runs.workflows",
        "backtest_run": "elman.runs.workflows",
        "describe": "elman.runs.directory",
        "render_run": "elman.runs.report",
        "resume_config": "elman.runs.workflows",
        "train_run": "elman.runs.workflows",
    },
)
