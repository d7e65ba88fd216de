"""ES-RNN: the smoothing recursion, the loss, gradients, causality, fit / save / load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from elman import Forecaster
from elman.errors import ConfigError, DataError
from elman.forecasting.esrnn import fit_new_series
from elman.models.esrnn import (
    ESRNN,
    DilatedLSTM,
    aligned_start,
    level_wiggliness,
    pad_rows,
    pinball,
)


def holt_winters(y, alpha, gammas, inits):
    """Plain multiplicative Holt-Winters (level and one or two seasons), one step at a time."""
    seasons = [list(s) for s in inits]
    levels = []
    level = None
    for t, v in enumerate(y):
        cur = [s[t] for s in seasons]
        total = np.prod(cur)
        level = v / total if level is None else alpha * v / total + (1 - alpha) * level
        levels.append(level)
        for j, s in enumerate(seasons):
            others = np.prod([c for k, c in enumerate(cur) if k != j])
            s.append(gammas[j] * v / (level * others) + (1 - gammas[j]) * cur[j])
    return np.array(levels), [np.array(s) for s in seasons]


def _model(seasons=(4,), n_series=2, window=5, horizon=3) -> ESRNN:
    torch.manual_seed(0)
    season2 = seasons[1] if len(seasons) > 1 else 0
    m = ESRNN(1, horizon, hidden_size=8, num_layers=2, window=window, season=seasons[0],
              season2=season2, n_series=n_series)  # fmt: skip
    with torch.no_grad():
        m.level_logit.copy_(torch.linspace(-1, 1, n_series))
        m.season_logit.copy_(
            torch.linspace(-2, 0.5, m.season_logit.numel()).view_as(m.season_logit)
        )
        m.init_season.normal_(0, 0.2)
    return m.double()


@pytest.mark.parametrize("seasons", [(4,), (3, 6)])
def test_smoothing_matches_a_plain_holt_winters_loop(seasons):
    m = _model(seasons)
    rng = np.random.default_rng(1)
    ys = [rng.uniform(1, 3, 17), rng.uniform(1, 3, 11)]  # the second one padded
    y, lengths = pad_rows([torch.from_numpy(v) for v in ys])
    levels, rings = m.smooth(y, torch.tensor([0, 1]), lengths)
    for b, v in enumerate(ys):
        alpha = torch.sigmoid(m.level_logit[b]).item()
        gammas = torch.sigmoid(m.season_logit[b]).tolist()
        inits, lo = [], 0
        for s in seasons:
            inits.append(torch.exp(m.init_season[b, lo : lo + s]).tolist())
            lo += s
        want_l, want_s = holt_winters(v, alpha, gammas, inits)
        n = len(v)
        np.testing.assert_allclose(levels[b, :n].detach().numpy(), want_l, rtol=1e-12)
        for ring, want, s in zip(rings, want_s, seasons, strict=True):
            np.testing.assert_allclose(ring[b, : n + s].detach().numpy(), want, rtol=1e-12)


def test_pinball_loss_matches_hand_values():
    pred = torch.tensor([1.0, 1.0, 1.0])
    target = torch.tensor([3.0, 1.0, 0.5])
    # tau * (y - f) above the forecast, (1 - tau) * (f - y) below
    torch.testing.assert_close(pinball(pred, target, 0.48), torch.tensor([0.96, 0.0, 0.26]))


def test_level_wiggliness_is_the_mean_squared_second_difference_of_valid_steps():
    log_level = torch.tensor([[0.0, 1.0, 4.0, 9.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0]])
    got = level_wiggliness(log_level, torch.tensor([4, 5]))
    torch.testing.assert_close(got, torch.tensor([2.0**2, (1.0 + 4.0 + 1.0) / 3]))


def test_gradients_reach_every_series_parameter_and_the_network():
    m = _model((4,), n_series=2)
    y, lengths = pad_rows([torch.rand(20, dtype=torch.float64) + 1 for _ in range(2)])
    pred, log_level, log_season = m(y, torch.tensor([0, 1]), lengths)
    target = m.targets(y, log_level, log_season)
    (
        pinball(pred, target, 0.48).nan_to_num().mean()
        + level_wiggliness(log_level, lengths).mean()
    ).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert (m.level_logit.grad != 0).all() and (m.init_season.grad != 0).all(dim=1).all()


def test_dilated_lstm_has_the_right_shape_and_no_output_reads_a_later_input():
    torch.manual_seed(0)
    layer = DilatedLSTM(3, 5, dilation=4)
    x = torch.randn(2, 11, 3)
    out = layer(x)
    assert out.shape == (2, 11, 5)
    later = x.clone()
    later[:, 7:] += 10.0
    torch.testing.assert_close(layer(later)[:, :7], out[:, :7])
    # step 6 continues step 2 (dilation 4), never steps 3 .. 5
    other = x.clone()
    other[:, 3:6] += 10.0
    torch.testing.assert_close(layer(other)[:, 6], out[:, 6])


def test_aligned_start_keeps_the_seasonal_phase():
    assert aligned_start(100, None, 12) == 0
    assert aligned_start(100, 200, 12) == 0
    start = aligned_start(1000, 300, 52)
    assert start % 52 == 0 and 1000 - 300 <= start < 1000 - 300 + 52


def _panel(n_series=4, length=72, season=12, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_series):
        t = np.arange(length + 3 * i)
        y = (
            (5 + i)
            * (1 + 0.3 * np.sin(2 * np.pi * t / season))
            * np.exp(rng.normal(0, 0.02, len(t)))
        )
        frames.append(pd.DataFrame({"id": f"s{i}", "t": t, "y": y}))
    return pd.concat(frames, ignore_index=True)


def _forecaster(**kw) -> Forecaster:
    opts = dict(horizon=4, season=12, series_id="id", time_col="t", epochs=2, hidden_size=8,
                progress=False, threads=1, history=48)  # fmt: skip
    return Forecaster("esrnn", **{**opts, **kw})


def test_default_window_is_two_horizons_and_a_panels_grows_to_a_season_it_holds():
    from elman.data.prepare import load_series
    from elman.training.esrnn import _sizes, default_window

    assert default_window(13, 52) == 26  # M4 Weekly, a single series
    assert default_window(13, 52, room=45) == 45  # its panel: the 80-point series hold 45
    assert default_window(13, 52, room=70) == 52  # never past a season
    assert default_window(13, 52, room=20) == 26  # never below two horizons
    assert default_window(8, 4, room=50) == 8  # a season shorter than two horizons: as before
    assert default_window(5, 1, room=50) == 12  # no season: as before
    panel = _forecaster().config
    series = load_series(_panel(), panel.data)
    assert _sizes(series, panel).lookback == 12  # 72-point series hold a season of 12
    assert _sizes(series[:1], panel).lookback == 8  # one series alone: two horizons
    given = _forecaster(lookback=10)
    assert _sizes(series, given.config).lookback == 10


def test_same_seed_gives_the_same_forecasts():
    a = _forecaster().fit(_panel()).predict()
    b = _forecaster().fit(_panel()).predict()
    pd.testing.assert_frame_equal(a, b)


def test_save_and_load_give_identical_forecasts_and_intervals(tmp_path):
    f = _forecaster().fit(_panel())
    before = f.predict(intervals=(80,))
    f.save(tmp_path / "m")
    after = Forecaster.load(tmp_path / "m").predict(intervals=(80,))
    pd.testing.assert_frame_equal(before, after)
    assert before["y"].gt(0).all()


def test_a_new_series_is_fitted_without_touching_the_network():
    f = _forecaster().fit(_panel())
    model = f.model
    assert isinstance(model, ESRNN)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    series = f.series_for(_panel(1, seed=3).assign(id="new"))
    values = [s.values[:, 0] for s in series]
    child = fit_new_series(model, values, f.config)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert child.n_series == model.n_series + 1
    assert child.blocks is model.blocks
    table = f.predict(data=_panel(1, seed=3).assign(id="new"))
    assert len(table) == 4 and np.isfinite(table["y"]).all()


def _categorised(n_series=4, seed=0) -> pd.DataFrame:
    data = _panel(n_series, seed=seed)
    return data.assign(cat=np.where(data["id"].isin(["s0", "s1"]), "Macro", "Micro"))


def test_categories_are_a_one_hot_input_saved_with_the_model(tmp_path):
    f = _forecaster(category="cat", ensemble="none").fit(_categorised())
    model = f.model
    assert isinstance(model, ESRNN)
    assert model.categories == ["Macro", "Micro"] and model.n_categories == 2
    assert model.get_buffer("series_category").tolist() == [0, 0, 1, 1]
    before = f.predict()
    f.save(tmp_path / "m")
    pd.testing.assert_frame_equal(before, Forecaster.load(tmp_path / "m").predict())
    from elman.cli.info import lines
    from elman.runs.directory import describe

    model_row = dict(lines(describe(tmp_path / "m")))["model"]
    assert model_row.endswith("2 categories (Macro, Micro)"), model_row
    # the network reads the category: swapping every series' category moves the forecasts
    model.get_buffer("series_category").copy_(torch.tensor([1, 1, 0, 0]))
    assert not np.allclose(f.predict()["y"], before["y"])


def test_a_new_series_needs_a_category_the_model_knows():
    f = _forecaster(category="cat").fit(_categorised())
    new = _categorised(1, seed=3).assign(id="new")
    table = f.predict(data=new)  # category Macro, known: its smoothing is fitted
    assert len(table) == 4 and np.isfinite(table["y"]).all()
    with pytest.raises(DataError, match=r"has category 'Other', but this ES-RNN was trained "
                       r"with the categories 'Macro', 'Micro'; give"):  # fmt: skip
        f.predict(data=new.assign(cat="Other"))
    # a training series continues without the column (the model knows its category); a new
    # series without it is refused
    continued = f.predict(data=_categorised().query("id == 's2'").drop(columns="cat"))
    assert len(continued) == 4
    with pytest.raises(DataError, match=r"'new'\) has no category, but this ES-RNN"):
        f.predict(data=new.drop(columns="cat"))


def test_a_category_column_must_hold_one_value_per_series_and_exist():
    data = _categorised()
    data.loc[3, "cat"] = "Micro"  # series s0 (rows 0-71) changes category at its row 3
    message = r"series 's0'\), column 'cat': category 'Micro' at row 5 differs from 'Macro'"
    with pytest.raises(DataError, match=message + r" at row 2; a series has one category"):
        _forecaster(category="cat").fit(data)
    with pytest.raises(DataError, match=r"column 'kind' not found .* \(use --category\)"):
        _forecaster(category="kind").fit(_categorised())
    with pytest.raises(ConfigError, match=r"'id' is given two roles \(series id and category\)"):
        _forecaster(category="id").fit(_categorised())
    with pytest.raises(ConfigError, match="--category feeds the network of --model esrnn only"):
        Forecaster("lstm", horizon=4, series_id="id", time_col="t", category="cat",
                   epochs=1).fit(_categorised())  # fmt: skip


def test_non_positive_values_are_refused_naming_column_and_row():
    data = _panel()
    data.loc[5, "y"] = 0.0
    with pytest.raises(DataError, match=r"column 'y': value 0 at .*5.* is not positive"):
        _forecaster().fit(data)


class _StopAfter:
    """A fit hook that asks for a stop once ``epoch`` epochs are complete."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def attach(self, trainer, series) -> None:
        def cb(t, rec) -> None:
            if t.state.epoch == self.epoch:
                t.stop_requested = True

        trainer.callbacks.append(cb)


