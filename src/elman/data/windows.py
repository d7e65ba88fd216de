"""Which windows a pass runs: each epoch's training draw, and passes bounded by elements.

Training windows are described by one range of starts per series (:class:`WindowRanges`),
so a long series costs no int64 start per window. Each epoch depends only on the seed and
the epoch number (a resumed or distributed run sees the same batches):

* without ``max_batches``, or when ``max_batches x batch_size`` covers every window: a
  random permutation of all windows (``torch.randperm``), each window once per epoch;
* otherwise exactly ``max_batches x batch_size`` distinct windows, drawn uniformly without
  replacement (``numpy.random.Generator.choice``, which needs memory for the draw only,
  not for all windows).

Forward passes without gradients (validation, interval calibration) run in chunks of at
most ``MAX_PASS_ELEMENTS`` windows x steps x width: their activations grow with all three,
so a fixed window count bounds memory badly for long lookbacks or wide networks.

Stateful truncated BPTT walks contiguous lanes instead (:func:`tbptt_lanes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

MAX_PASS_ELEMENTS = 2**22  # windows x steps x width per no-gradient forward pass
SHUFFLE_SALT = 7919  # torch seed of an epoch's permutation: seed * SHUFFLE_SALT + epoch


@dataclass(frozen=True)
class WindowRanges:
    """Window starts as one range per series: ``firsts[i] .. firsts[i] + counts[i] - 1``.

    Window number ``k`` (``0 <= k < len(self)``) is the ``k``-th start of the ranges laid end
    to end, the same order as :meth:`elman.forecast.Panel.starts` returns them.
    """

    firsts: np.ndarray  # [S] int64, global row of each range's first start
    counts: np.ndarray  # [S] int64, windows per range (> 0)

    @classmethod
    def of(
        cls,
        offsets: Sequence[int] | np.ndarray,
        lookback: int,
        horizon: int,
        lo: Sequence[int],
        hi: Sequence[int],
    ) -> WindowRanges:
        """Windows whose target rows ``[s+L, s+L+H)`` lie in ``[lo_i, hi_i)`` of series ``i``.

        Args:
            offsets: a panel's row offsets ``[S+1]`` (``Panel.offsets``).
            lookback: input steps ``L``; inputs may reach back before ``lo_i``, never before
                the series' first row.
            horizon: target steps ``H``.
            lo, hi: per series, the target rows allowed.
        """
        firsts, counts = [], []
        for i, off in enumerate(np.asarray(offsets)[:-1]):
            first = max(0, lo[i] - lookback)
            last = hi[i] - lookback - horizon  # inclusive
            if last >= first:
                firsts.append(int(off) + first)
                counts.append(last - first + 1)
        return cls(np.asarray(firsts, dtype=np.int64), np.asarray(counts, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.counts.sum())

    def starts(self, picks: Tensor) -> Tensor:
        """Global row of each window number in ``picks`` (int64 ``[K]``; changed in place)."""
        if len(self.counts) == 1:
            return picks.add_(int(self.firsts[0]))
        ends = torch.from_numpy(np.cumsum(self.counts))  # window number after each range
        which = torch.searchsorted(ends, picks, right=True)
        shift = torch.from_numpy(self.firsts) - (ends - torch.from_numpy(self.counts))
        return picks.add_(shift[which])

    def all_starts(self) -> Tensor:
        """Every start in window order ``[len(self)]``."""
        return self.starts(torch.arange(len(self), dtype=torch.int64))


def epoch_picks(n: int, take: int, seed: int, epoch: int) -> Tensor:
    """Window numbers of one epoch, in training order (see the module notes).

    Args:
        n: windows available.
        take: windows wanted; ``take >= n`` means all of them, permuted.
        seed, epoch: the draw depends on these only.
    """
    if take >= n:
        gen = torch.Generator().manual_seed(seed * SHUFFLE_SALT + epoch)
        return torch.randperm(n, generator=gen)
    rng = np.random.default_rng([seed, epoch])
    return torch.from_numpy(rng.choice(n, size=take, replace=False).astype(np.int64))


def epoch_batches(
    ranges: WindowRanges, batch_size: int, max_batches: int | None, seed: int, epoch: int
) -> list[Tensor]:
    """One epoch's training batches of window starts (at most ``max_batches`` of them)."""
    n = len(ranges)
    take = n if not max_batches else min(n, max_batches * batch_size)
    order = ranges.starts(epoch_picks(n, take, seed, epoch))
    out = list(order.split(batch_size))
    return out[:max_batches] if max_batches else out


def windows_per_pass(steps: int, width: int, cap: int | None = None) -> int:
    """Windows of ``steps`` steps whose pass through a ``width``-wide network fits the bound.

    At least 1; at most ``cap`` when given.
    """
    n = max(1, MAX_PASS_ELEMENTS // max(1, steps * width))
    return min(n, cap) if cap is not None else n


def tbptt_lanes(offsets: np.ndarray, ends: list[int], batch: int) -> tuple[np.ndarray, int]:
    """Cut the training part of each series into equal contiguous lanes (TBPTT)."""
    total = sum(ends)
    per = [max(1, round(batch * e / total)) for e in ends]
    lane_len = min(e // p for e, p in zip(ends, per, strict=True))
    starts = [
        off + k * (e // p)
        for off, e, p in zip(offsets[:-1], ends, per, strict=True)
        for k in range(p)
    ]
    return np.asarray(starts, dtype=np.int64), lane_len
