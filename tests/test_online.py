"""Online learning: fast cells against torch, optimizer, metrics, drift, checkpoints, update()."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from elman.config import OnlineConfig
from elman.data.scaling import Scaler
from elman.data.synthetic import drifting_sine, sine
from elman.errors import ConfigError
from elman.forecaster import Forecaster
from elman.models import build_model
from elman.online.cells import fast_cell, jit_kernels
from elman.online.kernels import FlatParams, Optimizer, Rings, TorchStateful, clip_gradient
from elman.online.learner import OnlineLearner
from elman.online.metrics import RunningError

FAST = ["lstm", "rnn", "elman"]
# Both implementations of the fast cells: NumPy, and compiled (skipped without numba).
KERNELS = [
    "numpy",
    pytest.param("jit", marks=pytest.mark.skipif(jit_kernels() is None, reason="no numba")),
]


def _filled(
    name: str, n_in: int, n_out: int, steps: int, tbptt: int, seed: int = 0, kernels="numpy"
):
    """A model, its fast cell and a torch oracle, both stepped through the same inputs."""
    torch.manual_seed(seed)
    model = build_model(name, n_in, n_out, 6)
    rings = Rings(steps + 4, n_in, 1, n_out)
    flat, oracle_flat = FlatParams(model), FlatParams(model)
    cell = fast_cell(model, flat, rings, tbptt, jit=kernels == "jit")
    oracle = TorchStateful(model, oracle_flat, rings, tbptt)
    xs = np.random.default_rng(seed).standard_normal((steps, n_in)).astype(np.float32)
    outs = []
    for p in range(steps):
        rings.x[p], rings.y[p] = xs[p], xs[p, :1]
        outs.append(cell.push(p, rings.x[p]).copy())
        oracle.push(p, rings.x[p])
    return model, cell, oracle, xs, np.stack(outs)


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("name", FAST)
def test_fast_cell_outputs_match_the_torch_model(name, kernels):
    model, cell, _, xs, outs = _filled(name, 2, 3, 20, 5, kernels=kernels)
    with torch.no_grad():
        ref, state = model(torch.from_numpy(xs)[None])
    torch.testing.assert_close(torch.from_numpy(outs), ref[0])
    for mine, theirs in zip(cell.state(), state, strict=True):
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize(
    "chunks", [[(15, 15)], [(12, 15)], [(0, 3)], [(2, 2), (3, 3), (6, 9), (10, 10), (15, 15)]]
)
def test_fast_cell_gradient_matches_autograd(name, chunks, kernels):
    _, cell, oracle, _, _ = _filled(name, 2, 3, 20, 5, kernels=kernels)
    for first, last in chunks:  # later chunks reuse the cached coefficients of earlier ones
        loss = cell.learn(first, last)
        ref_loss = oracle.learn(first, last)
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        torch.testing.assert_close(
            torch.from_numpy(cell.flat.grad), torch.from_numpy(oracle.flat.grad),
            atol=1e-6, rtol=1e-4,
        )  # fmt: skip


def test_models_without_a_fast_cell_use_the_torch_path():
    for name, layers in [("gru", 1), ("tcn", 1), ("lstm", 2)]:
        model = build_model(name, 1, 1, 4, num_layers=layers)
        learner = OnlineLearner(model, Scaler().fit(np.arange(10.0)))
        assert not learner.fast
    assert OnlineLearner(build_model("lstm", 1, 1, 4), Scaler().fit(np.arange(10.0))).fast


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_optimizer_matches_torch(kind):
    torch.manual_seed(0)
    p = torch.randn(50, requires_grad=True)
    ref = torch.optim.Adam([p], lr=0.01) if kind == "adam" else torch.optim.SGD([p], lr=0.01)
    theta = p.detach().numpy().copy()
    mine = Optimizer(kind, 50, 0.01)
    for step in range(5):
        g = torch.randn(50, generator=torch.Generator().manual_seed(step))
        p.grad = g.clone()
        ref.step()
        mine.step(theta, g.numpy().copy())
    torch.testing.assert_close(torch.from_numpy(theta), p.detach())


def test_clip_gradient_matches_torch():
    g = torch.randn(40) * 10
    p = torch.zeros(40, requires_grad=True)
    p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_([p], 1.0)
    mine = g.numpy().copy()
    assert clip_gradient(mine, 1.0) == pytest.approx(float(norm), rel=1e-5)
    torch.testing.assert_close(torch.from_numpy(mine), p.grad)


def test_running_mae_is_pandas_ewm():
    errors = np.random.default_rng(1).standard_normal(300)
    metrics = RunningError(1, span=20, threshold=1e9, min_errors=0)
    got = [metrics.update((e,))[0] for e in errors]
    expected = pd.Series(np.abs(errors)).ewm(span=20, adjust=True).mean().to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_anomaly_flags_the_spike_only_and_clips_its_weight():
    metrics = RunningError(1, span=10, threshold=4.0, min_errors=10)
    errors = [0.1 * (-1) ** i for i in range(60)]
    errors[40] = 5.0
    flags = [metrics.update((e,))[1] for e in errors]
    assert [i for i, f in enumerate(flags) if f] == [40]
    assert metrics.anomalies == 1
    assert metrics.mae < 0.2  # the spike entered clipped at 4 x 0.1


def _stream(values, **options):
    torch.manual_seed(0)
    model = build_model("lstm", 1, 1, 16)
    learner = OnlineLearner(model, Scaler().fit(values[:50]), config=OnlineConfig(**options))
    return learner, learner.observe(values)


def test_running_error_falls_on_the_drifting_sine():
    values = drifting_sine(3000, noise=0.0)
    _, log = _stream(values, lr=3e-3)
    err = np.abs(log.error[:, 0])
    early, late = np.nanmean(err[20:520]), np.nanmean(err[-500:])
    assert late < 0.3 * early
    assert log.running_mae[-1] < 0.5 * log.running_mae[300]


def test_online_learning_tracks_the_drift_that_a_frozen_model_misses():
    values = drifting_sine(4000, period_start=50, period_end=20)
    learner, _ = _stream(values[:1500], lr=3e-3)
    frozen = OnlineLearner.from_checkpoint(
        build_model("lstm", 1, 1, 16), *learner.checkpoint(), where="test"
    )
    frozen.reconfigure(learn=False)
    rest = values[1500:]
    learning_err = np.abs(learner.observe(rest).error[:, 0])
    frozen_err = np.abs(frozen.observe(rest).error[:, 0])
    assert np.mean(learning_err[-1000:]) < 0.5 * np.mean(frozen_err[-1000:])


def _resumes_exactly(make):
    values = sine(400, period=23) + 0.05 * np.random.default_rng(0).standard_normal(400)
    a = make()
    a.observe(values[:250])
    tensors, meta = a.checkpoint()
    b = OnlineLearner.from_checkpoint(make().model, tensors, meta)
    np.testing.assert_array_equal(a.observe(values[250:]).prediction,
                                  b.observe(values[250:]).prediction)  # fmt: skip
    assert a.summary() == b.summary()


@pytest.mark.parametrize("name", ["lstm", "gru", "elman"])
@pytest.mark.parametrize("u", [1, 5])
def test_a_checkpoint_continues_bit_for_bit(name, u):
    def make():
        torch.manual_seed(3)
        cfg = OnlineConfig(tbptt=6, update_every=u, lr=1e-2)
        return OnlineLearner(build_model(name, 1, 1, 8), Scaler().fit(np.arange(9.0)), config=cfg)

    _resumes_exactly(make)


def test_a_non_finite_update_is_skipped_and_leaves_the_weights_alone():
    learner, _ = _stream(sine(200))
    before = learner.flat.theta.copy()
    learner.observe(np.array([[1e30], [0.5]]))
    assert learner.skipped_updates >= 1
    assert np.isfinite(learner.flat.theta).all()
    assert np.abs(learner.flat.theta - before).max() < 0.1


def test_online_config_names_the_bad_option():
    with pytest.raises(ConfigError, match=r"--tbptt \(0\) must be >= 1"):
        OnlineConfig(tbptt=0)
    with pytest.raises(ConfigError, match="--optimizer 'lbfgs'"):
        OnlineConfig(optimizer="lbfgs")
    learner, _ = _stream(sine(60))
    with pytest.raises(ConfigError, match="tbptt is fixed"):
        learner.reconfigure(tbptt=4)


# ---------------------------------------------------------------------- Forecaster.update


@pytest.fixture(scope="module")
def fitted_pair():
    values = drifting_sine(900)
    opts = dict(hidden_size=8, epochs=2, lookback=20, seed=0, val_size=0, threads=1)
    windowed = Forecaster("lstm", horizon=3, **opts).fit(values[:600])
    stateful = Forecaster("gru", norm="none", strategy="recursive", **opts).fit(values[:600])
    return values, windowed, stateful


@pytest.mark.parametrize("which", [0, 1])
def test_update_continues_after_the_new_data(fitted_pair, which, tmp_path):
    values, *models = fitted_pair
    f = Forecaster.load(models[which].save(tmp_path / "m"))
    new = pd.Series(values[600:700], index=pd.RangeIndex(600, 700), name="y")
    f.update(new.to_frame(), lr=1e-3)
    table = f.predict(horizon=3)
    assert list(table.index) == [700, 701, 702]
    assert np.isfinite(table.to_numpy()).all()
    assert [tuple(s.shape) for s in f.state][0][1:] == (1, 8)


@pytest.mark.parametrize("which", [0, 1])
def test_state_and_optimizer_are_saved_with_the_model(fitted_pair, which, tmp_path):
    values, *models = fitted_pair
    f = Forecaster.load(models[which].save(tmp_path / "a"))
    f.update(values[600:700])
    g = Forecaster.load(f.save(tmp_path / "b"))
    for a, b in zip(f.state, g.state, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    f.update(values[700:800])
    g.update(values[700:800])
    np.testing.assert_array_equal(f.predict(horizon=2).to_numpy(), g.predict(horizon=2).to_numpy())


def test_update_learns_the_new_regime(fitted_pair, tmp_path):
    values, _, stateful = fitted_pair
    before = Forecaster.load(stateful.save(tmp_path / "m"))
    after = Forecaster.load(stateful.save(tmp_path / "n"))
    first = after.update(values[600:800], lr=1e-2).update_log
    second = after.update(values[800:900]).update_log
    frozen = before.update(values[600:900], learn=False).update_log
    assert first is not None and second is not None and frozen is not None
    assert np.nanmean(np.abs(second.error)) < np.nanmean(np.abs(frozen.error[200:]))
    assert math.isfinite(float(np.nanmean(first.running_mae)))


def test_a_damaged_online_state_is_a_checkpoint_error(fitted_pair, tmp_path):
    import json

    from elman.errors import CheckpointError

    values, _, stateful = fitted_pair
    f = Forecaster.load(stateful.save(tmp_path / "a"))
    f.update(values[600:650])
    tensors, meta = f._online.checkpoint()
    meta["metrics"] = [1, 2]
    with pytest.raises(CheckpointError, match="online state does not fit"):
        OnlineLearner.from_checkpoint(f.model, tensors, json.loads(json.dumps(meta)))
    tensors, meta = f._online.checkpoint()
    tensors["theta"][0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        OnlineLearner.from_checkpoint(f.model, tensors, meta)
