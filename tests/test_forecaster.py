"""The forecasting engine: every model x strategy, save/load, leakage, many series, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from elman.config import DataConfig
from elman.data.prepare import load_series
from elman.data.windows import Layout, Panel, make_batch
from elman.errors import CheckpointError, ConfigError, DataError
from elman.forecaster import Forecaster
from elman.models.registry import window_models
from elman.training.tasks import WindowTask

FAST = {"epochs": 2, "hidden_size": 8, "batch_size": 32, "progress": False}


def _sine(n: int = 240, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 24) + noise * rng.standard_normal(n)


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
@pytest.mark.parametrize("model", window_models())
def test_every_model_and_strategy_fits_and_forecasts(model, strategy):
    f = Forecaster(model, horizon=6, lookback=24, strategy=strategy, **FAST).fit(_sine())
    out = f.predict()
    assert out.shape == (6, 1)
    assert np.isfinite(out.to_numpy()).all()
    assert list(out.index) == list(range(240, 246))


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
@pytest.mark.parametrize("model", window_models())
def test_gradients_reach_every_parameter(model, strategy):
    # norm="none": with norm="last" the last input of a one-column window is 0 by
    # construction, so a 1x1 skip connection read only at that step gets no gradient.
    f = Forecaster(
        model, horizon=4, lookback=12, strategy=strategy, epochs=0, norm="none", progress=False
    )
    f.fit(_sine(80))
    assert f.trainer is not None
    task = f.trainer.task
    net = f.trainer.model.train()
    loss, _ = task.loss(net, torch.arange(8), True)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_recursive_forecast_may_exceed_trained_horizon():
    f = Forecaster("gru", horizon=3, lookback=24, strategy="recursive", **FAST).fit(_sine())
    assert f.predict(horizon=10).shape == (10, 1)


def test_direct_forecast_beyond_trained_horizon_is_refused():
    f = Forecaster("gru", horizon=3, lookback=24, **FAST).fit(_sine())
    with pytest.raises(ConfigError, match=r"at most its trained horizon \(3\), asked for 5"):
        f.predict(horizon=5)
    assert f.predict(horizon=2).shape == (2, 1)


def test_model_learns_a_sine_far_better_than_naive():
    y = _sine(600, noise=0.02)
    f = Forecaster("lstm", horizon=6, lookback=48, hidden_size=32, epochs=40, progress=False)
    f.fit(y[:-6])
    pred = f.predict().to_numpy().ravel()
    err = np.mean(np.abs(pred - y[-6:]))
    naive = np.mean(np.abs(y[-7] - y[-6:]))
    assert err < 0.3 * naive


def test_same_seed_same_predictions_other_seed_differs():
    y = _sine()
    a = Forecaster("lstm", horizon=4, lookback=24, seed=3, **FAST).fit(y).predict()
    b = Forecaster("lstm", horizon=4, lookback=24, seed=3, **FAST).fit(y).predict()
    c = Forecaster("lstm", horizon=4, lookback=24, seed=4, **FAST).fit(y).predict()
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_save_load_identical_predictions(tmp_path, strategy):
    f = Forecaster("gru", horizon=4, lookback=24, strategy=strategy, **FAST).fit("builtin:airline")
    f.save(tmp_path / "m")
    g = Forecaster.load(tmp_path / "m")
    pd.testing.assert_frame_equal(f.predict(), g.predict())
    pd.testing.assert_frame_equal(
        f.predict(data="builtin:airline"), g.predict(data="builtin:airline")
    )
    assert str(g.predict().index[0]) == "1961-01"


def test_corrupt_weights_raise_checkpoint_error(tmp_path):
    f = Forecaster("elman", horizon=2, lookback=12, **FAST).fit(_sine(100))
    f.save(tmp_path / "m")
    w = tmp_path / "m" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Forecaster.load(tmp_path / "m")


def test_windows_never_leak_across_splits():
    n, lookback, horizon, val = 100, 10, 5, 20
    values = torch.arange(n, dtype=torch.float32).reshape(-1, 1)
    panel = Panel([values], Layout(1))
    train_end = n - val
    train = panel.starts(lookback, horizon, [0], [train_end])
    valid = panel.starts(lookback, horizon, [train_end], [n])
    for strategy in ("direct", "recursive"):
        b = make_batch(panel, torch.from_numpy(train), lookback, horizon, strategy, "none")
        # values equal their row numbers, so the largest value seen is the largest row touched
        assert float(b.x.max()) < train_end and float(b.y.max()) < train_end
        v = make_batch(panel, torch.from_numpy(valid), lookback, horizon, "direct", "none")
        assert float(v.y.min()) >= train_end and float(v.y.max()) < n
    assert len(train) == train_end - lookback - horizon + 1


def test_window_batch_alignment_and_norm():
    values = torch.arange(50, dtype=torch.float32).reshape(-1, 1)
    panel = Panel([values], Layout(1))
    b = make_batch(panel, torch.tensor([3]), 4, 2, "direct", "last")
    assert b.ref.item() == 6.0  # last input row 3+4-1
    assert b.x.reshape(-1).tolist() == [-3.0, -2.0, -1.0, 0.0]
    assert b.y.reshape(-1).tolist() == [1.0, 2.0]
    r = make_batch(panel, torch.tensor([3]), 4, 2, "recursive", "none")
    assert r.x.reshape(-1).tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert r.y.reshape(-1).tolist() == [4.0, 5.0, 6.0, 7.0, 8.0]


def test_many_series_long_format_one_global_model():
    cfg = DataConfig(series_id="series")
    series = load_series("builtin:us_macro", cfg)
    f = Forecaster("gru", horizon=4, series_id="series", **FAST).fit(series)
    out = f.predict()
    assert out["series"].nunique() == 12
    assert len(out) == 12 * 4
    assert str(out.index[0]) == "2009Q4"
    assert np.isfinite(out["value"].to_numpy()).all()


def test_recursive_with_past_covariates_is_refused():
    df = pd.DataFrame({"y": _sine(120), "x": np.cos(np.arange(120))})
    with pytest.raises(ConfigError, match="past covariates are unknown"):
        Forecaster(
            "gru", horizon=3, strategy="recursive", target="y", covariates=["x"], **FAST
        ).fit(df)


def test_direct_with_past_and_future_covariates():
    t = np.arange(200)
    df = pd.DataFrame({"y": _sine(200), "x": np.cos(t), "promo": (t % 7 == 0) * 1.0})
    f = Forecaster(
        "lstm",
        horizon=3,
        lookback=12,
        target="y",
        covariates=["x"],
        future_covariates=["promo"],
        **FAST,
    ).fit(df)
    with pytest.raises(DataError, match="future covariate 'promo' is needed"):
        f.predict()
    out = f.predict(future=pd.DataFrame({"promo": [0.0, 1.0, 0.0]}))
    assert out.shape == (3, 1)


def test_calendar_features_are_generated_for_the_future():
    f = Forecaster("gru", horizon=6, calendar=True, **FAST).fit("builtin:airline")
    assert any(c.startswith("cal_") for c in f.series[0].future_covariates)
    assert f.predict().shape == (6, 1)


def test_tbptt_trains_and_needs_norm_none():
    with pytest.raises(ConfigError, match="add --norm none"):
        Forecaster("lstm", horizon=1, tbptt=16, **FAST).fit(_sine(300))
    for strategy in ("recursive", "direct"):
        f = Forecaster(
            "lstm",
            horizon=2,
            tbptt=16,
            norm="none",
            strategy=strategy,
            batch_size=4,
            epochs=2,
            hidden_size=8,
            progress=False,
        ).fit(_sine(300))
        assert f.predict().shape == (2, 1)


def test_too_short_series_says_how_many_points():
    with pytest.raises(DataError, match="needs at least 40"):
        Forecaster("gru", horizon=10, lookback=30, val_size=0, **FAST).fit(_sine(30))


def test_unknown_option_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown option 'hiden_size'; valid options:"):
        Forecaster("gru", hiden_size=3)


def test_predict_before_fit_is_a_clear_error():
    with pytest.raises(ConfigError, match="not fitted yet"):
        Forecaster("gru").predict()


def test_teacher_forcing_and_scheduled_sampling_run():
    f = Forecaster(
        "gru",
        horizon=4,
        lookback=16,
        strategy="recursive",
        teacher_forcing=0.5,
        scheduled_sampling=True,
        **FAST,
    ).fit(_sine())
    assert isinstance(f.trainer.task, WindowTask)
    assert f.trainer.task.tf == pytest.approx(0.0)  # decayed to zero by the last epoch
    assert np.isfinite(f.predict().to_numpy()).all()


def test_windows_are_cut_per_batch_not_materialised():
    n, lookback, horizon = 2_000_000, 168, 24
    panel = Panel([torch.zeros(n, 1)], Layout(1))
    # the panel holds each value once: no lookback-fold copy of the series
    assert panel.feats.untyped_storage().nbytes() == n * 4
    assert panel.targets.untyped_storage().nbytes() == n * 4
    starts = panel.starts(lookback, horizon, [0], [n])
    assert starts.dtype == np.int64 and len(starts) == n - lookback - horizon + 1
    b = make_batch(panel, torch.from_numpy(starts[:64]), lookback, horizon, "direct", "last")
    assert b.x.shape == (64, lookback, 1) and b.y.shape == (64, horizon, 1)
