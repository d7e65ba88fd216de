"""Parity of exported graphs: run them with onnxruntime and compare them with PyTorch.

Differences are reported in model units (divided by each target's scale), the units the
float32 network works in; see :mod:`elman.export.graphs` for why real units are float64.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from elman.data.calendar import CALENDAR_PREFIX
from elman.errors import ConfigError
from elman.export.graphs import scaler_table, series_index, step_graph
from elman.forecasting.predictor import Fitted

log = logging.getLogger(__name__)

CHECK_TOL = 1e-4  # export refuses a graph whose outputs differ more (model units)


def require(module: str) -> Any:
    """Import an optional package, or raise a ConfigError that says how to install it."""
    try:
        return __import__(module)
    except ImportError as exc:
        raise ConfigError(
            f"ONNX export needs the '{module}' package, which is not installed; "
            "install it with: pip install 'elman[onnx]'"
        ) from exc


def context_inputs(
    forecaster: Fitted, horizon: int, future: pd.DataFrame | None = None
) -> dict[str, np.ndarray]:
    """Sequence-graph inputs that continue every stored series (as ``predict()`` does).

    Args:
        forecaster: a fitted or loaded forecaster.
        horizon: forecast steps of the graph.
        future: values of non-calendar future covariates (as for ``predict``).

    Returns:
        ``{"x": [S, L, C], "future": [S, H, n_f]?, "series": [S]?}`` as numpy arrays.
    """
    from elman.data.prepare import future_block, window_values

    p = forecaster.predictor
    sizes, layout = p.sizes, p.layout
    ids = list(forecaster.predictor.scalers)
    series = forecaster.series
    feeds = {"x": np.stack([window_values(s, sizes) for s in series]).astype(np.float64)}
    if layout.n_future:
        cal = [c for c in series[0].future_covariates if c.startswith(CALENDAR_PREFIX)]
        blocks = [future_block(s, horizon, future, cal) for s in series]
        feeds["future"] = np.stack(blocks).astype(np.float64)  # [S, H, n_f]
    if len(ids) > 1:
        feeds["series"] = np.asarray([series_index(s, ids) for s in series], np.int64)
    return feeds


def placeholder_future(forecaster: Fitted, horizon: int) -> pd.DataFrame | None:
    """Zeros for every non-calendar future covariate, for checks that need some value."""
    names = [c for c in forecaster.series[0].future_covariates if not c.startswith(CALENDAR_PREFIX)]
    return pd.DataFrame({n: np.zeros(horizon) for n in names}) if names else None


def sequence_parity(forecaster: Fitted, path: str | Path, horizon: int) -> float:
    """Max difference between the sequence graph and ``forecast_arrays``, in model units.

    Runs onnxruntime on the stored series; differences are divided by each target's scale.
    """
    ort = require("onnxruntime")
    future = placeholder_future(forecaster, horizon)
    feeds = context_inputs(forecaster, horizon, future)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["y"], feeds)[0]  # [S, H, n_t]
    want = forecaster.predictor.forecast_arrays(forecaster.series, horizon, future)
    _, _, scale = scaler_table(forecaster)
    n_t = got.shape[-1]
    per = scale[feeds["series"]] if "series" in feeds else np.repeat(scale[:1], len(got), 0)
    return float(np.max(np.abs(got - want) / per[:, None, :n_t]))


def step_parity(forecaster: Fitted, path: str | Path) -> float:
    """Max difference between stepping the step graph and one PyTorch pass, in model units.

    Random model inputs are fed one row at a time for ``lookback`` steps; every output and
    the final state are compared with :meth:`StepGraph.reference`, whose last output is
    also checked against the model's own forward pass.
    """
    ort = require("onnxruntime")
    graph, _ = step_graph(forecaster)
    p = forecaster.predictor
    model, sizes, layout = p.model, p.sizes, p.layout
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, sizes.lookback, layout.input_size, generator=gen)  # [B, L, C_in]
    with torch.no_grad():
        want, want_state = graph.reference(x)  # [B, L, O]
        full, _ = model(x)
    diff = float((want[:, -1] - full[:, -1]).abs().max())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state = [s.numpy() for s in graph.init_state(3)]
    names = [i.name for i in sess.get_inputs()][1:]
    for t in range(sizes.lookback):
        feeds = {"x": x[:, t : t + 1].numpy(), **dict(zip(names, state, strict=True))}
        y, *state = sess.run(None, feeds)
        diff = max(diff, float(np.abs(y.reshape(3, -1) - want[:, t].numpy()).max()))
    for got, ref in zip(state, want_state, strict=True):
        diff = max(diff, float(np.abs(got - ref.numpy()).max()))
    return diff


def check_export(forecaster: Fitted, paths: list[Path], horizon: int) -> dict[str, float]:
    """Run the written graphs with onnxruntime against PyTorch (see the ``*_parity`` functions).

    Args:
        forecaster: the forecaster that was exported.
        paths: ``[sequence_path]`` or ``[sequence_path, step_path]``.
        horizon: the sequence graph's horizon.

    Returns:
        Max abs difference per graph in model units; empty if onnxruntime is not installed.

    Raises:
        RuntimeError: a graph differs by more than :data:`CHECK_TOL` (a bug, not a user error).
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.warning("onnxruntime is not installed; skipping the parity check of the export")
        return {}
    diffs = {"sequence": sequence_parity(forecaster, paths[0], horizon)}
    if len(paths) > 1:
        diffs["step"] = step_parity(forecaster, paths[1])
    log.info("ONNX parity with PyTorch (max abs difference, model units): %s", diffs)
    for graph, diff in diffs.items():
        if not diff <= CHECK_TOL:
            raise RuntimeError(
                f"the exported {graph} graph differs from PyTorch by {diff:.3g} (> {CHECK_TOL}); "
                "please report this with the model's model.json"
            )
    return diffs
