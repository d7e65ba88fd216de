"""Per-column scaling, fitted on the training part only and stored as plain JSON in metadata.

``transform(x) = (x - center) / scale`` and ``inverse_transform(z) = z * scale + center``:

* ``standard``: center = mean, scale = standard deviation;
* ``minmax``:   center = min,  scale = max - min (values land in [0, 1]);
* ``none``:     center = 0,    scale = 1.

A constant column gets scale 1, so nothing divides by zero. For many series the caller
keeps one :class:`Scaler` per series (for example a dict from series id to Scaler).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from elman.errors import CheckpointError, ConfigError, DataError

KINDS = ("standard", "minmax", "none")
"""Accepted scaler kinds."""

MAX_MAGNITUDE = 1e100
"""Largest center and scale a scaler takes: a float32 network output (below 3.4e38) times
the scale, plus the center, and its square (a squared error) stay finite in float64."""

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)


class Scaler:
    """Affine per-column scaling.

    Args:
        kind: One of :data:`KINDS`.

    Attributes:
        center: ``[C]`` float64 after :meth:`fit`, else ``None``.
        scale: ``[C]`` float64 (all > 0) after :meth:`fit`, else ``None``.
    """

    def __init__(self, kind: str = "standard") -> None:
        if kind not in KINDS:
            raise ConfigError(
                f"scaler kind {kind!r} is not one of {', '.join(KINDS)} (use --scaler)"
            )
        self.kind = kind
        self.center: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.low: np.ndarray | None = None  # per-column minimum seen by fit (None: unknown)

    def __repr__(self) -> str:
        size = "unfitted" if self.center is None else f"{len(self.center)} columns"
        return f"Scaler(kind={self.kind!r}, {size})"

    @property
    def n_columns(self) -> int:
        """Number of fitted columns C (0 before :meth:`fit`)."""
        return 0 if self.center is None else len(self.center)

    def fit(self, values: np.ndarray) -> Scaler:
        """Learn center and scale per column, ignoring NaN.

        Args:
            values: ``[T, C]`` (or ``[T]`` for one column), the training part only.

        Returns:
            ``self``.

        Raises:
            DataError: no rows, or values too large to scale.
        """
        data = np.asarray(values)
        data = data.reshape(-1, 1) if data.ndim == 1 else data.reshape(-1, data.shape[-1])
        if data.shape[0] == 0:
            raise DataError("cannot fit a scaler on 0 rows; the training part is empty")
        with np.errstate(all="ignore"):
            if self.kind == "standard":
                center, scale = _mean_std(data)
            elif self.kind == "minmax":
                center = _reduce(data, np.nanmin, np.fmin)
                scale = _reduce(data, np.nanmax, np.fmax) - center
            else:
                center, scale = np.zeros(data.shape[1]), np.ones(data.shape[1])
        if not (np.isfinite(center).all() and np.isfinite(scale).all()):
            col = int(np.flatnonzero(~(np.isfinite(center) & np.isfinite(scale)))[0])
            raise DataError(
                f"cannot scale column {col}: its values are empty or too large "
                f"(center {center[col]}, scale {scale[col]})"
            )
        big = (np.abs(center) > MAX_MAGNITUDE) | (scale > MAX_MAGNITUDE)
        if big.any():
            col = int(np.flatnonzero(big)[0])
            raise DataError(
                f"cannot scale column {col}: its values are too large (center {center[col]:.3g}, "
                f"scale {scale[col]:.3g}; elman scales values up to {MAX_MAGNITUDE:.0e}); "
                "divide the column by a power of ten first"
            )
        scale = np.where(scale > 0, scale, 1.0)
        self.center, self.scale = center.astype(np.float64), scale.astype(np.float64)
        self.low = _reduce(data, np.nanmin, np.fmin).astype(np.float64)
        return self

    def never_negative(self) -> np.ndarray | None:
        """Per column, whether no value seen by :meth:`fit` was below 0 (``None``: not known,
        as for a scaler saved before the minimum was kept)."""
        return None if self.low is None else ~(self.low < 0)

    def _params(self, x: ArrayLike, columns: Sequence[int] | None) -> tuple[Any, Any]:
        if self.center is None or self.scale is None:
            raise RuntimeError("Scaler is not fitted; call fit() first")
        center, scale = self.center, self.scale
        if columns is not None:
            cols = list(columns)
            if any(c < -len(center) or c >= len(center) for c in cols):
                raise DataError(
                    f"column index out of range in {cols}; the scaler has {len(center)} columns"
                )
            center, scale = center[cols], scale[cols]
        width = x.shape[-1] if x.ndim else 0
        if width != len(center):
            raise DataError(
                f"scaler expects {len(center)} columns in the last dimension, got shape "
                f"{tuple(x.shape)}"
            )
        if isinstance(x, torch.Tensor):
            return (
                torch.as_tensor(center, dtype=x.dtype, device=x.device),
                torch.as_tensor(scale, dtype=x.dtype, device=x.device),
            )
        return center, scale

    def transform(self, x: ArrayLike, columns: Sequence[int] | None = None) -> ArrayLike:
        """Scale data.

        Args:
            x: ``[..., C]`` numpy array or tensor (or ``[..., len(columns)]``).
            columns: Indices of the fitted columns that ``x`` holds, in order; default all.

        Returns:
            Same shape and kind as ``x`` (a new array; numpy results are float64).
        """
        center, scale = self._params(x, columns)
        if isinstance(x, torch.Tensor):
            return (x - center) / scale
        return (np.asarray(x, dtype=np.float64) - center) / scale

    def inverse_transform(self, x: ArrayLike, columns: Sequence[int] | None = None) -> ArrayLike:
        """Undo :meth:`transform` (for example on forecasts of the target columns only).

        Args:
            x: ``[..., C]`` or ``[..., len(columns)]`` numpy array or tensor.
            columns: Indices of the fitted columns that ``x`` holds, in order; default all.

        Returns:
            Same shape and kind as ``x``.
        """
        center, scale = self._params(x, columns)
        if isinstance(x, torch.Tensor):
            return x * scale + center
        return np.asarray(x, dtype=np.float64) * scale + center

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: ``{'kind': str, 'center': [float], 'scale': [float]}``, plus
        ``'low'`` (each column's minimum) once fitted."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "center": None if self.center is None else [float(v) for v in self.center],
            "scale": None if self.scale is None else [float(v) for v in self.scale],
        }
        if self.low is not None:  # NaN (an all-missing column) is written as null
            out["low"] = [float(v) if np.isfinite(v) else None for v in self.low]
        return out

    @classmethod
    def from_dict(cls, state: dict[str, Any], where: str = "scaler metadata") -> Scaler:
        """Rebuild a scaler from :meth:`to_dict` output (as read from model metadata).

        Args:
            state: the stored dict.
            where: what to name in messages (the file and key).

        Raises:
            CheckpointError: missing keys, unknown kind, mismatched or non-finite values, or
                values beyond :data:`MAX_MAGNITUDE`.
        """
        if not isinstance(state, dict) or not {"kind", "center", "scale"} <= set(state):
            raise CheckpointError(
                f"{where} must hold 'kind', 'center' and 'scale'; the file is damaged"
            )
        if state["kind"] not in KINDS:
            raise CheckpointError(f"{where} has unknown kind {state['kind']!r}")
        scaler = cls(state["kind"])
        center, scale = state["center"], state["scale"]
        if center is None and scale is None:
            return scaler
        try:
            c = np.asarray(center, dtype=np.float64).reshape(-1)
            s = np.asarray(scale, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError, OverflowError) as err:
            raise CheckpointError(f"{where} holds non-numeric values: {err}") from err
        if (
            c.shape != s.shape
            or not (np.isfinite(c).all() and np.isfinite(s).all())
            or (s <= 0).any()
        ):
            raise CheckpointError(
                f"{where} is inconsistent: center and scale need the same length, "
                "finite values and scale > 0"
            )
        if (np.abs(c) > MAX_MAGNITUDE).any() or (s > MAX_MAGNITUDE).any():
            key = "center" if (np.abs(c) > MAX_MAGNITUDE).any() else "scale"
            worst = float(np.max(np.abs(c) if key == "center" else s))
            raise CheckpointError(
                f"{where}.{key} holds {worst:.3g}, beyond the {MAX_MAGNITUDE:.0e} that "
                "elman writes; the file was edited or damaged; use an intact copy"
            )
        scaler.center, scaler.scale = c, s
        low = state.get("low")
        if low is not None:
            try:
                lo = np.asarray([np.nan if v is None else v for v in low], dtype=np.float64)
            except (TypeError, ValueError, OverflowError) as err:
                raise CheckpointError(f"{where}.low holds non-numeric values: {err}") from err
            if lo.shape != c.shape or np.isinf(lo).any():
                raise CheckpointError(
                    f"{where}.low needs one finite value per column; the file was edited or "
                    "damaged; use an intact copy"
                )
            scaler.low = lo
        return scaler


BLOCK_ROWS = 1 << 16  # rows per float64 block: a long series needs no temporary of its size


def _blocks(data: np.ndarray) -> Iterator[np.ndarray]:
    """``data`` in float64 row blocks of at most ``BLOCK_ROWS`` rows."""
    for lo in range(0, len(data), BLOCK_ROWS):
        yield np.asarray(data[lo : lo + BLOCK_ROWS], dtype=np.float64)


def _reduce(data: np.ndarray, per_block: Any, combine: Any) -> np.ndarray:
    """A NaN-ignoring column reduction (``nanmax``, ``nanmin``) done block by block."""
    out = None
    for block in _blocks(data):
        part = per_block(block, axis=0)
        out = part if out is None else combine(out, part)
    assert out is not None
    return out


def _mean_std(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation ignoring NaN, in row blocks.

    Neither underflows nor overflows: the values are divided by their largest magnitude
    before they are summed, and the deviations by theirs before they are squared, so values
    near 1e-200 (whose squares underflow to 0, which would make them look constant) and
    near 1e154 (whose squares overflow) get their true spread.
    """
    if len(data) <= BLOCK_ROWS:  # one block: the direct formulas
        whole = np.asarray(data, dtype=np.float64)
        center = np.nanmean(whole, axis=0)
        dev = whole - center
        peak = _unit(np.nanmax(np.abs(dev), axis=0))
        return center, np.nanstd(dev / peak, axis=0) * peak
    width = data.shape[1]
    count = np.zeros(width)
    for block in _blocks(data):
        count += np.sum(~np.isnan(block), axis=0)
    top = _unit(_reduce(data, lambda b, axis: np.nanmax(np.abs(b), axis=axis), np.fmax))
    total = np.zeros(width)
    for block in _blocks(data):
        total += np.nansum(block / top, axis=0)
    center = total / count * top  # NaN for an all-NaN column: refused by the caller
    peak = _unit(_reduce(data, lambda b, axis: np.nanmax(np.abs(b - center), axis=axis), np.fmax))
    squares = np.zeros(width)
    for block in _blocks(data):
        squares += np.nansum(((block - center) / peak) ** 2, axis=0)
    return center, np.sqrt(squares / count) * peak


def _unit(peak: np.ndarray) -> np.ndarray:
    """A divisor from a column's largest magnitude: 1 where that is 0, NaN or infinite."""
    return np.where(np.isfinite(peak) & (peak > 0), peak, 1.0)
