"""Kept for compatibility: ``elman.online_forecaster`` moved to :mod:`elman.online.attach`.

:meth:`Forecaster.update <elman.forecaster.Forecaster.update>` does the update and keeps
its per-point log in :attr:`~elman.forecaster.Forecaster.update_log`.
"""

from __future__ import annotations

from typing import Any

from elman.forecaster import Forecaster
from elman.online.metrics import StepLog

__all__ = ["update_forecaster"]


def update_forecaster(forecaster: Forecaster, new_data: Any, options: dict[str, Any]) -> StepLog:
    """``forecaster.update(new_data, **options)``; returns the per-point log of the update."""
    log = forecaster.update(new_data, **options).update_log
    assert log is not None
    return log
