"""Import paths the docs once showed keep working after the package was layered."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from elman.forecaster import Forecaster

TINY = {"hidden_size": 8, "epochs": 1, "batch_size": 32, "progress": False, "threads": 1}


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("elman", "distributed", "elman.training.distributed"),
        ("elman.resume", "Checkpointer", "elman.training.resume"),
        ("elman.plotting", "save_figure", "elman.runs.pictures"),
        ("elman.streaming", "run_stream", "elman.online.stream"),
        ("elman.report", "render_run", "elman.runs.report"),
        ("elman.online", "OnlineLearner", "elman.online.learner"),
        ("elman.online", "OnlineConfig", "elman.config"),
        ("elman.evaluate", "evaluate_holdout", "elman.evaluation.holdout"),
        ("elman.kernels", "main", "elman.models.native"),
    ],
)
def test_an_old_path_gives_the_object_of_its_new_home(old, name, new):
    got = getattr(importlib.import_module(old), name)
    home = importlib.import_module(new)
    assert got is (home if new.endswith(name) else getattr(home, name))


def test_old_helpers_take_a_forecaster_as_before():
    from elman.evaluate import forecast_at_cutoffs
    from elman.online_forecaster import update_forecaster

    y = np.sin(np.arange(300) / 5)
    f = Forecaster("lstm", horizon=4, lookback=24, **TINY).fit(y)
    cut = np.array([[100, 120]])
    np.testing.assert_array_equal(
        forecast_at_cutoffs(f, f.series, cut), f.predictor.forecast_at_cutoffs(f.series, cut)
    )
    log = update_forecaster(f, np.sin(np.arange(300, 310) / 5), {})
    assert log is f.update_log and len(log.error) == 10
