"""ES-RNN on M4 Weekly: sMAPE, MASE and OWA against Naive2 and the published results.

Trains ``Forecaster("esrnn", ...)`` once on all 359 Weekly series (horizon 13, season 52),
forecasts the 13 weeks after each series and scores them with the M4 rules (see the data's
README): sMAPE, MASE (in-sample lag-1 scaling, Weekly's M4 frequency is 1) and OWA against
Naive2 (the naive forecast on Weekly). The fit time is measured.

``--holdout val`` never looks at the test file: it cuts the last 13 points of every training
series and scores those instead. Use it (with ``--limit``) for every tuning choice; report
``--holdout test`` only for the chosen defaults.

When :mod:`elman.evaluation.m4` exists its metrics are used, otherwise the same formulas
here.

Usage::

    python benchmarks/bench_esrnn_m4.py --holdout val --limit 60 --set epochs=20
    python benchmarks/bench_esrnn_m4.py                      # the reported run (defaults)
    python benchmarks/bench_esrnn_m4.py --set ensemble=none  # the ES-RNN alone
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import machine_info  # type: ignore[import-not-found]

from elman.forecaster import Forecaster

DATA = Path(os.environ.get("ELMAN_M4_WEEKLY", "/work/shared/data/m4_weekly"))
RESULTS = Path(__file__).resolve().parent / "results"
HORIZON, SEASON = 13, 52


def read_wide(path: Path) -> dict[str, np.ndarray]:
    """Series by id from an M4 file (one row per series, padded with empty cells)."""
    frame = pd.read_csv(path)
    out = {}
    for _, row in frame.iterrows():
        values = row.iloc[1:].to_numpy(dtype=float)
        out[str(row.iloc[0])] = values[~np.isnan(values)]
    return out


def smape(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))


def mase(history: np.ndarray, y: np.ndarray, f: np.ndarray, m: int = 1) -> float:
    scale = np.mean(np.abs(history[m:] - history[:-m]))
    return float(np.mean(np.abs(y - f)) / scale)


def scores(histories: list[np.ndarray], actual: np.ndarray, forecasts: np.ndarray) -> dict:
    """Mean sMAPE and MASE over series (``actual``, ``forecasts``: ``[S, H]``)."""
    try:  # the shared implementation, once it exists
        from elman.evaluation import m4  # type: ignore[attr-defined]

        return dict(m4.scores(histories, actual, forecasts))  # pragma: no cover
    except (ImportError, AttributeError):
        pass
    s = [smape(a, f) for a, f in zip(actual, forecasts, strict=True)]
    m = [mase(h, a, f) for h, a, f in zip(histories, actual, forecasts, strict=True)]
    return {"smape": float(np.mean(s)), "mase": float(np.mean(m))}


def long_table(series: dict[str, np.ndarray]) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"id": k, "t": np.arange(len(v)), "y": v}) for k, v in series.items()
    ]
    return pd.concat(frames, ignore_index=True)


def parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--holdout", choices=("test", "val"), default="test")
    p.add_argument("--limit", type=int, help="first N series only (tuning)")
    p.add_argument("--set", nargs="*", default=[], help="Forecaster options, e.g. epochs=20")
    p.add_argument("--name", default="esrnn_m4_weekly")
    args = p.parse_args()
    train = read_wide(DATA / "Weekly-train.csv.gz")
    if args.holdout == "test":
        test = read_wide(DATA / "Weekly-test.csv.gz")
    else:
        test = {k: v[-HORIZON:] for k, v in train.items()}
        train = {k: v[:-HORIZON] for k, v in train.items()}
    ids = list(train)[: args.limit] if args.limit else list(train)
    train = {k: train[k] for k in ids}
    options = {
        "horizon": HORIZON, "season": SEASON, "series_id": "id", "time_col": "t",
        "test_size": 0, "progress": False,  # --model esrnn's defaults: the ensemble too
        **parse_set(args.set),
    }  # fmt: skip
    f = Forecaster("esrnn", **options)
    t0 = time.perf_counter()
    f.fit(long_table(train))
    fit_s = time.perf_counter() - t0
    table = f.predict()
    total_s = time.perf_counter() - t0  # with an ensemble, the members' fits at the forecast
    forecasts = np.stack([table[table["id"] == k]["y"].to_numpy() for k in ids])
    actual = np.stack([test[k] for k in ids])
    histories = [train[k] for k in ids]
    naive = np.stack([np.repeat(h[-1], HORIZON) for h in histories])
    model, base = scores(histories, actual, forecasts), scores(histories, actual, naive)
    owa = 0.5 * (model["smape"] / base["smape"] + model["mase"] / base["mase"])
    result = {
        "holdout": args.holdout, "series": len(ids), "options": options,
        "esrnn": model, "naive2": base, "owa": owa, "fit_seconds": fit_s,
        "fit_and_forecast_seconds": total_s, "training": f.summary(), "machine": machine_info(),
        "ensemble": f.ensemble.to_dict() if f.ensemble is not None else None,
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    # per-series forecasts, so that runs can be combined afterwards (e.g. seed averages)
    cols = {f"f{k + 1}": forecasts[:, k] for k in range(HORIZON)}
    pd.DataFrame({"id": ids, **cols}).to_csv(RESULTS / f"{args.name}_forecasts.csv", index=False)
    print(
        f"{len(ids)} series ({args.holdout}): ES-RNN sMAPE {model['smape']:.3f} MASE "
        f"{model['mase']:.3f} OWA {owa:.3f} | Naive2 sMAPE {base['smape']:.3f} MASE "
        f"{base['mase']:.3f} | fit {fit_s:.0f} s, with the forecast {total_s:.0f} s | "
        f"{f.summary()}"
        + (f" | ensemble weights {f.ensemble.weights}" if f.ensemble is not None else "")
    )


if __name__ == "__main__":
    main()
