"""--nonnegative: forecasts of a target that was never negative in training stay >= 0."""

from __future__ import annotations

import dataclasses
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


@pytest.mark.parametrize("step", [False, True], ids=["sequence", "step"])
def test_the_standalone_onnx_script_floors_on_both_graphs(pair, tmp_path, step):
    import subprocess
    import sys
    from pathlib import Path

    _, _, floored = pair
    floored.export_onnx(tmp_path / "m.onnx")
    script = Path(__file__).resolve().parents[1] / "examples" / "onnx_forecast.py"
    cmd = [sys.executable, str(script), str(tmp_path / "m.onnx"), *(["--step"] if step else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = np.array([float(line.split(",")[1]) for line in done.stdout.strip().splitlines()[1:]])
    want = floored.predict()["y"].to_numpy()
    assert (want == 0).any() and (got >= 0).all()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_history_that_went_negative_is_not_floored_though_training_was(pair):
    y, raw, floored = pair
    hist = y - 30.0  # continues below zero: the floor would pin the forecast at 0
    a, b = floored.predict(data=hist), raw.predict(data=hist)
    assert (b["y"] < 0).all()
    pd.testing.assert_frame_equal(a, b)
    cut = np.array([[150, 190]])  # at cutoffs, the history before each one decides
    mask = floored.predictor.floor_mask([floored.series[0].slice(0, 200)], cut)
    assert mask is not None and mask.all()
    shifted = dataclasses.replace(floored.series[0], values=floored.series[0].values.copy())
    shifted.values[160, 0] = -1.0  # negative between the two cutoffs
    mask = floored.predictor.floor_mask([shifted], cut)
    assert mask is not None and mask[0, :, 0].tolist() == [True, False]


def test_backtest_bounds_are_floored_as_its_forecasts():
    f = Forecaster("lstm", ensemble="none", **TINY)
    result = f.backtest(_plunge(), folds=8, intervals=(80,))
    point = result.forecasts["model"]
    lower, upper = result.bounds[80]
    assert (point >= 0).all() and (lower >= 0).all() and (upper >= 0).all()
    assert result.floors is not None and result.floors.all()
    off = Forecaster("lstm", ensemble="none", nonnegative="off", **TINY)
    plain = off.backtest(_plunge(), folds=8, intervals=(80,))
    assert (plain.bounds[80][0] < 0).any()  # what the floor is for
    assert plain.floors is None or not plain.floors.any()