def test_a_stopped_and_resumed_fit_equals_an_uninterrupted_one(tmp_path):
    from elman.training.resume import Checkpointer

    ref = _forecaster(epochs=3).fit(_panel())
    first = _forecaster(epochs=3).fit(_panel(), hooks=[Checkpointer(tmp_path), _StopAfter(1)])
    assert first.train_state is not None and first.train_state.interrupted
    again = _forecaster(epochs=3).fit(_panel(), hooks=[Checkpointer(tmp_path, resume=True)])
    for k, v in ref.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[k], v, rtol=0, atol=0)
    pd.testing.assert_frame_equal(ref.predict(), again.predict())


def test_onnx_export_and_online_updates_refuse_in_one_line_naming_what_works(tmp_path):
    f = _forecaster(epochs=1).fit(_panel())
    works = "it supports train, forecast, backtest, intervals, info, plot, save/load"
    with pytest.raises(ConfigError, match=f"^ONNX export is not available .*{works}"):
        f.export_onnx(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match=f"^online learning .* is not available .*{works}"):
        f.update(_panel(1).assign(id="s0"))


@pytest.mark.slow  # four CLI processes, about a minute on the shared 2-core machine
def test_cli_trains_forecasts_and_trains_on_two_ranks_like_one_process(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from conftest import run_cli
    from safetensors.torch import load_file

    data = tmp_path / "panel.csv"
    _panel().to_csv(data, index=False)
    common = ["--data", str(data), "--series-id", "id", "--time-col", "t", "--target", "y",
              "--model", "esrnn", "--horizon", "4", "--season", "12", "--epochs", "2",
              "--hidden-size", "8", "--history", "48", "--batch-size", "4",
              "--level-penalty", "5"]  # fmt: skip
    one, two = tmp_path / "run", tmp_path / "two"
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(run_cli, "train", *common, "--out", str(one))
        b = pool.submit(run_cli, "train", *common, "--nproc", "2", "--out", str(two))
        done, dist = a.result(), b.result()
    assert done.returncode == 0, done.stderr
    assert dist.returncode == 0, dist.stderr
    assert dist.stdout.count("hold-out:") == 1  # only rank 0 prints
    # each rank scores two of the four series of a batch; the averaged gradients are the
    # whole batch's, for the per-series smoothing parameters and the network alike
    w1, w2 = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert w1.keys() == w2.keys() and any(k.startswith("model.") for k in w1)
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=0, atol=1e-5, msg=name)
    assert (one / "components.png").is_file()
    fc = run_cli("forecast", str(one), "--intervals", "80")
    assert fc.returncode == 0, fc.stderr
    assert fc.stdout.count("s1,") == 4 and "y_lower_80" in fc.stdout
