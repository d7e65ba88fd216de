"""Rolling-origin backtest: batched cutoff forecasts, no leakage, scores, intervals, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from elman.config import DataConfig
from elman.data.prepare import load_series
from elman.data.synthetic import many_series, noisy_sine
from elman.errors import CheckpointError, ConfigError, DataError
from elman.evaluation.backtest import default_cutoffs, parse_refit
from elman.evaluation.baselines import baseline_forecasts
from elman.evaluation.metrics import compute_metrics
from elman.evaluation.scores import MODEL
from elman.forecaster import Forecaster
from elman.forecasting.calibration import Calibration
from elman.forecasting.intervals import conformal_quantiles
from elman.forecasting.predictor import forecast_at_cutoffs, targets_at

TINY = {"hidden_size": 8, "epochs": 2, "batch_size": 32, "progress": False, "threads": 1}


def _noisy(n: int = 400, noise: float = 0.3, seed: int = 0) -> np.ndarray:
    return noisy_sine(n, noise=noise, seed=seed, period=24.0)


# ----------------------------------------------------------------------------- cutoffs


def test_default_cutoffs_end_one_horizon_before_the_end_spaced_by_stride():
    assert default_cutoffs(100, 10, 3).tolist() == [70, 80, 90]
    assert default_cutoffs(100, 10, 4, stride=5).tolist() == [75, 80, 85, 90]


def test_too_many_folds_say_how_many_points_are_needed():
    with pytest.raises(
        DataError, match=r"--folds 20 with --stride 10 .* need more than 200 points"
    ):
        default_cutoffs(100, 10, 20)


@pytest.mark.parametrize(("folds", "stride", "flag"), [(0, None, "--folds"), (3, 0, "--stride")])
def test_non_positive_folds_or_stride_are_refused(folds, stride, flag):
    with pytest.raises(ConfigError, match=flag):
        default_cutoffs(100, 10, folds, stride)


def test_refit_spellings():
    assert parse_refit("never", 7) == 7
    assert parse_refit("every", 7) == 1
    assert parse_refit("3", 7) == 3
    for bad in ("0", "sometimes", "-2"):
        with pytest.raises(ConfigError, match="never, every or a whole number"):
            parse_refit(bad, 7)


# ----------------------------------------------------------------------------- batched forecasts


def _loop_oracle(f: Forecaster, series, cutoffs, h, future_col=None):
    """The obvious per-cutoff loop through forecast_arrays, for comparison."""
    out = np.empty((*cutoffs.shape, h, len(series[0].targets)))
    for i, s in enumerate(series):
        for j, k in enumerate(cutoffs[i]):
            fut = None
            if future_col is not None:
                col = s.columns.index(future_col)
                fut = pd.DataFrame({future_col: s.values[k : k + h, col]})
            out[i, j] = f.forecast_arrays([s.slice(0, int(k))], h, fut)[0]
    return out


@pytest.mark.parametrize(
    ("model", "strategy", "covariates"),
    [
        ("lstm", "direct", {}),
        ("elman", "recursive", {}),
        ("gru", "direct", {"covariates": ["x"], "future_covariates": ["promo"]}),
        ("lstm", "recursive", {"future_covariates": ["promo"]}),
    ],
)
def test_cutoff_forecasts_equal_the_per_cutoff_loop(model, strategy, covariates):
    t = np.arange(300)
    df = pd.DataFrame({"y": _noisy(300), "x": np.cos(t / 5), "promo": (t % 7 == 0) * 1.0})
    cols = ["y", *covariates.get("covariates", []), *covariates.get("future_covariates", [])]
    f = Forecaster(model, horizon=5, lookback=20, strategy=strategy, **covariates, **TINY)
    f.fit(df[cols].iloc[:200])
    series = load_series(df[cols], f.config.data)
    cut = np.array([[20, 150, 201, 290]])
    got = forecast_at_cutoffs(f.predictor, series, cut)
    want = _loop_oracle(f, series, cut, 5, "promo" if "future_covariates" in covariates else None)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_cutoff_forecasts_of_many_series_use_each_series_scaler():
    df = many_series(3, 120)
    f = Forecaster(
        "lstm", horizon=4, lookback=16, series_id="series", target="value", time_col="t", **TINY
    ).fit(df)
    series = f.series
    cut = np.array([[30, 60, 116], [16, 90, 100], [50, 51, 52]])
    np.testing.assert_allclose(
        forecast_at_cutoffs(f.predictor, series, cut),
        _loop_oracle(f, series, cut, 4),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize(("strategy", "calls"), [("direct", 1), ("recursive", 6)])
def test_all_cutoffs_go_through_the_model_in_one_batch(strategy, calls):
    f = Forecaster("lstm", horizon=6, lookback=24, strategy=strategy, **TINY).fit(_noisy(600))
    seen: list[int] = []
    assert f.model is not None
    f.model.register_forward_hook(lambda mod, args, out: seen.append(int(args[0].shape[0])))
    series = load_series(_noisy(600), f.config.data)
    cut = default_cutoffs(600, 6, 100, stride=5)[None]
    out = forecast_at_cutoffs(f.predictor, series, cut)
    assert out.shape == (1, 100, 6, 1)
    # recursive: one pass over the lookback, then one step per remaining horizon step;
    # every call carries all 100 windows at once
    assert seen == [100] * calls


def test_cutoff_without_a_full_lookback_is_a_clear_error():
    f = Forecaster("lstm", horizon=3, lookback=20, **TINY).fit(_noisy(200))
    with pytest.raises(DataError, match="cutoff 10 of .* fewer than the lookback \\(20\\)"):
        forecast_at_cutoffs(f.predictor, f.series, np.array([[10, 50]]))


# ----------------------------------------------------------------------------- backtest


@pytest.fixture(scope="module")
def never():
    """One refit-never backtest shared by the scoring tests."""
    y = _noisy(500, noise=0.2)
    f = Forecaster("lstm", horizon=6, lookback=24, **TINY)
    result = f.backtest(y, folds=12, stride=4, intervals=(80,))
    return f, y, result


def test_refit_never_trains_once_on_data_before_the_first_cutoff(never):
    f, y, result = never
    first = 500 - 6 - 4 * 11
    assert result.cutoffs.tolist() == [list(range(first, 495, 4))]
    assert (result.fits, result.passes) == (1, 1)
    # scaled by (so trained on) points before the cutoff's validation part only
    assert f.sizes is not None
    scaler = f.scaler_for(f.series[0])
    assert scaler.center[0] == pytest.approx(y[: first - f.sizes.val_size].mean())
    assert len(f.series[0]) == 500  # predict() continues after the end of the data


def test_refit_never_fold_zero_ignores_everything_after_the_first_cutoff(never):
    _, y, result = never
    changed = y.copy()
    first = int(result.cutoffs[0, 0])
    changed[first:] += 100.0  # a different future must not change the first fold's forecast
    other = Forecaster("lstm", horizon=6, lookback=24, **TINY).backtest(changed, folds=12, stride=4)
    np.testing.assert_allclose(other.forecasts[MODEL][0, 0], result.forecasts[MODEL][0, 0])
    assert not np.allclose(other.forecasts[MODEL][0, -1], result.forecasts[MODEL][0, -1])


def test_backtest_baselines_and_actuals_match_the_single_history_forms(never):
    _, y, result = never
    for j in (0, 5, 11):
        k = int(result.cutoffs[0, j])
        np.testing.assert_allclose(result.actual[0, j, :, 0], y[k : k + 6])
        for name, fc in baseline_forecasts(y[:k, None], 6, 1).items():
            np.testing.assert_allclose(result.forecasts[name][0, j], fc, rtol=1e-8, atol=1e-8)


def test_fold_metrics_match_compute_metrics_and_aggregate_is_their_mean(never):
    _, y, result = never
    for name in result.forecasts:
        for j in (0, 7):
            k = int(result.cutoffs[0, j])
            a, fc = result.actual[0, j], result.forecasts[name][0, j]
            want = compute_metrics(a, fc, insample=y[:k, None], season=1)
            got = result.fold_metrics[name][j]
            for key in ("mae", "rmse", "mape", "smape", "mase"):
                assert got[key] == pytest.approx(want[key], rel=1e-9), (name, key)
        mean = np.mean([fm["rmse"] for fm in result.fold_metrics[name]])
        assert result.metrics[name]["rmse"] == pytest.approx(mean)
    by_step = result.by_step[MODEL]["mae"]
    assert by_step.shape == (6,)
    assert by_step.mean() == pytest.approx(result.metrics[MODEL]["mae"])


def test_interval_coverage_is_cross_fitted_over_halves_of_the_folds(never):
    _, _, result = never
    resid = result.scaled_residuals()[0]  # [K, H, 1]
    q_second = conformal_quantiles(resid[6:], (80,))[80]  # calibrates the first half
    lo, hi = result.bounds[80]
    width = result.forecasts[MODEL][0, :6] - lo[0, :6]
    np.testing.assert_allclose(width, np.broadcast_to(q_second * result.scales[0, 0], width.shape))
    inside = (result.actual >= lo) & (result.actual <= hi)
    assert result.metrics[MODEL]["coverage_80"] == pytest.approx(inside.mean())
    assert "pinball_80" in result.metrics[MODEL]
    assert "coverage_80" not in result.metrics["naive"]


def test_backtest_replaces_the_calibration_with_its_residuals(never):
    f, _, result = never
    assert f.calibration is not None
    assert f.calibration.source == "backtest"
    assert f.calibration.windows == 12
    assert 80 in f.calibration.quantiles and 95 not in f.calibration.quantiles


def test_refit_every_and_n_retrain_before_their_cutoffs():
    y = _noisy(300)
    f = Forecaster("elman", horizon=4, lookback=12, **{**TINY, "epochs": 1})
    every = f.backtest(y, folds=4, refit="every")
    assert (every.fits, every.passes) == (4, 4)
    last = int(every.cutoffs[0, -1])  # the last refit trains on the data before it
    assert f.sizes is not None
    assert f.scaler_for(f.series[0]).center[0] == pytest.approx(y[: last - f.sizes.val_size].mean())
    # the last fold equals a fresh fit on the data before it, then a forecast
    g = Forecaster("elman", horizon=4, lookback=12, **{**TINY, "epochs": 1})
    g.fit(y[: int(every.cutoffs[0, -1])])
    np.testing.assert_allclose(every.forecasts[MODEL][0, -1], g.forecast_arrays(g.series, 4)[0])
    assert f.backtest(y, folds=5, refit=2).fits == 3


def test_too_few_folds_for_an_interval_level_is_a_clear_error():
    f = Forecaster("lstm", horizon=3, lookback=12, **TINY)
    with pytest.raises(DataError, match=r"--intervals 95: .* use --folds >= 38 \(got 10\)"):
        f.backtest(_noisy(300), folds=10, intervals=(80, 95))


def test_many_series_backtest_scores_every_series_and_writes_files(tmp_path):
    df = many_series(3, 150)
    f = Forecaster(
        "lstm", horizon=4, lookback=16, series_id="series", target="value", time_col="t", **TINY
    )
    result = f.backtest(df, folds=6, intervals=(80,))
    assert result.forecasts[MODEL].shape == (3, 6, 4, 1)
    paths = result.save(tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())["backtest"]
    assert doc["series"] == ["s000", "s001", "s002"] and doc["folds"] == 6
    frame = pd.read_csv(tmp_path / "backtest_forecasts.csv")
    assert len(frame) == 3 * 6 * 4
    assert {"series", "fold", "step", "model_lower_80", "linear_ar"} <= set(frame.columns)
    folds = pd.read_csv(tmp_path / "backtest_folds.csv")
    assert len(folds) == 6 * 7  # folds x methods (the model and six baselines)
    assert len(paths) == 4
    # a fold's MASE is the mean over series, each scaled by its own history before the cutoff
    want = [
        compute_metrics(
            result.actual[i, 2],
            result.forecasts["naive"][i, 2],
            insample=s.target_values[: int(result.cutoffs[i, 2])],
            season=result.season,
        )["mase"]
        for i, s in enumerate(result.series)
    ]
    assert result.fold_metrics["naive"][2]["mase"] == pytest.approx(np.mean(want))


def test_targets_at_gathers_the_horizon_after_each_cutoff():
    s = load_series(np.arange(20.0), DataConfig())
    got = targets_at(s, np.array([[3, 10]]), 2)
    assert got[..., 0].tolist() == [[[3.0, 4.0], [10.0, 11.0]]]


# ----------------------------------------------------------------------------- intervals in predict


def _coverage_on_heldout(f: Forecaster, y: np.ndarray, start: int, h: int) -> float:
    hits = total = 0
    for k in range(start, len(y) - h + 1, h):
        table = f.predict(data=y[:k], intervals=(80,))
        actual = y[k : k + h]
        hits += int(((table["y_lower_80"] <= actual) & (actual <= table["y_upper_80"])).sum())
        total += h
    return hits / total


@pytest.mark.slow
def test_80_percent_intervals_cover_70_to_90_percent_of_a_heldout_noisy_series():
    # noise-dominated errors, calibrated on ~150 windows, scored on 600 held-out points
    y = pd.Series(noisy_sine(2000, noise=0.5, seed=3, period=24.0), name="y").to_frame()
    values = y["y"].to_numpy()
    opts = {"horizon": 6, "lookback": 48, "hidden_size": 16, "epochs": 15, "progress": False}
    f = Forecaster("lstm", **opts)
    f.backtest(y.iloc[:1400], folds=150, stride=2)  # out-of-sample backtest residuals
    assert f.calibration is not None and f.calibration.source == "backtest"
    assert 0.70 <= _coverage_on_heldout(f, values, 1400, 6) <= 0.90
    g = Forecaster("lstm", **opts).fit(y.iloc[:1400])  # residuals of the validation windows
    assert g.calibration is not None and g.calibration.source == "validation"
    assert 0.70 <= _coverage_on_heldout(g, values, 1400, 6) <= 0.90


def test_predict_intervals_survive_save_and_load(tmp_path):
    f = Forecaster("lstm", horizon=4, lookback=16, **TINY).fit(_noisy(400))
    assert f.calibration is not None and f.calibration.source == "validation"
    table = f.predict(intervals="80,95")
    assert list(table.columns) == ["y", "y_lower_80", "y_upper_80", "y_lower_95", "y_upper_95"]
    assert (table["y_lower_95"] <= table["y_lower_80"]).all()
    assert (table["y_lower_80"] <= table["y"]).all() and (table["y"] <= table["y_upper_80"]).all()
    f.save(tmp_path)
    again = Forecaster.load(tmp_path).predict(intervals=(80, 95))
    pd.testing.assert_frame_equal(table, again)


def test_predict_interval_level_without_enough_residuals_is_refused():
    f = Forecaster("lstm", horizon=6, lookback=16, val_size=8, **TINY).fit(_noisy(300))
    assert f.calibration is not None and f.calibration.windows == 3
    with pytest.raises(ConfigError, match="--intervals 80: the validation calibration has 3"):
        f.predict(intervals=(80,))


def test_predict_without_validation_has_no_calibration():
    f = Forecaster("lstm", horizon=3, lookback=16, val_size=0, **TINY).fit(_noisy(200))
    assert f.calibration is None
    with pytest.raises(ConfigError, match="no calibration residuals"):
        f.predict(intervals=(80,))


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_backtest_writes_metrics_pictures_and_report(cli, tmp_path):
    out = tmp_path / "bt"
    r = cli(
        "backtest", "--data", "builtin:airline", "--horizon", "6", "--folds", "8", "--stride",
        "3", "--intervals", "80", "--model", "elman", "--hidden-size", "8", "--epochs", "3",
        "--lookback", "24", "--threads", "1", "--output", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "backtest: 8 folds x horizon 6" in r.stdout
    assert "80% intervals: empirical coverage" in r.stdout
    names = ["metrics.json", "backtest_metrics.csv", "backtest_folds.csv", "model.json",
             "backtest_forecasts.csv", "history.csv", "report.md", "forecast.png", "loss.png",
             "backtest_by_step.png", "hidden_heatmap.png"]  # fmt: skip
    for name in names:
        assert (out / name).is_file(), name
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["backtest"]["forecast_passes"] == 1
    assert set(doc["backtest"]["metrics"]) == {
        "model", "naive", "seasonal_naive", "drift", "linear_ar", "ets", "theta"
    }  # fmt: skip
    fc = cli("forecast", str(out), "--intervals", "80")
    assert fc.returncode == 0, fc.stderr
    assert "passengers_lower_80" in fc.stdout.splitlines()[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--folds", "500"], "--folds 500 with --stride 12 and --horizon 12 need more than"),
        (["--stride", "0"], "--stride (0) must be >= 1"),
        (["--intervals", "80,abc"], "--intervals: 'abc' must be a percentage"),
        (["--intervals", "120"], "--intervals: '120' must be a percentage"),
        (["--refit", "sometimes"], "--refit 'sometimes' must be never, every or"),
    ],
)
def test_cli_backtest_bad_input_is_one_line_exit_2(cli, tmp_path, extra, message):
    r = cli(
        "backtest", "--data", "builtin:airline", "--horizon", "12", "--epochs", "1",
        "--output", str(tmp_path / "o"), *extra,
    )  # fmt: skip
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_cli_backtest_refuses_a_non_empty_output(cli, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    r = cli("backtest", "--data", "builtin:airline", "--output", str(tmp_path))
    assert r.returncode == 2
    assert "already exists and is not empty" in r.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_forecast_bad_intervals_is_one_line_exit_2(cli, tmp_path):
    f = Forecaster("lstm", horizon=3, lookback=16, **TINY).fit(_noisy(200))
    f.save(tmp_path)
    r = cli("forecast", str(tmp_path), "--intervals", "0")
    assert r.returncode == 2
    assert "--intervals: '0' must be a percentage" in r.stderr


@pytest.mark.parametrize(
    "entry",
    [
        "text",
        {"source": "validation", "windows": 5, "quantiles": None},
        {"source": "elsewhere", "windows": 5, "quantiles": {}},
        {"source": "backtest", "windows": -1, "quantiles": {}},
        {"source": "backtest", "windows": 5, "quantiles": {"80": [[-1.0]]}},
        {"source": "backtest", "windows": 5, "quantiles": {"150": [[1.0]]}},
        {"source": "backtest", "windows": 5, "quantiles": {"80": [[1.0]], "90": [[1.0, 2.0]]}},
    ],
)
def test_damaged_calibration_metadata_is_a_checkpoint_error(entry):
    with pytest.raises(CheckpointError, match="calibration metadata is invalid"):
        Calibration.from_dict(entry, "model.json")
