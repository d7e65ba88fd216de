"""`elman tutorial` reproduces the seed system."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from elman.config import TutorialConfig
from elman.errors import ConfigError
from elman.tutorial import init_weights, predict_one_step, run_tutorial, seed_data, seed_network


def test_seed_data_is_the_seed_sine():
    t, x, y = seed_data()
    assert t.shape == (21,) and t[0] == 2 and t[-1] == 10
    np.testing.assert_allclose(x.numpy().ravel(), np.sin(np.linspace(2, 10, 21))[:-1], rtol=1e-6)
    np.testing.assert_allclose(y.numpy().ravel(), np.sin(np.linspace(2, 10, 21))[1:], rtol=1e-6)


def test_weights_are_drawn_with_the_seed_stds():
    cfg = TutorialConfig(hidden_size=200)
    w1, w2 = init_weights(cfg)
    assert w1.shape == (201, 200) and w2.shape == (200, 1)
    assert abs(float(w1.std()) - 0.4) < 0.01
    assert abs(float(w2.std()) - 0.3) < 0.05


def test_seed_run_beats_naive_and_matches_the_reference_numbers():
    r = run_tutorial(TutorialConfig())
    assert r.seed_run.one_step_mse < r.naive_mse
    # The seed reports about 0.056 against about 0.087 for the naive forecast.
    assert r.seed_run.one_step_mse == pytest.approx(0.056, abs=0.002)
    assert r.naive_mse == pytest.approx(0.0874, abs=0.0005)
    assert r.seed_run.steps == 300 * 20


def test_same_seed_same_numbers_different_seed_different_numbers():
    a = run_tutorial(TutorialConfig(seed=3, epochs=20))
    b = run_tutorial(TutorialConfig(seed=3, epochs=20))
    c = run_tutorial(TutorialConfig(seed=4, epochs=20))
    assert a.seed_run.predictions == b.seed_run.predictions
    assert a.seed_run.final_epoch_loss == b.seed_run.final_epoch_loss
    assert a.seed_run.predictions != c.seed_run.predictions


def test_epoch_callback_every_ten_epochs():
    seen = []
    run_tutorial(TutorialConfig(epochs=35), on_epoch=lambda e, loss: seen.append(e))
    assert seen == [0, 10, 20, 30]


def test_seed_network_module_reproduces_the_hand_written_step():
    _, x, _ = seed_data()
    w1, w2 = init_weights(TutorialConfig(seed=5))
    net = seed_network(w1, w2)
    with torch.no_grad():
        y, _ = net(x.unsqueeze(0))
    np.testing.assert_allclose(
        y.reshape(-1).numpy(), predict_one_step(x, w1, w2), rtol=1e-5, atol=1e-6
    )


def test_compare_reaches_target_and_is_recorded():
    r = run_tutorial(TutorialConfig(compare=True))
    assert r.modern_run is not None
    assert r.modern_run.one_step_mse <= 1e-3
    assert r.modern_run.time_to_target_s is not None
    assert "modern" in r.metrics() and "seed" in r.metrics()


def test_compare_with_adam_also_reaches_target():
    r = run_tutorial(TutorialConfig(epochs=1, compare=True, compare_optimizer="adam"))
    assert r.modern_run is not None and r.modern_run.one_step_mse <= 1e-3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": -1}, r"--epochs \(-1\) must be >= 0"),
        ({"hidden_size": 0}, r"--hidden-size \(0\) must be >= 1"),
        ({"lr": 0.0}, r"--lr \(0.0\) must be > 0"),
        ({"compare_optimizer": "sgd"}, r"--compare-optimizer 'sgd' is not one of: lbfgs, adam"),
    ],
)
def test_bad_config_messages(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TutorialConfig(**kwargs)


def test_cli_writes_png_and_json_and_prints_loss_lines(cli, tmp_path):
    res = cli("tutorial", "--out", str(tmp_path / "A"), "--compare")
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("Epoch: ")]
    assert len(lines) == 30 and lines[0].startswith("Epoch: 0 loss ")
    png = tmp_path / "A" / "tutorial.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = json.loads((tmp_path / "A" / "metrics.json").read_text())
    for key in ("final_epoch_loss", "one_step_mse", "wall_time_s", "steps_per_s"):
        assert key in m["seed"]
    assert m["naive_last_value_mse"] > m["seed"]["one_step_mse"]
    assert m["modern"]["one_step_mse"] <= 1e-3


def test_cli_two_runs_same_seed_identical_numbers(cli, tmp_path):
    outs = []
    for name in ("A", "B"):
        res = cli("tutorial", "--seed", "0", "--epochs", "30", "--out", str(tmp_path / name))
        assert res.returncode == 0, res.stderr
        outs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
        assert [ln for ln in res.stdout.splitlines() if ln.startswith("Epoch")]
    for m in outs:
        for key in ("wall_time_s", "steps_per_s"):
            m["seed"].pop(key)
    assert outs[0] == outs[1]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--epochs", "-3"], "--epochs (-3) must be >= 0"),
        (["--hidden-size", "0"], "--hidden-size (0) must be >= 1"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--epochs", "many"], "invalid int value: 'many'"),
    ],
)
def test_cli_bad_options_one_line_exit_2(cli, tmp_path, args, fragment):
    res = cli("tutorial", "--out", str(tmp_path / "o"), *args)
    assert res.returncode == 2
    assert fragment in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_cli_out_is_existing_file_is_refused_and_kept(cli, tmp_path):
    f = tmp_path / "precious.txt"
    f.write_text("keep me")
    res = cli("tutorial", "--out", str(f))
    assert res.returncode == 2 and "is an existing file" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert f.read_text() == "keep me"


def test_cli_refuses_non_empty_out_without_overwrite(cli, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mine.txt").write_text("x")
    res = cli("tutorial", "--epochs", "1", "--out", str(tmp_path / "d"))
    assert res.returncode == 2 and "--overwrite" in res.stderr
    res = cli("tutorial", "--epochs", "1", "--out", str(tmp_path / "d"), "--overwrite")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "d" / "mine.txt").read_text() == "x"


def test_debug_shows_traceback(cli, tmp_path):
    res = cli("--debug", "tutorial", "--epochs", "-1", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "Traceback" in res.stderr
