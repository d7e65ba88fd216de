"""Kept for compatibility: ``elman.report`` moved to :mod:`elman.runs.report`.

The run report and its pictures (``elman plot``).
"""

from elman.runs.report import *  # noqa: F403
