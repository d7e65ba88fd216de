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

Column layout. A scaled series has columns ``[targets | past covariates | future covariates]``.
The model's input at step ``t`` is ``x_t = [y_t, c_t, f_{t+1}]``: the targets and past
covariates observed at ``t``, and the known-ahead inputs of the step being predicted. The
"features" array ``F`` (:func:`features`) holds these rows; the last row of a history has
``f_T`` unknown (NaN) until the caller supplies the future. :class:`Panel` lays many series
end to end, and :func:`make_batch` gathers a batch of windows from it by fancy indexing,
so windows are never materialised all at once (memory: data size plus one batch)::

    rows:    s ........ s+L-1 | s+L ...... s+L+H-1
    direct:  x = F[s:s+L]     | y = Y[s+L:s+L+H]          model emits H*n_t values at s+L-1
    recur.:  x = F[s:s+L+H-1] (inputs, the last H-1 fed back at prediction time)
             y = Y[s+1:s+L+H]  (one step ahead at every position)

Per-window normalisation (``norm="last"``) subtracts ``r = Y[s+L-1]``, the last observed
target, from the target part of ``x`` and from ``y``; predictions add it back.

Padding. A series too short for the lookback (in a panel whose other series hold it) is
*padded*: :func:`pad_rows` repeats its first row (every column) in front of it, so a window
may start up to ``L - 1`` rows before the series' first point. Targets are never padded
rows: a window's targets always lie in the series itself, and its inputs hold at least one
real point (see :func:`elman.data.prepare.window_pads`).
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
    to end, the same order as :meth:`elman.data.windows.Panel.starts` returns them.
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
        pads: Sequence[int] | np.ndarray | None = None,
    ) -> WindowRanges:
        """Windows whose target rows ``[s+L, s+L+H)`` lie in ``[lo_i, hi_i)`` of series ``i``.

        Args:
            offsets: a panel's row offsets ``[S+1]`` (``Panel.offsets``).
            lookback: input steps ``L``; inputs may reach back before ``lo_i``, never before
                the series' first row, or its first padded row (``pads``).
            horizon: target steps ``H``.
            lo, hi: per series, the target rows allowed.
            pads: per series, the padded rows before its first row (``Panel.pads``).
        """
        firsts, counts = [], []
        for i, off in enumerate(np.asarray(offsets)[:-1]):
            first = max(-int(pads[i]) if pads is not None else 0, lo[i] - lookback)
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


def check_counts(obj: object, minimums: dict[str, int]) -> None:
    """Raise ``ValueError`` unless each named field of ``obj`` is an integer >= its minimum.

    The dataclasses below are also rebuilt from a saved model's metadata, where a hand-edited
    (and resealed) value could be anything.
    """
    for name, low in minimums.items():
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(
                f"{type(obj).__name__}.{name} must be an integer >= {low}, got {value!r}"
            )


@dataclass(frozen=True)
class Layout:
    """Column roles of a scaled series."""

    n_targets: int
    n_covariates: int = 0
    n_future: int = 0

    def __post_init__(self) -> None:
        check_counts(self, {"n_targets": 1, "n_covariates": 0, "n_future": 0})

    @property
    def input_size(self) -> int:
        """Features per model input step."""
        return self.n_targets + self.n_covariates + self.n_future

    @property
    def n_observed(self) -> int:
        """Targets plus past covariates: the columns known up to the present."""
        return self.n_targets + self.n_covariates


def features(values: Tensor, layout: Layout, next_future: Tensor | None = None) -> Tensor:
    """Model inputs ``[T, C_in]`` from scaled values ``[T, C]``.

    Row ``t`` is ``[y_t, c_t, f_{t+1}]``. The last row needs ``f_T``: ``next_future [n_f]``
    if known, else NaN (such a row is never an input during training).
    """
    obs = values[:, : layout.n_observed]
    if layout.n_future == 0:
        return obs.contiguous()
    fut = values[1:, layout.n_observed :]
    last = (
        next_future.reshape(1, -1).to(values)
        if next_future is not None
        else torch.full((1, layout.n_future), float("nan"), dtype=values.dtype)
    )
    return torch.cat([obs, torch.cat([fut, last], 0)], 1)


