"""--nonnegative: forecasts of a target that was never negative in training stay >= 0."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from elman import Forecaster
from elman.config import Config
from elman.data.scaling import Scaler
from elman.errors import CheckpointError, ConfigError
from elman.files import META
from elman.forecasting.intervals import parse_levels

TINY = {"horizon": 10, "epochs": 5, "seed": 0, "progress": False, "threads": 1}


def _plunge(n: int = 200) -> np.ndarray:
    """A positive series that falls to near zero: a network's forecast dips below it."""
    t = np.arange(n)
    return np.maximum(0.0, 50 - 0.3 * t) + 2 * np.sin(t / 3) ** 2


@pytest.fixture(scope="module")
def pair():
    y = _plunge()
    raw = Forecaster("lstm", ensemble="none", nonnegative="off", **TINY).fit(y)
    floored = Forecaster("lstm", ensemble="none", **TINY).fit(y)  # the default: auto
    return y, raw, floored


def test_a_never_negative_target_is_floored_at_zero_and_nothing_else_changes(pair):
    y, raw, floored = pair
    off, on = raw.predict(intervals=80), floored.predict(intervals=80)
    assert (off["y"] < 0).any()  # the case the option is for
    np.testing.assert_array_equal(on["y"], np.maximum(off["y"], 0.0))  # same network
    assert (on.to_numpy() >= 0).all()  # point forecasts and both bounds
    cut = np.array([[150, 170, 190]])  # backtest cutoffs alike
    np.testing.assert_array_equal(
        floored.predictor.forecast_at_cutoffs(floored.series, cut),
        np.maximum(raw.predictor.forecast_at_cutoffs(raw.series, cut), 0.0),
    )


def test_a_target_that_went_negative_is_not_floored(pair):
    y, raw, _ = pair
    shifted = y - 1.0  # now below zero in places
    a = Forecaster("lstm", ensemble="none", nonnegative="off", **TINY).fit(shifted).predict()
    b = Forecaster("lstm", ensemble="none", **TINY).fit(shifted).predict()
    assert (b["y"] < 0).any()
    pd.testing.assert_frame_equal(a, b)


def test_the_floor_survives_save_and_load_and_an_older_model_floors_nothing(pair, tmp_path):
    _, raw, floored = pair
    floored.save(tmp_path / "m")
    pd.testing.assert_frame_equal(Forecaster.load(tmp_path / "m").predict(), floored.predict())
    meta = json.loads((tmp_path / "m" / META).read_text())
    (scaler,) = meta["scalers"].values()
    assert scaler["low"] == [pytest.approx(float(_plunge()[:190].min()))]  # the training part
    old = Scaler.from_dict({k: v for k, v in scaler.items() if k != "low"})
    assert old.low is None and old.never_negative() is None


def test_an_ensemble_forecast_is_floored_too():
    y = _plunge()
    f = Forecaster("lstm", **TINY).fit(y)  # the default ensemble
    assert f.ensemble is not None and (f.predict(intervals=80).to_numpy() >= 0).all()


def test_the_option_and_a_damaged_minimum_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="nonnegative"):
        Config().replace(nonnegative="on")
    with pytest.raises(CheckpointError, match=r"\.low needs one finite value per column"):
        Scaler.from_dict({"kind": "standard", "center": [1.0], "scale": [1.0], "low": [1, 2]})
    with pytest.raises(CheckpointError, match=r"\.low holds non-numeric"):
        Scaler.from_dict({"kind": "standard", "center": [1.0], "scale": [1.0], "low": ["x"]})


def test_one_interval_level_may_be_a_number():
    assert parse_levels(80) == (80,) and parse_levels([95, 80]) == (80, 95)
    with pytest.raises(ConfigError, match="is not a percentage"):
        parse_levels(object())


def test_the_onnx_graph_floors_as_the_model_does(pair, tmp_path):
    from elman.export.check import sequence_parity

    _, raw, floored = pair
    (path,) = floored.export_onnx(tmp_path / "m.onnx", step=False)  # checked against predict
    assert sequence_parity(floored, path, 10) < 1e-5
    (plain,) = raw.export_onnx(tmp_path / "raw.onnx", step=False)  # off: the graph does not floor
    assert sequence_parity(raw, plain, 10) < 1e-5
    assert sequence_parity(floored, plain, 10) > 1e-3  # the two graphs differ where y < 0
