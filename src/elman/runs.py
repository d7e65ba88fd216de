"""Run directories: everything one ``elman train`` produced, in one place.

::

    RUN/
      config.toml        resolved configuration; `elman train --config RUN/config.toml` reruns it
      model.safetensors  weights (+ the tail of each series, to forecast without data)
      model.json         metadata: versions, configs, scalers, data schema, metrics
      metrics.json       hold-out metrics of the model and every baseline
      history.csv        per-epoch train / validation loss, learning rate, speed
      holdout.csv        the hold-out forecasts of the model and baselines beside the actuals
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from elman.data.series import Series
from elman.evaluate import HoldoutResult
from elman.files import atomic_write_json, atomic_write_text
from elman.train import EpochRecord

CONFIG = "config.toml"
METRICS = "metrics.json"
HISTORY = "history.csv"
HOLDOUT = "holdout.csv"


def write_history(path: Path, history: list[EpochRecord]) -> Path:
    """Per-epoch metrics as CSV (1-based epochs)."""
    buf = io.StringIO()
    cols = ["epoch", "train_loss", "val_loss", "lr", "seconds", "samples_per_s"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for rec in history:
        row = asdict(rec)
        row["epoch"] = rec.epoch + 1
        w.writerow(row)
    atomic_write_text(path, buf.getvalue())
    return path


def holdout_frame(result: HoldoutResult, series: list[Series]) -> pd.DataFrame:
    """Long table: series id, time, target, actual, then one column per method."""
    rows = []
    h = result.test_size
    for i, s in enumerate(series):
        stamps = s.index[len(s) - h :]
        for j, target in enumerate(s.targets):
            for k in range(h):
                row: dict[str, Any] = {
                    "series": s.series_id,
                    "time": str(stamps[k]),
                    "target": target,
                    "actual": result.actual[i, k, j],
                }
                row.update({name: fc[i, k, j] for name, fc in result.forecasts.items()})
                rows.append(row)
    frame = pd.DataFrame(rows)
    if frame["series"].isna().all():
        frame = frame.drop(columns="series")
    return frame


def write_holdout(
    out: Path, result: HoldoutResult, series: list[Series], extra: dict[str, Any]
) -> list[Path]:
    """``metrics.json`` and ``holdout.csv``."""
    atomic_write_json(
        out / METRICS,
        {
            "holdout": {
                "test_size": result.test_size,
                "season": result.season,
                "metrics": result.metrics,
            },
            **extra,
        },
    )
    atomic_write_text(out / HOLDOUT, holdout_frame(result, series).to_csv(index=False))
    return [out / METRICS, out / HOLDOUT]
