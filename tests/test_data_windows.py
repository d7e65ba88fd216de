"""Windows as the engine cuts them (forecast.Panel): alignment, series boundaries, memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elman.data.windows import Layout, Panel, gather, make_batch


def coded(n: int, series: int) -> torch.Tensor:
    """[n, 1] rows coded ``1000 * series + t`` so every value names its series and row."""
    return (torch.arange(n, dtype=torch.float32) + 1000 * series).reshape(-1, 1)


@settings(max_examples=100, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 60), min_size=1, max_size=3),
    lookback=st.integers(1, 12),
    horizon=st.integers(1, 6),
    strategy=st.sampled_from(["direct", "recursive"]),
)
def test_windows_stay_inside_one_series_and_targets_follow_inputs(
    lengths: list[int], lookback: int, horizon: int, strategy: str
) -> None:
    panel = Panel([coded(n, k) for k, n in enumerate(lengths)], Layout(1))
    starts = panel.starts(lookback, horizon, [0] * len(lengths), lengths)
    assert len(starts) == sum(max(n - lookback - horizon + 1, 0) for n in lengths)
    if len(starts) == 0:
        return
    b = make_batch(panel, torch.from_numpy(starts), lookback, horizon, strategy, "none")
    series_of = (b.x // 1000).reshape(len(starts), -1)
    assert (series_of == series_of[:, :1]).all()  # no window crosses into the next series
    assert ((b.y // 1000).reshape(len(starts), -1) == series_of[:, :1]).all()
    if strategy == "direct":
        assert b.x.shape == (len(starts), lookback, 1) and b.y.shape == (len(starts), horizon, 1)
        assert (b.y[:, 0, 0] == b.x[:, -1, 0] + 1).all()  # the target is the next row
        assert (b.y.amin(dim=(1, 2)) > b.x.amax(dim=(1, 2))).all()
    else:  # one step ahead at every position
        assert b.x.shape == (len(starts), lookback + horizon - 1, 1)
        assert torch.equal(b.y, b.x + 1)


@pytest.mark.parametrize(("lookback", "horizon"), [(1, 1), (5, 1), (8, 3), (12, 12)])
def test_training_windows_never_touch_the_validation_rows(lookback: int, horizon: int) -> None:
    n, val = 200, 40
    panel = Panel([coded(n, 0)], Layout(1))
    train = panel.starts(lookback, horizon, [0], [n - val])
    valid = panel.starts(lookback, horizon, [n - val], [n])
    for strategy in ("direct", "recursive"):
        b = make_batch(panel, torch.from_numpy(train), lookback, horizon, strategy, "none")
        assert float(b.x.max()) < n - val and float(b.y.max()) < n - val
    v = make_batch(panel, torch.from_numpy(valid), lookback, horizon, "direct", "none")
    # every validation row is the target of some validation window, and nothing else is
    assert set(v.y.reshape(-1).tolist()) == set(map(float, range(n - val, n)))


def test_future_covariates_are_aligned_with_the_step_they_help_predict() -> None:
    t = torch.arange(30, dtype=torch.float32)
    values = torch.stack([t, t + 1000, t + 2000], 1)  # target, past covariate, future covariate
    panel = Panel([values], Layout(1, n_covariates=1, n_future=1))
    b = make_batch(panel, torch.tensor([4]), 5, 2, "direct", "none")
    x = b.x[0]
    assert x[:, 0].tolist() == [4, 5, 6, 7, 8]  # y_t
    assert (x[:, 1] - 1000).tolist() == [4, 5, 6, 7, 8]  # c_t, observed with y_t
    assert (x[:, 2] - 2000).tolist() == [5, 6, 7, 8, 9]  # f_{t+1}, known ahead
    assert b.y[0, :, 0].tolist() == [9, 10]


def test_a_long_series_costs_its_size_not_lookback_times_it() -> None:
    n, lookback, horizon = 2_000_000, 168, 24
    panel = Panel([torch.sin(torch.arange(n, dtype=torch.float32)).reshape(-1, 1)], Layout(1))
    starts = panel.starts(lookback, horizon, [0], [n])
    held = panel.feats.nbytes + panel.targets.nbytes + starts.nbytes
    data = n * 4
    assert len(starts) == n - lookback - horizon + 1
    assert held <= 4 * data  # float32 features + targets + one int64 start per window
    feats, targ = gather(panel, torch.from_numpy(starts[:: len(starts) // 64][:64]), 192)
    assert feats.shape == (64, 192, 1) and targ.shape == (64, 192, 1)  # one batch at a time
    assert held < data * lookback / 20  # a materialised stride-1 windowing: lookback x data


def test_window_starts_out_of_range_are_an_index_error() -> None:
    panel = Panel([coded(10, 0)], Layout(1))
    with pytest.raises(IndexError):
        make_batch(panel, torch.tensor([8]), 4, 2, "direct", "none")
    assert panel.starts(4, 2, [0], [10]).tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(panel.starts(20, 2, [0], [10]), np.zeros(0, dtype=np.int64))
