"""Windows and splits: alignment, no leakage, no materialised windows, stateful chunks."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from elman.data import (
    WindowDataset,
    chunks,
    lanes,
    make_split,
    n_chunks,
    split_points,
    target_starts,
    window_view,
)
from elman.errors import ConfigError


def row_coded(n: int) -> np.ndarray:
    """[n, 3]: column 0 = t (target), 1 = t + 1000 (past covariate), 2 = t + 2000 (future)."""
    t = np.arange(n, dtype=np.float64)
    return np.column_stack([t, t + 1000, t + 2000])


# ---------------------------------------------------------------- splits


def test_split_points() -> None:
    assert split_points(100, 0.2, 10) == (72, 90)
    assert split_points(100, 0.0, 0) == (100, 100)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((100, 1.0, 0), r"val_frac must be in \[0, 1\), got 1.0"),
        ((100, 0.2, 100), r"test_size must be in \[0, 100\)"),
        ((100, -0.1, 0), "val_frac must be in"),
        ((3, 0.9, 2), "no training points left"),
    ],
)
def test_split_points_errors(args: tuple, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        split_points(*args)


def test_make_split_needs_one_training_window() -> None:
    with pytest.raises(
        ConfigError,
        match=r"training part has 8 points, but lookback 6 \+ "
        r"horizon 3 needs at least 9",
    ):
        make_split(10, 6, 3, val_frac=0.2)


@pytest.mark.parametrize(("lookback", "horizon"), [(1, 1), (5, 1), (8, 3), (12, 12)])
def test_no_leakage_across_split(lookback: int, horizon: int) -> None:
    n = 200
    split = make_split(n, lookback, horizon, val_frac=0.2, test_size=30)
    data = row_coded(n)
    parts = {}
    for name in ("train", "val", "test"):
        ds = WindowDataset(
            data, lookback, horizon, n_targets=1, n_future=1, starts=getattr(split, name)
        )
        x, y = ds.get_batch(np.arange(len(ds)))
        touched = torch.cat(
            [
                x[..., 0].reshape(-1),
                (x[..., 1] - 1000).reshape(-1),
                (x[..., 2] - 2000).reshape(-1),
                y.reshape(-1),
            ]
        ).numpy()
        parts[name] = (touched, y.numpy())
    train_rows, _ = parts["train"]
    assert train_rows.max() < split.train_end
    _, val_targets = parts["val"]
    assert val_targets.min() >= split.train_end and val_targets.max() < split.val_end
    _, test_targets = parts["test"]
    assert test_targets.min() >= split.val_end and test_targets.max() < n
    # every row of the validation part is a target of some validation window
    assert set(np.unique(val_targets)) == set(range(split.train_end, split.val_end))


def test_target_starts_bounds() -> None:
    assert target_starts(0, 10, 3, 2) == range(0, 6)
    assert target_starts(10, 20, 3, 2) == range(7, 16)
    assert len(target_starts(0, 4, 3, 2)) == 0


# ---------------------------------------------------------------- windows


def test_window_alignment_with_future_covariates() -> None:
    ds = WindowDataset(row_coded(50), lookback=4, horizon=2, n_targets=1, n_future=1)
    x, y = ds[10]
    assert x.shape == (4, 3) and y.shape == (2, 1)
    torch.testing.assert_close(x[:, 0], torch.tensor([10.0, 11, 12, 13]))
    torch.testing.assert_close(x[:, 1], torch.tensor([1010.0, 1011, 1012, 1013]))
    torch.testing.assert_close(x[:, 2], torch.tensor([2011.0, 2012, 2013, 2014]))  # t + 1
    torch.testing.assert_close(y[:, 0], torch.tensor([14.0, 15]))


def test_window_count_and_sizes() -> None:
    ds = WindowDataset(row_coded(50), lookback=4, horizon=2, n_targets=2)
    assert len(ds) == 50 - 4 - 2 + 1
    assert (ds.input_size, ds.output_size) == (3, 2)
    x, y = ds.get_batch([0, 5, 44])
    assert x.shape == (3, 4, 3) and y.shape == (3, 2, 2) and x.dtype == torch.float32


def test_many_series_share_one_index() -> None:
    arrays = [row_coded(10), row_coded(30) + 100, row_coded(5)]
    ds = WindowDataset(arrays, lookback=3, horizon=2)
    assert len(ds) == 6 + 26 + 1
    series, start = ds.locate([0, 5, 6, 31, 32])
    assert series.tolist() == [0, 0, 1, 1, 2]
    assert start.tolist() == [0, 5, 0, 25, 0]
    x, y = ds.get_batch([5, 6, 32])
    assert x[:, 0, 0].tolist() == [5.0, 100.0, 0.0]
    assert y[:, 0, 0].tolist() == [8.0, 103.0, 3.0]


def test_strided_starts() -> None:
    ds = WindowDataset(row_coded(40), 4, 1, starts=range(0, 36, 5))
    assert len(ds) == 8
    assert ds.locate([7])[1].tolist() == [35]


def test_starts_out_of_bounds() -> None:
    with pytest.raises(ConfigError, match="do not fit its 20 rows"):
        WindowDataset(row_coded(20), 5, 2, starts=range(0, 15))


def test_bad_column_counts() -> None:
    with pytest.raises(ConfigError, match=r"n_targets \(1\) and n_future \(3\) do not fit 3"):
        WindowDataset(row_coded(20), 5, 2, n_future=3)


def test_batches_cover_every_window_once_and_shuffle_reproducibly() -> None:
    ds = WindowDataset(row_coded(60), 5, 1)
    seen = torch.cat(
        [
            x[:, 0, 0]
            for x, _ in ds.batches(7, shuffle=True, generator=torch.Generator().manual_seed(0))
        ]
    )
    assert sorted(seen.tolist()) == list(range(len(ds)))
    again = torch.cat(
        [
            x[:, 0, 0]
            for x, _ in ds.batches(7, shuffle=True, generator=torch.Generator().manual_seed(0))
        ]
    )
    assert torch.equal(seen, again)
    rng_order = [x[:, 0, 0] for x, _ in ds.batches(7, True, np.random.default_rng(1), True)]
    assert all(len(b) == 7 for b in rng_order)


def test_window_view_shares_memory() -> None:
    data = np.random.default_rng(0).standard_normal((1000, 2))
    view = window_view(data, 30)
    assert view.shape == (971, 2, 30)
    assert np.shares_memory(view, data)


def test_windows_of_a_long_series_are_not_materialised() -> None:
    data = np.sin(np.arange(2_000_000, dtype=np.float64)).reshape(-1, 1)  # 16 MB
    lookback, horizon = 64, 8
    tracemalloc.start()
    ds = WindowDataset(data, lookback, horizon)
    x, _ = ds.get_batch(np.arange(0, len(ds), len(ds) // 256))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(ds) == 2_000_000 - 72 + 1 and x.shape[1:] == (64, 1)
    assert peak < 2_000_000  # a materialised stride-1 windowing would need ~1.1 GB


# ---------------------------------------------------------------- stateful chunks


def test_lanes_are_views() -> None:
    data = row_coded(14)
    cut = lanes(data, 3)
    assert cut.shape == (3, 4, 3) and np.shares_memory(cut, data)
    assert cut[:, 0, 0].tolist() == [0.0, 4.0, 8.0]


def test_chunks_walk_forward_through_lanes() -> None:
    data = row_coded(14)
    got = list(chunks(data, n_lanes=3, chunk_len=2, n_future=1))
    assert len(got) == n_chunks(14, 3, 2) == 2
    (x0, y0), (x1, y1) = got
    assert x0.shape == (3, 2, 3) and x1.shape == (3, 1, 3)
    assert x0[:, :, 0].tolist() == [[0, 1], [4, 5], [8, 9]]
    assert y0[:, :, 0].tolist() == [[1, 2], [5, 6], [9, 10]]
    assert x1[:, :, 0].tolist() == [[2], [6], [10]] and y1[:, :, 0].tolist() == [[3], [7], [11]]
    assert x0[:, :, 2].tolist() == [[2001, 2002], [2005, 2006], [2009, 2010]]


def test_chunks_need_two_points_per_lane() -> None:
    with pytest.raises(ConfigError, match="cannot fill 8 lanes of at least 2 points"):
        list(chunks(row_coded(10), n_lanes=8, chunk_len=4))
