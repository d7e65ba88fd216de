"""Forecast with an exported elman model using only numpy and onnxruntime.

Everything the forecast needs is in the ONNX file: the network, the scaler, the lookback,
the column names and (as metadata) the tail of the training data. So::

    python onnx_forecast.py model.onnx                     # continue the training data
    python onnx_forecast.py model.onnx --data recent.csv   # continue a CSV's last rows
    python onnx_forecast.py model.onnx --step              # same forecast, step graph

print a forecast table (CSV) in real units. ``--data`` reads a CSV with a header holding
the model's columns (see the metadata entry ``columns``); with several series, pick one
with ``--series ID`` (rows whose series column equals ID). ``--future`` gives the values of
future covariates for the forecast steps (a CSV with those columns, one row per step);
calendar features of the training data's continuation are stored in the file.

``--step`` runs ``model.step.onnx`` instead, one row at a time, the way a streaming
application would: scale, normalise, warm the state up over the window, then read the
direct forecast or feed predictions back (recursive).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def load(path: Path) -> tuple[ort.InferenceSession, dict]:
    """An onnxruntime session and its decoded metadata (every value is JSON)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = {k: json.loads(v) for k, v in sess.get_modelmeta().custom_metadata_map.items()}
    return sess, meta


def read_rows(path: Path, columns: list[str], key: str | None, value: str | None) -> np.ndarray:
    """The named columns of a CSV as float64 ``[T, len(columns)]`` (rows filtered by key)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if key is not None and value is not None:
        rows = [r for r in rows if r.get(key) == value]
    missing = [c for c in columns if rows and c not in rows[0]]
    if not rows or missing:
        sys.exit(f"{path}: no rows, or missing columns {missing}; need {columns}")
    return np.array([[float(r[c]) for c in columns] for r in rows], dtype=np.float64)


def inputs(args: argparse.Namespace, meta: dict) -> tuple[dict, list[list[str]], list[str]]:
    """Sequence-graph inputs ``x [B, L, C]``, ``future``, ``series``, the row labels, ids."""
    lookback, horizon = meta["lookback"], meta["horizon"]
    n_f = len(meta["future_covariates"])
    ids = meta["series_ids"] or [None]
    if args.data is None:  # continue every stored series
        x = np.asarray(meta["context"], dtype=np.float64)  # [S, L, C]
        which = list(meta["stored_series"])
        steps = [str(k) for k in range(1, horizon + 1)]
        labels = [fi or steps for fi in meta["future_index"]]  # None: frequency unknown
        known = meta["future_known"]
    else:
        rows = read_rows(args.data, meta["columns"], meta["series_col"], args.series)
        if len(rows) < lookback:
            sys.exit(f"{args.data}: {len(rows)} rows, the model needs the last {lookback}")
        x = rows[None, -lookback:]
        if meta["series_ids"] and args.series not in ids:
            sys.exit(f"--series {args.series!r} is not one of the model's series: {ids}")
        which = [ids.index(args.series) if meta["series_ids"] else 0]
        labels = [[str(k) for k in range(1, horizon + 1)]]
        known = [[[None] * n_f for _ in range(horizon)]]
    feeds = {"x": x}
    if n_f:
        fut = np.array(known, dtype=np.float64)  # None -> nan: values the user must give
        if args.future is not None:
            fut[:] = read_rows(args.future, meta["future_covariates"], None, None)[:horizon]
        if np.isnan(fut).any():
            sys.exit(f"future covariates {meta['future_covariates']} needed: pass --future CSV")
        feeds["future"] = fut  # [B, H, n_f]
    if meta["series_ids"]:
        feeds["series"] = np.asarray(which, dtype=np.int64)
    names = [meta["series_ids"][i] for i in which] if meta["series_ids"] else []
    return feeds, labels, names


def step_forecast(path: Path, meta: dict, feeds: dict) -> np.ndarray:
    """The sequence graph's forecast computed with the step graph: ``[B, H, n_t]``."""
    step, smeta = load(path)
    n_t, n_f, horizon = len(meta["targets"]), len(meta["future_covariates"]), meta["horizon"]
    n_obs = len(meta["columns"]) - n_f
    idx = feeds.get("series", np.zeros(len(feeds["x"]), dtype=np.int64))
    center = np.asarray(meta["scaler"]["center"])[idx][:, None]  # [B, 1, C]
    scale = np.asarray(meta["scaler"]["scale"])[idx][:, None]
    z = ((feeds["x"] - center) / scale).astype(np.float32)  # [B, L, C]
    rows = z[..., :n_obs]
    fut = None
    if n_f:
        fut = ((feeds["future"] - center[..., n_obs:]) / scale[..., n_obs:]).astype(np.float32)
        rows = np.concatenate([rows, np.concatenate([z[:, 1:, n_obs:], fut[:, :1]], 1)], 2)
    ref = rows[:, -1, :n_t].copy() if meta["norm"] == "last" else np.zeros_like(rows[:, -1, :n_t])
    rows[..., :n_t] -= ref[:, None]
    batch = len(rows)
    state = {}
    for name, shape, axis in zip(
        smeta["state_names"], smeta["state_shapes"], smeta["state_batch_axes"], strict=True
    ):
        shape[axis] = batch
        state[name] = np.zeros(shape, dtype=np.float32)

    def run(row: np.ndarray) -> np.ndarray:
        y, *new = step.run(None, {"x": row[:, None], **state})
        state.update(zip(smeta["state_names"], new, strict=True))
        return y  # [B, K, n_t]

    for t in range(rows.shape[1]):  # warm up over the window
        y = run(rows[:, t])
    if meta["strategy"] == "direct":
        pred = y[:, :horizon]
    else:
        preds = [y[:, 0]]
        for k in range(1, horizon):
            row = preds[-1] if fut is None else np.concatenate([preds[-1], fut[:, k]], 1)
            preds.append(run(row)[:, 0])
        pred = np.stack(preds, 1)
    pred = (pred + ref[:, None]).astype(np.float64)
    y = pred * scale[..., :n_t] + center[..., :n_t]
    # as the sequence graph: a target floored for this series (metadata "floor", absent in
    # files from older versions) whose window has no negative value stays at 0 or above
    stored = len(meta["scaler"]["center"])
    floor = np.asarray(meta.get("floor") or np.zeros((stored, n_t)), dtype=bool)[idx]
    calm = (feeds["x"][..., :n_t] >= 0).all(axis=1)  # [B, n_t]
    return np.where((floor & calm)[:, None], np.maximum(y, 0.0), y)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Forecast with an exported elman ONNX model.")
    p.add_argument("model", type=Path, help="the sequence graph, e.g. model.onnx")
    p.add_argument("--data", type=Path, help="CSV history with the model's columns")
    p.add_argument("--series", help="series id (several-series models)")
    p.add_argument("--future", type=Path, help="CSV of future covariates, one row per step")
    p.add_argument("--step", action="store_true", help="use NAME.step.onnx instead")
    args = p.parse_args(argv)
    sess, meta = load(args.model)
    feeds, labels, names = inputs(args, meta)
    if args.step:
        stem = args.model.name.removesuffix(".onnx")
        y = step_forecast(args.model.with_name(f"{stem}.step.onnx"), meta, feeds)
    else:
        y = sess.run(["y"], feeds)[0]  # [B, H, n_t], real units
    head = [meta["time_col"] if args.data is None else "step"]
    head += [meta["series_col"]] if names else []
    print(",".join(head + meta["targets"]))
    for b, rows in enumerate(y):
        for label, values in zip(labels[b], rows, strict=True):
            cells = [label] + ([names[b]] if names else []) + [repr(float(v)) for v in values]
            print(",".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
