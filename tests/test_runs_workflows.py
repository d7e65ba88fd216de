"""Whole runs from Python (elman.runs.train_run / backtest_run) and the facade's seams:
the Predictor it hands to the layers below, and a backtest that returns its result."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from elman.config import Config
from elman.errors import ConfigError
from elman.evaluation.backtest import backtest
from elman.evaluation.scores import MODEL
from elman.files import CONFIG, HISTORY, HOLDOUT, META, METRICS, REPORT, WEIGHTS
from elman.forecaster import Forecaster
from elman.forecasting.predictor import Predictor
from elman.runs import backtest_run, resume_config, train_run

TINY = {"hidden_size": 8, "epochs": 2, "batch_size": 32, "progress": False, "threads": 1}


def _config(**options):
    return Config().replace(source="builtin:airline", horizon=6, lookback=24, **TINY, **options)


def test_train_run_writes_the_run_directory_and_scores_the_holdout(tmp_path):
    run = train_run(tmp_path / "run", _config())
    out = tmp_path / "run"
    for name in (CONFIG, HISTORY, HOLDOUT, METRICS, WEIGHTS, META, REPORT):
        assert (out / name).is_file(), name
    assert run.holdout is not None and run.holdout.test_size == 6
    assert [row["method"] for row in run.holdout.table()][0] == MODEL
    assert "seasonal_naive" in run.holdout.metrics
    assert json.loads((out / METRICS).read_text())["holdout"]["test_size"] == 6
    # the saved model continues after the last point of the whole series, not the hold-out
    f = Forecaster.load(out)
    assert f.predict().index[0] == pd.Period("1961-01", "M")
    assert not run.interrupted and run.main and run.exit_code == 0


def test_train_run_refuses_a_non_empty_directory_and_keeps_it(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        train_run(out, _config())
    assert (out / "notes.txt").read_text() == "mine"


def test_train_run_resumes_from_the_stored_configuration(tmp_path):
    out = tmp_path / "run"
    first = train_run(out, _config(), checkpoint_every=1)
    cfg, every = resume_config(out)
    assert cfg == first.config and every == 1
    again = train_run(out, cfg, resume=True)
    assert again.resumed_from is not None
    with pytest.raises(Exception, match="not a run directory"):
        resume_config(tmp_path / "missing")


def test_backtest_run_writes_results_and_a_calibrated_model(tmp_path):
    run = backtest_run(tmp_path / "bt", _config(), folds=8, stride=3, intervals=(80,))
    assert run.result.folds == 8 and run.result.levels == (80,)
    assert (tmp_path / "bt" / WEIGHTS).is_file() and (tmp_path / "bt" / REPORT).is_file()
    assert run.forecaster.calibration is not None
    assert run.forecaster.calibration.source == "backtest"
    with pytest.raises(ConfigError, match="--folds"):
        backtest_run(tmp_path / "bt2", _config(), folds=0)
    assert not (tmp_path / "bt2").exists()


def test_the_predictor_is_the_fitted_model_and_an_unfitted_one_is_refused():
    f = Forecaster("gru", horizon=4, lookback=24, **TINY)
    with pytest.raises(ConfigError, match="not fitted yet"):
        _ = f.predictor
    f.fit("builtin:airline")
    p = f.predictor
    assert isinstance(p, Predictor) and p.model is f.model and p.scalers is f.scalers
    np.testing.assert_array_equal(p.forecast_arrays(f.series, 4), f.forecast_arrays(f.series, 4))
    pd.testing.assert_frame_equal(p.table(f.series, p.forecast_arrays(f.series, 4)), f.predict())


def test_backtest_trains_through_its_callable_and_changes_nothing_else():
    f = Forecaster("gru", horizon=4, lookback=24, **TINY)
    series = f.fit("builtin:airline").series
    fits = []

    def fit(train):
        fits.append([len(s) for s in train])
        return f.fit(train).predictor

    result = backtest(fit, series, 4, folds=6, refit=3)
    assert fits == [[len(series[0]) - 4 * 6], [len(series[0]) - 4 * 3]]
    assert result.fits == 2 and result.forecasts[MODEL].shape == (1, 6, 4, 1)
    # only the facade applies a backtest's calibration and series; here the last fit's stay
    assert f.calibration is not None and f.calibration.source == "validation"
    assert len(f.series[0]) == len(series[0]) - 4 * 3
