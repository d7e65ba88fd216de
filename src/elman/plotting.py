"""Kept for compatibility: ``elman.plotting`` moved to :mod:`elman.runs.pictures`.

The run pictures.
"""

from elman.runs.pictures import *  # noqa: F403
