"""``--loss mse|mae|huber``: the batch losses against their formulas, and training with each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elman import Forecaster
from elman.config import Config
from elman.data.prepare import build_panel, load_series
from elman.data.scaling import Scaler
from elman.data.synthetic import sine
from elman.data.windows import make_batch
from elman.errors import ConfigError
from elman.forecasting.strategies import direct_forecast
from elman.models.registry import build_model
from elman.training.tasks import WindowTask, loss_function

# the network alone: an ensemble may give it weight 0, and the loss would not show
TINY = {"horizon": 4, "lookback": 12, "hidden_size": 8, "epochs": 3, "seed": 0, "ensemble": "none"}


def test_each_loss_is_its_formula():
    pred = torch.tensor([0.0, 0.5, 3.0, -2.0])
    target = torch.zeros(4)
    e = (pred - target).numpy()
    assert loss_function("mse")(pred, target).item() == pytest.approx(np.mean(e**2))
    assert loss_function("mae")(pred, target).item() == pytest.approx(np.mean(np.abs(e)))
    huber = np.where(np.abs(e) <= 1, 0.5 * e**2, np.abs(e) - 0.5)  # delta 1
    assert loss_function("huber")(pred, target).item() == pytest.approx(huber.mean())


def test_a_window_batch_is_scored_with_the_chosen_loss():
    (s,) = load_series(sine(200)[:, None], Config().data)
    panel = build_panel([s], [Scaler("standard").fit(s.values)])
    torch.manual_seed(0)
    model = build_model("lstm", 1, 4, 8, 1)
    starts = torch.arange(0, 64, 4)
    b = make_batch(panel, starts, 12, 4, "direct", "last")
    pred = direct_forecast(model, b.x, 4, 1)
    for name, oracle in (("mae", torch.nn.functional.l1_loss),
                         ("huber", torch.nn.functional.huber_loss)):  # fmt: skip
        task = WindowTask(panel, 12, 4, "direct", "last", loss=name)
        got, n = task.loss(model, starts, train=False)
        assert n == 16 and got.item() == pytest.approx(oracle(pred, b.y).item(), rel=1e-6)


def test_training_with_another_loss_changes_the_model_and_keeps_the_option(tmp_path):
    mse = Forecaster("lstm", **TINY).fit("builtin:airline")
    mae = Forecaster("lstm", loss="mae", **TINY).fit("builtin:airline")
    assert not np.allclose(mse.predict().to_numpy(), mae.predict().to_numpy())
    again = Forecaster("lstm", loss="mae", **TINY).fit("builtin:airline")
    np.testing.assert_array_equal(again.predict().to_numpy(), mae.predict().to_numpy())
    cfg = Config().replace(loss="huber")
    toml = tmp_path / "config.toml"
    toml.write_text(cfg.to_toml())
    assert Config.from_toml(toml).train.loss == "huber"
    tbptt = Forecaster("lstm", loss="huber", tbptt=16, norm="none", strategy="recursive",
                       horizon=1, hidden_size=8, epochs=2).fit("builtin:airline")  # fmt: skip
    assert np.isfinite(tbptt.predict().to_numpy()).all()


def test_unknown_losses_and_esrnn_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="--loss 'l2' is not one of: mse, mae, huber"):
        Config().replace(loss="l2")
    with pytest.raises(ConfigError, match="--model esrnn trains with its pinball loss"):
        Forecaster("esrnn", loss="mae", horizon=4, epochs=1).fit("builtin:airline")
