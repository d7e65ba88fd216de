"""Run reports: pictures and report.md from a run directory's files, and `elman plot`."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from elman.data.prepare import load_series
from elman.data.synthetic import noisy_sine
from elman.errors import ConfigError
from elman.evaluation.holdout import evaluate_holdout, split_holdout
from elman.files import ACTUALS, HISTORY
from elman.forecaster import Forecaster
from elman.runs.directory import write_history, write_holdout
from elman.runs.report import ACTUAL_POINTS, render_run, write_actuals

TINY = {"hidden_size": 8, "epochs": 3, "batch_size": 32, "progress": False, "threads": 1}
PICTURES = ("forecast.png", "loss.png", "hidden_heatmap.png")


def _train_run(out, n: int = 400, h: int = 6, **options):
    """What `elman train` writes, made with the library calls it uses."""
    data = pd.DataFrame({"y": noisy_sine(n, noise=0.2, seed=1, period=24.0)})
    f = Forecaster("elman", horizon=h, lookback=24, **TINY, **options)
    series = load_series(data, f.config.data)
    f.fit(split_holdout(series, h))
    assert f.train_state is not None
    write_history(out / HISTORY, f.train_state.history)
    write_holdout(out, evaluate_holdout(f.predictor, series, h), series, {"training": f.summary()})
    f.series = series
    f.save(out)
    return series


def _links(report: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)


def test_train_run_gets_pictures_and_a_report_linking_them(tmp_path):
    series = _train_run(tmp_path)
    written = render_run(tmp_path, series)
    for name in (*PICTURES, "report.md", ACTUALS):
        assert tmp_path / name in written, name
    report = (tmp_path / "report.md").read_text()
    assert sorted(_links(report)) == sorted(PICTURES)
    assert "## Hold-out test: the last 6 points" in report
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| method | MAE | RMSE | MAPE % | sMAPE % | MASE |")
    assert rows[1].startswith("| **model (elman ensemble)** |")  # the default: an ensemble
    assert [r.split(" | ")[0] for r in rows[2:8]] == [
        "| naive", "| seasonal_naive", "| drift", "| linear_ar", "| ets", "| theta"
    ]  # fmt: skip
    assert "On MASE the model" in report


def test_holdout_coverage_is_reported_when_the_model_is_calibrated(tmp_path):
    series = _train_run(tmp_path, val_size=60)  # 55 validation windows: 80% and 95% bands
    render_run(tmp_path, series)
    report = (tmp_path / "report.md").read_text()
    assert re.search(r"calibrated on 55 validation windows\): 80%: \d+ of 6 points inside", report)


def test_render_needs_only_the_files_of_the_run(tmp_path):
    _train_run(tmp_path)
    first = render_run(tmp_path)  # no data given and no actuals.csv: holdout only
    assert tmp_path / "forecast.png" in first
    assert not (tmp_path / ACTUALS).exists()
    (tmp_path / "model.safetensors").unlink()  # no weights: every picture but the heatmap
    names = {p.name for p in render_run(tmp_path)}
    assert {"forecast.png", "loss.png", "report.md"} <= names


def test_actuals_keep_the_tail_of_the_first_series_with_positions(tmp_path):
    data = pd.DataFrame({"y": np.arange(1500.0)})
    series = load_series(data, Forecaster().config.data)
    frame = pd.read_csv(write_actuals(tmp_path, series))
    assert len(frame) == ACTUAL_POINTS
    assert frame["position"].iloc[0] == 1500 - ACTUAL_POINTS
    assert (frame["y"] == frame["position"]).all()


def test_backtest_run_gets_a_by_step_picture_and_a_backtest_section(tmp_path):
    y = noisy_sine(400, noise=0.2, seed=2, period=24.0)
    f = Forecaster("lstm", horizon=6, lookback=24, **TINY)
    result = f.backtest(y, folds=10, stride=3, intervals=(80,))
    assert f.train_state is not None
    write_history(tmp_path / HISTORY, f.train_state.history)
    result.save(tmp_path, {"training": f.summary()})
    f.series = result.series
    f.save(tmp_path)
    names = {p.name for p in render_run(tmp_path, result.series)}
    assert {"backtest_by_step.png", *PICTURES, "report.md"} <= names
    report = (tmp_path / "report.md").read_text()
    assert "## Backtest: 10 folds x 6 steps" in report
    assert "coverage 80%" in report
    assert "backtest_by_step.png" in _links(report)
    (tmp_path / ACTUALS).unlink()  # without the saved data: the last fold over its actuals
    assert tmp_path / "forecast.png" in render_run(tmp_path)


def test_render_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        render_run(tmp_path / "nope")
    with pytest.raises(ConfigError, match="holds no model.json, metrics.json or history.csv"):
        render_run(tmp_path)


def test_cli_plot_redraws_a_run(cli, tmp_path):
    _train_run(tmp_path)
    r = cli("plot", str(tmp_path))
    assert r.returncode == 0, r.stderr
    for name in (*PICTURES, "report.md"):
        assert f"wrote {tmp_path / name}" in r.stdout


@pytest.mark.parametrize("which", ["missing", "empty"])
def test_cli_plot_bad_run_dir_is_one_line_exit_2(cli, tmp_path, which):
    target = tmp_path / "missing" if which == "missing" else tmp_path
    r = cli("plot", str(target))
    assert r.returncode == 2
    assert r.stderr.startswith("elman: error: ")
    assert len(r.stderr.strip().splitlines()) == 1
