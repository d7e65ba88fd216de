"""Kept for compatibility: ``elman.resume`` moved to :mod:`elman.training.resume`.

Checkpointing and resuming a fit.
"""

from elman.training.resume import *  # noqa: F403
