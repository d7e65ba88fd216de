"""The ETS and Theta baselines: statsforecast's forecasts, their shapes, short histories,
and their place in the hold-out and backtest outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from statsforecast.models import AutoETS, AutoTheta

from elman.data.prepare import load_series
from elman.evaluation import baselines as baselines_module
from elman.evaluation import statistical
from elman.evaluation.baselines import (
    BASELINES,
    FAST,
    baseline_notes,
    choose_baselines,
    ets,
    ets_batched,
    theta,
    theta_batched,
)
from elman.evaluation.holdout import evaluate_holdout, split_holdout
from elman.forecaster import Forecaster


def _seasonal(t: int = 72, c: int = 2, seed: int = 0) -> np.ndarray:
    """``[t, c]`` positive monthly-like series with a trend and a season of 12."""
    rng = np.random.default_rng(seed)
    steps = np.arange(t)[:, None]
    level = 50 + 0.5 * steps + 8 * np.sin(2 * np.pi * steps / 12)
    return level * (1 + 0.02 * np.arange(c)) + rng.normal(0, 1, size=(t, c))


def _direct(model: type, y: np.ndarray, h: int, m: int) -> np.ndarray:
    return model(season_length=m).forecast(y=y, h=h)["mean"]


@pytest.mark.parametrize(("method", "model"), [(ets, AutoETS), (theta, AutoTheta)])
def test_forecasts_equal_statsforecast_called_directly_per_column(method, model) -> None:
    y = _seasonal()
    got = method(y, 6, 12)
    assert got.shape == (6, 2) and np.isfinite(got).all()
    expected = np.stack([_direct(model, y[:, c], 6, 12) for c in range(2)], axis=1)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("method", [ets, theta])
def test_one_dimensional_history_gives_one_dimensional_forecast(method) -> None:
    got = method(_seasonal(c=1)[:, 0], 5, 12)
    assert got.shape == (5,) and np.isfinite(got).all()


@pytest.mark.parametrize(("batched", "model"), [(ets_batched, AutoETS), (theta_batched, AutoTheta)])
def test_batched_refits_at_every_cutoff(batched, model) -> None:
    y = _seasonal(c=1)[:, 0]
    cutoffs = np.array([30, 48, 66])
    got = batched(y, cutoffs, 4, 12)
    assert got.shape == (3, 4)
    expected = np.stack([_direct(model, y[:k], 4, 12) for k in cutoffs])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("method", "model"), [(ets, AutoETS), (theta, AutoTheta)])
def test_a_long_history_is_fitted_on_its_last_thousand_points(method, model) -> None:
    assert statistical.fit_window(12) == 1000 and statistical.fit_window(168) == 1680
    y = _seasonal(t=1300, c=1)[:, 0]
    np.testing.assert_array_equal(method(y, 3, 12), _direct(model, y[-1000:], 3, 12))


@pytest.mark.parametrize("method", [ets, theta])
def test_forecasts_are_deterministic(method) -> None:
    y = _seasonal(seed=3)
    np.testing.assert_array_equal(method(y, 8, 12), method(y, 8, 12))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # statsforecast on 7 points
def test_ets_falls_back_to_naive_below_seven_points_and_theta_below_four() -> None:
    y = np.array([3.0, 5.0, 4.0, 6.0, 5.5, 7.0])  # 6 points
    np.testing.assert_array_equal(ets(y, 3, 1), [7.0, 7.0, 7.0])
    assert not np.allclose(theta(y, 3, 1), 7.0)  # 6 points are enough for Theta
    np.testing.assert_array_equal(theta(y[:3], 2, 1), [4.0, 4.0])
    np.testing.assert_allclose(ets(np.r_[y, 6.5], 2, 1), _direct(AutoETS, np.r_[y, 6.5], 2, 1))


def test_a_single_point_or_a_constant_history_gives_the_naive_forecast() -> None:
    for method in (ets, theta):
        np.testing.assert_array_equal(method([4.0], 2, 1), [4.0, 4.0])
        np.testing.assert_array_equal(method([2.0] * 30, 3, 12), [2.0, 2.0, 2.0])


def test_notes_say_which_baseline_fell_back_for_how_many_histories() -> None:
    assert baseline_notes([10, 40]) == []
    assert baseline_notes([3, 6, 40], "series") == [
        "ets: 2 of 3 series had fewer than 7 points, too few to fit; the naive forecast "
        "stands in for ets there",
        "theta: 1 of 3 series had fewer than 4 points, too few to fit; the naive forecast "
        "stands in for theta there",
    ]
    assert statistical.short_histories("naive", [1, 2]) == 0


def test_registry_holds_ets_and_theta_after_the_simple_baselines() -> None:
    assert list(BASELINES)[-2:] == ["ets", "theta"]
    y = _seasonal(c=1)[:, 0]
    np.testing.assert_array_equal(BASELINES["ets"].forecast(y, 3, 12), ets(y, 3, 12))


def _two_series_csv(path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for sid, n in (("long", 60), ("short", 10)):
        y = 10 + np.sin(np.arange(n)) + rng.normal(0, 0.3, n)
        rows += [{"id": sid, "y": round(v, 4)} for v in y]
    pd.DataFrame(rows).to_csv(path, index=False)


QUICK = ["--epochs", "1", "--hidden-size", "4", "--lookback", "2", "--threads", "1"]
SHORT_NOTE = "ets: 1 of 2 series had fewer than 7 points, too few to fit"


def test_train_prints_and_saves_ets_and_theta_with_the_short_series_note(tmp_path, cli) -> None:
    data, out = tmp_path / "two.csv", tmp_path / "run"
    _two_series_csv(data)
    r = cli("train", "--data", str(data), "--series-id", "id", "--horizon", "4", *QUICK,
            "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    methods = [line.split()[0] for line in r.stdout.splitlines()[2:9]]
    assert methods == ["model", "naive", "seasonal_naive", "drift", "linear_ar", "ets", "theta"]
    assert f"note: {SHORT_NOTE}" in r.stdout
    hold = pd.read_csv(out / "holdout.csv")
    assert {"ets", "theta"} <= set(hold.columns)
    short = hold[hold["series"] == "short"]
    np.testing.assert_array_equal(short["ets"], short["naive"])  # 6 points: ETS fell back
    doc = json.loads((out / "metrics.json").read_text())
    assert {"ets", "theta"} <= set(doc["holdout"]["metrics"])
    assert doc["holdout"]["notes"][0].startswith(SHORT_NOTE)
    assert f"- {SHORT_NOTE}" in (out / "report.md").read_text()


def test_backtest_scores_ets_and_theta_and_notes_short_cutoffs() -> None:
    y = _seasonal(t=40, c=1)[:, 0]
    f = Forecaster("elman", horizon=4, lookback=2, hidden_size=4, epochs=1, progress=False)
    result = f.backtest(y, folds=2)
    assert {"ets", "theta"} <= set(result.metrics)
    assert result.forecasts["ets"].shape == (1, 2, 4, 1)
    np.testing.assert_array_equal(
        result.forecasts["ets"][0, :, :, 0], ets_batched(y, result.cutoffs[0], 4, 1)
    )
    assert result.notes == [] and result.to_dict()["notes"] == []


def test_the_baselines_choice_all_fast_and_auto_within_and_over_its_budget() -> None:
    hist = [_seasonal(t=60, c=1)[:, 0] for _ in range(3)]
    assert choose_baselines("all", hist, 10**6, 4, 12) == (tuple(BASELINES), None)
    assert choose_baselines("fast", hist, 3, 4, 12) == (FAST, None)
    assert "ets" not in FAST and "theta" not in FAST and "linear_ar" in FAST
    assert choose_baselines("auto", hist, 3, 4, 12) == (tuple(BASELINES), None)
    names, note = choose_baselines("auto", hist, 10**7, 4, 12)  # months of fitting
    assert names == FAST
    assert note.startswith("ets and theta were not fitted: 10,000,000 fits would take about")
    assert "--baselines all fits them" in note


def test_fast_baselines_leave_ets_and_theta_out_of_the_holdout_and_backtest(tmp_path, cli):
    data, out = tmp_path / "two.csv", tmp_path / "run"
    _two_series_csv(data)
    r = cli("train", "--data", str(data), "--series-id", "id", "--horizon", "4", *QUICK,
            "--baselines", "fast", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    methods = [line.split()[0] for line in r.stdout.splitlines()[2:7]]
    assert methods == ["model", "naive", "seasonal_naive", "drift", "linear_ar"]
    lines = r.stdout.splitlines()
    assert not [ln for ln in lines if ln.split()[:1] in (["ets"], ["theta"])]
    assert not [ln for ln in lines if ln.startswith(("note: ets", "note: theta"))]
    assert not {"ets", "theta"} & set(pd.read_csv(out / "holdout.csv").columns)
    assert 'baselines = "fast"' in (out / "config.toml").read_text()
    y = _seasonal(t=40, c=1)[:, 0]
    f = Forecaster("elman", horizon=4, lookback=2, hidden_size=4, epochs=1, progress=False,
                   baselines="fast")  # fmt: skip
    assert set(f.backtest(y, folds=2).metrics) == {"model", *FAST}


def test_auto_over_its_budget_says_so_in_the_holdout_notes(monkeypatch) -> None:
    monkeypatch.setattr(baselines_module, "STATISTICAL_BUDGET_S", 0.0)
    panel = pd.DataFrame({"id": np.repeat(["a", "b", "c"], 40),
                          "y": np.tile(_seasonal(t=40, c=1)[:, 0], 3)})  # fmt: skip
    f = Forecaster("elman", horizon=4, lookback=2, hidden_size=4, epochs=1, progress=False,
                   series_id="id", target="y")  # fmt: skip
    series = load_series(panel, f.config.data)
    f.fit(split_holdout(series, 4))
    result = evaluate_holdout(f.predictor, series, 4)
    assert set(result.metrics) == {"model", *FAST}
    assert result.notes[-1].startswith("ets and theta were not fitted: 3 fits would take")


def test_a_history_is_fitted_once_and_its_forecast_cannot_be_changed_by_a_caller(monkeypatch):
    fits = []
    real = statistical._model

    def counting(method, season, form=None):
        fits.append(method)
        return real(method, season, form)

    monkeypatch.setattr(statistical, "_model", counting)
    monkeypatch.setattr(statistical, "_FITTED", {})  # nothing kept from other tests
    y = 50 + np.sin(np.arange(120) / 4) + np.arange(120) * 0.1
    first = statistical.forecast_column("theta", y, 6, 12)
    first[:] = 0.0  # the caller's copy
    second = statistical.forecast_column("theta", y.copy(), 6, 12)
    assert fits == ["theta"] and not np.allclose(second, 0.0)
    statistical.forecast_column("theta", y + 1.0, 6, 12)  # another history: another fit
    statistical.forecast_column("theta", y, 7, 12)  # another horizon: another fit
    assert fits == ["theta", "theta", "theta"]


def test_a_fit_of_the_chosen_form_gives_the_automatic_forecast_and_skips_the_search(monkeypatch):
    from statsforecast.models import AutoETS, AutoTheta

    rng = np.random.default_rng(5)
    t = np.arange(150)
    y = 80 + 0.3 * t + 6 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 150)
    monkeypatch.setattr(statistical, "_FITTED", {})
    for method, model in (("ets", AutoETS), ("theta", AutoTheta)):
        auto = statistical.forecast_column(method, y, 8, 12)
        form = statistical.chosen_form(method, y, 8, 12)
        assert form is not None
        np.testing.assert_array_equal(auto, model(season_length=12).forecast(y=y, h=8)["mean"])
        np.testing.assert_array_equal(statistical.forecast_column(method, y, 8, 12, form), auto)
    ets = statistical.chosen_form("ets", y, 8, 12)
    assert ets is not None and len(ets) == 4 and ets[3] in "DN"  # error, trend, season, damped
    made = []
    real = statistical._model
    monkeypatch.setattr(statistical, "_model", lambda m, s, f=None: made.append(f) or real(m, s, f))
    statistical.forecast_column("ets", y[:-5], 8, 12, ets)
    assert made == [ets]  # one model of that form, not the search over every form


def test_a_form_that_does_not_suit_a_history_gives_way_to_the_automatic_fit(monkeypatch):
    monkeypatch.setattr(statistical, "_FITTED", {})
    y = np.sin(np.arange(60) / 3.0)  # negative values: a multiplicative error cannot be fitted
    forecast, note, used = statistical._fit_column("ets", y, 4, 1, "MNNN")
    want, _, chosen = statistical._fit_column("ets", y, 4, 1)
    np.testing.assert_array_equal(forecast, want)
    assert note is None and used == chosen and used is not None and used[0] == "A"


def test_a_large_panel_is_fitted_on_worker_processes_with_identical_forecasts(monkeypatch):
    rng = np.random.default_rng(3)
    panel = [50 + np.cumsum(rng.normal(size=n)) for n in (40, 61, 90, 90, 130)]
    panel.append(np.full(30, 2.0))  # constant: the naive fallback, the same in a worker
    monkeypatch.setattr(statistical, "_FITTED", {})
    here = [statistical.forecast_column("ets", y, 5, 4) for y in panel]
    forms = [statistical.chosen_form("ets", y[:-6], 5, 4) for y in panel]  # of shorter histories
    given = [
        statistical.forecast_column("ets", y, 5, 4, f) for y, f in zip(panel, forms, strict=True)
    ]
    monkeypatch.setattr(statistical, "_FITTED", {})
    monkeypatch.setattr(statistical, "PARALLEL_SECONDS", 0.0)  # this small panel counts as large
    monkeypatch.setattr(statistical, "fit_workers", lambda: 2)
    monkeypatch.setattr(statistical, "_model", None)  # any fit in this process would fail
    monkeypatch.setattr(statistical, "_fit_column", None)
    statistical.prefit("ets", panel, 5, 4)
    statistical.prefit("ets", panel, 5, 4, forms)  # the same histories, of given forms
    assert forms[-1] is None  # the constant history: naive, so its "form" is the automatic fit
    assert len(statistical._FITTED) == 2 * len(panel) - 1
    for y, f, want, want_given in zip(panel, forms, here, given, strict=True):
        np.testing.assert_array_equal(statistical.forecast_column("ets", y, 5, 4), want)
        np.testing.assert_array_equal(statistical.forecast_column("ets", y, 5, 4, f), want_given)


def test_a_small_panel_is_left_to_fit_here(monkeypatch):
    monkeypatch.setattr(statistical, "_FITTED", {})
    statistical.prefit("theta", [np.arange(40.0), np.arange(50.0)], 3, 1)
    assert statistical._FITTED == {}  # under PARALLEL_SECONDS: forecast_column fits them


def test_fitting_processes_that_cannot_start_leave_the_fits_to_this_process(monkeypatch, caplog):
    monkeypatch.setattr(statistical, "_FITTED", {})
    monkeypatch.setattr(statistical, "PARALLEL_SECONDS", 0.0)
    monkeypatch.setattr(statistical, "fit_workers", lambda: 2)
    monkeypatch.setattr("sys.executable", "/nonexistent/python")
    panel = [np.arange(40.0) + i for i in range(4)]
    with caplog.at_level("WARNING", logger="elman.evaluation.statistical"):
        statistical.prefit("theta", panel, 3, 1)
    assert statistical._FITTED == {} and "fitting here" in caplog.text
    want = statistical._fit_column("theta", panel[0], 3, 1)[0]
    np.testing.assert_array_equal(statistical.forecast_column("theta", panel[0], 3, 1), want)


def test_a_failed_fitting_process_stops_the_others_and_the_fits_run_here(
    monkeypatch, caplog, tmp_path
):
    import os
    import stat

    fake = tmp_path / "python"  # one process fails once the other runs (for 60 s)
    fake.write_text(
        "#!/bin/sh\n"
        f'if mkdir "{tmp_path}/lock" 2>/dev/null; then\n'
        f'  for i in $(seq 100); do [ -s "{tmp_path}/pid" ] && exit 1; sleep 0.05; done; exit 1\n'
        "fi\n"
        f'echo $$ > "{tmp_path}/pid.tmp"; mv "{tmp_path}/pid.tmp" "{tmp_path}/pid"; exec sleep 60\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(statistical, "_FITTED", {})
    monkeypatch.setattr(statistical, "PARALLEL_SECONDS", 0.0)
    monkeypatch.setattr(statistical, "fit_workers", lambda: 2)
    monkeypatch.setattr("sys.executable", str(fake))
    with caplog.at_level("WARNING", logger="elman.evaluation.statistical"):
        statistical.prefit("theta", [np.arange(40.0) + i for i in range(4)], 3, 1)
    assert "fitting here" in caplog.text and statistical._FITTED == {}
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):  # stopped and reaped, not left running
        os.kill(pid, 0)
