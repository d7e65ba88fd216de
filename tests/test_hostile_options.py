"""Options and series a run cannot use are refused before training, with the fix named:
short series against the hold-out's baselines, --val-size, absurd sizes and thread counts,
and intervals the calibration cannot give (elman forecast shows the others with a note)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from elman.config import Config, DataConfig
from elman.data.prepare import load_series
from elman.errors import ConfigError, DataError
from elman.evaluation.backtest import backtest
from elman.evaluation.holdout import check_holdout
from elman.forecaster import Forecaster
from elman.runs import backtest_run, train_run
from elman.runtime import configure_threads, usable_cpus

TINY = {"hidden_size": 8, "epochs": 1, "batch_size": 32, "progress": False, "threads": 1}


def _daily(tmp_path, n, name="d.csv"):
    path = tmp_path / name
    t = np.arange(n)
    frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=n), "y": 2 + np.sin(t)})
    frame.to_csv(path, index=False)
    return path


def _config(path, **options):
    return Config().replace(source=str(path), **{**TINY, **options})


@pytest.mark.parametrize(
    ("points", "options", "needed"),
    [
        (8, {"horizon": 3}, "need 7"),
        (3, {"horizon": 1}, "need 7"),
        (60, {"horizon": 3, "season": 100000}, "need 100000"),
    ],
)
def test_a_holdout_the_baselines_cannot_score_is_refused_before_training(
    tmp_path, monkeypatch, points, options, needed
):
    """It used to train, then fail in seasonal-naive and leave a directory behind."""
    fits = []
    monkeypatch.setattr(Forecaster, "fit", lambda self, *a, **k: fits.append(1))
    out = tmp_path / "run"
    with pytest.raises(DataError, match=f"{needed}.*--test-size 0"):
        train_run(out, _config(_daily(tmp_path, points), **options))
    assert fits == [] and not out.exists()


def test_check_holdout_counts_the_points_before_the_holdout():
    s = load_series(np.arange(10.0), DataConfig())
    check_holdout(s, 3, 7)  # 7 points left: exactly one season
    with pytest.raises(DataError, match="has 6 point"):
        check_holdout(s, 4, 7)


def test_a_backtest_whose_first_cutoff_leaves_too_little_is_refused_before_training(tmp_path):
    fits = []

    def fit(train):
        fits.append(1)
        raise AssertionError("must not train")

    series = load_series(str(_daily(tmp_path, 60)), DataConfig())
    with pytest.raises(DataError, match="first cutoff leaves 6 point.*lower --folds"):
        backtest(fit, series, 3, folds=18)
    assert fits == []
    with pytest.raises(DataError, match="need 100000"):
        backtest_run(tmp_path / "bt", _config(_daily(tmp_path, 60), horizon=3, season=100000))
    assert not (tmp_path / "bt").exists()


def test_a_validation_part_that_leaves_no_window_names_val_size(tmp_path):
    with pytest.raises(DataError, match=r"--val-size 1000 leaves 0 .*lower --val-size \(at most"):
        Forecaster(horizon=3, val_size=1000, **TINY).fit(str(_daily(tmp_path, 60)))


def test_absurd_thread_counts_are_refused_naming_the_limit():
    limit = 4 * usable_cpus()
    with pytest.raises(ConfigError, match=f"at most {limit}"):
        configure_threads(limit + 1)
    assert configure_threads(1) == 1


def test_networks_too_big_or_too_deep_are_refused_before_allocating(tmp_path):
    data = str(_daily(tmp_path, 60))
    with pytest.raises(ConfigError, match=r"--hidden-size 100000 .* GiB.*smaller --hidden-size"):
        Forecaster(horizon=3, **{**TINY, "hidden_size": 100000}).fit(data)
    with pytest.raises(ConfigError, match="--num-layers \\(1000\\) is above elman's limit of 32"):
        Forecaster(horizon=3, num_layers=1000, **TINY).fit(data)


@pytest.mark.slow
def test_forecast_shows_the_calibrated_levels_and_notes_the_others(tmp_path):
    """The README quickstart: a 95% interval needs 19 validation windows, the run has 10."""
    out = tmp_path / "run"
    done = run_cli("train", "--data", "builtin:airline", "--horizon", "12", "--epochs", "3",
                   "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = run_cli("forecast", str(out), "--horizon", "12", "--intervals", "80,95")
    assert got.returncode == 0, got.stderr
    header = got.stdout.splitlines()[0]
    assert "passengers_lower_80" in header and "95" not in header
    assert "no 95% intervals: they need 19 calibration windows" in got.stderr
    assert "--val-size 30" in got.stderr and "Traceback" not in got.stderr
    only95 = run_cli("forecast", str(out), "--intervals", "95")
    assert only95.returncode == 2 and "needs 19" in only95.stderr


def test_training_on_a_pipe_writes_progress_lines_within_an_epoch(monkeypatch, capsys):
    """stderr is not a terminal here: a line comes after FIRST_LINE_S, then every EVERY_S."""
    from elman.training.trainer import Progress

    monkeypatch.setattr(Progress, "FIRST_LINE_S", 0.0)
    monkeypatch.setattr(Progress, "EVERY_S", 1e9)
    Forecaster(horizon=2, lookback=8, **{**TINY, "progress": True, "epochs": 2}).fit(
        np.sin(np.arange(300) / 3)
    )
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("elman: training")]
    assert len(lines) == 1 and "epoch 1/2  batch 1/" in lines[0]
    Forecaster(horizon=2, lookback=8, **TINY).fit(np.sin(np.arange(300) / 3))  # progress off
    assert "elman: training" not in capsys.readouterr().err


def test_the_automatic_lookback_is_capped_for_long_seasons():
    from elman.data.prepare import MAX_AUTO_LOOKBACK, resolve_sizes

    series = load_series(np.sin(np.arange(20000) / 50), DataConfig())
    sizes = resolve_sizes(series, DataConfig(horizon=6, season=1440))
    assert sizes.lookback == MAX_AUTO_LOOKBACK == 512
    assert resolve_sizes(series, DataConfig(horizon=6, season=12)).lookback == 36


def test_a_short_series_that_caps_the_lookback_of_a_panel_is_named(caplog):
    import pandas as pd

    from elman.data.prepare import resolve_sizes

    frame = pd.DataFrame({
        "id": ["long"] * 300 + ["short"] * 60,
        "y": np.sin(np.arange(360) / 5),
    })  # fmt: skip
    cfg = DataConfig(series_id="id", horizon=6, season=12)
    with caplog.at_level("WARNING", logger="elman.data.prepare"):
        sizes = resolve_sizes(load_series(frame, cfg), cfg)
    assert sizes.lookback < 36
    (record,) = caplog.records
    assert f"the automatic lookback is {sizes.lookback}, not 36" in record.getMessage()
    assert "(series 'short') has only 60 points" in record.getMessage()
    assert "all 2 series (1 of them longer)" in record.getMessage()
    assert "--lookback" in record.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="elman.data.prepare"):
        resolve_sizes(load_series(frame[frame.id == "long"], cfg), cfg)
    assert not caplog.records  # one long series: nothing capped, nothing said


def test_the_ar_baseline_fits_long_series_on_a_bounded_design():
    from elman.evaluation.baselines import AR_MAX_ELEMENTS, fit_ar

    rng = np.random.default_rng(0)
    y = np.zeros(40000)
    for t in range(2, len(y)):  # an AR(2) process
        y[t] = 0.5 * y[t - 1] - 0.3 * y[t - 2] + rng.standard_normal()
    order = 400
    assert (len(y) - order) * (order + 1) > AR_MAX_ELEMENTS  # the cap applies
    coef = fit_ar(y, order)
    np.testing.assert_allclose(coef[1:3], [0.5, -0.3], atol=0.05)
    small = y[-2000:]  # under the cap: every row, as a direct least-squares fit
    design = np.column_stack([np.ones(1998), small[1:-1], small[:-2]])
    want = np.linalg.lstsq(design, small[2:], rcond=None)[0]
    np.testing.assert_allclose(fit_ar(small, 2), want, rtol=1e-10)


def _covariate_file(tmp_path, n=200):
    t = np.arange(n)
    promo = (t % 7 == 0) * 1.0
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n),
            "sales": 50 + 5 * np.sin(2 * np.pi * t / 7) + 8 * promo,
            "promo": promo,
        }
    )
    path = tmp_path / "cov.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_run_with_future_covariates_scores_its_holdout_with_the_known_values(tmp_path):
    """It used to train every epoch, then fail: the hold-out had no future values."""
    cfg = _config(
        _covariate_file(tmp_path), target=("sales",), future_covariates=("promo",), horizon=7
    )
    run = train_run(tmp_path / "run", cfg)
    assert run.holdout is not None and np.isfinite(run.holdout.metrics["model"]["mae"])
    f = Forecaster.load(tmp_path / "run")
    future = pd.DataFrame({"promo": [1.0, 0, 0, 0, 0, 0, 0]})
    path = tmp_path / "future.csv"
    future.to_csv(path, index=False)
    pd.testing.assert_frame_equal(f.predict(future=future), f.predict(future=str(path)))
    pd.testing.assert_frame_equal(f.predict(future=future), f.predict(future=[future]))
    with pytest.raises(DataError, match="--future FILE"):
        f.predict()


def test_a_long_future_table_is_split_by_series_id():
    t = np.arange(150)
    frames = []
    for i in range(2):
        promo = ((t + i) % 5 == 0) * 1.0
        frames.append(pd.DataFrame({"id": f"s{i}", "y": 10 + i + 3 * promo, "promo": promo}))
    data = pd.concat(frames, ignore_index=True)
    f = Forecaster(horizon=3, series_id="id", target="y", future_covariates=["promo"], **TINY)
    f.fit(data)
    long = pd.DataFrame({"id": ["s1"] * 3 + ["s0"] * 3, "promo": [1.0, 0, 0, 0, 0, 1.0]})
    split = [long[long.id == "s0"].drop(columns="id"), long[long.id == "s1"].drop(columns="id")]
    np.testing.assert_array_equal(
        f.forecast_arrays(f.series, 3, long),
        f.forecast_arrays(f.series, 3, [x.reset_index(drop=True) for x in split]),
    )
    with pytest.raises(DataError, match="no rows for series 's1'"):
        f.forecast_arrays(f.series, 3, long[long.id == "s0"])


@pytest.mark.slow
def test_cli_forecast_reads_future_covariates_from_a_file(tmp_path):
    out = tmp_path / "run"
    done = run_cli(
        "train", "--data", str(_covariate_file(tmp_path)), "--target", "sales",
        "--future-covariates", "promo", "--horizon", "7", "--epochs", "2", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (tmp_path / "fut.csv").write_text("promo\n1\n0\n0\n0\n0\n0\n0\n")
    got = run_cli("forecast", str(out), "--future", str(tmp_path / "fut.csv"))
    assert got.returncode == 0, got.stderr
    assert len(got.stdout.splitlines()) == 8 and got.stdout.startswith("date,sales")
    missing = run_cli("forecast", str(out), "--future", str(tmp_path / "nope.csv"))
    assert (
        missing.returncode == 2 and "--future" in missing.stderr and "not found" in missing.stderr
    )


def test_forecast_history_must_carry_the_trained_time_stamps(tmp_path):
    data = _daily(tmp_path, 80)
    f = Forecaster(horizon=3, **TINY).fit(str(data))
    frame = pd.read_csv(data)
    frame[["y"]].to_csv(tmp_path / "nodate.csv", index=False)
    weekly = frame.assign(date=pd.date_range("2020-01-05", periods=80, freq="W-SUN"))
    weekly.to_csv(tmp_path / "weekly.csv", index=False)
    with pytest.raises(DataError, match="has no 'date' column.*give the history with its"):
        f.predict(data=str(tmp_path / "nodate.csv"))
    with pytest.raises(DataError, match="at frequency W-SUN, but the model was trained at D"):
        f.predict(data=str(tmp_path / "weekly.csv"))
    assert f.predict(data=str(data)).index[0] == pd.Timestamp("2024-03-21")


def test_update_refuses_a_point_no_forecast_could_continue_from():
    """1e300 used to be learned from with a log line; every predict() then failed."""
    f = Forecaster(horizon=2, lookback=16, **TINY).fit(np.sin(np.arange(200) / 4))
    before = f.predict()
    with pytest.raises(DataError, match="1e\\+300 .* scale units .* remove the outlier"):
        f.update(np.array([1e300]))
    pd.testing.assert_frame_equal(f.predict(), before)  # nothing was learned or appended


def test_a_forecast_that_overflows_is_refused_not_printed():
    f = Forecaster(horizon=2, lookback=16, **TINY).fit(np.sin(np.arange(200) / 4))
    scaler = next(iter(f.scalers.values()))
    scaler.scale = np.full_like(np.asarray(scaler.scale), np.inf)  # a damaged scaler
    with pytest.raises(DataError, match="forecast of .* is not finite"):
        f.predict()


@pytest.mark.parametrize("value", [1.5, "3", True])
def test_options_of_the_wrong_type_are_config_errors(value):
    with pytest.raises(ConfigError, match=rf"--horizon \({value!r}\) must be an integer"):
        Forecaster(horizon=value)


def test_numpy_numbers_are_options_like_python_ones():
    f = Forecaster(horizon=np.int64(3), lr=np.float32(0.01))
    assert f.config.data.horizon == 3


def test_a_flat_stretch_continues_a_series_though_training_on_one_is_refused():
    """Three closed days of a shop: a constant update is data, not a mistake."""
    f = Forecaster(horizon=2, lookback=16, **TINY).fit(2 + np.sin(np.arange(200) / 4))
    f.update(np.zeros(3))
    assert np.isfinite(f.predict().to_numpy()).all()
    assert np.isfinite(f.predict(data=np.full(30, 1.0)).to_numpy()).all()
    with pytest.raises(DataError, match="is constant"):
        Forecaster(horizon=2, **TINY).fit(np.full(100, 1.0))


def test_values_near_1e_minus_200_keep_their_scale():
    """Their squares underflow: the spread used to come out 0 and the scale 1."""
    from elman.data.scaling import Scaler

    y = 1e-200 * (2 + np.sin(np.arange(120)))
    scaler = Scaler("standard").fit(y)
    assert scaler.scale[0] == pytest.approx(np.std(y / 1e-200) * 1e-200, rel=1e-12)
    f = Forecaster(horizon=3, **TINY).fit(y)
    assert np.abs(f.predict().to_numpy()).max() < 1e-199  # forecasts in the data's units


@pytest.mark.parametrize("big", [1e154, 1e300])
def test_values_too_large_to_scale_name_file_column_row_and_fix(tmp_path, big):
    t = np.arange(120)
    y = 2 + np.sin(t)
    y[50] = big
    path = tmp_path / "big.csv"
    pd.DataFrame({"date": pd.date_range("2024-01-01", periods=120), "y": y}).to_csv(
        path, index=False
    )
    with pytest.raises(
        DataError, match=r"big.csv, column 'y': values up to .*at row 52 .*power of ten"
    ):
        Forecaster(horizon=3, **TINY).fit(str(path))


def test_library_warnings_reach_the_cli_as_one_line_each_without_paths(tmp_path):
    """An exactly periodic series: MASE is undefined (zero in-sample seasonal-naive error)."""
    t = np.arange(80)
    path = tmp_path / "periodic.csv"
    frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=80), "y": (t % 7) + 1.0})
    frame.to_csv(path, index=False)
    done = run_cli("train", "--data", str(path), "--horizon", "3", "--epochs", "1",
                   "--no-progress-bar", "--out", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(ln.startswith("elman: warning: ") for ln in lines), lines
    assert len(lines) == len(set(lines)) and any("MASE" in ln for ln in lines)
    assert ".py:" not in done.stderr


def test_each_panel_of_a_multi_target_forecast_picture_names_its_own_target(tmp_path, monkeypatch):
    from elman.runs.pictures import ForecastPanel, plot_forecast

    x = list(range(10))
    panels = [
        ForecastPanel("s", x, np.arange(10.0), ylabel="sales"),
        ForecastPanel("s", x, np.arange(10.0), ylabel="returns"),
    ]
    seen: list[str] = []
    from matplotlib.axes import Axes

    real = Axes.set_ylabel

    def spy(self, label, *args, **kwargs):
        seen.append(label)
        return real(self, label, *args, **kwargs)

    monkeypatch.setattr(Axes, "set_ylabel", spy)
    plot_forecast(panels, tmp_path / "f.png", "t", ylabel="sales")
    assert seen == ["sales", "returns"]


def test_one_extreme_stream_point_warns_once_for_its_run_of_skipped_updates(caplog):
    from elman.data.scaling import Scaler
    from elman.models.registry import build_model
    from elman.online.learner import OnlineLearner

    y = np.sin(np.arange(300) / 5)
    y[200] = 1e300
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    learner = OnlineLearner(build_model("lstm", 1, 1, 8), Scaler("standard").fit(y[:100]))
    with caplog.at_level("WARNING", logger="elman.online.learner"):
        learner.observe(y[:, None])
    skips = [r for r in caplog.records if "update skipped" in r.getMessage()]
    assert learner.skipped_updates > 1 and len(skips) == 1


def test_a_horizon_beyond_the_limit_is_refused():
    """A recursive model has no weight that bounds its horizon; a tampered 10^9 would hang."""
    from elman.config import MAX_HORIZON

    with pytest.raises(ConfigError, match="above elman's limit of 100,000"):
        Forecaster(horizon=MAX_HORIZON + 1)
    assert Forecaster(horizon=MAX_HORIZON).config.data.horizon == MAX_HORIZON


def test_the_report_mentions_interval_bands_only_when_they_are_drawn(tmp_path):
    base = Config().replace(source="builtin:airline", horizon=6, lookback=24, **TINY)
    train_run(tmp_path / "with", base)
    train_run(tmp_path / "without", base.replace(val_size=0))  # no calibration, no bands
    assert "red bands the prediction intervals" in (tmp_path / "with" / "report.md").read_text()
    assert "red bands" not in (tmp_path / "without" / "report.md").read_text()


def test_plot_future_draws_each_series_history_and_forecast(tmp_path, monkeypatch):
    from elman.runs import report

    t = np.arange(150)
    data = pd.concat(
        [pd.DataFrame({"id": f"s{i}", "y": 10 + i + np.sin(t / 3)}) for i in range(2)],
        ignore_index=True,
    )
    f = Forecaster(horizon=3, series_id="id", target="y", **TINY).fit(data)
    table = f.predict(intervals=(80,))
    drawn = {}
    monkeypatch.setattr(
        report, "plot_forecast", lambda panels, path, title: drawn.update(p=panels) or path
    )
    report.plot_future(f.series_for(), table, tmp_path / "f.png")
    panels = drawn["p"]
    assert [p.title for p in panels] == ["s0: y", "s1: y"]
    assert all(len(p.actual) == 12 and len(p.lines[0][2]) == 3 for p in panels)
    assert [b[0] for b in panels[1].bands] == [80]
    np.testing.assert_allclose(panels[1].lines[0][2], table[table.id == "s1"]["y"].to_numpy())


@pytest.mark.slow
def test_cli_forecast_plot_writes_a_picture(tmp_path):
    out = tmp_path / "run"
    done = run_cli("train", "--data", "builtin:airline", "--horizon", "6", "--epochs", "2",
                   "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = run_cli("forecast", str(out), "--plot", str(tmp_path / "f.png"), "--intervals", "80")
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {tmp_path / 'f.png'}" in got.stdout
    again = run_cli("forecast", str(out), "--plot", str(tmp_path / "f.png"))
    assert again.returncode == 2 and "--plot" in again.stderr and "--overwrite" in again.stderr


@pytest.mark.parametrize(("key", "value"), [("horizon", None), ("stride", 0), ("by_step", [1])])
def test_plot_refuses_a_backtest_entry_without_what_the_pictures_need(tmp_path, key, value):
    import json

    from elman.errors import CheckpointError
    from elman.runs import render_run

    base = Config().replace(source="builtin:airline", horizon=6, lookback=24, **TINY)
    out = tmp_path / "bt"
    backtest_run(out, base, folds=4)
    doc = json.loads((out / "metrics.json").read_text())
    if value is None:
        del doc["backtest"][key]
    else:
        doc["backtest"][key] = value
    (out / "metrics.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=f"metrics.json.*backtest.{key}"):
        render_run(out)


@pytest.mark.slow
def test_cli_forecast_prints_seven_digits_and_the_runs_date_format(tmp_path):
    t = np.arange(60)
    stamps = pd.date_range("2020-01-01", periods=60, freq="MS").strftime("%d/%m/%Y")
    path = tmp_path / "dm.csv"
    pd.DataFrame({"date": stamps, "y": 100 + 10 * np.sin(t)}).to_csv(path, index=False)
    out = tmp_path / "run"
    done = run_cli("train", "--data", str(path), "--date-format", "%d/%m/%Y", "--horizon", "3",
                   "--epochs", "2", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = run_cli("forecast", str(out))
    assert got.returncode == 0, got.stderr
    rows = [line.split(",") for line in got.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == ["01/01/2025", "01/02/2025", "01/03/2025"]
    assert all(len(r[1].replace(".", "").lstrip("-0")) <= 7 for r in rows), rows
    want = Forecaster.load(out).predict()["y"].to_numpy()
    np.testing.assert_allclose([float(r[1]) for r in rows], want, rtol=1e-6)
