"""The two worked examples of docs/streaming.md, with their pictures and numbers.

1. A sine whose frequency drifts (period 50 -> 20 over 6,000 points), learned online by a
   fresh LSTM, next to a copy that stops learning after 1,500 points.
2. The weekly Mauna Loa CO2 series replayed as a stream through ``run_stream`` (what
   ``elman stream`` runs), with the anomalies it flags.

Usage::

    python examples/streaming.py                 # writes docs/img/stream_*.png
    python examples/streaming.py --out /tmp/img  # somewhere else
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from elman.config import OnlineConfig
from elman.data.datasets import dataset_path
from elman.data.scaling import Scaler
from elman.data.synthetic import drifting_sine
from elman.models import build_model
from elman.online.learner import OnlineLearner
from elman.online.stream import ModelSpec, StreamOptions, run_stream
from elman.runs.pictures import save_figure

FREEZE = 1500  # the frozen copy stops learning here


def drift(out: Path) -> dict:
    """Online LSTM on the drifting sine, against a copy frozen after ``FREEZE`` points."""
    values = drifting_sine(6000, period_start=50, period_end=20, noise=0.02, seed=1)
    torch.manual_seed(0)
    cfg = OnlineConfig()  # the defaults: k=16, u=1, Adam, lr 1e-3
    learner = OnlineLearner(build_model("lstm", 1, 1, 32), Scaler().fit(values[:32]), config=cfg)
    first = learner.observe(values[:FREEZE])
    frozen = OnlineLearner.from_checkpoint(build_model("lstm", 1, 1, 32), *learner.checkpoint())
    frozen.reconfigure(learn=False)
    online_rest, frozen_rest = learner.observe(values[FREEZE:]), frozen.observe(values[FREEZE:])
    pred = np.concatenate([first.prediction[:, 0], online_rest.prediction[:, 0]])
    mae = np.concatenate([first.running_mae, online_rest.running_mae])
    t = np.arange(len(values))
    fig = Figure(figsize=(10, 7.5))
    axes = fig.subplots(3, 1)
    early = slice(40, 260)
    axes[0].plot(t[early], values[early], color="0.3", lw=1.2, label="actual")
    axes[0].plot(t[early], pred[early], color="C0", lw=1, label="online prediction")
    axes[0].set_title("Early: the fresh LSTM is still learning (points 40-260, period ~50)")
    late = slice(len(values) - 150, len(values))
    axes[1].plot(t[late], values[late], color="0.3", lw=1.2, label="actual")
    axes[1].plot(t[late], pred[late], color="C0", lw=1, label="online prediction")
    axes[1].plot(t[late], frozen_rest.prediction[-150:, 0], color="C3", lw=1, ls="--",
                 label=f"frozen after {FREEZE} points")  # fmt: skip
    axes[1].set_title("Late: the period has drifted to ~20; learning keeps up, frozen does not")
    axes[2].semilogy(t, mae, color="C0", label="online")
    axes[2].semilogy(t[FREEZE:], frozen_rest.running_mae, color="C3", ls="--", label="frozen")
    axes[2].axvline(FREEZE, color="0.6", lw=0.8)
    axes[2].set_title("Running MAE (exponentially weighted, span 100), log scale")
    axes[2].set_yticks([0.02, 0.05, 0.1, 0.2, 0.5], labels=["0.02", "0.05", "0.1", "0.2", "0.5"])
    axes[2].minorticks_off()
    axes[2].set_xlabel("point")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "stream_drift.png")
    err = np.abs(np.concatenate([first.error[:, 0], online_rest.error[:, 0]]))
    return {
        "mae_points_32_1000": float(np.nanmean(err[32:1000])),
        "mae_last_1000_online": float(np.mean(err[-1000:])),
        "mae_last_1000_frozen": float(np.mean(np.abs(frozen_rest.error[-1000:, 0]))),
        "running_mae_at": {str(i): float(mae[i]) for i in (100, 500, 1500, 3000, 5999)},
    }


def co2(out: Path) -> dict:
    """The weekly CO2 series replayed as a stream, with the anomalies flagged."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "co2_stream.csv"
        spec = ModelSpec(model_type="lstm", hidden_size=32, difference=True)
        opts = StreamOptions(input=dataset_path("co2"), output=str(result))
        stats = run_stream(spec, OnlineConfig(lr=3e-3), opts, warn=lambda m: None)
        rows = pd.read_csv(result, parse_dates=["time"])
    flagged = rows[rows["anomaly"] == 1]
    fig = Figure(figsize=(10, 7))
    top, zoom, err = fig.subplots(3, 1)
    top.plot(rows["time"], rows["value"], color="0.3", lw=0.8, label="weekly CO2 (ppm)")
    top.scatter(flagged["time"], flagged["value"], color="C3", s=18, zorder=3,
                label=f"flagged ({len(flagged)})")  # fmt: skip
    top.set_title("Mauna Loa weekly CO2 replayed as a stream: LSTM learning online")
    part = rows[(rows["time"] >= "1994-06-01") & (rows["time"] < "1996-06-01")]
    part_flag = part[part["anomaly"] == 1]
    zoom.plot(part["time"], part["value"], color="0.3", lw=1, marker=".", ms=3, label="actual")
    zoom.plot(part["time"], part["prediction"], color="C0", lw=1, label="prediction (before)")
    zoom.scatter(part_flag["time"], part_flag["value"], color="C3", s=40, zorder=3,
                 label="flagged")  # fmt: skip
    zoom.set_title("Two years in detail")
    limit = 4.0 * rows["running_mae"].shift(1)
    err.plot(rows["time"], rows["error"].abs(), color="C0", lw=0.6, label="|error|")
    err.plot(rows["time"], limit, color="C3", lw=0.8, label="4 x running MAE before the point")
    err.set_title("Anomaly rule: |error| > 4 x running MAE")
    for ax in (top, zoom, err):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "stream_co2.png")
    scored = rows.dropna(subset=["prediction"])
    naive = scored["value"].diff().abs().iloc[1:]
    return {
        "points": stats["points"],
        "bad_points": stats["bad_points"],
        "anomalies": int(len(flagged)),
        "mae_stream": float(scored["error"].abs().mean()),
        "mae_last_value": float(naive.mean()),
        "running_mae_end": float(rows["running_mae"].iloc[-1]),
        "flagged_weeks": [str(d.date()) for d in flagged["time"]],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs/img")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    numbers = {"drift": drift(args.out), "co2": co2(args.out)}
    print(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
