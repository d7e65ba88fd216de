"""Hyperparameter search (layer 5): ``elman tune`` and :func:`elman.tune`, on Optuna.

``validation`` cuts K rolling windows and an untouched final window off the data and
scores a trial; ``space`` holds the search space of each model type and reads
``--space`` files; ``study`` opens, names, resumes and runs the Optuna study (and its
worker processes); ``result`` holds what a search found; ``report`` writes
``best.toml``, ``trials.csv``, the pictures and ``report.md``; ``run`` is :func:`tune`,
the whole search in one call.
"""

from elman._lazy import lazy_exports

__all__ = ["SearchSpace", "TuneResult", "tune"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SearchSpace": "elman.tuning.space",
        "TuneResult": "elman.tuning.result",
        "tune": "elman.tuning.run",
    },
)
