"""How many rolling validation windows a selection (tuning, an ensemble) scores on.

A choice made on one window of H points is mostly a choice made on noise; many windows
cost history that training then lacks. :func:`validation_folds` settles the trade the same
way wherever elman selects among models::

    series  |--------- training (at least TRAIN_SHARE of the points) ---------|k0 |k1 |k2 |final|
                                                                               [H] [H] [H] [ H ]

* enough (series, window) pairs for a mean to mean something: ``ceil(TARGET_PAIRS / S)``
  windows for ``S`` series, so one series gets ``MAX_FOLDS`` and 30 series get 1;
* at most ``MAX_FOLDS`` (the windows are recent history; older ones say less about the
  next H points) and at least ``MIN_FOLDS``;
* never so many that the training part before the first window drops below
  ``TRAIN_SHARE`` of the shortest series.

The untouched final window is not counted here: the caller removes it first and gives
the length that is left.
"""

from __future__ import annotations

import math

from elman.errors import DataError

TARGET_PAIRS = 30  # scored (series, window) pairs a selection should rest on
MAX_FOLDS = 10  # windows per series at most
MIN_FOLDS = 1  # windows per series at least (with room for them)
TRAIN_SHARE = 0.5  # the part before the first window keeps at least this share of a series


def validation_folds(series_count: int, length: int, horizon: int) -> int:
    """The number ``K`` of rolling windows of ``horizon`` points at the end of each series.

    Args:
        series_count: how many series ``S`` are scored together.
        length: points of the shortest series that the windows may use (the untouched
            final window already removed).
        horizon: points per window ``H`` (windows do not overlap).

    Returns:
        ``K`` between :data:`MIN_FOLDS` and :data:`MAX_FOLDS`; see the module notes.

    Raises:
        DataError: not even one window fits beside the training part.
    """
    if series_count < 1 or horizon < 1:
        raise DataError(f"validation windows need series and a horizon >= 1 ({horizon})")
    wanted = min(MAX_FOLDS, max(MIN_FOLDS, math.ceil(TARGET_PAIRS / series_count)))
    room = (length - math.ceil(TRAIN_SHARE * length)) // horizon
    if room < MIN_FOLDS:
        raise DataError(
            f"a series of {length} points leaves no room for a validation window of "
            f"{horizon} points after keeping {TRAIN_SHARE:.0%} of it for training; give "
            "longer series or a shorter --horizon"
        )
    return min(wanted, room)
