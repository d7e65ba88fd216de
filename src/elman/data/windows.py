"""Chronological splits and training windows, cut lazily from strided views.

Column layout (the :class:`~elman.data.series.Series` order)::

    data[t] = [ targets (n_targets) | past covariates | future covariates (n_future) ]

Window alignment. A window starting at ``s`` covers rows ``s .. s+L+H-1``::

    x[i] = [ targets[s+i], past_cov[s+i], future_cov[s+i+1] ]    i = 0..L-1   -> [L, C]
    y[j] =   targets[s+L+j]                                       j = 0..H-1   -> [H, n_targets]

So a one-step model reading input step ``t`` also sees the known-ahead value of the step it
predicts (``t+1``). The last input row reads ``future_cov[s+L]``, which is the first target
row; every row a window touches is in ``s .. s+L+H-1``, so the leakage rules below hold for
inputs and targets alike.

Leakage rule for a split ``train = [0, train_end)``, ``val = [train_end, val_end)``,
``test = [val_end, T)``: a training window lies entirely before ``train_end``; a validation
window's targets lie in the validation part (its inputs may reach back into train); test
likewise. :func:`target_starts` gives exactly those window starts.

Memory: nothing the size of ``lookback x data`` is built. :func:`window_view` is a
zero-copy ``sliding_window_view``; a batch is gathered from it by fancy indexing, which
copies only ``B x (L + H) x C`` values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from elman.errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]


class Split(NamedTuple):
    """Split boundaries and window starts of each part (see :func:`make_split`)."""

    train_end: int
    val_end: int
    train: range
    val: range
    test: range


def _check_sizes(lookback: int, horizon: int) -> None:
    if lookback < 1:
        raise ConfigError(f"lookback must be >= 1, got {lookback} (use --lookback)")
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1, got {horizon} (use --horizon)")


def split_points(n: int, val_frac: float = 0.2, test_size: int = 0) -> tuple[int, int]:
    """Chronological boundaries: train ``[0, train_end)``, val ``[train_end, val_end)``,
    test ``[val_end, n)``.

    Args:
        n: Series length T.
        val_frac: Fraction of the non-test points used for validation, in [0, 1).
        test_size: Points held out at the end for testing (>= 0).

    Returns:
        ``(train_end, val_end)`` with ``0 < train_end <= val_end <= n``.

    Raises:
        ConfigError: a value out of range or nothing left to train on.
    """
    if not 0.0 <= val_frac < 1.0:
        raise ConfigError(f"val_frac must be in [0, 1), got {val_frac} (use --val-frac)")
    if test_size < 0 or test_size >= n:
        raise ConfigError(
            f"test_size must be in [0, {n}) for a series of {n} points, got {test_size} "
            "(use --test-size)"
        )
    val_end = n - test_size
    train_end = val_end - int(round(val_frac * val_end))
    if train_end < 1:
        raise ConfigError(
            f"no training points left: {n} points, test_size {test_size}, val_frac {val_frac} "
            "(lower --val-frac or --test-size)"
        )
    return train_end, val_end


def target_starts(
    target_lo: int, target_hi: int, lookback: int, horizon: int, stride: int = 1
) -> range:
    """Window starts whose targets all lie in ``[target_lo, target_hi)``.

    Inputs start at ``max(0, target_lo - lookback)``, so with ``target_lo = 0`` every row
    of every window lies before ``target_hi``.

    Returns:
        ``range`` of starts ``s`` (possibly empty): targets are rows ``s+L .. s+L+H-1``.
    """
    _check_sizes(lookback, horizon)
    if stride < 1:
        raise ConfigError(f"stride must be >= 1, got {stride}")
    first = max(0, target_lo - lookback)
    last = target_hi - lookback - horizon  # inclusive
    return range(first, max(first, last + 1), stride)


def make_split(
    n: int,
    lookback: int,
    horizon: int,
    val_frac: float = 0.2,
    test_size: int = 0,
    stride: int = 1,
) -> Split:
    """Boundaries from :func:`split_points` and the window starts of each part.

    Raises:
        ConfigError: bad sizes, or the training part holds no complete window.
    """
    train_end, val_end = split_points(n, val_frac, test_size)
    train = target_starts(0, train_end, lookback, horizon, stride)
    if len(train) == 0:
        raise ConfigError(
            f"training part has {train_end} points, but lookback {lookback} + horizon "
            f"{horizon} needs at least {lookback + horizon} (lower --lookback, --horizon "
            "or --val-frac)"
        )
    val = target_starts(train_end, val_end, lookback, horizon, stride)
    test = target_starts(val_end, n, lookback, horizon, stride)
    return Split(train_end, val_end, train, val, test)


def window_view(data: np.ndarray, width: int) -> np.ndarray:
    """Zero-copy view of all windows of ``width`` consecutive rows.

    Args:
        data: ``[T, C]``.
        width: Rows per window (``lookback + horizon``), 1 <= width <= T.

    Returns:
        Read-only view ``[T - width + 1, C, width]`` sharing memory with ``data``.
    """
    return np.lib.stride_tricks.sliding_window_view(data, width, axis=0)


def _as_2d(array: np.ndarray) -> np.ndarray:
    data = np.asarray(array)
    if data.ndim == 1:
        data = data.reshape(-1, 1)
    if data.ndim != 2:
        raise ConfigError(f"window data must be [T, C], got shape {data.shape}")
    return data


class WindowDataset(Dataset[Batch]):
    """Sliding windows over one or many ``[T_k, C]`` arrays, for one global model.

    Windows are addressed by a flat id; :meth:`locate` maps ids to ``(series, start)``.
    Only ``O(number of series)`` bookkeeping is stored, whatever the number of windows.

    Args:
        data: One ``[T, C]`` array or a list of them (same C), already scaled.
        lookback: Input length L.
        horizon: Target length H.
        n_targets: Leading columns that are targets.
        n_future: Trailing columns that are future covariates (input shifted by one step).
        starts: Window starts per series (a ``range`` or one per array); default all.
        dtype: Tensor dtype of the batches.

    Raises:
        ConfigError: sizes out of range, mismatched columns or starts out of bounds.
    """

    def __init__(
        self,
        data: np.ndarray | Sequence[np.ndarray],
        lookback: int,
        horizon: int,
        n_targets: int = 1,
        n_future: int = 0,
        starts: range | Sequence[range] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        _check_sizes(lookback, horizon)
        arrays = [_as_2d(data)] if isinstance(data, np.ndarray) else [_as_2d(a) for a in data]
        if not arrays:
            raise ConfigError("WindowDataset needs at least one array")
        width = arrays[0].shape[1]
        if any(a.shape[1] != width for a in arrays):
            raise ConfigError("all arrays of a WindowDataset need the same number of columns")
        if not 1 <= n_targets <= width or not 0 <= n_future <= width - n_targets:
            raise ConfigError(
                f"n_targets ({n_targets}) and n_future ({n_future}) do not fit {width} columns"
            )
        self.lookback, self.horizon = lookback, horizon
        self.n_targets, self.n_future, self.dtype = n_targets, n_future, dtype
        self.arrays = arrays
        self.starts = self._resolve_starts(starts)
        span = lookback + horizon
        self._views = [window_view(a, span) if len(a) >= span else None for a in arrays]
        counts = np.array([len(r) for r in self.starts], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(counts)])  # [S + 1]

    def _resolve_starts(self, starts: range | Sequence[range] | None) -> list[range]:
        span = self.lookback + self.horizon
        if starts is None:
            return [range(0, max(len(a) - span + 1, 0)) for a in self.arrays]
        ranges = [starts] if isinstance(starts, range) else list(starts)
        if len(ranges) != len(self.arrays):
            raise ConfigError(f"got {len(ranges)} start ranges for {len(self.arrays)} arrays")
        for k, (r, a) in enumerate(zip(ranges, self.arrays, strict=True)):
            if len(r) and (min(r) < 0 or max(r) + span > len(a)):
                raise ConfigError(
                    f"window starts {r} of array {k} do not fit its {len(a)} rows with "
                    f"lookback {self.lookback} + horizon {self.horizon}"
                )
        return ranges

    @property
    def input_size(self) -> int:
        """Columns of ``x`` (all columns)."""
        return int(self.arrays[0].shape[1])

    @property
    def output_size(self) -> int:
        """Columns of ``y`` (the targets)."""
        return self.n_targets

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, ids: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Map flat window ids ``[B]`` to ``(series index [B], start row [B])``."""
        flat = np.asarray(ids, dtype=np.int64).reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"window id out of range for {len(self)} windows")
        series = np.searchsorted(self._offsets, flat, side="right") - 1
        first = np.array([r.start for r in self.starts], dtype=np.int64)
        step = np.array([r.step for r in self.starts], dtype=np.int64)
        start = first[series] + (flat - self._offsets[series]) * step[series]
        return series, start

    def get_batch(self, ids: np.ndarray | Sequence[int]) -> Batch:
        """Gather windows by id.

        Returns:
            ``x [B, L, C]`` and ``y [B, H, n_targets]`` tensors (copies of the batch only).
        """
        series, start = self.locate(ids)
        span, width = self.lookback + self.horizon, self.input_size
        out = np.empty((len(start), span, width), dtype=self.arrays[0].dtype)  # [B, L+H, C]
        for k in np.unique(series):
            sel = series == k
            view = self._views[int(k)]
            assert view is not None  # starts were checked against the array length
            out[sel] = view[start[sel]].transpose(0, 2, 1)  # [b, C, L+H] -> [b, L+H, C]
        L, past = self.lookback, width - self.n_future
        x = np.concatenate([out[:, :L, :past], out[:, 1 : L + 1, past:]], axis=2)  # [B, L, C]
        y = out[:, L:, : self.n_targets]  # [B, H, n_targets]
        return (
            torch.as_tensor(x, dtype=self.dtype),
            torch.as_tensor(np.ascontiguousarray(y), dtype=self.dtype),
        )

    def __getitem__(self, i: int) -> Batch:
        x, y = self.get_batch([i])
        return x[0], y[0]

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | np.random.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Iterate over batches ``(x [B, L, C], y [B, H, n_targets])``.

        Args:
            batch_size: Windows per batch (the last may be smaller unless ``drop_last``).
            shuffle: Visit windows in random order.
            generator: Source of randomness for ``shuffle`` (torch or numpy generator).
            drop_last: Skip a final incomplete batch.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size} (use --batch-size)")
        n = len(self)
        if not shuffle:
            order: np.ndarray | None = None
        elif isinstance(generator, np.random.Generator):
            order = generator.permutation(n)
        else:
            order = torch.randperm(n, generator=generator).numpy()
        stop = n - n % batch_size if drop_last else n
        for lo in range(0, stop, batch_size):
            hi = min(lo + batch_size, n)
            ids = np.arange(lo, hi) if order is None else order[lo:hi]
            yield self.get_batch(ids)


