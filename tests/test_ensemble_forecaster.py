"""A network with statistical members (--ensemble): its forecasts against the members'
own forecasts, save/load, determinism, and every command on an ensemble run."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from starlette.testclient import TestClient

from elman import Forecaster
from elman.config import Config, ensemble_members
from elman.errors import ConfigError
from elman.evaluation.baselines import BASELINES
from elman.evaluation.ensemble import (
    NETWORK,
    EnsemblePredictor,
    calibration_windows,
    choose_ensemble,
    selection_windows,
)
from elman.files import META
from elman.forecasting.predictor import Predictor
from elman.serving import ServeOptions, create_app

OPTIONS = {"horizon": 6, "hidden_size": 8, "epochs": 3, "seed": 0, "ensemble": "auto"}


@pytest.fixture(scope="module")
def ens_run(tmp_path_factory):
    """``elman train --ensemble auto`` on builtin:airline, small and short."""
    from elman.runs.workflows import train_run

    out = tmp_path_factory.mktemp("ens") / "run"
    cfg = Config().replace(source="builtin:airline", **OPTIONS)
    run = train_run(out, cfg)
    return out, run.forecaster


def test_members_are_named_in_one_line():
    assert ensemble_members("none") == ()
    assert ensemble_members("auto") == ("network", "ets", "theta", "naive")
    assert ensemble_members("network, theta") == ("network", "theta")
    with pytest.raises(ConfigError, match="'arima' is not a member"):
        Config().replace(ensemble="network,arima")
    with pytest.raises(ConfigError, match="must list network"):
        Config().replace(ensemble="theta,ets")


def test_the_forecast_is_the_weighted_sum_of_the_members_own_forecasts(ens_run):
    _, f = ens_run
    p = f.predictor
    assert isinstance(p, EnsemblePredictor) and f.ensemble is not None
    weights = f.ensemble.weights
    assert sum(weights.values()) == pytest.approx(1.0)
    s = f.series[0]
    parts = {NETWORK: Predictor.forecast_arrays(p, f.series, 6)[0]}  # the network alone
    for name in ("ets", "theta", "naive"):
        parts[name] = BASELINES[name].forecast(s.target_values, 6, 12)
    want = sum(w * parts[n] for n, w in weights.items())
    np.testing.assert_allclose(p.forecast_arrays(f.series, 6)[0], want, rtol=1e-12)
    cut = np.array([[120, 130]])  # the same at cutoffs, each member refitted there
    at = p.forecast_at_cutoffs(f.series, cut)
    for j, k in enumerate(cut[0]):
        head = [s.slice(0, int(k))]
        np.testing.assert_allclose(at[0, j], p.forecast_arrays(head, 6)[0], rtol=1e-9)


@pytest.fixture(scope="module")
def fitted():
    """The same ensemble fitted in Python on the whole series (no hold-out)."""
    return Forecaster(**OPTIONS).fit("builtin:airline")


def test_weights_come_from_the_validation_windows_and_are_deterministic(ens_run, fitted):
    _, f = ens_run
    sel = f.ensemble
    assert sel.loss <= min(sel.member_loss.values()) + 1e-12  # never worse than the best member
    assert sel.windows == 10  # the automatic validation part holds 10 windows here
    again = Forecaster(**OPTIONS).fit("builtin:airline")
    assert again.ensemble == fitted.ensemble  # same seed and data: same weights
    cut = selection_windows(f.series, [144 - 21], 6, 36)
    assert cut.shape == (1, 10) and cut[0, 0] == 144 - 21 and cut[0, -1] == 144 - 6


def test_save_and_load_give_identical_forecasts_and_intervals(ens_run, tmp_path):
    out, f = ens_run
    g = Forecaster.load(out)
    assert g.ensemble == f.ensemble
    pd.testing.assert_frame_equal(g.predict(intervals=(80,)), f.predict(intervals=(80,)))
    meta = json.loads((out / META).read_text())
    assert meta["ensemble"]["weights"] == f.ensemble.weights
    assert len(g.series[0]) == 144  # the whole history is kept: the members refit on it


def test_intervals_come_from_the_ensembles_own_validation_residuals(fitted):
    f = fitted
    ends = [len(f.series[0]) - f.sizes.val_size]
    chosen = choose_ensemble(f.predictor.network, f.series, ends, ensemble_members("auto"))
    assert chosen is not None and chosen.selection == f.ensemble
    cut = calibration_windows(f.series, ends, 6, f.sizes.lookback)
    assert cut.shape[1] >= chosen.cutoffs.shape[1]  # every window the validation part holds
    assert set(chosen.cutoffs[0]) <= set(cut[0])  # and the selection's among them
    want = f.predictor.calibration_at(f.series, cut, f.predictor.forecast_at_cutoffs(f.series, cut))
    assert f.calibration.windows == cut.shape[1]
    assert sorted(f.calibration.quantiles) == sorted(want.quantiles) != []
    for level, q in want.quantiles.items():
        np.testing.assert_array_equal(f.calibration.quantiles[level], q)


NEW = pd.DataFrame({"month": ["1961-01", "1961-02", "1961-03"],
                    "passengers": [420.0, 401.5, 455.0]})  # fmt: skip


def test_online_learning_updates_the_network_and_the_members_history(fitted, tmp_path):
    fitted.save(tmp_path / "ens")
    alone = Forecaster(**{**OPTIONS, "ensemble": "none"}).fit("builtin:airline")
    alone.save(tmp_path / "alone")  # the same network (same seed), trained without members
    g = Forecaster.load(tmp_path / "ens")
    # weights that use the network's own (online) forecast as well as every member
    g.ensemble = dataclasses.replace(
        g.ensemble, weights={NETWORK: 0.4, "ets": 0.3, "theta": 0.2, "naive": 0.1}
    )
    g.update(NEW)
    a = Forecaster.load(tmp_path / "alone").update(NEW)
    # the network learns exactly as it does alone: same predictions, same weights after
    np.testing.assert_array_equal(g.update_log.prediction, a.update_log.prediction)
    for x, y in zip(g.model.parameters(), a.model.parameters(), strict=True):
        assert torch.equal(x, y)
    # the members refit on the whole history, now 3 points longer
    s = g.series[0]
    assert len(s) == 144 + 3 and s.target_values[-3:, 0].tolist() == [420.0, 401.5, 455.0]
    parts = {NETWORK: a.predict()["passengers"].to_numpy()[:, None]}
    for name in ("ets", "theta", "naive"):
        parts[name] = BASELINES[name].forecast(s.target_values, 6, 12)
    want = sum(w * parts[n] for n, w in g.ensemble.weights.items())
    got = g.predict(intervals=(80,))
    np.testing.assert_allclose(got["passengers"], want[:, 0], rtol=1e-9)
    assert str(got.index[0]) == "1961-04" and "passengers_upper_80" in got
    g.save(tmp_path / "after")  # saved and loaded after the update: the same forecast
    pd.testing.assert_frame_equal(Forecaster.load(tmp_path / "after").predict(), g.predict())
    assert a.online_summary() == g.online_summary()  # primed on the network's lookback alike


def test_export_and_streaming_refuse_in_one_line_or_take_the_network_alone(ens_run, cli, tmp_path):
    out, f = ens_run
    r = cli("export", str(out), "--output", str(tmp_path / "m.onnx"))
    assert r.returncode == 2 and "ONNX export is not available for an ensemble" in r.stderr
    assert "--ensemble none" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "m.onnx").exists()
    r = cli("export", str(out), "--network-only", "--output", str(tmp_path / "m.onnx"))
    assert r.returncode == 0, r.stderr
    assert "network member of the ensemble" in r.stdout and "onnxruntime vs PyTorch" in r.stdout
    alone = f.network_member()
    assert alone.ensemble is None and f.ensemble is not None and alone.model is f.model
    assert len(alone.series[0]) == alone.sizes.lookback  # what the network reads
    r = cli("stream", "--model", str(out), "--input", str(tmp_path / "none.csv"))
    assert r.returncode == 2 and "is an ensemble" in r.stderr and "--network-only" in r.stderr
    (tmp_path / "in.txt").write_text("420\n401.5\n455\n")
    r = cli("stream", "--model", str(out), "--network-only", "--input", str(tmp_path / "in.txt"),
            "--output", str(tmp_path / "out.csv"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = (tmp_path / "out.csv").read_text().splitlines()[1:]
    assert len(rows) == 3  # the first: the network's own forecast of the next point
    want = alone.predict(horizon=1)["passengers"].iloc[0]
    assert float(rows[0].split(",")[2]) == pytest.approx(want, rel=1e-4)


def test_forecast_info_plot_and_backtest_work_with_an_ensemble(ens_run, cli, tmp_path):
    out, f = ens_run
    r = cli("forecast", str(out), "--intervals", "80")
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(pd.io.common.StringIO(r.stdout))
    np.testing.assert_allclose(got["passengers"], f.predict()["passengers"], rtol=1e-4)
    r = cli("info", str(out))
    assert r.returncode == 0 and "ensemble" in r.stdout and "validation window" in r.stdout
    assert "- **Ensemble**" in (out / "report.md").read_text()
    r = cli("backtest", "--data", "builtin:airline", "--horizon", "6", "--hidden-size", "8",
            "--epochs", "2", "--ensemble", "network,theta", "--folds", "2",
            "--out", str(tmp_path / "bt"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "model (lstm ensemble)" in r.stdout


def test_served_ensemble_forecasts_and_learns_from_observations(ens_run, tmp_path):
    out, f = ens_run
    with TestClient(create_app(out, ServeOptions(state=str(tmp_path / "st")))) as c:
        got = c.post("/v1/forecast", json={"series": "default"}).json()["forecast"]
        r = c.post("/v1/series/default/observations",
                   json={"observations": {"time": NEW["month"].tolist(),
                                          "passengers": NEW["passengers"].tolist()}})  # fmt: skip
        after = c.post("/v1/forecast", json={"series": "default"}).json()["forecast"]
    np.testing.assert_allclose(got["passengers"], f.predict()["passengers"].to_numpy())
    assert r.status_code == 200 and r.json()["applied"] == 3
    want = Forecaster.load(out).update(NEW).predict()
    assert after["time"][0] == "1961-04"
    np.testing.assert_allclose(after["passengers"], want["passengers"].to_numpy(), rtol=1e-12)


def test_a_resumed_ensemble_run_weighs_its_members_again(ens_run, tmp_path):
    import shutil

    from elman.runs.workflows import resume_config, train_run

    out, f = ens_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    cfg, _ = resume_config(copy)
    assert cfg.model.ensemble == "auto"
    again = train_run(copy, cfg, resume=True)
    assert again.resumed_from is not None and again.forecaster.ensemble == f.ensemble
    pd.testing.assert_frame_equal(Forecaster.load(copy).predict(), f.predict())


def test_auto_leaves_out_a_member_over_its_budget_and_says_so(monkeypatch, caplog):
    from elman.evaluation import ensemble as ens
    from elman.evaluation import statistical

    # ETS here: 11 windows + the forecast, about 1,500 points (the 10 windows after the
    # first at 0.4 of the cost: they reuse its form); at 1 s a point that is about 6 minutes
    # on 2 processes, over a one-minute budget; Theta at its cost per point is not
    monkeypatch.setattr(ens, "AUTO_BUDGET_S", 60.0)
    monkeypatch.setattr(statistical, "COST_S_PER_POINT", {"ets": 1.0, "theta": 1e-6})
    with caplog.at_level("WARNING", logger="elman.evaluation.ensemble"):
        f = Forecaster(**OPTIONS).fit("builtin:airline")
    assert "left out ets (about" in caplog.text
    assert "--ensemble network,ets,theta,naive" in caplog.text
    assert "ets" not in f.ensemble.member_loss and "theta" in f.ensemble.member_loss
    listed = Forecaster(**{**OPTIONS, "ensemble": "network,ets"}).fit("builtin:airline")
    assert "ets" in listed.ensemble.member_loss  # a member named in a list is always fitted