def pad_rows(values: Tensor, rows: int) -> Tensor:
    """``values [T, C]`` with its first row repeated ``rows`` times in front."""
    if rows <= 0:
        return values
    return torch.cat([values[:1].expand(rows, -1), values], 0)


class Panel:
    """Several scaled series concatenated row-wise, with their offsets.

    Args:
        arrays: scaled values ``[T_i, C]`` per series (float32).
        layout: column roles.
        pads: per series, how many copies of its first row go in front of it (see the
            module notes); none by default.

    ``offsets[i]`` is the panel row of series ``i``'s first point (after its padding);
    ``offsets[-1]`` is the number of rows.
    """

    def __init__(
        self, arrays: list[Tensor], layout: Layout, pads: Sequence[int] | None = None
    ) -> None:
        self.layout = layout
        self.pads = np.zeros(len(arrays), np.int64) if pads is None else np.asarray(pads, np.int64)
        self.lengths = [int(a.shape[0]) for a in arrays]
        rows = np.cumsum([0] + [n + int(p) for n, p in zip(self.lengths, self.pads, strict=True)])
        self.offsets = np.append(rows[:-1] + self.pads, rows[-1]).astype(np.int64)
        self.feats = torch.cat(
            [features(pad_rows(a, int(p)), layout) for a, p in zip(arrays, self.pads, strict=True)],
            0,
        )  # [N, C_in]
        # row t of the features starts with the targets y_t, so the targets are a view
        self.targets = self.feats[:, : layout.n_targets]  # [N, n_t]

    def starts(self, lookback: int, horizon: int, lo: list[int], hi: list[int]) -> np.ndarray:
        """Window starts whose target rows ``[s+L, s+L+H)`` lie inside ``[lo_i, hi_i)``.

        Inputs may reach back before ``lo_i`` (into earlier parts of the same series) but
        never before the series' first row (or padded row). Returns global row indices
        ``[K]`` (int64).
        """
        ranges = WindowRanges.of(self.offsets, lookback, horizon, lo, hi, self.pads)
        return ranges.all_starts().numpy()


def gather(panel: Panel, starts: Tensor, span: int) -> tuple[Tensor, Tensor]:
    """Rows ``s .. s+span-1`` per start: ``(feats [B, span, C_in], targets [B, span, n_t])``."""
    idx = starts.reshape(-1, 1) + torch.arange(span).reshape(1, -1)  # [B, span]
    feats = panel.feats[idx]
    return feats, feats[..., : panel.layout.n_targets]


@dataclass
class WindowBatch:
    """One batch of normalised windows, ready for a model."""

    x: Tensor  # [B, L or L+H-1, C_in]
    y: Tensor  # [B, H, n_t] (direct) or [B, L+H-1, n_t] (recursive)
    ref: Tensor  # [B, n_t] the per-window reference that was subtracted


def make_batch(
    panel: Panel, starts: Tensor, lookback: int, horizon: int, strategy: str, norm: str
) -> WindowBatch:
    """Cut and normalise the windows starting at ``starts`` (see the module diagram)."""
    span = lookback + horizon
    feats, targ = gather(panel, starts, span)  # [B, L+H, C_in], [B, L+H, n_t]
    n_t = panel.layout.n_targets
    ref = targ[:, lookback - 1] if norm == "last" else torch.zeros_like(targ[:, 0])  # [B, n_t]
    if strategy == "direct":
        x = feats[:, :lookback].clone()
        y = targ[:, lookback:] - ref[:, None]
    else:
        x = feats[:, : span - 1].clone()
        y = targ[:, 1:] - ref[:, None]
    x[..., :n_t] -= ref[:, None]
    return WindowBatch(x=x, y=y, ref=ref)
