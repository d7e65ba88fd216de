"""The compiled window kernel (one-layer LSTM on normalised windows) against the torch one."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from elman.config import OnlineConfig
from elman.data.scaling import Scaler
from elman.models import build_model
from elman.online.cells import LSTMWindow, fast_window, jit_kernels
from elman.online.kernels import FlatParams, Rings, TorchWindow
from elman.online.learner import OnlineLearner

pytestmark = pytest.mark.skipif(jit_kernels() is None, reason="numba is not available")

LOOKBACK = 6
CASES = [  # inputs, targets, steps ahead (direct) or 1 (recursive), direct, highway
    (1, 1, 3, True, True),
    (1, 1, 3, True, False),
    (3, 2, 2, True, True),
    (2, 1, 1, False, True),
    (3, 2, 1, False, False),
]


def _pair(n_in, n_t, ahead, direct, highway, steps=30):
    """The compiled and the torch window kernels of one model, on shared rings."""
    torch.manual_seed(0)
    options = {"highway": LOOKBACK, "highway_inputs": n_t} if highway else {}
    model = build_model("lstm", n_in, n_t * ahead, 7, **options)
    if highway:  # it starts at zero; give it weights so that the test sees it
        with torch.no_grad():
            model.linear.weight.normal_(0.0, 0.3)
            model.linear.bias.normal_(0.0, 0.3)
    rings = Rings(LOOKBACK + 3 + ahead + 1, n_in, n_t, ahead)
    window = fast_window(model, FlatParams(model), rings, LOOKBACK, n_t, direct)
    oracle_model = copy.deepcopy(model)
    oracle = TorchWindow(oracle_model, FlatParams(oracle_model), rings, LOOKBACK, n_t, direct)
    assert isinstance(window, LSTMWindow)
    xs = np.random.default_rng(1).standard_normal((steps, n_in)).astype(np.float32)
    return window, oracle, rings, xs


def _fill(rings, xs, pos):
    slot = pos % rings.capacity
    rings.x[slot], rings.y[slot] = xs[pos], xs[pos, : rings.y.shape[1]]
    return rings.x[slot]


@pytest.mark.parametrize(("n_in", "n_t", "ahead", "direct", "highway"), CASES)
def test_outputs_and_gradients_equal_the_torch_window(n_in, n_t, ahead, direct, highway):
    window, oracle, rings, xs = _pair(n_in, n_t, ahead, direct, highway)
    for pos in range(len(xs)):
        x = _fill(rings, xs, pos)
        mine, theirs = window.push(pos, x).copy(), oracle.push(pos, x)
        if pos < LOOKBACK - 1:
            assert np.isnan(mine).all() and np.isnan(theirs).all()
            continue
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
        done = pos - ahead
        for first in {done, done - 2}:  # one window, and three at once
            if done < LOOKBACK - 1 or first < 0:
                continue
            loss, ref_loss = window.learn(first, done), oracle.learn(first, done)
            assert loss == pytest.approx(ref_loss, rel=1e-5, abs=1e-7)
            np.testing.assert_allclose(
                window.flat.grad, oracle.flat.grad, rtol=1e-4, atol=1e-6
            )


def test_windows_before_the_first_full_one_give_no_update():
    window, oracle, rings, xs = _pair(1, 1, 3, True, True)
    for pos in range(LOOKBACK + 1):
        _fill(rings, xs, pos)
    assert window.learn(0, LOOKBACK - 2) is None
    assert oracle.learn(0, LOOKBACK - 2) is None


def test_the_state_is_read_from_the_current_weights():
    window, oracle, rings, xs = _pair(2, 1, 1, False, True)
    for pos in range(12):
        _fill(rings, xs, pos)
    window.flat.theta *= np.float32(0.5)  # as an optimizer step would change them
    oracle.flat.theta[...] = window.flat.theta
    oracle.refresh()
    for mine, theirs in zip(window.state(11), oracle.state(11), strict=True):
        torch.testing.assert_close(mine, theirs)


def _learner(model_name, fast, highway=True):
    torch.manual_seed(0)
    model = build_model(model_name, 1, 2, 8, **({"highway": LOOKBACK} if highway else {}))
    scaler = Scaler().fit(np.linspace(-1.0, 1.0, 50))
    return OnlineLearner(
        model, scaler, horizon=2, strategy="direct", norm="last", lookback=LOOKBACK,
        config=OnlineConfig(lr=0.01), fast=fast,
    )  # fmt: skip


def test_a_learner_on_windows_follows_the_torch_learner():
    values = np.sin(np.arange(80) / 3.0)[:, None] + 0.1 * np.arange(80)[:, None] / 80
    fast, slow = _learner("lstm", True), _learner("lstm", False)
    assert fast.fast and isinstance(fast.kernel, LSTMWindow)
    assert not slow.fast and type(slow.kernel) is TorchWindow
    log_fast, log_slow = fast.observe(values), slow.observe(values)
    assert fast.updates == slow.updates > 60
    np.testing.assert_allclose(log_fast.prediction, log_slow.prediction, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fast.flat.theta, slow.flat.theta, rtol=1e-3, atol=1e-4)
    model = fast.sync_model()
    torch.testing.assert_close(
        torch.nn.utils.parameters_to_vector(model.parameters()),
        torch.from_numpy(fast.flat.theta),
    )


def test_other_window_models_keep_the_torch_kernel(monkeypatch):
    assert type(_learner("gru", True).kernel) is TorchWindow
    assert isinstance(_learner("lstm", True, highway=False).kernel, LSTMWindow)
    monkeypatch.setenv("ELMAN_NO_JIT", "1")
    assert type(_learner("lstm", True).kernel) is TorchWindow


def test_the_fast_tanh_is_within_its_stated_error():
    jit = jit_kernels()
    x = np.concatenate([np.linspace(-12, 12, 200_001), [0.0, 1e-30, -1e-8, 40.0, -1e30]])
    x = x.astype(np.float32)
    got = np.array([jit.fast_tanh(v) for v in x], np.float64)
    assert np.abs(got - np.tanh(x.astype(np.float64))).max() < 3.3e-7
    assert np.isnan(jit.fast_tanh(np.float32("nan")))
    assert jit.fast_tanh(np.float32(np.inf)) == pytest.approx(1.0, abs=1e-7)
