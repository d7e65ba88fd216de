"""Reading and scaling a long series: one float64 copy of the data, no time-grid temporaries."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch

from elman.data.io import read_series
from elman.data.prepare import scaled_tensor
from elman.data.scaling import Scaler
from elman.errors import DataError


def _traced_peak(fn):
    """Result of ``fn()`` and the peak of memory traced while it ran (numpy's included)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


@pytest.mark.parametrize("shape", [(2_000_000,), (1_000_000, 2)])
def test_reading_a_large_array_makes_one_float64_copy(shape):
    y = np.random.default_rng(0).standard_normal(shape)
    target = ["y0", "y1"] if len(shape) == 2 else None
    (s,), peak = _traced_peak(lambda: read_series(y, target=target))
    # the series' own copy plus a few boolean masks; before, the time grid and the
    # per-group gathers cost about seven times the data
    assert peak < 1.5 * y.nbytes
    assert not np.shares_memory(s.values, y)
    np.testing.assert_array_equal(s.values, y.reshape(len(y), -1))
    assert isinstance(s.index, pd.RangeIndex) and len(s.index) == len(y)


def test_reading_a_large_frame_without_time_column_makes_one_copy():
    frame = pd.DataFrame({"y": np.random.default_rng(1).standard_normal(1_000_000)})
    (s,), peak = _traced_peak(lambda: read_series(frame))
    assert peak < 1.5 * frame["y"].to_numpy().nbytes
    assert not np.shares_memory(s.values, frame["y"].to_numpy())


def test_the_series_owns_its_values_after_the_array_changes():
    y = np.arange(10.0)
    s = read_series(y)[0]
    y[:] = -1.0
    np.testing.assert_array_equal(s.values[:, 0], np.arange(10.0))


def test_array_errors_still_name_the_row():
    y = np.ones(50)
    y[7] = np.nan
    with pytest.raises(DataError, match="row 9"):
        read_series(y)
    y[7] = np.inf
    with pytest.raises(DataError, match="row 9"):
        read_series(y)


def test_stamped_rows_without_holes_are_used_as_they_are():
    t = pd.date_range("2024-01-01", periods=500, freq="h")
    frame = pd.DataFrame({"time": t, "y": np.sin(np.arange(500.0))})
    s = read_series(frame, time_col="time")[0]
    assert s.freq == "h" and len(s) == 500
    np.testing.assert_array_equal(s.values[:, 0], frame["y"].to_numpy())
    holes = frame.drop(index=[3, 4])
    filled = read_series(holes, time_col="time", missing="interpolate")[0]
    assert len(filled) == 500 and np.isfinite(filled.values).all()


def test_scaling_in_blocks_equals_scaling_whole(monkeypatch):
    rng = np.random.default_rng(2)
    s = read_series(rng.standard_normal((1000, 3)) * 5 + 2, target=["y0", "y1", "y2"])[0]
    sc = Scaler("standard").fit(s.values)
    want = torch.from_numpy(np.asarray(sc.transform(s.values)).astype(np.float32))
    monkeypatch.setattr("elman.data.prepare.SCALE_ROWS", 7)
    got = scaled_tensor(s, sc)
    assert got.dtype == torch.float32
    assert torch.equal(got, want)


def test_a_far_outlier_in_a_later_block_is_reported_at_its_row(monkeypatch):
    y = np.random.default_rng(3).standard_normal(100)
    y[90] = 1e30
    s = read_series(y)[0]
    sc = Scaler("standard").fit(s.values[:50])
    monkeypatch.setattr("elman.data.prepare.SCALE_ROWS", 16)
    with pytest.raises(DataError, match=r"value 1e\+30 .* row 92"):
        scaled_tensor(s, sc)
