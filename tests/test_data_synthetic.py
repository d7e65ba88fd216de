"""Synthetic generators: exact seed data, determinism, shapes and sanity of the dynamics."""

from __future__ import annotations

import numpy as np
import pytest

from elman.data import drifting_sine, mackey_glass, many_series, noisy_sine, seed_sine, sine
from elman.errors import ConfigError


def test_seed_sine_is_exact() -> None:
    np.testing.assert_array_equal(seed_sine(), np.sin(np.linspace(2, 10, 21)))


def test_sine_period() -> None:
    wave = sine(200, period=20.0)
    assert wave.dtype == np.float64 and wave.shape == (200,)
    np.testing.assert_allclose(wave[:20], wave[20:40], atol=1e-12)


def test_noisy_sine_is_deterministic_per_seed() -> None:
    np.testing.assert_array_equal(noisy_sine(100, 0.2, seed=3), noisy_sine(100, 0.2, seed=3))
    assert not np.array_equal(noisy_sine(100, 0.2, seed=3), noisy_sine(100, 0.2, seed=4))
    assert np.std(noisy_sine(5000, 0.2) - sine(5000)) == pytest.approx(0.2, rel=0.05)


def test_drifting_sine_speeds_up() -> None:
    wave = drifting_sine(4000, period_start=100.0, period_end=20.0)
    crossings = np.flatnonzero(np.diff(np.sign(wave)) != 0)
    early, late = np.diff(crossings[:5]).mean(), np.diff(crossings[-5:]).mean()
    assert late < early / 3


def test_mackey_glass_range_and_determinism() -> None:
    series = mackey_glass(1000)
    assert series.shape == (1000,) and np.isfinite(series).all()
    assert series.min() > 0.2 and series.max() < 1.5 and series.std() > 0.1
    np.testing.assert_array_equal(series, mackey_glass(1000))
    np.testing.assert_array_equal(mackey_glass(50, seed=1), mackey_glass(50, seed=1))


def test_mackey_glass_subsample() -> None:
    fine = mackey_glass(100, dt=0.1, subsample=10, discard=0)
    assert fine.shape == (100,) and np.isfinite(fine).all()


def test_mackey_glass_rejects_bad_delay() -> None:
    with pytest.raises(ConfigError, match=r"tau \(0.01\) must be at least one step"):
        mackey_glass(10, tau=0.01)


def test_many_series_shape_and_shared_season() -> None:
    frame = many_series(n_series=5, length=48, seed=1)
    assert list(frame.columns) == ["series", "t", "value"]
    assert frame.shape == (5 * 48, 3)
    assert sorted(frame["series"].unique()) == list(frame["series"].unique())
    wide = frame.pivot(index="t", columns="series", values="value").to_numpy()  # [48, 5]
    detrended = wide - wide.mean(axis=0)
    assert np.corrcoef(detrended.T).min() > 0.5  # shared seasonality
    assert frame.equals(many_series(n_series=5, length=48, seed=1))


def test_many_series_reads_as_long_format() -> None:
    from elman.data import read_series

    found = read_series(many_series(3, 30), series_id="series", time_col="t")
    assert [s.series_id for s in found] == ["s000", "s001", "s002"]
    assert all(len(s) == 30 for s in found)
