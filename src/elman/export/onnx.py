"""ONNX export: forecasts in real units from one file, without elman (or torch) installed.

:func:`export_onnx` traces the two graphs of :mod:`elman.export.graphs` (the whole forecast,
and one streaming step), attaches metadata, writes both files atomically and, with
onnxruntime installed, checks them against PyTorch (:mod:`elman.export.check`).

Metadata (``metadata_props``, every value a JSON text): ``format``, ``format_version``,
``graph``, ``elman_version``, ``model``, ``strategy``, ``norm``, ``lookback``, ``horizon``,
``trained_horizon``, ``freq``, ``columns``, ``targets``, ``covariates``,
``future_covariates``, ``time_col``, ``series_col``, ``series_ids``, ``stored_series``,
``scaler`` (``kind``, ``center`` and ``scale`` per series), ``last_timestamp``,
``future_index``, ``context`` (the last ``L`` rows of each stored series; with ``padded``
true, a series shorter than ``L`` is padded in front with copies of its first row, which is
what a caller must do too), ``future_known``
(calendar features of the next ``H`` steps, ``null`` where a value must come from the user)
and, for the step graph, ``state_names``, ``state_shapes``, ``state_batch_axes``,
``step_outputs`` and ``highway``.

The TorchScript-based exporter is the default: it exports each graph in under a second,
the ``torch.export``-based one (``dynamo=True``) in 10-25 s, with the same results. The
fused Elman, RNN, GRU and LSTM training kernels switch themselves off during export
(:func:`elman.models.fused.fused_allowed`), so the graphs hold plain ONNX operators.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from elman._version import __version__
from elman.config import DEFAULT_OPSET
from elman.data.calendar import CALENDAR_PREFIX, calendar_features
from elman.data.prepare import window_values
from elman.data.series import Series
from elman.errors import ConfigError, DataError
from elman.export.check import (
    CHECK_TOL,
    check_export,
    context_inputs,
    placeholder_future,
    require,
    sequence_parity,
    step_parity,
)
from elman.export.graphs import (
    EXPORT_BATCH,
    SequenceGraph,
    StepGraph,
    floor_table,
    scaler_table,
    sequence_graph,
    sequence_io,
    series_index,
    state_batch_axes,
    step_graph,
)
from elman.files import atomic_write_bytes, check_output_file
from elman.forecasting.predictor import Fitted
from elman.runtime import quiet_loggers

__all__ = [
    "CHECK_TOL",
    "DEFAULT_OPSET",
    "EXPORT_BATCH",
    "MAX_UNROLL",
    "MIN_OPSET",
    "SequenceGraph",
    "StepGraph",
    "check_export",
    "check_export_horizon",
    "context_inputs",
    "export_onnx",
    "metadata",
    "placeholder_future",
    "read_metadata",
    "scaler_table",
    "sequence_graph",
    "sequence_parity",
    "state_batch_axes",
    "step_graph",
    "step_parity",
    "step_path_for",
]

log = logging.getLogger(__name__)

FORMAT = "elman-onnx"
FORMAT_VERSION = 1
MIN_OPSET = 11  # oldest opset every model type exports to (checked: 11, 13, 14, 17, 18, 20)
MAX_UNROLL = 1000  # longest horizon a recursive sequence graph unrolls


def step_path_for(path: str | Path) -> Path:
    """Where the step graph goes next to ``path``: ``model.onnx`` -> ``model.step.onnx``."""
    p = Path(path)
    stem = p.name[: -len(".onnx")] if p.name.endswith(".onnx") else p.name
    return p.with_name(f"{stem}.step.onnx")


def export_onnx(
    forecaster: Fitted,
    path: str | Path,
    *,
    horizon: int | None = None,
    step: bool = True,
    overwrite: bool = False,
    check: bool = True,
    opset: int = DEFAULT_OPSET,
    dynamo: bool = False,
) -> list[Path]:
    """Write the sequence graph to ``path`` and the step graph to :func:`step_path_for`.

    Args:
        forecaster: a fitted or loaded forecaster.
        path: output file, usually ``model.onnx``.
        horizon: forecast steps of the sequence graph; default the trained horizon. A
            recursive model may go further (up to :data:`MAX_UNROLL`), a direct one cannot.
        step: also write the step graph.
        overwrite: replace existing files.
        check: run both graphs with onnxruntime (if installed) on the stored data and
            compare them with PyTorch; raise if they differ by more than :data:`CHECK_TOL`.
        opset: ONNX opset version (>= :data:`MIN_OPSET`).
        dynamo: use the ``torch.export``-based exporter instead of the TorchScript one
            (slower to export, same graph semantics).

    Returns:
        The paths written: ``[path]`` or ``[path, step_path]``.

    Raises:
        ConfigError: an unsupported combination (horizon, opset, output file, missing
            ``onnx`` package, an unfitted forecaster).
    """
    forecaster.predictor.check_supports("ONNX export")
    model = forecaster.predictor.model
    h = check_export_horizon(forecaster, horizon)
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ConfigError(f"--opset ({opset}) must be an integer >= {MIN_OPSET}")
    out = Path(path)
    targets = [out, step_path_for(out)] if step else [out]
    for p in targets:
        check_output_file(p, overwrite, example="model.onnx")
    onnx = require("onnx")
    if dynamo:
        require("onnxscript")
    model.eval()
    seq = _to_onnx(sequence_graph(forecaster, h), sequence_io(forecaster, h), opset, dynamo)
    blobs = [_with_metadata(onnx, seq, metadata(forecaster, "sequence", h))]
    if step:
        graph, io_spec = step_graph(forecaster)
        raw = _to_onnx(graph, io_spec, opset, dynamo)
        blobs.append(_with_metadata(onnx, raw, metadata(forecaster, "step", h)))
    for p, blob in zip(targets, blobs, strict=True):
        atomic_write_bytes(p, blob)
    if check:
        check_export(forecaster, targets, h)
    return targets


def check_export_horizon(forecaster: Fitted, horizon: int | None) -> int:
    """The horizon of the sequence graph, or a ConfigError that says what would work."""
    p = forecaster.predictor
    sizes = p.sizes
    h = sizes.horizon if horizon is None else horizon
    if isinstance(h, bool) or not isinstance(h, int) or h < 1:
        raise ConfigError(f"--horizon ({h!r}) must be an integer >= 1")
    strategy = forecaster.predictor.config.model.strategy
    if strategy == "direct" and h > sizes.horizon:
        raise ConfigError(
            f"a direct model exports at most its trained horizon ({sizes.horizon}), asked for "
            f"{h}; export with --horizon {sizes.horizon} or retrain with --strategy recursive"
        )
    if strategy == "recursive" and h > MAX_UNROLL:
        raise ConfigError(
            f"a recursive sequence graph unrolls every step, so --horizon ({h}) must be <= "
            f"{MAX_UNROLL}; loop over the step graph (model.step.onnx) for longer forecasts"
        )
    return h


# The TorchScript exporter is deprecated in torch and warns about it, and nn.RNN's input
# checks warn while traced; the batch axis is declared dynamic and tested at batch sizes
# other than the traced one. The dynamo exporter warns that nn.RNN's cached flat weights
# (views of registered parameters) are set during export, and that all inputs share one
# "batch" axis, which is the intent. None of these carries information for our graphs.
_QUIET = (
    (DeprecationWarning, ""),
    (FutureWarning, ""),
    (torch.jit.TracerWarning, ""),
    (UserWarning, "Exporting a model to ONNX with a batch_size other than 1"),
    (UserWarning, "The tensor attributes .*_flat_weights"),
    (UserWarning, "# The axis name: batch will not be used"),
)


def _to_onnx(module: nn.Module, spec: dict[str, Any], opset: int, dynamo: bool) -> bytes:
    """Trace ``module`` on ``spec['args']`` and return the serialised ONNX model."""
    sink = io.StringIO()
    with (
        warnings.catch_warnings(),
        torch.no_grad(),
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        for category, message in _QUIET:
            warnings.filterwarnings("ignore", message=message, category=category)
        if dynamo:
            with quiet_loggers(["torch.onnx", "torch.export", "onnxscript", "onnx_ir"]):
                return _dynamo_export(module, spec, opset)
        buf = io.BytesIO()
        torch.onnx.export(
            module,
            spec["args"],
            cast(Any, buf),  # the TorchScript exporter writes to any binary file object
            input_names=spec["inputs"],
            output_names=spec["outputs"],
            dynamic_axes=spec["dynamic"],
            opset_version=opset,
            dynamo=False,
        )
    return buf.getvalue()


def _dynamo_export(module: nn.Module, spec: dict[str, Any], opset: int) -> bytes:
    batch = torch.export.Dim("batch", min=1)
    per_input = [{axis: batch for axis in spec["dynamic"][name]} for name in spec["inputs"]]
    fixed = spec["fixed_args"]  # forward(fixed..., *rest): torch.export nests the rest
    shapes = (*per_input[:fixed], tuple(per_input[fixed:]))
    program = torch.onnx.export(
        module,
        spec["args"],
        input_names=spec["inputs"],
        output_names=spec["outputs"],
        dynamic_shapes=shapes,
        opset_version=opset,
        dynamo=True,
        verbose=False,
    )
    assert program is not None
    return bytes(program.model_proto.SerializeToString())


def _with_metadata(onnx: Any, raw: bytes, meta: dict[str, str]) -> bytes:
    proto = onnx.load_from_string(raw)
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "elman", __version__
    proto.doc_string = json.loads(meta["description"])
    onnx.checker.check_model(proto)
    return bytes(proto.SerializeToString())


# ---------------------------------------------------------------------- metadata
_SEQUENCE_DOC = (
    "elman sequence graph. Inputs: x [batch, lookback, columns] float64, the last lookback "
    "rows of a series in real units, columns as in metadata 'columns'{future}{series}. "
    "Output: y [batch, horizon, targets] float64, the forecast in real units."
)
_STEP_DOC = (
    "elman step graph. Inputs: x [batch, 1, model inputs] float32, one model-input row "
    "[targets, past covariates, next future covariates] scaled by metadata 'scaler' (and, "
    "with norm 'last', targets minus the window's last scaled target), and the state tensors "
    "{states} (zeros to start). Outputs: y [batch, {k}, targets] in the same units, and "
    "new_state_* to pass to the next call."
)


def metadata(forecaster: Fitted, graph: str, horizon: int) -> dict[str, str]:
    """The ``metadata_props`` of one graph; every value is JSON text."""
    p = forecaster.predictor
    sizes, layout = p.sizes, p.layout
    cfg, series = p.config, forecaster.series
    first = series[0]
    ids, center, scale = scaler_table(forecaster)
    multi = len(ids) > 1
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "graph": graph,
        "elman_version": __version__,
        "model": cfg.model.model,
        "strategy": cfg.model.strategy,
        "norm": cfg.data.norm,
        "lookback": sizes.lookback,
        "horizon": horizon,
        "trained_horizon": sizes.horizon,
        "freq": first.freq,
        "columns": first.columns,
        "targets": first.targets,
        "covariates": first.covariates,
        "future_covariates": first.future_covariates,
        "time_col": cfg.data.time_col or "time",
        "series_col": (cfg.data.series_id or "series") if first.series_id is not None else None,
        "series_ids": ids if multi else None,
        "scaler": {"kind": cfg.data.scaler, "center": center.tolist(), "scale": scale.tolist()},
        # per stored series and target, 1 where forecasts are floored at 0 when the window
        # has no negative target value (--nonnegative); the sequence graph applies it
        "floor": floor_table(forecaster, ids).astype(int).tolist(),
        "stored_series": [series_index(s, ids) for s in series],
        "last_timestamp": [str(s.index[-1]) for s in series],
        "future_index": [_future_index(s, horizon) for s in series],
        # a series shorter than the lookback is padded with copies of its first row
        "padded": sizes.padded,
        "context": [window_values(s, sizes).tolist() for s in series],
        "future_known": [_known_future(s, horizon) for s in series] if layout.n_future else None,
    }
    if graph == "sequence":
        meta["description"] = _SEQUENCE_DOC.format(
            future=", future [batch, horizon, future covariates] float64 in real units"
            if layout.n_future
            else "",
            series=", series [batch] int64, the index of each row's series in 'series_ids'"
            if multi
            else "",
        )
    else:
        graph_module, _ = step_graph(forecaster)
        zeros = graph_module.init_state(1)
        names = [f"state_{i}" for i in range(len(zeros))]
        k = sizes.horizon if cfg.model.strategy == "direct" else 1
        meta["state_names"] = names
        meta["state_batch_axes"] = state_batch_axes(graph_module)
        meta["state_shapes"] = [list(t.shape) for t in zeros]
        meta["step_outputs"] = k
        meta["highway"] = graph_module.highway.window if graph_module.highway else 0
        meta["description"] = _STEP_DOC.format(states=", ".join(names), k=k)
    return {k: json.dumps(v) for k, v in meta.items()}


def _future_index(series: Series, horizon: int) -> list[str] | None:
    try:
        return [str(v) for v in series.future_index(horizon)]
    except (DataError, ConfigError):
        return None


def _known_future(series: Series, horizon: int) -> list[list[float | None]]:
    """Future covariates of the next ``horizon`` steps that elman can compute (calendar)."""
    names = series.future_covariates
    out: list[list[float | None]] = [[None] * len(names) for _ in range(horizon)]
    if not any(n.startswith(CALENDAR_PREFIX) for n in names):
        return out
    cal = calendar_features(series.future_index(horizon), series.freq, series.season)
    for j, name in enumerate(names):
        if name in cal.columns:
            for i, v in enumerate(cal[name].to_numpy()):
                out[i][j] = float(v)
    return out


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded metadata of an exported graph (needs the ``onnx`` package)."""
    onnx = require("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in proto.metadata_props}