def lanes(data: np.ndarray, n_lanes: int) -> np.ndarray:
    """Cut ``[T, C]`` into ``n_lanes`` contiguous lanes ``[B, T // B, C]`` (a view).

    The last ``T % B`` rows are dropped.
    """
    array = _as_2d(data)
    if n_lanes < 1:
        raise ConfigError(f"number of lanes must be >= 1, got {n_lanes} (use --batch-size)")
    length = array.shape[0] // n_lanes
    if length < 2:
        raise ConfigError(
            f"{array.shape[0]} points cannot fill {n_lanes} lanes of at least 2 points; "
            "use fewer lanes (--batch-size)"
        )
    return array[: n_lanes * length].reshape(n_lanes, length, array.shape[1])


def chunks(
    data: np.ndarray,
    n_lanes: int,
    chunk_len: int,
    n_targets: int = 1,
    n_future: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Iterator[Batch]:
    """Consecutive chunks for stateful truncated BPTT over B parallel streams.

    The series is cut into B contiguous lanes; chunks walk forward through all lanes at
    once, so lane b of chunk j+1 continues exactly where lane b of chunk j stopped and the
    hidden state can be carried over (detached) between chunks. Targets are one step ahead::

        T = 14, B = 3 lanes of 4 points (rows 12, 13 dropped), chunk_len k = 2

        t:      0  1  2  3 | 4  5  6  7 | 8  9 10 11 | 12 13
                  lane 0       lane 1       lane 2     dropped

                  chunk 0     chunk 1 (shorter: the lane's last point is only a target)
        lane 0:   x 0 1       x 2
                  y 1 2       y 3
        lane 1:   x 4 5       x 6
                  y 5 6       y 7
        lane 2:   x 8 9       x 10
                  y 9 10      y 11

    Future covariate columns are read one step ahead, like :class:`WindowDataset`.

    Args:
        data: ``[T, C]`` scaled array in the Series column layout.
        n_lanes: Parallel streams B.
        chunk_len: Steps per chunk k (the truncation length).
        n_targets: Leading target columns.
        n_future: Trailing future-covariate columns.
        dtype: Tensor dtype.

    Yields:
        ``x [B, k_j, C]`` and ``y [B, k_j, n_targets]``; ``k_j = k`` except possibly the last.
    """
    if chunk_len < 1:
        raise ConfigError(f"chunk length must be >= 1, got {chunk_len} (use --bptt)")
    cut = lanes(data, n_lanes)  # [B, N, C]
    width = cut.shape[2]
    if not 1 <= n_targets <= width or not 0 <= n_future <= width - n_targets:
        raise ConfigError(
            f"n_targets ({n_targets}) and n_future ({n_future}) do not fit {width} columns"
        )
    past, steps = width - n_future, cut.shape[1] - 1
    for lo in range(0, steps, chunk_len):
        hi = min(lo + chunk_len, steps)
        x = np.concatenate([cut[:, lo:hi, :past], cut[:, lo + 1 : hi + 1, past:]], axis=2)
        y = cut[:, lo + 1 : hi + 1, :n_targets]
        yield torch.as_tensor(x, dtype=dtype), torch.as_tensor(np.ascontiguousarray(y), dtype=dtype)


def n_chunks(n: int, n_lanes: int, chunk_len: int) -> int:
    """Number of chunks :func:`chunks` yields for ``n`` points."""
    steps = n // n_lanes - 1
    return max(0, -(-steps // chunk_len))
