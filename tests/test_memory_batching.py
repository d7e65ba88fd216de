"""Training draws and no-gradient passes that stay small on long series (elman.data.windows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import elman.forecasting.predictor as predictor_mod
import elman.training.fit as fit_mod
from elman.data.windows import (
    SHUFFLE_SALT,
    Layout,
    Panel,
    WindowRanges,
    epoch_batches,
    epoch_picks,
    windows_per_pass,
)
from elman.forecaster import Forecaster
from elman.forecasting.predictor import forecast_at_cutoffs

TINY = {"hidden_size": 4, "batch_size": 16, "progress": False, "threads": 1}


def _sine(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * np.arange(n) / 24) + 0.1 * rng.standard_normal(n)


def _brute_starts(lengths: list[int], lookback: int, horizon: int, lo, hi) -> np.ndarray:
    """Every window start, by enumeration: targets in [lo_i, hi_i), inputs inside series i."""
    out, offset = [], 0
    for n, a, b in zip(lengths, lo, hi, strict=True):
        out += [offset + s for s in range(n) if a <= s + lookback and s + lookback + horizon <= b]
        offset += n
    return np.asarray(out, dtype=np.int64)


def _panel(lengths: list[int]) -> Panel:
    arrays = [torch.arange(n, dtype=torch.float32).reshape(-1, 1) for n in lengths]
    return Panel(arrays, Layout(1))


# ----------------------------------------------------------------------------- window ranges


@pytest.mark.parametrize(
    ("lengths", "lo", "hi"),
    [([500], [0], [480]), ([60, 7, 90], [0, 0, 0], [50, 7, 90]), ([80, 90], [40, 10], [80, 90])],
)
def test_window_ranges_hold_the_panels_starts_in_order(lengths, lo, hi):
    panel = _panel(lengths)
    want = _brute_starts(lengths, 12, 4, lo, hi)
    np.testing.assert_array_equal(panel.starts(12, 4, lo, hi), want)
    ranges = WindowRanges.of(panel.offsets, 12, 4, lo, hi)
    assert len(ranges) == len(want)
    assert torch.equal(ranges.all_starts(), torch.from_numpy(want))
    picks = torch.randperm(len(want), generator=torch.Generator().manual_seed(0))
    assert torch.equal(ranges.starts(picks.clone()), torch.from_numpy(want)[picks])


def test_without_max_batches_every_window_comes_once_in_the_old_order():
    panel = _panel([300, 200])
    starts = torch.from_numpy(_brute_starts([300, 200], 24, 6, [0, 0], [300, 200]))
    ranges = WindowRanges.of(panel.offsets, 24, 6, [0, 0], [300, 200])
    for epoch in range(3):
        got = epoch_batches(ranges, 32, None, seed=5, epoch=epoch)
        gen = torch.Generator().manual_seed(5 * SHUFFLE_SALT + epoch)
        want = list(starts[torch.randperm(len(starts), generator=gen)].split(32))
        assert len(got) == len(want)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_max_batches_covering_every_window_keeps_the_permutation():
    ranges = WindowRanges.of([0, 200], 10, 2, [0], [200])  # 189 windows
    full = epoch_batches(ranges, 16, None, seed=1, epoch=2)
    capped = epoch_batches(ranges, 16, 12, seed=1, epoch=2)  # 12 x 16 = 192 >= 189
    assert all(torch.equal(a, b) for a, b in zip(full, capped, strict=True))


def test_max_batches_draws_exactly_max_batches_times_batch_size_distinct_windows():
    n = 5_000_000
    ranges = WindowRanges.of([0, n], 168, 24, [0], [n])
    batches = epoch_batches(ranges, 64, 50, seed=0, epoch=0)
    assert [len(b) for b in batches] == [64] * 50
    drawn = torch.cat(batches)
    assert drawn.dtype == torch.int64
    assert len(torch.unique(drawn)) == 50 * 64  # without replacement
    assert int(drawn.min()) >= 0 and int(drawn.max()) <= n - 168 - 24


def test_epoch_draws_depend_only_on_seed_and_epoch():
    ranges = WindowRanges.of([0, 40_000, 90_000], 24, 6, [0, 0], [40_000, 50_000])
    a = epoch_batches(ranges, 32, 10, seed=3, epoch=4)
    b = epoch_batches(ranges, 32, 10, seed=3, epoch=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(torch.cat(a), torch.cat(epoch_batches(ranges, 32, 10, 3, 5)))
    assert not torch.equal(torch.cat(a), torch.cat(epoch_batches(ranges, 32, 10, 4, 4)))
    valid = set(ranges.all_starts().tolist())
    assert set(torch.cat(a).tolist()) <= valid


def test_epoch_picks_take_all_or_a_draw():
    assert sorted(epoch_picks(10, 10, 0, 0).tolist()) == list(range(10))
    assert sorted(epoch_picks(10, 99, 0, 0).tolist()) == list(range(10))
    draw = epoch_picks(10**8, 100, 0, 0)
    assert len(draw) == 100 and len(set(draw.tolist())) == 100


def test_fit_with_max_batches_trains_on_that_many_windows_per_epoch(monkeypatch):
    seen: list[int] = []
    real = fit_mod.epoch_batches

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(sum(len(b) for b in out))
        return out

    monkeypatch.setattr(fit_mod, "epoch_batches", spy)
    opts = dict(horizon=4, lookback=16, epochs=2, max_batches=3, val_size=40, **TINY)
    f = Forecaster("gru", **opts).fit(_sine(3000))
    assert seen == [3 * 16, 3 * 16]
    g = Forecaster("gru", **opts).fit(_sine(3000))
    assert f.model is not None and g.model is not None
    for (k, v), w in zip(f.model.state_dict().items(), g.model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


# ----------------------------------------------------------------------------- bounded passes


def test_windows_per_pass_bounds_elements():
    assert windows_per_pass(168, 64) * 168 * 64 <= 2**22
    assert windows_per_pass(168, 64, cap=256) == 256
    assert windows_per_pass(10**6, 10**6) == 1


def test_validation_and_calibration_passes_are_chunked_with_the_same_results(monkeypatch):
    opts = dict(horizon=4, lookback=16, epochs=2, val_size=60, patience=5, seed=1, ensemble="none",
                **TINY)  # fmt: skip  (the network's own calibration passes)
    y = _sine(400)
    whole = Forecaster("lstm", **opts).fit(y)
    per_window = 20 * 4  # (lookback + horizon) x hidden units
    monkeypatch.setattr("elman.data.windows.MAX_PASS_ELEMENTS", 5 * per_window)
    sizes: list[int] = []
    real_build = fit_mod.build_network

    def build(*args):
        model = real_build(*args)
        model.register_forward_hook(
            lambda mod, inputs, out: None if mod.training else sizes.append(len(inputs[0]))
        )
        return model

    monkeypatch.setattr(fit_mod, "build_network", build)
    chunked = Forecaster("lstm", **opts).fit(y)
    assert sizes and max(sizes) == 5
    # 57 validation windows per epoch and 57 calibration windows, 5 at a time
    assert sum(sizes) == 3 * 57
    assert whole.train_state is not None and chunked.train_state is not None
    for a, b in zip(whole.train_state.history, chunked.train_state.history, strict=True):
        assert a.train_loss == b.train_loss
        assert b.val_loss == pytest.approx(a.val_loss, rel=1e-5)
    assert whole.calibration is not None and chunked.calibration is not None
    assert whole.calibration.windows == chunked.calibration.windows == 57
    for level, q in whole.calibration.quantiles.items():
        np.testing.assert_allclose(chunked.calibration.quantiles[level], q, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_cutoff_forecasts_in_chunks_equal_one_pass(monkeypatch, strategy):
    f = Forecaster("gru", horizon=3, lookback=12, strategy=strategy, epochs=1, **TINY)
    f.fit(_sine(300))
    cut = np.arange(100, 297, 3)[None]
    whole = forecast_at_cutoffs(f.predictor, f.series, cut)
    monkeypatch.setattr("elman.data.windows.MAX_PASS_ELEMENTS", 15 * 4 * 7)  # 7 windows a pass
    np.testing.assert_allclose(
        forecast_at_cutoffs(f.predictor, f.series, cut), whole, rtol=1e-5, atol=1e-6
    )


def test_cutoff_forecasts_scale_only_the_rows_their_windows_read(monkeypatch):
    f = Forecaster("gru", horizon=3, lookback=12, epochs=1, **TINY).fit(_sine(2000))
    rows: list[int] = []
    real = predictor_mod.build_panel

    def spy(series, scalers, pads=None):
        rows.extend(len(s) for s in series)
        return real(series, scalers, pads)

    monkeypatch.setattr(predictor_mod, "build_panel", spy)
    forecast_at_cutoffs(f.predictor, f.series, np.array([[1900, 1950, 1997]]))
    assert rows == [2000 - (1900 - 12)]
