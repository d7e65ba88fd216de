"""Kept for compatibility: ``elman.streaming`` moved to :mod:`elman.online.stream`.

The engine of elman stream.
"""

from elman.online.stream import *  # noqa: F403
