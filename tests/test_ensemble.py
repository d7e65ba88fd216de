"""Ensemble selection (elman.evaluation.ensemble) against brute force and closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from elman.errors import DataError
from elman.evaluation.ensemble import (
    calibration_windows,
    combine,
    scaled_loss,
    select,
    selection_windows,
)
from elman.evaluation.metrics import mase, mase_scale


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    y = rng.normal(100, 10, size=(6, 4))
    return y, np.ones(6)


def brute_force(forecasts, y, scale, step=20):
    """The lowest loss over every weighting in steps of 1/step (the oracle)."""
    names = list(forecasts)
    best = np.inf
    for counts in itertools.product(range(step + 1), repeat=len(names)):
        if sum(counts) != step:
            continue
        mix = sum(c / step * forecasts[n] for c, n in zip(counts, names, strict=True))
        best = min(best, scaled_loss(mix, y, scale).mean())
    return best


def test_selection_finds_the_known_best_combination(toy):
    y, scale = toy
    members = {"up": y + 1.0, "down": y - 1.0, "near": y + 0.5}
    sel = select(members, y, scale)
    # "near" alone is the best member (loss 0.5); 2/3 near + 1/3 down is exact (loss 0)
    assert sel.best_member == "near" and sel.member_loss == {"up": 1.0, "down": 1.0, "near": 0.5}
    assert sel.weights == pytest.approx({"down": 1 / 3, "near": 2 / 3})
    assert sel.loss == pytest.approx(0.0, abs=1e-12)
    assert sel.loss == pytest.approx(brute_force(members, y, scale), abs=1e-12)
    np.testing.assert_allclose(combine(sel.weights, members), y, atol=1e-9)
    assert sel.trace[0] == pytest.approx(0.5)  # round one: the best single member


def test_selection_is_never_worse_than_the_best_member_and_close_to_brute_force():
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, size=(40, 5))
    members = {f"m{i}": y + rng.normal(i * 0.2, 1.0, size=y.shape) for i in range(3)}
    scale = rng.uniform(0.5, 2.0, size=40)
    sel = select(members, y, scale)
    assert sel.loss <= min(sel.member_loss.values()) + 1e-12
    assert sum(sel.weights.values()) == pytest.approx(1.0)
    oracle = brute_force(members, y, scale)
    assert oracle <= sel.loss <= oracle * 1.02  # greedy is near the best 1/20 grid point


def test_when_mixing_does_not_help_the_best_member_stands_alone(toy):
    y, scale = toy
    members = {"worse": y + 2.0, "best": y + 1.0, "worst": y + 3.0}  # all err the same way
    sel = select(members, y, scale)
    assert sel.weights == {"best": 1.0} and sel.single and sel.loss == pytest.approx(1.0)


def test_weights_are_deterministic_and_ties_go_to_the_first_member(toy):
    y, scale = toy
    members = {"a": y + 1.0, "b": y + 1.0}  # identical: every round is a tie
    assert select(members, y, scale).weights == {"a": 1.0}
    rng = np.random.default_rng(1)
    noisy = {f"m{i}": y + rng.normal(0, 1, y.shape) for i in range(4)}
    assert select(noisy, y, scale) == select(noisy, y, scale)


def test_missing_actuals_are_ignored_and_a_member_with_nan_is_never_picked(toy):
    y, scale = toy
    y = y.copy()
    y[0, :2] = np.nan
    broken = y + 0.1
    broken[3, 1] = np.nan  # a hole where an actual value exists
    sel = select({"broken": broken, "fine": y + 1.0}, y, scale)
    assert sel.weights == {"fine": 1.0} and sel.member_loss["broken"] == np.inf
    np.testing.assert_allclose(scaled_loss(y + 1.0, y, scale), 1.0)


def test_scaled_loss_with_the_mase_scale_is_mase():
    rng = np.random.default_rng(2)
    history, actual = rng.normal(50, 5, 60), rng.normal(50, 5, 8)
    forecast = actual + rng.normal(0, 2, 8)
    got = scaled_loss(forecast[None], actual[None], [mase_scale(history, 12)])[0]
    assert got == pytest.approx(mase(actual, forecast, history, 12))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (({}, np.zeros((2, 3)), np.ones(2)), "at least one member"),
        (({"a": np.zeros((2, 4))}, np.zeros((2, 3)), np.ones(2)), "must both be [N, H]"),
        (({"a": np.zeros((2, 3))}, np.zeros((2, 3)), [1.0, 0.0]), "positive finite"),
        (({"a": np.zeros((2, 3))}, np.full((2, 3), np.nan), np.ones(2)), "no validation row"),
        (({"a": np.full((2, 3), np.inf)}, np.zeros((2, 3)), np.ones(2)), "non-finite"),
    ],
)
def test_bad_input_is_refused_in_one_line(args, words):
    with pytest.raises(DataError, match=words.replace("[", r"\[").replace("]", r"\]")):
        select(*args)


def test_combine_needs_every_weighted_member():
    with pytest.raises(DataError, match="member"):
        combine({"a": 0.5, "b": 0.5}, {"a": np.zeros(3)})


def _series(n: int):
    from elman.data.series import Series

    return Series(values=np.arange(n, dtype=float)[:, None], index=pd.RangeIndex(n), targets=["y"])


@pytest.mark.parametrize(
    ("lengths", "ends", "sel", "cal"),
    [
        ([200], [120], 10, 75),  # one series: up to 10 to weigh, every window to calibrate
        ([200] * 30, [120] * 30, 2, 4),  # 30 series: 60 and 100 pairs (rounded up)
        ([200] * 400, [190] * 400, 1, 1),  # a large panel: the last window only
        ([300] * 3, [150] * 3, 10, 40),  # 34 spaced, and 6 of the selection not among them
    ],
)
def test_calibration_windows_hold_the_selection_windows_and_more(lengths, ends, sel, cal):
    series = [_series(n) for n in lengths]
    s = selection_windows(series, ends, 6, 24)
    c = calibration_windows(series, ends, 6, 24)
    assert s.shape == (len(lengths), sel) and c.shape == (len(lengths), cal)
    assert all(set(a) <= set(b) for a, b in zip(s, c, strict=True))
    assert (c[:, -1] == np.array(lengths) - 6).all()  # always the last window
    assert (c >= np.array(ends)[:, None]).all()  # inside the validation part


def test_validation_windows_reuse_the_form_chosen_before_the_first_of_them(monkeypatch):
    from elman.data.series import Series
    from elman.evaluation import statistical
    from elman.evaluation.ensemble import member_at_cutoffs

    monkeypatch.setattr(statistical, "_FITTED", {})
    rng = np.random.default_rng(2)
    t = np.arange(160.0)
    values = np.stack([60 + 0.2 * t + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 160),
                       np.cumsum(rng.normal(0.5, 1, 160)) + 40], axis=1)  # fmt: skip
    series = [Series(values=values, index=pd.RangeIndex(160), targets=["a", "b"])]
    cut = np.array([[130, 137, 144, 148]])
    for name in ("ets", "theta"):
        got = member_at_cutoffs(name, series, cut, 6, 12, form_at=np.array([120]))
        form_a = statistical.chosen_form(name, values[:120, 0], 6, 12)
        for c in range(2):
            form = statistical.chosen_form(name, values[:120, c], 6, 12)  # before form_at only
            for j, k in enumerate(cut[0]):
                want = statistical.forecast_column(name, values[:k, c], 6, 12, form)
                np.testing.assert_array_equal(got[0, j, :, c], want)
        free = member_at_cutoffs(name, series, cut, 6, 12)  # each cutoff chooses its own form
        for j, k in enumerate(cut[0]):
            np.testing.assert_array_equal(
                free[0, j, :, 0], statistical.forecast_column(name, values[:k, 0], 6, 12)
            )
        if name == "ets":  # at 148 the automatic fit chooses AAAN, the form from 120 is MAAN
            assert statistical.chosen_form(name, values[:148, 0], 6, 12) != form_a
            assert not np.array_equal(got[0, 3, :, 0], free[0, 3, :, 0])
    anchored = member_at_cutoffs("ets", series, cut, 6, 12, form_at=cut[:, 0])
    np.testing.assert_array_equal(  # the first window's own fit chooses: the automatic forecast
        anchored[0, 0, :, 1], statistical.forecast_column("ets", values[:130, 1], 6, 12)
    )
