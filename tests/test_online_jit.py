"""Compiled streaming kernels (numba) against the NumPy kernels, and the NumPy fallback."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from elman.config import OnlineConfig
from elman.data.scaling import Scaler
from elman.models import build_model
from elman.online.cells import fast_cell, jit_kernels
from elman.online.kernels import FlatParams, Optimizer, Rings, clip_gradient
from elman.online.learner import OnlineLearner

CASES = [  # model, options, inputs, targets, steps ahead
    ("lstm", {}, 2, 1, 3),
    ("lstm", {}, 3, 2, 2),
    ("rnn", {}, 2, 1, 3),
    ("rnn", {}, 3, 3, 1),
    ("elman", {}, 2, 1, 3),
    ("elman", {"bias": False}, 2, 2, 1),
]
# Positions trained, in stream order (the NumPy LSTM caches coefficients as the stream goes).
CHUNKS = [(0, 0), (0, 3), (2, 2), (6, 9), (10, 10), (12, 15), (15, 15), (16, 19), (25, 25)]


@pytest.fixture
def jit():
    kernels = jit_kernels()
    if kernels is None:
        pytest.skip("numba is not available (or ELMAN_NO_JIT is set)")
    return kernels


def _pair(name, options, n_in, n_t, ahead, steps=30, tbptt=6):
    """A NumPy cell and a compiled cell of one model on one set of rings, both stepped."""
    torch.manual_seed(0)
    model = build_model(name, n_in, n_t * ahead, 7, **options)
    rings = Rings(tbptt + 5 + ahead + 1, n_in, n_t, ahead)
    ref = fast_cell(model, FlatParams(model), rings, tbptt, jit=False)
    cell = fast_cell(model, FlatParams(model), rings, tbptt, jit=True)
    assert ref.jit is None and cell.jit is not None
    xs = np.random.default_rng(1).standard_normal((steps, n_in)).astype(np.float32)
    return ref, cell, rings, xs


def _push(cells, rings, xs, pos):
    slot = pos % rings.capacity
    rings.x[slot], rings.y[slot] = xs[pos], xs[pos, : rings.y.shape[1]]
    return [c.push(pos, rings.x[slot]).copy() for c in cells]


@pytest.mark.parametrize(("name", "options", "n_in", "n_t", "ahead"), CASES)
def test_compiled_cell_steps_and_gradients_equal_the_numpy_cell(
    jit, name, options, n_in, n_t, ahead
):
    ref, cell, rings, xs = _pair(name, options, n_in, n_t, ahead)
    chunks = iter(CHUNKS)
    first, last = next(chunks)
    for pos in range(len(xs)):
        y_ref, y = _push([ref, cell], rings, xs, pos)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
        while last + ahead <= pos:  # the targets of first .. last are in
            loss_ref, loss = ref.learn(first, last), cell.learn(first, last)
            assert loss == pytest.approx(loss_ref, rel=1e-5)
            scale = np.abs(ref.flat.grad).max()
            np.testing.assert_allclose(cell.flat.grad, ref.flat.grad, rtol=1e-4,
                                       atol=1e-6 * scale)  # fmt: skip
            for c in (ref, cell):  # the same update for both: the cells stay comparable
                c.flat.theta -= 0.05 * ref.flat.grad
                c.refresh()
            first, last = next(chunks, (10**9, 10**9))
    assert first == 10**9  # every chunk was trained
    for key, value in ref.arrays().items():  # the arrays a checkpoint holds
        np.testing.assert_allclose(cell.arrays()[key], value, rtol=1e-5, atol=1e-6)
    for a, b in zip(cell.state(), ref.state(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm", "rnn"])
def test_the_compiled_refresh_rebuilds_the_same_step(jit, name):
    ref, cell, rings, xs = _pair(name, {}, 2, 1, 3)
    for pos in range(5):
        _push([ref, cell], rings, xs, pos)
    change = np.random.default_rng(2).standard_normal(ref.flat.theta.size).astype(np.float32)
    for c in (ref, cell):
        c.flat.theta += 0.1 * change
        c.refresh()
    y_ref, y = _push([ref, cell], rings, xs, 5)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cell.head, ref.head, rtol=0, atol=0)


def test_a_chunk_longer_than_the_ring_is_refused(jit):
    _, cell, rings, xs = _pair("lstm", {}, 2, 1, 3)
    for pos in range(len(xs)):
        _push([cell], rings, xs, pos)
    with pytest.raises(ValueError, match="longer than the ring"):
        cell.learn(5, 20)
    with pytest.raises(ValueError, match="input row"):
        cell.push(len(xs), np.zeros(3, np.float32))


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_the_compiled_optimizer_step_is_the_numpy_step_bit_for_bit(jit, kind):
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(300).astype(np.float32)
    ref, mine = Optimizer(kind, 300, 0.01), Optimizer(kind, 300, 0.01)
    mine.jit = jit
    theta_ref, theta_mine = theta.copy(), theta.copy()
    for _ in range(6):
        g = rng.standard_normal(300).astype(np.float32) * 1e-3
        ref.step(theta_ref, g.copy())
        mine.step(theta_mine, g.copy())
    np.testing.assert_array_equal(theta_mine, theta_ref)
    np.testing.assert_array_equal(mine.m, ref.m)
    np.testing.assert_array_equal(mine.v, ref.v)


@pytest.mark.parametrize("max_norm", [None, 0.5, 1e6])
def test_compiled_clipping_matches_numpy_and_torch(jit, max_norm):
    g = np.random.default_rng(4).standard_normal(500).astype(np.float32) * 3
    ref, mine = g.copy(), g.copy()
    norm_ref = clip_gradient(ref, max_norm)
    norm = jit.clip_gradient(mine, float(max_norm or 0.0))
    assert norm == pytest.approx(norm_ref, rel=1e-6)
    assert norm == pytest.approx(float(torch.linalg.vector_norm(torch.from_numpy(g))), rel=1e-6)
    np.testing.assert_allclose(mine, ref, rtol=1e-6)


def test_compiled_clipping_reports_a_non_finite_gradient_and_leaves_it(jit):
    for bad in (np.inf, np.nan, 1e30):  # 1e30 squared overflows float32, as in NumPy
        g = np.ones(10, np.float32)
        g[3] = bad
        before = g.copy()
        assert not np.isfinite(jit.clip_gradient(g, 1.0))
        with np.errstate(over="ignore", invalid="ignore"):
            assert not np.isfinite(clip_gradient(before.copy(), 1.0))
        np.testing.assert_array_equal(g, before)


def _learner(name, u, optimizer="adam"):
    torch.manual_seed(0)
    cfg = OnlineConfig(tbptt=8, update_every=u, lr=3e-3, optimizer=optimizer)
    return OnlineLearner(build_model(name, 1, 1, 12), Scaler().fit(np.arange(20.0)), config=cfg)


@pytest.mark.parametrize("name", ["lstm", "rnn", "elman"])
@pytest.mark.parametrize(("u", "optimizer"), [(1, "adam"), (16, "adam"), (3, "sgd")])
def test_a_compiled_learner_follows_the_numpy_learner(jit, monkeypatch, name, u, optimizer):
    values = 10 + 5 * np.sin(np.arange(400) / 6.0)
    values += np.random.default_rng(5).standard_normal(400)
    fast = _learner(name, u, optimizer)
    monkeypatch.setenv("ELMAN_NO_JIT", "1")
    ref = _learner(name, u, optimizer)
    assert fast.kernel.jit is not None and ref.kernel.jit is None
    log, log_ref = fast.observe(values), ref.observe(values)
    assert fast.updates == ref.updates > 0
    # Adam divides by the root of small second moments, which magnifies float32 rounding
    # over hundreds of updates; predictions stay within 1e-4 of values near 10.
    np.testing.assert_allclose(log.prediction, log_ref.prediction, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(log.anomaly, log_ref.anomaly)
    np.testing.assert_allclose(fast.flat.theta, ref.flat.theta, rtol=0, atol=1e-4)


def test_checkpoints_move_between_compiled_and_numpy_learners(jit, monkeypatch):
    values = np.sin(np.arange(300) / 5.0)
    a = _learner("lstm", 2)
    a.observe(values[:200])
    tensors, meta = a.checkpoint()
    monkeypatch.setenv("ELMAN_NO_JIT", "1")
    b = OnlineLearner.from_checkpoint(build_model("lstm", 1, 1, 12), tensors, meta)
    assert b.kernel.jit is None and type(b.kernel) is type(a.kernel)
    np.testing.assert_allclose(b.observe(values[200:]).prediction,
                               a.observe(values[200:]).prediction, atol=1e-5)  # fmt: skip


def test_elman_no_jit_selects_the_numpy_kernels(monkeypatch):
    monkeypatch.setenv("ELMAN_NO_JIT", "1")
    assert jit_kernels() is None
    learner = _learner("lstm", 1)
    assert learner.fast and learner.kernel.jit is None and learner.opt.jit is None
    model = build_model("rnn", 1, 1, 4)
    with pytest.raises(ImportError, match="numba"):
        fast_cell(model, FlatParams(model), Rings(8, 1, 1, 1), 4, jit=True)
    learner.observe(np.sin(np.arange(50.0)))
    assert learner.updates > 0


def test_without_numba_the_numpy_kernels_run(monkeypatch):
    monkeypatch.delenv("ELMAN_NO_JIT", raising=False)
    monkeypatch.setitem(sys.modules, "elman.online.jit", None)  # the import fails
    assert jit_kernels() is None
    learner = _learner("elman", 4)
    assert learner.fast and learner.kernel.jit is None
    learner.observe(np.sin(np.arange(50.0)))
    assert learner.updates > 0


def test_numba_is_imported_only_for_a_fast_cell():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import elman, elman.cli, elman.online.learner, elman.online.stream
        from elman.data.scaling import Scaler
        from elman.models import build_model
        from elman.online.learner import OnlineLearner
        assert "numba" not in sys.modules, "numba imported with the package"
        OnlineLearner(build_model("gru", 1, 1, 4), Scaler().fit(np.arange(9.0)))
        assert "numba" not in sys.modules, "numba imported for a torch-path model"
        learner = OnlineLearner(build_model("lstm", 1, 1, 4), Scaler().fit(np.arange(9.0)))
        print(learner.kernel.jit is not None, "numba" in sys.modules)
        """
    )
    env = {**os.environ, "ELMAN_NO_JIT": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)  # fmt: skip
    expected = str(importlib.util.find_spec("numba") is not None)
    assert out.stdout.split() == [expected, expected]
